package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/linkedin"
	"github.com/capstan-gw/capstan/internal/privacy"
	"github.com/capstan-gw/capstan/internal/stream"
)

// logFlags are the logging flags shared by long-running commands.
type logFlags struct {
	level  string
	format string
}

func (f *logFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.level, "log-level", "info", "log level: debug, info, warn or error")
	cmd.Flags().StringVar(&f.format, "log-format", "text", "log format: text or json")
}

func (f *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(f.level)); err != nil {
		return nil, usageErr(fmt.Errorf("--log-level: %q is not debug, info, warn or error", f.level))
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(f.format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageErr(fmt.Errorf("--log-format: %q is not text or json", f.format))
}

// loadConfig loads the config file; problems are usage errors (exit 2).
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return nil, usageErr(fmt.Errorf("--config is required"))
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, usageErr(err)
	}
	return cfg, nil
}

// engineConfig translates the engine section for package stream.
func engineConfig(cfg *config.Config) stream.Config {
	e := cfg.Engine
	return stream.Config{
		URL:           e.NatsURL,
		Credentials:   e.Credentials,
		DataDir:       cfg.Server.DataDir,
		Listen:        e.Listen,
		SyncInterval:  e.Sync.Interval,
		Replicas:      e.Replicas,
		Retention:     e.Retention.D(),
		MaxBytes:      e.MaxBytes,
		PlainSegments: e.Compression == config.CompressionNone,
		DLQRetention:  e.DLQ.MaxAge.D(),
		DLQMaxBytes:   e.DLQ.MaxBytes,
	}
}

// dedupConfig is the de-duplication index's configuration.
func dedupConfig(cfg *config.Config) stream.DedupConfig {
	d := cfg.Engine.Dedup
	// With a cluster several replicas write: serve follows the stream.
	return stream.DedupConfig{Dir: d.Dir, Window: d.Window.D(), MemoryBytes: d.MemoryBytes, Follow: cfg.Engine.NatsURL != ""}
}

// toolDedup returns the de-duplication index for a tool that stores
// events: its own when the tool opened the data directory's engine itself
// (no capstan serves it), the running capstan's when attached to its
// engine, and nil with an external cluster, whose replicas hold theirs
// (docs/storage.md, "Writers without the index").
func toolDedup(ctx context.Context, eng *stream.Engine, cfg *config.Config, log *slog.Logger) (*stream.Dedup, error) {
	if !eng.Embedded() {
		return stream.AttachDedup(ctx, eng)
	}
	return stream.OpenDedup(ctx, eng, dedupConfig(cfg), log)
}

func stderrLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// identityConfig translates the configuration for package identity.
func identityConfig(cfg *config.Config) identity.Config {
	return identity.Config{
		TTL:       cfg.Identity.TTL.D(),
		Replicas:  cfg.Engine.Replicas,
		HashEmail: linkedin.HashEmail,
		// The embedded engine would fsync every graph write; see
		// identity.Config.Async.
		Async: cfg.Engine.NatsURL == "",
	}
}

// openIdentity opens the identity graph on the store the configuration
// picks (identity.store): the KV bucket; or the data directory's local
// store, opened here when this process owns the embedded engine (serve, or
// a tool while no capstan runs; a graph still in the old bucket is moved
// into it first), or reached through the running capstan for a tool
// attached to its engine (opened here if that capstan runs without the
// graph). local, when not nil, is the store opened here:
// the caller closes it after the graph's use.
func openIdentity(ctx context.Context, cfg *config.Config, eng *stream.Engine, log *slog.Logger) (g *identity.Graph, local *identity.Local, err error) {
	return openIdentityStore(ctx, cfg, eng, log, true)
}

// openIdentityStore is openIdentity; without migrate, a graph still in the
// old bucket is left there for the caller to move (migrateIdentity) before
// the graph is used.
func openIdentityStore(ctx context.Context, cfg *config.Config, eng *stream.Engine, log *slog.Logger, migrate bool) (g *identity.Graph, local *identity.Local, err error) {
	icfg := identityConfig(cfg)
	serves := false
	if cfg.IdentityLocal() && eng.Attached() {
		if serves, err = identity.RemoteServes(ctx, eng.Conn()); err != nil {
			return nil, nil, err
		}
	}
	switch {
	case !cfg.IdentityLocal():
	case serves:
		icfg.Store = identity.Remote(eng.Conn())
	default:
		// This process owns the engine, or the running capstan has no graph
		// and leaves the store alone (the store's lock says if not).
		local, err = identity.OpenLocal(identity.LocalConfig{Dir: cfg.IdentityDir(), MemoryBytes: cfg.Identity.MemoryBytes, Logger: log})
		if err != nil {
			return nil, nil, err
		}
		if migrate {
			if _, err := identity.MigrateBucket(ctx, eng.JetStream(), "", local, log); err != nil {
				_ = local.Close()
				return nil, nil, err
			}
		}
		icfg.Store = local
	}
	g, err = identity.Open(ctx, eng.JetStream(), icfg, log)
	if err != nil {
		if local != nil {
			_ = local.Close()
		}
		return nil, nil, err
	}
	return g, local, nil
}

// openGuardLocal opens the eventId guard's local store (engine.guard_store)
// in the data directory and moves into it, once, what the KV bucket held.
func openGuardLocal(ctx context.Context, cfg *config.Config, eng *stream.Engine, log *slog.Logger) (*delivery.GuardLocal, error) {
	return openGuardStore(ctx, cfg, eng, log, true)
}

// openGuardStore is openGuardLocal; without migrate, the bucket's keys are
// left for the caller to move (delivery.MigrateGuardBucket) before the
// runners start.
func openGuardStore(ctx context.Context, cfg *config.Config, eng *stream.Engine, log *slog.Logger, migrate bool) (*delivery.GuardLocal, error) {
	l, err := delivery.OpenGuardLocal(delivery.GuardLocalConfig{Dir: cfg.GuardDir(), MemoryBytes: cfg.Engine.GuardMemoryBytes, Logger: log})
	if err != nil || !migrate {
		return l, err
	}
	if _, err := delivery.MigrateGuardBucket(ctx, eng.JetStream(), l, log); err != nil {
		_ = l.Close()
		return nil, err
	}
	return l, nil
}

// closeLocal closes a local identity store if there is one.
func closeLocal(l *identity.Local) {
	if l != nil {
		_ = l.Close()
	}
}

// suppressionConfig is the privacy suppression list's configuration.
func suppressionConfig(cfg *config.Config) privacy.SuppressionConfig {
	return privacy.SuppressionConfig{TTL: cfg.Privacy.SuppressionTTL.D(), HashEmail: linkedin.HashEmail}
}

// withEngine loads the configuration at cfgPath, attaches to its engine (a
// running capstan's, the data directory's, or the external cluster) and
// calls fn with a context that ends on SIGINT or SIGTERM.
func withEngine(cmd *cobra.Command, cfgPath string, fn func(ctx context.Context, cfg *config.Config, eng *stream.Engine) error) error {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	eng, err := stream.Attach(ctx, engineConfig(cfg), stderrLogger())
	if err != nil {
		return err
	}
	defer eng.Close()
	return fn(ctx, cfg, eng)
}

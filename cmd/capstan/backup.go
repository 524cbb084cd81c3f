package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/stream"
)

// capstanVersion is the module version the binary was built from, as Go
// records it ("(devel)" for a build from a work tree).
func capstanVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

func newBackupCmd() *cobra.Command {
	var cfgPath, out string
	cmd := &cobra.Command{
		Use:   "backup --config FILE --out DIR",
		Short: "Take a consistent backup of the streams and buckets, while capstan runs or not",
		Long: `Write a consistent snapshot of each of capstan's streams into DIR (created;
it must be empty): EVENTS and the DLQ, AUDIT when it exists, and the
streams behind the key-value buckets (KV_identity, KV_state,
KV_suppression, KV_eventids, KV_accepted, and the delivery statistics'
KV_stats_minutes, KV_stats_quarters, KV_stats_hours, when they exist),
each with its consumers' state, so delivery resumes where it was. It
uses JetStream's snapshot API, so it works while capstan
serves (through the embedded engine's local port, or the external
cluster) and when it is stopped (it opens the data directory itself).
The identity graph's local store (identity.store local, the default with
the embedded engine: data_dir/identity) is backed up as a pebble
checkpoint, taken where KV_identity's snapshot is; while capstan runs, that
process writes the checkpoint, so DIR must be writable by it. The
eventId guard's local store (engine.guard_store local: data_dir/eventids)
is backed up the same way, last, where KV_eventids's snapshot is.
The de-duplication index (engine.dedup.dir) is not backed up: it is
derived from EVENTS and rebuilt when capstan starts on the restored data.

The streams are snapshotted one after another, in an order that makes the
restored state safe to resume from: KV_state first (an import's resume
point is never ahead of the restored events; a resumed import sends a few
rows again and they are de-duplicated), then EVENTS with delivery's
acknowledgements, then what delivery writes before it acknowledges an
event (dead letters, identity graph, suppressions, statistics, the
ledger), and last KV_eventids, the sent-conversion records. So an event
acknowledged in the backup has all its effects in it, and an event not
acknowledged is read again after a restore without its conversion being
sent again if LinkedIn accepted it before the last snapshot began. Only
conversions accepted after that can be sent again (LinkedIn
de-duplicates them by eventId), as after any restore of an older state.
Every event acknowledged before the backup started is in it.

DIR gets <stream>.snapshot and <stream>.json per stream, identity/ and
eventids/ for the local stores, and manifest.json:
capstan's version, the time, the streams in the order they were taken
with each one's message count and last sequence, and the SHA-256 of
every file, which restore checks.`,
		Example: `  capstan backup --config capstan.yaml --out /backups/capstan-$(date +%F)`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErr(fmt.Errorf("--out is required"))
			}
			return withEngine(cmd, cfgPath, func(ctx context.Context, cfg *config.Config, eng *stream.Engine) error {
				m, err := eng.Backup(ctx, out, capstanVersion(), append(identityBackup(cfg, eng), guardBackup(cfg, eng)...)...)
				if err != nil {
					return err
				}
				for _, s := range m.Streams {
					fmt.Fprintf(cmd.OutOrStdout(), "%-16s %d messages, last sequence %d, %d consumers\n", s.Name, s.Messages, s.LastSeq, s.Consumers)
				}
				for _, l := range m.Local {
					fmt.Fprintf(cmd.OutOrStdout(), "%-16s %d files (local store checkpoint)\n", l.Name, len(l.Files))
				}
				fmt.Fprintf(cmd.OutOrStdout(), "backup written to %s\n", out)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "path to the configuration file")
	cmd.Flags().StringVar(&out, "out", "", "directory to write the backup to (created; must be empty)")
	return cmd
}

// identityBackup is the backup's part for the identity graph's local store
// (identity.store), taken where the KV bucket's snapshot would be. Nothing
// without a local store.
func identityBackup(cfg *config.Config, eng *stream.Engine) []stream.LocalPart {
	if !cfg.IdentityLocal() {
		return nil
	}
	return []stream.LocalPart{localBackup(eng, config.DefaultIdentityDir, "KV_"+stream.IdentityKV, cfg.IdentityDir(),
		identity.CheckpointRemote, func(dir string) (checkpointer, error) {
			return identity.OpenLocal(identity.LocalConfig{Dir: dir})
		})}
}

// guardBackup is the backup's part for the eventId guard's local store
// (engine.guard_store), taken where KV_eventids's snapshot would be (last:
// the sent-conversion records). Nothing without a local store.
func guardBackup(cfg *config.Config, eng *stream.Engine) []stream.LocalPart {
	if !cfg.GuardLocal() {
		return nil
	}
	return []stream.LocalPart{localBackup(eng, config.DefaultGuardDir, "KV_"+stream.EventIDsKV, cfg.GuardDir(),
		delivery.CheckpointGuardRemote, func(dir string) (checkpointer, error) {
			return delivery.OpenGuardLocal(delivery.GuardLocalConfig{Dir: dir})
		})}
}

// checkpointer is a local store a backup copies.
type checkpointer interface {
	Checkpoint(dir string) error
	Close() error
}

// localBackup is the backup part name of the local store in storeDir,
// taken after the stream named after: a checkpoint written by the running
// capstan that holds the store (remote; the backup directory must then be
// writable by it), or by this process (open) when none runs or the one
// running has not opened the store (nats.ErrNoResponders).
func localBackup(eng *stream.Engine, name, after, storeDir string,
	remote func(ctx context.Context, nc *nats.Conn, dir string) error,
	open func(dir string) (checkpointer, error)) stream.LocalPart {
	return stream.LocalPart{
		Name:  name,
		After: after,
		Write: func(ctx context.Context, dir string) error {
			if eng.Attached() {
				abs, err := filepath.Abs(dir)
				if err != nil {
					return err
				}
				if err := remote(ctx, eng.Conn(), abs); !errors.Is(err, nats.ErrNoResponders) {
					return err
				}
			}
			if _, err := os.Stat(storeDir); errors.Is(err, os.ErrNotExist) {
				return stream.ErrNoLocalPart
			}
			l, err := open(storeDir)
			if err != nil {
				return err
			}
			defer l.Close()
			return l.Checkpoint(dir)
		},
	}
}

func newRestoreCmd() *cobra.Command {
	var cfgPath, from string
	cmd := &cobra.Command{
		Use:   "restore --config FILE --from DIR",
		Short: "Restore a backup into an empty data directory (embedded engine)",
		Long: `Restore the backup in DIR (written by capstan backup) into the configured
server.data_dir, which must be empty or missing, with an embedded engine
started for the purpose; then start capstan serve on it. Each stream is
restored with JetStream's restore API, consumers included.

Nothing is written, and the command fails saying why, when the data
directory is not empty, when the backup was written by a newer capstan
(a newer backup format), or when it is damaged (a file missing or not
matching its checksum in manifest.json). With engine.nats_url set it
refuses too: restore a cluster with the nats CLI.`,
		Example: `  capstan restore --config capstan.yaml --from /backups/capstan-2026-01-31`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" {
				return usageErr(fmt.Errorf("--from is required"))
			}
			cfg, err := loadConfig(cfgPath)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			m, err := stream.Restore(ctx, engineConfig(cfg), from, stderrLogger())
			if err != nil {
				return err
			}
			for _, s := range m.Streams {
				fmt.Fprintf(cmd.OutOrStdout(), "%-16s %d messages restored\n", s.Name, s.Messages)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored the backup of %s (capstan %s) into %s\n", m.Time.Format("2006-01-02 15:04:05Z07:00"), m.Capstan, cfg.Server.DataDir)
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "path to the configuration file")
	cmd.Flags().StringVar(&from, "from", "", "directory of the backup to restore")
	return cmd
}

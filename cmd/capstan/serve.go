package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/capstan-gw/capstan/internal/admin"
	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/ingest"
	"github.com/capstan-gw/capstan/internal/privacy"
	"github.com/capstan-gw/capstan/internal/stats"
	"github.com/capstan-gw/capstan/internal/stream"
)

func newServeCmd() *cobra.Command {
	var cfgPath string
	var lf logFlags
	cmd := &cobra.Command{
		Use:   "serve --config FILE",
		Short: "Run the gateway",
		Long: `Run the capstan gateway: the Segment-compatible tracking API on server.addr,
with every accepted event fsynced in the EVENTS stream before it is answered.

Endpoints besides the tracking API: /healthz (live), /readyz (engine and
destinations ready), /metrics (Prometheus), /capstan.js (the browser client)
and, when server.admin_token or server.admin_users is set, the admin API
under /admin/api/ and the console at /admin/.
With server.ops_addr, /metrics moves to that second listener (with /healthz
and /readyz, which also stay on server.addr); server.metrics_auth:
admin_token makes /metrics ask for the admin token. server.pprof: true
serves Go's runtime profiles under /debug/pprof/ to the admin token only
(on server.ops_addr when set).
SIGINT or SIGTERM stops it gracefully: in-flight requests finish, queued
writes are flushed, delivery flushes its batches, the engine stops last.

At the first start on a data directory whose identity graph or eventId
guard is still in its KV bucket, the keys move into the local stores
(data_dir/identity, data_dir/eventids; see docs/production.md): ingest
accepts events meanwhile, /readyz answers 503 "starting", delivery and the
admin API wait.

SIGHUP reads the --config file again and validates it as at start; if it
has errors they are logged and the configuration in force stays. Otherwise
the sources (write keys, allowed_origins, disabled, rate limits, trust,
identity verification, browser batching) apply at once: requests in
progress finish with the old ones. Each destination's mappings,
consent_categories and display_name apply too: a new mapping's conversion
rule is created first (if that fails, the destination keeps the mappings in
force and the error is logged), then the events read from then on convert
with the new mappings; conversions already batched are sent as built. One
"reloaded" line is logged, and one warning names every other changed setting
(server.*, engine.*, identity, privacy, a destination's other settings, a
destination added or removed): those need a restart.

With server.tls it serves HTTPS: SIGHUP also reads server.tls.cert_file and
key_file again (new connections get the new certificate; if it does not
load, the old one stays and the error is logged), or ACME obtains and renews
certificates. With destinations it needs server.secret_key, which encrypts
the tokens it keeps (see capstan secret-key).`,
		Example: `  capstan serve --config capstan.yaml
  WEBSITE_WRITE_KEY=wk_live_123 capstan serve --config examples/capstan.yaml --log-format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cfgPath)
			if err != nil {
				return err
			}
			log, err := lf.logger(os.Stderr)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return serve(ctx, cfg, cfgPath, log, nil)
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "configuration file (YAML)")
	lf.add(cmd)
	return cmd
}

// serve runs the gateway until ctx ends. cfgPath is the file cfg was read
// from, read again on SIGHUP ("": nothing to reload). extra, when set, adds
// handlers to the HTTP mux (the demo page).
func serve(ctx context.Context, cfg *config.Config, cfgPath string, log *slog.Logger, extra func(*http.ServeMux)) error {
	if err := cfg.RequireSecretKey(); err != nil {
		return usageErr(err)
	}
	// SIGHUP reloads the configuration file (what can change live) and
	// server.tls.cert_file and key_file. Registered first, so that no
	// SIGHUP finds the default action (exit) while capstan starts; one
	// that arrives before the listener is handled once it runs.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	plans, err := compilePlans(cfg, "")
	if err != nil {
		return err
	}
	tuneGC(cfg, log)
	if cfg.Server.InsecurePlaintextSecrets && len(cfg.Destinations) > 0 {
		log.Warn("server.insecure_plaintext_secrets: tokens obtained at run time are stored in plaintext; for development only")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// Against a cluster still forming, each step is retried (startup.go).
	start := newStarter(cfg, log)
	var eng *stream.Engine
	if err := start.do(ctx, "NATS connection and streams EVENTS, DLQ", func(ctx context.Context) (err error) {
		eng, err = stream.Open(ctx, engineConfig(cfg), log)
		return err
	}); err != nil {
		return fmt.Errorf("open engine: %w", err)
	}
	defer eng.Close()
	reg.MustRegister(eng.DLQCollector())
	reg.MustRegister(eng.StoreCollector())
	if cfg.Engine.NatsURL != "" {
		// Versions, JetStream domain, sync_interval (servers.go).
		var monitor []string
		if cfg.Engine.MonitorURL != "" {
			monitor = strings.Split(cfg.Engine.MonitorURL, ",")
		}
		eng.CheckServers(ctx, monitor)
	} else if !cfg.Engine.Sync.Always() {
		log.Warn("engine.sync is an interval: acknowledged events written in the last interval can be lost on power failure", "interval", cfg.Engine.Sync.String())
	}

	// The de-duplication index, caught up with EVENTS before ingest
	// stores anything.
	var dd *stream.Dedup
	if err := start.do(ctx, "de-duplication index", func(ctx context.Context) (err error) {
		dd, err = stream.OpenDedup(ctx, eng, dedupConfig(cfg), log)
		return err
	}); err != nil {
		return fmt.Errorf("open de-duplication index: %w", err)
	}
	defer dd.Close()
	reg.MustRegister(dd.Collector())
	// Tools attached to the embedded engine (capstan import) look keys up
	// in this index.
	if err := eng.ServeDedup(dd); err != nil {
		return err
	}
	if cfg.Engine.NatsURL != "" {
		// Several replicas may write: the index follows the whole stream,
		// and delivery skips what another replica stored first.
		followCtx, stopFollow := context.WithCancel(ctx)
		followDone := make(chan struct{})
		go func() { dd.Follow(followCtx, eng); close(followDone) }()
		defer func() { stopFollow(); <-followDone }()
	}
	app, err := stream.NewWriter(eng, stream.WriterConfig{
		MaxBatch: cfg.Engine.GroupCommit.MaxEvents,
		Linger:   cfg.Engine.GroupCommit.Linger.D(),
		Inflight: cfg.Engine.GroupCommit.Inflight,
		Dedup:    dd,
		Registry: reg,
	}, log)
	if err != nil {
		return fmt.Errorf("event writer: %w", err)
	}
	ing, err := ingest.New(cfg, ingest.Options{Store: app, Log: log, Registry: reg})
	if err != nil {
		return err
	}
	// The local stores are opened here; what their old KV buckets hold is
	// moved into them (once, possibly for minutes) after ingest listens:
	// until then delivery, the admin API and the tools served through this
	// process wait, and /readyz says "starting".
	var idLocal *identity.Local
	var graph *identity.Graph
	if len(plans) > 0 || cfg.Server.AdminEnabled() {
		var local *identity.Local
		what := "key-value bucket " + stream.IdentityKV
		if cfg.IdentityLocal() {
			what = "identity store " + cfg.IdentityDir()
		}
		err = start.do(ctx, what, func(ctx context.Context) (err error) {
			graph, local, err = openIdentityStore(ctx, cfg, eng, log, false)
			return err
		})
		if err != nil {
			return fmt.Errorf("identity graph: %w", err)
		}
		if local != nil {
			defer closeLocal(local)
			reg.MustRegister(local.Collector())
			idLocal = local
		}
	}
	var dg delivery.Graph
	if graph != nil {
		dg = graph
	}
	// Privacy suppression: loaded before delivery starts, kept current by
	// a watch (sup.Run) so that a deletion made anywhere applies at once.
	var sup *privacy.Suppressions
	if graph != nil && cfg.Privacy.Suppresses() {
		if err := start.do(ctx, "key-value bucket "+stream.SuppressionKV, func(ctx context.Context) (err error) {
			sup, err = privacy.OpenSuppressions(ctx, eng, suppressionConfig(cfg))
			return err
		}); err != nil {
			return fmt.Errorf("privacy suppressions: %w", err)
		}
		if err := sup.Load(ctx); err != nil { // its watch lives as long as ctx
			return fmt.Errorf("privacy suppressions: %w", err)
		}
	}
	if len(plans) > 0 {
		if err := start.do(ctx, "key-value bucket "+stream.StateKV, func(ctx context.Context) error {
			_, err := eng.KV(ctx, stream.StateKV, 0)
			return err
		}); err != nil {
			return err
		}
		// Reconciliation's bucket of accepted counts, created here
		// with the start-up retries (newDestinations opens them again).
		if err := start.do(ctx, "key-value bucket "+delivery.LedgerKV, func(ctx context.Context) error {
			_, err := delivery.OpenLedger(ctx, eng)
			return err
		}); err != nil {
			return err
		}
	}
	// Durable delivery statistics (the console's overview): counted by
	// the runners, flushed to the engine every few seconds by st.Run.
	var st *stats.Collector
	var funnel delivery.Funnel
	if len(plans) > 0 {
		// Figures only: without their buckets capstan still delivers, and
		// the console's Overview says the statistics are not kept.
		if err = start.do(ctx, "statistics buckets", func(ctx context.Context) (err error) {
			st, err = stats.Open(ctx, eng, stats.Config{}, log)
			return err
		}); err != nil {
			log.Error("delivery statistics are not kept: their buckets cannot be opened", "error", err)
			st = nil
		} else {
			funnel = st
		}
	}
	var guard *delivery.GuardLocal
	if len(plans) > 0 && cfg.GuardLocal() {
		if err := start.do(ctx, "eventId guard store "+cfg.GuardDir(), func(ctx context.Context) (err error) {
			guard, err = openGuardStore(ctx, cfg, eng, log, false)
			return err
		}); err != nil {
			return fmt.Errorf("eventId guard: %w", err)
		}
		defer func() { _ = guard.Close() }()
		reg.MustRegister(guard.Collector())
	}
	st8 := newStartup(idLocal, guard)
	dests, err := newDestinations(ctx, cfg, plans, eng, dg, suppressor(sup), guard, funnel, reg, log)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	health := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	ready := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Ready means: events are accepted (the engine is up and the store
		// did not refuse the last write, see stream.Writer.Ready) and every
		// destination delivers. A paused destination makes capstan not
		// ready, so that monitoring sees it; ingest still accepts and keeps
		// events.
		body := struct {
			Status       string            `json:"status"`
			Engine       string            `json:"engine"`
			Destinations []delivery.Status `json:"destinations,omitempty"`
			Starting     string            `json:"starting,omitempty"`
		}{Status: "ready", Engine: "ok"}
		if err := app.Ready(r.Context()); err != nil {
			body.Status, body.Engine = "unavailable", err.Error()
		} else if body.Starting = st8.pending(); body.Starting != "" {
			body.Status = "starting"
		}
		for _, d := range dests {
			st := d.Status()
			if st.State == "paused" || st.State == "degraded" {
				body.Status = "degraded"
			}
			body.Destinations = append(body.Destinations, st)
		}
		w.Header().Set("Content-Type", "application/json")
		if body.Status != "ready" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(body)
	})
	var adm *admin.Server
	if cfg.Server.AdminEnabled() {
		if adm, err = newAdmin(cfg, dests, graph, sup, eng, app, st, log); err != nil {
			return err
		}
		mux.Handle("/admin/", st8.gate(adm))
	}
	opsMux := mountOps(cfg.Server, mux, health, ready, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mountAssets(mux)
	if extra != nil {
		extra(mux)
	}

	s := cfg.Server
	newServer := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       s.ReadTimeout.D(),
			WriteTimeout:      s.WriteTimeout.D(),
			IdleTimeout:       s.IdleTimeout.D(),
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
	}
	tlsCfg, certs, err := newTLS(s.TLS, log)
	if err != nil {
		return err
	}
	main := newServer(ingest.Root(ing, mux))
	main.TLSConfig = tlsCfg
	if adm != nil {
		main.RegisterOnShutdown(adm.Shutdown) // ends Live events streams
	}
	srvs := []*http.Server{main}
	rl := &reloader{path: cfgPath, cur: cfg, ing: ing, dests: dests, certs: certs, log: log}
	tcp, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.Addr, err)
	}
	lns := []net.Listener{limitListen(tcp, s.MaxConnections)}
	if opsMux != nil {
		ops, err := net.Listen("tcp", s.OpsAddr)
		if err != nil {
			lns[0].Close()
			return fmt.Errorf("listen on %s (server.ops_addr): %w", s.OpsAddr, err)
		}
		srvs = append(srvs, newServer(opsMux))
		lns = append(lns, ops)
		log.Info("ops endpoints listening", "addr", "http://"+ops.Addr().String(), "metrics_auth", s.MetricsAuth)
	}
	scheme := "http://"
	if tlsCfg != nil {
		scheme = "https://"
	}
	log.Info("capstan listening", "addr", scheme+lns[0].Addr().String(), "data_dir", s.DataDir, "engine", engineKind(cfg), "sync", cfg.Engine.Sync.String())

	// The appender outlives the HTTP server: it stops only after the last
	// in-flight request has its answer, then drains what is queued.
	appCtx, stopApp := context.WithCancel(context.WithoutCancel(ctx))
	defer stopApp()
	appDone := make(chan error, 1)
	go func() { appDone <- app.Run(appCtx) }()
	// The statistics outlive the runners too: their final flush keeps the
	// last counts of delivery's soft stop.
	statsDone := make(chan error, 1)
	if st != nil {
		go func() { statsDone <- st.Run(appCtx) }()
	} else {
		statsDone <- nil
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return st8.run(gctx, eng, log) })
	if sup != nil {
		g.Go(func() error { return sup.Run(gctx) })
	}
	for _, d := range dests {
		g.Go(func() error {
			if !st8.wait(gctx) {
				return nil
			}
			return d.runner.Serve(gctx)
		})
		if d.periodic {
			g.Go(func() error {
				if st8.wait(gctx) {
					d.rec.Run(gctx)
				}
				return nil
			})
		}
		// A token `capstan auth linkedin` stores while this runs is put
		// in use at once and resumes a paused destination.
		g.Go(func() error {
			if !st8.wait(gctx) {
				return nil
			}
			if err := d.li.WatchToken(gctx, d.runner.Resume); err != nil {
				log.Warn("connected tokens are picked up at the next start only", "destination", d.Name(), "error", err)
			}
			return nil
		})
	}
	for i, srv := range srvs {
		g.Go(func() error {
			var err error
			if srv.TLSConfig != nil {
				err = srv.ServeTLS(lns[i], "", "") // the certificate comes from srv.TLSConfig
			} else {
				err = srv.Serve(lns[i])
			}
			if !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("http server on %s: %w", lns[i].Addr(), err)
			}
			return nil
		})
	}
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-hup:
				rl.reload(gctx)
			}
		}
	})
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down", "grace", s.ShutdownGrace.String())
		sctx, cancel := context.WithTimeoutCause(context.WithoutCancel(ctx), s.ShutdownGrace.D(), errors.New("shutdown grace period over"))
		defer cancel()
		for _, srv := range srvs {
			if err := srv.Shutdown(sctx); err != nil {
				log.Warn("in-flight requests cut short", "error", context.Cause(sctx))
			}
		}
		return nil
	})
	err = g.Wait()
	st8.unsubscribe()
	if adm != nil {
		adm.WaitImports() // their last rows go through the writer
	}
	stopApp()
	<-appDone
	<-statsDone
	log.Info("stopped")
	return err
}

func engineKind(cfg *config.Config) string {
	if cfg.Engine.NatsURL != "" {
		return "external"
	}
	return "embedded"
}

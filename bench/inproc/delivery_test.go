package inproc

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/cputime"

	"github.com/capstan-gw/capstan/bench/internal/segmentgen"
	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/delivery"
	lidest "github.com/capstan-gw/capstan/internal/delivery/linkedin"
	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/ingest"
	"github.com/capstan-gw/capstan/internal/linkedin"
	"github.com/capstan-gw/capstan/internal/sandbox"
	"github.com/capstan-gw/capstan/internal/stream"
)

const benchAccount = 512345678

// deliveryProfile profiles only the timed part of BenchmarkDelivery (go
// test's -cpuprofile also covers storing the events through ingest).
var deliveryWorkers = flag.Int("delivery.workers", 0, "the runner's conversion workers (0: its default)")

var deliveryLog = flag.Bool("delivery.log", false, "write the runner's warnings and errors to stderr (to see stalls and retries)")

var deliveryIdentityStore = flag.String("delivery.identity-store", "local", "the identity graph's store: local (serve's default with the embedded engine) or jetstream (the KV bucket)")

var deliveryGuardStore = flag.String("delivery.guard-store", "local", "the eventId guard's store: local (serve's default with the embedded engine) or jetstream (the KV bucket)")

var deliveryProfile = flag.String("delivery.cpuprofile", "", "write a CPU profile of BenchmarkDelivery's timed part (the last sub-benchmark run) to this file")

// BenchmarkDelivery is the delivery path in one process, as `capstan serve`
// wires it: b.N convertible events (properties.li_fat_id or traits.email,
// from bench/internal/segmentgen) are stored through the real ingest
// handler and appender before the timer starts; then a delivery.Runner
// (batch_size 5000, linger 200ms) reads them from the embedded JetStream,
// converts, batches and sends them over loopback HTTP to the sandbox's
// handler (httptest, rate limits off) until the sandbox accepted all of
// them. Sub-benchmarks: with the identity graph (as serve runs it whenever a
// destination is configured), every event from a new person (one or two
// profile creates each) or from ~1600 returning people (segmentgen's
// templates), and without the graph; engine.sync always, and 1s for new
// people. Run with a fixed event count:
//
//	go test ./bench/inproc -run '^$' -bench Delivery -benchtime 100000x
//	go test ./bench/inproc -run '^$' -bench 'Delivery/^graph/^new/sync=always' -benchtime 100000x \
//	    -o /tmp/inproc.test -args -delivery.cpuprofile /tmp/delivery.out
func BenchmarkDelivery(b *testing.B) {
	for _, sc := range []struct {
		name      string
		graph     bool
		newPeople bool
		sync      time.Duration
	}{
		{"graph/new/sync=always", true, true, 0},
		{"graph/returning/sync=always", true, false, 0},
		{"graph/new/sync=1s", true, true, time.Second},
		{"nograph/sync=always", false, false, 0},
	} {
		b.Run(sc.name, func(b *testing.B) { benchDelivery(b, sc.graph, sc.newPeople, sc.sync) })
	}
}

func benchDelivery(b *testing.B, withGraph, newPeople bool, sync time.Duration) {
	log := slog.New(slog.DiscardHandler)
	if *deliveryLog {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	sb, err := sandbox.New(sandbox.Config{
		AdAccount: benchAccount, Tokens: []sandbox.TokenSpec{{Token: "tok", AdAccount: benchAccount}},
		RatePerMinute: -1, RatePerDay: -1, MaxConversions: max(b.N, 1),
	}, log)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(sb.Handler())
	defer func() { srv.Close(); sb.Close() }()

	eng, err := stream.Open(ctx, stream.Config{DataDir: b.TempDir(), SyncInterval: sync, Listen: "none"}, log)
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	app, err := stream.NewWriter(eng, stream.WriterConfig{}, log)
	if err != nil {
		b.Fatal(err)
	}
	appDone := make(chan struct{})
	go func() { defer close(appDone); _ = app.Run(ctx) }()
	defer func() { cancel(); <-appDone }()

	cfg, err := config.Parse("bench.yaml", []byte(fmt.Sprintf(`
server: {addr: "127.0.0.1:0", data_dir: %s}
sources: [{name: bench, write_key: %s, rate_limit: {disabled: true}}]
destinations:
  - name: linkedin
    api_base: %s
    ad_account: %d
    batch_size: 5000
    linger: 200ms
    rate_limit: {per_minute: 100000, per_day: 100000000}
    auth: {access_token: tok}
    mappings:
      - name: Sign Up
        trigger: 'type = "track"'
        conversion_rule: {create: {name: "Bench (capstan)", type: SIGN_UP}}
`, b.TempDir(), writeKey, srv.URL, benchAccount)), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}

	// Store b.N events through the ingest handler, untimed.
	h, err := ingest.New(cfg, ingest.Options{Store: app})
	if err != nil {
		b.Fatal(err)
	}
	g := segmentgen.New(11, fmt.Sprintf("%012x", time.Now().UnixNano()&0xffffffffffff), time.Now()).Convertible()
	if newPeople {
		g.NewPeople()
	}
	var tmpls []*segmentgen.Template
	for range 16 {
		t, err := g.Batch(100)
		if err != nil {
			b.Fatal(err)
		}
		tmpls = append(tmpls, t)
	}
	var buf []byte
	for stored := 0; stored < b.N; {
		t := tmpls[stored/100%len(tmpls)]
		buf = t.Stamp(buf, ids.Add(100)-100)
		body := buf
		if n := b.N - stored; n < 100 {
			body = truncateBatch(b, buf, n)
		}
		if rec := post(h, "/v1/batch", body); rec.Code != http.StatusOK {
			b.Fatalf("ingest: %d %s", rec.Code, rec.Body)
		}
		stored += min(100, b.N-stored)
	}

	format, err := lidest.NewFormat(lidest.FormatConfig{BatchSize: 5000})
	if err != nil {
		b.Fatal(err)
	}
	plan, errs := delivery.NewPlan(cfg, 0, format)
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	state, err := eng.KV(ctx, stream.StateKV, 0)
	if err != nil {
		b.Fatal(err)
	}
	dest, err := lidest.New(ctx, lidest.Config{Destination: cfg.Destinations[0], State: state}, log)
	if err != nil {
		b.Fatal(err)
	}
	if err := dest.Prepare(ctx, plan); err != nil {
		b.Fatal(err)
	}
	var graph delivery.Graph
	if withGraph {
		// As serve opens it on the embedded engine (identity.store).
		icfg := identity.Config{HashEmail: linkedin.HashEmail, Async: true}
		if *deliveryIdentityStore == "local" {
			local, err := identity.OpenLocal(identity.LocalConfig{Dir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer local.Close()
			icfg.Store = local
		}
		gr, err := identity.Open(ctx, eng.JetStream(), icfg, log)
		if err != nil {
			b.Fatal(err)
		}
		graph = gr
	}
	var guard *delivery.GuardLocal
	if *deliveryGuardStore == "local" {
		// As serve opens it on the embedded engine (engine.guard_store).
		guard, err = delivery.OpenGuardLocal(delivery.GuardLocalConfig{Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		defer guard.Close()
	}
	runner, err := delivery.NewRunner(plan, dest, delivery.RunnerConfig{
		BatchSize: 5000, Linger: 200 * time.Millisecond, PerMinute: 100000, PerDay: 100000000,
		Workers: *deliveryWorkers,
	}, delivery.Deps{Engine: eng, Graph: graph, GuardStore: guard, Log: log})
	if err != nil {
		b.Fatal(err)
	}

	if *deliveryProfile != "" {
		f, err := os.Create(*deliveryProfile)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cputime.Process()
	rctx, rcancel := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- runner.Run(rctx) }()
	deadline := time.Now().Add(10 * time.Minute)
	for sb.Counters().Accepted < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d delivered after 10 minutes", sb.Counters().Accepted, b.N)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Delivery's work ends when the events are acknowledged too (a
	// confirmed acknowledgement is a round trip per event, issue 23).
	for !allAcked(ctx, eng) {
		if time.Now().After(deadline) {
			b.Fatal("events delivered but not acknowledged after 10 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	cpu := cputime.Process() - cpu0
	rcancel()
	if err := <-runDone; err != nil {
		b.Fatal(err)
	}
	c := sb.Counters()
	if c.Accepted != int64(b.N) || c.Deduplicated != 0 || c.RejectedEvents != 0 {
		b.Fatalf("sandbox counters %+v, want exactly %d accepted", c, b.N)
	}
	report(b, int64(b.N), cpu)
	if c.Batches > 0 {
		b.ReportMetric(float64(c.Accepted)/float64(c.Batches), "events/batch")
	}
}

// truncateBatch keeps the first n events of a stamped /v1/batch body (for a
// b.N that is not a multiple of 100): it re-encodes the body.
func truncateBatch(b *testing.B, body []byte, n int) []byte {
	b.Helper()
	var v struct {
		Batch  []json.RawMessage `json:"batch"`
		SentAt string            `json:"sentAt"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		b.Fatal(err)
	}
	v.Batch = v.Batch[:n]
	out, err := json.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// allAcked reports whether the delivery consumer has nothing pending and
// nothing waiting for its acknowledgement.
func allAcked(ctx context.Context, eng *stream.Engine) bool {
	c, err := eng.JetStream().Consumer(ctx, stream.EventsStream, "deliver-linkedin")
	if err != nil {
		return false
	}
	info, err := c.Info(ctx)
	return err == nil && info.NumAckPending == 0 && info.NumPending == 0
}

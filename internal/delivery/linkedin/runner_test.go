package linkedin

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/identity"
	capi "github.com/capstan-gw/capstan/internal/linkedin"
	"github.com/capstan-gw/capstan/internal/sandbox"
	"github.com/capstan-gw/capstan/internal/stream"
)

const account = 512345678

// harness runs one destination against the real sandbox over HTTP and a
// real embedded JetStream, sharing a fast-forward clock with the sandbox.
type harness struct {
	t      *testing.T
	cfg    *config.Config
	clock  *delivery.SkipClock
	sb     *sandbox.Server
	url    string
	eng    *stream.Engine
	app    *stream.Writer
	dest   *Destination
	client *capi.Client
	runner *delivery.Runner
	plan   *delivery.Plan
	ledger *delivery.Ledger
	dc     config.Destination
	state  jetstream.KeyValue
	stop   func()
	deps   delivery.Deps // Funnel, Metrics and Graph of the runner
	graph  *identity.Graph
}

type opts struct {
	sandbox  sandbox.Config
	mappings string
	runner   delivery.RunnerConfig
	creds    capi.Credentials
	timeout  time.Duration
	// serve starts the runner with Serve (Prepare, access checks) instead
	// of preparing here and running Run.
	serve bool
	// funnel and metrics, when set, are given to the runner.
	funnel  delivery.Funnel
	metrics *delivery.Metrics
	// graph gives the runner an identity graph (h.graph) without a memo,
	// so that every observation and look-up asks its bucket.
	graph bool
	// guardLocal gives the runners the local eventId guard store
	// (delivery.GuardLocal) instead of the KV bucket.
	guardLocal bool
}

const signUpMapping = `      - name: Sign Up
        trigger: 'type = "track" and event = "Sign Up"'
        conversion_rule: {create: {name: "Sign Up (capstan)", type: SIGN_UP}}
`

func newHarness(t *testing.T, o opts) *harness {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	h := &harness{t: t, clock: delivery.NewSkipClock(time.Now().Truncate(time.Minute).Add(time.Second))}
	sc := o.sandbox
	sc.Now = h.clock.Now
	sc.AdAccount = account
	if len(sc.Tokens) == 0 {
		sc.Tokens = []sandbox.TokenSpec{{Token: "tok", AdAccount: account}}
	}
	sb, err := sandbox.New(sc, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(func() { sb.Close(); srv.Close() })
	h.sb, h.url = sb, srv.URL

	ctx, cancel := context.WithCancel(context.Background())
	eng, err := stream.Open(ctx, stream.Config{DataDir: t.TempDir()}, log)
	if err != nil {
		t.Fatal(err)
	}
	h.eng = eng
	h.app, err = stream.NewWriter(eng, stream.WriterConfig{}, log)
	if err != nil {
		t.Fatal(err)
	}
	appDone := make(chan struct{})
	go func() { _ = h.app.Run(ctx); close(appDone) }()
	t.Cleanup(func() { cancel(); <-appDone; eng.Close() })

	if o.mappings == "" {
		o.mappings = signUpMapping
	}
	h.plan = h.compile(o.mappings)
	creds := o.creds
	if creds.AccessToken == "" && !creds.CanRefresh() {
		creds.AccessToken = "tok"
	}
	dc := h.cfg.Destinations[0]
	dc.APIBase, dc.Auth.TokenURL = srv.URL, srv.URL+"/oauth/v2/accessToken"
	dc.Auth.AccessToken, dc.Auth.RefreshToken = config.Secret(creds.AccessToken), config.Secret(creds.RefreshToken)
	dc.Auth.ClientID, dc.Auth.ClientSecret = config.Secret(creds.ClientID), config.Secret(creds.ClientSecret)
	state, err := eng.KV(context.Background(), stream.StateKV, 0)
	if err != nil {
		t.Fatal(err)
	}
	h.dest, err = New(context.Background(), Config{Destination: dc, State: state, Timeout: o.timeout, Now: h.clock.Now}, log)
	if err != nil {
		t.Fatal(err)
	}
	h.client = h.dest.Client()
	h.dc, h.state = dc, state
	if !o.serve {
		if err := h.dest.Prepare(context.Background(), h.plan); err != nil {
			t.Fatal(err)
		}
	}
	h.deps = delivery.Deps{Funnel: o.funnel, Metrics: o.metrics}
	if o.guardLocal {
		gl, err := delivery.OpenGuardLocal(delivery.GuardLocalConfig{Dir: filepath.Join(t.TempDir(), "eventids")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { gl.Close() }) // after the runner's stop (registered later)
		h.deps.GuardStore = gl
	}
	if o.graph {
		h.graph, err = identity.Open(context.Background(), eng.JetStream(), identity.Config{HashEmail: capi.HashEmail, MemoTTL: -1}, log)
		if err != nil {
			t.Fatal(err)
		}
		h.deps.Graph = h.graph
	}
	rc := o.runner
	rc.Clock = h.clock
	if o.serve {
		// Serve's token watch sleeps a minute at a time: on a skipping
		// clock that would be a busy loop racing the sandbox's clock.
		rc.Clock = realSleep{h.clock}
	}
	if rc.Linger == 0 {
		rc.Linger = 20 * time.Millisecond
	}
	h.startWith(rc, o.serve)
	return h
}

// realSleep reads the harness's clock but sleeps in real time.
type realSleep struct{ *delivery.SkipClock }

func (realSleep) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (h *harness) compile(mappings string) *delivery.Plan {
	h.t.Helper()
	text := fmt.Sprintf(`
sources: [{name: web, write_key: k}]
destinations:
  - name: li
    ad_account: %d
    auth: {access_token: tok}
    mappings:
%s`, account, mappings)
	cfg, err := config.Parse("t.yaml", []byte(text), func(string) (string, bool) { return "", false })
	if err != nil {
		h.t.Fatal(err)
	}
	h.cfg = cfg
	f, err := NewFormat(FormatConfig{})
	if err != nil {
		h.t.Fatal(err)
	}
	p, errs := delivery.NewPlan(cfg, 0, f)
	if len(errs) > 0 {
		h.t.Fatal(errs)
	}
	return p
}

// start runs a runner for h.plan until the test ends or h.stop is called.
func (h *harness) start(rc delivery.RunnerConfig) { h.startWith(rc, false) }

// startWith starts the runner with Serve when serve is set, else Run.
func (h *harness) startWith(rc delivery.RunnerConfig, serve bool) {
	ctx, cancel := context.WithCancel(context.Background())
	var err error
	if h.ledger == nil {
		if h.ledger, err = delivery.OpenLedger(context.Background(), h.eng); err != nil {
			h.t.Fatal(err)
		}
	}
	deps := h.deps
	deps.Engine, deps.Ledger = h.eng, h.ledger
	h.runner, err = delivery.NewRunner(h.plan, h.dest, rc, deps)
	if err != nil {
		h.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		run := h.runner.Run
		if serve {
			run = h.runner.Serve
		}
		if err := run(ctx); err != nil {
			h.t.Error(err)
		}
		close(done)
	}()
	var once sync.Once
	h.stop = func() { once.Do(func() { cancel(); <-done }) }
	h.t.Cleanup(h.stop)
}

// send stores events as ingest would.
func (h *harness) send(events ...string) {
	h.t.Helper()
	req := &event.Request{ReceivedAt: h.clock.Now()}
	var recs []stream.Event
	for _, raw := range events {
		ev, derr := event.Normalize([]byte(raw), "", req)
		if derr != nil {
			h.t.Fatal(derr)
		}
		recs = append(recs, stream.Event{Source: "web", Type: string(ev.Type), MessageID: ev.MessageID, Doc: ev.JSON})
	}
	for start := 0; start < len(recs); start += 1000 {
		res, err := h.app.Append(context.Background(), recs[start:min(start+1000, len(recs))])
		if err != nil {
			h.t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				h.t.Fatal(r.Err)
			}
		}
	}
}

func signUpEvent(i int, extra string) string {
	return fmt.Sprintf(`{"type":"track","event":"Sign Up","userId":"u%d","messageId":"m-%05d","properties":{"li_fat_id":"lfi-%d"%s}}`, i, i, i, extra)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) delivered() map[string]int {
	got := map[string]int{}
	for _, c := range h.sb.Conversions(sandbox.ConversionFilter{}) {
		got[c.EventID]++
	}
	return got
}

// waitDelivered waits for exactly the eventIds m-00000 … m-(n-1) minus skip.
func (h *harness) waitDelivered(n int, skip map[int]bool) {
	h.t.Helper()
	want := n - len(skip)
	eventually(h.t, 20*time.Second, fmt.Sprintf("%d conversions", want), func() bool { return len(h.delivered()) >= want })
	got := h.delivered()
	for i := range n {
		id := fmt.Sprintf("m-%05d", i)
		if skip[i] {
			if got[id] != 0 {
				h.t.Errorf("%s delivered, want not", id)
			}
			continue
		}
		if got[id] != 1 {
			h.t.Errorf("%s delivered %d times, want once", id, got[id])
		}
	}
}

func (h *harness) deadLetters(reason string) []*delivery.DeadLetter {
	h.t.Helper()
	var out []*delivery.DeadLetter
	if err := delivery.ListDeadLetters(context.Background(), h.eng, delivery.DLQFilter{Reason: reason}, func(dl *delivery.DeadLetter) error {
		out = append(out, dl)
		return nil
	}); err != nil {
		h.t.Fatal(err)
	}
	return out
}

func many(n int, extra func(i int) string) []string {
	out := make([]string, n)
	for i := range out {
		e := ""
		if extra != nil {
			e = extra(i)
		}
		out[i] = signUpEvent(i, e)
	}
	return out
}

func TestDeliverBatched(t *testing.T) {
	// A linger long enough that a loaded machine still fills the batches:
	// two flushed by count, the rest by linger.
	h := newHarness(t, opts{runner: delivery.RunnerConfig{BatchSize: 50, Linger: time.Second}})
	h.send(many(120, nil)...)
	// Events no trigger matches are acknowledged without a request.
	h.send(`{"type":"page","userId":"u","messageId":"p-1"}`, `{"type":"track","event":"Other","userId":"u","messageId":"o-1"}`)
	h.waitDelivered(120, nil)
	c := h.sb.Counters()
	if c.Batches < 3 || c.ConversionRequests > 6 {
		t.Errorf("not batched: %+v", c)
	}
	conv := h.sb.Conversions(sandbox.ConversionFilter{EventID: "m-00007"})[0]
	if !strings.Contains(string(conv.Body), `"idValue":"lfi-7"`) {
		t.Errorf("body %s", conv.Body)
	}
	eventually(t, 5*time.Second, "all events acknowledged", func() bool {
		ci, err := h.eng.JetStream().Consumer(context.Background(), stream.EventsStream, "deliver-li")
		if err != nil {
			return false
		}
		info, err := ci.Info(context.Background())
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
}

// TestDeliversAcrossIdleFetches: events are read with fetches that expire
// when idle and are renewed (consume); events stored after several renewals
// are delivered like the first ones, and at once, not after a heartbeat or
// AckWait.
func TestDeliversAcrossIdleFetches(t *testing.T) {
	h := newHarness(t, opts{runner: delivery.RunnerConfig{BatchSize: 50, FetchWait: 200 * time.Millisecond}})
	evs := many(20, nil)
	h.send(evs[:10]...)
	eventually(t, 5*time.Second, "the first 10 conversions", func() bool { return len(h.delivered()) == 10 })
	time.Sleep(700 * time.Millisecond) // a few fetches expire and are renewed
	start := time.Now()
	h.send(evs[10:]...)
	h.waitDelivered(20, nil)
	// The failure this guards against stalls delivery until two fetch
	// heartbeats are missed (10 s) or AckWait; a loaded machine takes well
	// under 8 s without it.
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("events stored after idle fetches took %s to deliver", d)
	}
}

func TestRateLimitsNeverExceeded(t *testing.T) {
	start := time.Now()
	h := newHarness(t, opts{
		sandbox:  sandbox.Config{RatePerMinute: 4},
		mappings: signUpMapping + "        fields: {enable_batching: false}\n",
		runner:   delivery.RunnerConfig{PerMinute: 4},
	})
	clock0 := h.clock.Now()
	h.send(many(18, nil)...)
	h.waitDelivered(18, nil)
	if c := h.sb.Counters(); c.RateLimited != 0 || c.ConversionRequests != 18 {
		t.Errorf("sandbox counters %+v: capstan went over LinkedIn's limit", c)
	}
	// 18 requests at 4 per aligned minute span 5 windows: at least 3 whole
	// minutes of waiting.
	if spent := h.clock.Now().Sub(clock0); spent < 3*time.Minute {
		t.Errorf("18 requests at 4/min took %s of clock time", spent)
	}
	// Without the fast-forward clock the waits take over 3 real minutes;
	// the bound is far from what a loaded CI machine needs with it.
	if time.Since(start) > 90*time.Second {
		t.Errorf("the fast-forward clock did not fast-forward")
	}
}

func TestRetriesOn429And5xxAndTimeouts(t *testing.T) {
	h := newHarness(t, opts{runner: delivery.RunnerConfig{BatchSize: 10}, timeout: 300 * time.Millisecond})
	for _, f := range []sandbox.Fault{
		{Endpoint: "conversionEvents", Action: sandbox.FaultRateLimit, Next: 3, RetryAfter: 2},
		{Endpoint: "conversionEvents", Action: sandbox.FaultStatus, Status: 503, Next: 2},
		{Endpoint: "conversionEvents", Action: sandbox.FaultStatus, Status: 500, Body: "html", Next: 1},
		{Endpoint: "conversionEvents", Action: "accept_hang", Next: 1},
		{Endpoint: "conversionEvents", Action: "hang", Next: 1},
	} {
		if _, err := h.sb.AddFault(f); err != nil {
			t.Fatal(err)
		}
	}
	h.send(many(60, nil)...)
	h.waitDelivered(60, nil)
	if c := h.sb.Counters(); c.FaultsInjected < 8 {
		t.Errorf("faults fired %d, want 8: %+v", c.FaultsInjected, c)
	}
	if dl := h.deadLetters(""); len(dl) != 0 {
		t.Errorf("dead letters: %+v", dl[0])
	}
}

func TestSplitRefusedBatchAndReplay(t *testing.T) {
	long := strings.Repeat("x", 40)
	bad := map[int]bool{5: true, 250: true, 499: true}
	h := newHarness(t, opts{
		sandbox:  sandbox.Config{EnforceFieldLengths: true},
		mappings: signUpMapping + "        fields:\n          userInfo: {firstName: {\"@path\": \"$.properties.first\"}, lastName: Doe}\n",
		runner:   delivery.RunnerConfig{BatchSize: 500, Linger: 200 * time.Millisecond},
	})
	h.send(many(500, func(i int) string {
		if bad[i] {
			return `,"first":"` + long + `"`
		}
		return `,"first":"Ann"`
	})...)
	h.waitDelivered(500, bad)
	var dls []*delivery.DeadLetter
	eventually(t, 5*time.Second, "3 dead letters", func() bool { dls = h.deadLetters(delivery.ReasonRejected); return len(dls) == 3 })
	for _, dl := range dls {
		if dl.Status != 422 || !strings.Contains(dl.Message, "firstName") || dl.Mapping != "Sign Up" || len(dl.Payload) == 0 || len(dl.Event) == 0 {
			t.Errorf("dead letter %+v", dl)
		}
	}
	// Fix the mapping, restart, replay.
	h.stop()
	h.plan = h.compile(signUpMapping + "        fields: {userInfo: null}\n")
	if err := h.dest.Prepare(context.Background(), h.plan); err != nil {
		t.Fatal(err)
	}
	h.start(delivery.RunnerConfig{Clock: h.clock, Linger: 20 * time.Millisecond})
	n, err := delivery.ReplayDeadLetters(context.Background(), h.eng, h.app, delivery.DLQFilter{Destination: "li", Reason: delivery.ReasonRejected})
	if err != nil || n != 3 {
		t.Fatalf("replayed %d: %v", n, err)
	}
	h.waitDelivered(500, nil)
	if left := h.deadLetters(""); len(left) != 0 {
		t.Errorf("DLQ not empty after replay: %d", len(left))
	}
	if c := h.sb.Counters(); c.Accepted != 500 {
		t.Errorf("accepted %d", c.Accepted)
	}
}

func TestInvalidAndExpiredGoToDLQ(t *testing.T) {
	h := newHarness(t, opts{runner: delivery.RunnerConfig{RetryMax: 24 * time.Hour}})
	// No identifier at all: refused locally, never sent.
	h.send(`{"type":"track","event":"Sign Up","userId":"u","messageId":"no-id"}`)
	eventually(t, 5*time.Second, "invalid dead letter", func() bool { return len(h.deadLetters(delivery.ReasonInvalid)) == 1 })
	dl := h.deadLetters(delivery.ReasonInvalid)[0]
	if dl.MessageID != "no-id" || !strings.Contains(dl.Message, "One of email or LinkedIn UUID") {
		t.Errorf("%+v", dl)
	}
	// LinkedIn keeps failing: the conversion is dead-lettered as expired
	// before it leaves the 90-day window, not retried forever.
	if _, err := h.sb.AddFault(sandbox.Fault{Endpoint: "conversionEvents", Action: sandbox.FaultStatus, Status: 503}); err != nil {
		t.Fatal(err)
	}
	old := h.clock.Now().Add(-89 * 24 * time.Hour).UTC().Format(time.RFC3339)
	h.send(`{"type":"track","event":"Sign Up","userId":"u","messageId":"old","timestamp":"` + old + `","properties":{"li_fat_id":"x"}}`)
	eventually(t, 10*time.Second, "expired dead letter", func() bool { return len(h.deadLetters(delivery.ReasonExpired)) == 1 })
	if dl := h.deadLetters(delivery.ReasonExpired)[0]; dl.Status != 503 || dl.Attempts < 2 {
		t.Errorf("%+v", dl)
	}
}

func TestExpiredTokenIsRefreshed(t *testing.T) {
	h := newHarness(t, opts{
		sandbox: sandbox.Config{Tokens: []sandbox.TokenSpec{{Token: "tok", AdAccount: account, RefreshToken: "rt"}}},
		creds:   capi.Credentials{AccessToken: "tok", RefreshToken: "rt", ClientID: "sandbox-client", ClientSecret: "sandbox-secret"},
	})
	h.send(many(5, nil)...)
	h.waitDelivered(5, nil)
	if !h.sb.ExpireToken("tok") {
		t.Fatal("expire")
	}
	h.send(signUpEvent(5, ""), signUpEvent(6, ""))
	h.waitDelivered(7, nil)
	if tok := h.client.Token().AccessToken; tok == "tok" {
		t.Error("token not refreshed")
	}
	if h.runner.Paused() != "" {
		t.Errorf("paused: %s", h.runner.Paused())
	}
}

func TestRevokedTokenPausesUntilANewOne(t *testing.T) {
	h := newHarness(t, opts{runner: delivery.RunnerConfig{PauseRetry: time.Hour}})
	h.send(many(3, nil)...)
	h.waitDelivered(3, nil)
	if !h.sb.RevokeToken("tok") {
		t.Fatal("revoke")
	}
	h.send(signUpEvent(3, ""), signUpEvent(4, ""))
	eventually(t, 10*time.Second, "pause", func() bool { return h.runner.Paused() != "" })
	st := h.runner.Status()
	if st.State != "paused" || !strings.Contains(st.Reason, "401") {
		t.Errorf("status %+v", st)
	}
	if len(h.delivered()) != 3 {
		t.Fatal("delivered while paused")
	}
	if err := h.sb.AddToken(sandbox.TokenSpec{Token: "tok2", AdAccount: account}); err != nil {
		t.Fatal(err)
	}
	h.client.SetAccessToken("tok2", time.Time{})
	h.runner.Resume()
	h.waitDelivered(5, nil)
	eventually(t, 5*time.Second, "unpause", func() bool { return h.runner.Paused() == "" })
}

func TestTokenExpiryWarning(t *testing.T) {
	h := newHarness(t, opts{creds: capi.Credentials{AccessToken: "tok"}})
	h.client.SetAccessToken("tok", h.clock.Now().Add(10*24*time.Hour))
	if st := h.runner.Status(); st.Warning == "" || st.TokenExpiresAt == nil {
		t.Errorf("no warning 10 days before expiry: %+v", st)
	}
	h.client.SetAccessToken("tok", h.clock.Now().Add(30*24*time.Hour))
	if st := h.runner.Status(); st.Warning != "" {
		t.Errorf("warning 30 days before expiry: %+v", st)
	}
}

func TestCookieLiFatID(t *testing.T) {
	h := newHarness(t, opts{})
	ev, derr := event.Normalize([]byte(`{"type":"track","event":"Sign Up","anonymousId":"a","messageId":"m-00000"}`), "", &event.Request{ReceivedAt: h.clock.Now()})
	if derr != nil {
		t.Fatal(derr)
	}
	if _, err := h.app.Append(context.Background(), []stream.Event{{Source: "web", Type: "track", MessageID: "m-00000", LiFatID: "from-cookie", Doc: ev.JSON}}); err != nil {
		t.Fatal(err)
	}
	h.waitDelivered(1, nil)
	body := string(h.sb.Conversions(sandbox.ConversionFilter{})[0].Body)
	if !strings.Contains(body, `"idValue":"from-cookie"`) {
		t.Errorf("body %s", body)
	}
}

// TestSlowDeliveryKeepsFetchedEventsAlive: events fetched while the
// destination is slow wait in capstan (the fetch's buffer, the conversion
// workers, the batcher's queue) several times AckWait; they are kept alive
// there (stream.Consumer.KeepAlive), so the stream delivers each once and
// no conversion is sent twice. Before, only events in the batcher's queue
// or being sent were: the others were delivered again, and a copy that
// reached the eventId guard while the first send was unanswered was sent
// again.
func TestSlowDeliveryKeepsFetchedEventsAlive(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newHarness(t, opts{metrics: delivery.NewMetrics(reg), runner: delivery.RunnerConfig{BatchSize: 10, MaxInflight: 1, Workers: 1, AckWait: 1200 * time.Millisecond}})
	if _, err := h.sb.AddFault(sandbox.Fault{Endpoint: "conversionEvents", Action: sandbox.FaultDelay, Delay: sandbox.Duration(300 * time.Millisecond), Next: 1000}); err != nil {
		t.Fatal(err)
	}
	const n = 120
	evs := many(n, nil)
	for i := range evs { // one segment per event: many messages per fetch
		h.send(evs[i])
	}
	// 12 requests of 10, one at a time, 300 ms each: the last events wait
	// ~3.6 s, three times AckWait.
	h.waitDelivered(n, nil)
	time.Sleep(1500 * time.Millisecond) // a redelivery would be read by now
	received := counterValue(t, reg, "capstan_delivery_events_total", map[string]string{"destination": "li", "outcome": "received"})
	if c := h.sb.Counters(); received != n || c.Deduplicated != 0 || c.Accepted != n {
		t.Errorf("%v events received, want %d; sandbox counters %+v", received, n, c)
	}
}

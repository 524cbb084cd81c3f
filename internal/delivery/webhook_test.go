package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/stream"
)

// A webhook destination, for tests only: it shows that a second destination
// type is an adapter (a Format and a Destination) and a configuration, and
// nothing in the runner. Each mapped event becomes a JSON object; requests
// POST JSON arrays of up to batch objects to a URL. The receiver answers
// 2xx (taken), 400 {"refused":[i,...]} (those elements refused), 413 (too
// large), 401 (credentials: pause), 429 and 5xx (retry), other 4xx
// (refused whole).
type webhook struct {
	url   string
	batch int
	hc    *http.Client
}

// webhookPayload is a webhook Format's payload value.
type webhookPayload struct {
	Body map[string]any `json:"body"`
}

func (w *webhook) DefaultFields() []byte {
	return []byte(`{"event":{"@path":"$.event"},"id":{"@path":"$.messageId"}}`)
}

func (w *webhook) Build(_ *Route, v event.Value, ids identity.Captured, _ time.Time) (Payload, error) {
	fields, _ := v.Any().(map[string]any)
	if fields["id"] == nil {
		return Payload{}, fmt.Errorf("id is required")
	}
	if ids.LiFatID != "" {
		fields["click"] = ids.LiFatID
	}
	return Payload{Value: &webhookPayload{Body: fields}}, nil
}

func (w *webhook) Requests(ps []Payload) ([]Request, error) {
	var out []Request
	for start := 0; start < len(ps); start += w.batch {
		end := min(start+w.batch, len(ps))
		var items []int
		var bodies []map[string]any
		for i := start; i < end; i++ {
			items = append(items, i)
			bodies = append(bodies, ps[i].Value.(*webhookPayload).Body)
		}
		b, err := json.Marshal(bodies)
		if err != nil {
			return nil, err
		}
		out = append(out, Request{Items: items, Value: b})
	}
	return out, nil
}

func (w *webhook) Send(ctx context.Context, req Request) Answer {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(req.Value.([]byte)))
	if err != nil {
		return Answer{Class: Refused, Message: err.Error()}
	}
	resp, err := w.hc.Do(hr)
	if err != nil {
		return Answer{Class: Retry, Err: err}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	a := Answer{Status: resp.StatusCode, Message: string(body)}
	switch s := resp.StatusCode; {
	case s < 300:
		a.Class = Accepted
	case s == 400:
		var r struct{ Refused []int }
		_ = json.Unmarshal(body, &r)
		a.Class = Split
		for _, i := range r.Refused {
			a.Refused = append(a.Refused, Refusal{Index: i, Status: 400, Message: "refused by the receiver"})
		}
	case s == 401:
		a.Class, a.PauseReason = Pause, "the receiver wants new credentials"
	case s == 413:
		a.Class = TooLarge
	case s == 429 || s >= 500:
		a.Class = Retry
	default:
		a.Class = Refused
	}
	return a
}

func (w *webhook) LimitKey() string { return "webhook:" + w.url }

// receiver is the webhook's far end: it records every element it took and
// follows a script of answers.
type receiver struct {
	mu       sync.Mutex
	took     map[string]int // id → times taken
	requests int
	script   func(n int, elems []map[string]any) (int, string) // n counts requests from 1
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var elems []map[string]any
	if err := json.NewDecoder(r.Body).Decode(&elems); err != nil {
		http.Error(w, err.Error(), http.StatusUnsupportedMediaType)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.requests++
	status, body := http.StatusOK, `{}`
	if rc.script != nil {
		status, body = rc.script(rc.requests, elems)
	}
	if status < 300 {
		for _, e := range elems {
			rc.took[fmt.Sprint(e["id"])]++
		}
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (rc *receiver) taken() map[string]int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make(map[string]int, len(rc.took))
	for k, v := range rc.took {
		out[k] = v
	}
	return out
}

// webhookEnv is an embedded engine with an appender, and a configuration
// with webhook destinations wh0, wh1, … whose mappings take "Order" tracks.
type webhookEnv struct {
	t     *testing.T
	eng   *stream.Engine
	w     *stream.Writer
	cfg   *config.Config
	clock *SkipClock
	sup   Suppressor // for the runners run starts; nil: none
	m     *Metrics   // the same
}

func newWebhookEnv(t *testing.T, dests int) *webhookEnv {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	eng, err := stream.Open(ctx, stream.Config{DataDir: t.TempDir(), Listen: "none"}, log)
	if err != nil {
		t.Fatal(err)
	}
	w, err := stream.NewWriter(eng, stream.WriterConfig{}, log)
	if err != nil {
		t.Fatal(err)
	}
	appDone := make(chan struct{})
	go func() { _ = w.Run(ctx); close(appDone) }()
	t.Cleanup(func() { cancel(); <-appDone; eng.Close() })
	var b bytes.Buffer
	b.WriteString("sources: [{name: web, write_key: k}]\ndestinations:\n")
	for i := range dests {
		fmt.Fprintf(&b, "  - name: wh%d\n    auth: {access_token: unused}\n    mappings:\n      - {name: Order, trigger: 'event = \"Order\"', conversion_rule: {id: 1}}\n", i)
	}
	cfg, err := config.Parse("t.yaml", b.Bytes(), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return &webhookEnv{t: t, eng: eng, w: w, cfg: cfg, clock: NewSkipClock(time.Now().Truncate(time.Minute).Add(time.Second))}
}

// run starts a runner for destination index of the configuration.
func (e *webhookEnv) run(index int, w *webhook, rc RunnerConfig, limits *Limits) *Runner {
	e.t.Helper()
	p, errs := NewPlan(e.cfg, index, w)
	if len(errs) > 0 {
		e.t.Fatal(errs)
	}
	rc.Clock = e.clock
	if rc.Linger == 0 {
		rc.Linger = 20 * time.Millisecond
	}
	r, err := NewRunner(p, w, rc, Deps{Engine: e.eng, Limits: limits, Suppressor: e.sup, Metrics: e.m})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		if err := r.Serve(ctx); err != nil {
			e.t.Error(err)
		}
		close(done)
	}()
	e.t.Cleanup(func() { cancel(); <-done })
	return r
}

// send stores n "Order" tracks with messageIds o-0 … o-(n-1).
func (e *webhookEnv) send(n int) {
	e.t.Helper()
	req := &event.Request{ReceivedAt: e.clock.Now()}
	var evs []stream.Event
	for i := range n {
		ev, derr := event.Normalize([]byte(`{"type":"track","event":"Order","userId":"u","messageId":"o-`+strconv.Itoa(i)+`"}`), "", req)
		if derr != nil {
			e.t.Fatal(derr)
		}
		evs = append(evs, stream.Event{Source: "web", Type: string(ev.Type), MessageID: ev.MessageID, Doc: ev.JSON})
	}
	res, err := e.w.Append(context.Background(), evs)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			e.t.Fatal(r.Err)
		}
	}
}

func (e *webhookEnv) deadLetters() []*DeadLetter {
	e.t.Helper()
	var out []*DeadLetter
	if err := ListDeadLetters(context.Background(), e.eng, DLQFilter{}, func(dl *DeadLetter) error {
		out = append(out, dl)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
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

// TestWebhookDestination drives a second destination type with the same
// runner: batches, a retry after 503, a split of refused elements, a
// request too large halved, and a pause until Resume.
func TestWebhookDestination(t *testing.T) {
	env := newWebhookEnv(t, 1)
	rcv := &receiver{took: map[string]int{}}
	authorized := false // under rcv.mu
	rcv.script = func(n int, elems []map[string]any) (int, string) {
		switch {
		case n == 1:
			return http.StatusServiceUnavailable, "busy"
		case !authorized:
			return http.StatusUnauthorized, "who are you"
		case len(elems) > 5:
			return http.StatusRequestEntityTooLarge, "too large"
		}
		var refused []int
		for i, e := range elems {
			if e["id"] == "o-7" || e["id"] == "o-11" {
				refused = append(refused, i)
			}
		}
		if refused != nil {
			b, _ := json.Marshal(map[string]any{"refused": refused})
			return http.StatusBadRequest, string(b)
		}
		return http.StatusOK, "{}"
	}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	w := &webhook{url: srv.URL, batch: 8, hc: srv.Client()}
	r := env.run(0, w, RunnerConfig{BatchSize: 20, PauseRetry: time.Hour}, nil)
	env.send(20)
	eventually(t, 10*time.Second, "the pause", func() bool { return r.Paused() != "" })
	if st := r.Status(); st.State != "paused" || st.Reason != "the receiver wants new credentials" {
		t.Errorf("status %+v", st)
	}
	if got := len(rcv.taken()); got != 0 {
		t.Errorf("%d elements taken before the credentials were fixed", got)
	}
	rcv.mu.Lock()
	authorized = true
	rcv.mu.Unlock()
	r.Resume()
	eventually(t, 10*time.Second, "18 elements taken", func() bool { return len(rcv.taken()) == 18 })
	for id, n := range rcv.taken() {
		if n != 1 || id == "o-7" || id == "o-11" {
			t.Errorf("%s taken %d times", id, n)
		}
	}
	var dls []*DeadLetter
	eventually(t, 5*time.Second, "2 dead letters", func() bool { dls = env.deadLetters(); return len(dls) == 2 })
	for _, dl := range dls {
		if dl.Reason != ReasonRejected || dl.Status != 400 || dl.Mapping != "Order" || (dl.MessageID != "o-7" && dl.MessageID != "o-11") {
			t.Errorf("dead letter %+v", dl)
		}
		var p webhookPayload
		if err := json.Unmarshal(dl.Payload, &p); err != nil || p.Body["id"] != dl.MessageID {
			t.Errorf("dead letter payload %s: %v", dl.Payload, err)
		}
	}
	if r.Paused() != "" {
		t.Errorf("still paused: %s", r.Paused())
	}
}

// TestLimitsSharedByKey runs two destinations whose requests count against
// one key (one LinkedIn token): together they stay within its per-minute
// limit, which each alone would use up. With a limit of 3 a minute, 12
// requests need four UTC minutes when the limit is shared, two if each
// destination had its own.
func TestLimitsSharedByKey(t *testing.T) {
	env := newWebhookEnv(t, 2)
	rcv := &receiver{took: map[string]int{}}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	start := env.clock.Now()
	limits := NewLimits(env.clock)
	for i := range 2 {
		w := &webhook{url: srv.URL, batch: 1, hc: srv.Client()} // same URL: same LimitKey
		env.run(i, w, RunnerConfig{PerMinute: 3}, limits)
	}
	env.send(6)
	eventually(t, 10*time.Second, "12 requests", func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return rcv.requests == 12
	})
	if spent := env.clock.Now().Sub(start); spent < 2*time.Minute {
		t.Errorf("12 requests within %s at 3 a minute shared", spent)
	}
}

package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/linkedin"
	"github.com/capstan-gw/capstan/internal/privacy"
	"github.com/capstan-gw/capstan/internal/stats"
	"github.com/capstan-gw/capstan/internal/stream"
)

const (
	testToken = "s3cret"
	operator  = "Bearer " + testToken
)

var discard = slog.New(slog.DiscardHandler)

// openEngine starts an embedded engine in a temporary directory.
func openEngine(t testing.TB) *stream.Engine {
	t.Helper()
	eng, err := stream.Open(context.Background(), stream.Config{DataDir: t.TempDir()}, discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	return eng
}

// fakeDest is a Destination that records the tokens installed.
type fakeDest struct {
	name string
	err  error // InstallToken's

	mu     sync.Mutex
	tokens []string
	exp    time.Time
}

func (d *fakeDest) Name() string { return d.name }

func (d *fakeDest) Status() delivery.Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := delivery.Status{Destination: d.name, State: "paused", Reason: "access token revoked"}
	if len(d.tokens) > 0 {
		st.State, st.Reason = "delivering", ""
	}
	if !d.exp.IsZero() {
		exp := d.exp
		st.TokenExpiresAt = &exp
	}
	return st
}

func (d *fakeDest) Info(context.Context) DestinationInfo {
	return DestinationInfo{Type: "linkedin", AdAccount: 512345678,
		Rules:     []Rule{{Mapping: "Sign Up", RuleID: "22833300", Created: true, Name: "Sign Up (capstan)", Type: "SIGN_UP", Campaigns: []int64{7}, CampaignsAssociated: true}},
		RateLimit: delivery.RateUsage{Key: "0a1b2c3d", Minute: 600, PerMinute: 600, Day: 12, PerDay: 300000},
		Retrying:  &delivery.Retrying{Since: time.Now().Add(-time.Minute), Status: 503, Message: "busy"}}
}

func (d *fakeDest) InstallToken(_ context.Context, accessToken string, expiresAt time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil && !errors.Is(d.err, ErrTokenNotSaved) {
		return d.err
	}
	d.tokens = append(d.tokens, accessToken)
	d.exp = expiresAt
	return d.err
}

func (d *fakeDest) installed() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.tokens...)
}

// previewCall is what the fake previewer was asked.
type previewCall struct {
	events              string
	source, destination string
}

// env is an admin Server on a real engine and identity graph, with fake
// destinations and previewer.
type env struct {
	s     *Server
	eng   *stream.Engine
	w     *stream.Writer
	graph *identity.Graph
	sup   *privacy.Suppressions
	stats *stats.Collector
	dests map[string]*fakeDest

	mu       sync.Mutex
	previews []previewCall
	// gate, when set, holds the console's imports after their first
	// bytes until it is closed or the import's context ends.
	gate chan int
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvConfig(t, Config{Token: config.Secret(testToken)})
}

// newEnvConfig is newEnv with the admin configuration cfg.
func newEnvConfig(t testing.TB, cfg Config) *env {
	t.Helper()
	eng := openEngine(t)
	g, err := identity.Open(context.Background(), eng.JetStream(), identity.Config{HashEmail: linkedin.HashEmail}, discard)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{eng: eng, graph: g, dests: map[string]*fakeDest{
		"linkedin": {name: "linkedin"},
		"unsaved":  {name: "unsaved", err: fmt.Errorf("%w: state bucket: timeout", ErrTokenNotSaved)},
		"broken":   {name: "broken", err: errors.New("client closed")},
	}}
	w, err := stream.NewWriter(eng, stream.WriterConfig{}, discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	e.w = w
	deps := Deps{
		Identity:    g,
		DeadLetters: EngineDeadLetters{Engine: eng, Writer: w},
		Events:      EngineEvents{Engine: eng},
		Preview: PreviewFunc(func(_ context.Context, events json.RawMessage, source, dest string) (any, bool, error) {
			e.mu.Lock()
			e.previews = append(e.previews, previewCall{string(events), source, dest})
			e.mu.Unlock()
			if bytes.Contains(events, []byte("unparsable")) {
				return nil, false, errors.New("event 0: not a JSON event")
			}
			return map[string]any{"requests": []any{}, "events": json.RawMessage(events)}, bytes.Contains(events, []byte("bad")), nil
		}),
	}
	sup, err := privacy.OpenSuppressions(context.Background(), eng, privacy.SuppressionConfig{HashEmail: linkedin.HashEmail})
	if err != nil {
		t.Fatal(err)
	}
	e.sup = sup
	if deps.Privacy, err = privacy.NewDeleter(eng, g, sup, linkedin.HashEmail, discard); err != nil {
		t.Fatal(err)
	}
	deps.Audit = EngineAudit{Engine: eng}
	if e.stats, err = stats.Open(context.Background(), eng, stats.Config{}, discard); err != nil {
		t.Fatal(err)
	}
	deps.Stats = e.stats
	for _, name := range []string{"linkedin", "unsaved", "broken"} {
		deps.Destinations = append(deps.Destinations, e.dests[name])
	}
	deps.Import = e.importer()
	if cfg.ImportDir == "" {
		cfg.ImportDir = t.TempDir()
	}
	e.s, err = New(cfg, deps, discard)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// answer is an HTTP answer.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request to h, with auth as the Authorization header when not
// "". The request's context ends when do returns, as a server's does.
func do(t testing.TB, h http.Handler, method, target, auth, body string) answer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, method, target, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	a := answer{rec.Code, rec.Header(), rec.Body.Bytes()}
	if ct := a.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("%s %s: Content-Type %q", method, target, ct)
	}
	if cc := a.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("%s %s: Cache-Control %q", method, target, cc)
	}
	return a
}

func (e *env) do(t testing.TB, method, target, body string) answer {
	t.Helper()
	return do(t, e.s, method, target, operator, body)
}

// wantError fails t unless a is the one error format with status, code and
// a message holding fragment.
func wantError(t testing.TB, a answer, status int, code, fragment string) {
	t.Helper()
	var got errorBody
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Errorf("error body %s: %v", a.body, err)
		return
	}
	if a.status != status || got.Error.Code != code || !strings.Contains(got.Error.Message, fragment) {
		t.Errorf("got %d %s, want %d %s with %q", a.status, a.body, status, code, fragment)
	}
}

// decodeAnswer decodes a 200 answer's body into v.
func decodeAnswer(t testing.TB, a answer, v any) {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("body %s: %v", a.body, err)
	}
}

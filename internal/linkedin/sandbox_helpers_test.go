package linkedin

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/sandbox"
)

// Seeded sandbox world (docs/sandbox.md).
const (
	sbAccount      int64 = 508747394
	sbViewerAcct   int64 = 508700001
	sbRule               = "22833300"
	sbInsightRule        = "1403456"
	sbToken              = "test-access-token"
	sbRefresh            = "test-refresh-token"
	sbClientID           = sandbox.DefaultClientID
	sbClientSecret       = sandbox.DefaultClientSecret
)

// testClock is a settable clock shared by the sandbox and the client.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// env is one sandbox served over HTTP and the clock it runs on.
type env struct {
	srv   *sandbox.Server
	ts    *httptest.Server
	clock *testClock
	logs  *syncBuffer
}

// syncBuffer collects log output from concurrent senders.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newEnv starts a sandbox on the spec's clock with one access token
// (sbToken, refresh token sbRefresh) and no per-minute limit on the
// non-event endpoints; mod adjusts the config.
func newEnv(tb testing.TB, mod func(*sandbox.Config)) *env {
	tb.Helper()
	clock := &testClock{t: specNow}
	cfg := sandbox.Config{
		Now:                clock.Now,
		Tokens:             []sandbox.TokenSpec{{Token: sbToken, RefreshToken: sbRefresh}},
		OtherRatePerMinute: -1,
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := sandbox.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	tb.Cleanup(ts.Close)
	tb.Cleanup(srv.Close) // runs first: releases hung requests
	return &env{srv: srv, ts: ts, clock: clock, logs: &syncBuffer{}}
}

// config returns a client config for the sandbox with refresh credentials.
func (e *env) config() ClientConfig {
	return ClientConfig{
		APIBase:       e.ts.URL,
		OAuthTokenURL: e.ts.URL + "/oauth/v2/accessToken",
		Credentials: Credentials{
			AccessToken:  sbToken,
			RefreshToken: sbRefresh,
			ClientID:     sbClientID,
			ClientSecret: sbClientSecret,
		},
		Timeout: 5 * time.Second,
		Now:     e.clock.Now,
	}
}

// client builds a Client for cfg whose debug log goes to e.logs.
func (e *env) client(tb testing.TB, cfg ClientConfig) *Client {
	tb.Helper()
	hc := NewHTTPClient(cfg.Timeout)
	tb.Cleanup(hc.CloseIdleConnections)
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := NewClient(cfg, hc, log)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// requests returns the logged requests to endpoint.
func (e *env) requests(endpoint string) []sandbox.RequestRecord {
	var out []sandbox.RequestRecord
	for _, r := range e.srv.Requests() {
		if r.Endpoint == endpoint {
			out = append(out, r)
		}
	}
	return out
}

func (e *env) addFault(tb testing.TB, f sandbox.Fault) {
	tb.Helper()
	if _, err := e.srv.AddFault(f); err != nil {
		tb.Fatal(err)
	}
}

// conversion builds a valid conversion for rule at the spec clock, n
// minutes before now, identified by li_fat_id.
func conversion(tb testing.TB, rule string, n int) Conversion {
	tb.Helper()
	c, err := BuildConversion(map[string]any{
		FieldConversionHappenedAt: strconv.FormatInt(specNow.Add(-time.Duration(n+1)*time.Minute).UnixMilli(), 10),
		FieldEventID:              fmt.Sprintf("evt-%d", n),
		FieldLinkedInUUID:         fmt.Sprintf("fat-%d", n),
	}, rule, specNow)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func conversions(tb testing.TB, n int) []Conversion {
	tb.Helper()
	cs := make([]Conversion, n)
	for i := range cs {
		cs[i] = conversion(tb, sbRule, i)
	}
	return cs
}

func singleRequest(tb testing.TB, c Conversion) Request {
	tb.Helper()
	r, err := NewSingleRequest(RequestConfig{}, &c)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func batchRequest(tb testing.TB, cs []Conversion) Request {
	tb.Helper()
	rs, err := NewBatchRequests(RequestConfig{}, cs, 0)
	if err != nil || len(rs) != 1 {
		tb.Fatalf("NewBatchRequests: %d requests, %v", len(rs), err)
	}
	return rs[0]
}

package sandbox

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// specNow is the clock of the spec's examples: 2026-01-01T00:00:00Z.
var specNow = time.UnixMilli(1767225600000).UTC()

const (
	tok        = "test-token"
	viewerTok  = "viewer-token" // member V1: VIEWER on the main account
	noScopeTok = "ads-only-token"
	ruleURNStr = "urn:lla:llaPartnerConversion:22833300"
	emailHash  = "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"
)

// fakeClock is a settable clock for Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

type harness struct {
	t     testing.TB
	srv   *Server
	ts    *httptest.Server
	clock *fakeClock
}

// newHarness starts the sandbox handler on an httptest server with the
// spec's clock and the test tokens.
func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	clock := &fakeClock{t: specNow}
	if cfg.Now == nil {
		cfg.Now = clock.Now
	}
	cfg.Tokens = append(cfg.Tokens,
		TokenSpec{Token: tok, RefreshToken: "test-refresh"},
		TokenSpec{Token: viewerTok, Member: "V1", Role: "VIEWER"},
		TokenSpec{Token: noScopeTok, Scopes: []string{"r_ads"}},
	)
	srv, err := New(cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		srv.Close()
		ts.Close()
	})
	return &harness{t: t, srv: srv, ts: ts, clock: clock}
}

type resp struct {
	status int
	header http.Header
	body   string
}

// restHeaders are the headers capstan's client sends on /rest calls.
func restHeaders(token string) map[string]string {
	return map[string]string{
		"Authorization":             "Bearer " + token,
		"LinkedIn-Version":          "202609",
		"X-Restli-Protocol-Version": "2.0.0",
		"Content-Type":              "application/json",
	}
}

// do sends a request; a header value "-" removes that header.
func (h *harness) do(method, path string, headers map[string]string, body string) resp {
	h.t.Helper()
	req, err := http.NewRequest(method, h.ts.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range headers {
		if v != "-" {
			req.Header.Set(k, v)
		}
	}
	res, err := h.ts.Client().Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: string(b)}
}

// merge returns base with over applied.
func merge(base, over map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

func (h *harness) sendEvent(token, body string) resp {
	h.t.Helper()
	return h.do("POST", "/rest/conversionEvents", restHeaders(token), body)
}

func (h *harness) sendBatch(token string, elems ...string) resp {
	h.t.Helper()
	hd := merge(restHeaders(token), map[string]string{"X-RestLi-Method": "BATCH_CREATE"})
	return h.do("POST", "/rest/conversionEvents", hd, `{"elements":[`+strings.Join(elems, ",")+`]}`)
}

// ev builds a valid event with a li_fat_id identity, at now-1d unless at is
// given, with the given eventId ("" for none).
func ev(eventID string, at ...int64) string {
	t := specNow.UnixMilli() - 86_400_000
	if len(at) > 0 {
		t = at[0]
	}
	id := ""
	if eventID != "" {
		id = fmt.Sprintf(`,"eventId":%q`, eventID)
	}
	return fmt.Sprintf(`{"conversion":%q,"conversionHappenedAt":%d%s,"user":{"userIds":[{"idType":"LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID","idValue":"123456"}]}}`,
		ruleURNStr, t, id)
}

func wantStatus(t testing.TB, r resp, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
}

func wantBody(t testing.TB, r resp, body string) {
	t.Helper()
	if r.body != body {
		t.Fatalf("body =\n%s\nwant\n%s", r.body, body)
	}
}

// eventually polls fn until it is true or d passes.
func eventually(t testing.TB, d time.Duration, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
}

func readFileIfExists(p string) ([]byte, error) { return os.ReadFile(p) }

// newTestServerFor serves srv's handler on an httptest server closed at the
// end of the test.
func newTestServerFor(t testing.TB, srv *Server) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		srv.Close()
		ts.Close()
	})
	return ts
}

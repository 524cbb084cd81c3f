package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/stream"
)

const testConfig = `
server:
  trusted_proxies: [127.0.0.1]
sources:
  - name: website
    write_key: wk_web
    allowed_origins: ["HTTPS://www.Example.com:443/"]
  - name: backend
    write_keys: [wk_back, wk_back2]
  - name: old
    write_key: wk_old
    disabled: true
  - name: limited
    write_key: wk_lim
    rate_limit: {requests_per_second: 0.001, burst: 1}
`

type env struct {
	t   *testing.T
	srv *httptest.Server
	h   *Handler
	eng *stream.Engine
	reg *prometheus.Registry
}

func newEnv(t *testing.T, cfgText string, store Appender) *env {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(cfgText), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t}
	if store == nil {
		ctx, cancel := context.WithCancel(context.Background())
		eng, err := stream.Open(ctx, stream.Config{DataDir: t.TempDir()}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		dd, err := stream.OpenDedup(ctx, eng, stream.DedupConfig{Dir: t.TempDir()}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		app, err := stream.NewWriter(eng, stream.WriterConfig{Dedup: dd}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = app.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done; _ = dd.Close(); eng.Close() })
		e.eng, store = eng, app
	}
	e.reg = prometheus.NewRegistry()
	h, err := New(cfg, Options{Store: store, Registry: e.reg})
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

func basic(key string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(key)) }

type resp struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (e *env) do(method, path, body string, hdr ...string) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return e.send(req)
}

func (e *env) send(req *http.Request) resp {
	e.t.Helper()
	res, err := http.DefaultTransport.RoundTrip(req) // no redirects followed, ever
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, header: res.Header, raw: string(b)}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &r.body); err != nil {
			e.t.Fatalf("body is not JSON: %q", b)
		}
	}
	return r
}

// stored returns every stored event document, oldest first.
func (e *env) stored() []map[string]any {
	e.t.Helper()
	var out []map[string]any
	err := e.eng.ReadEvents(context.Background(), stream.ReadOptions{}, func(m stream.Stored) error {
		var doc map[string]any
		if err := json.Unmarshal(m.Doc, &doc); err != nil {
			return err
		}
		// The event's source and type, as the subject of its own message
		// said before segments (events.<source>.seg now).
		doc["_subject"] = "events." + m.Source + "." + m.Type
		out = append(out, doc)
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func TestPathsAndTypes(t *testing.T) {
	e := newEnv(t, testConfig, nil)
	paths := map[string]string{
		"/v1/track": "track", "/v1/page": "page", "/v1/identify": "identify", "/v1/group": "group",
		"/v1/alias": "alias", "/v1/screen": "screen", "/v1/t": "track", "/v1/p": "page", "/v1/i": "identify",
		"/v1/g": "group", "/v1/a": "alias", "/v1/s": "screen", "/v1/track/": "track", "/v1/t/": "track",
	}
	n := 0
	for path, typ := range paths {
		body := fmt.Sprintf(`{"type":"page","userId":"u","previousId":"p","groupId":"g","event":"E","messageId":"m-%d"}`, n)
		r := e.do("POST", path+"?ignored=1", body, "Authorization", basic("wk_back:"), "Content-Type", "text/plain")
		if r.status != 200 || r.raw != "{\"success\":true}\n" {
			t.Errorf("%s: %d %s", path, r.status, r.raw)
		}
		n++
		docs := e.stored()
		if got := docs[len(docs)-1]; got["type"] != typ || got["_subject"] != "events.backend."+typ {
			t.Errorf("%s: stored type %v subject %v", path, got["type"], got["_subject"])
		}
	}
	for _, path := range []string{"/v1/batch", "/v1/import", "/v1/b", "/v1/batch/", "/v1/import/", "/v1/b/"} {
		r := e.do("POST", path, `{"batch":[{"type":"track","event":"E","userId":"u"}]}`, "Authorization", basic("wk_back:"))
		if r.status != 200 {
			t.Errorf("%s: %d %s", path, r.status, r.raw)
		}
	}
	if got := len(e.stored()); got != n+6 {
		t.Errorf("stored %d events, want %d", got, n+6)
	}
}

func TestRequestErrors(t *testing.T) {
	e := newEnv(t, testConfig, nil)
	auth := []string{"Authorization", basic("wk_back:")}
	big := `{"batch":[],"pad":"` + strings.Repeat("x", 512001) + `"}`
	tests := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		code                     string
	}{
		{"invalid json", "POST", "/v1/track", `{"userId":`, auth, 400, "invalid_json"},
		{"empty body", "POST", "/v1/track", ``, auth, 400, "invalid_json"},
		{"array body", "POST", "/v1/batch", `[1]`, auth, 400, "invalid_body"},
		{"batch missing", "POST", "/v1/batch", `{}`, auth, 400, "invalid_batch"},
		{"batch not array", "POST", "/v1/b", `{"batch":"x"}`, auth, 400, "invalid_batch"},
		{"request too large", "POST", "/v1/batch", big, auth, 400, "payload_too_large"},
		{"single event too large", "POST", "/v1/track", `{"userId":"u","event":"E","p":"` + strings.Repeat("x", 32768) + `"}`, auth, 400, "event_too_large"},
		{"too many items", "POST", "/v1/batch", `{"batch":[` + strings.Repeat(`{},`, 2500) + `{}]}`, auth, 400, "too_many_items"},
		{"unknown encoding", "POST", "/v1/track", `{}`, append([]string{"Content-Encoding", "br"}, auth...), 415, "unsupported_encoding"},
		{"bad gzip", "POST", "/v1/track", `not gzip`, append([]string{"Content-Encoding", "gzip"}, auth...), 400, "invalid_json"},
		{"no write key", "POST", "/v1/track", `{"userId":"u","event":"E"}`, nil, 401, "missing_write_key"},
		{"bearer is not a key", "POST", "/v1/track", `{"userId":"u","event":"E"}`, []string{"Authorization", "Bearer abc"}, 401, "missing_write_key"},
		{"undecodable basic", "POST", "/v1/track", `{"userId":"u","event":"E"}`, []string{"Authorization", "Basic !!!"}, 401, "missing_write_key"},
		{"unknown write key", "POST", "/v1/track", `{"userId":"u","event":"E"}`, []string{"Authorization", basic("nope:")}, 401, "invalid_write_key"},
		{"disabled source", "POST", "/v1/track", `{"userId":"u","event":"E","writeKey":"wk_old"}`, nil, 403, "source_disabled"},
		{"origin not allowed", "POST", "/v1/t", `{"userId":"u","event":"E"}`, []string{"Authorization", basic("wk_web:"), "Origin", "https://evil.example"}, 403, "origin_not_allowed"},
		{"unknown path", "POST", "/v1/purchase", `{}`, auth, 404, "not_found"},
		{"wrong method", "GET", "/v1/track", ``, auth, 405, "method_not_allowed"},
		{"wrong method short path", "PUT", "/v1/b/", ``, auth, 405, "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := tt.hdr
			if tt.name != "origin not allowed" {
				hdr = append(hdr, "Origin", "https://www.example.com")
			}
			r := e.do(tt.method, tt.path, tt.body, hdr...)
			if r.status != tt.status || r.body["code"] != tt.code || r.body["success"] != false || r.body["message"] == "" {
				t.Fatalf("got %d %s, want %d %s", r.status, r.raw, tt.status, tt.code)
			}
			if r.header.Get("Access-Control-Allow-Origin") == "" || r.header.Get("Access-Control-Expose-Headers") != "Retry-After, X-RateLimit-Reset" {
				t.Errorf("CORS headers missing on %d: %v", r.status, r.header)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
			if tt.status == 405 && r.header.Get("Allow") != "POST, OPTIONS" {
				t.Errorf("Allow = %q", r.header.Get("Allow"))
			}
		})
	}
	if n := len(e.stored()); n != 0 {
		t.Errorf("refused requests stored %d events", n)
	}
}

func TestWriteKeyResolution(t *testing.T) {
	e := newEnv(t, testConfig, nil)
	ev := `{"userId":"u","event":"E"}`
	tests := []struct {
		name, path, body string
		hdr              []string
	}{
		{"basic with colon", "/v1/track", ev, []string{"Authorization", basic("wk_back:")}},
		{"basic without colon", "/v1/track", ev, []string{"Authorization", basic("wk_back")}},
		{"basic unpadded", "/v1/track", ev, []string{"Authorization", "Basic " + base64.RawStdEncoding.EncodeToString([]byte("wk_back2:x"))}},
		{"body key", "/v1/track", `{"userId":"u","event":"E","writeKey":"wk_back"}`, nil},
		{"bearer falls back to body", "/v1/track", `{"userId":"u","event":"E","writeKey":"wk_back"}`, []string{"Authorization", "Bearer t"}},
		{"header wins over body", "/v1/track", `{"userId":"u","event":"E","writeKey":"wrong"}`, []string{"Authorization", basic("wk_back:")}},
		{"envelope key", "/v1/batch", `{"writeKey":"wk_back","batch":[` + ev + `]}`, nil},
		{"first item key", "/v1/batch", `{"batch":[{"type":"track","userId":"u","event":"E","writeKey":"wk_back"}]}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := e.do("POST", tt.path, tt.body, tt.hdr...); r.status != 200 {
				t.Fatalf("got %d %s", r.status, r.raw)
			}
		})
	}
	for _, d := range e.stored() {
		if _, ok := d["writeKey"]; ok {
			t.Errorf("writeKey stored: %v", d)
		}
	}
}

func TestPreflight(t *testing.T) {
	e := newEnv(t, testConfig, nil)
	for _, path := range []string{"/v1/t", "/v1/batch/", "/v1/m", "/v1/projects/wk_web/settings"} {
		r := e.do("OPTIONS", path, "", "Origin", "https://evil.example", "Access-Control-Request-Method", "POST",
			"Access-Control-Request-Headers", "authorization,content-type,anonymousid,x-retry-count")
		if r.status != 204 || r.raw != "" {
			t.Fatalf("%s: %d %q", path, r.status, r.raw)
		}
		h := r.header
		want := map[string]string{
			"Access-Control-Allow-Methods": "GET, POST, OPTIONS",
			"Access-Control-Allow-Headers": "Authorization, Content-Type, Content-Encoding, X-Retry-Count, anonymousid",
			"Access-Control-Max-Age":       "7200",
			"Vary":                         "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
		}
		if path != "/v1/projects/wk_web/settings" {
			want["Access-Control-Allow-Origin"] = "https://evil.example"
			want["Access-Control-Allow-Credentials"] = "true"
		}
		for k, v := range want {
			if h.Get(k) != v {
				t.Errorf("%s: %s = %q, want %q", path, k, h.Get(k), v)
			}
		}
	}
	r := e.do("POST", "/v1/t", `{"userId":"u","event":"E"}`)
	if r.header.Get("Access-Control-Allow-Origin") != "*" || r.header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("no Origin: %v", r.header)
	}
}

func TestPerEventDrops(t *testing.T) {
	e := newEnv(t, testConfig, nil)
	bigItem := `{"type":"track","event":"E","userId":"u","p":"` + strings.Repeat("x", 32768) + `"}`
	body := `{"batch":[{"type":"track","event":"A","userId":"u","messageId":"ok1"},` + bigItem +
		`,{"type":"purchase","userId":"u","messageId":"bad1"},{"type":"track","userId":"u"},"str",` +
		`{"type":"track","event":"B","anonymousId":"a","messageId":"ok2"}],"context":{"library":{"name":"analytics-go"}}}`
	r := e.do("POST", "/v1/batch", body, "Authorization", basic("wk_back:"))
	if r.status != 200 || r.body["success"] != true || r.body["accepted"] != 2.0 || r.body["dropped"] != 4.0 {
		t.Fatalf("got %d %s", r.status, r.raw)
	}
	errs := r.body["errors"].([]any)
	want := []string{"1:event_too_large", "2:invalid_type", "3:missing_event", "4:invalid_event"}
	for i, w := range want {
		got := errs[i].(map[string]any)
		if fmt.Sprintf("%v:%v", got["index"], got["code"]) != w {
			t.Errorf("errors[%d] = %v, want %s", i, got, w)
		}
	}
	if errs[1].(map[string]any)["messageId"] != "bad1" {
		t.Errorf("messageId not reported: %v", errs[1])
	}
	docs := e.stored()
	if len(docs) != 2 || docs[0]["messageId"] != "ok1" || docs[1]["messageId"] != "ok2" {
		t.Fatalf("stored %v", docs)
	}
	lib := docs[1]["context"].(map[string]any)["library"].(map[string]any)
	if lib["name"] != "analytics-go" {
		t.Errorf("envelope context not merged: %v", docs[1])
	}
	// A single invalid event still gets 200 with the drop reported (§1.5).
	r = e.do("POST", "/v1/track", `{"event":"E","messageId":"m-0001"}`, "Authorization", basic("wk_back:"))
	if r.status != 200 || r.raw != `{"success":true,"accepted":0,"dropped":1,"errors":[{"index":0,"messageId":"m-0001","code":"missing_identity","message":"userId or anonymousId is required"}]}`+"\n" {
		t.Errorf("got %d %s", r.status, r.raw)
	}
}

// TestNestingLimit: an event nested deeper than event.MaxDepth is dropped
// at ingest with event_too_deep and reported in the 200 body, like any
// invalid event; the rest of its batch is stored. (Ingest used to store
// events up to 10,000 levels deep, which delivery could not parse.)
func TestNestingLimit(t *testing.T) {
	e := newEnv(t, testConfig, nil)
	auth := []string{"Authorization", basic("wk_back:")}
	// deep nests depth levels: the event, its properties, then arrays.
	deep := func(depth int, id string) string {
		return `{"type":"track","userId":"u","event":"E","messageId":"` + id + `","properties":{"a":` +
			strings.Repeat("[", depth-2) + strings.Repeat("]", depth-2) + `}}`
	}
	want := 0 // events stored
	for _, depth := range []int{event.MaxDepth + 1, 1001, 10000} {
		id := fmt.Sprint("deep-", depth)
		r := e.do("POST", "/v1/track", deep(depth, id), auth...)
		if r.status != 200 || r.body["accepted"] != 0.0 || r.body["dropped"] != 1.0 {
			t.Fatalf("depth %d, single: got %d %.300s", depth, r.status, r.raw)
		}
		got := r.body["errors"].([]any)[0].(map[string]any)
		if got["code"] != event.CodeEventTooDeep || !strings.Contains(got["message"].(string), fmt.Sprintf("nests %d levels", depth)) {
			t.Errorf("depth %d, single: error %v", depth, got)
		}
		r = e.do("POST", "/v1/batch", `{"batch":[{"type":"track","userId":"u","event":"E","messageId":"ok-`+id+`"},`+deep(depth, id)+`]}`, auth...)
		if r.status != 200 || r.body["accepted"] != 1.0 || r.body["dropped"] != 1.0 {
			t.Fatalf("depth %d, batch: got %d %.300s", depth, r.status, r.raw)
		}
		got = r.body["errors"].([]any)[0].(map[string]any)
		if got["index"] != 1.0 || got["code"] != event.CodeEventTooDeep {
			t.Errorf("depth %d, batch: error %v", depth, got)
		}
		want++
	}
	// At the limit, an event is stored.
	if r := e.do("POST", "/v1/track", deep(event.MaxDepth, "at-limit"), auth...); r.status != 200 || r.raw != "{\"success\":true}\n" {
		t.Errorf("depth %d: got %d %s", event.MaxDepth, r.status, r.raw)
	}
	want++
	docs := e.stored()
	if len(docs) != want {
		t.Fatalf("stored %d events, want %d", len(docs), want)
	}
	for _, d := range docs {
		if id := d["messageId"].(string); strings.HasPrefix(id, "deep-") {
			t.Errorf("stored %s", id)
		}
	}
}

func TestDeduplication(t *testing.T) {
	e := newEnv(t, testConfig, nil)
	ev := `{"type":"track","event":"E","userId":"u","messageId":"dup-1"}`
	r := e.do("POST", "/v1/batch", `{"batch":[`+ev+`,`+ev+`,{"type":"page","userId":"u","messageId":"dup-2"}]}`, "Authorization", basic("wk_back:"))
	if r.status != 200 || r.body["accepted"] != 2.0 || r.body["duplicates"] != 1.0 {
		t.Fatalf("in-batch duplicate: %s", r.raw)
	}
	// A retry overlapping a stored batch in part: the de-duplication index
	// answers the stored events as duplicates, the new one is stored.
	r = e.do("POST", "/v1/batch", `{"batch":[`+ev+`,{"type":"page","userId":"u","messageId":"dup-2"},{"type":"page","userId":"u","messageId":"new-3"}]}`, "Authorization", basic("wk_back:"))
	if r.status != 200 || r.body["accepted"] != 1.0 || r.body["duplicates"] != 2.0 {
		t.Fatalf("retried batch: %s", r.raw)
	}
	// Same messageId from another source is another event.
	if r = e.do("POST", "/v1/track", ev, "Authorization", basic("wk_web:")); r.raw != "{\"success\":true}\n" {
		t.Fatalf("other source: %s", r.raw)
	}
	var ids []string
	for _, d := range e.stored() {
		ids = append(ids, fmt.Sprint(d["messageId"]))
	}
	if got := strings.Join(ids, ","); got != "dup-1,dup-2,new-3,dup-1" {
		t.Errorf("stored %s", got)
	}
}

func TestGzip(t *testing.T) {
	e := newEnv(t, testConfig, nil)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write([]byte(`{"batch":[{"type":"track","event":"Zipped","userId":"u"}]}`))
	_ = zw.Close()
	r := e.do("POST", "/v1/batch", buf.String(), "Authorization", basic("wk_back:"), "Content-Encoding", "GZIP")
	if r.status != 200 {
		t.Fatalf("gzip: %d %s", r.status, r.raw)
	}
	// A bomb: 100 MB of zeros compress to ~100 KB; decompression stops at the limit.
	buf.Reset()
	zw = gzip.NewWriter(&buf)
	zeros := make([]byte, 1<<20)
	for range 100 {
		_, _ = zw.Write(zeros)
	}
	_ = zw.Close()
	r = e.do("POST", "/v1/batch", buf.String(), "Authorization", basic("wk_back:"), "Content-Encoding", "gzip")
	if r.status != 400 || r.body["code"] != "payload_too_large" {
		t.Fatalf("bomb: %d %s", r.status, r.raw)
	}
}

func TestSettings(t *testing.T) {
	e := newEnv(t, testConfig, nil)
	r := e.do("GET", "/v1/projects/wk_web/settings", "", "Origin", "https://www.example.com")
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("got %d %v %s", r.status, r.header, r.raw)
	}
	// Without public_url the document comes from the Host header: no
	// cache may keep it.
	if cc, vary := r.header.Get("Cache-Control"), r.header.Get("Vary"); cc != "private, no-store" || !strings.Contains(vary, "Host") {
		t.Errorf("derived from Host: Cache-Control %q, Vary %q; want private, no-store and Vary: Host", cc, vary)
	}
	integ := r.body["integrations"].(map[string]any)
	seg := integ["Segment.io"].(map[string]any)
	host := strings.TrimPrefix(e.srv.URL, "http://")
	if len(integ) != 1 || seg["apiKey"] != "wk_web" || seg["apiHost"] != host+"/v1" || seg["protocol"] != "http" {
		t.Errorf("settings: %s", r.raw)
	}
	if m := r.body["metrics"].(map[string]any); m["sampleRate"] != 0.0 || m["host"] != host+"/v1" {
		t.Errorf("metrics: %v", m)
	}
	if len(r.body["remotePlugins"].([]any)) != 0 || r.body["legacyVideoPluginsEnabled"] != false {
		t.Errorf("plugins: %s", r.raw)
	}
	// Behind a trusted proxy, X-Forwarded-Host and -Proto are believed.
	r = e.do("GET", "/v1/projects/wk_web/settings/", "", "X-Forwarded-Host", "ingest.example.com", "X-Forwarded-Proto", "https")
	seg = r.body["integrations"].(map[string]any)["Segment.io"].(map[string]any)
	if seg["apiHost"] != "ingest.example.com/v1" || seg["protocol"] != "https" {
		t.Errorf("forwarded: %v", seg)
	}
	for _, key := range []string{"nope", "wk_old"} {
		if r := e.do("GET", "/v1/projects/"+key+"/settings", ""); r.status != 404 || r.body["code"] != "invalid_write_key" {
			t.Errorf("%s: %d %s", key, r.status, r.raw)
		}
	}
}

// TestSettingsPublicURL: with server.public_url the apiHost is that URL's,
// whatever the request's Host or X-Forwarded-Host says, and the document
// may be cached briefly.
func TestSettingsPublicURL(t *testing.T) {
	e := newEnv(t, strings.Replace(testConfig, "server:\n", "server:\n  public_url: https://t.example.com/capstan/\n", 1), okStore{})
	for _, hdr := range [][]string{nil, {"X-Forwarded-Host", "evil.example", "X-Forwarded-Proto", "http"}} {
		r := e.do("GET", "/v1/projects/wk_web/settings", "", hdr...)
		if r.status != 200 {
			t.Fatalf("got %d %s", r.status, r.raw)
		}
		seg := r.body["integrations"].(map[string]any)["Segment.io"].(map[string]any)
		if seg["apiHost"] != "t.example.com/capstan/v1" || seg["protocol"] != "https" {
			t.Errorf("%v: apiHost %v, protocol %v; want t.example.com/capstan/v1, https", hdr, seg["apiHost"], seg["protocol"])
		}
		if m := r.body["metrics"].(map[string]any); m["host"] != "t.example.com/capstan/v1" {
			t.Errorf("%v: metrics host %v", hdr, m["host"])
		}
		if cc := r.header.Get("Cache-Control"); cc != "public, max-age=60" {
			t.Errorf("%v: Cache-Control %q, want public, max-age=60", hdr, cc)
		}
	}
}

func TestMetricsEndpoint(t *testing.T) {
	e := newEnv(t, testConfig, nil)
	if r := e.do("POST", "/v1/m", `{"series":[]}`); r.status != 200 || r.body["success"] != true {
		t.Errorf("got %d %s", r.status, r.raw)
	}
	if r := e.do("POST", "/v1/m", strings.Repeat("x", 65537)); r.status != 400 || r.body["code"] != "payload_too_large" {
		t.Errorf("got %d %s", r.status, r.raw)
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, testConfig, nil)
	ev := `{"userId":"u","event":"E"}`
	if r := e.do("POST", "/v1/track", ev, "Authorization", basic("wk_lim:")); r.status != 200 {
		t.Fatalf("first: %d", r.status)
	}
	r := e.do("POST", "/v1/track", ev, "Authorization", basic("wk_lim:"), "Origin", "https://x.example")
	if r.status != 429 || r.body["code"] != "rate_limited" || r.header.Get("Retry-After") != "300" ||
		r.header.Get("X-RateLimit-Reset") != "300" || r.header.Get("Access-Control-Allow-Origin") != "https://x.example" {
		t.Errorf("got %d %v %s", r.status, r.header, r.raw)
	}
}

// TestRateLimitShared: a source's limit (off by default, segment-ingest.md
// §1.11) is shared by its write keys; over it, 429 with Retry-After.
func TestRateLimitShared(t *testing.T) {
	cfg, err := config.Parse("test.yaml", []byte(`
sources:
  - name: website
    write_keys: [wk_a, wk_b]
    rate_limit: {requests_per_second: 1000}
  - name: import
    write_key: wk_imp
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	h, err := New(cfg, Options{Store: okStore{}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	post := func(key string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/v1/track", strings.NewReader(`{"userId":"u","event":"E"}`))
		req.Header.Set("Authorization", basic(key+":"))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for i := range 2000 {
		key := []string{"wk_a", "wk_b"}[i%2]
		if rec := post(key); rec.Code != 200 {
			t.Fatalf("request %d: got %d %s, want 200 within the burst", i, rec.Code, rec.Body)
		}
	}
	rec := post("wk_b")
	if rec.Code != 429 || rec.Header().Get("Retry-After") != "1" || rec.Header().Get("X-RateLimit-Reset") != "1" {
		t.Errorf("request 2001: got %d Retry-After %q, want 429 with Retry-After 1", rec.Code, rec.Header().Get("Retry-After"))
	}
	now = now.Add(10 * time.Millisecond) // 10 tokens back
	for i := range 10 {
		if rec := post("wk_a"); rec.Code != 200 {
			t.Fatalf("after 10ms, request %d: got %d, want 200", i, rec.Code)
		}
	}
	for i := range 2500 {
		if rec := post("wk_imp"); rec.Code != 200 {
			t.Fatalf("no limit configured, request %d: got %d", i, rec.Code)
		}
	}
}

func TestClientIP(t *testing.T) {
	e := newEnv(t, testConfig, nil)
	e.do("POST", "/v1/track", `{"userId":"u","event":"E"}`, "Authorization", basic("wk_back:"), "X-Forwarded-For", "198.51.100.9, 127.0.0.1")
	e.do("POST", "/v1/track", `{"userId":"u","event":"E","context":{"ip":"203.0.113.1"}}`, "Authorization", basic("wk_back:"))
	docs := e.stored()
	if ip := docs[0]["context"].(map[string]any)["ip"]; ip != "198.51.100.9" {
		t.Errorf("forwarded ip = %v", ip)
	}
	if ip := docs[1]["context"].(map[string]any)["ip"]; ip != "203.0.113.1" {
		t.Errorf("client ip = %v", ip)
	}
}

type failingStore struct{ err error }

func (f failingStore) Append(context.Context, []stream.Event) ([]stream.Result, error) {
	return nil, f.err
}

func TestStoreUnavailable(t *testing.T) {
	e := newEnv(t, testConfig, failingStore{stream.ErrOverloaded})
	r := e.do("POST", "/v1/batch", `{"batch":[{"type":"track","event":"E","userId":"u"}]}`, "Authorization", basic("wk_back:"))
	if r.status != 503 || r.body["code"] != "unavailable" || r.header.Get("Retry-After") == "" {
		t.Errorf("got %d %v %s", r.status, r.header, r.raw)
	}
	if !errors.Is(failingStore{stream.ErrOverloaded}.err, stream.ErrOverloaded) {
		t.Fatal("sentinel")
	}
}

func TestRoot(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })
	e := newEnv(t, testConfig, nil)
	srv := httptest.NewServer(Root(e.h, mux))
	defer srv.Close()
	for path, want := range map[string]int{"/v1//track": 404, "/v1/../v1/track": 404, "/v1/track": 405, "/healthz": 204, "/v1": 404} {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.URL.Opaque = path
		res, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, res.StatusCode, want)
		}
	}
}

func TestNoRedirectEver(t *testing.T) {
	e := newEnv(t, testConfig, nil)
	for _, p := range []string{"/v1", "/v1/", "/v1//track", "/v1/./track", "/v1/projects/x/settings/"} {
		req, _ := http.NewRequest("POST", e.srv.URL+p, strings.NewReader("{}"))
		req.URL.Opaque = p // send the path as written
		if r := e.send(req); r.status >= 300 && r.status < 400 {
			t.Errorf("%s: redirect %d", p, r.status)
		}
	}
	_ = time.Second
}

func TestLiFatIDCookie(t *testing.T) {
	e := newEnv(t, testConfig+"    cookie_domain: .example.com\n", nil)
	// A browser event with li_fat_id in its page URL: the cookie is set.
	r := e.do("POST", "/v1/p", `{"anonymousId":"a","context":{"page":{"url":"https://www.example.com/?li_fat_id=AbC-123"}}}`,
		"Authorization", basic("wk_lim:"), "Origin", "https://www.example.com")
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	sc := r.header.Get("Set-Cookie")
	for _, want := range []string{"capstan_lfi=AbC-123", "Path=/", "Domain=example.com", "Max-Age=7776000", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(sc, want) {
			t.Errorf("Set-Cookie %q lacks %q", sc, want)
		}
	}
	// Consent denied for advertising: no cookie, whatever the URL says.
	r = e.do("POST", "/v1/p", `{"anonymousId":"b","context":{"consent":{"categoryPreferences":{"Advertising":false}},"page":{"url":"https://www.example.com/?li_fat_id=654321"}}}`,
		"Authorization", basic("wk_back:"), "Origin", "https://www.example.com")
	if r.status != 200 || r.header.Get("Set-Cookie") != "" {
		t.Errorf("cookie set without consent: %d %q", r.status, r.header.Get("Set-Cookie"))
	}
	// Server-side requests (no Origin) never get one.
	r = e.do("POST", "/v1/track", `{"userId":"u","event":"E","properties":{"li_fat_id":"x1"}}`, "Authorization", basic("wk_back:"))
	if r.header.Get("Set-Cookie") != "" {
		t.Error("cookie set for a server-side request")
	}
	// The cookie comes back with a later request: its value travels with the events.
	e.do("POST", "/v1/t", `{"anonymousId":"a","event":"Sign Up"}`, "Authorization", basic("wk_back:"), "Origin", "https://www.example.com", "Cookie", "capstan_lfi=AbC-123")
	e.do("POST", "/v1/t", `{"anonymousId":"a","event":"Bad"}`, "Authorization", basic("wk_back:"), "Cookie", "capstan_lfi=bad value;")
	// Consent withdrawn by a visitor who has the cookie: it is erased and
	// its value not passed on.
	r = e.do("POST", "/v1/t", `{"anonymousId":"a","event":"E","context":{"consent":{"categoryPreferences":{"Advertising":false}}}}`,
		"Authorization", basic("wk_back:"), "Origin", "https://www.example.com", "Cookie", "capstan_lfi=AbC-123")
	if sc := r.header.Get("Set-Cookie"); !strings.Contains(sc, "capstan_lfi=;") || !strings.Contains(sc, "Max-Age=0") {
		t.Errorf("cookie not erased: %q", sc)
	}
	var got []string
	_ = e.eng.ReadEvents(context.Background(), stream.ReadOptions{}, func(m stream.Stored) error {
		got = append(got, m.LiFatID)
		return nil
	})
	if strings.Join(got, ",") != ",,,AbC-123,," {
		t.Errorf("cookie headers %q", got)
	}
}

func TestSuccessBody(t *testing.T) {
	want, err := json.Marshal(okBody{Success: true})
	if err != nil {
		t.Fatal(err)
	}
	if successBody != string(want) {
		t.Errorf("successBody %s, want %s", successBody, want)
	}
}

// TestSetSources swaps the source table under load: a key added by the new
// table is accepted, a removed one refused, a changed setting applies, and
// requests racing the swap get one table or the other (run with -race).
func TestSetSources(t *testing.T) {
	e := newEnv(t, testConfig, nil)
	ev := `{"userId":"u","event":"E"}`
	if r := e.do("POST", "/v1/track", ev, "Authorization", basic("wk_new")); r.status != 401 {
		t.Fatalf("wk_new before the swap: %d %s, want 401", r.status, r.raw)
	}
	if r := e.do("POST", "/v1/track", ev, "Authorization", basic("wk_lim")); r.status != 200 {
		t.Fatalf("wk_lim before the swap: %d %s, want 200", r.status, r.raw)
	}
	next, err := config.Parse("test.yaml", []byte(`
sources:
  - name: website
    write_key: wk_web
    allowed_origins: ["https://other.example.com"]
  - name: added
    write_key: wk_new
  - name: limited
    write_key: wk_lim
    rate_limit: {requests_per_second: 0.001, burst: 1}
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}

	// Requests with the kept key run while the table is swapped.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("POST", e.srv.URL+"/v1/track", strings.NewReader(ev))
				req.Header.Set("Authorization", basic("wk_web"))
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					t.Errorf("wk_web during the swap: %d", res.StatusCode)
					return
				}
			}
		}()
	}
	for range 20 {
		if err := e.h.SetSources(next); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()

	tests := []struct {
		name string
		key  string
		hdr  []string
		want int
	}{
		{"added key accepted", "wk_new", nil, 200},
		{"removed key refused", "wk_back", nil, 401},
		{"removed disabled key refused", "wk_old", nil, 401},
		{"kept key accepted", "wk_web", nil, 200},
		{"new allowed origin", "wk_web", []string{"Origin", "https://other.example.com"}, 200},
		{"old allowed origin refused", "wk_web", []string{"Origin", "https://www.example.com"}, 403},
		{"unchanged rate limit keeps its state", "wk_lim", nil, 429},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := append([]string{"Authorization", basic(tt.key)}, tt.hdr...)
			if r := e.do("POST", "/v1/track", ev, hdr...); r.status != tt.want {
				t.Errorf("got %d %s, want %d", r.status, r.raw, tt.want)
			}
		})
	}
}

// TestStoreWaitMetric: capstan_ingest_store_wait_seconds observes each
// request that stored events, per endpoint, and no request whose events were
// all dropped; its time is part of the request's duration.
func TestStoreWaitMetric(t *testing.T) {
	e := newEnv(t, testConfig, nil)
	auth := []string{"Authorization", basic("wk_back:")}
	for _, c := range []struct{ path, body string }{
		{"/v1/track", `{"event":"E","userId":"u1","messageId":"w-1"}`},
		{"/v1/track", `{"event":"E","userId":"u1","messageId":"w-2"}`},
		{"/v1/batch", `{"batch":[{"type":"track","event":"E","userId":"u1","messageId":"w-3"},{"type":"track","event":"E","userId":"u1","messageId":"w-4"}]}`},
		{"/v1/track", `{"event":"E","messageId":"w-5"}`}, // dropped: no identity, nothing to store
	} {
		if r := e.do("POST", c.path, c.body, auth...); r.status != 200 {
			t.Fatalf("%s: got %d %s", c.path, r.status, r.raw)
		}
	}
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	type obs struct {
		count uint64
		sum   float64
	}
	got := map[string]map[string]obs{} // metric -> endpoint -> observations
	for _, mf := range mfs {
		name := mf.GetName()
		if name != "capstan_ingest_store_wait_seconds" && name != "capstan_ingest_request_duration_seconds" {
			continue
		}
		got[name] = map[string]obs{}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "endpoint" {
					got[name][l.GetValue()] = obs{m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()}
				}
			}
		}
	}
	wait, req := got["capstan_ingest_store_wait_seconds"], got["capstan_ingest_request_duration_seconds"]
	if wait["track"].count != 2 || wait["batch"].count != 1 || len(wait) != 2 {
		t.Errorf("store wait observations %v, want track 2 and batch 1", wait)
	}
	if req["track"].count != 3 || req["batch"].count != 1 {
		t.Errorf("request duration observations %v, want track 3 and batch 1", req)
	}
	for ep, w := range wait {
		if w.sum <= 0 || w.sum > req[ep].sum {
			t.Errorf("%s: store wait %gs, request duration %gs: want 0 < wait ≤ duration", ep, w.sum, req[ep].sum)
		}
	}
}

// sliceStore answers every event stored and keeps the slice each call
// was given (not a copy), to see what the handler does with it afterwards.
type sliceStore struct {
	mu    sync.Mutex
	calls [][]stream.Event
	evs   []stream.Event // the last call's events, copied while it ran
}

func (s *sliceStore) Append(_ context.Context, evs []stream.Event) ([]stream.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, evs)
	s.evs = append([]stream.Event(nil), evs...)
	return make([]stream.Result, len(evs)), nil
}

// TestRequestEventsReused: a request's events are handed to the store in
// a slice that later requests reuse once Append returned, cleared in
// between, so that nothing of one request (a li_fat_id, a document) is
// kept alive by it or reaches another's events.
func TestRequestEventsReused(t *testing.T) {
	store := &sliceStore{}
	e := newEnv(t, testConfig, store)
	batch := func(cookie string, n int) {
		t.Helper()
		var items []string
		for i := range n {
			items = append(items, fmt.Sprintf(`{"type":"track","event":"E","userId":"u%d","messageId":"m-%s-%d"}`, i, cookie, i))
		}
		req := httptest.NewRequest(http.MethodPost, "/v1/batch", strings.NewReader(`{"batch":[`+strings.Join(items, ",")+`]}`))
		req.Header.Set("Authorization", basic("wk_back:"))
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: CookieName, Value: cookie})
		}
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	batch("lfi-one", 3)
	batch("", 2)
	if len(store.calls) != 2 {
		t.Fatalf("%d Append calls, want 2", len(store.calls))
	}
	for _, ev := range store.evs {
		if ev.LiFatID != "" || !strings.HasPrefix(ev.MessageID, "m--") {
			t.Errorf("second request's event %+v: holds the first's", ev)
		}
	}
	for n, evs := range store.calls {
		for i, ev := range evs[:min(cap(evs), 3)] {
			if ev.Doc != nil || ev.MessageID != "" || ev.LiFatID != "" {
				t.Errorf("call %d: event %d not cleared once answered: %+v", n, i, ev)
			}
		}
	}
	if raceEnabled {
		return // the race detector's pool may drop the slice
	}
	if a, b := store.calls[0][:1], store.calls[1][:1]; &a[0] != &b[0] {
		t.Errorf("the second request's events are in a new slice, want the first's reused")
	}
}

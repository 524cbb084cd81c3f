package ingest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// sdkQuery is the query @rudderstack/analytics-js 3.34.1 puts on its
// source configuration request.
const sdkQuery = "?p=npm&v=3.34.1&build=modern&lockIntegrationsVersion=true&lockPluginsVersion=true"

// TestSourceConfig: RudderStack's source configuration endpoint, at every
// path the SDK may use, with the key from Basic auth or the query.
func TestSourceConfig(t *testing.T) {
	e := newEnv(t, testConfig, nil)
	const web = "https://www.example.com"
	known := func(name string, enabled bool) map[string]any {
		return map[string]any{"source": map[string]any{
			"id": name, "name": name, "workspaceId": "capstan", "enabled": enabled,
			"config": map[string]any{}, "destinations": []any{},
		}}
	}
	tests := []struct {
		name, path string
		hdr        []string
		status     int
		want       map[string]any // the 200 body
		code       string         // the error code
	}{
		{"basic auth, as the SDK sends it", "/sourceConfig/" + sdkQuery + "&writeKey=wk_web", []string{"Authorization", basic("wk_web:"), "Origin", web}, 200, known("website", true), ""},
		{"query key only", "/sourceConfig/" + sdkQuery + "&writeKey=wk_web", []string{"Origin", web}, 200, known("website", true), ""},
		{"no final slash", "/sourceConfig?writeKey=wk_back", nil, 200, known("backend", true), ""},
		{"under /v1", "/v1/sourceConfig/?writeKey=wk_back2", nil, 200, known("backend", true), ""},
		{"under /v1, no final slash", "/v1/sourceConfig", []string{"Authorization", basic("wk_back")}, 200, known("backend", true), ""},
		{"basic wins over the query", "/sourceConfig/?writeKey=nope", []string{"Authorization", basic("wk_back:")}, 200, known("backend", true), ""},
		{"disabled source", "/sourceConfig/?writeKey=wk_old", nil, 200, known("old", false), ""},
		{"unknown key", "/sourceConfig/" + sdkQuery + "&writeKey=nope", []string{"Authorization", basic("nope:"), "Origin", web}, 401, nil, "invalid_write_key"},
		{"unknown key in the query", "/v1/sourceConfig?writeKey=nope", nil, 401, nil, "invalid_write_key"},
		{"no key", "/sourceConfig/" + sdkQuery, []string{"Origin", web}, 401, nil, "missing_write_key"},
		{"empty query key", "/sourceConfig/?writeKey=", nil, 401, nil, "missing_write_key"},
		{"origin not allowed", "/sourceConfig/?writeKey=wk_web", []string{"Origin", "https://evil.example"}, 403, nil, "origin_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("GET", tt.path, "", tt.hdr...)
			if r.status != tt.status {
				t.Fatalf("got %d %s, want %d", r.status, r.raw, tt.status)
			}
			if tt.want != nil && !reflect.DeepEqual(r.body, tt.want) {
				t.Errorf("body %s, want %v", r.raw, tt.want)
			}
			if tt.code != "" && (r.body["success"] != false || r.body["code"] != tt.code || r.body["message"] == "") {
				t.Errorf("body %s, want the error %s", r.raw, tt.code)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
			if cc := r.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q", cc)
			}
			origin := "*"
			for i := 0; i+1 < len(tt.hdr); i += 2 {
				if tt.hdr[i] == "Origin" {
					origin = tt.hdr[i+1]
				}
			}
			if got := r.header.Get("Access-Control-Allow-Origin"); got != origin {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, origin)
			}
			if got, want := r.header.Get("Access-Control-Allow-Credentials"), map[bool]string{true: "", false: "true"}[origin == "*"]; got != want {
				t.Errorf("Access-Control-Allow-Credentials = %q, want %q", got, want)
			}
		})
	}

	// The same status and body as the tracking API's auth failures.
	for _, key := range []string{"nope", ""} {
		sc := e.do("GET", "/sourceConfig/?writeKey="+key, "")
		tr := e.do("POST", "/v1/track", `{"userId":"u","event":"E","writeKey":"`+key+`"}`)
		if sc.status != tr.status || sc.body["code"] != tr.body["code"] || len(sc.body) != len(tr.body) {
			t.Errorf("key %q: sourceConfig %d %s, /v1/track %d %s", key, sc.status, sc.raw, tr.status, tr.raw)
		}
	}

	// Methods.
	r := e.do("POST", "/sourceConfig/?writeKey=wk_web", "{}")
	if r.status != 405 || r.body["code"] != "method_not_allowed" || r.header.Get("Allow") != "GET, OPTIONS" {
		t.Errorf("POST: %d %v %s", r.status, r.header, r.raw)
	}
	r = e.do("HEAD", "/sourceConfig/?writeKey=wk_web", "")
	if r.status != 200 || r.raw != "" {
		t.Errorf("HEAD: %d %q", r.status, r.raw)
	}
	if n := len(e.stored()); n != 0 {
		t.Errorf("source configuration requests stored %d events", n)
	}
}

// TestSourceConfigPreflight: the SDK's GET carries Authorization, so the
// browser asks first; the preflight allows it, with the source's origin.
func TestSourceConfigPreflight(t *testing.T) {
	e := newEnv(t, testConfig, nil)
	for _, path := range []string{"/sourceConfig/" + sdkQuery + "&writeKey=wk_web", "/sourceConfig", "/v1/sourceConfig/?writeKey=wk_web"} {
		r := e.do("OPTIONS", path, "", "Origin", "https://www.example.com", "Access-Control-Request-Method", "GET",
			"Access-Control-Request-Headers", "authorization")
		if r.status != 204 || r.raw != "" {
			t.Fatalf("%s: %d %q", path, r.status, r.raw)
		}
		for k, v := range map[string]string{
			"Access-Control-Allow-Origin":      "https://www.example.com",
			"Access-Control-Allow-Credentials": "true",
			"Access-Control-Allow-Methods":     "GET, POST, OPTIONS",
			"Access-Control-Allow-Headers":     "Authorization, Content-Type, Content-Encoding, X-Retry-Count",
			"Access-Control-Max-Age":           "7200",
		} {
			if got := r.header.Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", path, k, got, v)
			}
		}
	}
}

// TestSDKHeadersPreflight: the XHR transport's custom headers (AnonymousId,
// SentAt, the Rsa-* retry headers) are allowed on the event paths.
func TestSDKHeadersPreflight(t *testing.T) {
	e := newEnv(t, testConfig, nil)
	for _, path := range []string{"/v1/page", "/v1/identify", "/v1/track", "/v1/batch", "/beacon/v1/batch"} {
		r := e.do("OPTIONS", path, "", "Origin", "https://www.example.com", "Access-Control-Request-Method", "POST",
			"Access-Control-Request-Headers", "anonymousid,authorization,content-type,rsa-retry-attempt,rsa-retry-reason,sentat")
		want := "Authorization, Content-Type, Content-Encoding, X-Retry-Count, anonymousid, rsa-retry-attempt, rsa-retry-reason, sentat"
		if got := r.header.Get("Access-Control-Allow-Headers"); r.status != 204 || got != want {
			t.Errorf("%s: %d, Allow-Headers %q, want %q", path, r.status, got, want)
		}
	}
}

// beaconBody is the body navigator.sendBeacon carries for
// @rudderstack/analytics-js: {batch, sentAt}, as text/plain.
func beaconBody(items ...string) string {
	return `{"batch":[` + strings.Join(items, ",") + `],"sentAt":"2026-09-01T10:35:00.000Z"}`
}

// TestBeacon: /beacon/v1/batch is /v1/batch with the write key in the
// query: stored the same way, with the same answers.
func TestBeacon(t *testing.T) {
	e := newEnv(t, testConfig, nil)
	ev := func(id string) string {
		return `{"type":"track","event":"Beacon","anonymousId":"a1","messageId":"` + id + `","originalTimestamp":"2026-09-01T10:34:59.000Z","channel":"web"}`
	}
	hdr := []string{"Content-Type", "text/plain;charset=UTF-8", "Origin", "https://www.example.com"}
	r := e.do("POST", "/beacon/v1/batch?writeKey=wk_web", beaconBody(ev("b1"), ev("b2")), hdr...)
	if r.status != 200 || r.raw != "{\"success\":true}\n" {
		t.Fatalf("beacon: %d %s", r.status, r.raw)
	}
	if r.header.Get("Access-Control-Allow-Origin") != "https://www.example.com" {
		t.Errorf("CORS: %v", r.header)
	}
	// A retry, with a trailing slash: duplicates, answered 200.
	r = e.do("POST", "/beacon/v1/batch/?writeKey=wk_web", beaconBody(ev("b1"), ev("b3")), hdr...)
	if r.status != 200 || r.body["accepted"] != 1.0 || r.body["duplicates"] != 1.0 {
		t.Fatalf("beacon retry: %d %s", r.status, r.raw)
	}
	docs := e.stored()
	if len(docs) != 3 {
		t.Fatalf("stored %d events, want 3: %v", len(docs), docs)
	}
	for i, d := range docs {
		if d["_subject"] != "events.website.track" || d["event"] != "Beacon" || d["sentAt"] != "2026-09-01T10:35:00.000Z" || d["channel"] != "web" {
			t.Errorf("stored[%d] = %v", i, d)
		}
		if _, has := d["writeKey"]; has {
			t.Errorf("stored[%d] kept a writeKey", i)
		}
	}

	// The same events through /v1/batch and /beacon/v1/batch get the same
	// stored documents, but for the ids and receivedAt.
	e2 := newEnv(t, testConfig, nil)
	_ = e2.do("POST", "/v1/batch", beaconBody(ev("b1")), "Authorization", basic("wk_web:"), "Origin", "https://www.example.com")
	viaBatch := e2.stored()[0]
	for _, k := range []string{"receivedAt", "timestamp", "_subject"} {
		delete(viaBatch, k)
		delete(docs[0], k)
	}
	if ctx, ok := docs[0]["context"].(map[string]any); ok {
		delete(ctx, "capstan")
	}
	if ctx, ok := viaBatch["context"].(map[string]any); ok {
		delete(ctx, "capstan")
	}
	if !reflect.DeepEqual(viaBatch, docs[0]) {
		a, _ := json.Marshal(viaBatch)
		b, _ := json.Marshal(docs[0])
		t.Errorf("stored through /v1/batch:\n%s\nthrough /beacon/v1/batch:\n%s", a, b)
	}
}

// TestBeaconErrors: the beacon endpoint answers bad input exactly as
// /v1/batch does, with the same limits.
func TestBeaconErrors(t *testing.T) {
	e := newEnv(t, testConfig, nil)
	big := `{"batch":[],"pad":"` + strings.Repeat("x", 512001) + `"}`
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = zw.Write([]byte(beaconBody(`{"type":"track","event":"Z","userId":"u"}`)))
	_ = zw.Close()
	tests := []struct {
		name, method, query, body string
		hdr                       []string
		status                    int
		code                      string
	}{
		{"invalid json", "POST", "?writeKey=wk_web", `{"batch":[`, nil, 400, "invalid_json"},
		{"empty body", "POST", "?writeKey=wk_web", ``, nil, 400, "invalid_json"},
		{"array body", "POST", "?writeKey=wk_web", `[1]`, nil, 400, "invalid_body"},
		{"batch missing", "POST", "?writeKey=wk_web", `{"sentAt":"2026-09-01T10:35:00.000Z"}`, nil, 400, "invalid_batch"},
		{"batch not array", "POST", "?writeKey=wk_web", `{"batch":{}}`, nil, 400, "invalid_batch"},
		{"request too large", "POST", "?writeKey=wk_web", big, nil, 400, "payload_too_large"},
		{"too many items", "POST", "?writeKey=wk_web", `{"batch":[` + strings.Repeat(`{},`, 2500) + `{}]}`, nil, 400, "too_many_items"},
		{"unknown encoding", "POST", "?writeKey=wk_web", `{}`, []string{"Content-Encoding", "br"}, 415, "unsupported_encoding"},
		{"no write key", "POST", "", beaconBody(`{"type":"track","event":"E","userId":"u"}`), nil, 401, "missing_write_key"},
		{"empty write key", "POST", "?writeKey=", beaconBody(`{"type":"track","event":"E","userId":"u"}`), nil, 401, "missing_write_key"},
		{"unknown write key", "POST", "?writeKey=nope", beaconBody(`{"type":"track","event":"E","userId":"u"}`), nil, 401, "invalid_write_key"},
		{"disabled source", "POST", "?writeKey=wk_old", beaconBody(`{"type":"track","event":"E","userId":"u"}`), nil, 403, "source_disabled"},
		{"origin not allowed", "POST", "?writeKey=wk_web", beaconBody(`{"type":"track","event":"E","userId":"u"}`), []string{"Origin", "https://evil.example"}, 403, "origin_not_allowed"},
		{"rate limited", "POST", "?writeKey=wk_lim", beaconBody(`{"type":"track","event":"E","userId":"u"}`), nil, 429, "rate_limited"},
		{"wrong method", "GET", "?writeKey=wk_web", ``, nil, 405, "method_not_allowed"},
		{"unknown beacon path", "POST", "?writeKey=wk_web", `{}`, nil, 404, "not_found"},
	}
	// The rate-limited source has a burst of one: use it up first.
	if r := e.do("POST", "/beacon/v1/batch?writeKey=wk_lim", beaconBody(`{"type":"track","event":"E","userId":"u","messageId":"lim-1"}`)); r.status != 200 {
		t.Fatalf("first request of the limited source: %d %s", r.status, r.raw)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "/beacon/v1/batch"
			if tt.name == "unknown beacon path" {
				path = "/beacon/v1/track"
			}
			hdr := append([]string{"Content-Type", "text/plain;charset=UTF-8"}, tt.hdr...)
			r := e.do(tt.method, path+tt.query, tt.body, hdr...)
			if r.status != tt.status || r.body["code"] != tt.code || r.body["success"] != false || r.body["message"] == "" {
				t.Fatalf("got %d %s, want %d %s", r.status, r.raw, tt.status, tt.code)
			}
			if r.header.Get("Access-Control-Allow-Origin") == "" {
				t.Errorf("no CORS on %d: %v", r.status, r.header)
			}
			if tt.status == 405 && r.header.Get("Allow") != "POST, OPTIONS" {
				t.Errorf("Allow = %q", r.header.Get("Allow"))
			}
			if tt.status == 429 && r.header.Get("Retry-After") == "" {
				t.Errorf("429 without Retry-After: %v", r.header)
			}
			// The same request to /v1/batch, the key as Basic auth, gets the same answer.
			if tt.method != "POST" || path != "/beacon/v1/batch" || tt.code == "missing_write_key" || tt.code == "rate_limited" {
				return
			}
			key := strings.TrimPrefix(tt.query, "?writeKey=")
			b := e.do("POST", "/v1/batch", tt.body, append(hdr, "Authorization", basic(key+":"))...)
			if b.status != r.status || b.body["code"] != r.body["code"] {
				t.Errorf("/v1/batch answered %d %s, /beacon/v1/batch %d %s", b.status, b.raw, r.status, r.raw)
			}
		})
	}

	// Per-item problems drop the item, not the request.
	bigItem := `{"type":"track","event":"E","userId":"u","p":"` + strings.Repeat("x", 32768) + `"}`
	r := e.do("POST", "/beacon/v1/batch?writeKey=wk_web", beaconBody(`{"type":"track","event":"Ok","userId":"u","messageId":"ok-1"}`, bigItem, `{"type":"purchase","userId":"u","messageId":"bad-1"}`))
	if r.status != 200 || r.body["accepted"] != 1.0 || r.body["dropped"] != 2.0 {
		t.Fatalf("per-item drops: %d %s", r.status, r.raw)
	}
	// gzip, as for every tracking path.
	r = e.do("POST", "/beacon/v1/batch?writeKey=wk_web", zipped.String(), "Content-Encoding", "gzip")
	if r.status != 200 || r.raw != "{\"success\":true}\n" {
		t.Fatalf("gzip: %d %s", r.status, r.raw)
	}
	stored := map[string]bool{}
	for _, d := range e.stored() {
		stored[d["event"].(string)] = true
	}
	if len(stored) != 3 || !stored["E"] || !stored["Ok"] || !stored["Z"] {
		t.Errorf("stored events %v, want E (limited source), Ok and Z", stored)
	}
}

// TestBeaconWriteKeyResolution: Basic auth wins, then the query's key,
// then the body's.
func TestBeaconWriteKeyResolution(t *testing.T) {
	e := newEnv(t, testConfig, nil)
	item := `{"type":"track","event":"E","userId":"u"}`
	tests := []struct {
		name, query, body, source string
		hdr                       []string
	}{
		{"query", "?writeKey=wk_back", beaconBody(item), "backend", nil},
		{"basic wins over the query", "?writeKey=wk_web", beaconBody(item), "backend", []string{"Authorization", basic("wk_back:")}},
		{"query wins over the body", "?writeKey=wk_back2", `{"writeKey":"wk_web","batch":[` + item + `]}`, "backend", nil},
		{"body when no query key", "", `{"writeKey":"wk_back","batch":[` + item + `]}`, "backend", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.stored())
			if r := e.do("POST", "/beacon/v1/batch"+tt.query, tt.body, tt.hdr...); r.status != 200 {
				t.Fatalf("got %d %s", r.status, r.raw)
			}
			docs := e.stored()
			if len(docs) != before+1 || docs[len(docs)-1]["_subject"] != "events."+tt.source+".track" {
				t.Errorf("stored %v, want one more event of %s", docs[before:], tt.source)
			}
		})
	}
	// The query key is the beacon's alone: /v1/batch ignores the query (§1.2).
	if r := e.do("POST", "/v1/batch?writeKey=wk_back", beaconBody(item)); r.status != 401 || r.body["code"] != "missing_write_key" {
		t.Errorf("/v1/batch?writeKey=: %d %s, want 401 missing_write_key", r.status, r.raw)
	}
}

// TestRootRudderPaths: Root sends /sourceConfig and /beacon to the
// tracking API, never to the other handlers and never with a redirect.
func TestRootRudderPaths(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	e := newEnv(t, testConfig, nil)
	srv := httptest.NewServer(Root(e.h, mux))
	defer srv.Close()
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/sourceConfig/?writeKey=wk_web", 200},
		{"GET", "/sourceConfig?writeKey=wk_web", 200},
		{"GET", "/v1/sourceConfig/?writeKey=wk_web", 200},
		{"OPTIONS", "/sourceConfig/", 204},
		{"POST", "/beacon/v1/batch?writeKey=wk_web", 200},
		{"POST", "/beacon/v1/batch/?writeKey=wk_web", 200},
		{"POST", "/beacon//v1/batch", 404},
		{"POST", "/beacon", 404},
		{"GET", "/sourceConfigX", http.StatusTeapot},
		{"GET", "/beaconX", http.StatusTeapot},
		{"GET", "/other", http.StatusTeapot},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL, strings.NewReader(beaconBody(`{"type":"track","event":"E","userId":"u"}`)))
		path, query, _ := strings.Cut(tc.path, "?")
		req.URL.Opaque, req.URL.RawQuery = path, query
		res, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, res.StatusCode, tc.want)
		}
	}
}

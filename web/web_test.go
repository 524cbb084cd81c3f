package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// maxGzipBytes is capstan.js's size budget, gzipped.
const maxGzipBytes = 10 * 1024

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHandlerScript(t *testing.T) {
	h := Handler()
	src := Script()
	if len(src) == 0 {
		t.Fatal("embedded capstan.js is empty")
	}
	tests := []struct {
		name     string
		accept   string
		wantGzip bool
	}{
		{"identity", "", false},
		{"gzip", "gzip, deflate, br", true},
		{"gzip with quality", "br;q=1.0, gzip;q=0.5", true},
		{"gzip refused", "gzip;q=0, deflate", false},
		{"wildcard", "*", true},
		{"br only", "br", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := get(t, h, http.MethodGet, "/capstan.js", map[string]string{"Accept-Encoding": tc.accept})
			if w.Code != http.StatusOK {
				t.Fatalf("status %d, want 200", w.Code)
			}
			hd := w.Result().Header
			for k, want := range map[string]string{
				"Content-Type":  "text/javascript; charset=utf-8",
				"Cache-Control": "public, max-age=300",
				"Vary":          "Accept-Encoding",
			} {
				if got := hd.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if hd.Get("ETag") == "" {
				t.Error("no ETag")
			}
			body := w.Body.Bytes()
			if got := hd.Get("Content-Encoding") == "gzip"; got != tc.wantGzip {
				t.Fatalf("gzip = %v, want %v", got, tc.wantGzip)
			}
			if tc.wantGzip {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(body, src) {
				t.Errorf("body (%d bytes) differs from the embedded capstan.js (%d bytes)", len(body), len(src))
			}
		})
	}
}

func TestHandlerETag(t *testing.T) {
	h := Handler()
	plain := get(t, h, http.MethodGet, "/capstan.js", nil).Result().Header.Get("ETag")
	gz := get(t, h, http.MethodGet, "/capstan.js", map[string]string{"Accept-Encoding": "gzip"}).Result().Header.Get("ETag")
	if plain == gz {
		t.Errorf("identity and gzip share the ETag %s; representations need their own", plain)
	}
	if !strings.HasPrefix(plain, `"`) {
		t.Errorf("ETag %s is not a strong entity tag", plain)
	}
	tests := []struct {
		name   string
		hdr    map[string]string
		status int
	}{
		{"matching", map[string]string{"If-None-Match": plain}, http.StatusNotModified},
		{"matching gzip", map[string]string{"If-None-Match": gz, "Accept-Encoding": "gzip"}, http.StatusNotModified},
		{"one of a list", map[string]string{"If-None-Match": `"x", ` + gz, "Accept-Encoding": "gzip"}, http.StatusNotModified},
		{"star", map[string]string{"If-None-Match": "*"}, http.StatusNotModified},
		{"other representation", map[string]string{"If-None-Match": gz}, http.StatusOK},
		{"stale", map[string]string{"If-None-Match": `"old"`}, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := get(t, h, http.MethodGet, "/capstan.js", tc.hdr)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d", w.Code, tc.status)
			}
			if tc.status == http.StatusNotModified && w.Body.Len() != 0 {
				t.Errorf("304 with a %d-byte body", w.Body.Len())
			}
		})
	}
}

func TestHandlerMethodsAndPaths(t *testing.T) {
	h := Handler()
	tests := []struct {
		name, method, path string
		status             int
	}{
		{"head", http.MethodHead, "/capstan.js", http.StatusOK},
		{"post", http.MethodPost, "/capstan.js", http.StatusMethodNotAllowed},
		{"unknown path", http.MethodGet, "/nothing.js", http.StatusNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := get(t, h, tc.method, tc.path, nil)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d", w.Code, tc.status)
			}
			if tc.method == http.MethodHead && w.Result().Header.Get("Content-Length") == "" {
				t.Error("HEAD without Content-Length")
			}
		})
	}
}

// TestScriptSize enforces the size budget: capstan.js must stay under
// 10 KB gzipped (what browsers download).
func TestScriptSize(t *testing.T) {
	w := get(t, Handler(), http.MethodGet, "/capstan.js", map[string]string{"Accept-Encoding": "gzip"})
	n := w.Body.Len()
	t.Logf("capstan.js: %d bytes, %d bytes gzipped", len(Script()), n)
	if n > maxGzipBytes {
		t.Errorf("capstan.js is %d bytes gzipped, over the %d-byte budget", n, maxGzipBytes)
	}
}

// TestScriptHeader checks that the served file documents its API and
// carries its version in the header comment.
func TestScriptHeader(t *testing.T) {
	src := string(Script())
	if !strings.HasPrefix(src, "/*! capstan.js ") {
		t.Errorf("capstan.js does not start with its /*! capstan.js ... */ header")
	}
	for _, name := range []string{"capstan.load", "capstan.page", "capstan.track", "capstan.identify", "capstan.alias", "capstan.group", "capstan.consent", "capstan.attach"} {
		if !strings.Contains(src[:strings.Index(src, "*/")], name) {
			t.Errorf("the header comment does not document %s", name)
		}
	}
}

// TestHandlerMounted: mounted on "GET /capstan.js" of another mux, as
// `capstan serve` mounts it, the handler keeps its headers and conditional
// answers.
func TestHandlerMounted(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("GET "+ScriptPath, Handler())
	first := get(t, mux, http.MethodGet, ScriptPath, nil)
	etag := first.Result().Header.Get("ETag")
	tests := []struct {
		name, method string
		hdr          map[string]string
		status       int
	}{
		{"get", http.MethodGet, nil, http.StatusOK},
		{"head", http.MethodHead, nil, http.StatusOK},
		{"revalidate", http.MethodGet, map[string]string{"If-None-Match": etag}, http.StatusNotModified},
		{"revalidate head", http.MethodHead, map[string]string{"If-None-Match": etag}, http.StatusNotModified},
		{"post", http.MethodPost, nil, http.StatusMethodNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := get(t, mux, tc.method, ScriptPath, tc.hdr)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d", w.Code, tc.status)
			}
			if tc.status == http.StatusMethodNotAllowed {
				return
			}
			hd := w.Result().Header
			if got := hd.Get("ETag"); got != etag {
				t.Errorf("ETag %q, want %q", got, etag)
			}
			if got := hd.Get("Cache-Control"); got != CacheControl {
				t.Errorf("Cache-Control %q, want %q", got, CacheControl)
			}
			if tc.status == http.StatusOK && hd.Get("Content-Type") != "text/javascript; charset=utf-8" {
				t.Errorf("Content-Type %q", hd.Get("Content-Type"))
			}
		})
	}
}

package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/web"
)

// TestServeCapstanJS: `capstan serve` serves /capstan.js (docs/capstan-js.md)
// as `capstan demo` does: the embedded bytes, a strong ETag per encoding, a
// public five-minute cache lifetime and 304 on a matching If-None-Match.
func TestServeCapstanJS(t *testing.T) {
	s := startServer(t, newConfig(t))
	hc := newHTTPClient(t)
	get := func(t *testing.T, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/capstan.js", nil)
		if err != nil {
			t.Fatal(err)
		}
		// Set explicitly, so that the transport neither asks for gzip
		// nor decodes it behind the test's back.
		req.Header.Set("Accept-Encoding", "identity")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	tests := []struct {
		name string
		gzip bool
	}{
		{"identity", false},
		{"gzip", true},
	}
	etags := map[bool]string{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.gzip {
				hdr["Accept-Encoding"] = "gzip"
			}
			resp, body := get(t, hdr)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			for k, want := range map[string]string{
				"Content-Type":  "text/javascript; charset=utf-8",
				"Cache-Control": "public, max-age=300",
				"Vary":          "Accept-Encoding",
			} {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			etag := resp.Header.Get("ETag")
			if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || len(etag) < 3 {
				t.Errorf("ETag %q is not a strong entity tag", etag)
			}
			etags[tc.gzip] = etag
			if got := resp.Header.Get("Content-Encoding") == "gzip"; got != tc.gzip {
				t.Fatalf("Content-Encoding %q, want gzip %v", resp.Header.Get("Content-Encoding"), tc.gzip)
			}
			if tc.gzip {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(body, web.Script()) {
				t.Errorf("body (%d bytes) is not the embedded capstan.js (%d bytes)", len(body), len(web.Script()))
			}

			hdr["If-None-Match"] = etag
			resp, body = get(t, hdr)
			if resp.StatusCode != http.StatusNotModified {
				t.Fatalf("If-None-Match %s: status %d, want 304", etag, resp.StatusCode)
			}
			if len(body) != 0 {
				t.Errorf("304 with a %d-byte body", len(body))
			}
			if got := resp.Header.Get("ETag"); got != etag {
				t.Errorf("304: ETag %q, want %q", got, etag)
			}
		})
	}
	if etags[false] == etags[true] {
		t.Errorf("identity and gzip share the ETag %s", etags[false])
	}
}

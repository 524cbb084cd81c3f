package e2e

import (
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestOpsAddr: with server.ops_addr and metrics_auth: admin_token, the
// real binary serves /metrics only on the ops listener and only to the
// admin token; /healthz and /readyz answer on both listeners.
func TestOpsAddr(t *testing.T) {
	cfg := newConfig(t)
	ops := freeAddr(t)
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text = []byte(strings.Replace(string(text), "  shutdown_grace: 20s\n",
		"  shutdown_grace: 20s\n  ops_addr: "+ops+"\n  metrics_auth: admin_token\n  admin_token: adm-ops\n", 1))
	if err := os.WriteFile(cfg, text, 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, cfg)
	hc := newHTTPClient(t)
	get := func(url, token string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		return resp.StatusCode, string(b)
	}
	opsURL := "http://" + ops
	tests := []struct {
		name, url, token string
		status           int
		body             string
	}{
		{"metrics not on the main port", s.URL + "/metrics", "adm-ops", 404, ""},
		{"metrics without token", opsURL + "/metrics", "", 401, "admin token"},
		{"metrics with a wrong token", opsURL + "/metrics", "adm-x", 401, "admin token"},
		{"metrics with the admin token", opsURL + "/metrics", "adm-ops", 200, "capstan_ingest_"},
		{"readyz on the ops port", opsURL + "/readyz", "", 200, `"status":"ready"`},
		{"healthz on the ops port", opsURL + "/healthz", "", 200, `"status":"ok"`},
		{"readyz on the main port", s.URL + "/readyz", "", 200, `"status":"ready"`},
		{"no tracking on the ops port", opsURL + "/v1/track", "", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := get(tt.url, tt.token)
			if status != tt.status || !strings.Contains(body, tt.body) {
				t.Errorf("got %d %.200s, want %d with %q", status, body, tt.status, tt.body)
			}
		})
	}
}

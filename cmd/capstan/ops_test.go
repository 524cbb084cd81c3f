package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/capstan-gw/capstan/internal/config"
)

// TestMountOps: /metrics is public on the main port by default, moves to
// server.ops_addr's listener when set, and asks for the admin token with
// metrics_auth: admin_token; /healthz and /readyz stay on the main port;
// /debug/pprof/ is served only with server.pprof, to the admin token only.
func TestMountOps(t *testing.T) {
	ok := func(body string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(body)) })
	}
	type req struct {
		ops    bool   // to the ops listener
		path   string // GET
		token  string // Bearer token, "" for none
		status int
	}
	tests := []struct {
		name   string
		server config.Server
		reqs   []req
	}{
		{"default: public on the main port", config.Server{MetricsAuth: config.MetricsAuthNone}, []req{
			{path: "/metrics", status: 200},
			{path: "/healthz", status: 200},
			{path: "/readyz", status: 200},
		}},
		{"admin token", config.Server{MetricsAuth: config.MetricsAuthAdminToken, AdminToken: "adm-1"}, []req{
			{path: "/metrics", status: 401},
			{path: "/metrics", token: "adm-2", status: 401},
			{path: "/metrics", token: "adm-1", status: 200},
			{path: "/healthz", status: 200},
			{path: "/readyz", status: 200},
		}},
		{"ops listener", config.Server{OpsAddr: "127.0.0.1:0", MetricsAuth: config.MetricsAuthNone}, []req{
			{path: "/metrics", status: 404},
			{path: "/healthz", status: 200},
			{path: "/readyz", status: 200},
			{ops: true, path: "/metrics", status: 200},
			{ops: true, path: "/healthz", status: 200},
			{ops: true, path: "/readyz", status: 200},
			{ops: true, path: "/v1/track", status: 404},
		}},
		{"ops listener and admin token", config.Server{OpsAddr: "127.0.0.1:0", MetricsAuth: config.MetricsAuthAdminToken, AdminToken: "adm-1"}, []req{
			{path: "/metrics", token: "adm-1", status: 404},
			{ops: true, path: "/metrics", status: 401},
			{ops: true, path: "/metrics", token: "adm-1", status: 200},
			{ops: true, path: "/readyz", status: 200},
		}},
		{"pprof off by default", config.Server{MetricsAuth: config.MetricsAuthNone, AdminToken: "adm-1"}, []req{
			{path: "/debug/pprof/", token: "adm-1", status: 404},
			{path: "/debug/pprof/heap", token: "adm-1", status: 404},
		}},
		{"pprof on the main port", config.Server{MetricsAuth: config.MetricsAuthNone, AdminToken: "adm-1", Pprof: true}, []req{
			{path: "/debug/pprof/", status: 401},
			{path: "/debug/pprof/heap", token: "adm-2", status: 401},
			{path: "/debug/pprof/heap", token: "adm-1", status: 200},
			{path: "/debug/pprof/cmdline", token: "adm-1", status: 200},
			{path: "/metrics", status: 200},
		}},
		{"pprof on the ops listener", config.Server{OpsAddr: "127.0.0.1:0", MetricsAuth: config.MetricsAuthNone, AdminToken: "adm-1", Pprof: true}, []req{
			{path: "/debug/pprof/heap", token: "adm-1", status: 404},
			{ops: true, path: "/debug/pprof/goroutine", status: 401},
			{ops: true, path: "/debug/pprof/goroutine", token: "adm-1", status: 200},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			main := http.NewServeMux()
			ops := mountOps(tt.server, main, ok("health"), ok("ready"), ok("metrics"))
			if (ops != nil) != (tt.server.OpsAddr != "") {
				t.Fatalf("ops mux %v with ops_addr %q", ops != nil, tt.server.OpsAddr)
			}
			for _, r := range tt.reqs {
				h := http.Handler(main)
				if r.ops {
					h = ops
				}
				q := httptest.NewRequest("GET", r.path, nil)
				if r.token != "" {
					q.Header.Set("Authorization", "Bearer "+r.token)
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, q)
				if rec.Code != r.status {
					t.Errorf("%+v: got %d", r, rec.Code)
				}
				if rec.Code == 401 && rec.Header().Get("WWW-Authenticate") == "" {
					t.Errorf("%+v: 401 without WWW-Authenticate", r)
				}
			}
		})
	}
}

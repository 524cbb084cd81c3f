package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/capstan-gw/capstan/internal/config"
)

// mountOps puts the operational endpoints where server.ops_addr and
// server.metrics_auth say. /healthz and /readyz are always on the main
// mux (load balancers probe the port they send traffic to). /metrics goes
// to the ops mux when ops_addr is set, else to the main mux; with
// metrics_auth admin_token it answers only to the admin token. The ops
// mux, returned (nil without ops_addr), serves all three.
func mountOps(s config.Server, main *http.ServeMux, health, ready, metrics http.Handler) *http.ServeMux {
	if s.MetricsAuth == config.MetricsAuthAdminToken {
		metrics = requireToken(s.AdminToken.Value(), metrics)
	}
	main.Handle("GET /healthz", health)
	main.Handle("GET /readyz", ready)
	if s.OpsAddr == "" {
		main.Handle("GET /metrics", metrics)
		mountPprof(s, main)
		return nil
	}
	ops := http.NewServeMux()
	ops.Handle("GET /healthz", health)
	ops.Handle("GET /readyz", ready)
	ops.Handle("GET /metrics", metrics)
	mountPprof(s, ops)
	return ops
}

// mountPprof serves Go's runtime profiles under /debug/pprof/ on mux, to
// the admin token only, when server.pprof is true (off by default: the
// handlers are never registered otherwise).
func mountPprof(s config.Server, mux *http.ServeMux) {
	if !s.Pprof || s.AdminToken.Value() == "" {
		return
	}
	pp := http.NewServeMux()
	pp.HandleFunc("GET /debug/pprof/", pprof.Index) // and the named profiles: heap, goroutine, allocs, ...
	pp.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	pp.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	pp.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	pp.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.Handle("/debug/pprof/", requireToken(s.AdminToken.Value(), pp))
}

// requireToken lets through only requests with "Authorization: Bearer
// <token>", compared in constant time over SHA-256 digests (as the admin
// API does, so that the time says nothing about the token's length).
func requireToken(token string, next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="capstan"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"code":"unauthorized","message":"a valid admin token is required (Authorization: Bearer <server.admin_token>)"}}` + "\n"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

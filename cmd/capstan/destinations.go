package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/delivery"
	lidest "github.com/capstan-gw/capstan/internal/delivery/linkedin"
	"github.com/capstan-gw/capstan/internal/stream"
)

// newFormat returns the Format of a configured destination's type. preview
// makes requests show their redacted Authorization header, as a dry run
// prints them.
func newFormat(d config.Destination, preview bool) (delivery.Format, error) {
	switch d.Type {
	case "", "linkedin":
		return lidest.NewFormat(lidest.FormatConfig{APIVersion: d.APIVersion, BatchSize: d.BatchSize, Preview: preview})
	}
	return nil, fmt.Errorf("destination %s: unknown type %q", d.Name, d.Type)
}

// compilePlans compiles the mappings of every destination (only the one
// named only, when not ""); problems are configuration errors (exit 2),
// reported before anything starts.
func compilePlans(cfg *config.Config, only string, preview bool) ([]*delivery.Plan, error) {
	var plans []*delivery.Plan
	var errs []error
	for i, d := range cfg.Destinations {
		if only != "" && d.Name != only {
			continue
		}
		f, err := newFormat(d, preview)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p, perrs := delivery.NewPlan(cfg, i, f)
		plans = append(plans, p)
		errs = append(errs, perrs...)
	}
	if len(errs) > 0 {
		return nil, usageErr(errors.Join(errs...))
	}
	return plans, nil
}

// destination is one configured destination, wired: its runner and its
// LinkedIn side. It is what the admin surface and /readyz see.
type destination struct {
	runner *delivery.Runner
	li     *lidest.Destination
}

// Name returns the destination's name.
func (d *destination) Name() string { return d.runner.Name() }

// Status reports the destination's health.
func (d *destination) Status() delivery.Status { return d.runner.Status() }

// InstallToken puts an operator's access token in use and resumes delivery
// at once, also when the token could not be saved (lidest.ErrTokenNotSaved).
func (d *destination) InstallToken(ctx context.Context, accessToken string, expiresAt time.Time) error {
	err := d.li.InstallToken(ctx, accessToken, expiresAt)
	d.runner.Resume()
	return err
}

// newDestinations builds the destinations and their runners.
func newDestinations(ctx context.Context, cfg *config.Config, plans []*delivery.Plan, eng *stream.Engine, graph delivery.Graph, reg prometheus.Registerer, log *slog.Logger) ([]*destination, error) {
	if len(plans) == 0 {
		return nil, nil
	}
	state, err := eng.KV(ctx, stream.StateKV, 0)
	if err != nil {
		return nil, err
	}
	metrics := delivery.NewMetrics(reg)
	limits := delivery.NewLimits(nil)
	var out []*destination
	for i, p := range plans {
		dc := cfg.Destinations[i]
		li, err := lidest.New(ctx, lidest.Config{Destination: dc, State: state}, log)
		if err != nil {
			return nil, err
		}
		deps := delivery.Deps{Engine: eng, Graph: graph, Limits: limits, Metrics: metrics, Log: log}
		if cfg.Engine.NatsURL != "" {
			// Shared cluster: only the lease holder delivers; other
			// replicas stand by. With the embedded engine the data
			// directory's lock already makes this the only process, and a
			// lease would only delay a restart after a crash.
			deps.Lease = delivery.NewLease(state, dc.Name, 10*time.Second)
		}
		runner, err := delivery.NewRunner(p, li, delivery.RunnerConfig{
			BatchSize: dc.BatchSize,
			Linger:    dc.Linger.D(),
			PerMinute: dc.RateLimit.PerMinute,
			PerDay:    dc.RateLimit.PerDay,
		}, deps)
		if err != nil {
			return nil, err
		}
		out = append(out, &destination{runner: runner, li: li})
	}
	return out, nil
}

// adminToken installs a new access token for a destination:
// PUT /admin/destinations/{name}/token {"access_token": "...", "expires_at": "RFC 3339"}.
func adminToken(dests []*destination, token string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+token)) != 1 {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"admin token required (Authorization: Bearer …)"}` + "\n"))
			return
		}
		var d *destination
		for _, x := range dests {
			if x.Name() == r.PathValue("name") {
				d = x
			}
		}
		if d == nil {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"no such destination"}` + "\n"))
			return
		}
		var body struct {
			AccessToken string `json:"access_token"`
			ExpiresAt   string `json:"expires_at"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&body); err != nil || body.AccessToken == "" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"body must be {\"access_token\": \"…\", \"expires_at\": \"RFC 3339, optional\"}"}` + "\n"))
			return
		}
		var exp time.Time
		if body.ExpiresAt != "" {
			var err error
			if exp, err = time.Parse(time.RFC3339, body.ExpiresAt); err != nil {
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(`{"error":"expires_at must be RFC 3339"}` + "\n"))
				return
			}
		}
		if err := d.InstallToken(r.Context(), body.AccessToken, exp); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"the token is in use but could not be saved; it will be lost on restart"}` + "\n"))
			return
		}
		_ = json.NewEncoder(w).Encode(d.Status())
	})
}

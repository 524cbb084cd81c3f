package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstan-gw/capstan/internal/admin"
	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/linkedin"
	"github.com/capstan-gw/capstan/internal/stream"
)

// destination is one configured destination, wired.
type destination struct {
	cfg    config.Destination
	plan   *delivery.Plan
	client *linkedin.Client
	runner *delivery.Runner
	// shared is true with an external engine, which other replicas may use.
	shared bool
	// state is the state bucket; tokenKey and credHash tie a saved token to
	// the configured credentials it replaces.
	state    jetstream.KeyValue
	tokenKey string
	credHash string
	// standby is true while another replica holds the destination's lease.
	standby atomic.Bool
}

// status is the destination's health for /readyz.
func (d *destination) status() delivery.Status {
	st := d.runner.Status(d.client)
	if d.standby.Load() {
		st.State = "standby"
	}
	return st
}

// compilePlans compiles the mappings of every destination (only the one
// named only, when not ""); problems are configuration errors (exit 2),
// reported before anything starts.
func compilePlans(cfg *config.Config, only string) ([]*delivery.Plan, error) {
	var plans []*delivery.Plan
	var errs []error
	for i, d := range cfg.Destinations {
		if only != "" && d.Name != only {
			continue
		}
		p, perrs := delivery.NewPlan(cfg, i)
		plans = append(plans, p)
		errs = append(errs, perrs...)
	}
	if len(errs) > 0 {
		return nil, usageErr(errors.Join(errs...))
	}
	return plans, nil
}

// storedToken is a refreshed token kept in the state bucket, tied to the
// configured credentials it came from.
type storedToken struct {
	Token  linkedin.Token `json:"token"`
	Config string         `json:"config"`
}

func credentialsHash(a config.Auth) string {
	sum := sha256.Sum256([]byte(a.AccessToken.Value() + "\x00" + a.RefreshToken.Value() + "\x00" + a.ClientID.Value()))
	return hex.EncodeToString(sum[:])
}

// newDestinations builds clients and runners.
func newDestinations(ctx context.Context, cfg *config.Config, plans []*delivery.Plan, eng *stream.Engine, graph delivery.Graph, reg prometheus.Registerer, log *slog.Logger) ([]*destination, jetstream.KeyValue, error) {
	if len(plans) == 0 {
		return nil, nil, nil
	}
	state, err := eng.KV(ctx, stream.StateKV, 0)
	if err != nil {
		return nil, nil, err
	}
	metrics := delivery.NewMetrics(reg)
	var out []*destination
	for i, p := range plans {
		dc := cfg.Destinations[i]
		creds := linkedin.Credentials{
			AccessToken:  dc.Auth.AccessToken.Value(),
			RefreshToken: dc.Auth.RefreshToken.Value(),
			ClientID:     dc.Auth.ClientID.Value(),
			ClientSecret: dc.Auth.ClientSecret.Value(),
		}
		if dc.Auth.ExpiresAt != "" {
			creds.ExpiresAt, _ = time.Parse(time.RFC3339, dc.Auth.ExpiresAt)
		}
		tokenKey := "token." + dc.Name
		cfgHash := credentialsHash(dc.Auth)
		client, err := linkedin.NewClient(linkedin.ClientConfig{
			APIBase:       dc.APIBase,
			APIVersion:    dc.APIVersion,
			OAuthTokenURL: dc.Auth.TokenURL,
			Credentials:   creds,
			OnRefresh: func(t linkedin.Token) {
				b, _ := json.Marshal(storedToken{Token: t, Config: cfgHash})
				pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if _, err := state.Put(pctx, tokenKey, b); err != nil {
					log.Warn("could not save the refreshed token; it will be refreshed again after a restart", "destination", dc.Name, "error", err)
				}
			},
		}, linkedin.NewHTTPClient(30*time.Second), log)
		if err != nil {
			return nil, nil, fmt.Errorf("destination %s: %w", dc.Name, err)
		}
		// A token refreshed by an earlier run from the same configured
		// credentials is newer than the configured one.
		if e, err := state.Get(ctx, tokenKey); err == nil {
			var st storedToken
			if json.Unmarshal(e.Value(), &st) == nil && st.Config == cfgHash && st.Token.AccessToken != "" {
				client.SetToken(st.Token)
			}
		}
		runner := delivery.NewRunner(p, delivery.RunnerConfig{
			BatchSize:  dc.BatchSize,
			Linger:     dc.Linger.D(),
			PerMinute:  dc.RateLimit.PerMinute,
			PerDay:     dc.RateLimit.PerDay,
			APIVersion: dc.APIVersion,
		}, client, eng, graph, metrics, log)
		out = append(out, &destination{cfg: dc, plan: p, client: client, runner: runner, shared: cfg.Engine.NatsURL != "",
			state: state, tokenKey: tokenKey, credHash: cfgHash})
	}
	return out, state, nil
}

// run prepares the destination's rules (retrying while LinkedIn is
// unreachable or refuses) and delivers until ctx ends.
func (d *destination) run(ctx context.Context, state jetstream.KeyValue, log *slog.Logger) error {
	go d.runner.WatchToken(ctx, d.client)
	for attempt := 0; ; attempt++ {
		err := d.plan.PrepareRules(ctx, d.client, state, d.cfg.AdAccount)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		wait := min(5*time.Minute, time.Second<<min(attempt, 8))
		wake := d.runner.Resumed()
		if needsOperator(err) {
			// Only a new token or configuration helps: say so in /readyz.
			d.runner.Pause("conversion rules: " + err.Error())
		}
		log.Error("conversion rules not ready; delivery waits", "destination", d.cfg.Name, "error", err, "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		case <-wake:
		}
	}
	d.runner.Unpause()
	if !d.shared {
		// Embedded engine: the data directory's lock already makes this the
		// only process; a lease would only delay a restart after a crash.
		return d.runner.Run(ctx)
	}
	// Shared cluster: only the lease holder delivers; other replicas stand by.
	lease := delivery.NewLease(state, d.cfg.Name, 10*time.Second)
	return lease.Hold(ctx, func() {
		d.standby.Store(true)
		log.Info("another replica delivers this destination; standing by", "destination", d.cfg.Name)
	}, func(ctx context.Context) error {
		d.standby.Store(false)
		return d.runner.Run(ctx)
	})
}

// needsOperator reports whether a LinkedIn error can only be fixed by a
// person: a revoked or missing token, a missing permission, a sunset version.
func needsOperator(err error) bool {
	var ae *linkedin.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.Class {
	case linkedin.ClassAuthRevoked, linkedin.ClassAuthMissing, linkedin.ClassAuthExpired, linkedin.ClassForbidden, linkedin.ClassVersion:
		return true
	}
	return false
}

// Name is the destination's configured name.
func (d *destination) Name() string { return d.cfg.Name }

// Status is the destination's health (admin.Destination).
func (d *destination) Status() delivery.Status { return d.status() }

// InstallToken installs a new access token, keeps it across restarts (tied
// to the configured credentials, which win once changed, as refreshed tokens
// are) and resumes delivery. An error wrapping admin.ErrTokenNotSaved means
// the token is in use but could not be saved.
func (d *destination) InstallToken(ctx context.Context, accessToken string, expiresAt time.Time) error {
	d.client.SetAccessToken(accessToken, expiresAt)
	defer d.runner.Resume()
	b, err := json.Marshal(storedToken{Token: d.client.Token(), Config: d.credHash})
	if err != nil {
		return fmt.Errorf("%w: %w", admin.ErrTokenNotSaved, err)
	}
	if _, err := d.state.Put(ctx, d.tokenKey, b); err != nil {
		return fmt.Errorf("%w: save token of %s: %w", admin.ErrTokenNotSaved, d.cfg.Name, err)
	}
	return nil
}

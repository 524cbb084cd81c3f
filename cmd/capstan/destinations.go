package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstan-gw/capstan/internal/admin"
	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/delivery"
	lidest "github.com/capstan-gw/capstan/internal/delivery/linkedin"
	"github.com/capstan-gw/capstan/internal/privacy"
	"github.com/capstan-gw/capstan/internal/stream"
)

// newFormat returns the Format of a configured destination's type.
func newFormat(d config.Destination) (delivery.Format, error) {
	switch d.Type {
	case "", "linkedin":
		return lidest.NewFormat(lidest.FormatConfig{APIVersion: d.APIVersion, BatchSize: d.BatchSize})
	}
	return nil, fmt.Errorf("destination %s: unknown type %q", d.Name, d.Type)
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
		f, err := newFormat(d)
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
	cfg    config.Destination
	test   testDeps // test sends from the console (testevent.go)
	// rec reconciles with LinkedIn's reporting; serve runs it every
	// reconcile.interval unless reconcile.disabled (periodic false).
	rec      *lidest.Reconciler
	periodic bool
}

// Reconciliation returns the latest reconciliation with LinkedIn's
// reporting (nil before the first or when disabled) and the latest
// attempt's error; enabled is false with reconcile.disabled.
func (d *destination) Reconciliation() (latest any, lastError string, enabled bool) {
	rec, errText := d.rec.Latest()
	if rec == nil {
		return nil, errText, d.periodic
	}
	return rec, errText, d.periodic
}

// Reconcile reconciles now (admin: POST /admin/api/reconcile). It works
// also with reconcile.disabled, which only stops the periodic runs.
func (d *destination) Reconcile(ctx context.Context) (any, error) {
	rec, err := d.rec.Once(ctx)
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// Name returns the destination's name.
func (d *destination) Name() string { return d.runner.Name() }

// Status reports the destination's health.
func (d *destination) Status() delivery.Status { return d.runner.Status() }

// Info is the destination's conversion rules and rate-limit use.
func (d *destination) Info(ctx context.Context) admin.DestinationInfo {
	info := admin.DestinationInfo{Type: "linkedin", AdAccount: d.li.AdAccount(), RateLimit: d.runner.RateUsage(), Retrying: d.runner.Retrying()}
	for _, r := range d.li.Rules(ctx, d.runner.Plan()) { // the plan in force, also after a reload
		info.Rules = append(info.Rules, admin.Rule{
			Mapping: r.Mapping, RuleID: r.RuleID, Created: r.Created, Name: r.Name, Type: r.Type,
			Campaigns: r.Campaigns, CampaignsAssociated: r.CampaignsAssociated,
		})
	}
	return info
}

// InstallToken puts an operator's access token in use and resumes delivery
// at once, also when the token could not be saved (admin.ErrTokenNotSaved).
func (d *destination) InstallToken(ctx context.Context, accessToken string, expiresAt time.Time) error {
	err := d.li.InstallToken(ctx, accessToken, expiresAt)
	d.runner.Resume()
	if errors.Is(err, lidest.ErrTokenNotSaved) {
		return fmt.Errorf("%w: %w", admin.ErrTokenNotSaved, err)
	}
	return err
}

// ConnectRedirectURI is the destination's auth.redirect_uri (admin.Connector).
func (d *destination) ConnectRedirectURI() string { return d.cfg.Auth.RedirectURI }

// StartConnect starts the console's Connect LinkedIn (admin.Connector).
func (d *destination) StartConnect(redirectURI string) (string, string, error) {
	return lidest.StartConnect(d.cfg, redirectURI)
}

// FinishConnect finishes the console's Connect LinkedIn: a token that can
// deliver to the configured ad account is installed and delivery resumed
// (admin.Connector).
func (d *destination) FinishConnect(ctx context.Context, q url.Values, state, redirectURI string) (string, []string, error) {
	conn, err := lidest.FinishConnect(ctx, d.cfg, q, state, redirectURI, nil)
	if err != nil {
		return "", nil, err
	}
	if conn.Problem != nil {
		return "", nil, fmt.Errorf("the new token was not installed: %w", conn.Problem)
	}
	if d.cfg.AdAccount == 0 {
		// As `capstan auth linkedin`: the operator chooses one of the
		// member's accounts; the token is then stored and in use, and the
		// line to add to the configuration is shown.
		ce := &admin.ChooseAccountError{Choose: func(ctx context.Context, account int64) (string, string, []string, error) {
			if err := conn.CheckChosenAccount(d.Name(), account); err != nil {
				return "", "", nil, fmt.Errorf("the new token was not installed: %w", err)
			}
			summary, warnings, err := d.installConnected(ctx, conn, account)
			config := fmt.Sprintf("destinations:\n  - name: %s\n    ad_account: %d", d.Name(), account)
			return summary, config, warnings, err
		}}
		for _, a := range conn.Access.Accounts {
			c := admin.AccountChoice{Account: a.Account, Role: a.Role, Writable: a.CanWrite()}
			if !c.Writable {
				c.Reason = "the member is only " + a.Role + ": sending conversions needs ACCOUNT_BILLING_ADMIN, ACCOUNT_MANAGER, CAMPAIGN_MANAGER or CREATIVE_MANAGER"
			}
			ce.Accounts = append(ce.Accounts, c)
		}
		return "", nil, ce
	}
	return d.installConnected(ctx, conn, d.cfg.AdAccount)
}

// installConnected installs a connection's token for account and resumes
// delivery.
func (d *destination) installConnected(ctx context.Context, conn lidest.Connected, account int64) (string, []string, error) {
	role := ""
	for _, a := range conn.Access.Accounts {
		if a.Account == account {
			role = a.Role
		}
	}
	summary := connectDetail(account, role, conn)
	err := d.li.InstallConnected(ctx, conn.Token)
	d.runner.Resume()
	if errors.Is(err, lidest.ErrTokenNotSaved) {
		return summary, conn.Warnings(), fmt.Errorf("the token is in use but could not be saved; it will be lost on restart: connect again once the engine is healthy")
	}
	return summary, conn.Warnings(), err
}

// newDestinations builds the destinations and their runners; funnel (nil:
// none) counts their delivery statistics.
// suppressor returns sup as a delivery.Suppressor: nil for none (never a
// nil pointer in a non-nil interface).
func suppressor(sup *privacy.Suppressions) delivery.Suppressor {
	if sup == nil {
		return nil
	}
	return sup
}

func newDestinations(ctx context.Context, cfg *config.Config, plans []*delivery.Plan, eng *stream.Engine, graph delivery.Graph, sup delivery.Suppressor, guard *delivery.GuardLocal, funnel delivery.Funnel, reg prometheus.Registerer, log *slog.Logger) ([]*destination, error) {
	if len(plans) == 0 {
		return nil, nil
	}
	state, err := eng.KV(ctx, stream.StateKV, 0)
	if err != nil {
		return nil, err
	}
	key, err := secretKey(cfg)
	if err != nil {
		return nil, err
	}
	metrics := delivery.NewMetrics(reg)
	limits := delivery.NewLimits(nil)
	ledger, err := delivery.OpenLedger(ctx, eng)
	if err != nil {
		return nil, err
	}
	recMetrics := lidest.NewReconcileMetrics(reg)
	var out []*destination
	for i, p := range plans {
		dc := cfg.Destinations[i]
		li, err := lidest.New(ctx, lidest.Config{Destination: dc, State: state, Key: key}, log)
		if err != nil {
			return nil, err
		}
		deps := delivery.Deps{Engine: eng, Graph: graph, Suppressor: sup, Limits: limits, Metrics: metrics, Ledger: ledger, Funnel: funnel, GuardStore: guard, Log: log}
		if cfg.Engine.NatsURL != "" {
			// Shared cluster: only the lease holder delivers; other
			// replicas stand by. With the embedded engine the data
			// directory's lock already makes this the only process, and a
			// lease would only delay a restart after a crash.
			deps.Lease = delivery.NewLease(state, dc.Name, cfg.Engine.LeaseTTL.D())
		}
		runner, err := delivery.NewRunner(p, li, delivery.RunnerConfig{
			BatchSize: dc.BatchSize,
			Linger:    dc.Linger.D(),
			PerMinute: dc.RateLimit.PerMinute,
			PerDay:    dc.RateLimit.PerDay,

			EventIDCollision: dc.EventIDCollision,
		}, deps)
		if err != nil {
			return nil, err
		}
		var enr delivery.Enricher
		if graph != nil {
			enr = graph
		}
		out = append(out, &destination{runner: runner, li: li, cfg: dc,
			test:     testDeps{eng: eng, enr: enr, limits: limits, perMinute: dc.RateLimit.PerMinute, perDay: dc.RateLimit.PerDay},
			periodic: !dc.Reconcile.Disabled,
			rec:      lidest.NewReconciler(li, dc, runner.Plan, ledger, recMetrics, log)})
	}
	return out, nil
}

package linkedin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/delivery"
	capi "github.com/capstan-gw/capstan/internal/linkedin"
)

// Day and rule states of a Reconciliation.
const (
	// DayProcessing: the day (or its latest send) is younger than 72 h,
	// LinkedIn may still be ingesting and attributing (§21.1); never
	// flagged.
	DayProcessing = "processing"
	// DayMature: older than 72 h; its counts are compared.
	DayMature = "mature"

	// FlagNothingReported: conversions were accepted and nothing is
	// reported for them 72 h after sending.
	FlagNothingReported = "nothing_reported"
	// FlagLowRatio: reported/accepted is below reconcile.min_ratio.
	FlagLowRatio = "low_ratio"
)

// ReconcileDay is one rule's counts of one UTC day (the day the
// conversions happened, as LinkedIn's report files them, §21.9).
type ReconcileDay struct {
	Day string `json:"day"`
	// Accepted is capstan's count of conversions LinkedIn accepted (2xx).
	Accepted int64 `json:"accepted"`
	// Reported is LinkedIn's externalWebsiteConversions (nil: unknown,
	// the report could not be read).
	Reported *int64 `json:"reported"`
	// Ratio is Reported/Accepted (nil without both).
	Ratio *float64 `json:"ratio"`
	// Collisions counts eventId collisions found that day.
	Collisions int64 `json:"collisions,omitempty"`
	// State is DayProcessing or DayMature.
	State string `json:"state"`
	// LastSent is when the day's latest conversion was accepted.
	LastSent *time.Time `json:"lastSent,omitempty"`
}

// ReconcileRule is one conversion rule's reconciliation.
type ReconcileRule struct {
	Rule string `json:"rule"`
	// Mappings are capstan's mappings feeding the rule.
	Mappings []string `json:"mappings,omitempty"`
	// Accepted, Reported and Ratio sum the mature days.
	Accepted int64    `json:"accepted"`
	Reported *int64   `json:"reported"`
	Ratio    *float64 `json:"ratio"`
	// Collisions sums every day's eventId collisions.
	Collisions int64 `json:"collisions,omitempty"`
	// Flag is "", FlagNothingReported or FlagLowRatio; Reason says why
	// and what to check.
	Flag   string         `json:"flag,omitempty"`
	Reason string         `json:"reason,omitempty"`
	Days   []ReconcileDay `json:"days"`
}

// Reconciliation compares, per rule and day, the conversions LinkedIn
// accepted from capstan with those it reports (adAnalytics, §21).
type Reconciliation struct {
	Destination string    `json:"destination"`
	Account     int64     `json:"adAccount"`
	At          time.Time `json:"at"`
	From        string    `json:"from"`
	To          string    `json:"to"`
	// MinRatio and MinAccepted are the flagging thresholds used.
	MinRatio    float64 `json:"minRatio"`
	MinAccepted int     `json:"minAccepted"`
	// MissingScope names the scope the token lacks for reporting
	// ("r_ads_reporting"); delivery is unaffected. Error says what failed
	// and how to fix it; Reported values are then nil.
	MissingScope string `json:"missingScope,omitempty"`
	Error        string `json:"error,omitempty"`
	// Flagged counts the flagged rules.
	Flagged int             `json:"flagged"`
	Rules   []ReconcileRule `json:"rules"`
}

// ReconcileOptions are a reconciliation's parameters.
type ReconcileOptions struct {
	// Days is how many UTC days back, today included. Default 14.
	Days int
	// MinRatio and MinAccepted: a rule whose mature days have at least
	// MinAccepted accepted conversions is flagged when its ratio is below
	// MinRatio, or when nothing is reported. Defaults 0.2 and 50.
	MinRatio    float64
	MinAccepted int
	// Now is the reconciliation's time. Default time.Now().
	Now time.Time
}

func (o *ReconcileOptions) defaults() {
	if o.Days <= 0 {
		o.Days = config.DefaultReconcileDays
	}
	if o.MinRatio <= 0 {
		o.MinRatio = config.DefaultReconcileMinRatio
	}
	if o.MinAccepted <= 0 {
		o.MinAccepted = config.DefaultReconcileMinAccepted
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
}

// RuleMappings returns, per rule id, the mappings of plan that feed it: a
// configured id, or the id of the rule created for the mapping as kept in
// the state bucket.
func RuleMappings(ctx context.Context, state jetstream.KeyValue, plan *delivery.Plan) (map[string][]string, error) {
	out := map[string][]string{}
	for _, r := range plan.Routes {
		if r.Config == nil {
			continue
		}
		id := ""
		if r.Config.ConversionRule.ID != 0 {
			id = strconv.FormatInt(r.Config.ConversionRule.ID, 10)
		} else {
			e, err := state.Get(ctx, RuleKey(plan.Name, r.Name))
			switch {
			case errors.Is(err, jetstream.ErrKeyNotFound):
				continue // not created yet
			case err != nil:
				return nil, fmt.Errorf("rule id of mapping %q: %w", r.Name, err)
			}
			id = string(e.Value())
		}
		out[id] = append(out[id], r.Name)
	}
	return out, nil
}

// Reconcile reads account's conversion report for the last o.Days UTC days
// and compares it with the ledger's accepted counts of dest. A token
// without r_ads_reporting gives a Reconciliation with MissingScope and the
// accepted counts alone, not an error; other failures of LinkedIn or the
// ledger are errors.
func Reconcile(ctx context.Context, client *capi.Client, account int64, ledger *delivery.Ledger, dest string, mappings map[string][]string, o ReconcileOptions) (*Reconciliation, error) {
	o.defaults()
	now := o.Now.UTC()
	to := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	from := to.AddDate(0, 0, -(o.Days - 1))
	rec := &Reconciliation{Destination: dest, Account: account, At: now, From: from.Format(time.DateOnly), To: to.Format(time.DateOnly),
		MinRatio: o.MinRatio, MinAccepted: o.MinAccepted, Rules: []ReconcileRule{}}
	tallies, err := ledger.Tallies(ctx, dest, from)
	if err != nil {
		return nil, err
	}
	rows, err := client.ConversionReport(ctx, account, from, to)
	var scopeErr *capi.ReportingScopeError
	switch {
	case errors.As(err, &scopeErr):
		rec.MissingScope = capi.ScopeReporting
		rec.Error = "LinkedIn refused the conversion report: the access token lacks the " + capi.ScopeReporting +
			" scope (delivery is not affected). Authorise again with it: `capstan auth linkedin --config FILE --destination " + dest +
			"` requests r_ads, r_ads_reporting and rw_conversions; or generate a token with r_ads_reporting in the LinkedIn Developer Portal's token generator and install it (LinkedIn: " +
			scopeErr.APIError.Message + ")"
		rows = nil
	case errors.Is(err, capi.ErrReauthRequired):
		// Never connected, expired or revoked: say how to connect.
		ae := client.TokenError(err)
		ae.Destination = dest
		return nil, fmt.Errorf("read LinkedIn's conversion report: %w", ae)
	case err != nil:
		return nil, err
	}
	known := rec.MissingScope == ""

	type key struct{ rule, day string }
	reported := map[key]int64{}
	for _, r := range rows {
		reported[key{r.Rule, r.Day.Format(time.DateOnly)}] += r.Conversions
	}
	accepted := map[key]delivery.Tally{}
	rules := map[string]bool{}
	for id := range mappings {
		rules[id] = true
	}
	for _, t := range tallies {
		if t.Rule == "" {
			continue
		}
		accepted[key{t.Rule, t.Day}] = t
		rules[t.Rule] = true
	}
	ids := make([]string, 0, len(rules))
	for id := range rules {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return compareStrings(a, b)
	})
	for _, id := range ids {
		rr := ReconcileRule{Rule: id, Mappings: mappings[id], Days: []ReconcileDay{}}
		var matureReported int64
		for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
			day := d.Format(time.DateOnly)
			t := accepted[key{id, day}]
			rep, hasRep := reported[key{id, day}]
			if t.Accepted == 0 && t.Collisions == 0 && !hasRep {
				continue
			}
			rd := ReconcileDay{Day: day, Accepted: t.Accepted, Collisions: t.Collisions, State: DayMature}
			// Complete 72 h after the day's latest send; a day capstan sent
			// nothing for, 72 h after it ended.
			settled := d.AddDate(0, 0, 1)
			if t.LastSent > 0 {
				sent := time.UnixMilli(t.LastSent).UTC()
				rd.LastSent = &sent
				settled = sent
			}
			if now.Before(settled.Add(capi.ReportingDelay)) {
				rd.State = DayProcessing
			}
			if known {
				v := rep
				rd.Reported = &v
				if t.Accepted > 0 {
					ratio := float64(rep) / float64(t.Accepted)
					rd.Ratio = &ratio
				}
			}
			rr.Collisions += t.Collisions
			if rd.State == DayMature {
				rr.Accepted += t.Accepted
				matureReported += rep
			}
			rr.Days = append(rr.Days, rd)
		}
		if known {
			rr.Reported = &matureReported
			if rr.Accepted > 0 {
				ratio := float64(matureReported) / float64(rr.Accepted)
				rr.Ratio = &ratio
			}
			switch {
			case rr.Accepted < int64(o.MinAccepted):
			case matureReported == 0:
				// Spec §21.1, §21.9: "accepted, none reported" is what a
				// disabled rule or one without associated campaigns
				// gives; only an enabled, associated rule is flagged.
				if why := expectedNothing(ctx, client, account, id); why != "" {
					rr.Reason = fmt.Sprintf("LinkedIn accepted %d conversions more than 72 h ago and reports none, as expected: %s", rr.Accepted, why)
					break
				}
				rr.Flag = FlagNothingReported
				rr.Reason = fmt.Sprintf("LinkedIn accepted %d conversions more than 72 h ago and reports none: check that the rule is enabled and associated with running campaigns (mappings[].campaigns, or conversion_rule.create.auto_association_type: ALL_CAMPAIGNS), and that the events carry li_fat_id or email", rr.Accepted)
			case *rr.Ratio < o.MinRatio:
				rr.Flag = FlagLowRatio
				rr.Reason = fmt.Sprintf("LinkedIn reports %d of %d accepted conversions (%.0f%%, under %.0f%%): few are matched to members who saw a campaign; send li_fat_id (the click id) or email with more events", matureReported, rr.Accepted, 100**rr.Ratio, 100*o.MinRatio)
			}
		}
		if rr.Flag != "" {
			rec.Flagged++
		}
		if len(rr.Days) > 0 || len(rr.Mappings) > 0 {
			rec.Rules = append(rec.Rules, rr)
		}
	}
	return rec, nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// expectedNothing says why LinkedIn is expected to report nothing for
// rule id (spec §21.1): it is disabled, or no campaign is associated with
// it. "" when it is enabled and associated, or could not be read (the rule
// is then flagged, as before).
func expectedNothing(ctx context.Context, client *capi.Client, account int64, id string) string {
	r, err := client.GetRule(ctx, account, id)
	switch {
	case err != nil:
		return ""
	case !r.Enabled:
		return "the rule is disabled, and LinkedIn counts conversions only for enabled rules (enable it: conversion_rule.create.enabled, or Campaign Manager)"
	case len(r.Campaigns) == 0 && len(r.Associations) == 0:
		return "no campaign is associated with the rule, and LinkedIn attributes conversions only to associated campaigns " +
			"(mappings[].campaigns, conversion_rule.create.auto_association_type: ALL_CAMPAIGNS, or Campaign Manager)"
	}
	return ""
}

// ReconcileMetrics are the metrics of periodic reconciliation. Create one
// with NewReconcileMetrics and share it.
type ReconcileMetrics struct {
	ratio, accepted, reported *prometheus.GaugeVec
	flagged, unavailable      *prometheus.GaugeVec
	last                      *prometheus.GaugeVec
	runs                      *prometheus.CounterVec
}

// NewReconcileMetrics registers the reconciliation metrics on reg (nil:
// not registered).
func NewReconcileMetrics(reg prometheus.Registerer) *ReconcileMetrics {
	m := &ReconcileMetrics{
		ratio: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "capstan_reconcile_ratio",
			Help: "Conversions LinkedIn reports divided by those it accepted, per rule, over the reconciled days older than 72 h: a match-and-attribution rate, not a delivery rate.",
		}, []string{"destination", "rule"}),
		accepted: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "capstan_reconcile_accepted",
			Help: "Conversions LinkedIn accepted per rule over the reconciled days older than 72 h.",
		}, []string{"destination", "rule"}),
		reported: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "capstan_reconcile_reported",
			Help: "Conversions LinkedIn reports (adAnalytics) per rule over the reconciled days older than 72 h.",
		}, []string{"destination", "rule"}),
		flagged: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "capstan_reconcile_flagged",
			Help: "Rules flagged by the latest reconciliation (nothing reported 72 h after sending, or a ratio under reconcile.min_ratio).",
		}, []string{"destination"}),
		unavailable: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "capstan_reconcile_reporting_unavailable",
			Help: "1 while LinkedIn refuses the conversion report (the token lacks r_ads_reporting); delivery is unaffected.",
		}, []string{"destination"}),
		last: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "capstan_reconcile_last_success_timestamp_seconds",
			Help: "When the latest reconciliation that read LinkedIn's report finished.",
		}, []string{"destination"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capstan_reconcile_runs_total",
			Help: "Reconciliations by result: ok, missing_scope, error.",
		}, []string{"destination", "result"}),
	}
	if reg != nil {
		reg.MustRegister(m.ratio, m.accepted, m.reported, m.flagged, m.unavailable, m.last, m.runs)
	}
	return m
}

// Reconciler runs a destination's reconciliation periodically and keeps
// the latest result for the console. Safe for concurrent use.
type Reconciler struct {
	dest     *Destination
	name     string
	ledger   *delivery.Ledger
	plan     func() *delivery.Plan // the plan in force (it changes on reload)
	opts     ReconcileOptions
	interval time.Duration
	m        *ReconcileMetrics
	log      *slog.Logger

	mu   sync.Mutex
	last *Reconciliation
	err  string
}

// NewReconciler returns the reconciler of destination dc (its
// reconcile settings), reading the rules of the plan in force (plan, such
// as Runner.Plan) and ledger's counts.
func NewReconciler(d *Destination, dc config.Destination, plan func() *delivery.Plan, ledger *delivery.Ledger, m *ReconcileMetrics, log *slog.Logger) *Reconciler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = NewReconcileMetrics(nil)
	}
	return &Reconciler{
		dest: d, name: dc.Name, ledger: ledger, plan: plan, m: m, interval: dc.Reconcile.Interval.D(),
		opts: ReconcileOptions{Days: dc.Reconcile.Days, MinRatio: dc.Reconcile.MinRatio, MinAccepted: dc.Reconcile.MinAccepted},
		log:  log.With("component", "reconcile", "destination", dc.Name),
	}
}

// Run reconciles once shortly after the start and then every interval,
// until ctx ends.
func (r *Reconciler) Run(ctx context.Context) {
	wait := time.Minute // let Prepare create the rules first
	if r.interval <= 0 {
		r.interval = config.DefaultReconcileInterval
	}
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		_, _ = r.Once(ctx)
		wait = r.interval
	}
}

// Once reconciles now, records the result (metrics, Latest) and returns it.
func (r *Reconciler) Once(ctx context.Context) (*Reconciliation, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	maps, err := RuleMappings(ctx, r.dest.state, r.plan())
	var rec *Reconciliation
	if err == nil {
		o := r.opts
		o.Now = time.Now()
		rec, err = Reconcile(ctx, r.dest.client, r.dest.account, r.ledger, r.name, maps, o)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.err = err.Error()
		r.m.runs.WithLabelValues(r.name, "error").Inc()
		r.log.Warn("reconciliation failed; retried at the next interval", "error", err, "interval", r.interval.String())
		return nil, err
	}
	r.last, r.err = rec, ""
	if rec.MissingScope != "" {
		r.m.runs.WithLabelValues(r.name, "missing_scope").Inc()
		r.m.unavailable.WithLabelValues(r.name).Set(1)
		r.log.Warn("conversion reporting unavailable: the token lacks a scope; delivery continues", "missing_scope", rec.MissingScope, "detail", rec.Error)
		return rec, nil
	}
	r.m.runs.WithLabelValues(r.name, "ok").Inc()
	r.m.unavailable.WithLabelValues(r.name).Set(0)
	r.m.last.WithLabelValues(r.name).Set(float64(rec.At.Unix()))
	r.m.flagged.WithLabelValues(r.name).Set(float64(rec.Flagged))
	for _, rr := range rec.Rules {
		r.m.accepted.WithLabelValues(r.name, rr.Rule).Set(float64(rr.Accepted))
		if rr.Reported != nil {
			r.m.reported.WithLabelValues(r.name, rr.Rule).Set(float64(*rr.Reported))
		}
		if rr.Ratio != nil {
			r.m.ratio.WithLabelValues(r.name, rr.Rule).Set(*rr.Ratio)
		}
		if rr.Flag != "" {
			r.log.Warn("reconciliation flagged a rule", "rule", rr.Rule, "flag", rr.Flag, "reason", rr.Reason)
		}
	}
	r.log.Info("reconciled with LinkedIn's conversion report", "rules", len(rec.Rules), "flagged", rec.Flagged)
	return rec, nil
}

// Latest returns the latest reconciliation (nil before the first) and the
// error of the latest attempt, if it failed.
func (r *Reconciler) Latest() (*Reconciliation, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last, r.err
}

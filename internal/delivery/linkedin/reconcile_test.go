package linkedin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstan-gw/capstan/internal/delivery"
	capi "github.com/capstan-gw/capstan/internal/linkedin"
	"github.com/capstan-gw/capstan/internal/sandbox"
)

// reconcileMappings: clicks (li_fat_id: always matched) and newsletter
// sign-ups (email only), both associated with a campaign.
const reconcileMappings = `      - name: Clicks
        trigger: 'type = "track" and event = "Sign Up"'
        conversion_rule: {create: {name: "Clicks (capstan)", type: SIGN_UP}}
        campaigns: [435901]
      - name: Newsletter
        trigger: 'type = "track" and event = "Newsletter"'
        conversion_rule: {create: {name: "Newsletter (capstan)", type: LEAD}}
        campaigns: [435902]
`

func reconcileHarness(t *testing.T, scopes []string) *harness {
	return newHarness(t, opts{
		mappings: reconcileMappings,
		sandbox: sandbox.Config{
			Tokens:    []sandbox.TokenSpec{{Token: "tok", AdAccount: account, Scopes: scopes}},
			Reporting: sandbox.Reporting{Delay: sandbox.Duration(72 * time.Hour), EmailMatchShare: 0.05},
		},
	})
}

func (h *harness) sendReconcileEvents(n int) {
	var evs []string
	for i := range n {
		evs = append(evs, signUpEvent(i, ""))
		evs = append(evs, fmt.Sprintf(`{"type":"track","event":"Newsletter","userId":"n%d","messageId":"n-%05d","traits":{"email":"reader%d@example.com"}}`, i, i, i))
	}
	h.send(evs...)
	eventually(h.t, 30*time.Second, "every conversion counted", func() bool {
		ts, err := h.ledger.Tallies(context.Background(), "li", h.clock.Now().Add(-24*time.Hour))
		var sum int64
		for _, t := range ts {
			sum += t.Accepted
		}
		return err == nil && sum == int64(2*n)
	})
}

func (h *harness) reconcile(now time.Time) *Reconciliation {
	h.t.Helper()
	maps, err := RuleMappings(context.Background(), h.dest.state, h.plan)
	if err != nil {
		h.t.Fatal(err)
	}
	rec, err := Reconcile(context.Background(), h.client, account, h.ledger, "li", maps, ReconcileOptions{MinAccepted: 20, Now: now})
	if err != nil {
		h.t.Fatal(err)
	}
	return rec
}

func ruleOf(t *testing.T, rec *Reconciliation, mapping string) ReconcileRule {
	t.Helper()
	for _, r := range rec.Rules {
		for _, m := range r.Mappings {
			if m == mapping {
				return r
			}
		}
	}
	t.Fatalf("no rule for mapping %s in %+v", mapping, rec)
	return ReconcileRule{}
}

func TestReconcileBeforeAndAfterDelay(t *testing.T) {
	h := reconcileHarness(t, []string{"r_ads", "rw_conversions", "r_ads_reporting"})
	h.sendReconcileEvents(40)

	// Within 72 h: the day is processing, nothing reported, nothing flagged.
	rec := h.reconcile(h.clock.Now())
	if rec.MissingScope != "" || rec.Flagged != 0 || len(rec.Rules) != 2 {
		t.Fatalf("before: %+v", rec)
	}
	for _, m := range []string{"Clicks", "Newsletter"} {
		r := ruleOf(t, rec, m)
		if len(r.Days) != 1 || r.Days[0].State != DayProcessing || r.Days[0].Accepted != 40 || *r.Days[0].Reported != 0 || r.Flag != "" {
			t.Errorf("before, %s: %+v %+v", m, r, r.Days)
		}
	}

	// 72 h later: clicks all reported (li_fat_id), newsletter few (email
	// at 5%): flagged.
	_ = h.clock.Sleep(context.Background(), 72*time.Hour+time.Minute)
	rec = h.reconcile(h.clock.Now())
	clicks, news := ruleOf(t, rec, "Clicks"), ruleOf(t, rec, "Newsletter")
	if clicks.Days[0].State != DayMature || clicks.Accepted != 40 || *clicks.Reported != 40 || *clicks.Ratio != 1 || clicks.Flag != "" {
		t.Errorf("after, clicks: %+v %+v", clicks, clicks.Days)
	}
	if news.Accepted != 40 || *news.Reported > 8 || news.Flag == "" || rec.Flagged != 1 {
		t.Errorf("after, newsletter: %+v (flagged %d)", news, rec.Flagged)
	}
	t.Logf("newsletter: %d of %d reported, %s: %s", *news.Reported, news.Accepted, news.Flag, news.Reason)
}

func TestReconcileWithoutReportingScope(t *testing.T) {
	h := reconcileHarness(t, []string{"r_ads", "rw_conversions"})
	h.sendReconcileEvents(5) // delivery works without the scope
	rec := h.reconcile(h.clock.Now())
	if rec.MissingScope != "r_ads_reporting" || len(rec.Rules) != 2 || rec.Rules[0].Days[0].Accepted != 5 || rec.Rules[0].Reported != nil {
		t.Fatalf("%+v", rec)
	}
	t.Log(rec.Error)
	_, err := h.client.ConversionReport(context.Background(), account, h.clock.Now(), h.clock.Now())
	if !errors.Is(err, capi.ErrReportingScope) {
		t.Errorf("error %v", err)
	}
}

// A destination never connected, or whose token was revoked, cannot read
// the report: the error says so and names the command that connects it,
// not LinkedIn's bare 401.
func TestReconcileWithoutUsableToken(t *testing.T) {
	h := reconcileHarness(t, []string{"r_ads", "rw_conversions", "r_ads_reporting"})
	maps, err := RuleMappings(context.Background(), h.dest.state, h.plan)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what, want string) {
		t.Helper()
		_, err := Reconcile(context.Background(), h.client, account, h.ledger, "li", maps, ReconcileOptions{Now: h.clock.Now()})
		t.Logf("%s: %v", what, err)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "capstan auth linkedin --config FILE --destination li") {
			t.Errorf("%s: %v, want %q and the command that connects", what, err, want)
		}
	}
	h.sb.RevokeToken("tok")
	check("revoked", "not usable")
	h.client.SetToken(capi.Token{})
	check("no token", "the destination has no access token yet")
}

// gauge returns the value of metric name with labels from reg; -1 when
// absent.
func gauge(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// serve's Reconciler records each run: the result for the console
// (Latest) and the metrics; a token without r_ads_reporting sets
// capstan_reconcile_reporting_unavailable and counts a missing_scope run.
func TestReconcilerMetrics(t *testing.T) {
	for _, tc := range []struct {
		name   string
		scopes []string
	}{
		{"reporting", []string{"r_ads", "rw_conversions", "r_ads_reporting"}},
		{"no reporting scope", []string{"r_ads", "rw_conversions"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := reconcileHarness(t, tc.scopes)
			h.sendReconcileEvents(5)
			reg := prometheus.NewRegistry()
			r := NewReconciler(h.dest, h.dc, func() *delivery.Plan { return h.plan }, h.ledger, NewReconcileMetrics(reg), nil)
			rec, err := r.Once(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if latest, lastErr := r.Latest(); latest != rec || lastErr != "" {
				t.Errorf("Latest() = %p, %q; want the run's result", latest, lastErr)
			}
			dest := map[string]string{"destination": "li"}
			if tc.scopes[len(tc.scopes)-1] == "r_ads_reporting" {
				if v := gauge(t, reg, "capstan_reconcile_runs_total", map[string]string{"destination": "li", "result": "ok"}); v != 1 {
					t.Errorf("runs_total{ok} = %v", v)
				}
				if v := gauge(t, reg, "capstan_reconcile_reporting_unavailable", dest); v != 0 {
					t.Errorf("reporting_unavailable = %v", v)
				}
				if v := gauge(t, reg, "capstan_reconcile_last_success_timestamp_seconds", dest); v <= 0 {
					t.Errorf("last_success_timestamp_seconds = %v", v)
				}
				if v := gauge(t, reg, "capstan_reconcile_flagged", dest); v != 0 {
					t.Errorf("flagged = %v (the day is still processing)", v)
				}
				rule := ruleOf(t, rec, "Clicks").Rule
				if v := gauge(t, reg, "capstan_reconcile_accepted", map[string]string{"destination": "li", "rule": rule}); v != 0 {
					t.Errorf("accepted{rule %s} = %v, want 0 (mature days only)", rule, v)
				}
				return
			}
			if v := gauge(t, reg, "capstan_reconcile_runs_total", map[string]string{"destination": "li", "result": "missing_scope"}); v != 1 {
				t.Errorf("runs_total{missing_scope} = %v", v)
			}
			if v := gauge(t, reg, "capstan_reconcile_reporting_unavailable", dest); v != 1 {
				t.Errorf("reporting_unavailable = %v", v)
			}
			if rec.MissingScope != "r_ads_reporting" {
				t.Errorf("missing scope %q", rec.MissingScope)
			}
		})
	}
}

// expectedMappings: an enabled, associated rule fed email-only events
// LinkedIn never matches (Emails), a rule without campaigns (Unassociated)
// and a disabled one (Disabled).
const expectedMappings = `      - name: Emails
        trigger: 'type = "track" and event = "Newsletter"'
        conversion_rule: {create: {name: "Emails (capstan)", type: LEAD}}
        campaigns: [435902]
      - name: Unassociated
        trigger: 'type = "track" and event = "Webinar"'
        conversion_rule: {create: {name: "Unassociated (capstan)", type: LEAD}}
      - name: Disabled
        trigger: 'type = "track" and event = "Trial"'
        conversion_rule: {create: {name: "Disabled (capstan)", type: LEAD, enabled: false}}
        campaigns: [435901]
`

// Nothing reported 72 h later is flagged only for an enabled rule with
// associated campaigns (spec §21.1, §21.9): for a disabled rule or one
// without campaigns it is what LinkedIn does, said in the reason.
func TestReconcileNothingReportedExpected(t *testing.T) {
	h := newHarness(t, opts{
		mappings: expectedMappings,
		sandbox: sandbox.Config{
			Tokens:    []sandbox.TokenSpec{{Token: "tok", AdAccount: account, Scopes: []string{"r_ads", "rw_conversions", "r_ads_reporting"}}},
			Reporting: sandbox.Reporting{Delay: sandbox.Duration(72 * time.Hour), EmailMatchShare: -1, MatchedShare: -1},
		},
	})
	const n = 10
	var evs []string
	for _, name := range []string{"Newsletter", "Webinar", "Trial"} {
		for i := range n {
			evs = append(evs, fmt.Sprintf(`{"type":"track","event":%q,"userId":"u%d","messageId":"%s-%05d","traits":{"email":"r%d@example.com"}}`, name, i, name, i, i))
		}
	}
	h.send(evs...)
	eventually(t, 30*time.Second, "every conversion counted", func() bool {
		ts, err := h.ledger.Tallies(context.Background(), "li", h.clock.Now().Add(-24*time.Hour))
		var sum int64
		for _, tl := range ts {
			sum += tl.Accepted
		}
		return err == nil && sum == 3*n
	})
	_ = h.clock.Sleep(context.Background(), 72*time.Hour+time.Minute)
	maps, err := RuleMappings(context.Background(), h.dest.state, h.plan)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := Reconcile(context.Background(), h.client, account, h.ledger, "li", maps, ReconcileOptions{MinAccepted: 5, Now: h.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ mapping, flag, reason string }{
		{"Emails", FlagNothingReported, "check that the rule is enabled"},
		{"Unassociated", "", "as expected: no campaign is associated"},
		{"Disabled", "", "as expected: the rule is disabled"},
	} {
		r := ruleOf(t, rec, tc.mapping)
		if r.Accepted != n || r.Reported == nil || *r.Reported != 0 || r.Flag != tc.flag || !strings.Contains(r.Reason, tc.reason) {
			t.Errorf("%s: accepted %d, reported %v, flag %q, reason %q; want flag %q, reason with %q", tc.mapping, r.Accepted, r.Reported, r.Flag, r.Reason, tc.flag, tc.reason)
		}
	}
	if rec.Flagged != 1 {
		t.Errorf("%d rules flagged, want 1", rec.Flagged)
	}
}

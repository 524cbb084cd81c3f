package linkedin

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/sandbox"
)

func purchaseSpec(name string) RuleSpec {
	return RuleSpec{Name: name, Type: "PURCHASE", AttributionType: "LAST_TOUCH_BY_CAMPAIGN"}
}

func TestRuleLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client(t, e.config())
	ctx := t.Context()

	created, err := c.CreateRule(ctx, sbAccount, purchaseSpec("CAPI Purchase"))
	if err != nil {
		t.Fatal(err)
	}
	if created.ID == "" || created.Account != sbAccount || created.ConversionMethod != MethodConversionsAPI ||
		created.PostClickWindowDays != 30 || created.ViewThroughWindowDays != 7 || !created.Enabled ||
		!created.Created.Equal(specNow) {
		t.Errorf("created rule %+v", created)
	}
	rec := e.requests("conversions")[0]
	if rec.Headers.Get("X-Restli-Protocol-Version") != "2.0.0" || rec.Headers.Get("Content-Type") != "application/json" {
		t.Errorf("create headers %v", rec.Headers)
	}
	wantBody := `{"name":"CAPI Purchase","account":"urn:li:sponsoredAccount:508747394","conversionMethod":"CONVERSIONS_API",` +
		`"postClickAttributionWindowSize":30,"viewThroughAttributionWindowSize":7,"attributionType":"LAST_TOUCH_BY_CAMPAIGN","type":"PURCHASE"}`
	if rec.Body != wantBody {
		t.Errorf("create body\n%s\nwant\n%s", rec.Body, wantBody)
	}

	got, err := c.GetRule(ctx, sbAccount, created.URN())
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != created.ID || got.Name != "CAPI Purchase" || got.Type != "PURCHASE" {
		t.Errorf("GetRule = %+v", got)
	}

	name, window, enabled := "CAPI Purchase (EU)", 90, false
	if err := c.UpdateRule(ctx, sbAccount, created.ID, RulePatch{Name: &name, PostClickWindowDays: &window, Enabled: &enabled}); err != nil {
		t.Fatal(err)
	}
	upd := e.requests("conversions")
	last := upd[len(upd)-1]
	if last.Headers.Get("X-Restli-Method") != MethodPartialUpdate || last.Status != http.StatusNoContent ||
		last.Body != `{"patch":{"$set":{"name":"CAPI Purchase (EU)","enabled":false,"postClickAttributionWindowSize":90}}}` {
		t.Errorf("update sent %s %q with %v, answered %d", last.Method, last.Body, last.Headers, last.Status)
	}
	got, err = c.GetRule(ctx, sbAccount, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != name || got.PostClickWindowDays != 90 || got.Enabled {
		t.Errorf("after update: %+v", got)
	}

	rules, err := c.ListRules(ctx, sbAccount)
	if err != nil {
		t.Fatal(err)
	}
	ids := ruleIDs(rules)
	for _, want := range []string{sbRule, sbInsightRule, created.ID} {
		if !slices.Contains(ids, want) {
			t.Errorf("ListRules ids %v lack %s", ids, want)
		}
	}
}

func ruleIDs(rs []Rule) []string {
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.ID
	}
	return ids
}

func TestListRulesPaging(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client(t, e.config())
	c.pageSize = 2
	const extra = 5
	for i := range extra {
		if _, err := c.CreateRule(t.Context(), sbAccount, purchaseSpec(fmt.Sprintf("rule %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	rules, err := c.ListRules(t.Context(), sbAccount)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != extra+2 { // plus the two seeded rules of the account
		t.Errorf("ListRules returned %d rules, want %d: %v", len(rules), extra+2, ruleIDs(rules))
	}
	var pages int
	for _, r := range e.requests("conversions") {
		if r.Method == http.MethodGet {
			pages++
		}
	}
	if pages != 4 { // 2+2+2+1
		t.Errorf("%d pages requested, want 4", pages)
	}
}

func TestRuleErrors(t *testing.T) {
	tests := []struct {
		name   string
		fault  *sandbox.Fault
		run    func(c *Client) error
		status int
		is     error
		msg    string
	}{
		{name: "get unknown rule", run: func(c *Client) error {
			_, err := c.GetRule(t.Context(), sbAccount, "999")
			return err
		}, status: 404, is: ErrNotFound, msg: "Conversion 999 not found"},
		{name: "get rule of another account", run: func(c *Client) error {
			_, err := c.GetRule(t.Context(), sbViewerAcct, sbRule)
			return err
		}, status: 403, is: ErrForbidden},
		{name: "create with a 365-day window on SIGN_UP", run: func(c *Client) error {
			_, err := c.CreateRule(t.Context(), sbAccount, RuleSpec{Name: "x", Type: "SIGN_UP", AttributionType: "LAST_TOUCH_BY_CAMPAIGN", PostClickWindowDays: 365})
			return err
		}, status: 400, msg: "Invalid postClickAttributionWindowSize 365 for conversion type SIGN_UP"},
		{name: "create with unknown type", run: func(c *Client) error {
			_, err := c.CreateRule(t.Context(), sbAccount, RuleSpec{Name: "x", Type: "SIGNUP"})
			return err
		}, status: 422, msg: `ERROR :: /type :: "SIGNUP" is not an enum symbol`},
		{name: "rate limited", fault: &sandbox.Fault{Endpoint: "conversions", Action: sandbox.FaultRateLimit, RetryAfter: 7},
			run: func(c *Client) error {
				_, err := c.ListRules(t.Context(), sbAccount)
				return err
			}, status: 429, is: ErrRateLimited},
		{name: "server error", fault: &sandbox.Fault{Endpoint: "conversions", Action: sandbox.FaultStatus, Status: 503, Body: "html"},
			run: func(c *Client) error {
				return c.UpdateRule(t.Context(), sbAccount, sbRule, RulePatch{})
			}, status: 503},
		{name: "version", run: func(c *Client) error {
			c.cfg.APIVersion = "202401"
			_, err := c.CheckToken(t.Context())
			return err
		}, status: 426, is: ErrVersionInactive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			c := e.client(t, e.config())
			if tt.fault != nil {
				e.addFault(t, *tt.fault)
			}
			err := tt.run(c)
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v (%T), want *APIError", err, err)
			}
			if ae.Status != tt.status {
				t.Errorf("status %d, want %d (%v)", ae.Status, tt.status, err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("%v does not match %v", err, tt.is)
			}
			if tt.msg != "" && !strings.Contains(ae.Message, tt.msg) {
				t.Errorf("message %q lacks %q", ae.Message, tt.msg)
			}
			if ae.RequestID == "" {
				t.Errorf("no X-LI-UUID in %v", err)
			}
			if retry := tt.status == 429 || tt.status >= 500; ae.Retryable() != retry {
				t.Errorf("Retryable() = %t, want %t", ae.Retryable(), retry)
			}
			if tt.status == 429 && ae.RetryAfter != 7*time.Second {
				t.Errorf("RetryAfter = %s, want 7s", ae.RetryAfter)
			}
		})
	}
}

func TestEnsureRule(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client(t, e.config())
	ctx := t.Context()
	spec := RuleSpec{Name: "Sign Up (capstan)", Type: "SIGN_UP", AttributionType: "LAST_TOUCH_BY_CAMPAIGN",
		PostClickWindowDays: 30, ViewThroughWindowDays: 7}

	first, err := c.EnsureRule(ctx, sbAccount, spec, "")
	if err != nil {
		t.Fatal(err)
	}
	countRules := func() int {
		rs, err := c.ListRules(ctx, sbAccount)
		if err != nil {
			t.Fatal(err)
		}
		return len(rs)
	}
	before := countRules()
	writes := func() int {
		n := 0
		for _, r := range e.requests("conversions") {
			if r.Method == http.MethodPost {
				n++
			}
		}
		return n
	}
	w0 := writes()

	// Same spec, known id: a GET, nothing written.
	again, err := c.EnsureRule(ctx, sbAccount, spec, first.ID)
	if err != nil || again.ID != first.ID {
		t.Fatalf("EnsureRule with known id = %+v, %v", again, err)
	}
	// Same spec, id lost: adopted by name, nothing written.
	adopted, err := c.EnsureRule(ctx, sbAccount, spec, "")
	if err != nil || adopted.ID != first.ID {
		t.Fatalf("EnsureRule without id = %+v, %v; want adoption of %s", adopted, err, first.ID)
	}
	if n := countRules(); n != before {
		t.Errorf("rules %d after repeated EnsureRule, want %d", n, before)
	}
	if n := writes(); n != w0 {
		t.Errorf("%d writes for unchanged specs, want none", n-w0)
	}

	// A changed spec: one PARTIAL_UPDATE of the changed fields only.
	changed := spec
	changed.AttributionType, changed.ViewThroughWindowDays = "LAST_TOUCH_BY_CONVERSION", 30
	upd, err := c.EnsureRule(ctx, sbAccount, changed, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if upd.AttributionType != "LAST_TOUCH_BY_CONVERSION" || upd.ViewThroughWindowDays != 30 || upd.Name != spec.Name {
		t.Errorf("updated rule %+v", upd)
	}
	recs := e.requests("conversions")
	if last := recs[len(recs)-1]; last.Headers.Get("X-Restli-Method") != MethodPartialUpdate ||
		last.Body != `{"patch":{"$set":{"attributionType":"LAST_TOUCH_BY_CONVERSION","viewThroughAttributionWindowSize":30}}}` {
		t.Errorf("last request %s %s %q", last.Method, last.Path, last.Body)
	}
	live, err := c.GetRule(ctx, sbAccount, first.ID)
	if err != nil || live.AttributionType != "LAST_TOUCH_BY_CONVERSION" || live.ViewThroughWindowDays != 30 {
		t.Errorf("live rule %+v, %v", live, err)
	}
	if n := countRules(); n != before {
		t.Errorf("rules %d after update, want %d", n, before)
	}
}

func TestEnsureRuleErrors(t *testing.T) {
	full := purchaseSpec("p")
	tests := []struct {
		name    string
		spec    RuleSpec
		knownID string
		fault   *sandbox.Fault
		code    string
		message string
		status  int
		is      error
	}{
		{name: "missing all create fields", code: CodeMissingRequiredField, status: 400,
			message: "Missing required fields for creating a new conversion rule: Name, Conversion Type, Attribution Type"},
		{name: "missing attribution type", spec: RuleSpec{Name: "n", Type: "LEAD"}, code: CodeMissingRequiredField, status: 400,
			message: "Missing required fields for creating a new conversion rule: Attribution Type"},
		{name: "unknown rule id", spec: full, knownID: "999", code: CodeRuleVerificationFailure, status: 404, is: ErrNotFound,
			message: "Failed to verify conversion rule: Conversion 999 not found"},
		{name: "insight tag rule", spec: full, knownID: sbInsightRule, code: CodeRuleVerificationFailure,
			message: "Failed to verify conversion rule: rule mismatch: rule 1403456 uses conversion method INSIGHT_TAG_URL_MATCH_RULES, not CONVERSIONS_API"},
		{name: "invalid rule id", spec: full, knownID: "abc", code: CodeRuleVerificationFailure,
			message: "Failed to verify conversion rule: get conversion rule: Conversion Rule ID"},
		{name: "create refused", spec: RuleSpec{Name: "n", Type: "SIGN_UP", AttributionType: "LAST_TOUCH_BY_CAMPAIGN", PostClickWindowDays: 365},
			code: CodeRuleCreationFailure, status: 400,
			message: "Failed to create conversion rule: Invalid postClickAttributionWindowSize 365 for conversion type SIGN_UP"},
		{name: "update refused", spec: RuleSpec{PostClickWindowDays: 365}, knownID: sbRule, code: CodeRuleUpdateFailure, status: 400,
			message: "Failed to update conversion rule: Invalid postClickAttributionWindowSize 365 for conversion type KEY_PAGE_VIEW"},
		{name: "create rate limited", spec: full, code: CodeRuleCreationFailure, status: 429, is: ErrRateLimited,
			fault:   &sandbox.Fault{Endpoint: "conversions", Action: sandbox.FaultRateLimit},
			message: "Failed to create conversion rule: Resource level throttle limit for calls to this resource is reached."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			c := e.client(t, e.config())
			if tt.fault != nil {
				e.addFault(t, *tt.fault)
			}
			_, err := c.EnsureRule(t.Context(), sbAccount, tt.spec, tt.knownID)
			var he *HookError
			if !errors.As(err, &he) {
				t.Fatalf("err = %v (%T), want *HookError", err, err)
			}
			if he.Code != tt.code || he.Status != tt.status || !strings.HasPrefix(he.Error(), tt.message) {
				t.Errorf("HookError{%s %d %q}, want {%s %d %q…}", he.Code, he.Status, he.Message, tt.code, tt.status, tt.message)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("%v does not match %v", err, tt.is)
			}
		})
	}
}

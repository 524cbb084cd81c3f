package linkedin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/delivery"
	capi "github.com/capstan-gw/capstan/internal/linkedin"
	"github.com/capstan-gw/capstan/internal/sandbox"
)

const testEventMappings = `      - name: Purchase
        trigger: 'type = "track" and event = "Order Completed" and properties.total > 100'
        conversion_rule:
          create:
            name: "Purchase (capstan)"
            type: PURCHASE
            attribution_type: LAST_TOUCH_BY_CONVERSION
            value_type: FIXED
            value: {currency_code: EUR, amount: "25.00"}
            enabled: true
            auto_association_type: ALL_CAMPAIGNS
      - name: Strict
        trigger: 'type = "track" and event = "Strict"'
        conversion_rule: {create: {name: "Strict (capstan)", type: LEAD}}
        enrich: false
      - name: Ghost
        trigger: 'type = "track" and event = "Ghost"'
        conversion_rule: {id: 999}
`

// TestRuleOptionsReachLinkedIn: the configured value method, enabled flag
// and automatic association are sent on creation (§12.1).
func TestRuleOptionsReachLinkedIn(t *testing.T) {
	h := newHarness(t, opts{mappings: testEventMappings})
	var create *sandbox.RequestRecord
	for _, r := range h.sb.Requests() {
		if r.Method == "POST" && r.Path == "/rest/conversions" && strings.Contains(r.Body, "Purchase (capstan)") {
			create = &r
		}
	}
	if create == nil {
		t.Fatal("no rule creation request")
	}
	if create.Query != "autoAssociationType=ALL_CAMPAIGNS" || create.Status != 201 {
		t.Errorf("query %q status %d", create.Query, create.Status)
	}
	for _, frag := range []string{`"attributionType":"LAST_TOUCH_BY_CONVERSION"`, `"enabled":true`, `"valueType":"FIXED"`, `"value":{"currencyCode":"EUR","amount":"25.00"}`} {
		if !strings.Contains(create.Body, frag) {
			t.Errorf("creation body %s lacks %s", create.Body, frag)
		}
	}
	if !strings.Contains(create.ResponseBody, `"campaigns":["urn:li:sponsoredCampaign:`) {
		t.Errorf("no campaigns associated: %s", create.ResponseBody)
	}
}

// TestSendTest: a test event built from the built-in sample goes through
// the real path and the sandbox stores exactly the request's body; a
// refusal comes back with LinkedIn's status and message.
func TestSendTest(t *testing.T) {
	h := newHarness(t, opts{mappings: testEventMappings})
	h.stop() // the test sends alone
	ctx := context.Background()
	res, err := h.dest.SendTest(ctx, TestEvent{Plan: h.plan, Mapping: "Purchase", Now: h.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Accepted() || res.Status != 201 || !res.RealSend || res.Answer == nil || res.Answer.Headers["X-Li-Uuid"] == "" {
		t.Fatalf("%+v %+v", res, res.Answer)
	}
	if res.Enriched[capi.FieldLinkedInUUID] != "context.page.url" {
		t.Errorf("enriched %v", res.Enriched)
	}
	convs := h.sb.Conversions(sandbox.ConversionFilter{})
	if len(convs) != 1 {
		t.Fatalf("sandbox stored %d conversions", len(convs))
	}
	req := res.Request.(capi.Request)
	if !bytes.Equal(convs[0].Body, req.Body) {
		t.Errorf("stored %s\nsent   %s", convs[0].Body, req.Body)
	}
	if fmt.Sprint(convs[0].Rule) != res.Rule || !strings.HasPrefix(convs[0].EventID, "capstan-test-") {
		t.Errorf("stored %+v, rule %s", convs[0], res.Rule)
	}
	// The printed request hides the token.
	b, _ := json.Marshal(res)
	if strings.Contains(string(b), `"tok"`) || !strings.Contains(string(b), "REDACTED") {
		t.Errorf("token in %s", b)
	}

	// LinkedIn refuses the rule: its status and message come back.
	res, err = h.dest.SendTest(ctx, TestEvent{Plan: h.plan, Mapping: "Ghost", Now: h.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted() || res.Status != 400 || !strings.Contains(res.Error, "HTTP 400") || res.Answer == nil ||
		!strings.Contains(string(res.Answer.Body), "conversion") {
		t.Errorf("refusal: %+v %s", res, res.Answer.Body)
	}

	// Refused before sending: strict mapping, no identifier of its own.
	res, err = h.dest.SendTest(ctx, TestEvent{Plan: h.plan, Mapping: "Strict", Now: h.clock.Now(),
		Event: json.RawMessage(`{"type":"track","event":"Strict","userId":"u1","context":{"page":{"url":"https://x.example/?li_fat_id=1"}}}`)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 0 || res.Request != nil || !strings.Contains(res.Error, "One of email or LinkedIn UUID") {
		t.Errorf("strict: %+v", res)
	}
	// A given event that does not pass the trigger, an unknown mapping, a
	// sample that cannot pass.
	for _, tc := range []struct {
		mapping, event, code string
	}{
		{"Purchase", `{"type":"track","event":"Order Completed","userId":"u","properties":{"total":5}}`, delivery.TestNotMatched},
		{"Nope", "", delivery.TestNoMapping},
	} {
		te := TestEvent{Plan: h.plan, Mapping: tc.mapping, Now: h.clock.Now()}
		if tc.event != "" {
			te.Event = json.RawMessage(tc.event)
		}
		res, err := h.dest.SendTest(ctx, te)
		if err != nil || res.Code != tc.code || res.Status != 0 {
			t.Errorf("%s: %+v %v", tc.mapping, res, err)
		}
	}
	if n := len(h.sb.Conversions(sandbox.ConversionFilter{})); n != 1 {
		t.Errorf("sandbox holds %d conversions, want 1", n)
	}
}

// TestRuleReports: the §22 fields and the derived status of each
// configured rule, before and after a conversion, with what differs from
// the configuration.
func TestRuleReports(t *testing.T) {
	h := newHarness(t, opts{mappings: testEventMappings})
	h.stop()
	ctx := context.Background()
	later := time.Duration(0)
	byMapping := func() map[string]RuleReport {
		m := map[string]RuleReport{}
		for _, r := range h.dest.RuleReports(ctx, h.plan, h.clock.Now().Add(later)) {
			m[r.Mapping] = r
		}
		return m
	}
	reps := byMapping()
	if p := reps["Purchase"]; p.Status != capi.RuleUnverified || p.NoCampaigns || p.Rule == nil || p.Rule.LastCallbackAt != nil ||
		len(p.Rule.AssociatedCampaigns) == 0 || p.Rule.AssociatedCampaigns[0].AssociatedAt == nil || len(p.Differs) != 0 {
		t.Errorf("purchase before: %+v", p)
	}
	if s := reps["Strict"]; s.Status != capi.RuleUnverified || !s.NoCampaigns || !strings.Contains(s.Verdict, "no campaigns associated") {
		t.Errorf("strict: %+v", s)
	}
	if g := reps["Ghost"]; g.Status != RuleUnknown || !strings.Contains(g.Verdict, "rule 999 does not exist") {
		t.Errorf("ghost: %+v", g)
	}
	if _, err := h.dest.SendTest(ctx, TestEvent{Plan: h.plan, Mapping: "Purchase", Now: h.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	// Someone disables the rule in Campaign Manager.
	purchase := h.plan.Routes[0].Rule
	off := false
	if err := h.client.UpdateRule(ctx, account, purchase, capi.RulePatch{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	p := byMapping()["Purchase"]
	if p.Status != capi.RuleDisabled || p.Rule.LastCallbackAt == nil || p.Rule.LatestFirstPartyCallbackAt == nil ||
		len(p.Differs) != 1 || p.Differs[0] != "enabled: configured true, LinkedIn has false" {
		t.Fatalf("purchase after: %+v", p)
	}
	// Enabled again: receiving, then stale 8 days later.
	on := true
	if err := h.client.UpdateRule(ctx, account, purchase, capi.RulePatch{Enabled: &on}); err != nil {
		t.Fatal(err)
	}
	if p := byMapping()["Purchase"]; p.Status != capi.RuleReceiving || !strings.Contains(p.Verdict, "receiving: last conversion seen") {
		t.Errorf("receiving: %+v", p)
	}
	later = 8 * 24 * time.Hour
	if p := byMapping()["Purchase"]; p.Status != capi.RuleStale || !strings.Contains(p.Verdict, "none in the last 7 days") {
		t.Errorf("stale: %+v", p)
	}
}

// TestPrepareUpdatesExistingRule: an option changed in the configuration
// reaches an existing rule with a PARTIAL_UPDATE of that field only.
func TestPrepareUpdatesExistingRule(t *testing.T) {
	h := newHarness(t, opts{mappings: testEventMappings})
	h.stop()
	plan := h.compile(strings.Replace(testEventMappings, "enabled: true", "enabled: false", 1))
	if err := h.dest.Prepare(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	var patch string
	for _, r := range h.sb.Requests() {
		if r.Method == "POST" && strings.HasPrefix(r.Path, "/rest/conversions/") {
			patch = r.Body
		}
	}
	if patch != `{"patch":{"$set":{"enabled":false}}}` {
		t.Errorf("patch %q", patch)
	}
	if plan.Routes[0].Rule != h.plan.Routes[0].Rule {
		t.Errorf("a new rule was created: %s vs %s", plan.Routes[0].Rule, h.plan.Routes[0].Rule)
	}
}

// TestBuildTestSample: the built-in sample passes each mapping's trigger
// and carries identifiers where mappings usually look, also for a strict
// mapping (enrich: false) that maps properties.email and userInfo.
func TestBuildTestSample(t *testing.T) {
	p := plan(t, `      - name: Strict
        trigger: 'type = "track" and event = "Deal Won" and properties.amount >= 1000'
        conversion_rule: {id: 7}
        enrich: false
        fields:
          email: {"@path": "$.properties.email"}
          userInfo:
            firstName: {"@path": "$.properties.firstName"}
            lastName: {"@path": "$.properties.lastName"}
      - name: Page
        trigger: 'type = "page" and match(context.page.url, "https://shop.example.com/*")'
        conversion_rule: {id: 8}
      - name: Impossible
        trigger: 'type = "track" and properties.plan != "free" and userId = null and event = "X"'
        conversion_rule: {id: 9}
`)
	ctx := context.Background()
	tc, err := p.BuildTest(ctx, nil, "Strict", "web", now, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := payload(t, delivery.Result{Payload: tc.Payload}).Conversion
	hash, _ := capi.HashEmail(delivery.TestEmail)
	if len(c.User.UserIDs) != 1 || c.User.UserIDs[0].IDValue != hash || c.User.UserInfo == nil || c.User.UserInfo.FirstName != "Capstan" ||
		len(tc.Payload.Enriched) != 0 || c.Conversion != "urn:lla:llaPartnerConversion:7" {
		t.Errorf("strict sample: %+v %+v", c, tc.Payload.Enriched)
	}
	// With no mapping named, the first one; the sample is a fresh eventId.
	tc, err = p.BuildTest(ctx, nil, "", "web", now, nil)
	if err != nil || tc.Route.Name != "Strict" || !strings.HasPrefix(payload(t, delivery.Result{Payload: tc.Payload}).EventID, "capstan-test-") {
		t.Errorf("first mapping: %+v %v", tc, err)
	}
	// A given event picks the first mapping whose trigger it passes.
	tc, err = p.BuildTest(ctx, []byte(`{"type":"page","userId":"u","context":{"page":{"url":"https://shop.example.com/a?li_fat_id=9"}}}`), "", "web", now, nil)
	if err != nil || tc.Route.Name != "Page" || tc.Payload.Enriched[capi.FieldLinkedInUUID] != "context.page.url" {
		t.Errorf("given event: %+v %v", tc, err)
	}
	if tc, err := p.BuildTest(ctx, nil, "Page", "web", now, nil); err != nil || tc.Route.Name != "Page" {
		t.Errorf("page sample: %v", err)
	}
	// userId = null is met by removing it; != sets nothing.
	if _, err := p.BuildTest(ctx, nil, "Impossible", "web", now, nil); err != nil {
		t.Errorf("impossible-looking trigger: %v", err)
	}
	// A source the destination does not take.
	_, err = p.BuildTest(ctx, nil, "Page", "crm", now, nil)
	var pe *delivery.PreviewError
	if !errors.As(err, &pe) || pe.Code != delivery.TestFiltered || !strings.Contains(pe.Message, `its source "crm"`) {
		t.Errorf("filtered: %v", err)
	}
}

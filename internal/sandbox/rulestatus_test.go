package sandbox

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// ruleStatus reads the seeded CAPI rule's §22 fields.
func ruleStatus(t *testing.T, h *harness) map[string]any {
	t.Helper()
	r := h.do("GET", "/rest/conversions/22833300?"+acctQ, restHeaders(tok), "")
	wantStatus(t, r, 200)
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func msField(m map[string]any, k string) int64 {
	f, _ := m[k].(float64)
	return int64(f)
}

// TestRuleStatusFields: the read-only fields of §22.1 on GET and list, the
// callback fields omitted until the first accepted event and then its
// receive time (§22.4), associatedCampaigns with associatedAt.
func TestRuleStatusFields(t *testing.T) {
	h := newHarness(t, Config{})
	m := ruleStatus(t, h)
	for _, k := range []string{"lastCallbackAt", "latestFirstPartyCallbackAt"} {
		if _, ok := m[k]; ok {
			t.Errorf("%s present before any event: %v", k, m)
		}
	}
	ac, _ := m["associatedCampaigns"].([]any)
	if len(ac) != 1 || !strings.Contains(fmt.Sprint(ac[0]), "associatedAt:1.7672256e+12") || !strings.Contains(fmt.Sprint(ac[0]), "urn:li:sponsoredCampaign:435901") {
		t.Errorf("associatedCampaigns %v", m["associatedCampaigns"])
	}
	h.clock.Advance(time.Hour)
	wantStatus(t, h.sendEvent(tok, ev("s1")), 201)
	at := specNow.Add(time.Hour).UnixMilli()
	m = ruleStatus(t, h)
	if msField(m, "lastCallbackAt") != at || msField(m, "latestFirstPartyCallbackAt") != at {
		t.Errorf("after an event at %d: %v", at, m)
	}
	// A de-duplicated repeat is a 201 too: it counts as a signal.
	h.clock.Advance(time.Minute)
	wantStatus(t, h.sendEvent(tok, ev("s1")), 201)
	if m = ruleStatus(t, h); msField(m, "lastCallbackAt") != at+60_000 {
		t.Errorf("after a repeat: %v", m)
	}
	// The list carries the same fields; a refused event changes nothing.
	h.clock.Advance(time.Minute)
	wantStatus(t, h.sendEvent(tok, strings.Replace(ev("s2"), "22833300", "99", 1)), 400)
	r := h.do("GET", "/rest/conversions?q=account&"+acctQ+"&fields=id,lastCallbackAt,latestFirstPartyCallbackAt,imagePixelTag,urlMatchRuleExpression", restHeaders(tok), "")
	wantStatus(t, r, 200)
	want := fmt.Sprintf(`{"id":22833300,"lastCallbackAt":%d,"latestFirstPartyCallbackAt":%d}`, at+60_000, at+60_000)
	if !strings.Contains(r.body, want) {
		t.Errorf("list %s lacks %s", r.body, want)
	}
	// The Insight Tag rule carries its pixel and URL rule expression.
	if !strings.Contains(r.body, `"imagePixelTag":"\u003cimg`) && !strings.Contains(r.body, `"imagePixelTag":"<img`) {
		t.Errorf("tag rule without imagePixelTag: %s", r.body)
	}
	if !strings.Contains(r.body, `"urlMatchRuleExpression":[[{"matchValue":"https://www.example.com/thank-you","type":"STARTS_WITH"}]]`) {
		t.Errorf("tag rule without urlMatchRuleExpression: %s", r.body)
	}
}

// TestRuleStatusSwitches: rule_status.delay holds the fields back by the
// sandbox clock; rule_status.capi_updates picks the field(s) updated.
func TestRuleStatusSwitches(t *testing.T) {
	h := newHarness(t, Config{RuleStatusDelay: 2 * time.Hour})
	wantStatus(t, h.sendEvent(tok, ev("d1")), 201)
	if m := ruleStatus(t, h); m["lastCallbackAt"] != nil {
		t.Errorf("visible before the delay: %v", m)
	}
	h.clock.Advance(2 * time.Hour)
	if m := ruleStatus(t, h); msField(m, "lastCallbackAt") != specNow.UnixMilli() || msField(m, "latestFirstPartyCallbackAt") != specNow.UnixMilli() {
		t.Errorf("after the delay: %v", m)
	}
	for _, tc := range []struct {
		mode     string
		last, fp bool
	}{{RuleStatusLastCallbackOnly, true, false}, {RuleStatusFirstPartyOnly, false, true}, {RuleStatusNone, false, false}} {
		h := newHarness(t, Config{RuleStatusUpdates: tc.mode})
		wantStatus(t, h.sendEvent(tok, ev("u1")), 201)
		m := ruleStatus(t, h)
		if _, ok := m["lastCallbackAt"]; ok != tc.last {
			t.Errorf("%s: lastCallbackAt present %v: %v", tc.mode, ok, m)
		}
		if _, ok := m["latestFirstPartyCallbackAt"]; ok != tc.fp {
			t.Errorf("%s: latestFirstPartyCallbackAt present %v: %v", tc.mode, ok, m)
		}
	}
	if _, err := New(Config{RuleStatusUpdates: "sometimes"}, nil); err == nil || !strings.Contains(err.Error(), `rule status updates "sometimes"`) {
		t.Errorf("bad switch: %v", err)
	}
}

package linkedin

import (
	"encoding/json"
	"testing"
	"time"
)

// TestRuleStatusFields decodes the §22.2 example: the read-only status
// fields and associatedCampaigns with their times.
func TestRuleStatusFields(t *testing.T) {
	const body = `{"id":22833300,"name":"CAPI-Page-View","account":"urn:li:sponsoredAccount:508747394",
  "conversionMethod":"CONVERSIONS_API","type":"KEY_PAGE_VIEW","enabled":true,"attributionType":"LAST_TOUCH_BY_CAMPAIGN",
  "postClickAttributionWindowSize":90,"viewThroughAttributionWindowSize":90,"campaigns":["urn:li:sponsoredCampaign:435901"],
  "associatedCampaigns":[{"campaign":"urn:li:sponsoredCampaign:435901","associatedAt":1766016000000}],
  "urlRules":[],"created":1765929600000,"lastModified":1766016000000,
  "lastCallbackAt":1767222000000,"latestFirstPartyCallbackAt":1767222000000}`
	var j ruleJSON
	if err := json.Unmarshal([]byte(body), &j); err != nil {
		t.Fatal(err)
	}
	r := j.rule()
	at := time.UnixMilli(1767222000000).UTC()
	if !r.LastCallbackAt.Equal(at) || !r.LatestFirstPartyCallbackAt.Equal(at) || len(r.Campaigns) != 1 ||
		len(r.Associations) != 1 || r.Associations[0].Campaign != 435901 || r.Associations[0].AssociatedAt.UnixMilli() != 1766016000000 {
		t.Errorf("%+v", r)
	}
	// Absent and null callback fields are both "never".
	for _, b := range []string{`{"id":1,"enabled":true}`, `{"id":1,"lastCallbackAt":null,"latestFirstPartyCallbackAt":null}`} {
		var j ruleJSON
		if err := json.Unmarshal([]byte(b), &j); err != nil {
			t.Fatal(err)
		}
		if r := j.rule(); !r.LastCallbackAt.IsZero() || !r.LatestFirstPartyCallbackAt.IsZero() || !r.Signal().IsZero() {
			t.Errorf("%s: %+v", b, r)
		}
	}
}

// TestDeriveStatus is the table of §22.3, first match wins, with the
// signal the max of the two callback fields.
func TestDeriveStatus(t *testing.T) {
	now := time.Date(2026, 9, 10, 12, 0, 0, 0, time.UTC)
	capi := Rule{ConversionMethod: MethodConversionsAPI, Enabled: true, Campaigns: []int64{1}}
	with := func(f func(*Rule)) Rule { r := capi; f(&r); return r }
	tests := []struct {
		name string
		r    Rule
		want string
		nc   bool
	}{
		{"disabled beats everything", with(func(r *Rule) { r.Enabled = false; r.ConversionMethod = "INSIGHT_TAG_URL_MATCH_RULES" }), RuleDisabled, false},
		{"tag rule", with(func(r *Rule) { r.ConversionMethod = "INSIGHT_TAG_URL_MATCH_RULES" }), RuleNotCAPI, false},
		{"never a signal", with(func(r *Rule) { r.Campaigns = nil }), RuleUnverified, true},
		{"stale", with(func(r *Rule) { r.LastCallbackAt = now.Add(-8 * 24 * time.Hour) }), RuleStale, false},
		{"max of the two: first party recent", with(func(r *Rule) {
			r.LastCallbackAt = now.Add(-30 * 24 * time.Hour)
			r.LatestFirstPartyCallbackAt = now.Add(-time.Hour)
		}), RuleReceiving, false},
		{"max of the two: last callback recent", with(func(r *Rule) { r.LastCallbackAt = now.Add(-6 * 24 * time.Hour) }), RuleReceiving, false},
		{"associations count as campaigns", with(func(r *Rule) {
			r.Campaigns = nil
			r.Associations = []Association{{Campaign: 2}}
			r.LastCallbackAt = now
		}), RuleReceiving, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.r.DeriveStatus(now)
			if st.Status != tt.want || st.NoCampaigns != tt.nc {
				t.Errorf("got %+v, want %s (no campaigns %v)", st, tt.want, tt.nc)
			}
		})
	}
}

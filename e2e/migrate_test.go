package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// migrateExport is a Segment export of a LinkedIn Conversions API
// destination: a Page View mapping whose rule the hook saved (the
// sandbox's seeded rule 22833300, associated with campaign 435901) and a
// Sign Up mapping whose hook never saved one.
const migrateExport = `{
  "sources": [{"id": "src_web", "name": "Website", "enabled": true, "writeKeys": [%q]}],
  "destinations": [{
    "id": "dst_li", "type": "linkedin-conversions", "name": "LinkedIn Conversions API", "enabled": true,
    "sources": ["src_web"], "consentCategories": ["Advertising"],
    "settings": {"oauth": {"access_token": "AQV-token-from-segment-not-copied", "refresh_token": "AQW-not-copied"}},
    "subscriptions": [
      {"id": "sub_page", "name": "Page View", "enabled": true, "partnerAction": "streamConversion",
       "subscribe": "type = \"page\"",
       "mapping": {
         "conversionHappenedAt": {"@path": "$.timestamp"},
         "conversionValue": {"currencyCode": "EUR", "amount": "0"},
         "eventId": {"@path": "$.messageId"},
         "linkedInUUID": {"@path": "$.properties.li_fat_id"},
         "enable_batching": true, "batch_size": 5000,
         "onMappingSave": {"inputs": {"adAccountId": "urn:li:sponsoredAccount:%d", "campaignId": ["435901"]},
                           "outputs": {"id": "22833300", "name": "CAPI-Page-View", "conversionType": "KEY_PAGE_VIEW",
                                       "attribution_type": "LAST_TOUCH_BY_CAMPAIGN", "post_click_attribution_window_size": 30,
                                       "view_through_attribution_window_size": 7}}}},
      {"id": "sub_signup", "name": "Sign Up", "enabled": true, "partnerAction": "streamConversion",
       "subscribe": "type = \"track\" and event = \"Sign Up\"",
       "mapping": {
         "conversionHappenedAt": {"@path": "$.timestamp"},
         "eventId": {"@path": "$.messageId"},
         "email": {"@path": "$.context.traits.email"},
         "enable_batching": true, "batch_size": 5000,
         "onMappingSave": {"inputs": {"adAccountId": "urn:li:sponsoredAccount:%d", "name": "Sign Up (migrated)",
                                      "conversionType": "SIGN_UP", "attribution_type": "LAST_TOUCH_BY_CAMPAIGN",
                                      "post_click_attribution_window_size": 30, "view_through_attribution_window_size": 7}}}}
    ]}]
}`

// TestMigrateSegmentServe: `capstan migrate segment` turns the export into
// a configuration that `capstan serve` runs once its placeholders are set:
// the Page View is delivered with the export's rule, which capstan does
// not create again, and the Sign Up with the one rule capstan creates for
// the mapping that had none, once, also across a restart. No token of the
// export is in the file.
func TestMigrateSegmentServe(t *testing.T) {
	sb := startSandbox(t, "--token", "migrate-token")
	dir := t.TempDir()
	export := filepath.Join(dir, "segment-export.json")
	if err := os.WriteFile(export, fmt.Appendf(nil, migrateExport, testWriteKey, testAdAccount, testAdAccount), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "capstan.yaml")
	code, stdout, stderr := runCapstan(t, dir, os.Environ(), 30*time.Second, "migrate", "segment", "--from", export, "--out", cfg)
	if code != 0 || stdout != "" {
		t.Fatalf("migrate segment: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	for _, want := range []string{"${LINKEDIN_ACCESS_TOKEN}", "${CAPSTAN_SECRET_KEY}", "refresh_token: not copied"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not name %s:\n%s", want, stderr)
		}
	}
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(text), "AQV-") || strings.Contains(string(text), "AQW-") {
		t.Fatalf("a token of the export is in the file:\n%s", text)
	}
	// Where this test runs: a port, a data directory, the sandbox.
	y := strings.Replace(string(text), "server:\n", fmt.Sprintf("server:\n  addr: \"127.0.0.1:0\"\n  data_dir: %q\n  shutdown_grace: 5s\n", filepath.Join(dir, "data")), 1)
	y = strings.Replace(y, "    type: linkedin\n", fmt.Sprintf("    type: linkedin\n    api_base: %q\n    linger: 100ms\n", sb.URL), 1)
	if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CAPSTAN_SECRET_KEY", testSecretKey)
	t.Setenv("LINKEDIN_ACCESS_TOKEN", "migrate-token")

	rules := func() map[string][]int64 {
		var state struct {
			Rules []struct {
				ID   int64  `json:"id"`
				Name string `json:"name"`
			} `json:"rules"`
		}
		sb.control(http.MethodGet, "/_sandbox/state", "", &state)
		m := map[string][]int64{}
		for _, r := range state.Rules {
			m[r.Name] = append(m[r.Name], r.ID)
		}
		return m
	}
	before := rules()
	if len(before["CAPI-Page-View"]) != 1 || len(before["Sign Up (migrated)"]) != 0 {
		t.Fatalf("the sandbox's seeded rules: %v", before)
	}

	srv := startServer(t, cfg)
	hc := newHTTPClient(t)
	now := time.Now().UTC().Format(time.RFC3339Nano)
	sendEvents(t, hc, srv.URL, []map[string]any{
		{"type": "page", "anonymousId": "anon-mig", "messageId": "mig-page-1", "timestamp": now,
			"properties": map[string]any{"li_fat_id": "lfi-mig-1"}},
		{"type": "track", "event": "Sign Up", "userId": "u-mig", "messageId": "mig-signup-1", "timestamp": now,
			"context": map[string]any{"traits": map[string]any{"email": "mig@example.com"}}},
	})
	got := byEventID(t, sb.waitConversions(2, 30*time.Second, "after the page view and the sign-up"))
	after := rules()
	created := after["Sign Up (migrated)"]
	if len(after["CAPI-Page-View"]) != 1 || len(created) != 1 {
		t.Fatalf("rules after serve: %v; want the export's rule untouched and one rule created", after)
	}
	if c := got["mig-page-1"]; c.Conversion != "urn:lla:llaPartnerConversion:22833300" {
		t.Errorf("page view: conversion %q, want the export's rule 22833300", c.Conversion)
	} else if lfi, _ := c.userID("LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID"); lfi != "lfi-mig-1" {
		t.Errorf("page view: li_fat_id %q", lfi)
	}
	if c := got["mig-signup-1"]; c.Conversion != "urn:lla:llaPartnerConversion:"+strconv.FormatInt(created[0], 10) {
		t.Errorf("sign up: conversion %q, want the created rule %d", c.Conversion, created[0])
	} else if email, _ := c.userID("SHA256_EMAIL"); email != emailHash("mig@example.com") {
		t.Errorf("sign up: email hash %q", email)
	}

	// A restart creates nothing: capstan keeps the id of the rule it made.
	srv.Kill()
	srv = startServer(t, cfg)
	sendEvents(t, hc, srv.URL, []map[string]any{
		{"type": "track", "event": "Sign Up", "userId": "u-mig-2", "messageId": "mig-signup-2", "timestamp": now,
			"context": map[string]any{"traits": map[string]any{"email": "mig2@example.com"}}},
	})
	got = byEventID(t, sb.waitConversions(3, 30*time.Second, "after the restart"))
	if c := got["mig-signup-2"]; c.Conversion != "urn:lla:llaPartnerConversion:"+strconv.FormatInt(created[0], 10) {
		t.Errorf("sign up after the restart: conversion %q, want %d", c.Conversion, created[0])
	}
	if again := rules(); len(again["Sign Up (migrated)"]) != 1 || len(again["CAPI-Page-View"]) != 1 {
		t.Errorf("rules after the restart: %v", again)
	}
}

package sandbox

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

const reportPath = "/rest/adAnalytics?q=analytics&pivot=CONVERSION&timeGranularity=DAILY" +
	"&dateRange=(start:(year:2025,month:12,day:29),end:(year:2025,month:12,day:31))" +
	"&accounts=List(urn%3Ali%3AsponsoredAccount%3A508747394)" +
	"&fields=pivotValues,dateRange,externalWebsiteConversions,externalWebsitePostClickConversions,externalWebsitePostViewConversions,conversionValueInLocalCurrency"

type reportAnswer struct {
	Paging   map[string]any `json:"paging"`
	Elements []struct {
		PivotValues []string `json:"pivotValues"`
		DateRange   struct {
			Start struct{ Year, Month, Day int } `json:"start"`
			End   struct{ Year, Month, Day int } `json:"end"`
		} `json:"dateRange"`
		Conversions int64  `json:"externalWebsiteConversions"`
		PostClick   int64  `json:"externalWebsitePostClickConversions"`
		PostView    int64  `json:"externalWebsitePostViewConversions"`
		Value       string `json:"conversionValueInLocalCurrency"`
	} `json:"elements"`
}

func (h *harness) report(token, path string) (resp, reportAnswer) {
	h.t.Helper()
	r := h.do("GET", path, restHeaders(token), "")
	var a reportAnswer
	if r.status == 200 {
		if err := json.Unmarshal([]byte(r.body), &a); err != nil {
			h.t.Fatalf("%v: %s", err, r.body)
		}
	}
	return r, a
}

// emailEv is an event identified only by an email hash, with a value.
func emailEv(eventID string, at int64) string {
	return fmt.Sprintf(`{"conversion":%q,"conversionHappenedAt":%d,"eventId":%q,"conversionValue":{"currencyCode":"EUR","amount":"10"},"user":{"userIds":[{"idType":"SHA256_EMAIL","idValue":%q}]}}`,
		ruleURNStr, at, eventID, emailHash)
}

func TestReportingModel(t *testing.T) {
	h := newHarness(t, Config{Reporting: Reporting{Delay: Duration(72 * time.Hour), EmailMatchShare: 0.3}})
	const repTok = "reporting-token"
	if err := h.srv.AddToken(TokenSpec{Token: repTok, Scopes: []string{"r_ads", "rw_conversions", "r_ads_reporting"}}); err != nil {
		t.Fatal(err)
	}
	day30 := time.Date(2025, 12, 30, 12, 0, 0, 0, time.UTC).UnixMilli()
	var elems []string
	for i := range 100 {
		elems = append(elems, ev(fmt.Sprintf("lfi-%d", i), day30))
	}
	for i := range 200 {
		elems = append(elems, emailEv(fmt.Sprintf("em-%d", i), day30))
	}
	wantStatus(t, h.sendBatch(tok, elems...), 200)

	// Inside the delay: nothing reported yet.
	r, a := h.report(repTok, reportPath)
	wantStatus(t, r, 200)
	if len(a.Elements) != 0 || a.Paging["count"] != float64(10) {
		t.Fatalf("before the delay: %s", r.body)
	}
	h.clock.Advance(72 * time.Hour)
	_, a = h.report(repTok, reportPath)
	if len(a.Elements) != 1 {
		t.Fatalf("after the delay: %+v", a)
	}
	e := a.Elements[0]
	if e.PivotValues[0] != ruleURNStr || e.DateRange.Start.Day != 30 || e.DateRange.End.Day != 30 {
		t.Errorf("row %+v", e)
	}
	// Every li_fat_id event matches; about 30% of the 200 email ones.
	emails := e.Conversions - 100
	if emails < 35 || emails > 85 || e.PostClick+e.PostView != e.Conversions || e.PostView == 0 {
		t.Errorf("reported %d (%d post-click, %d post-view): %d email events matched of 200, want about 60", e.Conversions, e.PostClick, e.PostView, emails)
	}
	if e.Value != fmt.Sprintf("%d.00", emails*10) {
		t.Errorf("value %q, want %d.00", e.Value, emails*10)
	}
	// Deterministic: the same answer again.
	r1, _ := h.report(repTok, reportPath)
	r2, _ := h.report(repTok, reportPath)
	if r1.body != r2.body {
		t.Error("answers differ")
	}
}

func TestReportingScopeAndErrors(t *testing.T) {
	h := newHarness(t, Config{})
	r, _ := h.report(noScopeTok, reportPath)
	wantStatus(t, r, 403)
	wantBody(t, r, `{"status":403,"serviceErrorCode":100,"code":"ACCESS_DENIED","message":"Not enough permissions to access: adAnalytics.FINDER.20260901"}`)
	// The seeded test token has the default scopes (no r_ads_reporting).
	r, _ = h.report(tok, reportPath)
	wantStatus(t, r, 403)
	if err := h.srv.SetReporting(Reporting{NoRequireScope: true}); err != nil {
		t.Fatal(err)
	}
	r, _ = h.report(tok, reportPath)
	wantStatus(t, r, 200)
	for _, c := range []struct{ from, to, param string }{
		{"timeGranularity=DAILY", "timeGranularity=HOURLY", "timeGranularity"},
		{"pivot=CONVERSION", "pivot=CREATIVE", "pivot"},
		{"q=analytics", "q=nope", "q"},
		{"dateRange=(start:(year:2025,month:12,day:29),", "dateRange=(begin:(year:2025,month:12,day:29),", "dateRange"},
		{"fields=pivotValues,", "fields=pivotValues,bogus,", "fields"},
		{"&accounts=List(urn%3Ali%3AsponsoredAccount%3A508747394)", "", "accounts"},
	} {
		r, _ := h.report(tok, strings.Replace(reportPath, c.from, c.to, 1))
		wantStatus(t, r, 400)
		wantBody(t, r, `{"status":400,"message":"Parameter '`+c.param+`' is invalid"}`)
	}
}

// TestReportingEventIDDedupSwitch: two API events of one rule with the same
// eventId ($149, then $39) count twice by default (spec §21.10 item 4,
// dedup_event_id_window = 0); with the window on (POST /_sandbox/reporting)
// only the first counts, keeping its value; a repeat after the window
// counts again; a negative window is refused.
func TestReportingEventIDDedupSwitch(t *testing.T) {
	h := newHarness(t, Config{})
	const repTok = "reporting-token"
	if err := h.srv.AddToken(TokenSpec{Token: repTok, Scopes: []string{"r_ads", "rw_conversions", "r_ads_reporting"}}); err != nil {
		t.Fatal(err)
	}
	day30 := time.Date(2025, 12, 30, 12, 0, 0, 0, time.UTC).UnixMilli()
	order := func(amount string) string {
		return fmt.Sprintf(`{"conversion":%q,"conversionHappenedAt":%d,"eventId":"wc_order_5291","conversionValue":{"currencyCode":"USD","amount":%q},"user":{"userIds":[{"idType":"LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID","idValue":"lfi-1"}]}}`,
			ruleURNStr, day30, amount)
	}
	wantStatus(t, h.sendBatch(tok, order("149")), 200)
	h.clock.Advance(time.Hour)
	wantStatus(t, h.sendBatch(tok, order("39")), 200)
	row := func(why string, conv int64, value string) {
		t.Helper()
		_, a := h.report(repTok, reportPath)
		if len(a.Elements) != 1 || a.Elements[0].Conversions != conv || a.Elements[0].Value != value {
			t.Errorf("%s: reported %+v, want %d conversions worth %s", why, a.Elements, conv, value)
		}
	}
	row("default (off)", 2, "188.00")
	if w := h.srv.ReportingConfig().DedupEventIDWindow; w != 0 {
		t.Errorf("default dedup_event_id_window %s, want 0", time.Duration(w))
	}

	wantStatus(t, h.do("POST", "/_sandbox/reporting", nil, `{"dedup_event_id_window":"48h"}`), 200)
	row("window 48h", 1, "149.00")
	var model struct {
		Elements []ReportedEvent `json:"elements"`
	}
	r := h.do("GET", "/_sandbox/reporting", nil, "")
	if err := json.Unmarshal([]byte(r.body), &model); err != nil {
		t.Fatal(err)
	}
	if len(model.Elements) != 2 || !model.Elements[0].Counted || model.Elements[1].Counted ||
		model.Elements[1].DuplicateOf != model.Elements[0].Seq {
		t.Errorf("model with the window: %s", r.body)
	}

	// A third repeat 48 h after the first counts again.
	h.clock.Advance(47 * time.Hour)
	wantStatus(t, h.sendBatch(tok, order("10")), 200)
	row("repeat after the window", 2, "159.00")

	if r := h.do("POST", "/_sandbox/reporting", nil, `{"dedup_event_id_window":"-1h"}`); r.status != 400 || !strings.Contains(r.body, "dedup_event_id_window") {
		t.Errorf("negative window: %d %s", r.status, r.body)
	}
}

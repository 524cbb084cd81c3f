package linkedin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/sandbox"
)

func TestReportQueryMatchesSpec(t *testing.T) {
	// §21.5, byte for byte.
	want := "q=analytics&pivot=CONVERSION&timeGranularity=DAILY&dateRange=(start:(year:2025,month:12,day:29),end:(year:2025,month:12,day:31))" +
		"&accounts=List(urn%3Ali%3AsponsoredAccount%3A508747394)" +
		"&fields=pivotValues,dateRange,externalWebsiteConversions,externalWebsitePostClickConversions,externalWebsitePostViewConversions,conversionValueInLocalCurrency"
	got := ReportQuery(508747394, time.Date(2025, 12, 29, 0, 0, 0, 0, time.UTC), time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC))
	if got != want {
		t.Errorf("query\n%s\nwant\n%s", got, want)
	}
}

func TestDecodeReportRules(t *testing.T) {
	// §21.4: fractional counts rounded, value as string or number, absent
	// metrics 0, unknown keys ignored, legacy pivotValue tolerated, a
	// non-numeric rule id skipped.
	body := `{"paging":{"start":0,"count":10,"links":[]},"elements":[
	 {"pivotValues":["urn:lla:llaPartnerConversion:22833300"],"dateRange":{"start":{"year":2025,"month":12,"day":30},"end":{"year":2025,"month":12,"day":30}},
	  "externalWebsiteConversions":41.6,"externalWebsitePostClickConversions":37,"conversionValueInLocalCurrency":"6109.00","impressions":9},
	 {"pivotValue":"urn:li:llaPartnerConversion:7","dateRange":{"start":{"year":2025,"month":12,"day":31},"end":{"year":2025,"month":12,"day":31}},
	  "externalWebsiteConversions":2,"conversionValueInLocalCurrency":12.5},
	 {"pivotValues":["urn:li:somethingElse:abc"],"dateRange":{"start":{"year":2025,"month":12,"day":31},"end":{"year":2025,"month":12,"day":31}},"externalWebsiteConversions":1}
	]}`
	got, n, err := decodeReport([]byte(body))
	if err != nil || n != 3 {
		t.Fatal(n, err)
	}
	if len(got.rows) != 2 || len(got.skipped) != 1 {
		t.Fatalf("%+v", got)
	}
	r := got.rows[0]
	if r.Rule != "22833300" || r.Conversions != 42 || r.PostClick != 37 || r.PostView != 0 || r.Value != "6109.00" || r.Day.Day() != 30 {
		t.Errorf("row 0 %+v", r)
	}
	if r := got.rows[1]; r.Rule != "7" || r.Conversions != 2 || r.Value != "12.5" {
		t.Errorf("row 1 %+v", r)
	}
	if _, _, err := decodeReport([]byte(`{"elements":[{"pivotValues":["urn:lla:llaPartnerConversion:1"],"externalWebsiteConversions":"x"}]}`)); err == nil {
		t.Error("a string count and no dateRange decoded")
	}
}

func TestConversionReportAgainstSandbox(t *testing.T) {
	e := newEnv(t, func(c *sandbox.Config) { c.Reporting.NoRequireScope = true })
	c := e.client(t, e.config())
	// 1 li_fat_id conversion per day for 40 days on the seeded rule, which is
	// enabled and associated.
	for d := range 40 {
		at := specNow.AddDate(0, 0, -d-1).Add(time.Hour)
		conv := conversion(t, "urn:lla:llaPartnerConversion:22833300", d)
		conv.ConversionHappenedAt = at.UnixMilli()
		conv.EventID = fmt.Sprintf("day-%d", d)
		req, err := NewSingleRequest(RequestConfig{}, &conv)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := c.Send(context.Background(), req); err != nil || out.Class != ClassSuccess {
			t.Fatalf("send: %+v %v", out, err)
		}
	}
	rows, err := c.ConversionReport(context.Background(), 508747394, specNow.AddDate(0, 0, -45), specNow)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 40 {
		t.Fatalf("%d rows, want 40: %+v", len(rows), rows)
	}
	for i, r := range rows {
		if r.Rule != "22833300" || r.Conversions != 1 || (i > 0 && !rows[i-1].Day.Before(r.Day)) {
			t.Errorf("row %d: %+v", i, r)
		}
	}
	// 46 days: two requests, the first of 31 days.
	reqs := e.requests("adAnalytics")
	if len(reqs) != 2 || !strings.Contains(reqs[0].Query, "end:(year:2025,month:12,day:17)") {
		t.Errorf("requests %d: %+v", len(reqs), reqs)
	}
	// Without the scope: a ReportingScopeError.
	if err := e.srv.SetReporting(sandbox.Reporting{}); err != nil {
		t.Fatal(err)
	}
	_, err = c.ConversionReport(context.Background(), 508747394, specNow, specNow)
	var se *ReportingScopeError
	if !errors.As(err, &se) || !errors.Is(err, ErrReportingScope) || se.Status != 403 || !strings.Contains(err.Error(), "r_ads_reporting") {
		t.Errorf("error %v", err)
	}
}

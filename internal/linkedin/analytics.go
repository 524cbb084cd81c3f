package linkedin

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Reporting constants (§21).
const (
	// AnalyticsPath is the reporting resource.
	AnalyticsPath = "/rest/adAnalytics"
	// ScopeReporting is the scope adAnalytics needs (§21.2, §24.1).
	ScopeReporting = "r_ads_reporting"
	// ReportingDelay is how long LinkedIn may take until a day's
	// conversions are completely reported: 24 h ingestion plus 48 h
	// reporting (§21.1).
	ReportingDelay = 72 * time.Hour
	// maxReportDays bounds the days of one request (§21.7: rules × days
	// stays far below the 15,000-element truncation).
	maxReportDays = 31
	// maxReportElements is the silent truncation of one answer (§21.7).
	maxReportElements = 15000
	// reportFields are the fields of the request of §21.5.
	reportFields = "pivotValues,dateRange,externalWebsiteConversions,externalWebsitePostClickConversions,externalWebsitePostViewConversions,conversionValueInLocalCurrency"
)

// ReportRow is one rule's conversions of one UTC day as LinkedIn reports
// them (adAnalytics, pivot CONVERSION, DAILY): attributed conversions, not
// accepted ones (§21.1).
type ReportRow struct {
	// Rule is the rule id (the text after the last ':' of the pivot value).
	Rule string
	// Day is the UTC day, at midnight.
	Day time.Time
	// Conversions is externalWebsiteConversions, rounded; PostClick and
	// PostView its parts as reported (their sum is not asserted, §21.4).
	Conversions, PostClick, PostView int64
	// Value is conversionValueInLocalCurrency ("" when absent).
	Value string
}

// ErrReportingScope matches the error of a report refused because the
// token lacks r_ads_reporting (403, §21.8): delivery is unaffected.
var ErrReportingScope = errors.New("the access token lacks the r_ads_reporting scope")

// ReportingScopeError is a report refused for the missing scope.
type ReportingScopeError struct{ *APIError }

func (e *ReportingScopeError) Error() string {
	return "LinkedIn refused the conversion report: the access token lacks the " + ScopeReporting + " scope (" + e.APIError.Error() + ")"
}

// Unwrap lets errors.Is match ErrReportingScope and the APIError.
func (e *ReportingScopeError) Unwrap() []error { return []error{ErrReportingScope, e.APIError} }

// reportDate is the dateRange syntax of §21.3:
// (year:2025,month:12,day:29).
func reportDate(t time.Time) string {
	return fmt.Sprintf("(year:%d,month:%d,day:%d)", t.Year(), int(t.Month()), t.Day())
}

// ReportQuery is the query string of one adAnalytics request for account's
// daily conversions per rule from one UTC day to another (inclusive), built
// by hand: Rest.li's parentheses, colons and commas stay literal, the
// account URN is percent-encoded (§21.3).
func ReportQuery(account int64, from, to time.Time) string {
	return "q=analytics&pivot=CONVERSION&timeGranularity=DAILY" +
		"&dateRange=(start:" + reportDate(from) + ",end:" + reportDate(to) + ")" +
		"&accounts=List(" + restliEscape(AccountURN(account)) + ")" +
		"&fields=" + reportFields
}

// utcDay is t's UTC day at midnight.
func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// ConversionReport returns account's conversions per rule and UTC day from
// from's day to to's day, inclusive (§21.5), in requests of at most 31 days.
// Rows come sorted by rule and day; days without activity have none. A
// token without r_ads_reporting gives a *ReportingScopeError; other
// failures are *APIError.
func (c *Client) ConversionReport(ctx context.Context, account int64, from, to time.Time) ([]ReportRow, error) {
	const op = "read conversion report"
	from, to = utcDay(from), utcDay(to)
	if to.Before(from) {
		return nil, fmt.Errorf("%s: range ends (%s) before it starts (%s)", op, to.Format(time.DateOnly), from.Format(time.DateOnly))
	}
	var rows []ReportRow
	for start := from; !start.After(to); start = start.AddDate(0, 0, maxReportDays) {
		end := start.AddDate(0, 0, maxReportDays-1)
		if end.After(to) {
			end = to
		}
		resp, err := c.call(ctx, message{op: op, method: http.MethodGet, path: AnalyticsPath, query: ReportQuery(account, start, end)})
		if err != nil {
			var ae *APIError
			if errors.As(err, &ae) && ae.Status == http.StatusForbidden {
				return nil, &ReportingScopeError{ae}
			}
			return nil, err
		}
		got, n, err := decodeReport(resp.Body)
		if err != nil {
			return nil, &APIError{Op: op, Outcome: Outcome{Class: ClassRetry, Status: resp.Status}, Err: err}
		}
		if n >= maxReportElements {
			c.log.Warn("LinkedIn's conversion report has 15,000 elements, its silent truncation limit; some rows may be missing",
				"from", start.Format(time.DateOnly), "to", end.Format(time.DateOnly))
		}
		for _, skipped := range got.skipped {
			c.log.Warn("conversion report: skipped a pivot value that names no rule", "pivot_value", skipped)
		}
		rows = append(rows, got.rows...)
	}
	sortRows(rows)
	return rows, nil
}

func sortRows(rows []ReportRow) {
	// Rules compare by number (all are numeric), then days.
	slices.SortFunc(rows, func(a, b ReportRow) int {
		if c := cmp.Compare(len(a.Rule), len(b.Rule)); c != 0 {
			return c
		}
		if c := strings.Compare(a.Rule, b.Rule); c != 0 {
			return c
		}
		return a.Day.Compare(b.Day)
	})
}

type reportDateJSON struct {
	Year  int `json:"year"`
	Month int `json:"month"`
	Day   int `json:"day"`
}

type reportElement struct {
	PivotValues []string `json:"pivotValues"`
	Pivot       string   `json:"pivot"`      // legacy, tolerated
	PivotValue  string   `json:"pivotValue"` // legacy, tolerated
	DateRange   *struct {
		Start reportDateJSON `json:"start"`
		End   reportDateJSON `json:"end"`
	} `json:"dateRange"`
	Conversions json.Number     `json:"externalWebsiteConversions"`
	PostClick   json.Number     `json:"externalWebsitePostClickConversions"`
	PostView    json.Number     `json:"externalWebsitePostViewConversions"`
	Value       json.RawMessage `json:"conversionValueInLocalCurrency"`
}

type decodedReport struct {
	rows    []ReportRow
	skipped []string
}

// decodeReport reads an adAnalytics answer by the rules of §21.4: counts
// are numbers that may be fractional (rounded), absent metrics are 0, the
// value is a string or a number, unknown keys are ignored, and pivot
// values whose tail is not numeric are skipped.
func decodeReport(body []byte) (decodedReport, int, error) {
	var out decodedReport
	var page struct {
		Elements []reportElement `json:"elements"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&page); err != nil {
		return out, 0, fmt.Errorf("decode report: %w", err)
	}
	for _, e := range page.Elements {
		pv := e.PivotValue
		if len(e.PivotValues) > 0 {
			pv = e.PivotValues[0]
		}
		rule := pv[strings.LastIndexByte(pv, ':')+1:]
		if _, err := strconv.ParseUint(rule, 10, 64); err != nil {
			out.skipped = append(out.skipped, pv)
			continue
		}
		if e.DateRange == nil {
			return out, 0, fmt.Errorf("decode report: an element of rule %s has no dateRange", rule)
		}
		s := e.DateRange.Start
		day := time.Date(s.Year, time.Month(s.Month), s.Day, 0, 0, 0, 0, time.UTC)
		row := ReportRow{Rule: rule, Day: day}
		var err error
		if row.Conversions, err = count(e.Conversions); err != nil {
			return out, 0, err
		}
		if row.PostClick, err = count(e.PostClick); err != nil {
			return out, 0, err
		}
		if row.PostView, err = count(e.PostView); err != nil {
			return out, 0, err
		}
		if len(e.Value) > 0 && string(e.Value) != "null" {
			var str string
			if json.Unmarshal(e.Value, &str) == nil {
				row.Value = str
			} else {
				row.Value = strings.TrimSpace(string(e.Value))
			}
		}
		out.rows = append(out.rows, row)
	}
	return out, len(page.Elements), nil
}

func count(n json.Number) (int64, error) {
	if n == "" {
		return 0, nil
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("decode report: %q is not a count", n)
	}
	return int64(math.Round(f)), nil
}

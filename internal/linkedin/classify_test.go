package linkedin

import (
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	now := time.Date(2026, 1, 1, 18, 0, 0, 0, time.UTC)
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name       string
		status     int
		header     http.Header
		body       string
		batchLen   int
		class      Class
		retryAfter time.Duration
		daily      bool
		failures   []int
	}{
		{"single 201 empty body", 201, nil, "", 0, ClassSuccess, 0, false, nil},
		{"single 201 body never parsed", 201, nil, `{"elements":[{"status":400}]}`, 0, ClassSuccess, 0, false, nil},
		{"batch 200", 200, nil, `{"elements":[{"status":201},{"status":201}]}`, 2, ClassSuccess, 0, false, nil},
		{"batch 200 not JSON", 200, nil, `<html>`, 2, ClassSuccess, 0, false, nil},
		{"batch 200 partial §9.3", 200, nil, `{"elements":[{"status":201},{"status":400,"error":{"status":400,"message":"Conversion happened at timestamp is older than 90 days"}}]}`,
			2, ClassSplit, 0, false, []int{1}},
		{"batch 204", 204, nil, "", 3, ClassSuccess, 0, false, nil},

		{"422 batch with indices", 422, nil, `{"message":"Index: 0, ERROR :: /conversionValue/amount :: field is required but not found and has no default value\nERROR :: /user/userInfo/firstName :: field is required but not found and has no default value\nIndex: 2, ERROR :: /user/userIds/0/idType :: \"SHA256_PHONE\" is not an enum symbol\n","status":422}`,
			3, ClassSplit, 0, false, []int{0, 2}},
		{"422 batch without indices", 422, nil, `{"message":"ERROR :: /elements :: field is required but not found and has no default value\n","status":422}`,
			3, ClassDeadLetter, 0, false, nil},
		{"422 batch with out-of-range index only", 422, nil, `{"message":"Index: 7, ERROR :: /x :: y\n","status":422}`,
			3, ClassDeadLetter, 0, false, nil},
		{"422 single", 422, nil, `{"message":"ERROR :: /user/userInfo/lastName :: field is required but not found and has no default value\n","status":422}`,
			0, ClassDeadLetter, 0, false, []int{0}},
		{"400 batch with indices", 400, nil, `{"status":400,"code":"INVALID_CONVERSION_TIME_FIELD_VALUE","message":"conversionHappenedAt must be within the past 90 days and not in the future, indices [1, 3] (0-indexed)"}`,
			4, ClassSplit, 0, false, []int{1, 3}},
		{"400 batch indices without spaces", 400, nil, `{"message":"Incorrect conversions information provided. Conversion's method should be CONVERSIONS_API, indices [0,2] (0-indexed)","status":400}`,
			3, ClassSplit, 0, false, []int{0, 2}},
		{"400 batch without indices", 400, nil, `{"status":400,"message":"Batch size must be between 1 and 5000, got 5001"}`,
			5001, ClassDeadLetter, 0, false, nil},
		{"400 single business rule", 400, nil, `{"status":400,"code":"INVALID_USER_IDENTIFICATION_FIELD_VALUE","message":"At least one user identifier or userInfo with firstName and lastName is required"}`,
			0, ClassDeadLetter, 0, false, nil},
		{"400 VERSION_MISSING pauses", 400, nil, `{"status":400,"code":"VERSION_MISSING","message":"A version must be present. Please specify a version by adding the LinkedIn-Version header."}`,
			2, ClassVersion, 0, false, nil},
		{"404", 404, nil, `{"status":404,"message":"No resource found for path /rest/foo"}`, 0, ClassDeadLetter, 0, false, nil},
		{"405", 405, nil, `{"status":405,"message":"Method not allowed"}`, 0, ClassDeadLetter, 0, false, nil},
		{"415", 415, nil, `{"status":415,"message":"Unsupported Media Type"}`, 0, ClassDeadLetter, 0, false, nil},
		{"413", 413, nil, `<html>too large</html>`, 5000, ClassTooLarge, 0, false, nil},

		{"401 empty token", 401, nil, `{"message":"Empty oauth2_access_token","serviceErrorCode":401,"status":401}`, 0, ClassAuthMissing, 0, false, nil},
		{"401 invalid", 401, nil, `{"status":401,"serviceErrorCode":65600,"code":"INVALID_ACCESS_TOKEN","message":"Invalid access token"}`, 0, ClassAuthExpired, 0, false, nil},
		{"401 revoked", 401, nil, `{"status":401,"serviceErrorCode":65601,"code":"REVOKED_ACCESS_TOKEN","message":"The token used in the request has been revoked by the user"}`, 0, ClassAuthRevoked, 0, false, nil},
		{"401 expired", 401, nil, `{"status":401,"serviceErrorCode":65602,"code":"EXPIRED_ACCESS_TOKEN","message":"The token used in the request has expired"}`, 0, ClassAuthExpired, 0, false, nil},
		{"401 revoked by code only", 401, nil, `{"code":"REVOKED_ACCESS_TOKEN"}`, 0, ClassAuthRevoked, 0, false, nil},
		{"401 HTML", 401, nil, `<html>`, 0, ClassAuthExpired, 0, false, nil},
		{"403", 403, nil, `{"status":403,"serviceErrorCode":100,"code":"ACCESS_DENIED","message":"Not enough permissions to access: conversionEvents.CREATE.20260901"}`, 0, ClassForbidden, 0, false, nil},
		{"426", 426, nil, `{"status":426,"code":"NONEXISTENT_VERSION","message":"Requested version 20240101 is not active"}`, 0, ClassVersion, 0, false, nil},

		{"429 minute", 429, nil, `{"status":429,"serviceErrorCode":101,"code":"TOO_MANY_REQUESTS","message":"Resource level throttle limit for calls to this resource is reached."}`,
			0, ClassRetry, 0, false, nil},
		{"429 minute with Retry-After", 429, hdr("Retry-After", "30"), `{}`, 0, ClassRetry, 30 * time.Second, false, nil},
		{"429 day waits for UTC midnight", 429, nil, `{"status":429,"serviceErrorCode":101,"code":"TOO_MANY_REQUESTS","message":"Resource level throttle APPLICATION_AND_MEMBER DAY limit for calls to this resource is reached."}`,
			0, ClassRetry, 6 * time.Hour, true, nil},
		{"429 day with shorter Retry-After", 429, hdr("Retry-After", "60"), `{"message":"Resource level throttle MEMBER DAY limit for calls to this resource is reached."}`,
			0, ClassRetry, 6 * time.Hour, true, nil},
		{"500", 500, nil, `{"status":500,"code":"INTERNAL_SERVER_ERROR","message":"Internal Server Error"}`, 0, ClassRetry, 0, false, nil},
		{"502 HTML", 502, nil, `<html><body>Bad Gateway</body></html>`, 0, ClassRetry, 0, false, nil},
		{"503 with HTTP-date Retry-After", 503, hdr("Retry-After", "Thu, 01 Jan 2026 18:02:00 GMT"), `{"status":503}`, 0, ClassRetry, 2 * time.Minute, false, nil},
		{"504 empty", 504, nil, ``, 0, ClassRetry, 0, false, nil},
		{"408", 408, nil, ``, 0, ClassRetry, 0, false, nil},
		{"501", 501, nil, ``, 0, ClassDeadLetter, 0, false, nil},
		{"409 other 4xx", 409, nil, ``, 0, ClassDeadLetter, 0, false, nil},
		{"302 redirect", 302, nil, ``, 0, ClassDeadLetter, 0, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			h.Set("X-LI-UUID", "AAYIbWvmBmkoHhcx9SVCSA==")
			o := Classify(Response{Status: tt.status, Header: h, Body: []byte(tt.body)}, tt.batchLen, now)
			if o.Class != tt.class || o.RetryAfter != tt.retryAfter || o.DailyLimit != tt.daily {
				t.Errorf("got %s retryAfter %s daily %v, want %s %s %v", o.Class, o.RetryAfter, o.DailyLimit, tt.class, tt.retryAfter, tt.daily)
			}
			var idx []int
			for _, f := range o.Failures {
				idx = append(idx, f.Index)
			}
			if !slices.Equal(idx, tt.failures) {
				t.Errorf("failure indices %v, want %v", idx, tt.failures)
			}
			if o.Status != tt.status || o.RequestID != "AAYIbWvmBmkoHhcx9SVCSA==" {
				t.Errorf("status %d request id %q", o.Status, o.RequestID)
			}
		})
	}
}

func TestClassifyFailureDetails(t *testing.T) {
	now := time.Unix(0, 0)
	o := Classify(Response{Status: 422, Body: []byte(`{"message":"Index: 0, ERROR :: /conversionValue/amount :: field is required but not found and has no default value\nERROR :: /user/userInfo/firstName :: field is required but not found and has no default value\nIndex: 2, ERROR :: /user/userIds/0/idType :: \"SHA256_PHONE\" is not an enum symbol\n","status":422}`)}, 3, now)
	want := []Failure{
		{Index: 0, Status: 422,
			Message: "ERROR :: /conversionValue/amount :: field is required but not found and has no default value\nERROR :: /user/userInfo/firstName :: field is required but not found and has no default value",
			Errors: []SchemaError{
				{"/conversionValue/amount", "field is required but not found and has no default value"},
				{"/user/userInfo/firstName", "field is required but not found and has no default value"},
			}},
		{Index: 2, Status: 422, Message: `ERROR :: /user/userIds/0/idType :: "SHA256_PHONE" is not an enum symbol`,
			Errors: []SchemaError{{"/user/userIds/0/idType", `"SHA256_PHONE" is not an enum symbol`}}},
	}
	if !reflect.DeepEqual(o.Failures, want) {
		t.Errorf("422 failures\n got %+v\nwant %+v", o.Failures, want)
	}

	o = Classify(Response{Status: 400, Body: []byte(`{"status":400,"message":"conversionHappenedAt must be within the past 90 days and not in the future, indices [3, 1] (0-indexed)"}`)}, 4, now)
	wantMsg := "conversionHappenedAt must be within the past 90 days and not in the future"
	if len(o.Failures) != 2 || o.Failures[0].Index != 1 || o.Failures[1].Index != 3 ||
		o.Failures[0].Message != wantMsg || o.Failures[0].Status != 400 {
		t.Errorf("400 failures = %+v", o.Failures)
	}

	o = Classify(Response{Status: 200, Body: []byte(`{"elements":[{"status":201},{"status":400,"error":{"status":400,"message":"Invalid currencyCode"}},{"status":201},{"error":{"status":422,"message":"bad"}}]}`)}, 4, now)
	if o.Class != ClassSplit || len(o.Failures) != 2 || o.Failures[0].Message != "Invalid currencyCode" || o.Failures[1].Index != 3 || o.Failures[1].Status != 422 {
		t.Errorf("partial failures = %+v", o.Failures)
	}

	o = Classify(Response{Status: 422, Body: []byte(`{"message":"ERROR :: /user/userInfo/lastName :: field is required but not found and has no default value\n","status":422}`)}, 0, now)
	if o.Class != ClassDeadLetter || len(o.Failures) != 1 || o.Failures[0].Errors[0].Path != "/user/userInfo/lastName" {
		t.Errorf("single 422 = %+v", o)
	}
	if o.Message == "" || o.Status != 422 {
		t.Errorf("message/status not kept: %+v", o)
	}
}

func TestParseSchemaErrors(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want []int
	}{
		{"none", "ERROR :: /a :: b\n", nil},
		{"two", "Index: 0, ERROR :: /a :: b\nIndex: 12, ERROR :: /c :: d\n", []int{0, 12}},
		{"repeated index kept in order", "Index: 1, ERROR :: /a :: b\nIndex: 1, ERROR :: /c :: d\n", []int{1, 1}},
		{"marker needs digits and comma", "Index: x, Index: 5 ERROR Index: 3, ok", []int{3}},
		{"mid-line marker", "prefix Index: 4, ERROR :: /a :: b", []int{4}},
		{"huge index ignored", "Index: 99999999999999999999, x", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, ok := ParseSchemaErrors(tt.msg)
			var got []int
			for _, f := range fs {
				got = append(got, f.Index)
			}
			if ok != (tt.want != nil) || !slices.Equal(got, tt.want) {
				t.Errorf("got %v %v, want %v", got, ok, tt.want)
			}
		})
	}
}

func TestParseRuleIndices(t *testing.T) {
	tests := []struct {
		name, msg, stem string
		want            []int
	}{
		{"spaces", "Invalid currencyCode, indices [1, 3] (0-indexed)", "Invalid currencyCode", []int{1, 3}},
		{"no spaces", "Invalid amount, must be a non-negative decimal string, indices [0,2,5] (0-indexed)", "Invalid amount, must be a non-negative decimal string", []int{0, 2, 5}},
		{"one", "Only one externalId is allowed, indices [0] (0-indexed)", "Only one externalId is allowed", []int{0}},
		{"empty list", "x, indices [] (0-indexed)", "", nil},
		{"no suffix", "x, indices [1, 2]", "", nil},
		{"letters", "x, indices [a] (0-indexed)", "", nil},
		{"second occurrence valid", "indices [a] (0-indexed) then y, indices [4] (0-indexed)", "indices [a] (0-indexed) then y", []int{4}},
		{"none", "At least one user identifier or userInfo with firstName and lastName is required", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, stem, ok := ParseRuleIndices(tt.msg)
			if ok != (tt.want != nil) || !slices.Equal(got, tt.want) || (ok && stem != tt.stem) {
				t.Errorf("got %v %q %v, want %v %q", got, stem, ok, tt.want, tt.stem)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   string
		want time.Duration
		ok   bool
	}{
		{"seconds", "30", 30 * time.Second, true},
		{"zero", "0", 0, true},
		{"padded", " 120 ", 2 * time.Minute, true},
		{"capped", "999999999", MaxRetryAfter, true},
		{"overflow capped", "99999999999999999999999", MaxRetryAfter, true},
		{"IMF-fixdate", "Thu, 01 Jan 2026 00:05:00 GMT", 5 * time.Minute, true},
		{"RFC 850", "Thursday, 01-Jan-26 00:00:10 GMT", 10 * time.Second, true},
		{"asctime", "Thu Jan  1 00:01:00 2026", time.Minute, true},
		{"date in the past", "Wed, 31 Dec 2025 23:00:00 GMT", 0, true},
		{"far future date capped", "Fri, 01 Jan 2100 00:00:00 GMT", MaxRetryAfter, true},
		{"empty", "", 0, false},
		{"negative", "-5", 0, false},
		{"fraction", "1.5", 0, false},
		{"garbage", "soon", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseRetryAfter(tt.in, now)
			if got != tt.want || ok != tt.ok {
				t.Errorf("ParseRetryAfter(%q) = %s, %v; want %s, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestUntilNextUTCDay(t *testing.T) {
	tests := []struct {
		now  time.Time
		want time.Duration
	}{
		{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 24 * time.Hour},
		{time.Date(2026, 1, 1, 23, 59, 59, 0, time.UTC), time.Second},
		{time.Date(2026, 12, 31, 12, 0, 0, 0, time.UTC), 12 * time.Hour},
		{time.Date(2026, 1, 1, 20, 0, 0, 0, time.FixedZone("X", -5*3600)), 23 * time.Hour}, // 01:00 UTC next day
	}
	for _, tt := range tests {
		if got := UntilNextUTCDay(tt.now); got != tt.want {
			t.Errorf("UntilNextUTCDay(%s) = %s, want %s", tt.now, got, tt.want)
		}
	}
}

func TestClassString(t *testing.T) {
	if ClassSplit.String() != "split" || Class(0).String() != "Class(0)" || Class(99).String() != "Class(99)" {
		t.Error("Class.String")
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"30", "0", "Thu, 01 Jan 2026 00:05:00 GMT", "Thursday, 01-Jan-26 00:00:10 GMT",
		"Thu Jan  1 00:01:00 2026", "-1", "1e3", "18446744073709551616", ""} {
		f.Add(s)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := ParseRetryAfter(s, now)
		if d < 0 || d > MaxRetryAfter {
			t.Fatalf("ParseRetryAfter(%q) = %s, out of [0, %s]", s, d, MaxRetryAfter)
		}
		if !ok && d != 0 {
			t.Fatalf("ParseRetryAfter(%q) = %s with ok false", s, d)
		}
		if v := strings.TrimSpace(s); v != "" && allDigits(v) && !ok {
			t.Fatalf("delta-seconds %q rejected", s)
		}
	})
}

func FuzzClassifyErrorBody(f *testing.F) {
	for _, s := range []string{
		"Index: 0, ERROR :: /a :: b\nERROR :: /c :: d\nIndex: 2, ERROR :: /e :: f\n",
		"x, indices [1, 3] (0-indexed)",
		"Resource level throttle APPLICATION_AND_MEMBER DAY limit",
		"Index: 9, Index: , indices [,] (0-indexed)",
	} {
		f.Add(422, s, 3)
		f.Add(400, s, 3)
	}
	f.Add(200, `{"elements":[{"status":201},{"status":400,"error":{"message":"x"}}]}`, 2)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, msg string, n int) {
		n %= 6000
		if n < 0 {
			n = -n
		}
		body := msg
		if status != 200 {
			body = `{"status":` + "1" + `,"message":` + string(appendString(nil, msg)) + `}`
		}
		o := Classify(Response{Status: status, Header: http.Header{}, Body: []byte(body)}, n, now)
		if o.Class < ClassSuccess || o.Class > ClassVersion {
			t.Fatalf("invalid class %d", o.Class)
		}
		if o.Class == ClassSplit {
			if len(o.Failures) == 0 {
				t.Fatal("split without failures")
			}
			for i, fl := range o.Failures {
				if fl.Index < 0 || fl.Index >= n {
					t.Fatalf("failure index %d outside batch of %d", fl.Index, n)
				}
				if i > 0 && o.Failures[i-1].Index >= fl.Index {
					t.Fatalf("failures not ascending and unique: %+v", o.Failures)
				}
			}
		}
		// The parsers never panic on arbitrary text either.
		ParseSchemaErrors(msg)
		ParseRuleIndices(msg)
	})
}

// TestPartialFailuresShortcut checks that noFailingStatus vouches for a
// body only when encoding/json finds no failure in it either, and that
// partialFailures finds the same failures with it as without.
func TestPartialFailuresShortcut(t *testing.T) {
	for _, tt := range []struct {
		body  string
		vouch bool // noFailingStatus(body)
	}{
		{`{"elements":[{"status":201},{"status":201}]}`, true},
		{`{"elements":[ { "status" : 201 } ,{"STATUS":200}]}`, true},
		{`{"elements":[{"status":201,"id":"urn:li:x"}],"paging":{}}`, true},
		{`{"elements":[{"message":"status"},{"status":201}]}`, true},
		{`{"elements":[]}`, true},
		{`not json`, true},
		{`{"elements":[{"status":201},{"status":400}]}`, false},
		{`{"elements":[{"Status":422}]}`, false},
		{`{"elements":[{"status":201},{"error":{"status":500,"message":"x"}}]}`, false},
		{`{"elements":[{"status":2010}]}`, false},
		{`{"elements":[{"status":201.0}]}`, false},
		{`{"elements":[{"status":2e2}]}`, false},
		{`{"elements":[{"status":"500"}]}`, false},
		{`{"elements":[{"status":-500}]}`, false},
		{`{"elements":[{"st\u0061tus":500}]}`, false},
		{`{"elements":[{"ſtatus":500}]}`, false}, // U+017F folds to s in encoding/json
		{`{"elements":[{"status":201},{"status":`, false},
	} {
		body := []byte(tt.body)
		if got := noFailingStatus(body); got != tt.vouch {
			t.Errorf("noFailingStatus(%s) = %v, want %v", tt.body, got, tt.vouch)
		}
		if noFailingStatus(body) && len(decodedFailures(body, 10)) > 0 {
			t.Errorf("noFailingStatus vouched for %s, which has failures %+v", tt.body, decodedFailures(body, 10))
		}
		if got, want := partialFailures(body, 10), decodedFailures(body, 10); !reflect.DeepEqual(got, want) {
			t.Errorf("partialFailures(%s) = %+v, want %+v", tt.body, got, want)
		}
	}
}

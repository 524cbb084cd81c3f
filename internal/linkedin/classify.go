package linkedin

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Class is what delivery must do with a request after LinkedIn's answer
// (§17.1). The zero value is not a valid class.
type Class int

// Classes.
const (
	// ClassSuccess: every element was stored (any 2xx without per-element
	// failures). Mark delivered; never resend.
	ClassSuccess Class = iota + 1
	// ClassRetry: transient (408, 423, 425, 429, 5xx except 501). Back off
	// (§17.2) for at least Outcome.RetryAfter and resend the same bytes.
	ClassRetry
	// ClassSplit: LinkedIn refused the elements listed in Outcome.Failures
	// (422 with "Index:", 400 with "indices [...]", or a 200 with
	// per-element errors). Dead-letter those; resend the rest at once.
	ClassSplit
	// ClassTooLarge: 413. Halve the batch and resend both halves; a single
	// element is dead-lettered. (Not in the spec: a capstan choice, since a
	// 5000-element batch can exceed a proxy's body limit.)
	ClassTooLarge
	// ClassDeadLetter: the whole request is refused for reasons retrying
	// cannot fix (400/422 without indices, 404, 405, 415, other 4xx,
	// unexpected 1xx/3xx, 501). Dead-letter every element with the message.
	ClassDeadLetter
	// ClassAuthExpired: 401 65602 (expired) or 65600 (invalid), or a 401
	// without a recognisable body. Refresh the token and retry once; a
	// second 401 is terminal (§17.3).
	ClassAuthExpired
	// ClassAuthRevoked: 401 65601. Retry once after 5 s if the token was
	// minted less than 60 s ago, otherwise terminal: reauth_required.
	ClassAuthRevoked
	// ClassAuthMissing: 401 "Empty oauth2_access_token" (serviceErrorCode
	// 401): no token was sent, a client bug. Terminal; keep the queue.
	ClassAuthMissing
	// ClassForbidden: 403. Pause the destination (forbidden), alert, keep
	// the queue; never dead-letter.
	ClassForbidden
	// ClassVersion: 426 NONEXISTENT_VERSION, or 400 VERSION_MISSING. Pause
	// the destination (version_inactive), alert, keep the queue.
	ClassVersion
)

var classNames = [...]string{
	ClassSuccess:     "success",
	ClassRetry:       "retry",
	ClassSplit:       "split",
	ClassTooLarge:    "too_large",
	ClassDeadLetter:  "dead_letter",
	ClassAuthExpired: "auth_expired",
	ClassAuthRevoked: "auth_revoked",
	ClassAuthMissing: "auth_missing",
	ClassForbidden:   "forbidden",
	ClassVersion:     "version",
}

// String returns the class's snake_case name, usable as a metrics label.
func (c Class) String() string {
	if c > 0 && int(c) < len(classNames) {
		return classNames[c]
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}

// Response is the part of a LinkedIn HTTP response that classification
// reads. Body should be read with a size bound by the caller.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Outcome is the classification of one response.
type Outcome struct {
	Class Class
	// Status is the HTTP status.
	Status int
	// Code, ServiceErrorCode and Message come from a Rest.li error body
	// (§5), when there is one.
	Code             string
	ServiceErrorCode int
	Message          string
	// RequestID is the X-LI-UUID header, to log with failures (§3.2).
	RequestID string
	// RetryAfter is the minimum wait before the next attempt: the
	// Retry-After header, or for a daily 429 the time to the next 00:00
	// UTC (callers add 0–60 s of jitter, §11). Zero means none given.
	RetryAfter time.Duration
	// DailyLimit is true for a 429 whose message names the DAY limit.
	DailyLimit bool
	// Failures lists, for ClassSplit, the refused elements in ascending
	// index order (indices into the request's elements, which
	// Request.Indices maps back). A ClassDeadLetter from a 422 on a single
	// create carries its parsed errors as Failures[0].
	Failures []Failure
}

// Failure is one element LinkedIn refused.
type Failure struct {
	// Index is the element's position in the request body.
	Index int
	// Status is 422 (schema), 400 (business rule) or the element's own
	// status in a 200 partial response.
	Status int
	// Message is LinkedIn's text about this element: the ERROR lines of a
	// 422, the rule of a 400 without its indices suffix, or the element's
	// error message.
	Message string
	// Errors are the parsed "ERROR :: path :: reason" lines of a 422.
	Errors []SchemaError
}

// SchemaError is one line of a 422 message.
type SchemaError struct {
	// Path is the JSON pointer inside the element ("/user/userInfo/lastName").
	Path string
	// Reason is LinkedIn's text ("field is required but not found and has
	// no default value").
	Reason string
}

// errorBody is the Rest.li error shape of §5, decoded leniently.
type errorBody struct {
	Status           int    `json:"status"`
	ServiceErrorCode int    `json:"serviceErrorCode"`
	Code             string `json:"code"`
	Message          string `json:"message"`
}

// Service error codes of 401 answers (§7).
const (
	serviceInvalidToken = 65600
	serviceRevokedToken = 65601
	serviceExpiredToken = 65602
	serviceEmptyToken   = 401
)

// Classify decides what to do after LinkedIn answered r (§17.1). batchLen
// is the number of elements of a BATCH_CREATE request, or 0 for a single
// create. now converts an HTTP-date Retry-After and finds the next UTC
// midnight. Classify is pure and never fails: a body that is not JSON (an
// HTML page from a proxy) is classified by status alone (§5).
//
// Classification depends on the status, the error body's code and
// serviceErrorCode, and only the message texts the spec allows: "DAY" in a
// 429, "Index: N, " in a 422, "indices [...] (0-indexed)" in a 400 (§1).
func Classify(r Response, batchLen int, now time.Time) Outcome {
	o := Outcome{Status: r.Status, RequestID: r.Header.Get("X-Li-Uuid")}
	var body errorBody
	if r.Status >= 300 || r.Status < 200 {
		// Unknown keys and wrong-typed fields are ignored; a non-JSON body
		// leaves body empty.
		_ = json.Unmarshal(r.Body, &body)
		o.Code, o.ServiceErrorCode, o.Message = body.Code, body.ServiceErrorCode, body.Message
	}

	switch s := r.Status; {
	case s >= 200 && s < 300:
		o.Class = ClassSuccess
		if batchLen > 0 && s == http.StatusOK {
			if f := partialFailures(r.Body, batchLen); len(f) > 0 {
				o.Class, o.Failures = ClassSplit, f
			}
		}
	case s == http.StatusUnauthorized:
		o.Class = authClass(body)
	case s == http.StatusForbidden:
		o.Class = ClassForbidden
	case s == http.StatusUpgradeRequired:
		o.Class = ClassVersion
	case s == http.StatusBadRequest && body.Code == "VERSION_MISSING":
		o.Class = ClassVersion
	case s == http.StatusRequestEntityTooLarge:
		o.Class = ClassTooLarge
	case s == http.StatusTooManyRequests:
		o.Class = ClassRetry
		o.RetryAfter = retryAfterHeader(r.Header, now)
		if strings.Contains(body.Message, "DAY") {
			o.DailyLimit = true
			o.RetryAfter = max(o.RetryAfter, UntilNextUTCDay(now))
		}
	case s == http.StatusRequestTimeout, s == http.StatusLocked, s == http.StatusTooEarly,
		s >= 500 && s != http.StatusNotImplemented:
		o.Class = ClassRetry
		o.RetryAfter = retryAfterHeader(r.Header, now)
	case s == http.StatusUnprocessableEntity:
		o.Class = ClassDeadLetter
		if batchLen == 0 {
			o.Failures = []Failure{{Index: 0, Status: s, Message: strings.TrimRight(body.Message, "\n"),
				Errors: schemaLines(body.Message)}}
			break
		}
		if f, ok := ParseSchemaErrors(body.Message); ok {
			if f = inRange(f, batchLen); len(f) > 0 {
				o.Class, o.Failures = ClassSplit, f
			}
		}
	case s == http.StatusBadRequest && batchLen > 0:
		o.Class = ClassDeadLetter
		if idx, stem, ok := ParseRuleIndices(body.Message); ok {
			f := make([]Failure, 0, len(idx))
			for _, i := range idx {
				f = append(f, Failure{Index: i, Status: s, Message: stem})
			}
			if f = inRange(f, batchLen); len(f) > 0 {
				o.Class, o.Failures = ClassSplit, f
			}
		}
	default:
		o.Class = ClassDeadLetter
	}
	return o
}

func authClass(b errorBody) Class {
	switch {
	case b.ServiceErrorCode == serviceRevokedToken || b.Code == "REVOKED_ACCESS_TOKEN":
		return ClassAuthRevoked
	case b.ServiceErrorCode == serviceExpiredToken || b.ServiceErrorCode == serviceInvalidToken ||
		b.Code == "EXPIRED_ACCESS_TOKEN" || b.Code == "INVALID_ACCESS_TOKEN":
		return ClassAuthExpired
	case b.ServiceErrorCode == serviceEmptyToken:
		return ClassAuthMissing
	}
	// Unrecognised 401: one refresh is the cheapest way to find out.
	return ClassAuthExpired
}

// inRange keeps failures whose index lies in [0, n), sorted by index with
// duplicates merged. An empty result means the message cannot be trusted
// to name elements, and the whole request is dead-lettered.
func inRange(fs []Failure, n int) []Failure {
	out := fs[:0]
	for _, f := range fs {
		if f.Index >= 0 && f.Index < n {
			out = append(out, f)
		}
	}
	slices.SortStableFunc(out, func(a, b Failure) int { return a.Index - b.Index })
	merged := out[:0]
	for _, f := range out {
		if k := len(merged); k > 0 && merged[k-1].Index == f.Index {
			m := &merged[k-1]
			m.Errors = append(m.Errors, f.Errors...)
			if f.Message != "" && f.Message != m.Message {
				m.Message += "\n" + f.Message
			}
			continue
		}
		merged = append(merged, f)
	}
	if len(merged) == 0 {
		return nil
	}
	return merged
}

// partialFailures reads the elements of a 200 BATCH_CREATE answer (§9.2,
// §9.3 partial mode) and returns those with a status of 400 or more. A body
// that is empty, not JSON, or without elements yields none: a 2xx is
// success.
func partialFailures(body []byte, n int) []Failure {
	if len(body) == 0 || noFailingStatus(body) {
		return nil
	}
	return decodedFailures(body, n)
}

// decodedFailures is partialFailures without noFailingStatus's shortcut:
// the body decoded by encoding/json.
func decodedFailures(body []byte, n int) []Failure {
	var resp struct {
		Elements []struct {
			Status int `json:"status"`
			Error  *struct {
				Status  int    `json:"status"`
				Message string `json:"message"`
			} `json:"error"`
		} `json:"elements"`
	}
	if json.Unmarshal(body, &resp) != nil {
		return nil
	}
	var fs []Failure
	for i, e := range resp.Elements {
		if i >= n {
			break
		}
		st := e.Status
		if st == 0 && e.Error != nil {
			st = e.Error.Status
		}
		if st < 400 {
			continue
		}
		f := Failure{Index: i, Status: st}
		if e.Error != nil {
			f.Message = e.Error.Message
		}
		fs = append(fs, f)
	}
	return fs
}

// ParseSchemaErrors parses the message of a 422 batch answer (§10.4):
//
//	Index: 0, ERROR :: /conversionValue/amount :: field is required …\n
//	ERROR :: /user/userInfo/firstName :: field is required …\n
//	Index: 2, ERROR :: /user/userIds/0/idType :: "SHA256_PHONE" is not an enum symbol\n
//
// Every "Index: N, " starts the text of element N, which runs to the next
// such marker; the same index may appear more than once. Failures come in
// message order, each with Status 422, its text and its parsed ERROR lines.
// ok is false when the message names no index (a single-create 422, or a
// batch 422 that condemns the whole batch).
func ParseSchemaErrors(msg string) (fs []Failure, ok bool) {
	const marker = "Index: "
	type mark struct{ at, textAt, index int }
	var marks []mark
	for from := 0; ; {
		i := strings.Index(msg[from:], marker)
		if i < 0 {
			break
		}
		at := from + i
		j := at + len(marker)
		k := j
		for k < len(msg) && isDigit(msg[k]) && k-j < 9 {
			k++
		}
		if k > j && strings.HasPrefix(msg[k:], ", ") {
			n, _ := strconv.Atoi(msg[j:k])
			marks = append(marks, mark{at: at, textAt: k + 2, index: n})
			from = k + 2
			continue
		}
		from = j
	}
	for m, mk := range marks {
		end := len(msg)
		if m+1 < len(marks) {
			end = marks[m+1].at
		}
		text := msg[mk.textAt:end]
		fs = append(fs, Failure{Index: mk.index, Status: http.StatusUnprocessableEntity,
			Message: strings.TrimRight(text, "\n"), Errors: schemaLines(text)})
	}
	return fs, len(fs) > 0
}

// schemaLines parses "ERROR :: path :: reason" lines; a line of another
// shape becomes a SchemaError with an empty Path.
func schemaLines(text string) []SchemaError {
	var out []SchemaError
	for line := range strings.SplitSeq(text, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		rest, ok := strings.CutPrefix(line, "ERROR :: ")
		if !ok {
			out = append(out, SchemaError{Reason: line})
			continue
		}
		path, reason, ok := strings.Cut(rest, " :: ")
		if !ok {
			out = append(out, SchemaError{Reason: rest})
			continue
		}
		out = append(out, SchemaError{Path: path, Reason: reason})
	}
	return out
}

// ParseRuleIndices parses the indices of a 400 business-rule answer to a
// batch (§10.4): "{stem}, indices [1, 3] (0-indexed)". It returns the
// indices in message order, the stem (the message without the suffix), and
// false when the message has no such list. Spaces inside the brackets are
// optional.
func ParseRuleIndices(msg string) (indices []int, stem string, ok bool) {
	const open, closing = "indices [", "] (0-indexed)"
	for from := 0; ; {
		i := strings.Index(msg[from:], open)
		if i < 0 {
			return nil, "", false
		}
		at := from + i
		inner := msg[at+len(open):]
		j := strings.IndexByte(inner, ']')
		if j < 0 || !strings.HasPrefix(inner[j:], closing) || !isIndexList(inner[:j]) {
			from = at + len(open)
			continue
		}
		for f := range strings.FieldsFuncSeq(inner[:j], func(r rune) bool { return r == ',' || isSpaceByte(byte(r)) }) {
			if n, err := strconv.Atoi(f); err == nil {
				indices = append(indices, n)
			}
		}
		stem = strings.TrimRight(strings.TrimSuffix(strings.TrimRight(msg[:at], " "), ","), " ")
		return indices, stem, len(indices) > 0
	}
}

// isIndexList reports whether s holds only digits, commas and white space.
func isIndexList(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isDigit(c) && c != ',' && !isSpaceByte(c) {
			return false
		}
	}
	return true
}

// MaxRetryAfter bounds a Retry-After value: a longer wait is taken as
// 24 hours, so that a bogus header cannot stall a destination for years.
const MaxRetryAfter = 24 * time.Hour

// ParseRetryAfter parses a Retry-After value (RFC 9110 §10.2.3): either
// delta-seconds ("120") or an HTTP-date ("Wed, 21 Oct 2026 07:28:00 GMT",
// or the obsolete RFC 850 and asctime forms), relative to now. A date in the
// past gives 0. Results are capped at MaxRetryAfter. ok is false for an
// empty or malformed value (negative or fractional seconds included), which
// callers ignore.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if allDigits(v) {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n > uint64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter, true // overflow: very large
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d = t.Sub(now)
	if d < 0 {
		return 0, true
	}
	return min(d, MaxRetryAfter), true
}

func retryAfterHeader(h http.Header, now time.Time) time.Duration {
	d, _ := ParseRetryAfter(h.Get("Retry-After"), now)
	return d
}

// UntilNextUTCDay returns the time from now to the next 00:00 UTC, when
// LinkedIn's daily limits reset (§11); at exactly midnight it is 24 hours.
func UntilNextUTCDay(now time.Time) time.Duration {
	u := now.UTC()
	next := time.Date(u.Year(), u.Month(), u.Day()+1, 0, 0, 0, 0, time.UTC)
	return next.Sub(u)
}

// noFailingStatus reports, for a 200 answer to a BATCH_CREATE, that no
// element can have failed: every "status" key (any case, at any depth) has
// a plain integer value under 400. partialFailures then finds nothing
// without decoding the body (a 5,000-element answer costs encoding/json
// ~2 CPU-µs per element). Anything it cannot vouch for — a backslash (an
// escaped key), a byte outside ASCII (encoding/json folds Unicode when it
// matches keys), another value after "status" — leaves it to
// encoding/json: false.
func noFailingStatus(body []byte) bool {
	const key = `"status"`
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c == '\\' || c >= 0x80 {
			return false
		}
		if c != '"' || len(body)-i < len(key) || !strings.EqualFold(string(body[i:i+len(key)]), key) {
			continue
		}
		j := skipJSONSpace(body, i+len(key))
		if j == len(body) || body[j] != ':' {
			continue // a string value "status", not a key
		}
		j = skipJSONSpace(body, j+1)
		v, k := 0, j
		for k < len(body) && k-j < 4 && body[k] >= '0' && body[k] <= '9' {
			v = v*10 + int(body[k]-'0')
			k++
		}
		if k == j || k-j > 3 || v >= 400 || k < len(body) && (body[k] == '.' || body[k] == 'e' || body[k] == 'E' || body[k] >= '0' && body[k] <= '9') {
			return false
		}
		i = k - 1
	}
	return true
}

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

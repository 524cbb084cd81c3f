package linkedin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Request constants (§3.1, §8, §9).
const (
	// ConversionEventsPath is the path of the conversion events endpoint,
	// relative to the API host.
	ConversionEventsPath = "/rest/conversionEvents"
	// DefaultAPIVersion is the LinkedIn-Version capstan pins by default (§4).
	DefaultAPIVersion = "202609"
	// RestliProtocolVersion is the X-Restli-Protocol-Version the client
	// always sends.
	RestliProtocolVersion = "2.0.0"
	// MethodBatchCreate is the X-RestLi-Method of batch requests.
	MethodBatchCreate = "BATCH_CREATE"
	// RedactedValue replaces secrets wherever a Request is shown.
	RedactedValue = "REDACTED"
)

// Canonical header keys (http.CanonicalHeaderKey form, as stored in an
// http.Header). LinkedIn compares names case-insensitively (§3.1).
const (
	headerAuthorization   = "Authorization"
	headerVersion         = "Linkedin-Version"
	headerProtocolVersion = "X-Restli-Protocol-Version"
	headerMethod          = "X-Restli-Method"
	headerContentType     = "Content-Type"
)

// displayHeaders gives the order and the spec's spelling used when a
// Request is printed; other headers follow, sorted.
var displayHeaders = [...]struct{ key, name string }{
	{headerAuthorization, "Authorization"},
	{headerVersion, "LinkedIn-Version"},
	{headerProtocolVersion, "X-Restli-Protocol-Version"},
	{headerMethod, "X-RestLi-Method"},
	{headerContentType, "Content-Type"},
}

// RequestConfig holds what every request of a destination carries. The zero
// value sends DefaultAPIVersion without Authorization.
type RequestConfig struct {
	// APIVersion is the LinkedIn-Version header, YYYYMM. Empty means
	// DefaultAPIVersion; anything else must pass ValidateAPIVersion.
	APIVersion string
	// AccessToken is sent as "Authorization: Bearer <token>". Empty means no
	// Authorization header (a dry run); printed requests always show
	// "Bearer REDACTED" instead of the token.
	AccessToken string
}

// ValidateAPIVersion checks a LinkedIn-Version value: six digits YYYYMM with
// a month from 01 to 12. LinkedIn answers anything else with 426 (§4.1).
func ValidateAPIVersion(v string) error {
	if len(v) != 6 || !allDigits(v) {
		return fmt.Errorf("api version %q: must be YYYYMM, such as %s", v, DefaultAPIVersion)
	}
	if m, _ := strconv.Atoi(v[4:]); m < 1 || m > 12 {
		return fmt.Errorf("api version %q: month must be 01 to 12", v)
	}
	return nil
}

// Request is one HTTP request to LinkedIn, fully encoded: what `capstan
// preview` prints and what delivery sends. Body is fixed at creation, so a
// retry sends the same bytes (§16). A Request is a value; its Header and
// Body must be treated as read-only once shared.
//
// Printing a Request (json.Marshal, slog) never reveals the access token.
type Request struct {
	Method string
	// Path is relative to the API host, e.g. /rest/conversionEvents.
	Path   string
	Header http.Header
	Body   json.RawMessage
	// Rule is the conversion rule URN shared by every element.
	Rule string
	// Indices are the positions, in the slice given to NewBatchRequests, of
	// the conversions in this request, in body order; [0] for a single
	// create. Delivery maps the per-element errors of a split back with it.
	Indices []int
	// Batch is true for BATCH_CREATE requests.
	Batch bool
}

func (cfg RequestConfig) header(batch bool) (http.Header, error) {
	v := cfg.APIVersion
	if v == "" {
		v = DefaultAPIVersion
	} else if err := ValidateAPIVersion(v); err != nil {
		return nil, err
	}
	h := make(http.Header, 5)
	if cfg.AccessToken != "" {
		h[headerAuthorization] = []string{"Bearer " + cfg.AccessToken}
	}
	h[headerVersion] = []string{v}
	h[headerProtocolVersion] = []string{RestliProtocolVersion}
	if batch {
		h[headerMethod] = []string{MethodBatchCreate}
	}
	h[headerContentType] = []string{"application/json"}
	return h, nil
}

// NewSingleRequest returns the single-create request for c (§8):
// POST /rest/conversionEvents with c as the body.
func NewSingleRequest(cfg RequestConfig, c *Conversion) (Request, error) {
	h, err := cfg.header(false)
	if err != nil {
		return Request{}, fmt.Errorf("single request: %w", err)
	}
	return Request{
		Method:  http.MethodPost,
		Path:    ConversionEventsPath,
		Header:  h,
		Body:    c.AppendJSON(make([]byte, 0, 512)),
		Rule:    c.Conversion,
		Indices: []int{0},
	}, nil
}

// NewBatchRequests returns the BATCH_CREATE requests (§9) for cs: the
// conversions are grouped by rule (§17.4; groups in order of each rule's
// first appearance, conversions in input order within a group) and each
// group is cut into requests of at most size elements. size is clamped with
// ClampBatchSize (0 means 5000). Every request, even of one element, is a
// batch: callers wanting single creates (enable_batching false) use
// NewSingleRequest. An empty cs gives no requests.
func NewBatchRequests(cfg RequestConfig, cs []Conversion, size int) ([]Request, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	h, err := cfg.header(true)
	if err != nil {
		return nil, fmt.Errorf("batch request: %w", err)
	}
	size = ClampBatchSize(size)

	// Group indices by rule, keeping first-appearance order.
	var rules []string
	var groups [][]int
	byRule := make(map[string]int, 1)
	last := -1
	for i := range cs {
		r := cs[i].Conversion
		g := last
		if g < 0 || rules[g] != r {
			var ok bool
			if g, ok = byRule[r]; !ok {
				g = len(rules)
				byRule[r] = g
				rules = append(rules, r)
				groups = append(groups, nil)
			}
		}
		groups[g] = append(groups[g], i)
		last = g
	}

	var reqs []Request
	for g, idx := range groups {
		for chunk := range slices.Chunk(idx, size) {
			// Size the buffer from the first element so that a 5000-element
			// body is written without regrowing.
			first := cs[chunk[0]].AppendJSON(make([]byte, 0, 512))
			body := make([]byte, 0, 16+len(chunk)*(len(first)+len(first)/8+1))
			body = append(body, `{"elements":[`...)
			for k, i := range chunk {
				if k > 0 {
					body = append(body, ',')
				}
				body = cs[i].AppendJSON(body)
			}
			body = append(body, "]}"...)
			hdr := h
			if len(reqs) > 0 {
				hdr = h.Clone()
			}
			reqs = append(reqs, Request{
				Method:  http.MethodPost,
				Path:    ConversionEventsPath,
				Header:  hdr,
				Body:    body,
				Rule:    rules[g],
				Indices: chunk,
				Batch:   true,
			})
		}
	}
	return reqs, nil
}

// Redacted returns a copy of r whose Authorization header reads
// "Bearer REDACTED" (any other scheme: "REDACTED"). The body is shared.
func (r Request) Redacted() Request {
	r.Header = r.Header.Clone()
	if vs, ok := r.Header[headerAuthorization]; ok {
		out := make([]string, len(vs))
		for i, v := range vs {
			if scheme, _, ok := strings.Cut(v, " "); ok && strings.EqualFold(scheme, "Bearer") {
				out[i] = scheme + " " + RedactedValue
			} else {
				out[i] = RedactedValue
			}
		}
		r.Header[headerAuthorization] = out
	}
	return r
}

// MarshalJSON prints r as `capstan preview` shows it:
//
//	{"method":"POST","path":"/rest/conversionEvents",
//	 "headers":{"Authorization":"Bearer REDACTED","LinkedIn-Version":"202609",...},
//	 "body":{...}}
//
// Headers come in the order of §3.1 with the spec's spelling, then any
// others sorted; several values of one header are joined with ", ". The
// access token is always redacted.
func (r Request) MarshalJSON() ([]byte, error) {
	red := r.Redacted()
	var b bytes.Buffer
	b.WriteString(`{"method":`)
	b.Write(appendString(nil, red.Method))
	b.WriteString(`,"path":`)
	b.Write(appendString(nil, red.Path))
	b.WriteString(`,"headers":{`)
	first := true
	writeHeader := func(name string, vs []string) {
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.Write(appendString(nil, name))
		b.WriteByte(':')
		b.Write(appendString(nil, strings.Join(vs, ", ")))
	}
	known := make(map[string]bool, len(displayHeaders))
	for _, d := range displayHeaders {
		known[d.key] = true
		if vs, ok := red.Header[d.key]; ok {
			writeHeader(d.name, vs)
		}
	}
	var others []string
	for k := range red.Header {
		if !known[k] {
			others = append(others, k)
		}
	}
	slices.Sort(others)
	for _, k := range others {
		writeHeader(k, red.Header[k])
	}
	b.WriteString(`},"body":`)
	if len(red.Body) == 0 {
		b.WriteString("null")
	} else {
		b.Write(red.Body)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// LogValue logs a request without its token and without its body, which
// holds personal data (STYLE.md §5).
func (r Request) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("method", r.Method),
		slog.String("path", r.Path),
		slog.String("rule", r.Rule),
		slog.Int("events", len(r.Indices)),
		slog.Int("body_bytes", len(r.Body)),
	)
}

// URL joins the API base URL and r.Path. base may be the host
// ("https://api.linkedin.com", capstan's api_base) or the REST root
// ("https://api.linkedin.com/rest", the spec's base URL, §2.1); both give
// https://api.linkedin.com/rest/conversionEvents.
func (r Request) URL(base string) string {
	base = strings.TrimRight(base, "/")
	if strings.HasSuffix(base, "/rest") && strings.HasPrefix(r.Path, "/rest/") {
		base = strings.TrimSuffix(base, "/rest")
	}
	return base + r.Path
}

// HTTPRequest returns r as an *http.Request to r.URL(base), with a copy of
// the headers and a body that can be re-read for retries (GetBody set).
func (r Request) HTTPRequest(ctx context.Context, base string) (*http.Request, error) {
	hr, err := http.NewRequestWithContext(ctx, r.Method, r.URL(base), bytes.NewReader(r.Body))
	if err != nil {
		return nil, fmt.Errorf("build %s %s: %w", r.Method, r.Path, err)
	}
	hr.Header = r.Header.Clone()
	return hr, nil
}

var (
	_ json.Marshaler = Request{}
	_ slog.LogValuer = Request{}
)

package sandbox

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// FaultAction is what an injected fault does (spec §18.6).
type FaultAction string

// Fault actions. Faults act after routing and before any check, except the
// two "after storing" actions, which let the request be processed (events
// stored) and then withhold the answer.
const (
	// FaultStatus answers Status (500, 502, 503 or 504 typically; any
	// 4xx/5xx is allowed) with LinkedIn's JSON body, an HTML body or none
	// (Fault.Body), optionally with Retry-After.
	FaultStatus FaultAction = "status"
	// FaultRateLimit answers 429 with LinkedIn's minute body, or the DAY
	// body when Fault.Day is set, optionally with Retry-After.
	FaultRateLimit FaultAction = "rate_limit"
	// FaultAuth answers 401 with the body of Fault.ServiceErrorCode: 65600
	// (invalid), 65601 (revoked, the default) or 65602 (expired).
	FaultAuth FaultAction = "auth"
	// FaultDelay waits Delay (or a uniform random time in [Delay, DelayMax])
	// and then processes the request normally. Several delays add up.
	FaultDelay FaultAction = "delay"
	// FaultHang never answers: it holds the request until the client gives
	// up, Server.Close is called or Config.MaxHang passes (then 504).
	FaultHang FaultAction = "hang"
	// FaultAcceptHang processes the request (events ARE stored) and then
	// hangs as FaultHang, to exercise duplicate handling.
	FaultAcceptHang FaultAction = "accept_hang"
	// FaultReset closes the connection abruptly without an answer.
	FaultReset FaultAction = "reset"
	// FaultResetAfterStore processes the request, then closes the
	// connection abruptly.
	FaultResetAfterStore FaultAction = "reset_after_store"
)

// Duration is a time.Duration written in JSON as a Go duration string
// ("250ms"); a JSON number is read as milliseconds.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var ms float64
	if err := json.Unmarshal(b, &ms); err == nil {
		*d = Duration(ms * float64(time.Millisecond))
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string like \"250ms\" or milliseconds")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// Fault is one fault-injection rule. Which requests it hits: those to
// Endpoint (all LinkedIn endpoints when empty; "oauth" matches every OAuth
// endpoint) sent with Token (any when empty); among them every Every-th one
// (all when 0), each with Probability (always when 0, drawn from the seeded
// generator); the rule is removed after it fired Next times (never when 0).
// "Next 3 with action rate_limit" is a burst of three 429s.
type Fault struct {
	// ID is assigned by AddFault.
	ID string `json:"id,omitempty"`
	// Endpoint is one of conversionEvents, conversions, campaignConversions,
	// adAccountUsers, adAccounts, adCampaigns, me, oauth.accessToken,
	// oauth.authorization, oauth.introspectToken, or the prefix "oauth".
	Endpoint    string      `json:"endpoint,omitempty"`
	Token       string      `json:"token,omitempty"`
	Next        int         `json:"next,omitempty"`
	Every       int         `json:"every,omitempty"`
	Probability float64     `json:"probability,omitempty"`
	Action      FaultAction `json:"action"`
	// Status for FaultStatus. Default 500.
	Status int `json:"status,omitempty"`
	// Body for FaultStatus: "json" (default), "html" or "empty".
	Body string `json:"body,omitempty"`
	// RetryAfter, in seconds, is sent as Retry-After by FaultStatus and
	// FaultRateLimit when positive.
	RetryAfter int `json:"retry_after,omitempty"`
	// Day selects the DAY variant of FaultRateLimit.
	Day bool `json:"day,omitempty"`
	// ServiceErrorCode for FaultAuth: 65600, 65601 (default) or 65602.
	ServiceErrorCode int `json:"service_error_code,omitempty"`
	// Delay and DelayMax for FaultDelay.
	Delay    Duration `json:"delay,omitempty"`
	DelayMax Duration `json:"delay_max,omitempty"`
	// Fired counts how often the rule fired (read-only).
	Fired int `json:"fired"`
}

type faultRule struct {
	Fault
	seen int
}

var faultEndpoints = map[string]bool{
	"": true, "conversionEvents": true, "conversions": true, "campaignConversions": true, "adAccountUsers": true,
	"adAccounts": true, "adCampaigns": true, "me": true, "oauth": true, "oauth.accessToken": true,
	"oauth.authorization": true, "oauth.introspectToken": true,
}

func (f *Fault) check() error {
	if !faultEndpoints[f.Endpoint] {
		return fmt.Errorf("unknown endpoint %q", f.Endpoint)
	}
	if f.Next < 0 || f.Every < 0 || f.Probability < 0 || f.Probability > 1 {
		return fmt.Errorf("next, every and probability must be non-negative, probability at most 1")
	}
	switch f.Action {
	case FaultStatus:
		if f.Status == 0 {
			f.Status = 500
		}
		if f.Status < 400 || f.Status > 599 {
			return fmt.Errorf("status %d: want 4xx or 5xx", f.Status)
		}
		switch f.Body {
		case "":
			f.Body = "json"
		case "json", "html", "empty":
		default:
			return fmt.Errorf("body %q: want json, html or empty", f.Body)
		}
	case FaultAuth:
		switch f.ServiceErrorCode {
		case 0:
			f.ServiceErrorCode = 65601
		case 65600, 65601, 65602:
		default:
			return fmt.Errorf("service error code %d: want 65600, 65601 or 65602", f.ServiceErrorCode)
		}
	case FaultDelay:
		if f.Delay < 0 || f.DelayMax < 0 || (f.DelayMax != 0 && f.DelayMax < f.Delay) {
			return fmt.Errorf("delay: want 0 <= delay <= delay_max")
		}
	case FaultRateLimit, FaultHang, FaultAcceptHang, FaultReset, FaultResetAfterStore:
	default:
		return fmt.Errorf("unknown action %q", f.Action)
	}
	if f.RetryAfter < 0 {
		return fmt.Errorf("retry_after must be non-negative")
	}
	return nil
}

// AddFault installs a fault rule and returns its id.
func (s *Server) AddFault(f Fault) (string, error) {
	if err := f.check(); err != nil {
		return "", fmt.Errorf("add fault: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextFt++
	f.ID = "f" + strconv.Itoa(s.nextFt)
	f.Fired = 0
	s.faults = append(s.faults, &faultRule{Fault: f})
	return f.ID, nil
}

// RemoveFault removes one fault rule, or all of them when id is empty. It
// reports whether anything was removed.
func (s *Server) RemoveFault(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.faults)
	if id == "" {
		s.faults = nil
		return n > 0
	}
	for i, f := range s.faults {
		if f.ID == id {
			s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			return true
		}
	}
	return false
}

// Faults returns copies of the installed fault rules.
func (s *Server) Faults() []Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Fault, 0, len(s.faults))
	for _, f := range s.faults {
		out = append(out, f.Fault)
	}
	return out
}

// pickFaults returns the delays to apply and the first other fault that
// fires for c, updating the rules' counts. The caller holds no lock.
func (s *Server) pickFaults(c *call) (delays []time.Duration, hit *Fault) {
	tok, _ := strings.CutPrefix(c.r.Header.Get("Authorization"), "Bearer ")
	tok = strings.TrimSpace(tok)
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.faults[:0]
	for _, f := range s.faults {
		fires := hit == nil && f.matches(c.endpoint, tok)
		if fires {
			f.seen++
			if f.Every > 0 && f.seen%f.Every != 0 {
				fires = false
			}
			if fires && f.Probability > 0 && s.rng.Float64() >= f.Probability {
				fires = false
			}
		}
		if fires {
			f.Fired++
			if f.Action == FaultDelay {
				d := time.Duration(f.Delay)
				if f.DelayMax > f.Delay {
					d += time.Duration(s.rng.Int64N(int64(f.DelayMax-f.Delay) + 1))
				}
				delays = append(delays, d)
			} else {
				cp := f.Fault
				hit = &cp
			}
		}
		if f.Next > 0 && f.Fired >= f.Next {
			continue // used up
		}
		kept = append(kept, f)
	}
	clear(s.faults[len(kept):])
	s.faults = kept
	return delays, hit
}

func (f *faultRule) matches(endpoint, tok string) bool {
	if f.Endpoint != "" && f.Endpoint != endpoint && !strings.HasPrefix(endpoint, f.Endpoint+".") {
		return false
	}
	return f.Token == "" || f.Token == tok
}

// applyFaults runs the faults that act before the handler. It returns an
// after-storing fault to apply once the handler ran, the fault's name for
// the request log, and whether it answered (or dropped) the request.
func (s *Server) applyFaults(c *call) (after *faultRule, name string, done bool) {
	delays, hit := s.pickFaults(c)
	for _, d := range delays {
		name = string(FaultDelay)
		s.counters.faults.Add(1)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-c.r.Context().Done():
			t.Stop()
			c.reason = reasonFault
			return nil, name, true
		case <-s.stop:
			t.Stop()
		}
	}
	if hit == nil {
		return nil, name, false
	}
	s.counters.faults.Add(1)
	name = string(hit.Action)
	c.reason = reasonFault
	switch hit.Action {
	case FaultStatus:
		if hit.RetryAfter > 0 {
			c.w.Header().Set("Retry-After", strconv.Itoa(hit.RetryAfter))
		}
		s.faultStatus(c, hit)
	case FaultRateLimit:
		c.tooMany(hit.Day, hit.RetryAfter, true)
		c.reason = reasonFault
	case FaultAuth:
		switch hit.ServiceErrorCode {
		case 65600:
			c.json(401, apiError{Status: 401, ServiceErrorCode: 65600, Code: "INVALID_ACCESS_TOKEN", Message: "Invalid access token"})
		case 65602:
			c.json(401, apiError{Status: 401, ServiceErrorCode: 65602, Code: "EXPIRED_ACCESS_TOKEN", Message: "The token used in the request has expired"})
		default:
			c.json(401, apiError{Status: 401, ServiceErrorCode: 65601, Code: "REVOKED_ACCESS_TOKEN", Message: "The token used in the request has been revoked by the user"})
		}
	case FaultHang:
		s.hang(c)
	case FaultReset:
		c.w.status = -1
	case FaultAcceptHang, FaultResetAfterStore:
		c.reason = ""
		return &faultRule{Fault: *hit}, name, false
	}
	return nil, name, true
}

var statusCodes = map[int]string{
	500: "INTERNAL_SERVER_ERROR", 502: "BAD_GATEWAY", 503: "SERVICE_UNAVAILABLE", 504: "GATEWAY_TIMEOUT",
}

func (s *Server) faultStatus(c *call, f *Fault) {
	text := http.StatusText(f.Status)
	switch f.Body {
	case "empty":
		c.empty(f.Status)
	case "html":
		c.w.Header().Set("Content-Type", "text/html; charset=utf-8")
		c.w.WriteHeader(f.Status)
		fmt.Fprintf(c.w, "<html><head><title>%d %s</title></head><body><h1>%d %s</h1></body></html>\n", f.Status, text, f.Status, text)
	default:
		if strings.HasPrefix(c.endpoint, "oauth.") && f.Status < 500 {
			c.json(f.Status, oauthError{Error: s.cfg.OAuthExpiredError, Description: "The provided authorization grant or refresh token is invalid, expired or revoked"})
			return
		}
		code := statusCodes[f.Status]
		if code == "" {
			code = strings.ToUpper(strings.ReplaceAll(text, " ", "_"))
		}
		c.json(f.Status, apiError{Status: f.Status, Code: code, Message: text})
	}
}

// hang holds the request until the client gives up, the server closes or
// MaxHang passes; it then answers 504 (seen only after MaxHang).
func (s *Server) hang(c *call) {
	t := time.NewTimer(s.cfg.MaxHang)
	defer t.Stop()
	select {
	case <-c.r.Context().Done():
	case <-s.stop:
	case <-t.C:
	}
	c.json(http.StatusGatewayTimeout, apiError{Status: 504, Code: "GATEWAY_TIMEOUT", Message: "Gateway Timeout"})
}

// applyAfter applies an after-storing fault once the handler ran: the
// answer is never written and the connection is closed abruptly, after a
// hang for FaultAcceptHang.
func (s *Server) applyAfter(c *call, f *faultRule) {
	if f.Action == FaultAcceptHang {
		s.hang(c)
	}
	c.w.status = -1
}

// resetConn closes the client connection abruptly (TCP RST when possible).
func resetConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler) // net/http closes the connection
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

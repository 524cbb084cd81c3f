package linkedin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/capstan-gw/capstan/internal/delivery"
	capi "github.com/capstan-gw/capstan/internal/linkedin"
)

// TestEvent asks for one test send (capstan test-event, the console's
// POST /admin/api/destinations/{name}/test-event).
type TestEvent struct {
	// Plan is the destination's plan, its routes' rule ids known (Prepare
	// ran, or LoadRuleIDs).
	Plan *delivery.Plan
	// Mapping names the mapping; "" for the first whose trigger passes.
	Mapping string
	// Event is one JSON event; nil for the mapping's built-in sample
	// (delivery.SampleEvent).
	Event json.RawMessage
	// Source is the event's source; "" passes every destination.
	Source string
	// Now is the clock (receivedAt, the 90-day window); zero for now.
	Now time.Time
	// Enricher is the identity graph; nil for none.
	Enricher delivery.Enricher
	// Limits holds the destination's rate limiter (the running server's,
	// so the send counts against the same per-token windows); nil for a
	// limiter of its own. PerMinute and PerDay are the configured limits.
	Limits            *delivery.Limits
	PerMinute, PerDay int
}

// TestResult is what a test send did. It is the JSON answer of the admin
// route and of `capstan test-event --json`.
type TestResult struct {
	// RealSend is always true: the conversion went to the configured API
	// (LinkedIn's, or the sandbox's), where it counts like any other.
	RealSend    bool   `json:"realSend"`
	APIBase     string `json:"apiBase"`
	Destination string `json:"destination"`
	Mapping     string `json:"mapping,omitempty"`
	// Rule is the conversion rule id the conversion names.
	Rule string `json:"rule,omitempty"`
	// Event is the event as stored-form JSON (the sample or the one
	// given), Enriched what enrichment filled in.
	Event    json.RawMessage   `json:"event,omitempty"`
	Enriched map[string]string `json:"enriched,omitempty"`
	// Request is the exact request (token redacted); nil when nothing
	// could be built.
	Request any `json:"request"`
	// Status is LinkedIn's HTTP status (0: not sent or no answer).
	Status int `json:"status"`
	// Answer is LinkedIn's answer; nil when there was none.
	Answer *TestAnswer `json:"answer"`
	// Error says why the conversion was refused or not sent; "" when
	// LinkedIn accepted it.
	Error string `json:"error,omitempty"`
	// Code is the refusal's code: LinkedIn's, the local validation's, or
	// a delivery.Test* code.
	Code string `json:"code,omitempty"`
	// Fields are the local validation's field details.
	Fields any `json:"fields,omitempty"`
	// Happened is the conversion's conversionHappenedAt: the day the
	// accepted-count ledger files it under.
	Happened time.Time `json:"-"`
}

// TestAnswer is LinkedIn's answer to a test send.
type TestAnswer struct {
	Status int `json:"status"`
	// Headers are the answer's id and routing headers (X-LI-UUID,
	// x-restli-id, Location, Retry-After, Content-Type) when present.
	Headers map[string]string `json:"headers"`
	// Body is the JSON body as sent, or a JSON string of a non-JSON body;
	// null when empty.
	Body json.RawMessage `json:"body"`
}

// Accepted reports whether LinkedIn accepted the conversion (2xx).
func (r *TestResult) Accepted() bool { return r.Error == "" && r.Status >= 200 && r.Status < 300 }

// answerHeaders are the headers a test result shows.
var answerHeaders = []string{"X-LI-UUID", "x-restli-id", "Location", "Retry-After", "Content-Type", "X-LI-Responding-Instance"}

// SendTest builds one conversion from t's event exactly as delivery would
// (delivery.Plan.BuildTest) and sends it through the destination's client
// — its current token, refresh and auth recovery — after waiting for its
// place in the rate limits. It returns the request and LinkedIn's answer.
// A conversion that could not be built or that LinkedIn refused is a
// TestResult with Error set (and no Go error); the error return is for a
// request that could not be encoded. It never retries: a test send shows
// the first answer.
func (d *Destination) SendTest(ctx context.Context, t TestEvent) (*TestResult, error) {
	if t.Now.IsZero() {
		t.Now = time.Now()
	}
	res := &TestResult{RealSend: true, APIBase: d.apiBase, Destination: t.Plan.Name, Mapping: t.Mapping}
	tc, err := t.Plan.BuildTest(ctx, t.Event, t.Mapping, t.Source, t.Now, t.Enricher)
	if err != nil {
		var pe *delivery.PreviewError
		if !errors.As(err, &pe) {
			return nil, err
		}
		res.Error, res.Code, res.Fields = pe.Message, pe.Code, pe.Fields
		return res, nil
	}
	res.Mapping, res.Rule, res.Event, res.Enriched, res.Happened = tc.Route.Name, tc.Route.Rule, tc.Event, tc.Payload.Enriched, tc.Payload.Happened
	req, ok := tc.Request.Value.(capi.Request)
	if !ok {
		return nil, fmt.Errorf("test event: not a LinkedIn request: %T", tc.Request.Value)
	}
	res.Request = req
	limits := t.Limits
	if limits == nil {
		limits = delivery.NewLimits(nil)
	}
	if err := limits.Wait(ctx, d.LimitKey(), cmpOr(t.PerMinute, 600), cmpOr(t.PerDay, 300000)); err != nil {
		res.Error, res.Code = "waiting for the rate limit: "+err.Error(), "RATE_LIMIT_WAIT"
		return res, nil
	}
	resp, out, serr := d.client.SendResponse(ctx, req)
	if resp.Status != 0 {
		res.Status = resp.Status
		res.Answer = &TestAnswer{Status: resp.Status, Headers: map[string]string{}, Body: answerBody(resp.Body)}
		for _, h := range answerHeaders {
			if v := resp.Header.Get(h); v != "" {
				res.Answer.Headers[http.CanonicalHeaderKey(h)] = v
			}
		}
	}
	switch {
	case serr != nil && resp.Status == 0:
		res.Error, res.Code = "no answer from LinkedIn: "+serr.Error(), "NO_ANSWER"
	case out.Class != capi.ClassSuccess:
		res.Code = out.Code
		if res.Code == "" {
			res.Code = out.Class.String()
		}
		msg := out.Message
		if msg == "" {
			msg = http.StatusText(resp.Status)
		}
		res.Error = fmt.Sprintf("LinkedIn refused the conversion (HTTP %d, %s): %s", resp.Status, out.Class, msg)
		if serr != nil {
			res.Error += " (" + serr.Error() + ")"
		}
	}
	d.log.Info("test conversion sent", "mapping", res.Mapping, "rule", res.Rule, "status", res.Status, "x_li_uuid", out.RequestID, "accepted", res.Accepted())
	return res, nil
}

func cmpOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// answerBody is body as JSON: itself when it is JSON, else a JSON string,
// null when empty.
func answerBody(b []byte) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	if json.Valid(b) {
		return json.RawMessage(b)
	}
	s, _ := json.Marshal(string(b))
	return s
}

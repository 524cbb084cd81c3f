package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// TestEventRequest is a test send asked for through the admin API.
type TestEventRequest struct {
	// Event is one JSON event; nil for the mapping's built-in sample.
	Event json.RawMessage
	// Mapping names the mapping; "" for the first whose trigger passes.
	Mapping string
	// By names who asked (the principal), for the audit log.
	By string
}

// TestSender is implemented by destinations that can send one test
// conversion through their real path (mapping, enrichment, validation,
// token, rate limits) and report the exact request and the remote's
// answer. The result must encode as
// {"request": …, "status": N, "answer": …, "error"?: …}; an error means
// the send could not be attempted at all (and is logged, not shown).
// Implementations record the send in the audit log.
type TestSender interface {
	SendTest(ctx context.Context, req TestEventRequest) (any, error)
}

// RuleReporter is implemented by destinations that can report their
// conversion rules' status as the remote has it (linkedin-capi.md §22).
type RuleReporter interface {
	// RuleReports returns a JSON-encodable list, one entry per mapping.
	RuleReports(ctx context.Context) (any, error)
}

// testEventBody describes testEvent's body in messages.
const testEventBody = `{"event": {…} (optional: the mapping's built-in sample), "mapping": "NAME" (optional)} or an empty body`

// testEvent: POST /admin/api/destinations/{name}/test-event sends one
// conversion, for real, and answers the request and the remote's answer.
func (s *Server) testEvent(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	d, err := s.destination(r)
	if err != nil {
		return err
	}
	ts, ok := d.(TestSender)
	if !ok {
		return &apiError{http.StatusServiceUnavailable, codeUnavailable, "this destination cannot send test events"}
	}
	var body struct {
		Event   json.RawMessage `json:"event"`
		Mapping string          `json:"mapping"`
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPreviewBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("read the request body: %v", err)
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			return badRequest("the request body must be %s: %v", testEventBody, err)
		}
		if dec.More() {
			return badRequest("the request body holds more than one JSON value; it must be %s", testEventBody)
		}
	}
	if ev := bytes.TrimSpace(body.Event); len(ev) > 0 && (ev[0] != '{' || string(ev) == "null") {
		if string(ev) == "null" {
			body.Event = nil
		} else {
			return badRequest("event must be one JSON event object: %s", testEventBody)
		}
	}
	p := principalOf(r)
	res, err := ts.SendTest(r.Context(), TestEventRequest{Event: body.Event, Mapping: body.Mapping, By: p.name})
	if err != nil {
		return s.unavailable(r, "send a test event", err)
	}
	s.log.Info("test event sent by admin request", "destination", d.Name(), "mapping", body.Mapping, "principal", p.name)
	writeJSON(w, http.StatusOK, res)
	return nil
}

// listRules: GET /admin/api/destinations/{name}/rules answers
// {"rules": [...]}, each mapping's conversion rule with LinkedIn's status
// fields, the derived status and a verdict.
func (s *Server) listRules(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	d, err := s.destination(r)
	if err != nil {
		return err
	}
	rr, ok := d.(RuleReporter)
	if !ok {
		return &apiError{http.StatusServiceUnavailable, codeUnavailable, "this destination has no conversion rules to report"}
	}
	rules, err := rr.RuleReports(r.Context())
	if err != nil {
		return s.unavailable(r, "read conversion rules", err)
	}
	writeJSON(w, http.StatusOK, struct {
		Rules any `json:"rules"`
	}{rules})
	return nil
}

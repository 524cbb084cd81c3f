package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/capstan-gw/capstan/internal/event"
)

// Error makes a PreviewError an error (a refused test event).
func (e *PreviewError) Error() string {
	if e.Code == "" {
		return e.Message
	}
	return e.Code + ": " + e.Message
}

// Codes of a test event that could not be built (TestConversion errors).
const (
	TestNoMapping  = "NO_MAPPING"  // the mapping named does not exist
	TestNoSample   = "NO_SAMPLE"   // the built-in sample cannot pass the trigger
	TestNotMatched = "NOT_MATCHED" // the event does not pass the trigger
	TestFiltered   = "FILTERED"    // source, integrations or consent keeps it out
)

// TestEmail and TestLiFatID are the identifiers of the built-in sample
// event: obviously a test, they never match a real LinkedIn member.
const (
	TestEmail   = "capstan-test-event@example.com"
	TestLiFatID = "capstan-test-event"
)

// SampleEvent returns the built-in sample event of a test send for route r
// at now: a track event named "capstan test event" with messageId
// capstan-test-<ms> (a fresh eventId each time), userId capstan-test-user,
// the email TestEmail in traits, context.traits and properties (where
// mappings usually look), properties.firstName and lastName, a page URL
// carrying li_fat_id TestLiFatID and revenue 1 USD, changed where r's
// trigger asks for other values (its
// conditions' values are set: every condition of an "and", the first of an
// "or"). An error (code TestNoSample) means the trigger still does not
// match: the caller should give an event of its own.
func SampleEvent(r *Route, now time.Time) ([]byte, error) {
	ms := now.UnixMilli()
	doc := map[string]any{
		"type":        "track",
		"event":       "capstan test event",
		"messageId":   "capstan-test-" + strconv.FormatInt(ms, 10),
		"timestamp":   now.UTC().Format(time.RFC3339Nano),
		"userId":      "capstan-test-user",
		"anonymousId": "capstan-test-anonymous",
		"traits":      map[string]any{"email": TestEmail},
		"properties": map[string]any{"revenue": 1, "currency": "USD", "email": TestEmail,
			"firstName": "Capstan", "lastName": "Test"},
		"context": map[string]any{
			"traits":  map[string]any{"email": TestEmail},
			"page":    map[string]any{"url": "https://www.example.com/capstan-test?li_fat_id=" + TestLiFatID},
			"library": map[string]any{"name": "capstan test-event"},
		},
	}
	if r.trigger != nil {
		r.trigger.ExampleInto(doc)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	if r.trigger != nil {
		v, err := event.Parse(b)
		if err != nil || !r.trigger.Match(v) {
			return nil, &PreviewError{Code: TestNoSample, Message: fmt.Sprintf(
				"the built-in sample event cannot pass mapping %q's trigger (%s); give an event that does (--event FILE, or \"event\" in the request)",
				r.Name, r.trigger)}
		}
	}
	return b, nil
}

// TestConversion is one conversion built for a test send: exactly what
// delivery would send for the event, as one request.
type TestConversion struct {
	// Route is the mapping that built it.
	Route *Route
	// Event is the event as ingest would store it.
	Event json.RawMessage
	// Payload is the conversion; Payload.Enriched names what enrichment
	// filled in.
	Payload Payload
	// Request is its one request (a single create).
	Request Request
}

// BuildTest builds the conversion of a test send: raw (one JSON event; nil
// for the built-in SampleEvent of the mapping) goes through the plan as a
// stored event goes through delivery — ingest's normalisation (receivedAt
// now), the source, integrations and consent filters, the mapping's
// trigger and fields, enrichment (enr may be nil) and validation — and is
// encoded as one request. mapping names the route; "" takes the first
// route whose trigger the event passes (the first route for the sample).
// source is the event's source ("" passes a destination that takes every
// source). An error is a *PreviewError saying why nothing can be sent
// (codes Test* above, an ingest drop code, or the validation's code with
// its field details).
func (p *Plan) BuildTest(ctx context.Context, raw []byte, mapping, source string, now time.Time, enr Enricher) (*TestConversion, error) {
	var route *Route
	if mapping != "" {
		i := slices.IndexFunc(p.Routes, func(r *Route) bool { return r.Name == mapping })
		if i < 0 {
			names := make([]string, len(p.Routes))
			for j, r := range p.Routes {
				names[j] = strconv.Quote(r.Name)
			}
			return nil, &PreviewError{Code: TestNoMapping, Message: fmt.Sprintf("destination %s has no enabled mapping %q; its mappings: %s",
				p.Name, mapping, strings.Join(names, ", "))}
		}
		route = p.Routes[i]
	}
	if raw == nil {
		if route == nil {
			if len(p.Routes) == 0 {
				return nil, &PreviewError{Code: TestNoMapping, Message: fmt.Sprintf("destination %s has no enabled mapping", p.Name)}
			}
			route = p.Routes[0]
		}
		var err error
		if raw, err = SampleEvent(route, now); err != nil {
			return nil, err
		}
	}
	doc := []byte(raw)
	if derr := event.CheckDepth(doc); derr != nil {
		return nil, &PreviewError{Code: derr.Code, Message: derr.Message}
	}
	if !hasReceivedAt(doc) {
		ev, derr := event.Normalize(doc, "", &event.Request{ReceivedAt: now})
		if derr != nil {
			return nil, &PreviewError{Code: derr.Code, Message: derr.Message}
		}
		doc = ev.JSON
	}
	v, err := event.Parse(doc)
	if err != nil {
		return nil, &PreviewError{Code: event.CodeInvalidEvent, Message: err.Error()}
	}
	// Only the chosen route runs (a test sends one conversion); the
	// destination's filters apply as in delivery.
	one := *p
	if route != nil {
		one.Routes = []*Route{route}
	}
	for _, res := range one.Convert(ctx, v, source, now, enr, nil) {
		switch res.Outcome {
		case Converted:
			reqs, err := p.Format.Requests([]Payload{res.Payload})
			if err != nil {
				return nil, err
			}
			if len(reqs) != 1 {
				return nil, fmt.Errorf("test event: the format made %d requests of one conversion", len(reqs))
			}
			return &TestConversion{Route: res.Route, Event: doc, Payload: res.Payload, Request: reqs[0]}, nil
		case Invalid:
			pe := previewErrorOf(res.Err)
			pe.Message = fmt.Sprintf("mapping %q: %s", res.Route.Name, pe.Message)
			return nil, pe
		case NotMatched:
			what := "any mapping's trigger"
			if route != nil {
				what = fmt.Sprintf("mapping %q's trigger (%s)", route.Name, route.trigger)
			}
			return nil, &PreviewError{Code: TestNotMatched, Message: "the event does not pass " + what}
		default:
			return nil, &PreviewError{Code: TestFiltered, Message: fmt.Sprintf("destination %s does not take the event: %s", p.Name, filterReason(res.Outcome, source))}
		}
	}
	return nil, &PreviewError{Code: TestNotMatched, Message: "the event does not pass any mapping's trigger"}
}

func filterReason(o Outcome, source string) string {
	switch o {
	case FilteredSource:
		return fmt.Sprintf("its source %q is not among the destination's sources", source)
	case FilteredIntegrations:
		return "the event's integrations object turns it off"
	case FilteredConsent:
		return "context.consent.categoryPreferences does not grant a required category"
	}
	return string(o)
}

// Wait blocks until one more request of key fits within perMinute and
// perDay (UTC windows, as delivery counts them), then counts it; a test
// send takes its place in the destination's rate limits this way.
func (l *Limits) Wait(ctx context.Context, key string, perMinute, perDay int) error {
	_, err := l.wait(ctx, key, perMinute, perDay)
	return err
}

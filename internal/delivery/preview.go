package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/mapping"
)

// PreviewOutput is a dry run's result: the exact requests the events would
// produce, and what became of each event for each mapping.
type PreviewOutput struct {
	// Requests are the destinations' requests (their JSON form: for
	// LinkedIn, method, path, headers with the token redacted, body).
	Requests []any          `json:"requests"`
	Events   []PreviewEvent `json:"events"`
}

// PreviewEvent is one input event's fate.
type PreviewEvent struct {
	Index     int             `json:"index"`
	MessageID string          `json:"messageId,omitempty"`
	Type      string          `json:"type,omitempty"`
	Error     *PreviewError   `json:"error,omitempty"` // dropped at ingest
	Results   []PreviewResult `json:"results,omitempty"`
}

// PreviewResult is one event's fate for one destination or mapping.
type PreviewResult struct {
	Destination string            `json:"destination"`
	Mapping     string            `json:"mapping,omitempty"`
	Outcome     Outcome           `json:"outcome"`
	Request     *int              `json:"request,omitempty"` // index in PreviewOutput.Requests
	Enriched    map[string]string `json:"enriched,omitempty"`
	Error       *PreviewError     `json:"error,omitempty"`
}

// PreviewError says why an event was dropped or invalid.
type PreviewError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Fields  any    `json:"fields,omitempty"`
}

func previewErrorOf(err error) *PreviewError {
	if p, ok := problemOf(err); ok {
		return &PreviewError{Code: p.Code(), Message: p.Error(), Fields: p.Details()}
	}
	var ae *mapping.ApplyError
	if errors.As(err, &ae) {
		return &PreviewError{Code: "MAPPING_FAILED", Message: ae.Error()}
	}
	return &PreviewError{Code: "INVALID", Message: err.Error()}
}

// Preview runs events (one JSON event or an array of them) through plans
// and encodes the requests they would produce, sending nothing. Events are
// first normalised exactly as ingest does, with now as receivedAt; an
// event that already has receivedAt is taken as stored. source is the
// events' source ("" matches a destination that takes every source); enr
// may be nil; when it is also a Suppressor, an event it suppresses has the
// outcome "suppressed" for every destination, as in delivery. It reports
// whether any event was invalid (dropped at ingest
// or refused by validation); an error means raw is not JSON events.
func Preview(ctx context.Context, plans []*Plan, raw []byte, source string, now time.Time, enr Enricher) (*PreviewOutput, bool, error) {
	items, err := splitEvents(raw)
	if err != nil {
		return nil, false, err
	}
	out := &PreviewOutput{Requests: []any{}, Events: []PreviewEvent{}}
	invalid := false
	queues := make([][]Payload, len(plans)) // converted payloads, per plan
	req := &event.Request{ReceivedAt: now}
	for i, item := range items {
		pe := PreviewEvent{Index: i}
		doc := []byte(item)
		if derr := event.CheckDepth(doc); derr != nil {
			pe.Error = &PreviewError{Code: derr.Code, Message: derr.Message}
			invalid = true
			out.Events = append(out.Events, pe)
			continue
		}
		if !hasReceivedAt(doc) {
			ev, derr := event.Normalize(doc, "", req)
			if derr != nil {
				pe.Error = &PreviewError{Code: derr.Code, Message: derr.Message}
				invalid = true
				out.Events = append(out.Events, pe)
				continue
			}
			doc = ev.JSON
		}
		v, err := event.Parse(doc)
		if err != nil {
			return nil, false, fmt.Errorf("event %d: %w", i, err)
		}
		pe.MessageID, _ = v.Get("messageId").Str()
		pe.Type, _ = v.Get("type").Str()
		sup, _ := enr.(Suppressor)
		for pi, p := range plans {
			if sup != nil && sup.Suppressed(v) {
				pe.Results = append(pe.Results, PreviewResult{Destination: p.Name, Outcome: Suppressed})
				continue
			}
			for _, r := range p.Convert(ctx, v, source, now, enr, nil) {
				pr := PreviewResult{Destination: p.Name, Outcome: r.Outcome, Enriched: r.Payload.Enriched}
				if r.Route != nil {
					pr.Mapping = r.Route.Name
				}
				if r.Err != nil {
					pr.Error = previewErrorOf(r.Err)
					invalid = true
				}
				pe.Results = append(pe.Results, pr)
				if r.Outcome == Converted {
					queues[pi] = append(queues[pi], r.Payload)
				}
			}
		}
		out.Events = append(out.Events, pe)
	}
	// Encode each destination's payloads with its own Format, and point
	// each converted result at its request.
	owners := make([][]*PreviewResult, len(plans))
	for i := range out.Events {
		for j, r := range out.Events[i].Results {
			if r.Outcome == Converted {
				pi := slices.IndexFunc(plans, func(p *Plan) bool { return p.Name == r.Destination })
				owners[pi] = append(owners[pi], &out.Events[i].Results[j])
			}
		}
	}
	for pi, p := range plans {
		if len(queues[pi]) == 0 {
			continue
		}
		reqs, err := p.Format.Requests(queues[pi])
		if err != nil {
			return nil, false, err
		}
		for _, r := range reqs {
			ri := len(out.Requests)
			for _, idx := range r.Items {
				owners[pi][idx].Request = &ri
			}
			out.Requests = append(out.Requests, r.Value)
		}
	}
	return out, invalid, nil
}

// splitEvents accepts one event object or an array of them.
func splitEvents(raw []byte) ([]json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, fmt.Errorf("not a JSON array of events: %w", err)
		}
		return items, nil
	}
	if !json.Valid(raw) {
		var v any
		err := json.Unmarshal(raw, &v)
		return nil, fmt.Errorf("not a JSON event: %w", err)
	}
	return []json.RawMessage{raw}, nil
}

func hasReceivedAt(doc []byte) bool {
	var probe struct {
		ReceivedAt *string `json:"receivedAt"`
	}
	return json.Unmarshal(doc, &probe) == nil && probe.ReceivedAt != nil
}

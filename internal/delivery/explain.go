package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/stream"
)

// Explanation is what delivery made, or makes, of one stored event: the
// console's event detail (GET /admin/api/events/{seq}/explain).
type Explanation struct {
	// Pos is the event's position, "seq:index" (stream.Pos); Seq the
	// stream sequence of the message that holds it.
	Pos      string          `json:"pos"`
	Seq      uint64          `json:"seq"`
	Source   string          `json:"source"`
	Type     string          `json:"type"`
	StoredAt time.Time       `json:"storedAt"`
	Event    json.RawMessage `json:"event"`
	// ReplayFor is set for an event stored again by a dead-letter replay:
	// the one destination that processes it.
	ReplayFor    string                   `json:"replayFor,omitempty"`
	Destinations []DestinationExplanation `json:"destinations"`
}

// DestinationExplanation is the event's fate for one destination.
type DestinationExplanation struct {
	Destination string `json:"destination"`
	// Outcome and Reason are set when the destination takes none of the
	// event as a whole: filtered_source, filtered_integrations,
	// filtered_consent, suppressed, skipped_unusable ("replay" for another
	// destination's replay); not_matched when no trigger matched.
	Outcome Outcome `json:"outcome,omitempty"`
	Reason  string  `json:"reason,omitempty"`
	// Mappings are every enabled mapping, in configuration order.
	Mappings []MappingExplanation `json:"mappings"`
	// Delivery is the delivery state of the event for the destination as
	// a whole (what the durable consumer says); each converted or invalid
	// mapping has its own too.
	Delivery DeliveryState `json:"delivery"`
}

// MappingExplanation is the event's fate for one mapping.
type MappingExplanation struct {
	Mapping string `json:"mapping"`
	// Trigger is the mapping's trigger in canonical form; "" when it takes
	// every event.
	Trigger string `json:"trigger"`
	Matched bool   `json:"matched"`
	// Why says why the trigger matched or not, with the event's values.
	Why string `json:"why"`
	// Outcome is converted or invalid for a matched mapping; not_matched
	// otherwise; or the destination's filter outcome.
	Outcome Outcome `json:"outcome"`
	// Request is the destination's request the conversion is part of, as
	// `capstan preview` prints it (token redacted), built now with the
	// current configuration and identity graph.
	Request  any               `json:"request,omitempty"`
	Enriched map[string]string `json:"enriched,omitempty"`
	// Error says why the conversion is invalid (the validation reason).
	Error *PreviewError `json:"error,omitempty"`
	// Delivery is set for converted and invalid mappings.
	Delivery *DeliveryState `json:"delivery,omitempty"`
}

// Delivery states of a DeliveryState.
const (
	// StateDelivered: acknowledged by delivery with no dead letter: the
	// destination took the conversion (or the dead letter was replayed
	// since, and the replay is a newer event).
	StateDelivered = "delivered"
	// StatePending: not yet acknowledged: waiting in the stream, or being
	// sent or retried.
	StatePending = "pending"
	// StateDeadLettered: in the DLQ (DeadLetter says which and why).
	StateDeadLettered = "dead_lettered"
	// StateNotSent: nothing was to be sent (filtered, no trigger matched,
	// suppressed).
	StateNotSent = "not_sent"
)

// DeliveryState is a delivery outcome derived from what is stored: the
// destination's durable consumer and the DLQ.
type DeliveryState struct {
	State      string         `json:"state"`
	Reason     string         `json:"reason,omitempty"`
	DeadLetter *DeadLetterRef `json:"deadLetter,omitempty"`
}

// DeadLetterRef names a dead letter and why it is one.
type DeadLetterRef struct {
	ID      uint64 `json:"id"`
	Reason  string `json:"reason"`
	Status  int    `json:"status,omitempty"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
}

// ErrNoEvent matches ExplainEvent's error for a sequence EVENTS does not
// hold.
var ErrNoEvent = errors.New("no such event")

var errFound = errors.New("found")

// ExplainEvent reads the event at pos and explains it for each runner, in
// order. The requests are built now, with the runners' current plans and
// identity graph; the delivery states come from their durable consumers
// and the DLQ.
func ExplainEvent(ctx context.Context, eng *stream.Engine, runners []*Runner, pos stream.Pos) (*Explanation, error) {
	var st *stream.Stored
	err := eng.ReadEvents(ctx, stream.ReadOptions{FromSeq: pos.Seq()}, func(s stream.Stored) error {
		if s.Pos() == pos {
			st = &s
		}
		if s.Pos() >= pos {
			return errFound
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFound) {
		return nil, err
	}
	if st == nil {
		return nil, fmt.Errorf("event %s: %w", pos, ErrNoEvent)
	}
	x := &Explanation{Pos: st.Pos().String(), Seq: st.Seq, Source: st.Source, Type: st.Type, StoredAt: st.StoredAt.UTC(), Event: st.Doc, ReplayFor: st.ReplayFor, Destinations: []DestinationExplanation{}}
	if !json.Valid(st.Doc) {
		x.Event = nil
	}
	for _, r := range runners {
		de, err := r.Explain(ctx, *st)
		if err != nil {
			return nil, err
		}
		x.Destinations = append(x.Destinations, de)
	}
	return x, nil
}

// Explain says what the runner made, or makes, of stored event st: for each
// mapping, the trigger's result and why, the request it builds (the same
// Plan.Convert and Format as delivery and Preview) or why none, and the
// delivery state derived from the durable consumer and the DLQ.
func (r *Runner) Explain(ctx context.Context, st stream.Stored) (DestinationExplanation, error) {
	p := r.plan
	de := DestinationExplanation{Destination: p.Name, Mappings: []MappingExplanation{}}
	notSent := func(o Outcome, why string) (DestinationExplanation, error) {
		de.Outcome, de.Reason = o, why
		de.Delivery = DeliveryState{State: StateNotSent, Reason: why}
		for _, rt := range p.Routes {
			de.Mappings = append(de.Mappings, MappingExplanation{Mapping: rt.Name, Trigger: triggerText(rt), Outcome: o, Why: "not evaluated: " + why})
		}
		return de, nil
	}
	if st.ReplayFor != "" && st.ReplayFor != p.Name {
		return notSent("replay", "a dead-letter replay for destination "+st.ReplayFor+" only")
	}
	ev, err := event.Parse(st.Doc)
	if err != nil {
		if !p.TakesSource(st.Source) {
			return notSent(SkippedUnusable, "the stored event does not parse, and its source is not this destination's")
		}
		de.Outcome, de.Reason = Invalid, "the stored event does not parse: "+err.Error()
		de.Delivery, err = r.deliveryState(ctx, st, true)
		return de, err
	}
	if r.sup != nil && r.sup.Suppressed(ev) {
		return notSent(Suppressed, "the person was deleted on request (privacy suppression)")
	}
	switch {
	case !p.TakesSource(st.Source):
		return notSent(FilteredSource, fmt.Sprintf("the destination does not take source %q (destinations[].sources)", st.Source))
	case !p.integrationAllows(ev):
		return notSent(FilteredIntegrations, fmt.Sprintf("the event's integrations object excludes %q", p.DisplayName))
	}
	var enr Enricher
	if r.graph != nil {
		enr = r.graph
	}
	// What the runner captures (parse): the event's identifiers and the
	// li_fat_id of its request's cookie.
	c := identity.Capture(ev)
	if c.LiFatID == "" && st.LiFatID != "" {
		c.LiFatID, c.LiFatIDFrom = st.LiFatID, "cookie capstan_lfi"
	}
	results := p.Convert(ctx, ev, st.Source, r.clock.Now(), enr, &c)
	if len(results) == 1 && results[0].Route == nil {
		switch o := results[0].Outcome; o {
		case FilteredConsent:
			return notSent(o, "consent for a required category is missing (destinations[].consent_categories)")
		case NotMatched:
			de.Outcome, de.Reason = o, "no mapping's trigger matched"
			de.Delivery = DeliveryState{State: StateNotSent, Reason: de.Reason}
			results = nil
		default:
			return notSent(o, string(o))
		}
	}
	byRoute := map[*Route]Result{}
	var payloads []Payload
	var owners []*Route
	for _, res := range results {
		byRoute[res.Route] = res
		if res.Outcome == Converted {
			payloads = append(payloads, res.Payload)
			owners = append(owners, res.Route)
		}
	}
	requests := map[*Route]any{}
	if len(payloads) > 0 {
		reqs, err := p.Format.Requests(payloads)
		if err != nil {
			return de, err
		}
		for _, rq := range reqs {
			for _, i := range rq.Items {
				requests[owners[i]] = rq.Value
			}
		}
	}
	var dls []*DeadLetter
	if len(results) > 0 {
		if de.Delivery, err = r.deliveryState(ctx, st, false); err != nil {
			return de, err
		}
		if dls, err = r.deadLettersOf(ctx, st); err != nil {
			return de, err
		}
	}
	for _, rt := range p.Routes {
		me := MappingExplanation{Mapping: rt.Name, Trigger: triggerText(rt), Matched: true, Why: "matched: the mapping takes every event"}
		if rt.trigger != nil {
			me.Matched, me.Why = rt.trigger.Explain(ev)
		}
		res, ok := byRoute[rt]
		if !ok {
			me.Outcome = NotMatched
			de.Mappings = append(de.Mappings, me)
			continue
		}
		me.Outcome, me.Enriched, me.Request = res.Outcome, res.Payload.Enriched, requests[rt]
		if res.Err != nil {
			me.Error = previewErrorOf(res.Err)
		}
		ds := mappingState(de.Delivery, rt.Name, dls)
		if res.Outcome == Invalid && ds.State == StateDelivered {
			// Acknowledged, and its dead letter is gone: replayed or removed.
			ds = DeliveryState{State: StateNotSent, Reason: "invalid; its dead letter was replayed or removed since"}
		}
		me.Delivery = &ds
		de.Mappings = append(de.Mappings, me)
	}
	return de, nil
}

func triggerText(rt *Route) string {
	if rt.trigger == nil {
		return ""
	}
	return rt.trigger.String()
}

// deliveryState reads the destination's durable consumer: an event at or
// below its ack floor is acknowledged; above, it is pending (for
// unusable, a dead letter of the whole event is looked up).
func (r *Runner) deliveryState(ctx context.Context, st stream.Stored, unusable bool) (DeliveryState, error) {
	cs, err := r.eng.ConsumerState(ctx, r.cfg.Consumer)
	switch {
	case errors.Is(err, stream.ErrNotFound):
		return DeliveryState{State: StatePending, Reason: "delivery to this destination has not started"}, nil
	case err != nil:
		return DeliveryState{}, err
	}
	if st.Seq > cs.AckFloor {
		ds := DeliveryState{State: StatePending, Reason: "waiting in the stream: not yet read by delivery"}
		if st.Seq <= cs.Delivered {
			ds.Reason = "read by delivery and not yet acknowledged: being sent or retried"
		}
		if why := r.Paused(); why != "" {
			ds.Reason += "; the destination is paused: " + why
		}
		return ds, nil
	}
	ds := DeliveryState{State: StateDelivered, Reason: "acknowledged by delivery"}
	if unusable {
		dls, err := r.deadLettersOf(ctx, st)
		if err != nil {
			return ds, err
		}
		return mappingState(ds, "", dls), nil
	}
	return ds, nil
}

// deadLettersOf returns the destination's dead letters of event st.
func (r *Runner) deadLettersOf(ctx context.Context, st stream.Stored) ([]*DeadLetter, error) {
	var out []*DeadLetter
	// A dead letter is written after its event was stored; a minute's
	// margin covers the clocks of a cluster.
	f := DLQFilter{Destination: r.plan.Name, Since: st.StoredAt.Add(-time.Minute)}
	err := ListDeadLetters(ctx, r.eng, f, func(dl *DeadLetter) error {
		if dl.EventSeq == st.Seq && dl.EventIndex == st.Index {
			out = append(out, dl)
		}
		return nil
	})
	return out, err
}

// mappingState is a mapping's delivery state: its dead letter if there is
// one, else the destination's state (an acknowledged event whose
// conversion has no dead letter was delivered).
func mappingState(dest DeliveryState, mapping string, dls []*DeadLetter) DeliveryState {
	for _, dl := range dls {
		if dl.Mapping == mapping {
			return DeliveryState{State: StateDeadLettered, Reason: dl.Reason + ": " + dl.Message, DeadLetter: &DeadLetterRef{
				ID: dl.Seq, Reason: dl.Reason, Status: dl.Status, Code: dl.Code, Message: dl.Message,
			}}
		}
	}
	return dest
}

// DestinationInfo describes a destination's plan for the console (the
// Event tester's choices): the sources it takes and its mappings.
type DestinationInfo struct {
	Destination string `json:"destination"`
	// Sources are the sources it takes; empty: every source.
	Sources  []string      `json:"sources"`
	Mappings []MappingInfo `json:"mappings"`
}

// MappingInfo is one enabled mapping: its name and trigger in canonical
// form ("" when it takes every event).
type MappingInfo struct {
	Name    string `json:"name"`
	Trigger string `json:"trigger"`
}

// Info describes the runner's plan.
func (r *Runner) Info() DestinationInfo {
	p := r.plan
	di := DestinationInfo{Destination: p.Name, Sources: []string{}, Mappings: []MappingInfo{}}
	for s := range p.sources {
		di.Sources = append(di.Sources, s)
	}
	slices.Sort(di.Sources)
	for _, rt := range p.Routes {
		di.Mappings = append(di.Mappings, MappingInfo{Name: rt.Name, Trigger: triggerText(rt)})
	}
	return di
}

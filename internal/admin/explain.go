package admin

import (
	"context"
	"errors"
	"net/http"

	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/stream"
)

// Explainer says what delivery made, or makes, of a stored event (the
// console's event detail) and describes the destinations' plans (the Event
// tester's choices). EngineExplainer is the one of `capstan serve`.
type Explainer interface {
	// Explain explains the event at pos; an error wrapping ErrNotFound or
	// delivery.ErrNoEvent when EVENTS holds none.
	Explain(ctx context.Context, pos stream.Pos) (*delivery.Explanation, error)
	// Destinations describes each destination's sources and mappings, in
	// configuration order.
	Destinations() []delivery.DestinationInfo
}

// explainEvent: GET /admin/api/events/{seq}/explain, {seq} an event's
// position ("123:4", or "123" for index 0), answers the stored
// event and, per destination and mapping, the trigger's result and why, the
// request it builds or why none, and its delivery outcome
// (delivery.Explanation).
func (s *Server) explainEvent(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	pos, err := parsePos("event seq", r.PathValue("seq"))
	if err != nil {
		return err
	}
	if pos == 0 {
		return badRequest("event seq: give an event position")
	}
	if s.explain == nil {
		return &apiError{http.StatusServiceUnavailable, codeUnavailable, "event details are not available in this server"}
	}
	x, err := s.explain.Explain(r.Context(), pos)
	switch {
	case errors.Is(err, ErrNotFound) || errors.Is(err, delivery.ErrNoEvent):
		return notFound("no stored event %s (it may have left the stream's retention)", pos)
	case err != nil:
		return s.unavailable(r, "explain the event", err)
	}
	writeJSON(w, http.StatusOK, x)
	return nil
}

// listMappings: GET /admin/api/mappings answers {"destinations":
// [{"destination","sources","mappings":[{"name","trigger"}]}]}.
func (s *Server) listMappings(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	if s.explain == nil {
		return &apiError{http.StatusServiceUnavailable, codeUnavailable, "mappings are not available in this server"}
	}
	writeJSON(w, http.StatusOK, struct {
		Destinations []delivery.DestinationInfo `json:"destinations"`
	}{append([]delivery.DestinationInfo{}, s.explain.Destinations()...)})
	return nil
}

package admin

import (
	"context"
	"errors"
	"net/http"

	"github.com/capstan-gw/capstan/internal/delivery"
)

// Explainer says what delivery made, or makes, of a stored event (the
// console's event detail): delivery.ExplainEvent over the running
// destinations.
type Explainer interface {
	// Explain explains the event at stream sequence seq; an error wrapping
	// ErrNotFound when EVENTS holds none.
	Explain(ctx context.Context, seq uint64) (*delivery.Explanation, error)
}

// ExplainFunc adapts a function to Explainer.
type ExplainFunc func(ctx context.Context, seq uint64) (*delivery.Explanation, error)

// Explain calls f.
func (f ExplainFunc) Explain(ctx context.Context, seq uint64) (*delivery.Explanation, error) {
	return f(ctx, seq)
}

// explainEvent: GET /admin/api/events/{seq}/explain answers the stored
// event and, per destination and mapping, the trigger's result and why, the
// request it builds or why none, and its delivery outcome
// (delivery.Explanation).
func (s *Server) explainEvent(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	seq, err := parseSeq("event seq", r.PathValue("seq"))
	if err != nil {
		return err
	}
	if s.explain == nil {
		return &apiError{http.StatusServiceUnavailable, codeUnavailable, "event details are not available in this server"}
	}
	x, err := s.explain.Explain(r.Context(), seq)
	switch {
	case errors.Is(err, ErrNotFound) || errors.Is(err, delivery.ErrNoEvent):
		return notFound("no stored event %d (it may have left the stream's retention)", seq)
	case err != nil:
		return s.unavailable(r, "explain the event", err)
	}
	writeJSON(w, http.StatusOK, x)
	return nil
}

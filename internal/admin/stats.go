package admin

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/capstan-gw/capstan/internal/stats"
)

// Stats reads the durable delivery statistics; *stats.Collector is one. An
// error wrapping stats.ErrUnknown names a destination or mapping it knows
// nothing of.
type Stats interface {
	Report(ctx context.Context, q stats.Query) (*stats.Report, error)
}

// windowNames lists the windows for messages.
func windowNames() string {
	names := make([]string, len(stats.Windows))
	for i, w := range stats.Windows {
		names[i] = w.Name
	}
	return strings.Join(names, ", ")
}

// showStats: GET /admin/api/stats?window=1h|24h|7d&destination=&mapping=
// answers the delivery statistics (stats.Report): per destination and
// mapping the funnel, the outcomes, match coverage, latency p50/p95 and a
// series over the window.
func (s *Server) showStats(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := checkQuery(q, "window", "destination", "mapping"); err != nil {
		return err
	}
	sq := stats.Query{Destination: q.Get("destination"), Mapping: q.Get("mapping"), Window: stats.Windows[0]}
	if name := q.Get("window"); name != "" {
		win, ok := stats.WindowNamed(name)
		if !ok {
			return badRequest("window %q: use %s", name, windowNames())
		}
		sq.Window = win
	}
	if s.stats == nil {
		if len(s.dests) == 0 && sq.Destination == "" {
			// Nothing is delivered, so nothing is counted.
			writeJSON(w, http.StatusOK, &stats.Report{Window: sq.Window.Name, StepSeconds: int64(sq.Window.Step.Seconds()), Destinations: []*stats.DestinationReport{}})
			return nil
		}
		return &apiError{http.StatusServiceUnavailable, codeUnavailable, "delivery statistics are not kept by this server; see its log"}
	}
	if err := checkName("destination", sq.Destination); err != nil {
		return err
	}
	if sq.Mapping != "" && sq.Destination == "" {
		return badRequest("mapping %q: give its destination too", sq.Mapping)
	}
	if sq.Destination != "" && s.byName[sq.Destination] == nil {
		return notFound("no destination %q", sq.Destination)
	}
	rep, err := s.stats.Report(r.Context(), sq)
	switch {
	case errors.Is(err, stats.ErrUnknown) && sq.Mapping != "":
		return notFound("destination %q has no mapping %q", sq.Destination, sq.Mapping)
	case errors.Is(err, stats.ErrUnknown):
		return notFound("no statistics for destination %q", sq.Destination)
	case err != nil:
		return s.unavailable(r, "read the delivery statistics", err)
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

package admin

import (
	"errors"
	"net/http"
	"time"
)

// listEvents: GET /admin/api/events?source=&since=&after=&before=&order=&limit=
// answers a page of stored events with their position, newest first unless
// order=oldest. The next page of newest-first answers is before=<the last
// pos>; of oldest-first ones, after=<the last pos>. A position is
// "seq:index" (stream.Pos); a bare sequence is index 0.
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := checkQuery(q, "source", "since", "after", "before", "order", "limit"); err != nil {
		return err
	}
	eq := EventQuery{Source: q.Get("source")}
	if err := checkName("source", eq.Source); err != nil {
		return err
	}
	var err error
	if eq.Since, err = parseSince("since", q.Get("since"), time.Now()); err != nil {
		return err
	}
	if eq.After, err = parsePos("after", q.Get("after")); err != nil {
		return err
	}
	before, err := parsePos("before", q.Get("before"))
	if err != nil {
		return err
	}
	if before != 0 && before <= eq.After+1 {
		return badRequest("before %s and after %s leave no event between them", before, eq.After)
	}
	newest := true
	switch q.Get("order") {
	case "", "newest":
	case "oldest":
		newest = false
	default:
		return badRequest("order %q: use newest or oldest", q.Get("order"))
	}
	limit, err := parseLimit(q.Get("limit"))
	if err != nil {
		return err
	}

	// The reader goes oldest first: newest first keeps the last limit+1
	// events in a ring.
	ring := make([]StoredEvent, 0, limit+1)
	n := 0 // events seen
	err = s.events.ReadEvents(r.Context(), eq, func(ev StoredEvent) error {
		if ev.pos() <= eq.After {
			return nil
		}
		if before != 0 && ev.pos() >= before {
			return errEnough
		}
		n++
		switch {
		case len(ring) < limit+1:
			ring = append(ring, ev)
		case newest:
			ring[(n-1)%(limit+1)] = ev
		default:
			return errEnough
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return s.unavailable(r, "read the stored events", err)
	}
	out := struct {
		Events []StoredEvent `json:"events"`
		More   bool          `json:"more"`
	}{Events: make([]StoredEvent, 0, min(limit, len(ring))), More: n > limit}
	if newest {
		// Event k (from 1) of the n seen is at (k-1) mod the ring's size.
		for i := range min(limit, len(ring)) {
			out.Events = append(out.Events, ring[(n-1-i)%len(ring)])
		}
	} else {
		out.Events = append(out.Events, ring[:min(limit, len(ring))]...)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

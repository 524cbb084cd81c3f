package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/capstan-gw/capstan/internal/audit"
	"github.com/capstan-gw/capstan/internal/delivery"
)

// errEnough stops a read once a page is full.
var errEnough = errors.New("page full")

// reasons are the dead-letter reasons a filter may name.
var reasons = []string{delivery.ReasonInvalid, delivery.ReasonRejected, delivery.ReasonExpired, delivery.ReasonUnusable, delivery.ReasonCollision}

// dlqFilter checks a filter's destination, reason and since.
func dlqFilter(destination, reason, since string, now time.Time) (delivery.DLQFilter, error) {
	if err := checkName("destination", destination); err != nil {
		return delivery.DLQFilter{}, err
	}
	if reason != "" && !slices.Contains(reasons, reason) {
		return delivery.DLQFilter{}, badRequest("reason %q: use %s", reason, strings.Join(reasons, ", "))
	}
	t, err := parseSince("since", since, now)
	if err != nil {
		return delivery.DLQFilter{}, err
	}
	return delivery.DLQFilter{Destination: destination, Reason: reason, Since: t}, nil
}

// listDeadLetters: GET /admin/api/dlq?destination=&reason=&since=&after=&limit=,
// oldest first.
func (s *Server) listDeadLetters(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := checkQuery(q, "destination", "reason", "since", "after", "limit"); err != nil {
		return err
	}
	f, err := dlqFilter(q.Get("destination"), q.Get("reason"), q.Get("since"), time.Now())
	if err != nil {
		return err
	}
	after, err := parseSeq("after", q.Get("after"))
	if err != nil {
		return err
	}
	limit, err := parseLimit(q.Get("limit"))
	if err != nil {
		return err
	}
	out := struct {
		DeadLetters []*delivery.DeadLetter `json:"deadLetters"`
		More        bool                   `json:"more"`
	}{DeadLetters: []*delivery.DeadLetter{}}
	err = s.dlq.List(r.Context(), f, func(dl *delivery.DeadLetter) error {
		if dl.Seq <= after {
			return nil
		}
		if len(out.DeadLetters) == limit {
			out.More = true
			return errEnough
		}
		out.DeadLetters = append(out.DeadLetters, dl)
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return s.unavailable(r, "read the dead-letter queue", err)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// deadLetter reads dead letter id; nil, nil when there is none.
func (s *Server) deadLetter(r *http.Request, id uint64) (*delivery.DeadLetter, error) {
	var found *delivery.DeadLetter
	err := s.dlq.List(r.Context(), delivery.DLQFilter{Seq: id}, func(dl *delivery.DeadLetter) error {
		found = dl
		return nil
	})
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, s.unavailable(r, "read the dead-letter queue", err)
	}
	return found, nil
}

// showDeadLetter: GET /admin/api/dlq/{id}.
func (s *Server) showDeadLetter(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	id, err := parseSeq("dead letter id", r.PathValue("id"))
	if err != nil {
		return err
	}
	dl, err := s.deadLetter(r, id)
	if err != nil {
		return err
	}
	if dl == nil {
		return notFound("no dead letter %d", id)
	}
	writeJSON(w, http.StatusOK, dl)
	return nil
}

// replayTarget says which dead letters a replay selected, for the audit
// log: the ids (the first 20), or the filter.
func replayTarget(ids []uint64, destination, reason, since string) string {
	if len(ids) > 0 {
		var b strings.Builder
		b.WriteString("dead letters ")
		for i, id := range ids {
			if i == 20 {
				fmt.Fprintf(&b, " and %d more", len(ids)-20)
				break
			}
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.FormatUint(id, 10))
		}
		return b.String()
	}
	var parts []string
	for _, kv := range [][2]string{{"destination", destination}, {"reason", reason}, {"since", since}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	if len(parts) == 0 {
		return "all dead letters"
	}
	return "dead letters with " + strings.Join(parts, " ")
}

// replayBody describes replayDeadLetters' body in messages.
const replayBody = `{"ids": [N, …]} or {"destination": "…", "reason": "…", "since": "…"} or {"all": true}`

// maxReplayIDs bounds the ids of one replay request.
const maxReplayIDs = 1000

// replayDeadLetters: POST /admin/api/dlq/replay puts the selected dead
// letters' events back for their destination and answers {"replayed": n}.
// With ids, every id must exist, or nothing is replayed.
func (s *Server) replayDeadLetters(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	var body struct {
		IDs         []uint64 `json:"ids"`
		Destination string   `json:"destination"`
		Reason      string   `json:"reason"`
		Since       string   `json:"since"`
		All         bool     `json:"all"`
	}
	if err := decodeBody(w, r, maxBody, &body, replayBody); err != nil {
		return err
	}
	filtered := body.Destination != "" || body.Reason != "" || body.Since != ""
	var filters []delivery.DLQFilter
	switch {
	case len(body.IDs) > 0 && (filtered || body.All):
		return badRequest("give ids or a filter, not both: the body must be %s", replayBody)
	case len(body.IDs) > maxReplayIDs:
		return badRequest("%d ids: at most %d per request", len(body.IDs), maxReplayIDs)
	case len(body.IDs) > 0:
		ids := slices.Clone(body.IDs)
		slices.Sort(ids)
		ids = slices.Compact(ids)
		var missing []string
		for _, id := range ids {
			if id == 0 {
				return badRequest("ids: 0 is not a dead letter id")
			}
			dl, err := s.deadLetter(r, id)
			if err != nil {
				return err
			}
			if dl == nil {
				missing = append(missing, strconv.FormatUint(id, 10))
				continue
			}
			filters = append(filters, delivery.DLQFilter{Seq: id})
		}
		if len(missing) > 0 {
			return notFound("no dead letter %s; nothing was replayed", strings.Join(missing, ", "))
		}
	case filtered && body.All:
		return badRequest("give a filter or all, not both: the body must be %s", replayBody)
	case filtered || body.All:
		f, err := dlqFilter(body.Destination, body.Reason, body.Since, time.Now())
		if err != nil {
			return err
		}
		filters = append(filters, f)
	default:
		return badRequest("say which dead letters to replay: the body must be %s", replayBody)
	}
	rec := audit.Record{Action: audit.ActionDLQReplay, Target: replayTarget(body.IDs, body.Destination, body.Reason, body.Since)}
	n := 0
	for _, f := range filters {
		k, err := s.dlq.Replay(r.Context(), f)
		n += k
		if err != nil {
			rec.Result, rec.Error = map[string]int{"replayed": n}, "the replay stopped part way"
			s.record(r, rec)
			return s.unavailable(r, fmt.Sprintf("replay every dead letter (%d replayed)", n), err)
		}
	}
	rec.Result = map[string]int{"replayed": n}
	s.record(r, rec)
	s.log.Info("dead letters replayed by admin request", "replayed", n, "principal", principalOf(r).name)
	writeJSON(w, http.StatusOK, struct {
		Replayed int `json:"replayed"`
	}{n})
	return nil
}

// DeadLetterCounter is implemented by DeadLetters that count dead letters
// without reading them (EngineDeadLetters: the DLQ stream's per-subject
// counts). Others are counted by listing.
type DeadLetterCounter interface {
	// Count returns how many dead letters the DLQ holds per destination
	// and reason.
	Count(ctx context.Context) (map[[2]string]uint64, error)
}

// dlqCount is the answer of GET /admin/api/dlq/count.
type dlqCount struct {
	// Count is the number of dead letters the filter selects.
	Count uint64 `json:"count"`
	// ByDestination and ByReason split the selection.
	ByDestination map[string]uint64 `json:"byDestination"`
	ByReason      map[string]uint64 `json:"byReason"`
}

// countDeadLetters: GET /admin/api/dlq/count?destination=&reason= answers
// how many dead letters the DLQ holds (the console's navigation count),
// by destination and by reason.
func (s *Server) countDeadLetters(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := checkQuery(q, "destination", "reason"); err != nil {
		return err
	}
	f, err := dlqFilter(q.Get("destination"), q.Get("reason"), "", time.Now())
	if err != nil {
		return err
	}
	var counts map[[2]string]uint64
	if c, ok := s.dlq.(DeadLetterCounter); ok {
		counts, err = c.Count(r.Context())
	} else {
		counts = map[[2]string]uint64{}
		err = s.dlq.List(r.Context(), delivery.DLQFilter{}, func(dl *delivery.DeadLetter) error {
			counts[[2]string{dl.Destination, dl.Reason}]++
			return nil
		})
	}
	if err != nil {
		return s.unavailable(r, "count the dead letters", err)
	}
	out := dlqCount{ByDestination: map[string]uint64{}, ByReason: map[string]uint64{}}
	for k, n := range counts {
		if (f.Destination != "" && k[0] != f.Destination) || (f.Reason != "" && k[1] != f.Reason) {
			continue
		}
		out.Count += n
		out.ByDestination[k[0]] += n
		out.ByReason[k[1]] += n
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

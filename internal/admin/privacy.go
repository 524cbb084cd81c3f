package admin

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/capstan-gw/capstan/internal/audit"
	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/privacy"
)

// Privacy carries out privacy deletions; *privacy.Deleter is one. An error
// wrapping privacy.ErrBadRequest is the caller's; others are the engine's.
type Privacy interface {
	Delete(ctx context.Context, req privacy.Request) (privacy.Report, error)
	// FindEmail returns the ids of the stored events carrying the email
	// whose normalised SHA-256 is given.
	FindEmail(ctx context.Context, emailSHA256 string) ([]identity.Key, error)
}

// AuditLog is the durable audit log (internal/audit).
type AuditLog interface {
	// Append stores rec durably.
	Append(ctx context.Context, rec audit.Record) error
	// Read returns the records stored at or after since (zero: all) whose
	// sequence is below before (0: any), newest first, at most limit.
	Read(ctx context.Context, since time.Time, before uint64, limit int) ([]audit.Record, error)
}

// privacyBody describes deletePerson's body in messages.
const privacyBody = `{"userId": "…"} or {"anonymousId": "…"} or {"email": "…"} or {"emailSha256": "…"}`

// deletePerson: POST /admin/api/privacy/delete erases a person from the
// identity graph, EVENTS and the DLQ, suppresses their ids and records it
// in the audit log; it answers the counts. It reads every stored event: it
// takes time in proportion to the streams' retention.
func (s *Server) deletePerson(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	var body struct {
		UserID      string `json:"userId"`
		AnonymousID string `json:"anonymousId"`
		Email       string `json:"email"`
		EmailSHA256 string `json:"emailSha256"`
	}
	if err := decodeBody(w, r, maxBody, &body, privacyBody); err != nil {
		return err
	}
	if s.privacy == nil {
		return &apiError{http.StatusServiceUnavailable, codeUnavailable, "privacy deletion is not available on this server"}
	}
	rep, err := s.privacy.Delete(r.Context(), privacy.Request{
		UserID: body.UserID, AnonymousID: body.AnonymousID, Email: body.Email, EmailSHA256: body.EmailSHA256, By: principalOf(r).name,
	})
	if errors.Is(err, privacy.ErrBadRequest) {
		return badRequest("give exactly one non-empty id (emailSha256: 64 lower-case hex digits): the body must be %s", privacyBody)
	}
	if err != nil {
		return s.unavailable(r, "complete the privacy deletion", err)
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// listAudit: GET /admin/api/audit?since=&before=&limit= answers
// {"records": [...], "more": bool}, newest first; the next page is
// before=<the last record's seq>.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := checkQuery(q, "since", "before", "limit"); err != nil {
		return err
	}
	before, err := parseSeq("before", q.Get("before"))
	if err != nil {
		return err
	}
	limit, err := parseLimit(q.Get("limit"))
	if err != nil {
		return err
	}
	since, err := parseSince("since", q.Get("since"), time.Now())
	if err != nil {
		return err
	}
	if s.audit == nil {
		return &apiError{http.StatusServiceUnavailable, codeUnavailable, "the audit log is not available on this server"}
	}
	recs, err := s.audit.Read(r.Context(), since, before, limit+1)
	if err != nil {
		return s.unavailable(r, "read the audit log", err)
	}
	more := len(recs) > limit
	if more {
		recs = recs[:limit]
	}
	if recs == nil {
		recs = []audit.Record{}
	}
	writeJSON(w, http.StatusOK, struct {
		Records []audit.Record `json:"records"`
		More    bool           `json:"more"`
	}{recs, more})
	return nil
}

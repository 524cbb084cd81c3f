package admin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"

	"github.com/capstan-gw/capstan/internal/audit"
	"github.com/capstan-gw/capstan/internal/identity"
)

// sha256Hex is the lower-case hex SHA-256 of s: how the audit log names an
// id.
func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// identityKey reads the person a request names: exactly one of the query
// parameters userId and anonymousId.
func identityKey(r *http.Request) (identity.Key, error) {
	q := r.URL.Query()
	if err := checkQuery(q, "userId", "anonymousId"); err != nil {
		return identity.Key{}, err
	}
	k := identity.Key{UserID: strings.TrimSpace(q.Get("userId")), AnonymousID: strings.TrimSpace(q.Get("anonymousId"))}
	if (k.UserID == "") == (k.AnonymousID == "") {
		return identity.Key{}, badRequest("give exactly one of the query parameters userId and anonymousId")
	}
	return k, nil
}

// identityFailed turns the graph's error into the answer's.
func (s *Server) identityFailed(r *http.Request, what string, err error) error {
	switch {
	case errors.Is(err, identity.ErrNotFound):
		return notFound("the identity graph holds nothing for this id")
	case errors.Is(err, identity.ErrBadKey):
		return badRequest("%v", err)
	}
	return s.unavailable(r, what, err)
}

// showIdentity: GET /admin/api/identity?userId=U | ?anonymousId=A.
func (s *Server) showIdentity(w http.ResponseWriter, r *http.Request) error {
	k, err := identityKey(r)
	if err != nil {
		return err
	}
	p, err := s.identity.Show(r.Context(), k)
	if err != nil {
		return s.identityFailed(r, "read the identity graph", err)
	}
	writeJSON(w, http.StatusOK, struct {
		Success bool             `json:"success"`
		Profile identity.Profile `json:"profile"`
	}{true, p})
	return nil
}

// deleteIdentity: DELETE /admin/api/identity?userId=U | ?anonymousId=A
// removes the person and every linked id.
func (s *Server) deleteIdentity(w http.ResponseWriter, r *http.Request) error {
	k, err := identityKey(r)
	if err != nil {
		return err
	}
	removed, err := s.identity.Delete(r.Context(), k)
	rec := audit.Record{Action: audit.ActionIdentityDelete, IDKind: "userId", IDSHA256: sha256Hex(k.UserID),
		Result: map[string]int{"graphKeysRemoved": len(removed)}}
	if k.AnonymousID != "" {
		rec.IDKind, rec.IDSHA256 = "anonymousId", sha256Hex(k.AnonymousID)
	}
	if err != nil {
		if errors.Is(err, identity.ErrNotFound) {
			rec.Error = "the identity graph holds nothing for this id"
		} else {
			rec.Error = "the identity graph could not be changed"
		}
		s.record(r, rec)
		return s.identityFailed(r, "change the identity graph", err)
	}
	s.record(r, rec)
	s.log.Info("identity deleted by admin request", "keys_removed", len(removed), "principal", principalOf(r).name)
	if removed == nil {
		removed = []string{}
	}
	writeJSON(w, http.StatusOK, struct {
		Success bool     `json:"success"`
		Removed []string `json:"removed"`
	}{true, removed})
	return nil
}

package admin

import (
	"errors"
	"net/http"
	"strings"

	"github.com/capstan-gw/capstan/internal/identity"
)

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
	if err != nil {
		return s.identityFailed(r, "change the identity graph", err)
	}
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

package admin

import (
	"errors"
	"net/http"
	"time"

	"github.com/capstan-gw/capstan/internal/audit"
	"github.com/capstan-gw/capstan/internal/delivery"
)

// destination returns the destination named by the request's path.
func (s *Server) destination(r *http.Request) (Destination, error) {
	name := r.PathValue("name")
	d := s.byName[name]
	if d == nil {
		return nil, notFound("no such destination %q", name)
	}
	return d, nil
}

// listDestinations: GET /admin/api/destinations.
func (s *Server) listDestinations(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	out := struct {
		Destinations []delivery.Status `json:"destinations"`
	}{Destinations: make([]delivery.Status, 0, len(s.dests))}
	for _, d := range s.dests {
		out.Destinations = append(out.Destinations, d.Status())
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// showDestination: GET /admin/api/destinations/{name}.
func (s *Server) showDestination(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	d, err := s.destination(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d.Status())
	return nil
}

// tokenBody describes installToken's body in messages.
const tokenBody = `{"access_token": "…", "expires_at": "RFC 3339, optional"}`

// installToken: PUT /admin/api/destinations/{name}/token installs a new
// access token and answers the destination's status.
func (s *Server) installToken(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	d, err := s.destination(r)
	if err != nil {
		return err
	}
	var body struct {
		AccessToken string `json:"access_token"`
		ExpiresAt   string `json:"expires_at"`
	}
	if err := decodeBody(w, r, maxBody, &body, tokenBody); err != nil {
		return err
	}
	if body.AccessToken == "" {
		return badRequest("access_token is required: the body must be %s", tokenBody)
	}
	var exp time.Time
	if body.ExpiresAt != "" {
		if exp, err = time.Parse(time.RFC3339, body.ExpiresAt); err != nil {
			return badRequest("expires_at %q must be RFC 3339, like 2027-03-01T00:00:00Z", body.ExpiresAt)
		}
	}
	rec := audit.Record{Action: audit.ActionTokenInstall, Target: d.Name()}
	switch err := d.InstallToken(r.Context(), body.AccessToken, exp); {
	case errors.Is(err, ErrTokenNotSaved):
		s.log.Error("access token installed by admin request but not saved", "destination", d.Name(), "error", err)
		rec.Error = ErrTokenNotSaved.Error()
		s.record(r, rec)
		return &apiError{http.StatusServiceUnavailable, codeTokenNotSaved, ErrTokenNotSaved.Error()}
	case err != nil:
		s.log.Error("admin request failed", "method", r.Method, "route", r.Pattern, "destination", d.Name(), "error", err)
		rec.Error = "the destination could not install the token"
		s.record(r, rec)
		return &apiError{http.StatusServiceUnavailable, codeUnavailable, "the destination could not install the token; see the server log"}
	}
	s.record(r, rec)
	s.log.Info("access token installed by admin request", "destination", d.Name(), "principal", principalOf(r).name, "expires_at", body.ExpiresAt)
	writeJSON(w, http.StatusOK, d.Status())
	return nil
}

package admin

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/capstan-gw/capstan/internal/audit"
	"github.com/capstan-gw/capstan/internal/delivery"
)

// DestinationInfo is what the console shows of a destination besides its
// status.
type DestinationInfo struct {
	// Type is the destination's type ("linkedin").
	Type string `json:"type"`
	// AdAccount is the LinkedIn ad account id (0: none).
	AdAccount int64 `json:"adAccount,omitempty"`
	// Rules are the conversion rules of its mappings, in configuration
	// order.
	Rules []Rule `json:"rules"`
	// RateLimit is its current token's use of the remote's request limits
	// this minute and today, as capstan's limiter counts them.
	RateLimit delivery.RateUsage `json:"rateLimit"`
	// Retrying is set while its requests are being retried (the remote
	// failed and accepted none since).
	Retrying *delivery.Retrying `json:"retrying"`
}

// Rule is one mapping's conversion rule.
type Rule struct {
	Mapping string `json:"mapping"`
	// RuleID is the LinkedIn id ("" while a rule to create is not created
	// yet); Created says capstan creates it, named Name, of Type.
	RuleID  string `json:"ruleId"`
	Created bool   `json:"created"`
	Name    string `json:"name,omitempty"`
	Type    string `json:"type,omitempty"`
	// Campaigns are the campaign ids configured; CampaignsAssociated says
	// LinkedIn has them associated with the rule.
	Campaigns           []int64 `json:"campaigns"`
	CampaignsAssociated bool    `json:"campaignsAssociated"`
}

// destinationView is a destination as the API answers it: its status (the
// fields of /readyz), its info, and its health for the console.
type destinationView struct {
	delivery.Status
	DestinationInfo
	// Health is "delivering", "paused", "standby" or "degraded"
	// (delivering, with the Problems listed).
	Health string `json:"health"`
	// Problems say why it is degraded: requests are being retried, the
	// token expires within 14 days, a rate limit is used up.
	Problems []string `json:"problems"`
	// TokenDaysLeft is the whole days until the token expires (null:
	// unknown expiry).
	TokenDaysLeft *int `json:"tokenDaysLeft"`
}

// view returns d's status, info and health at now.
func view(r *http.Request, d Destination, now time.Time) destinationView {
	v := destinationView{Status: d.Status(), DestinationInfo: d.Info(r.Context()), Problems: []string{}}
	if v.Rules == nil {
		v.Rules = []Rule{}
	}
	for i := range v.Rules {
		if v.Rules[i].Campaigns == nil {
			v.Rules[i].Campaigns = []int64{}
		}
	}
	v.Health = v.State
	if rt := v.Retrying; rt != nil {
		what := "no answer"
		if rt.Status != 0 {
			what = fmt.Sprintf("HTTP %d", rt.Status)
		}
		v.Problems = append(v.Problems, fmt.Sprintf("requests are being retried since %s (%s ago; last: %s)",
			rt.Since.UTC().Format("15:04:05 UTC"), now.Sub(rt.Since).Round(time.Second), what))
	}
	if exp := v.TokenExpiresAt; exp != nil {
		days := int(exp.Sub(now).Hours() / 24)
		if exp.Before(now) {
			days = -int(now.Sub(*exp).Hours()/24) - 1
		}
		v.TokenDaysLeft = &days
		if exp.Sub(now) < 14*24*time.Hour {
			if days < 0 {
				v.Problems = append(v.Problems, "the access token has expired")
			} else {
				v.Problems = append(v.Problems, fmt.Sprintf("the access token expires in %d days", days))
			}
		}
	}
	u := v.RateLimit
	switch {
	case u.PerDay > 0 && u.Day >= u.PerDay:
		v.Problems = append(v.Problems, "today's request limit is used up: requests wait for the next UTC day")
	case u.PerMinute > 0 && u.Minute >= u.PerMinute:
		v.Problems = append(v.Problems, "this minute's request limit is used up: requests wait for the next minute")
	}
	if v.State == "delivering" && len(v.Problems) > 0 {
		v.Health = "degraded"
	}
	return v
}

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
		Destinations []destinationView `json:"destinations"`
	}{Destinations: make([]destinationView, 0, len(s.dests))}
	now := s.now()
	for _, d := range s.dests {
		out.Destinations = append(out.Destinations, view(r, d, now))
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
	writeJSON(w, http.StatusOK, view(r, d, s.now()))
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
	writeJSON(w, http.StatusOK, view(r, d, s.now()))
	return nil
}

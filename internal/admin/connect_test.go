package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/audit"
	"github.com/capstan-gw/capstan/internal/config"
)

// connectDest is a destination that can be connected; FinishConnect
// succeeds unless the code is "bad".
type connectDest struct {
	*fakeDest
	redirect string
	state    string
	finished []string // codes
}

func (d *connectDest) ConnectRedirectURI() string { return d.redirect }

func (d *connectDest) StartConnect(redirectURI string) (string, string, error) {
	d.state = "state-" + d.name
	return "https://linkedin.example/oauth/v2/authorization?state=" + d.state + "&redirect_uri=" + url.QueryEscape(redirectURI), d.state, nil
}

func (d *connectDest) FinishConnect(_ context.Context, q url.Values, state, redirectURI string) (string, []string, error) {
	if state != d.state || redirectURI != d.redirect {
		return "", nil, errors.New("wrong state or redirect")
	}
	d.finished = append(d.finished, q.Get("code"))
	if q.Get("code") == "bad" {
		return "", nil, errors.New("the LinkedIn token lacks the rw_conversions scope")
	}
	return "ad account 1 (ACCOUNT_MANAGER), scopes r_ads,rw_conversions", []string{"no refresh token"}, nil
}

func connectEnv(t *testing.T) (*Server, map[string]*connectDest, *env) {
	t.Helper()
	e := newEnv(t)
	dests := map[string]*connectDest{
		"li":    {fakeDest: &fakeDest{name: "li"}, redirect: "https://capstan.example/admin/oauth/callback"},
		"nouri": {fakeDest: &fakeDest{name: "nouri"}},
		"other": {fakeDest: &fakeDest{name: "other"}, redirect: "https://capstan.example/elsewhere"},
	}
	deps := Deps{Identity: e.graph, DeadLetters: EngineDeadLetters{Engine: e.eng, Writer: e.w}, Events: EngineEvents{Engine: e.eng},
		Preview: PreviewFunc(func(context.Context, json.RawMessage, string, string) (any, bool, error) { return nil, false, nil }),
		Audit:   EngineAudit{Engine: e.eng}}
	for _, n := range []string{"li", "nouri", "other"} {
		deps.Destinations = append(deps.Destinations, dests[n])
	}
	deps.Destinations = append(deps.Destinations, &fakeDest{name: "plain"})
	s, err := New(Config{Token: config.Secret(testToken)}, deps, discard)
	if err != nil {
		t.Fatal(err)
	}
	return s, dests, e
}

// callback sends the browser's request to the callback, without any
// credential.
func callback(t *testing.T, s *Server, query string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", CallbackPath+"?"+query, nil))
	return rec
}

func TestConnectLinkedIn(t *testing.T) {
	s, dests, e := connectEnv(t)
	var started struct {
		URL         string    `json:"url"`
		RedirectURI string    `json:"redirectUri"`
		ExpiresAt   time.Time `json:"expiresAt"`
	}
	decodeAnswer(t, do(t, s, "POST", "/admin/api/destinations/li/connect", operator, ""), &started)
	if !strings.HasPrefix(started.URL, "https://linkedin.example/") || started.RedirectURI != dests["li"].redirect || time.Until(started.ExpiresAt) < 9*time.Minute {
		t.Errorf("start: %+v", started)
	}
	wantError(t, do(t, s, "POST", "/admin/api/destinations/li/connect", "", ""), 401, "unauthorized", "admin token")
	wantError(t, do(t, s, "POST", "/admin/api/destinations/nouri/connect", operator, ""), 400, "bad_request",
		"register http://example.com/admin/oauth/callback as an Authorized redirect URL")
	wantError(t, do(t, s, "POST", "/admin/api/destinations/other/connect", operator, ""), 400, "bad_request", "must end in /admin/oauth/callback")
	wantError(t, do(t, s, "POST", "/admin/api/destinations/plain/connect", operator, ""), 400, "bad_request", "cannot be connected")
	wantError(t, do(t, s, "POST", "/admin/api/destinations/nope/connect", operator, ""), 404, "not_found", "no such destination")

	// A forged state is refused and nothing is exchanged.
	rec := callback(t, s, "code=c1&state=forged")
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "does not belong to a connection in progress") || len(dests["li"].finished) != 0 {
		t.Fatalf("forged state: %d %s", rec.Code, rec.Body)
	}
	rec = callback(t, s, "code=c1&state=state-li")
	body := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(body, "Destination li is connected: ad account 1 (ACCOUNT_MANAGER)") ||
		!strings.Contains(body, `href="/admin/#/destinations?connected=1&amp;destination=li"`) || !strings.Contains(body, "no refresh token") {
		t.Fatalf("callback: %d %s", rec.Code, body)
	}
	if rec.Header().Get("Referrer-Policy") != "no-referrer" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", rec.Header())
	}
	// A state works once.
	if rec := callback(t, s, "code=c1&state=state-li"); rec.Code != 400 {
		t.Errorf("second use: %d", rec.Code)
	}
	// A refused token: the page says why, in an alert.
	decodeAnswer(t, do(t, s, "POST", "/admin/api/destinations/li/connect", operator, ""), &started)
	rec = callback(t, s, "code=bad&state=state-li")
	if !strings.Contains(rec.Body.String(), `role="alert"`) || !strings.Contains(rec.Body.String(), "lacks the rw_conversions scope") {
		t.Errorf("refused: %s", rec.Body)
	}
	recs, err := audit.Read(context.Background(), e.eng, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[1].Action != audit.ActionLinkedInConnect || recs[1].By != "admin token" || recs[1].Target != "li" ||
		!strings.Contains(recs[1].Detail, "ACCOUNT_MANAGER") || recs[0].Error == "" {
		t.Errorf("audit %+v", recs)
	}
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("POST", CallbackPath, nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST callback: %d", rec.Code)
	}
}

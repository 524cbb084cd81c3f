package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
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
	chosen   []int64
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
	switch q.Get("code") {
	case "bad":
		return "", nil, errors.New("the LinkedIn token lacks the rw_conversions scope")
	case "choose":
		return "", nil, &ChooseAccountError{
			Accounts: []AccountChoice{{Account: 1, Role: "ACCOUNT_MANAGER", Writable: true}, {Account: 3, Role: "VIEWER", Reason: "the member is only VIEWER"}},
			Choose: func(_ context.Context, account int64) (string, string, []string, error) {
				d.chosen = append(d.chosen, account)
				if account != 1 {
					return "", "", nil, errors.New("may not write to ad account 3")
				}
				return "ad account 1 (ACCOUNT_MANAGER)", "destinations:\n  - name: li\n    ad_account: 1", nil, nil
			}}
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

// TestConnectLinkedInChooseAccount: a destination without an ad account
// answers the callback with the member's accounts; the page offers the
// writable ones as buttons posting to ChoosePath and the read-only ones
// disabled with the reason; the choice works once and shows the
// configuration to add; a refused choice is an alert; both are audited.
func TestConnectLinkedInChooseAccount(t *testing.T) {
	s, dests, e := connectEnv(t)
	do(t, s, "POST", "/admin/api/destinations/li/connect", operator, "")
	rec := callback(t, s, "code=choose&state=state-li")
	body := rec.Body.String()
	m := regexp.MustCompile(`name="choice" value="([^"]+)"`).FindStringSubmatch(body)
	if rec.Code != 200 || m == nil || !strings.Contains(body, `<button type="submit">Use ad account 1</button>`) ||
		!strings.Contains(body, `<button type="button" disabled aria-describedby="why-3">Use ad account 3</button>`) ||
		!strings.Contains(body, "the member is only VIEWER") || strings.Contains(body, `name="account" value="3"`) {
		t.Fatalf("chooser: %d %s", rec.Code, body)
	}
	choose := func(choice, account string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", ChoosePath, strings.NewReader(url.Values{"choice": {choice}, "account": {account}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		s.ServeHTTP(rec, req)
		return rec
	}
	if rec := choose("forged", "1"); rec.Code != 400 || len(dests["li"].chosen) != 0 {
		t.Errorf("forged choice: %d %s", rec.Code, rec.Body)
	}
	rec = choose(m[1], "1")
	body = rec.Body.String()
	if rec.Code != 200 || !strings.Contains(body, "Destination li is connected: ad account 1 (ACCOUNT_MANAGER).") ||
		!strings.Contains(body, `<pre aria-label="Configuration to add">destinations:
  - name: li
    ad_account: 1</pre>`) || strings.Contains(body, "http-equiv") {
		t.Fatalf("chosen: %d %s", rec.Code, body)
	}
	if rec := choose(m[1], "1"); rec.Code != 400 || len(dests["li"].chosen) != 1 {
		t.Errorf("second use: %d, chosen %v", rec.Code, dests["li"].chosen)
	}
	// A refused account: an alert.
	do(t, s, "POST", "/admin/api/destinations/li/connect", operator, "")
	body = callback(t, s, "code=choose&state=state-li").Body.String()
	m = regexp.MustCompile(`name="choice" value="([^"]+)"`).FindStringSubmatch(body)
	if rec := choose(m[1], "3"); !strings.Contains(rec.Body.String(), `role="alert"`) || !strings.Contains(rec.Body.String(), "may not write to ad account 3") {
		t.Errorf("refused choice: %s", rec.Body)
	}
	recs, err := audit.Read(context.Background(), e.eng, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[1].Detail != "ad account 1 (ACCOUNT_MANAGER)" || recs[1].Error != "" || recs[0].Error == "" { // newest first
		t.Errorf("audit %+v", recs)
	}
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", ChoosePath, nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET choose: %d", rec.Code)
	}
}

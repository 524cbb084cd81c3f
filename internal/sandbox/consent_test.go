package sandbox

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const consentRedirect = "http://127.0.0.1:9/oauth/linkedin/callback"

// authURL is an authorization request as capstan sends it.
func authURL(h *harness, state, scope string) string {
	v := url.Values{"response_type": {"code"}, "client_id": {"sandbox-client"}, "redirect_uri": {consentRedirect},
		"state": {state}, "scope": {scope}}
	return h.ts.URL + "/oauth/v2/authorization?" + strings.ReplaceAll(v.Encode(), "+", "%20")
}

// noFollow returns a client that does not follow redirects.
func noFollow(h *harness) *http.Client {
	c := *h.ts.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// decide posts the consent page's form with action.
func decide(t *testing.T, h *harness, state, scope, action string) *url.URL {
	t.Helper()
	f := url.Values{"response_type": {"code"}, "client_id": {"sandbox-client"}, "redirect_uri": {consentRedirect},
		"state": {state}, "scope": {scope}, "action": {action}}
	res, err := noFollow(h).PostForm(h.ts.URL+"/oauth/v2/authorization", f)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound {
		t.Fatalf("decision %s: status %d", action, res.StatusCode)
	}
	loc, err := url.Parse(res.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), consentRedirect+"?") {
		t.Fatalf("decision %s: Location %q", action, res.Header.Get("Location"))
	}
	return loc
}

func exchange(h *harness, code, redirect string) resp {
	return h.form("/oauth/v2/accessToken", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {redirect}, "client_id": {"sandbox-client"}, "client_secret": {"sandbox-secret"}}.Encode())
}

func TestConsentPageAllow(t *testing.T) {
	h := newHarness(t, Config{})
	const scope = "r_ads r_ads_reporting rw_conversions"
	res, err := noFollow(h).Get(authURL(h, "st-1", scope))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var page strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := res.Body.Read(buf)
		page.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("consent page: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	for _, want := range []string{`value="allow">Allow</button>`, `value="cancel">Cancel</button>`, "rw_conversions", "r_ads_reporting",
		"Sam Admin", `name="state" value="st-1"`} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("consent page lacks %q:\n%s", want, page.String())
		}
	}
	loc := decide(t, h, "st-1", scope, "allow")
	code := loc.Query().Get("code")
	if loc.Query().Get("state") != "st-1" || code == "" {
		t.Fatalf("allow redirect %s", loc)
	}
	// redirect_uri must be the authorization request's.
	r := exchange(h, code, consentRedirect+"x")
	wantStatus(t, r, 400)
	r = exchange(h, code, consentRedirect)
	wantStatus(t, r, 200)
	var tr tokenResponse
	if err := json.Unmarshal([]byte(r.body), &tr); err != nil || tr.Scope != "r_ads,r_ads_reporting,rw_conversions" || tr.RefreshToken == "" {
		t.Fatalf("exchange %s", r.body)
	}
	wantStatus(t, exchange(h, code, consentRedirect), 400) // single use
	wantStatus(t, h.sendEvent(tr.AccessToken, ev("c1")), 201)

	// The member granted these scopes: the next request skips the page.
	res, err = noFollow(h).Get(authURL(h, "st-2", scope))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if loc, _ := url.Parse(res.Header.Get("Location")); res.StatusCode != 302 || loc.Query().Get("state") != "st-2" || loc.Query().Get("code") == "" {
		t.Fatalf("granted again: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
}

func TestConsentPageCancel(t *testing.T) {
	h := newHarness(t, Config{})
	loc := decide(t, h, "st-c", "r_ads rw_conversions", "cancel")
	q := loc.Query()
	if q.Get("error") != "user_cancelled_authorize" || q.Get("state") != "st-c" || q.Get("code") != "" || q.Get("error_description") == "" {
		t.Fatalf("cancel redirect %s", loc)
	}
}

func TestConsentCodeExpires(t *testing.T) {
	h := newHarness(t, Config{})
	code := decide(t, h, "s", "r_ads rw_conversions", "allow").Query().Get("code")
	h.clock.Advance(CodeTTL)
	r := exchange(h, code, consentRedirect)
	wantStatus(t, r, 400)
	wantBody(t, r, `{"error":"invalid_request","error_description":"The provided authorization grant or refresh token is invalid, expired or revoked"}`)
}

func TestConsentRequestErrors(t *testing.T) {
	h := newHarness(t, Config{})
	for name, q := range map[string]string{
		"no scope":       "response_type=code&client_id=sandbox-client&redirect_uri=" + url.QueryEscape(consentRedirect),
		"fragment":       "response_type=code&client_id=sandbox-client&scope=r_ads&redirect_uri=" + url.QueryEscape("https://x.example/cb#linkedin"),
		"unknown client": "response_type=code&client_id=other&scope=r_ads&redirect_uri=" + url.QueryEscape(consentRedirect),
	} {
		if r := h.do("GET", "/oauth/v2/authorization?"+q, nil, ""); r.status != 400 && r.status != 401 {
			t.Errorf("%s: status %d %s", name, r.status, r.body)
		}
	}
	res, err := noFollow(h).Get(authURL(h, "s", "r_ads w_everything"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if loc, _ := url.Parse(res.Header.Get("Location")); res.StatusCode != 302 || loc.Query().Get("error") != "unauthorized_scope_error" {
		t.Fatalf("unknown scope: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
}

// A consent configured with other scopes and another member issues a
// token with those: here one without rw_conversions, whose member is
// only VIEWER.
func TestConsentSettings(t *testing.T) {
	h := newHarness(t, Config{})
	wantStatus(t, h.do("POST", "/_sandbox/consent", nil, `{"member":"nobody"}`), 400)
	wantStatus(t, h.do("POST", "/_sandbox/consent", nil, `{"member":"V1","scopes":["r_ads","r_ads_reporting"]}`), 204)
	if r := h.do("GET", "/_sandbox/consent", nil, ""); !strings.Contains(r.body, `"member":"V1"`) {
		t.Fatalf("consent = %s", r.body)
	}
	code := decide(t, h, "s", "r_ads r_ads_reporting rw_conversions", "allow").Query().Get("code")
	r := exchange(h, code, consentRedirect)
	wantStatus(t, r, 200)
	var tr tokenResponse
	if err := json.Unmarshal([]byte(r.body), &tr); err != nil || tr.Scope != "r_ads,r_ads_reporting" {
		t.Fatalf("exchange %s", r.body)
	}
	r = h.do("GET", "/rest/adAccountUsers?q=authenticatedUser", restHeaders(tr.AccessToken), "")
	wantStatus(t, r, 200)
	if !strings.Contains(r.body, `"role":"VIEWER"`) || !strings.Contains(r.body, "urn:li:person:V1") {
		t.Fatalf("account users %s", r.body)
	}
	wantStatus(t, h.sendEvent(tr.AccessToken, ev("n1")), 403)
	// Reset forgets the settings.
	h.srv.Reset()
	if r := h.do("GET", "/_sandbox/consent", nil, ""); strings.TrimSpace(r.body) != "{}" {
		t.Fatalf("consent after reset = %s", r.body)
	}
}

package linkedin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/sandbox"
)

func TestAuthorizeURL(t *testing.T) {
	u, err := AuthorizeURL(DefaultAuthorizeURL, "86abc123", "https://capstan.example/admin/oauth/callback", "st+/=", ConnectScopes)
	if err != nil {
		t.Fatal(err)
	}
	want := "https://www.linkedin.com/oauth/v2/authorization?client_id=86abc123&redirect_uri=https%3A%2F%2Fcapstan.example%2Fadmin%2Foauth%2Fcallback" +
		"&response_type=code&scope=r_ads%20r_ads_reporting%20rw_conversions&state=st%2B%2F%3D"
	if u != want {
		t.Errorf("AuthorizeURL =\n%s\nwant\n%s", u, want)
	}
	for _, bad := range []string{"", "https://x.example/cb#linkedin", "/relative", "ftp://x.example/cb"} {
		if _, err := AuthorizeURL(DefaultAuthorizeURL, "id", bad, "s", ConnectScopes); err == nil {
			t.Errorf("redirect %q accepted", bad)
		}
	}
	if got := OAuthURL("http://127.0.0.1:1/oauth/v2/accessToken", "introspectToken"); got != "http://127.0.0.1:1/oauth/v2/introspectToken" {
		t.Errorf("OAuthURL = %q", got)
	}
	if got := OAuthURL("https://proxy.example/token", "authorization"); got != "" {
		t.Errorf("OAuthURL of another layout = %q", got)
	}
	if a, b := NewState(), NewState(); a == b || len(a) < 40 {
		t.Errorf("states %q %q", a, b)
	}
}

func TestReadCallback(t *testing.T) {
	if _, err := ReadCallback(url.Values{"code": {"c"}, "state": {"other"}}, "st"); !errors.Is(err, ErrStateMismatch) {
		t.Errorf("wrong state: %v", err)
	}
	if _, err := ReadCallback(url.Values{"code": {"c"}}, ""); !errors.Is(err, ErrStateMismatch) {
		t.Errorf("no state expected: %v", err)
	}
	_, err := ReadCallback(url.Values{"error": {"user_cancelled_authorize"}, "error_description": {"The user cancelled"}, "state": {"st"}}, "st")
	var ce *CallbackError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "refused the permissions") || !strings.Contains(err.Error(), "choose Allow") {
		t.Errorf("cancel: %v", err)
	}
	if code, err := ReadCallback(url.Values{"code": {"c"}, "state": {"st"}}, "st"); err != nil || code != "c" {
		t.Errorf("ok: %q %v", code, err)
	}
}

// consent runs step 1 and 2 against the sandbox: it opens the
// authorization URL, then submits the consent page's form with action.
func consent(t *testing.T, e *env, authURL, action string) url.Values {
	t.Helper()
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := hc.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("consent page: %d", res.StatusCode)
	}
	u, _ := url.Parse(authURL)
	f := u.Query()
	f.Set("action", action)
	res, err = hc.PostForm(e.ts.URL+"/oauth/v2/authorization", f)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	loc, err := url.Parse(res.Header.Get("Location"))
	if res.StatusCode != 302 || err != nil {
		t.Fatalf("decision: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	return loc.Query()
}

func TestConnectFlowAgainstSandbox(t *testing.T) {
	e := newEnv(t, nil)
	const redirect = "http://127.0.0.1:8765/oauth/linkedin/callback"
	o := OAuthClient{TokenURL: e.ts.URL + "/oauth/v2/accessToken", ClientID: sbClientID, ClientSecret: sbClientSecret}
	state := NewState()
	au, err := AuthorizeURL(e.ts.URL+"/oauth/v2/authorization", sbClientID, redirect, state, ConnectScopes)
	if err != nil {
		t.Fatal(err)
	}
	q := consent(t, e, au, "allow")
	code, err := ReadCallback(q, state)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := o.ExchangeCode(ctx, code, redirect+"/other", e.clock.Now()); err == nil || !strings.Contains(err.Error(), "status 400") {
		t.Errorf("exchange with another redirect_uri: %v", err)
	}
	tok, err := o.ExchangeCode(ctx, code, redirect, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if tok.Scope != "r_ads,r_ads_reporting,rw_conversions" || tok.RefreshToken == "" ||
		!tok.ExpiresAt.Equal(e.clock.Now().Add(60*24*time.Hour)) || !tok.RefreshTokenExpiresAt.Equal(e.clock.Now().Add(365*24*time.Hour)) {
		t.Errorf("token %v scope %q", tok, tok.Scope)
	}
	if _, err := o.ExchangeCode(ctx, code, redirect, e.clock.Now()); err == nil {
		t.Error("a code was exchanged twice")
	}
	bad := o
	bad.ClientSecret = "wrong"
	if _, err := bad.ExchangeCode(ctx, "x", redirect, e.clock.Now()); err == nil || !strings.Contains(err.Error(), "client_secret") {
		t.Errorf("wrong secret: %v", err)
	}

	in, err := o.Introspect(ctx, tok.AccessToken)
	if err != nil || !in.Active || in.Status != "active" || strings.Join(in.Scopes, ",") != tok.Scope || !in.ExpiresAt.Equal(tok.ExpiresAt) {
		t.Errorf("introspect %+v %v", in, err)
	}

	cfg := e.config()
	cfg.Credentials = Credentials{AccessToken: tok.AccessToken, ClientID: sbClientID, ClientSecret: sbClientSecret}
	c := e.client(t, cfg)
	a, err := c.CheckAccess(ctx, sbAccount)
	if err != nil {
		t.Fatal(err)
	}
	if a.Role != "ACCOUNT_MANAGER" || !a.ScopesKnown || a.MissingReporting() || len(a.Accounts) < 2 || !strings.HasPrefix(a.Member, "urn:li:person:") {
		t.Errorf("access %+v", a)
	}
	_, err = c.CheckAccess(ctx, sbViewerAcct)
	var ae *AccessError
	if !errors.As(err, &ae) || ae.Kind != AccessRole || !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "only VIEWER") {
		t.Errorf("viewer account: %v", err)
	}

	// Cancel on the consent page.
	state = NewState()
	au, _ = AuthorizeURL(e.ts.URL+"/oauth/v2/authorization", sbClientID, redirect, state, ConnectScopes)
	e.srv.Reset() // forget the grant, so the page shows
	_, err = ReadCallback(consent(t, e, au, "cancel"), state)
	var ce *CallbackError
	if !errors.As(err, &ce) || ce.Code != "user_cancelled_authorize" {
		t.Errorf("cancel: %v", err)
	}
}

// A consent that grants no rw_conversions gives a token CheckAccess
// refuses with the missing scope; one without r_ads_reporting delivers
// and says so.
func TestCheckAccessScopes(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	for i, tc := range []struct {
		scopes  []string
		problem string
		noRep   bool
	}{
		{[]string{"r_ads", "r_ads_reporting"}, "lacks the rw_conversions scope", false},
		{[]string{"r_ads", "rw_conversions"}, "", true},
		{[]string{"rw_conversions"}, "lacks the r_ads scope", false},
		// The fix names the product that grants the scope (§24.1): an
		// app without it never gets the scope, however often one
		// connects.
		{[]string{"r_ads", "r_ads_reporting"}, "only to apps with its Conversions API product", false},
		{[]string{"rw_conversions"}, "only to apps with its Advertising API product", false},
	} {
		tokName := fmt.Sprintf("t%d-%s", i, strings.Join(tc.scopes, "-"))
		if err := e.srv.AddToken(sandbox.TokenSpec{Token: tokName, Scopes: tc.scopes}); err != nil {
			t.Fatal(err)
		}
		cfg := e.config()
		cfg.Credentials = Credentials{AccessToken: tokName, ClientID: sbClientID, ClientSecret: sbClientSecret}
		a, err := e.client(t, cfg).CheckAccess(ctx, sbAccount)
		switch {
		case tc.problem == "" && err != nil:
			t.Errorf("%v: %v", tc.scopes, err)
		case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem) || !strings.Contains(err.Error(), "capstan auth linkedin")):
			t.Errorf("%v: %v, want %q", tc.scopes, err, tc.problem)
		}
		if a.MissingReporting() != tc.noRep {
			t.Errorf("%v: MissingReporting = %v", tc.scopes, a.MissingReporting())
		}
	}
	// Revoked: introspection or the call says so.
	e.srv.RevokeToken(sbToken)
	cfg := e.config()
	_, err := e.client(t, cfg).CheckAccess(ctx, sbAccount)
	if !errors.Is(err, ErrReauthRequired) || !strings.Contains(err.Error(), "not usable") {
		t.Errorf("revoked: %v", err)
	}
	// No token at all.
	cfg.Credentials = Credentials{ClientID: sbClientID, ClientSecret: sbClientSecret}
	_, err = e.client(t, cfg).CheckAccess(ctx, sbAccount)
	if !errors.Is(err, ErrReauthRequired) || !strings.Contains(err.Error(), "no access token yet") {
		t.Errorf("no token: %v", err)
	}
}

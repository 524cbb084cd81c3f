package sandbox

import (
	"cmp"
	"fmt"
	"html/template"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// oauthError is the RFC 6749 error body (spec §5).
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// tokenResponse is the accessToken success body (spec §6.3, §6.5).
type tokenResponse struct {
	AccessToken           string `json:"access_token"`
	ExpiresIn             int64  `json:"expires_in"`
	RefreshToken          string `json:"refresh_token,omitempty"`
	RefreshTokenExpiresIn int64  `json:"refresh_token_expires_in,omitempty"`
	Scope                 string `json:"scope"`
}

const invalidGrantText = "The provided authorization grant or refresh token is invalid, expired or revoked"

func (c *call) oauthFail(status int, code, desc string) {
	reason := reasonBadRequest
	if status == http.StatusUnauthorized {
		reason = reasonAuth
	}
	c.fail(reason, status, oauthError{Error: code, Description: desc})
}

func missingParam(name string) string {
	return `A required parameter "` + name + `" is missing`
}

// form parses a form-encoded body; query parameters fill in what the body
// lacks. It answers 400 when the body is not a form.
func (c *call) form() (url.Values, bool) {
	if ct := c.r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/x-www-form-urlencoded" {
			c.oauthFail(http.StatusBadRequest, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
			return nil, false
		}
	}
	f, err := url.ParseQuery(string(c.body))
	if err != nil {
		c.oauthFail(http.StatusBadRequest, "invalid_request", "Unable to parse form body")
		return nil, false
	}
	for k, v := range c.r.URL.Query() {
		if _, ok := f[k]; !ok {
			f[k] = v
		}
	}
	return f, true
}

func (c *call) clientOK(f url.Values) bool {
	if f.Get("client_id") != c.s.cfg.ClientID || f.Get("client_secret") != c.s.cfg.ClientSecret {
		c.oauthFail(http.StatusUnauthorized, "invalid_client", "Client authentication failed")
		return false
	}
	return true
}

// parseScopes splits a space- or comma-separated scope list.
func parseScopes(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' })
}

// CodeTTL is how long an authorization code may be exchanged (spec §24.2
// quotes LinkedIn's 30 minutes). Codes are single-use.
const CodeTTL = 30 * time.Minute

// Consent is how the simulated member answers an authorization request,
// set with POST /_sandbox/consent and cleared by Reset.
type Consent struct {
	// Member is who is signed in and consents. Default the seeded member
	// (Xy12AbCd); any member known to the sandbox (seeded or created with
	// POST /_sandbox/tokens) may be named.
	Member string `json:"member,omitempty"`
	// Scopes, when set, are the scopes the issued tokens carry whatever was
	// asked: an app without the LinkedIn product behind a scope (for
	// example Conversions API for rw_conversions) gets a token without it.
	// Default: the scopes requested.
	Scopes []string `json:"scopes,omitempty"`
	// AutoApprove skips the consent page and redirects at once with a code,
	// as LinkedIn does when the member already granted the same scopes.
	AutoApprove bool `json:"auto_approve,omitempty"`
}

// SetConsent changes how the simulated member answers authorization
// requests and forgets earlier grants (so the consent page shows again).
func (s *Server) SetConsent(c Consent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.Member != "" && s.st.Members[c.Member] == nil {
		return fmt.Errorf("unknown member %q: create it first with POST /_sandbox/tokens {\"member\": …}", c.Member)
	}
	s.st.consent = c
	clear(s.st.grants)
	return nil
}

// grantKey names a consent given by member to the app for scopes.
func grantKey(member string, scopes []string) string {
	sc := slices.Clone(scopes)
	slices.Sort(sc)
	return member + " " + strings.Join(sc, ",")
}

// authRequest is a checked authorization request (spec §24.2).
type authRequest struct {
	clientID, redirectURI, state string
	redirect                     *url.URL
	scopes                       []string
}

// readAuthRequest checks the parameters of an authorization request; it
// answers the error itself and returns false on a bad one.
func (c *call) readAuthRequest(q url.Values) (authRequest, bool) {
	for _, p := range []string{"response_type", "client_id", "redirect_uri"} {
		if q.Get(p) == "" {
			c.oauthFail(http.StatusBadRequest, "invalid_request", missingParam(p))
			return authRequest{}, false
		}
	}
	if q.Get("response_type") != "code" {
		c.oauthFail(http.StatusBadRequest, "unsupported_response_type", "The provided response_type is not supported")
		return authRequest{}, false
	}
	if q.Get("client_id") != c.s.cfg.ClientID {
		c.oauthFail(http.StatusUnauthorized, "invalid_client", "Client authentication failed")
		return authRequest{}, false
	}
	ru := q.Get("redirect_uri")
	redirect, err := url.Parse(ru)
	if err != nil || !redirect.IsAbs() || strings.Contains(ru, "#") {
		c.oauthFail(http.StatusBadRequest, "invalid_request", "The redirect_uri is not valid")
		return authRequest{}, false
	}
	scopes := parseScopes(q.Get("scope"))
	if len(scopes) == 0 {
		c.oauthFail(http.StatusBadRequest, "invalid_request", missingParam("scope"))
		return authRequest{}, false
	}
	ar := authRequest{clientID: q.Get("client_id"), redirectURI: ru, state: q.Get("state"), redirect: redirect, scopes: scopes}
	for _, sc := range scopes {
		if !knownScopes[sc] {
			// With a usable redirect URI, LinkedIn reports this there.
			c.redirectBack(ar, url.Values{"error": {"unauthorized_scope_error"},
				"error_description": {"Scope \"" + sc + "\" is not authorized for your application"}})
			return authRequest{}, false
		}
	}
	return ar, true
}

// knownScopes are the scopes the sandbox's app may ask for.
var knownScopes = setOf(`r_ads rw_ads r_ads_reporting rw_conversions r_basicprofile r_liteprofile r_emailaddress r_organization_admin openid profile email`)

// redirectBack answers 302 to the request's redirect URI with params and
// the state.
func (c *call) redirectBack(ar authRequest, params url.Values) {
	u := *ar.redirect
	rq := u.Query()
	for k, v := range params {
		rq[k] = v
	}
	if ar.state != "" {
		rq.Set("state", ar.state)
	}
	u.RawQuery = rq.Encode()
	c.w.Header().Set("Location", u.String())
	c.empty(http.StatusFound)
}

// issueCode answers the redirect with a new code for the consenting
// member. The caller holds no lock.
func (s *Server) issueCode(c *call, ar authRequest) {
	s.mu.Lock()
	cons := s.st.consent
	member := cmp.Or(cons.Member, DefaultMember)
	granted := ar.scopes
	if len(cons.Scopes) > 0 {
		granted = slices.Clone(cons.Scopes)
	}
	code := s.randomToken("AQT")
	s.st.codes[code] = &authCode{Member: member, Scopes: granted, RedirectURI: ar.redirectURI, ExpiresAt: c.now.Add(CodeTTL)}
	s.st.grants[grantKey(member, ar.scopes)] = true
	s.mu.Unlock()
	c.redirectBack(ar, url.Values{"code": {code}})
}

// authorize serves GET /oauth/v2/authorization (spec §6.3, §24.2): after
// checking the request it shows the consent page with Allow and Cancel,
// or redirects at once with a code when the member already granted these
// scopes or Consent.AutoApprove is set.
func (s *Server) authorize(c *call) {
	ar, ok := c.readAuthRequest(c.r.URL.Query())
	if !ok {
		return
	}
	s.mu.Lock()
	cons := s.st.consent
	member := cmp.Or(cons.Member, DefaultMember)
	skip := cons.AutoApprove || s.st.grants[grantKey(member, ar.scopes)]
	m := s.st.Members[member]
	name := member
	if m != nil && m.FirstName != "" {
		name = strings.TrimSpace(m.FirstName + " " + m.LastName)
	}
	s.mu.Unlock()
	if skip {
		s.issueCode(c, ar)
		return
	}
	c.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	c.w.Header().Set("Cache-Control", "no-store")
	c.w.WriteHeader(http.StatusOK)
	_ = consentPage.Execute(c.w, consentView{Member: name, ClientID: ar.clientID, RedirectURI: ar.redirectURI,
		State: ar.state, Scope: strings.Join(ar.scopes, " "), Scopes: describeScopes(ar.scopes)})
}

// authorizeDecision serves POST /oauth/v2/authorization, the consent
// page's form: action=allow redirects with a code, action=cancel with
// error=user_cancelled_authorize (spec §24.2).
func (s *Server) authorizeDecision(c *call) {
	f, ok := c.form()
	if !ok {
		return
	}
	ar, ok := c.readAuthRequest(f)
	if !ok {
		return
	}
	switch f.Get("action") {
	case "allow":
		s.issueCode(c, ar)
	case "cancel":
		c.redirectBack(ar, url.Values{"error": {"user_cancelled_authorize"},
			"error_description": {"The user cancelled the authorization"}})
	default:
		c.oauthFail(http.StatusBadRequest, "invalid_request", missingParam("action"))
	}
}

type scopeView struct{ Name, Text string }

type consentView struct {
	Member, ClientID, RedirectURI, State, Scope string
	Scopes                                      []scopeView
}

var scopeTexts = map[string]string{
	"r_ads":           "Retrieve your advertising accounts",
	"rw_ads":          "Manage your advertising accounts",
	"r_ads_reporting": "Retrieve reporting for your advertising accounts",
	"rw_conversions":  "Manage conversion tracking for your advertising accounts",
}

func describeScopes(scopes []string) []scopeView {
	out := make([]scopeView, 0, len(scopes))
	for _, sc := range scopes {
		out = append(out, scopeView{Name: sc, Text: cmp.Or(scopeTexts[sc], sc)})
	}
	return out
}

// consentPage is the sandbox's consent screen. html/template escapes
// every value.
var consentPage = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Allow access? - LinkedIn sandbox</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}
button{font-size:1rem;padding:.5rem 1.5rem;margin-right:1rem}</style></head>
<body><main>
<h1>Allow access to your LinkedIn account?</h1>
<p>Signed in as <strong>{{.Member}}</strong>.</p>
<p>The application <code>{{.ClientID}}</code> asks for permission to:</p>
<ul aria-label="Requested permissions">{{range .Scopes}}<li>{{.Text}} (<code>{{.Name}}</code>)</li>{{end}}</ul>
<p>You will be sent back to <code>{{.RedirectURI}}</code>.</p>
<form method="post" action="/oauth/v2/authorization">
<input type="hidden" name="response_type" value="code">
<input type="hidden" name="client_id" value="{{.ClientID}}">
<input type="hidden" name="redirect_uri" value="{{.RedirectURI}}">
<input type="hidden" name="state" value="{{.State}}">
<input type="hidden" name="scope" value="{{.Scope}}">
<button type="submit" name="action" value="allow">Allow</button>
<button type="submit" name="action" value="cancel">Cancel</button>
</form>
</main></body></html>
`))

// accessToken serves POST /oauth/v2/accessToken for the authorization_code
// and refresh_token grants (spec §6.3–§6.6).
func (s *Server) accessToken(c *call) {
	f, ok := c.form()
	if !ok {
		return
	}
	switch f.Get("grant_type") {
	case "refresh_token":
		s.refreshGrant(c, f)
	case "authorization_code":
		s.codeGrant(c, f)
	default:
		c.oauthFail(http.StatusBadRequest, "unsupported_grant_type", "The provided grant_type is not supported")
	}
}

func (s *Server) refreshGrant(c *call, f url.Values) {
	rt := f.Get("refresh_token")
	if rt == "" {
		c.oauthFail(http.StatusBadRequest, "invalid_request", missingParam("refresh_token"))
		return
	}
	if !c.clientOK(f) {
		return
	}
	s.mu.Lock()
	r := s.st.Refresh[rt]
	if r == nil || r.Revoked || !c.now.Before(r.ExpiresAt) {
		s.mu.Unlock()
		c.oauthFail(http.StatusBadRequest, s.cfg.OAuthExpiredError, invalidGrantText)
		return
	}
	at := &accessToken{Token: s.randomToken("AQV"), Member: r.Member, Scopes: r.Scopes, IssuedAt: c.now,
		ExpiresAt: c.now.Add(AccessTokenTTL), AuthorizedAt: r.AuthorizedAt}
	s.st.Tokens[at.Token] = at
	if s.cfg.RotateRefreshToken {
		nr := *r
		nr.Token = s.randomToken("AQW")
		delete(s.st.Refresh, rt)
		s.st.Refresh[nr.Token] = &nr
		r = &nr
	}
	resp := tokenResponse{AccessToken: at.Token, ExpiresIn: int64(AccessTokenTTL / time.Second), RefreshToken: r.Token,
		RefreshTokenExpiresIn: int64(r.ExpiresAt.Sub(c.now) / time.Second), Scope: strings.Join(r.Scopes, ",")}
	s.mu.Unlock()
	s.markDirty()
	c.json(http.StatusOK, resp)
}

func (s *Server) codeGrant(c *call, f url.Values) {
	for _, p := range []string{"code", "redirect_uri"} {
		if f.Get(p) == "" {
			c.oauthFail(http.StatusBadRequest, "invalid_request", missingParam(p))
			return
		}
	}
	if !c.clientOK(f) {
		return
	}
	s.mu.Lock()
	code := s.st.codes[f.Get("code")]
	if code == nil || !c.now.Before(code.ExpiresAt) || code.RedirectURI != f.Get("redirect_uri") {
		s.mu.Unlock()
		c.oauthFail(http.StatusBadRequest, "invalid_request", invalidGrantText)
		return
	}
	delete(s.st.codes, f.Get("code"))
	at := &accessToken{Token: s.randomToken("AQV"), Member: code.Member, Scopes: code.Scopes, IssuedAt: c.now,
		ExpiresAt: c.now.Add(AccessTokenTTL), AuthorizedAt: c.now}
	rt := &refreshToken{Token: s.randomToken("AQW"), Member: code.Member, Scopes: code.Scopes, AuthorizedAt: c.now,
		ExpiresAt: c.now.Add(RefreshTokenTTL)}
	s.st.Tokens[at.Token] = at
	s.st.Refresh[rt.Token] = rt
	s.mu.Unlock()
	s.markDirty()
	c.json(http.StatusOK, tokenResponse{AccessToken: at.Token, ExpiresIn: int64(AccessTokenTTL / time.Second), RefreshToken: rt.Token,
		RefreshTokenExpiresIn: int64(RefreshTokenTTL / time.Second), Scope: strings.Join(code.Scopes, ",")})
}

// introspectResponse is the introspectToken body (spec §6.7), times in
// seconds.
type introspectResponse struct {
	Active       bool   `json:"active"`
	ClientID     string `json:"client_id,omitempty"`
	AuthorizedAt int64  `json:"authorized_at,omitempty"`
	CreatedAt    int64  `json:"created_at,omitempty"`
	ExpiresAt    int64  `json:"expires_at,omitempty"`
	Scope        string `json:"scope,omitempty"`
	AuthType     string `json:"auth_type,omitempty"`
	Status       string `json:"status,omitempty"`
}

// introspect serves POST /oauth/v2/introspectToken for access and refresh
// tokens; an unknown token is {"active":false}.
func (s *Server) introspect(c *call) {
	f, ok := c.form()
	if !ok {
		return
	}
	tok := f.Get("token")
	if tok == "" {
		c.oauthFail(http.StatusBadRequest, "invalid_request", missingParam("token"))
		return
	}
	if !c.clientOK(f) {
		return
	}
	out := introspectResponse{}
	s.mu.Lock()
	if t := s.st.Tokens[tok]; t != nil {
		out = introspectResponse{ClientID: s.cfg.ClientID, AuthorizedAt: t.AuthorizedAt.Unix(), CreatedAt: t.IssuedAt.Unix(),
			ExpiresAt: t.ExpiresAt.Unix(), Scope: strings.Join(t.Scopes, ","), AuthType: "3L", Status: tokenStatus(t.Revoked, t.ExpiresAt, c.now)}
	} else if r := s.st.Refresh[tok]; r != nil {
		out = introspectResponse{ClientID: s.cfg.ClientID, AuthorizedAt: r.AuthorizedAt.Unix(), CreatedAt: r.AuthorizedAt.Unix(),
			ExpiresAt: r.ExpiresAt.Unix(), Scope: strings.Join(r.Scopes, ","), AuthType: "3L", Status: tokenStatus(r.Revoked, r.ExpiresAt, c.now)}
	}
	s.mu.Unlock()
	out.Active = out.Status == "active"
	c.json(http.StatusOK, out)
}

package sandbox

import (
	"mime"
	"net/http"
	"net/url"
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

// authorize serves GET /oauth/v2/authorization as an auto-approving page
// that redirects at once with a code valid 30 minutes (spec §6.3).
func (s *Server) authorize(c *call) {
	q := c.r.URL.Query()
	for _, p := range []string{"response_type", "client_id", "redirect_uri"} {
		if q.Get(p) == "" {
			c.oauthFail(http.StatusBadRequest, "invalid_request", missingParam(p))
			return
		}
	}
	if q.Get("response_type") != "code" {
		c.oauthFail(http.StatusBadRequest, "unsupported_response_type", "The provided response_type is not supported")
		return
	}
	if q.Get("client_id") != s.cfg.ClientID {
		c.oauthFail(http.StatusUnauthorized, "invalid_client", "Client authentication failed")
		return
	}
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || !redirect.IsAbs() {
		c.oauthFail(http.StatusBadRequest, "invalid_request", "The redirect_uri is not valid")
		return
	}
	scopes := parseScopes(q.Get("scope"))
	if len(scopes) == 0 {
		scopes = []string{"r_ads", "rw_conversions"}
	}
	s.mu.Lock()
	code := s.randomToken("AQT")
	s.st.codes[code] = &authCode{Member: DefaultMember, Scopes: scopes, RedirectURI: q.Get("redirect_uri"), ExpiresAt: c.now.Add(30 * time.Minute)}
	s.mu.Unlock()
	rq := redirect.Query()
	rq.Set("code", code)
	if st := q.Get("state"); st != "" {
		rq.Set("state", st)
	}
	redirect.RawQuery = rq.Encode()
	c.w.Header().Set("Location", redirect.String())
	c.empty(http.StatusFound)
}

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

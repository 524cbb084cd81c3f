package linkedin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Scopes capstan uses (§6.1, §24.1).
const (
	// ScopeAds lists ad accounts, account users and campaigns; capstan's
	// access check needs it.
	ScopeAds = "r_ads"
	// ScopeReporting reads conversion reporting (adAnalytics, §21):
	// capstan reconcile needs it, delivery does not.
	ScopeReporting = "r_ads_reporting"
	// ScopeConversions creates rules and sends conversions: required.
	ScopeConversions = "rw_conversions"
)

// ConnectScopes are the scopes capstan asks for when it connects a
// destination (§24.1): the member consents to all of them or none.
var ConnectScopes = []string{ScopeAds, ScopeReporting, ScopeConversions}

// DefaultAuthorizeURL is LinkedIn's authorization endpoint (§6.3, §24.2).
const DefaultAuthorizeURL = "https://www.linkedin.com/oauth/v2/authorization"

// OAuthURL returns the OAuth endpoint name (authorization, introspectToken)
// next to tokenURL, which ends in /accessToken (LinkedIn's and the
// sandbox's layout); for another layout it returns "".
func OAuthURL(tokenURL, name string) string {
	base, ok := strings.CutSuffix(strings.TrimRight(tokenURL, "/"), "/accessToken")
	if !ok {
		return ""
	}
	return base + "/" + name
}

// NewState returns a fresh, hard-to-guess state value for one
// authorization request (§24.2): 32 random bytes, base64url.
func NewState() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// CheckRedirectURI checks a redirect URL against LinkedIn's rules (§24.2):
// absolute http(s), no fragment.
func CheckRedirectURI(s string) error {
	if s == "" {
		return errors.New("the redirect URI is empty")
	}
	if strings.Contains(s, "#") {
		return fmt.Errorf("redirect URI %q contains '#': LinkedIn refuses redirect URLs with a fragment", s)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("redirect URI %q: want an absolute http or https URL", s)
	}
	return nil
}

// AuthorizeURL returns the URL of step 1 of the authorization-code flow
// (§6.3, §24.2): response_type=code, the client id, the redirect URI, the
// state and the scopes, space-delimited as %20.
func AuthorizeURL(authorizeURL, clientID, redirectURI, state string, scopes []string) (string, error) {
	if err := checkURL(authorizeURL); err != nil {
		return "", fmt.Errorf("authorization URL: %w", err)
	}
	if err := CheckRedirectURI(redirectURI); err != nil {
		return "", err
	}
	if clientID == "" || state == "" || len(scopes) == 0 {
		return "", errors.New("authorization URL: client id, state and scopes are required")
	}
	v := url.Values{
		"response_type": {"code"},
		"client_id":     {clientID},
		"redirect_uri":  {redirectURI},
		"state":         {state},
		"scope":         {strings.Join(scopes, " ")},
	}
	// url.Values writes a space as '+'; LinkedIn documents %20. A literal
	// '+' is written %2B, so every '+' left is a space.
	q := strings.ReplaceAll(v.Encode(), "+", "%20")
	sep := "?"
	if strings.Contains(authorizeURL, "?") {
		sep = "&"
	}
	return authorizeURL + sep + q, nil
}

// ErrStateMismatch is a callback whose state is not the one capstan sent:
// a forged or stale redirect. Nothing is exchanged.
var ErrStateMismatch = errors.New("the callback's state does not match the authorization request (a stale or forged redirect): start the connection again")

// CallbackError is LinkedIn's error redirect (§6.3 step 2, §24.2), for
// example when the member clicked Cancel on the consent page.
type CallbackError struct {
	// Code is the error parameter: user_cancelled_authorize,
	// user_cancelled_login, or an OAuth error code.
	Code string
	// Description is error_description.
	Description string
}

func (e *CallbackError) Error() string {
	var what string
	switch e.Code {
	case "user_cancelled_authorize":
		what = "the member refused the permissions on LinkedIn's consent page"
	case "user_cancelled_login":
		what = "the member declined to sign in to LinkedIn"
	default:
		what = "LinkedIn refused the authorization"
	}
	msg := fmt.Sprintf("%s (%s)", what, e.Code)
	if e.Description != "" {
		msg += ": " + e.Description
	}
	return msg + "; nothing was changed: connect again and choose Allow"
}

// ReadCallback reads the redirect's query (§6.3 step 2): it checks the
// state against want first, then returns the code, or a *CallbackError
// for an error redirect.
func ReadCallback(q url.Values, want string) (string, error) {
	if want == "" || q.Get("state") != want {
		return "", ErrStateMismatch
	}
	if code := q.Get("error"); code != "" {
		return "", &CallbackError{Code: code, Description: q.Get("error_description")}
	}
	code := q.Get("code")
	if code == "" {
		return "", errors.New("the callback carries neither a code nor an error")
	}
	return code, nil
}

// OAuthClient is the OAuth application (§6): the endpoints and the
// client's id and secret. The secret is only ever sent in a POST body.
type OAuthClient struct {
	// TokenURL is the token endpoint (DefaultOAuthTokenURL).
	TokenURL string
	// IntrospectURL is the introspection endpoint; "" derives it from
	// TokenURL (OAuthURL).
	IntrospectURL string
	ClientID      string
	ClientSecret  string
	// HTTP sends the requests; nil means NewHTTPClient(0).
	HTTP *http.Client
}

func (o OAuthClient) http() *http.Client {
	if o.HTTP != nil {
		return o.HTTP
	}
	return NewHTTPClient(0)
}

// post sends a form to u and returns the status and body.
func (o OAuthClient) post(ctx context.Context, u string, form url.Values) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, err
	}
	hr.Header.Set(headerContentType, "application/x-www-form-urlencoded")
	hr.Header.Set(headerAccept, "application/json")
	resp, err := o.http().Do(hr)
	if err != nil {
		return 0, nil, err
	}
	body, err := readBody(resp.Body, maxOAuthBody)
	return resp.StatusCode, body, err
}

// ExchangeError is a failed code exchange (§6.3 step 3, §24.2).
type ExchangeError struct {
	Status      int
	Code        string
	Description string
	Err         error
}

func (e *ExchangeError) Error() string {
	var b strings.Builder
	b.WriteString("exchange the authorization code: ")
	if e.Status == 0 {
		b.WriteString(e.Err.Error())
		return b.String()
	}
	fmt.Fprintf(&b, "status %d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Description != "" {
		b.WriteString(": " + e.Description)
	}
	if e.Status == http.StatusUnauthorized {
		b.WriteString(" (check the destination's auth.client_id and auth.client_secret)")
	} else if e.Status == http.StatusBadRequest {
		b.WriteString(" (a code is single-use and short-lived, and redirect_uri must be the one of the authorization request): connect again")
	}
	return b.String()
}

// Unwrap returns the transport error.
func (e *ExchangeError) Unwrap() error { return e.Err }

// ExchangeCode exchanges an authorization code for tokens (§6.3 step 3).
// redirectURI must be byte-identical to the authorization request's. The
// token's Scope is the answer's scope list; ExpiresAt and
// RefreshTokenExpiresAt count from now. Without refresh_token in the answer
// (an app not approved for programmatic refresh, §24.3) the token has none.
func (o OAuthClient) ExchangeCode(ctx context.Context, code, redirectURI string, now time.Time) (Token, error) {
	status, body, err := o.post(ctx, o.TokenURL, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {redirectURI},
		"client_id":     {o.ClientID},
		"client_secret": {o.ClientSecret},
	})
	if err != nil {
		return Token{}, &ExchangeError{Status: status, Err: err}
	}
	if status != http.StatusOK {
		var eb oauthErrorBody
		_ = json.Unmarshal(body, &eb)
		return Token{}, &ExchangeError{Status: status, Code: eb.Error, Description: eb.Description}
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return Token{}, &ExchangeError{Status: status, Description: "the answer has no access_token"}
	}
	t := Token{AccessToken: tr.AccessToken, IssuedAt: now, RefreshToken: tr.RefreshToken, Scope: tr.Scope}
	if tr.ExpiresIn > 0 {
		t.ExpiresAt = now.Add(seconds(tr.ExpiresIn))
	}
	if tr.RefreshToken != "" && tr.RefreshTokenExpiresIn > 0 {
		t.RefreshTokenExpiresAt = now.Add(seconds(tr.RefreshTokenExpiresIn))
	}
	return t, nil
}

// Introspection is introspectToken's answer (§6.7, §24.4).
type Introspection struct {
	// Active is false for an expired, revoked or unknown token.
	Active bool
	// Status is active, expired or revoked ("" for an unknown token).
	Status string
	// Scopes are the token's scopes; nil when the answer has none (tokens
	// that are not 3-legged).
	Scopes []string
	// ExpiresAt is the token's real expiry; zero when not given.
	ExpiresAt time.Time
	// AuthType is 3L, 2L or Enterprise_User.
	AuthType string
}

// Introspect asks the introspection endpoint about token (§24.4). Its
// failure never affects delivery: callers treat an error as "unknown".
func (o OAuthClient) Introspect(ctx context.Context, token string) (Introspection, error) {
	u := o.IntrospectURL
	if u == "" {
		u = OAuthURL(o.TokenURL, "introspectToken")
	}
	if u == "" || o.ClientID == "" || o.ClientSecret == "" {
		return Introspection{}, errors.New("introspection needs the introspection URL, client id and client secret")
	}
	status, body, err := o.post(ctx, u, url.Values{"token": {token}, "client_id": {o.ClientID}, "client_secret": {o.ClientSecret}})
	if err != nil {
		return Introspection{}, fmt.Errorf("introspect token: %w", err)
	}
	if status != http.StatusOK {
		var eb oauthErrorBody
		_ = json.Unmarshal(body, &eb)
		return Introspection{}, fmt.Errorf("introspect token: status %d %s", status, eb.Error)
	}
	var r struct {
		Active    bool    `json:"active"`
		Status    string  `json:"status"`
		Scope     *string `json:"scope"`
		ExpiresAt int64   `json:"expires_at"`
		AuthType  string  `json:"auth_type"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return Introspection{}, fmt.Errorf("introspect token: %w", err)
	}
	in := Introspection{Active: r.Active, Status: r.Status, AuthType: r.AuthType}
	if r.Scope != nil {
		in.Scopes = SplitScopes(*r.Scope)
	}
	if r.ExpiresAt > 0 {
		in.ExpiresAt = time.Unix(r.ExpiresAt, 0).UTC()
	}
	return in, nil
}

// SplitScopes splits a comma- or space-separated scope list.
func SplitScopes(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}

// Access is what CheckAccess learnt about a token and one ad account.
type Access struct {
	// Member is the authorising member's URN.
	Member string
	// Account is the ad account checked; Role the member's role on it
	// ("" for none).
	Account int64
	Role    string
	// Accounts are every account the member has a role on.
	Accounts []AccountAccess
	// Scopes are the token's scopes, when known (ScopesKnown): from
	// introspection, else from the token endpoint's answer.
	Scopes      []string
	ScopesKnown bool
	// ExpiresAt is the token's expiry, when known.
	ExpiresAt time.Time
}

// HasScope reports whether the token is known to have scope.
func (a Access) HasScope(scope string) bool { return slices.Contains(a.Scopes, scope) }

// MissingReporting reports whether the token is known to lack
// r_ads_reporting (delivery works; reconciliation does not).
func (a Access) MissingReporting() bool { return a.ScopesKnown && !a.HasScope(ScopeReporting) }

// problem returns the *AccessError that stops delivery, if any.
func (a Access) problem() error {
	if a.ScopesKnown && !a.HasScope(ScopeConversions) {
		return &AccessError{Kind: AccessScope, Missing: ScopeConversions, Account: a.Account,
			Detail: "the token's scopes are " + strings.Join(a.Scopes, ",")}
	}
	if a.Account != 0 {
		switch {
		case a.Role == "":
			return &AccessError{Kind: AccessRole, Account: a.Account, Detail: "the member has no role on it"}
		case !slices.Contains(writeRoles, a.Role):
			return &AccessError{Kind: AccessRole, Account: a.Account, Detail: "the member is only " + a.Role}
		}
	}
	return nil
}

// Kinds of AccessError.
const (
	// AccessToken: no token, or it expired or was revoked.
	AccessToken = "token"
	// AccessScope: the token lacks a required scope.
	AccessScope = "scope"
	// AccessRole: the member lacks a role that may write on the account.
	AccessRole = "role"
)

// AccessError says what a destination's token lacks and how to fix it.
// It matches ErrReauthRequired (Kind token) or ErrForbidden (scope, role),
// so delivery pauses and keeps the events.
type AccessError struct {
	// Kind is AccessToken, AccessScope or AccessRole.
	Kind string
	// Missing is the missing scope (AccessScope).
	Missing string
	// Account is the ad account (AccessRole).
	Account int64
	// Detail says what was found.
	Detail string
	// Destination names the destination in the fix ("" for a generic
	// text).
	Destination string
}

func (e *AccessError) fix() string {
	cmd := "capstan auth linkedin --config FILE --destination "
	if e.Destination != "" {
		cmd += e.Destination
	} else {
		cmd += "NAME"
	}
	return "`" + cmd + "` (or the console's Connect LinkedIn)"
}

func (e *AccessError) Error() string {
	switch e.Kind {
	case AccessScope:
		return fmt.Sprintf("the LinkedIn token lacks the %s scope (%s): connect again with %s, which asks for %s; "+
			"a Campaign Manager or Developer Portal token must be generated with %s. LinkedIn grants %s only to apps with its %s product "+
			"(developer portal, the app's Products tab): add it first if the consent page did not ask for %s",
			e.Missing, e.Detail, e.fix(), strings.Join(ConnectScopes, ", "), strings.Join(ConnectScopes, ", "),
			e.Missing, scopeProduct(e.Missing), e.Missing)
	case AccessRole:
		return fmt.Sprintf("the LinkedIn member may not write to ad account %d (%s): in Campaign Manager, "+
			"Account settings > Manage access, give the member one of %s (VIEWER is not enough), or connect with a member who has one: %s",
			e.Account, e.Detail, strings.Join(writeRoles, ", "), e.fix())
	}
	if e.Detail == noTokenYet {
		return fmt.Sprintf("%s: connect it with %s", noTokenYet, e.fix())
	}
	return fmt.Sprintf("the LinkedIn token is not usable (%s): connect again with %s", e.Detail, e.fix())
}

// scopeProduct names the LinkedIn product that grants scope (§24.1).
func scopeProduct(scope string) string {
	if scope == ScopeConversions {
		return "Conversions API"
	}
	return "Advertising API"
}

// noTokenYet is the detail of a destination that was never connected.
const noTokenYet = "the destination has no access token yet"

// Is matches ErrReauthRequired for token problems and ErrForbidden for
// scope and role problems.
func (e *AccessError) Is(target error) bool {
	switch target {
	case ErrReauthRequired:
		return e.Kind == AccessToken
	case ErrForbidden:
		return e.Kind != AccessToken
	}
	return false
}

// TokenError is the *AccessError for err, an error of a call made with
// the client's token that matches ErrReauthRequired: the destination was
// never connected (no token to refresh either), or its token expired or was
// revoked. Its message says how to connect again.
func (c *Client) TokenError(err error) *AccessError {
	if c.Token().AccessToken == "" && !c.canRefresh() {
		return &AccessError{Kind: AccessToken, Detail: noTokenYet}
	}
	return &AccessError{Kind: AccessToken, Detail: err.Error()}
}

// CheckAccess checks the current token for delivery to account (0: any):
// it must work (adAccountUsers, §14.1, which refreshes it first if due),
// have rw_conversions when its scopes are known (introspection when the
// client id and secret are configured, else the token endpoint's answer),
// and its member must hold a writing role on account (§6.1). A problem is
// an *AccessError; other errors (network, 5xx) are transient. The Access
// is filled as far as the check got.
func (c *Client) CheckAccess(ctx context.Context, account int64) (Access, error) {
	a := Access{Account: account}
	if c.Token().AccessToken == "" && !c.canRefresh() {
		return a, &AccessError{Kind: AccessToken, Detail: noTokenYet}
	}
	ti, err := c.CheckToken(ctx)
	if err != nil {
		switch {
		case errors.Is(err, ErrReauthRequired):
			return a, c.TokenError(err)
		case errors.Is(err, ErrForbidden):
			return a, &AccessError{Kind: AccessScope, Missing: ScopeAds, Detail: "listing the member's ad accounts was refused: " + err.Error()}
		}
		return a, err
	}
	tok := c.Token()
	a.Member, a.Accounts, a.ExpiresAt = ti.Member, ti.Accounts, tok.ExpiresAt
	for _, acc := range ti.Accounts {
		if acc.Account == account {
			a.Role = acc.Role
		}
	}
	if tok.Scope != "" {
		a.Scopes, a.ScopesKnown = SplitScopes(tok.Scope), true
	}
	if c.cfg.Credentials.ClientID != "" && c.cfg.Credentials.ClientSecret != "" {
		o := OAuthClient{TokenURL: c.cfg.OAuthTokenURL, ClientID: c.cfg.Credentials.ClientID, ClientSecret: c.cfg.Credentials.ClientSecret, HTTP: c.hc}
		if in, err := o.Introspect(ctx, tok.AccessToken); err != nil {
			c.log.Debug("token introspection failed; scopes unknown", "error", err)
		} else {
			if !in.Active && (in.Status == "revoked" || in.Status == "expired") {
				return a, &AccessError{Kind: AccessToken, Detail: "introspection says the token is " + in.Status}
			}
			if in.Scopes != nil {
				a.Scopes, a.ScopesKnown = in.Scopes, true
			}
			if !in.ExpiresAt.IsZero() {
				a.ExpiresAt = in.ExpiresAt
			}
		}
	}
	return a, a.problem()
}

package linkedin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/capstan-gw/capstan/internal/config"
	capi "github.com/capstan-gw/capstan/internal/linkedin"
)

// Connecting a destination: the authorization-code flow of spec §6.3 and
// §24.2, shared by `capstan auth linkedin` (a loopback callback) and the
// console's Connect LinkedIn (a callback under /admin/). StartConnect makes
// the authorization URL and its state; FinishConnect checks the callback,
// exchanges the code and checks what the new token may do.

// StateTTL is how long a connection's state is accepted (spec §24.2:
// single use, 10 minutes).
const StateTTL = 10 * time.Minute

// ErrNoOAuthClient means the destination has no client_id/client_secret:
// connecting needs the LinkedIn app's.
var ErrNoOAuthClient = errors.New("connecting needs the LinkedIn app's credentials: set auth.client_id and auth.client_secret " +
	"(the app's Auth tab in LinkedIn's developer portal) and register the redirect URL there")

// StartConnect returns the authorization URL for destination dc, sending
// the member back to redirectURI, and the state it carries. The URL asks
// for capi.ConnectScopes.
func StartConnect(dc config.Destination, redirectURI string) (authURL, state string, err error) {
	if dc.Auth.ClientID == "" || dc.Auth.ClientSecret == "" {
		return "", "", fmt.Errorf("destination %s: %w", dc.Name, ErrNoOAuthClient)
	}
	state = capi.NewState()
	authorize := dc.Auth.AuthorizeURL
	if authorize == "" {
		authorize = capi.DefaultAuthorizeURL
	}
	authURL, err = capi.AuthorizeURL(authorize, dc.Auth.ClientID.Value(), redirectURI, state, capi.ConnectScopes)
	if err != nil {
		return "", "", fmt.Errorf("destination %s: %w", dc.Name, err)
	}
	return authURL, state, nil
}

// Connected is the outcome of a connection: the new tokens and what they
// may do.
type Connected struct {
	// Token are the new tokens. Never log Token.AccessToken; logging the
	// Token is safe.
	Token capi.Token
	// Access is what the access check found: the member's accounts and
	// role on the destination's ad account, the scopes.
	Access capi.Access
	// Problem, when set, is why the token cannot deliver for dc (a
	// *capi.AccessError: missing rw_conversions, no role on the ad
	// account). The caller refuses such a token.
	Problem error
}

// Writable returns the ad accounts the member may write to.
func (c Connected) Writable() []capi.AccountAccess {
	var out []capi.AccountAccess
	for _, a := range c.Access.Accounts {
		if a.CanWrite() {
			out = append(out, a)
		}
	}
	return out
}

// Warnings are what works but should be fixed: no r_ads_reporting, no
// refresh token.
func (c Connected) Warnings() []string {
	var w []string
	if c.Access.MissingReporting() {
		w = append(w, "the token lacks the r_ads_reporting scope: delivery works, but `capstan reconcile` cannot read LinkedIn's "+
			"conversion reporting (the app needs LinkedIn's Advertising API product; connect again once it has it)")
	}
	if c.Token.RefreshToken == "" {
		w = append(w, "LinkedIn issued no refresh token (the app is not approved for programmatic refresh tokens): "+
			"connect again before the access token expires")
	}
	return w
}

// FinishConnect reads the callback's query q (state checked against
// state, code or error), exchanges the code with redirectURI and checks the
// new token against dc's ad account (any, when none is configured). An
// error means nothing was obtained; a token that cannot deliver comes
// back with Connected.Problem set.
func FinishConnect(ctx context.Context, dc config.Destination, q url.Values, state, redirectURI string, log *slog.Logger) (Connected, error) {
	code, err := capi.ReadCallback(q, state)
	if err != nil {
		return Connected{}, err
	}
	o := capi.OAuthClient{TokenURL: dc.Auth.TokenURL, ClientID: dc.Auth.ClientID.Value(), ClientSecret: dc.Auth.ClientSecret.Value(),
		HTTP: capi.NewHTTPClient(30 * time.Second)}
	defer o.HTTP.CloseIdleConnections()
	tok, err := o.ExchangeCode(ctx, code, redirectURI, time.Now())
	if err != nil {
		return Connected{}, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c, err := capi.NewClient(capi.ClientConfig{APIBase: dc.APIBase, APIVersion: dc.APIVersion, OAuthTokenURL: dc.Auth.TokenURL,
		Credentials: capi.Credentials{AccessToken: tok.AccessToken, ExpiresAt: tok.ExpiresAt, RefreshToken: tok.RefreshToken,
			ClientID: o.ClientID, ClientSecret: o.ClientSecret, RefreshTokenExpiresAt: tok.RefreshTokenExpiresAt}}, o.HTTP, log)
	if err != nil {
		return Connected{}, err
	}
	c.SetToken(tok) // keeps the scope list of the exchange
	out := Connected{Token: tok}
	out.Access, err = c.CheckAccess(ctx, dc.AdAccount)
	if ae, ok := errors.AsType[*capi.AccessError](err); ok {
		ae.Destination = dc.Name
		out.Problem = ae
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("check the new token: %w", err)
	}
	return out, nil
}

// CheckChosenAccount checks account, chosen after connecting, against
// what the member may do: it must be one of the member's accounts with a
// writing role.
func (c Connected) CheckChosenAccount(dest string, account int64) error {
	for _, a := range c.Access.Accounts {
		if a.Account == account {
			if a.CanWrite() {
				return nil
			}
			return &capi.AccessError{Kind: capi.AccessRole, Account: account, Detail: "the member is only " + a.Role, Destination: dest}
		}
	}
	var ids []string
	for _, a := range c.Writable() {
		ids = append(ids, fmt.Sprintf("%d (%s)", a.Account, a.Role))
	}
	return fmt.Errorf("the member has no role on ad account %d; the accounts they may write to: %s", account, orNone(strings.Join(ids, ", ")))
}

package linkedin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Sentinels of the auth half (§6, §17.3). Match them with errors.Is.
var (
	// ErrReauthRequired matches every failure that only a new authorisation
	// (or a new access token from the operator) can fix: a refused refresh,
	// a revoked token, a missing token, a 401 after a successful refresh.
	// Delivery pauses the destination with reason reauth_required and keeps
	// its queue.
	ErrReauthRequired = errors.New("linkedin reauthorization required")
	// ErrRefreshRevoked matches a refresh refused by the token endpoint
	// (400/401: refresh token expired, revoked or unknown, or bad client
	// credentials, §6.6). It is terminal and also matches
	// ErrReauthRequired. The client remembers it and does not ask again
	// until SetToken installs a new refresh token.
	ErrRefreshRevoked = errors.New("linkedin refresh token refused")
	// ErrNoRefreshToken is returned when an access token expired and no
	// refresh credentials are configured. It matches ErrReauthRequired.
	ErrNoRefreshToken = fmt.Errorf("%w: access token expired and no refresh token configured", ErrReauthRequired)
)

// Token is the access token state of a Client: what Token returns and what
// OnRefresh receives. String, GoString and LogValue never show the token
// values; encoding/json does (delivery persists it), so never log its JSON.
type Token struct {
	// AccessToken is the bearer token.
	AccessToken string `json:"access_token"`
	// ExpiresAt is when AccessToken expires; zero when unknown.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// IssuedAt is when the client obtained AccessToken (refresh or
	// SetAccessToken); zero for the configured token.
	IssuedAt time.Time `json:"issued_at,omitzero"`
	// RefreshToken is the current refresh token (LinkedIn may rotate it,
	// §6.5); empty without refresh.
	RefreshToken string `json:"refresh_token,omitempty"`
	// RefreshTokenExpiresAt is the refresh token's absolute expiry; zero
	// when unknown. Alert 30 days before it (§17.3).
	RefreshTokenExpiresAt time.Time `json:"refresh_token_expires_at,omitzero"`
	// Scope is the comma-separated scope list of the last refresh answer.
	Scope string `json:"scope,omitempty"`
}

// ExpiresIn returns the time from now until ExpiresAt, negative once the
// token has expired, and 0 when the expiry is unknown (ExpiresAt zero).
func (t Token) ExpiresIn(now time.Time) time.Duration {
	if t.ExpiresAt.IsZero() {
		return 0
	}
	return t.ExpiresAt.Sub(now)
}

// String describes the token without its values.
func (t Token) String() string {
	return fmt.Sprintf("Token{access_token:%s expires_at:%s refresh_token:%s refresh_token_expires_at:%s}",
		redact(t.AccessToken), fmtTime(t.ExpiresAt), redact(t.RefreshToken), fmtTime(t.RefreshTokenExpiresAt))
}

// GoString is String.
func (t Token) GoString() string { return t.String() }

// LogValue logs expiries and presence, never the values.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("access_token", redact(t.AccessToken)),
		slog.String("expires_at", fmtTime(t.ExpiresAt)),
		slog.String("refresh_token", redact(t.RefreshToken)),
		slog.String("refresh_token_expires_at", fmtTime(t.RefreshTokenExpiresAt)),
	)
}

// RefreshError is a failed refresh at the token endpoint (§6.6). Terminal
// ones (400/401 and other 4xx except 408 and 429) match ErrRefreshRevoked
// and ErrReauthRequired; the others (network, 408, 429, 5xx, an unusable
// 200) are retried with backoff.
type RefreshError struct {
	// Status is the HTTP status; 0 when no answer arrived.
	Status int
	// Code and Description are the OAuth error body's error and
	// error_description (§5), when there is one.
	Code        string
	Description string
	// RetryAfter is the endpoint's Retry-After, zero when absent.
	RetryAfter time.Duration
	// Err is the transport error when no answer arrived.
	Err error
}

// Terminal reports whether retrying the refresh cannot help.
func (e *RefreshError) Terminal() bool {
	s := e.Status
	return s >= 400 && s < 500 && s != http.StatusRequestTimeout && s != http.StatusTooManyRequests
}

func (e *RefreshError) Error() string {
	var b strings.Builder
	b.WriteString("refresh access token: ")
	switch {
	case e.Status == 0 && e.Err != nil:
		b.WriteString(e.Err.Error())
	default:
		fmt.Fprintf(&b, "status %d", e.Status)
		if e.Code != "" {
			b.WriteString(" " + e.Code)
		}
		if e.Description != "" {
			b.WriteString(": " + e.Description)
		}
	}
	return b.String()
}

// Is matches ErrRefreshRevoked and ErrReauthRequired for terminal errors.
func (e *RefreshError) Is(target error) bool {
	return e.Terminal() && (target == ErrRefreshRevoked || target == ErrReauthRequired)
}

// Unwrap returns the transport error.
func (e *RefreshError) Unwrap() error { return e.Err }

// Token returns a copy of the current token state. Never log
// Token().AccessToken; logging the Token itself is safe.
func (c *Client) Token() Token {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tok
}

// SetAccessToken installs a new access token, for example one an operator
// generated in Campaign Manager, without a restart. expiresAt may be zero
// (unknown); its scopes are unknown until checked. The refresh token is
// kept. Calls already in flight finish with the old token; a 401 they get
// is retried with the new one.
func (c *Client) SetAccessToken(tok string, expiresAt time.Time) {
	now := c.now()
	c.mu.Lock()
	c.tok.AccessToken, c.tok.ExpiresAt, c.tok.IssuedAt = tok, expiresAt, now
	c.tok.Scope = "" // the old token's scopes say nothing about this one
	c.gen++
	c.proactiveAfter = time.Time{}
	c.mu.Unlock()
	c.log.Info("access token replaced", "token", c.Token())
}

// SetToken installs a complete token state, for example after a new
// authorisation or when delivery restores a persisted token. An empty
// RefreshToken keeps the current one; a new one clears a remembered
// ErrRefreshRevoked. A zero IssuedAt is set to now.
func (c *Client) SetToken(t Token) {
	if t.IssuedAt.IsZero() {
		t.IssuedAt = c.now()
	}
	c.mu.Lock()
	if t.RefreshToken == "" {
		t.RefreshToken, t.RefreshTokenExpiresAt = c.tok.RefreshToken, c.tok.RefreshTokenExpiresAt
	} else if t.RefreshToken != c.tok.RefreshToken {
		c.refreshErr = nil
	}
	c.tok = t
	c.gen++
	c.proactiveAfter = time.Time{}
	c.mu.Unlock()
	c.log.Info("token replaced", "token", t)
}

// Refresh refreshes the access token now (single-flight with any refresh
// already running) and returns the new state. Without refresh credentials
// it returns ErrNoRefreshToken; after a terminal refusal it returns that
// *RefreshError again without asking the endpoint.
func (c *Client) Refresh(ctx context.Context) (Token, error) {
	if !c.canRefresh() {
		return c.Token(), ErrNoRefreshToken
	}
	_, gen := c.current()
	t, _, err := c.refreshFrom(ctx, gen)
	return t, err
}

func (c *Client) current() (Token, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tok, c.gen
}

func (c *Client) canRefresh() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tok.RefreshToken != "" && c.cfg.Credentials.ClientID != "" && c.cfg.Credentials.ClientSecret != ""
}

// tokenForCall returns the token to send with, refreshing first when it is
// missing or expires within RefreshBefore (§17.3). A failed proactive
// refresh is logged and the current token used: it may still work, and
// the reactive path reports what does not.
func (c *Client) tokenForCall(ctx context.Context) (Token, uint64) {
	now := c.now()
	c.mu.Lock()
	tok, gen := c.tok, c.gen
	due := c.refreshErr == nil && !now.Before(c.proactiveAfter) &&
		c.tok.RefreshToken != "" && c.cfg.Credentials.ClientID != "" && c.cfg.Credentials.ClientSecret != "" &&
		(tok.AccessToken == "" || (!tok.ExpiresAt.IsZero() && tok.ExpiresAt.Sub(now) < c.cfg.RefreshBefore))
	c.mu.Unlock()
	if !due {
		return tok, gen
	}
	ntok, ngen, err := c.refreshFrom(ctx, gen)
	if err == nil {
		return ntok, ngen
	}
	c.mu.Lock()
	c.proactiveAfter = now.Add(proactiveBackoff)
	c.mu.Unlock()
	c.log.Warn("proactive token refresh failed; using the current token", "error", err, "token", tok)
	return c.current()
}

// refreshFlight is one refresh in progress; waiters block on done.
type refreshFlight struct {
	done chan struct{}
	tok  Token
	gen  uint64
	err  error
}

// refreshFrom returns a token newer than generation gen. If the token
// already changed since gen it returns the current one; if a refresh is in
// flight it waits for it; otherwise it refreshes, at most one refresh
// running per Client. The refresh itself does not stop when ctx is
// cancelled (other callers wait for it) but is bounded by the timeout.
func (c *Client) refreshFrom(ctx context.Context, gen uint64) (Token, uint64, error) {
	c.mu.Lock()
	if c.gen != gen {
		t, g := c.tok, c.gen
		c.mu.Unlock()
		return t, g, nil
	}
	if c.refreshErr != nil {
		err := c.refreshErr
		c.mu.Unlock()
		return Token{}, 0, err
	}
	if f := c.flight; f != nil {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.tok, f.gen, f.err
		case <-ctx.Done():
			return Token{}, 0, fmt.Errorf("wait for token refresh: %w", context.Cause(ctx))
		}
	}
	f := &refreshFlight{done: make(chan struct{})}
	c.flight = f
	old := c.tok
	c.mu.Unlock()

	now := c.now()
	nt, err := c.requestRefresh(context.WithoutCancel(ctx), old.RefreshToken, now)

	c.mu.Lock()
	if err == nil {
		if nt.RefreshToken == "" {
			nt.RefreshToken, nt.RefreshTokenExpiresAt = old.RefreshToken, old.RefreshTokenExpiresAt
		}
		c.tok = nt
		c.gen++
		c.proactiveAfter = time.Time{}
	} else if re, ok := errors.AsType[*RefreshError](err); ok && re.Terminal() {
		c.refreshErr = err
	}
	f.tok, f.gen, f.err = c.tok, c.gen, err
	c.mu.Unlock()

	if err == nil {
		c.log.Info("access token refreshed", "token", nt)
		if c.cfg.OnRefresh != nil {
			c.cfg.OnRefresh(nt)
		}
	}
	c.mu.Lock()
	c.flight = nil
	c.mu.Unlock()
	close(f.done)
	if err != nil {
		return Token{}, 0, err
	}
	return f.tok, f.gen, nil
}

// tokenResponse is the token endpoint's success body (§6.5), decoded
// leniently.
type tokenResponse struct {
	AccessToken           string `json:"access_token"`
	ExpiresIn             int64  `json:"expires_in"`
	RefreshToken          string `json:"refresh_token"`
	RefreshTokenExpiresIn int64  `json:"refresh_token_expires_in"`
	Scope                 string `json:"scope"`
}

// oauthErrorBody is the RFC 6749 error body (§5).
type oauthErrorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// maxOAuthBody bounds a token endpoint answer.
const maxOAuthBody = 64 << 10

// requestRefresh performs the refresh_token grant (§6.4) and returns the
// new token state, or a *RefreshError.
func (c *Client) requestRefresh(ctx context.Context, refreshToken string, now time.Time) (Token, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {refreshToken},
		"client_id":     {c.cfg.Credentials.ClientID},
		"client_secret": {c.cfg.Credentials.ClientSecret},
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.OAuthTokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return Token{}, &RefreshError{Err: err}
	}
	hr.Header.Set(headerContentType, "application/x-www-form-urlencoded")
	hr.Header.Set(headerAccept, "application/json")
	resp, err := c.hc.Do(hr)
	if err != nil {
		return Token{}, &RefreshError{Err: err}
	}
	body, rerr := readBody(resp.Body, maxOAuthBody)
	if resp.StatusCode != http.StatusOK {
		var eb oauthErrorBody
		_ = json.Unmarshal(body, &eb) // non-JSON (an HTML 502): status alone
		re := &RefreshError{Status: resp.StatusCode, Code: eb.Error, Description: eb.Description}
		re.RetryAfter, _ = ParseRetryAfter(resp.Header.Get("Retry-After"), now)
		return Token{}, re
	}
	if rerr != nil {
		return Token{}, &RefreshError{Status: resp.StatusCode, Description: "read answer", Err: rerr}
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return Token{}, &RefreshError{Status: resp.StatusCode, Description: "answer has no access_token"}
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

// seconds converts a lifetime in seconds, capped at ten years so that a
// bogus value cannot overflow.
func seconds(n int64) time.Duration {
	const maxSeconds = 10 * 366 * 24 * 3600
	return time.Duration(min(n, maxSeconds)) * time.Second
}

package linkedin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Client defaults (§17.2, §17.3).
const (
	// DefaultAPIBase is LinkedIn's API origin (§2.1).
	DefaultAPIBase = "https://api.linkedin.com"
	// DefaultOAuthTokenURL is LinkedIn's token endpoint (§6.4).
	DefaultOAuthTokenURL = "https://www.linkedin.com/oauth/v2/accessToken"
	// DefaultTimeout bounds one HTTP exchange, body included (§17.2).
	DefaultTimeout = 30 * time.Second
	// DefaultRefreshBefore is how long before its expiry an access token is
	// refreshed proactively (§17.3).
	DefaultRefreshBefore = 24 * time.Hour
	// DefaultRevokedRetryDelay is the wait before the one retry of a 401
	// 65601 answered to a token minted less than FreshTokenAge ago (§17.3).
	DefaultRevokedRetryDelay = 5 * time.Second
	// FreshTokenAge is how young a token must be for a 401 65601 to be
	// taken as propagation delay rather than revocation (§7, §17.3).
	FreshTokenAge = 60 * time.Second
	// DefaultMaxResponseBytes bounds the part of a response body that is
	// read and classified.
	DefaultMaxResponseBytes int64 = 4 << 20
)

// drainLimit bounds what is read and discarded after the classified part
// of a body, so that the connection can be reused without reading an
// unbounded stream.
const drainLimit = 256 << 10

// proactiveBackoff is how long the client waits before trying a proactive
// refresh again after a transient failure (the current token still works).
const proactiveBackoff = time.Minute

// Header names of the REST calls (§3.1).
const (
	headerAccept   = "Accept"
	headerRestliID = "X-Restli-Id"
)

// Credentials are a destination's OAuth credentials (§6). Their String,
// GoString and LogValue never reveal a secret.
type Credentials struct {
	// AccessToken is the member access token. Required unless the three
	// refresh fields are set, in which case the first call refreshes.
	AccessToken string
	// ExpiresAt is when AccessToken expires. Zero means unknown: no
	// proactive refresh, only the reactive one on 401.
	ExpiresAt time.Time
	// RefreshToken, ClientID and ClientSecret enable refreshing (§6.4);
	// all three or none. A Campaign Manager ("Direct API") token has none.
	RefreshToken string
	ClientID     string
	ClientSecret string
	// RefreshTokenExpiresAt is the refresh token's absolute expiry (365 days
	// from authorisation, §6.2). Zero means unknown.
	RefreshTokenExpiresAt time.Time
}

// CanRefresh reports whether the credentials allow a refresh.
func (c Credentials) CanRefresh() bool {
	return c.RefreshToken != "" && c.ClientID != "" && c.ClientSecret != ""
}

// String describes the credentials without any secret.
func (c Credentials) String() string {
	return fmt.Sprintf("Credentials{access_token:%s refresh_token:%s client_id:%s client_secret:%s expires_at:%s}",
		redact(c.AccessToken), redact(c.RefreshToken), redact(c.ClientID), redact(c.ClientSecret), fmtTime(c.ExpiresAt))
}

// GoString is String, so that %#v does not print secrets either.
func (c Credentials) GoString() string { return c.String() }

// LogValue logs which credentials are present and the expiries, never the
// values.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("access_token", redact(c.AccessToken)),
		slog.String("refresh_token", redact(c.RefreshToken)),
		slog.String("client_id", redact(c.ClientID)),
		slog.String("client_secret", redact(c.ClientSecret)),
		slog.String("expires_at", fmtTime(c.ExpiresAt)),
		slog.String("refresh_token_expires_at", fmtTime(c.RefreshTokenExpiresAt)),
	)
}

// ClientConfig configures a Client. It is passed by value; every zero field
// means the default stated in its comment.
type ClientConfig struct {
	// APIBase is the API origin ("https://api.linkedin.com", or the
	// sandbox's URL) or the REST root ending in /rest. Default DefaultAPIBase.
	APIBase string
	// APIVersion is the LinkedIn-Version sent on every call, YYYYMM.
	// Default DefaultAPIVersion.
	APIVersion string
	// OAuthTokenURL is the token endpoint used to refresh. Default
	// DefaultOAuthTokenURL; in tests and demos the sandbox's base URL plus
	// /oauth/v2/accessToken.
	OAuthTokenURL string
	// Credentials are the tokens and the OAuth client.
	Credentials Credentials
	// Timeout bounds each HTTP exchange, token refreshes included, on top of
	// the *http.Client's own timeout. Default DefaultTimeout (30 s);
	// negative is an error.
	Timeout time.Duration
	// RefreshBefore is how long before ExpiresAt a token is refreshed
	// proactively. Default DefaultRefreshBefore (24 h); negative is an
	// error.
	RefreshBefore time.Duration
	// RevokedRetryDelay is the wait before retrying once a 401 65601 on a
	// token minted less than FreshTokenAge ago. Default
	// DefaultRevokedRetryDelay (5 s); negative is an error.
	RevokedRetryDelay time.Duration
	// MaxResponseBytes bounds the response body read for classification and
	// decoding. Default DefaultMaxResponseBytes (4 MiB); negative is an
	// error.
	MaxResponseBytes int64
	// OnRefresh, when set, is called after every successful refresh with
	// the new token, before any caller uses it, so that delivery can
	// persist it. Calls never overlap. It must not call the Client's
	// refreshing methods (Send, Refresh, …): that would deadlock.
	OnRefresh func(Token)
	// Now is the clock for token expiry and Retry-After dates. Default
	// time.Now.
	Now func() time.Time
}

// LogValue logs the configuration without secrets.
func (cfg ClientConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("api_base", cfg.APIBase),
		slog.String("api_version", cfg.APIVersion),
		slog.String("oauth_token_url", cfg.OAuthTokenURL),
		slog.Any("credentials", cfg.Credentials),
		slog.Duration("timeout", cfg.Timeout),
	)
}

// NewHTTPClient returns the *http.Client capstan uses for one destination
// (STYLE.md §7): a dedicated Transport with dial, TLS-handshake,
// response-header and idle timeouts, keep-alive on, HTTP/2 when offered,
// proxies from the environment, and redirects not followed (LinkedIn's API
// does not redirect; a 3xx is classified, not chased with the bearer token).
// timeout bounds a whole exchange; zero means DefaultTimeout.
func NewHTTPClient(timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	dialer := &net.Dialer{Timeout: min(10*time.Second, timeout), KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   min(10*time.Second, timeout),
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          32,
		MaxIdleConnsPerHost:   16,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Client talks to LinkedIn for one destination: it sends conversion
// requests, manages the access token (proactive and reactive refresh,
// single-flight), and manages conversion rules and campaign associations.
// Create it with NewClient. It is safe for concurrent use and starts no
// goroutines.
type Client struct {
	cfg      ClientConfig
	hc       *http.Client
	log      *slog.Logger
	now      func() time.Time
	pageSize int // list page size; a test knob

	mu             sync.Mutex
	tok            Token
	gen            uint64         // bumped on every token change
	flight         *refreshFlight // the refresh in progress, if any
	refreshErr     error          // sticky terminal refresh failure
	proactiveAfter time.Time      // no proactive refresh before this
}

// NewClient returns a Client for cfg that sends with hc (nil means
// NewHTTPClient(cfg.Timeout); never http.DefaultClient) and logs to log (nil
// discards). It validates cfg and reports every problem at once.
func NewClient(cfg ClientConfig, hc *http.Client, log *slog.Logger) (*Client, error) {
	var errs []error
	if cfg.APIBase == "" {
		cfg.APIBase = DefaultAPIBase
	}
	if err := checkURL(cfg.APIBase); err != nil {
		errs = append(errs, fmt.Errorf("api base: %w", err))
	}
	cfg.APIBase = strings.TrimRight(cfg.APIBase, "/")
	if cfg.APIVersion == "" {
		cfg.APIVersion = DefaultAPIVersion
	}
	if err := ValidateAPIVersion(cfg.APIVersion); err != nil {
		errs = append(errs, err)
	}
	if cfg.OAuthTokenURL == "" {
		cfg.OAuthTokenURL = DefaultOAuthTokenURL
	}
	if err := checkURL(cfg.OAuthTokenURL); err != nil {
		errs = append(errs, fmt.Errorf("oauth token url: %w", err))
	}
	cr := cfg.Credentials
	// A client id and secret without tokens is a destination waiting to be
	// connected (capstan auth linkedin); a refresh token needs both.
	if (cr.RefreshToken != "" && countSet(cr.ClientID, cr.ClientSecret) != 2) || countSet(cr.ClientID, cr.ClientSecret) == 1 {
		errs = append(errs, errors.New("credentials: refresh token, client id and client secret go together"))
	}
	if cr.AccessToken == "" && !cr.CanRefresh() && countSet(cr.ClientID, cr.ClientSecret) != 2 {
		errs = append(errs, errors.New("credentials: access token required (or a refresh token, client id and client secret)"))
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"timeout", &cfg.Timeout, DefaultTimeout},
		{"refresh before", &cfg.RefreshBefore, DefaultRefreshBefore},
		{"revoked retry delay", &cfg.RevokedRetryDelay, DefaultRevokedRetryDelay},
	} {
		switch {
		case *d.v < 0:
			errs = append(errs, fmt.Errorf("%s %s: must not be negative", d.name, *d.v))
		case *d.v == 0:
			*d.v = d.def
		}
	}
	switch {
	case cfg.MaxResponseBytes < 0:
		errs = append(errs, fmt.Errorf("max response bytes %d: must not be negative", cfg.MaxResponseBytes))
	case cfg.MaxResponseBytes == 0:
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("linkedin client: %w", errors.Join(errs...))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if hc == nil {
		hc = NewHTTPClient(cfg.Timeout)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		cfg:      cfg,
		hc:       hc,
		log:      log.With("component", "linkedin"),
		now:      cfg.Now,
		pageSize: 100,
		tok: Token{
			AccessToken:           cr.AccessToken,
			ExpiresAt:             cr.ExpiresAt,
			RefreshToken:          cr.RefreshToken,
			RefreshTokenExpiresAt: cr.RefreshTokenExpiresAt,
		},
	}
	c.cfg.Credentials = Credentials{} // the live copy is c.tok; keep one
	c.cfg.Credentials.ClientID, c.cfg.Credentials.ClientSecret = cr.ClientID, cr.ClientSecret
	if sunset, err := APIVersionSunset(cfg.APIVersion); err == nil {
		if left := sunset.Sub(cfg.Now()); left < VersionWarning {
			c.log.Warn("pinned LinkedIn API version is about to sunset or has sunset; pin a newer api_version",
				"api_version", cfg.APIVersion, "sunset", sunset.Format(time.DateOnly))
		}
	}
	return c, nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want an absolute http or https URL", s)
	}
	return nil
}

func countSet(ss ...string) int {
	n := 0
	for _, s := range ss {
		if s != "" {
			n++
		}
	}
	return n
}

// APIVersion returns the LinkedIn-Version the client sends.
func (c *Client) APIVersion() string { return c.cfg.APIVersion }

// VersionWarning is how long before its sunset a pinned API version is
// reported (§4).
const VersionWarning = 60 * 24 * time.Hour

// APIVersionSunset returns when LinkedIn stops serving version v (YYYYMM):
// LinkedIn supports each version for at least a year and sunsets it mid-month
// a year after release (§4); capstan takes the 15th, 00:00 UTC, as the
// sandbox does. Delivery exposes it as a metric; NewClient logs a warning
// when the sunset is less than VersionWarning away.
func APIVersionSunset(v string) (time.Time, error) {
	if err := ValidateAPIVersion(v); err != nil {
		return time.Time{}, err
	}
	y, _ := strconv.Atoi(v[:4])
	m, _ := strconv.Atoi(v[4:])
	return time.Date(y+1, time.Month(m), 15, 0, 0, 0, 0, time.UTC), nil
}

// message is one HTTP exchange with a /rest endpoint, kept as data so that
// it can be sent again after a refresh with the same bytes.
type message struct {
	op       string // names the operation in errors: "send conversions"
	method   string
	path     string // escaped path, "/rest/conversions/123"
	query    string // raw, already encoded query
	body     []byte // nil: no body
	header   http.Header
	batchLen int // elements of a BATCH_CREATE, for Classify
}

// Send sends one conversion request (built by NewSingleRequest or
// NewBatchRequests) and classifies LinkedIn's answer with Classify.
//
// The client sets the headers it owns on every call: Authorization with the
// current access token, LinkedIn-Version with the configured version and
// X-Restli-Protocol-Version 2.0.0; the request's other headers and its body
// are sent unchanged, so a retry sends the same bytes (§16).
//
// Auth recovery happens inside Send, within the limits of §17.3: an expired
// or invalid token (ClassAuthExpired) is refreshed once (single-flight
// across concurrent callers) and the request sent once more; a 401 65601
// on a token minted less than FreshTokenAge ago is retried once after
// RevokedRetryDelay. Hence an Auth* class returned by Send is terminal for
// the current credentials: pause the destination (reauth_required) and keep
// the queue.
//
// The error is nil whenever LinkedIn answered and nothing the client tried
// failed. Otherwise:
//   - no answer (network error, timeout, cancelled ctx): ClassRetry and the
//     transport error;
//   - a refresh that failed transiently (network, 429, 5xx at the token
//     endpoint): ClassRetry (with the endpoint's Retry-After) and the
//     *RefreshError;
//   - a refresh refused (400/401: revoked, expired or unknown refresh token,
//     bad client): the ClassAuthExpired outcome and a *RefreshError
//     matching ErrRefreshRevoked and ErrReauthRequired;
//   - ClassAuthExpired without refresh credentials: ErrNoRefreshToken.
//
// Send never panics on a LinkedIn answer and never logs bodies or tokens.
func (c *Client) Send(ctx context.Context, req Request) (Outcome, error) {
	m := message{
		op:     "send conversions",
		method: req.Method,
		path:   req.Path,
		body:   req.Body,
		header: req.Header,
	}
	if req.Batch {
		m.batchLen = len(req.Indices)
	}
	if m.method == "" {
		m.method = http.MethodPost
	}
	_, out, err := c.exchange(ctx, m)
	if err != nil {
		return out, fmt.Errorf("send conversions: %w", err)
	}
	return out, nil
}

// exchange sends m with the current token and applies the auth recovery
// of §17.3 (see Send). It returns the last response, its classification,
// and an error as documented on Send.
func (c *Client) exchange(ctx context.Context, m message) (Response, Outcome, error) {
	tok, gen := c.tokenForCall(ctx)
	refreshed, waited := false, false
	for {
		resp, out, err := c.attempt(ctx, m, tok.AccessToken)
		if err != nil {
			return resp, out, err
		}
		switch out.Class {
		case ClassAuthExpired:
			if refreshed {
				return resp, out, nil
			}
			if !c.canRefresh() {
				if t, g := c.current(); g != gen { // a new token was installed meanwhile
					tok, gen, refreshed = t, g, true
					continue
				}
				return resp, out, ErrNoRefreshToken
			}
			ntok, ngen, rerr := c.refreshFrom(ctx, gen)
			if rerr != nil {
				var re *RefreshError
				if errors.As(rerr, &re) && re.Terminal() {
					return resp, out, rerr
				}
				// Transient: the caller backs off and sends again, which
				// refreshes again.
				out.Class = ClassRetry
				if re != nil {
					out.RetryAfter = re.RetryAfter
				}
				return resp, out, rerr
			}
			tok, gen, refreshed = ntok, ngen, true
			continue
		case ClassAuthRevoked:
			if waited || tok.IssuedAt.IsZero() || c.now().Sub(tok.IssuedAt) >= FreshTokenAge {
				return resp, out, nil
			}
			waited = true
			c.log.Debug("revoked answer for a fresh token; retrying once", "op", m.op, "wait", c.cfg.RevokedRetryDelay)
			t := time.NewTimer(c.cfg.RevokedRetryDelay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return resp, Outcome{Class: ClassRetry}, context.Cause(ctx)
			}
			tok, gen = c.current()
			continue
		}
		return resp, out, nil
	}
}

// attempt performs one HTTP exchange of m with access token tok.
func (c *Client) attempt(ctx context.Context, m message, tok string) (Response, Outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	u := Request{Path: m.path}.URL(c.cfg.APIBase)
	if m.query != "" {
		u += "?" + m.query
	}
	var body io.Reader
	if m.body != nil {
		body = bytes.NewReader(m.body)
	}
	hr, err := http.NewRequestWithContext(ctx, m.method, u, body)
	if err != nil {
		// Only a malformed base or path gets here: a bug, not transient,
		// but retrying is harmless and keeps events queued.
		return Response{}, Outcome{Class: ClassRetry}, fmt.Errorf("build request: %w", err)
	}
	if m.header != nil {
		hr.Header = m.header.Clone()
	}
	hr.Header.Del(headerAuthorization)
	if tok != "" {
		hr.Header.Set(headerAuthorization, "Bearer "+tok)
	}
	hr.Header.Set(headerVersion, c.cfg.APIVersion)
	hr.Header.Set(headerProtocolVersion, RestliProtocolVersion)
	if m.body != nil && hr.Header.Get(headerContentType) == "" {
		hr.Header.Set(headerContentType, "application/json")
	}
	if hr.Header.Get(headerAccept) == "" {
		hr.Header.Set(headerAccept, "application/json")
	}

	start := time.Now()
	hresp, err := c.hc.Do(hr)
	if err != nil {
		c.log.Debug("linkedin call failed", "op", m.op, "method", m.method, "path", m.path, "error", err)
		return Response{}, Outcome{Class: ClassRetry}, err
	}
	b, rerr := readBody(hresp.Body, c.cfg.MaxResponseBytes)
	resp := Response{Status: hresp.StatusCode, Header: hresp.Header, Body: b}
	out := Classify(resp, m.batchLen, c.now())
	c.log.Debug("linkedin call", "op", m.op, "method", m.method, "path", m.path, "status", out.Status,
		"class", out.Class.String(), "x_li_uuid", out.RequestID, "duration", time.Since(start))
	if rerr != nil && out.Class != ClassSuccess {
		// The status is known but the body was cut short: classify by what
		// arrived (a timeout mid-body on a 5xx is still a retry).
		c.log.Debug("linkedin body read failed", "op", m.op, "status", out.Status, "error", rerr)
	}
	return resp, out, nil
}

// readBody reads at most limit bytes of body, then drains (bounded) and
// closes it so the connection can be reused.
func readBody(body io.ReadCloser, limit int64) ([]byte, error) {
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, limit))
	if err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(body, drainLimit))
	}
	return b, err
}

// restHeader returns the headers of a JSON call with an optional
// X-RestLi-Method.
func restHeader(restliMethod string) http.Header {
	h := http.Header{}
	if restliMethod != "" {
		h.Set(headerMethod, restliMethod)
	}
	return h
}

func redact(s string) string {
	if s == "" {
		return ""
	}
	return RedactedValue
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

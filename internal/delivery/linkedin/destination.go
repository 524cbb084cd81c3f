package linkedin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/delivery"
	capi "github.com/capstan-gw/capstan/internal/linkedin"
	"github.com/capstan-gw/capstan/internal/secret"
)

// Config is one LinkedIn destination as configured.
type Config struct {
	// Destination is the destination's section of capstan.yaml.
	Destination config.Destination
	// State is the state bucket: created rule ids, associated campaigns
	// and tokens obtained at run time are kept there. Required.
	State jetstream.KeyValue
	// Key encrypts the tokens kept in State (server.secret_key). nil keeps
	// them in plaintext (server.insecure_plaintext_secrets).
	Key *secret.Key
	// Timeout bounds one request to LinkedIn. Default 30s.
	Timeout time.Duration
	// Now is the client's clock (tests share the sandbox's); nil for real
	// time.
	Now func() time.Time
}

// Destination is a LinkedIn destination: the API client that sends, refreshes tokens and manages conversion rules, and the tokens
// kept in the state bucket. It implements delivery.Destination,
// delivery.Preparer and delivery.TokenSource, and is safe for concurrent
// use.
type Destination struct {
	account int64
	apiBase string
	client  *capi.Client
	state   jetstream.KeyValue
	key     *secret.Key
	log     *slog.Logger
	// tokenKey and credHash tie a saved token to the configured
	// credentials it replaces.
	tokenKey string
	credHash string
}

// storedToken is a token obtained at run time (refreshed, or installed by
// an operator) kept in the state bucket, tied to the configured
// credentials it came from: a changed configuration wins over it.
type storedToken struct {
	Token  capi.Token `json:"token"`
	Config string     `json:"config"`
}

func credentialsHash(a config.Auth) string {
	sum := sha256.Sum256([]byte(a.AccessToken.Value() + "\x00" + a.RefreshToken.Value() + "\x00" + a.ClientID.Value()))
	return hex.EncodeToString(sum[:])
}

// New returns the destination of cfg, with the token an earlier run saved
// for the same configured credentials, if any.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Destination, error) {
	dc := cfg.Destination
	if cfg.State == nil {
		return nil, fmt.Errorf("destination %s: no state bucket", dc.Name)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Destination{
		account: dc.AdAccount, apiBase: dc.APIBase, state: cfg.State, key: cfg.Key,
		log:      log.With("component", "linkedin", "destination", dc.Name),
		tokenKey: tokenPrefix + dc.Name, credHash: credentialsHash(dc.Auth),
	}
	creds := capi.Credentials{
		AccessToken:  dc.Auth.AccessToken.Value(),
		RefreshToken: dc.Auth.RefreshToken.Value(),
		ClientID:     dc.Auth.ClientID.Value(),
		ClientSecret: dc.Auth.ClientSecret.Value(),
	}
	if dc.Auth.ExpiresAt != "" {
		creds.ExpiresAt, _ = time.Parse(time.RFC3339, dc.Auth.ExpiresAt)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	var err error
	d.client, err = capi.NewClient(capi.ClientConfig{
		APIBase:       dc.APIBase,
		APIVersion:    dc.APIVersion,
		OAuthTokenURL: dc.Auth.TokenURL,
		Credentials:   creds,
		Timeout:       cfg.Timeout,
		Now:           cfg.Now,
		OnRefresh: func(t capi.Token) {
			pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := d.saveToken(pctx, t); err != nil {
				d.log.Warn("could not save the refreshed token; it will be refreshed again after a restart", "error", err)
			}
		},
	}, capi.NewHTTPClient(cfg.Timeout), log)
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", dc.Name, err)
	}
	// A token obtained by an earlier run from the same configured
	// credentials is newer than the configured one.
	e, err := cfg.State.Get(ctx, d.tokenKey)
	if err != nil {
		return d, nil // none saved (or unreadable now: the configured one serves)
	}
	plain, sealed, err := secret.Open(d.key, e.Value(), []byte(d.tokenKey))
	if err != nil {
		return nil, fmt.Errorf("destination %s: the token saved in the state bucket (%s): %w; "+
			"start with the server.secret_key it was saved with, or change keys with `capstan secret-key rotate`", dc.Name, d.tokenKey, err)
	}
	var st storedToken
	if json.Unmarshal(plain, &st) == nil && st.Config == d.credHash && st.Token.AccessToken != "" {
		d.client.SetToken(st.Token)
		if !sealed && d.key != nil {
			// Saved in plaintext by an earlier version: encrypt it now.
			if err := d.saveToken(ctx, st.Token); err != nil {
				return nil, fmt.Errorf("destination %s: encrypt the saved token: %w", dc.Name, err)
			}
			d.log.Info("the saved token is now encrypted with server.secret_key", "key_id", d.key.ID())
		}
	}
	return d, nil
}

// APIBase returns the configured API origin (LinkedIn's or the sandbox's).
func (d *Destination) APIBase() string { return d.apiBase }

// Client returns the LinkedIn API client (for tools such as token checks).
func (d *Destination) Client() *capi.Client { return d.client }

func (d *Destination) saveToken(ctx context.Context, t capi.Token) error {
	b, err := json.Marshal(storedToken{Token: t, Config: d.credHash})
	if err != nil {
		return err
	}
	if b, err = secret.Seal(d.key, b, []byte(d.tokenKey)); err != nil {
		return err
	}
	_, err = d.state.Put(ctx, d.tokenKey, b)
	return err
}

// tokenPrefix begins the state bucket's keys that hold tokens.
const tokenPrefix = "token."

// Reseal re-encrypts every token kept in the state bucket: opened with
// from (nil: the value must be plaintext, saved without a key) and sealed
// with to (server.secret_key rotation). A plaintext token is sealed too.
// It returns how many values it wrote; it stops at the first that does not
// open, changing nothing more, and a value changed meanwhile (by a running
// capstan) is an error. It is what `capstan secret-key rotate` runs.
func Reseal(ctx context.Context, state jetstream.KeyValue, from, to *secret.Key) (int, error) {
	lister, err := state.ListKeysFiltered(ctx, tokenPrefix+">")
	if err != nil {
		return 0, fmt.Errorf("list tokens: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	n := 0
	for _, k := range keys {
		e, err := state.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("read %s: %w", k, err)
		}
		plain, _, err := secret.Open(from, e.Value(), []byte(k))
		if err != nil {
			return n, fmt.Errorf("open %s: %w", k, err)
		}
		b, err := secret.Seal(to, plain, []byte(k))
		if err != nil {
			return n, fmt.Errorf("seal %s: %w", k, err)
		}
		if _, err := state.Update(ctx, k, b, e.Revision()); err != nil {
			return n, fmt.Errorf("write %s: %w", k, err)
		}
		n++
	}
	return n, nil
}

// ErrTokenNotSaved means InstallToken put the token in use but could not
// keep it in the state bucket: a restart goes back to the configured one.
var ErrTokenNotSaved = errors.New("the token is in use but could not be saved; it will be lost on restart")

// InstallToken puts a new access token in use at once (an operator's,
// from Campaign Manager) and keeps it across restarts, tied to the
// configured credentials as refreshed tokens are. expiresAt may be zero.
func (d *Destination) InstallToken(ctx context.Context, accessToken string, expiresAt time.Time) error {
	d.client.SetAccessToken(accessToken, expiresAt)
	if err := d.saveToken(ctx, d.client.Token()); err != nil {
		d.log.Warn("installed token not saved", "error", err)
		return ErrTokenNotSaved
	}
	return nil
}

// TokenExpiresAt returns when the current access token expires (zero:
// unknown).
func (d *Destination) TokenExpiresAt() time.Time { return d.client.Token().ExpiresAt }

// LimitKey keys the rate limiter by the access token (LinkedIn counts its
// limits per token, §11), hashed.
func (d *Destination) LimitKey() string {
	sum := sha256.Sum256([]byte(d.client.Token().AccessToken))
	return "linkedin:" + hex.EncodeToString(sum[:12])
}

// Send sends one request (a capi.Request built by Requests) and maps
// LinkedIn's classified answer (§17.1) onto delivery's classes; auth
// recovery (refresh, the revoked-token retry) happens inside the client.
func (d *Destination) Send(ctx context.Context, req delivery.Request) delivery.Answer {
	r, ok := req.Value.(capi.Request)
	if !ok {
		return delivery.Answer{Class: delivery.Refused, Message: fmt.Sprintf("not a LinkedIn request: %T", req.Value)}
	}
	out, err := d.client.Send(ctx, r)
	if out.Class == 0 {
		out.Class = capi.ClassRetry
	}
	a := delivery.Answer{
		Label: out.Class.String(), Status: out.Status, Code: out.Code, Message: out.Message,
		RequestID: out.RequestID, RetryAfter: out.RetryAfter, DayExhausted: out.DailyLimit, Err: err,
	}
	for _, f := range out.Failures {
		var details any
		if f.Errors != nil {
			details = f.Errors
		}
		a.Refused = append(a.Refused, delivery.Refusal{Index: f.Index, Status: f.Status, Message: f.Message, Details: details})
	}
	switch out.Class {
	case capi.ClassSuccess:
		a.Class = delivery.Accepted
	case capi.ClassRetry:
		a.Class = delivery.Retry
	case capi.ClassSplit:
		a.Class = delivery.Split
	case capi.ClassTooLarge:
		a.Class = delivery.TooLarge
	case capi.ClassDeadLetter:
		a.Class = delivery.Refused
	default: // auth, forbidden, version: only an operator can help
		a.Class = delivery.Pause
		a.PauseReason = fmt.Sprintf("%s (HTTP %d): %s", out.Class, out.Status, out.Message)
		if out.Class == capi.ClassVersion {
			a.PauseReason += fmt.Sprintf("; LinkedIn-Version %s is not active: set destinations[].api_version to a current version (YYYYMM; LinkedIn supports each for a year) and restart", d.client.APIVersion())
		}
	}
	return a
}

// NeedsOperator reports whether a LinkedIn error can only be fixed by a
// person: a revoked or missing token, a missing permission, a sunset version.
func (d *Destination) NeedsOperator(err error) bool {
	var ae *capi.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.Class {
	case capi.ClassAuthRevoked, capi.ClassAuthMissing, capi.ClassAuthExpired, capi.ClassForbidden, capi.ClassVersion:
		return true
	}
	return false
}

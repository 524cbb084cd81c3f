package linkedin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/capstan-gw/capstan/internal/config"
	capi "github.com/capstan-gw/capstan/internal/linkedin"
	"github.com/capstan-gw/capstan/internal/secret"
)

// connectHint is the command that connects this destination again.
func (d *Destination) connectHint() string {
	return "`capstan auth linkedin --config FILE --destination " + d.name + "` (or the console's Connect LinkedIn)"
}

// CheckAccess checks that the destination's token can deliver (spec §6.1,
// §14.1, §24.4): it works (not missing, expired or revoked), has
// rw_conversions when its scopes are known, and its member holds a writing
// role on the configured ad account. A problem is a *capi.AccessError
// naming what is missing and how to fix it (NeedsOperator: the runner
// pauses the destination and keeps its events); other errors are
// transient. A token without r_ads_reporting delivers, with a warning.
// Prepare runs it at start and the runner daily (delivery.AccessChecker).
func (d *Destination) CheckAccess(ctx context.Context) error {
	a, err := d.client.CheckAccess(ctx, d.account)
	if ae, ok := errors.AsType[*capi.AccessError](err); ok {
		ae.Destination = d.name
		d.log.Error("LinkedIn access check failed", "problem", ae.Kind, "missing", ae.Missing, "ad_account", d.account, "error", ae.Error())
		return ae
	}
	if err != nil {
		return fmt.Errorf("check the LinkedIn token: %w", err)
	}
	scopes := "unknown"
	if a.ScopesKnown {
		scopes = strings.Join(a.Scopes, ",")
	}
	d.log.Info("LinkedIn access checked", "ad_account", d.account, "role", a.Role, "scopes", scopes, "token", d.client.Token())
	if a.MissingReporting() {
		d.log.Warn("the LinkedIn token lacks the r_ads_reporting scope: delivery works, but `capstan reconcile` cannot read LinkedIn's conversion reporting; connect again with " + d.connectHint() + " to add it")
	}
	return nil
}

// InstallConnected puts the tokens of a new authorization (the console's
// Connect LinkedIn, or `capstan auth linkedin` seen through WatchToken) in
// use at once and keeps them across restarts. An error wrapping
// ErrTokenNotSaved means they are in use but not saved.
func (d *Destination) InstallConnected(ctx context.Context, t capi.Token) error {
	d.client.SetToken(t)
	if err := d.saveToken(ctx, d.client.Token()); err != nil {
		d.log.Warn("connected token not saved", "error", err)
		return ErrTokenNotSaved
	}
	return nil
}

// SaveConnectedToken keeps the tokens of a new authorization for
// destination dc in the state bucket, encrypted with key (nil: plaintext),
// exactly where the destination reads them at start (New) and where a
// running capstan's WatchToken sees them. It is what `capstan auth
// linkedin` stores.
func SaveConnectedToken(ctx context.Context, state jetstream.KeyValue, key *secret.Key, dc config.Destination, t capi.Token) error {
	if t.IssuedAt.IsZero() {
		t.IssuedAt = time.Now()
	}
	k := tokenPrefix + dc.Name
	b, err := json.Marshal(storedToken{Token: t, Config: credentialsHash(dc.Auth)})
	if err != nil {
		return err
	}
	if b, err = secret.Seal(key, b, []byte(k)); err != nil {
		return err
	}
	if _, err := state.Put(ctx, k, b); err != nil {
		return fmt.Errorf("save the token in the state bucket: %w", err)
	}
	return nil
}

// WatchToken follows the destination's token in the state bucket until ctx
// ends: a token another process saved there (`capstan auth linkedin` while
// this capstan runs) is put in use and onChange called (serve resumes the
// runner). Its own saves (refreshes) are recognised and ignored.
func (d *Destination) WatchToken(ctx context.Context, onChange func()) error {
	w, err := d.state.Watch(ctx, d.tokenKey) // the saved value first: a save made before the watch started is not missed
	if err != nil {
		return fmt.Errorf("watch the saved token: %w", err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			plain, _, err := secret.Open(d.key, e.Value(), []byte(d.tokenKey))
			if err != nil {
				d.log.Error("a token saved in the state bucket does not open with server.secret_key; ignored", "error", err)
				continue
			}
			var st storedToken
			if json.Unmarshal(plain, &st) != nil || st.Config != d.credHash || st.Token.AccessToken == "" {
				continue
			}
			if st.Token.AccessToken == d.client.Token().AccessToken {
				continue // our own save
			}
			d.client.SetToken(st.Token)
			d.log.Info("a new LinkedIn token was connected; delivery resumes with it", "token", st.Token)
			if onChange != nil {
				onChange()
			}
		}
	}
}

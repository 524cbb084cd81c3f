package linkedin

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/capstan-gw/capstan/internal/config"
	capi "github.com/capstan-gw/capstan/internal/linkedin"
	"github.com/capstan-gw/capstan/internal/secret"
	"github.com/capstan-gw/capstan/internal/stream"
)

// stateBucket returns a fresh state bucket on an embedded engine.
func stateBucket(t *testing.T) jetstream.KeyValue {
	t.Helper()
	ctx := context.Background()
	eng, err := stream.Open(ctx, stream.Config{DataDir: t.TempDir()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	state, err := eng.KV(ctx, stream.StateKV, 0)
	if err != nil {
		t.Fatal(err)
	}
	return state
}

func newKey(t *testing.T) *secret.Key {
	t.Helper()
	k, err := secret.ParseKey(secret.Generate())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func secretDest(t *testing.T, state jetstream.KeyValue, key *secret.Key) (*Destination, error) {
	t.Helper()
	dc := config.Destination{Name: "li", APIBase: "http://127.0.0.1:1", APIVersion: config.DefaultAPIVersion, AdAccount: account,
		Auth: config.Auth{AccessToken: "configured-token", TokenURL: "http://127.0.0.1:1/oauth/v2/accessToken"}}
	return New(context.Background(), Config{Destination: dc, State: state, Key: key}, nil)
}

// rawToken is the state bucket's value for the destination's token.
func rawToken(t *testing.T, state jetstream.KeyValue) []byte {
	t.Helper()
	e, err := state.Get(context.Background(), "token.li")
	if err != nil {
		t.Fatal(err)
	}
	return e.Value()
}

const installed = "AQV-installed-token-7f3e"

// TestTokenEncryptedAtRest: an installed token is in the state bucket only
// encrypted, and a restart with the same key reads it back.
func TestTokenEncryptedAtRest(t *testing.T) {
	state, key := stateBucket(t), newKey(t)
	d, err := secretDest(t, state, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.InstallToken(context.Background(), installed, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	raw := rawToken(t, state)
	if strings.Contains(string(raw), installed) || strings.Contains(string(raw), "access_token") || !secret.IsSealed(raw) {
		t.Fatalf("the state bucket holds %s: want an envelope without the token", raw)
	}
	d, err = secretDest(t, state, key)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Client().Token().AccessToken; got != installed {
		t.Errorf("after a restart the token is %q, want the installed one", got)
	}

	// Another key: a clear error, not the configured token in silence.
	_, err = secretDest(t, state, newKey(t))
	if !errors.Is(err, secret.ErrWrongKey) || !strings.Contains(err.Error(), "capstan secret-key rotate") {
		t.Errorf("with another key: %v, want ErrWrongKey and how to fix it", err)
	}
	_, err = secretDest(t, state, nil)
	if !errors.Is(err, secret.ErrNoKey) {
		t.Errorf("without a key: %v, want ErrNoKey", err)
	}
}

// TestPlaintextTokenUpgraded: a token saved in plaintext by an earlier
// version is read, then written again encrypted.
func TestPlaintextTokenUpgraded(t *testing.T) {
	state := stateBucket(t)
	// An earlier version (no key) saved it.
	d, err := secretDest(t, state, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.InstallToken(context.Background(), installed, time.Time{}); err != nil {
		t.Fatal(err)
	}
	var st storedToken
	if err := json.Unmarshal(rawToken(t, state), &st); err != nil || st.Token.AccessToken != installed {
		t.Fatalf("without a key the value is %s, want plaintext JSON (%v)", rawToken(t, state), err)
	}
	key := newKey(t)
	d, err = secretDest(t, state, key)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Client().Token().AccessToken; got != installed {
		t.Errorf("token %q, want the plaintext one read", got)
	}
	if raw := rawToken(t, state); strings.Contains(string(raw), installed) || !secret.IsSealed(raw) {
		t.Errorf("after the upgrade the state bucket holds %s, want it encrypted", raw)
	}
}

// TestReseal: rotation re-encrypts every token from the old key to the new.
func TestReseal(t *testing.T) {
	state, oldKey, newK := stateBucket(t), newKey(t), newKey(t)
	d, err := secretDest(t, state, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.InstallToken(context.Background(), installed, time.Time{}); err != nil {
		t.Fatal(err)
	}
	// A second destination's token, still in plaintext, and a value that
	// is no token: the first is sealed too, the second left alone.
	plain, _ := json.Marshal(storedToken{Token: capi.Token{AccessToken: "AQV-other"}})
	if _, err := state.Put(context.Background(), "token.other", plain); err != nil {
		t.Fatal(err)
	}
	if _, err := state.Put(context.Background(), "rule.li.x", []byte("42")); err != nil {
		t.Fatal(err)
	}
	if _, err := Reseal(context.Background(), state, newK, newK); !errors.Is(err, secret.ErrWrongKey) {
		t.Errorf("Reseal from the wrong key: %v, want ErrWrongKey", err)
	}
	n, err := Reseal(context.Background(), state, oldKey, newK)
	if err != nil || n != 2 {
		t.Fatalf("Reseal = %d, %v; want 2 values re-encrypted", n, err)
	}
	if _, err := secretDest(t, state, oldKey); !errors.Is(err, secret.ErrWrongKey) {
		t.Errorf("the old key still opens the token: %v", err)
	}
	d, err = secretDest(t, state, newK)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Client().Token().AccessToken; got != installed {
		t.Errorf("with the new key the token is %q, want the installed one", got)
	}
	e, err := state.Get(context.Background(), "token.other")
	if err != nil || !secret.IsSealed(e.Value()) {
		t.Errorf("the plaintext token.other was not sealed: %v", err)
	}
	if e, _ := state.Get(context.Background(), "rule.li.x"); string(e.Value()) != "42" {
		t.Errorf("a rule id was changed: %q", e.Value())
	}
}

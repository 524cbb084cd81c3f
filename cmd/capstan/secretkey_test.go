package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/secret"
	"github.com/capstan-gw/capstan/internal/stream"
)

// keyConfig writes a configuration with one destination and secret_key
// key ("" for none, extra lines allowed) and returns its path.
func keyConfig(t *testing.T, dir, name, serverLines string) string {
	t.Helper()
	text := "server:\n  addr: 127.0.0.1:0\n  data_dir: " + filepath.Join(dir, "data") + "\n" + serverLines + `sources:
  - name: website
    write_key: wk_1
destinations:
  - name: linkedin
    api_base: http://127.0.0.1:1
    ad_account: 512345678
    auth: {access_token: tok-a}
    mappings:
      - name: Sign Up
        conversion_rule: {id: 22833300}
`
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// withDestination opens cfgPath's engine and destination and calls fn.
func withDestination(t *testing.T, cfgPath string, fn func(*destination, *stream.Engine)) error {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	plans, err := compilePlans(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	eng, err := stream.Open(ctx, engineConfig(cfg), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	dests, err := newDestinations(ctx, cfg, plans, eng, nil, nil, nil, nil, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	fn(dests[0], eng)
	return nil
}

func TestSecretKeyNew(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"secret-key", "new"}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if _, err := secret.ParseKey(strings.TrimSpace(out.String())); err != nil {
		t.Errorf("secret-key new printed %q: %v", out.String(), err)
	}
}

// TestSecretKeyRotate: rotate re-encrypts the stored token from the
// configured key to the new one; the old key no longer opens it.
func TestSecretKeyRotate(t *testing.T) {
	dir := t.TempDir()
	oldKey, newKey := secret.Generate(), secret.Generate()
	oldCfg := keyConfig(t, dir, "old.yaml", "  secret_key: "+oldKey+"\n")
	newCfg := keyConfig(t, dir, "new.yaml", "  secret_key: "+newKey+"\n")
	const token = "AQV-operator-token-91c2"
	err := withDestination(t, oldCfg, func(d *destination, eng *stream.Engine) {
		if err := d.li.InstallToken(context.Background(), token, time.Time{}); err != nil {
			t.Fatal(err)
		}
		// The raw value in the state bucket does not hold the token.
		state, err := eng.KV(context.Background(), stream.StateKV, 0)
		if err != nil {
			t.Fatal(err)
		}
		e, err := state.Get(context.Background(), "token.linkedin")
		if err != nil || bytes.Contains(e.Value(), []byte(token)) || !secret.IsSealed(e.Value()) {
			t.Fatalf("state bucket token.linkedin = %s, %v: want an envelope without the token", e.Value(), err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	var out, errb bytes.Buffer
	if code := run([]string{"secret-key", "rotate", "--config", oldCfg, "--new-key-env", "CAPSTAN_TEST_UNSET_KEY"}, &out, &errb); code != exitUsage ||
		!strings.Contains(errb.String(), "CAPSTAN_TEST_UNSET_KEY is not set") {
		t.Errorf("without the variable: exit %d, %s", code, errb.String())
	}
	t.Setenv("CAPSTAN_TEST_NEW_KEY", newKey)
	errb.Reset()
	if code := run([]string{"secret-key", "rotate", "--config", oldCfg, "--new-key-env", "CAPSTAN_TEST_NEW_KEY"}, &out, &errb); code != exitOK {
		t.Fatalf("rotate: exit %d: %s", code, errb.String())
	}
	nk, _ := secret.ParseKey(newKey)
	if !strings.Contains(out.String(), "1 tokens re-encrypted with key "+nk.ID()) {
		t.Errorf("rotate printed %q", out.String())
	}
	if err := withDestination(t, oldCfg, func(*destination, *stream.Engine) {}); err == nil || !strings.Contains(err.Error(), "another key") {
		t.Errorf("the old key after rotation: %v, want a clear error", err)
	}
	err = withDestination(t, newCfg, func(d *destination, _ *stream.Engine) {
		if got := d.li.Client().Token().AccessToken; got != token {
			t.Errorf("with the new key the token is %q, want the installed one", got)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestServeRequiresSecretKey: serve with a destination and neither a key
// nor the development setting refuses to start, with exit code 2.
func TestServeRequiresSecretKey(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	code := run([]string{"serve", "--config", keyConfig(t, dir, "c.yaml", "")}, &out, &errb)
	if code != exitUsage || !strings.Contains(errb.String(), "server.secret_key: required with destinations") ||
		!strings.Contains(errb.String(), "capstan secret-key new") {
		t.Errorf("exit %d, stderr %q; want 2 and how to make a key", code, errb.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Error("serve created the data directory before refusing")
	}
}

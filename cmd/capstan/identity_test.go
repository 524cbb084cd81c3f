package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/linkedin"
	"github.com/capstan-gw/capstan/internal/stream"
)

// identityCLI runs the command line in-process.
func identityCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return out.String(), errb.String(), code
}

// seedIdentity writes a config with its data directory under a temporary
// directory, and the story into that engine's identity graph (the
// local store, served to attached tools, as capstan serve does). It
// returns the config path, the running engine (listening on a loopback
// port, as capstan serve's does) and stop, which stops that "capstan".
func seedIdentity(t *testing.T) (cfgPath string, eng *stream.Engine, stop func()) {
	return seedIdentityIn(t, "")
}

// seedIdentityIn is seedIdentity with identity.store set to store ("":
// the default).
func seedIdentityIn(t *testing.T, store string) (cfgPath string, eng *stream.Engine, stop func()) {
	t.Helper()
	dir := t.TempDir()
	cfgPath = filepath.Join(dir, "capstan.yaml")
	text := "server:\n  data_dir: " + filepath.Join(dir, "data") + "\nsources:\n  - name: website\n    write_key: wk_1\n"
	if store != "" {
		text += "identity:\n  store: " + store + "\n"
	}
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	eng, err = stream.Open(context.Background(), engineConfig(cfg), log)
	if err != nil {
		t.Fatal(err)
	}
	g, local, err := openIdentity(context.Background(), cfg, eng, log)
	if err != nil {
		eng.Close()
		t.Fatal(err)
	}
	stop = eng.Close
	if local != nil {
		sub, err := identity.Serve(eng.Conn(), local)
		if err != nil {
			t.Fatal(err)
		}
		stop = func() { _ = sub.Unsubscribe(); _ = local.Close(); eng.Close() }
	}
	var once sync.Once
	stop = func(f func()) func() { return func() { once.Do(f) } }(stop)
	t.Cleanup(stop)
	for _, s := range []string{
		`{"type":"page","anonymousId":"anon-1","timestamp":"2026-09-01T10:00:00Z","context":{"page":{"search":"?li_fat_id=123456"}}}`,
		`{"type":"identify","userId":"user-1","anonymousId":"anon-1","timestamp":"2026-09-01T10:05:00Z","traits":{"email":"Ann@Example.com"}}`,
		`{"type":"identify","userId":"user-2","anonymousId":"anon-2"}`,
	} {
		ev, err := event.ParseString(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Observe(context.Background(), ev, identity.Capture(ev)); err != nil {
			t.Fatal(err)
		}
	}
	return cfgPath, eng, stop
}

// TestIdentityCLI runs capstan identity against a running capstan (its
// local store, through it; and with identity.store jetstream, the bucket)
// and then against the data directory alone.
func TestIdentityCLI(t *testing.T) {
	for _, store := range []string{"", "jetstream"} {
		t.Run("store="+store, func(t *testing.T) { testIdentityCLI(t, store) })
	}
}

func testIdentityCLI(t *testing.T, store string) {
	cfgPath, _, stop := seedIdentityIn(t, store)
	emailHash, _ := linkedin.HashEmail("ann@example.com")

	// While capstan runs: the tool reaches its engine through engine.json.
	out, errs, code := identityCLI(t, "identity", "show", "--config", cfgPath, "--user-id", "user-1", "--json")
	if code != 0 {
		t.Fatalf("show: exit %d: %s", code, errs)
	}
	var p identity.Profile
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("show --json: %v\n%s", err, out)
	}
	if p.Key != identity.UserKey("user-1") || p.LiFatID != "123456" || p.EmailSHA256 != emailHash ||
		len(p.Linked) != 1 || p.Linked[0].Key != identity.AnonymousKey("anon-1") {
		t.Errorf("show --json: %+v", p)
	}
	if strings.Contains(strings.ToLower(out), "ann@example.com") {
		t.Error("show prints the email in clear")
	}

	out, errs, code = identityCLI(t, "identity", "show", "--config", cfgPath, "--anonymous-id", "anon-1")
	if code != 0 {
		t.Fatalf("show: exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"key           " + identity.AnonymousKey("anon-1") + " (anonymous)",
		"li_fat_id     123456 (event of 2026-09-01T10:00:00Z)",
		"email sha256  " + emailHash + " (event of 2026-09-01T10:05:00Z)",
		"links         " + identity.UserKey("user-1"),
		"linked:\n  key           " + identity.UserKey("user-1") + " (user)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show output lacks %q:\n%s", want, out)
		}
	}

	// With capstan stopped: the tool opens the data directory itself.
	stop()
	out, errs, code = identityCLI(t, "identity", "delete", "--config", cfgPath, "--user-id", "user-1", "--json")
	if code != 0 {
		t.Fatalf("delete: exit %d: %s", code, errs)
	}
	var del struct{ Removed []string }
	if err := json.Unmarshal([]byte(out), &del); err != nil {
		t.Fatal(err)
	}
	slices.Sort(del.Removed)
	want := []string{identity.AnonymousKey("anon-1"), identity.UserKey("user-1")}
	slices.Sort(want)
	if !slices.Equal(del.Removed, want) {
		t.Errorf("removed %v, want %v", del.Removed, want)
	}

	_, errs, code = identityCLI(t, "identity", "show", "--config", cfgPath, "--user-id", "user-1")
	if code != exitRuntime || !strings.Contains(errs, `userId "user-1": no identity profile`) {
		t.Errorf("show after delete: exit %d: %s", code, errs)
	}
	out, errs, code = identityCLI(t, "identity", "delete", "--config", cfgPath, "--anonymous-id", "anon-2")
	if code != 0 || !strings.Contains(out, "removed 2 keys") {
		t.Errorf("delete anon-2: exit %d: %s%s", code, out, errs)
	}

	for _, args := range [][]string{
		{"identity", "show", "--config", cfgPath},
		{"identity", "show", "--config", cfgPath, "--user-id", "u", "--anonymous-id", "a"},
		{"identity", "delete", "--user-id", "u"},
		{"identity", "show", "--config", cfgPath, "--user-id", "u", "extra"},
	} {
		if _, errs, code := identityCLI(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d: %s", args, code, exitUsage, errs)
		}
	}
}

// TestIdentityCLIMigrates: a data directory whose graph is in the KV
// bucket (identity.store jetstream, or a capstan before the local store)
// keeps it with the local store: the first process that opens the store
// moves the profiles there and removes the bucket.
func TestIdentityCLIMigrates(t *testing.T) {
	cfgPath, _, stop := seedIdentityIn(t, "jetstream")
	stop()
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(b), "store: jetstream", "store: auto", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errs, code := identityCLI(t, "identity", "show", "--config", cfgPath, "--user-id", "user-1")
	if code != 0 || !strings.Contains(out, "li_fat_id     123456") {
		t.Fatalf("show after the switch: exit %d: %s%s", code, out, errs)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := stream.Attach(context.Background(), engineConfig(cfg), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if _, err := eng.JetStream().KeyValue(context.Background(), stream.IdentityKV); err == nil {
		t.Error("the identity bucket is still there after the migration")
	}
}

// TestIdentityCLIRunningWithoutGraph: a capstan that runs without the
// identity graph (no destination, no admin API) does not hold the local
// store; a tool attached to its engine opens the store itself.
func TestIdentityCLIRunningWithoutGraph(t *testing.T) {
	cfgPath, _, stop := seedIdentity(t)
	stop()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := stream.Open(context.Background(), engineConfig(cfg), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	out, errs, code := identityCLI(t, "identity", "show", "--config", cfgPath, "--user-id", "user-1")
	if code != 0 || !strings.Contains(out, "li_fat_id     123456") {
		t.Fatalf("show: exit %d: %s%s", code, out, errs)
	}
}

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/stream"
)

// TestBackupGuardLocal: serve's start moves the eventId bucket's claims
// into the local guard store; a backup holds that store (a checkpoint
// written by the running capstan that holds it, or by the tool when none
// runs), and restore puts it back in the data directory.
func TestBackupGuardLocal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "capstan.yaml")
	text := "server:\n  data_dir: " + filepath.Join(dir, "data") + "\nengine:\n  guard_store: local\nsources:\n  - name: website\n    write_key: wk_1\n"
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	eng, err := stream.Open(ctx, engineConfig(cfg), log)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := eng.KV(ctx, delivery.GuardKV, delivery.GuardTTL)
	if err != nil {
		t.Fatal(err)
	}
	// A claim of an older capstan, in the bucket (the guard's key: hashed).
	if _, err := kv.Put(ctx, guardKeyForTest("li", "r1", "order-1"), []byte("0123456789abcdef")); err != nil {
		t.Fatal(err)
	}
	g, err := openGuardLocal(ctx, cfg, eng, log)
	if err != nil {
		eng.Close()
		t.Fatal(err)
	}
	sub, err := delivery.ServeGuard(eng.Conn(), g)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { _ = sub.Unsubscribe(); _ = g.Close(); eng.Close() }) }
	t.Cleanup(stop)
	if ok, err := g.Claimed(ctx, "li", "r1", "order-1"); !ok || err != nil {
		t.Fatalf("the bucket's claim after serve's start: %v %v", ok, err)
	}

	backups := map[string]string{"running": filepath.Join(dir, "b-running"), "stopped": filepath.Join(dir, "b-stopped")}
	for _, when := range []string{"running", "stopped"} {
		if when == "stopped" {
			stop()
		}
		out, errs, code := identityCLI(t, "backup", "--config", cfgPath, "--out", backups[when])
		if code != 0 || !strings.Contains(out, "eventids ") {
			t.Fatalf("backup (capstan %s): exit %d: %s%s", when, code, out, errs)
		}
	}
	for when, from := range backups {
		data := filepath.Join(dir, "restored-"+when)
		restored := filepath.Join(dir, "restored-"+when+".yaml")
		if err := os.WriteFile(restored, []byte(strings.Replace(text, filepath.Join(dir, "data"), data, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, errs, code := identityCLI(t, "restore", "--config", restored, "--from", from); code != 0 {
			t.Fatalf("restore (backup of a %s capstan): exit %d: %s%s", when, code, out, errs)
		}
		l, err := delivery.OpenGuardLocal(delivery.GuardLocalConfig{Dir: filepath.Join(data, config.DefaultGuardDir)})
		if err != nil {
			t.Fatal(err)
		}
		ok, err := l.Claimed(ctx, "li", "r1", "order-1")
		_ = l.Close()
		if !ok || err != nil {
			t.Errorf("the claim after restoring the backup of a %s capstan: %v %v", when, ok, err)
		}
	}
}

// guardKeyForTest is delivery's bucket key of (dest, scope, id).
func guardKeyForTest(dest, scope, id string) string {
	sum := sha256.Sum256([]byte(dest + "\x00" + scope + "\x00" + id))
	return "e." + hex.EncodeToString(sum[:16])
}

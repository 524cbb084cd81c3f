package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/stream"
)

// TestServeIngestsWhileMigrating: on a data directory whose identity graph
// is still in the KV bucket, serve listens and accepts events while the
// graph moves into the local store; /healthz says live, /readyz 503
// "starting", the admin API 503; once moved, /readyz is ready, the admin
// API answers, the bucket is gone and the profiles are in the store.
func TestServeIngestsWhileMigrating(t *testing.T) {
	cfgPath, _, stop := seedIdentityIn(t, "jetstream")
	stop()
	dir := filepath.Dir(cfgPath)
	text := "server:\n  addr: 127.0.0.1:0\n  data_dir: " + filepath.Join(dir, "data") +
		"\n  admin_token: adm-0123456789abcdef0123456789\nsources:\n  - name: website\n    write_key: wk_1\n"
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	release, held := make(chan struct{}), make(chan struct{})
	beforeMigrate = func(ctx context.Context) {
		close(held)
		select {
		case <-release:
		case <-ctx.Done():
		}
	}
	t.Cleanup(func() { beforeMigrate = nil })
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, cfgPath, slog.New(slog.NewTextHandler(&logs, nil)), nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	addrRe := regexp.MustCompile(`capstan listening" addr=(http://\S+)`)
	var base string
	if !eventually(20*time.Second, func() bool {
		if m := addrRe.FindStringSubmatch(logs.String()); m != nil {
			base = m[1]
		}
		return base != ""
	}) {
		t.Fatalf("serve does not listen while the graph is to be moved:\n%s", logs.String())
	}
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the migration did not start")
	}
	get := func(path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer adm-0123456789abcdef0123456789")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/track", strings.NewReader(`{"userId":"user-1","event":"E"}`))
	req.SetBasicAuth("wk_1", "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("track while migrating: %d, want 200", resp.StatusCode)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while migrating: %d", code)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, `"status":"starting"`) {
		t.Errorf("/readyz while migrating: %d %s, want 503 starting", code, body)
	}
	if code, _ := get("/admin/api/v1/identity?user_id=user-1"); code != http.StatusServiceUnavailable {
		t.Errorf("admin API while migrating: %d, want 503", code)
	}

	close(release)
	if !eventually(20*time.Second, func() bool { code, _ := get("/readyz"); return code == http.StatusOK }) {
		t.Fatalf("/readyz not ready after the migration:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "identity profiles moved from the KV bucket to the local store; bucket removed") ||
		!strings.Contains(logs.String(), "profiles=4") {
		t.Errorf("no migration line with the count:\n%s", logs.String())
	}
	if code, _ := get("/admin/api/v1/identity?user_id=user-1"); code == http.StatusServiceUnavailable {
		t.Errorf("admin API after the migration: %d", code)
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

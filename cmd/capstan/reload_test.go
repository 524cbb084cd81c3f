package main

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/config"
)

// TestServeReload runs serve from a file, rewrites the file and sends
// SIGHUP: a source added is accepted at once, the reload is logged with
// the settings that need a restart; a broken file on the next SIGHUP is
// logged and the configuration in force stays.
func TestServeReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "capstan.yaml")
	head := "server:\n  addr: 127.0.0.1:0\n  data_dir: " + filepath.Join(dir, "data") + "\nengine: {listen: none}\n"
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(head + "sources:\n  - name: website\n    write_key: wk_1\n")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, path, slog.New(slog.NewTextHandler(&logs, nil)), nil) }()
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
		t.Fatalf("serve did not say it listens:\n%s", logs.String())
	}
	track := func(key string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/track", strings.NewReader(`{"userId":"u","event":"E"}`))
		req.SetBasicAuth(key, "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	hup := func() {
		t.Helper()
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	if got := track("wk_2"); got != 401 {
		t.Fatalf("wk_2 before the reload: %d, want 401", got)
	}

	// A source added and a setting that applies only at start changed.
	write(strings.Replace(head, "server:\n", "server:\n  read_timeout: 20s\n", 1) +
		"sources:\n  - name: website\n    write_key: wk_1\n  - name: backend\n    write_key: wk_2\n")
	hup()
	if !eventually(10*time.Second, func() bool { return strings.Contains(logs.String(), "msg=reloaded") }) {
		t.Fatalf("no reload logged:\n%s", logs.String())
	}
	// The warning is logged just after the reloaded line: wait for it too.
	for _, want := range []string{"sources_added=[backend]", `msg="changed settings need a restart to apply" settings=server.read_timeout`} {
		if !eventually(5*time.Second, func() bool { return strings.Contains(logs.String(), want) }) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	if n := strings.Count(logs.String(), "msg=reloaded"); n != 1 {
		t.Errorf("%d reloaded lines, want 1", n)
	}
	if got := track("wk_2"); got != 200 {
		t.Errorf("wk_2 after the reload: %d, want 200", got)
	}

	// A broken file: logged with its place, the configuration in force stays.
	write(head + "sources:\n  - name: website\n")
	hup()
	if !eventually(10*time.Second, func() bool { return strings.Contains(logs.String(), "configuration not reloaded") }) {
		t.Fatalf("the broken configuration is not logged:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "capstan.yaml:") {
		t.Errorf("the error does not name the file and line:\n%s", logs.String())
	}
	if got := track("wk_2"); got != 200 {
		t.Errorf("wk_2 after a broken reload: %d, want 200", got)
	}
	if got := track("wk_1"); got != 200 {
		t.Errorf("wk_1 after a broken reload: %d, want 200", got)
	}
}

// TestNeedRestart: every changed setting but the sources is named, by its
// YAML path, and nothing else.
func TestNeedRestart(t *testing.T) {
	const base = `
server: {addr: ":8080", insecure_plaintext_secrets: true}
engine: {sync: always}
sources:
  - name: website
    write_key: wk_1
destinations:
  - name: li
    auth: {access_token: t}
    mappings:
      - name: m
        conversion_rule: {id: 1}
`
	parse := func(t *testing.T, text string) *config.Config {
		t.Helper()
		cfg, err := config.Parse("test.yaml", []byte(text), os.LookupEnv)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	tests := []struct {
		name, from, to string
		want           string
	}{
		{"nothing", base, base, ""},
		{"sources only", "write_key: wk_1", "write_key: wk_2", ""},
		{"server addr", `addr: ":8080"`, `addr: ":9090"`, "server.addr"},
		{"engine sync", `sync: always}`, "sync: 1s}\n", "engine.sync"},
		{"guard memory", `sync: always}`, "sync: always, guard_memory_bytes: 67108864}\n", "engine.guard_memory_bytes"},
		{"credentials", "access_token: t}", "access_token: u}", "destinations[li].auth"},
		{"mappings", "conversion_rule: {id: 1}", "conversion_rule: {id: 2}", "destinations[li].mappings"},
		{"destination renamed", "name: li", "name: li2", "destinations[li2],destinations[li]"},
		{"admin token", "insecure_plaintext_secrets: true}", "insecure_plaintext_secrets: true, admin_token: x}", "server.admin_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(needRestart(parse(t, base), parse(t, strings.Replace(base, tt.from, tt.to, 1))), ",")
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

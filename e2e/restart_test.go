package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStartDuringShutdown starts a second capstan serve on the data
// directory of one that is shutting down (SIGTERM with requests in
// flight), again and again until one starts. While the first holds the
// directory each second one exits 1, saying that the data directory (by
// name) is in use by another capstan process, and touches nothing; once
// the first has exited 0, the next one starts cleanly. Neither panics, no
// store is damaged (the index and the local stores open without a
// rebuild), and every acknowledged event is stored once. The admin API is
// on, so that the identity graph's local store is opened and closed too.
func TestStartDuringShutdown(t *testing.T) {
	cfg := newConfig(t)
	dataDir := filepath.Join(filepath.Dir(cfg), "data")
	// With the admin API, the identity graph's local store opens too.
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text = []byte(strings.Replace(string(text), `addr: "127.0.0.1:0"`, `addr: "127.0.0.1:0"`+"\n  admin_token: restart-test-admin-token", 1))
	if err := os.WriteFile(cfg, text, 0o600); err != nil {
		t.Fatal(err)
	}
	hc := newHTTPClient(t)
	l := newLedger()
	a := startServer(t, cfg)

	var b *server
	refused := 0
	res := load(t, hc, a.URL, l, "overlap", 6, 40, func() {
		a.Signal(syscall.SIGTERM)
		deadline := time.Now().Add(60 * time.Second)
		for b == nil && time.Now().Before(deadline) {
			s := launchServer(t, cfg)
			select {
			case url := <-s.log.listening:
				s.log.listening <- url // for waitReady
				b = s
			case <-s.exited:
				code, out := s.cmd.ProcessState.ExitCode(), s.Output()
				want := "data directory " + dataDir + " is in use by another capstan process"
				if code != 1 || !strings.Contains(out, want) || badOutput(out) != "" {
					t.Fatalf("a capstan started while another shut down on its data directory exited %d, want 1 and %q:\n%s", code, want, out)
				}
				refused++
			case <-time.After(30 * time.Second):
				t.Fatalf("a capstan started while another shut down neither listened nor exited in 30s:\n%s", s.Output())
			}
		}
	})
	if b == nil {
		t.Fatalf("no capstan started within 60s of the first one's SIGTERM (%d refused)", refused)
	}
	codeA := a.Wait(30 * time.Second)
	t.Logf("%d requests acknowledged, %d in flight at SIGTERM; %d starts refused while the first shut down", res.acked, res.inflightAtStop, refused)
	if refused == 0 {
		t.Logf("the first capstan had exited before the second one tried: no overlap this time")
	}
	if codeA != 0 || badOutput(a.Output()) != "" {
		t.Errorf("the first capstan exited %d (want 0) or printed %q:\n%s", codeA, badOutput(a.Output()), a.Output())
	}
	b.waitReady(30 * time.Second)
	b.Signal(syscall.SIGTERM)
	if code := b.Wait(30 * time.Second); code != 0 || badOutput(b.Output()) != "" {
		t.Errorf("the second capstan exited %d (want 0) or printed %q:\n%s", code, badOutput(b.Output()), b.Output())
	}
	checkStored(t, cfg, l, "after a start during a shutdown")
	// A third start finds every store as the second one left it.
	c := startServer(t, cfg)
	c.Signal(syscall.SIGTERM)
	if code := c.Wait(30 * time.Second); code != 0 || badOutput(c.Output()) != "" {
		t.Errorf("the third capstan exited %d (want 0) or printed %q:\n%s", code, badOutput(c.Output()), c.Output())
	}
}

// badOutput returns the first sign in a capstan's output of a panic, a
// fatal store error or a damaged store; "" when there is none.
func badOutput(out string) string {
	for _, s := range []string{"panic:", "fatal error", "fatal store error", "damaged", "DATA RACE"} {
		if strings.Contains(out, s) {
			return s
		}
	}
	return ""
}

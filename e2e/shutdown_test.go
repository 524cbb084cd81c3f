package e2e

import (
	"syscall"
	"testing"
	"time"
)

// TestGracefulShutdown sends SIGTERM while six workers have requests in
// flight: every request answered 200 is stored, and capstan exits 0.
func TestGracefulShutdown(t *testing.T) {
	cfg := newConfig(t)
	hc := newHTTPClient(t)
	l := newLedger()
	srv := startServer(t, cfg)

	res := load(t, hc, srv.URL, l, "term", 6, 40, func() {
		srv.Signal(syscall.SIGTERM)
	})
	code := srv.Wait(30 * time.Second)
	t.Logf("%d requests acknowledged (%d events), %d refused, %d unanswered; %d in flight at SIGTERM",
		res.acked, len(l.ackedIDs()), res.refused, res.failed, res.inflightAtStop)
	if code != 0 {
		t.Errorf("capstan serve exited with %d after SIGTERM, want 0:\n%s", code, srv.Output())
	}
	if res.inflightAtStop == 0 {
		t.Logf("no request was in flight at the moment of SIGTERM")
	}
	counts := checkStored(t, cfg, l, "after SIGTERM")
	t.Logf("%d events stored, %d acknowledged", len(counts), len(l.ackedIDs()))
}

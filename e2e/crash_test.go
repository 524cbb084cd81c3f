package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// checkStored reads the stream and checks that every acknowledged event is
// there exactly once, that no event is there twice, and that nothing is
// there that was not sent. It returns the messageIds stored.
func checkStored(t testing.TB, cfg string, l *ledger, when string) map[string]int {
	t.Helper()
	counts := countByMessageID(tailEvents(t, cfg))
	attempted := map[string]bool{}
	for _, id := range l.attemptedIDs() {
		attempted[id] = true
	}
	lost := 0
	for _, id := range l.ackedIDs() {
		if counts[id] == 0 {
			lost++
			if lost <= 10 {
				t.Errorf("%s: event %s was acknowledged with a 200 but is not in the stream", when, id)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%s: %d acknowledged events lost", when, lost)
	}
	for id, n := range counts {
		if n > 1 {
			t.Errorf("%s: event %s is stored %d times", when, id, n)
		}
		if !attempted[id] {
			t.Errorf("%s: event %q is stored but was never sent", when, id)
		}
	}
	return counts
}

// TestCrashKill kills `capstan serve` with SIGKILL, first right after a 200,
// then four times while concurrent requests are in flight, restarting it on
// the same data directory each time: every event that got a 200 must be in
// the stream exactly once. Finally everything is sent again after a restart:
// all of it is then stored exactly once (de-duplication survives restarts).
func TestCrashKill(t *testing.T) {
	cfg := newConfig(t)
	hc := newHTTPClient(t)
	l := newLedger()
	ctx := context.Background()

	// Round 0: sequential requests, SIGKILL right after the last 200.
	srv := startServer(t, cfg)
	for n := range 40 {
		r := makeRequest("kill0", n)
		l.sent(r)
		status, ans, err := post(ctx, hc, srv.URL, r.path, r.body)
		if err != nil || status != http.StatusOK || !ans.Success || ans.Dropped > 0 || ans.Duplicates > 0 {
			t.Fatalf("request %d: status %d %+v %v", n, status, ans, err)
		}
		l.ack(r.ids)
	}
	srv.Kill()
	t.Logf("round 0: %d events acknowledged, then SIGKILL", len(l.ackedIDs()))

	// Rounds 1 to 4: restart, check, load from 6 workers, SIGKILL mid-flight.
	for round := 1; round <= 4; round++ {
		srv = startServer(t, cfg)
		checkStored(t, cfg, l, fmt.Sprintf("after restart %d", round))
		before := len(l.ackedIDs())
		res := load(t, hc, srv.URL, l, fmt.Sprintf("kill%d", round), 6, 40, srv.Kill)
		t.Logf("round %d: %d requests acknowledged (%d events), %d refused, %d unanswered; %d in flight at SIGKILL",
			round, res.acked, len(l.ackedIDs())-before, res.refused, res.failed, res.inflightAtStop)
		if t.Failed() {
			return
		}
	}

	// Restart: everything acknowledged is there; then send it all again.
	srv = startServer(t, cfg)
	stored := checkStored(t, cfg, l, "after the last restart")
	t.Logf("after the last restart: %d events stored of %d sent (%d acknowledged)", len(stored), len(l.attemptedIDs()), len(l.ackedIDs()))

	// Retries that overlap a stored batch only in part (a client that
	// re-batches after a crash): its second half again, with a new event.
	// Each event is stored once: the stored ones are duplicates.
	overlaps := 0
	for _, r := range l.allRequests() {
		if len(r.ids) < 2 || overlaps == 20 {
			continue
		}
		ids := append(append([]string{}, r.ids[len(r.ids)/2:]...), fmt.Sprintf("overlap-%d", overlaps))
		batch := make([]any, len(ids))
		for i, id := range ids {
			batch[i] = trackEvent(id, 900000+overlaps*10+i)
		}
		o := sentRequest{path: "/v1/batch", body: marshal(map[string]any{"batch": batch}), ids: ids}
		l.sent(o)
		status, ans, err := post(ctx, hc, srv.URL, o.path, o.body)
		if err != nil || status != http.StatusOK || !ans.Success {
			t.Fatalf("overlapping retry %d: status %d %+v %v", overlaps, status, ans, err)
		}
		l.ack(o.ids)
		wantDup := 0
		for _, id := range ids {
			if stored[id] > 0 {
				wantDup++
			}
		}
		if ans.Duplicates != wantDup || ans.Accepted != nil && *ans.Accepted != len(ids)-wantDup {
			t.Errorf("overlapping retry %d (%d events, %d stored): answer %+v, want %d duplicates", overlaps, len(ids), wantDup, ans, wantDup)
		}
		overlaps++
	}
	stored = checkStored(t, cfg, l, "after the overlapping retries")
	reqs := l.allRequests()
	for i, r := range reqs {
		status, ans, err := post(ctx, hc, srv.URL, r.path, r.body)
		if err != nil || status != http.StatusOK || !ans.Success {
			t.Fatalf("re-send %d (%s): status %d %+v %v", i, r.path, status, ans, err)
		}
		wantDup := 0
		for _, id := range r.ids {
			if stored[id] > 0 {
				wantDup++
			}
		}
		gotAccepted := len(r.ids)
		if ans.Accepted != nil {
			gotAccepted = *ans.Accepted
		}
		if ans.Duplicates != wantDup || gotAccepted != len(r.ids)-wantDup || ans.Dropped != 0 {
			t.Errorf("re-send %d (%s, %d events, %d already stored): answer %+v, want %d duplicates and %d accepted",
				i, r.path, len(r.ids), wantDup, ans, wantDup, len(r.ids)-wantDup)
		}
	}
	counts := checkStored(t, cfg, l, "after re-sending everything")
	for _, id := range l.attemptedIDs() {
		if counts[id] != 1 {
			t.Errorf("after re-sending everything: event %s is stored %d times, want 1", id, counts[id])
		}
	}

	// A last SIGKILL, and the stream read with no server running (events
	// tail then opens the data directory itself).
	srv.Kill()
	start := time.Now()
	counts = checkStored(t, cfg, l, "read offline after the last SIGKILL")
	if len(counts) != len(l.attemptedIDs()) {
		t.Errorf("read offline: %d events, want %d", len(counts), len(l.attemptedIDs()))
	}
	t.Logf("%d requests, %d distinct events, %d acknowledged before their SIGKILL; offline read took %s",
		len(reqs), len(l.attemptedIDs()), len(l.ackedIDs()), time.Since(start).Round(time.Millisecond))
}

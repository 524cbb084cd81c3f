package e2e

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestClusterDuplicatesShown: two capstan replicas on the external NATS
// at 127.0.0.1:4222 (skipped when absent) each accept the same messageId
// at the same moment, in requests that differ otherwise (so that
// JetStream's own duplicate window, which sees whole requests, lets both
// through): the event is stored twice. `capstan events tail` marks the later
// copy in stream order "duplicate of <pos>" of the first (--json:
// "duplicateOf"), with the verdict delivery uses, asked of a running
// replica; with no replica running it says so and marks nothing (unless
// another capstan on the shared server answers).
func TestClusterDuplicatesShown(t *testing.T) {
	requireExternalNATS(t)
	replica := func(name string) (*server, string) {
		dir := t.TempDir()
		cfg := writeConfig(t, dir, filepath.Join(dir, "data-"+name), "  nats_url: "+externalNATS+"\n")
		return startServer(t, cfg), cfg
	}
	a, cfg := replica("a")
	b, _ := replica("b")
	hc := newHTTPClient(t)
	ctx := context.Background()

	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	prefix := fmt.Sprintf("dupview-%s-%s", time.Now().UTC().Format("150405"), hex.EncodeToString(nonce[:]))
	batch := func(ids ...string) []byte {
		var evs []string
		for _, id := range ids {
			evs = append(evs, fmt.Sprintf(`{"type":"track","event":"Dup Test","userId":"u-%s","messageId":%q}`, prefix, id))
		}
		return []byte(`{"batch":[` + strings.Join(evs, ",") + `]}`)
	}
	// Rounds until one messageId was stored by both replicas: both answer
	// it accepted, not a duplicate.
	var twice []string // ids stored twice
	ours := map[string]bool{}
	for round := 0; round < 40 && len(twice) == 0; round++ {
		shared := fmt.Sprintf("%s-shared-%d", prefix, round)
		ours[shared] = true
		var wg sync.WaitGroup
		var start sync.WaitGroup
		start.Add(1)
		answers := make([]ingestAnswer, 2)
		for i, srv := range []*server{a, b} {
			own := fmt.Sprintf("%s-own-%d-%d", prefix, round, i)
			ours[own] = true
			wg.Go(func() {
				start.Wait()
				status, ans, err := post(ctx, hc, srv.URL, "/v1/batch", batch(shared, own))
				if err != nil || status != http.StatusOK {
					t.Errorf("replica %d: status %d %v", i, status, err)
				}
				answers[i] = ans
			})
		}
		start.Done()
		wg.Wait()
		if answers[0].Duplicates == 0 && answers[1].Duplicates == 0 {
			twice = append(twice, shared)
		}
	}
	if len(twice) == 0 {
		t.Fatalf("in 40 rounds the two replicas never both stored one messageId (each replica's follower saw the other's first): nothing to check")
	}
	t.Logf("stored by both replicas: %v", twice)

	// check reads tail's lines of our events: per messageId the copies in
	// stream order; the first unmarked, every later one a duplicate of it.
	check := func(evs []storedEvent, marked bool) {
		t.Helper()
		copies := map[string][]storedEvent{}
		for _, ev := range evs {
			if id := ev.MessageID(); ours[id] {
				copies[id] = append(copies[id], ev)
			}
		}
		for _, id := range twice {
			if len(copies[id]) != 2 {
				t.Errorf("%s: %d copies in the stream, want 2", id, len(copies[id]))
			}
		}
		for id, cs := range copies {
			slices.SortFunc(cs, func(x, y storedEvent) int { return comparePos(t, x.Pos, y.Pos) })
			for n, c := range cs {
				want := ""
				if n > 0 && marked {
					want = cs[0].Pos
				}
				if c.DuplicateOf != want {
					t.Errorf("%s at %s: duplicateOf %q, want %q", id, c.Pos, c.DuplicateOf, want)
				}
			}
		}
	}
	check(tailEvents(t, cfg, "--since", "15m", "--source", testSource), true)

	// The text form says it too.
	code, stdout, stderr := runCapstan(t, filepath.Dir(cfg), nil, 60*time.Second, "events", "tail", "--config", cfg, "--since", "15m")
	if code != 0 {
		t.Fatalf("events tail: exit %d: %s", code, stderr)
	}
	var line string
	for _, l := range strings.Split(stdout, "\n") {
		if strings.Contains(l, "messageId="+twice[0]+"  duplicate of ") {
			line = l
		}
	}
	if line == "" {
		t.Errorf("events tail prints no line for %s marked \"duplicate of\":\n%s", twice[0], stdout)
	}

	// No replica running: every event, none marked, and a warning.
	a.Kill()
	b.Kill()
	code, stdout, stderr = runCapstan(t, filepath.Dir(cfg), nil, 60*time.Second, "events", "tail", "--config", cfg, "--json", "--since", "15m", "--source", testSource)
	if code != 0 {
		t.Fatalf("events tail without replicas: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "duplicates are not marked") {
		// The NATS server is shared: another run's capstan (of this
		// release) may have answered, with the same verdict.
		t.Logf("events tail without our replicas got a verdict (another capstan on %s answered?); stderr: %s", externalNATS, stderr)
		check(parseTail(t, stdout), true)
		return
	}
	check(parseTail(t, stdout), false)
}

// comparePos orders two positions "seq:index".
func comparePos(t *testing.T, x, y string) int {
	var xs, xi, ys, yi uint64
	if _, err := fmt.Sscanf(x, "%d:%d", &xs, &xi); err != nil {
		t.Fatalf("position %q: %v", x, err)
	}
	if _, err := fmt.Sscanf(y, "%d:%d", &ys, &yi); err != nil {
		t.Fatalf("position %q: %v", y, err)
	}
	if xs != ys {
		return cmp.Compare(xs, ys)
	}
	return cmp.Compare(xi, yi)
}

// TestConsoleClusterDuplicate: the console of a replica (cluster mode, no
// destination: the shared server keeps no consumer of ours) marks, in Live
// events, the later copy of an event two replicas both stored, with a
// badge whose accessible name is "Duplicate of event <pos of the first>".
func TestConsoleClusterDuplicate(t *testing.T) {
	requireExternalNATS(t)
	requireNodeModules(t)
	replica := func(name, server string) (*server, string) {
		dir := t.TempDir()
		cfg := writeConfig(t, dir, filepath.Join(dir, "data-"+name), "  nats_url: "+externalNATS+"\n")
		if server != "" {
			b, err := os.ReadFile(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(cfg, []byte(strings.Replace(string(b), "\nserver:\n", "\nserver:\n"+server, 1)), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return startServer(t, cfg), cfg
	}
	a, cfg := replica("a", fmt.Sprintf("  admin_token: %q\n", consoleAdminToken))
	b, _ := replica("b", "")
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	run := fmt.Sprintf("dupconsole-%s-%s", time.Now().UTC().Format("150405"), hex.EncodeToString(nonce[:]))
	var got struct {
		Shared       string   `json:"shared"`
		Rows         int      `json:"rows"`
		Marks        int      `json:"marks"`
		MarkName     string   `json:"markName"`
		MarkText     string   `json:"markText"`
		MarkedRowPos string   `json:"markedRowPos"`
		RowPositions []string `json:"rowPositions"`
	}
	runConsole(t, "console-duplicates.mjs", a.URL, map[string]any{"urlA": a.URL, "urlB": b.URL, "writeKey": testWriteKey, "run": run}, &got)
	if got.Shared == "" {
		t.Fatalf("in 40 rounds the two replicas never both stored one messageId: nothing to check")
	}
	// The positions of the two copies, from events tail.
	var pos []string
	for _, ev := range tailEvents(t, cfg, "--since", "15m", "--source", testSource) {
		if ev.MessageID() == got.Shared {
			pos = append(pos, ev.Pos)
		}
	}
	if len(pos) != 2 {
		t.Fatalf("%s stored %d times, want 2 (%v)", got.Shared, len(pos), pos)
	}
	slices.SortFunc(pos, func(x, y string) int { return comparePos(t, x, y) })
	if got.Rows != 2 || got.Marks != 1 {
		t.Errorf("Live events: %d rows of %s with %d marks, want 2 rows, 1 mark (rows %v)", got.Rows, got.Shared, got.Marks, got.RowPositions)
	}
	if want := "Duplicate of event " + pos[0]; got.MarkName != want {
		t.Errorf("the mark is named %q, want %q", got.MarkName, want)
	}
	if got.MarkedRowPos != pos[1] {
		t.Errorf("the marked row is event %s, want the later copy %s (copies %v)", got.MarkedRowPos, pos[1], pos)
	}
	if got.MarkText != "duplicate" {
		t.Errorf("the mark reads %q, want duplicate", got.MarkText)
	}
}

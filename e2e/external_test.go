package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const externalNATS = "nats://127.0.0.1:4222"

// requireExternalNATS skips the test unless a NATS server with JetStream
// answers at 127.0.0.1:4222.
// It returns the server's version.
func requireExternalNATS(t *testing.T) string {
	t.Helper()
	const skip = "no NATS server with JetStream at 127.0.0.1:4222: external-engine test skipped"
	c, err := net.DialTimeout("tcp", "127.0.0.1:4222", time.Second)
	if err != nil {
		t.Skip(skip)
	}
	c.Close()
	nc, err := nats.Connect(externalNATS, nats.Timeout(3*time.Second), nats.NoReconnect(), nats.Name("capstan-e2e"))
	if err != nil {
		t.Skipf("%s (%v)", skip, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Skipf("%s (%v)", skip, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		t.Skipf("%s (%v)", skip, err)
	}
	return nc.ConnectedServerVersion()
}

// TestExternalEngine runs capstan serve against an external NATS server:
// events land in its EVENTS stream, and a re-sent batch is de-duplicated.
// The stream is shared with other runs and other users of that server, so
// the test works only with its own messageIds and deletes nothing.
func TestExternalEngine(t *testing.T) {
	version := requireExternalNATS(t)
	t.Logf("external NATS server %s at %s", version, externalNATS)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, filepath.Join(dir, "data"), "  nats_url: "+externalNATS+"\n")
	srv := startServer(t, cfg)
	hc := newHTTPClient(t)
	ctx := context.Background()

	// The start-up check names the server's version and what capstan does
	// about it: older than 2.12 it falls back to writing events one by one;
	// without engine.monitor_url the sync setting cannot be checked.
	checks := []string{`msg="external NATS cluster" component=stream server=`, "version=" + version, "cannot check the NATS servers' jetstream.sync_interval"}
	if !versionAtLeast(version, 2, 12) {
		checks = append(checks, "atomic_batches=false", "falls back to writing events one by one")
	}
	for _, want := range checks {
		if !strings.Contains(srv.Output(), want) {
			t.Errorf("start-up log lacks %q:\n%s", want, srv.Output())
		}
	}

	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	prefix := fmt.Sprintf("ext-%s-%s", time.Now().UTC().Format("20060102T150405"), hex.EncodeToString(nonce[:]))
	var reqs []sentRequest
	for n := range 4 { // n = 0 and 3 are single track calls, 1 and 2 batches
		reqs = append(reqs, makeRequest(prefix, n))
	}
	want := map[string]bool{}
	for _, r := range reqs {
		status, ans, err := post(ctx, hc, srv.URL, r.path, r.body)
		if err != nil || status != http.StatusOK || !ans.Success || ans.Duplicates != 0 || ans.Dropped != 0 {
			t.Fatalf("%s: status %d %+v %v", r.path, status, ans, err)
		}
		for _, id := range r.ids {
			want[id] = true
		}
	}
	// Sending a batch again stores nothing new.
	status, ans, err := post(ctx, hc, srv.URL, reqs[1].path, reqs[1].body)
	if err != nil || status != http.StatusOK || ans.Duplicates != len(reqs[1].ids) || ans.Accepted == nil || *ans.Accepted != 0 {
		// With a server older than 2.12 (no atomic batch publish), capstan's
		// group commit turns into plain publishes of which only the last is
		// acknowledged: duplicates are dropped by the server but counted as
		// accepted, and a failure of any but the last record goes unnoticed.
		t.Errorf("re-sent batch of %d to NATS %s: status %d %+v %v, want %d duplicates and 0 accepted",
			len(reqs[1].ids), version, status, ans, err, len(reqs[1].ids))
	}

	evs := tailEvents(t, cfg, "--since", "15m", "--source", testSource)
	got := map[string]int{}
	for _, ev := range evs {
		id := ev.MessageID()
		if !want[id] {
			continue // another run's event
		}
		got[id]++
		var doc struct {
			Type       string `json:"type"`
			Event      string `json:"event"`
			Properties struct {
				Padding string `json:"padding"`
			} `json:"properties"`
		}
		if err := json.Unmarshal(ev.Event, &doc); err != nil || doc.Type != "track" || doc.Event != "Crash Test" || len(doc.Properties.Padding) != 200 {
			t.Errorf("event %s stored as %s", id, ev.Event)
		}
		if ev.Subject != "events."+testSource+".seg" {
			t.Errorf("event %s on subject %q", id, ev.Subject)
		}
	}
	for id := range want {
		if got[id] != 1 {
			t.Errorf("event %s is in the external stream %d times, want 1", id, got[id])
		}
	}
	t.Logf("%d events found in the shared EVENTS stream (%d lines read)", len(got), len(evs))
}

// versionAtLeast reports whether a nats-server version ("v2.9.10") is at
// least major.minor.
func versionAtLeast(version string, major, minor int) bool {
	var ma, mi int
	if _, err := fmt.Sscanf(strings.TrimPrefix(version, "v"), "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

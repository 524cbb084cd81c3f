package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUpgradeMovesBuckets: a data directory written by capstan serve with
// the identity graph and the eventId guard in their KV buckets
// (identity.store and engine.guard_store jetstream, the stores of the
// releases before the local ones), then served with the default (auto):
// the first start moves both buckets into data_dir/identity and
// data_dir/eventids and removes them, saying so in the log; the graph
// still enriches (a known user's event gets the li_fat_id seen before the
// switch) and the guard still knows what was sent (a replay of an order
// sent before the switch is not sent again).
func TestUpgradeMovesBuckets(t *testing.T) {
	sb := startSandbox(t, "--token", "upgrade-token")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfg := writeReconcileConfig(t, dir, data, reconcileDest{sandbox: sb, accessToken: "upgrade-token"})
	orig, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	setStores := func(store string) {
		t.Helper()
		text := strings.Replace(string(orig), "engine:\n  sync: always\n", "engine:\n  sync: always\n  guard_store: "+store+"\n", 1)
		text += "identity:\n  store: " + store + "\n"
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	streams := filepath.Join(data, "jetstream", "jetstream", "$G", "streams")
	bucket := func(name string) bool {
		_, err := os.Stat(filepath.Join(streams, "KV_"+name))
		return err == nil
	}

	// Before: the buckets hold the graph and the sent conversion.
	setStores("jetstream")
	srv := startServer(t, cfg)
	hc := newHTTPClient(t)
	sendEvents(t, hc, srv.URL, []map[string]any{orderEvent("order-1", "wc_order_7001", 149)})
	waitProcessed(t, hc, srv.URL, 1, 1, 0, 30*time.Second)
	srv.Signal(syscall.SIGTERM)
	if code := srv.Wait(60 * time.Second); code != 0 {
		t.Fatalf("capstan serve (jetstream stores) exited %d", code)
	}
	if !bucket("identity") || !bucket("eventids") {
		t.Fatalf("the jetstream stores wrote no buckets in %s", streams)
	}
	if _, err := os.Stat(filepath.Join(data, "identity")); err == nil {
		t.Fatal("identity.store jetstream made a local store")
	}

	// After: auto, the local stores.
	setStores("auto")
	srv = startServer(t, cfg)
	out := srv.Output()
	for _, want := range []string{
		"identity profiles moved from the KV bucket to the local store; bucket removed",
		"eventId guard moved from the KV bucket to the local store; bucket removed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no log line %q at the first start with auto:\n%s", want, out)
		}
	}
	if bucket("identity") || bucket("eventids") {
		t.Errorf("buckets left after the migration in %s", streams)
	}
	// The guard: a replay of the order (new messageId) is known as sent.
	sendEvents(t, hc, srv.URL, []map[string]any{orderEvent("order-1-replay", "wc_order_7001", 149)})
	waitProcessed(t, hc, srv.URL, 1, 1, 0, 30*time.Second)
	if recs := sb.stored(); len(recs) != 1 {
		t.Errorf("after the upgrade the replayed order was sent again: %d records, want 1", len(recs))
	}
	if n := metricValue(t, hc, srv.URL, "capstan_delivery_already_sent_total", `destination="linkedin",mapping="Orders"`); n != 1 {
		t.Errorf("capstan_delivery_already_sent_total = %v, want 1 (the replayed order)", n)
	}
	// The graph: buyer-1's sign-up, without a click id, gets the one seen
	// before the switch.
	signUp := map[string]any{"type": "track", "event": "Sign Up", "userId": "buyer-1", "messageId": "signup-after-upgrade",
		"timestamp": time.Now().UTC().Format(time.RFC3339Nano)}
	sendEvents(t, hc, srv.URL, []map[string]any{signUp})
	convs := sb.waitConversions(2, 30*time.Second, "the sign-up after the upgrade")
	if v, _ := convs[len(convs)-1].userID("LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID"); v != "lfi-buyer-1" {
		t.Errorf("the sign-up after the upgrade has li_fat_id %q, want lfi-buyer-1 (from the migrated graph)", v)
	}
	// A second start has nothing to move.
	srv.Signal(syscall.SIGTERM)
	if code := srv.Wait(60 * time.Second); code != 0 {
		t.Fatalf("capstan serve (auto) exited %d", code)
	}
	srv = startServer(t, cfg)
	if strings.Contains(srv.Output(), "moving the KV bucket") {
		t.Errorf("the second start migrates again:\n%s", srv.Output())
	}
}

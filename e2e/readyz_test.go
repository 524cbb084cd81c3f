package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReadyzWhileTheStoreIsFull is the end-to-end regression test of issue
// 17: with the EVENTS stream at engine.max_bytes every write was refused
// (503 to the clients) while /readyz answered 200. It now answers 503 with
// the store's reason, and 200 again once a write succeeds (here after an
// operator purged the stream).
func TestReadyzWhileTheStoreIsFull(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, filepath.Join(dir, "data"), "  sync: always\n  max_bytes: 65536\n")
	srv := startServer(t, cfg)
	hc := newHTTPClient(t)
	ctx := context.Background()

	track := func(id string) (int, ingestAnswer) {
		t.Helper()
		ev := trackEvent(id, 0)
		// Random hex, not a repeated byte: segments are compressed (S2),
		// and 4,000 x's would take a few bytes of the stream.
		ev["properties"].(map[string]any)["padding"] = randomHex(4000)
		b, _ := json.Marshal(ev)
		status, ans, err := post(ctx, hc, srv.URL, "/v1/track", b)
		if err != nil {
			t.Fatalf("track %s: %v", id, err)
		}
		return status, ans
	}
	refused := false
	for i := 0; i < 100 && !refused; i++ {
		switch status, ans := track(fmt.Sprint("full-", i)); status {
		case http.StatusOK:
		case http.StatusServiceUnavailable:
			refused = true
		default:
			t.Fatalf("track %d: %d %+v", i, status, ans)
		}
	}
	if !refused {
		t.Fatal("a stream of 64 KiB took 400 KB of events")
	}
	r := readyz(t, hc, srv.URL)
	if r.HTTPStatus != http.StatusServiceUnavailable || r.Status != "unavailable" ||
		!strings.Contains(r.Engine, "refuses writes") || !strings.Contains(r.Engine, "maximum bytes exceeded") {
		t.Fatalf("/readyz while the store refuses every write: %d %+v, want 503 with the reason", r.HTTPStatus, r)
	}

	// Room again: the next write succeeds and capstan is ready.
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := eventsStream(t, cfg).Purge(pctx); err != nil {
		t.Fatalf("purge EVENTS: %v", err)
	}
	if status, ans := track("after-purge"); status != http.StatusOK {
		t.Fatalf("track after the purge: %d %+v", status, ans)
	}
	if r := readyz(t, hc, srv.URL); r.HTTPStatus != http.StatusOK || r.Status != "ready" {
		t.Fatalf("/readyz after a successful write: %d %+v, want 200", r.HTTPStatus, r)
	}
}

// randomHex returns n hex digits of random bytes: text that compression
// cannot shrink.
func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)[:n]
}

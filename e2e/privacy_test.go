package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPrivacyDelete is issue 17's "privacy deletion everywhere" end to
// end, against the real binary: `capstan privacy delete` beside a running
// capstan serve, and POST /admin/api/privacy/delete, erase people's stored
// events and dead letters (the graph too) and suppress them: their later events, by userId,
// by a linked anonymousId or by email, reach LinkedIn no more, while other
// people's still do.
func TestPrivacyDelete(t *testing.T) {
	const adminToken = "e2e-privacy-admin"
	sb := startSandbox(t, "--token", "privacy-token")
	dir := t.TempDir()
	cfg := writeDeliveryConfig(t, dir, "capstan.yaml", filepath.Join(dir, "data"), adminToken, linkedInDest{sandbox: sb, accessToken: "privacy-token"})
	srv := startServer(t, cfg)
	hc := newHTTPClient(t)

	send := func(events ...map[string]any) {
		t.Helper()
		status, _, err := post(t.Context(), hc, srv.URL, "/v1/batch", marshal(map[string]any{"batch": events}))
		if err != nil || status != http.StatusOK {
			t.Fatalf("POST /v1/batch: %d, %v", status, err)
		}
	}
	ev := func(id string, fields map[string]any) map[string]any {
		e := map[string]any{"type": "track", "event": "Sign Up", "messageId": id, "timestamp": time.Now().UTC().Format(time.RFC3339Nano)}
		for k, v := range fields {
			e[k] = v
		}
		return e
	}
	send(
		map[string]any{"type": "identify", "messageId": "p-ident", "userId": "alice-e2e", "anonymousId": "alice-browser", "traits": map[string]any{"email": "alice@example.com"}},
		ev("p-alice-1", map[string]any{"userId": "alice-e2e"}),
		ev("p-carol-1", map[string]any{"userId": "carol-e2e", "context": map[string]any{"traits": map[string]any{"email": "carol@example.com"}}}),
		ev("p-dave-1", map[string]any{"userId": "dave-e2e", "traits": map[string]any{"email": "dave@example.com"}}),
		// Too old for LinkedIn: a dead letter about alice.
		ev("p-alice-old", map[string]any{"userId": "alice-e2e", "timestamp": time.Now().Add(-100 * 24 * time.Hour).UTC().Format(time.RFC3339Nano)}),
	)
	waitProcessed(t, hc, srv.URL, 5, 3, 1, 30*time.Second)

	// The command line, beside the running server.
	code, stdout, stderr := runCapstan(t, dir, nil, 60*time.Second, "privacy", "delete", "--config", cfg, "--user-id", "alice-e2e", "--json")
	if code != 0 {
		t.Fatalf("capstan privacy delete: exit %d:\n%s%s", code, stdout, stderr)
	}
	var rep struct {
		IDKind             string  `json:"idKind"`
		GraphKeysRemoved   int     `json:"graphKeysRemoved"`
		EventsDeleted      int     `json:"eventsDeleted"`
		DeadLettersDeleted int     `json:"deadLettersDeleted"`
		Suppressed         int     `json:"suppressed"`
		Seconds            float64 `json:"seconds"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if rep.IDKind != "userId" || rep.GraphKeysRemoved != 2 || rep.EventsDeleted != 3 || rep.DeadLettersDeleted != 1 || rep.Suppressed != 3 {
		t.Errorf("CLI report %s", stdout)
	}

	// The admin API, by email.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/admin/api/privacy/delete", strings.NewReader(`{"email":"Carol@Example.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(buf.String(), `"eventsDeleted":1`) || !strings.Contains(buf.String(), `"idKind":"email"`) {
		t.Errorf("POST /admin/api/privacy/delete: %d %s", resp.StatusCode, buf.String())
	}

	for _, e := range tailEvents(t, cfg) {
		if s := string(e.Event); strings.Contains(s, "alice") || strings.Contains(s, "carol") {
			t.Errorf("stored event %d survived the deletion: %s", e.Seq, s)
		}
	}

	// Later events: the deleted people's are suppressed, dave's delivered.
	send(
		ev("p-alice-2", map[string]any{"userId": "alice-e2e"}),
		ev("p-alice-3", map[string]any{"anonymousId": "alice-browser"}),
		ev("p-carol-2", map[string]any{"anonymousId": "someone", "properties": map[string]any{"email": "carol@example.com"}}),
		ev("p-dave-2", map[string]any{"userId": "dave-e2e", "traits": map[string]any{"email": "dave@example.com"}}),
	)
	if !poll(30*time.Second, func() bool {
		return deliveryEvents(t, hc, srv.URL, "suppressed") >= 3 && deliveryEvents(t, hc, srv.URL, "delivered") >= 4
	}) {
		t.Fatalf("suppressed %d, delivered %d; want 3 and 4", deliveryEvents(t, hc, srv.URL, "suppressed"), deliveryEvents(t, hc, srv.URL, "delivered"))
	}
	got := byEventID(t, sb.waitConversions(4, 5*time.Second, "after capstan reported four conversions delivered"))
	for _, id := range []string{"p-alice-2", "p-alice-3", "p-carol-2"} {
		if _, ok := got[id]; ok {
			t.Errorf("%s reached LinkedIn after the deletion", id)
		}
	}
	if _, ok := got["p-dave-2"]; !ok {
		t.Error("p-dave-2 did not reach LinkedIn")
	}

	// The audit log holds both deletions, without the ids.
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/admin/api/audit", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	_, _ = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if s := buf.String(); resp.StatusCode != 200 || strings.Count(s, `"action":"privacy_delete"`) != 2 || !strings.Contains(s, `"by":"cli"`) ||
		!strings.Contains(s, `"by":"admin token"`) || strings.Contains(strings.ToLower(s), "alice") || strings.Contains(strings.ToLower(s), "carol") {
		t.Errorf("GET /admin/api/audit: %d %s", resp.StatusCode, s)
	}
}

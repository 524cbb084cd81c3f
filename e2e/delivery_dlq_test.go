package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDeliveryRejectedSplitReplay sends 500 Sign Ups whose mapping sends the
// user's names; three first names are longer than LinkedIn's 35 characters
// (the sandbox enforces it with --enforce-field-lengths; capstan does not
// check it). LinkedIn refuses each batch holding one with a 422 naming the
// element: capstan splits it, the 497 others arrive, and the three are
// dead-lettered with LinkedIn's message. After a restart with a fixed
// mapping (userInfo: null), `capstan dlq replay` rescues the three, the DLQ
// is empty, and the 497 are not sent again.
func TestDeliveryRejectedSplitReplay(t *testing.T) {
	sb := startSandbox(t, "--token", "dlq-token", "--enforce-field-lengths")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	dest := linkedInDest{sandbox: sb, accessToken: "dlq-token",
		fields: `{userInfo: {firstName: {"@path": "$.properties.first_name"}, lastName: {"@path": "$.properties.last_name"}}}`}
	cfg := writeDeliveryConfig(t, dir, "capstan.yaml", data, "", dest)
	srv := startServer(t, cfg)
	hc := newHTTPClient(t)

	const total = 500
	long := map[int]bool{17: true, 250: true, 498: true}
	longName := strings.Repeat("Maximiliane", 4) // 44 characters
	var events []map[string]any
	var longIDs []string
	for i := range total {
		id := fmt.Sprintf("dlq-%03d", i)
		ev := signUp(id, fmt.Sprintf("person%d@example.com", i), "")
		first := "Ann"
		if long[i] {
			first = longName
			longIDs = append(longIDs, id)
		}
		props := ev["properties"].(map[string]any)
		props["first_name"], props["last_name"] = first, "Lee"
		events = append(events, ev)
	}
	sendEvents(t, hc, srv.URL, events)

	waitProcessed(t, hc, srv.URL, total, total-len(long), len(long), 30*time.Second)
	convs := sb.waitConversions(total-len(long), 5*time.Second, "first run")
	got := byEventID(t, convs)
	if len(convs) != total-len(long) {
		t.Errorf("first run: the sandbox holds %d conversions, want %d", len(convs), total-len(long))
	}
	for _, id := range longIDs {
		if _, ok := got[id]; ok {
			t.Errorf("first run: %s, with a first name of %d characters, was accepted", id, len(longName))
		}
	}
	for id, c := range got {
		if c.User.UserInfo == nil || c.User.UserInfo.FirstName != "Ann" || c.User.UserInfo.LastName != "Lee" {
			t.Errorf("first run: %s arrived without the mapped userInfo: %+v", id, c.User)
		}
	}
	first := sb.counters()
	t.Logf("first run: sandbox counters %+v", first)
	if first.Rejected.Schema == 0 {
		t.Errorf("the sandbox refused no request with a schema error (422): %+v", first)
	}

	// The three are in the DLQ with LinkedIn's answer.
	list := runDLQ(t, cfg, "list", "--reason", "rejected")
	t.Logf("capstan dlq list --reason rejected:\n%s", list)
	if n := strings.Count(list, "  rejected  "); n != len(long) {
		t.Errorf("capstan dlq list --reason rejected lists %d dead letters, want %d", n, len(long))
	}
	for _, id := range longIDs {
		if !strings.Contains(list, id) || !strings.Contains(list, "/user/userInfo/firstName") {
			t.Errorf("capstan dlq list does not show %s with LinkedIn's message about /user/userInfo/firstName", id)
		}
	}
	if out := runDLQ(t, cfg, "list", "--reason", "invalid"); !strings.Contains(out, "no dead letters") {
		t.Errorf("capstan dlq list --reason invalid:\n%s\nwant no dead letters", out)
	}
	var shown []string
	for _, dl := range dlqShow(t, cfg, "--reason", "rejected") {
		shown = append(shown, dl.MessageID)
		var payload struct {
			EventID string `json:"eventId"`
		}
		_ = json.Unmarshal(dl.Payload, &payload)
		if dl.Destination != "linkedin" || dl.Mapping != "Sign Up" || dl.Reason != "rejected" || dl.Status != 422 ||
			!strings.Contains(dl.Message, "/user/userInfo/firstName") || payload.EventID != dl.MessageID {
			t.Errorf("dead letter %d: %+v; want linkedin, Sign Up, rejected, 422, LinkedIn's message on /user/userInfo/firstName and the payload with eventId %s",
				dl.Seq, dl, dl.MessageID)
		}
	}
	slices.Sort(shown)
	if !slices.Equal(shown, longIDs) {
		t.Errorf("capstan dlq show --reason rejected shows %v, want %v", shown, longIDs)
	}

	// Fix the mapping, restart, replay.
	stopServer(t, srv)
	dest.fields = `{userInfo: null}`
	fixed := writeDeliveryConfig(t, dir, "capstan-fixed.yaml", data, "", dest)
	srv = startServer(t, fixed)
	if out := runDLQ(t, fixed, "replay", "--reason", "rejected"); !strings.Contains(out, fmt.Sprintf("replayed %d dead letter(s)", len(long))) {
		t.Errorf("capstan dlq replay --reason rejected printed %q, want replayed %d", out, len(long))
	}
	waitProcessed(t, hc, srv.URL, len(long), len(long), 0, 20*time.Second)
	convs = sb.waitConversions(total, 5*time.Second, "after the replay")
	got = byEventID(t, convs)
	if len(convs) != total {
		t.Errorf("after the replay: the sandbox holds %d conversions, want %d", len(convs), total)
	}
	for _, id := range longIDs {
		c, ok := got[id]
		switch email, _ := c.userID("SHA256_EMAIL"); {
		case !ok:
			t.Errorf("after the replay: %s did not arrive", id)
		case c.User.UserInfo != nil:
			t.Errorf("after the replay: %s still carries userInfo %+v", id, *c.User.UserInfo)
		case email != emailHash(fmt.Sprintf("person%s@example.com", strings.TrimLeft(strings.TrimPrefix(id, "dlq-"), "0"))):
			t.Errorf("after the replay: %s has SHA256_EMAIL %q", id, email)
		}
	}
	if out := runDLQ(t, fixed, "list"); !strings.Contains(out, "no dead letters") {
		t.Errorf("after the replay, capstan dlq list:\n%s\nwant no dead letters", out)
	}
	// Only the replayed events were mapped again; the 497 were not re-sent.
	if n := deliveryEvents(t, hc, srv.URL, "received"); n != len(long) {
		t.Errorf("the restarted server processed %d events, want only the %d replayed", n, len(long))
	}
	c := sb.counters()
	t.Logf("after the replay: sandbox counters %+v", c)
	if c.Accepted != total || c.Deduplicated != 0 {
		t.Errorf("sandbox accepted %d and de-duplicated %d events, want %d and 0 (nothing sent twice)", c.Accepted, c.Deduplicated, total)
	}
}

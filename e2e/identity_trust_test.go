package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestIdentityTrust is issue 17 end to end: with only the website's public
// write key (curl, no Origin), an identify ties an attacker's email and
// li_fat_id to a customer's userId; the back end's later Sign Up for that
// customer reaches LinkedIn without them. A verified identify (the userHash
// the site's back end signed) does enrich the back end's Sign Up, and the
// website's own Sign Up still gets its unverified link.
func TestIdentityTrust(t *testing.T) {
	const (
		secret  = "e2e-identity-secret-0123456789"
		webKey  = "wk_web_trust_e2e"
		backKey = "wk_back_trust_e2e"
		origin  = "https://www.example.com"
	)
	sb := startSandbox(t, "--token", "trust-token")
	dir := t.TempDir()
	cfg := writeDeliveryConfig(t, dir, "capstan.yaml", filepath.Join(dir, "data"), "", linkedInDest{sandbox: sb, accessToken: "trust-token"})
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sources := "sources:\n  - name: " + testSource + "\n    write_key: " + testWriteKey + "\n"
	if !bytes.Contains(text, []byte(sources)) {
		t.Fatalf("unexpected delivery config:\n%s", text)
	}
	text = bytes.Replace(text, []byte(sources), []byte(`sources:
  - name: website
    write_key: `+webKey+`
    allowed_origins: ["`+origin+`"]
    identity_verification:
      secret: ${E2E_IDENTITY_SECRET}
  - name: backend
    write_key: `+backKey+`
`), 1)
	if err := os.WriteFile(cfg, text, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("E2E_IDENTITY_SECRET", secret) // inherited by capstan serve
	srv := startServer(t, cfg)
	hc := newHTTPClient(t)

	send := func(key, origin string, events ...map[string]any) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/batch", bytes.NewReader(marshal(map[string]any{"batch": events})))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(key, "")
		req.Header.Set("Content-Type", "application/json")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		drain(resp)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /v1/batch as %s: status %d", key, resp.StatusCode)
		}
	}
	now := time.Now().UTC()
	ts := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339Nano) }
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("verified-e2e"))
	userHash := hex.EncodeToString(m.Sum(nil))

	// The attack (curl, no Origin) and a verified identify from the page.
	send(webKey, "", map[string]any{
		"type": "identify", "userId": "victim-e2e", "messageId": "it-poison", "timestamp": ts(-3 * time.Minute),
		"traits":  map[string]any{"email": "attacker@evil.example"},
		"context": map[string]any{"li_fat_id": "ATTACKER-LFI-1"},
	})
	send(webKey, origin, map[string]any{
		"type": "identify", "userId": "verified-e2e", "messageId": "it-verified", "timestamp": ts(-3 * time.Minute),
		"traits":  map[string]any{"email": "verified@example.com"},
		"context": map[string]any{"li_fat_id": "VERIFIED-LFI-1", "capstan": map[string]any{"userHash": userHash}},
	})
	// Both identifies are in the graph once delivery has settled them.
	waitProcessed(t, hc, srv.URL, 2, 0, 0, 30*time.Second)

	// The server's Sign Up with its own email happened before the forged
	// identify, so that the website's view of the graph (newest wins) holds
	// the forged email whatever order delivery converts the events in.
	signUp := func(id, user, email string, at time.Duration) map[string]any {
		ev := map[string]any{"type": "track", "event": "Sign Up", "userId": user, "messageId": id, "timestamp": ts(at)}
		if email != "" {
			ev["context"] = map[string]any{"traits": map[string]any{"email": email}}
		}
		return ev
	}
	send(backKey, "", signUp("it-victim-server", "victim-e2e", "victim@example.com", -5*time.Minute), signUp("it-verified-server", "verified-e2e", "", -time.Minute))
	send(webKey, origin, signUp("it-victim-own", "victim-e2e", "", -time.Minute))
	waitProcessed(t, hc, srv.URL, 5, 3, 0, 30*time.Second)
	got := byEventID(t, sb.waitConversions(3, 5*time.Second, "after capstan reported three conversions delivered"))

	const lfiType = "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID"
	for _, tt := range []struct {
		id, email, lfi string
	}{
		{"it-victim-server", emailHash("victim@example.com"), ""},
		{"it-verified-server", emailHash("verified@example.com"), "VERIFIED-LFI-1"},
		{"it-victim-own", emailHash("attacker@evil.example"), "ATTACKER-LFI-1"},
	} {
		c, ok := got[tt.id]
		if !ok {
			t.Errorf("%s: no conversion", tt.id)
			continue
		}
		email, nEmail := c.userID("SHA256_EMAIL")
		lfi, nLfi := c.userID(lfiType)
		if email != tt.email || nEmail != 1 || lfi != tt.lfi || nLfi > 1 {
			t.Errorf("%s: LinkedIn got email %s (%d), li_fat_id %q (%d); want email %s, li_fat_id %q", tt.id, email, nEmail, lfi, nLfi, tt.email, tt.lfi)
		}
	}

	// The userHash is never stored.
	for _, ev := range tailEvents(t, cfg) {
		if strings.Contains(string(ev.Event), userHash) || strings.Contains(string(ev.Event), "userHash") {
			t.Errorf("stored event %d holds the userHash: %s", ev.Seq, ev.Event)
		}
	}
}

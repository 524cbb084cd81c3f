package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RudderStack's SDKs as drop-in clients (issue 20): the unmodified
// @rudderstack/analytics-js, its bundled build served from a local page, in
// Debian's Chromium over XHR and over beacon, and @rudderstack/rudder-sdk-node
// on the back end, all pointed at capstan.

const (
	// rudderBackendKey is the write key of the back end's source.
	rudderBackendKey = "wk_rs_backend_c0ffee"
	// rudderPausedKey is the write key of a disabled browser source.
	rudderPausedKey = "wk_rs_paused_5e1f"
	// rudderSecret is the website source's identity_verification.secret.
	rudderSecret = "rudder-e2e-identity-secret-0123456789"
)

// rudderBundle is the bundled build (every plugin inside, nothing loaded
// from RudderStack's CDN) of @rudderstack/analytics-js in e2e/node_modules.
var rudderBundle = filepath.Join("node_modules", "@rudderstack", "analytics-js", "dist", "npm", "modern", "bundled", "umd")

// requireRudderStack fails (never skips) when Chromium, node or the
// RudderStack packages are missing.
func requireRudderStack(t testing.TB) {
	t.Helper()
	requireBrowser(t)
	for _, f := range []string{
		filepath.Join(rudderBundle, "index.js"),
		"node_modules/@rudderstack/rudder-sdk-node/package.json",
	} {
		if _, err := os.Stat(filepath.Join(e2eDir, f)); err != nil {
			t.Fatalf("e2e/%s is missing: run `bash scripts/setup-e2e.sh` (make test runs it first)", f)
		}
	}
}

// newRudderPages serves the bundled SDK at /rudder/index.js and, at any
// other path, a page that loads it.
func newRudderPages(t testing.TB) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("GET /rudder/", http.StripPrefix("/rudder/", http.FileServer(http.Dir(filepath.Join(e2eDir, rudderBundle)))))
	mux.HandleFunc("GET /favicon.ico", http.NotFound)
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		title := strings.Trim(r.URL.Path, "/")
		fmt.Fprintf(w, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><link rel=\"icon\" href=\"data:,\"><title>%s</title>\n"+
			"<script src=\"/rudder/index.js\"></script>\n</head><body><h1>%s</h1></body></html>\n", title, title)
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// writeRudderConfig writes a capstan configuration with the website source
// (the browser's: allowed_origins, identity verification), the back end's
// source and a LinkedIn destination on the sandbox that turns "Sign Up"
// tracks into conversions.
func writeRudderConfig(t testing.TB, origin string, sb *sandboxProc) string {
	t.Helper()
	dir := t.TempDir()
	text := fmt.Sprintf(`# written by capstan's RudderStack e2e test
server:
  addr: "127.0.0.1:0"
  data_dir: %q
  shutdown_grace: 5s
  secret_key: %s
engine:
  sync: always
sources:
  - name: %s
    write_key: %s
    allowed_origins: [%q]
    rate_limit: {disabled: true}
    identity_verification: {secret: %q}
  - name: backend
    write_key: %s
    rate_limit: {disabled: true}
  - name: paused
    write_key: %s
    allowed_origins: [%q]
    disabled: true
destinations:
  - name: linkedin
    api_base: %q
    ad_account: %d
    linger: 200ms
    auth:
      access_token: rudder-token
    mappings:
      - name: Sign Up
        trigger: '%s'
        conversion_rule: {create: {name: "Sign Up (capstan)", type: SIGN_UP}}
`, filepath.Join(dir, "data"), testSecretKey, testSource, testWriteKey, origin, rudderSecret,
		rudderBackendKey, rudderPausedKey, origin, sb.URL, testAdAccount, signUpTrigger)
	path := filepath.Join(dir, "capstan.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// userHash is the identity verification of userID: the hex HMAC-SHA256 the
// site's back end gives the page.
func userHash(userID string) string {
	m := hmac.New(sha256.New, []byte(rudderSecret))
	m.Write([]byte(userID))
	return hex.EncodeToString(m.Sum(nil))
}

// rudderSent is what the test page returns: the messageId of each call, as
// the SDK's callbacks saw the event, and the SDK's anonymousId.
type rudderSent struct {
	IDs  []string `json:"ids"`
	Anon string   `json:"anon"`
}

// rudderCalls loads the SDK the README's way (the data plane and configUrl
// both capstan's URL, plus opts) and makes a page, an identify (email in
// the traits, the userId signed) and a track call.
func rudderCalls(capstanURL, opts, userID, email string) string {
	return fmt.Sprintf(`(async () => {
		const ra = new rudderanalytics.RudderAnalytics()
		await new Promise((resolve, reject) => {
			setTimeout(() => reject(new Error('the SDK was not ready after 15 s')), 15000)
			ra.load(%[1]q, %[2]q, {configUrl: %[2]q, polyfillIfRequired: false, logLevel: 'WARN'%[3]s})
			ra.ready(resolve)
		})
		const call = (f) => new Promise((resolve) => f(resolve))
		const evs = [
			await call(cb => ra.page('Docs', 'Pricing', {plan: 'team'}, cb)),
			await call(cb => ra.identify(%[4]q, {email: %[5]q, firstName: 'Ann'}, {context: {capstan: {userHash: %[6]q}}}, cb)),
			await call(cb => ra.track('Pricing Viewed', {plan: 'team'}, cb)),
		]
		return {ids: evs.map(e => e.messageId), anon: ra.getAnonymousId()}
	})()`, testWriteKey, capstanURL, opts, userID, email, userHash(userID))
}

// TestRudderStack: RudderStack's browser SDK fetches its source
// configuration from capstan and sends page, identify and track over XHR
// (/v1/page|identify|track, preflighted) and over beacon
// (/beacon/v1/batch), loading nothing from a CDN; rudder-sdk-node sends
// every call type; each call is stored once. A "Sign Up" sent from the back
// end with only the userId of a browser identify reaches the sandbox with
// that identify's email hash and the click id of the browser's landing page.
func TestRudderStack(t *testing.T) {
	requireRudderStack(t)
	sb := startSandbox(t, "--token", "rudder-token")
	pages := newRudderPages(t)
	cfg := writeRudderConfig(t, pages.URL, sb)
	srv := startServer(t, cfg)
	hc := newHTTPClient(t)
	b := startBrowser(t)
	run := time.Now().UTC().Format("150405.000")

	requests := func(endpoint string) float64 {
		return metricValue(t, hc, srv.URL, "capstan_ingest_requests_total", `endpoint="`+endpoint+`",source="`+testSource+`",status="200"`)
	}
	type transport struct {
		name, opts, email string
		endpoints         []string // where the events must have gone
	}
	users := map[string]string{} // userId -> email of the browser identify
	browserEvents := 0
	for _, tr := range []transport{
		{"xhr", "", "Ann.XHR@Example.com", []string{"page", "identify", "track"}},
		{"beacon", ", useBeacon: true, beaconQueueOptions: {flushQueueInterval: 200}", "ann.beacon@example.com", []string{"beacon"}},
	} {
		t.Run(tr.name, func(t *testing.T) {
			before := map[string]float64{}
			for _, e := range []string{"page", "identify", "track", "beacon", "batch"} {
				before[e] = requests(e)
			}
			userID := "rs-" + tr.name + "-" + run
			users[userID] = tr.email
			b.goTo(pages.URL + "/rs-" + tr.name + "?li_fat_id=lfi-" + tr.name)
			var r rudderSent
			start := time.Now()
			b.eval(&r, rudderCalls(srv.URL, tr.opts, userID, tr.email))
			t.Logf("loaded and called in %s", time.Since(start).Round(time.Millisecond))
			if len(r.IDs) != 3 || !uuidV4RE.MatchString(r.Anon) {
				t.Fatalf("page returned %+v", r)
			}
			stored := waitStored(t, cfg, r.IDs...)
			browserEvents += 3
			for i, typ := range []string{"page", "identify", "track"} {
				d := stored[r.IDs[i]]
				want(t, typ, d, map[string]any{
					"type":                 typ,
					"anonymousId":          r.Anon,
					"channel":              "web",
					"context.library.name": "RudderLabs JavaScript SDK",
					"context.page.path":    "/rs-" + tr.name,
					"context.page.search":  "?li_fat_id=lfi-" + tr.name,
					"context.capstan":      nil, // the userHash is checked and dropped
				})
				if _, has := d["writeKey"]; has {
					t.Errorf("%s stored with its writeKey", typ)
				}
				for _, f := range []string{"originalTimestamp", "sentAt", "receivedAt", "timestamp"} {
					if d.str(f) == "" {
						t.Errorf("%s: no %s: %v", typ, f, d)
					}
				}
			}
			want(t, "page", stored[r.IDs[0]], map[string]any{"name": "Pricing", "category": "Docs", "properties.plan": "team"})
			want(t, "identify", stored[r.IDs[1]], map[string]any{"userId": userID, "context.traits.email": tr.email, "context.traits.firstName": "Ann"})
			want(t, "track", stored[r.IDs[2]], map[string]any{"userId": userID, "event": "Pricing Viewed", "properties.plan": "team"})

			// The transport used: the single-event paths for XHR, only
			// the beacon path for beacon. A request's counter moves once
			// its answer is written, a moment after its events are stored:
			// wait for the wanted ones (so that no answer is still on its
			// way when the next page loads), then check them all.
			poll(10*time.Second, func() bool {
				for _, e := range tr.endpoints {
					if requests(e) == before[e] {
						return false
					}
				}
				return true
			})
			for _, e := range []string{"page", "identify", "track", "beacon", "batch"} {
				n := requests(e) - before[e]
				wanted := false
				for _, w := range tr.endpoints {
					wanted = wanted || w == e
				}
				if wanted != (n > 0) {
					t.Errorf("%d requests to the %s endpoint; want them only on %v", int(n), e, tr.endpoints)
				}
			}
			// Nothing failed or was fetched from elsewhere: with no network,
			// any request to a CDN or another endpoint would fail and show.
			var logs []string
			if err := json.Unmarshal(b.do(map[string]any{"op": "logs"}), &logs); err != nil {
				t.Fatal(err)
			}
			for _, l := range logs {
				if strings.HasPrefix(l, "requestfailed") || strings.HasPrefix(l, "pageerror") || strings.HasPrefix(l, "console.error") || strings.HasPrefix(l, "console.warning") {
					t.Errorf("browser: %s", l)
				}
			}
		})
	}
	if t.Failed() {
		return
	}

	// A disabled source: capstan answers enabled: false, and the SDK says
	// so and sends nothing.
	t.Run("disabled source", func(t *testing.T) {
		b.goTo(pages.URL + "/rs-paused")
		b.eval(nil, fmt.Sprintf(`(() => {
			const ra = new rudderanalytics.RudderAnalytics()
			ra.load(%q, %q, {configUrl: %q, polyfillIfRequired: false})
			ra.track('Never Sent')
			return null
		})()`, rudderPausedKey, srv.URL, srv.URL))
		var seen []string
		if !poll(15*time.Second, func() bool {
			var logs []string
			if err := json.Unmarshal(b.do(map[string]any{"op": "logs"}), &logs); err != nil {
				t.Fatal(err)
			}
			seen = append(seen, logs...)
			return strings.Contains(strings.Join(seen, "\n"), "The source is disabled")
		}) {
			t.Fatalf("the SDK did not report the disabled source; browser logs: %q", seen)
		}
		for _, l := range seen {
			if strings.HasPrefix(l, "requestfailed") || strings.HasPrefix(l, "pageerror") {
				t.Errorf("browser: %s", l)
			}
		}
		if n := metricValue(t, hc, srv.URL, "capstan_ingest_requests_total", `endpoint="track",source="paused",status="403"`); n != 0 {
			t.Errorf("the SDK sent %v events for the disabled source", n)
		}
	})

	// Delivery has learnt from every browser event (none is a conversion)
	// before the back end sends its conversions.
	waitProcessed(t, hc, srv.URL, browserEvents, 0, 0, 30*time.Second)

	convert := []string{}
	for id := range users {
		convert = append(convert, id)
	}
	nr := runRudderNode(t, srv.URL, run, convert)
	t.Logf("@rudderstack/rudder-sdk-node %s sent %d events in %d requests", nr.Version, len(nr.Events), len(nr.Responses))
	if len(nr.Events) != 5+len(convert) {
		t.Fatalf("rudder-sdk-node sent %d events, want %d", len(nr.Events), 5+len(convert))
	}
	// Every call stored once, under the back end's source, with its type.
	evs := tailEvents(t, cfg)
	n := countByMessageID(evs)
	byID := map[string]storedEvent{}
	for _, ev := range evs {
		byID[ev.MessageID()] = ev
	}
	signUps := map[string]string{} // messageId -> userId
	for _, sent := range nr.Events {
		id, _ := sent["messageId"].(string)
		typ, _ := sent["type"].(string)
		if n[id] != 1 {
			t.Errorf("%s %s stored %d times, want once", typ, id, n[id])
			continue
		}
		ev := byID[id]
		if ev.Source != "backend" || ev.Type != typ || ev.Subject != "events.backend.seg" {
			t.Errorf("%s %s stored for source %q as %q under %q", typ, id, ev.Source, ev.Type, ev.Subject)
		}
		var d doc
		if err := json.Unmarshal(ev.Event, &d); err != nil {
			t.Fatal(err)
		}
		if d.str("type") != typ || d.str("channel") != "server" || d.str("userId") != fmt.Sprint(sent["userId"]) {
			t.Errorf("stored %v for the sent %v", d, sent)
		}
		if sent["event"] == "Sign Up" {
			signUps[id] = d.str("userId")
		}
	}

	// The back end's Sign Ups, named by userId only, reach LinkedIn with
	// the email hash of the browser identify (verified by its userHash).
	convs := sb.waitConversions(len(signUps), 30*time.Second, "after rudder-sdk-node sent the Sign Ups")
	got := byEventID(t, convs)
	if len(convs) != len(signUps) {
		t.Errorf("the sandbox holds %d conversions, want %d", len(convs), len(signUps))
	}
	for id, userID := range signUps {
		c, ok := got[id]
		if !ok {
			t.Errorf("Sign Up %s (user %s) did not arrive", id, userID)
			continue
		}
		if email, k := c.userID("SHA256_EMAIL"); email != emailHash(users[userID]) || k != 1 {
			t.Errorf("Sign Up of %s: SHA256_EMAIL %q (%d ids), want the hash of %s", userID, email, k, users[userID])
		}
		// The click id of the landing page, linked to the user by the
		// verified identify on the same browser.
		wantLfi := "lfi-" + strings.Split(userID, "-")[1]
		if lfi, k := c.userID("LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID"); lfi != wantLfi || k != 1 {
			t.Errorf("Sign Up of %s: li_fat_id %q (%d ids), want %q", userID, lfi, k, wantLfi)
		}
	}
}

// rudderNodeRun is what e2e/node/rudder.mjs prints.
type rudderNodeRun struct {
	Version   string           `json:"version"`
	Events    []map[string]any `json:"events"`
	Responses []struct {
		URL    string `json:"url"`
		Status int    `json:"status"`
	} `json:"responses"`
}

// runRudderNode runs e2e/node/rudder.mjs against capstanURL with the back
// end's write key.
func runRudderNode(t testing.TB, capstanURL, run string, convert []string) rudderNodeRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := []string{filepath.Join("node", "rudder.mjs"), "--host", capstanURL, "--write-key", rudderBackendKey, "--run", run}
	for _, id := range convert {
		args = append(args, "--convert", id)
	}
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = e2eDir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run node rudder.mjs: %v", err)
		}
		t.Fatalf("node rudder.mjs failed (%v):\nstderr: %s\nstdout: %.2000s", err, stderr.String(), stdout.String())
	}
	var nr rudderNodeRun
	if err := json.Unmarshal(stdout.Bytes(), &nr); err != nil {
		t.Fatalf("rudder.mjs output is not JSON (%v): %.2000s", err, stdout.String())
	}
	for _, r := range nr.Responses {
		if r.Status != http.StatusOK || !strings.HasSuffix(r.URL, "/v1/batch") {
			t.Errorf("rudder-sdk-node: %s answered %d", r.URL, r.Status)
		}
	}
	return nr
}

package e2e

// The eventId collision guard and the reconciliation with LinkedIn's
// reporting (issue 18), with the real binary and `capstan sandbox`.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// reconcileDest describes the configuration of the tests below.
type reconcileDest struct {
	sandbox     *sandboxProc
	accessToken string
	collision   string // event_id_collision ("": the default)
	adminToken  string
}

// writeReconcileConfig writes a configuration with three mappings, each
// feeding a rule capstan creates and associates with a seeded campaign:
// Orders (eventId = the order id, with its value), Sign Up (li_fat_id) and
// Newsletter (email only).
func writeReconcileConfig(t testing.TB, dir, dataDir string, d reconcileDest) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "server:\n  addr: \"127.0.0.1:0\"\n  data_dir: %q\n  shutdown_grace: 20s\n  secret_key: %s\n", dataDir, testSecretKey)
	if d.adminToken != "" {
		fmt.Fprintf(&b, "  admin_token: %q\n", d.adminToken)
	}
	fmt.Fprintf(&b, "engine:\n  sync: always\nsources:\n  - name: %s\n    write_key: %s\n    rate_limit: {disabled: true}\n", testSource, testWriteKey)
	fmt.Fprintf(&b, "destinations:\n  - name: linkedin\n    api_base: %q\n    ad_account: %d\n    linger: 200ms\n", d.sandbox.URL, testAdAccount)
	if d.collision != "" {
		fmt.Fprintf(&b, "    event_id_collision: %s\n", d.collision)
	}
	b.WriteString("    reconcile: {min_accepted: 5, min_ratio: 0.3}\n")
	fmt.Fprintf(&b, "    auth:\n      access_token: %q\n      token_url: %q\n", d.accessToken, d.sandbox.URL+"/oauth/v2/accessToken")
	b.WriteString(`    mappings:
      - name: Orders
        trigger: 'type = "track" and event = "Order Completed"'
        conversion_rule: {create: {name: "Orders (capstan)", type: PURCHASE}}
        campaigns: [435901]
        fields:
          eventId: {"@path": "$.properties.order_id"}
          conversionValue: {currencyCode: USD, amount: {"@path": "$.properties.revenue"}}
      - name: Sign Up
        trigger: 'type = "track" and event = "Sign Up"'
        conversion_rule: {create: {name: "Sign Up (capstan)", type: SIGN_UP}}
        campaigns: [435901]
      - name: Newsletter
        trigger: 'type = "track" and event = "Newsletter"'
        conversion_rule: {create: {name: "Newsletter (capstan)", type: LEAD}}
        campaigns: [435902]
`)
	path := filepath.Join(dir, "capstan.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// addToken registers an access token with scopes on the sandbox's main
// account.
func (s *sandboxProc) addToken(token string, scopes ...string) {
	s.t.Helper()
	body, _ := json.Marshal(map[string]any{"token": token, "ad_account": testAdAccount, "scopes": scopes})
	s.control(http.MethodPost, "/_sandbox/tokens", string(body), nil)
}

// clockNow returns the sandbox's clock.
func (s *sandboxProc) clockNow() time.Time {
	s.t.Helper()
	var c struct {
		Now int64 `json:"now"`
	}
	s.control(http.MethodGet, "/_sandbox/clock", "", &c)
	return time.UnixMilli(c.Now).UTC()
}

// advance moves the sandbox's clock forward.
func (s *sandboxProc) advance(d time.Duration) {
	s.t.Helper()
	s.control(http.MethodPost, "/_sandbox/clock", fmt.Sprintf(`{"advance":%q}`, d.String()), nil)
}

// records returns every conversion the sandbox stored, duplicates included,
// with their bodies.
type storedConversion struct {
	EventID     string          `json:"event_id"`
	DuplicateOf int64           `json:"duplicate_of"`
	Body        json.RawMessage `json:"body"`
}

func (s *sandboxProc) stored() []storedConversion {
	s.t.Helper()
	var out struct {
		Elements []storedConversion `json:"elements"`
	}
	s.control(http.MethodGet, "/_sandbox/records", "", &out)
	return out.Elements
}

// reportModel returns the sandbox's reporting model (GET
// /_sandbox/reporting): per accepted event whether LinkedIn counts it.
type reportedEvent struct {
	EventID     string `json:"event_id"`
	DuplicateOf int64  `json:"duplicate_of"`
	Counted     bool   `json:"counted"`
}

func (s *sandboxProc) reportModel() []reportedEvent {
	s.t.Helper()
	var out struct {
		Elements []reportedEvent `json:"elements"`
	}
	s.control(http.MethodGet, "/_sandbox/reporting", "", &out)
	return out.Elements
}

func amount(t testing.TB, body json.RawMessage) string {
	t.Helper()
	var b struct {
		Value struct {
			Amount string `json:"amount"`
		} `json:"conversionValue"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatal(err)
	}
	return b.Value.Amount
}

// orderEvent is an Order Completed event of order orderID for revenue;
// orderAt is when the tests' orders happened: a replay of an event keeps
// its timestamp.
var orderAt = time.Now().UTC().Add(-time.Hour).Truncate(time.Second).Format(time.RFC3339)

func orderEvent(messageID, orderID string, revenue float64) map[string]any {
	return map[string]any{
		"type": "track", "event": "Order Completed", "userId": "buyer-1", "messageId": messageID,
		"timestamp":  orderAt,
		"properties": map[string]any{"order_id": orderID, "revenue": revenue, "currency": "USD", "li_fat_id": "lfi-buyer-1"},
	}
}

// TestEventIDCollisionUpsell: an order id re-used as eventId for an upsell
// ($149, then $39). With event_id_collision: suffix both reach LinkedIn and
// both are counted (the second under a derived eventId); a replay of the
// upsell after a restart is no new collision and, already accepted, is not sent again.
// With dead_letter the upsell is held in the DLQ with reason
// event_id_collision. The sandbox runs with LinkedIn-side eventId
// de-duplication turned on (--reporting-dedup-event-id-window 48h, spec
// §23.2: off by default), which keeps only the first of two conversions
// with the same eventId: without the guard the upsell would not be counted.
func TestEventIDCollisionUpsell(t *testing.T) {
	t.Run("suffix", func(t *testing.T) {
		sb := startSandbox(t, "--token", "upsell-token", "--reporting-dedup-event-id-window", "48h")
		dir := t.TempDir()
		cfg := writeReconcileConfig(t, dir, filepath.Join(dir, "data"), reconcileDest{sandbox: sb, accessToken: "upsell-token"})
		srv := startServer(t, cfg)
		hc := newHTTPClient(t)
		sendEvents(t, hc, srv.URL, []map[string]any{orderEvent("order-1", "wc_order_5291", 149)})
		waitProcessed(t, hc, srv.URL, 1, 1, 0, 30*time.Second)
		sendEvents(t, hc, srv.URL, []map[string]any{orderEvent("upsell-1", "wc_order_5291", 39)})
		waitProcessed(t, hc, srv.URL, 2, 2, 0, 30*time.Second)

		counted := sb.conversions() // what LinkedIn counts: duplicates left out
		if len(counted) != 2 {
			t.Fatalf("the sandbox counts %d conversions of the upsell pair, want 2: %+v", len(counted), counted)
		}
		recs := sb.stored()
		if recs[0].EventID != "wc_order_5291" || amount(t, recs[0].Body) != "149" {
			t.Errorf("first order sent as %s, $%s", recs[0].EventID, amount(t, recs[0].Body))
		}
		derived := recs[1].EventID
		if !strings.HasPrefix(derived, "wc_order_5291-") || len(derived) != len("wc_order_5291-")+8 || amount(t, recs[1].Body) != "39" {
			t.Errorf("upsell sent as %s, $%s; want wc_order_5291-<8 hex>, $39", derived, amount(t, recs[1].Body))
		}
		if n := metricValue(t, hc, srv.URL, "capstan_delivery_event_id_collisions_total", `action="suffix",destination="linkedin",mapping="Orders"`); n != 1 {
			t.Errorf("capstan_delivery_event_id_collisions_total{action=suffix} = %v, want 1", n)
		}
		if !strings.Contains(srv.Output(), "eventId collision") || strings.Contains(srv.Output(), `"event_id":"wc_order_5291"`) {
			t.Errorf("want a warning naming the collision by a hash of the eventId:\n%s", srv.Output())
		}

		// Restart; the same upsell again (a replay with a new messageId) is
		// no new collision, and LinkedIn already accepted this very
		// conversion: the sent-conversion record keeps it from being sent
		// (and counted) twice.
		srv.Signal(syscall.SIGTERM)
		srv.Wait(60 * time.Second)
		srv = startServer(t, cfg)
		sendEvents(t, hc, srv.URL, []map[string]any{orderEvent("upsell-replay", "wc_order_5291", 39)})
		waitProcessed(t, hc, srv.URL, 1, 1, 0, 30*time.Second)
		if recs = sb.stored(); len(recs) != 2 {
			t.Errorf("after the restart the replayed upsell was sent again: %+v", recs[len(recs)-1])
		}
		if n := metricValue(t, hc, srv.URL, "capstan_delivery_already_sent_total", `destination="linkedin",mapping="Orders"`); n != 1 {
			t.Errorf("capstan_delivery_already_sent_total = %v, want 1 (the replayed upsell)", n)
		}
		if n := metricValue(t, hc, srv.URL, "capstan_delivery_event_id_collisions_total", `action="suffix",destination="linkedin",mapping="Orders"`); n != 1 {
			t.Errorf("after the restart, collisions_total = %v, want 1 (the replay is again the known upsell)", n)
		}
		if c := sb.conversions(); len(c) != 2 {
			t.Errorf("the sandbox counts %d conversions, want still 2", len(c))
		}
		// LinkedIn's report, with its eventId de-duplication on, counts
		// both: $149 under the order id, $39 under the derived one.
		reported := map[string]bool{}
		for _, e := range sb.reportModel() {
			if e.Counted {
				reported[e.EventID] = true
			}
		}
		if len(reported) != 2 || !reported["wc_order_5291"] || !reported[derived] {
			t.Errorf("reported as counted %v, want wc_order_5291 and %s", reported, derived)
		}
	})

	t.Run("dead_letter", func(t *testing.T) {
		sb := startSandbox(t, "--token", "upsell-token")
		dir := t.TempDir()
		cfg := writeReconcileConfig(t, dir, filepath.Join(dir, "data"), reconcileDest{sandbox: sb, accessToken: "upsell-token", collision: "dead_letter"})
		srv := startServer(t, cfg)
		hc := newHTTPClient(t)
		sendEvents(t, hc, srv.URL, []map[string]any{orderEvent("order-1", "wc_order_5291", 149)})
		waitProcessed(t, hc, srv.URL, 1, 1, 0, 30*time.Second)
		// The upsell, and a retry of the first order (same content).
		sendEvents(t, hc, srv.URL, []map[string]any{orderEvent("upsell-1", "wc_order_5291", 39), orderEvent("order-1-retry", "wc_order_5291", 149)})
		waitProcessed(t, hc, srv.URL, 3, 2, 1, 30*time.Second)
		dls := dlqShow(t, cfg, "--reason", "event_id_collision")
		if len(dls) != 1 || dls[0].MessageID != "upsell-1" || amount(t, dls[0].Payload) != "39" || dls[0].Mapping != "Orders" {
			t.Fatalf("dead letters %+v, want the upsell with reason event_id_collision", dls)
		}
		t.Logf("dead letter: %s", dls[0].Message)
		for _, r := range sb.stored() {
			if r.EventID != "wc_order_5291" || amount(t, r.Body) != "149" {
				t.Errorf("sent %s $%s; want only the first order (and its retry)", r.EventID, amount(t, r.Body))
			}
		}
		if n := metricValue(t, hc, srv.URL, "capstan_delivery_event_id_collisions_total", `action="dead_letter",destination="linkedin",mapping="Orders"`); n != 1 {
			t.Errorf("collisions_total{action=dead_letter} = %v, want 1", n)
		}
	})
}

// reconcileJSON is `capstan reconcile --json`.
type reconcileJSON []struct {
	Destination  string `json:"destination"`
	MissingScope string `json:"missingScope"`
	Error        string `json:"error"`
	Flagged      int    `json:"flagged"`
	Rules        []struct {
		Rule     string   `json:"rule"`
		Mappings []string `json:"mappings"`
		Accepted int64    `json:"accepted"`
		Reported *int64   `json:"reported"`
		Ratio    *float64 `json:"ratio"`
		Flag     string   `json:"flag"`
		Days     []struct {
			Day      string `json:"day"`
			Accepted int64  `json:"accepted"`
			Reported *int64 `json:"reported"`
			State    string `json:"state"`
		} `json:"days"`
	} `json:"rules"`
}

func runReconcile(t testing.TB, cfg string, args ...string) (int, string, string) {
	t.Helper()
	all := append([]string{"reconcile", "--config", cfg}, args...)
	return runCapstan(t, filepath.Dir(cfg), nil, 60*time.Second, all...)
}

// TestReconcileBeforeAndAfterReportingDelay: LinkedIn (the sandbox, with a
// 72 h reporting delay and 10% of email-only conversions matched) reports
// nothing at first, and capstan reconcile marks the day processing without
// flagging anything. After 72 h (the sandbox's clock advanced, capstan
// reconcile --now at the same time), the li_fat_id rule is fully reported,
// and the email-only rule is reported at a ratio below the threshold and
// flagged. capstan serve's /admin/api/reconcile shows the same.
func TestReconcileBeforeAndAfterReportingDelay(t *testing.T) {
	sb := startSandbox(t, "--token", "base-token", "--reporting-delay", "72h", "--reporting-email-match-share", "0.1")
	sb.addToken("reporting-token", "r_ads", "rw_conversions", "r_ads_reporting")
	dir := t.TempDir()
	const adminToken = "reconcile-admin-token"
	cfg := writeReconcileConfig(t, dir, filepath.Join(dir, "data"), reconcileDest{sandbox: sb, accessToken: "reporting-token", adminToken: adminToken})
	srv := startServer(t, cfg)
	hc := newHTTPClient(t)
	const n = 30
	var events []map[string]any
	for i := range n {
		events = append(events, signUp(fmt.Sprintf("click-%02d", i), "", fmt.Sprintf("lfi-%02d", i)))
		events = append(events, map[string]any{"type": "track", "event": "Newsletter", "userId": fmt.Sprintf("reader-%02d", i),
			"messageId": fmt.Sprintf("news-%02d", i), "timestamp": time.Now().UTC().Format(time.RFC3339Nano),
			"context": map[string]any{"traits": map[string]any{"email": fmt.Sprintf("reader%02d@example.com", i)}}})
	}
	sendEvents(t, hc, srv.URL, events)
	waitProcessed(t, hc, srv.URL, 2*n, 2*n, 0, 60*time.Second)

	// Before: processing, nothing flagged.
	code, out, errOut := runReconcile(t, cfg, "--json")
	if code != 0 {
		t.Fatalf("capstan reconcile: exit %d:\n%s%s", code, out, errOut)
	}
	var before reconcileJSON
	if err := json.Unmarshal([]byte(out), &before); err != nil {
		t.Fatalf("capstan reconcile --json: %v:\n%s", err, out)
	}
	if len(before) != 1 || before[0].Flagged != 0 || len(before[0].Rules) != 3 {
		t.Fatalf("before the delay: %s", out)
	}
	for _, r := range before[0].Rules {
		if r.Mappings[0] == "Orders" {
			continue // no orders sent
		}
		if len(r.Days) != 1 || r.Days[0].State != "processing" || r.Days[0].Accepted != n || *r.Days[0].Reported != 0 || r.Flag != "" {
			t.Errorf("before the delay, rule of %v: %+v", r.Mappings, r)
		}
	}
	_, text, _ := runReconcile(t, cfg)
	t.Logf("capstan reconcile, before:\n%s", text)
	if !strings.Contains(text, "processing") || strings.Contains(text, "FLAGGED") {
		t.Errorf("capstan reconcile (text) before the delay:\n%s", text)
	}

	// After 72 h.
	sb.advance(72*time.Hour + time.Minute)
	now := sb.clockNow().Format(time.RFC3339)
	code, out, errOut = runReconcile(t, cfg, "--json", "--now", now)
	if code != 0 {
		t.Fatalf("capstan reconcile: exit %d:\n%s%s", code, out, errOut)
	}
	var after reconcileJSON
	if err := json.Unmarshal([]byte(out), &after); err != nil {
		t.Fatalf("capstan reconcile --json: %v:\n%s", err, out)
	}
	if after[0].Flagged != 1 {
		t.Errorf("after the delay, %d rules flagged, want 1: %s", after[0].Flagged, out)
	}
	for _, r := range after[0].Rules {
		switch r.Mappings[0] {
		case "Sign Up":
			if r.Days[0].State != "mature" || r.Accepted != n || *r.Reported != n || *r.Ratio != 1 || r.Flag != "" {
				t.Errorf("after the delay, li_fat_id rule: %+v", r)
			}
		case "Newsletter":
			if r.Days[0].State != "mature" || r.Accepted != n || *r.Reported >= n*3/10 || r.Flag != "low_ratio" {
				t.Errorf("after the delay, email-only rule: %+v", r)
			}
		}
	}
	_, text, _ = runReconcile(t, cfg, "--now", now)
	t.Logf("capstan reconcile, after:\n%s", text)
	if !strings.Contains(text, "FLAGGED") || !strings.Contains(text, "Newsletter") || !strings.Contains(text, "100%") {
		t.Errorf("capstan reconcile (text) after the delay:\n%s", text)
	}

	// The console's route: run now (serve's clock is real time: processing).
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/admin/api/reconcile?destination=linkedin", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"state":"processing"`) {
		t.Errorf("POST /admin/api/reconcile: %d %s", resp.StatusCode, b)
	}
	req, _ = http.NewRequest(http.MethodGet, srv.URL+"/admin/api/reconcile?destination=linkedin", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"supported":true`) || !strings.Contains(string(b), `"accepted":30`) {
		t.Errorf("GET /admin/api/reconcile: %d %s", resp.StatusCode, b)
	}
	if v := metricValue(t, hc, srv.URL, "capstan_reconcile_reporting_unavailable", `destination="linkedin"`); v != 0 {
		t.Errorf("capstan_reconcile_reporting_unavailable = %v", v)
	}
}

// TestReconcileWithoutReportingScope: a token without r_ads_reporting
// delivers, and capstan reconcile names the missing scope and how to get
// it, exiting 1; the accepted counts are still shown.
func TestReconcileWithoutReportingScope(t *testing.T) {
	sb := startSandbox(t, "--token", "no-reporting-token") // r_ads, rw_conversions
	dir := t.TempDir()
	cfg := writeReconcileConfig(t, dir, filepath.Join(dir, "data"), reconcileDest{sandbox: sb, accessToken: "no-reporting-token"})
	srv := startServer(t, cfg)
	hc := newHTTPClient(t)
	var events []map[string]any
	for i := range 5 {
		events = append(events, signUp(fmt.Sprintf("s-%d", i), "", "lfi-"+strconv.Itoa(i)))
	}
	sendEvents(t, hc, srv.URL, events)
	waitProcessed(t, hc, srv.URL, 5, 5, 0, 30*time.Second)
	if c := sb.conversions(); len(c) != 5 {
		t.Fatalf("delivered %d conversions, want 5", len(c))
	}
	code, out, errOut := runReconcile(t, cfg)
	t.Logf("capstan reconcile: exit %d\n%s%s", code, out, errOut)
	if code != 1 || !strings.Contains(errOut, "lacks the r_ads_reporting scope") || !strings.Contains(errOut, "capstan auth linkedin") ||
		!strings.Contains(out, "missing scope r_ads_reporting") {
		t.Errorf("capstan reconcile without r_ads_reporting: exit %d\n%s%s", code, out, errOut)
	}
	if st, _ := readyz(t, hc, srv.URL).destination("linkedin"); st != "delivering" {
		t.Errorf("destination %s, want delivering", st)
	}
}

// TestConsoleRuleStatusAndReconcile: after an upsell that re-used its
// order's eventId (suffix), the console's Destinations page shows the
// rules' status at LinkedIn (receiving, the callback times of spec §22)
// and, after Reconcile now, the reconciliation: accepted beside reported,
// the day still processing, and the eventId collision marked.
func TestConsoleRuleStatusAndReconcile(t *testing.T) {
	requireBrowser(t)
	sb := startSandbox(t, "--token", "console-recon-token")
	sb.addToken("console-recon-reporting", "r_ads", "rw_conversions", "r_ads_reporting")
	dir := t.TempDir()
	cfg := writeReconcileConfig(t, dir, filepath.Join(dir, "data"), reconcileDest{sandbox: sb, accessToken: "console-recon-reporting", adminToken: consoleAdminToken})
	srv := startServer(t, cfg)
	hc := newHTTPClient(t)
	sendEvents(t, hc, srv.URL, []map[string]any{orderEvent("order-1", "wc_order_5291", 149)})
	waitProcessed(t, hc, srv.URL, 1, 1, 0, 30*time.Second)
	sendEvents(t, hc, srv.URL, []map[string]any{orderEvent("upsell-1", "wc_order_5291", 39)})
	waitProcessed(t, hc, srv.URL, 2, 2, 0, 30*time.Second)

	var got struct {
		Rules     string `json:"rules"`
		Reconcile string `json:"reconcile"`
	}
	runConsole(t, "console-reconcile.mjs", srv.URL, nil, &got)
	t.Logf("rule status:\n%s\nreconciliation:\n%s", got.Rules, got.Reconcile)
	for _, want := range []string{"Orders", "receiving", "DYNAMIC", "435901", "Sign Up", "unverified"} {
		if !strings.Contains(got.Rules, want) {
			t.Errorf("rule status lacks %q:\n%s", want, got.Rules)
		}
	}
	for _, want := range []string{"Orders", "1 collision", "1 day, 2 accepted"} {
		if !strings.Contains(got.Reconcile, want) {
			t.Errorf("reconciliation lacks %q:\n%s", want, got.Reconcile)
		}
	}
}

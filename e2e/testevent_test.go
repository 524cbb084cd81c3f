package e2e

// capstan test-event, capstan rules list and their admin routes, with the
// real binary against `capstan sandbox` (issue 18).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeRulesConfig writes a configuration whose "Purchase" mapping creates
// a rule with every rule option, and whose "Ghost" mapping names a rule
// LinkedIn does not have.
func writeRulesConfig(t *testing.T, dir string, sb *sandboxProc, token, adminToken string) string {
	t.Helper()
	text := fmt.Sprintf(`server:
  addr: "127.0.0.1:0"
  data_dir: %q
  secret_key: %s
  admin_token: %q
engine:
  sync: always
sources:
  - name: %s
    write_key: %s
destinations:
  - name: linkedin
    api_base: %q
    ad_account: %d
    linger: 200ms
    auth:
      access_token: %q
      token_url: %q
    mappings:
      - name: Purchase
        trigger: 'type = "track" and event = "Order Completed"'
        conversion_rule:
          create:
            name: "Purchase (capstan)"
            type: PURCHASE
            attribution_type: LAST_TOUCH_BY_CONVERSION
            value_type: FIXED
            value: {currency_code: EUR, amount: "25.00"}
            enabled: true
            auto_association_type: ALL_CAMPAIGNS
      - name: Ghost
        trigger: 'type = "track" and event = "Ghost"'
        conversion_rule: {id: 999}
`, filepath.Join(dir, "data"), testSecretKey, adminToken, testSource, testWriteKey, sb.URL, testAdAccount, token, sb.URL+"/oauth/v2/accessToken")
	path := filepath.Join(dir, "capstan.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// testResult is `capstan test-event --json`.
type testResult struct {
	RealSend bool   `json:"realSend"`
	Mapping  string `json:"mapping"`
	Rule     string `json:"rule"`
	Request  struct {
		Method  string            `json:"method"`
		Path    string            `json:"path"`
		Headers map[string]string `json:"headers"`
		Body    json.RawMessage   `json:"body"`
	} `json:"request"`
	Status int `json:"status"`
	Answer *struct {
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		Body    json.RawMessage   `json:"body"`
	} `json:"answer"`
	Error string `json:"error"`
}

// storedBodies returns the sandbox's accepted conversions exactly as
// received.
func storedBodies(t *testing.T, sb *sandboxProc) []json.RawMessage {
	t.Helper()
	var out struct {
		Elements []json.RawMessage `json:"elements"`
	}
	sb.control(http.MethodGet, "/_sandbox/conversions", "", &out)
	return out.Elements
}

func compact(t *testing.T, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	return buf.String()
}

// ruleReport is one element of `capstan rules list --json`.
type ruleReport struct {
	Mapping     string   `json:"mapping"`
	RuleID      string   `json:"ruleId"`
	Status      string   `json:"status"`
	NoCampaigns bool     `json:"noCampaigns"`
	Verdict     string   `json:"verdict"`
	Differs     []string `json:"differs"`
	Rule        *struct {
		Enabled                    bool       `json:"enabled"`
		ValueType                  string     `json:"valueType"`
		Campaigns                  []int64    `json:"campaigns"`
		LastCallbackAt             *time.Time `json:"lastCallbackAt"`
		LatestFirstPartyCallbackAt *time.Time `json:"latestFirstPartyCallbackAt"`
		AssociatedCampaigns        []struct {
			Campaign     int64      `json:"campaign"`
			AssociatedAt *time.Time `json:"associatedAt"`
		} `json:"associatedCampaigns"`
	} `json:"rule"`
}

func rulesByMapping(t *testing.T, out string) map[string]ruleReport {
	t.Helper()
	var got struct {
		Rules []ruleReport `json:"rules"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("rules list --json: %v:\n%s", err, out)
	}
	m := map[string]ruleReport{}
	for _, r := range got.Rules {
		m[r.Mapping] = r
	}
	return m
}

// TestTestEventCLI: with serve stopped, `capstan test-event` creates the
// mapping's rule with its options, sends the built-in sample for real and
// prints LinkedIn's 201; the sandbox stored exactly the printed request's
// body. A rule LinkedIn refuses prints LinkedIn's 400 and exits 1.
// `capstan rules list` shows LinkedIn's status fields of §22.
func TestTestEventCLI(t *testing.T) {
	sb := startSandbox(t, "--token", "tok-te")
	dir := t.TempDir()
	cfg := writeRulesConfig(t, dir, sb, "tok-te", "admin-te")

	code, stdout, stderr := runCapstan(t, dir, nil, 60*time.Second, "test-event", "--config", cfg, "--destination", "linkedin", "--json")
	if code != 0 {
		t.Fatalf("test-event: exit %d:\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "REAL SEND") {
		t.Errorf("stderr does not mark the real send:\n%s", stderr)
	}
	var res testResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("test-event --json: %v:\n%s", err, stdout)
	}
	if !res.RealSend || res.Status != 201 || res.Answer == nil || res.Answer.Status != 201 || res.Answer.Headers["X-Li-Uuid"] == "" ||
		res.Mapping != "Purchase" || res.Request.Path != "/rest/conversionEvents" || res.Request.Headers["Authorization"] != "Bearer REDACTED" {
		t.Fatalf("test-event result:\n%s", stdout)
	}
	bodies := storedBodies(t, sb)
	if len(bodies) != 1 || compact(t, bodies[0]) != compact(t, res.Request.Body) {
		t.Fatalf("sandbox stored %d conversions; first %s\nprinted request body %s", len(bodies), bodies, res.Request.Body)
	}
	if !strings.Contains(string(bodies[0]), "urn:lla:llaPartnerConversion:"+res.Rule) || !strings.Contains(string(bodies[0]), `"eventId":"capstan-test-`) {
		t.Errorf("stored body %s (rule %s)", bodies[0], res.Rule)
	}
	if strings.Contains(stdout, "tok-te") || strings.Contains(stderr, "tok-te") {
		t.Error("the access token was printed")
	}
	// LinkedIn counts the test conversion like any other: so does the
	// accepted count that capstan reconcile compares with its report
	// (the token lacks r_ads_reporting: exit 1, the counts are shown).
	_, out, errOut := runReconcile(t, cfg, "--json")
	var recon reconcileJSON
	if err := json.Unmarshal([]byte(out), &recon); err != nil {
		t.Fatalf("capstan reconcile --json: %v\n%s%s", err, out, errOut)
	}
	var accepted int64 = -1
	for _, r := range recon[0].Rules {
		if r.Rule == res.Rule {
			accepted = r.Accepted
			if len(r.Days) == 1 {
				accepted = r.Days[0].Accepted
			}
		}
	}
	if accepted != 1 {
		t.Errorf("capstan reconcile counts %d accepted conversions of rule %s after the test event, want 1:\n%s", accepted, res.Rule, out)
	}

	// The rule options reached LinkedIn on creation.
	var reqs struct {
		Elements []struct {
			Method, Path, Query, Body string
			Status                    int
		} `json:"elements"`
	}
	sb.control(http.MethodGet, "/_sandbox/requests?limit=1000&endpoint=conversions", "", &reqs)
	created := false
	for _, r := range reqs.Elements {
		if r.Method == "POST" && r.Path == "/rest/conversions" {
			created = true
			if r.Status != 201 || r.Query != "autoAssociationType=ALL_CAMPAIGNS" {
				t.Errorf("rule creation: status %d query %q", r.Status, r.Query)
			}
			for _, frag := range []string{`"attributionType":"LAST_TOUCH_BY_CONVERSION"`, `"enabled":true`, `"valueType":"FIXED"`, `"value":{"currencyCode":"EUR","amount":"25.00"}`} {
				if !strings.Contains(r.Body, frag) {
					t.Errorf("rule creation body %s lacks %s", r.Body, frag)
				}
			}
		}
	}
	if !created {
		t.Error("test-event did not create the mapping's rule")
	}

	// Refused by LinkedIn: its status and message, exit 1.
	code, stdout, stderr = runCapstan(t, dir, nil, 60*time.Second, "test-event", "--config", cfg, "--destination", "linkedin", "--mapping", "Ghost")
	if code != 1 || !strings.Contains(stdout, "answer: HTTP 400") || !strings.Contains(stdout, "refused: LinkedIn refused the conversion (HTTP 400") ||
		!strings.Contains(stderr, "capstan: LinkedIn refused the conversion (HTTP 400") {
		t.Errorf("refused test event: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	// Refused before sending: the event does not pass the trigger.
	ev := filepath.Join(dir, "other.json")
	if err := os.WriteFile(ev, []byte(`{"type":"track","event":"Something Else","userId":"u1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCapstan(t, dir, nil, 60*time.Second, "test-event", "--config", cfg, "--destination", "linkedin", "--mapping", "Purchase", "--event", ev)
	if code != 3 || !strings.Contains(stdout, "not sent (NOT_MATCHED)") {
		t.Errorf("unmatched event: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if n := len(storedBodies(t, sb)); n != 1 {
		t.Errorf("sandbox holds %d conversions after the refusals, want 1", n)
	}

	// rules list: the status fields, the verdicts; exit 1 for the rule
	// LinkedIn does not have.
	code, stdout, stderr = runCapstan(t, dir, nil, 60*time.Second, "rules", "list", "--config", cfg, "--json")
	if code != 1 {
		t.Errorf("rules list: exit %d, want 1 (rule 999 unreadable):\n%s", code, stderr)
	}
	rules := rulesByMapping(t, stdout)
	p := rules["Purchase"]
	if p.RuleID != res.Rule || p.Status != "receiving" || p.NoCampaigns || p.Rule == nil || !p.Rule.Enabled || p.Rule.ValueType != "FIXED" ||
		p.Rule.LastCallbackAt == nil || p.Rule.LatestFirstPartyCallbackAt == nil || len(p.Rule.Campaigns) != 4 ||
		len(p.Rule.AssociatedCampaigns) != 4 || p.Rule.AssociatedCampaigns[0].AssociatedAt == nil || len(p.Differs) != 0 {
		t.Errorf("Purchase rule:\n%s", stdout)
	}
	if g := rules["Ghost"]; g.Status != "unknown" || !strings.Contains(g.Verdict, "rule 999 does not exist") {
		t.Errorf("Ghost rule: %+v", g)
	}
	code, stdout, _ = runCapstan(t, dir, nil, 60*time.Second, "rules", "list", "--config", cfg)
	for _, frag := range []string{"MAPPING", "LAST CALLBACK", "Purchase", res.Rule, "receiving", "linkedin / Purchase: receiving: last conversion seen", "4 campaign(s) associated"} {
		if !strings.Contains(stdout, frag) {
			t.Errorf("rules list (exit %d) lacks %q:\n%s", code, frag, stdout)
		}
	}
}

// TestTestEventAdminAPI: with serve running, the console's route sends a
// test event through the running destination and answers the request and
// LinkedIn's answer; `capstan test-event` works beside the running server;
// the rules route shows the status fields; both sends are in the audit log.
func TestTestEventAdminAPI(t *testing.T) {
	const adminToken = "admin-te2"
	sb := startSandbox(t, "--token", "tok-te2")
	dir := t.TempDir()
	cfg := writeRulesConfig(t, dir, sb, "tok-te2", adminToken)
	srv := startServerListening(t, cfg)
	hc := newHTTPClient(t)
	call := func(method, path, body string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	// The route answers once the local stores are open (503 "capstan is
	// starting" until then: its start moves any old buckets into them) and
	// the destination has created its rules.
	var res testResult
	deadline := time.Now().Add(60 * time.Second)
	for {
		status, b := call(http.MethodPost, "/admin/api/destinations/linkedin/test-event", `{"mapping":"Purchase"}`)
		if status == http.StatusServiceUnavailable && strings.Contains(string(b), "capstan is starting") && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if status != 200 {
			t.Fatalf("test-event route: %d %s", status, b)
		}
		res = testResult{}
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatalf("test-event route: %v: %s", err, b)
		}
		if !strings.Contains(res.Error, "not ready") || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if res.Status != 201 || res.Answer == nil || res.Error != "" || res.Request.Path != "/rest/conversionEvents" {
		t.Fatalf("test-event route: %+v", res)
	}
	// A given event through the route; LinkedIn's refusal through the route.
	status, b := call(http.MethodPost, "/admin/api/destinations/linkedin/test-event",
		`{"event":{"type":"track","event":"Order Completed","userId":"u-77","messageId":"given-1","traits":{"email":"ann@example.com"}}}`)
	if status != 200 || !strings.Contains(string(b), `"status":201`) {
		t.Errorf("given event: %d %s", status, b)
	}
	status, b = call(http.MethodPost, "/admin/api/destinations/linkedin/test-event", `{"mapping":"Ghost"}`)
	if status != 200 || !strings.Contains(string(b), `"status":400`) || !strings.Contains(string(b), `"error":"LinkedIn refused the conversion (HTTP 400`) {
		t.Errorf("refused through the route: %d %s", status, b)
	}
	// The CLI beside the running server (its engine, its token).
	code, stdout, stderr := runCapstan(t, dir, nil, 60*time.Second, "test-event", "--config", cfg, "--destination", "linkedin", "--json")
	if code != 0 {
		t.Fatalf("test-event with serve running: exit %d:\n%s%s", code, stdout, stderr)
	}
	bodies := storedBodies(t, sb)
	if len(bodies) != 3 || !strings.Contains(string(bodies[1]), `"eventId":"given-1"`) {
		t.Fatalf("sandbox holds %d conversions: %s", len(bodies), bodies)
	}

	status, b = call(http.MethodGet, "/admin/api/destinations/linkedin/rules", "")
	if status != 200 {
		t.Fatalf("rules route: %d %s", status, b)
	}
	if p := rulesByMapping(t, string(b))["Purchase"]; p.Status != "receiving" || p.Rule == nil || p.Rule.LastCallbackAt == nil {
		t.Errorf("rules route: %s", b)
	}
	// Audited: by the admin token and by the CLI.
	status, b = call(http.MethodGet, "/admin/api/audit", "")
	var audit struct {
		Records []struct {
			By, Action, Target, Error string
			Result                    map[string]int
		} `json:"records"`
	}
	if err := json.Unmarshal(b, &audit); status != 200 || err != nil {
		t.Fatalf("audit: %d %s", status, b)
	}
	by := map[string]int{}
	for _, r := range audit.Records {
		if r.Action == "test_event" && strings.HasPrefix(r.Target, "linkedin, mapping ") {
			by[r.By]++
			if r.Result["httpStatus"] == 0 || (r.Result["httpStatus"] == 400) != (r.Error != "") {
				t.Errorf("audit record %+v", r)
			}
		}
	}
	if by["admin token"] != 3 || by["cli"] != 1 {
		t.Errorf("audit records of test events by principal: %v\n%s", by, b)
	}
}

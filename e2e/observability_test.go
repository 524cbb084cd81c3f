package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The monitoring files of deploy/: their metric names must be ones capstan
// exposes, or the dashboard's panels stay empty and the alerts never fire.
var (
	dashboardFile = filepath.Join("..", "deploy", "grafana", "capstan.json")
	rulesFile     = filepath.Join("..", "deploy", "prometheus", "capstan-rules.yml")
)

// TestPromtoolCheckRules runs `promtool check rules` on the alert rules and
// on the dashboard's queries; scripts/setup-e2e.sh installs promtool
// (Debian's prometheus package).
func TestPromtoolCheckRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not on PATH (scripts/setup-e2e.sh installs it): the rules file is not checked by promtool")
	}
	out, err := exec.Command(promtool, "check", "rules", rulesFile).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", rulesFile, err, out)
	}
	t.Logf("promtool check rules: %s", strings.TrimSpace(string(out)))

	// The dashboard's queries, with Grafana's variables filled in, as
	// recording rules: promtool parses each.
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Targets []struct{ Expr string } `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s is not JSON: %v", dashboardFile, err)
	}
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__range", "1h", "$source", ".*", "$destination", ".*")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			q, _ := json.Marshal(vars.Replace(tg.Expr)) // a JSON string is a YAML scalar
			fmt.Fprintf(&rules, "      - record: dashboard:query_%d\n        expr: %s\n", n, q)
			n++
		}
	}
	queries := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	if err := os.WriteFile(queries, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", queries).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules on the %d queries of %s: %v\n%s", n, dashboardFile, err, out)
	}
	t.Logf("promtool parsed the dashboard's %d queries", n)
}

// TestGrafanaDashboard checks that the dashboard is JSON Grafana imports:
// a schemaVersion, and a DS_PROMETHEUS datasource input that every panel uses.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Inputs []struct {
			Name, Type, PluginID string
		} `json:"__inputs"`
		SchemaVersion int    `json:"schemaVersion"`
		UID           string `json:"uid"`
		Panels        []struct {
			Title, Type string
			Datasource  *struct{ Type, UID string }
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s is not JSON: %v", dashboardFile, err)
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("__inputs = %+v, want one Prometheus datasource input DS_PROMETHEUS", d.Inputs)
	}
	if d.SchemaVersion < 36 || d.UID == "" {
		t.Errorf("schemaVersion %d, uid %q: want a schemaVersion of 36 or later and a uid", d.SchemaVersion, d.UID)
	}
	for _, p := range d.Panels {
		if p.Type == "row" || p.Type == "text" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${DS_PROMETHEUS}" {
			t.Errorf("panel %q: datasource %+v, want uid ${DS_PROMETHEUS}", p.Title, p.Datasource)
		}
	}
}

// TestMonitoringMetricNames starts capstan with a LinkedIn destination on
// the sandbox and drives it through every state the monitoring files look
// at — conversions delivered, one dead-lettered, a 429, a token refresh (the
// expiry becomes known), a pause — then checks that every capstan_ metric
// named by the Grafana dashboard and the alert rules is on /metrics.
func TestMonitoringMetricNames(t *testing.T) {
	want := referencedMetrics(t, dashboardFile, rulesFile)
	if len(want) < 10 {
		t.Fatalf("found only %d capstan_ metric names in %s and %s: %v", len(want), dashboardFile, rulesFile, want)
	}

	sb := startSandbox(t, "--token", "obs-access", "--refresh-token", "obs-refresh",
		"--client-id", "obs-client", "--client-secret", "obs-secret", "--enforce-field-lengths")
	dir := t.TempDir()
	dest := linkedInDest{sandbox: sb, accessToken: "obs-access", refreshToken: "obs-refresh", clientID: "obs-client", clientSecret: "obs-secret",
		fields: `{userInfo: {firstName: {"@path": "$.properties.first_name"}, lastName: {"@path": "$.properties.last_name"}}}`}
	cfg := writeDeliveryConfig(t, dir, "capstan.yaml", filepath.Join(dir, "data"), "", dest)
	srv := startServer(t, cfg)
	hc := newHTTPClient(t)

	signUpNamed := func(id, first string) map[string]any {
		ev := signUp(id, id+"@example.com", "")
		props := ev["properties"].(map[string]any)
		props["first_name"], props["last_name"] = first, "Lee"
		return ev
	}
	// Delivered, and one dead-lettered: LinkedIn refuses a 44-character
	// first name.
	sendEvents(t, hc, srv.URL, []map[string]any{
		signUpNamed("obs-1", "Ann"), signUpNamed("obs-2", "Ann"), signUpNamed("obs-3", strings.Repeat("Maximiliane", 4)),
		{"type": "identify", "userId": "obs-user", "messageId": "obs-identify", "traits": map[string]any{"plan": "pro"}},
	})
	waitProcessed(t, hc, srv.URL, 4, 2, 1, 30*time.Second)
	// A track without its event name: dropped by ingest.
	body := marshal(map[string]any{"batch": []map[string]any{{"type": "track", "userId": "obs-user", "messageId": "obs-bad"}}})
	if status, ans, err := post(context.Background(), hc, srv.URL, "/v1/batch", body); err != nil || status != http.StatusOK || ans.Dropped != 1 {
		t.Fatalf("POST /v1/batch with an invalid track: status %d %+v %v; want 200 with 1 dropped", status, ans, err)
	}

	// A 429 from LinkedIn: rate limited (remote), retried.
	sb.control(http.MethodPost, "/_sandbox/faults", `{"endpoint":"conversionEvents","next":1,"action":"rate_limit","retry_after":1}`, nil)
	sendEvents(t, hc, srv.URL, []map[string]any{signUpNamed("obs-4", "Ann")})
	waitProcessed(t, hc, srv.URL, 5, 3, 1, 30*time.Second)

	// The access token expires: capstan refreshes it and learns the new
	// token's expiry, which /readyz publishes as a gauge.
	sb.control(http.MethodPost, "/_sandbox/tokens/obs-access/expire", "", nil)
	sendEvents(t, hc, srv.URL, []map[string]any{signUpNamed("obs-5", "Ann")})
	waitProcessed(t, hc, srv.URL, 6, 4, 1, 30*time.Second)
	readyz(t, hc, srv.URL)

	// Every token revoked: the destination pauses.
	sb.control(http.MethodPost, "/_sandbox/faults", `{"endpoint":"conversionEvents","action":"auth","service_error_code":65601}`, nil)
	sendEvents(t, hc, srv.URL, []map[string]any{signUpNamed("obs-6", "Ann")})
	if reason, last := waitPaused(t, hc, srv.URL, 30*time.Second); reason == "" {
		t.Fatalf("the destination did not pause after its token was revoked: /readyz %d %+v", last.HTTPStatus, last)
	}

	have := scrapedMetrics(t, hc, srv.URL)
	var missing []string
	for _, name := range want {
		if !have[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		t.Errorf("the monitoring files name metrics that capstan's /metrics does not have: %v", missing)
	}
	t.Logf("%d metric names checked: %v", len(want), want)
}

var metricName = regexp.MustCompile(`capstan_[a-z_]+`)

// referencedMetrics returns the sorted capstan_ metric names the files
// mention, histogram series (_bucket, _sum, _count) named by their family.
func referencedMetrics(t testing.TB, files ...string) []string {
	t.Helper()
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range metricName.FindAllString(string(b), -1) {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				m = strings.TrimSuffix(m, suffix)
			}
			names = append(names, m)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// scrapedMetrics returns the metric families on url's /metrics that have at
// least one sample (a labelled metric without one is not listed at all).
func scrapedMetrics(t testing.TB, hc *http.Client, url string) map[string]bool {
	t.Helper()
	resp, err := hc.Get(url + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", resp.StatusCode)
	}
	have := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		have[name] = true
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok {
				have[base] = true
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	if len(have) == 0 {
		t.Fatalf("GET %s/metrics: no samples", url)
	}
	return have
}

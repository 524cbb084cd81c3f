package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// statsFunnel is the funnel of GET /admin/api/stats.
type statsFunnel struct {
	Received     int `json:"received"`
	Matched      int `json:"matched"`
	Valid        int `json:"valid"`
	Delivered    int `json:"delivered"`
	DeadLettered int `json:"deadLettered"`
}

// statsCoverage is the match coverage of GET /admin/api/stats.
type statsCoverage struct {
	LiFatID int `json:"li_fat_id"`
	Email   int `json:"email"`
	Both    int `json:"both"`
	Neither int `json:"neither"`
}

// adminStats reads GET /admin/api/stats?window=w and returns the first
// destination's funnel and coverage.
func adminStats(t testing.TB, hc *http.Client, url, window string) (statsFunnel, statsCoverage) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url+"/admin/api/stats?window="+window, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+consoleAdminToken)
	res, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var rep struct {
		Destinations []struct {
			Name     string        `json:"name"`
			Funnel   statsFunnel   `json:"funnel"`
			Coverage statsCoverage `json:"coverage"`
		} `json:"destinations"`
	}
	if err := json.NewDecoder(res.Body).Decode(&rep); err != nil || res.StatusCode != http.StatusOK || len(rep.Destinations) != 1 {
		t.Fatalf("GET /admin/api/stats: %d %+v %v", res.StatusCode, rep, err)
	}
	return rep.Destinations[0].Funnel, rep.Destinations[0].Coverage
}

// TestConsoleOverviewAndDeadLetters delivers conversions carrying
// li_fat_id, an email, both, to the sandbox, has LinkedIn refuse three
// (a 400 from the sandbox) and one fail validation, then in Chromium: the
// Overview shows the funnel and match coverage as charts that state the
// figures; the Dead letters page shows the four with LinkedIn's answer,
// the payload and the event, and replays one, a selection and a filter,
// the navigation's count dropping each time. Afterwards the statistics
// count the replayed conversions as delivered and survive a restart.
func TestConsoleOverviewAndDeadLetters(t *testing.T) {
	const viewerPassword = "viewer-password-e2e"
	hash, err := bcrypt.GenerateFromPassword([]byte(viewerPassword), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	srv := startConsoleServer(t, "  admin_users:\n    - {name: vera, password_hash: '"+string(hash)+"', role: viewer}\n")
	hc := newHTTPClient(t)

	// 12 conversions: 3 with li_fat_id only, 4 with an email only, 5 with
	// both; and 2 events no mapping takes.
	var events []map[string]any
	for i := range 12 {
		id := fmt.Sprintf("ov-%02d", i)
		switch {
		case i < 3:
			events = append(events, signUp(id, "", fmt.Sprintf("lfi-%d", i)))
		case i < 7:
			events = append(events, signUp(id, fmt.Sprintf("p%d@example.com", i), ""))
		default:
			events = append(events, signUp(id, fmt.Sprintf("p%d@example.com", i), fmt.Sprintf("lfi-%d", i)))
		}
	}
	for i := range 2 {
		events = append(events, map[string]any{"type": "track", "event": "Page Viewed", "userId": "u", "messageId": fmt.Sprintf("ov-other-%d", i)})
	}
	sendEvents(t, hc, srv.URL, events)
	waitProcessed(t, hc, srv.URL, 14, 12, 0, 60*time.Second)

	// LinkedIn refuses the next three requests (400): three dead letters,
	// one request each.
	srv.sandbox.control(http.MethodPost, "/_sandbox/faults", `{"endpoint":"conversionEvents","next":3,"action":"status","status":400}`, nil)
	for i := range 3 {
		sendEvents(t, hc, srv.URL, []map[string]any{signUp(fmt.Sprintf("ov-refused-%d", i), fmt.Sprintf("r%d@example.com", i), "")})
		waitProcessed(t, hc, srv.URL, 15+i, 12, i+1, 60*time.Second)
	}
	// And one conversion with no identifier at all: invalid, never sent.
	sendEvents(t, hc, srv.URL, []map[string]any{signUp("ov-invalid", "", "")})
	waitProcessed(t, hc, srv.URL, 18, 12, 4, 60*time.Second)

	funnel, cov := adminStats(t, hc, srv.URL, "1h")
	if want := (statsFunnel{Received: 18, Matched: 16, Valid: 15, Delivered: 12, DeadLettered: 4}); funnel != want {
		t.Errorf("stats funnel %+v, want %+v", funnel, want)
	}
	if want := (statsCoverage{LiFatID: 3, Email: 4, Both: 5}); cov != want {
		t.Errorf("stats coverage %+v, want %+v", cov, want)
	}

	var got struct {
		FunnelLabel    string   `json:"funnelLabel"`
		CoverageLabel  string   `json:"coverageLabel"`
		RateLabel      string   `json:"rateLabel"`
		Tiles          string   `json:"tiles"`
		Funnel24hLabel string   `json:"funnel24hLabel"`
		MappingTitle   string   `json:"mappingTitle"`
		NavCount       string   `json:"navCount"`
		Rows           []dlRow  `json:"rows"`
		Answer         string   `json:"answer"`
		Payload        string   `json:"payload"`
		Event          string   `json:"event"`
		CountAfter     []string `json:"countAfter"`
		Filtered       []dlRow  `json:"filtered"`
		Left           []dlRow  `json:"left"`
		Toasts         []string `json:"toasts"`
		Viewer         struct {
			Count       string    `json:"count"`
			AllDisabled bool      `json:"allDisabled"`
			AllTitle    string    `json:"allTitle"`
			OneDisabled bool      `json:"oneDisabled"`
			Forced      apiAnswer `json:"forced"`
		} `json:"viewer"`
	}
	runConsole(t, "console-overview.mjs", srv.URL, map[string]any{"viewer": "vera", "viewerPassword": viewerPassword}, &got)

	for _, want := range []string{"Received 18", "Matched 16 (88.9%)", "Valid 15", "Delivered 12 (66.7%)", "Dead-lettered 4"} {
		if !strings.Contains(got.FunnelLabel, want) {
			t.Errorf("the funnel chart's label %q does not say %q", got.FunnelLabel, want)
		}
	}
	for _, want := range []string{"of 12:", "Both 5 (41.7%)", "li_fat_id only 3 (25%)", "Email hash only 4 (33.3%)", "Neither 0 (0%)"} {
		if !strings.Contains(got.CoverageLabel, want) {
			t.Errorf("the coverage chart's label %q does not say %q", got.CoverageLabel, want)
		}
	}
	if !strings.Contains(got.RateLabel, "received/s: peak") || !strings.Contains(got.RateLabel, "delivered/s") {
		t.Errorf("the rate chart's label: %q", got.RateLabel)
	}
	if !strings.Contains(got.Tiles, "100%") || !strings.Contains(got.Tiles, "Latency p50 / p95") {
		t.Errorf("the overview's figures: %q (want a match coverage of 100%% and the latency)", got.Tiles)
	}
	if !strings.Contains(got.Funnel24hLabel, "over 24h") || !strings.Contains(got.Funnel24hLabel, "Delivered 12") {
		t.Errorf("24 h window: funnel label %q", got.Funnel24hLabel)
	}
	if !strings.Contains(got.MappingTitle, "Sign Up") {
		t.Errorf("one mapping: title %q", got.MappingTitle)
	}

	if got.NavCount != "4" {
		t.Errorf("navigation count %q, want 4", got.NavCount)
	}
	reasons := map[string]int{}
	for _, r := range got.Rows {
		reasons[r.Reason]++
		if r.Destination != "linkedin" || r.Mapping != "Sign Up" {
			t.Errorf("row %+v: want destination linkedin, mapping Sign Up", r)
		}
	}
	if reasons["rejected"] != 3 || reasons["invalid"] != 1 {
		t.Errorf("dead letters by reason %v, want 3 rejected and 1 invalid", reasons)
	}
	if !strings.Contains(got.Answer, `"status": 400`) || !strings.Contains(got.Payload, `"eventId": "ov-refused-`) || !strings.Contains(got.Event, `"messageId": "ov-refused-`) {
		t.Errorf("dead letter detail: answer %q, payload %q, event %q", got.Answer, got.Payload, got.Event)
	}
	if strings.Join(got.CountAfter, ",") != "3,2,1" {
		t.Errorf("navigation count after replaying one, a selection and the filter: %v, want 3, 2, 1", got.CountAfter)
	}
	if len(got.Filtered) != 1 || got.Filtered[0].Reason != "rejected" {
		t.Errorf("filtered by reason rejected: %+v, want the one rejected left", got.Filtered)
	}
	if len(got.Left) != 1 || got.Left[0].Reason != "invalid" {
		t.Errorf("left after the replays: %+v, want the invalid one", got.Left)
	}

	if v := got.Viewer; v.Count != "1" || !v.AllDisabled || !v.OneDisabled || !strings.Contains(v.AllTitle, "operator") ||
		v.Forced.Status != http.StatusForbidden || v.Forced.Body.Error.Code != "forbidden" {
		t.Errorf("a viewer on Dead letters: %+v; want the count 1, Replay disabled with a title naming the operator role, and a forced replay refused with 403 forbidden", v)
	}

	// Each replay is in the audit log, by the signed-in admin token.
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/admin/api/audit", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+consoleAdminToken)
	res, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var audit struct {
		Records []struct {
			By, Action, Target, Error string
			Result                    map[string]int
		} `json:"records"`
	}
	err = json.NewDecoder(res.Body).Decode(&audit)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var replays []string
	for _, r := range audit.Records {
		if r.Action == "dlq_replay" {
			replays = append(replays, fmt.Sprintf("%s %s replayed=%d %s", r.By, r.Target, r.Result["replayed"], r.Error))
		}
	}
	if len(replays) != 3 {
		t.Errorf("audit log: replays %q, want the 3 made in the console", replays)
	}
	for _, r := range replays {
		if !strings.Contains(r, "replayed=1") {
			t.Errorf("audit record %q: want one dead letter replayed", r)
		}
	}

	// The replayed conversions are delivered: the sandbox has 15, and the
	// statistics count them.
	srv.sandbox.waitConversions(15, 60*time.Second, "after the replays")
	if !poll(30*time.Second, func() bool {
		funnel, _ = adminStats(t, hc, srv.URL, "1h")
		return funnel.Delivered == 15
	}) {
		t.Errorf("after the replays: stats funnel %+v, want 15 delivered", funnel)
	}
	// The figures survive a restart (SIGTERM: the final flush).
	stopServer(t, srv.server)
	srv.server = startServer(t, srv.cfg)
	after, cov := adminStats(t, hc, srv.URL, "7d")
	if after != funnel || cov.Both != 5 || cov.Email != 7 || cov.LiFatID != 3 {
		t.Errorf("after a restart: funnel %+v coverage %+v, want %+v and coverage 3/7/5", after, cov, funnel)
	}
}

// dlRow is one row of the Dead letters page.
type dlRow struct {
	Seq         string `json:"seq"`
	Reason      string `json:"reason"`
	Destination string `json:"destination"`
	Mapping     string `json:"mapping"`
}

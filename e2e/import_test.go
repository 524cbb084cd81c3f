package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// importRows writes dir/name: a CRM export of n rows (a header, then one
// "deal" per row, some invalid on purpose) and returns its path and the
// line numbers of the invalid rows with the field each error must name.
func importRows(t testing.TB, dir, name string, n int) (string, map[int]string) {
	t.Helper()
	now := time.Now().UTC()
	var b strings.Builder
	b.WriteString("Contact ID,Email,First Name,Last Name,Company,Deal Value,Currency,Closed At,Stage\n")
	bad := map[int]string{}
	for i := range n {
		line := i + 2
		at := now.Add(-time.Duration(i) * time.Minute)
		row := fmt.Sprintf("crm-%05d,row%05d@example.com,Ann,Lee,Acme,%d.50,USD,%s,won\n", i, i, 100+i, at.Format(time.DateTime))
		switch i % 97 {
		case 11:
			row = fmt.Sprintf("crm-%05d,row%05d@example.com,Ann,Lee,Acme,%d.50,USD,last tuesday,won\n", i, i, i)
			bad[line] = "Closed At"
		case 23:
			row = fmt.Sprintf("crm-%05d,row%05d@example.com,Ann,Lee,Acme,$%d,USD,%s,won\n", i, i, i, at.Format(time.DateTime))
			bad[line] = "Deal Value"
		case 37:
			row = fmt.Sprintf(",,Ann,Lee,Acme,%d,USD,%s,won\n", i, at.Format(time.DateTime))
			bad[line] = "row"
		case 51:
			row = fmt.Sprintf("crm-%05d,row%05d@example.com,Ann,Lee,Acme,%d,USD,%s,won\n", i, i, i, now.AddDate(0, 0, -120).Format(time.DateOnly))
			bad[line] = "Closed At"
		case 73:
			row = fmt.Sprintf("crm-%05d,row%05d@example.com,Ann,Lee,Ac\"me,%d,USD,%s,won\n", i, i, i, at.Format(time.DateTime))
			bad[line] = "row"
		}
		b.WriteString(row)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, bad
}

// importArgs are the flags of the tests' imports of importRows files.
func importArgs(cfg string, extra ...string) []string {
	return append([]string{"import", "--config", cfg, "--event", "Sign Up",
		"--map", "Contact ID=userId", "--map", "Deal Value=revenue", "--map", "Closed At=timestamp"}, extra...)
}

var rowErrorLine = regexp.MustCompile(`^(deals\.csv):(\d+): ([^:]+): (.+)$`)

// checkRowErrors checks that stderr names exactly the invalid rows, one a
// line, with the field at fault.
func checkRowErrors(t testing.TB, stderr string, bad map[int]string) {
	t.Helper()
	got := map[int]string{}
	for _, l := range strings.Split(stderr, "\n") {
		if m := rowErrorLine.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[2])
			got[n] = m[3]
		}
	}
	for line, field := range bad {
		if got[line] != field {
			t.Errorf("row error for line %d: field %q, want %q", line, got[line], field)
		}
	}
	for line := range got {
		if _, ok := bad[line]; !ok {
			t.Errorf("line %d reported invalid, but it is not", line)
		}
	}
}

// streamBytes is the size of a stream's block files in dataDir: a look at
// the embedded engine's store from outside, to see an import make progress
// while it holds the data directory.
func streamBytes(dataDir, stream string) int64 {
	files, _ := filepath.Glob(filepath.Join(dataDir, "jetstream", "jetstream", "*", "streams", stream, "msgs", "*.blk"))
	var n int64
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// TestImportCRM: a CRM row carrying only a userId, imported while capstan
// serve runs, reaches LinkedIn with the li_fat_id of an earlier page view
// sent over HTTP; then a CRM export of a few thousand rows, some invalid, is
// imported with capstan stopped, killed with SIGKILL half way, and run
// again: every valid row reaches the sandbox exactly once (by eventId), the
// invalid ones are named by line, and importing the file again (capstan
// running) stores nothing.
func TestImportCRM(t *testing.T) {
	const rows = 3000
	sb := startSandbox(t, "--token", "import-token", "--max-conversions", "100000")
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	cfg := writeDeliveryConfig(t, dir, "capstan.yaml", dataDir, "",
		linkedInDest{sandbox: sb, accessToken: "import-token", batchSize: 1000})
	srv := startServer(t, cfg)
	hc := newHTTPClient(t)
	hc.Timeout = 10 * time.Second

	// 1. A page view from the landing page, sent by the site's back end
	// over HTTP, ties the user to the click id.
	page := map[string]any{
		"type": "page", "userId": "crm-user-1", "messageId": "page-1", "name": "Landing",
		"context": map[string]any{"page": map[string]any{"url": "https://www.example.com/?li_fat_id=lfi-from-page"}},
	}
	status, ans, err := post(t.Context(), hc, srv.URL, "/v1/batch", marshal(map[string]any{"batch": []any{page}}))
	if err != nil || status != http.StatusOK || !ans.Success {
		t.Fatalf("page view: %d %+v %v", status, ans, err)
	}
	// 2. Weeks later the CRM says the deal closed: only a userId.
	crm := filepath.Join(dir, "won.csv")
	if err := os.WriteFile(crm, []byte("user_id,event,id,value,currency\ncrm-user-1,Sign Up,deal-1,15000,usd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCapstan(t, dir, nil, 60*time.Second, "import", "--config", cfg, crm)
	if code != 0 || !strings.Contains(stderr, "won.csv: 1 rows read, 1 stored, 0 duplicates, 0 invalid") {
		t.Fatalf("import while serve runs: exit %d:\n%s", code, stderr)
	}
	conv := byEventID(t, sb.waitConversions(1, 60*time.Second, "the CRM row"))["deal-1"]
	if lfi, _ := conv.userID("LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID"); lfi != "lfi-from-page" {
		t.Errorf("the CRM row reached LinkedIn with li_fat_id %q, want the page view's; conversion %+v", lfi, conv)
	}

	// 3. A dry run of the big export: what would be stored, nothing stored.
	srv.Signal(syscall.SIGTERM)
	if c := srv.Wait(60 * time.Second); c != 0 {
		t.Fatalf("serve exited %d", c)
	}
	_, bad := importRows(t, dir, "deals.csv", rows)
	code, stdout, stderr := runCapstan(t, dir, nil, 120*time.Second, importArgs(cfg, "--dry-run", "deals.csv")...)
	if code != 3 {
		t.Fatalf("dry run: exit %d, want 3:\n%s", code, stderr)
	}
	checkRowErrors(t, stderr, bad)
	want := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var ev struct {
			MessageID string `json:"messageId"`
			UserID    string `json:"userId"`
			Traits    struct {
				Email string `json:"email"`
			} `json:"traits"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("dry run printed a line that is not JSON: %s", sc.Text())
		}
		want[ev.MessageID] = true
	}
	if len(want) != rows-len(bad) {
		t.Fatalf("dry run printed %d events, want %d", len(want), rows-len(bad))
	}
	if n := len(tailEvents(t, cfg)); n != 2 {
		t.Fatalf("after the dry run the stream holds %d events, want 2", n)
	}

	// 4. The import, with capstan stopped, killed once it stored rows and
	// kept a resume point (the state bucket grew).
	before, stateBefore := streamBytes(dataDir, "EVENTS"), streamBytes(dataDir, "KV_state")
	cmd := exec.Command(capstanBin, importArgs(cfg, "deals.csv")...)
	cmd.Dir = dir
	var killedErr bytes.Buffer
	cmd.Stderr = &killedErr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	killed := poll(120*time.Second, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		return streamBytes(dataDir, "EVENTS") > before && streamBytes(dataDir, "KV_state") > stateBefore
	})
	_ = cmd.Process.Kill()
	<-exited
	if !killed || cmd.ProcessState.Success() {
		t.Fatalf("the import finished before it could be killed (state %v):\n%s", cmd.ProcessState, killedErr.String())
	}

	// 5. Run again: it continues, reports the invalid rows, exits 3.
	code, _, stderr = runCapstan(t, dir, nil, 120*time.Second, importArgs(cfg, "deals.csv")...)
	if code != 3 {
		t.Fatalf("import after the kill: exit %d, want 3:\n%s", code, stderr)
	}
	checkRowErrors(t, stderr, bad)
	sum := regexp.MustCompile(`deals\.csv: (\d+) rows read, (\d+) stored, (\d+) duplicates, (\d+) already imported by an earlier run, (\d+) invalid`).FindStringSubmatch(stderr)
	if sum == nil {
		t.Fatalf("no summary (or nothing resumed) in:\n%s", stderr)
	}
	t.Logf("after the kill: %s", sum[0])
	if sum[1] != strconv.Itoa(rows) || sum[5] != strconv.Itoa(len(bad)) {
		t.Errorf("summary %q: want %d rows, %d invalid", sum[0], rows, len(bad))
	}

	// 6. capstan again: every valid row reaches LinkedIn exactly once.
	startServer(t, cfg)
	total := rows - len(bad) + 1
	convs := byEventID(t, sb.waitConversions(total, 180*time.Second, "the imported rows"))
	for id := range want {
		if _, ok := convs[id]; !ok {
			t.Errorf("row %s did not reach LinkedIn", id)
		}
	}
	if len(convs) != total {
		t.Errorf("LinkedIn holds %d conversions, want %d", len(convs), total)
	}
	stored := countByMessageID(tailEvents(t, cfg))
	for id := range want {
		if stored[id] != 1 {
			t.Errorf("row %s is stored %d times", id, stored[id])
		}
	}

	// 7. The same file again, capstan running: nothing new.
	code, _, stderr = runCapstan(t, dir, nil, 120*time.Second, importArgs(cfg, "deals.csv")...)
	if code != 3 || !strings.Contains(stderr, fmt.Sprintf("0 stored, 0 duplicates, %d already imported", rows-len(bad))) {
		t.Errorf("import again: exit %d:\n%s", code, stderr)
	}
	if c := sb.counters(); c.Deduplicated != 0 || c.Accepted != int64(total) {
		t.Errorf("sandbox counters %+v: want %d accepted, none deduplicated", c, total)
	}
	if n := len(tailEvents(t, cfg)); n != total+1 {
		t.Errorf("the stream holds %d events, want %d (the rows and the page view)", n, total+1)
	}
}

// TestImportUsage: files that cannot be imported are refused with exit
// code 2 and a clear message, storing nothing.
func TestImportUsage(t *testing.T) {
	cfg := newConfig(t)
	dir := filepath.Dir(cfg)
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"empty file", []string{write("empty.csv", "")}, "empty.csv is empty"},
		{"header only", []string{write("header.csv", "userId,event\n")}, "header.csv has a header row and no rows"},
		{"unknown extension", []string{write("deals.txt", "userId,event\nu1,x\n")}, "deals.txt: unknown extension; name the file .csv or .jsonl, or give --format csv|jsonl"},
		{"binary", []string{write("blob.csv", "userId,event\n\x00\x01\x02")}, "blob.csv is not a text file"},
		{"unknown --map field", []string{"--map", "Amount=price", write("m.csv", "userId,event,Amount\nu1,x,5\n")}, `--map "Amount=price": unknown field "price"`},
		{"--map on no column", []string{"--map", "Amount=revenue", write("n.csv", "userId,event\nu1,x\n")}, `the header has no column "amount"`},
		{"no event", []string{write("e.csv", "userId,email\nu1,a@b.co\n")}, "e.csv has no event column"},
		{"stdin without --format", []string{"-"}, "reading standard input needs --format"},
		{"unknown source", []string{"--source", "nope", write("s.csv", "userId,event\nu1,x\n")}, `--source "nope" is not a configured source (sources: e2e)`},
		{"no file", []string{}, "accepts 1 arg(s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCapstan(t, dir, nil, 60*time.Second, append([]string{"import", "--config", cfg}, tt.args...)...)
			if code != 2 || !strings.Contains(stderr, tt.msg) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and %q", code, stderr, tt.msg)
			}
		})
	}
	if evs := tailEvents(t, cfg); len(evs) != 0 {
		t.Errorf("%d events stored", len(evs))
	}
}

// TestImportJSONLStdin: Segment events piped in as JSONL are stored as
// they are (a missing messageId made from the line), and piping them again
// stores nothing: standard input has no resume point, the stream's
// de-duplication keeps one copy.
func TestImportJSONLStdin(t *testing.T) {
	cfg := newConfig(t)
	dir := filepath.Dir(cfg)
	ts := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	in := strings.Join([]string{
		`{"type":"identify","userId":"u1","traits":{"email":"ann@example.com"},"messageId":"id-1"}`,
		`{"type":"track","event":"Order Completed","userId":"u1","timestamp":"` + ts + `","properties":{"revenue":49.9,"currency":"USD"}}`,
		`{"type":"track","event":"Order Completed","userId":"u2","timestamp":"2020-01-01T00:00:00Z"}`,
		`{"type":"page","anonymousId":"a1","name":"Home"}`,
		`{"type":"track"`,
	}, "\n") + "\n"
	run := func() (int, string) {
		t.Helper()
		cmd := exec.Command(capstanBin, "import", "--config", cfg, "--format", "jsonl", "-")
		cmd.Dir = dir
		cmd.Stdin = strings.NewReader(in)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		_ = cmd.Run()
		return cmd.ProcessState.ExitCode(), stderr.String()
	}
	code, stderr := run()
	if code != 3 || !strings.Contains(stderr, "-:3: timestamp: 2020-01-01T00:00:00Z is") || !strings.Contains(stderr, "-:5: event: ") ||
		!strings.Contains(stderr, "-: 5 rows read, 3 stored, 0 duplicates, 2 invalid (1 invalid JSON, 1 older than 90 days)") {
		t.Fatalf("first run: exit %d:\n%s", code, stderr)
	}
	code, stderr = run()
	if code != 3 || !strings.Contains(stderr, "-: 5 rows read, 0 stored, 3 duplicates, 2 invalid") {
		t.Fatalf("second run: exit %d:\n%s", code, stderr)
	}
	evs := tailEvents(t, cfg)
	if len(evs) != 3 {
		t.Fatalf("%d events stored, want 3", len(evs))
	}
	var track struct {
		MessageID  string `json:"messageId"`
		Properties struct {
			Revenue json.Number `json:"revenue"`
		} `json:"properties"`
	}
	mustUnmarshal(t, evs[1].Event, &track)
	if !strings.HasPrefix(track.MessageID, "import-") || track.Properties.Revenue != "49.9" || evs[0].MessageID() != "id-1" {
		t.Errorf("stored %s and %s", evs[0].Event, evs[1].Event)
	}
}

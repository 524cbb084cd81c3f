package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestConsoleImport: on the Import page an operator uploads a CSV of
// closed deals with a column mapping: as a dry run nothing is stored;
// imported, the page shows the progress (rows of total, rows/s) and the
// summary with the two invalid rows by line; the valid rows are stored
// and reach the sandbox once each; the same file again stores nothing; a
// long import is cancelled from the page; a file of unknown type is
// refused with a message; a viewer sees the imports but cannot upload; the
// audit log has each import.
func TestConsoleImport(t *testing.T) {
	const viewerPassword = "viewer-password-e2e"
	hash, err := bcrypt.GenerateFromPassword([]byte(viewerPassword), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	srv := startConsoleServer(t, "  admin_users:\n    - {name: vera, password_hash: '"+string(hash)+"', role: viewer}\n")

	const rows = 300
	ts := time.Now().Add(-24 * time.Hour).UTC().Format("2006-01-02 15:04:05")
	var csv strings.Builder
	csv.WriteString("Deal ID,email,li_fat_id,Amount,currency,closed_at,stage\n")
	for i := range rows {
		fmt.Fprintf(&csv, "deal-%03d,person%d@example.com,lfi-import-%d,%d.50,USD,%s,won\n", i, i, i, 100+i, ts)
		switch i {
		case 49: // line 52
			csv.WriteString("deal-bad-ts,late@example.com,,10,USD,not a date,won\n")
		case 149: // line 153
			csv.WriteString("deal-nobody,,,10,USD," + ts + ",won\n")
		}
	}
	var got struct {
		Sources []string `json:"sources"`
		Dry     importRun
		Real    importRun
		Again   importRun
		Recent  []string `json:"recent"`
		BadFile string   `json:"badFile"`

		CancelDialog string `json:"cancelDialog"`
		Cancelled    string `json:"cancelled"`

		AfterDryCount        int    `json:"afterDryCount"`
		ViewerUploadDisabled bool   `json:"viewerUploadDisabled"`
		ViewerRows           int    `json:"viewerRows"`
		ViewerSummary        string `json:"viewerSummary"`
	}
	runConsole(t, "console-import.mjs", srv.URL, map[string]any{
		"csv": csv.String(), "map": "Deal ID=messageId\nAmount=revenue\nclosed_at=timestamp",
		"source": testSource, "viewer": "vera", "viewerPassword": viewerPassword,
	}, &got)

	if strings.Join(got.Sources, ",") != testSource {
		t.Errorf("sources %v", got.Sources)
	}
	total := fmt.Sprintf("%d of %d rows", rows+2, rows+2)
	for name, r := range map[string]importRun{"dry run": got.Dry, "import": got.Real, "again": got.Again} {
		if !strings.Contains(r.Line, total) || !strings.Contains(r.Line, "rows/s") || r.Bar.Value != rows+2 || r.Bar.Max != rows+2 {
			t.Errorf("%s: progress %q, bar %+v", name, r.Line, r.Bar)
		}
		if !strings.Contains(r.Title, "Imported deals.csv") {
			t.Errorf("%s: title %q", name, r.Title)
		}
		if len(r.ErrorRows) != 2 || !strings.HasPrefix(r.ErrorRows[0], "52\tclosed_at\tunparseable timestamp") ||
			!strings.HasPrefix(r.ErrorRows[1], "153\trow\tno identifier") {
			t.Errorf("%s: invalid rows %q", name, r.ErrorRows)
		}
	}
	for _, want := range []string{"Read302 rows", "Would be stored300", "Invalid2: 1 no identifier, 1 unparseable timestamp", "nothing was stored"} {
		if !strings.Contains(got.Dry.Summary, want) {
			t.Errorf("dry run summary lacks %q: %s", want, got.Dry.Summary)
		}
	}
	if got.AfterDryCount != 0 {
		t.Errorf("the dry run stored %d events", got.AfterDryCount)
	}
	for _, want := range []string{"Stored300", "Duplicates0", "Already imported0", "Invalid2"} {
		if !strings.Contains(got.Real.Summary, want) {
			t.Errorf("import summary lacks %q: %s", want, got.Real.Summary)
		}
	}
	for _, want := range []string{"Stored0", "Already imported300"} {
		if !strings.Contains(got.Again.Summary, want) {
			t.Errorf("second import's summary lacks %q: %s", want, got.Again.Summary)
		}
	}
	if !strings.Contains(got.CancelDialog, "Cancel the import of “leads.csv”") || !strings.Contains(got.Cancelled, "cancelled by admin token") ||
		!strings.Contains(got.Cancelled, "import the file again to continue") {
		t.Errorf("cancel: dialog %q, summary %q", got.CancelDialog, got.Cancelled)
	}
	if len(got.Recent) != 4 || !strings.Contains(got.Recent[0], "cancelled") || !strings.Contains(got.BadFile, "notes.txt: unknown extension") {
		t.Errorf("recent %q; a .txt file shows %q", got.Recent, got.BadFile)
	}
	if !got.ViewerUploadDisabled || got.ViewerRows != 4 || !strings.Contains(got.ViewerSummary, "cancelled by admin token") {
		t.Errorf("viewer: upload disabled %v, %d rows, summary %q", got.ViewerUploadDisabled, got.ViewerRows, got.ViewerSummary)
	}

	// The rows are stored events like any other, and reach LinkedIn once.
	var events struct {
		Events []struct {
			Event struct {
				MessageID  string         `json:"messageId"`
				Event      string         `json:"event"`
				Properties map[string]any `json:"properties"`
			} `json:"event"`
		} `json:"events"`
	}
	// The deals were stored before the cancelled import's leads.
	adminGet(t, srv.URL, "/admin/api/events?source="+testSource+"&order=oldest&limit=1000", &events)
	deals := map[string]int{}
	for _, ev := range events.Events {
		if e := ev.Event; e.Event == "Sign Up" {
			deals[e.MessageID]++
			if !strings.HasPrefix(e.MessageID, "deal-") || e.Properties["stage"] != "won" {
				t.Errorf("a stored event: %+v", e)
			}
		}
	}
	if len(deals) != rows {
		t.Fatalf("%d deals stored, want %d", len(deals), rows)
	}
	for id, n := range deals {
		if n != 1 {
			t.Errorf("%s stored %d times", id, n)
		}
	}
	convs := byEventID(t, srv.sandbox.waitConversions(rows, time.Minute, "imported deals"))
	for i := range rows {
		if _, ok := convs[fmt.Sprintf("deal-%03d", i)]; !ok {
			t.Errorf("deal-%03d did not reach the sandbox", i)
		}
	}

	var audit struct{ Records []auditRecord }
	adminGet(t, srv.URL, "/admin/api/audit?limit=1000", &audit)
	counts := map[string]int{}
	for _, r := range audit.Records {
		counts[r.Action]++
	}
	if counts["import_start"] != 4 || counts["import"] != 4 || counts["import_cancel"] != 1 {
		t.Errorf("audit: %v", counts)
	}
}

// importRun is what console-import.mjs read of one import.
type importRun struct {
	Seen []string `json:"seen"`
	Line string   `json:"line"`
	Bar  struct {
		Value int `json:"value"`
		Max   int `json:"max"`
	} `json:"bar"`
	Title     string   `json:"title"`
	Summary   string   `json:"summary"`
	ErrorRows []string `json:"errorRows"`
}

// consoleImport is an import as GET /admin/api/imports/{id} answers it.
type consoleImport struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	Total      int    `json:"total"`
	Rows       int    `json:"rows"`
	Stored     int    `json:"stored"`
	Duplicates int    `json:"duplicates"`
	Resumed    int    `json:"resumed"`
	Invalid    int    `json:"invalid"`
	// RowsPerSecond is the import's rate, from its start.
	RowsPerSecond float64 `json:"rowsPerSecond"`
}

// uploadImport posts file (named name) to POST /admin/api/imports with the
// admin token and the form fields, and returns the accepted import.
func uploadImport(t testing.TB, base, name, file string, fields map[string]string) consoleImport {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	fw, err := mw.CreateFormFile("file", name)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write([]byte(file))
	mw.Close()
	req, err := http.NewRequest(http.MethodPost, base+"/admin/api/imports", &buf)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+consoleAdminToken)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	res, err := newHTTPClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var imp consoleImport
	if res.StatusCode != http.StatusAccepted || json.Unmarshal(b, &imp) != nil {
		t.Fatalf("POST /admin/api/imports: %d %s", res.StatusCode, b)
	}
	return imp
}

// TestConsoleImportRestart: a console import is stopped half-way by the
// server's graceful shutdown (SIGTERM: the import ends "interrupted" and
// the server exits 0), then, uploaded again after the restart, killed
// half-way with the server (SIGKILL); each restarted server has forgotten
// the imports, and the file uploaded a third time continues after the
// last stored rows: every row is stored exactly once.
func TestConsoleImportRestart(t *testing.T) {
	srv := startConsoleServer(t, "")
	const rows = 100000
	var csv strings.Builder
	csv.WriteString("userId,event,plan\n")
	for i := range rows {
		fmt.Fprintf(&csv, "crm-%06d,Lead,pro\n", i)
	}
	fields := map[string]string{"source": testSource}

	// upload starts the import, waits until it stored rows of its own,
	// and returns it.
	upload := func() consoleImport {
		t.Helper()
		imp := uploadImport(t, srv.URL, "leads.csv", csv.String(), fields)
		if imp.State != "running" || imp.Total != rows {
			t.Fatalf("accepted %+v", imp)
		}
		if !poll(time.Minute, func() bool {
			adminGet(t, srv.URL, "/admin/api/imports/"+imp.ID, &imp)
			return imp.Stored > 0 || imp.State != "running"
		}) {
			t.Fatalf("nothing stored within a minute: %+v", imp)
		}
		if imp.State != "running" || imp.Stored+imp.Resumed >= rows {
			t.Fatalf("the import ended before the stop: %+v", imp)
		}
		return imp
	}
	restart := func() {
		t.Helper()
		srv.server = startServer(t, srv.cfg)
		var list struct {
			Imports []consoleImport `json:"imports"`
		}
		adminGet(t, srv.URL, "/admin/api/imports", &list)
		if len(list.Imports) != 0 {
			t.Errorf("the restarted server lists %+v", list.Imports)
		}
	}

	first := upload()
	srv.Signal(syscall.SIGTERM)
	if code := srv.Wait(time.Minute); code != 0 {
		t.Fatalf("capstan serve exited %d after SIGTERM:\n%s", code, srv.Output())
	}
	if !strings.Contains(srv.Output(), "state=interrupted") {
		t.Errorf("the shutdown did not interrupt the import:\n%s", srv.Output())
	}
	restart()
	second := upload()
	if second.Resumed == 0 {
		t.Errorf("after the graceful stop (%d stored) the import resumed nothing: %+v", first.Stored, second)
	}
	srv.Kill()
	restart()

	again := uploadImport(t, srv.URL, "leads.csv", csv.String(), fields)
	if !poll(2*time.Minute, func() bool {
		adminGet(t, srv.URL, "/admin/api/imports/"+again.ID, &again)
		return again.State != "running"
	}) {
		t.Fatalf("the third import did not end: %+v", again)
	}
	t.Logf("stopped with %d stored; then %d already imported, %d stored, killed; then %d already imported, %d stored, %d duplicates, %.0f rows/s",
		first.Stored, second.Resumed, second.Stored, again.Resumed, again.Stored, again.Duplicates, again.RowsPerSecond)
	if again.State != "done" || again.Rows != rows || again.Resumed < second.Resumed || again.Resumed+again.Stored+again.Duplicates != rows {
		t.Errorf("imported a third time: %+v", again)
	}

	// Every row once in EVENTS.
	seen := make(map[string]int, rows)
	after := ""
	for {
		var page struct {
			Events []struct {
				Pos   string `json:"pos"` // "seq:index": events of one request share a seq
				Event struct {
					UserID string `json:"userId"`
				} `json:"event"`
			} `json:"events"`
			More bool `json:"more"`
		}
		adminGet(t, srv.URL, "/admin/api/events?order=oldest&limit=1000&source="+testSource+after, &page)
		for _, e := range page.Events {
			seen[e.Event.UserID]++
		}
		if !page.More || len(page.Events) == 0 {
			break
		}
		after = "&after=" + page.Events[len(page.Events)-1].Pos
	}
	twice := 0
	for _, n := range seen {
		if n > 1 {
			twice++
		}
	}
	if len(seen) != rows || twice != 0 {
		t.Errorf("EVENTS holds %d of the %d rows, %d of them more than once", len(seen), rows, twice)
	}
}

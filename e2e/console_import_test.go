package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestConsoleImport: on the Import page an operator uploads a CSV of
// closed deals with a column mapping: as a dry run nothing is stored;
// imported, the page shows the progress (rows of total, rows/s) and the
// summary with the two invalid rows by line; the valid rows are stored
// and reach the sandbox once each; the same file again stores nothing; a
// file of unknown type is refused with a message; a viewer sees the
// imports but cannot upload; the audit log has each import.
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
	if len(got.Recent) != 3 || !strings.Contains(got.BadFile, "notes.txt: unknown extension") {
		t.Errorf("recent %q; a .txt file shows %q", got.Recent, got.BadFile)
	}
	if !got.ViewerUploadDisabled || got.ViewerRows != 3 || !strings.Contains(got.ViewerSummary, "Already imported300") {
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
	adminGet(t, srv.URL, "/admin/api/events?source="+testSource+"&limit=1000", &events)
	if len(events.Events) != rows {
		t.Fatalf("%d events stored, want %d", len(events.Events), rows)
	}
	if e := events.Events[0].Event; e.Event != "Sign Up" || !strings.HasPrefix(e.MessageID, "deal-") || e.Properties["stage"] != "won" {
		t.Errorf("a stored event: %+v", e)
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
	if counts["import_start"] != 3 || counts["import"] != 3 {
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

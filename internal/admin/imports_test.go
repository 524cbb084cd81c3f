package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/audit"
	"github.com/capstan-gw/capstan/internal/importer"
)

// importSources are the sources of the test env's importer.
var importSources = []string{"crm", "web"}

// importer returns the env's Importer: the real one on the env's engine
// and writer, whose input waits at e.gate (when set) after its first
// bytes, so that a test can see an import running.
func (e *env) importer() Importer {
	return gatedImporter{EngineImporter{Engine: e.eng, Writer: e.w, SourceNames: importSources, Version: "test"}, e}
}

type gatedImporter struct {
	EngineImporter
	e *env
}

func (g gatedImporter) Import(ctx context.Context, in io.Reader, opt importer.Options) (importer.Summary, error) {
	g.e.mu.Lock()
	gate := g.e.gate
	g.e.mu.Unlock()
	if gate != nil {
		in = &gatedReader{r: in, ctx: ctx, gate: gate}
	}
	return g.EngineImporter.Import(ctx, in, opt)
}

// gatedReader reads 100 bytes, then as many more as its gate sends it,
// everything once the gate is closed or its context ends.
type gatedReader struct {
	r       io.Reader
	ctx     context.Context
	gate    chan int
	n       int
	allowed int
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if g.allowed == 0 {
		g.allowed = 100
	}
	for g.n >= g.allowed {
		select {
		case more, ok := <-g.gate:
			if !ok {
				more = math.MaxInt32
			}
			g.allowed += more
		case <-g.ctx.Done():
			g.allowed = math.MaxInt32
		}
	}
	if len(p) > g.allowed-g.n {
		p = p[:g.allowed-g.n]
	}
	n, err := g.r.Read(p)
	g.n += n
	return n, err
}

// upload is one POST /admin/api/imports form.
type upload struct {
	file, content string
	fields        [][2]string // name, value, in order
}

// body returns the multipart body and its Content-Type.
func (u upload) body(t testing.TB) (string, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range u.fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	if u.file != "" {
		fw, err := mw.CreateFormFile("file", u.file)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write([]byte(u.content))
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String(), mw.FormDataContentType()
}

// post uploads u with the admin token.
func (e *env) post(t testing.TB, u upload) answer {
	t.Helper()
	body, ct := u.body(t)
	a, _ := e.send(t, req{method: "POST", target: "/admin/api/imports", body: body, auth: operator, header: map[string]string{"Content-Type": ct}})
	return a
}

// start uploads u and returns the import it started.
func (e *env) start(t testing.TB, u upload) importView {
	t.Helper()
	a := e.post(t, u)
	if a.status != http.StatusAccepted {
		t.Fatalf("upload %s: %d %s", u.file, a.status, a.body)
	}
	if a.header.Get("Location") == "" {
		t.Error("no Location")
	}
	var v importView
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// ended polls the import id until it has ended and returns it.
func (e *env) ended(t *testing.T, id string) importView {
	t.Helper()
	var v importView
	eventually(t, func() bool {
		decodeAnswer(t, e.do(t, "GET", "/admin/api/imports/"+id, ""), &v)
		return v.State != importRunning
	})
	return v
}

// storedCount counts the stored events of source.
func (e *env) storedCount(t testing.TB, source string) int {
	t.Helper()
	var out struct{ Events []json.RawMessage }
	decodeAnswer(t, e.do(t, "GET", "/admin/api/events?limit=1000&source="+source, ""), &out)
	return len(out.Events)
}

// dealsCSV is a CSV of 6 rows: 4 valid, one with an unparseable
// timestamp (line 4), one with no identifier (line 6).
func dealsCSV() string {
	ts := time.Now().Add(-48 * time.Hour).UTC().Format(time.RFC3339)
	return "Contact Email,user_id,Amount,when\n" +
		"ann@example.com,u-1,100," + ts + "\n" +
		"bob@example.com,u-2,250.5," + ts + "\n" +
		"cat@example.com,u-3,80,yesterday-ish\n" +
		"dan@example.com,u-4,12," + ts + "\n" +
		",,99," + ts + "\n" +
		"eve@example.com,u-6,7," + ts + "\n"
}

var dealsFields = [][2]string{{"source", "crm"}, {"event", "Deal Won"}, {"map", "Contact Email=email\nAmount=revenue"}, {"map", "when=timestamp"}}

// TestImportUpload: an upload is imported in the background through the
// append path: valid rows stored, invalid ones named by line, field and
// reason; the same file again stores nothing (its resume point), nor does
// a copy of it with another content hash (the stream's de-duplication);
// both are in the audit log.
func TestImportUpload(t *testing.T) {
	e := newEnv(t)
	u := upload{file: "deals.csv", content: dealsCSV(), fields: dealsFields}
	v := e.start(t, u)
	if v.State != importRunning || v.Total != 6 || v.File != "deals.csv" || v.Source != "crm" || v.DryRun || v.By != "admin token" {
		t.Errorf("started %+v", v)
	}
	v = e.ended(t, v.ID)
	if v.State != importDone || !v.Complete || v.Rows != 6 || v.Stored != 4 || v.Duplicates != 0 || v.Invalid != 2 || v.EndedAt == nil || v.ETASeconds != nil {
		t.Errorf("ended %+v", v)
	}
	if v.ByReason[importer.ReasonTimestamp] != 1 || v.ByReason[importer.ReasonIdentifier] != 1 {
		t.Errorf("by reason %v", v.ByReason)
	}
	if len(v.Errors) != 2 || v.Errors[0].Line != 4 || v.Errors[0].Field != "when" || v.Errors[1].Line != 6 ||
		!strings.HasPrefix(v.Errors[0].Message, "deals.csv:4: when: ") {
		t.Errorf("errors %+v", v.Errors)
	}
	if n := e.storedCount(t, "crm"); n != 4 {
		t.Fatalf("%d events stored, want 4", n)
	}
	var out struct {
		Events []struct{ Event map[string]any }
	}
	decodeAnswer(t, e.do(t, "GET", "/admin/api/events?limit=1&order=oldest&source=crm", ""), &out)
	if ev := out.Events[0].Event; ev["event"] != "Deal Won" || ev["userId"] != "u-1" || ev["properties"].(map[string]any)["revenue"] != 100.0 {
		t.Errorf("stored %v", ev)
	}

	// The same file again: the resume point says it is done.
	again := e.ended(t, e.start(t, u).ID)
	if again.State != importDone || again.Stored != 0 || again.Resumed != 4 || again.Invalid != 2 {
		t.Errorf("again %+v", again)
	}
	// The same rows in another file (a blank line more): duplicates.
	u.file, u.content = "deals-copy.csv", u.content+"\n"
	copied := e.ended(t, e.start(t, u).ID)
	if copied.State != importDone || copied.Stored != 0 || copied.Duplicates != 4 || copied.Resumed != 0 {
		t.Errorf("copy %+v", copied)
	}
	if n := e.storedCount(t, "crm"); n != 4 {
		t.Errorf("%d events stored after importing twice, want 4", n)
	}

	// The list, newest first.
	var list struct {
		Imports  []importView
		Sources  []string
		MaxBytes int64
	}
	decodeAnswer(t, e.do(t, "GET", "/admin/api/imports", ""), &list)
	if len(list.Imports) != 3 || list.Imports[0].ID != copied.ID || list.Imports[2].ID != v.ID || list.Imports[0].Errors != nil ||
		strings.Join(list.Sources, ",") != "crm,web" || list.MaxBytes != DefaultImportMaxBytes {
		t.Errorf("list %+v", list)
	}

	var starts, ends int
	for _, r := range e.auditRecords(t) {
		switch r.Action {
		case audit.ActionImportStart:
			starts++
			if r.By != "admin token" || !strings.Contains(r.Target, "(source crm, sha256 ") || r.Result["rows"] != 6 {
				t.Errorf("start record %+v", r)
			}
		case audit.ActionImport:
			ends++
			if r.Result["rows"] != 6 || r.Result["invalid"] != 2 || r.Error != "" {
				t.Errorf("end record %+v", r)
			}
		}
	}
	if starts != 3 || ends != 3 {
		t.Errorf("%d import_start and %d import records, want 3 each", starts, ends)
	}
}

// TestImportDryRun: a dry run checks every row and stores nothing, and
// keeps no resume point: the real import afterwards stores the rows.
func TestImportDryRun(t *testing.T) {
	e := newEnv(t)
	u := upload{file: "deals.csv", content: dealsCSV(), fields: append([][2]string{{"dryRun", "true"}}, dealsFields...)}
	v := e.ended(t, e.start(t, u).ID)
	if v.State != importDone || !v.DryRun || v.Rows != 6 || v.Stored != 4 || v.Invalid != 2 || len(v.Errors) != 2 {
		t.Errorf("dry run %+v", v)
	}
	if n := e.storedCount(t, "crm"); n != 0 {
		t.Fatalf("a dry run stored %d events", n)
	}
	u.fields = dealsFields
	if v := e.ended(t, e.start(t, u).ID); v.Stored != 4 || v.Resumed != 0 {
		t.Errorf("after the dry run %+v", v)
	}
}

// TestImportRefused: input that cannot be imported, and forms that are
// wrong, are refused with a precise message before anything is stored.
func TestImportRefused(t *testing.T) {
	e := newEnvConfig(t, Config{Token: "s3cret", ImportMaxBytes: 4096})
	crm := [][2]string{{"source", "crm"}}
	for _, c := range []struct {
		name     string
		u        upload
		status   int
		fragment string
	}{
		{"binary", upload{file: "x.csv", content: "a,b\n\x00\x01", fields: crm}, 400, "x.csv is not a text file (a NUL byte at offset 4)"},
		{"gzip", upload{file: "x.csv", content: "\x1f\x8b\x08\x00", fields: crm}, 400, "gzip-compressed"},
		{"empty", upload{file: "x.csv", content: "", fields: crm}, 400, "x.csv is empty"},
		{"header only", upload{file: "x.csv", content: "userId,event\n", fields: crm}, 400, "x.csv has a header row and no rows"},
		{"blank JSONL", upload{file: "x.jsonl", content: "\n\n", fields: crm}, 400, "x.jsonl is empty"},
		{"no event", upload{file: "x.csv", content: "userId\nu1\n", fields: crm}, 400, "x.csv has no event column (columns: userId)"},
		{"map names no column", upload{file: "x.csv", content: "userId,event\nu1,E\n", fields: append(crm, [2]string{"map", "Mail=email"})}, 400, `the header has no column "mail"`},
		{"map unknown field", upload{file: "x.csv", content: "userId,event\nu1,E\n", fields: append(crm, [2]string{"map", "userId=nickname"})}, 400, `unknown field "nickname"`},
		{"map JSONL", upload{file: "x.jsonl", content: `{"type":"track"}` + "\n", fields: append(crm, [2]string{"map", "a=email"})}, 400, "apply to CSV files"},
		{"extension", upload{file: "x.txt", content: "userId,event\nu1,E\n", fields: crm}, 400, "x.txt: unknown extension"},
		{"format", upload{file: "x.txt", content: "userId,event\nu1,E\n", fields: append(crm, [2]string{"format", "xml"})}, 400, `format "xml": want csv or jsonl`},
		{"source", upload{file: "x.csv", content: "userId,event\nu1,E\n", fields: [][2]string{{"source", "nope"}}}, 400, `source "nope" is not a configured source (sources: crm, web)`},
		{"several sources", upload{file: "x.csv", content: "userId,event\nu1,E\n"}, 400, "choose the source"},
		{"dry run value", upload{file: "x.csv", content: "userId,event\nu1,E\n", fields: append(crm, [2]string{"dryRun", "maybe"})}, 400, `dryRun "maybe"`},
		{"unknown field", upload{file: "x.csv", content: "userId,event\nu1,E\n", fields: append(crm, [2]string{"destination", "x"})}, 400, `unknown form field "destination"`},
		{"no file", upload{fields: crm}, 400, `no file`},
		{"too large", upload{file: "x.csv", content: "userId,event\n" + strings.Repeat("u1,E\n", 1000), fields: crm}, 413, "larger than the console's limit of 4096 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := e.post(t, c.u)
			code := codeBadRequest
			if c.status == 413 {
				code = codeTooLarge
			}
			wantError(t, a, c.status, code, c.fragment)
		})
	}
	// Not a form at all.
	a, _ := e.send(t, req{method: "POST", target: "/admin/api/imports", body: `{"file":"x"}`, auth: operator})
	wantError(t, a, 400, codeBadRequest, "multipart/form-data")

	var list struct{ Imports []importView }
	decodeAnswer(t, e.do(t, "GET", "/admin/api/imports", ""), &list)
	if len(list.Imports) != 0 || e.storedCount(t, "crm") != 0 {
		t.Errorf("refused uploads left %d imports, %d events", len(list.Imports), e.storedCount(t, "crm"))
	}
	entries, err := os.ReadDir(e.s.imports.dir)
	if err != nil || len(entries) != 0 {
		t.Errorf("uploads left behind: %v %v", entries, err)
	}
	wantError(t, e.do(t, "GET", "/admin/api/imports/nope", ""), 404, codeNotFound, `no import "nope"`)
	wantError(t, e.do(t, "GET", "/admin/api/imports?x=1", ""), 400, codeBadRequest, `unknown query parameter "x"`)
}

// TestImportRoles: a viewer sees imports but may neither upload nor
// cancel; an operator's session needs its CSRF token to upload.
func TestImportRoles(t *testing.T) {
	e, _ := newUsersEnv(t, nil)
	vera := e.signIn(t, `{"username":"vera","password":"`+veraPassword+`"}`)
	otto := e.signIn(t, `{"username":"otto","password":"`+ottoPassword+`"}`)
	body, ct := upload{file: "deals.csv", content: dealsCSV(), fields: dealsFields}.body(t)
	hdr := map[string]string{"Content-Type": ct}

	a, _ := e.send(t, req{method: "POST", target: "/admin/api/imports", body: body, cookie: vera.id, csrf: vera.info.CSRF, header: hdr})
	wantError(t, a, 403, codeForbidden, "vera may not do this: it needs the operator role")
	a, _ = e.send(t, req{method: "POST", target: "/admin/api/imports", body: body, cookie: otto.id, header: hdr})
	wantError(t, a, 403, codeCSRF, "X-CSRF-Token")
	a, _ = e.send(t, req{method: "POST", target: "/admin/api/imports", body: body, cookie: otto.id, csrf: "wrong", header: hdr})
	wantError(t, a, 403, codeCSRF, "X-CSRF-Token")
	if n := e.storedCount(t, "crm"); n != 0 {
		t.Fatalf("refused uploads stored %d events", n)
	}

	a, _ = e.send(t, req{method: "POST", target: "/admin/api/imports", body: body, cookie: otto.id, csrf: otto.info.CSRF, header: hdr})
	if a.status != http.StatusAccepted {
		t.Fatalf("otto's upload: %d %s", a.status, a.body)
	}
	var v importView
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Fatal(err)
	}
	v = e.ended(t, v.ID)
	if v.By != "otto" || v.Stored != 4 {
		t.Errorf("otto's import %+v", v)
	}
	a, _ = e.send(t, req{method: "GET", target: "/admin/api/imports/" + v.ID, cookie: vera.id})
	if a.status != http.StatusOK {
		t.Errorf("vera reads the import: %d %s", a.status, a.body)
	}
	a, _ = e.send(t, req{method: "POST", target: "/admin/api/imports/" + v.ID + "/cancel", cookie: vera.id, csrf: vera.info.CSRF})
	wantError(t, a, 403, codeForbidden, "operator role")
}

// TestImportCancelAndLimit: two imports run at once and a third is
// refused; a cancelled one stops, keeping its resume point, and its file
// imported again continues; Shutdown interrupts a running one.
func TestImportCancelAndLimit(t *testing.T) {
	e := newEnv(t)
	gate := make(chan int)
	e.mu.Lock()
	e.gate = gate
	e.mu.Unlock()

	var rows strings.Builder
	rows.WriteString("userId,event\n")
	for i := range 2000 {
		fmt.Fprintf(&rows, "u-%d,Lead\n", i)
	}
	big := upload{file: "leads.csv", content: rows.String(), fields: [][2]string{{"source", "web"}}}
	first := e.start(t, big)
	second := e.start(t, upload{file: "more.csv", content: "userId,event\n" + strings.Repeat("someone-else,Lead\n", 20), fields: [][2]string{{"source", "crm"}}})
	wantError(t, e.post(t, big), 429, codeTooManyRequests, "2 imports are running")

	a := e.do(t, "POST", "/admin/api/imports/"+first.ID+"/cancel", "")
	if a.status != http.StatusOK {
		t.Fatalf("cancel: %d %s", a.status, a.body)
	}
	v := e.ended(t, first.ID)
	if v.State != importCancelled || v.CancelledBy != "admin token" || v.Complete || !strings.Contains(v.Error, "import the file again to continue") {
		t.Errorf("cancelled %+v", v)
	}
	wantError(t, e.do(t, "POST", "/admin/api/imports/"+first.ID+"/cancel", ""), 400, codeBadRequest, "has ended (cancelled)")

	// The file again, ungated: every row is there once.
	e.mu.Lock()
	e.gate = nil
	e.mu.Unlock()
	again := e.ended(t, e.start(t, big).ID)
	if again.State != importDone || again.Stored+again.Resumed+again.Duplicates != 2000 || again.Rows != 2000 {
		t.Errorf("imported again %+v", again)
	}
	if n := e.storedCount(t, "web"); n != 1000 { // the page's limit
		t.Errorf("%d events stored", n)
	}

	// Shutdown interrupts the other, and refuses new ones.
	e.s.Shutdown()
	e.s.WaitImports()
	if v := e.ended(t, second.ID); v.State != importInterrupted {
		t.Errorf("after shutdown %+v", v)
	}
	wantError(t, e.post(t, big), 503, codeUnavailable, "shutting down")
	entries, err := os.ReadDir(e.s.imports.dir)
	if err != nil || len(entries) != 0 {
		t.Errorf("uploads left behind: %v %v", entries, err)
	}
}

// TestImportProgress: while an import runs, it says how far it got: rows
// done of total, rows per second and the time left.
func TestImportProgress(t *testing.T) {
	e := newEnv(t)
	gate := make(chan int)
	e.mu.Lock()
	e.gate = gate
	e.mu.Unlock()
	const total = 10000
	var rows strings.Builder
	rows.WriteString("userId,event\n")
	for i := range total {
		fmt.Fprintf(&rows, "user-%04d,Lead\n", i) // 15 bytes
	}
	v := e.start(t, upload{file: "leads.csv", content: rows.String(), fields: [][2]string{{"source", "web"}}})
	if v.State != importRunning || v.Total != total || v.Rows != 0 || v.ETASeconds != nil {
		t.Errorf("started %+v", v)
	}
	// 100 rows at a time until the first stored batch is reported
	// (importer.Run reports a stored batch when it sends a later one).
	for i := 0; v.Stored == 0; i++ {
		if i == 60 {
			t.Fatalf("nothing reported after 6000 rows: %+v", v)
		}
		gate <- 15 * 100
		decodeAnswer(t, e.do(t, "GET", "/admin/api/imports/"+v.ID, ""), &v)
	}
	if v.State != importRunning || v.Rows < v.Stored || v.Rows >= total || v.RowsPerSecond <= 0 || v.ETASeconds == nil || *v.ETASeconds <= 0 {
		t.Errorf("running %+v", v)
	}
	close(gate)
	if v = e.ended(t, v.ID); v.State != importDone || v.Rows != total || v.Stored != total || v.ETASeconds != nil {
		t.Errorf("ended %+v", v)
	}
}

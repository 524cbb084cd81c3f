package importer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/stream"
)

// testNow is the clock of these tests.
var testNow = time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)

// dryRun imports in as a dry run and returns the events, the row errors
// (as printed) and the error.
func dryRun(t *testing.T, f Format, in string, opt Options) ([]map[string]any, []string, Summary, error) {
	t.Helper()
	var docs []map[string]any
	var errs []string
	opt.Format = f
	if opt.Name == "" {
		opt.Name = "in." + string(f)
	}
	if opt.Source == "" {
		opt.Source = "crm"
	}
	opt.Now = func() time.Time { return testNow }
	opt.DryRun = func(doc []byte) error {
		var m map[string]any
		if err := json.Unmarshal(doc, &m); err != nil {
			t.Fatalf("stored document is not JSON: %v\n%s", err, doc)
		}
		docs = append(docs, m)
		return nil
	}
	opt.Invalid = func(e RowError) { errs = append(errs, e.Error()) }
	sum, err := Run(context.Background(), strings.NewReader(in), opt)
	return docs, errs, sum, err
}

func get(m map[string]any, path string) any {
	var v any = m
	for _, k := range strings.Split(path, ".") {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[k]
	}
	return v
}

func TestCSVRowPlacement(t *testing.T) {
	in := "User ID,Anonymous_Id,E-mail,First Name,last_name,Title,Company,Country,LI_FAT_ID,Value,currency,Timestamp,Event,Stage,Notes\n" +
		"u1,a1,Ann@Example.com,Ann,Lee,CTO,Acme,US,lfi-1,1200.50,eur,2026-08-31 10:00:00,Deal Won,closed,\"a, b\"\n"
	docs, errs, sum, err := dryRun(t, FormatCSV, in, Options{})
	if err != nil || len(errs) > 0 {
		t.Fatal(err, errs)
	}
	if len(docs) != 1 || sum.Stored != 1 || sum.Rows != 1 || !sum.DryRun {
		t.Fatalf("docs %v, summary %+v", docs, sum)
	}
	d := docs[0]
	want := map[string]any{
		"type": "track", "event": "Deal Won", "userId": "u1", "anonymousId": "a1",
		"timestamp":              "2026-08-31T10:00:00.000Z",
		"originalTimestamp":      "2026-08-31T10:00:00.000Z",
		"receivedAt":             "2026-09-01T12:00:00.000Z",
		"traits.email":           "Ann@Example.com",
		"traits.firstName":       "Ann",
		"traits.lastName":        "Lee",
		"traits.title":           "CTO",
		"traits.company.name":    "Acme",
		"traits.address.country": "US",
		"properties.li_fat_id":   "lfi-1",
		"properties.revenue":     1200.5,
		"properties.currency":    "EUR",
		"properties.Stage":       "closed",
		"properties.Notes":       "a, b",
		"context.library.name":   "capstan-import",
	}
	for path, w := range want {
		if got := get(d, path); got != w {
			t.Errorf("%s = %#v, want %#v", path, got, w)
		}
	}
	id, _ := d["messageId"].(string)
	if !strings.HasPrefix(id, "import-") || len(id) != len("import-")+32 {
		t.Errorf("messageId %q", id)
	}
	if get(d, "properties.Value") != nil || get(d, "properties.E-mail") != nil {
		t.Errorf("a mapped column is also a property: %v", d["properties"])
	}
}

func TestCSVMessageID(t *testing.T) {
	const in = "userId,event,id\nu1,Lead,crm-77\nu2,Lead,\n"
	docs, _, _, err := dryRun(t, FormatCSV, in, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if docs[0]["messageId"] != "crm-77" {
		t.Errorf("from the id column: %v", docs[0]["messageId"])
	}
	again, _, _, _ := dryRun(t, FormatCSV, "userId , event,id\r\nu1,Lead,crm-77\r\n u2 ,Lead,\r\n", Options{})
	if docs[1]["messageId"] != again[1]["messageId"] {
		t.Errorf("the same row (spacing and line ends aside) got two ids: %v, %v", docs[1]["messageId"], again[1]["messageId"])
	}
	other, _, _, _ := dryRun(t, FormatCSV, in, Options{Source: "shop"})
	if docs[1]["messageId"] == other[1]["messageId"] {
		t.Error("two sources give one row the same id")
	}
	changed, _, _, _ := dryRun(t, FormatCSV, "userId,event,id\nu1,Lead,crm-77\nu2,Lead2,\n", Options{})
	if docs[1]["messageId"] == changed[1]["messageId"] {
		t.Error("a changed row kept its id")
	}
}

func TestCSVDefaults(t *testing.T) {
	// --event names rows without an event; an email-only row gets an
	// anonymousId of its own; no timestamp means now.
	docs, errs, _, err := dryRun(t, FormatCSV, "email,amount\nann@example.com,5\nANN@example.com,6\n", Options{Event: "Trade Show Lead", Map: map[string]Field{"amount": FieldRevenue}})
	if err != nil || len(errs) > 0 {
		t.Fatal(err, errs)
	}
	d := docs[0]
	if d["event"] != "Trade Show Lead" || d["userId"] != nil || d["timestamp"] != "2026-09-01T12:00:00.000Z" || get(d, "properties.revenue") != 5.0 {
		t.Errorf("got %v", d)
	}
	a, _ := d["anonymousId"].(string)
	if !strings.HasPrefix(a, "import-") || docs[1]["anonymousId"] != a {
		t.Errorf("anonymousIds %v and %v: want one, derived from the email", a, docs[1]["anonymousId"])
	}
}

func TestCSVInvalidRows(t *testing.T) {
	in := strings.Join([]string{
		"userId,email,event,timestamp,revenue,currency,li_fat_id",
		"u1,ann@example.com,Lead,2026-08-31,1,USD,", // 2: fine
		"u2,,Lead,31/08/2026,,,",                    // 3: timestamp
		"u3,,Lead,,12€,,",                           // 4: number
		"u4,,Lead,,,dollars,",                       // 5: currency
		",,Lead,,,,",                                // 6: no identifier
		"u6,not-an-email,Lead,,,,",                  // 7: email
		"u7,,Lead,2026-05-01,,,",                    // 8: older than 90 days
		"u8,,Lead,2026-09-02,,,",                    // 9: in the future
		`u9,"x"y,Lead,,,,`,                          // 10: quoting
		"u10,,Lead,,,",                              // 11: field count
		"u11,,,,,,",                                 // 12: no event name
		"u12,,Lead,,-5,,",                           // 13: negative
		",,Lead,,,,lfi-9",                           // 14: fine (click id only)
		`u13,,Lead,,,,"multi`, `line"`,              // 15-16: fine
		"u14,,Lead,1788177600000,,,", // 17: fine (ms)
	}, "\n") + "\n"
	docs, errs, sum, err := dryRun(t, FormatCSV, in, Options{Name: "leads.csv"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`leads.csv:3: timestamp: "31/08/2026": not a timestamp`,
		`leads.csv:4: revenue: "12€": not a number`,
		`leads.csv:5: currency: "dollars" is not an ISO 4217 code`,
		`leads.csv:6: row: no userId, anonymousId, email or li_fat_id`,
		`leads.csv:7: email: not an email address`,
		`leads.csv:8: timestamp: 2026-05-01T00:00:00Z is 123 days ago; LinkedIn takes conversions of the last 90 days only`,
		`leads.csv:9: timestamp: 2026-09-02T00:00:00Z is in the future`,
		`leads.csv:10: row: extraneous or missing " in quoted-field (line 10, column 6)`,
		`leads.csv:11: row: 6 fields; the header has 7`,
		`leads.csv:12: event: empty, and no --event names a default`,
		`leads.csv:13: revenue: "-5": negative`,
	}
	if len(errs) != len(want) {
		t.Fatalf("errors:\n%s\nwant %d", strings.Join(errs, "\n"), len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i], w) {
			t.Errorf("error %d = %q, want %q…", i, errs[i], w)
		}
	}
	if len(docs) != 4 || sum.Rows != 15 || sum.Invalid != 11 || sum.ByReason[ReasonTimestamp] != 1 || sum.ByReason[ReasonNumber] != 2 || sum.ByReason[ReasonTooOld] != 1 {
		t.Errorf("docs %d, summary %+v", len(docs), sum)
	}
	if get(docs[2], "properties.li_fat_id") != "multi\nline" || docs[2]["userId"] != "u13" {
		t.Errorf("multi-line row: %v", docs[2])
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		f    Format
		in   string
		opt  Options
		err  string
	}{
		{"empty CSV", FormatCSV, "", Options{}, "in.csv is empty"},
		{"blank CSV", FormatCSV, "\n\n", Options{}, "in.csv is empty"},
		{"header only", FormatCSV, "userId,event\n", Options{}, "in.csv has a header row and no rows"},
		{"empty JSONL", FormatJSONL, "\n  \n", Options{}, "in.jsonl is empty"},
		{"binary", FormatCSV, "userId,event\nu1,\x00\x01\x02\n", Options{}, "not a text file (a NUL byte at offset 16)"},
		{"gzip", FormatJSONL, "\x1f\x8b\x08\x00rest", Options{}, "gzip-compressed"},
		{"no event column", FormatCSV, "userId,email\nu1,a@b.c\n", Options{}, "has no event column (columns: userId, email)"},
		{"--map to no column", FormatCSV, "userId,event\nu1,x\n", Options{Map: map[string]Field{"amount": FieldRevenue}}, `the header has no column "amount"`},
		{"bad header", FormatCSV, "userId,\"event\nu1", Options{}, "the header row cannot be read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, errs, _, err := dryRun(t, tt.f, tt.in, tt.opt)
			var ue *UsageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want a UsageError with %q", err, tt.err)
			}
			if len(docs) > 0 || len(errs) > 0 {
				t.Errorf("docs %v, row errors %v", docs, errs)
			}
		})
	}
}

func TestJSONL(t *testing.T) {
	in := strings.Join([]string{
		`{"type":"track","event":"Order Completed","userId":"u1","messageId":"m-1","timestamp":"2026-08-31T10:00:00Z","properties":{"revenue":10.50,"currency":"USD"}}`,
		``,
		`{"type":"identify","userId":"u1","traits":{"email":"ann@example.com"},"timestamp":"2020-01-01"}`,
		`{"type":"track","event":"Lead","anonymousId":"a1"}`,
		`{"type":"track","event":"Lead","anonymousId":"a1","messageId":null}`,
		`not json`,
		`{"type":"track","event":"Old","userId":"u1","timestamp":"2026-01-01T00:00:00Z"}`,
		`{"type":"track","userId":"u1"}`,
		`{"type":"track","event":"Lead"}`,
		`{"type":"order","userId":"u1"}`,
		`{"type":"track","event":"X","userId":"u1","properties":{"pad":"` + strings.Repeat("x", 40000) + `"}}`,
		`{"type":"track","event":"X","userId":"u1","context":{"capstan":{"userHash":"ab"}}}`,
	}, "\n")
	docs, errs, sum, err := dryRun(t, FormatJSONL, in, Options{Name: "e.jsonl"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`e.jsonl:6: event: `,
		`e.jsonl:7: timestamp: 2026-01-01T00:00:00Z is 243 days ago`,
		`e.jsonl:8: event: track requires a non-empty event name`,
		`e.jsonl:9: row: userId or anonymousId is required`,
		`e.jsonl:10: type: type "order" is not one of`,
		`e.jsonl:11: event: 40066 bytes; the limit is 32768`,
	}
	if len(errs) != len(want) {
		t.Fatalf("errors:\n%s", strings.Join(errs, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i], w) {
			t.Errorf("error %d = %q, want %q…", i, errs[i], w)
		}
	}
	if len(docs) != 5 || sum.Rows != 11 {
		t.Fatalf("docs %d, summary %+v", len(docs), sum)
	}
	if docs[0]["messageId"] != "m-1" || get(docs[0], "properties.revenue") != 10.5 {
		t.Errorf("first event changed: %v", docs[0])
	}
	if docs[1]["type"] != "identify" {
		t.Errorf("an old identify is no conversion and is kept: %v", docs[1])
	}
	a, _ := docs[2]["messageId"].(string)
	b, _ := docs[3]["messageId"].(string)
	if !strings.HasPrefix(a, "import-") || !strings.HasPrefix(b, "import-") || a == b {
		t.Errorf("made-up messageIds %q, %q", a, b)
	}
	again, _, _, _ := dryRun(t, FormatJSONL, in, Options{Name: "e.jsonl"})
	if again[2]["messageId"] != a {
		t.Error("a line's made-up messageId is not stable")
	}
	if get(docs[4], "context.capstan") != nil {
		t.Errorf("userHash stored: %v", docs[4]["context"])
	}
}

func TestScan(t *testing.T) {
	tests := []struct {
		f    Format
		in   string
		rows int
	}{
		{FormatCSV, "a,b\n1,2\n3,4\n", 2},
		{FormatCSV, "a,b\n1,2\n3,4", 2},
		{FormatCSV, "a,b\r\n1,\"x\ny\"\r\n\r\n3,4\r\n", 2},
		{FormatCSV, "a,b\n", 0},
		{FormatCSV, "", 0},
		{FormatJSONL, "{}\n\n{}\n  \n{}", 3},
	}
	for i, tt := range tests {
		st, err := Scan(strings.NewReader(tt.in), tt.f)
		if err != nil || st.Rows != tt.rows || st.Bytes != int64(len(tt.in)) || len(st.SHA256) != 64 {
			t.Errorf("%d: %+v, %v; want %d rows", i, st, err, tt.rows)
		}
	}
}

// memCheckpoints keeps checkpoints in memory.
type memCheckpoints map[string]Checkpoint

func (m memCheckpoints) Load(_ context.Context, key string) (Checkpoint, bool, error) {
	c, ok := m[key]
	return c, ok, nil
}

func (m memCheckpoints) Save(_ context.Context, key string, c Checkpoint) error {
	m[key] = c
	return nil
}

// cutStore stores through a real Writer and cancels the import after
// the given number of appends.
type cutStore struct {
	w      *stream.Writer
	after  int
	cancel context.CancelFunc
	calls  atomic.Int32
}

func (s *cutStore) Append(ctx context.Context, evs []stream.Event) ([]stream.Result, error) {
	if int(s.calls.Add(1)) == s.after {
		s.cancel()
	}
	return s.w.Append(ctx, evs)
}

func openStore(t testing.TB) (*stream.Engine, *stream.Writer) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	eng, err := stream.Open(ctx, stream.Config{DataDir: t.TempDir()}, log)
	if err != nil {
		t.Fatal(err)
	}
	w, err := stream.NewWriter(eng, stream.WriterConfig{}, log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; eng.Close() })
	return eng, w
}

// TestResume interrupts an import, runs it again, and finds every valid
// row stored once; a third run stores nothing, even with the stream's
// de-duplication out of the picture (a new engine with the old checkpoint).
func TestResume(t *testing.T) {
	eng, w := openStore(t)
	var b strings.Builder
	b.WriteString("userId,event,revenue\n")
	const rows = 2000
	for i := range rows {
		if i%100 == 7 {
			fmt.Fprintf(&b, "u%d,Deal Won,lots\n", i) // invalid
			continue
		}
		fmt.Fprintf(&b, "u%d,Deal Won,%d\n", i, i)
	}
	in := b.String()
	st, _ := Scan(strings.NewReader(in), FormatCSV)
	cps := memCheckpoints{}
	key := ResumeKey("crm", st.SHA256)
	opt := func(store Store) Options {
		return Options{Name: "deals.csv", Format: FormatCSV, Source: "crm", Store: store, Checkpoints: cps, Key: key, BatchSize: 100, Inflight: 2, SaveEvery: time.Nanosecond}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sum1, err := Run(ctx, strings.NewReader(in), opt(&cutStore{w: w, after: 6, cancel: cancel}))
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("first run: %v", err)
	}
	cp := cps[key]
	if cp.Rows == 0 || cp.Rows >= rows || cp.Complete || sum1.Stored == 0 {
		t.Fatalf("after the interruption: checkpoint %+v, summary %+v", cp, sum1)
	}

	sum2, err := Run(context.Background(), strings.NewReader(in), opt(w))
	if err != nil {
		t.Fatal(err)
	}
	if sum2.Resumed == 0 || sum1.Stored+sum2.Stored+sum2.Duplicates < rows-20 || sum2.Invalid != 20 || !cps[key].Complete || cps[key].Rows != rows {
		t.Errorf("second run: %+v, checkpoint %+v", sum2, cps[key])
	}
	ids := map[string]int{}
	if err := eng.ReadEvents(context.Background(), stream.ReadOptions{}, func(s stream.Stored) error {
		var d struct{ MessageID string }
		_ = json.Unmarshal(s.Doc, &d)
		ids[d.MessageID]++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(ids) != rows-20 {
		t.Errorf("%d distinct events stored, want %d", len(ids), rows-20)
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("%s stored %d times", id, n)
		}
	}

	// The same file again on a fresh store (as after the de-duplication
	// window): the checkpoint alone keeps it from being stored again.
	_, w2 := openStore(t)
	sum3, err := Run(context.Background(), strings.NewReader(in), opt(w2))
	if err != nil || sum3.Stored != 0 || sum3.Resumed != rows-20 || sum3.Invalid != 20 {
		t.Errorf("third run: %+v, %v", sum3, err)
	}
}

// TestStoreFailure: a store that fails stops the import with its error,
// and the checkpoint stays before the failed batch.
func TestStoreFailure(t *testing.T) {
	cps := memCheckpoints{}
	boom := errors.New("disk full")
	var calls atomic.Int32
	store := storeFunc(func(_ context.Context, evs []stream.Event) ([]stream.Result, error) {
		if calls.Add(1) >= 3 {
			return nil, boom
		}
		return make([]stream.Result, len(evs)), nil
	})
	var b bytes.Buffer
	b.WriteString("userId,event\n")
	for i := range 1000 {
		fmt.Fprintf(&b, "u%d,Lead\n", i)
	}
	sum, err := Run(context.Background(), &b, Options{Name: "x.csv", Format: FormatCSV, Source: "crm", Store: store, Checkpoints: cps, Key: "k", BatchSize: 100, Inflight: 1, SaveEvery: time.Nanosecond})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if cps["k"].Rows != 200 || cps["k"].Complete || sum.Stored != 200 {
		t.Errorf("checkpoint %+v, summary %+v", cps["k"], sum)
	}
}

type storeFunc func(context.Context, []stream.Event) ([]stream.Result, error)

func (f storeFunc) Append(ctx context.Context, evs []stream.Event) ([]stream.Result, error) {
	return f(ctx, evs)
}

func FuzzCSV(f *testing.F) {
	f.Add("userId,event,revenue,timestamp\nu1,Lead,5,2026-08-31\n")
	f.Add("email,event\n\"a@b.c\",\"x\"\"y\"\n")
	f.Add("id,event,userId\n1,2,3\n4,5\n")
	f.Fuzz(func(t *testing.T, in string) {
		_, _, sum, err := dryRun(t, FormatCSV, in, Options{Event: "E"})
		var ue *UsageError
		if err != nil && !errors.As(err, &ue) {
			t.Fatalf("%q: %v", in, err)
		}
		if err == nil && sum.Stored+sum.Invalid != sum.Rows {
			t.Errorf("%q: %+v", in, sum)
		}
	})
}

package importer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"hash"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/ingest"
	"github.com/capstan-gw/capstan/internal/stream"
)

// Format is the format of an import file.
type Format string

// The formats import reads.
const (
	// FormatCSV: a header row, then one track event per row.
	FormatCSV Format = "csv"
	// FormatJSONL: one Segment event (a JSON object) per line.
	FormatJSONL Format = "jsonl"
)

// ParseFormat parses --format.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "csv":
		return FormatCSV, nil
	case "jsonl", "ndjson":
		return FormatJSONL, nil
	}
	return "", fmt.Errorf("--format %q: want csv or jsonl", s)
}

// FormatOf returns the format a file name's extension says: .csv, or
// .jsonl / .ndjson; false for any other.
func FormatOf(name string) (Format, bool) {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".csv":
		return FormatCSV, true
	case ".jsonl", ".ndjson":
		return FormatJSONL, true
	}
	return "", false
}

// Store stores events durably: *stream.Writer, the one append path of
// EVENTS that HTTP ingest uses too.
type Store interface {
	Append(ctx context.Context, evs []stream.Event) ([]stream.Result, error)
}

// UsageError is a problem with the input as a whole (an empty or binary
// file, a header that cannot be mapped): nothing was stored. The command
// exits with code 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// ErrInterrupted wraps the context's error when an import stopped early:
// what was stored is in the checkpoint, and running the same import again
// continues after it.
var ErrInterrupted = errors.New("import interrupted")

// RowError is one invalid row: FILE:LINE: field: detail.
type RowError struct {
	File   string // the file name as given ("-" for standard input)
	Line   int    // the row's first line, 1-based
	Field  string // the column or field at fault; "row" for the whole row
	Reason string // one of the Reason* constants, for the summary
	Detail string // the precise explanation
}

func (e RowError) Error() string {
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Field, e.Detail)
}

// Progress counts what an import did so far.
type Progress struct {
	// Rows is the data rows (CSV records, JSONL events) read.
	Rows int
	// Stored is the events stored now; Duplicates those the stream already
	// held (an earlier import, or the same messageId twice).
	Stored, Duplicates int
	// Resumed is the valid rows skipped because an earlier run of the same
	// file stored them (its checkpoint).
	Resumed int
	// Invalid is the rows reported as invalid.
	Invalid int
	// Bytes is how much of the input was read.
	Bytes int64
}

// Summary is the outcome of an import.
type Summary struct {
	Progress
	// ByReason counts the invalid rows per Reason* constant.
	ByReason map[string]int
	// Complete is true when the whole input was read and every valid row
	// stored.
	Complete bool
	// DryRun is true when nothing was stored (Options.Store nil): Stored
	// then counts the events that would have been.
	DryRun bool
}

// Options configure one import.
type Options struct {
	// Name is the input's name in row errors (the file name, "-" for
	// standard input).
	Name string
	// Format of the input. Required.
	Format Format
	// Source is the configured source the events are stored under.
	// Required.
	Source string
	// Event names the track event of CSV rows without an event column (or
	// with an empty one).
	Event string
	// Map overrides where CSV columns land, by folded column name (ParseMap).
	Map map[string]Field

	// Store receives the events; nil for a dry run, which calls DryRun
	// with each event that would be stored instead.
	Store  Store
	DryRun func(doc []byte) error

	// Checkpoints and Key keep the resume point of this input (ResumeKey);
	// nil or "" keep none (standard input): a new run then reads
	// everything again and the stream's de-duplication drops what was
	// stored.
	Checkpoints Checkpoints
	Key         string

	// Invalid is called with each invalid row, in input order; nil
	// ignores them (they are counted).
	Invalid func(RowError)
	// Progress is called as rows are stored (at most once per batch);
	// nil for none.
	Progress func(Progress)

	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// UserAgent is stored as the events' request User-Agent fact.
	// Default "capstan-import".
	UserAgent string
	// Version is written into each CSV event's context.library.version.
	Version string
	// BatchSize is the rows appended together (one request). Default 500.
	BatchSize int
	// Inflight is the batches being stored at once. Default 4.
	Inflight int
	// SaveEvery is the least time between two checkpoint writes. Default
	// 250ms.
	SaveEvery time.Duration
}

// run is the state of one import.
type run struct {
	opt     Options
	now     time.Time
	context []byte // ,"context":{...} of CSV events
	buf     []byte
	sum     Summary
	skip    int // rows before this were stored by an earlier run
	req     event.Request
	reqID   string
	batch   []stream.Event
	counted *countingReader
	line    int       // the line of the last row read
	hash    hash.Hash // rowID's, reused

	// storing
	queue              []*pending // batches in flight, oldest first
	doneRows, doneLine int        // rows stored (or invalid) from the start, contiguously
	lastCP             time.Time  // when the checkpoint was last written
	saved              Checkpoint // what it holds
	storeEr, saveErr   error
}

type pending struct {
	end, line int // rows done (and the last row's line) once this batch is stored
	n         int // events
	done      chan struct{}
	res       []stream.Result
	err       error
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Run imports in: it reads every row, reports the invalid ones through
// opt.Invalid, and stores the others through opt.Store in batches, as HTTP
// ingest would have stored them (ingest.ServerEvent), keeping the resume
// point in opt.Checkpoints. A row's messageId comes from its messageId (or
// id) column, else from a hash of its content and the source, so running
// the same import twice stores each row once; an interrupted import run
// again continues after the last row stored. It returns a *UsageError,
// having stored nothing, for input that cannot be imported at all (empty,
// header only, binary, a header --map cannot apply to), an error wrapping
// ErrInterrupted when ctx ends first, and the store's error when it fails;
// the Summary counts what was done in every case. It is the import of
// `capstan import` and of the console's upload: an io.Reader in, Progress
// out.
func Run(ctx context.Context, in io.Reader, opt Options) (Summary, error) {
	if opt.Source == "" {
		return Summary{}, errors.New("import: no source")
	}
	if opt.Format != FormatCSV && opt.Format != FormatJSONL {
		return Summary{}, fmt.Errorf("import: unknown format %q", opt.Format)
	}
	if opt.Store == nil && opt.DryRun == nil {
		return Summary{}, errors.New("import: no store and no dry run")
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.UserAgent == "" {
		opt.UserAgent = "capstan-import"
	}
	if opt.BatchSize <= 0 {
		opt.BatchSize = 500
	}
	if opt.Inflight <= 0 {
		opt.Inflight = 4
	}
	if opt.SaveEvery <= 0 {
		opt.SaveEvery = 250 * time.Millisecond
	}
	r := &run{opt: opt, now: opt.Now(), sum: Summary{ByReason: map[string]int{}, DryRun: opt.Store == nil}}
	r.req = event.Request{ReceivedAt: r.now}
	r.context = r.libraryContext()
	if opt.Store != nil && opt.Checkpoints != nil && opt.Key != "" {
		cp, ok, err := opt.Checkpoints.Load(ctx, opt.Key)
		if err != nil {
			return r.sum, fmt.Errorf("read the resume point: %w", err)
		}
		if ok {
			r.skip, r.saved = cp.Rows, cp
		}
	}
	r.counted = &countingReader{r: in}
	br := bufio.NewReaderSize(r.counted, 256<<10)
	if err := sniff(br, opt.Name); err != nil {
		return r.sum, err
	}
	var err error
	if opt.Format == FormatCSV {
		err = r.readCSV(ctx, br)
	} else {
		err = r.readJSONL(ctx, br)
	}
	// Store what is left, wait for what is in flight, keep the resume point.
	if err == nil && ctx.Err() == nil {
		r.flush(ctx, r.sum.Rows, r.line)
	}
	r.drain(ctx)
	complete := err == nil && r.storeEr == nil && ctx.Err() == nil
	r.sum.Complete = complete
	r.sum.Bytes = r.counted.n
	if complete {
		r.doneRows = r.sum.Rows
	}
	r.save(ctx, complete, true)
	r.progress()
	switch {
	case err != nil:
		return r.sum, err
	case r.storeEr != nil:
		return r.sum, fmt.Errorf("store events: %w", r.storeEr)
	case ctx.Err() != nil:
		return r.sum, fmt.Errorf("%w after %d rows: %w", ErrInterrupted, r.saved.Rows, ctx.Err())
	}
	return r.sum, r.saveErr
}

// libraryContext is the context every CSV event carries.
func (r *run) libraryContext() []byte {
	b := []byte(`,"context":{"library":{"name":"capstan-import"`)
	if r.opt.Version != "" {
		b = appendString(append(b, `,"version":`...), r.opt.Version)
	}
	return append(b, `}}`...)
}

// sniff refuses input that is not text: a NUL byte in the first 8 KB, or
// the magic number of a compressed file.
func sniff(br *bufio.Reader, name string) error {
	head, _ := br.Peek(8192)
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return &UsageError{Msg: fmt.Sprintf("%s is gzip-compressed: decompress it first (gunzip -c %s | capstan import --format csv|jsonl ... -)", name, name)}
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return &UsageError{Msg: fmt.Sprintf("%s is a zip archive (a spreadsheet?): export it as CSV first", name)}
	}
	if i := bytes.IndexByte(head, 0); i >= 0 {
		return &UsageError{Msg: fmt.Sprintf("%s is not a text file (a NUL byte at offset %d): give a CSV or JSONL file", name, i)}
	}
	return nil
}

// skipBOM drops a UTF-8 byte order mark (spreadsheets write one).
func skipBOM(br *bufio.Reader) {
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
	}
}

func (r *run) readCSV(ctx context.Context, br *bufio.Reader) error {
	skipBOM(br)
	cr := csv.NewReader(br)
	cr.ReuseRecord = true
	header, err := cr.Read()
	switch {
	case err == io.EOF:
		return &UsageError{Msg: fmt.Sprintf("%s is empty: a CSV file needs a header row and at least one row", r.opt.Name)}
	case err != nil:
		return &UsageError{Msg: fmt.Sprintf("%s: the header row cannot be read: %v", r.opt.Name, err)}
	}
	header = append([]string(nil), header...)
	l, err := newLayout(header, r.opt.Map)
	if err != nil {
		return err
	}
	if l.pos[FieldEvent] < 0 && r.opt.Event == "" {
		return &UsageError{Msg: fmt.Sprintf("%s has no event column (columns: %s): name the rows' event with --event NAME, or map a column with --map COLUMN=event", r.opt.Name, strings.Join(header, ", "))}
	}
	first := true
	for ctx.Err() == nil && r.storeEr == nil {
		rec, err := cr.Read()
		if err == io.EOF {
			if first {
				return &UsageError{Msg: fmt.Sprintf("%s has a header row and no rows", r.opt.Name)}
			}
			return nil
		}
		first = false
		idx := r.sum.Rows
		r.sum.Rows++
		var pe *csv.ParseError
		if err != nil {
			if !errors.As(err, &pe) {
				return fmt.Errorf("read %s: %w", r.opt.Name, err)
			}
			line, reason := pe.StartLine, ReasonQuoting
			detail := fmt.Sprintf("%s (line %d, column %d)", pe.Err, pe.Line, pe.Column)
			if errors.Is(pe.Err, csv.ErrFieldCount) {
				reason, detail = ReasonFieldCount, fmt.Sprintf("%d fields; the header has %d", len(rec), len(header))
			}
			r.line = line
			r.invalid(RowError{Line: line, Field: "row", Reason: reason, Detail: detail})
			r.maybeFlush(ctx, idx+1, line)
			continue
		}
		line, _ := cr.FieldPos(0)
		raw, rerr := r.csvRow(l, rec)
		r.add(ctx, idx, line, raw, rerr)
	}
	return nil
}

// maxLine bounds a JSONL line: one event's limit (segment-ingest.md §1.3)
// with room for surrounding space.
const maxLine = event.MaxEventBytes + 1024

func (r *run) readJSONL(ctx context.Context, br *bufio.Reader) error {
	skipBOM(br)
	lineNo, seen := 0, false
	for ctx.Err() == nil && r.storeEr == nil {
		line, size, err := readLine(br)
		if err != nil && err != io.EOF {
			return fmt.Errorf("read %s: %w", r.opt.Name, err)
		}
		if size == 0 && err == io.EOF {
			break
		}
		lineNo++
		if t := bytes.TrimSpace(line); len(t) > 0 || size > len(line) {
			seen = true
			idx := r.sum.Rows
			r.sum.Rows++
			var raw []byte
			var rerr *rowError
			if size > len(line) {
				rerr = &rowError{"event", ReasonTooLarge, fmt.Sprintf("a line of %d bytes; an event's limit is %d", size, event.MaxEventBytes)}
			} else {
				raw, rerr = r.jsonlLine(t)
			}
			r.add(ctx, idx, lineNo, raw, rerr)
		}
		if err == io.EOF {
			break
		}
	}
	if !seen && ctx.Err() == nil && r.storeEr == nil {
		return &UsageError{Msg: fmt.Sprintf("%s is empty: a JSONL file needs one event per line", r.opt.Name)}
	}
	return nil
}

// readLine reads one line (without its end) of at most maxLine bytes;
// size is the line's whole length, larger than len(line) when it was cut.
func readLine(br *bufio.Reader) (line []byte, size int, err error) {
	var long []byte
	for {
		chunk, err := br.ReadSlice('\n')
		size += len(chunk)
		if err == bufio.ErrBufferFull {
			if len(long) < maxLine {
				long = append(long, chunk[:min(len(chunk), maxLine-len(long))]...)
			}
			continue
		}
		if long != nil {
			if len(long) < maxLine {
				long = append(long, chunk[:min(len(chunk), maxLine-len(long))]...)
			}
			chunk = long
		}
		if size > maxLine {
			return chunk, size, err
		}
		return chunk, len(chunk), err
	}
}

// jsonlLine checks one JSONL line and gives it a messageId made from its
// content when it has none. A track event is checked against LinkedIn's
// conversion window.
func (r *run) jsonlLine(line []byte) ([]byte, *rowError) {
	var ts time.Time
	if len(line) > event.MaxEventBytes {
		return nil, &rowError{"event", ReasonTooLarge, fmt.Sprintf("%d bytes; the limit is %d", len(line), event.MaxEventBytes)}
	}
	if _, rerr := event.ParseSingle(line); rerr != nil {
		return nil, &rowError{"event", ReasonJSON, rerr.Message}
	}
	v, err := event.Parse(line)
	if err != nil {
		return nil, &rowError{"event", ReasonJSON, err.Error()}
	}
	if v.Kind() != event.Object {
		return nil, &rowError{"event", ReasonJSON, "not a JSON object"}
	}
	for _, k := range [...]string{"originalTimestamp", "timestamp"} {
		if s, ok := v.Get(k).Str(); ok {
			if t, ok := event.ParseTime(s); ok {
				ts = t
				break
			}
		}
	}
	if t, _ := v.Get("type").Str(); strings.EqualFold(t, "track") && !ts.IsZero() {
		if rerr := r.checkAge("timestamp", ts); rerr != nil {
			return nil, rerr
		}
	}
	id := v.Get("messageId")
	if s, ok := id.Str(); (ok && s != "") || id.Kind() == event.Number {
		return line, nil
	}
	if !id.IsUndefined() && id.Kind() != event.Null && id.Kind() != event.String {
		return line, nil // Normalize says why it is wrong
	}
	ms := make([]event.Member, 0, v.Len()+1)
	for i := range v.Len() {
		if m := v.At(i); m.Key != "messageId" {
			ms = append(ms, m)
		}
	}
	ms = append(ms, event.Member{Key: "messageId", Value: event.StringValue(contentID(r.opt.Source, string(line)))})
	return event.ObjectOfDistinct(ms).AppendJSON(nil), nil
}

// add takes one converted row: reports it invalid, counts it as stored by
// an earlier run, or queues it for storing.
func (r *run) add(ctx context.Context, idx, line int, raw []byte, rerr *rowError) {
	r.line = line
	var sev stream.Event
	if rerr == nil {
		if r.opt.Store != nil && len(r.batch) == 0 && idx >= r.skip {
			// A new batch is a new request: its own receivedAt and id.
			r.req = event.Request{ReceivedAt: r.opt.Now()}
			r.reqID = event.NewID()
		}
		var derr *event.DropError
		sev, _, derr = ingest.ServerEvent(r.opt.Source, raw, &r.req)
		if derr != nil {
			rerr = dropError(derr)
		}
	}
	if rerr != nil {
		r.invalid(RowError{Line: line, Field: rerr.field, Reason: rerr.reason, Detail: rerr.detail})
		r.maybeFlush(ctx, idx+1, line)
		return
	}
	if idx < r.skip {
		r.sum.Resumed++
		if r.sum.Resumed%r.opt.BatchSize == 0 {
			r.progress()
		}
		return
	}
	if r.opt.Store == nil {
		r.sum.Stored++
		if err := r.opt.DryRun(sev.Doc); err != nil && r.storeEr == nil {
			r.storeEr = err
		}
		return
	}
	// sev.Doc is Normalize's own copy: raw (r.buf, reused) is not kept.
	sev.RequestID, sev.UserAgent = r.reqID, r.opt.UserAgent
	r.batch = append(r.batch, sev)
	r.maybeFlush(ctx, idx+1, line)
}

// dropError turns a drop of event.Normalize into a row error.
func dropError(d *event.DropError) *rowError {
	field := "event"
	switch d.Code {
	case event.CodeMissingIdentity:
		return &rowError{"row", ReasonIdentifier, d.Message}
	case event.CodeMissingEvent:
		return &rowError{"event", ReasonEventName, d.Message}
	case event.CodeInvalidMessageID:
		field = "messageId"
	case event.CodeInvalidID:
		field = "id"
	case event.CodeInvalidType, event.CodeMissingType:
		field = "type"
	}
	return &rowError{field, ReasonEvent, d.Message}
}

// checkAge refuses conversions LinkedIn would refuse for their time.
func (r *run) checkAge(field string, ts time.Time) *rowError {
	switch {
	case r.now.Sub(ts) > MaxAge:
		return &rowError{field, ReasonTooOld, fmt.Sprintf("%s is %d days ago; LinkedIn takes conversions of the last 90 days only", ts.Format(time.RFC3339), int(r.now.Sub(ts).Hours()/24))}
	case ts.Sub(r.now) > MaxFuture:
		return &rowError{field, ReasonFuture, fmt.Sprintf("%s is in the future", ts.Format(time.RFC3339))}
	}
	return nil
}

func (r *run) invalid(e RowError) {
	e.File = r.opt.Name
	r.sum.Invalid++
	r.sum.ByReason[e.Reason]++
	if r.opt.Invalid != nil {
		r.opt.Invalid(e)
	}
}

func (r *run) progress() {
	if r.opt.Progress != nil {
		p := r.sum.Progress
		p.Bytes = r.counted.n
		r.opt.Progress(p)
	}
}

package admin

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/capstan-gw/capstan/internal/audit"
	"github.com/capstan-gw/capstan/internal/importer"
)

// Importer runs the imports uploaded to the console's Import page;
// EngineImporter is the one `capstan serve` wires. Implementations must be
// safe for concurrent use.
type Importer interface {
	// Sources are the configured sources, which imported events may be
	// stored under, in configuration order.
	Sources() []string
	// Import runs importer.Run(ctx, in, opt): with opt.DryRun nil it adds
	// the store (the append path of HTTP ingest) and, when opt.Key is
	// set, the resume points.
	Import(ctx context.Context, in io.Reader, opt importer.Options) (importer.Summary, error)
}

// Import limits and defaults.
const (
	// DefaultImportMaxBytes is the largest file the console takes when
	// Config.ImportMaxBytes is zero; capstan import has no limit.
	DefaultImportMaxBytes = 256 << 20
	// maxRunningImports is how many console imports run at once.
	maxRunningImports = 2
	// keptImports is how many ended imports the list keeps (in memory).
	keptImports = 20
	// maxImportErrors is how many invalid rows an import keeps to show.
	maxImportErrors = 100
	// maxFormValue bounds one text field of the upload form.
	maxFormValue = 16 << 10
	// importUploadTimeout replaces the server's read and write timeouts
	// for an upload, which may be large and slow.
	importUploadTimeout = time.Hour
	// precheckBytes is how much of a file the upload checks before
	// answering (the header, the first rows).
	precheckBytes = 64 << 10
)

// Import states.
const (
	importRunning     = "running"
	importDone        = "done"        // read to the end
	importFailed      = "failed"      // stopped by an error
	importCancelled   = "cancelled"   // stopped by an operator
	importInterrupted = "interrupted" // stopped by the server's shutdown
)

// imports are the console's imports: the running ones and the last ended
// ones, in memory (a restart forgets them; the resume points, in the state
// bucket, remain).
type imports struct {
	dep      Importer
	dir      string // where uploads are spooled
	maxBytes int64

	base   context.Context // ends at Shutdown
	cancel context.CancelFunc
	wg     sync.WaitGroup // running imports and uploads

	mu      sync.Mutex
	jobs    []*importJob // oldest first
	running int          // jobs running or being uploaded
}

// importJob is one console import. Its fields after mu are guarded by it.
type importJob struct {
	id, by, file, source, event, sha256 string
	format                              importer.Format
	maps                                []string
	dryRun                              bool
	bytes                               int64
	total                               int
	started                             time.Time
	cancel                              context.CancelFunc

	mu          sync.Mutex
	state       string
	ended       time.Time
	live        importer.Progress // the last Progress call
	valid       int               // dry run: the rows that would be stored
	invalidSeen int
	errs        []importer.RowError
	sum         *importer.Summary
	err         string
	cancelledBy string
}

// importRowError is one invalid row as the API shows it.
type importRowError struct {
	Line    int    `json:"line"`
	Field   string `json:"field"`
	Reason  string `json:"reason"`
	Detail  string `json:"detail"`
	Message string `json:"message"` // FILE:LINE: field: detail
}

// importView is an import as the API shows it.
type importView struct {
	ID         string     `json:"id"`
	File       string     `json:"file"`
	Source     string     `json:"source"`
	Event      string     `json:"event,omitempty"`
	Format     string     `json:"format"`
	Map        []string   `json:"map"`
	DryRun     bool       `json:"dryRun"`
	By         string     `json:"by"`
	Bytes      int64      `json:"bytes"`
	SHA256     string     `json:"sha256"`
	State      string     `json:"state"`
	StartedAt  time.Time  `json:"startedAt"`
	EndedAt    *time.Time `json:"endedAt"`
	Total      int        `json:"total"`
	Rows       int        `json:"rows"`
	Stored     int        `json:"stored"`
	Duplicates int        `json:"duplicates"`
	Resumed    int        `json:"resumed"`
	Invalid    int        `json:"invalid"`
	// RowsPerSecond and ETASeconds are computed from the start; ETA is
	// null when unknown or ended.
	RowsPerSecond float64        `json:"rowsPerSecond"`
	ETASeconds    *float64       `json:"etaSeconds"`
	ByReason      map[string]int `json:"byReason"`
	// Errors are the first invalid rows (at most 100), with the detail
	// only when asked for one import.
	Errors      []importRowError `json:"errors,omitempty"`
	Error       string           `json:"error,omitempty"`
	CancelledBy string           `json:"cancelledBy,omitempty"`
	Complete    bool             `json:"complete"`
}

// view returns the job's state at now; withErrors adds the invalid rows.
func (j *importJob) view(now time.Time, withErrors bool) importView {
	j.mu.Lock()
	defer j.mu.Unlock()
	v := importView{
		ID: j.id, File: j.file, Source: j.source, Event: j.event, Format: string(j.format), Map: j.maps,
		DryRun: j.dryRun, By: j.by, Bytes: j.bytes, SHA256: j.sha256, State: j.state, StartedAt: j.started,
		Total: j.total, Error: j.err, CancelledBy: j.cancelledBy, ByReason: map[string]int{},
	}
	if v.Map == nil {
		v.Map = []string{}
	}
	p := j.live
	switch {
	case j.sum != nil:
		p = j.sum.Progress
		v.ByReason, v.Complete = j.sum.ByReason, j.sum.Complete
	case j.dryRun:
		p.Rows, p.Stored, p.Invalid = j.valid+j.invalidSeen, j.valid, j.invalidSeen
	default:
		p.Invalid = max(p.Invalid, j.invalidSeen)
		p.Rows = max(p.Rows, p.Stored+p.Duplicates+p.Resumed+p.Invalid)
	}
	if j.sum == nil {
		for _, e := range j.errs {
			v.ByReason[e.Reason]++ // the first ones only, until the end
		}
	}
	v.Rows, v.Stored, v.Duplicates, v.Resumed, v.Invalid = p.Rows, p.Stored, p.Duplicates, p.Resumed, p.Invalid
	end := now
	if !j.ended.IsZero() {
		t := j.ended
		v.EndedAt, end = &t, t
	}
	if d := end.Sub(j.started).Seconds(); d > 0 {
		v.RowsPerSecond = float64(v.Rows) / d
	}
	if j.state == importRunning && v.RowsPerSecond > 0 && v.Rows < v.Total {
		eta := float64(v.Total-v.Rows) / v.RowsPerSecond
		v.ETASeconds = &eta
	}
	if withErrors {
		v.Errors = make([]importRowError, 0, len(j.errs))
		for _, e := range j.errs {
			v.Errors = append(v.Errors, importRowError{Line: e.Line, Field: e.Field, Reason: e.Reason, Detail: e.Detail, Message: e.Error()})
		}
	}
	return v
}

// newImports returns the imports of a Server; dep nil disables them.
func newImports(dep Importer, dir string, maxBytes int64) *imports {
	if maxBytes <= 0 {
		maxBytes = DefaultImportMaxBytes
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &imports{dep: dep, dir: dir, maxBytes: maxBytes, base: ctx, cancel: cancel}
}

// stop stops the running imports and refuses new ones.
func (im *imports) stop() {
	im.mu.Lock()
	defer im.mu.Unlock()
	im.cancel()
}

// reserve takes a place for one more running import; the error answer
// when maxRunningImports run or the server is shutting down.
func (im *imports) reserve() error {
	im.mu.Lock()
	defer im.mu.Unlock()
	switch {
	case im.base.Err() != nil:
		return &apiError{http.StatusServiceUnavailable, codeUnavailable, "the server is shutting down: upload the file again once it is back"}
	case im.running >= maxRunningImports:
		return &apiError{http.StatusTooManyRequests, codeTooManyRequests,
			fmt.Sprintf("%d imports are running: wait for one to end, or cancel one", maxRunningImports)}
	}
	im.running++
	im.wg.Add(1) // under mu: never after shutdown's cancel, so WaitImports sees it
	return nil
}

func (im *imports) release() {
	im.mu.Lock()
	im.running--
	im.mu.Unlock()
}

// add keeps j, dropping the oldest ended imports beyond keptImports.
func (im *imports) add(j *importJob) {
	im.mu.Lock()
	defer im.mu.Unlock()
	im.jobs = append(im.jobs, j)
	for over := len(im.jobs) - keptImports; over > 0; over-- {
		i := slices.IndexFunc(im.jobs, func(j *importJob) bool {
			j.mu.Lock()
			defer j.mu.Unlock()
			return j.state != importRunning
		})
		if i < 0 {
			break
		}
		im.jobs = slices.Delete(im.jobs, i, i+1)
	}
}

func (im *imports) get(id string) *importJob {
	im.mu.Lock()
	defer im.mu.Unlock()
	for _, j := range im.jobs {
		if j.id == id {
			return j
		}
	}
	return nil
}

// uploadForm is the upload's form, its file spooled to path.
type uploadForm struct {
	path, name            string
	size                  int64
	source, event, format string
	dryRun                string
	maps                  []string
}

// importFormFields lists the form's fields, for messages.
const importFormFields = "file, source, event, format, map (repeatable), dryRun"

// readUpload reads the multipart form of an upload, spooling the file
// part to a temporary file in im.dir (removed by the caller).
func (im *imports) readUpload(r *http.Request) (*uploadForm, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, badRequest("the request must be a multipart/form-data form with the fields %s: %v", importFormFields, err)
	}
	u := &uploadForm{}
	fail := func(err error) (*uploadForm, error) {
		if u.path != "" {
			_ = os.Remove(u.path)
		}
		return nil, err
	}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return fail(im.tooLarge())
			}
			return fail(badRequest("the form cannot be read: %v", err))
		}
		name := p.FormName()
		if name == "file" {
			if u.path != "" {
				return fail(badRequest("the form holds two files; upload one at a time"))
			}
			if err := im.spool(p, u); err != nil {
				return fail(err)
			}
			continue
		}
		v, err := io.ReadAll(io.LimitReader(p, maxFormValue+1))
		switch {
		case err != nil:
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return fail(im.tooLarge())
			}
			return fail(badRequest("the form field %s cannot be read: %v", name, err))
		case len(v) > maxFormValue:
			return fail(badRequest("the form field %s is longer than %d bytes", name, maxFormValue))
		}
		s := strings.TrimSpace(string(v))
		switch name {
		case "source":
			u.source = s
		case "event":
			u.event = s
		case "format":
			u.format = s
		case "dryRun":
			u.dryRun = s
		case "map":
			for _, line := range strings.Split(s, "\n") {
				if line = strings.TrimSpace(line); line != "" {
					u.maps = append(u.maps, line)
				}
			}
		default:
			return fail(badRequest("unknown form field %q; the fields are %s", name, importFormFields))
		}
	}
	if u.path == "" {
		return nil, badRequest("no file: send the CSV or JSONL file as the form field \"file\"")
	}
	return u, nil
}

// spool copies the file part p to a new temporary file, at most
// im.maxBytes.
func (im *imports) spool(p *multipart.Part, u *uploadForm) error {
	name := strings.TrimSpace(path.Base(strings.ReplaceAll(p.FileName(), `\`, "/")))
	if name == "" || name == "." || name == "/" {
		return badRequest("the form field file has no file name; send it as a file (filename=\"….csv\")")
	}
	u.name = name
	dir := im.dir
	if dir == "" {
		dir = os.TempDir()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("import upload directory: %w", err)
	}
	f, err := os.CreateTemp(dir, "upload-*")
	if err != nil {
		return fmt.Errorf("import upload: %w", err)
	}
	u.path = f.Name()
	fw := &fileWriter{f: f}
	n, err := io.Copy(fw, io.LimitReader(p, im.maxBytes+1))
	if cerr := f.Close(); fw.err == nil {
		fw.err = cerr
	}
	u.size = n
	var mbe *http.MaxBytesError
	switch {
	case fw.err != nil: // the server's disk: a 500, logged
		return fmt.Errorf("keep the upload in %s: %w", dir, fw.err)
	case errors.As(err, &mbe) || n > im.maxBytes:
		return im.tooLarge()
	case err != nil:
		return badRequest("the file could not be received: %v", err)
	}
	return nil
}

// fileWriter writes to f and keeps its error, to tell the server's
// failures (a full disk) from the client's (a broken upload).
type fileWriter struct {
	f   *os.File
	err error
}

func (w *fileWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

func (im *imports) tooLarge() error {
	return &apiError{http.StatusRequestEntityTooLarge, codeTooLarge,
		fmt.Sprintf("the file is larger than the console's limit of %d bytes: import it with capstan import on the server", im.maxBytes)}
}

// createImport: POST /admin/api/imports uploads a CSV or JSONL file
// (multipart/form-data) and starts importing it in the background; the
// answer (202) is the import, to poll with GET /admin/api/imports/{id}.
func (s *Server) createImport(w http.ResponseWriter, r *http.Request) error {
	im := s.imports
	if im.dep == nil {
		return &apiError{http.StatusServiceUnavailable, codeUnavailable, "imports are not available on this server"}
	}
	if err := im.reserve(); err != nil {
		return err
	}
	handedOver := false
	defer func() {
		if !handedOver {
			im.release()
			im.wg.Done()
		}
	}()
	// An upload may take longer than the server's request timeouts.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(importUploadTimeout))
	_ = rc.SetWriteDeadline(time.Now().Add(importUploadTimeout))
	// Shutdown ends an upload at once (WaitImports waits for uploads too).
	defer context.AfterFunc(im.base, func() { _ = rc.SetReadDeadline(time.Now()) })()
	r.Body = http.MaxBytesReader(w, r.Body, im.maxBytes+1<<20)
	u, err := im.readUpload(r)
	if err != nil {
		return err
	}
	defer func() {
		if !handedOver {
			_ = os.Remove(u.path)
		}
	}()
	j, opt, err := s.checkUpload(r, u)
	if err != nil {
		return err
	}
	handedOver = true
	ctx, cancel := context.WithCancel(im.base)
	j.cancel = cancel
	accepted := j.view(s.now(), true) // the answer: as accepted, running
	im.add(j)
	go s.runImport(ctx, j, u.path, opt) // takes over the reservation

	s.record(r, audit.Record{Action: audit.ActionImportStart, Target: importTarget(j),
		Result: map[string]int{"rows": j.total}, Detail: importDetail(j)})
	s.log.Info("import started", "import", j.id, "source", j.source, "rows", j.total, "bytes", j.bytes, "dry_run", j.dryRun, "principal", j.by)
	w.Header().Set("Location", "/admin/api/imports/"+j.id)
	writeJSON(w, http.StatusAccepted, accepted)
	return nil
}

// checkUpload checks an upload's form and file: the options of its import
// and the job, or the error that refuses it (nothing stored).
func (s *Server) checkUpload(r *http.Request, u *uploadForm) (*importJob, importer.Options, error) {
	var opt importer.Options
	if u.size == 0 {
		return nil, opt, badRequest("%s is empty: a CSV file needs a header row and at least one row, a JSONL file one event per line", u.name)
	}
	format, err := importFormat(u.format, u.name)
	if err != nil {
		return nil, opt, err
	}
	source, err := importSource(s.imports.dep.Sources(), u.source)
	if err != nil {
		return nil, opt, err
	}
	overrides, err := importer.ParseMap(u.maps)
	if err != nil {
		return nil, opt, badRequest("map: %v", err)
	}
	if format == importer.FormatJSONL && (len(u.maps) > 0 || u.event != "") {
		return nil, opt, badRequest("the column mapping and the event name apply to CSV files; a JSONL line is a whole event")
	}
	var dryRun bool
	switch strings.ToLower(u.dryRun) {
	case "", "false", "0", "off", "no":
	case "true", "1", "on", "yes":
		dryRun = true
	default:
		return nil, opt, badRequest("dryRun %q: want true or false", u.dryRun)
	}
	f, err := os.Open(u.path)
	if err != nil {
		return nil, opt, err
	}
	defer f.Close()
	st, err := importer.Scan(f, format)
	if err != nil {
		return nil, opt, fmt.Errorf("scan the upload: %w", err)
	}
	opt = importer.Options{Name: u.name, Format: format, Source: source, Event: u.event, Map: overrides}
	if err := precheck(f, st.Bytes, opt); err != nil {
		return nil, opt, err
	}
	if !dryRun {
		opt.Key = importer.ResumeKey(source, st.SHA256)
	}
	j := &importJob{
		id: newImportID(), by: principalOf(r).name, file: u.name, source: source, event: u.event, sha256: st.SHA256,
		format: format, maps: u.maps, dryRun: dryRun, bytes: st.Bytes, total: st.Rows, started: s.now().UTC(),
		state: importRunning,
	}
	return j, opt, nil
}

// precheck runs a dry run of the file's first rows, so that input that
// cannot be imported at all (not text, a header the mapping cannot apply
// to, no event name, no rows) is refused before the upload is answered.
func precheck(f *os.File, size int64, opt importer.Options) error {
	head := make([]byte, min(size, precheckBytes))
	if _, err := f.ReadAt(head, 0); err != nil && err != io.EOF {
		return fmt.Errorf("read the upload: %w", err)
	}
	if size > precheckBytes {
		// Whole lines only; the rest is checked by the import itself.
		if i := bytes.LastIndexByte(head, '\n'); i > 0 {
			head = head[:i+1]
		}
	}
	opt.DryRun = func([]byte) error { return nil }
	_, err := importer.Run(context.Background(), bytes.NewReader(head), opt)
	var ue *importer.UsageError
	if errors.As(err, &ue) {
		return badRequest("%s", ue.Msg)
	}
	return nil // row errors are the import's to report
}

// importFormat is the form's format, or the one the file name says.
func importFormat(format, name string) (importer.Format, error) {
	if format != "" {
		f, err := importer.ParseFormat(format)
		if err != nil {
			return "", badRequest("format %q: want csv or jsonl", format)
		}
		return f, nil
	}
	f, ok := importer.FormatOf(name)
	if !ok {
		return "", badRequest("%s: unknown extension; name the file .csv or .jsonl, or choose its format", name)
	}
	return f, nil
}

// importSource returns the source to import under: name, which must be
// configured, or the only configured source.
func importSource(sources []string, name string) (string, error) {
	switch {
	case name != "" && slices.Contains(sources, name):
		return name, nil
	case name != "":
		return "", badRequest("source %q is not a configured source (sources: %s)", name, strings.Join(sources, ", "))
	case len(sources) == 1:
		return sources[0], nil
	case len(sources) == 0:
		return "", badRequest("the configuration has no sources: add one for the imported events")
	}
	return "", badRequest("choose the source: the configuration has several (%s)", strings.Join(sources, ", "))
}

func newImportID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// importTarget names an import in the audit log: its file, source and
// content hash (never its rows).
func importTarget(j *importJob) string {
	return fmt.Sprintf("%s (source %s, sha256 %s…)", j.file, j.source, j.sha256[:12])
}

func importDetail(j *importJob) string {
	d := fmt.Sprintf("%s, %d bytes", j.format, j.bytes)
	if j.dryRun {
		d += ", dry run"
	}
	if len(j.maps) > 0 {
		d += ", map " + strings.Join(j.maps, "; ")
	}
	if j.event != "" {
		d += ", event " + j.event
	}
	return d
}

// runImport imports the spooled file at p (removing it at the end) and
// records the outcome.
func (s *Server) runImport(ctx context.Context, j *importJob, p string, opt importer.Options) {
	im := s.imports
	defer im.wg.Done()
	defer j.cancel()
	opt.Invalid = func(e importer.RowError) {
		j.mu.Lock()
		defer j.mu.Unlock()
		j.invalidSeen++
		if len(j.errs) < maxImportErrors {
			j.errs = append(j.errs, e)
		}
	}
	opt.Progress = func(p importer.Progress) {
		j.mu.Lock()
		j.live = p
		j.mu.Unlock()
	}
	if j.dryRun {
		opt.DryRun = func([]byte) error {
			j.mu.Lock()
			j.valid++
			j.mu.Unlock()
			return nil
		}
	}
	var sum importer.Summary
	f, err := os.Open(p)
	if err == nil {
		sum, err = im.dep.Import(ctx, f, opt)
		f.Close()
	}
	_ = os.Remove(p)
	im.release() // before the end is seen: another import may start then

	j.mu.Lock()
	j.sum, j.ended = &sum, s.now().UTC()
	var ue *importer.UsageError
	switch {
	case err == nil:
		j.state = importDone
	case errors.Is(err, importer.ErrInterrupted) && j.cancelledBy != "":
		j.state, j.err = importCancelled, "cancelled by "+j.cancelledBy+"; import the file again to continue where it stopped"
	case errors.Is(err, importer.ErrInterrupted):
		j.state, j.err = importInterrupted, "interrupted by the server's shutdown; import the file again to continue where it stopped"
	case errors.As(err, &ue):
		j.state, j.err = importFailed, ue.Msg
	default:
		j.state, j.err = importFailed, "the import stopped: the engine refused to store; see the server log, then import the file again to continue"
		s.log.Error("import failed", "import", j.id, "source", j.source, "error", err)
	}
	rec := audit.Record{
		By: j.by, Action: audit.ActionImport, Target: importTarget(j), Detail: importDetail(j), Error: j.err,
		Result: map[string]int{"rows": sum.Rows, "stored": sum.Stored, "duplicates": sum.Duplicates, "resumed": sum.Resumed, "invalid": sum.Invalid},
	}
	state := j.state
	j.mu.Unlock()
	s.recordCtx(context.WithoutCancel(ctx), rec)
	s.log.Info("import ended", "import", j.id, "source", j.source, "state", state, "rows", sum.Rows,
		"stored", sum.Stored, "duplicates", sum.Duplicates, "resumed", sum.Resumed, "invalid", sum.Invalid)
}

// listImports: GET /admin/api/imports answers the recent imports, newest
// first, with what the Import page needs: the sources and the size limit.
func (s *Server) listImports(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	im := s.imports
	out := struct {
		Imports  []importView `json:"imports"`
		Sources  []string     `json:"sources"`
		MaxBytes int64        `json:"maxBytes"`
		Running  int          `json:"running"`
		MaxRun   int          `json:"maxRunning"`
	}{Imports: []importView{}, Sources: []string{}, MaxBytes: im.maxBytes, MaxRun: maxRunningImports}
	if im.dep == nil {
		return &apiError{http.StatusServiceUnavailable, codeUnavailable, "imports are not available on this server"}
	}
	out.Sources = append(out.Sources, im.dep.Sources()...)
	im.mu.Lock()
	jobs := slices.Clone(im.jobs)
	out.Running = im.running
	im.mu.Unlock()
	now := s.now()
	for i := len(jobs) - 1; i >= 0; i-- {
		out.Imports = append(out.Imports, jobs[i].view(now, false))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// showImport: GET /admin/api/imports/{id} answers one import with its
// progress, and at the end its summary and first invalid rows.
func (s *Server) showImport(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	j := s.imports.get(r.PathValue("id"))
	if j == nil {
		return notFound("no import %q (imports are kept in memory: a restart forgets them)", r.PathValue("id"))
	}
	writeJSON(w, http.StatusOK, j.view(s.now(), true))
	return nil
}

// cancelImport: POST /admin/api/imports/{id}/cancel stops a running
// import after the rows being stored; importing the file again continues
// where it stopped.
func (s *Server) cancelImport(w http.ResponseWriter, r *http.Request) error {
	j := s.imports.get(r.PathValue("id"))
	if j == nil {
		return notFound("no import %q (imports are kept in memory: a restart forgets them)", r.PathValue("id"))
	}
	by := principalOf(r).name
	j.mu.Lock()
	state := j.state
	if state == importRunning && j.cancelledBy == "" {
		j.cancelledBy = by
	}
	j.mu.Unlock()
	if state != importRunning {
		return badRequest("import %s has ended (%s): there is nothing to cancel", j.id, state)
	}
	j.cancel()
	s.record(r, audit.Record{Action: audit.ActionImportCancel, Target: importTarget(j)})
	s.log.Info("import cancelled", "import", j.id, "principal", by)
	writeJSON(w, http.StatusOK, j.view(s.now(), true))
	return nil
}

// WaitImports waits until the imports the console started, and the
// uploads being received, have ended: Shutdown stops them (an import after
// the rows being stored, keeping its resume point; an upload at once).
// `capstan serve` calls it before stopping the event writer.
func (s *Server) WaitImports() { s.imports.wg.Wait() }

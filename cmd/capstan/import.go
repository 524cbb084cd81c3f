package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/importer"
	"github.com/capstan-gw/capstan/internal/stream"
)

func newImportCmd() *cobra.Command {
	var (
		cfgPath, source, eventName, format string
		maps                               []string
		dryRun                             bool
	)
	cmd := &cobra.Command{
		Use:   "import --config FILE [--source NAME] [--event NAME] [--map COLUMN=FIELD]... [--format csv|jsonl] [--dry-run] FILE.csv|FILE.jsonl|-",
		Short: "Import offline and CRM conversions from a CSV or JSONL file",
		Long: `Import offline and CRM conversions (phone orders, closed deals, trade-show
lists) from a CSV or JSONL file, or standard input ("-" with --format). The
rows are stored through the same append path as HTTP ingest, so triggers,
mappings, identity enrichment and delivery treat them exactly as live
events: a row that carries only a userId gets the li_fat_id and email hash
the identity graph knows. It works with capstan serve running (through the
embedded engine's local port) and with it stopped (it opens the data
directory itself), and against an external NATS cluster.

A JSONL line is a Segment event as is. A CSV row becomes a track event; its
columns map by header name (case, '_' and spaces ignored) to userId,
anonymousId, messageId (or id), event, timestamp, email, first_name,
last_name, title, company, country, li_fat_id, revenue (or value) and
currency; every other column becomes a property of its own name. --map
COLUMN=FIELD overrides a column (FIELD: one of those, properties.NAME,
traits.NAME or skip); --event names the event of rows without an event
column. Timestamps: RFC 3339, YYYY-MM-DD[ HH:MM:SS] (UTC), Unix seconds or
milliseconds. Where each field lands in the event: README, "Offline and
CRM conversions".

Importing is idempotent: a row's messageId is its messageId (or id) column,
else a hash of the row's content and the source. It is resumable: stopped by
Ctrl-C, kill -9 or a crash, the same command continues after the last row
stored, and a file imported completely is not stored again. Invalid rows
are reported one a line as FILE:LINE: field: reason (bad CSV quoting, an
unparseable timestamp or number, no identifier, a conversion older than
LinkedIn's 90 days) and the rest is imported. --dry-run checks every row and
prints the events that would be stored, one JSON document a line, storing
nothing.

On a terminal a progress bar shows rows done of total, rows/s and the time
left; otherwise a line every 5 seconds. At the end a summary on stderr.
Exit codes: 0 all rows imported; 1 runtime failure or interrupted; 2 usage
error (nothing stored); 3 some rows were invalid (the others imported).`,
		Example: `  capstan import --config capstan.yaml --source crm --event "Deal Won" deals.csv
  capstan import --config capstan.yaml --map "Contact Email=email" --map Amount=revenue orders.csv
  capstan import --config capstan.yaml --dry-run leads.csv | head
  gunzip -c events.jsonl.gz | capstan import --config capstan.yaml --format jsonl -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ic := importCmd{
				path: args[0], source: source, event: eventName, format: format, maps: maps, dryRun: dryRun,
				stdout: cmd.OutOrStdout(), stderr: cmd.ErrOrStderr(),
			}
			return ic.run(cmd.Context(), cfgPath)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&cfgPath, "config", "c", "", "configuration file (YAML)")
	f.StringVar(&source, "source", "", "the configured source the events are stored under (default: the only source)")
	f.StringVar(&eventName, "event", "", "event name of CSV rows without an event column")
	f.StringArrayVar(&maps, "map", nil, "COLUMN=FIELD: where a CSV column goes (repeatable)")
	f.StringVar(&format, "format", "", "csv or jsonl (default: from the file's extension)")
	f.BoolVar(&dryRun, "dry-run", false, "check every row and print the events that would be stored; store nothing")
	return cmd
}

// importCmd is one run of capstan import.
type importCmd struct {
	path, source, event, format string
	maps                        []string
	dryRun                      bool
	stdout, stderr              io.Writer
}

// importMemLimit is the Go runtime's soft memory limit during an import
// (unless GOMEMLIMIT is set): an import's own memory is small and flat
// (batches in flight), but with capstan stopped the embedded engine runs in
// this process and keeps the de-duplication window's ids in memory (about
// 200 bytes an event), so a large import would otherwise let the heap grow
// to twice that before collecting.
const importMemLimit = 256 << 20

func (c *importCmd) run(parent context.Context, cfgPath string) error {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(importMemLimit)
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return err
	}
	src, err := importSource(cfg, c.source)
	if err != nil {
		return usageErr(err)
	}
	format, err := c.fileFormat()
	if err != nil {
		return usageErr(err)
	}
	overrides, err := importer.ParseMap(c.maps)
	if err != nil {
		return usageErr(err)
	}
	if format == importer.FormatJSONL && (len(c.maps) > 0 || c.event != "") {
		return usageErr(errors.New("--map and --event apply to CSV files; a JSONL line is a whole event"))
	}

	var (
		in    io.Reader = os.Stdin
		stat  importer.Stat
		total = -1
	)
	if c.path != "-" {
		f, err := os.Open(c.path)
		if err != nil {
			return usageErr(err)
		}
		defer f.Close()
		if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
			return usageErr(fmt.Errorf("%s is not a regular file", c.path))
		}
		if stat, err = importer.Scan(f, format); err != nil {
			return fmt.Errorf("read %s: %w", c.path, err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		in, total = f, stat.Rows
	}

	ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	opt := importer.Options{
		Name: c.path, Format: format, Source: src, Event: c.event, Map: overrides,
		Version: readBuildInfo().Version,
	}
	opt.UserAgent = "capstan-import/" + opt.Version
	rep := newImportReporter(c.stderr, c.path, total, c.dryRun)
	opt.Invalid, opt.Progress = rep.invalid, rep.progress
	defer rep.stop()

	var sum importer.Summary
	if c.dryRun {
		out := bufio.NewWriterSize(c.stdout, 64<<10)
		opt.DryRun = func(doc []byte) error {
			out.Write(doc)
			return out.WriteByte('\n')
		}
		sum, err = importer.Run(ctx, in, opt)
		if ferr := out.Flush(); err == nil && ferr != nil {
			err = ferr
		}
	} else {
		sum, err = c.store(ctx, cfg, in, stat, opt)
	}
	rep.stop()
	return c.finish(sum, err, rep)
}

// store runs the import into the configured engine: a running capstan's
// (through its local port), the data directory's own, or the cluster.
func (c *importCmd) store(ctx context.Context, cfg *config.Config, in io.Reader, stat importer.Stat, opt importer.Options) (importer.Summary, error) {
	log := stderrLogger()
	eng, err := stream.Attach(ctx, engineConfig(cfg), log)
	if err != nil {
		return importer.Summary{}, err
	}
	defer eng.Close()
	dd, err := toolDedup(ctx, eng, cfg, log)
	if err != nil {
		return importer.Summary{}, err
	}
	if dd != nil {
		defer dd.Close()
	}
	w, err := stream.NewWriter(eng, stream.WriterConfig{
		MaxBatch: cfg.Engine.GroupCommit.MaxEvents,
		Linger:   cfg.Engine.GroupCommit.Linger.D(),
		Inflight: cfg.Engine.GroupCommit.Inflight,
		Dedup:    dd,
	}, log)
	if err != nil {
		return importer.Summary{}, err
	}
	wctx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { _ = w.Run(wctx) })
	defer func() { stopWriter(); wg.Wait() }()
	opt.Store = w
	if c.path != "-" {
		state, err := eng.KV(ctx, stream.StateKV, 0)
		if err != nil {
			return importer.Summary{}, err
		}
		opt.Checkpoints = importer.KVCheckpoints{KV: state}
		opt.Key = importer.ResumeKey(opt.Source, stat.SHA256)
	}
	return importer.Run(ctx, in, opt)
}

// finish prints the summary and turns the outcome into the exit code.
func (c *importCmd) finish(sum importer.Summary, err error, rep *importReporter) error {
	var ue *importer.UsageError
	if errors.As(err, &ue) {
		return usageErr(err)
	}
	fmt.Fprintln(c.stderr, summaryLine(c.path, sum))
	switch {
	case errors.Is(err, importer.ErrInterrupted):
		return fmt.Errorf("%w; run the same command again to continue", err)
	case err != nil:
		return err
	case sum.Invalid > 0:
		return &exitError{code: exitInvalid, err: errors.New("")}
	}
	return nil
}

// summaryLine is the closing line: read, stored, duplicates, invalid by
// reason.
func summaryLine(name string, s importer.Summary) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d rows read", name, s.Rows)
	if s.DryRun {
		fmt.Fprintf(&b, ", %d would be stored (dry run)", s.Stored)
	} else {
		fmt.Fprintf(&b, ", %d stored, %d duplicates", s.Stored, s.Duplicates)
		if s.Resumed > 0 {
			fmt.Fprintf(&b, ", %d already imported by an earlier run", s.Resumed)
		}
	}
	fmt.Fprintf(&b, ", %d invalid", s.Invalid)
	if s.Invalid > 0 {
		reasons := make([]string, 0, len(s.ByReason))
		for r := range s.ByReason {
			reasons = append(reasons, r)
		}
		sort.Slice(reasons, func(i, j int) bool {
			if s.ByReason[reasons[i]] != s.ByReason[reasons[j]] {
				return s.ByReason[reasons[i]] > s.ByReason[reasons[j]]
			}
			return reasons[i] < reasons[j]
		})
		for i, r := range reasons {
			reasons[i] = fmt.Sprintf("%d %s", s.ByReason[r], r)
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(reasons, ", "))
	}
	return b.String()
}

// fileFormat is --format, or the one the file's extension says.
func (c *importCmd) fileFormat() (importer.Format, error) {
	if c.format != "" {
		return importer.ParseFormat(c.format)
	}
	if c.path == "-" {
		return "", errors.New("reading standard input needs --format csv or --format jsonl")
	}
	f, ok := importer.FormatOf(c.path)
	if !ok {
		return "", fmt.Errorf("%s: unknown extension; name the file .csv or .jsonl, or give --format csv|jsonl", c.path)
	}
	return f, nil
}

// importSource returns the source to import under: name, which must be
// configured, or the only configured source.
func importSource(cfg *config.Config, name string) (string, error) {
	names := make([]string, 0, len(cfg.Sources))
	for _, s := range cfg.Sources {
		if s.Name == name {
			return name, nil
		}
		names = append(names, s.Name)
	}
	switch {
	case name != "":
		return "", fmt.Errorf("--source %q is not a configured source (sources: %s)", name, strings.Join(names, ", "))
	case len(names) == 1:
		return names[0], nil
	case len(names) == 0:
		return "", errors.New("the configuration has no sources: add one for the imported events")
	}
	return "", fmt.Errorf("--source is required: the configuration has several sources (%s)", strings.Join(names, ", "))
}

// importReporter shows an import's progress on stderr: a progress bar on a
// terminal, else a line every few seconds; and the invalid rows, one a
// line. It is safe for concurrent use.
type importReporter struct {
	mu     sync.Mutex
	w      io.Writer
	name   string
	total  int
	dryRun bool
	bar    *progressbar.ProgressBar // nil when not a terminal
	start  time.Time
	last   time.Time // of the last plain line
	every  time.Duration
	done   bool
}

func newImportReporter(w io.Writer, name string, total int, dryRun bool) *importReporter {
	r := &importReporter{w: w, name: name, total: total, dryRun: dryRun, start: time.Now(), every: 5 * time.Second}
	r.last = r.start
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		r.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("importing "+name),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("rows"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionFullWidth(),
		)
	}
	return r
}

// invalid prints one invalid row.
func (r *importReporter) invalid(e importer.RowError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bar != nil {
		_ = r.bar.Clear()
	}
	fmt.Fprintln(r.w, e.Error())
}

// progress shows how far the import got.
func (r *importReporter) progress(p importer.Progress) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return
	}
	if r.bar != nil {
		_ = r.bar.Set(p.Rows)
		return
	}
	now := time.Now()
	if now.Sub(r.last) < r.every {
		return
	}
	r.last = now
	rate := float64(p.Rows) / now.Sub(r.start).Seconds()
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d", r.name, p.Rows)
	if r.total > 0 {
		fmt.Fprintf(&b, "/%d rows (%.0f%%)", r.total, 100*float64(p.Rows)/float64(r.total))
	} else {
		b.WriteString(" rows")
	}
	fmt.Fprintf(&b, ", %.0f rows/s", rate)
	if r.total > 0 && rate > 0 && p.Rows < r.total {
		fmt.Fprintf(&b, ", %s left", (time.Duration(float64(r.total-p.Rows)/rate) * time.Second).Round(time.Second))
	}
	if r.dryRun {
		fmt.Fprintf(&b, "; %d valid, %d invalid", p.Stored, p.Invalid)
	} else {
		fmt.Fprintf(&b, "; %d stored, %d duplicates, %d already imported, %d invalid", p.Stored, p.Duplicates, p.Resumed, p.Invalid)
	}
	fmt.Fprintln(r.w, b.String())
}

// stop removes the progress bar.
func (r *importReporter) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return
	}
	r.done = true
	if r.bar != nil {
		_ = r.bar.Finish()
		_ = r.bar.Clear()
	}
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/stream"
)

func newEventsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Inspect the stored events",
		Long:  "Inspect the events stored in the EVENTS stream.",
	}
	cmd.AddCommand(newEventsTailCmd())
	return cmd
}

func newEventsTailCmd() *cobra.Command {
	var (
		cfgPath string
		since   time.Duration
		asJSON  bool
		follow  bool
		source  string
	)
	cmd := &cobra.Command{
		Use:   "tail --config FILE [--since DURATION] [--json] [-f]",
		Short: "Print stored events",
		Long: `Print the events stored in the EVENTS stream, oldest first, then exit (or,
with -f, keep printing new ones). It works while capstan serve is running
(through the embedded engine's local port) and when it is not (it opens the
data directory itself), and against an external NATS cluster.

With --json each line is {"pos","seq","subject","source","type","storedAt",
"event"}, where pos is the event's position "seq:index" (events stored
together share the stream sequence seq of their segment; the console's event
URLs take pos) and event is the stored document exactly as kept.

Duplicates: with the embedded engine a duplicate (same source and
messageId within engine.dedup.window, in one request or across requests) is
never stored, so tail never shows one. With an external NATS cluster two
replicas can both store the same event before either has seen the other's;
delivery then skips the later copy in stream order. tail marks that copy
"duplicate of <pos>" (in --json: "duplicateOf": "<pos>", the position of the
copy that is delivered), asking a running replica's de-duplication index
through the cluster; when none answers it says so on stderr once and prints
the events unmarked.`,
		Example: `  capstan events tail --config capstan.yaml --since 10m
  capstan events tail --config capstan.yaml --json | jq .event.messageId
  capstan events tail --config capstan.yaml -f --source website`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if since < 0 {
				return usageErr(fmt.Errorf("--since must not be negative"))
			}
			return withEngine(cmd, cfgPath, func(ctx context.Context, _ *config.Config, eng *stream.Engine) error {
				opt := stream.ReadOptions{Follow: follow, Source: source, MarkDuplicates: true}
				if since > 0 {
					opt.Since = time.Now().Add(-since)
				}
				out := newTailWriter(cmd.OutOrStdout(), tailFlushDelay)
				err := eng.ReadEvents(ctx, opt, func(ev stream.Stored) error {
					return printEvent(out, ev, asJSON)
				})
				if ferr := out.Close(); err == nil || err == context.Canceled {
					err = ferr
				}
				if err == context.Canceled {
					return nil
				}
				return err
			})
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "configuration file (YAML)")
	cmd.Flags().DurationVar(&since, "since", 0, "only events stored in this last period (e.g. 10m, 24h); default all")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per line")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events until interrupted")
	cmd.Flags().StringVar(&source, "source", "", "only events of this source")
	return cmd
}

// tailFlushDelay is how long a line tail printed may wait in its buffer.
const tailFlushDelay = 100 * time.Millisecond

// tailWriter buffers what tail prints and writes it out when the buffer
// fills, at the latest delay after a line was buffered (-f: new events
// show at once), and at Close. Written straight to stdout, every event was
// a write of its own: tail --json over 4-6 M events, piped to wc -l,
// took about 5 minutes (bench/ingest.sh's durability check).
type tailWriter struct {
	mu      sync.Mutex
	w       *bufio.Writer
	delay   time.Duration
	timer   *time.Timer
	pending bool  // a flush is due: timer runs
	err     error // the first write's error: later writes return it
}

func newTailWriter(w io.Writer, delay time.Duration) *tailWriter {
	t := &tailWriter{w: bufio.NewWriterSize(w, 64<<10), delay: delay}
	t.timer = time.AfterFunc(time.Hour, t.flushDue)
	t.timer.Stop()
	return t
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err != nil {
		return 0, t.err
	}
	n, err := t.w.Write(p)
	if err != nil {
		t.err = err
		return n, err
	}
	if !t.pending && t.w.Buffered() > 0 {
		t.pending = true
		t.timer.Reset(t.delay)
	}
	return n, nil
}

func (t *tailWriter) flushDue() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending = false
	if t.err == nil {
		t.err = t.w.Flush()
	}
}

// Close writes out what is buffered.
func (t *tailWriter) Close() error {
	t.timer.Stop()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err == nil {
		t.err = t.w.Flush()
	}
	return t.err
}

func printEvent(w io.Writer, m stream.Stored, asJSON bool) error {
	if asJSON {
		line := struct {
			Pos      string          `json:"pos"`
			Seq      uint64          `json:"seq"`
			Subject  string          `json:"subject"` // events.<source>.seg, or events.<source>.<type> before segments
			Source   string          `json:"source"`
			Type     string          `json:"type"`
			StoredAt time.Time       `json:"storedAt"`
			Event    json.RawMessage `json:"event"`
			// DuplicateOf: the position of the earlier copy delivery
			// delivers instead of this one (cluster mode only).
			DuplicateOf string `json:"duplicateOf,omitempty"`
		}{m.Pos().String(), m.Seq, m.Subject, m.Source, m.Type, m.StoredAt.UTC(), m.Doc, ""}
		if m.DuplicateOf != 0 {
			line.DuplicateOf = m.DuplicateOf.String()
		}
		// The stored document is printed as kept: no HTML escaping of & < >.
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(line); err != nil {
			// A document that is not JSON would be a bug; show it, don't stop.
			fmt.Fprintf(os.Stderr, "capstan: event %s cannot be printed: %v\n", m.Pos(), err)
		}
		return nil
	}
	var ev struct {
		Type        string `json:"type"`
		Event       string `json:"event"`
		Name        string `json:"name"`
		MessageID   string `json:"messageId"`
		Timestamp   string `json:"timestamp"`
		UserID      any    `json:"userId"`
		AnonymousID any    `json:"anonymousId"`
	}
	_ = json.Unmarshal(m.Doc, &ev)
	what := ev.Event
	if what == "" {
		what = ev.Name
	}
	dup := ""
	if m.DuplicateOf != 0 {
		dup = "  duplicate of " + m.DuplicateOf.String()
	}
	_, err := fmt.Fprintf(w, "%8s  %s  %-8s %-8s %-28q messageId=%s%s\n", m.Pos(), ev.Timestamp, m.Source, ev.Type, what, ev.MessageID, dup)
	return err
}

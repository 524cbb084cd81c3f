package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Result is the outcome of appending one event.
type Result struct {
	// Seq is the stream sequence of the message that holds the event (0
	// for duplicates and failures), Index the event's index in it.
	Seq   uint64
	Index int
	// Duplicate is true when the event's de-duplication key was already
	// stored within the de-duplication window, or earlier in the same call.
	Duplicate bool
	// Err is set when the event was not stored.
	Err error
}

// Pos is the stored event's position; 0 for duplicates and failures.
func (r Result) Pos() Pos {
	if r.Seq == 0 {
		return 0
	}
	return MakePos(r.Seq, r.Index)
}

// ErrOverloaded means the append queue is full: callers should answer 503.
var ErrOverloaded = errors.New("event store overloaded")

// ErrWritesRefused is Writer.Ready's answer while the store refuses writes:
// the last commit failed (a full stream or disk, a storage error, no
// acknowledgement) and no later one succeeded. The error wrapping it says
// why.
var ErrWritesRefused = errors.New("the event store refuses writes")

// WriterConfig tunes group commit. Zero fields take the defaults.
type WriterConfig struct {
	// MaxBatch is the most events in one commit (one atomic batch, one
	// fsync), 1 to 1000. Default 1000.
	MaxBatch int
	// Linger is how long a commit may wait for more events. Default 0.
	Linger time.Duration
	// Inflight is the number of commits written concurrently. Default 2.
	Inflight int
	// MaxQueued is the most events waiting; beyond it Append fails with
	// ErrOverloaded. Default 50000.
	MaxQueued int
	// AckTimeout bounds one commit's write. Default 10s.
	AckTimeout time.Duration
	// RetestAfter is how long Ready reports a refused commit when no later
	// commit succeeded. Then Ready says ready again, so that a load balancer
	// sends traffic that retests the store (clients retry what gets 503); a
	// store still refusing makes the next commit fail and Ready report it
	// again. Default 30s.
	RetestAfter time.Duration
	// Dedup, when set, is the per-event de-duplication index (OpenDedup):
	// an event whose (source, messageId) it holds within its window is
	// answered Duplicate and not stored. Without it only the events of
	// the commits this Writer has in flight are compared.
	Dedup *Dedup
	// Registry, when set, receives the writer's metrics: events per
	// commit, commit time and events waiting (see newAppenderMetrics).
	Registry prometheus.Registerer
}

// Writer is the one append path of EVENTS: every producer (HTTP ingest, DLQ
// replay, import) hands it normalised events, and it alone decides how they
// are stored (one segment per commit and source, segment.go; per-event
// de-duplication against WriterConfig.Dedup, commit.go). It appends
// them durably with group commit: the events of concurrent Append calls are
// written together and made durable by one fsync, and Append returns only
// once they are (see appender). It is safe for concurrent use; Run must be
// running for Append to make progress.
type Writer struct {
	app *appender
}

// NewWriter returns a Writer appending to e's EVENTS stream. It starts
// nothing: Run does.
func NewWriter(e *Engine, cfg WriterConfig, log *slog.Logger) (*Writer, error) {
	var errs []error
	if e == nil {
		errs = append(errs, errors.New("no engine"))
	}
	if cfg.MaxBatch < 0 || cfg.MaxBatch > 1000 {
		errs = append(errs, fmt.Errorf("max batch must be between 1 and 1000, got %d", cfg.MaxBatch))
	}
	if cfg.Linger < 0 {
		errs = append(errs, fmt.Errorf("linger must not be negative, got %s", cfg.Linger))
	}
	if cfg.Inflight < 0 {
		errs = append(errs, fmt.Errorf("inflight must not be negative, got %d", cfg.Inflight))
	}
	if cfg.MaxQueued < 0 {
		errs = append(errs, fmt.Errorf("max queued must not be negative, got %d", cfg.MaxQueued))
	}
	if cfg.AckTimeout < 0 {
		errs = append(errs, fmt.Errorf("ack timeout must not be negative, got %s", cfg.AckTimeout))
	}
	if cfg.RetestAfter < 0 {
		errs = append(errs, fmt.Errorf("retest after must not be negative, got %s", cfg.RetestAfter))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("event writer: %w", err)
	}
	return &Writer{app: newAppender(e, cfg, log)}, nil
}

// Append stores evs and returns one Result per event once every event is
// durable (or failed). Events of one call are stored in order. An event
// that cannot be stored as given (a source or type that cannot be a subject
// token, a DedupID with control characters) gets an error Result and the
// others are stored. Append returns ErrOverloaded without storing anything when
// the queue is full, and ctx's error if ctx ends first: events still
// queued then are not stored, those a commit has taken may be (a retry is
// de-duplicated).
//
// Once Append returns, whatever it returns, the writer reads nothing of
// evs: neither the slice nor any event's Doc. The caller may reuse or
// overwrite that memory at once (ingest hands documents built in reused
// buffers). A call whose context ends while a commit holds its events
// returns once that commit has built its segments from them, not after
// their write and sync (see appender.enqueue).
func (w *Writer) Append(ctx context.Context, evs []Event) ([]Result, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	var (
		ok  = evs
		bad []Result // non-nil once an event is refused
		idx []int    // with bad: the event of each one stored
	)
	for i := range evs {
		if err := checkEvent(&evs[i]); err != nil {
			if bad == nil {
				bad = make([]Result, len(evs))
				for j := range i {
					idx = append(idx, j)
				}
			}
			bad[i].Err = err
			continue
		}
		if bad != nil {
			idx = append(idx, i)
		}
	}
	if bad != nil {
		ok = make([]Event, len(idx))
		for k, i := range idx {
			ok[k] = evs[i]
		}
	}
	res, err := w.app.appendEvents(ctx, ok)
	if bad == nil || err != nil {
		return res, err
	}
	for k, r := range res {
		bad[idx[k]] = r
	}
	return bad, nil
}

// Ready reports whether events can be stored now: nil when the engine is
// connected with the EVENTS stream in place (Engine.Ready) and the last
// commit stored its events; an error wrapping ErrWritesRefused, with the
// store's reason, while the last commit failed and no later one succeeded
// (for at most WriterConfig.RetestAfter). A commit that wrote nothing (every
// event a duplicate within its group) changes nothing.
func (w *Writer) Ready(ctx context.Context) error {
	if err := w.app.eng.Ready(ctx); err != nil {
		return err
	}
	return w.app.refusal()
}

// Run writes queued events until ctx ends, then drains what is queued.
func (w *Writer) Run(ctx context.Context) error { return w.app.Run(ctx) }

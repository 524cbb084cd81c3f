package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/capstan-gw/capstan/internal/audit"
	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/importer"
	"github.com/capstan-gw/capstan/internal/stream"
)

// EngineDeadLetters is the DLQ of an engine, as `capstan serve` wires it:
// replays append through the server's event writer.
type EngineDeadLetters struct {
	Engine *stream.Engine
	Writer *stream.Writer
}

// List calls fn for each selected dead letter; a DLQFilter.Seq the DLQ
// does not hold is ErrNotFound.
func (q EngineDeadLetters) List(ctx context.Context, f delivery.DLQFilter, fn func(*delivery.DeadLetter) error) error {
	err := delivery.ListDeadLetters(ctx, q.Engine, f, fn)
	if errors.Is(err, delivery.ErrNoDeadLetter) {
		return fmt.Errorf("%w (%w)", err, ErrNotFound)
	}
	return err
}

// Replay puts the selected dead letters' events back for their destination.
func (q EngineDeadLetters) Replay(ctx context.Context, f delivery.DLQFilter) (int, error) {
	return delivery.ReplayDeadLetters(ctx, q.Engine, q.Writer, f)
}

// Count returns the dead letters held per destination and reason, from
// the DLQ stream's subject counts.
func (q EngineDeadLetters) Count(ctx context.Context) (map[[2]string]uint64, error) {
	return q.Engine.DeadLetterCounts(ctx)
}

// EngineEvents reads the EVENTS stream of an engine through its one read
// path.
type EngineEvents struct{ Engine *stream.Engine }

// ReadEvents calls fn for each event q selects, oldest first.
func (e EngineEvents) ReadEvents(ctx context.Context, q EventQuery, fn func(StoredEvent) error) error {
	opt := stream.ReadOptions{Source: q.Source, Follow: q.Follow, MarkDuplicates: true}
	if q.After > 0 {
		opt.FromSeq = q.After.Seq() // FromSeq and Since do not go together
	} else {
		opt.Since = q.Since
	}
	return e.Engine.ReadEvents(ctx, opt, func(s stream.Stored) error {
		if s.StoredAt.Before(q.Since) || s.Pos() <= q.After {
			return nil
		}
		return fn(storedEvent(s))
	})
}

// storedEvent is s as the console shows it.
func storedEvent(s stream.Stored) StoredEvent {
	se := StoredEvent{Seq: s.Seq, Index: s.Index, Pos: s.Pos().String(), Source: s.Source, Type: s.Type, StoredAt: s.StoredAt.UTC(), Event: s.Doc}
	if s.DuplicateOf != 0 {
		se.DuplicateOf = s.DuplicateOf.String()
	}
	return se
}

// LastSeq returns the sequence of the last stored event (EventCursor).
func (e EngineEvents) LastSeq(ctx context.Context) (uint64, error) {
	return e.Engine.LastEventSeq(ctx)
}

// ReadRange calls fn for each event stored at sequences from to upTo,
// oldest first, in one request (EventRanger), duplicates marked as
// ReadEvents marks them; ErrNoRange on a NATS server that cannot.
func (e EngineEvents) ReadRange(ctx context.Context, from, upTo uint64, fn func(StoredEvent) error) error {
	err := e.Engine.ReadEventRange(ctx, from, upTo, func(s stream.Stored) error {
		return fn(storedEvent(s))
	})
	if errors.Is(err, stream.ErrNoBatchGet) {
		return fmt.Errorf("%w (%w)", ErrNoRange, err)
	}
	return err
}

// EngineAudit reads the audit log of the engine (internal/audit).
type EngineAudit struct {
	Engine *stream.Engine
}

// Read implements AuditLog.
func (a EngineAudit) Read(ctx context.Context, since time.Time, before uint64, limit int) ([]audit.Record, error) {
	return audit.ReadBefore(ctx, a.Engine, since, before, limit)
}

// Append implements AuditLog.
func (a EngineAudit) Append(ctx context.Context, rec audit.Record) error {
	return audit.Append(ctx, a.Engine, rec)
}

// EngineExplainer explains stored events with the running destinations
// (delivery.ExplainEvent).
type EngineExplainer struct {
	Engine  *stream.Engine
	Runners []*delivery.Runner
}

// Explain implements Explainer.
func (x EngineExplainer) Explain(ctx context.Context, pos stream.Pos) (*delivery.Explanation, error) {
	return delivery.ExplainEvent(ctx, x.Engine, x.Runners, pos)
}

// Destinations implements Explainer.
func (x EngineExplainer) Destinations() []delivery.DestinationInfo {
	out := make([]delivery.DestinationInfo, 0, len(x.Runners))
	for _, r := range x.Runners {
		out = append(out, r.Info())
	}
	return out
}

// EngineImporter runs the console's imports as `capstan serve` wires it:
// through the server's event writer (the append path of HTTP ingest), with
// the resume points in the engine's state bucket, as `capstan import`
// keeps them.
type EngineImporter struct {
	Engine *stream.Engine
	Writer *stream.Writer
	// SourceNames are the configured sources.
	SourceNames []string
	// Version is capstan's version, for the events' context.library and
	// User-Agent.
	Version string
}

// Sources implements Importer.
func (e EngineImporter) Sources() []string { return e.SourceNames }

// Import implements Importer.
func (e EngineImporter) Import(ctx context.Context, in io.Reader, opt importer.Options) (importer.Summary, error) {
	opt.Version = e.Version
	opt.UserAgent = "capstan-console-import"
	if e.Version != "" {
		opt.UserAgent += "/" + e.Version
	}
	if opt.DryRun == nil {
		opt.Store = e.Writer
		if opt.Key != "" {
			kv, err := e.Engine.KV(ctx, stream.StateKV, 0)
			if err != nil {
				return importer.Summary{}, fmt.Errorf("state bucket: %w", err)
			}
			opt.Checkpoints = importer.KVCheckpoints{KV: kv}
		}
	}
	return importer.Run(ctx, in, opt)
}

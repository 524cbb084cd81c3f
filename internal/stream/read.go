package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ReadOptions select what ReadEvents returns. At most one of Since and
// FromSeq may be set.
type ReadOptions struct {
	// Since starts at events stored at or after this time; zero means the
	// beginning of the stream.
	Since time.Time
	// FromSeq starts at this stream sequence; 0 means the beginning.
	FromSeq uint64
	// Source selects one source's events; "" means every source.
	Source string
	// Follow keeps waiting for new events until ctx ends; otherwise
	// ReadEvents returns once it has caught up with the stream's last event.
	Follow bool
	// MarkDuplicates sets Stored.DuplicateOf on each event that consumers
	// skip as a duplicate of an earlier one: in cluster mode, from this
	// process's index when it follows the stream, else from a running
	// replica's (see dupmark.go). With the embedded engine duplicates are
	// never stored and nothing is marked.
	MarkDuplicates bool
}

// ReadEvents calls fn for each stored event, oldest first, with its stream
// position (Stored.Seq and Index; a segment's events share its Seq). It is the ordered, unacknowledged read of tools and the
// console: it leaves no trace on the stream. It stops at the first error fn
// returns, and returns ctx's error when ctx ends first.
func (e *Engine) ReadEvents(ctx context.Context, opt ReadOptions, fn func(Stored) error) error {
	if !opt.Since.IsZero() && opt.FromSeq != 0 {
		return errors.New("read events: give a start time or a sequence, not both")
	}
	spec := readSpec{since: opt.Since, fromSeq: opt.FromSeq, follow: opt.Follow}
	if opt.Source != "" {
		if !validToken(opt.Source) {
			return fmt.Errorf("read events: %q is not a source name", opt.Source)
		}
		spec.subject = EventsSubject + "." + opt.Source + ".>"
	}
	var dec msgDecoder // one for the read: messages come one at a time
	if !opt.MarkDuplicates {
		return e.read(ctx, EventsStream, spec, func(m rawMessage) error {
			return e.decodeEvents(&dec, m, fn)
		})
	}
	var (
		mk  marker
		evs []Stored
	)
	return e.read(ctx, EventsStream, spec, func(m rawMessage) error {
		evs = evs[:0]
		if err := e.decodeEvents(&dec, m, func(s Stored) error { evs = append(evs, s); return nil }); err != nil {
			return err
		}
		e.markDuplicates(ctx, m.Seq, evs, &mk)
		for _, s := range evs {
			if err := fn(s); err != nil {
				return err
			}
		}
		return nil
	})
}

// decodeEvents calls fn for each event of m, decoded with dec. A segment
// that does not decode is logged and skipped: one damaged message must not
// stop every reader.
func (e *Engine) decodeEvents(dec *msgDecoder, m rawMessage, fn func(Stored) error) error {
	var fnErr error
	err := dec.each(m.Seq, m.Subject, m.Header, m.Data, m.Time, func(s Stored) error {
		fnErr = fn(s)
		return fnErr
	})
	if err != nil && fnErr == nil {
		e.log.Error("a stored event message does not decode; skipped", "seq", m.Seq, "error", err)
		return nil
	}
	return err
}

// readPullBytes is how many bytes of messages a read asks the server for
// at once (see read).
const readPullBytes = 16 << 20

// rawMessage is one stored message, as read.
type rawMessage struct {
	Seq     uint64
	Subject string
	Header  nats.Header
	Data    []byte
	Time    time.Time // when the stream stored it
}

// readSpec selects what read returns.
type readSpec struct {
	since   time.Time // zero: from the beginning (or fromSeq)
	fromSeq uint64    // 0: from the beginning (or since)
	subject string    // filter, wildcards allowed; "" for all
	follow  bool      // wait for new messages until ctx ends
}

// read calls fn for each message of stream, oldest first. It stops at the
// first error fn returns.
func (e *Engine) read(ctx context.Context, stream string, spec readSpec, fn func(rawMessage) error) error {
	s, err := e.js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	last := info.State.LastSeq
	if !spec.follow && (info.State.Msgs == 0 || last == 0) {
		return nil
	}
	// The server removes an ordered consumer left idle after
	// InactiveThreshold (nats.go's default: 5 minutes); read deletes its own
	// when it returns, so this only bounds what a process that died leaves.
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy, InactiveThreshold: 30 * time.Second}
	switch {
	case !spec.since.IsZero():
		since := spec.since
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &since
	case spec.fromSeq != 0:
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = spec.fromSeq
	}
	if spec.subject != "" {
		cfg.FilterSubjects = []string{spec.subject}
	}
	cons, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	// nats.go does not delete an ordered consumer when its read stops, and
	// the server signals every consumer of a stream for each message
	// stored: a console polling every 200 ms left ~1,500 behind, which cost
	// ingest up to a quarter of its CPU. Delete it once the read is done.
	defer func() {
		if info := cons.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = s.DeleteConsumer(dctx, info.Name) // else it goes after InactiveThreshold
		}
	}()
	// Pull by bytes, not nats.go's default 500 messages: 500 segments of
	// ~0.5 MB overran the subscription's pending limit (64 MB) and the
	// read stalled until the ordered consumer reset, so reading 1.9 M
	// events (3,601 segments) took 110 s instead of 9 s. A pull must hold
	// the largest message, else it never comes.
	it, err := cons.Messages(jetstream.PullMaxBytes(max(readPullBytes, 2*int(e.nc.MaxPayload()))))
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	defer it.Stop()
	defer context.AfterFunc(ctx, it.Stop)()
	if !spec.follow {
		// Anything to read at all? A filter or start may leave nothing,
		// and Next would then wait for a message that never comes.
		ci, err := cons.Info(ctx)
		if err != nil {
			return fmt.Errorf("read %s: %w", stream, err)
		}
		if ci.NumPending == 0 {
			return nil
		}
	}
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("read %s: %w", stream, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("read %s: %w", stream, err)
		}
		msg := rawMessage{Seq: md.Sequence.Stream, Subject: m.Subject(), Header: m.Headers(), Data: m.Data(), Time: md.Timestamp}
		if err := fn(msg); err != nil {
			return err
		}
		if !spec.follow && md.NumPending == 0 {
			return nil
		}
	}
}

// LastEventSeq returns the sequence of the last event stored in EVENTS (0
// when none ever was): where a reader that samples the stream (the
// console's Live events) starts and how far it has to go.
func (e *Engine) LastEventSeq(ctx context.Context) (uint64, error) {
	s, err := e.js.Stream(ctx, EventsStream) // one request: it fetches the stream's info
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", EventsStream, err)
	}
	return s.CachedInfo().State.LastSeq, nil
}

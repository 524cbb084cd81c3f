package stream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/nats-io/nats.go/jetstream"
)

// DeleteEvents erases every stored event for which match returns true and
// returns how many it erased. It reads the whole EVENTS stream through the
// read path (O(retention): every stored event is read once), then erases
// the matching messages with JetStream's secure delete, which overwrites the
// message's data in the store rather than only marking it deleted, and
// makes the erasure durable (Sync). An event that is gone by the time it is
// erased (aged out) is not counted.
//
// A segment holding other events too is rewritten: its other events are
// stored as a new segment marked Capstan-Rewrite-Of (the old sequence),
// made durable, and then the old segment is erased. A consumer that had
// acknowledged every event up to the old segment skips the new one
// (Consumer.deliveries); otherwise its events are delivered (again, at
// least once).
func (e *Engine) DeleteEvents(ctx context.Context, match func(Stored) bool) (int, error) {
	var (
		seqs     []uint64
		counts   []int // events erased with seqs[i]
		rewrites []rewrite
	)
	err := e.read(ctx, EventsStream, readSpec{}, func(m rawMessage) error {
		var keep []Stored
		matched := 0
		err := decodeMessage(m.Seq, m.Subject, m.Header, m.Data, m.Time, func(s Stored) error {
			if match(s) {
				matched++
			} else {
				keep = append(keep, s)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("message %d: %w", m.Seq, err)
		}
		switch {
		case matched == 0:
		case len(keep) == 0:
			seqs, counts = append(seqs, m.Seq), append(counts, matched)
		default:
			rewrites = append(rewrites, rewrite{seq: m.Seq, subject: m.Subject, source: m.Header.Get(headerSource), keep: keep, erased: matched})
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("delete events: %w", err)
	}
	var floors map[string]uint64
	if len(rewrites) > 0 {
		if floors, err = e.ackFloors(ctx); err != nil {
			return 0, fmt.Errorf("delete events: %w", err)
		}
	}
	for _, rw := range rewrites {
		evs := make([]*Event, len(rw.keep))
		for i, s := range rw.keep {
			evs[i] = &Event{Source: s.Source, Type: s.Type, MessageID: s.MessageID, Doc: s.Doc, RequestID: s.RequestID,
				UserAgent: s.UserAgent, LiFatID: s.LiFatID, ReplayFor: s.ReplayFor, Trust: s.Trust, DedupID: s.DedupID}
		}
		data, version := e.segmentData(nil, encodeSegment(evs))
		h := segHeader(rw.source, version)
		h.Set(headerRewriteOf, strconv.FormatUint(rw.seq, 10))
		var handled []string
		for name, floor := range floors {
			if floor >= rw.seq {
				handled = append(handled, name)
			}
		}
		if len(handled) > 0 {
			slices.Sort(handled)
			h.Set(headerRewriteHandled, strings.Join(handled, " "))
		}
		if _, err := e.js.PublishMsg(ctx, &nats.Msg{Subject: rw.subject, Header: h, Data: data}); err != nil {
			return 0, fmt.Errorf("delete events: rewrite segment %d: %w", rw.seq, err)
		}
		seqs, counts = append(seqs, rw.seq), append(counts, rw.erased)
	}
	if len(rewrites) > 0 {
		if err := e.Sync(ctx, EventsStream); err != nil {
			return 0, fmt.Errorf("delete events: %w", err)
		}
	}
	return e.secureDeleteCounted(ctx, EventsStream, seqs, counts)
}

// headerRewriteOf marks a segment that replaces the segment at the given
// sequence without the events a privacy deletion erased; headerRewriteHandled
// names (separated by spaces) the durable consumers that had acknowledged
// every message up to that sequence when it was rewritten: they skip it.
const (
	headerRewriteOf      = "Capstan-Rewrite-Of"
	headerRewriteHandled = "Capstan-Rewrite-Handled"
)

// ackFloors returns the ack floor of every durable consumer of EVENTS.
func (e *Engine) ackFloors(ctx context.Context) (map[string]uint64, error) {
	s, err := e.js.Stream(ctx, EventsStream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", EventsStream, err)
	}
	floors := make(map[string]uint64)
	infos := s.ListConsumers(ctx)
	for ci := range infos.Info() {
		if ci.Config.Durable != "" {
			floors[ci.Config.Durable] = ci.AckFloor.Stream
		}
	}
	if err := infos.Err(); err != nil {
		return nil, fmt.Errorf("consumers of %s: %w", EventsStream, err)
	}
	return floors, nil
}

// rewrite is a segment to store again without some of its events.
type rewrite struct {
	seq             uint64
	subject, source string
	keep            []Stored
	erased          int
}

// DeleteDeadLetters erases every dead letter for which match returns true,
// as DeleteEvents does for events, and returns how many it erased.
func (e *Engine) DeleteDeadLetters(ctx context.Context, match func(DeadLetter) bool) (int, error) {
	var seqs []uint64
	spec := readSpec{subject: DLQSubject + ".>"}
	err := e.read(ctx, DLQStream, spec, func(m rawMessage) error {
		if match(decodeDeadLetter(m.Seq, m.Subject, m.Header, m.Data, m.Time)) {
			seqs = append(seqs, m.Seq)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("delete dead letters: %w", err)
	}
	return e.secureDelete(ctx, DLQStream, seqs)
}

// secureDelete erases the messages at seqs from stream and returns how many
// it erased; a sequence that holds no message (any more) is skipped.
func (e *Engine) secureDelete(ctx context.Context, stream string, seqs []uint64) (int, error) {
	return e.secureDeleteCounted(ctx, stream, seqs, nil)
}

// secureDeleteCounted is secureDelete counting counts[i] (nil: 1) for the
// message at seqs[i].
func (e *Engine) secureDeleteCounted(ctx context.Context, stream string, seqs []uint64, counts []int) (int, error) {
	if len(seqs) == 0 {
		return 0, nil
	}
	s, err := e.js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	n := 0
	for i, seq := range seqs {
		err := s.SecureDeleteMsg(ctx, seq)
		if err != nil {
			// JetStream reports a message that is not there as a failed
			// deletion (10057) rather than as not found: look.
			if _, gerr := s.GetMsg(ctx, seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
				continue
			}
			return n, fmt.Errorf("erase message %d of %s: %w", seq, stream, err)
		}
		if counts != nil {
			n += counts[i]
		} else {
			n++
		}
	}
	if err := e.Sync(ctx, stream); err != nil {
		return n, fmt.Errorf("erase from %s: %w", stream, err)
	}
	return n, nil
}

package stream

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// DeleteEvents erases every stored event for which match returns true and
// returns how many it erased. It reads the whole EVENTS stream through the
// read path (O(retention): every stored event is read once), then erases
// the matching messages with JetStream's secure delete, which overwrites the
// message's data in the store rather than only marking it deleted, and
// makes the erasure durable (Sync). An event that is gone by the time it is
// erased (aged out) is not counted.
func (e *Engine) DeleteEvents(ctx context.Context, match func(Stored) bool) (int, error) {
	var seqs []uint64
	err := e.read(ctx, EventsStream, readSpec{}, func(m rawMessage) error {
		if match(decodeStored(m.Seq, m.Subject, m.Header, m.Data, m.Time)) {
			seqs = append(seqs, m.Seq)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("delete events: %w", err)
	}
	return e.secureDelete(ctx, EventsStream, seqs)
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
	if len(seqs) == 0 {
		return 0, nil
	}
	s, err := e.js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	n := 0
	for _, seq := range seqs {
		err := s.SecureDeleteMsg(ctx, seq)
		if err != nil {
			// JetStream reports a message that is not there as a failed
			// deletion (10057) rather than as not found: look.
			if _, gerr := s.GetMsg(ctx, seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
				continue
			}
			return n, fmt.Errorf("erase message %d of %s: %w", seq, stream, err)
		}
		n++
	}
	if err := e.Sync(ctx, stream); err != nil {
		return n, fmt.Errorf("erase from %s: %w", stream, err)
	}
	return n, nil
}

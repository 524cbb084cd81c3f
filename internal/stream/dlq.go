package stream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrNotFound means the stream holds no message at the sequence asked for.
var ErrNotFound = errors.New("not found")

// DeadLetter is one entry of the DLQ stream: a document that could not be
// delivered to a destination, stored on dlq.<destination>.<reason>.
type DeadLetter struct {
	// Seq is the DLQ stream sequence (set when read).
	Seq uint64
	// Destination and Reason say where the document could not go and why.
	Destination, Reason string
	// Source is the source of the event the dead letter is about.
	Source string
	// StoredAt is when the stream stored it (set when read).
	StoredAt time.Time
	// Doc is the dead letter's JSON document.
	Doc []byte
}

// DeadLetterFilter selects dead letters. Zero fields select everything.
type DeadLetterFilter struct {
	Destination string
	Reason      string
	// Since selects dead letters stored at or after this time.
	Since time.Time
}

// AppendDeadLetter stores dl in the DLQ stream, de-duplicated on id ("" for
// none), and returns once it is durable.
func (e *Engine) AppendDeadLetter(ctx context.Context, dl DeadLetter, id string) error {
	if !validToken(dl.Destination) || !validToken(dl.Reason) {
		return fmt.Errorf("append to %s: destination %q and reason %q must be subject tokens", DLQStream, dl.Destination, dl.Reason)
	}
	m := &nats.Msg{Subject: DLQSubject + "." + dl.Destination + "." + dl.Reason, Data: dl.Doc, Header: nats.Header{}}
	m.Header.Set(headerSource, dl.Source)
	var opts []jetstream.PublishOpt
	if id != "" {
		opts = append(opts, jetstream.WithMsgID(id))
	}
	if _, err := e.js.PublishMsg(ctx, m, opts...); err != nil {
		return fmt.Errorf("append to %s: %w", DLQStream, err)
	}
	if err := e.Sync(ctx, DLQStream); err != nil {
		return fmt.Errorf("append to %s: %w", DLQStream, err)
	}
	return nil
}

// ReadDeadLetters calls fn for each selected dead letter, oldest first. It
// stops at the first error fn returns.
func (e *Engine) ReadDeadLetters(ctx context.Context, f DeadLetterFilter, fn func(DeadLetter) error) error {
	d, r := f.Destination, f.Reason
	if d == "" {
		d = "*"
	}
	if r == "" {
		r = "*"
	}
	spec := readSpec{since: f.Since, subject: DLQSubject + "." + d + "." + r}
	return e.read(ctx, DLQStream, spec, func(m rawMessage) error {
		return fn(decodeDeadLetter(m.Seq, m.Subject, m.Header, m.Data, m.Time))
	})
}

// DeadLetterAt returns the dead letter at seq, or ErrNotFound.
func (e *Engine) DeadLetterAt(ctx context.Context, seq uint64) (DeadLetter, error) {
	s, err := e.js.Stream(ctx, DLQStream)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("stream %s: %w", DLQStream, err)
	}
	raw, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return DeadLetter{}, fmt.Errorf("dead letter %d: %w", seq, ErrNotFound)
	}
	if err != nil {
		return DeadLetter{}, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	return decodeDeadLetter(raw.Sequence, raw.Subject, raw.Header, raw.Data, raw.Time), nil
}

// RemoveDeadLetters deletes the dead letters at seqs, in order, and returns
// how many are gone: a sequence that holds none counts as removed. It
// stops at the first failure.
func (e *Engine) RemoveDeadLetters(ctx context.Context, seqs []uint64) (int, error) {
	if len(seqs) == 0 {
		return 0, nil
	}
	s, err := e.js.Stream(ctx, DLQStream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", DLQStream, err)
	}
	for i, seq := range seqs {
		err := s.DeleteMsg(ctx, seq)
		if err == nil {
			continue
		}
		// JetStream reports a message that is not there as a failed
		// deletion (10057) rather than as not found: look.
		if _, gerr := s.GetMsg(ctx, seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
			continue
		}
		return i, fmt.Errorf("remove dead letter %d: %w", seq, err)
	}
	return len(seqs), nil
}

func decodeDeadLetter(seq uint64, subj string, h nats.Header, data []byte, at time.Time) DeadLetter {
	dl := DeadLetter{Seq: seq, Source: h.Get(headerSource), StoredAt: at, Doc: data}
	rest := strings.TrimPrefix(subj, DLQSubject+".")
	dl.Destination, dl.Reason, _ = strings.Cut(rest, ".")
	return dl
}

// DeadLetterCounts returns how many dead letters the DLQ holds per
// destination and reason, from the stream's per-subject counts: no dead
// letter is read, so it is cheap enough to poll.
func (e *Engine) DeadLetterCounts(ctx context.Context) (map[[2]string]uint64, error) {
	s, err := e.js.Stream(ctx, DLQStream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", DLQStream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(DLQSubject+".>"))
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", DLQStream, err)
	}
	out := make(map[[2]string]uint64, len(info.State.Subjects))
	for subj, n := range info.State.Subjects {
		parts := strings.Split(subj, ".")
		if len(parts) != 3 || n == 0 {
			continue
		}
		out[[2]string{parts[1], parts[2]}] += n
	}
	return out, nil
}

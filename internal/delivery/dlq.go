package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/stream"
)

// Dead-letter reasons: the last part of a DLQ subject (dlq.<destination>.<reason>).
const (
	ReasonInvalid  = "invalid"  // the event's mapping output failed local validation
	ReasonRejected = "rejected" // LinkedIn refused it (4xx, or named in a 422/400 batch)
	ReasonExpired  = "expired"  // it could not be delivered before leaving LinkedIn's 90-day window
	ReasonUnusable = "unusable" // the stored event could not be read
)

// HeaderReplayFor marks an event re-published by `capstan dlq replay`: only
// the named destination processes it.
const HeaderReplayFor = "Capstan-Replay-For"

// DeadLetter is one conversion that did not reach LinkedIn, kept in the DLQ
// stream with everything needed to understand and replay it.
type DeadLetter struct {
	// Seq is the DLQ stream sequence (set when read back).
	Seq         uint64    `json:"seq,omitempty"`
	At          time.Time `json:"at"`
	Destination string    `json:"destination"`
	Mapping     string    `json:"mapping,omitempty"`
	Reason      string    `json:"reason"`
	// Status, Code and Message are LinkedIn's answer (or capstan's own
	// validation for ReasonInvalid).
	Status  int    `json:"status,omitempty"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
	// Errors are LinkedIn's per-field errors for this element, or capstan's.
	Errors any `json:"errors,omitempty"`
	// RequestID is LinkedIn's X-LI-UUID, for support tickets.
	RequestID string `json:"requestId,omitempty"`
	Attempts  int    `json:"attempts,omitempty"`
	// Payload is the conversion as sent (absent for ReasonInvalid).
	Payload json.RawMessage `json:"payload,omitempty"`
	// The original event and where it came from.
	Source    string          `json:"source"`
	EventSeq  uint64          `json:"eventSeq"`
	MessageID string          `json:"messageId,omitempty"`
	Event     json.RawMessage `json:"event"`
}

// writeDeadLetter stores dl durably. The message id makes a write repeated
// after a crash (event redelivered) a no-op, while a failure after a replay
// (another EventSeq) is kept.
func writeDeadLetter(ctx context.Context, eng *stream.Engine, dl *DeadLetter) error {
	b, err := json.Marshal(dl)
	if err != nil {
		return fmt.Errorf("encode dead letter: %w", err)
	}
	m := &nats.Msg{Subject: stream.DLQSubject + "." + dl.Destination + "." + dl.Reason, Data: b, Header: nats.Header{}}
	m.Header.Set(event.HeaderSource, dl.Source)
	id := fmt.Sprintf("%s:%s:%d", dl.Destination, dl.Mapping, dl.EventSeq)
	if _, err := eng.JetStream().PublishMsg(ctx, m, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("write dead letter: %w", err)
	}
	// The event is acknowledged once this returns: the dead letter must be
	// on disk first.
	if err := eng.Sync(ctx, stream.DLQStream); err != nil {
		return fmt.Errorf("write dead letter: %w", err)
	}
	return nil
}

// DLQFilter selects dead letters. Zero fields select everything.
type DLQFilter struct {
	Destination string
	Reason      string
	Since       time.Time
	Seq         uint64 // one entry
}

func (f DLQFilter) subject() string {
	d, r := f.Destination, f.Reason
	if d == "" {
		d = "*"
	}
	if r == "" {
		r = "*"
	}
	return stream.DLQSubject + "." + d + "." + r
}

// ListDeadLetters calls fn for each selected dead letter, oldest first.
func ListDeadLetters(ctx context.Context, eng *stream.Engine, f DLQFilter, fn func(*DeadLetter) error) error {
	decode := func(seq uint64, data []byte) (*DeadLetter, error) {
		var dl DeadLetter
		if err := json.Unmarshal(data, &dl); err != nil {
			return nil, fmt.Errorf("dead letter %d: %w", seq, err)
		}
		dl.Seq = seq
		return &dl, nil
	}
	if f.Seq != 0 {
		s, err := eng.JetStream().Stream(ctx, stream.DLQStream)
		if err != nil {
			return fmt.Errorf("stream %s: %w", stream.DLQStream, err)
		}
		raw, err := s.GetMsg(ctx, f.Seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("no dead letter %d", f.Seq)
		}
		if err != nil {
			return fmt.Errorf("dead letter %d: %w", f.Seq, err)
		}
		dl, err := decode(raw.Sequence, raw.Data)
		if err != nil {
			return err
		}
		if (f.Destination != "" && dl.Destination != f.Destination) || (f.Reason != "" && dl.Reason != f.Reason) {
			return nil
		}
		return fn(dl)
	}
	return eng.Read(ctx, stream.DLQStream, stream.ReadOptions{Subject: f.subject(), Since: f.Since}, func(m stream.Message) error {
		dl, err := decode(m.Seq, m.Data)
		if err != nil {
			return err
		}
		return fn(dl)
	})
}

// ReplayDeadLetters re-publishes the original events of the selected dead
// letters into EVENTS, marked for their destination only, and removes them
// from the DLQ once the event is stored. The running server maps them again
// with its current configuration, so a fixed mapping rescues them; a replayed
// event that fails again returns to the DLQ. It returns how many were replayed.
func ReplayDeadLetters(ctx context.Context, eng *stream.Engine, f DLQFilter) (int, error) {
	var list []*DeadLetter
	if err := ListDeadLetters(ctx, eng, f, func(dl *DeadLetter) error {
		list = append(list, dl)
		return nil
	}); err != nil {
		return 0, err
	}
	js := eng.JetStream()
	s, err := js.Stream(ctx, stream.DLQStream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream.DLQStream, err)
	}
	// Dead letters leave the DLQ a chunk at a time: their events are
	// published, EVENTS is synced once (on disk before they leave), then
	// they are removed.
	n := 0
	var done []*DeadLetter
	flush := func() error {
		if len(done) == 0 {
			return nil
		}
		if err := eng.Sync(ctx, stream.EventsStream); err != nil {
			return fmt.Errorf("replay dead letters: %w", err)
		}
		for _, dl := range done {
			if err := s.DeleteMsg(ctx, dl.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				return fmt.Errorf("remove replayed dead letter %d: %w", dl.Seq, err)
			}
			n++
		}
		done = done[:0]
		return nil
	}
	for _, dl := range list {
		var probe struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(dl.Event, &probe); err != nil || probe.Type == "" {
			err := errors.Join(flush(), fmt.Errorf("dead letter %d holds no event to replay", dl.Seq))
			return n, err
		}
		m := &nats.Msg{Subject: event.Subject(dl.Source, event.Type(probe.Type)), Data: dl.Event, Header: nats.Header{}}
		m.Header.Set(event.HeaderSource, dl.Source)
		m.Header.Set(HeaderReplayFor, dl.Destination)
		id := "replay:" + dl.Destination + ":" + strconv.FormatUint(dl.Seq, 10)
		if _, err := js.PublishMsg(ctx, m, jetstream.WithMsgID(id)); err != nil {
			err = errors.Join(flush(), fmt.Errorf("replay dead letter %d: %w", dl.Seq, err))
			return n, err
		}
		if done = append(done, dl); len(done) == replayChunk {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	err = flush() // before n is read: flush counts what it removes
	return n, err
}

// replayChunk is how many replayed dead letters one sync of EVENTS covers.
const replayChunk = 500

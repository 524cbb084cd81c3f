package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/capstan-gw/capstan/internal/stream"
)

// Dead-letter reasons: the last part of a DLQ subject (dlq.<destination>.<reason>).
const (
	ReasonInvalid  = "invalid"  // the event's mapping output failed local validation
	ReasonRejected = "rejected" // LinkedIn refused it (4xx, or named in a 422/400 batch)
	ReasonExpired  = "expired"  // it could not be delivered before leaving LinkedIn's 90-day window
	ReasonUnusable = "unusable" // the stored event could not be read
)

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
	// The original event and where it came from; Trust is the event's
	// stream trust (stream.Trust*), kept so that a replay stores it again.
	Source string `json:"source"`
	Trust  string `json:"trust,omitempty"`
	// EventSeq and EventIndex are the event's position in EVENTS (the
	// stream sequence of its segment and its index in it; stream.Pos).
	EventSeq   uint64          `json:"eventSeq"`
	EventIndex int             `json:"eventIndex,omitempty"`
	MessageID  string          `json:"messageId,omitempty"`
	Event      json.RawMessage `json:"event"`
}

// writeDeadLetter stores dl durably. The message id makes a write repeated
// after a crash (event redelivered) a no-op, while a failure after a replay
// (another event position) is kept.
func writeDeadLetter(ctx context.Context, eng *stream.Engine, dl *DeadLetter) error {
	b, err := json.Marshal(dl)
	if err != nil {
		return fmt.Errorf("encode dead letter: %w", err)
	}
	id := fmt.Sprintf("%s:%s:%d", dl.Destination, dl.Mapping, dl.EventSeq)
	if dl.EventIndex != 0 {
		id += ":" + strconv.Itoa(dl.EventIndex)
	}
	// The event is acknowledged once this returns: AppendDeadLetter returns
	// once the dead letter is on disk.
	sdl := stream.DeadLetter{Destination: dl.Destination, Reason: dl.Reason, Source: dl.Source, Doc: b}
	if err := eng.AppendDeadLetter(ctx, sdl, id); err != nil {
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

// ListDeadLetters calls fn for each selected dead letter, oldest first.
func ListDeadLetters(ctx context.Context, eng *stream.Engine, f DLQFilter, fn func(*DeadLetter) error) error {
	decode := func(sdl stream.DeadLetter) (*DeadLetter, error) {
		var dl DeadLetter
		if err := json.Unmarshal(sdl.Doc, &dl); err != nil {
			return nil, fmt.Errorf("dead letter %d: %w", sdl.Seq, err)
		}
		dl.Seq = sdl.Seq
		return &dl, nil
	}
	if f.Seq != 0 {
		sdl, err := eng.DeadLetterAt(ctx, f.Seq)
		if errors.Is(err, stream.ErrNotFound) {
			return noDeadLetterError(f.Seq)
		}
		if err != nil {
			return err
		}
		dl, err := decode(sdl)
		if err != nil {
			return err
		}
		if (f.Destination != "" && dl.Destination != f.Destination) || (f.Reason != "" && dl.Reason != f.Reason) {
			return nil
		}
		return fn(dl)
	}
	sf := stream.DeadLetterFilter{Destination: f.Destination, Reason: f.Reason, Since: f.Since}
	return eng.ReadDeadLetters(ctx, sf, func(sdl stream.DeadLetter) error {
		dl, err := decode(sdl)
		if err != nil {
			return err
		}
		return fn(dl)
	})
}

// ErrNoDeadLetter matches the error of ListDeadLetters for a DLQFilter.Seq
// that the DLQ does not hold.
var ErrNoDeadLetter = errors.New("no such dead letter")

// noDeadLetterError says which dead letter is not there.
type noDeadLetterError uint64

func (e noDeadLetterError) Error() string        { return fmt.Sprintf("no dead letter %d", uint64(e)) }
func (e noDeadLetterError) Is(target error) bool { return target == ErrNoDeadLetter }

// ReplayDeadLetters stores the original events of the selected dead letters
// in EVENTS again through w, marked for their destination only, and removes
// them from the DLQ once the events are durable. The running server maps
// them again with its current configuration, so a fixed mapping rescues
// them; a replayed event that fails again returns to the DLQ. w must be
// running. It returns how many were replayed.
func ReplayDeadLetters(ctx context.Context, eng *stream.Engine, w *stream.Writer, f DLQFilter) (int, error) {
	var list []*DeadLetter
	if err := ListDeadLetters(ctx, eng, f, func(dl *DeadLetter) error {
		list = append(list, dl)
		return nil
	}); err != nil {
		return 0, err
	}
	// Dead letters leave the DLQ a chunk at a time: their events are
	// appended in one call, made durable together (one sync of EVENTS),
	// then the dead letters are removed.
	n := 0
	for start := 0; start < len(list); start += replayChunk {
		chunk := list[start:min(start+replayChunk, len(list))]
		evs := make([]stream.Event, 0, len(chunk))
		var bad error
		for _, dl := range chunk {
			var probe struct {
				Type string `json:"type"`
			}
			if err := json.Unmarshal(dl.Event, &probe); err != nil || probe.Type == "" {
				bad = fmt.Errorf("dead letter %d holds no event to replay", dl.Seq)
				break
			}
			evs = append(evs, stream.Event{
				Source: dl.Source, Type: probe.Type, MessageID: dl.MessageID, Doc: dl.Event,
				ReplayFor: dl.Destination, Trust: dl.Trust,
				DedupID: "replay:" + dl.Destination + ":" + strconv.FormatUint(dl.Seq, 10),
			})
		}
		done, err := replay(ctx, eng, w, chunk[:len(evs)], evs)
		n += done
		if err != nil || bad != nil {
			return n, errors.Join(err, bad)
		}
	}
	return n, nil
}

// replay appends the events of dls and removes the dead letters whose
// event is durable (stored, or stored before), stopping at the first that
// is not. It returns how many it removed.
func replay(ctx context.Context, eng *stream.Engine, w *stream.Writer, dls []*DeadLetter, evs []stream.Event) (int, error) {
	if len(evs) == 0 {
		return 0, nil
	}
	res, err := w.Append(ctx, evs)
	if err != nil {
		return 0, fmt.Errorf("replay dead letters: %w", err)
	}
	seqs := make([]uint64, 0, len(dls))
	for i, r := range res {
		if r.Err != nil {
			err = fmt.Errorf("replay dead letter %d: %w", dls[i].Seq, r.Err)
			break
		}
		seqs = append(seqs, dls[i].Seq)
	}
	n, rerr := eng.RemoveDeadLetters(ctx, seqs)
	return n, errors.Join(rerr, err)
}

// replayChunk is how many replayed dead letters one append (and one sync of
// EVENTS) covers.
const replayChunk = 500

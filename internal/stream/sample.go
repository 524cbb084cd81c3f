package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A range of EVENTS read by a reader that polls (the console's Live
// events): one batched direct get (nats-server 2.11 or later, the stream
// allows direct gets), answered from the stream's store without a
// consumer. ReadEvents instead sets up an ordered consumer for each read,
// which the server keeps for minutes after it and signals for every event
// stored meanwhile: polled five times a second, that costs ingest more than
// the reading does.

// MaxEventRange is the most events ReadEventRange reads at once.
const MaxEventRange = 10_000

// rangeTimeout bounds one ReadEventRange when ctx has no deadline.
const rangeTimeout = 10 * time.Second

// The headers of a direct get's answers, set by the server (and by nats.go
// for a status line).
const (
	hdrStatus      = "Status"      // "204" ends a batch, "404" nothing found, "503" no responder
	hdrDescription = "Description" // the status's text
	hdrSequence    = "Nats-Sequence"
	hdrTimeStamp   = "Nats-Time-Stamp" // RFC 3339, UTC
	hdrSubject     = "Nats-Subject"
	hdrNumPending  = "Nats-Num-Pending" // only in a batch's answers
)

// ErrNoBatchGet means the NATS server cannot read a range of messages in
// one request (nats-server before 2.11): read with ReadEvents instead.
var ErrNoBatchGet = errors.New("the NATS server does not read a range of messages in one request (batched direct get needs nats-server 2.11 or later)")

// ReadEventRange calls fn for each event stored at sequences from to upTo
// (inclusive; at most MaxEventRange of them), oldest first, with one
// request and no consumer: it leaves no trace on the server. Sequences
// that hold no event (deleted, or not yet on the server that answered)
// are passed over. Events are marked as ReadOptions.MarkDuplicates says.
// It stops at the first error fn returns. On a server that cannot, it
// returns ErrNoBatchGet before calling fn.
func (e *Engine) ReadEventRange(ctx context.Context, from, upTo uint64, fn func(Stored) error) error {
	switch {
	case from == 0:
		return errors.New("read event range: sequences start at 1, got 0")
	case upTo < from:
		return fmt.Errorf("read event range: %d to %d is empty", from, upTo)
	case upTo-from >= MaxEventRange:
		return fmt.Errorf("read event range: %d to %d is %d events, at most %d at once", from, upTo, upTo-from+1, MaxEventRange)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rangeTimeout)
		defer cancel()
	}
	fail := func(err error) error { return fmt.Errorf("read events %d to %d: %w", from, upTo, err) }
	req, err := json.Marshal(struct {
		Seq   uint64 `json:"seq"`
		Batch int    `json:"batch"`
	}{from, int(upTo - from + 1)})
	if err != nil {
		return fail(err)
	}
	inbox := e.nc.NewInbox()
	sub, err := e.nc.SubscribeSync(inbox)
	if err != nil {
		return fail(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := e.nc.PublishRequest(jetstream.DefaultAPIPrefix+"DIRECT.GET."+EventsStream, inbox, req); err != nil {
		return fail(err)
	}
	var (
		mk  marker
		evs []Stored
	)
	for first := true; ; first = false {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return fail(err)
		}
		if len(m.Data) == 0 {
			switch status := m.Header.Get(hdrStatus); status {
			case "204": // end of the batch
				return nil
			case "404": // nothing stored from `from` on
				return nil
			case "":
			case "503":
				return fail(fmt.Errorf("no server answers direct gets on stream %s", EventsStream))
			default:
				return fail(fmt.Errorf("status %s %s", status, m.Header.Get(hdrDescription)))
			}
		}
		if first && m.Header.Get(hdrNumPending) == "" {
			// A single message: the server ignored "batch".
			return ErrNoBatchGet
		}
		seq, err := strconv.ParseUint(m.Header.Get(hdrSequence), 10, 64)
		if err != nil {
			return fail(fmt.Errorf("message without a sequence: %w", err))
		}
		if seq > upTo {
			return nil // stored since: the next range's
		}
		at, err := time.Parse(time.RFC3339Nano, m.Header.Get(hdrTimeStamp))
		if err != nil {
			return fail(fmt.Errorf("message %d without a time: %w", seq, err))
		}
		evs = evs[:0]
		err = decodeMessage(seq, m.Header.Get(hdrSubject), m.Header, m.Data, at, func(s Stored) error {
			evs = append(evs, s)
			return nil
		})
		e.markDuplicates(ctx, seq, evs, &mk)
		for _, s := range evs {
			if err := fn(s); err != nil {
				return err
			}
		}
		if err != nil {
			return err
		}
	}
}

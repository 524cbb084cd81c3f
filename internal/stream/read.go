package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Message is one stored message.
type Message struct {
	Seq     uint64
	Subject string
	Header  nats.Header
	Data    []byte
	Time    time.Time // when the stream stored it
}

// ReadOptions select what Read returns.
type ReadOptions struct {
	// Since starts at messages stored at or after this time; zero means the
	// beginning of the stream.
	Since time.Time
	// Subject filters by subject (wildcards allowed); "" means all.
	Subject string
	// Follow keeps waiting for new messages until ctx ends; otherwise Read
	// returns once it has caught up with the stream's last message.
	Follow bool
}

// Read calls fn for each message of stream, oldest first. It stops at the
// first error fn returns.
func (e *Engine) Read(ctx context.Context, stream string, opt ReadOptions, fn func(Message) error) error {
	s, err := e.js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	last := info.State.LastSeq
	if !opt.Follow && (info.State.Msgs == 0 || last == 0) {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if !opt.Since.IsZero() {
		since := opt.Since
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &since
	}
	if opt.Subject != "" {
		cfg.FilterSubjects = []string{opt.Subject}
	}
	cons, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	defer it.Stop()
	go func() {
		<-ctx.Done()
		it.Stop()
	}()
	if !opt.Follow {
		// Anything to read at all? A filter or start time may leave nothing,
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
		msg := Message{Seq: md.Sequence.Stream, Subject: m.Subject(), Header: m.Headers(), Data: m.Data(), Time: md.Timestamp}
		if err := fn(msg); err != nil {
			return err
		}
		if !opt.Follow && md.NumPending == 0 {
			return nil
		}
	}
}

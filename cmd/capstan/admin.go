package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/capstan-gw/capstan/internal/admin"
	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/stream"
)

// newAdmin wires the admin API to the running gateway's parts.
func newAdmin(cfg *config.Config, dests []*destination, graph *identity.Graph, eng *stream.Engine, log *slog.Logger) (*admin.Server, error) {
	var ident admin.Identity
	var enr delivery.Enricher
	if graph != nil {
		ident, enr = graph, graph
	}
	deps := admin.Deps{
		Identity:    ident,
		DeadLetters: deadLetters{eng},
		Events:      storedEvents{eng},
		Preview: admin.PreviewFunc(func(ctx context.Context, events json.RawMessage, source, dest string) (any, bool, error) {
			var plans []*delivery.Plan
			for _, d := range dests {
				if dest == "" || d.Name() == dest {
					plans = append(plans, d.plan)
				}
			}
			return delivery.Preview(ctx, plans, events, source, time.Now(), enr)
		}),
	}
	for _, d := range dests {
		deps.Destinations = append(deps.Destinations, d)
	}
	return admin.New(admin.Config{Token: cfg.Server.AdminToken}, deps, log)
}

// deadLetters is the DLQ for the admin API.
type deadLetters struct{ eng *stream.Engine }

func (q deadLetters) List(ctx context.Context, f delivery.DLQFilter, fn func(*delivery.DeadLetter) error) error {
	if f.Seq != 0 {
		// delivery's "no dead letter N" is not a sentinel: ask the stream.
		s, err := q.eng.JetStream().Stream(ctx, stream.DLQStream)
		if err != nil {
			return fmt.Errorf("stream %s: %w", stream.DLQStream, err)
		}
		if _, err := s.GetMsg(ctx, f.Seq); errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("dead letter %d: %w", f.Seq, admin.ErrNotFound)
		}
	}
	return delivery.ListDeadLetters(ctx, q.eng, f, fn)
}

func (q deadLetters) Replay(ctx context.Context, f delivery.DLQFilter) (int, error) {
	return delivery.ReplayDeadLetters(ctx, q.eng, f)
}

// storedEvents reads the EVENTS stream for the admin API.
type storedEvents struct{ eng *stream.Engine }

func (e storedEvents) ReadEvents(ctx context.Context, q admin.EventQuery, fn func(admin.StoredEvent) error) error {
	opt := stream.ReadOptions{Since: q.Since}
	if q.Source != "" {
		opt.Subject = "events." + q.Source + ".>"
	}
	return e.eng.Read(ctx, stream.EventsStream, opt, func(m stream.Message) error {
		if m.Seq <= q.After {
			return nil
		}
		return fn(admin.StoredEvent{Seq: m.Seq, Source: m.Header.Get(event.HeaderSource), StoredAt: m.Time.UTC(), Event: m.Data})
	})
}

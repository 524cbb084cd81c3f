package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"

	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/stream"
)

// startup is what serve does with its local stores once ingest listens:
// it moves the identity graph and the eventId guard out of their old KV
// buckets, if the data directory still has them (once, at the first start
// of a release with the local stores: ~15 s per million keys), then serves
// the stores to the tools attached to the engine. Ingest does not wait for
// it (events are durable in EVENTS); delivery, the admin API and those
// tools do.
type startup struct {
	identity *identity.Local      // nil: no local graph
	guard    *delivery.GuardLocal // nil: no local guard
	done     chan struct{}        // closed once the stores are ready
	step     atomic.Pointer[string]

	mu   sync.Mutex
	subs []*nats.Subscription
}

func newStartup(id *identity.Local, guard *delivery.GuardLocal) *startup {
	s := &startup{identity: id, guard: guard, done: make(chan struct{})}
	what := "moving the identity graph and eventId guard from their KV buckets to the local stores, if any"
	s.step.Store(&what)
	return s
}

// beforeMigrate, when not nil, is called by startup.run before it moves
// anything (tests hold the migration there).
var beforeMigrate func(ctx context.Context)

// run migrates, serves the stores and ends the wait. It returns nil when
// ctx ends first.
func (s *startup) run(ctx context.Context, eng *stream.Engine, log *slog.Logger) error {
	err := s.migrate(ctx, eng, log)
	switch {
	case err != nil && ctx.Err() != nil:
		log.Warn("stopped while moving the KV buckets into the local stores; the next start goes on", "error", err)
		return nil
	case err != nil:
		return err
	}
	s.step.Store(nil)
	close(s.done)
	return nil
}

func (s *startup) migrate(ctx context.Context, eng *stream.Engine, log *slog.Logger) error {
	if beforeMigrate != nil {
		beforeMigrate(ctx)
	}
	if s.identity != nil {
		if _, err := identity.MigrateBucket(ctx, eng.JetStream(), "", s.identity, log); err != nil {
			return fmt.Errorf("identity graph: %w", err)
		}
		// Tools attached to the embedded engine (capstan identity, privacy
		// delete, preview) use the store through this process.
		sub, err := identity.Serve(eng.Conn(), s.identity)
		if err != nil {
			return err
		}
		s.keep(sub)
	}
	if s.guard != nil {
		if _, err := delivery.MigrateGuardBucket(ctx, eng.JetStream(), s.guard, log); err != nil {
			return fmt.Errorf("eventId guard: %w", err)
		}
		// capstan backup, attached to the embedded engine, has this
		// process checkpoint the store.
		sub, err := delivery.ServeGuard(eng.Conn(), s.guard)
		if err != nil {
			return err
		}
		s.keep(sub)
	}
	return ctx.Err()
}

func (s *startup) keep(sub *nats.Subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs = append(s.subs, sub)
}

// unsubscribe ends the serving of the stores to tools.
func (s *startup) unsubscribe() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sub := range s.subs {
		_ = sub.Unsubscribe()
	}
	s.subs = nil
}

// wait waits until the stores are ready: false if ctx ended first.
func (s *startup) wait(ctx context.Context) bool {
	select {
	case <-s.done:
		return true
	case <-ctx.Done():
		return false
	}
}

// pending says what start-up still does ("" once done), for /readyz.
func (s *startup) pending() string {
	if p := s.step.Load(); p != nil {
		return *p
	}
	return ""
}

// errStarting answers what waits for the stores.
var errStarting = errors.New("capstan is starting: moving the identity graph and eventId guard into the local stores (see the log); try again shortly")

// gate answers 503 for h until the stores are ready.
func (s *startup) gate(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-s.done:
			h.ServeHTTP(w, r)
		default:
			w.Header().Set("Retry-After", "5")
			http.Error(w, errStarting.Error(), http.StatusServiceUnavailable)
		}
	})
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/stream"
)

// starter runs the start-up steps that need the engine (connecting,
// creating streams and buckets). With an external cluster (engine.nats_url)
// that may still be forming (a docker-compose or Kubernetes start brings
// the NATS nodes and capstan's replicas up together) a failed step is
// retried with backoff, each retry logged with what it waits for, until
// engine.startup_timeout after start; then start-up fails with the last
// error. The embedded engine runs in this process: a step is tried once.
type starter struct {
	external bool
	timeout  time.Duration
	deadline time.Time
	log      *slog.Logger
}

func newStarter(cfg *config.Config, log *slog.Logger) *starter {
	t := cfg.Engine.StartupTimeout.D()
	if t <= 0 {
		t = config.DefaultStartupTimeout
	}
	return &starter{external: cfg.Engine.NatsURL != "", timeout: t, deadline: time.Now().Add(t), log: log}
}

// stepTimeout bounds one attempt of a start-up step.
const stepTimeout = 8 * time.Second

// do runs step (what names it for the log and the error) until it succeeds,
// ctx ends or the start-up deadline passes.
func (s *starter) do(ctx context.Context, what string, step func(context.Context) error) error {
	if !s.external {
		return step(ctx)
	}
	wait := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		until := time.Now().Add(stepTimeout)
		if s.deadline.Before(until) {
			until = s.deadline
		}
		sctx, cancel := context.WithDeadline(ctx, until)
		err := step(sctx)
		cancel()
		if err == nil {
			if attempt > 1 {
				s.log.Info("engine ready", "step", what, "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil || errors.Is(err, stream.ErrServerTooOld) {
			return err
		}
		if time.Now().Add(wait).After(s.deadline) {
			return fmt.Errorf("%s: the NATS cluster was not ready within engine.startup_timeout (%s); last error: %w", what, s.timeout, err)
		}
		s.log.Warn("engine not ready; retrying", "waiting_for", what, "error", err, "attempt", attempt, "retry_in", wait.String(), "gives_up_in", time.Until(s.deadline).Round(time.Second).String())
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/stream"
)

// TestStarterRetries: against an external cluster a failed start-up step is
// retried, each retry logged with what it waits for, until it succeeds or
// engine.startup_timeout has passed; then the error names the setting and
// the last error. With the embedded engine a step is tried once.
func TestStarterRetries(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	cfg := &config.Config{}
	cfg.Engine.NatsURL = "nats://127.0.0.1:4222"
	cfg.Engine.StartupTimeout = config.Duration(3 * time.Second)
	s := newStarter(cfg, log)
	calls := 0
	err := s.do(context.Background(), "stream EVENTS", func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("a step runs without a deadline")
		}
		if calls++; calls < 3 {
			return errors.New("no meta leader")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("err %v after %d calls, want success on the third", err, calls)
	}
	if n := strings.Count(logs.String(), `msg="engine not ready; retrying" waiting_for="stream EVENTS" error="no meta leader"`); n != 2 {
		t.Errorf("%d retry lines, want 2:\n%s", n, logs.String())
	}

	err = s.do(context.Background(), "key-value bucket state", func(context.Context) error { return errors.New("insufficient resources") })
	if err == nil || !strings.Contains(err.Error(), "key-value bucket state: the NATS cluster was not ready within engine.startup_timeout (3s); last error: insufficient resources") {
		t.Errorf("error %v", err)
	}

	cfg.Engine.NatsURL = ""
	calls = 0
	err = newStarter(cfg, log).do(context.Background(), "engine", func(context.Context) error { calls++; return errors.New("locked") })
	if err == nil || calls != 1 {
		t.Errorf("embedded: %d calls, err %v; want one call and its error", calls, err)
	}
}

// A server too old for capstan is refused at once: waiting for the cluster
// to form would not change its version.
func TestStarterNoRetryTooOld(t *testing.T) {
	cfg := &config.Config{}
	cfg.Engine.NatsURL = "nats://127.0.0.1:4222"
	cfg.Engine.StartupTimeout = config.Duration(time.Minute)
	calls := 0
	tooOld := fmt.Errorf("%w: version 2.8.4", stream.ErrServerTooOld)
	err := newStarter(cfg, slog.New(slog.DiscardHandler)).do(context.Background(), "NATS connection", func(context.Context) error { calls++; return tooOld })
	if !errors.Is(err, stream.ErrServerTooOld) || calls != 1 {
		t.Errorf("%d calls, err %v; want one call and ErrServerTooOld", calls, err)
	}
}

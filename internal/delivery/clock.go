package delivery

import (
	"context"
	"sync"
	"time"
)

// Clock is the time source of a Runner: real time in production, a
// fast-forwarding clock in tests so that waits for rate-limit windows and
// backoffs take no real time.
//
// Every wait on the remote's time goes through it: rate-limit windows,
// retry backoff, the 90-day window, token expiry, the backoff of Prepare
// and of failed reads. Two kinds of wait deliberately do not: those bound
// to the engine's own timers, which run in real time whatever the test
// clock says (keeping events alive within AckWait, fetch expiry, lease
// renewal), and a pause's retry, which waits for a person (Resume) and
// must not become a busy loop under a clock that skips.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx ends, returning ctx's error in that case.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SkipClock is a Clock whose Sleep returns at once after moving the clock
// forward by d. Share it with the sandbox (sandbox.Config.Now) and both sides
// agree on time while tests of minute and day limits run in milliseconds.
// It is safe for concurrent use.
type SkipClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewSkipClock returns a SkipClock starting at start.
func NewSkipClock(start time.Time) *SkipClock { return &SkipClock{now: start} }

// Now returns the clock's time.
func (c *SkipClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Sleep moves the clock forward by d.
func (c *SkipClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	if d > 0 {
		c.now = c.now.Add(d)
	}
	c.mu.Unlock()
	return nil
}

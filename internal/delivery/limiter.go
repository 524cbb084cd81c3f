package delivery

import (
	"context"
	"sync"
	"time"
)

// windowLimiter keeps a token under LinkedIn's limits the way LinkedIn counts
// them (linkedin-capi.md §11): at most perMinute requests in each UTC-aligned
// minute and perDay in each UTC day. A token bucket (x/time/rate) cannot
// promise that: its burst plus refill can put more than the limit into one
// aligned window, which is exactly what earns a 429.
type windowLimiter struct {
	clock     Clock
	perMinute int
	perDay    int

	mu      sync.Mutex
	minute  time.Time // start of the current minute window
	minuteN int
	day     time.Time
	dayN    int
}

func newWindowLimiter(c Clock, perMinute, perDay int) *windowLimiter {
	return &windowLimiter{clock: c, perMinute: perMinute, perDay: perDay}
}

// Wait blocks until one more request fits, then counts it. It reports
// whether it had to wait.
func (l *windowLimiter) Wait(ctx context.Context) (waited bool, err error) {
	for {
		l.mu.Lock()
		now := l.clock.Now().UTC()
		minute, day := now.Truncate(time.Minute), time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
		if !minute.Equal(l.minute) {
			l.minute, l.minuteN = minute, 0
		}
		if !day.Equal(l.day) {
			l.day, l.dayN = day, 0
		}
		var wait time.Duration
		switch {
		case l.dayN >= l.perDay:
			wait = day.Add(24 * time.Hour).Sub(now)
		case l.minuteN >= l.perMinute:
			wait = minute.Add(time.Minute).Sub(now)
		default:
			l.minuteN++
			l.dayN++
			l.mu.Unlock()
			return waited, nil
		}
		l.mu.Unlock()
		waited = true
		if err := l.clock.Sleep(ctx, wait); err != nil {
			return waited, err
		}
	}
}

// exhaustDay blocks new requests until the next UTC day: LinkedIn answered
// with its daily 429, so its count and ours disagree.
func (l *windowLimiter) exhaustDay() {
	l.mu.Lock()
	l.dayN = l.perDay
	l.mu.Unlock()
}

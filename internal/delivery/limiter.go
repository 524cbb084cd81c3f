package delivery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"
)

// Limits holds the request limiters of every destination of a process,
// keyed by what the remote counts requests against (Destination.LimitKey:
// for LinkedIn the access token, linkedin-capi.md §11), so two destinations
// that share a token share its 600 requests a minute and 300,000 a day. It
// is safe for concurrent use.
type Limits struct {
	clock Clock

	mu sync.Mutex
	m  map[string]*windowLimiter
}

// NewLimits returns an empty set of limiters on clock (nil: real time).
func NewLimits(clock Clock) *Limits {
	if clock == nil {
		clock = realClock{}
	}
	return &Limits{clock: clock, m: map[string]*windowLimiter{}}
}

// limiter returns key's limiter, created with perMinute and perDay on
// first use: the first destination of a shared key sets its limits.
func (l *Limits) limiter(key string, perMinute, perDay int) *windowLimiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.m[key]
	if !ok {
		w = &windowLimiter{clock: l.clock, perMinute: perMinute, perDay: perDay}
		l.m[key] = w
	}
	return w
}

// wait blocks until one more request of key fits, then counts it. It
// reports whether it had to wait.
func (l *Limits) wait(ctx context.Context, key string, perMinute, perDay int) (bool, error) {
	return l.limiter(key, perMinute, perDay).Wait(ctx)
}

// exhaustDay holds key's requests until the next UTC day.
func (l *Limits) exhaustDay(key string) {
	l.mu.Lock()
	w := l.m[key]
	l.mu.Unlock()
	if w != nil {
		w.exhaustDay()
	}
}

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

// exhaustDay blocks new requests until the next UTC day: the remote answered
// with its daily 429, so its count and ours disagree.
func (l *windowLimiter) exhaustDay() {
	l.mu.Lock()
	l.dayN = l.perDay
	l.mu.Unlock()
}

// RateUsage is how much of the remote's request limits one LimitKey (for
// LinkedIn, one access token) has used in the current UTC minute and day,
// as capstan's own limiter counts them.
type RateUsage struct {
	// Key is a short fingerprint of the LimitKey (never the token):
	// destinations showing the same Key share these counts.
	Key string `json:"key"`
	// Minute and Day are the requests sent in the current UTC minute and
	// day; PerMinute and PerDay the limits. Day equals PerDay after the
	// remote answered with its daily 429 (requests wait for the next day).
	Minute    int `json:"minute"`
	PerMinute int `json:"perMinute"`
	Day       int `json:"day"`
	PerDay    int `json:"perDay"`
}

// usage returns key's counts in the current windows; a key never used
// has none, with the limits perMinute and perDay.
func (l *Limits) usage(key string, perMinute, perDay int) RateUsage {
	sum := sha256.Sum256([]byte(key))
	u := RateUsage{Key: hex.EncodeToString(sum[:4]), PerMinute: perMinute, PerDay: perDay}
	l.mu.Lock()
	w := l.m[key]
	l.mu.Unlock()
	if w == nil {
		return u
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.clock.Now().UTC()
	if w.minute.Equal(now.Truncate(time.Minute)) {
		u.Minute = w.minuteN
	}
	if w.day.Equal(time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)) {
		u.Day = w.dayN
	}
	u.PerMinute, u.PerDay = w.perMinute, w.perDay
	return u
}

package stats

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/stream"
)

// The key-value buckets of the statistics (names are part of capstan's
// contract, like stream's: `nats kv get stats_minutes linkedin.29431234`).
// Each key is <destination>.<unix time divided by the bucket's unit>.
const (
	MinutesBucket  = stream.StatsMinutesKV  // one-minute keys, kept 2 hours: the 1 h window
	QuartersBucket = stream.StatsQuartersKV // 15-minute keys, kept 26 hours: the 24 h window
	HoursBucket    = stream.StatsHoursKV    // one-hour keys, kept 8 days: the 7 d window
)

// granularity is one of the buckets: its name, key unit and how long it
// keeps a key after its last write (a little more than the window read
// from it).
type granularity struct {
	bucket string
	unit   time.Duration
	ttl    time.Duration
}

// The buckets' granularities; a window reads one of them (Window.gran).
var grans = []granularity{
	{MinutesBucket, time.Minute, 2 * time.Hour},
	{QuartersBucket, 15 * time.Minute, 26 * time.Hour},
	{HoursBucket, time.Hour, 8 * 24 * time.Hour},
}

// DefaultFlushEvery is Config.FlushEvery's default.
const DefaultFlushEvery = 5 * time.Second

// maxPending bounds the keys whose writes failed and wait for the next
// flush; beyond it the oldest are dropped (and logged): figures only.
const maxPending = 4096

// Config configures a Collector. Zero fields take defaults.
type Config struct {
	// FlushEvery is how often counts are written to the engine: what a
	// crash can lose of the figures. Default 5s.
	FlushEvery time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Collector counts the delivery funnel in memory (it is the runners'
// delivery.Funnel), writes the counts to the engine periodically, and
// reports them. It is safe for concurrent use.
type Collector struct {
	cfg Config
	kvs []jetstream.KeyValue // of grans
	log *slog.Logger

	mu    sync.Mutex
	dests map[string]*destCounters
	order []string
	start time.Time // when the counts in memory began: they are of its minute

	flushMu sync.Mutex
	pending []pendingWrite // failed writes, oldest first
}

// pendingWrite is a count not yet added to its key.
type pendingWrite struct {
	gran int // index in grans
	key  string
	rec  *Record
}

// Open returns a Collector on eng's statistics buckets, creating them when
// missing. It starts nothing: Run flushes.
func Open(ctx context.Context, eng *stream.Engine, cfg Config, log *slog.Logger) (*Collector, error) {
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = DefaultFlushEvery
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kvs := make([]jetstream.KeyValue, len(grans))
	for i, g := range grans {
		kv, err := eng.KV(ctx, g.bucket, g.ttl)
		if err != nil {
			return nil, fmt.Errorf("statistics: %w", err)
		}
		kvs[i] = kv
	}
	return &Collector{
		cfg: cfg, kvs: kvs,
		log:   log.With("component", "stats"),
		dests: map[string]*destCounters{},
		start: cfg.Now(),
	}, nil
}

// Destination implements delivery.Funnel: the counters of destination name.
func (c *Collector) Destination(name string) delivery.DestinationFunnel { return c.dest(name) }

func (c *Collector) dest(name string) *destCounters {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.dests[name]
	if d == nil {
		d = newDestCounters(name)
		c.dests[name] = d
		c.order = append(c.order, name)
	}
	return d
}

// destinations returns the destinations counted, in the order first seen.
func (c *Collector) destinations() []*destCounters {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*destCounters, len(c.order))
	for i, n := range c.order {
		out[i] = c.dests[n]
	}
	return out
}

// Run flushes every FlushEvery, at multiples of it on the wall clock, until
// ctx ends, then flushes once more (within 10 s) and returns. Stop it after
// the runners, so that their last counts are kept.
func (c *Collector) Run(ctx context.Context) error {
	every := c.cfg.FlushEvery
	for {
		now := c.cfg.Now()
		next := now.Truncate(every).Add(every)
		t := time.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			err := c.flush(fctx, c.cfg.Now())
			cancel()
			if err != nil {
				c.log.Warn("statistics: final flush failed; the figures of the last seconds are lost (events are not)", "error", err)
			}
			return nil
		case <-t.C:
			if err := c.flush(ctx, next); err != nil && ctx.Err() == nil {
				c.log.Warn("statistics: flush failed; it is tried again at the next flush", "error", err, "pending", c.pendingLen())
			}
		}
	}
}

// Flush writes the counts gathered since the last flush now.
func (c *Collector) Flush(ctx context.Context) error { return c.flush(ctx, c.cfg.Now()) }

func (c *Collector) pendingLen() int {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	return len(c.pending)
}

// flush takes the counts in memory, which began at c.start, and adds them
// to the keys of c.start's minute, quarter hour and hour; the next counts
// begin at end.
func (c *Collector) flush(ctx context.Context, end time.Time) error {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	c.mu.Lock()
	at := c.start
	c.start = end
	c.mu.Unlock()
	for _, d := range c.destinations() {
		rec := d.take(true)
		if rec == nil {
			continue
		}
		for i, g := range grans {
			c.pending = append(c.pending, pendingWrite{gran: i, key: key(d.name, at, g.unit), rec: rec})
		}
	}
	if n := len(c.pending) - maxPending; n > 0 {
		c.log.Error("statistics: writes failing for too long; dropping the oldest figures", "dropped", n)
		c.pending = c.pending[n:]
	}
	var errs []error
	kept := c.pending[:0]
	for _, p := range c.pending {
		if len(errs) > 0 { // the engine is failing: keep the rest for later
			kept = append(kept, p)
			continue
		}
		if err := addTo(ctx, c.kvs[p.gran], p.key, p.rec); err != nil {
			errs = append(errs, err)
			kept = append(kept, p)
		}
	}
	c.pending = kept
	return errors.Join(errs...)
}

// addTo adds rec to the record at key: read, add, write with the revision
// read, again when another writer came first.
func addTo(ctx context.Context, kv jetstream.KeyValue, key string, rec *Record) error {
	for attempt := 0; ; attempt++ {
		sum := &Record{}
		var rev uint64
		e, err := kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return fmt.Errorf("statistics: read %s: %w", key, err)
		default:
			rev = e.Revision()
			if err := json.Unmarshal(e.Value(), sum); err != nil {
				sum = &Record{} // damaged: start the key again
			}
		}
		sum.add(rec)
		b, err := json.Marshal(sum)
		if err != nil {
			return fmt.Errorf("statistics: encode %s: %w", key, err)
		}
		if rev == 0 {
			_, err = kv.Create(ctx, key, b)
		} else {
			_, err = kv.Update(ctx, key, b, rev)
		}
		if err == nil {
			return nil
		}
		if attempt < 5 && (errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err)) {
			continue // another writer came first
		}
		return fmt.Errorf("statistics: write %s: %w", key, err)
	}
}

// isWrongSequence reports whether err is JetStream's refusal of an update
// whose revision is no longer the last.
func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// keyToken returns name as a key token: itself when it is one (a
// destination name of the configuration always is), else hex-encoded.
func keyToken(name string) string {
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return "x" + hex.EncodeToString([]byte(name))
		}
	}
	return name
}

// key returns the key of dest's counts in the unit holding t.
func key(dest string, t time.Time, unit time.Duration) string {
	return keyToken(dest) + "." + strconv.FormatInt(t.Unix()/int64(unit/time.Second), 10)
}

package privacy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/stream"
)

// DefaultSuppressionTTL is how long a deleted person's ids stay suppressed
// by default.
const DefaultSuppressionTTL = 365 * 24 * time.Hour

// SuppressionConfig configures Suppressions. The zero value of a field
// means its default.
type SuppressionConfig struct {
	// Bucket is the KV bucket. Default stream.SuppressionKV
	// ("suppression").
	Bucket string
	// TTL is how long an entry lives. Default 1 year. Minimum 1 minute.
	TTL time.Duration
	// HashEmail normalises and hashes an email, as the identity graph
	// does. Required.
	HashEmail func(string) (string, bool)
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Suppressions is the set of suppressed ids: a KV bucket and this
// process's copy of it, which Load fills and Run keeps current. It is safe
// for concurrent use.
type Suppressions struct {
	cfg SuppressionConfig
	kv  jetstream.KeyValue

	mu    sync.RWMutex
	until map[hkey]time.Time   // when each entry expires
	w     jetstream.KeyWatcher // set by Load, consumed by Run
}

// OpenSuppressions creates the bucket, or binds it and updates its TTL.
// It starts no goroutines and reads nothing: a process that checks events
// calls Load, then Run.
func OpenSuppressions(ctx context.Context, eng *stream.Engine, cfg SuppressionConfig) (*Suppressions, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = stream.SuppressionKV
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultSuppressionTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var errs []error
	if cfg.TTL < time.Minute {
		errs = append(errs, fmt.Errorf("privacy suppression_ttl: must be at least 1m, got %s", cfg.TTL))
	}
	if cfg.HashEmail == nil {
		errs = append(errs, errors.New("privacy: no email hash function"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	kv, err := eng.KV(ctx, cfg.Bucket, cfg.TTL)
	if err != nil {
		return nil, err
	}
	return &Suppressions{cfg: cfg, kv: kv, until: map[hkey]time.Time{}}, nil
}

// Add suppresses keys durably and in this process at once; other
// processes learn of them through their watch. It returns how many it
// stored.
func (s *Suppressions) Add(ctx context.Context, keys []string) (int, error) {
	now := s.cfg.Now()
	val := []byte(strconv.FormatInt(now.UnixMilli(), 10))
	for i, k := range keys {
		if _, err := s.kv.Put(ctx, k, val); err != nil {
			return i, fmt.Errorf("store suppression: %w", err)
		}
		if h, ok := parseKey(k); ok {
			s.mu.Lock()
			s.until[h] = now.Add(s.cfg.TTL)
			s.mu.Unlock()
		}
	}
	return len(keys), nil
}

// Load reads every entry of the bucket into this process's copy and starts
// watching the bucket for new ones (Run follows the watch).
func (s *Suppressions) Load(ctx context.Context) error {
	w, err := s.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch suppressions: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			_ = w.Stop()
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch suppressions: watch ended")
			}
			if e == nil { // every stored entry has been seen
				s.mu.Lock()
				s.w = w
				s.mu.Unlock()
				return nil
			}
			s.apply(e)
		}
	}
}

// Run keeps this process's copy current until ctx ends. Load must have
// returned first.
func (s *Suppressions) Run(ctx context.Context) error {
	s.mu.RLock()
	w := s.w
	s.mu.RUnlock()
	if w == nil {
		return errors.New("suppressions: Run before Load")
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() != nil {
					// The watch was made under Load's context, which ended
					// with ctx (shutdown): not a failure.
					return nil
				}
				return errors.New("watch suppressions: watch ended")
			}
			if e != nil {
				s.apply(e)
			}
		}
	}
}

func (s *Suppressions) apply(e jetstream.KeyValueEntry) {
	h, ok := parseKey(e.Key())
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(s.until, h)
		return
	}
	s.until[h] = e.Created().Add(s.cfg.TTL)
}

// Suppressed reports whether ev carries a suppressed id (its userId,
// anonymousId, previousId or an email). It reads only this process's copy,
// and allocates only to normalise an email.
func (s *Suppressions) Suppressed(ev event.Value) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.until) == 0 {
		return false
	}
	now := s.cfg.Now()
	hit := func(h hkey) bool {
		u, ok := s.until[h]
		return ok && now.Before(u)
	}
	id := func(kind byte, name string) bool {
		v, ok := ev.Get(name).Str()
		return ok && v != "" && hit(hkey{kind, sha256.Sum256([]byte(v))})
	}
	if id('u', "userId") || id('a', "anonymousId") || id('u', "previousId") || id('a', "previousId") {
		return true
	}
	for _, p := range emailPaths {
		v, ok := ev.Lookup(p...).Str()
		if !ok {
			continue
		}
		hx, ok := s.cfg.HashEmail(v)
		if !ok || len(hx) != 2*sha256.Size {
			continue
		}
		h := hkey{kind: 'e'}
		if _, err := hex.Decode(h.sum[:], []byte(hx)); err == nil && hit(h) {
			return true
		}
	}
	return false
}

// hkey is a key in memory: the kind ('u', 'a' or 'e') and the SHA-256.
type hkey struct {
	kind byte
	sum  [sha256.Size]byte
}

// parseKey reads a bucket key ("u.<hex sha256>").
func parseKey(k string) (hkey, bool) {
	if len(k) != 2+2*sha256.Size || k[1] != '.' {
		return hkey{}, false
	}
	h := hkey{kind: k[0]}
	switch h.kind {
	case 'u', 'a', 'e':
	default:
		return hkey{}, false
	}
	if _, err := hex.Decode(h.sum[:], []byte(k[2:])); err != nil {
		return hkey{}, false
	}
	return h, true
}

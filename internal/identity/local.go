package identity

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/capstan-gw/capstan/internal/localdb"
)

// Memory of the local store (LocalConfig.MemoryBytes).
const (
	DefaultLocalMemory = 32 << 20
	MinLocalMemory     = 8 << 20
)

// localFilterShare is the share of LocalConfig.MemoryBytes the filter of
// absent keys (localdb.Filter) may grow to, 1.25 bytes a profile: 16 MiB of
// the default 32 MiB (4 at first, 4 more at 3.4 million profiles, 8 more at
// 6.7 million) for 13.4 million profiles (1-3% of the creates of new keys
// look their key up; beyond, more and more do: 17% at twice as many). It
// holds the stored profiles and those written since its last rebuild from
// them (localdb.Filter), at most twice the profiles within the TTL.
// It was a fixed eighth (4 MiB, 3.3 million profiles): at 20 million
// profiles three quarters of the creates read pebble's bloom filters, 45
// CPU-µs and 120 KB read a create (bench/results/idscale-2026-12-06-s13.md).
const localFilterShare = 2

// walSync is how often the local store's write-ahead log is written out and
// fsynced when there were writes (localdb.WALSync).
const walSync = localdb.WALSync

// ErrLocalInUse means another Local (in this process or another) has the
// directory open: one process owns the local store; tools reach it
// through the running capstan (Remote).
var ErrLocalInUse = errors.New("identity store in use by another process")

// localFormat is the version of the local store's layout, under
// formatKey. Another version is refused rather than read wrong. Format 2
// writes profiles in the compact encoding (recordbin.go); it reads the
// JSON ones of format 1 too, which OpenLocal upgrades in place (the
// marker only: each profile is rewritten compact at its next change).
// A binary that knows only format 1 refuses a store of format 2 instead of
// reading its profiles as unreadable and replacing them.
const (
	localFormat  = "capstan-identity-pebble-2"
	localFormat1 = "capstan-identity-pebble-1"
)

// The local store's keys: the profile key's kind byte ('u' or 'a') and
// the 32 bytes of its SHA-256 (the hex of the bucket's keys, decoded);
// meta keys start with 'm'. A value is the revision (8 bytes, big-endian),
// the write time (Unix ms, 8 bytes) and the profile: compact (recordbin.go),
// or JSON if written before format 2 or through Remote.
var formatKey = []byte("mformat")

// LocalConfig configures OpenLocal. The zero value of a field but Dir
// means its default.
type LocalConfig struct {
	// Dir holds the store; created if missing. Required.
	Dir string
	// MemoryBytes bounds the store's memory: the filter of absent keys
	// (growing with the profiles up to half of it) and pebble's cache
	// (the other half: memtables and blocks read). Default 32 MiB, at
	// least 8 MiB (identity.memory_bytes). It does not grow with the
	// number of profiles beyond that; only the files on disk do.
	MemoryBytes int64
	// Logger receives the store's errors. Nil: nothing is logged.
	Logger *slog.Logger
}

// Local is the graph's store on the local disk (pebble), used with the
// embedded engine: unlike the KV bucket, whose file store keeps an index
// entry in memory for every key (~170-330 bytes per new visitor), it keeps
// in memory only a bounded cache. One process owns it (the directory is
// locked); compare-and-set is a per-key lock inside that process. Writes
// do not wait for the disk (pebble.NoSync): the write-ahead log is written
// out and fsynced every walSync (100 ms) while there are writes, so a crash
// (kill -9 or power loss) loses at most the graph updates of the last
// 100 ms, as the asynchronous bucket could (Config.Async); deletions are
// fsynced before they return.
//
// Profiles expire TTL after their last write (the Graph's Config.TTL):
// reads ignore expired ones at once, and a sweep removes them from disk
// periodically. Open it with OpenLocal; Close it after the Graph's use.
type Local struct {
	store *localdb.DB // opened, locked, synced
	db    *pebble.DB  // store.DB
	// filter knows most absent keys (a create's, a new visitor's): every
	// write Adds its key to it first (localdb.Filter).
	filter *localdb.Filter
	dir    string
	keys   localdb.KeyLocks // by stored key (string(k)): compare-and-set

	expiry atomic.Pointer[expiry] // nil until bind: nothing expires
	sweeps sync.Once              // started by the first bind
}

// expiry is when profiles expire: TTL after their last write, by now.
type expiry struct {
	ttl time.Duration // 0: never
	now func() time.Time
}

// OpenLocal opens the local store in cfg.Dir, creating it if needed.
func OpenLocal(cfg LocalConfig) (*Local, error) {
	if cfg.Dir == "" {
		return nil, errors.New("identity store: no directory")
	}
	switch {
	case cfg.MemoryBytes == 0:
		cfg.MemoryBytes = DefaultLocalMemory
	case cfg.MemoryBytes < MinLocalMemory:
		return nil, fmt.Errorf("identity store: memory %d bytes is under %d", cfg.MemoryBytes, MinLocalMemory)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "identity-store")
	store, err := localdb.Open(localdb.Options{Dir: cfg.Dir, MemoryBytes: cfg.MemoryBytes, What: "identity store", Logger: log,
		FilterBytes: cfg.MemoryBytes / localFilterShare})
	switch {
	case errors.Is(err, localdb.ErrInUse):
		return nil, fmt.Errorf("open identity store %s: %w (stop the capstan that runs on this data directory, or let it serve the request)", cfg.Dir, ErrLocalInUse)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("open identity store %s: %w", cfg.Dir, err)
	case err != nil:
		return nil, fmt.Errorf("open identity store %s (damaged? it is derived data: remove the directory to start an empty graph): %w", cfg.Dir, err)
	}
	l := &Local{store: store, db: store.DB, filter: store.Filter(), dir: cfg.Dir}
	if err := l.upgradeFormat(log); err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("open identity store %s: %w", cfg.Dir, err)
	}
	if err := store.CheckFormat(formatKey, localFormat); err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("open identity store %s: %w", cfg.Dir, err)
	}
	return l, nil
}

// upgradeFormat marks a store of format 1 as format 2 (synced), which
// reads its JSON profiles as they are.
func (l *Local) upgradeFormat(log *slog.Logger) error {
	v, c, err := l.db.Get(formatKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil // new: CheckFormat writes it
	}
	if err != nil {
		return fmt.Errorf("read format: %w", err)
	}
	old := string(v)
	_ = c.Close()
	if old != localFormat1 {
		return nil
	}
	if err := l.db.Set(formatKey, []byte(localFormat), pebble.Sync); err != nil {
		return fmt.Errorf("upgrade format: %w", err)
	}
	log.Info("identity store format upgraded: profiles are written compact from now on", "from", old, "to", localFormat)
	return nil
}

// bind sets the TTL and clock (the Graph's, at Open) and starts the sweep
// of expired profiles, once.
func (l *Local) bind(ttl time.Duration, now func() time.Time) {
	l.expiry.Store(&expiry{ttl: ttl, now: now})
	l.sweeps.Do(func() { l.store.StartSweeps(sweepEvery(ttl), l.sweep, "expired identity profiles") })
}

// sweepEvery is how often the sweeper looks for expired profiles: a
// sixteenth of the TTL, between a minute and a day. A sweep reads the
// whole store, and expired profiles are invisible meanwhile: it only
// gives back their disk space.
func sweepEvery(ttl time.Duration) time.Duration { return max(time.Minute, min(ttl/16, 24*time.Hour)) }

// Close stops the sweep and closes the store.
func (l *Local) Close() error { return l.store.Close() }

// Dir returns the store's directory.
func (l *Local) Dir() string { return l.dir }

// localKey encodes a profile key ("u." or "a." and 64 hex digits).
func localKey(key string) ([]byte, error) {
	return appendLocalKey(make([]byte, 0, localKeyLen), key)
}

// localKeyLen is the length of a profile's stored key.
const localKeyLen = 1 + 32

// appendLocalKey appends key's stored key to dst.
func appendLocalKey(dst []byte, key string) ([]byte, error) {
	if len(key) != 2+64 || (key[:2] != userPrefix && key[:2] != anonPrefix) {
		return nil, fmt.Errorf("identity store: malformed key %q", key)
	}
	n := len(dst)
	dst = append(dst, key[0])
	dst = append(dst, make([]byte, 32)...)
	if _, err := hex.Decode(dst[n+1:], []byte(key[2:])); err != nil {
		return nil, fmt.Errorf("identity store: malformed key %q", key)
	}
	return dst, nil
}

// profileKey decodes a local key; false for a meta key.
func profileKey(k []byte) (string, bool) {
	if len(k) != 33 || (k[0] != 'u' && k[0] != 'a') {
		return "", false
	}
	return string(k[0]) + "." + hex.EncodeToString(k[1:]), true
}

// value decodes a stored value; expired reports it is past the TTL.
func (l *Local) value(v []byte) (stored, error) {
	if len(v) < 16 {
		return stored{}, fmt.Errorf("identity store: value of %d bytes", len(v))
	}
	s := stored{
		rev:    binary.BigEndian.Uint64(v),
		at:     time.UnixMilli(int64(binary.BigEndian.Uint64(v[8:]))),
		data:   bytes.Clone(v[16:]),
		exists: true,
	}
	if e := l.expiry.Load(); e != nil && e.ttl > 0 && !e.now().Before(s.at.Add(e.ttl)) {
		s.exists, s.data = false, nil
	}
	return s, nil
}

// read returns the stored profile at k (absent: zero). An expired one has
// exists false and its revision, which the next write increments.
func (l *Local) read(k []byte) (stored, error) {
	if l.filter.Absent(k) {
		return stored{}, nil
	}
	v, c, err := l.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return stored{}, nil
	}
	if err != nil {
		return stored{}, err
	}
	defer c.Close()
	return l.value(v)
}

// probed is read through p, for keys most likely absent (localdb.Probe).
func (l *Local) probed(p *localdb.Probe, k []byte) (stored, error) {
	v, ok, err := p.Get(k)
	if !ok || err != nil {
		return stored{}, err
	}
	return l.value(v)
}

func (l *Local) get(_ context.Context, key string) (stored, error) {
	k, err := localKey(key)
	if err != nil {
		return stored{}, err
	}
	if err := l.store.Acquire(); err != nil {
		return stored{}, err
	}
	defer l.store.Release()
	s, err := l.read(k)
	if !s.exists {
		s.rev = 0 // an expired profile is absent: a create (0) replaces it
	}
	return s, err
}

func encodeValue(rev uint64, at time.Time, data []byte) []byte {
	v := make([]byte, 16, 16+len(data))
	binary.BigEndian.PutUint64(v, rev)
	binary.BigEndian.PutUint64(v[8:], uint64(at.UnixMilli()))
	return append(v, data...)
}

// check returns the revision the write at k must name and the one it
// writes: a revision one above the stored one, expired or not.
func (l *Local) check(k []byte, rev uint64) (uint64, error) {
	cur, err := l.read(k)
	return checked(cur, err, rev)
}

// checked is check's test of cur, the value read at the key.
func checked(cur stored, err error, rev uint64) (uint64, error) {
	if err != nil {
		return 0, err
	}
	want := cur.rev
	if !cur.exists {
		want = 0
	}
	if want != rev {
		return 0, fmt.Errorf("%w: expected %d, have %d", errRevision, rev, want)
	}
	return cur.rev + 1, nil
}

func (l *Local) put(_ context.Context, key string, data []byte, rev uint64, at time.Time) (uint64, error) {
	k, err := localKey(key)
	if err != nil {
		return 0, err
	}
	if err := l.store.Acquire(); err != nil {
		return 0, err
	}
	defer l.store.Release()
	sk := string(k)
	defer l.keys.Unlock(sk, l.keys.Lock(sk))
	next, err := l.check(k, rev)
	if err != nil {
		return 0, err
	}
	defer l.filter.EndAdds(l.filter.BeginAdds()) // after the write (localdb.Filter)
	l.filter.Add(k)
	if err := l.db.Set(k, encodeValue(next, at, data), pebble.NoSync); err != nil {
		return 0, err
	}
	l.store.Dirty()
	return next, nil
}

// createAll writes the creates in one batch, holding the keys' locks.
func (l *Local) createAll(_ context.Context, keys []string, data [][]byte, at time.Time) ([]uint64, []error) {
	revs, errs := make([]uint64, len(keys)), make([]error, len(keys))
	if err := l.store.Acquire(); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return revs, errs
	}
	defer l.store.Release()
	// The stored keys, in one buffer, and in order for the locks and the
	// probe below.
	ks := make([][]byte, len(keys))
	kbuf := make([]byte, len(keys)*localKeyLen)
	for i, key := range keys {
		ks[i], errs[i] = appendLocalKey(kbuf[i*localKeyLen:i*localKeyLen:(i+1)*localKeyLen], key)
	}
	order := localdb.Order(ks)
	// The keys to lock: the valid ones, sorted and each once (localdb.KeyLocks).
	locked := localdb.KeysToLock(ks, order, func(i int) bool { return errs[i] != nil })
	defer l.keys.UnlockAll(locked, l.keys.LockAll(locked))
	// New profiles, most of them: the filter knows nearly all of them
	// absent, and one probe reads the others, in key order (localdb.Order:
	// half the CPU of a look-up in a grown store), testing the bloom
	// filters of every level (Get skips the last one's).
	p, err := l.store.NewProbe()
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return revs, errs
	}
	defer p.Close()
	b := l.db.NewBatch()
	defer b.Close()
	defer l.filter.EndAdds(l.filter.BeginAdds()) // after the commit (localdb.Filter)
	for _, i := range order {
		err := errs[i]
		if err == nil {
			cur, rerr := l.probed(p, ks[i])
			revs[i], err = checked(cur, rerr, 0)
		}
		if err == nil {
			l.filter.Add(ks[i])
			err = b.Set(ks[i], encodeValue(revs[i], at, data[i]), nil)
		}
		if err != nil {
			revs[i], errs[i] = 0, err
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		for i := range keys {
			if errs[i] == nil {
				revs[i], errs[i] = 0, err
			}
		}
	}
	l.store.Dirty()
	return revs, errs
}

// purge deletes key and syncs; compact then rewrites the tables that held
// it, so that its data leaves the disk too.
func (l *Local) purge(_ context.Context, key string) error {
	k, err := localKey(key)
	if err != nil {
		return err
	}
	if err := l.store.Acquire(); err != nil {
		return err
	}
	defer l.store.Release()
	sk := string(k)
	defer l.keys.Unlock(sk, l.keys.Lock(sk))
	return l.db.Delete(k, pebble.Sync)
}

// compact rewrites the key ranges of keys (deleted ones): pebble drops a
// deleted value from disk only when a compaction reaches it, so a privacy
// deletion forces one over each key (one key's range: the few tables, one
// per level, that may hold it).
func (l *Local) compact(ctx context.Context, keys []string) error {
	if err := l.store.Acquire(); err != nil {
		return err
	}
	defer l.store.Release()
	for _, key := range keys {
		k, err := localKey(key)
		if err != nil {
			return err
		}
		if err := l.db.Compact(ctx, k, append(k, 0), false); err != nil {
			return fmt.Errorf("compact a deleted identity profile: %w", err)
		}
	}
	return nil
}

func (l *Local) each(ctx context.Context, fn func(key string, s stored) error) error {
	if err := l.store.Acquire(); err != nil {
		return err
	}
	defer l.store.Release()
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'a'}, UpperBound: []byte{'v'}})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		key, ok := profileKey(it.Key())
		if !ok {
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		s, err := l.value(v)
		if err != nil {
			return err
		}
		if s.exists {
			if err := fn(key, s); err != nil {
				return err
			}
		}
	}
	return it.Error()
}

// sweep removes the expired profiles and returns how many.
func (l *Local) sweep() (int, error) {
	if e := l.expiry.Load(); e == nil || e.ttl <= 0 {
		return 0, nil
	}
	lock, done := l.keys.SweepLock(func(k []byte) string { return string(k) })
	defer done()
	return l.store.Sweep([]byte{'a'}, []byte{'v'}, func(k, v []byte) bool {
		if _, ok := profileKey(k); !ok {
			return false // a meta key
		}
		s, err := l.value(v)
		return err == nil && !s.exists
	}, lock)
}

// Checkpoint writes a consistent copy of the store to dir, which must not
// exist (a backup).
func (l *Local) Checkpoint(dir string) error { return l.store.Checkpoint(dir) }

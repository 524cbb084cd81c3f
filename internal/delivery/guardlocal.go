package delivery

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/capstan-gw/capstan/internal/localdb"
)

// DefaultGuardMemory bounds the local guard store's memory (block cache,
// filter of absent keys and memtables): it does not grow with the number
// of claims.
const DefaultGuardMemory = 16 << 20

// guardFilterShare is the share of GuardLocalConfig.MemoryBytes the filter
// of absent keys (localdb.Filter) may grow to, 1.25 bytes a key: 8 MiB of
// the default 16 MiB, the rest being pebble's cache (memtables and blocks).
// The guard's keys live as long as its window (GuardTTL, 7 days); the
// filter holds them and those written since it was last rebuilt from the
// store (localdb.Filter: once full and the sweeps removed half of the keys
// it holds), at most twice the window's. Up to 6.7 million keys in it 1-3%
// of the creates of new eventIds look their key up; beyond, the filter's
// last generation fills (17% at twice as many keys, then nearly all, as
// without a filter: never wrong, only slower). A site with more than 3.3
// million claims in the window sets engine.guard_memory_bytes
// (GuardLocalConfig.MemoryBytes) to 5 bytes a claim.
const guardFilterShare = 2

// ErrGuardInUse means another process has the local guard store open: one
// process owns it.
var ErrGuardInUse = errors.New("eventId guard store in use by another process")

// guardFormat is the version of the local guard store's layout, under
// guardFormatKey. Another version is refused rather than read wrong.
const guardFormat = "capstan-eventids-pebble-1"

// The local store's keys: 'e' and the 16 bytes of a claim key's hash (the
// hex of guardKey, decoded), 'g' and the 8 bytes of a claim group's id
// (groupKey); meta keys start with 'm'. A value is the write time (Unix
// ms, 8 bytes, big-endian) and the bucket's value.
var guardFormatKey = []byte("mformat")

// GuardLocal is the eventId collision guard's store on the local disk
// (pebble), used with the embedded engine: unlike the KV bucket, whose
// file store keeps an index entry in memory for every key (258 bytes of
// heap per claim, BenchmarkClaimMemory), it keeps in memory only a bounded
// cache and filter. One process owns it (the directory is locked); create-if-absent
// is a per-key lock in that process. Durability: a batch's claims are
// fsynced together before anything is sent under them (sync), as the
// bucket's are; the accepted marks of a request are fsynced together
// before its events are acknowledged (the bucket's survive a crash of the
// process, not always a power loss); a release is written without sync
// and fsynced within localdb.WALSync (losing it only sends a corrected
// conversion under a derived eventId). Keys expire GuardTTL after their
// last write: reads ignore expired ones at once, and a sweep removes them.
// Every runner of the process shares it (keys name the destination). It
// is not derived data: without it, eventIds sent in the last 7 days may
// go out again with other content.
type GuardLocal struct {
	store *localdb.DB // opened, locked, its log synced
	db    *pebble.DB  // store.DB
	// filter knows most absent keys (a new eventId's claim): every write
	// Adds its key to it before it is committed (localdb.Filter). A key
	// written and not Added could be called absent: a second claim of it
	// would succeed, and another content go out under the eventId.
	filter *localdb.Filter
	dir    string
	// keys locks the encoded keys (string(k)) of create-if-absent, the
	// compare-and-delete and the sweep.
	keys localdb.KeyLocks
	ttl  time.Duration
	now  func() time.Time
}

// GuardLocalConfig configures OpenGuardLocal. The zero value of a field
// but Dir means its default.
type GuardLocalConfig struct {
	// Dir holds the store; created if missing. Required.
	Dir string
	// MemoryBytes bounds the store's memory: the filter of absent keys
	// (growing with the claims up to half of it, 1.25 bytes a claim) and
	// pebble's cache (memtables and blocks). Default DefaultGuardMemory
	// (engine.guard_memory_bytes).
	MemoryBytes int64
	// SweepEvery is how often expired keys are removed from disk.
	// Default GuardTTL/16 (10.5 h).
	SweepEvery time.Duration
	// Logger receives the store's errors. Nil: nothing is logged.
	Logger *slog.Logger
	// now is the clock of expiry (tests); nil: time.Now.
	now func() time.Time
}

// OpenGuardLocal opens the local guard store in cfg.Dir, creating it if
// needed. Close it after the runners stopped.
func OpenGuardLocal(cfg GuardLocalConfig) (*GuardLocal, error) {
	if cfg.Dir == "" {
		return nil, errors.New("eventId guard store: no directory")
	}
	if cfg.MemoryBytes <= 0 {
		cfg.MemoryBytes = DefaultGuardMemory
	}
	if cfg.SweepEvery <= 0 {
		cfg.SweepEvery = GuardTTL / 16
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "eventid-store")
	store, err := localdb.Open(localdb.Options{Dir: cfg.Dir, MemoryBytes: cfg.MemoryBytes, What: "eventId guard store", Logger: log,
		FilterBytes: cfg.MemoryBytes / guardFilterShare})
	switch {
	case errors.Is(err, localdb.ErrInUse):
		return nil, fmt.Errorf("open eventId guard store %s: %w (stop the capstan that runs on this data directory)", cfg.Dir, ErrGuardInUse)
	case err != nil:
		return nil, fmt.Errorf("open eventId guard store %s: %w", cfg.Dir, err)
	}
	l := &GuardLocal{store: store, db: store.DB, filter: store.Filter(), dir: cfg.Dir, ttl: GuardTTL, now: cfg.now}
	if err := store.CheckFormat(guardFormatKey, guardFormat); err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("open eventId guard store %s: %w", cfg.Dir, err)
	}
	store.StartSweeps(cfg.SweepEvery, l.sweep, "expired eventId claims")
	return l, nil
}

// Close stops the sweep and closes the store.
func (l *GuardLocal) Close() error { return l.store.Close() }

// Dir returns the store's directory.
func (l *GuardLocal) Dir() string { return l.dir }

// guardLocalKey encodes a bucket key: "e." and 32 hex digits, or "g." and
// 16.
func guardLocalKey(key string) ([]byte, error) {
	return appendGuardLocalKey(nil, key)
}

// guardLocalKeyMax is the length of the longest encoded key ('e' and 16
// bytes).
const guardLocalKeyMax = 1 + 16

// appendGuardLocalKey appends the encoding of key (guardLocalKey) to dst
// and returns the encoded key: a slice of the extended buffer, capped at
// its length (so that appending to dst later never writes over it).
func appendGuardLocalKey(dst []byte, key string) ([]byte, error) {
	n := 0
	switch {
	case strings.HasPrefix(key, "e."):
		n = 16
	case strings.HasPrefix(key, "g."):
		n = groupIDBytes
	}
	if n == 0 || len(key) != 2+2*n {
		return nil, fmt.Errorf("eventId guard store: malformed key %q", key)
	}
	start := len(dst)
	dst, err := hex.AppendDecode(append(dst, key[0]), []byte(key[2:]))
	if err != nil {
		return nil, fmt.Errorf("eventId guard store: malformed key %q", key)
	}
	return dst[start:len(dst):len(dst)], nil
}

// live returns the value in v (a stored value) and whether it has not
// expired.
func (l *GuardLocal) live(v []byte) ([]byte, bool) {
	if len(v) < 8 {
		return nil, false
	}
	at := time.UnixMilli(int64(binary.BigEndian.Uint64(v)))
	return v[8:], l.now().Before(at.Add(l.ttl))
}

// encode returns the stored value of value, written now.
func (l *GuardLocal) encode(value []byte) []byte { return l.encodeAt(l.now(), value) }

// encodeAt returns the stored value of value, written at at.
func (l *GuardLocal) encodeAt(at time.Time, value []byte) []byte {
	return appendStored(make([]byte, 0, 8+len(value)), at, value)
}

// appendStored appends the stored value of value, written at at, to dst.
func appendStored(dst []byte, at time.Time, value []byte) []byte {
	return append(binary.BigEndian.AppendUint64(dst, uint64(at.UnixMilli())), value...)
}

// read returns the live value at k (nil, false: absent or expired).
func (l *GuardLocal) read(k []byte) ([]byte, bool, error) {
	if l.filter.Absent(k) {
		return nil, false, nil
	}
	v, c, err := l.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer c.Close()
	val, ok := l.live(v)
	if !ok {
		return nil, false, nil
	}
	return bytes.Clone(val), true, nil
}

// probed is read through p, for keys most likely absent (localdb.Probe:
// it asks l's filter first).
func (l *GuardLocal) probed(p *localdb.Probe, k []byte) ([]byte, bool, error) {
	v, ok, err := p.Get(k)
	if !ok || err != nil {
		return nil, false, err
	}
	val, ok := l.live(v)
	if !ok {
		return nil, false, nil
	}
	return bytes.Clone(val), true, nil
}

func (l *GuardLocal) get(_ context.Context, key string) ([]byte, bool, error) {
	k, err := guardLocalKey(key)
	if err != nil {
		return nil, false, err
	}
	if err := l.store.Acquire(); err != nil {
		return nil, false, err
	}
	defer l.store.Release()
	return l.read(k)
}

// createAll creates the claims' keys (createKeys).
func (l *GuardLocal) createAll(ctx context.Context, cg *claimGroup, claims []*guardCheck) (slow []*guardCheck, created bool) {
	keys, values := make([]string, len(claims)), make([][]byte, len(claims))
	vals := make([]byte, len(claims)*groupedLen)
	for i, c := range claims {
		keys[i] = c.key
		values[i] = cg.putValue(vals[i*groupedLen:(i+1)*groupedLen:(i+1)*groupedLen], c.content, c.idx)
	}
	for i, err := range l.createKeys(ctx, keys, values) {
		c := claims[i]
		switch {
		case err == nil:
			c.owner, c.mine = c.content, true
			created = true
		case ctx.Err() != nil:
			c.err = ctx.Err()
		default:
			slow = append(slow, c)
		}
	}
	return slow, created
}

// createKeys writes each key's value where the key is absent (or expired),
// in writes of at most claimCommit keys, without sync (sync follows),
// holding the keys' locks.
// errs[i] is nil when key i was created, errClaimExists when it exists.
func (l *GuardLocal) createKeys(_ context.Context, keys []string, values [][]byte) []error {
	errs := make([]error, len(keys))
	if err := l.store.Acquire(); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	defer l.store.Release()
	// The encoded keys in one buffer, which never grows (so each key
	// stays where it was written).
	ks := make([][]byte, len(keys))
	kbuf := make([]byte, 0, len(keys)*guardLocalKeyMax)
	for i, key := range keys {
		if ks[i], errs[i] = appendGuardLocalKey(kbuf, key); errs[i] == nil {
			kbuf = kbuf[:len(kbuf)+len(ks[i])]
		}
	}
	// The keys in order, for the locks and for the probe below.
	order := localdb.Order(ks)
	// The keys to lock: the valid ones, sorted and each once (localdb.KeyLocks).
	locked := localdb.KeysToLock(ks, order, func(i int) bool { return errs[i] != nil })
	defer l.keys.UnlockAll(locked, l.keys.LockAll(locked))
	// New eventIds, nearly all: the filter knows nearly all of them
	// absent, and one probe reads the others, in key order (localdb.Order:
	// half the CPU of a look-up in a grown store), testing the bloom
	// filters of every level (Get skips the last one's).
	p, err := l.store.NewProbe()
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	defer p.Close()
	b := l.db.NewBatch()
	defer b.Close()
	defer l.filter.EndAdds(l.filter.BeginAdds()) // after the commits (localdb.Filter)
	// One write time for the batch's values, each built in v (Set copies
	// it into the batch).
	now := l.now()
	var v []byte
	// In key order a key given twice comes right after its first
	// occurrence: last is the key most recently written.
	var last []byte
	// The claims are committed claimCommit at a time; written holds the
	// indices of those in b.
	written := make([]int, 0, min(len(order), claimCommit))
	commit := func() {
		if err := b.Commit(pebble.NoSync); err != nil {
			for _, i := range written {
				errs[i] = err
			}
		}
		written = written[:0]
		b.Reset()
	}
	for _, i := range order {
		k := ks[i]
		if errs[i] != nil {
			continue
		}
		_, exists, err := l.probed(p, k)
		switch {
		case err != nil:
			errs[i] = err
		case exists || (last != nil && bytes.Equal(last, k)):
			errs[i] = errClaimExists
		default:
			last = k
			v = appendStored(v[:0], now, values[i])
			l.filter.Add(k)
			if errs[i] = b.Set(k, v, nil); errs[i] == nil {
				if written = append(written, i); len(written) == claimCommit {
					commit()
				}
			}
		}
	}
	if len(written) > 0 {
		commit()
	}
	l.store.Dirty()
	return errs
}

// claimCommit is how many claims createKeys commits in one write: well
// under pebble's large-batch threshold (half a memtable; a claim reserves
// about 250 bytes of a memtable while its batch is applied, pebble's
// largest skiplist node, so 1000 claims reserve 250 KB, under the 512 KiB
// threshold of the smallest memtables, 1 MiB). A batch above it is not
// applied to the memtable but queued as a memtable of its own, which
// rotates the memtable and is flushed on its own: with delivery's batches
// of 5000 claims (1.25 MB reserved, above the 1 MiB threshold of the
// default 16 MiB's memtables of 2 MiB) every batch became an L0 table of
// ~280 KB, 226 flushes for the 1.16 million claims of one delivery.sh
// run, and the compactions of those small tables 7.3% of capstan's CPU
// (docs/storage.md, "The eventId guard's claims in the memtable (session
// 24)"). The claims are durable only at the sync that follows
// (guard.check) in any case, so committing them in parts changes nothing
// a crash could show: nothing is sent under a claim before that sync.
const claimCommit = 1000

// errClaimExists: a create found its key.
var errClaimExists = errors.New("eventId claim exists")

func (l *GuardLocal) create(ctx context.Context, key string, value []byte) (bool, error) {
	err := l.createKeys(ctx, []string{key}, [][]byte{value})[0]
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, errClaimExists):
		return false, nil
	}
	return false, err
}

// putAll writes in one batch and fsyncs it (the accepted marks: one fsync
// per accepted request), so that a conversion the remote accepted is on
// disk as such before its event is acknowledged.
func (l *GuardLocal) putAll(_ context.Context, writes []markWrite) ([]markWrite, error) {
	if err := l.store.Acquire(); err != nil {
		return writes, err
	}
	defer l.store.Release()
	b := l.db.NewBatch()
	defer b.Close()
	defer l.filter.EndAdds(l.filter.BeginAdds()) // after the commit (localdb.Filter)
	for _, w := range writes {
		k, err := guardLocalKey(w.key)
		if err != nil {
			return writes, err
		}
		l.filter.Add(k)
		if err := b.Set(k, l.encode(w.data), nil); err != nil {
			return writes, err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return writes, err
	}
	return nil, nil
}

func (l *GuardLocal) deleteIf(_ context.Context, key string, value []byte) error {
	k, err := guardLocalKey(key)
	if err != nil {
		return err
	}
	if err := l.store.Acquire(); err != nil {
		return err
	}
	defer l.store.Release()
	sk := string(k)
	defer l.keys.Unlock(sk, l.keys.Lock(sk))
	v, ok, err := l.read(k)
	if err != nil || !ok || !bytes.Equal(v, value) {
		return err
	}
	l.store.Dirty()
	return l.db.Delete(k, pebble.NoSync)
}

// sync fsyncs the log: every write made so far is durable.
func (l *GuardLocal) sync(context.Context) error {
	if err := l.store.Acquire(); err != nil {
		return err
	}
	defer l.store.Release()
	return l.db.LogData(nil, pebble.Sync)
}

// sweep removes the expired keys, localdb.SweepChunk at a time, and
// returns how many.
func (l *GuardLocal) sweep() (int, error) {
	lock, done := l.keys.SweepLock(func(k []byte) string { return string(k) })
	defer done()
	return l.store.Sweep([]byte{'e'}, []byte{'h'}, func(_, v []byte) bool {
		_, ok := l.live(v)
		return !ok
	}, lock)
}

// Checkpoint writes a consistent copy of the store to dir, which must not
// exist (a backup).
func (l *GuardLocal) Checkpoint(dir string) error { return l.store.Checkpoint(dir) }

// Claimed reports whether destination dest's eventId id, under scope (the
// conversion rule), is claimed in the store (for tools and tests).
func (l *GuardLocal) Claimed(ctx context.Context, dest, scope, id string) (bool, error) {
	_, ok, err := l.get(ctx, guardKey(dest, scope, id))
	return ok, err
}

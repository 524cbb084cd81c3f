// Package localdb opens the pebble databases capstan keeps in its data
// directory beside the embedded engine (the identity graph's store, the
// eventId guard's store): owned by one process (the directory is flocked),
// with memory bounded whatever the number of keys, bloom filters on every
// level, at most two compactions at once, and the write-ahead log of
// writes made without sync fsynced every WALSync while there are some.
// Each user keeps its own key layout, expiry and locking; this package
// holds what opening and keeping such a store has in common: the check
// of its layout's version (CheckFormat), one lifecycle (uses under way
// hold Close off, Acquire; later ones fail with ErrClosed), the expiry
// sweeps in chunks (Sweep, StartSweeps), look-ups of likely absent keys
// (Probe) and, opt-in, an exact filter of absent keys in front of them
// (Filter), backups (Checkpoint, and the tools' requests to a running
// capstan, Serve and Call), the store's metrics (Collector) and the
// one-time move of a JetStream KV bucket into a store (MoveBucket,
// CopyBucket). It imports no other capstan package.
package localdb

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	pebblebloom "github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// WALSync is how often the log is written out and fsynced when there were
// writes without sync (Dirty): pebble keeps such writes in a buffer of its
// own until a block of 32 KiB fills, so without it a crash could lose any
// number of seconds of them.
const WALSync = 100 * time.Millisecond

// ErrInUse is wrapped by Open's error when another opener (this process
// or another) holds the directory.
var ErrInUse = errors.New("in use by another process")

// ErrClosed is wrapped by the error of every use of a DB after its Close
// (Acquire, Checkpoint, Figures, Sweep, a second Close), which reads
// "<What> closed".
var ErrClosed = errors.New("closed")

// Options configures Open.
type Options struct {
	// Dir holds the database; created (0700) if missing. Required.
	Dir string
	// MemoryBytes bounds the memory: pebble's cache (MemoryBytes less
	// FilterBytes), which holds the memtables (an eighth each, three at
	// most before writes wait, and one kept for reuse: pebble reserves
	// their memory in its block cache) and the blocks read, and the
	// Filter (FilterBytes at most). Required.
	MemoryBytes int64
	// What names the store in errors and logs ("identity store").
	What string
	// Logger receives pebble's errors and the syncer's. Nil: discarded.
	Logger *slog.Logger
	// FilterBytes, when above zero, gives the store a Filter (DB.Filter)
	// that grows with the keys, 1.25 bytes a key, up to that size (at most
	// half of MemoryBytes; while it is rebuilt, its new generations take a
	// quarter to half of it more, up to all of it when the store holds
	// nearly as many keys as it is sized for). Zero: no filter.
	FilterBytes int64

	// rebuildShare, above zero, replaces filterRebuildShare; noRebuild
	// turns the filter's rebuilds off (tests, benchmarks).
	rebuildShare int
	noRebuild    bool
}

// DB is an open store: DB is the pebble database.
type DB struct {
	*pebble.DB
	cache *pebble.Cache
	lock  *os.File
	dir   string
	what  string
	log   *slog.Logger

	filter *Filter // nil: none (Options.FilterBytes)

	// rebuildCue wakes the filter's rebuilder (cueRebuild); nil without a
	// filter. rebuilds counts the rebuilds done, rebuildShare is the
	// share of a core a rebuild's scan takes at most (1/rebuildShare).
	rebuildCue   chan struct{}
	rebuilds     atomic.Uint64
	rebuildShare int
	noRebuild    bool

	dirty atomic.Bool
	swept atomic.Uint64 // keys the sweeps removed

	// mu guards closed: Acquire holds it shared, Close exclusively.
	mu        sync.RWMutex
	closed    bool
	errClosed error // "<what> closed", wrapping ErrClosed

	stop  chan struct{}  // closed by Close: the syncer and the sweeps stop
	tasks sync.WaitGroup // the syncer and the sweeps

	closeOnce sync.Once
	closeDone chan struct{} // closed when the first Close has returned
	closeErr  error         // the first Close's result, set before closeDone
}

// Open opens (or creates) the store in o.Dir and starts its log syncer.
// A directory in use fails with an error wrapping ErrInUse; one pebble
// cannot open, with pebble's error (unwrapped).
func Open(o Options) (*DB, error) {
	if o.Dir == "" {
		return nil, fmt.Errorf("%s: no directory", o.What)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("open %s: %w", o.What, err)
	}
	f, err := os.Open(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", o.What, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("open %s %s: %w", o.What, o.Dir, ErrInUse)
	}
	if o.FilterBytes < 0 || o.FilterBytes > o.MemoryBytes/2 {
		f.Close()
		return nil, fmt.Errorf("open %s: filter of %d bytes is not within half of its memory (%d bytes)", o.What, o.FilterBytes, o.MemoryBytes)
	}
	// The memtables are not on top of the cache but in it: pebble reserves
	// each one's size in the block cache while it lives (and keeps one
	// for reuse). A cache of half the memory less the filter, as this
	// was, held at most 4 of its 12 MiB of blocks in the identity store's
	// default 32 MiB (8 of the 12 reserved by two or three memtables):
	// bench/results/idscale-2026-12-06-s13.md.
	cache := pebble.NewCache(o.MemoryBytes - o.FilterBytes)
	memtable := max(o.MemoryBytes/8, 1<<20)
	po := &pebble.Options{
		FS:                          vfs.Default,
		Cache:                       cache,
		MemTableSize:                uint64(memtable),
		MemTableStopWritesThreshold: 3,
		CompactionConcurrencyRange:  func() (int, int) { return 1, 2 },
		FormatMajorVersion:          pebble.FormatNewest,
		Logger:                      logger{log, o.What},
		// The keys are hashes: every flushed table spans the whole key
		// space, so an L0 compaction rewrites all of the level it goes
		// to. pebble scores L0 at twice its sublevels over
		// L0CompactionThreshold, so it compacts L0 at half the
		// threshold's sublevels (bench/results/index-2026-12-07-s19.md).
		// With pebble's defaults (threshold 4: compact at 2 sublevels,
		// L6 the base level until it holds 64 MiB) the identity store
		// of a delivery.sh run (65 MB after 320,000 new visitors) was
		// rewritten after every flush or two: compactions took 12.4 of
		// capstan's 86 CPU-µs per event. Threshold 8 (compacting at 4
		// sublevels; written as "8 sublevels" then) into a base level
		// of 4 memtables (pebble puts it above L6 once L6 outgrows
		// that) made them 5.8 (BenchmarkGrow,
		// bench/results/e2e-profile-2026-12-06-s10.md). A look-up of
		// an absent key tests one more bloom filter per L0 table and
		// costs no more; these stores are read by every delivery, so
		// their L0 is kept short.
		//
		// Threshold 16 (compacting at 8 sublevels) since session 21:
		// each L0 compaction still rewrites the whole base level, so
		// half as many of them rewrite it half as often. BenchmarkGrow
		// (300,000 keys, the size of a delivery.sh run's identity
		// store) wrote the store 2.3 times over instead of 3.5, and
		// compactions into the base level were the largest part of
		// pebble's 23% of capstan's CPU end to end with new visitors
		// (docs/storage.md, "End to end and memory on an AMD VM
		// (session 21)"). Reads mostly stop at the filter of absent
		// keys and the identity memo, and the few that reach L0 test
		// one bloom filter per table, as the de-duplication index's
		// do at 16 sublevels. L0StopWritesThreshold (compared with
		// the sublevels themselves; pebble's default 12) is raised to
		// 24 to stay as far above the compaction point as 12 was
		// above 4.
		//
		// Threshold 32 (compacting at 16 sublevels) since session 22,
		// for the same reason: the base level is rewritten half as
		// often again. Growing a store of new keys with the filter of
		// absent keys in front of it (BenchmarkGrow with FilterBytes,
		// 300,000 keys) cost 17-21% less CPU per key, the store written
		// 1.8 times over instead of 2.3-2.4; the eventId guard's store
		// (BenchmarkGuardScale, 400,000 claims) 2.1 instead of 2.3-2.7
		// CPU-µs a claim (docs/storage.md, "The local stores'
		// compactions and key order (session 22)"). A look-up that
		// reaches L0 tests up to 16 bloom filters there instead of 8
		// (their blocks' total size is set by the keys, not by the
		// tables); most look-ups of new keys stop at the filter of
		// absent keys. Writes stop at 48 sublevels, three times the
		// compaction point as 24 was.
		L0CompactionThreshold: 32,
		L0StopWritesThreshold: 48,
		LBaseMaxBytes:         4 * memtable,
	}
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = pebblebloom.FilterPolicy(10) // most look-ups of new keys find nothing
	}
	po.EventListener = &pebble.EventListener{
		BackgroundError: func(err error) { log.Error("background error", "error", err) },
	}
	db, err := pebble.Open(o.Dir, po)
	if err != nil {
		cache.Unref()
		f.Close()
		return nil, err
	}
	d := &DB{DB: db, cache: cache, lock: f, dir: o.Dir, what: o.What, log: log, stop: make(chan struct{}),
		closeDone: make(chan struct{}),
		errClosed: fmt.Errorf("%s %w", o.What, ErrClosed), rebuildShare: filterRebuildShare,
		noRebuild: o.noRebuild}
	if o.rebuildShare > 0 {
		d.rebuildShare = o.rebuildShare
	}
	d.repeat(WALSync, d.syncLog)
	if o.FilterBytes > 0 {
		d.filter = d.newFilter(o.FilterBytes)
	}
	return d, nil
}

// Filter returns the store's filter of absent keys, nil when it has none
// (Options.FilterBytes). Its user Adds every key before committing a write
// of it.
func (d *DB) Filter() *Filter { return d.filter }

// CheckFormat checks that the version of the store's layout, stored at
// key, is format, and writes it (synced) into a store that has none yet:
// a store of another version is refused rather than read wrong. Right
// after Open, before any other use.
func (d *DB) CheckFormat(key []byte, format string) error {
	v, c, err := d.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		defer d.filter.EndAdds(d.filter.BeginAdds())
		d.filter.Add(key)
		return d.Set(key, []byte(format), pebble.Sync)
	}
	if err != nil {
		return fmt.Errorf("read format: %w", err)
	}
	defer c.Close()
	if string(v) != format {
		return fmt.Errorf("format %q, want %q", v, format)
	}
	return nil
}

// Acquire holds Close off until Release, or returns the error wrapping
// ErrClosed once Close has begun: every use of the store but Dirty goes
// between the two. Uses hold it shared, so they run concurrently; one
// must not Acquire again while it holds it (a Close waiting between the
// two would deadlock them), nor call the methods of DB that acquire it
// themselves (Checkpoint, Figures, Sweep).
func (d *DB) Acquire() error {
	d.mu.RLock()
	if d.closed {
		d.mu.RUnlock()
		return d.errClosed
	}
	return nil
}

// Release ends a use begun by a successful Acquire.
func (d *DB) Release() { d.mu.RUnlock() }

// Dirty notes writes made without sync: the syncer fsyncs the log within
// WALSync.
func (d *DB) Dirty() { d.dirty.Store(true) }

// syncLog writes out and fsyncs the log if there were writes without
// sync since it last did.
func (d *DB) syncLog() {
	if !d.dirty.Swap(false) {
		return
	}
	if err := d.LogData(nil, pebble.Sync); err != nil {
		d.log.Error("syncing the "+d.what+"'s log failed", "error", err)
	}
}

// repeat calls fn every `every` in a goroutine of its own until Close,
// which waits for it. Not after Close: the caller holds Acquire, or is
// Open.
func (d *DB) repeat(every time.Duration, fn func()) {
	d.tasks.Add(1)
	go func() {
		defer d.tasks.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-d.stop:
				return
			case <-t.C:
				fn()
			}
		}
	}()
}

// Close stops the sweeps and the syncer, waits for the uses under way
// (Acquire) and the sweeps to end, syncs the log if there were writes
// since its last sync, and closes the database, the cache and the lock.
// A sweep under way stops at its next key. Uses after Close fail with an
// error wrapping ErrClosed. A second Close, concurrent or later, waits for
// the first to be done (the lock released) and returns its result. The
// caller stops its own users first.
func (d *DB) Close() error {
	d.closeOnce.Do(func() {
		d.closeErr = d.close()
		close(d.closeDone)
	})
	<-d.closeDone
	return d.closeErr
}

func (d *DB) close() error {
	close(d.stop) // first: a sweep under way stops
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.tasks.Wait()
	var err error
	if d.dirty.Swap(false) {
		err = d.LogData(nil, pebble.Sync)
	}
	err = errors.Join(err, d.DB.Close())
	d.cache.Unref()
	d.lock.Close()
	if err != nil {
		return fmt.Errorf("close %s: %w", d.what, err)
	}
	return nil
}

// Checkpoint writes a consistent copy of the store to dir, which must not
// exist (a backup): its log is flushed first, so that the copy holds
// every write made before the call, synced or not.
func (d *DB) Checkpoint(dir string) error {
	if err := d.Acquire(); err != nil {
		return err
	}
	defer d.Release()
	if err := d.DB.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("checkpoint %s: %w", d.what, err)
	}
	return nil
}

// Figures returns the entries of the store's tables (an estimate: deleted
// and replaced ones count until compaction drops them; the memtables are
// not counted) and the disk space of its files, for metrics.
func (d *DB) Figures() (keys, disk int64, err error) {
	if err := d.Acquire(); err != nil {
		return 0, 0, err
	}
	defer d.Release()
	levels, err := d.SSTables(pebble.WithProperties())
	if err != nil {
		return 0, 0, err
	}
	for _, lv := range levels {
		for _, t := range lv {
			if t.Properties != nil {
				keys += int64(t.Properties.NumEntries)
			}
		}
	}
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return 0, 0, err
	}
	for _, e := range entries {
		info, err := e.Info()
		if errors.Is(err, os.ErrNotExist) {
			continue // removed by a compaction meanwhile
		}
		if err != nil {
			return 0, 0, err
		}
		if !info.Mode().IsRegular() {
			continue
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			disk += st.Blocks * 512
		} else {
			disk += info.Size()
		}
	}
	return keys, disk, nil
}

// logger routes pebble's errors to slog and drops its informational lines.
type logger struct {
	log  *slog.Logger
	what string
}

func (p logger) Errorf(format string, args ...any) {
	p.log.Error(strings.TrimRight(fmt.Sprintf(format, args...), "\n "))
}

// Fatalf must not return (pebble's contract): pebble calls it where it
// cannot go on, such as a log or table gone from under it (the directory
// removed while the store was open), at times with its own mutexes
// released. A panic there unwinds through pebble's deferred unlocks and
// ends the process with "fatal error: sync: unlock of unlocked mutex"
// instead of the cause. So it logs the cause and ends the process with
// status 1, as pebble's own logger does.
func (p logger) Fatalf(format string, args ...any) {
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n ")
	p.log.Error(p.what + ": fatal store error; capstan stops: " + msg)
	os.Exit(1)
}

func (logger) Infof(string, ...any) {}

// Probe looks up keys that are most likely absent (creates of new keys),
// all as of the moment NewProbe was called. Unlike DB.Get, which never
// reads the bloom filters of the last level (L6, where almost every key of
// a store that is not new lives) and so reads and decompresses a data block
// for each key it does not find there, a probe consults every level's
// filter first: a miss then costs a filter test per table. In a store with
// a Filter (Options.FilterBytes), a key the filter knows absent costs no
// look-up at all: absent now, so absent at NewProbe too unless deleted
// since (a rebuilt filter forgets deleted keys), which the probe's users
// rule out: they hold the keys' locks from before NewProbe. One probe serves a whole batch of look-ups; it is not
// safe for concurrent use. Close it soon: it pins the memtables and tables
// it reads.
type Probe struct {
	it     *pebble.Iterator
	filter *Filter // nil: none
}

// NewProbe returns a probe of the store as it is now.
func (d *DB) NewProbe() (*Probe, error) {
	it, err := d.NewIter(&pebble.IterOptions{UseL6Filters: true})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.what, err)
	}
	return &Probe{it: it, filter: d.filter}, nil
}

// Order returns the indices of keys in ascending key order, equal keys in
// the order given. A Probe's look-ups made in that order move forward
// through every level: pebble seeks on from where it stands, in the
// memtables too, and opens each table of a level once rather than once per
// key (the keys are hashes: in random order nearly every look-up moved to
// another table of L6). A nil key sorts first.
//
// It sorts each key's first 8 bytes as a number, with its index, and
// compares the keys themselves only where those are equal: the keys are
// hashes, so nearly never. A stable sort of the indices comparing the
// keys (as this was) took 1.2-1.3% of capstan's CPU in BenchmarkDelivery
// (the eventId guard's 5,000 claims a batch, the identity store's
// creates), most of it in bytes.Compare and the stable sort's merges.
func Order(keys [][]byte) []int {
	type entry struct {
		prefix uint64 // the key's first 8 bytes, zeros after a shorter key
		i      int
	}
	es := make([]entry, len(keys))
	for i, k := range keys {
		var p [8]byte
		copy(p[:], k)
		es[i] = entry{binary.BigEndian.Uint64(p[:]), i}
	}
	// A zero-padded prefix orders as the key does (a key below another
	// never has a greater prefix); on equal prefixes the keys, then the
	// indices decide: the order of a stable sort.
	slices.SortFunc(es, func(a, b entry) int {
		if a.prefix != b.prefix {
			return cmp.Compare(a.prefix, b.prefix)
		}
		if c := bytes.Compare(keys[a.i], keys[b.i]); c != 0 {
			return c
		}
		return cmp.Compare(a.i, b.i)
	})
	order := make([]int, len(keys))
	for j, e := range es {
		order[j] = e.i
	}
	return order
}

// Get returns the value at k and true, or false when k is absent. The value
// is valid until the next Get or Close.
func (p *Probe) Get(k []byte) ([]byte, bool, error) {
	if p.filter.Absent(k) {
		return nil, false, nil
	}
	if !p.it.SeekPrefixGE(k) {
		return nil, false, p.it.Error()
	}
	if !bytes.Equal(p.it.Key(), k) { // a longer key with k as prefix: the comparer splits none
		return nil, false, nil
	}
	v, err := p.it.ValueAndErr()
	if err != nil {
		return nil, false, err
	}
	return v, true, nil
}

// Close releases the probe.
func (p *Probe) Close() error { return p.it.Close() }

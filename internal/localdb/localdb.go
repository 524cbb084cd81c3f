// Package localdb opens the pebble databases capstan keeps in its data
// directory beside the embedded engine (the identity graph's store, the
// eventId guard's store): owned by one process (the directory is flocked),
// with memory bounded whatever the number of keys, bloom filters on every
// level, at most two compactions at once, and the write-ahead log of
// writes made without sync fsynced every WALSync while there are some.
// Each user keeps its own key layout, expiry and locking; this package
// holds only what opening and keeping such a store has in common: the
// expiry sweep in chunks (Sweep), look-ups of likely absent keys (Probe)
// and the one-time move of a JetStream KV bucket into a store
// (MoveBucket). It imports no other capstan package.
package localdb

import (
	"bytes"
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

// Options configures Open.
type Options struct {
	// Dir holds the database; created (0700) if missing. Required.
	Dir string
	// MemoryBytes bounds the memory: block cache (half) and memtables (an
	// eighth each, three at most before writes wait). Required.
	MemoryBytes int64
	// What names the store in errors and logs ("identity store").
	What string
	// Logger receives pebble's errors and the syncer's. Nil: discarded.
	Logger *slog.Logger
}

// DB is an open store: DB is the pebble database.
type DB struct {
	*pebble.DB
	cache *pebble.Cache
	lock  *os.File
	dir   string
	what  string
	log   *slog.Logger

	dirty     atomic.Bool
	stop      chan struct{}
	synced    chan struct{}
	closeOnce sync.Once
	closeErr  error
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
	cache := pebble.NewCache(o.MemoryBytes / 2)
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
		// to. With pebble's defaults (compact L0 at 4 sublevels, L6 the
		// base level until it holds 64 MiB) the identity store of a
		// delivery.sh run (65 MB after 320,000 new visitors) was
		// rewritten after every flush or two: compactions took 12.4 of
		// capstan's 86 CPU-µs per event. Compacting L0 at 8 sublevels
		// into a base level of 4 memtables (pebble puts it above L6
		// once L6 outgrows that) made them 5.8 (BenchmarkGrow,
		// bench/results/e2e-profile-2026-12-06-s10.md). A look-up of
		// an absent key tests one more bloom filter per L0 table and
		// costs no more. L0StopWritesThreshold (12) stays above 8.
		L0CompactionThreshold: 8,
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
	d := &DB{DB: db, cache: cache, lock: f, dir: o.Dir, what: o.What, log: log, stop: make(chan struct{}), synced: make(chan struct{})}
	go d.syncer()
	return d, nil
}

// Dirty notes writes made without sync: the syncer fsyncs the log within
// WALSync.
func (d *DB) Dirty() { d.dirty.Store(true) }

func (d *DB) syncer() {
	defer close(d.synced)
	t := time.NewTicker(WALSync)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		if !d.dirty.Swap(false) {
			continue
		}
		if err := d.LogData(nil, pebble.Sync); err != nil {
			d.log.Error("syncing the "+d.what+"'s log failed", "error", err)
		}
	}
}

// Close stops the syncer, syncs the log if there were writes since its
// last sync, and closes the database, the cache and the lock. The caller
// stops its own users first.
func (d *DB) Close() error {
	d.closeOnce.Do(func() {
		close(d.stop)
		<-d.synced
		var err error
		if d.dirty.Swap(false) {
			err = d.LogData(nil, pebble.Sync)
		}
		err = errors.Join(err, d.DB.Close())
		d.cache.Unref()
		d.lock.Close()
		if err != nil {
			d.closeErr = fmt.Errorf("close %s: %w", d.what, err)
		}
	})
	return d.closeErr
}

// Figures returns the entries of the store's tables (an estimate: deleted
// and replaced ones count until compaction drops them; the memtables are
// not counted) and the disk space of its files, for metrics. Not after
// Close.
func (d *DB) Figures() (keys, disk int64, err error) {
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
// Fatalf must not return (pebble's contract).
type logger struct {
	log  *slog.Logger
	what string
}

func (p logger) Errorf(format string, args ...any) {
	p.log.Error(strings.TrimRight(fmt.Sprintf(format, args...), "\n "))
}

func (p logger) Fatalf(format string, args ...any) {
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n ")
	p.log.Error(msg)
	panic(p.what + ": " + msg)
}

func (logger) Infof(string, ...any) {}

// Probe looks up keys that are most likely absent (creates of new keys),
// all as of the moment NewProbe was called. Unlike DB.Get, which never
// reads the bloom filters of the last level (L6, where almost every key of
// a store that is not new lives) and so reads and decompresses a data block
// for each key it does not find there, a probe consults every level's
// filter first: a miss then costs a filter test per table. One probe
// serves a whole batch of look-ups; it is not safe for concurrent use.
// Close it soon: it pins the memtables and tables it reads.
type Probe struct {
	it *pebble.Iterator
}

// NewProbe returns a probe of the store as it is now.
func (d *DB) NewProbe() (*Probe, error) {
	it, err := d.NewIter(&pebble.IterOptions{UseL6Filters: true})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.what, err)
	}
	return &Probe{it: it}, nil
}

// Order returns the indices of keys in ascending key order, equal keys in
// the order given. A Probe's look-ups made in that order move forward
// through every level: pebble seeks on from where it stands, in the
// memtables too, and opens each table of a level once rather than once per
// key (the keys are hashes: in random order nearly every look-up moved to
// another table of L6). A nil key sorts first.
func Order(keys [][]byte) []int {
	order := make([]int, len(keys))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return bytes.Compare(keys[a], keys[b]) })
	return order
}

// Get returns the value at k and true, or false when k is absent. The value
// is valid until the next Get or Close.
func (p *Probe) Get(k []byte) ([]byte, bool, error) {
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

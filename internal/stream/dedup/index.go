package dedup

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Defaults and limits of Options.
const (
	// DefaultWindow is the de-duplication window when Options.Window is 0.
	DefaultWindow = 24 * time.Hour
	// DefaultMemoryBytes is the memory budget when Options.MemoryBytes is 0.
	DefaultMemoryBytes = 256 << 20
	// MinMemoryBytes is the smallest memory budget Open accepts.
	MinMemoryBytes = 32 << 20
)

var (
	// ErrDamaged is wrapped by Open's error when the directory holds an
	// index that cannot be opened (damaged files, an unknown format): the
	// caller removes the directory and rebuilds the index from the stream.
	// Open does not return it for files it may not read or write, nor for
	// a directory another Index holds: removing those would not help.
	ErrDamaged = errors.New("de-duplication index damaged")
	// ErrFormat wraps ErrDamaged for an index of another format (an older
	// release's, whose keys this release does not derive): rebuilt like a
	// damaged one, but nothing is wrong with it.
	ErrFormat = fmt.Errorf("%w: of another format", ErrDamaged)
	// ErrClosed is returned by the methods of an Index after Close.
	ErrClosed = errors.New("de-duplication index closed")
)

// The key space. Every key starts with a kind byte.
//
//   - entryKind + partition (8 bytes, big-endian) + Key: one entry, its
//     value the position (8 bytes, big-endian) and the time it expires
//     (Unix milliseconds, 8 bytes, big-endian). The partition is the
//     Add's time divided by the window, so that a whole partition expires
//     at once and is dropped with one range deletion.
//   - metaKind + name: the index's own records, coveredKey and formatKey.
const (
	entryKind byte = 'e'
	metaKind  byte = 'm'
)

var (
	coveredKey = []byte{metaKind, 'c', 'o', 'v', 'e', 'r', 'e', 'd'}
	formatKey  = []byte{metaKind, 'f', 'o', 'r', 'm', 'a', 't'}
)

// format is the version of the index's layout (keys, values, merge
// operator, and how HashKey derives a Key), stored under formatKey. An
// index of another version is ErrFormat: it is rebuilt rather than read
// wrong. Version 1 derived keys with HMAC-SHA256; 2 with one keyed
// SHA-256 (HashKey; session 21).
const format = "capstan-dedup-pebble-2"

// Options configures Open. The zero value of each field but Dir means its
// default.
type Options struct {
	// Dir is the index's directory, created if missing. Required. One
	// Index at a time: Open fails while another (in this process or
	// another) has it open.
	Dir string
	// Window is how long a key is remembered after it was added. Default
	// 24 h (DefaultWindow); at least 1 s.
	Window time.Duration
	// MemoryBytes is the memory budget the index is sized from (block
	// cache, memtables, compaction, the filters and write buffers in
	// memory; see
	// pebbleOptions). Default 256 MB (DefaultMemoryBytes); at least 32 MB
	// (MinMemoryBytes). Memory does not grow with Window or with the event
	// rate.
	MemoryBytes int64
	// Logger receives the store's errors (its informational lines are
	// dropped). Nil: nothing is logged.
	Logger *slog.Logger

	// filterBytes overrides the size of each partition's filter (tests).
	filterBytes int64
	// bufferKeys overrides the entries that fill a write buffer (tests).
	bufferKeys int
	// stopWrites overrides the L0 sublevels at which a buffer's write
	// waits (l0CompactionThreshold), stallWait the longest it waits
	// (maxStall), and noCompactions turns pebble's automatic compactions
	// off (tests).
	stopWrites    int
	stallWait     time.Duration
	noCompactions bool
}

// Index is the on-disk de-duplication index: for each key, the packed
// stream position (seq<<16 | idx) of its first occurrence inside the window,
// and the stream sequence up to which every event is in the index. It is
// safe for concurrent use (Checks and Adds alike). Open it with Open,
// release it with Close.
//
// The first-occurrence rule costs no read: Add writes merge operands and
// the store's merge operator keeps the smallest position (and Covered's,
// the largest value), whatever order the operands come in.
type Index struct {
	db     *pebble.DB
	cache  *pebble.Cache
	lock   *os.File // the directory, flocked while open
	dir    string
	opt    Options // as opened, with defaults: for Rebuild
	window time.Duration
	now    func() time.Time

	// mu guards closed: every method holds it shared, Close exclusively.
	mu      sync.RWMutex
	closed  bool
	covered atomic.Uint64
	dropped atomic.Uint64 // partitions below this one are deleted

	checked atomic.Uint64 // keys looked up by Check
	found   atomic.Uint64 // of those, present in the index
	added   atomic.Uint64 // keys written by Add
	probed  atomic.Uint64 // (key, partition) pairs Check sought in the store

	filters filters
	buf     writeBuffer // Adds not yet in the store (buffer.go)
	log     *slog.Logger

	// The tables a buffer's write ingests (buffer.go): pebble's writer
	// options for L0; the L0 sublevels at which a write waits, and for
	// how long at most; compacted, signalled at the end of each of
	// pebble's compactions.
	wopts      sstable.WriterOptions
	stopWrites int
	stallWait  time.Duration
	compacted  chan struct{}
	// fatalf ends the process after a write that failed (buffer.go):
	// slogLogger.Fatalf; tests replace it.
	fatalf func(format string, args ...any)
}

// filters are the index's filters in memory, one per partition, in front of
// the store: Check seeks a key in a partition of the store only when that
// partition's filter may hold it. A filter is added to by every Add before
// its keys reach the store, and at Open a scan of the store fills them
// with the keys already there (buildFilters); until that scan is done
// (ready), Check asks the store for every key. The filters mirror the
// store's partitions: created by the first Add or scanned key of a
// partition, dropped when the store drops the partition.
type filters struct {
	size  int64         // bytes of each partition's filter
	ready atomic.Bool   // the scan at Open is done
	stop  atomic.Bool   // Close: the scan stops
	built chan struct{} // closed when the scan ends, done or not

	mu    sync.RWMutex
	parts map[uint64]*filter
	// floor is the lowest partition the filters cover: a look-up in a
	// lower one (a clock gone back) goes to the store.
	floor uint64
}

// Open opens the index in opt.Dir, creating it if needed. An index that
// cannot be opened gives an error wrapping ErrDamaged.
func Open(opt Options) (*Index, error) {
	return openClock(opt, time.Now)
}

// OpenEmpty opens a new, empty index in opt.Dir in place of whatever the
// directory holds (an index Open found damaged): it takes the directory's
// lock, removes the directory's contents and opens the index, holding the
// lock throughout. A directory another Index holds is refused, "in use"
// as by Open, and left as it is.
func OpenEmpty(opt Options) (*Index, error) {
	return openIndex(opt, time.Now, nil, true)
}

// Rebuild closes x and opens a new, empty index in its directory in its
// place (an index ahead of the stream it covers): Close then OpenEmpty,
// but the directory's lock is held from x's opening to the new index's
// close, so that no other Index opens the directory meanwhile. x is
// closed whatever the outcome.
func (x *Index) Rebuild() (*Index, error) {
	lock, err := x.close(true)
	if lock == nil {
		return nil, err // closed already
	}
	// An error closing the store is of the index thrown away: its files go.
	return openIndex(x.opt, x.now, lock, true)
}

// afterClear, when set (by tests), runs when an OpenEmpty or Rebuild has
// emptied the directory, before it opens the new index there.
var afterClear func(dir string)

// openClock is Open with a clock, for tests of the window.
func openClock(opt Options, now func() time.Time) (*Index, error) {
	return openIndex(opt, now, nil, false)
}

// openIndex opens the index in opt.Dir under lock, the directory's flock (nil:
// openIndex takes it), and first removes the directory's contents if empty.
// On an error the lock is released.
func openIndex(opt Options, now func() time.Time, lock *os.File, empty bool) (*Index, error) {
	opt, err := opt.withDefaults()
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		return nil, err
	}
	if lock == nil {
		if err := os.MkdirAll(opt.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("open de-duplication index: %w", err)
		}
		if lock, err = lockDir(opt.Dir); err != nil {
			return nil, err
		}
	}
	if empty {
		if err := clearDir(opt.Dir); err != nil {
			lock.Close()
			return nil, fmt.Errorf("open de-duplication index %s: empty the directory: %w", opt.Dir, err)
		}
		if afterClear != nil {
			afterClear(opt.Dir)
		}
	}
	x := &Index{lock: lock, dir: opt.Dir, opt: opt, window: opt.Window, now: now, log: opt.Logger}
	x.filters = filters{
		size:  opt.filterBytes,
		built: make(chan struct{}),
		parts: make(map[uint64]*filter),
	}
	if x.filters.size == 0 {
		x.filters.size = opt.MemoryBytes / 8
	}
	x.buf.limit = opt.bufferKeys
	if x.buf.limit == 0 {
		x.buf.limit = int(opt.MemoryBytes / bufferShare / bytesPerBufferedKey)
	}
	x.buf.written = sync.NewCond(&x.buf.mu)
	x.buf.active = newPending(x.buf.limit)
	x.stopWrites, x.stallWait = opt.stopWrites, opt.stallWait
	if x.stopWrites == 0 {
		x.stopWrites = l0CompactionThreshold
	}
	if x.stallWait == 0 {
		x.stallWait = maxStall
	}
	x.compacted = make(chan struct{}, 1)
	x.fatalf = slogLogger{x.log}.Fatalf
	// A table a crash left before its ingestion (buffer.go) is of no use:
	// its Adds are caught up from the stream, as any lost buffer's.
	if err := os.Remove(filepath.Join(opt.Dir, ingestFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		lock.Close()
		return nil, fmt.Errorf("open de-duplication index %s: remove a table not ingested: %w", opt.Dir, err)
	}
	x.cache = pebble.NewCache(opt.MemoryBytes * 3 / 8)
	popt := pebbleOptions(opt, x.cache)
	popt.EventListener.CompactionEnd = func(pebble.CompactionInfo) {
		select {
		case x.compacted <- struct{}{}:
		default:
		}
	}
	popt.DisableAutomaticCompactions = opt.noCompactions
	db, err := pebble.Open(opt.Dir, popt)
	if err != nil {
		x.cache.Unref()
		lock.Close()
		if errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("open de-duplication index %s: %w", opt.Dir, err)
		}
		return nil, fmt.Errorf("open de-duplication index %s: %w: %v", opt.Dir, ErrDamaged, err)
	}
	x.db = db
	popt.EnsureDefaults()
	x.wopts = popt.MakeWriterOptions(0, db.TableFormat())
	part := x.partition(now())
	if part > 0 {
		part--
	}
	err = x.load()
	if err == nil {
		err = x.skipEmptyDrop(part)
	}
	if err != nil {
		_ = db.Close()
		x.cache.Unref()
		lock.Close()
		return nil, fmt.Errorf("open de-duplication index %s: %w", opt.Dir, err)
	}
	x.filters.floor = part
	go x.buildFilters(part)
	return x, nil
}

// skipEmptyDrop marks the partitions below part dropped when the store
// holds no entry of them, so that the first Add does not write a range
// deletion that deletes nothing. Such a deletion stays in its buffer's
// table until a compaction drops it, and every look-up
// that seeks into that table (with tables of a whole buffer, every
// look-up that reaches the store seeks into it) decodes its
// range-deletion block: a present key's look-up (BenchmarkCheck, 3
// million keys) took 2.2 allocations and 6.9% more CPU with it than
// without (0.1; 5 of 5 pairs). After a partition's real drop the
// deletion is there until compactions have passed it down.
func (x *Index) skipEmptyDrop(part uint64) error {
	if part == 0 {
		return nil
	}
	it, err := x.db.NewIter(&pebble.IterOptions{
		LowerBound: entryKey(nil, 0, Key{}),
		UpperBound: entryKey(nil, part, Key{}),
	})
	if err != nil {
		return fmt.Errorf("%w: look for old partitions: %v", ErrDamaged, err)
	}
	empty := !it.First()
	if err := it.Close(); err != nil {
		return fmt.Errorf("%w: look for old partitions: %v", ErrDamaged, err)
	}
	if empty {
		x.dropped.Store(part)
	}
	return nil
}

func (opt Options) withDefaults() (Options, error) {
	var errs []error
	if opt.Dir == "" {
		errs = append(errs, errors.New("dir: required"))
	}
	switch {
	case opt.Window == 0:
		opt.Window = DefaultWindow
	case opt.Window < time.Second:
		errs = append(errs, fmt.Errorf("window: %v is under 1s", opt.Window))
	}
	switch {
	case opt.MemoryBytes == 0:
		opt.MemoryBytes = DefaultMemoryBytes
	case opt.MemoryBytes < MinMemoryBytes:
		errs = append(errs, fmt.Errorf("memory: %d bytes is under %d", opt.MemoryBytes, MinMemoryBytes))
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	opt.Logger = opt.Logger.With("component", "dedup")
	if len(errs) > 0 {
		return opt, fmt.Errorf("de-duplication index options: %w", errors.Join(errs...))
	}
	return opt, nil
}

// pebbleOptions sizes pebble from the memory budget M:
//
//   - block cache: 3M/8 (the cache given), which holds first of all the
//     tables' bloom filters and indexes (about 10 bits and 1 byte per
//     key): past that, they are read again from the page cache. The
//     index's own filters in front of the store (Index.filters) take M/8
//     for each of the two live partitions, M/4 in all: 10 bits per key up
//     to M/10 keys in a window (27 million for 256 MB); more keys share
//     the same memory at a higher rate of false positives, which the store
//     answers;
//   - the index's write buffers (buffer.go): M/10 each (bufferShare), two
//     at most (one filling, one being written), M/5; a buffer is written
//     as a table of its own and ingested: the table's writer holds a
//     data block, the table's index and its bloom filter (a few hundred
//     KB for a full buffer), where a batch of M/22 used to wait in memory
//     for its flush;
//   - memtables: M/32 each, at most 3 queued before writes wait, so
//     3M/32; since buffers are ingested as tables they hold nothing but
//     a new index's format key (and an index of an older release, its
//     log replayed at Open);
//   - tables of M/16 (2-64 MB) at every level, two compactions at most:
//     a full buffer (bufferShare) makes one table, so each L0 sublevel
//     is one table. A look-up that reaches the store seeks each sublevel,
//     and a sublevel of several tables often has its iterator open a
//     table other than the one the previous seek used: with tables of
//     M/64 (4 MB) and buffers of M/10, three tables a sublevel, a present
//     key's look-up cost a quarter more than before the larger buffers
//     (BenchmarkCheck, 3 million keys: 14-17 -> 18-21 CPU-µs, 5 of 5
//     pairs); at M/16 about what it did, 15.7 -> 16.7 (2 of 5 lower,
//     within the noise; bench/results/index-2026-12-07-s18.md);
//   - L0 compacted at 32 sublevels (l0CompactionThreshold 64), not 2;
//   - bloom filters (10 bits per key, 1% false positives) at every level:
//     most keys looked up are new, and a filter answers "absent" without
//     reading a block;
//   - no compression: keys are hashes, incompressible;
//   - row blocks (pebble's Experimental.EnableColumnarBlocks off) of
//     32 KiB (tableBlockSize), index blocks too, not pebble's columnar
//     blocks of 4 KiB, which FormatNewest writes by default (see
//     tableBlockSize);
//   - no write-ahead log (DisableWAL): the index is derived state, caught
//     up from the stream at start, so nothing need be on disk before a
//     buffer's table is. A buffer's batch (before session 20) was written twice, to the log and then
//     to its table (session 14: BenchmarkGrow 1.133 → 1.064 CPU-µs per
//     key, Ingest 5.07 → 4.93 CPU-µs/event). What a crash keeps is the
//     tables ingested, each synced and named in the MANIFEST before
//     Ingest returns, in the order of the buffers (see flushFailed and
//     Index.close for the rest);
//   - no ingestion "as a flushable" (Experimental.DisableIngestAsFlushable):
//     a table that overlaps a memtable would otherwise be queued behind
//     it and named in the MANIFEST only at its flush, and with no log a
//     crash meanwhile would lose it after Ingest returned; instead pebble
//     flushes the memtable first. Only an index whose memtable holds
//     entries (an older release's, its log replayed) pays that flush,
//     once.
//
// What remains of M is for the Go heap around them. None of it depends on
// the window or the event rate; only the tables on disk do, and pebble
// reads them with pread, into its cache, not by mapping them.
func pebbleOptions(opt Options, cache *pebble.Cache) *pebble.Options {
	m := opt.MemoryBytes
	o := &pebble.Options{
		// Plain files: pebble's default wraps them in a disk-health checker
		// whose goroutine outlives a failed Open.
		FS:                          vfs.Default,
		DisableWAL:                  true,
		Cache:                       cache,
		MemTableSize:                uint64(clamp(m/32, 1<<20, 128<<20)),
		MemTableStopWritesThreshold: 3,
		CompactionConcurrencyRange:  func() (int, int) { return 1, 2 },
		FormatMajorVersion:          pebble.FormatNewest,
		Merger:                      &pebble.Merger{Name: "capstan.dedup.v1", Merge: merge},
		Logger:                      slogLogger{opt.Logger},
		L0CompactionThreshold:       l0CompactionThreshold,
		L0StopWritesThreshold:       l0CompactionThreshold,
	}
	o.Experimental.EnableColumnarBlocks = func() bool { return false }
	o.Experimental.DisableIngestAsFlushable = func() bool { return true }
	for i := range o.Levels {
		o.Levels[i].BlockSize = tableBlockSize
		o.Levels[i].IndexBlockSize = tableBlockSize
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		o.Levels[i].Compression = func() *sstable.CompressionProfile { return sstable.NoCompression }
		o.TargetFileSizes[i] = clamp(m/16, 2<<20, 64<<20)
	}
	o.EventListener = &pebble.EventListener{
		BackgroundError: func(err error) { opt.Logger.Error("background error", "error", err) },
		FlushEnd: func(info pebble.FlushInfo) {
			if flushFailed(info) {
				slogLogger{opt.Logger}.Fatalf("flush failed: %v", info.Err)
			}
		},
	}
	return o
}

// flushFailed reports whether a flush ended in an error, which ends the
// process (Fatalf), as a buffer's write that fails does (buffer.go). The
// memtables hold little since buffers are ingested as tables (a new
// index's format key, an older release's log replayed), but without a
// write-ahead log what a flush was to write is only in memory, and pebble would retry it and, the memtables
// queued behind it, stop every write, Close included. So the index
// cannot go on, and a store whose files went from under it (its
// directory removed) ends capstan as its write-ahead log's errors did,
// with "de-duplication index: fatal store error; capstan stops: …"; the
// next start catches the index up from what its tables hold. A flush
// that wrote no table (its keys all deleted) is no error: pebble reports
// it as "pebble: empty table" (an unexported error, so by its text).
// Compactions' errors are logged and retried, as before: they lose
// nothing.
func flushFailed(info pebble.FlushInfo) bool {
	return info.Err != nil && !(len(info.Output) == 0 && info.Err.Error() == "pebble: empty table")
}

// l0CompactionThreshold is pebble's L0CompactionThreshold: pebble
// compacts L0 into the level below when twice its sublevels reach it, so
// at 64 when L0 holds 32 sublevels (tables a flush wrote, as the keys are
// hashes: each spans the whole key space), and it stops writes at 64
// sublevels (L0StopWritesThreshold, compared with the sublevels
// themselves), leaving as many flushes for a compaction to finish in as
// before.
//
// Each such compaction rewrites all of the level below, whatever the size
// of L0: with pebble's default (4, compacting at 2 sublevels) a growing
// index was rewritten after every few buffers, and its flushes and
// compactions were a quarter of the store's CPU
// (BenchmarkEngineFloor/store, 1.5 million events). At 32 (meant as 32
// sublevels, and compacting at 16) BenchmarkGrow over 10 million keys
// wrote the tables 1.9-2.1 times over instead of 4.7-4.8
// (bench/results/floor-2026-12-06-s11.md). At 64 a run of 7.6 million
// keys (the real server's batch benchmark) flushes 28 tables and compacts
// none, where at 32 it compacted 17 tables (190 MB) into an empty L6: the
// compaction was 9.8% of capstan's CPU in that run's profile
// (bench/results/index-2026-12-07-s19.md). The price is paid by the
// look-ups that reach the store (a key the filters in memory may hold: a
// duplicate, a false positive, or in cluster mode every reader's check):
// each tests the bloom filter of every L0 table, up to 32 before a
// compaction instead of 16.
const l0CompactionThreshold = 64

// maxStall is the longest a buffer's write waits for L0 to fall below
// its stop-writes threshold (Index.awaitL0). pebble stalls its own writes
// there (batches, flushes) for as long as compactions take, but not
// ingestions, so the index waits itself, and Adds with it once the next
// buffer is full. A compaction of L0 takes seconds to tens of seconds
// (32 tables and the level below); a wait past a minute means the
// compactions are not keeping up or failing: the table is then ingested
// anyway, L0 grows past the threshold (look-ups that reach the store
// test one more bloom filter each), with a warning, rather than ingest
// stop.
const maxStall = time.Minute

// bufferShare is the share of the memory budget M each write buffer
// (buffer.go) takes: it is full at M/bufferShare/bytesPerBufferedKey keys
// (268,435 for 256 MB), and each full buffer becomes an L0 table spanning
// the whole key space (the keys are hashes). L0 is compacted into the
// level below at 32 such tables (l0CompactionThreshold), and each of those
// compactions rewrites all of that level: the more keys a buffer holds,
// the fewer compactions per key added, and the fewer flushes. Buffers of
// M/20 (two of them M/10 of the budget) were compactions and flushes of
// 17.5% of capstan's CPU under /v1/batch at c=32 (the real server, about
// 7 million events); at M/10 BenchmarkGrow over 7 million keys cost
// 0.91 -> 0.85 CPU-µs per key, the tables written 1.8 -> 1.6 times over
// (bench/results/index-2026-12-07-s18.md). Smaller buffers (M/32) cost
// 0.5 CPU-µs/event more than M/20 (session 10). The price is memory: two
// tables of twice the size, twice the keys a crash loses and catch-up
// reads again at start (up to 536,870 events for 256 MB), and pebble's
// flushable batches twice as large (bench/dedup over 10 million events:
// peak resident set 242-251 -> 271 MB).
const bufferShare = 10

// tableBlockSize is the size of the tables' data and index blocks, which
// pebble writes as row blocks (its format before columnar blocks; the
// format major version stays FormatNewest, which still reads and writes
// them, and the columnar tables of an index written before are read as
// they are, rewritten by compactions as they come: TestOpenColumnarIndex).
//
// Every flush and compaction writes every key again: pebble's flushes and
// compactions were half of BenchmarkGrow's CPU, writing tables most of
// it. Columnar blocks cost more per key to build
// (each block's columns are sized at every key, and the key column's
// shared prefixes are worked out for keys that, being hashes, share
// nothing past the partition), and 4 KiB blocks finish, checksum and
// write (a system call each) every ~90 keys. Measured old and new
// alternated (bench/results/pebble-2026-12-06-s16.md): BenchmarkGrow over
// 5 million keys 1.310 -> 0.969 CPU-µs per key (6 of 6 pairs, median pair
// -24.6%), BenchmarkEngineFloor/store over 2 million events 2.95 -> 2.82
// CPU-µs/event (5 of 6, -4.2%), BenchmarkIngest/sync=always/batch100
// over 3 million 5.70 -> 5.46 (2 of 3); in single runs, row blocks alone and
// 32 KiB blocks alone each saved about half of that. The price: tables
// 14% larger (row blocks keep each key whole after its partition; 209
// instead of 184 MB at 5 million keys), and a look-up that reads a block
// (a present key: a duplicate, or in cluster mode every reader's check)
// reads and checksums 32 KiB instead of 4; BenchmarkCheck at 2 million
// keys measured no loss (present 18.0 -> 15.7 CPU-µs, 4 of 5 pairs lower,
// on a loaded machine). Blocks of 64 KiB made a present key's look-up a
// third dearer in single runs, for little more.
const tableBlockSize = 32 << 10

func clamp(v, lo, hi int64) int64 { return max(lo, min(v, hi)) }

// lockDir takes an exclusive flock on dir for the Index's lifetime, so
// that a second Open, from this process or another, fails plainly rather
// than as a damaged index.
func lockDir(dir string) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("open de-duplication index: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("open de-duplication index %s: in use: %w", dir, err)
	}
	return f, nil
}

// clearDir removes everything in dir but dir itself, whose open file
// holds the Index's flock.
func clearDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// load checks the format and reads Covered; a new index gets its format.
func (x *Index) load() error {
	v, err := x.get(formatKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		if _, err := x.get(coveredKey); !errors.Is(err, pebble.ErrNotFound) {
			return fmt.Errorf("%w: no format key", ErrDamaged)
		}
		// Flushed to a table now (there is no log to sync): the
		// buffers' tables are ingested beside the memtable, so a format
		// key left in it could be lost by a crash after the first table
		// with a Covered was ingested, and the index then taken for
		// damaged.
		if err := x.db.Set(formatKey, []byte(format), pebble.NoSync); err != nil {
			return fmt.Errorf("write format: %w", err)
		}
		if err := x.db.Flush(); err != nil {
			return fmt.Errorf("write format: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("%w: read format: %v", ErrDamaged, err)
	case string(v) != format:
		return fmt.Errorf("%w: format %q, want %q", ErrFormat, v, format)
	}
	v, err = x.get(coveredKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("%w: read covered: %v", ErrDamaged, err)
	case len(v) != 8:
		return fmt.Errorf("%w: covered is %d bytes", ErrDamaged, len(v))
	}
	x.covered.Store(binary.BigEndian.Uint64(v))
	return nil
}

// get returns a copy of key's value.
func (x *Index) get(key []byte) ([]byte, error) {
	v, c, err := x.db.Get(key)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return bytes.Clone(v), nil
}

// Close flushes and closes the index. Later calls return ErrClosed.
func (x *Index) Close() error {
	lock, err := x.close(false)
	if lock != nil {
		lock.Close()
	}
	return err
}

// close closes x; it returns the directory's lock, released unless
// keepLock (Rebuild), or nil if x was closed already.
func (x *Index) close(keepLock bool) (*os.File, error) {
	x.filters.stop.Store(true)
	<-x.filters.built
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return nil, ErrClosed
	}
	x.closed = true
	// Not needed for exactness (a lost buffer is caught up at start), but
	// a clean stop keeps everything and its restart reads nothing again:
	// the buffer is written, then pebble's memtables flushed to tables,
	// as with no write-ahead log pebble's Close drops them. An index
	// thrown away (keepLock: Rebuild) writes nothing more.
	var ferr error
	if !keepLock {
		ferr = x.flush()
	}
	x.buf.writes.Wait()
	if !keepLock {
		ferr = errors.Join(ferr, x.db.Flush())
	}
	err := x.db.Close()
	x.cache.Unref()
	lock := x.lock
	if !keepLock {
		lock.Close()
		lock = nil
	}
	if err = errors.Join(ferr, err); err != nil {
		return lock, fmt.Errorf("close de-duplication index %s: %w", x.dir, err)
	}
	return lock, nil
}

// partition is the partition of an Add at t: entries of partition p expire
// by (p+2)*window, so at t only p and p-1 can hold live ones.
func (x *Index) partition(t time.Time) uint64 {
	return uint64(t.UnixMilli()) / uint64(x.window.Milliseconds())
}

func entryKey(buf []byte, part uint64, k Key) []byte {
	buf = append(buf[:0], entryKind)
	buf = binary.BigEndian.AppendUint64(buf, part)
	return append(buf, k[:]...)
}

// Check returns, per key, the packed position of its first occurrence
// inside the window, 0 when absent. A key is sought in the two partitions
// that can hold it, each only when that partition's filter in memory may
// hold it: most keys looked up are new, and the filters answer for them
// without reaching the buffers of Adds not yet written (buffer.go) nor the
// store. The keys that do reach the store are sought
// by one iterator (a prefix seek each, half the cost of a Get, which builds
// an iterator per call), whose tables' bloom filters answer most absent
// ones without reading a block.
func (x *Index) Check(keys []Key) ([]uint64, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.closed {
		return nil, ErrClosed
	}
	now := x.now()
	part, ms := x.partition(now), uint64(now.UnixMilli())
	parts := [2]uint64{part - 1, part}
	// fs[j] is the filter of parts[j]; nil with use[j] true: the partition
	// is empty; use[j] false: ask the store.
	var fs [2]*filter
	var use [2]bool
	if x.filters.ready.Load() {
		x.filters.mu.RLock()
		for j, p := range parts {
			if p >= x.filters.floor && p != ^uint64(0) {
				fs[j], use[j] = x.filters.parts[p], true
			}
		}
		x.filters.mu.RUnlock()
	}
	pos := make([]uint64, len(keys))
	// First the buffers, for every (key, partition) its filter may hold,
	// then the store: an iterator created after the look-ups in the
	// buffers sees every key that left them (buffer.go).
	type probe struct {
		i    int
		part uint64
	}
	var probes []probe
	locked := false
	for i := range keys {
		for j, p := range parts {
			if use[j] && (fs[j] == nil || !fs[j].mayContain(&keys[i])) {
				continue
			}
			if !locked {
				x.buf.mu.Lock()
				locked = true
			}
			if at := x.buf.buffered(slot{p, keys[i]}, ms); at != 0 && (pos[i] == 0 || at < pos[i]) {
				pos[i] = at
			}
			probes = append(probes, probe{i, p})
		}
	}
	if locked {
		x.buf.mu.Unlock()
	}
	var it *pebble.Iterator
	var buf [25]byte
	for _, pr := range probes {
		if it == nil {
			var err error
			// UseL6Filters: pebble skips the bottom level's bloom filters
			// by default and reads a data block instead; here most keys
			// sought are absent, and the bottom level holds most keys.
			if it, err = x.db.NewIter(&pebble.IterOptions{UseL6Filters: true}); err != nil {
				return nil, fmt.Errorf("check de-duplication index: %w", err)
			}
		}
		k := entryKey(buf[:0], pr.part, keys[pr.i])
		if !it.SeekPrefixGE(k) || !bytes.Equal(it.Key(), k) {
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return nil, fmt.Errorf("check de-duplication index: %w", err)
		}
		if len(v) != 16 {
			it.Close()
			return nil, fmt.Errorf("check de-duplication index: %w: entry of %d bytes", ErrDamaged, len(v))
		}
		at, exp := binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
		if exp > ms && (pos[pr.i] == 0 || at < pos[pr.i]) {
			pos[pr.i] = at
		}
	}
	if it != nil {
		if err := it.Close(); err != nil {
			return nil, fmt.Errorf("check de-duplication index: %w", err)
		}
	}
	found := 0
	for _, p := range pos {
		if p != 0 {
			found++
		}
	}
	x.checked.Add(uint64(len(keys)))
	x.found.Add(uint64(found))
	x.probed.Add(uint64(len(probes)))
	return pos, nil
}

// filterFor returns partition part's filter, created if missing.
func (x *Index) filterFor(part uint64) *filter {
	x.filters.mu.RLock()
	f := x.filters.parts[part]
	x.filters.mu.RUnlock()
	if f != nil {
		return f
	}
	x.filters.mu.Lock()
	defer x.filters.mu.Unlock()
	if f = x.filters.parts[part]; f == nil {
		f = newFilter(x.filters.size)
		x.filters.parts[part] = f
	}
	return f
}

// dropFilters drops the filters of the partitions below part, which the
// store has dropped.
func (x *Index) dropFilters(part uint64) {
	x.filters.mu.Lock()
	defer x.filters.mu.Unlock()
	for p := range x.filters.parts {
		if p < part {
			delete(x.filters.parts, p)
		}
	}
}

// buildFilters fills the filters with the keys of the store's partitions
// from floor on, then marks them ready. It runs once, from Open, beside
// Checks and Adds: a key is in the store either before the scan's
// iterator was created, and the scan adds it, or by an Add that added it
// to its filter before writing it. On an error the filters stay not ready
// (every Check asks the store) and the error is logged.
func (x *Index) buildFilters(floor uint64) {
	defer close(x.filters.built)
	it, err := x.db.NewIter(&pebble.IterOptions{
		LowerBound: entryKey(nil, floor, Key{}),
		UpperBound: []byte{entryKind + 1},
	})
	if err != nil {
		x.log.Error("de-duplication filters: the store's keys are looked up in the store", "error", err)
		return
	}
	var (
		f    *filter
		fp   uint64
		n    int
		k    Key
		stop bool
	)
	for it.First(); it.Valid(); it.Next() {
		key := it.Key()
		if len(key) != 25 {
			continue // not an entry: Check would not find it either
		}
		if p := binary.BigEndian.Uint64(key[1:9]); f == nil || p != fp {
			f, fp = x.filterFor(p), p
		}
		copy(k[:], key[9:])
		f.add(&k)
		if n++; n%4096 == 0 && x.filters.stop.Load() {
			stop = true
			break
		}
	}
	if err := it.Close(); err != nil {
		x.log.Error("de-duplication filters: the store's keys are looked up in the store", "error", err)
		return
	}
	if !stop {
		x.filters.ready.Store(true)
	}
}

// filtersReady reports whether the filters are in use (tests).
func (x *Index) filtersReady() bool { <-x.filters.built; return x.filters.ready.Load() }

// Add records keys at their positions (pos[i] for keys[i], never 0) and
// that every event up to stream sequence covered is in the index (0:
// unchanged; a value under the current one changes nothing, Covered only
// grows). The caller claims covered only once every event up to it was
// added, by this Add or by one that returned before it. A key already
// present keeps the smaller position: the first occurrence in stream order
// wins, whatever the order of the Adds. A key's entry lives for the window
// from the Add that wrote it.
//
// Add writes to the store only through its write buffer (buffer.go): the
// keys go into a buffer in memory that Check consults, and each full
// buffer is written with the highest Covered of its Adds as one table
// that pebble ingests, with no write-ahead log: the index is derived
// state, caught up from the stream at start, and a table reaches the disk
// whole, synced and in the store's MANIFEST before its ingestion returns,
// after every buffer's table before it, so Covered on disk never claims a
// key that is not on disk. When the clock has entered a new partition, the buffer's write
// drops the partitions that can no longer hold a live entry.
func (x *Index) Add(keys []Key, pos []uint64, covered uint64) error {
	if len(keys) != len(pos) {
		return fmt.Errorf("add to de-duplication index: %d keys and %d positions", len(keys), len(pos))
	}
	for i, p := range pos {
		if p == 0 {
			return fmt.Errorf("add to de-duplication index: key %d has position 0", i)
		}
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.closed {
		return ErrClosed
	}
	now := x.now()
	part := x.partition(now)
	exp := uint64(now.Add(x.window).UnixMilli())
	// The keys go into the filter before they can be in the buffer or the
	// store: a Check that finds a key finds it in the filter too.
	x.filterFor(part).addAll(keys)
	if covered <= x.covered.Load() {
		covered = 0
	}
	drop := part - 1 // partitions below part-1 hold only expired entries
	if part < 1 || x.dropped.Load() >= drop {
		drop = 0
	}
	if err := x.buffer(keys, pos, part, exp, covered, drop); err != nil {
		return err
	}
	x.added.Add(uint64(len(keys)))
	raise(&x.covered, covered)
	raise(&x.dropped, drop)
	if drop > 0 {
		x.dropFilters(drop)
	}
	return nil
}

// raise sets a to v if v is larger.
func raise(a *atomic.Uint64, v uint64) {
	for {
		c := a.Load()
		if v <= c || a.CompareAndSwap(c, v) {
			return
		}
	}
}

// merge is the store's merge operator: of an entry's operands the one with
// the smallest position (the first 8 bytes), of Covered's the largest.
// Every flush and compaction calls it for every entry, most of which have
// one operand: it allocates nothing, its mergers, with room for the value,
// come from a pool, and each goes back when pebble closes the Closer that
// Finish returned (pebble keeps the value only until then). One merger
// allocated per entry was 6% of the index's CPU in allocation alone
// (BenchmarkGrow, 3 million keys), and more in garbage collection.
func merge(key, value []byte) (pebble.ValueMerger, error) {
	m := mergers.Get().(*merger)
	m.largest, m.v = bytes.Equal(key, coveredKey), nil
	return m, m.add(value)
}

// mergers are the pool of merge's mergers.
var mergers = sync.Pool{New: func() any { return new(merger) }}

type merger struct {
	largest bool
	v       []byte   // the operand kept; nil before the first
	buf     [16]byte // v's memory for operands up to an entry's size
}

func (m *merger) add(v []byte) error {
	if len(v) < 8 {
		return fmt.Errorf("%w: merge operand of %d bytes", ErrDamaged, len(v))
	}
	if m.v == nil {
		m.v = append(m.buf[:0], v...)
		return nil
	}
	a, b := binary.BigEndian.Uint64(m.v), binary.BigEndian.Uint64(v)
	if (m.largest && b > a) || (!m.largest && b < a) {
		m.v = append(m.v[:0], v...)
	}
	return nil
}

func (m *merger) MergeNewer(v []byte) error { return m.add(v) }
func (m *merger) MergeOlder(v []byte) error { return m.add(v) }

// Finish returns the value kept, valid until the Closer (m) is closed.
func (m *merger) Finish(bool) ([]byte, io.Closer, error) {
	return m.v, m, nil
}

// Close returns m to the pool: pebble no longer reads its value.
func (m *merger) Close() error {
	m.v = nil
	mergers.Put(m)
	return nil
}

// Covered returns the stream sequence up to which every event is in the
// index (0: none).
func (x *Index) Covered() uint64 { return x.covered.Load() }

// Stats are figures about an Index, for metrics and the console.
type Stats struct {
	// Keys is an estimate of the keys in the index: the entries of its
	// tables on disk as far as the store has counted them, which include
	// merge operands and expired entries that compaction has not dropped
	// yet and exclude the memtables and the write buffers.
	Keys int64
	// TableBytes is the size of the index's tables on disk.
	TableBytes int64
	// DiskBytes is the size of all the index's files (tables, manifest),
	// as allocated on disk.
	DiskBytes int64
	// Covered is Covered().
	Covered uint64
	// Checked is the number of keys looked up by Check since Open, Found
	// those of them that were present.
	Checked, Found uint64
	// Added is the number of keys written by Add since Open (new ones and
	// ones moved to a smaller position).
	Added uint64
}

// Stats returns the index's figures. It lists the store's tables and reads
// their properties, so call it at metric scrapes, not per event. After
// Close, or when the store cannot be listed, the figures about the store
// (Keys, TableBytes, DiskBytes) are 0.
func (x *Index) Stats() Stats {
	s, err := x.stats()
	if err != nil {
		return Stats{Covered: x.covered.Load(), Checked: x.checked.Load(), Found: x.found.Load(), Added: x.added.Load()}
	}
	return s
}

// stats is Stats, with the error that left its store figures out.
func (x *Index) stats() (Stats, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.closed {
		return Stats{}, ErrClosed
	}
	s := Stats{
		Covered: x.covered.Load(),
		Checked: x.checked.Load(),
		Found:   x.found.Load(),
		Added:   x.added.Load(),
	}
	levels, err := x.db.SSTables(pebble.WithProperties())
	if err != nil {
		return Stats{}, fmt.Errorf("de-duplication index stats: %w", err)
	}
	for _, l := range levels {
		for _, t := range l {
			if t.Properties != nil {
				s.Keys += int64(t.Properties.NumEntries)
			}
			s.TableBytes += int64(t.Size)
		}
	}
	s.DiskBytes, err = diskUsage(x.dir)
	if err != nil {
		return Stats{}, fmt.Errorf("de-duplication index stats: %w", err)
	}
	return s, nil
}

// diskUsage is the space the files of dir take on disk (allocated
// blocks).
func diskUsage(dir string) (int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, e := range entries {
		info, err := e.Info()
		if errors.Is(err, os.ErrNotExist) {
			continue // removed by a compaction meanwhile
		}
		if err != nil {
			return 0, err
		}
		if !info.Mode().IsRegular() {
			continue
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += info.Size()
		}
	}
	return n, nil
}

// slogLogger routes pebble's log lines to slog: errors only, its
// informational lines (every flush, every compaction) are dropped.
type slogLogger struct{ log *slog.Logger }

func (l slogLogger) Errorf(format string, args ...any) {
	l.log.Error(strings.TrimRight(fmt.Sprintf(format, args...), "\n "))
}

// Fatalf must not return (pebble's contract): pebble calls it where it
// cannot go on, such as a log or table of the index gone from under it
// (the directory removed while the index was open), at times with its
// own mutexes released. A panic there unwound through pebble's deferred
// unlocks and ended the process with "fatal error: sync: unlock of
// unlocked mutex" and every goroutine's stack instead of the cause. So it
// logs the cause and ends the process with status 1, as pebble's own
// logger does.
func (l slogLogger) Fatalf(format string, args ...any) {
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n ")
	l.log.Error("de-duplication index: fatal store error; capstan stops: " + msg)
	os.Exit(1)
}

func (slogLogger) Infof(string, ...any) {}

package dedup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
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
	// Open does not return it for a directory it may not read or write, nor
	// for one another process holds: removing those would not help.
	ErrDamaged = errors.New("de-duplication index damaged")
	// ErrClosed is returned by the methods of an Index after Close.
	ErrClosed = errors.New("de-duplication index closed")
)

// Reserved keys. They are shorter than a Key, so no Key is ever one of
// them.
var (
	coveredKey = []byte("\x00covered")
	formatKey  = []byte("\x00format")
)

// format is the version of the index's layout (keys, values, reserved
// keys), stored under formatKey. An index of another version is ErrDamaged:
// it is rebuilt rather than read wrong.
const format = "capstan-dedup-1"

// Options configures Open. The zero value of each field but Dir means its
// default.
type Options struct {
	// Dir is the index's directory, created if missing. Required. One
	// process at a time: Open fails while another holds it.
	Dir string
	// Window is how long a key is remembered after it was added: its
	// entry's time to live. Default 24 h (DefaultWindow); at least 1 s
	// (badger counts expiry in seconds).
	Window time.Duration
	// MemoryBytes is the memory budget the index's stores are sized from
	// (memtables, compaction tables; see badgerOptions). Default 256 MB
	// (DefaultMemoryBytes); at least 32 MB (MinMemoryBytes). Memory does
	// not grow with Window or with the event rate.
	MemoryBytes int64
	// Logger receives badger's warnings and errors (its info and debug
	// lines are dropped). Nil: nothing is logged.
	Logger *slog.Logger
}

// Index is the on-disk de-duplication index: for each key, the packed
// stream position (seq<<16 | idx) of its first occurrence inside the window,
// and the stream sequence up to which every event is in the index. It is
// safe for concurrent use (Checks and Adds alike). Open it with Open,
// release it with Close.
//
// The first-occurrence rule costs no read: badger runs in managed mode and
// each entry's version is ^position (MaxUint64 - position), so of a key's
// entries the one with the smallest position has the highest version, the
// one a read sees and the one compaction keeps (one version kept, every
// version discardable). Covered is the reserved key coveredKey, versioned
// by its own value, so it only grows whatever the order of writes.
type Index struct {
	db     *badger.DB
	dir    string
	window time.Duration

	// mu guards closed: every method holds it shared, Close exclusively.
	mu      sync.RWMutex
	closed  bool
	covered atomic.Uint64

	checked atomic.Uint64 // keys looked up by Check
	found   atomic.Uint64 // of those, present in the index
	added   atomic.Uint64 // keys written by Add
}

// Open opens the index in opt.Dir, creating it if needed. An index that
// cannot be opened gives an error wrapping ErrDamaged.
func Open(opt Options) (*Index, error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opt.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("open de-duplication index: %w", err)
	}
	if err := probeLock(opt.Dir); err != nil {
		return nil, err
	}
	bopt := badgerOptions(opt)
	if err := checkTables(opt.Dir, bopt); err != nil {
		return nil, fmt.Errorf("open de-duplication index %s: %w", opt.Dir, err)
	}
	db, err := badger.OpenManaged(bopt)
	if err != nil {
		return nil, fmt.Errorf("open de-duplication index %s: %w: %v", opt.Dir, ErrDamaged, err)
	}
	// Every version but a key's newest may go at compaction, and expired
	// entries with them: no reader ever reads at an older time.
	db.SetDiscardTs(math.MaxUint64)
	x := &Index{db: db, dir: opt.Dir, window: opt.Window}
	if err := x.load(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open de-duplication index %s: %w", opt.Dir, err)
	}
	return x, nil
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

// badgerOptions sizes badger from the memory budget M:
//
//   - memtables: M/16 each, at most NumMemtables+1 = 3 of them (two full,
//     one being flushed), so 3M/16 of skiplist arenas, plus their
//     write-ahead files, mapped;
//   - compaction: tables of M/64 (2-16 MB) at every level
//     (TableSizeMultiplier 1: by default each level's tables are twice the
//     size of the level above's, and the buffers that build them grow with
//     the index), two compactors;
//   - no block cache: keys are uniformly spread hashes, so a cache of
//     blocks hits next to never (measured: 8%) and badger warns about it;
//     unencrypted, uncompressed blocks are read in place from the mapped
//     table files;
//   - bloom filters at 1% false positives, read with each table's index
//     from the mapped table file (badger keeps unencrypted indexes there,
//     not in a cache): about 10 bits per key of page cache, reclaimable;
//   - no value log in use: values (8 bytes) stay in the LSM tree, under
//     ValueThreshold, so there is no value-log garbage to collect;
//   - no compression: keys are hashes, incompressible;
//   - each block's checksum verified as it is read: a damaged block is an
//     error, where badger would otherwise parse garbage.
//
// What remains of M is for the Go heap around them (garbage included). None
// of it depends on the window or the event rate. The tables do (about 47
// bytes per key on disk); the pages of them that badger touched stay
// mapped and count in the process's resident set (RssFile) until the
// kernel reclaims them, as it does page cache, under pressure.
func badgerOptions(opt Options) badger.Options {
	m := opt.MemoryBytes
	o := badger.DefaultOptions(opt.Dir).
		WithLogger(slogLogger{opt.Logger}).
		WithMemTableSize(clamp(m/16, 2<<20, 256<<20)).
		WithNumMemtables(2).
		WithBlockCacheSize(0).
		WithIndexCacheSize(0).
		WithBaseTableSize(clamp(m/64, 2<<20, 16<<20)).
		WithNumCompactors(2).
		WithNumLevelZeroTables(5).
		WithNumLevelZeroTablesStall(15).
		WithBloomFalsePositive(0.01).
		WithChecksumVerificationMode(options.OnBlockRead).
		WithCompression(options.None).
		WithValueThreshold(1 << 10).
		WithValueLogFileSize(16 << 20).
		WithNumVersionsToKeep(1).
		WithDetectConflicts(false).
		WithMetricsEnabled(false).
		WithSyncWrites(false)
	o.TableSizeMultiplier = 1
	return o
}

func clamp(v, lo, hi int64) int64 { return max(lo, min(v, hi)) }

// probeLock fails if another process holds dir, with the same lock badger
// takes (flock on the directory), so that a held index is not mistaken for
// a damaged one.
func probeLock(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open de-duplication index: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fmt.Errorf("open de-duplication index %s: in use by another process: %w", dir, err)
	}
	return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}

// readTs reads every version there is: a key's newest, its first
// occurrence.
const readTs = math.MaxUint64

// formatVersion is the version of formatKey's entry, written once.
const formatVersion = 1

// load checks the format and reads Covered; a new index gets its format.
func (x *Index) load() error {
	txn := x.db.NewTransactionAt(readTs, false)
	defer txn.Discard()
	v, err := value(txn, formatKey)
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		if _, err := value(txn, coveredKey); !errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%w: no format key", ErrDamaged)
		}
		wb := x.db.NewManagedWriteBatch()
		defer wb.Cancel()
		if err := wb.SetEntryAt(badger.NewEntry(formatKey, []byte(format)), formatVersion); err != nil {
			return err
		}
		return wb.Flush()
	case err != nil:
		return fmt.Errorf("%w: read format: %v", ErrDamaged, err)
	case string(v) != format:
		return fmt.Errorf("%w: format %q, want %q", ErrDamaged, v, format)
	}
	v, err = value(txn, coveredKey)
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("%w: read covered: %v", ErrDamaged, err)
	case len(v) != 8:
		return fmt.Errorf("%w: covered is %d bytes", ErrDamaged, len(v))
	}
	x.covered.Store(binary.BigEndian.Uint64(v))
	return nil
}

// value returns a copy of key's value.
func value(txn *badger.Txn, key []byte) ([]byte, error) {
	item, err := txn.Get(key)
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

// Close flushes and closes the index. Later calls return ErrClosed.
func (x *Index) Close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return ErrClosed
	}
	x.closed = true
	if err := x.db.Close(); err != nil {
		return fmt.Errorf("close de-duplication index %s: %w", x.dir, err)
	}
	return nil
}

// Check returns, per key, the packed position of its first occurrence
// inside the window, 0 when absent. Absent keys, the common case, are
// mostly answered by the tables' bloom filters without reading a block.
func (x *Index) Check(keys []Key) ([]uint64, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.closed {
		return nil, ErrClosed
	}
	txn := x.db.NewTransactionAt(readTs, false)
	defer txn.Discard()
	pos := make([]uint64, len(keys))
	found := 0
	for i := range keys {
		p, err := get(txn, keys[i][:])
		if err != nil {
			return nil, fmt.Errorf("check de-duplication index: %w", err)
		}
		if p != 0 {
			found++
		}
		pos[i] = p
	}
	x.checked.Add(uint64(len(keys)))
	x.found.Add(uint64(found))
	return pos, nil
}

// get returns the position stored under key, 0 when absent or expired.
func get(txn *badger.Txn, key []byte) (uint64, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var p uint64
	err = item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("%w: value of %d bytes", ErrDamaged, len(v))
		}
		p = binary.BigEndian.Uint64(v)
		return nil
	})
	return p, err
}

// Add records keys at their positions (pos[i] for keys[i], never 0) and
// that every event up to stream sequence covered is in the index (0:
// unchanged; a value under the current one changes nothing, Covered only
// grows). The caller claims covered only once every event up to it was
// added, by this Add or by one that returned before it. A key already
// present keeps the smaller position: the first occurrence in stream order
// wins, whatever the order of the Adds. A key's entry lives for the window
// from the Add that wrote it.
//
// The keys are one badger write, then Covered another after it, so a crash
// between the two leaves Covered behind the keys, never ahead of them.
// Neither is fsynced: the index is derived state, caught up from the
// stream at start.
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
	if len(keys) > 0 {
		// One allocation for every value of the batch.
		vals := make([]byte, 8*len(keys))
		wb := x.db.NewManagedWriteBatch()
		defer wb.Cancel()
		for i := range keys {
			v := vals[8*i : 8*i+8 : 8*i+8]
			binary.BigEndian.PutUint64(v, pos[i])
			e := badger.NewEntry(keys[i][:], v).WithTTL(x.window)
			if err := wb.SetEntryAt(e, ^pos[i]); err != nil {
				return fmt.Errorf("add to de-duplication index: %w", err)
			}
		}
		if err := wb.Flush(); err != nil {
			return fmt.Errorf("add to de-duplication index: %w", err)
		}
		x.added.Add(uint64(len(keys)))
	}
	if covered > x.covered.Load() {
		wb := x.db.NewManagedWriteBatch()
		defer wb.Cancel()
		v := binary.BigEndian.AppendUint64(nil, covered)
		if err := wb.SetEntryAt(badger.NewEntry(coveredKey, v), covered); err != nil {
			return fmt.Errorf("add to de-duplication index: covered: %w", err)
		}
		if err := wb.Flush(); err != nil {
			return fmt.Errorf("add to de-duplication index: covered: %w", err)
		}
		for {
			c := x.covered.Load()
			if covered <= c || x.covered.CompareAndSwap(c, covered) {
				break
			}
		}
	}
	return nil
}

// Covered returns the stream sequence up to which every event is in the
// index (0: none).
func (x *Index) Covered() uint64 { return x.covered.Load() }

// Stats are figures about an Index, for metrics and the console.
type Stats struct {
	// Keys is an estimate of the keys in the index: the entries of its
	// tables on disk, which include replaced and expired entries that
	// compaction has not dropped yet and exclude the memtables.
	Keys int64
	// TableBytes is the size of the index's tables on disk.
	TableBytes int64
	// DiskBytes is the size of all the index's files (tables, write-ahead
	// logs, value log, manifest), as allocated on disk.
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

// Stats returns the index's figures. It reads the directory's file sizes,
// so it costs a few system calls per file: call it at metric scrapes, not
// per event.
func (x *Index) Stats() (Stats, error) {
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
	for _, t := range x.db.Tables() {
		s.Keys += int64(t.KeyCount)
		s.TableBytes += int64(t.OnDiskSize)
	}
	var err error
	s.DiskBytes, err = diskUsage(x.dir)
	if err != nil {
		return Stats{}, fmt.Errorf("de-duplication index stats: %w", err)
	}
	return s, nil
}

// diskUsage is the space the files of dir take on disk (allocated blocks:
// badger's write-ahead logs are sparse files of a fixed apparent size).
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

// slogLogger routes badger's log lines to slog: warnings and errors only,
// badger's info and debug lines (every compaction, every flush) are
// dropped.
type slogLogger struct{ log *slog.Logger }

func (l slogLogger) Errorf(format string, args ...any) {
	l.log.Error(trim(fmt.Sprintf(format, args...)))
}

func (l slogLogger) Warningf(format string, args ...any) {
	l.log.Warn(trim(fmt.Sprintf(format, args...)))
}

func (slogLogger) Infof(string, ...any)  {}
func (slogLogger) Debugf(string, ...any) {}

// trim drops the final newline badger puts on its lines.
func trim(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == ' ') {
		s = s[:len(s)-1]
	}
	return s
}

package dedup

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
)

func TestHashKey(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	// Golden: the index on disk depends on these bytes never changing
	// within a format (raise format with them).
	got := HashKey(secret, "web", "msg-1")
	const want = "a673253ae65128218d37f6900784033a"
	if hex.EncodeToString(got[:]) != want {
		t.Errorf("HashKey(golden) = %x, want %s", got, want)
	}

	// It is SHA-256 of the key block and the pair, truncated, for short
	// and long secrets and messageIds alike.
	long := strings.Repeat("x", 1000)
	for _, c := range []struct{ name, secret, source, id string }{
		{"short", "k", "web", "msg-1"},
		{"empty", "", "", ""},
		{"block secret", strings.Repeat("s", 64), "web", "id"},
		{"long secret", strings.Repeat("s", 65), "web", "id"},
		{"long id", "k", "web", long},
		{"two blocks", "k", "web", strings.Repeat("y", 52)},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := make([]byte, 64)
			if len(c.secret) > 64 {
				s := sha256.Sum256([]byte(c.secret))
				copy(k, s[:])
			} else {
				copy(k, c.secret)
			}
			m := sha256.New()
			m.Write(k)
			m.Write(binary.AppendUvarint(nil, uint64(len(c.source))))
			m.Write([]byte(c.source + c.id))
			var want Key
			copy(want[:], m.Sum(nil))
			if got := HashKey([]byte(c.secret), c.source, c.id); got != want {
				t.Errorf("HashKey = %x, want SHA-256(K || pair) %x", got, want)
			}
			h := NewHasher([]byte(c.secret))
			for range 3 { // a fresh state, then reused ones
				if got := h.Key(c.source, c.id); got != want {
					t.Errorf("Hasher.Key = %x, want SHA-256(K || pair) %x", got, want)
				}
			}
		})
	}

	if k := NewHasher(secret).Key("web", "msg-1"); k != got {
		t.Errorf("Hasher.Key(golden) = %x, want %x", k, got)
	}

	// Keyed, and unambiguous between source and messageId.
	if HashKey([]byte("other secret"), "web", "msg-1") == got {
		t.Error("another secret gives the same key")
	}
	if HashKey(secret, "ab", "c") == HashKey(secret, "a", "bc") {
		t.Error(`("ab", "c") and ("a", "bc") have the same key`)
	}
}

func TestHashKeyAllocs(t *testing.T) {
	secret := []byte("secret")
	if n := testing.AllocsPerRun(100, func() { HashKey(secret, "web", "msg-1") }); n != 0 {
		t.Errorf("HashKey allocates %v times, want 0", n)
	}
}

func open(t testing.TB, opt Options) *Index {
	t.Helper()
	if opt.Dir == "" {
		opt.Dir = t.TempDir()
	}
	x, err := Open(opt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := x.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return x
}

func key(s string) Key { return HashKey([]byte("test"), "src", s) }

func check(t testing.TB, x *Index, keys ...Key) []uint64 {
	t.Helper()
	got, err := x.Check(keys)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return got
}

func add(t testing.TB, x *Index, keys []Key, pos []uint64, covered uint64) {
	t.Helper()
	if err := x.Add(keys, pos, covered); err != nil {
		t.Fatalf("Add: %v", err)
	}
}

func TestFirstOccurrenceWins(t *testing.T) {
	x := open(t, Options{})
	a, b, c := key("a"), key("b"), key("c")
	if got := check(t, x, a, b, c); fmt.Sprint(got) != "[0 0 0]" {
		t.Fatalf("empty index: Check = %v, want [0 0 0]", got)
	}
	add(t, x, []Key{a, b}, []uint64{10<<16 | 1, 10<<16 | 2}, 10)
	// a seen again later in the stream: the first position stays. b's
	// earlier occurrence is Added later (catch-up, another replica's
	// segment): the smaller position wins anyway. c twice in one Add.
	add(t, x, []Key{a, b}, []uint64{12 << 16, 9<<16 | 7}, 12)
	add(t, x, []Key{c, c}, []uint64{20<<16 | 5, 20<<16 | 3}, 20)
	want := []uint64{10<<16 | 1, 9<<16 | 7, 20<<16 | 3}
	if got := check(t, x, a, b, c); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Check = %#x, want %#x", got, want)
	}
	// The same after the memtables went to tables and back.
	dir := x.dir
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	y := open(t, Options{Dir: dir})
	add(t, y, []Key{a}, []uint64{11 << 16}, 0)
	if got := check(t, y, a, b, c); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after reopening: Check = %#x, want %#x", got, want)
	}
}

func TestCovered(t *testing.T) {
	dir := t.TempDir()
	x := open(t, Options{Dir: dir})
	if got := x.Covered(); got != 0 {
		t.Fatalf("new index: Covered = %d, want 0", got)
	}
	k := key("k")
	add(t, x, []Key{k}, []uint64{5<<16 | 1}, 0)
	for _, step := range []struct {
		covered, want uint64
	}{
		{5, 5},
		{3, 5}, // never goes back
		{0, 5}, // 0: unchanged
		{9, 9},
	} {
		add(t, x, nil, nil, step.covered)
		if got := x.Covered(); got != step.want {
			t.Errorf("after Add(covered %d): Covered = %d, want %d", step.covered, got, step.want)
		}
	}
	add(t, x, nil, nil, 11) // covered alone: a stretch of the stream without events
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	y := open(t, Options{Dir: dir})
	if got := y.Covered(); got != 11 {
		t.Errorf("after reopening: Covered = %d, want 11", got)
	}
	if got := check(t, y, k); got[0] != 5<<16|1 {
		t.Errorf("after reopening: Check = %#x, want %#x", got[0], 5<<16|1)
	}
}

// clock is a settable time for openClock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestExpiry moves a clock through the window: a key is present until the
// window from its Add has passed, an earlier occurrence that expired no
// longer counts, and whole partitions are dropped from disk.
func TestExpiry(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 5, 10, 30, 0, 0, time.UTC)}
	const window = time.Hour
	x, err := openClock(Options{Dir: t.TempDir(), Window: window}, c.now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	a, b := key("a"), key("b")
	add(t, x, []Key{a}, []uint64{1 << 16}, 1) // a expires at 11:30
	c.advance(40 * time.Minute)               // 11:10, the next partition
	add(t, x, []Key{b}, []uint64{2 << 16}, 2) // b expires at 12:10
	add(t, x, []Key{a}, []uint64{3 << 16}, 3) // a again, later in the stream
	if got := check(t, x, a, b); got[0] != 1<<16 || got[1] != 2<<16 {
		t.Fatalf("11:10: Check = %#x, want [0x10000 0x20000]", got)
	}
	c.advance(20*time.Minute - time.Millisecond) // 11:29:59.999
	if got := check(t, x, a); got[0] != 1<<16 {
		t.Fatalf("just inside a's window: Check = %#x, want 0x10000", got[0])
	}
	c.advance(time.Millisecond) // 11:30: a's first occurrence has expired
	if got := check(t, x, a, b); got[0] != 3<<16 || got[1] != 2<<16 {
		t.Fatalf("11:30: Check = %#x, want [0x30000 0x20000]", got)
	}
	c.advance(time.Hour) // 12:30: everything has expired
	if got := check(t, x, a, b); got[0] != 0 || got[1] != 0 {
		t.Fatalf("12:30: Check = %#x, want [0 0]", got)
	}
	// Two partitions later an Add drops the old ones from the store.
	c.advance(2 * time.Hour)
	add(t, x, []Key{key("c")}, []uint64{4 << 16}, 4)
	if err := x.flush(); err != nil { // the drop is written with the buffer
		t.Fatal(err)
	}
	if n := storeEntries(t, x); n != 1 {
		t.Errorf("%d entries in the store after the old partitions were dropped, want 1", n)
	}
	if got := x.Covered(); got != 4 {
		t.Errorf("Covered = %d, want 4 (it never expires)", got)
	}
}

// rangeDeletions counts the range deletions in the store's tables.
func rangeDeletions(t *testing.T, x *Index) uint64 {
	t.Helper()
	levels, err := x.db.SSTables(pebble.WithProperties())
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, l := range levels {
		for _, tb := range l {
			n += tb.Properties.NumRangeDeletions
		}
	}
	return n
}

// TestDropOnlyWhatIsThere: an index opened with nothing below the previous
// partition writes no range deletion with its first Add (it would delete
// nothing, and every look-up seeking into its table would decode it); one
// opened with an old partition in the store drops it with its first Add.
func TestDropOnlyWhatIsThere(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 5, 10, 30, 0, 0, time.UTC)}
	opt := Options{Dir: t.TempDir(), Window: time.Hour}
	x, err := openClock(opt, c.now)
	if err != nil {
		t.Fatal(err)
	}
	add(t, x, []Key{key("a")}, []uint64{1 << 16}, 1)
	if err := x.flush(); err != nil {
		t.Fatal(err)
	}
	if err := x.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := rangeDeletions(t, x); n != 0 {
		t.Errorf("a new index's first Add wrote %d range deletions, want none", n)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}

	c.advance(2 * time.Hour) // a's partition is now below the previous one
	x, err = openClock(opt, c.now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	add(t, x, []Key{key("b")}, []uint64{2 << 16}, 2)
	if err := x.flush(); err != nil {
		t.Fatal(err)
	}
	if n := storeEntries(t, x); n != 1 {
		t.Errorf("%d entries in the store, want 1: a's partition not dropped", n)
	}
}

func TestOptions(t *testing.T) {
	for _, c := range []struct {
		name string
		opt  Options
		want string
	}{
		{"no dir", Options{}, "dir: required"},
		{"short window", Options{Dir: "d", Window: 500 * time.Millisecond}, "window: 500ms is under 1s"},
		{"negative window", Options{Dir: "d", Window: -time.Hour}, "window: -1h0m0s is under 1s"},
		{"small memory", Options{Dir: "d", MemoryBytes: 1 << 20}, "memory: 1048576 bytes is under 33554432"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Open(c.opt)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Open: %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestAddErrors(t *testing.T) {
	x := open(t, Options{})
	k := key("k")
	for _, c := range []struct {
		name string
		keys []Key
		pos  []uint64
		want string
	}{
		{"lengths", []Key{k}, nil, "1 keys and 0 positions"},
		{"position 0", []Key{k, k}, []uint64{1, 0}, "key 1 has position 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := x.Add(c.keys, c.pos, 0)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Add: %v, want an error containing %q", err, c.want)
			}
		})
	}
	if got := check(t, x, k); got[0] != 0 {
		t.Errorf("a refused Add stored its key at %#x", got[0])
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Check([]Key{k}); !errors.Is(err, ErrClosed) {
		t.Errorf("Check after Close: %v, want ErrClosed", err)
	}
	if err := x.Add([]Key{k}, []uint64{1}, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Add after Close: %v, want ErrClosed", err)
	}
	if s := x.Stats(); s.DiskBytes != 0 || s.Checked != 1 {
		t.Errorf("Stats after Close = %+v, want no store figures and 1 key checked", s)
	}
}

// filled returns the directory of a closed index holding n keys, flushed
// to tables.
func filled(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	x, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]Key, n)
	pos := make([]uint64, n)
	for i := range keys {
		keys[i] = key(fmt.Sprint(i))
		pos[i] = uint64(i+1) << 16
	}
	if err := x.Add(keys, pos, uint64(n)); err != nil {
		t.Fatal(err)
	}
	if err := x.flush(); err != nil { // to the store
		t.Fatal(err)
	}
	if err := x.db.Flush(); err != nil { // to a table
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestDamaged(t *testing.T) {
	glob := func(t *testing.T, dir, pattern string) []string {
		t.Helper()
		files, _ := filepath.Glob(filepath.Join(dir, pattern))
		if len(files) == 0 {
			t.Fatalf("no %s in %s", pattern, dir)
		}
		return files
	}
	overwrite := func(pattern string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			for _, f := range glob(t, dir, pattern) {
				fi, err := os.Stat(f)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(f, []byte(strings.Repeat("garbage!", int(fi.Size()/8)+1)), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, dir string)
	}{
		{"manifest", overwrite("MANIFEST-*")},
		{"table", overwrite("*.sst")},
		{"table truncated", func(t *testing.T, dir string) {
			if err := os.Truncate(glob(t, dir, "*.sst")[0], 100); err != nil {
				t.Fatal(err)
			}
		}},
		{"table missing", func(t *testing.T, dir string) {
			if err := os.Remove(glob(t, dir, "*.sst")[0]); err != nil {
				t.Fatal(err)
			}
		}},
		{"unknown format", setFormat("capstan-dedup-0")},
		// Format 1's keys were HMAC-SHA256: an index of it holds none of
		// this release's keys.
		{"format 1", setFormat("capstan-dedup-pebble-1")},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filled(t, 1000)
			c.damage(t, dir)
			x, err := Open(Options{Dir: dir})
			if err == nil {
				x.Close()
				t.Fatal("Open of a damaged index: no error")
			}
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("Open: %v, want ErrDamaged", err)
			}
			if format := strings.Contains(c.name, "format"); errors.Is(err, ErrFormat) != format {
				t.Errorf("Open: %v; ErrFormat %v, want %v", err, !format, format)
			}
			// What the caller does: rebuild in place.
			y, err := OpenEmpty(Options{Dir: dir})
			if err != nil {
				t.Fatalf("OpenEmpty: %v", err)
			}
			defer y.Close()
			if got := y.Covered(); got != 0 {
				t.Errorf("rebuilt index: Covered = %d, want 0", got)
			}
		})
	}
}

// setFormat returns a damage that writes v as the index's format.
func setFormat(v string) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		cache := pebble.NewCache(8 << 20)
		defer cache.Unref()
		db, err := pebble.Open(dir, pebbleOptions(Options{Logger: slog.New(slog.DiscardHandler)}, cache))
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Set(formatKey, []byte(v), pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		if err := db.Flush(); err != nil { // no write-ahead log: to a table
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestHeldIsNotDamaged(t *testing.T) {
	x := open(t, Options{})
	_, err := Open(Options{Dir: x.dir})
	if err == nil || errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second Open: %v, want in use and not ErrDamaged", err)
	}
}

// TestConcurrent runs Adds of overlapping keys at different positions and
// Checks at once; every key ends at its smallest position, and a Check
// never sees a position that was not added.
func TestConcurrent(t *testing.T) {
	x := open(t, Options{})
	const writers, keys, rounds = 4, 200, 8
	ks := make([]Key, keys)
	for i := range ks {
		ks[i] = key(fmt.Sprint(i))
	}
	// Writer w adds key i at position (rounds*w + r + 1)<<16 | i in round r:
	// the smallest is writer 0's first round, 1<<16 | i.
	valid := func(i int, p uint64) bool {
		return p == 0 || (p&0xffff == uint64(i) && p>>16 >= 1 && p>>16 <= writers*rounds)
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers*2)
	for w := range writers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			pos := make([]uint64, keys)
			for r := rounds - 1; r >= 0; r-- { // later positions first
				seq := uint64(rounds*w + r + 1)
				for i := range pos {
					pos[i] = seq<<16 | uint64(i)
				}
				if err := x.Add(ks, pos, seq); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range rounds {
				got, err := x.Check(ks)
				if err != nil {
					errs <- err
					return
				}
				for i, p := range got {
					if !valid(i, p) {
						errs <- fmt.Errorf("key %d at %#x, never added there", i, p)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, p := range check(t, x, ks...) {
		if p != 1<<16|uint64(i) {
			t.Errorf("key %d at %#x, want %#x", i, p, 1<<16|uint64(i))
		}
	}
	if got, want := x.Covered(), uint64(writers*rounds); got != want {
		t.Errorf("Covered = %d, want %d", got, want)
	}
}

func TestStats(t *testing.T) {
	dir := filled(t, 1000)
	x := open(t, Options{Dir: dir})
	check(t, x, key("0"), key("absent"))
	s := x.Stats()
	if s.Keys < 1000 || s.TableBytes < 1000*24 || s.DiskBytes < s.TableBytes {
		t.Errorf("Stats = %+v, want ≥ 1000 keys of ≥ 24 bytes on disk", s)
	}
	if s.Covered != 1000 || s.Checked != 2 || s.Found != 1 || s.Added != 0 {
		t.Errorf("Stats = %+v, want covered 1000, 2 checked, 1 found, 0 added", s)
	}
}

func TestCollector(t *testing.T) {
	x := open(t, Options{})
	add(t, x, []Key{key("a"), key("b")}, []uint64{1 << 16, 1<<16 | 1}, 1)
	check(t, x, key("a"), key("c"))
	reg := prometheus.NewRegistry()
	reg.MustRegister(x.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		got[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
	}
	for name, want := range map[string]float64{
		"capstan_dedup_covered_sequence":   1,
		"capstan_dedup_checked_keys_total": 2,
		"capstan_dedup_found_keys_total":   1,
		"capstan_dedup_added_keys_total":   2,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
	if got["capstan_dedup_disk_bytes"] <= 0 {
		t.Errorf("capstan_dedup_disk_bytes = %v, want > 0", got["capstan_dedup_disk_bytes"])
	}
	if _, ok := got["capstan_dedup_keys"]; !ok {
		t.Error("no capstan_dedup_keys")
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if mfs, err := reg.Gather(); err != nil || len(mfs) != 0 {
		t.Errorf("after Close: %d metric families, %v; want none", len(mfs), err)
	}
}

// TestCompactionOptions: pebble's L0 thresholds are l0CompactionThreshold
// (compacting at half as many sublevels, stopping writes at as many), not
// its defaults (4 and 12), which rewrote a growing index of hashed keys
// after every few buffers (see l0CompactionThreshold; BenchmarkGrow
// measures what it saves), and writes row blocks of tableBlockSize, not
// columnar blocks of 4 KiB.
func TestCompactionOptions(t *testing.T) {
	dir := t.TempDir()
	open(t, Options{Dir: dir})
	files, err := filepath.Glob(filepath.Join(dir, "OPTIONS-*"))
	if err != nil || len(files) != 1 {
		t.Fatalf("pebble's OPTIONS file: %v, %v", files, err)
	}
	text, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"l0_compaction_threshold=64\n", "l0_stop_writes_threshold=64\n",
		"  block_size=32768\n", "  index_block_size=32768\n", "  target_file_size=16777216\n"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("pebble's options have no %q:\n%s", strings.TrimSpace(want), text)
		}
	}
	for _, bad := range []string{"block_size=4096\n", "enable_columnar_blocks=true\n"} {
		if strings.Contains(string(text), bad) {
			t.Errorf("pebble's options have %q:\n%s", strings.TrimSpace(bad), text)
		}
	}
}

// TestL0CompactedAt32Sublevels: the index's tables in L0 (one sublevel
// each, as every table spans the whole key space) are compacted into the
// level below once there are 32 of them, not before. pebble starts an L0
// compaction when twice the sublevels reach L0CompactionThreshold, so a
// threshold of 32 compacted at 16: in a run of 7.6 million keys that was
// one compaction of 190 MB the index did not need (l0CompactionThreshold).
// A new index's format key has a table of its own in L0, under the
// buffers' tables (TestFirstTableInL0): it counts as a sublevel.
func TestL0CompactedAt32Sublevels(t *testing.T) {
	x := open(t, Options{bufferKeys: 500})
	keys := make([]Key, 500)
	pos := make([]uint64, 500)
	g := 0
	table := func() {
		t.Helper()
		for i := range keys {
			keys[i] = mixKey(uint64(g)<<16 | uint64(i))
			pos[i] = uint64(g+1)<<16 | uint64(i)
		}
		add(t, x, keys, pos, uint64(g+1))
		g++
		if err := x.flush(); err != nil { // the full buffer's table ingested
			t.Fatal(err)
		}
	}
	for g < 64 && x.db.Metrics().Levels[0].Sublevels < 31 {
		table()
	}
	m := x.db.Metrics()
	if m.Compact.Count+m.Compact.NumInProgress > 0 || m.Levels[0].Sublevels != 31 {
		t.Fatalf("%d tables: %d compactions done, %d running, %d sublevels in L0; want none, none, 31",
			g, m.Compact.Count, m.Compact.NumInProgress, m.Levels[0].Sublevels)
	}
	table()
	for x.db.Metrics().Compact.Count == 0 {
		time.Sleep(10 * time.Millisecond) // the test's deadline ends a compaction that never comes
	}
}

// TestMergeReusesMergers: the merge operator keeps the smallest position of
// an entry and the largest Covered whatever the order of the operands,
// with mergers reused from its pool (two open at once keep their own
// values), and a merge allocates nothing.
func TestMergeReusesMergers(t *testing.T) {
	be := func(v ...uint64) []byte {
		var b []byte
		for _, x := range v {
			b = binary.BigEndian.AppendUint64(b, x)
		}
		return b
	}
	ek := entryKey(nil, 7, key("a"))
	for round := range 50 {
		n := uint64(round)
		e, err := merge(ek, be(100+n, 1))
		if err != nil {
			t.Fatal(err)
		}
		c, err := merge(coveredKey, be(100+n))
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []uint64{50 + n, 200 + n, 50 + n + 1} {
			if err := e.MergeOlder(be(v, 2)); err != nil {
				t.Fatal(err)
			}
			if err := c.MergeNewer(be(v)); err != nil {
				t.Fatal(err)
			}
		}
		ev, ecl, err := e.Finish(true)
		if err != nil {
			t.Fatal(err)
		}
		cv, ccl, err := c.Finish(false)
		if err != nil {
			t.Fatal(err)
		}
		if want := be(50+n, 2); !bytes.Equal(ev, want) {
			t.Fatalf("round %d: entry merged to %x, want %x", round, ev, want)
		}
		if want := be(200 + n); !bytes.Equal(cv, want) {
			t.Fatalf("round %d: covered merged to %x, want %x", round, cv, want)
		}
		for _, cl := range []io.Closer{ecl, ccl} {
			if cl != nil {
				if err := cl.Close(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if raceEnabled {
		t.Skip("the race detector's sync.Pool drops pooled mergers at random: allocations vary")
	}
	v := be(1, 2)
	allocs := testing.AllocsPerRun(100, func() {
		m, _ := merge(ek, v)
		_ = m.MergeNewer(v)
		if _, cl, _ := m.Finish(true); cl != nil {
			cl.Close()
		}
	})
	if allocs != 0 {
		t.Errorf("a merge allocates %v times, want 0", allocs)
	}
}

// TestOpenIndexWithLog: an index written by an older release, with a
// write-ahead log, whose last entries and Covered are only in its log
// (not flushed when it stopped), opens with them: pebble replays the log
// whatever the option, and the first flush writes them to tables.
func TestOpenIndexWithLog(t *testing.T) {
	dir := t.TempDir()
	cache := pebble.NewCache(8 << 20)
	o := pebbleOptions(Options{Logger: slog.New(slog.DiscardHandler)}, cache)
	o.DisableWAL = false
	db, err := pebble.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set(formatKey, []byte(format), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	part := uint64(now.UnixMilli()) / uint64(DefaultWindow.Milliseconds())
	b := db.NewBatch()
	var v [16]byte
	binary.BigEndian.PutUint64(v[8:], uint64(now.Add(DefaultWindow).UnixMilli()))
	for i := range 100 {
		binary.BigEndian.PutUint64(v[:8], uint64(i+1)<<16)
		if err := b.Merge(entryKey(nil, part, key(fmt.Sprint(i))), v[:], nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Merge(coveredKey, binary.BigEndian.AppendUint64(nil, 100), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil { // the memtable not flushed: in the log only
		t.Fatal(err)
	}
	cache.Unref()

	for _, round := range []string{"log replayed", "reopened"} {
		x, err := Open(Options{Dir: dir, MemoryBytes: MinMemoryBytes})
		if err != nil {
			t.Fatal(err)
		}
		if got := x.Covered(); got != 100 {
			t.Errorf("%s: Covered %d, want 100", round, got)
		}
		for i := range 100 {
			if got := check(t, x, key(fmt.Sprint(i)))[0]; got != uint64(i+1)<<16 {
				t.Fatalf("%s: key %d at %#x, want %#x", round, i, got, uint64(i+1)<<16)
			}
		}
		if err := x.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEmptyFlushIsNoError: pebble reports a flush that wrote no table
// (every Close of the index flushes, most often an empty memtable) as a
// FlushEnd with the error "pebble: empty table", which flushFailed must
// not take for a failure: the index's hook would end the process. The
// error is unexported and matched by its text, so a pebble that renames
// it fails here rather than at every stop of capstan.
func TestEmptyFlushIsNoError(t *testing.T) {
	var infos []pebble.FlushInfo
	o := &pebble.Options{FS: vfs.NewMem(), DisableWAL: true}
	o.EventListener = &pebble.EventListener{FlushEnd: func(info pebble.FlushInfo) { infos = append(infos, info) }}
	db, err := pebble.Open("index", o)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Err == nil {
		t.Fatalf("flush of an empty memtable: FlushEnd %+v, want one with pebble's empty-table error", infos)
	}
	if flushFailed(infos[0]) {
		t.Errorf("flushFailed(%v) = true for a flush that wrote no table", infos[0].Err)
	}
	failed := infos[0]
	failed.Err = errors.New("creating object 000012.sst: no such file or directory")
	if !flushFailed(failed) {
		t.Errorf("flushFailed(%v) = false", failed.Err)
	}
}

// TestOpenColumnarIndex: an index written by an older release, whose
// tables are pebble's columnar blocks of 4 KiB (its defaults at
// FormatNewest), opens and answers with the row blocks of 32 KiB the index
// now writes (tableBlockSize): its tables are read as they are, and
// compactions rewrite them as row blocks beside them, the answers the same.
func TestOpenColumnarIndex(t *testing.T) {
	dir := t.TempDir()
	cache := pebble.NewCache(8 << 20)
	o := pebbleOptions(Options{Logger: slog.New(slog.DiscardHandler)}, cache)
	o.Experimental.EnableColumnarBlocks = nil // pebble's default: columnar
	for i := range o.Levels {
		o.Levels[i].BlockSize, o.Levels[i].IndexBlockSize = 0, 0 // 4 KiB
	}
	db, err := pebble.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set(formatKey, []byte(format), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	const n = 2000
	now := time.Now()
	part := uint64(now.UnixMilli()) / uint64(DefaultWindow.Milliseconds())
	b := db.NewBatch()
	var v [16]byte
	binary.BigEndian.PutUint64(v[8:], uint64(now.Add(DefaultWindow).UnixMilli()))
	for i := range n {
		binary.BigEndian.PutUint64(v[:8], uint64(i+10)<<16)
		if err := b.Merge(entryKey(nil, part, key(fmt.Sprint(i))), v[:], nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Merge(coveredKey, binary.BigEndian.AppendUint64(nil, n), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := tableFormats(t, db); got.columnar == 0 || got.row != 0 {
		t.Fatalf("the older release's tables: %+v, want columnar ones only", got)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	cache.Unref()

	// want is each key's first position: the older release's, then the
	// Adds below (key 0 earlier, keys n/2 to n-1 later: kept, keys n to
	// 3n/2-1 new).
	want := func(i int) uint64 {
		switch {
		case i == 0:
			return 1
		case i < n:
			return uint64(i+10) << 16
		case i < 3*n/2:
			return uint64(i+20) << 16
		}
		return 0
	}
	answers := func(x *Index, round string) {
		t.Helper()
		for i := range 2 * n {
			if got := check(t, x, key(fmt.Sprint(i)))[0]; got != want(i) {
				t.Fatalf("%s: key %d at %#x, want %#x", round, i, got, want(i))
			}
		}
	}
	x, err := Open(Options{Dir: dir, MemoryBytes: MinMemoryBytes})
	if err != nil {
		t.Fatal(err)
	}
	if got := x.Covered(); got != n {
		t.Errorf("opened: Covered %d, want %d", got, n)
	}
	var keys []Key
	var pos []uint64
	keys, pos = append(keys, key("0")), append(pos, 1)
	for i := n / 2; i < 3*n/2; i++ {
		keys, pos = append(keys, key(fmt.Sprint(i))), append(pos, uint64(i+20)<<16)
	}
	add(t, x, keys, pos, 3*n/2)
	answers(x, "opened")
	// Into tables, then everything compacted: the columnar tables are
	// rewritten as row blocks.
	if err := x.flush(); err != nil {
		t.Fatal(err)
	}
	if err := x.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := tableFormats(t, x.db); got.columnar == 0 || got.row == 0 {
		t.Errorf("flushed: tables %+v, want columnar and row ones", got)
	}
	answers(x, "flushed, both formats")
	if err := x.db.Compact(t.Context(), []byte{0}, []byte{0xff}, false); err != nil {
		t.Fatal(err)
	}
	got := tableFormats(t, x.db)
	if got.columnar != 0 || got.row == 0 {
		t.Errorf("compacted: tables %+v, want row ones only", got)
	}
	if got.blocks == 0 || got.dataBytes/got.blocks < 16<<10 {
		t.Errorf("compacted: %d data bytes in %d blocks, want blocks of about %d", got.dataBytes, got.blocks, tableBlockSize)
	}
	answers(x, "compacted")
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	x = open(t, Options{Dir: dir, MemoryBytes: MinMemoryBytes})
	if got := x.Covered(); got != 3*n/2 {
		t.Errorf("reopened: Covered %d, want %d", got, 3*n/2)
	}
	answers(x, "reopened")
}

// tableStats counts a store's tables by block format, and the data
// blocks and their bytes of the row ones.
type tableStats struct {
	columnar, row     int
	blocks, dataBytes uint64
}

func tableFormats(t *testing.T, db *pebble.DB) tableStats {
	t.Helper()
	levels, err := db.SSTables(pebble.WithProperties())
	if err != nil {
		t.Fatal(err)
	}
	var s tableStats
	for _, l := range levels {
		for _, tb := range l {
			if tb.Properties.KeySchemaName != "" {
				s.columnar++
				continue
			}
			s.row++
			s.blocks += tb.Properties.NumDataBlocks
			s.dataBytes += tb.Properties.DataSize
		}
	}
	return s
}

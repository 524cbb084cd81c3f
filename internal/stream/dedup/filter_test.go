package dedup

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestFilter: a filter never loses a key it was given, and the share of
// absent keys it lets through is what its size promises: ~1% at 10 bits
// per key, all of them once it is full.
func TestFilter(t *testing.T) {
	const n = 20_000
	for _, c := range []struct {
		name           string
		size           int64 // bytes
		minFPR, maxFPR float64
	}{
		{"10 bits per key", n * 10 / 8, 0.002, 0.025},
		{"2 bits per key", n * 2 / 8, 0.3, 0.9},
		{"one block", 1, 0.99, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFilter(c.size)
			for i := range n {
				k := mixKey(uint64(i))
				f.add(&k)
			}
			for i := range n {
				if k := mixKey(uint64(i)); !f.mayContain(&k) {
					t.Fatalf("key %d added, not found", i)
				}
			}
			fp := 0
			for i := range n {
				if k := mixKey(uint64(n + i)); f.mayContain(&k) {
					fp++
				}
			}
			if r := float64(fp) / n; r < c.minFPR || r > c.maxFPR {
				t.Errorf("false positives %.4f, want %.3f to %.3f", r, c.minFPR, c.maxFPR)
			}
		})
	}
}

// TestFilterAddAll: addAll sets exactly the bits that add sets, key by
// key, for runs shorter and longer than touchRun.
func TestFilterAddAll(t *testing.T) {
	for _, n := range []int{0, 1, touchRun - 1, touchRun, 3*touchRun + 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			keys := make([]Key, n)
			for i := range keys {
				keys[i] = mixKey(uint64(n<<20 | i))
			}
			one, all := newFilter(1<<16), newFilter(1<<16)
			for i := range keys {
				one.add(&keys[i])
			}
			all.addAll(keys)
			for i := range one.words {
				if got, want := all.words[i].Load(), one.words[i].Load(); got != want {
					t.Fatalf("word %d: addAll set %#x, add %#x", i, got, want)
				}
			}
		})
	}
}

// BenchmarkFilterAdd adds groups of 1000 new keys to a filter of the
// index's default size (32 MiB, far larger than the caches), key by key
// (add) and as one group (addAll, what Index.Add does). ns/op is per group.
func BenchmarkFilterAdd(b *testing.B) {
	for _, c := range []struct {
		name string
		add  func(f *filter, keys []Key)
	}{
		{"add", func(f *filter, keys []Key) {
			for i := range keys {
				f.add(&keys[i])
			}
		}},
		{"addAll", (*filter).addAll},
	} {
		b.Run(c.name, func(b *testing.B) {
			f := newFilter(32 << 20)
			keys := make([]Key, 1000)
			n := uint64(0)
			for b.Loop() {
				for i := range keys {
					n++
					keys[i] = mixKey(n)
				}
				c.add(f, keys)
			}
		})
	}
}

// TestFiltersNeverHidePresentKey: whatever the filters' size (full ones
// included), every key in the store is found, in the current and the
// previous partition, in the memtable and in tables, after a restart (the
// filters rebuilt by the scan at Open) and with Adds running while that
// scan runs (as catch-up does at start).
func TestFiltersNeverHidePresentKey(t *testing.T) {
	for _, size := range []int64{64, 4 << 10, 1 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			c := &clock{t: time.Date(2026, 12, 5, 10, 30, 0, 0, time.UTC)}
			const window = time.Hour
			dir := t.TempDir()
			opt := Options{Dir: dir, Window: window, filterBytes: size}
			x, err := openClock(opt, c.now)
			if err != nil {
				t.Fatal(err)
			}
			want := map[Key]uint64{}
			seq := uint64(0)
			addSome := func(x *Index, n int) {
				t.Helper()
				seq++
				keys := make([]Key, n)
				pos := make([]uint64, n)
				for i := range keys {
					keys[i] = key(fmt.Sprint(seq, "-", i))
					pos[i] = seq<<16 | uint64(i)
					want[keys[i]] = pos[i]
				}
				add(t, x, keys, pos, seq)
			}
			verify := func(x *Index, when string) {
				t.Helper()
				keys := make([]Key, 0, len(want))
				for k := range want {
					keys = append(keys, k)
				}
				for i, p := range check(t, x, keys...) {
					if p != want[keys[i]] {
						t.Fatalf("%s: key at %#x found at %#x", when, want[keys[i]], p)
					}
				}
			}
			if !x.filtersReady() {
				t.Fatal("filters of a new index not ready")
			}
			addSome(x, 500) // partition of 10:30, to a table
			if err := x.flush(); err != nil {
				t.Fatal(err)
			}
			if err := x.db.Flush(); err != nil {
				t.Fatal(err)
			}
			c.advance(40 * time.Minute) // 11:10, the next partition
			addSome(x, 500)             // in the write buffer
			verify(x, "before restart")
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}

			// Restart: Adds (catch-up) run while the scan fills the filters,
			// Checks too.
			y, err := openClock(opt, c.now)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { y.Close() })
			var wg sync.WaitGroup
			wg.Go(func() {
				for range 5 {
					if _, err := y.Check([]Key{key("1-1"), key("2-2")}); err != nil {
						t.Error(err)
					}
				}
			})
			for range 5 {
				addSome(y, 200)
			}
			wg.Wait()
			if !y.filtersReady() {
				t.Fatal("filters not ready after the scan")
			}
			verify(y, "after restart")
			if y.filters.floor != x.partition(c.now())-1 {
				t.Errorf("filters cover from partition %d, want %d", y.filters.floor, x.partition(c.now())-1)
			}

			// Two partitions later the first one is dropped from the store
			// and from the filters; the others stay found.
			c.advance(50 * time.Minute) // 12:00
			addSome(y, 10)
			for k, p := range want {
				if p>>16 == 1 {
					delete(want, k) // expired at 11:30 anyway
				}
			}
			verify(y, "after a partition was dropped")
			if n := len(y.filters.parts); n != 2 {
				t.Errorf("%d filters, want 2 (the current and the previous partitions)", n)
			}
		})
	}
}

// TestCheckSkipsTheStore: once the filters are ready, a Check of keys that
// were never added reaches the store for few of them, and one of keys
// that were added seeks each in the one partition that holds it.
func TestCheckSkipsTheStore(t *testing.T) {
	x := open(t, Options{})
	const n = 2000
	keys := make([]Key, n)
	pos := make([]uint64, n)
	for i := range keys {
		keys[i] = mixKey(uint64(i))
		pos[i] = uint64(i+1) << 16
	}
	add(t, x, keys, pos, n)
	if !x.filtersReady() {
		t.Fatal("filters not ready")
	}
	absent := make([]Key, n)
	for i := range absent {
		absent[i] = mixKey(uint64(n + i))
	}
	before := x.probed.Load()
	for _, p := range check(t, x, absent...) {
		if p != 0 {
			t.Fatalf("absent key found at %#x", p)
		}
	}
	if probed := x.probed.Load() - before; probed > n/50 {
		t.Errorf("%d absent keys: %d seeks in the store, want at most %d", n, probed, n/50)
	}
	before = x.probed.Load()
	for i, p := range check(t, x, keys...) {
		if p != pos[i] {
			t.Fatalf("key %d at %#x, want %#x", i, p, pos[i])
		}
	}
	if probed := x.probed.Load() - before; probed < n || probed > n+n/50 {
		t.Errorf("%d present keys: %d seeks in the store, want %d to %d", n, probed, n, n+n/50)
	}
}

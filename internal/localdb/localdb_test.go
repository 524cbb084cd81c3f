package localdb

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/cputime"

	"github.com/cockroachdb/pebble/v2"
)

func hashKey(prefix string, i int) []byte {
	h := sha256.Sum256(fmt.Appendf(nil, "%s%d", prefix, i))
	return append([]byte{'k'}, h[:]...)
}

// TestProbe: a probe finds what is stored, in the last level and in the
// memtable, misses what is not, and tests the last level's bloom filter
// before reading a data block (DB.Get does not: every miss read a block).
func TestProbe(t *testing.T) {
	d, err := Open(Options{Dir: t.TempDir(), MemoryBytes: 8 << 20, What: "test store"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const n = 5000
	b := d.NewBatch()
	for i := range n {
		if err := b.Set(hashKey("old", i), []byte(fmt.Sprint("v", i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := d.Compact(t.Context(), []byte{0}, []byte{0xff}, true); err != nil {
		t.Fatal(err)
	}
	if files := d.Metrics().Levels[6].TablesCount; files == 0 {
		t.Fatalf("no table in L6 after a manual compaction: %s", d.Metrics())
	}
	if err := d.Set(hashKey("mem", 0), []byte("in memtable"), pebble.NoSync); err != nil {
		t.Fatal(err)
	}

	p, err := d.NewProbe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Set(hashKey("late", 0), []byte("after the probe"), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		k    []byte
		want string
	}{{hashKey("old", 17), "v17"}, {hashKey("old", n-1), fmt.Sprint("v", n-1)}, {hashKey("mem", 0), "in memtable"}, {hashKey("late", 0), ""}, {hashKey("old", 17)[:20], ""}} {
		v, ok, err := p.Get(c.k)
		if err != nil || ok != (c.want != "") || string(v) != c.want {
			t.Errorf("Get(%x) = %q, %v, %v; want %q", c.k, v, ok, err, c.want)
		}
	}
	before := d.Metrics().Filter.Hits
	const misses = 1000
	for i := range misses {
		if _, ok, err := p.Get(hashKey("new", i)); ok || err != nil {
			t.Fatalf("Get(new %d) = %v, %v", i, ok, err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// 10 bits per key: ~1% false positives.
	if hits := d.Metrics().Filter.Hits - before; hits < misses*9/10 {
		t.Errorf("%d of %d misses were answered by a bloom filter; want at least 90%%", hits, misses)
	}
}

// BenchmarkMiss looks up absent keys in a store whose 200,000 keys are in
// L6 (the creates of new visitors and new eventIds): DB.Get reads a data
// block for each, a probe tests the bloom filter.
func BenchmarkMiss(b *testing.B) {
	d, err := Open(Options{Dir: b.TempDir(), MemoryBytes: 32 << 20, What: "bench store"})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	const n = 200_000
	batch := d.NewBatch()
	for i := range n {
		if err := batch.Set(hashKey("old", i), make([]byte, 200), nil); err != nil {
			b.Fatal(err)
		}
	}
	if err := batch.Commit(pebble.NoSync); err != nil {
		b.Fatal(err)
	}
	if err := d.Compact(b.Context(), []byte{0}, []byte{0xff}, true); err != nil {
		b.Fatal(err)
	}
	b.Run("get", func(b *testing.B) {
		for i := range b.N {
			if _, c, err := d.Get(hashKey("new", i)); err == nil {
				c.Close()
			}
		}
	})
	b.Run("probe", func(b *testing.B) {
		p, err := d.NewProbe()
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		for i := range b.N {
			if _, _, err := p.Get(hashKey("new", i)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestOrder: indices by ascending key, equal keys (and nil ones, first) in
// the order given.
func TestOrder(t *testing.T) {
	keys := [][]byte{[]byte("c"), []byte("a"), nil, []byte("b"), []byte("a"), []byte("ab")}
	if got, want := Order(keys), []int{2, 1, 4, 5, 3, 0}; !slices.Equal(got, want) {
		t.Errorf("Order = %v, want %v", got, want)
	}
	if got := Order(nil); len(got) != 0 {
		t.Errorf("Order(nil) = %v", got)
	}
}

// TestOrderAsStableSort: Order gives the order of a stable sort of the
// indices by key, with keys that share their first 8 bytes or fewer,
// prefixes of each other, zero bytes, repeats and nil ones.
func TestOrderAsStableSort(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		keys := make([][]byte, rnd.IntN(300))
		for i := range keys {
			switch rnd.IntN(6) {
			case 0:
				keys[i] = nil
			case 1: // a repeat
				if i > 0 {
					keys[i] = keys[rnd.IntN(i)]
				}
			default: // a few byte values, up to 12 bytes: shared prefixes
				k := make([]byte, rnd.IntN(13))
				for j := range k {
					k[j] = byte(rnd.IntN(3))
				}
				keys[i] = k
			}
		}
		want := make([]int, len(keys))
		for i := range want {
			want[i] = i
		}
		slices.SortStableFunc(want, func(a, b int) int { return bytes.Compare(keys[a], keys[b]) })
		if got := Order(keys); !slices.Equal(got, want) {
			t.Fatalf("round %d: Order = %v, want %v (keys %q)", round, got, want, keys)
		}
	}
}

// TestCompactionOptions: Open compacts L0 at 16 sublevels (threshold 32;
// writes stop at 48) into a base level of 4 memtables (see Open: pebble's
// defaults rewrote a growing store of hashed keys after every flush or
// two). What they do to the writes is
// measured by BenchmarkGrow, not here: compactions run in the background,
// when they run depends on the machine.
func TestCompactionOptions(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(Options{Dir: dir, MemoryBytes: 8 << 20, What: "test store"}) // 1 MiB memtables
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	files, err := filepath.Glob(filepath.Join(dir, "OPTIONS-*"))
	if err != nil || len(files) != 1 {
		t.Fatalf("pebble's OPTIONS file: %v, %v", files, err)
	}
	text, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"l0_compaction_threshold=32\n", "l0_stop_writes_threshold=48\n", fmt.Sprintf("lbase_max_bytes=%d\n", 4<<20)} {
		if !strings.Contains(string(text), want) {
			t.Errorf("pebble's options have no %q:\n%s", strings.TrimSpace(want), text)
		}
	}
}

// TestCacheHoldsMemtables: pebble reserves the memtables' memory in its
// block cache, so Open sizes the cache for both (MemoryBytes less
// FilterBytes): blocks still get at least the half of the memory less the
// filter that the old split meant for them alone, memtables aside (it gave
// the cache only that, and two or three memtables left a third of it).
func TestCacheHoldsMemtables(t *testing.T) {
	const mem, filter = 8 << 20, 2 << 20
	d, err := Open(Options{Dir: t.TempDir(), MemoryBytes: mem, What: "test store", FilterBytes: filter})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got := d.cache.MaxSize(); got != mem-filter {
		t.Errorf("cache of %d bytes; want %d (the memory less the filter)", got, mem-filter)
	}
	for i := range 3000 { // fill and rotate a memtable or two
		if err := d.Set(hashKey("k", i), make([]byte, 1000), pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	m := d.Metrics()
	if blocks := d.cache.MaxSize() - int64(m.MemTable.Size); blocks < mem/2-filter {
		t.Errorf("%d bytes of cache for blocks beside %d of memtables; want at least %d", blocks, m.MemTable.Size, mem/2-filter)
	}
}

// BenchmarkGrow creates b.N hashed keys with 196-byte random values in
// batches of 100, each probed first, as the identity store's creates of new
// visitors do, in a store of the identity store's default memory (32 MiB),
// and reports the CPU per key (the compactions' included: they run on
// other threads) and how many times over the store was written (flushes
// and compactions). Run it with enough keys to outgrow L6's first tables:
//
//	go test -run '^$' -bench Grow -benchtime 600000x ./internal/localdb
//
// CAPSTAN_GROW_FILTER_MIB gives the store a filter of absent keys of that
// size (the identity store's default: 16), as the stores have: the probes
// then mostly stop at it, and the writes' cost shows. Default 0: none.
func BenchmarkGrow(b *testing.B) {
	d, err := Open(Options{Dir: b.TempDir(), MemoryBytes: 32 << 20, What: "bench store", FilterBytes: envKnob(b, "CAPSTAN_GROW_FILTER_MIB", 0) << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	rnd := rand.NewChaCha8([32]byte{})
	val := make([]byte, 16+180)
	const per = 100
	keys := make([][]byte, per)
	cpu0 := cputime.Process()
	b.ResetTimer()
	for i := 0; i < b.N; i += per {
		n := min(per, b.N-i)
		p, err := d.NewProbe()
		if err != nil {
			b.Fatal(err)
		}
		for j := range n {
			keys[j] = hashKey("g", i+j)
			if _, ok, err := p.Get(keys[j]); ok || err != nil {
				b.Fatalf("probe of a new key: %v, %v", ok, err)
			}
		}
		if err := p.Close(); err != nil {
			b.Fatal(err)
		}
		setRandom(b, d, rnd, val, keys[:n])
	}
	if err := d.Flush(); err != nil {
		b.Fatal(err)
	}
	for d.Metrics().Compact.NumInProgress > 0 {
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	m := d.Metrics()
	var written, size uint64
	for _, l := range m.Levels {
		written += l.TableBytesFlushed + l.TableBytesCompacted
		size += uint64(l.AggregateSize())
	}
	b.ReportMetric(float64((cputime.Process()-cpu0).Microseconds())/float64(b.N), "CPU-µs/key")
	b.ReportMetric(float64(written)/float64(size), "written-x")
	b.ReportMetric(float64(size)/(1<<20), "store-MB")
}

// BenchmarkProbeOrder looks up absent keys, 100 per Probe as the identity
// store's and the eventId guard's creates do, in a store of 300,000 keys
// grown as they grow it (L0 and L6 tables, the identity store's 32 MiB):
// given = the batch's keys as they come, sorted = in Order's order. It
// reports the CPU per look-up (ns/op is wall time, which a shared machine
// stretches).
//
// sorted/filter: the same store with the identity store's filter of
// absent keys (Options.FilterBytes, 4 MiB of its 32), every key Added.
func BenchmarkProbeOrder(b *testing.B) {
	grown := func(filter int64) *DB {
		d, err := Open(Options{Dir: b.TempDir(), MemoryBytes: 32 << 20, What: "bench store", FilterBytes: filter})
		if err != nil {
			b.Fatal(err)
		}
		rnd := rand.NewChaCha8([32]byte{})
		val := make([]byte, 200)
		const n = 300_000
		keys := make([][]byte, 1000)
		for i := 0; i < n; i += len(keys) {
			for j := range keys {
				keys[j] = hashKey("old", i+j)
			}
			setRandom(b, d, rnd, val, keys)
		}
		if err := d.Flush(); err != nil {
			b.Fatal(err)
		}
		// Not measured: the compactions the growth started, the scan.
		for quiet := 0; quiet < 5; time.Sleep(20 * time.Millisecond) {
			if quiet++; d.Metrics().Compact.NumInProgress > 0 || (filter > 0 && !d.Filter().Ready()) {
				quiet = 0
			}
		}
		return d
	}
	const per = 100
	plain := grown(0)
	defer plain.Close()
	for _, sc := range []struct {
		name   string
		sorted bool
		filter bool
	}{{"given", false, false}, {"sorted", true, false}, {"sorted/filter", true, true}} {
		sorted, d := sc.sorted, plain
		if sc.filter {
			d = grown(4 << 20)
			defer d.Close()
		}
		b.Run(sc.name, func(b *testing.B) {
			keys := make([][]byte, per)
			order := make([]int, per)
			cpu0 := cputime.Process()
			for i := 0; i < b.N; i += per {
				m := min(per, b.N-i)
				for j := range m {
					keys[j], order[j] = hashKey("new", i+j), j
				}
				if sorted {
					copy(order, Order(keys[:m]))
				}
				p, err := d.NewProbe()
				if err != nil {
					b.Fatal(err)
				}
				for _, j := range order[:m] {
					if _, ok, err := p.Get(keys[j]); ok || err != nil {
						b.Fatalf("probe of an absent key: %v, %v", ok, err)
					}
				}
				if err := p.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cputime.Process()-cpu0).Nanoseconds())/float64(b.N), "CPU-ns/op")
		})
	}
}

// setRandom writes keys, each with val filled with random bytes, as one
// batch without sync, as the stores write a request's new keys.
func setRandom(b *testing.B, d *DB, rnd *rand.ChaCha8, val []byte, keys [][]byte) {
	b.Helper()
	batch := d.NewBatch()
	defer batch.Close()
	defer d.Filter().EndAdds(d.Filter().BeginAdds())
	for _, k := range keys {
		d.Filter().Add(k)
		rnd.Read(val)
		if err := batch.Set(k, val, nil); err != nil {
			b.Fatal(err)
		}
	}
	if err := batch.Commit(pebble.NoSync); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkOrder orders 5,000 hashed keys (the eventId guard's claims of a
// batch): Order, and the stable sort of the indices comparing the keys that
// it replaced.
func BenchmarkOrder(b *testing.B) {
	keys := make([][]byte, 5000)
	for i := range keys {
		keys[i] = hashKey("e", i)
	}
	b.Run("order", func(b *testing.B) {
		for range b.N {
			Order(keys)
		}
	})
	b.Run("stable", func(b *testing.B) {
		for range b.N {
			order := make([]int, len(keys))
			for i := range order {
				order[i] = i
			}
			slices.SortStableFunc(order, func(a, b int) int { return bytes.Compare(keys[a], keys[b]) })
		}
	})
}

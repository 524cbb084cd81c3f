package dedup

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// storeEntries counts the entries the store holds (not the buffers').
func storeEntries(t *testing.T, x *Index) int {
	t.Helper()
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: []byte{entryKind}, UpperBound: []byte{entryKind + 1}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	return n
}

// storedCovered is Covered as the store holds it (0: none).
func storedCovered(t *testing.T, x *Index) uint64 {
	t.Helper()
	v, err := x.get(coveredKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return binary.BigEndian.Uint64(v)
}

// TestBufferSize: with the default memory budget a buffer holds 268,435
// keys (M/10 at 100 bytes a key, bufferShare) before it is written: the
// fewer, larger tables it makes, the fewer compactions of the level below
// L0 per key.
func TestBufferSize(t *testing.T) {
	const full = 268_435
	x := open(t, Options{})
	keys := make([]Key, 1000)
	pos := make([]uint64, len(keys))
	addN := func(from, n int) {
		for i := range n {
			keys[i] = mixKey(uint64(from + i))
			pos[i] = uint64(from+i+1) << 16
		}
		add(t, x, keys[:n], pos[:n], 0)
	}
	for at := 0; at < full-1; at += len(keys) {
		addN(at, min(len(keys), full-1-at))
	}
	x.buf.writes.Wait()
	if n := storeEntries(t, x); n != 0 {
		t.Fatalf("%d keys added: the store holds %d entries, want none (the buffer written too soon)", full-1, n)
	}
	addN(full-1, 1)
	x.buf.writes.Wait()
	if n := storeEntries(t, x); n != full {
		t.Fatalf("%d keys added: the store holds %d entries, want all", full, n)
	}
}

// TestAddIsBuffered: Adds reach the store only when a buffer is full, its
// keys and its Covered in one write; until then Check answers from the
// buffer, with the first occurrence winning across buffer and store.
func TestAddIsBuffered(t *testing.T) {
	x := open(t, Options{bufferKeys: 100})
	keys := make([]Key, 110)
	pos := make([]uint64, len(keys))
	for i := range keys {
		keys[i] = mixKey(uint64(i))
		pos[i] = uint64(i+10) << 16
	}
	add(t, x, keys[:50], pos[:50], 5)
	if n, c := storeEntries(t, x), storedCovered(t, x); n != 0 || c != 0 {
		t.Fatalf("half a buffer added: the store holds %d entries and covered %d, want none", n, c)
	}
	if x.Covered() != 5 {
		t.Errorf("Covered = %d, want 5", x.Covered())
	}
	for i, p := range check(t, x, keys[:50]...) {
		if p != pos[i] {
			t.Fatalf("buffered key %d at %#x, want %#x", i, p, pos[i])
		}
	}
	// The same key later in the stream, then earlier: the earliest stays.
	add(t, x, []Key{keys[0], keys[1]}, []uint64{pos[0] + 1, 1 << 16}, 0)
	if got := check(t, x, keys[0], keys[1]); got[0] != pos[0] || got[1] != 1<<16 {
		t.Errorf("Check = %#x, want [%#x 0x10000]", got, pos[0])
	}

	add(t, x, keys[50:], pos[50:], 9) // the buffer is full: written
	if err := x.flush(); err != nil {
		t.Fatal(err)
	}
	if n, c := storeEntries(t, x), storedCovered(t, x); n != len(keys) || c != 9 {
		t.Errorf("a full buffer written: the store holds %d entries and covered %d, want %d and 9", n, c, len(keys))
	}
	// A key in the store at an earlier position than in the buffer.
	add(t, x, []Key{keys[2]}, []uint64{pos[2] + 5}, 0)
	if got := check(t, x, keys[2]); got[0] != pos[2] {
		t.Errorf("Check = %#x, want the store's %#x", got[0], pos[2])
	}
	if got := check(t, x, keys[1]); got[0] != 1<<16 {
		t.Errorf("after the write: Check = %#x, want 0x10000", got[0])
	}
}

// TestCheckWhileWriting: keys of Adds that returned are found while
// buffers are written to the store beside the Checks.
func TestCheckWhileWriting(t *testing.T) {
	x := open(t, Options{bufferKeys: 64})
	const groups, size = 300, 10
	added := make(chan []Key, groups)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(added)
		for g := range groups {
			keys := make([]Key, size)
			pos := make([]uint64, size)
			for i := range keys {
				keys[i] = mixKey(uint64(g*size + i))
				pos[i] = uint64(g+1)<<16 | uint64(i)
			}
			if err := x.Add(keys, pos, uint64(g+1)); err != nil {
				t.Error(err)
				return
			}
			added <- keys
		}
	})
	for keys := range added {
		got, err := x.Check(keys)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range got {
			if p == 0 {
				t.Fatalf("key %d of an Add that returned not found", i)
			}
		}
	}
	wg.Wait()
}

// TestWriteOrder: a buffer is written in the store's key order, which a
// table's writer requires; the order of its compare is the order of
// entryKey's bytes.
func TestWriteOrder(t *testing.T) {
	x := open(t, Options{bufferKeys: 1000})
	keys := make([]Key, 500)
	pos := make([]uint64, len(keys))
	for i := range keys {
		keys[i] = mixKey(uint64(i))
		keys[i][0] = byte(i % 3) // equal first bytes, to compare the rest
		pos[i] = uint64(i+1) << 16
	}
	add(t, x, keys, pos, 1)
	x.buf.mu.Lock()
	p := x.buf.active
	x.buf.mu.Unlock()
	sorted := p.sorted(nil)
	if len(sorted) != len(keys) {
		t.Fatalf("%d entries sorted, want %d", len(sorted), len(keys))
	}
	var prev []byte
	for i, e := range sorted {
		k := entryKey(nil, e.s.part, e.s.key)
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			t.Fatalf("entry %d (%x) does not sort after %x", i, k, prev)
		}
		prev = k
	}
}

// TestSorted: a buffer comes out in the store's order with every entry:
// of one partition, small or large; with entries of other partitions
// below and above the buffer's own; with many keys of equal top bytes
// (long runs in its table, sorted by comparisons) and keys of equal first
// halves.
func TestSorted(t *testing.T) {
	for _, c := range []struct {
		name  string
		parts int
		key   func(i int) Key
	}{
		{"one partition", 1, func(i int) Key { return mixKey(uint64(i)) }},
		{"two partitions", 2, func(i int) Key { return mixKey(uint64(i)) }},
		{"three partitions", 3, func(i int) Key { return mixKey(uint64(i)) }},
		{"crowded buckets", 1, func(i int) Key {
			k := mixKey(uint64(i))
			if i%4 == 0 {
				k[0], k[1], k[2] = 7, 7, byte(i%5) // 5 buckets of about 1,000
			}
			if i%7 == 0 {
				copy(k[:8], "samehalf") // equal first halves: the second decides
			}
			return k
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, n := range []int{1, 2, 1000, 20_000, 33_333} {
				p := newPending(n)
				for i := range n {
					// The first entry's partition is the buffer's: 6, with
					// others below and above it.
					p.put(uint64(5+((i+1)*7)%c.parts), c.key(i), entry{uint64(i + 1), 9})
				}
				var got []kv
				for range 2 { // and again in the memory of the first
					got = p.sorted(got)
					if len(got) != n {
						t.Fatalf("%d entries: %d sorted", n, len(got))
					}
					want := p.collect()
					sortCompare(want)
					for i := range got {
						if got[i] != want[i] {
							t.Fatalf("%d entries: entry %d is %x, want %x", n, i, entryKey(nil, got[i].s.part, got[i].s.key), entryKey(nil, want[i].s.part, want[i].s.key))
						}
						if i > 0 && bytes.Compare(entryKey(nil, got[i-1].s.part, got[i-1].s.key), entryKey(nil, got[i].s.part, got[i].s.key)) >= 0 {
							t.Fatalf("%d entries: entry %d does not sort after the one before", n, i)
						}
					}
				}
			}
		})
	}
}

// collect returns p's entries, in no order.
func (p *pending) collect() []kv {
	var all []kv
	for _, s := range p.entries.slots {
		if s.e.pos != 0 {
			all = append(all, kv{slot{p.part, s.key}, s.e})
		}
	}
	for s, e := range p.others {
		all = append(all, kv{s, e})
	}
	return all
}

// TestTable: a table finds every key put, keeps the smaller position of
// a key put twice, and holds more keys than it was made for (it grows),
// keys whose first slots are its last ones (runs past its end) and keys
// of equal top bytes; reset empties it.
func TestTable(t *testing.T) {
	tb := newTable(100)
	var keys []Key
	for i := range 300 {
		k := mixKey(uint64(i))
		switch {
		case i%3 == 0:
			copy(k[:8], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) // the last first slot
		case i%5 == 0:
			k[0], k[1] = 0x40, 0 // one first slot
		}
		keys = append(keys, k)
		tb.put(k, entry{uint64(1000 + i), 7})
		tb.put(k, entry{uint64(2000 + i), 7}) // later: ignored
	}
	for i, k := range keys {
		tb.put(k, entry{uint64(500 + i), 8}) // earlier: kept
	}
	if tb.n != len(keys) {
		t.Errorf("%d entries, want %d", tb.n, len(keys))
	}
	for i, k := range keys {
		if e, ok := tb.get(&k); !ok || e != (entry{uint64(500 + i), 8}) {
			t.Fatalf("key %d: %v %v, want position %d", i, e, ok, 500+i)
		}
	}
	absent := mixKey(1 << 40)
	if e, ok := tb.get(&absent); ok {
		t.Errorf("a key never put found: %v", e)
	}
	copy(absent[:8], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	if e, ok := tb.get(&absent); ok {
		t.Errorf("a key never put, at the end of the table, found: %v", e)
	}
	tb.reset()
	if _, ok := tb.get(&keys[0]); ok || tb.n != 0 {
		t.Errorf("after reset: key found %v, %d entries", ok, tb.n)
	}
}

// BenchmarkSorted sorts a full buffer of the default memory budget
// (268,435 entries of one partition). ns/op is per buffer.
func BenchmarkSorted(b *testing.B) {
	n := DefaultMemoryBytes / bufferShare / bytesPerBufferedKey
	p := newPending(n)
	for i := range n {
		p.put(5, mixKey(uint64(i)), entry{uint64(i + 1), 9})
	}
	var all []kv
	b.Run("table", func(b *testing.B) {
		for b.Loop() {
			all = p.sorted(all)
		}
	})
	b.Run("compare", func(b *testing.B) {
		for b.Loop() {
			all = append(all[:0], p.collect()...)
			sortCompare(all)
		}
	})
}

// TestMerge: the merge operator keeps the smallest position of an entry
// (whatever the order of its operands) and the largest Covered, and
// allocates once for an entry of one operand, as most are.
func TestMerge(t *testing.T) {
	op := func(pos, exp uint64) []byte {
		return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, pos), exp)
	}
	finish := func(key []byte, ops ...[]byte) []byte {
		t.Helper()
		m, err := merge(key, ops[0])
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range ops[1:] {
			if i%2 == 0 {
				err = m.MergeNewer(o)
			} else {
				err = m.MergeOlder(o)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		v, _, err := m.Finish(true)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	entry := entryKey(nil, 1, mixKey(1))
	if got, want := finish(entry, op(7, 70), op(3, 30), op(9, 90), op(5, 50)), op(3, 30); !bytes.Equal(got, want) {
		t.Errorf("entry: merged %x, want %x", got, want)
	}
	cov := func(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
	if got, want := finish(coveredKey, cov(7), cov(12), cov(3)), cov(12); !bytes.Equal(got, want) {
		t.Errorf("covered: merged %x, want %x", got, want)
	}
	if _, err := merge(entry, []byte{1, 2}); !errors.Is(err, ErrDamaged) {
		t.Errorf("a short operand: %v, want ErrDamaged", err)
	}
	one := op(4, 40)
	if n := testing.AllocsPerRun(100, func() { finish(entry, one) }); n > 1 {
		t.Errorf("an entry of one operand: %v allocations, want 1", n)
	}
}

// TestBufferReused: a written buffer, emptied, takes the Adds after the
// next write starts, instead of a new map each time; what it held stays
// found, from the store.
func TestBufferReused(t *testing.T) {
	x := open(t, Options{bufferKeys: 100})
	keys := make([]Key, 300)
	pos := make([]uint64, len(keys))
	for i := range keys {
		keys[i] = mixKey(uint64(i))
		pos[i] = uint64(i+1) << 16
	}
	spare := func() *pending {
		x.buf.mu.Lock()
		defer x.buf.mu.Unlock()
		return x.buf.spare
	}
	add(t, x, keys[:100], pos[:100], 1) // the first buffer is full: written
	if err := x.flush(); err != nil {
		t.Fatal(err)
	}
	// The write that the Add started hands its buffer over as the spare
	// after it has released the Adds and flush (it empties the buffer
	// outside the lock): wait for that goroutine to end.
	x.buf.writes.Wait()
	first := spare()
	if first == nil || first.len() != 0 || first.covered != 0 {
		t.Fatalf("after a write: spare buffer %+v, want an empty one", first)
	}
	add(t, x, keys[100:200], pos[100:200], 2) // the second: written
	if err := x.flush(); err != nil {
		t.Fatal(err)
	}
	x.buf.mu.Lock()
	active := x.buf.active
	x.buf.mu.Unlock()
	if active != first {
		t.Errorf("the buffer after the second write is not the first one, emptied")
	}
	add(t, x, keys[200:250], pos[200:250], 3)
	for i, p := range check(t, x, keys[:250]...) {
		if p != pos[i] {
			t.Fatalf("key %d at %#x, want %#x", i, p, pos[i])
		}
	}
	if n := active.len(); n != 50 {
		t.Errorf("the reused buffer holds %d entries, want the 50 added since", n)
	}
}

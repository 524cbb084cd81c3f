package dedup

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// The write buffer. Add does not write to the store: it records its keys
// in a map in memory (the active buffer), which Check consults before the
// store. When the active buffer holds bufferKeys entries it is written to
// the store in the background, as one batch sorted by key, and a new one
// takes the Adds meanwhile.
//
// Why: an Add written to the store at once costs one insert per key into
// pebble's memtable, a skiplist of 16 MB whose search for random keys
// (hashes) misses the CPU caches at every level: 2.3 of the 8.3 CPU-µs per
// event the store paid (BenchmarkEngineFloor/store, 2026-12-06). A batch
// larger than half a memtable is not inserted into one: pebble keeps it as
// it is (sorted once, which costs little when it is sorted already) and
// flushes it to a table like a memtable. A map insert costs a tenth of
// the skiplist's.
//
// What the buffer keeps exact:
//
//   - Check finds every key of every Add that returned: a key is in the
//     active buffer, in the one being written, or in the store. Check looks
//     in the buffers before it creates its iterator on the store, and a
//     buffer is dropped only after its batch is committed, so a key that
//     left the buffers is in the iterator's snapshot.
//   - Covered on disk never claims a key the store does not hold: a
//     buffer's covered is written in the same batch as its keys, and
//     buffers are written in order, one at a time. A crash loses the
//     buffers (at most two, bounded by the memory budget) and what
//     Covered they had claimed: the catch-up at start reads those events
//     from the stream again.
//   - Memory is bounded: while one buffer is being written the next fills
//     at most once; Adds then wait for the write.
//   - A write that fails keeps its buffer for Check, and every later Add
//     fails with its error: the Writer then stops moving covered, and the
//     next start catches up (what an Add that failed always meant).
type writeBuffer struct {
	limit int // entries that make a buffer full

	mu      sync.Mutex
	written *sync.Cond // a write ended
	active  *pending
	writing *pending // the buffer being written; nil when none
	err     error    // a write that failed
	writes  sync.WaitGroup
	// spare is a written buffer, emptied, for the next one: a buffer's
	// map is M/20 bytes, and one allocated per write was garbage enough
	// to grow the heap by a third (bench/dedup). sorted is the writer's
	// slice to sort a buffer in, kept for the same reason (one write at a
	// time uses it).
	spare  *pending
	sorted []kv
	counts []int // sorted's scratch memory
}

// slot is where an entry goes: its partition and key.
type slot struct {
	part uint64
	key  Key
}

// entry is a buffered entry's value: its position and when it expires
// (Unix milliseconds).
type entry struct{ pos, exp uint64 }

// pending is one buffer: entries and what its Adds claimed besides.
//
// The entries of one partition, part (the first Add's), are in a map by
// key, those of any other (the Adds at the turn of a window) in a map by
// slot: a map keyed by the 16-byte Key alone hashes faster and holds
// 32-byte slots instead of 40 (an Add's inserts cost a fifth less).
type pending struct {
	part    uint64         // the partition of entries
	entries map[Key]entry  // entries of partition part
	others  map[slot]entry // entries of other partitions; nil when none
	covered uint64         // the highest Covered of its Adds; 0 none
	drop    uint64         // the partitions below this one are to be dropped; 0 none
}

// bytesPerBufferedKey is what one entry of a buffer costs in memory (the
// map's slot of 32 bytes and its overhead: a map made for 131,072 entries
// of 40 bytes took 13.4 MB in a heap profile of bench/dedup), to size
// buffers from the memory budget.
const bytesPerBufferedKey = 100

func newPending(limit int) *pending {
	return &pending{entries: make(map[Key]entry, limit)}
}

// len is the number of entries p holds.
func (p *pending) len() int { return len(p.entries) + len(p.others) }

func (p *pending) empty() bool {
	return p.len() == 0 && p.covered == 0 && p.drop == 0
}

// put records the entry of k in partition part; of two entries of one
// slot the smaller position wins, as the store's merge operator has it.
func (p *pending) put(part uint64, k Key, e entry) {
	if len(p.entries) == 0 && len(p.others) == 0 {
		p.part = part
	}
	if part == p.part {
		if o, ok := p.entries[k]; !ok || e.pos < o.pos {
			p.entries[k] = e
		}
		return
	}
	if p.others == nil {
		p.others = make(map[slot]entry)
	}
	s := slot{part, k}
	if o, ok := p.others[s]; !ok || e.pos < o.pos {
		p.others[s] = e
	}
}

// get returns the entry at s.
func (p *pending) get(s slot) (entry, bool) {
	if s.part == p.part {
		e, ok := p.entries[s.key]
		return e, ok
	}
	e, ok := p.others[s]
	return e, ok
}

// reset empties p for reuse.
func (p *pending) reset() {
	clear(p.entries)
	p.others = nil
	p.part, p.covered, p.drop = 0, 0, 0
}

// buffer records an Add in the active buffer and starts its write once it
// is full.
func (x *Index) buffer(keys []Key, pos []uint64, part, exp, covered, drop uint64) error {
	b := &x.buf
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.err == nil && b.writing != nil && b.active.len() >= b.limit {
		b.written.Wait()
	}
	if b.err != nil {
		return fmt.Errorf("add to de-duplication index: an earlier write failed: %w", b.err)
	}
	p := b.active
	for i := range keys {
		p.put(part, keys[i], entry{pos[i], exp})
	}
	p.covered = max(p.covered, covered)
	p.drop = max(p.drop, drop)
	if p.len() >= b.limit && b.writing == nil {
		x.startWrite()
		go x.write(b.writing)
	}
	return nil
}

// startWrite makes the active buffer the one being written (b.mu held, no
// write in progress).
func (x *Index) startWrite() {
	b := &x.buf
	next := b.spare
	if next == nil {
		next = newPending(b.limit)
	}
	b.writing, b.active, b.spare = b.active, next, nil
	b.writes.Add(1)
}

// write writes p, the buffer being written, to the store.
func (x *Index) write(p *pending) {
	b := &x.buf
	defer b.writes.Done()
	err := x.commit(p)
	b.mu.Lock()
	if err != nil {
		b.err = err // p stays for Check; Adds fail from now on
		x.log.Error("de-duplication index: writing buffered entries failed; the index is caught up at the next start", "entries", p.len(), "error", err)
		b.written.Broadcast()
		b.mu.Unlock()
		return
	}
	b.writing = nil
	b.written.Broadcast()
	b.mu.Unlock()
	// No one else holds p now: empty it, outside the lock, for the next
	// buffer.
	p.reset()
	b.mu.Lock()
	b.spare = p
	b.mu.Unlock()
}

// flush writes the active buffer to the store now, after the write in
// progress, and returns once it is written (Close; tests). Adds running
// meanwhile may start writes of their own.
func (x *Index) flush() error {
	b := &x.buf
	b.mu.Lock()
	for b.err == nil && b.writing != nil {
		b.written.Wait()
	}
	if b.err != nil {
		b.mu.Unlock()
		return fmt.Errorf("write de-duplication index: %w", b.err)
	}
	if b.active.empty() {
		b.mu.Unlock()
		return nil
	}
	x.startWrite()
	p := b.writing
	b.mu.Unlock()
	x.write(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return fmt.Errorf("write de-duplication index: %w", b.err)
	}
	return nil
}

// kv is one entry of a buffer with its slot.
type kv struct {
	s slot
	e entry
}

// minBucketSort is the fewest entries of a partition sorted by buckets
// (sortedPart); fewer are sorted by comparisons.
const minBucketSort = 1024

// sorted returns p's entries, in all's memory, in the store's order:
// partitions big-endian, then keys. pebble sorts a large batch once more,
// in linear time when it is sorted already. counts is scratch memory,
// returned for the next call.
func (p *pending) sorted(all []kv, counts []int) ([]kv, []int) {
	var others []kv // of other partitions, the first ones below p.part
	for s, e := range p.others {
		others = append(others, kv{s, e})
	}
	sortCompare(others)
	below := 0
	for below < len(others) && others[below].s.part < p.part {
		below++
	}
	all = append(all[:0], others[:below]...)
	all, counts = p.sortedPart(all, counts)
	return append(all, others[below:]...), counts
}

// sortedPart appends the entries of partition p.part to all, sorted.
//
// Keys are HMAC outputs, uniformly distributed: the entries are placed by
// the top bits of their keys into about one bucket each, by counting them
// in one pass over the map and placing them in a second, and each bucket
// is then sorted by comparisons. That costs a third of a sort by
// comparisons of the whole buffer (pdqsort: 17 levels of compares and
// swaps of 40-byte entries for 134,217 of them, BenchmarkSorted), which
// was a twentieth of the store's CPU (BenchmarkEngineFloor/store,
// 2026-12-06).
func (p *pending) sortedPart(all []kv, counts []int) ([]kv, []int) {
	n := len(p.entries)
	start := len(all)
	all = slices.Grow(all, n)
	if n < minBucketSort {
		for k, e := range p.entries {
			all = append(all, kv{slot{p.part, k}, e})
		}
		sortKeys(all[start:])
		return all, counts
	}
	// 2^(Len(n)-1) buckets: one or two entries each on average.
	shift := 64 - uint(bits.Len(uint(n))-1)
	buckets := 1 << (64 - shift)
	counts = slices.Grow(counts[:0], buckets+1)[:buckets+1]
	clear(counts)
	for k := range p.entries {
		counts[binary.BigEndian.Uint64(k[:8])>>shift+1]++
	}
	for b := 1; b <= buckets; b++ {
		counts[b] += counts[b-1] // counts[b]: where bucket b starts
	}
	dst := all[start : start+n]
	for k, e := range p.entries {
		b := binary.BigEndian.Uint64(k[:8]) >> shift
		dst[counts[b]] = kv{slot{p.part, k}, e}
		counts[b]++ // then: where bucket b ends
	}
	lo := 0
	for _, hi := range counts[:buckets] {
		if hi-lo > 1 {
			sortKeys(dst[lo:hi])
		}
		lo = hi
	}
	return all[:start+n], counts
}

// sortKeys sorts entries of one partition by key: by insertion, as a
// bucket holds a few; by pdqsort should one hold many.
func sortKeys(all []kv) {
	less := func(a, b *kv) bool {
		be := binary.BigEndian
		ah, bh := be.Uint64(a.s.key[:8]), be.Uint64(b.s.key[:8])
		return ah < bh || ah == bh && be.Uint64(a.s.key[8:]) < be.Uint64(b.s.key[8:])
	}
	if len(all) > 16 {
		slices.SortFunc(all, func(a, b kv) int {
			switch {
			case less(&a, &b):
				return -1
			case less(&b, &a):
				return 1
			}
			return 0
		})
		return
	}
	for i := 1; i < len(all); i++ {
		for j := i; j > 0 && less(&all[j], &all[j-1]); j-- {
			all[j], all[j-1] = all[j-1], all[j]
		}
	}
}

// sortCompare sorts entries in the store's order by comparisons alone.
func sortCompare(all []kv) {
	// Compared as three big-endian numbers: bytes.Compare's call and
	// loop made the sort cost twice as much.
	slices.SortFunc(all, func(a, b kv) int {
		if c := cmp.Compare(a.s.part, b.s.part); c != 0 {
			return c
		}
		be := binary.BigEndian
		if c := cmp.Compare(be.Uint64(a.s.key[:8]), be.Uint64(b.s.key[:8])); c != 0 {
			return c
		}
		return cmp.Compare(be.Uint64(a.s.key[8:]), be.Uint64(b.s.key[8:]))
	})
}

// commit writes p's entries, Covered and partition drop as one batch, not
// fsynced: the index is derived state.
func (x *Index) commit(p *pending) error {
	x.buf.sorted, x.buf.counts = p.sorted(x.buf.sorted, x.buf.counts)
	all := x.buf.sorted
	const entryBytes = 1 + 1 + 25 + 1 + 16 // kind, key and value with their lengths
	b := x.db.NewBatchWithSize(len(all)*entryBytes + 128)
	defer b.Close()
	var kbuf [25]byte
	var vbuf [16]byte
	for _, a := range all {
		binary.BigEndian.PutUint64(vbuf[:8], a.e.pos)
		binary.BigEndian.PutUint64(vbuf[8:], a.e.exp)
		if err := b.Merge(entryKey(kbuf[:0], a.s.part, a.s.key), vbuf[:], nil); err != nil {
			return fmt.Errorf("write de-duplication index: %w", err)
		}
	}
	if p.covered > 0 {
		if err := b.Merge(coveredKey, binary.BigEndian.AppendUint64(nil, p.covered), nil); err != nil {
			return fmt.Errorf("write de-duplication index: covered: %w", err)
		}
	}
	if p.drop > 0 {
		// After the entries: a range deletion hides the batch's own
		// earlier entries of the partitions it drops too.
		if err := b.DeleteRange(entryKey(nil, 0, Key{}), entryKey(nil, p.drop, Key{}), nil); err != nil {
			return fmt.Errorf("write de-duplication index: drop expired: %w", err)
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("write de-duplication index: %w", err)
	}
	return nil
}

// buffered returns, of the buffers (b.mu held), the smallest position of
// the entry at s that has not expired at ms, or 0.
func (b *writeBuffer) buffered(s slot, ms uint64) uint64 {
	var pos uint64
	for _, p := range [2]*pending{b.active, b.writing} {
		if p == nil {
			continue
		}
		if e, ok := p.get(s); ok && e.exp > ms && (pos == 0 || e.pos < pos) {
			pos = e.pos
		}
	}
	return pos
}

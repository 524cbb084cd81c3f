package dedup

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"unsafe"

	"github.com/cockroachdb/pebble/v2"
)

// The write buffer. Add does not write to the store: it records its keys
// in a table in memory (the active buffer), which Check consults before the
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
// flushes it to a table like a memtable. A Go map's insert cost a tenth
// of the skiplist's; the buffer's own table (below) costs less again.
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
//     buffers are written in order, one at a time. With no write-ahead
//     log a batch is on disk once pebble flushed it, whole, after the
//     batches before it. A crash loses the buffers (at most two, bounded
//     by the memory budget), the batches not yet flushed, and what
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
	// table is up to M/bufferShare bytes, and one allocated per write was
	// garbage enough to grow the heap by a third (bench/dedup). sorted is the writer's
	// slice to sort a buffer in, kept for the same reason (one write at a
	// time uses it).
	spare  *pending
	sorted []kv
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
// The entries of one partition, part (the first Add's), are in a table by
// key (table), those of any other (the Adds at the turn of a window) in a
// map by slot.
type pending struct {
	part    uint64         // the partition of entries
	entries table          // entries of partition part
	others  map[slot]entry // entries of other partitions; nil when none
	covered uint64         // the highest Covered of its Adds; 0 none
	drop    uint64         // the partitions below this one are to be dropped; 0 none
}

// bytesPerBufferedKey is what one entry of a buffer costs in memory at
// most, to size buffers from the memory budget: a table's slot of 32
// bytes at a load of 3/8 to 3/4 (a Go map of 40-byte slots, the buffer
// before, took 100: 13.4 MB for 131,072 entries in a heap profile of
// bench/dedup).
const bytesPerBufferedKey = 100

func newPending(limit int) *pending {
	return &pending{entries: newTable(limit)}
}

// len is the number of entries p holds.
func (p *pending) len() int { return p.entries.n + len(p.others) }

func (p *pending) empty() bool {
	return p.len() == 0 && p.covered == 0 && p.drop == 0
}

// put records the entry of k in partition part (e.pos is never 0); of two
// entries of one slot the smaller position wins, as the store's merge
// operator has it.
func (p *pending) put(part uint64, k Key, e entry) {
	if p.len() == 0 {
		p.part = part
	}
	if part == p.part {
		p.entries.put(k, e)
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

// get returns the entry at s. It does not modify p.
func (p *pending) get(s slot) (entry, bool) {
	if s.part == p.part {
		return p.entries.get(&s.key)
	}
	e, ok := p.others[s]
	return e, ok
}

// reset empties p for reuse.
func (p *pending) reset() {
	p.entries.reset()
	p.others = nil
	p.part, p.covered, p.drop = 0, 0, 0
}

// table holds the entries of one partition by key: open addressing with
// linear probing, without wrapping around, where a key's first slot is
// the top bits of the key. Keys are HMAC outputs, uniformly distributed,
// so they spread evenly, and the slots in order hold the keys nearly
// sorted (a key is at most a short run of slots past its first): the
// write sorts them by insertion, in linear time.
//
// It replaced a Go map, whose insert (a look-up, then the insert, for
// the first occurrence) missed the CPU caches twice and was, with the
// sort of its entries for the write, a sixth of the store's CPU
// (BenchmarkEngineFloor/store, 2026-12-06).
type table struct {
	slots []tslot
	shift uint // a key's first slot: its top 64-shift bits
	n     int  // slots in use
}

// tslot is a table's slot; e.pos is 0 when it is free.
type tslot struct {
	key Key
	e   entry
}

// tablePad is the slots a table has past its last first slot, for the
// runs of keys whose first slots are at its end; a longer run grows it.
const tablePad = 64

// newTable returns a table for limit entries: at most 3/4 full with
// them, at least 3/8.
func newTable(limit int) table {
	b := bits.Len(uint(max(limit, 1) * 4 / 3)) // 2^b > 4/3 limit
	t := table{slots: make([]tslot, 1<<b+tablePad), shift: 64 - uint(b)}
	adviseHuge(unsafe.Pointer(&t.slots[0]), uintptr(len(t.slots))*unsafe.Sizeof(tslot{}))
	return t
}

// first returns k's first slot.
func (t *table) first(k *Key) int {
	return int(binary.BigEndian.Uint64(k[:8]) >> t.shift)
}

// get returns k's entry.
func (t *table) get(k *Key) (entry, bool) {
	for i := t.first(k); i < len(t.slots); i++ {
		s := &t.slots[i]
		if s.e.pos == 0 {
			return entry{}, false
		}
		if s.key == *k {
			return s.e, true
		}
	}
	return entry{}, false
}

// put records k's entry, or keeps the one of the smaller position.
func (t *table) put(k Key, e entry) {
	if t.n >= 1<<(64-t.shift)*3/4 {
		t.grow()
	}
	i := t.first(&k)
	for ; i < len(t.slots); i++ {
		s := &t.slots[i]
		if s.e.pos == 0 {
			s.key, s.e = k, e
			t.n++
			return
		}
		if s.key == k {
			if e.pos < s.e.pos {
				s.e = e
			}
			return
		}
	}
	t.slots = append(t.slots, tslot{k, e}) // a run past the end
	t.n++
}

// grow doubles the table (more entries than it was made for: an Add
// larger than the room left in a buffer).
func (t *table) grow() {
	old, shift := t.slots, t.shift-1
	*t = table{slots: make([]tslot, 1<<(64-shift)+tablePad), shift: shift}
	for _, s := range old {
		if s.e.pos != 0 {
			t.put(s.key, s.e)
		}
	}
}

// reset empties t.
func (t *table) reset() {
	clear(t.slots)
	t.n = 0
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

// sorted returns p's entries, in all's memory, in the store's order:
// partitions big-endian, then keys. pebble sorts a large batch once more,
// in linear time when it is sorted already.
func (p *pending) sorted(all []kv) []kv {
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
	start := len(all)
	for i := range p.entries.slots {
		if s := &p.entries.slots[i]; s.e.pos != 0 {
			all = append(all, kv{slot{p.part, s.key}, s.e})
		}
	}
	sortKeys(all[start:])
	return append(all, others[below:]...)
}

// sortKeys sorts entries of one partition, nearly sorted already (a
// table's slots in order), by key: by insertion, which takes linear time
// on them; should they be far from sorted (keys that are not hashes, in
// tests), by pdqsort.
func sortKeys(all []kv) {
	less := func(a, b *kv) bool {
		be := binary.BigEndian
		ah, bh := be.Uint64(a.s.key[:8]), be.Uint64(b.s.key[:8])
		return ah < bh || ah == bh && be.Uint64(a.s.key[8:]) < be.Uint64(b.s.key[8:])
	}
	moves, most := 0, 8*len(all)+64
	for i := 1; i < len(all); i++ {
		for j := i; j > 0 && less(&all[j], &all[j-1]); j-- {
			all[j], all[j-1] = all[j-1], all[j]
			if moves++; moves > most {
				sortCompare(all)
				return
			}
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

// commit writes p's entries, Covered and partition drop as one batch,
// with no write-ahead log: the index is derived state, and the batch is on
// disk, whole, once pebble has flushed it.
func (x *Index) commit(p *pending) error {
	x.buf.sorted = p.sorted(x.buf.sorted)
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

package dedup

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// The write buffer. Add does not write to the store: it records its keys
// in a table in memory (the active buffer), which Check consults before the
// store. When the active buffer holds bufferKeys entries it is written to
// the store in the background, as one table sorted by key that pebble
// ingests (commit), and a new one takes the Adds meanwhile.
//
// Why: an Add written to the store at once costs one insert per key into
// pebble's memtable, a skiplist of 16 MB whose search for random keys
// (hashes) misses the CPU caches at every level: 2.3 of the 8.3 CPU-µs per
// event the store paid (BenchmarkEngineFloor/store, 2026-12-06). A buffer
// was first written as one batch, which pebble (the batch being larger
// than half a memtable) kept as it was and flushed to a table like a
// memtable; since session 20 the index writes that table itself and
// pebble ingests it, with no batch, no flush and no merge operator on the
// way. A Go map's insert cost a tenth of the skiplist's; the buffer's own
// table (below) costs less again.
//
// What the buffer keeps exact:
//
//   - Check finds every key of every Add that returned: a key is in the
//     active buffer, in the one being written, or in the store. Check looks
//     in the buffers before it creates its iterator on the store, and a
//     buffer is dropped only after its table is ingested (visible to new
//     iterators when Ingest returns), so a key that left the buffers is
//     in the iterator's snapshot.
//   - Covered on disk never claims a key the store does not hold: a
//     buffer's covered is written in the same table as its keys, and
//     buffers are written in order, one at a time. The table is synced,
//     then linked into the store and named in its MANIFEST (synced)
//     before Ingest returns: on disk whole or not at all, after the
//     tables before it. A crash loses the buffers (at most two, bounded
//     by the memory budget) and a table being built or ingested (a
//     leftover file of it is removed at Open), and what Covered they had
//     claimed: the catch-up at start reads those events from the stream
//     again.
//   - Memory is bounded: while one buffer is being written the next fills
//     at most once; Adds then wait for the write. A write waits while L0
//     is at its stop-writes threshold (awaitL0, at most maxStall), as
//     pebble's flushes waited there.
//   - A write that fails ends the process: "de-duplication index: fatal
//     store error; capstan stops: write de-duplication index: …", exit 1,
//     as a failed flush of pebble's did when buffers were batches (a
//     failed batch commit, which only a closed store gave, made the
//     later Adds fail instead). Each buffer's table is built and
//     ingested by the write itself, so every error of the store's
//     writes (the directory gone, the disk full, an I/O error) comes
//     back here, before anything of the buffer is on disk: Covered on
//     disk still never leads its keys, and the next start catches up
//     from it. Going on with Adds failing would leave every later event
//     out of the index, its duplicates unseen until a restart.
type writeBuffer struct {
	limit int // entries that make a buffer full

	mu      sync.Mutex
	written *sync.Cond // a write ended
	active  *pending
	writing *pending // the buffer being written; nil when none
	err     error    // a write that failed (only where fatalf returns: tests)
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
// the top bits of the key. Keys are keyed SHA-256 outputs, uniformly distributed,
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
	if err := x.commit(p); err != nil {
		// The rule for a write that fails (writeBuffer): the process
		// ends. Only a test's fatalf returns: p then stays for Check
		// and every later Add fails.
		x.fatalf("%v (%d buffered entries; the index is caught up at the next start)", err, p.len())
		b.mu.Lock()
		b.err = err
		b.written.Broadcast()
		b.mu.Unlock()
		return
	}
	b.mu.Lock()
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
// partitions big-endian, then keys, the order a table's keys are written
// in.
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

// ingestFile is the name, in the index's directory, of the table a
// buffer's write builds before pebble ingests it (one write at a time).
// pebble moves it into the store; one a crash left (between its write and
// its ingestion) is removed at Open.
const ingestFile = "capstan-ingest.sst.tmp"

// commit writes p's entries, Covered and partition drop to the store as
// one table that pebble ingests: built here, with pebble's writer options
// for L0, synced, then linked into the store and named in its MANIFEST
// (synced) before Ingest returns. The table is on disk whole or not at
// all, after every buffer's before it, so Covered on disk never claims a
// key the store does not hold.
//
// Every entry of a table has the same sequence number (the ingestion's),
// so a partition drop's range deletion in it hides only older entries,
// not the table's own: the entries of the partitions it drops (Adds of an
// earlier window in the same buffer, which expire anyway) are left out.
// An entry is one operand per slot, the smallest position of its Adds
// (pending.put), written as a merge operand, which the store's merge
// operator combines with older ones of its key.
//
// It replaced a batch that pebble flushed to a table like a memtable:
// the batch's encoding, pebble's index of it (newFlushableBatch) and the
// flush's iteration through the merge operator are gone, and no batch
// waits in memory for its flush (BenchmarkGrow over 7.6 million keys
// -33% in session 19's measurement of the idea).
func (x *Index) commit(p *pending) error {
	x.awaitL0()
	path, err := x.buildTable(p)
	if err == nil {
		err = x.db.Ingest(context.Background(), []string{path})
	}
	if err != nil {
		if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
		return fmt.Errorf("write de-duplication index: %w", err)
	}
	return nil
}

// buildTable writes p's table, synced, to ingestFile in the index's
// directory and returns its path.
func (x *Index) buildTable(p *pending) (string, error) {
	x.buf.sorted = p.sorted(x.buf.sorted)
	path := filepath.Join(x.dir, ingestFile)
	f, err := vfs.Default.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return path, err
	}
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), x.wopts)
	err = x.writeTable(w, p, x.buf.sorted)
	// Close finishes the table and syncs it (or abandons it after an
	// error), and closes the file.
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return path, err
}

// writeTable writes p's entries (all, sorted), its drop, its Covered and
// the format key to w, in the store's key order.
func (x *Index) writeTable(w *sstable.Writer, p *pending, all []kv) error {
	var kbuf [25]byte
	var vbuf [16]byte
	for _, a := range all {
		if a.s.part < p.drop {
			continue // dropped by this table's own range deletion
		}
		binary.BigEndian.PutUint64(vbuf[:8], a.e.pos)
		binary.BigEndian.PutUint64(vbuf[8:], a.e.exp)
		if err := w.Merge(entryKey(kbuf[:0], a.s.part, a.s.key), vbuf[:]); err != nil {
			return err
		}
	}
	if p.drop > 0 {
		if err := w.DeleteRange(entryKey(nil, 0, Key{}), entryKey(nil, p.drop, Key{})); err != nil {
			return fmt.Errorf("drop expired: %w", err)
		}
	}
	if p.covered > 0 { // metaKind sorts after entryKind
		if err := w.Merge(coveredKey, binary.BigEndian.AppendUint64(nil, p.covered)); err != nil {
			return fmt.Errorf("covered: %w", err)
		}
	}
	// The format key, again (after coveredKey): it puts every table's
	// bounds over the format key's own table, which a new index flushes
	// to L0 at Open, so a new index's first table is ingested into L0 as
	// a flush would have put it, not into the empty bottom level. In the
	// bottom level it made pebble size the levels from it and L0
	// together at L0's first compaction, which then went to L4 instead
	// of the bottom level and was rewritten twice more on its way down:
	// BenchmarkGrow over 20 million keys wrote its tables 2.59 times over
	// instead of 1.89.
	if err := w.Set(formatKey, []byte(format)); err != nil {
		return fmt.Errorf("format: %w", err)
	}
	return nil
}

// awaitL0 waits, at most x.stallWait, while L0 holds x.stopWrites
// sublevels or more: pebble stops its own writes there until compactions
// catch up, but not ingestions. Meanwhile the next buffer fills, then
// Adds wait for this write (writeBuffer), as they waited for pebble's
// flushes when buffers were batches. Past the wait the table is ingested
// anyway (maxStall).
func (x *Index) awaitL0() {
	var deadline time.Time
	for {
		n := int(x.db.Metrics().Levels[0].Sublevels)
		if n < x.stopWrites {
			return
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(x.stallWait)
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			x.log.Warn("de-duplication index: L0 still at its stop-writes threshold; a table ingested past it",
				"sublevels", n, "waited", x.stallWait)
			return
		}
		t := time.NewTimer(min(wait, time.Second))
		select {
		case <-x.compacted:
		case <-t.C:
		}
		t.Stop()
	}
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

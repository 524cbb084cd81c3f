package localdb

import (
	"hash/maphash"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Filter answers "certainly absent" for keys of a store, in memory, so that
// a create of a new key (most creates, for a store of hashed ids) needs no
// look-up in the store at all: no memtable seek, no bloom filter per table
// and level. It is exact in that direction: it answers Absent only for a
// key the store does not hold, for as long as its users keep its one rule:
// every key written after Open is Added before its write is committed,
// between BeginAdds and EndAdds, EndAdds after the commit (a failed write
// leaves a key added: harmless). Keys already in the store are read into
// it in the background (newFilter); until that scan has ended Absent
// answers false for every key, as without a filter.
//
// It is a list of blocked Bloom filters, its generations: each key sets
// one bit in each of the 8 words of one 64-byte block (one cache line) of
// the newest generation, and Absent tests one block per generation. A
// generation holds filterBitsPerKey (10) bits per key it is sized for; when
// that many distinct keys are in it, a new generation as large as all the
// others together is added, up to its budget (Options.FilterBytes): the
// first takes a quarter of the budget (or room for twice the keys of a
// store opened with more), the second as much, the third the other half.
// So memory grows with the keys, 1.25 bytes per key beyond the first
// quarter, and the share of absent keys it cannot answer for stays near
// 1.1% per full generation until the budget's keys are in it; beyond, the
// last generation fills (measured, for one generation: 17% unanswered at
// 5 bits per key, 72% at 2.5, towards 100%, every look-up going to the
// store, as without it). Its memory never exceeds the budget, but during
// a rebuild, while the old generations answer and the new ones fill: a
// quarter to half of the budget more (room for twice the live keys), up
// to the whole budget more when the live keys outgrow that meanwhile
// (BenchmarkChurn at 750,000 live keys in a filter for 838,860).
//
// Deleted keys stay in it (they cost a look-up), so it would fill with the
// keys ever written rather than with the ones the store holds. A full
// filter is therefore rebuilt (rebuild) once the store's sweeps removed at least
// half of the keys it holds: new generations, sized for the keys the
// store holds, are filled from a scan of the store while every Add goes
// to them too, and then take the old ones' place. Safe for concurrent use.
type Filter struct {
	cur   atomic.Pointer[filterGens] // Absent reads it, Add writes it
	next  atomic.Pointer[filterGens] // during a rebuild: Add writes it too
	seeds [2]maphash.Seed
	ready atomic.Bool // the scan of the store at Open ended

	// The writes under way, from before their Adds to after their commit
	// (BeginAdds, EndAdds), counted by the parity of the epoch they began
	// in: a rebuild, once it set next, begins a new epoch and waits for
	// the count of the last one to drop to zero (waitAdds), so that every
	// key Added before next was set is committed before it reads the
	// store. Writers never wait.
	epoch  atomic.Uint64
	active [2]atomic.Int64

	// full, if set, is called (in the Add that filled it) when the last
	// generation the budget allows is full: the store's cue to rebuild.
	full func()
}

// filterGens is a filter's generations, oldest first; Add writes the last.
type filterGens struct {
	gens   atomic.Pointer[[]*filterGen]
	mu     sync.Mutex // held to add a generation
	budget uint64     // blocks, all generations together
	swept  uint64     // the store's swept count when these were begun
}

// filterGen is one generation of a Filter.
type filterGen struct {
	words  []atomic.Uint64 // len(words) = 8 * blocks
	blocks uint64
	full   uint64        // keys at filterBitsPerKey: then a new generation
	keys   atomic.Uint64 // distinct keys added (each set a bit)
}

// filterBlockBytes is the size of one block: 8 words of 64 bits.
const filterBlockBytes = 64

// filterBitsPerKey is the density a generation is sized for: 1.1% of
// absent keys unanswered.
const filterBitsPerKey = 10

// filterScanCheck is how many keys the scan reads between checks of Close.
const filterScanCheck = 1024

// newFilter returns a filter of at most budget bytes (at least one block)
// over the keys of d, its first generation sized for twice the keys d
// holds (its tables' entries), and starts reading the keys d holds into it
// in a goroutine of its own, which Close stops (Open, before any write:
// from then on the store's user Adds every key before committing its
// write). The scan reads a view of the store taken after newFilter
// returns, so a key is in the filter either from the scan or from its Add.
// A scan that fails is logged and leaves the filter never ready (every key
// is looked up). It also starts the goroutine that rebuilds the filter
// (rebuilder).
func (d *DB) newFilter(budget int64) *Filter {
	var keys uint64
	if levels, err := d.SSTables(pebble.WithProperties()); err == nil {
		for _, lv := range levels {
			for _, t := range lv {
				if t.Properties != nil {
					keys += t.Properties.NumEntries
				}
			}
		}
	}
	f := makeFilter(budget, 2*keys)
	d.rebuildCue = make(chan struct{}, 1)
	f.full = d.cueRebuild
	d.tasks.Add(2)
	go func() {
		defer d.tasks.Done()
		if err := d.scan(f); err != nil {
			d.log.Error("reading the "+d.what+"'s keys into its filter failed: every create looks its key up", "error", err)
		}
	}()
	go func() {
		defer d.tasks.Done()
		d.rebuilder(f)
	}()
	return f
}

// makeFilter returns an empty filter (not ready) of at most budget bytes,
// its first generation sized for keys (makeGens).
func makeFilter(budget int64, keys uint64) *Filter {
	f := &Filter{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
	f.cur.Store(makeGens(max(uint64(budget)/filterBlockBytes, 1), keys))
	return f
}

// makeGens returns generations of at most budget blocks, the first sized
// for keys, at least a quarter of the budget (a smaller one measured
// worse: more generations, each adding its false positives, and a store's
// first millions of keys not all answered for).
func makeGens(budget, keys uint64) *filterGens {
	g := &filterGens{budget: budget}
	g.gens.Store(&[]*filterGen{newFilterGen(min(max(filterBlocks(keys), budget/4), budget))})
	return g
}

// filterBlocks is the number of blocks that hold keys at filterBitsPerKey.
func filterBlocks(keys uint64) uint64 {
	return keys * filterBitsPerKey / (8 * filterBlockBytes)
}

func newFilterGen(blocks uint64) *filterGen {
	blocks = max(blocks, 1)
	return &filterGen{words: make([]atomic.Uint64, 8*blocks), blocks: blocks,
		full: max(blocks*8*filterBlockBytes/filterBitsPerKey, 1)}
}

// scan adds every key of d to f, then marks f ready; it stops early (f not
// ready) when Close begins.
func (d *DB) scan(f *Filter) error {
	it, err := d.NewIter(&pebble.IterOptions{KeyTypes: pebble.IterKeyTypePointsOnly})
	if err != nil {
		return err
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		f.Add(it.Key())
		if n++; n%filterScanCheck == 0 {
			select {
			case <-d.stop:
				return it.Close()
			default:
			}
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	f.ready.Store(true)
	return nil
}

// hash returns k's two hashes: the first picks its block in each
// generation, the second its 8 bit positions, 6 bits each.
func (f *Filter) hash(k []byte) (uint64, uint64) {
	return maphash.Bytes(f.seeds[0], k), maphash.Bytes(f.seeds[1], k)
}

// block returns the words of the block of a key whose first hash is h.
func (g *filterGen) block(h uint64) []atomic.Uint64 {
	block, _ := bits.Mul64(h, g.blocks) // uniform in [0, blocks)
	return g.words[block*8 : block*8+8 : block*8+8]
}

// has reports whether every bit of the key is set in w.
func has(w []atomic.Uint64, h uint64) bool {
	for i := range w {
		if w[i].Load()&(uint64(1)<<(h>>(6*i)&63)) == 0 {
			return false
		}
	}
	return true
}

// BeginAdds begins a write's Adds; pass what it returns to EndAdds once
// the write committed or failed: defer f.EndAdds(f.BeginAdds()). A
// rebuild waits for the writes begun before it to end; it never holds a
// writer up. A nil filter does nothing.
func (f *Filter) BeginAdds() uint64 {
	if f == nil {
		return 0
	}
	for {
		e := f.epoch.Load()
		f.active[e&1].Add(1)
		// Still e: a new epoch begins after this write is counted, and
		// its rebuild waits for it. Not: counted in the parity of the
		// new epoch, which no rebuild waits for yet: count again.
		if f.epoch.Load() == e {
			return e
		}
		f.active[e&1].Add(-1)
	}
}

// EndAdds ends the write that BeginAdds began, whose result is e.
func (f *Filter) EndAdds(e uint64) {
	if f != nil {
		f.active[e&1].Add(-1)
	}
}

// waitAdds begins a new epoch and waits for the writes begun in the last
// one to end, or for stop to be closed (then it returns false). Only one
// caller at a time (the rebuilder): the writes of the epoch before the
// last ended when its wait returned.
func (f *Filter) waitAdds(stop <-chan struct{}) bool {
	e := f.epoch.Add(1) - 1
	for f.active[e&1].Load() != 0 {
		select {
		case <-stop:
			return false
		case <-time.After(100 * time.Microsecond):
		}
	}
	return true
}

// Add records k. Call it before the write of k is committed, after
// BeginAdds. A nil filter does nothing.
func (f *Filter) Add(k []byte) {
	if f == nil {
		return
	}
	h0, h1 := f.hash(k)
	// next before cur: a rebuild ends by setting cur to next, then next
	// to nil, so an Add that finds no next finds the new cur.
	next := f.next.Load()
	if f.cur.Load().add(h0, h1) && f.full != nil {
		f.full()
	}
	if next != nil {
		next.add(h0, h1)
	}
}

// add records the key of hashes h0, h1 and reports whether it filled the
// last generation the budget allows.
func (gs *filterGens) add(h0, h1 uint64) bool {
	gens := *gs.gens.Load()
	for _, g := range gens[:len(gens)-1] {
		if has(g.block(h0), h1) {
			return false // recorded already
		}
	}
	g := gens[len(gens)-1]
	w := g.block(h0)
	added := false
	for i := range w {
		bit := uint64(1) << (h1 >> (6 * i) & 63)
		if w[i].Load()&bit == 0 {
			w[i].Or(bit)
			added = true
		}
	}
	return added && g.keys.Add(1) == g.full && !gs.grow(g)
}

// grow adds a generation after full, as large as all the others together
// (the budget permitting), unless one was added since or the budget is
// spent: then the last one takes the keys beyond its size, and grow
// reports false.
func (gs *filterGens) grow(full *filterGen) bool {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	gens := *gs.gens.Load()
	if gens[len(gens)-1] != full {
		return true
	}
	used := gs.blocks()
	if used >= gs.budget {
		return false
	}
	next := append(gens[:len(gens):len(gens)], newFilterGen(min(used, gs.budget-used)))
	gs.gens.Store(&next)
	return true
}

// blocks returns the blocks of all generations.
func (gs *filterGens) blocks() uint64 {
	var n uint64
	for _, g := range *gs.gens.Load() {
		n += g.blocks
	}
	return n
}

// keys returns the distinct keys the generations record (an estimate: a
// key whose bits were all set already, a false positive, is not counted).
func (gs *filterGens) keys() uint64 {
	var n uint64
	for _, g := range *gs.gens.Load() {
		n += g.keys.Load()
	}
	return n
}

// isFull reports whether the generations take their budget and the last
// one holds the keys it was sized for.
func (gs *filterGens) isFull() bool {
	gens := *gs.gens.Load()
	last := gens[len(gens)-1]
	return gs.blocks() >= gs.budget && last.keys.Load() >= last.full
}

// Absent reports that k is certainly not in the store (as of the call: a
// write of k committed before it began was Added). False means it may be:
// look it up. A nil filter answers false.
func (f *Filter) Absent(k []byte) bool {
	if f == nil || !f.ready.Load() {
		return false
	}
	h0, h1 := f.hash(k)
	for _, g := range *f.cur.Load().gens.Load() {
		if has(g.block(h0), h1) {
			return false
		}
	}
	return true
}

// Bytes returns the memory the filter's generations take (at most its
// budget, Options.FilterBytes, but during a rebuild); 0 for a nil filter.
func (f *Filter) Bytes() int64 {
	if f == nil {
		return 0
	}
	n := f.cur.Load().blocks()
	if next := f.next.Load(); next != nil {
		n += next.blocks()
	}
	return int64(n) * filterBlockBytes
}

// Ready reports whether the keys the store held at NewFilter are all in
// the filter: until then Absent answers false.
func (f *Filter) Ready() bool { return f != nil && f.ready.Load() }

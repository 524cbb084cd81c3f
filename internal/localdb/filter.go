package localdb

import (
	"hash/maphash"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
)

// Filter answers "certainly absent" for keys of a store, in memory, so that
// a create of a new key (most creates, for a store of hashed ids) needs no
// look-up in the store at all: no memtable seek, no bloom filter per table
// and level. It is exact in that direction: it answers Absent only for a
// key that no write since the store was created committed, for as long as
// its users keep its one rule: every key written after NewFilter is Added
// before its write is committed (a failed write leaves a key added:
// harmless). Keys already in the store are read into it in the background
// (NewFilter); until that scan has ended Absent answers false for every
// key, as without a filter.
//
// It is a list of blocked Bloom filters, its generations: each key sets
// one bit in each of the 8 words of one 64-byte block (one cache line) of
// the newest generation, and Absent tests one block per generation. A
// generation holds filterBitsPerKey (10) bits per key it is sized for; when
// that many distinct keys are in it, a new generation as large as all the
// others together is added, up to its budget (Options.FilterBytes): the
// first takes a quarter of the budget (or room for twice the keys of a
// store opened with more), the second as much, the third the other half.
// So memory grows with the store, 1.25 bytes per key beyond the first
// quarter, and the share of absent keys it cannot answer for stays near
// 1.1% per full generation until the budget's keys are in it; beyond, the
// last generation fills (measured, for one generation: 17% unanswered at
// 5 bits per key, 72% at 2.5, towards 100%, every look-up going to the
// store, as without it). Its memory never exceeds the budget. Deleted keys
// stay in it, and so does a key whose write failed: such keys only cost a
// look-up; a reopen starts it again from the keys the store holds. Safe
// for concurrent use.
type Filter struct {
	gens   atomic.Pointer[[]*filterGen] // oldest first; Add writes the last
	seeds  [2]maphash.Seed
	ready  atomic.Bool // the scan of the store ended
	mu     sync.Mutex  // held to add a generation
	budget uint64      // blocks, all generations together
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
// is looked up).
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
	d.tasks.Add(1)
	go func() {
		defer d.tasks.Done()
		if err := d.scan(f); err != nil {
			d.log.Error("reading the "+d.what+"'s keys into its filter failed: every create looks its key up", "error", err)
		}
	}()
	return f
}

// makeFilter returns an empty filter (not ready) of at most budget bytes,
// its first generation sized for keys, at least a quarter of the budget
// (a smaller one measured worse: more generations, each adding its false
// positives, and a store's first millions of keys not all answered for).
func makeFilter(budget int64, keys uint64) *Filter {
	f := &Filter{budget: max(uint64(budget)/filterBlockBytes, 1),
		seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
	f.gens.Store(&[]*filterGen{newFilterGen(min(max(filterBlocks(keys), f.budget/4), f.budget))})
	return f
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

// Add records k. Call it before the write of k is committed. A nil filter
// does nothing.
func (f *Filter) Add(k []byte) {
	if f == nil {
		return
	}
	h0, h1 := f.hash(k)
	gens := *f.gens.Load()
	for _, g := range gens[:len(gens)-1] {
		if has(g.block(h0), h1) {
			return // recorded already
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
	if added && g.keys.Add(1) == g.full {
		f.grow(g)
	}
}

// grow adds a generation after full, as large as all the others together
// (the budget permitting), unless one was added since or the budget is
// spent: then the last one takes the keys beyond its size.
func (f *Filter) grow(full *filterGen) {
	f.mu.Lock()
	defer f.mu.Unlock()
	gens := *f.gens.Load()
	if gens[len(gens)-1] != full {
		return
	}
	var used uint64
	for _, g := range gens {
		used += g.blocks
	}
	if used >= f.budget {
		return
	}
	next := append(gens[:len(gens):len(gens)], newFilterGen(min(used, f.budget-used)))
	f.gens.Store(&next)
}

// Absent reports that k is certainly not in the store (as of the call: a
// write of k committed before it began was Added). False means it may be:
// look it up. A nil filter answers false.
func (f *Filter) Absent(k []byte) bool {
	if f == nil || !f.ready.Load() {
		return false
	}
	h0, h1 := f.hash(k)
	for _, g := range *f.gens.Load() {
		if has(g.block(h0), h1) {
			return false
		}
	}
	return true
}

// Bytes returns the memory the filter's generations take (at most its
// budget, Options.FilterBytes); 0 for a nil filter.
func (f *Filter) Bytes() int64 {
	if f == nil {
		return 0
	}
	var n int64
	for _, g := range *f.gens.Load() {
		n += int64(g.blocks) * filterBlockBytes
	}
	return n
}

// Ready reports whether the keys the store held at NewFilter are all in
// the filter: until then Absent answers false.
func (f *Filter) Ready() bool { return f != nil && f.ready.Load() }

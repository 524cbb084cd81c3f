package localdb

import (
	"hash/maphash"
	"math/bits"
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
// It is a fixed-size blocked Bloom filter: each key sets one bit in each of
// the 8 words of one 64-byte block (one cache line). Deleted keys stay in
// it, and so does a key whose write failed: such keys only cost a look-up.
// The share of absent keys it cannot answer for grows with the keys it
// holds (measured): 1.1% at 10 bits per key, 17% at 5, 72% at 2.5, and it
// tends to 100% (every look-up goes to the store, as without it) as it
// fills. Its size
// never changes. Safe for concurrent use.
type Filter struct {
	words  []atomic.Uint64 // len(words) = 8 * blocks
	blocks uint64
	seeds  [2]maphash.Seed
	ready  atomic.Bool // the scan of the store ended
}

// filterBlockBytes is the size of one block: 8 words of 64 bits.
const filterBlockBytes = 64

// filterScanCheck is how many keys the scan reads between checks of Close.
const filterScanCheck = 1024

// newFilter returns a filter of about size bytes (at least one block) over
// the keys of d, and starts reading the keys d holds into it in a goroutine
// of its own, which Close stops (Open, before any write: from then on the
// store's user Adds every key before committing its write). The scan reads
// a view of the store taken after newFilter returns, so a key is in the
// filter either from the scan or from its Add. A scan that fails is logged
// and leaves the filter never ready (every key is looked up).
func (d *DB) newFilter(size int64) *Filter {
	blocks := max(uint64(size)/filterBlockBytes, 1)
	f := &Filter{words: make([]atomic.Uint64, 8*blocks), blocks: blocks,
		seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
	d.tasks.Add(1)
	go func() {
		defer d.tasks.Done()
		if err := d.scan(f); err != nil {
			d.log.Error("reading the "+d.what+"'s keys into its filter failed: every create looks its key up", "error", err)
		}
	}()
	return f
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

// probe returns k's block (index of its first word) and its 8 bit
// positions, 6 bits each, packed in one uint64.
func (f *Filter) probe(k []byte) (uint64, uint64) {
	block, _ := bits.Mul64(maphash.Bytes(f.seeds[0], k), f.blocks) // uniform in [0, blocks)
	return block * 8, maphash.Bytes(f.seeds[1], k)
}

// Add records k. Call it before the write of k is committed. A nil filter
// does nothing.
func (f *Filter) Add(k []byte) {
	if f == nil {
		return
	}
	at, h := f.probe(k)
	w := f.words[at : at+8 : at+8]
	for i := range w {
		bit := uint64(1) << (h >> (6 * i) & 63)
		if w[i].Load()&bit == 0 {
			w[i].Or(bit)
		}
	}
}

// Absent reports that k is certainly not in the store (as of the call: a
// write of k committed before it began was Added). False means it may be:
// look it up. A nil filter answers false.
func (f *Filter) Absent(k []byte) bool {
	if f == nil || !f.ready.Load() {
		return false
	}
	at, h := f.probe(k)
	w := f.words[at : at+8 : at+8]
	for i := range w {
		if w[i].Load()&(uint64(1)<<(h>>(6*i)&63)) == 0 {
			return true
		}
	}
	return false
}

// Ready reports whether the keys the store held at NewFilter are all in
// the filter: until then Absent answers false.
func (f *Filter) Ready() bool { return f != nil && f.ready.Load() }

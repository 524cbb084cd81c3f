package dedup

import (
	"encoding/binary"
	"math/bits"
	"sync/atomic"
	"unsafe"
)

// filter is a fixed-size blocked Bloom filter over Keys: each key sets one
// bit in each of the 8 words of one 64-byte block (one cache line), so a
// look-up costs one memory access. It never answers "absent" for a key that
// was added (no false negatives); the share of absent keys it answers
// "maybe" for grows with the keys added: about 1% at 10 bits per key, 5% at
// 6.5, and it tends to 100% (every look-up goes to the store) as the filter
// fills. Its size never changes.
//
// Keys are keyed SHA-256 outputs, uniformly distributed, so their bytes are used as
// the hash directly. It is safe for concurrent use: bits are set with
// atomic OR and read with atomic loads.
type filter struct {
	words  []atomic.Uint64 // len(words) = 8 * blocks
	blocks uint64
}

// filterBlockBytes is the size of one block: 8 words of 64 bits.
const filterBlockBytes = 64

// newFilter returns an empty filter of about size bytes (at least one
// block).
func newFilter(size int64) *filter {
	blocks := max(uint64(size)/filterBlockBytes, 1)
	f := &filter{words: make([]atomic.Uint64, 8*blocks), blocks: blocks}
	adviseHuge(unsafe.Pointer(&f.words[0]), uintptr(len(f.words))*8)
	return f
}

// probe returns the key's block (index of its first word) and the 8 bit
// positions, 6 bits each, packed in one uint64.
func (f *filter) probe(k *Key) (uint64, uint64) {
	h1 := binary.LittleEndian.Uint64(k[:8])
	h2 := binary.LittleEndian.Uint64(k[8:])
	block, _ := bits.Mul64(h1, f.blocks) // uniform in [0, blocks)
	return block * 8, h2
}

// add records k.
func (f *filter) add(k *Key) {
	at, h := f.probe(k)
	w := f.words[at : at+8 : at+8]
	for i := range w {
		bit := uint64(1) << (h >> (6 * i) & 63)
		if w[i].Load()&bit == 0 {
			w[i].Or(bit)
		}
	}
}

// addAll records keys as add does, in runs of touchRun keys: it first
// reads the block of each key of a run, then sets the run's bits. In a
// filter far larger than the caches (32 MiB by default) each key's block
// is a cache miss; plain loads of different blocks are in flight
// together, where each of add's atomic ORs (locked instructions) waits
// for the miss before it, one after another.
func (f *filter) addAll(keys []Key) {
	for len(keys) > 0 {
		run := keys[:min(len(keys), touchRun)]
		keys = keys[len(run):]
		var sink uint64
		for i := range run {
			at, _ := f.probe(&run[i])
			sink |= f.words[at].Load()
		}
		touchSink.Store(sink) // keeps the loads
		for i := range run {
			f.add(&run[i])
		}
	}
}

// touchRun is how many keys addAll touches before setting their bits:
// their blocks (64 bytes each, 16 KiB) stay in the caches meanwhile.
const touchRun = 256

// touchSink receives addAll's reads, so that they are not left out.
var touchSink atomic.Uint64

// mayContain is false only when k was never added.
func (f *filter) mayContain(k *Key) bool {
	at, h := f.probe(k)
	w := f.words[at : at+8 : at+8]
	for i := range w {
		if w[i].Load()&(uint64(1)<<(h>>(6*i)&63)) == 0 {
			return false
		}
	}
	return true
}

package identity

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// seen remembers, approximately, which profile keys this process has found
// in the bucket or written, so that a key it has never met can be created
// without being read first: on an ad's landing page almost every visitor is
// new, and a read that finds nothing costs as much as the write that
// follows. The guess is only an optimisation: a create that finds the key
// taken fails its compare-and-set like any stale write, and the profile is
// read and the change applied again (update). A process that restarts, or a
// key written by another replica, costs one failed create before the read.
//
// It is a Bloom filter in two generations: keys go into the current one;
// once it holds seenGeneration keys it becomes the previous one and a fresh
// filter starts, so memory stays bounded (2 × 2 MiB) while keys met in the
// last generation or two are still recognised. A false "maybe" only means a
// read before the write, as without the filter.
//
// The filter is blocked: a key's seenHashes bits all lie in one 64-byte
// block (a cache line), chosen by the top bits of its hash, so a look-up
// or an insertion touches one line per generation rather than one per bit
// (the filter is far larger than the caches; a new visitor's key cost
// about six misses). Five bits where the unblocked filter set four keep
// its false positives when full: ~2.3% at 8 bits a key, the unblocked
// filter's ~2.4% (TestSeenFalsePositives).
// A key is hashed once (hash) for its look-up and its insertion.
type seen struct {
	seed maphash.Seed
	gen  int64 // keys per generation

	mu   sync.Mutex // held to rotate generations
	cur  atomic.Pointer[bloom]
	prev atomic.Pointer[bloom]
}

const (
	seenBlockBits  = 15 // top hash bits that pick a block
	seenBlocks     = 1 << seenBlockBits
	seenBits       = seenBlocks * 512 // bits per generation (2 MiB)
	seenHashes     = 5                // bits per key, 9 hash bits each
	seenGeneration = 1 << 21          // keys per generation: ~2.3% false positives when full
)

// block is 512 bits, one cache line: the allocator aligns bloom (2 MiB) to a
// page, so every block is a line.
type block [8]atomic.Uint64

type bloom struct {
	blocks [seenBlocks]block
	n      atomic.Int64
}

func newSeen(gen int64) *seen {
	s := &seen{seed: maphash.MakeSeed(), gen: gen}
	s.cur.Store(new(bloom))
	return s
}

// hash is key's hash for maybeHash and addHash.
func (s *seen) hash(key string) uint64 { return maphash.String(s.seed, key) }

// has reports whether the bits of hash h are all set: the top seenBlockBits bits pick
// the block, five 9-bit slices of the low 45 bits the bits in it.
func (b *bloom) has(h uint64) bool {
	bl := &b.blocks[h>>(64-seenBlockBits)]
	for i := range seenHashes {
		bit := h >> (9 * i) & 511
		if bl[bit/64].Load()&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}

// maybe reports whether key may have been met; false means certainly not
// (by this process, in the last generations).
func (s *seen) maybe(key string) bool { return s.maybeHash(s.hash(key)) }

// maybeHash is maybe of the key whose hash is h.
func (s *seen) maybeHash(h uint64) bool {
	if s.cur.Load().has(h) {
		return true
	}
	prev := s.prev.Load()
	return prev != nil && prev.has(h)
}

// add records key.
func (s *seen) add(key string) { s.addHash(s.hash(key)) }

// addHash records the key whose hash is h.
func (s *seen) addHash(h uint64) {
	b := s.cur.Load()
	if b.has(h) {
		return
	}
	bl := &b.blocks[h>>(64-seenBlockBits)]
	for i := range seenHashes {
		bit := h >> (9 * i) & 511
		bl[bit/64].Or(1 << (bit % 64))
	}
	if b.n.Add(1) < s.gen {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur.Load() == b {
		s.prev.Store(b)
		s.cur.Store(new(bloom))
	}
}

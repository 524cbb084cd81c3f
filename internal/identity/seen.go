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
type seen struct {
	seed maphash.Seed
	gen  int64 // keys per generation

	mu   sync.Mutex // held to rotate generations
	cur  atomic.Pointer[bloom]
	prev atomic.Pointer[bloom]
}

const (
	seenBits       = 1 << 24 // bits per generation (2 MiB)
	seenHashes     = 4
	seenGeneration = 1 << 21 // keys per generation: ~2.4% false positives when full (8 bits a key)
)

type bloom struct {
	words [seenBits / 64]atomic.Uint64
	n     atomic.Int64
}

func newSeen(gen int64) *seen {
	s := &seen{seed: maphash.MakeSeed(), gen: gen}
	s.cur.Store(new(bloom))
	return s
}

// positions returns the filter's bit positions for key (Kirsch–Mitzenmacher:
// two halves of one 64-bit hash).
func (s *seen) positions(key string) [seenHashes]uint32 {
	h := maphash.String(s.seed, key)
	h1, h2 := uint32(h), uint32(h>>32)|1
	var p [seenHashes]uint32
	for i := range p {
		p[i] = (h1 + uint32(i)*h2) % seenBits
	}
	return p
}

func (b *bloom) has(p [seenHashes]uint32) bool {
	for _, bit := range p {
		if b.words[bit/64].Load()&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}

// maybe reports whether key may have been met; false means certainly not
// (by this process, in the last generations).
func (s *seen) maybe(key string) bool {
	p := s.positions(key)
	if s.cur.Load().has(p) {
		return true
	}
	prev := s.prev.Load()
	return prev != nil && prev.has(p)
}

// add records key.
func (s *seen) add(key string) {
	p := s.positions(key)
	b := s.cur.Load()
	if b.has(p) {
		return
	}
	for _, bit := range p {
		b.words[bit/64].Or(1 << (bit % 64))
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

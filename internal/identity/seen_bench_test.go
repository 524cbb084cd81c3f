package identity

import (
	"strconv"
	"testing"
)

// BenchmarkSeenNewKey: what ObserveAll asks seen of a new visitor's key, a
// look-up that finds nothing and an insertion, in filters of a full
// previous generation and a half-full current one (larger than the caches,
// as in production).
func BenchmarkSeenNewKey(b *testing.B) {
	s := newSeen(seenGeneration)
	for i := range seenGeneration + seenGeneration/2 {
		s.add("user:" + strconv.Itoa(i))
	}
	keys := make([]string, 1<<21)
	for i := range keys {
		keys[i] = "anon:" + strconv.Itoa(i)
	}
	b.ResetTimer()
	for i := range b.N {
		k := keys[i%len(keys)]
		if !s.maybe(k) {
			s.add(k)
		}
	}
}

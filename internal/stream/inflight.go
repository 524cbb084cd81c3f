package stream

import (
	"encoding/binary"
	"math/rand/v2"

	"github.com/capstan-gw/capstan/internal/stream/dedup"
)

// keyTable holds the de-duplication keys of the commits in flight, each
// with its owner (commit.go): what a map[dedup.Key]keyOwner would, for a
// few times less CPU per event (every event of a commit is looked up,
// inserted and deleted once). It is an open-addressing table with linear
// probing and backward-shift deletion (no tombstones), kept at most half
// full; a key's home slot is the top bits of its first 8 bytes, mixed
// with a seed of the table, so that ids chosen to share a slot under an
// unkeyed hash (no de-duplication secret) cannot be chosen without it. A
// slot is empty when its owner's commit is nil. Not safe for concurrent
// use (appender.dmu guards it).
type keyTable struct {
	slots []keySlot
	shift uint   // 64 - log2(len(slots))
	mask  uint64 // len(slots) - 1
	n     int    // keys held
	seed  uint64
}

type keySlot struct {
	key dedup.Key
	o   keyOwner
}

// minKeySlots is a new table's size: 2 commit loops of 1000 events at most
// half full.
const minKeySlots = 4096

func newKeyTable() *keyTable {
	t := &keyTable{seed: rand.Uint64()}
	t.alloc(minKeySlots)
	return t
}

func (t *keyTable) alloc(size int) {
	t.slots = make([]keySlot, size)
	t.mask = uint64(size - 1)
	t.shift = 64
	for s := size; s > 1; s >>= 1 {
		t.shift--
	}
}

// home is k's first slot.
func (t *keyTable) home(k *dedup.Key) uint64 {
	return ((binary.LittleEndian.Uint64(k[:8]) ^ t.seed) * 0x9e3779b97f4a7c15) >> t.shift
}

// find returns k's slot and true, or the empty slot where it belongs.
func (t *keyTable) find(k *dedup.Key) (uint64, bool) {
	i := t.home(k)
	for t.slots[i].o.c != nil {
		if t.slots[i].key == *k {
			return i, true
		}
		i = (i + 1) & t.mask
	}
	return i, false
}

// getOrPut returns k's owner and true if k is held; otherwise it holds k
// with owner o (whose commit is not nil) and returns false.
func (t *keyTable) getOrPut(k *dedup.Key, o keyOwner) (keyOwner, bool) {
	i, ok := t.find(k)
	if ok {
		return t.slots[i].o, true
	}
	if 2*(t.n+1) > len(t.slots) {
		t.grow()
		i, _ = t.find(k)
	}
	t.slots[i] = keySlot{key: *k, o: o}
	t.n++
	return keyOwner{}, false
}

// get returns k's owner, if k is held.
func (t *keyTable) get(k *dedup.Key) (keyOwner, bool) {
	i, ok := t.find(k)
	return t.slots[i].o, ok
}

// remove drops k, if held.
func (t *keyTable) remove(k *dedup.Key) {
	j, ok := t.find(k)
	if !ok {
		return
	}
	t.n--
	// Backward shift: move up each later key of the run that may live at
	// the emptied slot (its home is not cyclically in (j, n]).
	for n := j; ; {
		t.slots[j] = keySlot{}
		for {
			n = (n + 1) & t.mask
			if t.slots[n].o.c == nil {
				return
			}
			if h := t.home(&t.slots[n].key); (n-h)&t.mask >= (n-j)&t.mask {
				t.slots[j] = t.slots[n]
				j = n
				break
			}
		}
	}
}

// len is the number of keys held.
func (t *keyTable) len() int { return t.n }

func (t *keyTable) grow() {
	old := t.slots
	t.alloc(2 * len(old))
	for i := range old {
		if old[i].o.c != nil {
			j, _ := t.find(&old[i].key)
			t.slots[j] = old[i]
		}
	}
}

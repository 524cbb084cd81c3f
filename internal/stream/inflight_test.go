package stream

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/capstan-gw/capstan/internal/stream/dedup"
)

// TestKeyTable runs random puts and removes on a keyTable and a map side
// by side: long runs of keys with one home slot (a seed of 0 and keys
// chosen for it), runs that wrap around the table's end, and growth.
func TestKeyTable(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	commits := []*segCommit{{}, {}, {}}
	results := make([]Result, 64)
	for _, c := range []struct {
		name  string
		steps int
		key   func() dedup.Key
	}{
		{"random", 200_000, func() (k dedup.Key) {
			binary.LittleEndian.PutUint64(k[:8], r.Uint64())
			binary.LittleEndian.PutUint64(k[8:], r.Uint64())
			return k
		}},
		// Keys of four home slots (with seed 0, in a table of
		// minKeySlots), the table's last two among them: long runs that
		// wrap around its end.
		{"colliding", 20_000, func() (k dedup.Key) {
			homes := []uint64{minKeySlots - 2, minKeySlots - 1, 0, 7}
			h := homes[r.IntN(len(homes))]
			binary.LittleEndian.PutUint64(k[:8], (h<<52|r.Uint64N(1<<40))*inverse(0x9e3779b97f4a7c15))
			binary.LittleEndian.PutUint64(k[8:], r.Uint64N(100))
			return k
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tab := newKeyTable()
			tab.seed = 0
			want := map[dedup.Key]keyOwner{}
			var held []dedup.Key
			for step := range c.steps {
				// Fill (random keys: up to ~9000, the table grows twice),
				// then drain, then fill again.
				fill := step/(c.steps/5)%2 == 0
				if len(held) > 0 && (r.IntN(3) == 0 || !fill && r.IntN(4) != 0) {
					n := r.IntN(len(held))
					k := held[n]
					held[n] = held[len(held)-1]
					held = held[:len(held)-1]
					tab.remove(&k)
					delete(want, k)
				} else {
					k := c.key()
					o := keyOwner{c: commits[r.IntN(len(commits))], res: &results[r.IntN(len(results))]}
					got, ok := tab.getOrPut(&k, o)
					if w, wok := want[k]; ok != wok || got != w {
						t.Fatalf("step %d: getOrPut(%x) = %v, %v; want %v, %v", step, k, got, ok, w, wok)
					}
					if !ok {
						want[k] = o
						held = append(held, k)
					}
				}
				// The whole table checked now and then, and at the end: a
				// check looks up every key held, each along a run of up to
				// thousands of slots in the colliding case (every step of
				// the last thousand took 8 minutes under -race).
				if step%997 == 0 || step > c.steps-1000 && step%50 == 0 || step == c.steps-1 {
					if tab.len() != len(want) {
						t.Fatalf("step %d: %d keys held, want %d", step, tab.len(), len(want))
					}
					for k, w := range want {
						if o, ok := tab.get(&k); !ok || o != w {
							t.Fatalf("step %d: get(%x) = %v, %v; want %v", step, k, o, ok, w)
						}
					}
					n := 0
					for i := range tab.slots {
						if tab.slots[i].o.c != nil {
							n++
						}
					}
					if n != len(want) {
						t.Fatalf("step %d: %d slots in use, want %d", step, n, len(want))
					}
				}
			}
			if c.name == "colliding" {
				var k dedup.Key
				binary.LittleEndian.PutUint64(k[:8], (minKeySlots-1)<<52*inverse(0x9e3779b97f4a7c15))
				if h := tab.home(&k); len(tab.slots) == minKeySlots && h != minKeySlots-1 {
					t.Errorf("home of the chosen key = %d, want %d", h, minKeySlots-1)
				}
			} else if len(tab.slots) <= minKeySlots {
				t.Errorf("the table never grew (%d slots)", len(tab.slots))
			}
			// A key that was never put is absent.
			var k dedup.Key
			k[15] = 0xff
			if _, ok := tab.get(&k); ok && want[k].c == nil {
				t.Errorf("get(%x) found a key never put", k)
			}
		})
	}
}

// inverse returns the multiplicative inverse of odd x modulo 2^64.
func inverse(x uint64) uint64 {
	y := x // correct to 3 bits; each step doubles them
	for range 5 {
		y *= 2 - x*y
	}
	return y
}

// BenchmarkInflightKeys is what a commit of 100 events does with the keys
// in flight (each looked up and inserted, then removed) beside another
// commit's 1000 keys, in a keyTable and in the map it replaced. ns/op is
// per commit.
func BenchmarkInflightKeys(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	keys := make([]dedup.Key, 1000+700*100)
	for i := range keys {
		binary.LittleEndian.PutUint64(keys[i][:8], r.Uint64())
		binary.LittleEndian.PutUint64(keys[i][8:], r.Uint64())
	}
	other, mine := &segCommit{}, &segCommit{}
	res := make([]Result, 100)
	b.Run("table", func(b *testing.B) {
		t := newKeyTable()
		for i := range 1000 {
			t.getOrPut(&keys[i], keyOwner{c: other})
		}
		n := 0
		for b.Loop() {
			batch := keys[1000+n*100 : 1100+n*100]
			n = (n + 1) % 700
			for i := range batch {
				t.getOrPut(&batch[i], keyOwner{c: mine, res: &res[i]})
			}
			for i := range batch {
				t.remove(&batch[i])
			}
		}
	})
	b.Run("map", func(b *testing.B) {
		m := make(map[dedup.Key]keyOwner)
		for i := range 1000 {
			m[keys[i]] = keyOwner{c: other}
		}
		n := 0
		for b.Loop() {
			batch := keys[1000+n*100 : 1100+n*100]
			n = (n + 1) % 700
			for i, k := range batch {
				if _, ok := m[k]; !ok {
					m[k] = keyOwner{c: mine, res: &res[i]}
				}
			}
			for _, k := range batch {
				delete(m, k)
			}
		}
	})
}

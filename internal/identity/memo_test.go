package identity

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestMemoGenerations: a full generation becomes the previous one when a
// new key is put (put or putAll), not when a key it holds is put again.
func TestMemoGenerations(t *testing.T) {
	m := &memo{ttl: time.Minute}
	key := func(i int) string { return fmt.Sprintf("u.%064d", i) }
	m.putAll(memoGeneration, func(i int) (string, entry) { return key(i), entry{rev: uint64(i) + 1, exists: true} })
	if len(m.cur) != memoGeneration || m.prev != nil {
		t.Fatalf("after %d puts: cur %d, prev %v", memoGeneration, len(m.cur), m.prev != nil)
	}
	m.put(key(7), entry{rev: 99, exists: true}) // held: no new generation
	if len(m.cur) != memoGeneration || m.prev != nil {
		t.Fatalf("put of a held key started a generation: cur %d, prev %v", len(m.cur), m.prev != nil)
	}
	if e, ok := m.get(key(7)); !ok || e.rev != 99 {
		t.Errorf("get after put again = %+v, %v", e, ok)
	}
	m.putAll(1, func(int) (string, entry) { return key(memoGeneration), entry{rev: 1, exists: true} })
	if len(m.cur) != 1 || len(m.prev) != memoGeneration {
		t.Fatalf("put of a new key into a full generation: cur %d, prev %d", len(m.cur), len(m.prev))
	}
	for _, i := range []int{0, 7, memoGeneration} {
		if _, ok := m.get(key(i)); !ok {
			t.Errorf("key %d lost", i)
		}
	}
}

// TestObserveAllAfterAbsentRead: a new visitor whose profiles this process
// read a moment ago and found absent (in the memo, but never met) is
// created in ObserveAll's bursts all the same, and the profiles it wrote
// are in the memo.
func TestObserveAllAfterAbsentRead(t *testing.T) { bothStores(t, testObserveAllAfterAbsentRead) }

func testObserveAllAfterAbsentRead(t *testing.T) {
	ctx := context.Background()
	g := openGraph(t, openJS(t), Config{})
	uk, ak := UserKey(userU), AnonymousKey(anonA)
	for _, k := range []string{uk, ak} {
		if e, err := g.load(ctx, k); err != nil || e.exists {
			t.Fatalf("load %s = %+v, %v", k, e, err)
		}
		if _, ok := g.memo.get(k); !ok {
			t.Fatalf("the absent read of %s is not in the memo", k)
		}
	}
	ev := parse(t, identAU)
	if errs := g.ObserveAll(ctx, []Observation{{Event: ev, Captured: Capture(ev), Source: "s", Trusted: true}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	for _, k := range []string{uk, ak} {
		if e, ok := g.memo.get(k); !ok || !e.exists || e.rev == 0 {
			t.Errorf("memo of %s after ObserveAll = %+v, %v", k, e, ok)
		}
	}
	p, err := g.Show(ctx, Key{UserID: userU})
	if err != nil {
		t.Fatal(err)
	}
	if p.EmailSHA256 != emailHash || !slices.Equal(p.Links, []string{ak}) {
		t.Errorf("user after ObserveAll: email %q links %v", p.EmailSHA256, p.Links)
	}
	a, err := g.Show(ctx, Key{AnonymousID: anonA})
	if err != nil {
		t.Fatal(err)
	}
	if a.EmailSHA256 != emailHash || !slices.Equal(a.Links, []string{uk}) {
		t.Errorf("browser after ObserveAll: email %q links %v", a.EmailSHA256, a.Links)
	}
}

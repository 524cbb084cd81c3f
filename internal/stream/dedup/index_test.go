package dedup

import (
	"testing"
	"time"
)

func TestIndex(t *testing.T) {
	x, err := Open(Options{Dir: t.TempDir(), Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	a, b := HashKey([]byte("s"), "web", "m1"), HashKey([]byte("s"), "web", "m2")
	if a == b || a != HashKey([]byte("s"), "web", "m1") || a == HashKey([]byte("t"), "web", "m1") || HashKey(nil, "we", "bm1") == HashKey(nil, "web", "m1") {
		t.Fatal("HashKey is not a keyed hash of source and messageId")
	}
	if err := x.Add([]Key{a}, []uint64{5 << 16}, 5); err != nil {
		t.Fatal(err)
	}
	if err := x.Add([]Key{a, b}, []uint64{3 << 16, 7<<16 | 1}, 4); err != nil {
		t.Fatal(err)
	}
	got, err := x.Check([]Key{a, b, HashKey(nil, "web", "m3")})
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != 3<<16 || got[1] != 7<<16|1 || got[2] != 0 {
		t.Fatalf("Check = %v", got)
	}
	if x.Covered() != 5 {
		t.Fatalf("Covered = %d, want 5 (it never goes back)", x.Covered())
	}
}

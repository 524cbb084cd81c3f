package localdb

import (
	"slices"
	"testing"
	"time"
)

// TestKeyLocks: a key's lock excludes only writers of that key, and its
// entry leaves with the last of them (LockAll, Lock and a sweep's lock).
func TestKeyLocks(t *testing.T) {
	var k KeyLocks
	ab := []string{"a", "b"}
	es := k.LockAll(ab)

	other := make(chan struct{})
	go func() { k.Unlock("c", k.Lock("c")); close(other) }()
	select {
	case <-other:
	case <-time.After(10 * time.Second):
		t.Fatal("a lock of c waited for the holder of a and b")
	}

	got := make(chan struct{})
	go func() { k.Unlock("b", k.Lock("b")); close(got) }()
	select {
	case <-got:
		t.Fatal("a lock of b did not wait for its holder")
	case <-time.After(50 * time.Millisecond):
	}
	k.UnlockAll(ab, es)
	<-got

	lock, done := k.SweepLock(func(b []byte) string { return string(b) })
	for _, key := range []string{"x", "y"} {
		mu := lock([]byte(key))
		mu.Lock()
		if n := k.InUse(); n != 1 {
			t.Errorf("%d keys in use while the sweep holds %s, want 1", n, key)
		}
		mu.Unlock()
	}
	if n := k.InUse(); n != 1 {
		t.Errorf("%d keys in use during a sweep, want 1 (its last key)", n)
	}
	done()
	if n := k.InUse(); n != 0 {
		t.Errorf("%d keys in use after every writer returned", n)
	}
}

// TestKeysToLock: the keys not skipped, in Order's order, each once.
func TestKeysToLock(t *testing.T) {
	ks := [][]byte{[]byte("c"), []byte("a"), []byte("bad"), []byte("c"), []byte("b"), []byte("a")}
	got := KeysToLock(ks, Order(ks), func(i int) bool { return i == 2 })
	if want := []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("KeysToLock = %q, want %q", got, want)
	}
	if got := KeysToLock(nil, nil, func(int) bool { return false }); len(got) != 0 {
		t.Errorf("no keys: %q", got)
	}
}

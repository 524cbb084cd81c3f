package localdb

import (
	"strings"
	"sync"
)

// KeyLocks is the compare-and-set exclusion of a store's writers: a lock
// per key, in use only while held or waited for, so that two writers wait
// for each other only on an equal key. (Stripes by key hash made two
// chunks of 64 creates collide on some stripe nearly always, and ran them
// one at a time.) Its zero value is ready to use.
//
// A key's lock is an entry of held, made by the first writer of the key
// and counted (refs) by every writer that holds or waits for it: it leaves
// the map with the last, and the next writer makes a new one. mu guards
// held and the counts only, never a wait: it is taken while holding key
// locks, and no key lock is waited for while holding it.
//
// Deadlock freedom: a writer of several keys (LockAll) locks them in
// increasing key order; every other writer (Lock, and Sweep's lock
// function from SweepLock) holds one key lock at a time and waits for
// nothing while holding it. A cycle of waits would need a writer waiting
// for a key below one it holds.
type KeyLocks struct {
	mu   sync.Mutex
	held map[string]*KeyLock
	free []*KeyLock // entries that left held, for the next keys
}

// KeyLock is one key's lock, as Lock and LockAll return it.
type KeyLock struct {
	mu   sync.Mutex
	refs int // writers holding or waiting for mu; guarded by KeyLocks.mu
}

// keyLockFree bounds the entries KeyLocks keeps for reuse.
const keyLockFree = 1024

// ref returns the entry of key, counting one more user. Under k.mu.
func (k *KeyLocks) ref(key string) *KeyLock {
	e := k.held[key]
	if e == nil {
		if n := len(k.free); n > 0 {
			e, k.free = k.free[n-1], k.free[:n-1]
		} else {
			e = new(KeyLock)
		}
		if k.held == nil {
			k.held = make(map[string]*KeyLock)
		}
		k.held[key] = e
	}
	e.refs++
	return e
}

// unref counts one user of key's entry less, removing it with the last.
// Under k.mu.
func (k *KeyLocks) unref(key string, e *KeyLock) {
	if e.refs--; e.refs == 0 {
		delete(k.held, key)
		if len(k.free) < keyLockFree {
			k.free = append(k.free, e)
		}
	}
}

// Lock locks key; Unlock(key, the entry) unlocks it. The caller waits for
// nothing else while holding it (see KeyLocks).
func (k *KeyLocks) Lock(key string) *KeyLock {
	k.mu.Lock()
	e := k.ref(key)
	k.mu.Unlock()
	e.mu.Lock()
	return e
}

// Unlock unlocks the key Lock locked.
func (k *KeyLocks) Unlock(key string, e *KeyLock) {
	e.mu.Unlock()
	k.mu.Lock()
	k.unref(key, e)
	k.mu.Unlock()
}

// LockAll locks keys, which must be sorted and without repeats, in that
// order, and returns their entries for UnlockAll.
func (k *KeyLocks) LockAll(keys []string) []*KeyLock {
	es := make([]*KeyLock, len(keys))
	k.mu.Lock()
	for i, key := range keys {
		es[i] = k.ref(key)
	}
	k.mu.Unlock()
	for _, e := range es {
		e.mu.Lock()
	}
	return es
}

// UnlockAll unlocks the keys LockAll locked.
func (k *KeyLocks) UnlockAll(keys []string, es []*KeyLock) {
	for _, e := range es {
		e.mu.Unlock()
	}
	k.mu.Lock()
	for i, key := range keys {
		k.unref(key, es[i])
	}
	k.mu.Unlock()
}

// SweepLock returns the lock function of a Sweep that locks the key
// key(k) of each stored key k, and done, to call once Sweep returned.
// Sweep locks and unlocks each key's mutex itself, one key at a time: the
// entry is held (counted) from lock(k) to the next key's lock, or done,
// so that it stays the key's meanwhile.
func (k *KeyLocks) SweepLock(key func(k []byte) string) (lock func(k []byte) *sync.Mutex, done func()) {
	var (
		prev  string
		entry *KeyLock
	)
	lock = func(b []byte) *sync.Mutex {
		next := key(b)
		k.mu.Lock()
		defer k.mu.Unlock()
		if entry != nil {
			k.unref(prev, entry)
		}
		prev, entry = next, k.ref(next)
		return &entry.mu
	}
	done = func() {
		if entry != nil {
			k.mu.Lock()
			k.unref(prev, entry)
			k.mu.Unlock()
			entry = nil
		}
	}
	return lock, done
}

// InUse returns how many keys are locked or waited for.
func (k *KeyLocks) InUse() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.held)
}

// KeysToLock returns what a writer of the keys ks passes to LockAll: the keys
// not skipped, in order (Order's, which is LockAll's: increasing), each
// once, as strings sharing one copy of their bytes.
func KeysToLock(ks [][]byte, order []int, skip func(i int) bool) []string {
	n := 0
	for _, k := range ks {
		n += len(k)
	}
	var b strings.Builder
	b.Grow(n)
	ends := make([]int, 0, len(order))
	for _, i := range order {
		if !skip(i) {
			b.Write(ks[i])
			ends = append(ends, b.Len())
		}
	}
	all := b.String()
	keys := make([]string, 0, len(ends))
	start := 0
	for _, end := range ends {
		if k := all[start:end]; len(keys) == 0 || keys[len(keys)-1] != k {
			keys = append(keys, k)
		}
		start = end
	}
	return keys
}

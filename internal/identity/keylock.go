package identity

import "sync"

// keyLocks is the compare-and-set exclusion of Local's writers: a lock
// per profile key, in use only while held or waited for, so that two
// writers wait for each other only on an equal key. (Stripes by key hash
// made two chunks of 64 creates collide on some stripe nearly always, and
// ran them one at a time.)
//
// A key's lock is an entry of held, made by the first writer of the key
// and counted (refs) by every writer that holds or waits for it: it leaves
// the map with the last, and the next writer makes a new one. mu guards
// held and the counts only, never a wait: it is taken while holding key
// locks, and no key lock is waited for while holding it.
//
// Deadlock freedom: a writer of several keys (lockAll) locks them in
// increasing key order; every other writer (lock, and the sweep's lock
// function) holds one key lock at a time and waits for nothing while
// holding it. A cycle of waits would need a writer waiting for a key below
// one it holds.
type keyLocks struct {
	mu   sync.Mutex
	held map[string]*keyLock
	free []*keyLock // entries that left held, for the next keys
}

// keyLock is one key's lock.
type keyLock struct {
	mu   sync.Mutex
	refs int // writers holding or waiting for mu; guarded by keyLocks.mu
}

// keyLockFree bounds the entries keyLocks keeps for reuse.
const keyLockFree = 1024

// ref returns the entry of key, counting one more user. Under k.mu.
func (k *keyLocks) ref(key string) *keyLock {
	e := k.held[key]
	if e == nil {
		if n := len(k.free); n > 0 {
			e, k.free = k.free[n-1], k.free[:n-1]
		} else {
			e = new(keyLock)
		}
		if k.held == nil {
			k.held = make(map[string]*keyLock)
		}
		k.held[key] = e
	}
	e.refs++
	return e
}

// unref counts one user of key's entry less, removing it with the last.
// Under k.mu.
func (k *keyLocks) unref(key string, e *keyLock) {
	if e.refs--; e.refs == 0 {
		delete(k.held, key)
		if len(k.free) < keyLockFree {
			k.free = append(k.free, e)
		}
	}
}

// lock locks key; unlock(key, the entry) unlocks it.
func (k *keyLocks) lock(key string) *keyLock {
	k.mu.Lock()
	e := k.ref(key)
	k.mu.Unlock()
	e.mu.Lock()
	return e
}

func (k *keyLocks) unlock(key string, e *keyLock) {
	e.mu.Unlock()
	k.mu.Lock()
	k.unref(key, e)
	k.mu.Unlock()
}

// lockAll locks keys, which must be sorted and without repeats, in that
// order, and returns their entries for unlockAll.
func (k *keyLocks) lockAll(keys []string) []*keyLock {
	es := make([]*keyLock, len(keys))
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

// unlockAll unlocks the keys lockAll locked.
func (k *keyLocks) unlockAll(keys []string, es []*keyLock) {
	for _, e := range es {
		e.mu.Unlock()
	}
	k.mu.Lock()
	for i, key := range keys {
		k.unref(key, es[i])
	}
	k.mu.Unlock()
}

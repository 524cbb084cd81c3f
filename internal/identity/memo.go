package identity

import (
	"sync"
	"time"
)

// memoGeneration bounds the profiles one generation of the memo holds; the
// memo holds at most two generations (~40 MiB at most with typical
// profiles, far less in practice).
const memoGeneration = 1 << 15

// memo keeps the profiles this process read or wrote in the last moments
// (Config.MemoTTL), so that
//
//   - Enrich, which delivery calls right after Observe for the same event,
//     needs no read of its own, and
//   - Observe of an event that brings nothing new about a visitor seen a
//     moment ago (the pages of one visit, the events of one session) needs
//     no read either.
//
// Observe's writes stay compare-and-set on revisions, so a stale copy can
// only make a write fail and retry, never lose what another writer stored;
// what a stale copy can do is make an event look like it brings nothing new
// when another process changed the profile meanwhile, so the TTL bounds how
// long this process may be unaware of another's writes (replicas sharing an
// external cluster). Deletions are not left to the TTL: Delete tells every
// process sharing the bucket to drop the keys it removed (forget).
//
// It holds two generations of entries: puts go into the current one, and
// when that is full it becomes the previous one and a new one starts, so
// memory stays bounded without ever clearing what was just put.
type memo struct {
	ttl time.Duration // <= 0: off

	mu        sync.Mutex
	cur, prev map[string]memoEntry
}

type memoEntry struct {
	e  entry
	at time.Time
}

func (m *memo) get(key string) (entry, bool) {
	if m.ttl <= 0 {
		return entry{}, false
	}
	m.mu.Lock()
	me, ok := m.cur[key]
	if !ok {
		me, ok = m.prev[key]
	}
	m.mu.Unlock()
	if !ok || time.Since(me.at) >= m.ttl {
		return entry{}, false
	}
	return me.e, true
}

func (m *memo) put(key string, e entry) {
	m.putAll(1, func(int) (string, entry) { return key, e })
}

// putAll is put of n profiles, kv(i) the i-th, under one lock and one
// clock reading (a burst of creates).
func (m *memo) putAll(n int, kv func(i int) (string, entry)) {
	if m.ttl <= 0 || n == 0 {
		return
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur == nil {
		m.cur = make(map[string]memoEntry)
	}
	for i := range n {
		key, e := kv(i)
		m.putLocked(key, e, now)
	}
}

// putLocked is put's insertion, m.mu held. Only a full generation looks
// key up first: a new visitor's profile is put once, and the look-up
// costs as much as the insertion.
func (m *memo) putLocked(key string, e entry, now time.Time) {
	if len(m.cur) >= memoGeneration {
		if _, ok := m.cur[key]; !ok {
			m.prev, m.cur = m.cur, make(map[string]memoEntry, memoGeneration)
		}
	}
	m.cur[key] = memoEntry{e: e, at: now}
}

func (m *memo) drop(keys []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		delete(m.cur, k)
		delete(m.prev, k)
	}
}

package identity

import (
	"sync"
	"time"
)

// memoMax bounds the profiles the memo holds.
const memoMax = 4096

// memo keeps the profiles this process read or wrote in the last moment
// (Config.MemoTTL), so that Enrich, which delivery calls right after Observe
// for the same event, usually needs no read of its own. Only Enrich reads
// from it; Observe, Show and Delete always read the bucket (Observe's writes
// are compare-and-set on revisions anyway). A write by another process shows
// in Enrich at most MemoTTL late; Delete in this process drops what it
// removed at once.
type memo struct {
	ttl time.Duration // <= 0: off

	mu sync.Mutex
	m  map[string]memoEntry
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
	me, ok := m.m[key]
	m.mu.Unlock()
	if !ok || time.Since(me.at) >= m.ttl {
		return entry{}, false
	}
	return me.e, true
}

func (m *memo) put(key string, e entry) {
	if m.ttl <= 0 {
		return
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = make(map[string]memoEntry)
	}
	if _, ok := m.m[key]; !ok && len(m.m) >= memoMax {
		for k, me := range m.m {
			if now.Sub(me.at) >= m.ttl {
				delete(m.m, k)
			}
		}
		if len(m.m) >= memoMax {
			clear(m.m)
		}
	}
	m.m[key] = memoEntry{e: e, at: now}
}

func (m *memo) drop(keys []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		delete(m.m, k)
	}
}

package sandbox

import (
	"encoding/json"
	"time"
)

// Conversion is one conversion event the sandbox accepted, as kept for
// read-back (spec §18.5). Values returned by Server methods are copies.
type Conversion struct {
	// Seq numbers accepted events from 1, in arrival order.
	Seq int64 `json:"seq"`
	// Rule and Account are the conversion rule the event named (namespace
	// normalised to urn:lla:) and the rule's ad account.
	Rule    int64 `json:"rule"`
	Account int64 `json:"account"`
	// EventID is the event's eventId, "" when it had none.
	EventID string `json:"event_id,omitempty"`
	// Token is the access token that sent it; Version the LinkedIn-Version.
	Token   string `json:"token"`
	Version string `json:"version"`
	// ReceivedAt is the sandbox clock at arrival, in ms.
	ReceivedAt int64 `json:"received_at"`
	// BatchID identifies the BATCH_CREATE request ("" for a single create)
	// and Index the element's position in it.
	BatchID string `json:"batch_id,omitempty"`
	Index   int    `json:"index"`
	// DuplicateOf is the Seq of the earlier event with the same rule and
	// eventId when this one was de-duplicated (spec §16), else 0.
	DuplicateOf int64 `json:"duplicate_of,omitempty"`
	// Ineligible: the rule was disabled or had no associated campaign when
	// the event arrived, so reporting never counts it (spec §21.10).
	Ineligible bool `json:"ineligible,omitempty"`
	// Body is the event exactly as received.
	Body json.RawMessage `json:"body"`
}

// ConversionFilter selects conversions. Zero fields select everything.
type ConversionFilter struct {
	Rule    int64     // only events for this rule id
	Account int64     // only events for rules of this account
	EventID string    // only events with this eventId
	Since   time.Time // only events received at or after this time
	// Duplicates includes de-duplicated events (they are left out by
	// default, as LinkedIn counts them once).
	Duplicates bool
}

func (f ConversionFilter) match(c *Conversion) bool {
	switch {
	case f.Rule != 0 && c.Rule != f.Rule,
		f.Account != 0 && c.Account != f.Account,
		f.EventID != "" && c.EventID != f.EventID,
		!f.Since.IsZero() && c.ReceivedAt < f.Since.UnixMilli(),
		!f.Duplicates && c.DuplicateOf != 0:
		return false
	}
	return true
}

// conversionStore keeps the newest max conversions and the bounded eventId
// de-duplication set. It is guarded by Server.mu.
type conversionStore struct {
	max     int
	kept    ring // accepted events, not duplicates
	dups    ring // de-duplicated events, bounded separately
	nextSeq int64
	evicted int64

	dedupMax    int
	dedupWindow time.Duration
	dedup       map[dedupKey]dedupEntry
	dedupQueue  []dedupRef // insertion order, may hold stale refs
	dedupStart  int
	dedupGen    uint64
	// dedupStale counts the stale refs in dedupQueue[dedupStart:], those
	// of keys remembered again since. Every other ref names its key's
	// entry, so while there is none, eviction deletes the oldest key without
	// looking it up first (the look-up of an old key, cold in the caches,
	// was a tenth of the sandbox's CPU with a full set).
	dedupStale int
}

// ring is a FIFO of conversions bounded by the store's max: it grows to max,
// then each push overwrites the oldest. It grows by blocks of ringBlock
// conversions rather than by one slice: a slice that doubles copies
// everything kept so far into fresh memory, which took a quarter of the
// sandbox's CPU when it kept millions (bench/delivery.sh).
type ring struct {
	blocks [][]Conversion // all full but the last, each ringBlock long when full
	n      int            // conversions kept
	start  int            // index of the oldest, 0 until the ring is full
}

// ringBlock is the number of conversions a ring's block holds, ~150 KiB.
const ringBlock = 1024

func (r *ring) len() int { return r.n }

// at returns the conversion at index i (0 ≤ i < r.n) of the ring's storage.
func (r *ring) at(i int) *Conversion { return &r.blocks[i/ringBlock][i%ringBlock] }

// push appends c and drops the oldest beyond max, returning how many.
func (r *ring) push(c Conversion, max int) int {
	switch {
	case max <= 0:
		return 1
	case r.n < max:
		last := len(r.blocks) - 1
		if last < 0 || len(r.blocks[last]) == cap(r.blocks[last]) {
			r.blocks = append(r.blocks, make([]Conversion, 0, min(ringBlock, max-r.n)))
			last++
		}
		r.blocks[last] = append(r.blocks[last], c)
		r.n++
		return 0
	}
	*r.at(r.start) = c
	r.start = (r.start + 1) % r.n
	return 1
}

// live returns a cursor over the conversions, oldest first.
func (r *ring) live() ringCursor { return ringCursor{r: r, i: r.start, left: r.n} }

// ringCursor walks a ring's conversions, oldest first.
type ringCursor struct {
	r    *ring
	i    int // index of the next conversion
	left int // conversions not yet popped
}

// peek returns the next conversion, nil at the end.
func (rc *ringCursor) peek() *Conversion {
	if rc.left == 0 {
		return nil
	}
	return rc.r.at(rc.i)
}

func (rc *ringCursor) pop() {
	rc.left--
	if rc.i++; rc.i == rc.r.n {
		rc.i = 0
	}
}

type dedupKey struct {
	rule    int64
	eventID string
}

type dedupEntry struct {
	seq int64
	at  time.Time
	gen uint64
}

type dedupRef struct {
	key dedupKey
	gen uint64
}

func newConversionStore(max, dedupMax int, dedupWindow time.Duration) *conversionStore {
	return &conversionStore{max: max, nextSeq: 1, dedupMax: dedupMax, dedupWindow: dedupWindow, dedup: map[dedupKey]dedupEntry{}}
}

func (cs *conversionStore) len() int { return cs.kept.len() }

// add stores c, assigning Seq and DuplicateOf, and reports whether it was a
// duplicate.
func (cs *conversionStore) add(c Conversion, now time.Time) (dup bool) {
	c.Seq = cs.nextSeq
	cs.nextSeq++
	if c.EventID != "" {
		k := dedupKey{c.Rule, c.EventID}
		if e, ok := cs.dedup[k]; ok && now.Sub(e.at) < cs.dedupWindow {
			c.DuplicateOf = e.seq
			dup = true
		} else {
			cs.remember(k, c.Seq, now, ok)
		}
	}
	if dup {
		cs.dups.push(c, cs.max)
	} else {
		cs.evicted += int64(cs.kept.push(c, cs.max))
	}
	return dup
}

// remember makes k the newest key of the de-duplication set, dropping the
// oldest beyond dedupMax. present tells that k is in the set already.
func (cs *conversionStore) remember(k dedupKey, seq int64, at time.Time, present bool) {
	cs.dedupGen++
	cs.dedup[k] = dedupEntry{seq: seq, at: at, gen: cs.dedupGen}
	if present {
		cs.dedupStale++ // k's earlier ref
	}
	cs.dedupQueue = append(cs.dedupQueue, dedupRef{key: k, gen: cs.dedupGen})
	for len(cs.dedup) > cs.dedupMax && cs.dedupStart < len(cs.dedupQueue) {
		ref := cs.dedupQueue[cs.dedupStart]
		cs.dedupQueue[cs.dedupStart] = dedupRef{}
		cs.dedupStart++
		if cs.dedupStale == 0 {
			delete(cs.dedup, ref.key)
		} else if e, ok := cs.dedup[ref.key]; ok && e.gen == ref.gen {
			delete(cs.dedup, ref.key)
		} else {
			cs.dedupStale--
		}
	}
	// Drop consumed references so the queue stays within a small multiple
	// of the set. They are dropped in place: a new slice for the rest would
	// be grown again by append, copying it each time (5-10% of the
	// sandbox's CPU with a full set).
	if cs.dedupStart > 1024 && cs.dedupStart > len(cs.dedupQueue)/2 {
		n := copy(cs.dedupQueue, cs.dedupQueue[cs.dedupStart:])
		clear(cs.dedupQueue[n:])
		cs.dedupQueue, cs.dedupStart = cs.dedupQueue[:n], 0
	}
	if len(cs.dedupQueue)-cs.dedupStart > 4*cs.dedupMax+1024 {
		live := cs.dedupQueue[:0]
		for _, ref := range cs.dedupQueue[cs.dedupStart:] {
			if e, ok := cs.dedup[ref.key]; ok && e.gen == ref.gen {
				live = append(live, ref)
			}
		}
		clear(cs.dedupQueue[len(live):])
		cs.dedupQueue, cs.dedupStart, cs.dedupStale = live, 0, 0
	}
}

// selectConv returns copies of the matching conversions, oldest first.
func (cs *conversionStore) selectConv(f ConversionFilter) []Conversion {
	out := []Conversion{}
	kept, dups := cs.kept.live(), cs.dups.live()
	if !f.Duplicates {
		dups = ringCursor{}
	}
	for {
		k, d := kept.peek(), dups.peek()
		var c *Conversion
		switch {
		case k == nil && d == nil:
			return out
		case d == nil || (k != nil && k.Seq < d.Seq):
			c = k
			kept.pop()
		default:
			c = d
			dups.pop()
		}
		if f.match(c) {
			out = append(out, *c)
		}
	}
}

// restore refills the store from persisted conversions and rebuilds the
// de-duplication set from them.
func (cs *conversionStore) restore(convs []Conversion, nextSeq int64) {
	for _, c := range convs {
		if c.DuplicateOf != 0 {
			cs.dups.push(c, cs.max)
		} else {
			cs.kept.push(c, cs.max)
			if c.EventID != "" {
				k := dedupKey{c.Rule, c.EventID}
				_, present := cs.dedup[k]
				cs.remember(k, c.Seq, time.UnixMilli(c.ReceivedAt), present)
			}
		}
		if c.Seq >= cs.nextSeq {
			cs.nextSeq = c.Seq + 1
		}
	}
	if nextSeq > cs.nextSeq {
		cs.nextSeq = nextSeq
	}
}

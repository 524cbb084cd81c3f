package delivery

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/capstan-gw/capstan/internal/stream"
)

// Keyed is implemented by Formats whose payloads carry a key the client
// chooses and the remote may de-duplicate on (LinkedIn: the eventId, per
// conversion rule, spec §16, §23). The runner's eventId collision guard
// uses it: two payloads with the same key but different content within
// GuardTTL are a collision, which the remote would either drop or count
// twice. Implementations must be safe for concurrent use.
type Keyed interface {
	// EventKey returns the payload's key — scope (LinkedIn: the rule) and
	// id (the eventId) — and a hash of everything that must not differ
	// under one key (value, currency, time, identifiers, and the id
	// itself). ok is false when the payload carries no key.
	EventKey(p Payload) (scope, id string, content [32]byte, ok bool)
	// Rekey returns a copy of p whose key is derived from its own and from
	// content (LinkedIn: "<eventId>-<8 hex of content>", within the
	// eventId's length limit). It must be stable: the same payload always
	// gets the same key, so retries and replays stay idempotent.
	Rekey(p Payload, content [32]byte) (Payload, string, error)
}

// Collision policies of destinations[].event_id_collision.
const (
	// CollisionSuffix sends the later conversion under a derived key.
	CollisionSuffix = "suffix"
	// CollisionDeadLetter keeps the later conversion in the DLQ with
	// reason ReasonCollision.
	CollisionDeadLetter = "dead_letter"
)

// ReasonCollision is the dead-letter reason of a conversion held by the
// eventId collision guard (event_id_collision: dead_letter).
const ReasonCollision = "event_id_collision"

// GuardKV is the key-value bucket of the eventId collision guard: per
// destination, rule and eventId (hashed) the hash of the content first sent
// under it, for GuardTTL.
const GuardKV = stream.EventIDsKV

// GuardTTL is how long the guard remembers an eventId: seven days (spec
// §16's outbound ledger).
const GuardTTL = 7 * 24 * time.Hour

// claimBytes is how much of a content hash the bucket keeps: 128 bits, so
// that an entry takes about 150 bytes on disk.
const claimBytes = 16

// guardTimeout bounds the claims of one batch.
const guardTimeout = 30 * time.Second

// guardPipeline bounds the claims published at once (below nats.go's
// default of 4000 pending asynchronous publishes).
const guardPipeline = 1000

// guardParallel bounds the concurrent bucket round trips of one batch's
// slow path (keys that exist).
const guardParallel = 16

// guard checks a batch's keyed payloads against the bucket. Each key is
// claimed with an atomic create before its payload is first sent, so a
// crash between claim and send, or between send and acknowledgement, only
// leads to a retry of the same content, which finds its own hash: never a
// false collision. The claim outlives a later dead letter of the first
// payload (its content still owns the key).
type guard struct {
	// store's writes are not synced one by one: a batch's claims are made
	// durable together by one sync (one fsync, not one per claim).
	store claimStore
	keyed Keyed
	mode  string
}

// guardKey is the bucket key of (destination, scope, id): hashed, as ids
// may hold any character and may be personal.
func guardKey(dest, scope, id string) string {
	return guardSubject(dest, scope, id)[len(guardSubjectPrefix):]
}

// guardSubjectPrefix is the subject prefix of the guard bucket's keys.
const guardSubjectPrefix = "$KV." + GuardKV + "."

// guardSubject is the subject of guardKey(dest, scope, id) in the bucket,
// built in one allocation (the key is its tail: guardKey).
func guardSubject(dest, scope, id string) string {
	var in [256]byte
	b := append(append(append(append(append(in[:0], dest...), 0), scope...), 0), id...)
	sum := sha256.Sum256(b)
	var out [len(guardSubjectPrefix) + 2 + 32]byte
	n := copy(out[:], guardSubjectPrefix)
	n += copy(out[n:], "e.")
	hex.Encode(out[n:], sum[:16])
	return string(out[:])
}

// IDHash is the short hash under which logs name an eventId (never the
// eventId itself: it may be an order or person id).
func IDHash(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:6])
}

// claim returns the value of key: the one this call wrote (value, which
// claims key for its content) when key was free, else the value found;
// created says whether this call wrote it.
func (g *guard) claim(ctx context.Context, key string, value []byte) (found []byte, created bool, err error) {
	for range 3 {
		v, ok, err := g.store.get(ctx, key)
		switch {
		case err != nil:
			return nil, false, err
		case ok:
			return v, false, nil
		}
		made, err := g.store.create(ctx, key, value)
		switch {
		case err != nil:
			return nil, false, err
		case made:
			return value, true, nil
		}
		// Claimed meanwhile by another sender: read the owner again.
	}
	return nil, false, fmt.Errorf("eventId guard: key %s keeps changing", key)
}

// A key's value is the content hash that owns it (claimBytes), then:
//
//   - nothing: claimed, written before the first send; says nothing about
//     whether a send reached the remote;
//   - acceptedMark: the remote accepted that content (the sent-conversion
//     record, written by key);
//   - groupMark, a claim group's id (groupIDBytes) and the key's index in
//     the group (4 bytes, big-endian): claimed in that group; the remote
//     accepted the content when the group's record (groupKey) has the
//     index's bit set. The marks of a whole request are one write.
const (
	acceptedMark = 'A'
	groupMark    = 'G'
	groupIDBytes = 8
	groupedLen   = claimBytes + 1 + groupIDBytes + 4
)

// claimValue is a key's value, parsed (parseClaim).
type claimValue struct {
	owner    [32]byte
	accepted bool // marked by key
	grouped  bool // group and idx are set
	group    [groupIDBytes]byte
	idx      uint32
}

// parseClaim parses a guard value.
func parseClaim(v []byte) claimValue {
	var c claimValue
	copy(c.owner[:claimBytes], v)
	switch {
	case len(v) == claimBytes+1 && v[claimBytes] == acceptedMark:
		c.accepted = true
	case len(v) == groupedLen && v[claimBytes] == groupMark:
		c.grouped = true
		copy(c.group[:], v[claimBytes+1:])
		c.idx = binary.BigEndian.Uint32(v[claimBytes+1+groupIDBytes:])
	}
	return c
}

// claimGroup is the claims one guardBatch writes: each new key's value
// names the group and an index in it, and the remote's acceptance of
// those conversions is recorded in one value per group (groupKey: a
// bitmap of the indexes accepted), rewritten once per accepted request
// rather than once per conversion.
type claimGroup struct {
	id   [groupIDBytes]byte
	made time.Time
	n    uint32 // indexes given
	mu   sync.Mutex
	bits []byte // accepted indexes
}

// newClaimGroup returns a group with a random id.
func newClaimGroup() *claimGroup {
	g := &claimGroup{made: time.Now()}
	binary.BigEndian.PutUint64(g.id[:], rand.Uint64())
	return g
}

// groupKey is the bucket key of a claim group's accepted bitmap.
func groupKey(id [groupIDBytes]byte) string { return "g." + hex.EncodeToString(id[:]) }

// value returns the claim value of content at index idx of the group.
func (cg *claimGroup) value(content [32]byte, idx uint32) []byte {
	return cg.putValue(make([]byte, groupedLen), content, idx)
}

// putValue writes the claim value of content at index idx of the group in
// v (groupedLen bytes) and returns v.
func (cg *claimGroup) putValue(v []byte, content [32]byte, idx uint32) []byte {
	copy(v, content[:claimBytes])
	v[claimBytes] = groupMark
	copy(v[claimBytes+1:], cg.id[:])
	binary.BigEndian.PutUint32(v[claimBytes+1+groupIDBytes:], idx)
	return v
}

// groupMarkFor is how old a claim group may be for its acceptances to be
// recorded in the group's value: the keys of an older group (a request
// retried for long, a destination paused) are marked one by one, which
// writes them again and so keeps them GuardTTL from the acceptance.
const groupMarkFor = time.Hour

// hasBit reports whether bitmap bits has index i set.
func hasBit(bits []byte, i uint32) bool {
	return int(i/8) < len(bits) && bits[i/8]&(1<<(i%8)) != 0
}

// groupBits reads the accepted bitmap of claim group id (nil when none was
// written), through cache (by id) when it is given.
func (g *guard) groupBits(ctx context.Context, id [groupIDBytes]byte, cache *groupCache) ([]byte, error) {
	if cache != nil {
		if bits, ok := cache.get(id); ok {
			return bits, nil
		}
	}
	bits, _, err := g.store.get(ctx, groupKey(id))
	if err != nil {
		return nil, err
	}
	if cache != nil {
		cache.put(id, bits)
	}
	return bits, nil
}

// groupCache keeps the group bitmaps read during one check: the keys read
// again after a crash mostly share a few groups.
type groupCache struct {
	mu sync.Mutex
	m  map[[groupIDBytes]byte][]byte
}

func (c *groupCache) get(id [groupIDBytes]byte) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.m[id]
	return b, ok
}

func (c *groupCache) put(id [groupIDBytes]byte, bits []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[[groupIDBytes]byte][]byte{}
	}
	c.m[id] = bits
}

// resolve returns the owner of a key's value v and whether the remote
// accepted the owner's conversion, reading the group's bitmap when the
// value names a group. (Whatever the content of the check that read it:
// the other checks of the key in the batch take its answer.)
func (g *guard) resolve(ctx context.Context, v []byte, cache *groupCache) (owner [32]byte, accepted bool, err error) {
	c := parseClaim(v)
	if !c.grouped {
		return c.owner, c.accepted, nil
	}
	bits, err := g.groupBits(ctx, c.group, cache)
	if err != nil {
		return c.owner, false, err
	}
	return c.owner, hasBit(bits, c.idx), nil
}

// markTry bounds one round of markAccepted, markFor all of them.
const (
	markTry = 10 * time.Second
	markFor = 30 * time.Second
)

// markAccepted records that the remote accepted the conversions of items
// (those that own a key): the sent-conversion record, so that the
// conversion is never sent again within GuardTTL, whoever reads its event
// again (this runner after a lost acknowledgement, another replica after a
// lease move). The items of a claim group set their bits in its bitmap,
// one write per group; the others (a key claimed by an earlier run, or a
// group older than groupMarkFor) have their key's value marked with
// acceptedMark. The writes are published together and confirmed by the
// engine (on a cluster, by a quorum of the bucket's replicas) before the
// caller acknowledges the events; a failed write is retried with backoff
// for up to markFor, even while the runner stops. What it returns is the
// last error, nil when every key is marked.
//
// On the embedded engine the marks are not fsynced one by one: they are as
// durable as the acknowledgement that follows them (written to the file
// store, which survives the process).
func (g *guard) markAccepted(items []*item) error {
	var writes []markWrite
	seen := map[string]bool{}
	groups := map[*claimGroup]bool{}
	for _, it := range items {
		if it.claim == "" || seen[it.claim] {
			continue
		}
		seen[it.claim] = true
		if cg := it.group; cg != nil && time.Since(cg.made) < groupMarkFor {
			cg.mu.Lock()
			if need := int(it.idx/8) + 1; len(cg.bits) < need {
				cg.bits = append(cg.bits, make([]byte, need-len(cg.bits))...)
			}
			cg.bits[it.idx/8] |= 1 << (it.idx % 8)
			cg.mu.Unlock()
			groups[cg] = true
			continue
		}
		writes = append(writes, markWrite{key: it.claim, data: append(it.content[:claimBytes:claimBytes], acceptedMark)})
	}
	for cg := range groups {
		cg.mu.Lock()
		writes = append(writes, markWrite{key: groupKey(cg.id), data: slices.Clone(cg.bits)})
		cg.mu.Unlock()
	}
	deadline := time.Now().Add(markFor)
	wait := 100 * time.Millisecond
	for {
		var err error
		writes, err = g.mark(writes)
		if len(writes) == 0 {
			return nil
		}
		if time.Now().Add(wait).After(deadline) {
			return err
		}
		time.Sleep(wait)
		wait = min(2*wait, 5*time.Second)
	}
}

// markWrite is one write of markAccepted: a key's new value.
type markWrite struct {
	key  string
	data []byte
}

// mark writes writes once and returns those that were not confirmed,
// with the last error.
func (g *guard) mark(writes []markWrite) ([]markWrite, error) {
	ctx, cancel := context.WithTimeout(context.Background(), markTry)
	defer cancel()
	return g.store.putAll(ctx, writes)
}

// release gives up key when content still owns it: the remote refused the
// conversion, so a corrected one may use the eventId. A failure is logged;
// the corrected conversion is then sent under a derived eventId (not lost).
func (g *guard) release(ctx context.Context, key string, content [32]byte, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	v, ok, err := g.store.get(ctx, key)
	if err == nil && !ok {
		return
	}
	if err == nil {
		var owner [32]byte
		var accepted bool
		owner, accepted, err = g.resolve(ctx, v, nil)
		if err == nil && (accepted || owner != content) {
			return // another content owns it, or this content was accepted
		}
	}
	if err == nil {
		err = g.store.deleteIf(ctx, key, v)
	}
	if err != nil {
		log.Warn("eventId guard: could not release the eventId of a refused conversion; a corrected one will be sent under a derived eventId", "error", err)
	}
}

// guardBatch applies the eventId collision guard to a flushed batch and
// returns the items to send: unchanged, re-keyed (suffix) or left out
// (dead-lettered, already accepted by the remote, or kept for redelivery
// when the bucket failed). A re-keyed item's derived key is claimed in turn,
// so that it too is sent once.
func (r *Runner) guardBatch(ctx context.Context, batch []*item) []*item {
	if r.guard == nil {
		return batch
	}
	drop := map[*item]bool{}
	skipped := 0
	cg := newClaimGroup()
	rekeyed := r.guardPass(ctx, cg, batch, false, drop, &skipped)
	if len(rekeyed) > 0 {
		r.guardPass(ctx, cg, rekeyed, true, drop, &skipped)
	}
	if skipped > 0 {
		r.log.Info("conversions the destination already accepted were not sent again", "already_sent", skipped)
	}
	if len(drop) == 0 {
		return batch
	}
	out := make([]*item, 0, len(batch)-len(drop))
	for _, it := range batch {
		if !drop[it] {
			out = append(out, it)
		}
	}
	return out
}

// guardCheck is one keyed item of a guard pass.
type guardCheck struct {
	it       *item
	scope    string
	id       string
	subject  string // of key in the bucket (guardSubject)
	key      string
	content  [32]byte
	idx      uint32 // in the claim group, of the key's first check
	owner    [32]byte
	accepted bool
	mine     bool // the key's value is this group's claim
	err      error
}

// guardPass claims the keys of items in claim group cg and acts on the
// owners found: items it leaves out are added to drop (skipped counts those
// the remote already accepted). It returns the items it re-keyed (suffix);
// derived says that the items were re-keyed already, so a collision of
// theirs is dead-lettered.
func (r *Runner) guardPass(ctx context.Context, cg *claimGroup, items []*item, derived bool, drop map[*item]bool, skipped *int) (rekeyed []*item) {
	g := r.guard
	// One allocation for the checks; the pointers stay valid as all is
	// never outgrows its capacity.
	all := make([]guardCheck, 0, len(items))
	checks := make([]*guardCheck, 0, len(items))
	for _, it := range items {
		if scope, id, content, ok := g.keyed.EventKey(it.Payload); ok {
			clear(content[claimBytes:]) // 128 bits are kept and compared
			subj := guardSubject(r.plan.Name, scope, id)
			all = append(all, guardCheck{it: it, scope: scope, id: id, subject: subj, key: subj[len(guardSubjectPrefix):], content: content})
			checks = append(checks, &all[len(all)-1])
		}
	}
	if len(checks) == 0 {
		return nil
	}
	g.check(ctx, cg, checks)
	for _, c := range checks {
		it := c.it
		switch {
		case c.err != nil:
			// Not knowing whether it collides, do not send it: the event
			// is redelivered and checked again.
			r.log.Error("eventId guard unavailable; the event will be delivered again", "error", c.err, "mapping", it.route.Name, "event_pos", it.ev.Pos())
			it.ev.failed.Store(true)
			r.release(it.ev)
			drop[it] = true
		case c.owner == c.content && c.accepted:
			// The sent-conversion record: the remote accepted this very
			// conversion (its event is read again after an
			// acknowledgement was lost, a crash or a lease move, or it
			// was replayed). Sending it again could count it twice
			// (spec §23.2): it is done.
			// It counts as delivered: it is at the remote, and every
			// event read ends in one outcome (received = delivered +
			// dead-lettered + not matched).
			r.m.alreadySent.WithLabelValues(r.plan.Name, it.route.Name).Inc()
			r.delivered.Inc()
			*skipped++
			r.release(it.ev)
			drop[it] = true
		case c.owner == c.content:
			// First sight, or a retry or replay of the same content whose
			// send may not have reached the remote. A key claimed by an
			// earlier batch (or an older capstan) is marked by key.
			it.claim, it.content, it.group, it.idx = c.key, c.content, nil, 0
			if c.mine {
				it.group, it.idx = cg, c.idx
			}
		case g.mode == CollisionDeadLetter || derived:
			r.collided(it, c.scope, c.id, CollisionDeadLetter, "")
			r.deadLetterItem(ctx, it, ReasonCollision, Answer{Code: "EVENT_ID_COLLISION"}, 0,
				"another conversion with different content was sent for this rule under the same eventId within 7 days; "+
					"send it under its own eventId, or set event_id_collision: suffix and replay", nil)
			drop[it] = true
		default:
			p, derivedID, err := g.keyed.Rekey(it.Payload, c.content)
			if err != nil {
				r.deadLetterItem(ctx, it, ReasonCollision, Answer{Code: "EVENT_ID_COLLISION"}, 0,
					"eventId collision, and no derived eventId could be made: "+err.Error(), nil)
				drop[it] = true
				continue
			}
			it.Payload = p
			it.collision = true
			r.collided(it, c.scope, c.id, CollisionSuffix, derivedID)
			rekeyed = append(rekeyed, it)
		}
	}
	return rekeyed
}

// check claims the keys of checks in claim group cg and sets each one's
// owner (and whether the remote accepted the owner's conversion) or error.
// The first check of a key claims it; the others of the same key get its
// result.
func (g *guard) check(ctx context.Context, cg *claimGroup, checks []*guardCheck) {
	first := make(map[string]*guardCheck, len(checks))
	claims := make([]*guardCheck, 0, len(checks))
	for _, c := range checks {
		if _, ok := first[c.key]; !ok {
			first[c.key] = c
			c.idx = cg.n
			cg.n++
			claims = append(claims, c)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, guardTimeout)
	defer cancel()
	// Fast path: create every key at once, pipelined (a new eventId is
	// the common case); keys that exist, or did, take the slow path, which
	// reads the owner and whether it was accepted.
	var created atomic.Bool
	slow, made := g.store.createAll(cctx, cg, claims)
	if made {
		created.Store(true)
	}
	sem := make(chan struct{}, guardParallel)
	var wg sync.WaitGroup
	var cache groupCache
	for _, c := range slow {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			v, made, err := g.claim(cctx, c.key, cg.value(c.content, c.idx))
			if err != nil {
				c.err = err
				return
			}
			if made {
				created.Store(true)
			}
			// Written by this group: by claim, or by the fast path when
			// only its answer failed.
			if pv := parseClaim(v); pv.grouped && pv.group == cg.id && pv.idx == c.idx {
				c.owner, c.mine = pv.owner, true
				return
			}
			c.owner, c.accepted, c.err = g.resolve(cctx, v, &cache)
		})
	}
	wg.Wait()
	if created.Load() {
		// The claims are durable before anything is sent under them.
		if err := g.store.sync(cctx); err != nil {
			for _, c := range claims {
				if c.err == nil {
					c.err = fmt.Errorf("sync the eventId claims: %w", err)
				}
			}
		}
	}
	for _, c := range checks {
		if f := first[c.key]; f != c {
			c.owner, c.accepted, c.mine, c.idx, c.err = f.owner, f.accepted, f.mine, f.idx, f.err
		}
	}
}

// collided logs and counts an eventId collision of it (no PII: the rule,
// the mapping and a hash of the eventId).
func (r *Runner) collided(it *item, scope, id, action, derived string) {
	r.m.collisions.WithLabelValues(r.plan.Name, it.route.Name, action).Inc()
	args := []any{"mapping", it.route.Name, "rule", scope, "event_id_hash", IDHash(id), "action", action, "event_pos", it.ev.Pos()}
	if derived != "" {
		args = append(args, "derived_event_id_hash", IDHash(derived))
	}
	r.log.Warn("eventId collision: another conversion with different content was sent under the same eventId within 7 days", args...)
	if action == CollisionDeadLetter {
		r.count([]Tally{{Rule: it.route.Rule, Day: dayOf(it.Happened, r.clock.Now()), Collisions: 1}})
	}
}

// openGuard opens the guard for f on local, or on its bucket when local is
// nil; nil when f has no keys.
func openGuard(ctx context.Context, eng *stream.Engine, f Format, mode string, local *GuardLocal) (*guard, error) {
	k, ok := f.(Keyed)
	if !ok {
		return nil, nil
	}
	switch mode {
	case "":
		mode = CollisionSuffix
	case CollisionSuffix, CollisionDeadLetter:
	default:
		return nil, fmt.Errorf("event_id_collision %q: want %s or %s", mode, CollisionSuffix, CollisionDeadLetter)
	}
	if local != nil {
		return &guard{store: local, keyed: k, mode: mode}, nil
	}
	if _, err := eng.KV(ctx, GuardKV, GuardTTL); err != nil { // created as the other buckets
		return nil, err
	}
	kv, err := eng.JetStream().KeyValue(ctx, GuardKV)
	if err != nil {
		return nil, fmt.Errorf("key-value bucket %s: %w", GuardKV, err)
	}
	return &guard{store: &kvClaims{kv: kv, eng: eng}, keyed: k, mode: mode}, nil
}

package stream

import (
	"context"
	"sync"

	"github.com/capstan-gw/capstan/internal/stream/dedup"
	"github.com/nats-io/nats.go"
)

// One commit of events: per-event de-duplication, then one segment per
// source (segment.go), written as one group (appender.write).
//
// De-duplication. Each event's key (Dedup.hash of keyOf's pair) is
// compared, in this order, with the events before it in the same commit,
// with the keys of the other commits in flight (a keyTable, inflight.go,
// held from before a commit is written until its keys are in the index),
// and with the index. A duplicate is not stored and its Result is its first
// occurrence's: Duplicate once that one is stored, or the same error when
// it failed (so the client retries either). After the write the stored
// events' keys are added to the index with their positions.
//
// Covered. The index records up to which stream sequence it holds every
// event, and start-up catches up from there. With several commits in
// flight their sequences interleave, so a commit's end may only move
// covered to below the lowest sequence any commit still in flight can get:
// each commit notes, when it starts, the highest sequence assigned so far
// (floor); its own sequences are all above it.

// segCommit is one commit of events in flight.
type segCommit struct {
	floor uint64        // every sequence this commit gets is above it
	done  chan struct{} // closed once its results are final and its keys added
}

// keyOwner is the commit in flight that stores a key, and the key's Result.
type keyOwner struct {
	c   *segCommit
	res *Result
}

// segmentMaxBytes is the most bytes of a segment's frame for a server
// whose largest message is maxPayload (headers need the rest).
func segmentMaxBytes(maxPayload int64) int {
	if maxPayload <= 0 {
		maxPayload = 1 << 20
	}
	return int(max(maxPayload-8<<10, 64<<10))
}

// eventBytes is about what an event takes in a frame.
func eventBytes(ev *Event) int {
	return 1 + 8*2 + 4 + len(ev.Type) + len(ev.MessageID) + len(ev.RequestID) + min(len(ev.UserAgent), maxHeaderValue) + len(ev.LiFatID) +
		len(ev.ReplayFor) + len(ev.Trust) + len(ev.DedupID) + len(ev.Doc)
}

// dupOf is event i, whose key an earlier event holds: o, of this commit
// or of another commit in flight.
type dupOf struct {
	i int
	o keyOwner
}

// commitEvents stores one chunk of events (at most MaxBatch), of the
// requests' parts (chunkParts), with what their goroutines prebuilt. It
// calls built once it reads evs no more: its segments are built, and the
// write, the sync and the index read only them and its own scratch.
func (a *appender) commitEvents(ctx context.Context, evs []*Event, res []*Result, parts []reqPart, built func()) {
	sc := getScratch(len(evs))
	defer putScratch(sc)
	keys, keyed, ids, skip := sc.keys, sc.keyed, sc.ids, sc.skip
	for _, rp := range parts {
		for j := range rp.n {
			i, ev := rp.start+j, evs[rp.start+j]
			if rp.pre == nil {
				if src, id, ok := keyOf(ev.Source, ev.MessageID, ev.DedupID); ok {
					keys[i], keyed[i], ids[i] = a.hashKey(src, id), true, id
				}
			} else if rp.pre.keyed[rp.off+j] {
				_, id, _ := keyOf(ev.Source, ev.MessageID, ev.DedupID)
				keys[i], keyed[i], ids[i] = rp.pre.keys[rp.off+j], true, id
			}
		}
	}
	c := &segCommit{done: make(chan struct{})}
	var dups []dupOf
	mine := sc.mine // events whose keys this commit registered
	a.dmu.Lock()
	c.floor = a.maxAssigned
	a.commits[c] = struct{}{}
	for i := range evs {
		if !keyed[i] {
			continue
		}
		// One lookup finds an earlier event of this commit too: its key
		// is in inflight, owned by c, with that event's Result.
		if o, ok := a.inflight.getOrPut(&keys[i], keyOwner{c: c, res: res[i]}); ok {
			dups, skip[i] = append(dups, dupOf{i: i, o: o}), true
			continue
		}
		mine = append(mine, i)
	}
	a.dmu.Unlock()

	// The index: pairs stored by earlier commits (or runs, or replicas).
	if a.dedup != nil && len(mine) > 0 {
		ks := keys // nearly always: every event is keyed and registered
		if len(mine) < len(keys) {
			ks = make([]dedup.Key, len(mine))
			for n, i := range mine {
				ks[n] = keys[i]
			}
		}
		found, err := a.dedup.idx.Check(ks)
		if err != nil {
			a.log.Error("de-duplication index lookup failed; the events are refused", "events", len(evs), "error", err)
			for i := range evs {
				if !skip[i] {
					*res[i], skip[i] = Result{Err: err}, true
				}
			}
		} else {
			for n, pos := range found {
				if pos != 0 && !skip[mine[n]] {
					*res[mine[n]], skip[mine[n]] = Result{Duplicate: true}, true
				}
			}
		}
	}

	// One segment per source (cut at segMax bytes), sources in the order
	// of their first event.
	type seg struct {
		src  string
		evs  []int
		size int
	}
	var segs []*seg
	open := map[string]*seg{} // the last segment of each source
	var last *seg             // the segment of the event before
	for i, ev := range evs {
		if skip[i] {
			continue
		}
		s := last // runs of one source are the rule: no look-up in open
		if s == nil || s.src != ev.Source {
			s = open[ev.Source]
		}
		b := eventBytes(ev)
		if s == nil || len(s.evs) == maxSegmentEvents || s.size+b > a.segMax && len(s.evs) > 0 {
			s = &seg{src: ev.Source}
			if len(segs) == 0 { // nearly always the only one: sized for the rest
				s.evs = sc.segEvs
			}
			segs = append(segs, s)
			open[ev.Source] = s
		}
		s.evs = append(s.evs, i)
		s.size += b
		last = s
	}
	var maxSeq uint64
	addOK := true
	if len(segs) == 0 {
		built()
	} else {
		recs := make([]record, len(segs))
		send := make([]*record, len(segs))
		sres := make([]Result, len(segs))
		sresp := make([]*Result, len(segs))
		frames := make([]*[]byte, len(segs))
		for n, s := range segs {
			sevs, sids := sc.segment(len(s.evs))
			for m, i := range s.evs {
				sevs[m] = evs[i]
				if keyed[i] && sids != nil {
					sids[m] = ids[i]
				} else {
					sids = nil // an event without id: the segment has none either
				}
			}
			var data []byte
			var version string
			frames[n], data, version = a.buildSegment(sevs, s.evs, parts)
			recs[n] = record{Subject: segSubject(s.src), Header: segHeader(s.src, version), Data: data}
			if sids != nil {
				recs[n].MsgID = segmentID(s.src, sids)
			}
			send[n], sresp[n] = &recs[n], &sres[n]
		}
		built()
		a.write(ctx, send, sresp, len(evs))
		addKeys, addPos := sc.addKeys, sc.addPos // the events stored, for the index
		for n, s := range segs {
			r := sres[n]
			if r.Err == nil {
				putFrame(frames[n])
			}
			for m, i := range s.evs {
				switch {
				case r.Err != nil:
					*res[i] = Result{Err: r.Err}
				case r.Duplicate:
					*res[i] = Result{Duplicate: true}
				default:
					stored := Result{Seq: r.Seq, Index: m}
					*res[i] = stored
					if keyed[i] && a.dedup != nil {
						addKeys, addPos = append(addKeys, keys[i]), append(addPos, uint64(stored.Pos()))
					}
				}
			}
			if r.Err == nil && !r.Duplicate {
				maxSeq = max(maxSeq, r.Seq)
			}
		}
		if len(addKeys) > 0 {
			if err := a.dedup.idx.Add(addKeys, addPos, 0); err != nil {
				addOK = false
				a.log.Error("de-duplication index: recording stored events failed; they are recorded at the next start", "events", len(addKeys), "error", err)
			}
		}
	}

	// Done: release the keys, move covered.
	a.dmu.Lock()
	a.maxAssigned = max(a.maxAssigned, maxSeq)
	if !addOK {
		a.coverStuck = true
	}
	if !a.coverStuck {
		a.maxAdded = max(a.maxAdded, maxSeq)
	}
	delete(a.commits, c)
	for _, i := range mine {
		// Still c's: another commit only reads a key it finds here.
		a.inflight.remove(&keys[i])
	}
	covered := a.maxAdded
	for o := range a.commits {
		covered = min(covered, o.floor)
	}
	move := a.dedup != nil && a.dedup.x != nil && !a.dedup.followed.Load() && !a.coverStuck && covered > a.lastCovered
	if move {
		a.lastCovered = covered
	}
	a.dmu.Unlock()
	if move {
		if err := a.dedup.x.Add(nil, nil, covered); err != nil {
			a.log.Warn("de-duplication index: recording its covered position failed", "covered", covered, "error", err)
		}
	}
	close(c.done)

	// Duplicates take their first occurrence's outcome.
	for _, d := range dups {
		<-d.o.c.done // c's own is closed above
		first := d.o.res
		if first.Err != nil {
			*res[d.i] = Result{Err: first.Err}
		} else {
			*res[d.i] = Result{Duplicate: true}
		}
	}
}

// commitScratch holds the per-event slices of a commit, reused by the
// next ones (scratchPool): a commit of 1,000 events would allocate (and
// zero) about 100 KB of them.
type commitScratch struct {
	keys    []dedup.Key // each event's key
	keyed   []bool      // whether it has one
	ids     []string    // its id, when keyed
	skip    []bool      // not stored by this commit
	mine    []int       // empty, for the events whose keys the commit registered
	segEvs  []int       // empty, for the first segment's events
	addKeys []dedup.Key // empty, for the keys stored
	addPos  []uint64    // and their positions
	sevs    []*Event    // one segment's events
	sids    []string    // and ids
}

var scratchPool sync.Pool

// getScratch returns a commitScratch for n events: keys, keyed, ids and
// skip of length n (keyed and skip false), the others empty with room for
// n.
func getScratch(n int) *commitScratch {
	sc, _ := scratchPool.Get().(*commitScratch)
	if sc == nil || cap(sc.keys) < n {
		c := max(n, 100)
		sc = &commitScratch{
			keys: make([]dedup.Key, c), keyed: make([]bool, c), ids: make([]string, c), skip: make([]bool, c),
			mine: make([]int, 0, c), segEvs: make([]int, 0, c),
			addKeys: make([]dedup.Key, 0, c), addPos: make([]uint64, 0, c),
			sevs: make([]*Event, c), sids: make([]string, c),
		}
	}
	sc.keys, sc.keyed, sc.ids, sc.skip = sc.keys[:n], sc.keyed[:n], sc.ids[:n], sc.skip[:n]
	return sc
}

// segment returns sc's slices for the events of one segment of n events
// and their ids, to fill.
func (sc *commitScratch) segment(n int) ([]*Event, []string) {
	return sc.sevs[:n], sc.sids[:n]
}

// putScratch gives sc back once its commit is done with it, referring to
// no event: the requests' memory is not kept alive.
func putScratch(sc *commitScratch) {
	clear(sc.keyed)
	clear(sc.ids)
	clear(sc.skip)
	clear(sc.sevs)
	clear(sc.sids)
	scratchPool.Put(sc)
}

// framePool holds segment frames (*[]byte) for reuse, plain or compressed,
// so that a commit does not allocate (and zero) a new array of the
// segment's size, about 85 KB plain for a request of 100 events.
//
// A frame goes back only once its segment is acknowledged (its Result has
// no error): until then nats.go may still read it. nats.go copies a
// message into the connection's write buffer while publishing it
// (natsWriter.appendBufs, or its reconnect buffer) and the embedded server
// reads its own copy from the connection; only the *nats.Msg that
// jetstream.PublishMsgAsync keeps in the PubAckFuture, to publish again
// after a "no responders", still refers to the frame, and nats.go drops
// it from its pending acknowledgements before it delivers the ack. A
// segment that failed or timed out may still be retried, so its frame is
// left to the garbage collector. The atomic batches of an external cluster
// use PublishMsg and RequestMsg, which copy the message before returning.
var framePool sync.Pool

// getFrame returns an empty frame from the pool, or a new one.
func getFrame() *[]byte {
	if f, ok := framePool.Get().(*[]byte); ok {
		return f
	}
	return new([]byte)
}

// putFrame gives f back to the pool; nothing may refer to its array
// afterwards.
func putFrame(f *[]byte) {
	*f = (*f)[:0]
	framePool.Put(f)
}

// hashKey returns the de-duplication key of (src, id), keyOf's pair.
func (a *appender) hashKey(src, id string) dedup.Key {
	if a.dedup != nil {
		return a.dedup.hash(src, id)
	}
	return dedup.HashKey(nil, src, id)
}

// segHeader returns the headers of a segment of source whose data is of
// the given version (segVersion, segVersionS2).
func segHeader(source, version string) nats.Header {
	return nats.Header{headerSeg: []string{version}, headerSource: []string{source}}
}

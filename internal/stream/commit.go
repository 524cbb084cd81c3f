package stream

import (
	"context"

	"github.com/capstan-gw/capstan/internal/stream/dedup"
	"github.com/nats-io/nats.go"
)

// One commit of events: per-event de-duplication, then one segment per
// source (segment.go), written as one group (appender.write).
//
// De-duplication. Each event's key (Dedup.key) is compared, in this order,
// with the events before it in the same commit, with the keys of the other
// commits in flight (a map held from before a commit is written until its
// keys are in the index), and with the index. A duplicate is not stored and
// its Result is its first occurrence's: Duplicate once that one is stored,
// or the same error when it failed (so the client retries either). After
// the write the stored events' keys are added to the index with their
// positions.
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

// dupOf is an event whose key an earlier event holds: in this commit (j),
// or in another commit in flight (o).
type dupOf struct {
	i int
	j int
	o keyOwner
}

// eventCommit is one commit of events between its phases: registered and
// published (startEvents), then, once a sync made it durable, its results
// and index entries (finish), then its duplicates' outcomes (settleDups).
type eventCommit struct {
	c     *segCommit
	evs   []*Event
	res   []*Result
	keys  []dedup.Key
	keyed []bool
	mine  []int   // events whose keys this commit registered
	dups  []dupOf // events whose keys an earlier one holds
	segs  []*eventSeg
	sres  []Result  // one per segment
	sresp []*Result // pointers to sres, what the sync may fail
}

// eventSeg is one segment of a commit: the indexes of its events.
type eventSeg struct {
	src  string
	evs  []int
	size int
}

// startEvents starts the commit of one chunk of events (at most MaxBatch):
// it registers their keys, looks them up in the index and publishes the
// events not found, one segment per source. They are durable, and final,
// only after a sync (on the embedded engine) and finish.
func (a *appender) startEvents(ctx context.Context, evs []*Event, res []*Result) *eventCommit {
	e := &eventCommit{
		c:     &segCommit{done: make(chan struct{})},
		evs:   evs,
		res:   res,
		keys:  make([]dedup.Key, len(evs)),
		keyed: make([]bool, len(evs)),
	}
	for i, ev := range evs {
		e.keys[i], e.keyed[i] = a.key(ev)
	}
	skip := make([]bool, len(evs))
	local := make(map[dedup.Key]int, len(evs))
	a.dmu.Lock()
	e.c.floor = a.maxAssigned
	a.commits[e.c] = struct{}{}
	for i := range evs {
		if !e.keyed[i] {
			continue
		}
		k := e.keys[i]
		if j, ok := local[k]; ok {
			e.dups, skip[i] = append(e.dups, dupOf{i: i, j: j}), true
			continue
		}
		if o, ok := a.inflight[k]; ok {
			e.dups, skip[i] = append(e.dups, dupOf{i: i, j: -1, o: o}), true
			continue
		}
		local[k] = i
		a.inflight[k] = keyOwner{c: e.c, res: res[i]}
		e.mine = append(e.mine, i)
	}
	a.dmu.Unlock()

	// The index: pairs stored by earlier commits (or runs, or replicas).
	if a.dedup != nil && len(e.mine) > 0 {
		ks := make([]dedup.Key, len(e.mine))
		for n, i := range e.mine {
			ks[n] = e.keys[i]
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
				if pos != 0 && !skip[e.mine[n]] {
					*res[e.mine[n]], skip[e.mine[n]] = Result{Duplicate: true}, true
				}
			}
		}
	}

	// One segment per source (cut at segMax bytes), sources in the order
	// of their first event.
	open := map[string]*eventSeg{}
	for i, ev := range evs {
		if skip[i] {
			continue
		}
		s := open[ev.Source]
		if b := eventBytes(ev); s == nil || len(s.evs) == maxSegmentEvents || s.size+b > a.segMax && len(s.evs) > 0 {
			s = &eventSeg{src: ev.Source}
			e.segs = append(e.segs, s)
			open[ev.Source] = s
		}
		s.evs = append(s.evs, i)
		s.size += eventBytes(ev)
	}
	if len(e.segs) == 0 {
		return e
	}
	recs := make([]record, len(e.segs))
	send := make([]*record, len(e.segs))
	e.sres = make([]Result, len(e.segs))
	e.sresp = make([]*Result, len(e.segs))
	for n, s := range e.segs {
		sevs := make([]*Event, len(s.evs))
		ids := make([]string, len(s.evs))
		for m, i := range s.evs {
			sevs[m] = evs[i]
			if _, id, ok := keyOf(evs[i].Source, evs[i].MessageID, evs[i].DedupID); ok && ids != nil {
				ids[m] = id
			} else {
				ids = nil // an event without id: the segment has none either
			}
		}
		recs[n] = record{Subject: segSubject(s.src), Header: segHeader(s.src), Data: encodeSegment(sevs)}
		if ids != nil {
			recs[n].MsgID = segmentID(s.src, ids)
		}
		send[n], e.sresp[n] = &recs[n], &e.sres[n]
	}
	a.publish(ctx, send, e.sresp)
	return e
}

// finish completes a commit whose segments are durable (or failed): each
// event gets its segment's result, the stored events' keys go into the
// index, the commit's keys are released and covered moves.
func (a *appender) finish(e *eventCommit) {
	var (
		maxSeq uint64
		added  []int // events stored by this commit, for the index
	)
	addOK := true
	for n, s := range e.segs {
		r := e.sres[n]
		for m, i := range s.evs {
			switch {
			case r.Err != nil:
				*e.res[i] = Result{Err: r.Err}
			case r.Duplicate:
				*e.res[i] = Result{Duplicate: true}
			default:
				*e.res[i] = Result{Seq: r.Seq, Index: m}
				if e.keyed[i] {
					added = append(added, i)
				}
			}
		}
		if r.Err == nil && !r.Duplicate {
			maxSeq = max(maxSeq, r.Seq)
		}
	}
	if a.dedup != nil && len(added) > 0 {
		ks := make([]dedup.Key, len(added))
		pos := make([]uint64, len(added))
		for n, i := range added {
			ks[n], pos[n] = e.keys[i], uint64(e.res[i].Pos())
		}
		if err := a.dedup.idx.Add(ks, pos, 0); err != nil {
			addOK = false
			a.log.Error("de-duplication index: recording stored events failed; they are recorded at the next start", "events", len(ks), "error", err)
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
	delete(a.commits, e.c)
	for _, i := range e.mine {
		if o := a.inflight[e.keys[i]]; o.c == e.c {
			delete(a.inflight, e.keys[i])
		}
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
	close(e.c.done)
}

// settleDups gives each duplicate its first occurrence's outcome, waiting
// for the commit that holds it. Every commit of the caller's group is
// finished first, so no two groups wait for each other: a commit only
// waits for commits registered before it.
func (e *eventCommit) settleDups() {
	for _, d := range e.dups {
		var first *Result
		if d.j >= 0 {
			first = e.res[d.j]
		} else {
			<-d.o.c.done
			first = d.o.res
		}
		if first.Err != nil {
			*e.res[d.i] = Result{Err: first.Err}
		} else {
			*e.res[d.i] = Result{Duplicate: true}
		}
	}
}

// key returns ev's de-duplication key; false for an event without one.
func (a *appender) key(ev *Event) (dedup.Key, bool) {
	if a.dedup != nil {
		return a.dedup.key(ev.Source, ev.MessageID, ev.DedupID)
	}
	src, id, ok := keyOf(ev.Source, ev.MessageID, ev.DedupID)
	if !ok {
		return dedup.Key{}, false
	}
	return dedup.HashKey(nil, src, id), true
}

// segHeader returns the headers of a segment of source.
func segHeader(source string) nats.Header {
	return nats.Header{headerSeg: []string{segVersion}, headerSource: []string{source}}
}

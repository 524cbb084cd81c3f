package stream

import (
	"encoding/binary"
	"sync"

	"github.com/capstan-gw/capstan/internal/stream/dedup"
	"github.com/klauspost/compress/s2"
)

// A request's share of its commit, built before it queues.
//
// Under batches the two commit loops are what requests wait for (busy ~95%
// of the time, docs/storage.md "Batches at c=32"), and a loop hashed each
// event's key, encoded its record and compressed the segment one event
// after the other, though none of that depends on the order of commits. A
// request of prebuildMin events or more now does it in its own goroutine
// before it queues (appender.prebuild), in parallel with the others: its
// events' keys, and their records (appendRecords) as one S2 block, a part.
// A commit then joins the parts of a segment with s2.ConcatBlocks, which
// copies them: the frame a segment holds, its segment boundaries and its
// Nats-Msg-Id (segmentID) are those a commit built alone, only the
// compressed bytes differ (each part is compressed on its own). What needs
// the order stays in the loop: the keys in flight, the index, the segments'
// cut, their ids, the write, the sync and the index's Add.
//
// A part serves only whole: when a segment does not hold every event of
// the request (a duplicate left out, a cut inside it), the commit encodes
// that request's events it holds as it did before (buildSegment).

// prebuildMin is the fewest events of a request that its goroutine
// prebuilds. Single events are not: a part compressed alone compresses
// less, and a request that finds the store idle commits in its own
// goroutine anyway (commitHere).
const prebuildMin = 16

// prebuilt is what a request's goroutine computed of its events.
type prebuilt struct {
	keys  []dedup.Key // each event's key (keyOf's pair, hashed), when keyed
	keyed []bool
	// part is the events' records (appendRecords), compressed as one S2
	// block when s2, else plain; nil when not built (events of several
	// sources, or more bytes than one segment holds).
	part  []byte
	s2    bool
	plain int      // the length of the records, plain
	frame *[]byte  // part's array, from framePool
	evs   []*Event // scratch: the events, for appendRecords
}

var prebuiltPool sync.Pool

// prebuild returns evs' prebuilt share, or nil for a request of fewer
// than prebuildMin events or more than one commit holds.
func (a *appender) prebuild(evs []Event) *prebuilt {
	if len(evs) < prebuildMin || len(evs) > a.cfg.MaxBatch {
		return nil
	}
	pb, _ := prebuiltPool.Get().(*prebuilt)
	if pb == nil || cap(pb.keys) < len(evs) {
		c := max(len(evs), 100)
		pb = &prebuilt{keys: make([]dedup.Key, c), keyed: make([]bool, c), evs: make([]*Event, c)}
	}
	n := len(evs)
	pb.keys, pb.keyed, pb.evs = pb.keys[:n], pb.keyed[:n], pb.evs[:n]
	src, one := evs[0].Source, true
	for i := range evs {
		ev := &evs[i]
		if s, id, ok := keyOf(ev.Source, ev.MessageID, ev.DedupID); ok {
			pb.keys[i], pb.keyed[i] = a.hashKey(s, id), true
		}
		one = one && ev.Source == src
		pb.evs[i] = ev
	}
	bound := recordsBound(pb.evs)
	if !one || bound > a.segMax {
		clear(pb.evs)
		return pb
	}
	plain := getFrame()
	*plain = appendRecords(growFrame((*plain)[:0], bound), pb.evs)
	clear(pb.evs)
	pb.plain, pb.s2 = len(*plain), !a.eng.cfg.PlainSegments
	if !pb.s2 {
		pb.part, pb.frame = *plain, plain
		return pb
	}
	pb.frame = getFrame()
	pb.part = s2Block(pb.frame, *plain)
	putFrame(plain)
	return pb
}

// s2Block compresses src as one S2 block into f's array (grown when too
// small) and returns it.
func s2Block(f *[]byte, src []byte) []byte {
	if n := s2.MaxEncodedLen(len(src)); cap(*f) < n {
		*f = make([]byte, 0, frameCap(n))
	}
	*f = s2.Encode((*f)[:cap(*f)], src)
	return *f
}

// release gives pb back for another request once no commit reads it; nil
// is a no-op.
func (pb *prebuilt) release() {
	if pb == nil {
		return
	}
	if pb.frame != nil {
		putFrame(pb.frame)
	}
	clear(pb.keyed)
	pb.part, pb.frame = nil, nil
	prebuiltPool.Put(pb)
}

// reqPart is one request's events in a commit's chunk: the chunk's events
// start to start+n are the request's from its off'th on, and pre is what
// its goroutine prebuilt (nil: nothing).
type reqPart struct {
	pre           *prebuilt
	start, n, off int
}

// whole reports whether rp's request's prebuilt part may serve: rp holds
// every event of the request, and the part is of the kind the engine
// stores (compressed or plain).
func (rp *reqPart) whole(s2 bool) bool {
	return rp.pre != nil && rp.pre.part != nil && rp.pre.s2 == s2 && rp.off == 0 && rp.n == len(rp.pre.keys)
}

// chunkParts returns the parts of reqs' events start to end (of all
// their events in order), for commitEvents.
func chunkParts(reqs []*pending, start, end int) []reqPart {
	var parts []reqPart
	at := 0 // the first event of reqs[i]
	for _, p := range reqs {
		n := len(p.evs)
		if at+n > start && at < end {
			from, to := max(start, at), min(end, at+n)
			parts = append(parts, reqPart{pre: p.pre, start: from - start, n: to - from, off: from - at})
		}
		at += n
	}
	return parts
}

// buildSegment returns the data and version of the segment of sevs, the
// chunk's events idx (increasing), in a frame from framePool: the frame
// a commit builds of them (appendSegment, then Engine.segmentData), with
// the records of each request whose events it holds all made of its
// prebuilt part.
func (a *appender) buildSegment(sevs []*Event, idx []int, parts []reqPart) (*[]byte, []byte, string) {
	compress := !a.eng.cfg.PlainSegments
	type piece struct {
		m0, m1 int // sevs[m0:m1]
		pre    *prebuilt
	}
	var pieces []piece
	m := 0
	for k := range parts {
		rp := &parts[k]
		if !rp.whole(compress) {
			continue
		}
		for m < len(idx) && idx[m] < rp.start {
			m++
		}
		if m+rp.n <= len(idx) && idx[m] == rp.start && idx[m+rp.n-1] == rp.start+rp.n-1 {
			pieces = append(pieces, piece{m0: m, m1: m + rp.n, pre: rp.pre})
			m += rp.n
		}
	}
	if len(pieces) == 0 {
		return a.wholeSegment(sevs)
	}
	if !compress {
		f := getFrame()
		b := growFrame((*f)[:0], segmentBound(sevs))
		b = binary.AppendUvarint(b, uint64(len(sevs)))
		m = 0
		for _, pc := range pieces {
			b = appendRecords(b, sevs[m:pc.m0])
			b = append(b, pc.pre.part...)
			m = pc.m1
		}
		*f = appendRecords(b, sevs[m:])
		return f, *f, segVersion
	}
	var count [binary.MaxVarintLen64]byte
	blocks := [][]byte{s2.Encode(nil, binary.AppendUvarint(count[:0], uint64(len(sevs))))}
	plainLen := uvarintLen(uint64(len(sevs)))
	var held []*[]byte // the runs' frames, plain and compressed
	run := func(evs []*Event) {
		if len(evs) == 0 {
			return
		}
		p, c := getFrame(), getFrame()
		*p = appendRecords(growFrame((*p)[:0], recordsBound(evs)), evs)
		plainLen += len(*p)
		blocks = append(blocks, s2Block(c, *p))
		held = append(held, p, c)
	}
	m = 0
	for _, pc := range pieces {
		run(sevs[m:pc.m0])
		blocks = append(blocks, pc.pre.part)
		plainLen += pc.pre.plain
		m = pc.m1
	}
	run(sevs[m:])
	f := getFrame()
	data, err := s2.ConcatBlocks((*f)[:0], blocks...)
	for _, h := range held {
		putFrame(h)
	}
	if err != nil || plainLen < minCompressed || len(data) >= plainLen {
		// Stored plain, as compressFrame would (err: not reached, the
		// blocks are S2's own).
		*f = appendSegment((*f)[:0], sevs)
		return f, *f, segVersion
	}
	*f = data
	return f, data, segVersionS2
}

// wholeSegment is buildSegment for a segment built in the commit alone.
func (a *appender) wholeSegment(sevs []*Event) (*[]byte, []byte, string) {
	plain := getFrame()
	*plain = appendSegment((*plain)[:0], sevs)
	frame := getFrame()
	data, version := a.eng.segmentData((*frame)[:0], *plain)
	if version == segVersion {
		frame, plain = plain, frame
	} else {
		*frame = data // to the pool with its array, grown or not
	}
	putFrame(plain) // segmentData copied it, or it is unused
	return frame, data, version
}

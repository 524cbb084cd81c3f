package stream

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Segments, the storage format of EVENTS since issue 22 (docs/storage.md).
//
// One commit of the Writer stores, per source, one message on subject
// events.<source>.seg: a segment, holding that source's events of the
// commit in order. Its header Capstan-Seg gives the frame's version (1);
// its data is the frame:
//
//	uvarint count (1 to maxSegmentEvents)
//	count times:
//	  byte    flags (0; readers refuse others)
//	  8 times uvarint length + bytes: type, messageId, request id,
//	          user agent, li_fat_id, replay-for, trust, de-duplication id
//	  uvarint length + bytes: the normalised JSON document
//
// Readers walk the frame; no JSON is parsed to find an event. The
// segment's Nats-Msg-Id is a hash of its source and the ordered
// de-duplication ids of its events, so that JetStream itself drops a
// whole-request retry inside its (short) duplicate window; per-event
// de-duplication is the index's (dedup.go). Messages on
// events.<source>.<type> without the header are per-event messages of
// older releases, read as they always were (format.go).
const (
	headerSeg        = "Capstan-Seg"
	segVersion       = "1"
	segToken         = "seg" // the last subject token of a segment
	maxSegmentEvents = 1 << 16
	segFields        = 8
)

// Pos is an event's position in EVENTS packed in one number: its
// message's stream sequence times 65,536 plus its index in the segment
// (0 for a per-event message of an older release). Positions order as
// the stream does.
type Pos uint64

// MakePos returns the position of event index idx of the message at seq.
func MakePos(seq uint64, idx int) Pos { return Pos(seq<<16 | uint64(idx&0xffff)) }

// Seq is the stream sequence of the message that holds the event.
func (p Pos) Seq() uint64 { return uint64(p) >> 16 }

// Index is the event's index in its segment.
func (p Pos) Index() int { return int(p & 0xffff) }

// String prints the position "seq:idx".
func (p Pos) String() string {
	return strconv.FormatUint(p.Seq(), 10) + ":" + strconv.Itoa(p.Index())
}

// ParsePos reads a position printed by Pos.String ("123:4") or a bare
// stream sequence ("123", index 0, as events before segments have).
func ParsePos(s string) (Pos, error) {
	seqStr, idxStr, hasIdx := strings.Cut(s, ":")
	seq, err := strconv.ParseUint(seqStr, 10, 64)
	if err != nil || seq == 0 || seq >= 1<<48 {
		return 0, fmt.Errorf("event position %q: want a stream sequence (1, 2, …) or seq:index", s)
	}
	idx := 0
	if hasIdx {
		n, err := strconv.ParseUint(idxStr, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("event position %q: the index after ':' must be 0 to 65535", s)
		}
		idx = int(n)
	}
	return MakePos(seq, idx), nil
}

// isSegment reports whether a stored message is a segment.
func isSegment(h nats.Header) bool { return h.Get(headerSeg) != "" }

// segSubject returns the subject of source's segments.
func segSubject(source string) string { return EventsSubject + "." + source + "." + segToken }

// appendString appends s with its uvarint length.
func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encodeSegment returns the frame of evs (all of one source, at most
// maxSegmentEvents).
func encodeSegment(evs []*Event) []byte { return appendSegment(nil, evs) }

// segmentBound is the most bytes the frame of evs takes: exact unless a
// header value is cut or cleaned (headerValue), which only shortens it.
func segmentBound(evs []*Event) int {
	n := uvarintLen(uint64(len(evs)))
	for _, ev := range evs {
		n += 1 + stringSize(len(ev.Type)) + stringSize(len(ev.MessageID)) +
			stringSize(len(ev.RequestID)) + stringSize(len(ev.UserAgent)) +
			stringSize(len(ev.LiFatID)) + stringSize(len(ev.ReplayFor)) +
			stringSize(len(ev.Trust)) + stringSize(len(ev.DedupID)) + stringSize(len(ev.Doc))
	}
	return n
}

// stringSize is what a string of l bytes takes in a frame: its uvarint
// length and its bytes.
func stringSize(l int) int { return uvarintLen(uint64(l)) + l }

// uvarintLen is the length of v as a uvarint.
func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

// appendSegment appends the frame of evs to dst; when dst has not room
// for it, the frame gets a new array of segmentBound's size, so that it
// is never copied as it grows.
func appendSegment(dst []byte, evs []*Event) []byte {
	b := dst
	if n := segmentBound(evs); cap(b)-len(b) < n {
		b = make([]byte, len(dst), len(dst)+n)
		copy(b, dst)
	}
	b = binary.AppendUvarint(b, uint64(len(evs)))
	for _, ev := range evs {
		b = append(b, 0)
		b = appendString(b, ev.Type)
		b = appendString(b, ev.MessageID)
		b = appendString(b, headerValue(ev.RequestID))
		b = appendString(b, headerValue(ev.UserAgent))
		b = appendString(b, headerValue(ev.LiFatID))
		b = appendString(b, headerValue(ev.ReplayFor))
		b = appendString(b, headerValue(ev.Trust))
		b = appendString(b, ev.DedupID)
		b = binary.AppendUvarint(b, uint64(len(ev.Doc)))
		b = append(b, ev.Doc...)
	}
	return b
}

// segEvent is one event of a decoded segment: rec aliases the frame from
// the event's first field to the end of its document, and the spans locate
// the fields and the document in it.
type segEvent struct {
	rec []byte
	f   [segFields]span // type, messageId, request id, user agent, li_fat_id, replay-for, trust, dedup id
	doc span
}

// span is a part of segEvent.rec, [off, end).
type span struct{ off, end int }

// field returns field j (fType…) of the event, aliasing the frame.
func (se *segEvent) field(j int) []byte { return se.rec[se.f[j].off:se.f[j].end] }

// Indexes into segEvent.f.
const (
	fType = iota
	fMessageID
	fRequestID
	fUserAgent
	fLiFatID
	fReplayFor
	fTrust
	fDedupID
)

// errBadSegment wraps every reason a frame does not decode.
var errBadSegment = errors.New("bad event segment")

// decodeSegment reads a frame of version 1. It never panics: a damaged or
// foreign frame gives an error wrapping errBadSegment.
func decodeSegment(data []byte) ([]segEvent, error) {
	count, n := uvarint(data)
	if n <= 0 {
		return nil, fmt.Errorf("%w: no event count", errBadSegment)
	}
	data = data[n:]
	// Each event takes at least 1+8+1 bytes: a count beyond that is damage.
	if count == 0 || count > maxSegmentEvents || count > uint64(len(data))/(2+segFields) {
		return nil, fmt.Errorf("%w: event count %d does not fit the frame", errBadSegment, count)
	}
	evs := make([]segEvent, count)
	var rec []byte // the frame from the event being read: take's spans are into it
	take := func(what string, i int) (span, error) {
		l, n := uvarint(data)
		if n <= 0 || l > uint64(len(data)-n) {
			return span{}, fmt.Errorf("%w: event %d: %s overruns the frame", errBadSegment, i, what)
		}
		off := len(rec) - len(data) + n
		data = data[n+int(l):]
		return span{off, off + int(l)}, nil
	}
	for i := range evs {
		if len(data) == 0 {
			return nil, fmt.Errorf("%w: event %d missing", errBadSegment, i)
		}
		if data[0] != 0 {
			return nil, fmt.Errorf("%w: event %d has unknown flags %#x", errBadSegment, i, data[0])
		}
		data = data[1:]
		rec = data
		se := &evs[i]
		var err error
		for j := range segFields {
			if se.f[j], err = take("a field", i); err != nil {
				return nil, err
			}
		}
		if se.doc, err = take("the document", i); err != nil {
			return nil, err
		}
		se.rec = rec[:se.doc.end:se.doc.end]
		if !validToken(string(se.field(fType))) {
			return nil, fmt.Errorf("%w: event %d: type %q is not a subject token", errBadSegment, i, se.field(fType))
		}
	}
	if len(data) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last event", errBadSegment, len(data))
	}
	return evs, nil
}

// uvarint reads a uvarint in its shortest form (one frame, one encoding);
// n <= 0 when there is none.
func uvarint(b []byte) (v uint64, n int) {
	v, n = binary.Uvarint(b)
	if n > 1 && b[n-1] == 0 {
		return 0, -1 // a longer form than needed
	}
	return v, n
}

// segmentID returns the Nats-Msg-Id of a segment of source holding events
// with the given de-duplication ids, in order.
//
// The hash reads the ids through one buffer, written to it when full:
// converting each id for Write allocated a copy of every id longer than
// 32 bytes, one allocation per event (41% of ingest's allocations).
func segmentID(source string, ids []string) string {
	h := sha256.New()
	buf := make([]byte, 0, segIDBuf)
	buf = append(buf, source...)
	for _, id := range ids {
		if len(buf)+binary.MaxVarintLen64+len(id) > cap(buf) {
			h.Write(buf)
			buf = buf[:0]
		}
		buf = binary.AppendUvarint(buf, uint64(len(id)))
		buf = append(buf, id...)
	}
	h.Write(buf)
	var sum [sha256.Size]byte
	return "seg:" + source + ":" + hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// segIDBuf is the size of segmentID's buffer.
const segIDBuf = 4 << 10

// sourceOfSubject returns the source token of an events subject.
func sourceOfSubject(subj string) string {
	rest := strings.TrimPrefix(subj, EventsSubject+".")
	if i := strings.LastIndexByte(rest, '.'); i >= 0 {
		return rest[:i]
	}
	return ""
}

// decodeMessage calls fn for each event of a stored EVENTS message, a
// segment or a per-event message, in order. A segment that does not decode
// gives an error and no event.
func decodeMessage(seq uint64, subj string, h nats.Header, data []byte, at time.Time, fn func(Stored) error) error {
	if !isSegment(h) {
		return fn(decodeStored(seq, subj, h, data, at))
	}
	if v := h.Get(headerSeg); v != segVersion {
		return fmt.Errorf("%w: message %d: version %q (a newer capstan wrote it)", errBadSegment, seq, v)
	}
	evs, err := decodeSegment(data)
	if err != nil {
		return fmt.Errorf("message %d: %w", seq, err)
	}
	src := h.Get(headerSource)
	if src == "" {
		src = sourceOfSubject(subj)
	}
	for i := range evs {
		if err := fn(evs[i].stored(seq, i, subj, src, at)); err != nil {
			return err
		}
	}
	return nil
}

// stored returns the event as read. Its strings and its document's text
// (Stored.DocString) share one copy of the event's bytes, one allocation
// instead of one per field and another when the document is parsed; Doc
// aliases the frame.
func (se *segEvent) stored(seq uint64, idx int, subj, src string, at time.Time) Stored {
	text := string(se.rec)
	f := func(j int) string { return text[se.f[j].off:se.f[j].end] }
	return Stored{
		Seq: seq, Index: idx, Subject: subj, Source: src, Type: f(fType),
		MessageID: f(fMessageID), StoredAt: at, Doc: se.rec[se.doc.off:se.doc.end:se.doc.end],
		RequestID: f(fRequestID), UserAgent: f(fUserAgent), LiFatID: f(fLiFatID),
		ReplayFor: f(fReplayFor), Trust: f(fTrust), DedupID: f(fDedupID),
		docText: text[se.doc.off:se.doc.end],
	}
}

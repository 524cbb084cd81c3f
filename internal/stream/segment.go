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
	"unsafe"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go"
)

// Segments, the storage format of EVENTS since issue 22 (docs/storage.md).
//
// One commit of the Writer stores, per source, one message on subject
// events.<source>.seg: a segment, holding that source's events of the
// commit in order. Its header Capstan-Seg gives the frame's version (1 or
// 2); the data of version 1 is the frame, that of version 2 the frame
// compressed as one S2 block (github.com/klauspost/compress/s2, block
// format: JetStream checksums every message already). The frame is:
//
//	uvarint count (1 to maxSegmentEvents)
//	count times:
//	  byte    flags (0; readers refuse others)
//	  8 times uvarint length + bytes: type, messageId, request id,
//	          user agent, li_fat_id, replay-for, trust, de-duplication id
//	  uvarint length + bytes: the normalised JSON document
//
// Writers compress a frame unless it does not shrink (compressFrame):
// 100 normalised events compress about 7 times, which the server then
// copies, hashes and writes 7 times less of, for about 0.3 CPU-µs per
// event to compress and 0.1 to decompress. Readers walk the frame; no
// JSON is parsed to find an event. The
// segment's Nats-Msg-Id is a hash of its source and the ordered
// de-duplication ids of its events, so that JetStream itself drops a
// whole-request retry inside its (short) duplicate window; per-event
// de-duplication is the index's (dedup.go). Messages on
// events.<source>.<type> without the header are per-event messages of
// older releases, read as they always were (format.go).
const (
	headerSeg        = "Capstan-Seg"
	segVersion       = "1"   // a plain frame
	segVersionS2     = "2"   // a frame compressed as one S2 block
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
	return uvarintLen(uint64(len(evs))) + recordsBound(evs)
}

// recordsBound is segmentBound without the count: the most bytes the
// records of evs take (appendRecords).
func recordsBound(evs []*Event) int {
	n := 0
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
// for it, the frame gets a new array of at least segmentBound's size
// (frameCap), so that it is never copied as it grows.
func appendSegment(dst []byte, evs []*Event) []byte {
	b := growFrame(dst, segmentBound(evs))
	b = binary.AppendUvarint(b, uint64(len(evs)))
	return appendRecords(b, evs)
}

// growFrame returns dst with room for n more bytes: dst itself, or its
// bytes copied into a new array of frameCap's size, so that a frame is
// never copied as it grows.
func growFrame(dst []byte, n int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	b := make([]byte, len(dst), frameCap(len(dst)+n))
	copy(b, dst)
	return b
}

// appendRecords appends the records of evs, a frame without its count, to
// b, which should have room for them (recordsBound: append would copy it as
// it grows). A frame's records are its events' records one after the
// other, so the records of a run of events encoded on their own
// (prebuild.go) are a part of any frame that holds the run.
func appendRecords(b []byte, evs []*Event) []byte {
	var reqID, ua, lfi cleanHeader
	for _, ev := range evs {
		b = append(b, 0)
		b = appendString(b, ev.Type)
		b = appendString(b, ev.MessageID)
		b = appendString(b, reqID.of(ev.RequestID))
		b = appendString(b, ua.of(ev.UserAgent))
		b = appendString(b, lfi.of(ev.LiFatID))
		b = appendString(b, headerValue(ev.ReplayFor))
		b = appendString(b, headerValue(ev.Trust))
		b = appendString(b, ev.DedupID)
		b = binary.AppendUvarint(b, uint64(len(ev.Doc)))
		b = append(b, ev.Doc...)
	}
	return b
}

// cleanHeader is headerValue of the last value it was given: the events of
// a request share its request id, user agent and li_fat_id, so a segment
// cleans each once per request, not once per event (scanning the same
// user agent for control characters again was 1% of capstan's CPU on
// batches). The same string compares equal without its bytes being read.
type cleanHeader struct{ raw, val string }

// of returns headerValue(s).
func (c *cleanHeader) of(s string) string {
	if s != c.raw {
		c.raw, c.val = s, headerValue(s)
	}
	return c.val
}

// compressFrame appends to dst the data of a segment holding frame and
// returns it with the segment's version: frame compressed (version 2)
// when that shrinks it, else frame itself (version 1, dst unused). dst
// must not overlap frame.
func compressFrame(dst, frame []byte) ([]byte, string) {
	if len(frame) < minCompressed {
		return frame, segVersion
	}
	if n := s2.MaxEncodedLen(len(frame)); n > 0 && cap(dst) < n {
		dst = make([]byte, frameCap(n))
	}
	c := s2.Encode(dst[:cap(dst)], frame)
	if len(c) >= len(frame) {
		return frame, segVersion
	}
	return c, segVersionS2
}

// frameCap is the size of a new array for a frame of n bytes, plain or
// compressed: commits reuse frames (framePool) in either role and of
// every size up to a segment's largest, so the array is of a multiple of
// frameStep bytes and has room for the frame's compressed form (whose
// bound is a little above the frame's size): a frame that held a segment
// of n plain bytes then holds its compressed form, and any segment a few
// events larger, without a new array.
func frameCap(n int) int {
	if m := s2.MaxEncodedLen(n); m > n {
		n = m
	}
	return (n + frameStep - 1) / frameStep * frameStep
}

// frameStep is what frameCap rounds up to.
const frameStep = 64 << 10

// segmentData is compressFrame, unless the engine writes plain segments
// (Config.PlainSegments): then frame itself, version 1.
func (e *Engine) segmentData(dst, frame []byte) ([]byte, string) {
	if e.cfg.PlainSegments {
		return frame, segVersion
	}
	return compressFrame(dst, frame)
}

// minCompressed is the smallest frame compressFrame tries: below it the
// saving is a few bytes (a stored message has ~100 of overhead).
const minCompressed = 256

// maxFrameBytes bounds the frame a compressed segment may claim to hold:
// NATS refuses messages over 64 MB, and writers cut a frame at the
// server's maximum payload, so a larger claim is damage, not a reason
// to allocate.
const maxFrameBytes = 64 << 20

// segmentFrame returns the frame of a segment of the given version whose
// data is data: data itself (version 1) or data decompressed into a new
// array (version 2). It never panics: damage gives an error wrapping
// errBadSegment.
func segmentFrame(version string, data []byte) ([]byte, error) {
	return segmentFrameInto(nil, version, data)
}

// segmentFrameInto is segmentFrame decompressing into dst's array when it
// has room for the frame, else into a new one: a reader that copies each
// event out of the frame (segEvent.fill) reuses one array for every
// message.
func segmentFrameInto(dst []byte, version string, data []byte) ([]byte, error) {
	switch version {
	case segVersion:
		return data, nil
	case segVersionS2:
		n, err := s2.DecodedLen(data)
		if err != nil || n <= 0 || n > maxFrameBytes {
			return nil, fmt.Errorf("%w: compressed frame: bad length (%d, %v)", errBadSegment, n, err)
		}
		if cap(dst) < n {
			dst = make([]byte, n)
		}
		frame, err := s2.Decode(dst[:n], data)
		if err != nil {
			return nil, fmt.Errorf("%w: compressed frame: %v", errBadSegment, err)
		}
		return frame, nil
	}
	return nil, fmt.Errorf("%w: version %q (a newer capstan wrote it)", errBadSegment, version)
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

// decodeSegmentInto reads a frame of version 1 into dst's array (its
// contents are overwritten) when it has room for the frame's events, else
// into a new one. It never panics: a damaged or foreign frame gives an
// error wrapping errBadSegment. Entries of dst
// beyond the frame's events are cleared, and those beyond len(dst) must be
// zero already, so that the array refers to no frame but the last.
func decodeSegmentInto(dst []segEvent, data []byte) ([]segEvent, error) {
	count, n := uvarint(data)
	if n <= 0 {
		return nil, fmt.Errorf("%w: no event count", errBadSegment)
	}
	data = data[n:]
	// Each event takes at least 1+8+1 bytes: a count beyond that is damage.
	if count == 0 || count > maxSegmentEvents || count > uint64(len(data))/(2+segFields) {
		return nil, fmt.Errorf("%w: event count %d does not fit the frame", errBadSegment, count)
	}
	evs := dst[:0]
	if cap(evs) < int(count) {
		evs = make([]segEvent, count)
	} else if len(dst) > int(count) {
		clear(dst[count:]) // they alias an earlier frame: let it go
	}
	evs = evs[:count]
	for i := range evs {
		if len(data) == 0 {
			return nil, fmt.Errorf("%w: event %d missing", errBadSegment, i)
		}
		if data[0] != 0 {
			return nil, fmt.Errorf("%w: event %d has unknown flags %#x", errBadSegment, i, data[0])
		}
		data = data[1:]
		rec := data // the spans are into it
		se := &evs[i]
		for j := range segFields + 1 {
			l, n := uvarint(data)
			if n <= 0 || l > uint64(len(data)-n) {
				what := "a field"
				if j == segFields {
					what = "the document"
				}
				return nil, fmt.Errorf("%w: event %d: %s overruns the frame", errBadSegment, i, what)
			}
			off := len(rec) - len(data) + n
			sp := span{off, off + int(l)}
			if j < segFields {
				se.f[j] = sp
			} else {
				se.doc = sp
			}
			data = data[n+int(l):]
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
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1 // most lengths in a frame
	}
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
	var d msgDecoder
	return d.each(seq, subj, h, data, at, fn)
}

// maxKeptEvents bounds the segment index a msgDecoder keeps for the next
// message: the writer's segments hold at most 1000 events (its MaxBatch).
const maxKeptEvents = 1024

// maxKeptFrame bounds the array a msgDecoder keeps to decompress the next
// message's frame into: writers cut frames at the server's maximum payload
// (1 MB by default, at most 8 MB).
const maxKeptFrame = 8 << 20

// msgDecoder decodes stored EVENTS messages, keeping the index of a
// segment's frame, and the array a compressed frame is decompressed into,
// from one message to the next: a reader that decodes many messages
// allocates them once, and fills its events in place (event) rather than
// copying each through a callback. Nothing it hands out refers to either
// (segEvent.fill copies each event). Its zero value is ready; it is not
// safe for concurrent use.
type msgDecoder struct {
	evs   []segEvent // the segment's events; empty for a per-event message
	frame []byte     // the last compressed frame, decompressed (empty: none kept)
	seq   uint64
	subj  string
	src   string // a segment's source
	h     nats.Header
	data  []byte
	at    time.Time
}

// decode reads a stored message and returns how many events it holds (1
// for a per-event message); event then reads them. A segment that does not
// decode gives an error and no event.
func (d *msgDecoder) decode(seq uint64, subj string, h nats.Header, data []byte, at time.Time) (int, error) {
	d.seq, d.subj, d.h, d.data, d.at = seq, subj, h, data, at
	if cap(d.evs) > maxKeptEvents {
		d.evs = nil // an outsized segment's index is not kept
	}
	if !isSegment(h) {
		clear(d.evs) // they alias an earlier frame
		d.evs = d.evs[:0]
		return 1, nil
	}
	version := h.Get(headerSeg)
	frame, err := segmentFrameInto(d.frame, version, data)
	if version == segVersionS2 && err == nil {
		if d.frame = frame[:0]; cap(frame) > maxKeptFrame {
			d.frame = nil // an outsized frame's array is not kept
		}
	}
	var evs []segEvent
	if err == nil {
		evs, err = decodeSegmentInto(d.evs, frame)
	}
	if err != nil {
		clear(d.evs[:cap(d.evs)]) // some may alias this frame now
		d.evs = d.evs[:0]
		return 0, fmt.Errorf("message %d: %w", seq, err)
	}
	d.evs = evs
	d.src = h.Get(headerSource)
	if d.src == "" {
		d.src = sourceOfSubject(subj)
	}
	return len(evs), nil
}

// event sets s to event i of the message decode read last.
func (d *msgDecoder) event(i int, s *Stored) {
	if len(d.evs) == 0 {
		*s = decodeStored(d.seq, d.subj, d.h, d.data, d.at)
		return
	}
	d.evs[i].fill(s, d.seq, i, d.subj, d.src, d.at)
}

// eachKey calls fn with the index, source, messageId and de-duplication
// id of each event of the message decode read last: what the
// de-duplication index records of it, without copying the rest of the
// event (its document) as event does.
func (d *msgDecoder) eachKey(fn func(i int, source, messageID, dedupID string)) {
	if len(d.evs) == 0 {
		var s Stored
		d.event(0, &s)
		fn(0, s.Source, s.MessageID, s.DedupID)
		return
	}
	for i := range d.evs {
		se := &d.evs[i]
		fn(i, d.src, string(se.field(fMessageID)), string(se.field(fDedupID)))
	}
}

// each calls fn for each event of a stored message (decodeMessage).
func (d *msgDecoder) each(seq uint64, subj string, h nats.Header, data []byte, at time.Time, fn func(Stored) error) error {
	n, err := d.decode(seq, subj, h, data, at)
	if err != nil {
		return err
	}
	for i := range n {
		var s Stored
		d.event(i, &s)
		if err := fn(s); err != nil {
			return err
		}
	}
	return nil
}

// fill sets s to the event as read. Its strings, its document's text
// (Stored.DocString) and Doc share one copy of the event's bytes, one
// allocation instead of one per field and another when the document is
// parsed; nothing refers to the frame, which the decoder reuses, and a
// Stored kept keeps only its event's bytes. It sets every field of s.
func (se *segEvent) fill(s *Stored, seq uint64, idx int, subj, src string, at time.Time) {
	text := string(se.rec)
	f := func(j int) string { return text[se.f[j].off:se.f[j].end] }
	// Field by field: a composite literal would be built aside and copied.
	s.Seq, s.Index, s.Subject, s.Source, s.Type = seq, idx, subj, src, f(fType)
	s.MessageID, s.DedupID, s.StoredAt = f(fMessageID), f(fDedupID), at
	s.Doc = stringBytes(text[se.doc.off:se.doc.end])
	s.RequestID, s.UserAgent, s.LiFatID = f(fRequestID), f(fUserAgent), f(fLiFatID)
	s.ReplayFor, s.Trust = f(fReplayFor), f(fTrust)
	s.DuplicateOf = 0
	s.docText = text[se.doc.off:se.doc.end]
}

// stringBytes returns the bytes of s without a copy, as a slice whose
// capacity is its length (an append copies). Nothing may write to them:
// Stored.Doc is read only (its text is Stored.DocString's too).
func stringBytes(s string) []byte {
	if s == "" {
		return []byte{}
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Request-level error codes (§1.10): the whole request is refused.
const (
	CodeInvalidJSON     = "invalid_json"
	CodeInvalidBody     = "invalid_body"
	CodeInvalidBatch    = "invalid_batch"
	CodePayloadTooLarge = "payload_too_large"
	CodeTooManyItems    = "too_many_items"
)

// RequestError refuses a whole request.
type RequestError struct {
	Code    string
	Message string
}

func (e *RequestError) Error() string { return e.Code + ": " + e.Message }

// Body is a parsed tracking request body. Its methods are not safe for
// concurrent use.
type Body struct {
	// WriteKey is the key found in the body (§1.4 steps 2 and 3), or "".
	WriteKey string
	// Items are the raw events: one for single-event endpoints.
	Items [][]byte
	// Envelope holds the batch-level sentAt, context and integrations.
	Envelope Envelope

	// text is the body's text (after any byte order mark): Items and
	// members are slices and spans of it.
	text []byte
	// depths[i] is how deeply Items[i] nests as it will be stored: the
	// batch's context and integrations, merged into each item, count.
	depths []int
	// items[i] says where members holds the members of Items[i] (and of
	// its context), as checking the body found them, spans of text; nil
	// when not split.
	items   []itemSplit
	members []span
	ctx     []span
	// arena hands out the documents and ids of the events Normalize builds.
	// Its pages of documents go back to their pool at Release.
	arena arena
	// sc is Normalize's working memory, taken from scratchPool at the
	// first event and given back by Release: once per body, not per event.
	sc *scratch
	// events holds the Events that Normalize hands out, events[nev] the
	// next: one slice for the body's events, not one each, reused by
	// later bodies (bodyBufs) once Release is called.
	events []Event
	nev    int
}

// Chunk sizes of an arena: its pages of documents, and the most it
// allocates at once for ids. docChunk is the largest size class of Go's
// allocator (1.26) that holds more than one object per span, 27264
// bytes, three to an 80 KiB span: a chunk of 32 KiB, over the
// small-object limit (32 KiB less a malloc header), was a large object,
// each allocated from the page heap under its lock.
const (
	docChunk = 27264
	idChunk  = 8 << 10
)

// pagePool holds pages of docChunk bytes (*[]byte) that documents are
// built in, given back by Body.Release and reused as they are: a new page
// was allocated and cleared for every 30 or so events (2.7% of capstan's
// CPU on batches), only to be overwritten by the documents, and a page
// used by a request that just finished is still in the CPU's caches.
var pagePool sync.Pool

// arena hands out the stored documents, userIds, anonymousIds and
// messageIds of one body's events from shared memory: pages of documents
// from pagePool, given back when the body is released (the store has
// copied the documents into its segments by then: stream.Writer.Append
// reads nothing of them once it returns), and chunks of ids, one
// allocation per chunk, garbage once nothing refers to them (the ids are
// strings, which may outlive the body). One allocation per event was most
// of ingest's allocations, its document over half of their bytes. A
// document's capacity ends where it does, so appending to one cannot
// overwrite the next.
type arena struct {
	docs  []byte          // the current page from its first unused byte
	pages []*[]byte       // the pages taken from pagePool, for Release
	ids   strings.Builder // the current id chunk (written bytes never change)
	left  int             // events still to normalise, this one included: the id chunk's estimate

	// receivedAt's JSON literal, receivedLit, is the same for every event
	// of a request: formatted once, not once per event; so is that of the
	// envelope's sentAt, sentLit, stored by the events with none of their
	// own.
	receivedAt  time.Time
	receivedLit []byte
	sentAt      time.Time
	sentLit     []byte
}

// received returns the JSON literal of t, an event's receivedAt, formatted
// into sc's buffer when a is nil.
func (a *arena) received(sc *scratch, t time.Time) []byte {
	if a == nil {
		return sc.time(t)
	}
	if a.receivedLit == nil || !a.receivedAt.Equal(t) {
		a.receivedAt, a.receivedLit = t, appendQuotedTime(nil, t)
	}
	return a.receivedLit[:len(a.receivedLit):len(a.receivedLit)]
}

// sent returns the JSON literal of t, the envelope's sentAt, or nil (for
// the caller to format) when a is nil.
func (a *arena) sent(t time.Time) []byte {
	if a == nil {
		return nil
	}
	if a.sentLit == nil || !a.sentAt.Equal(t) {
		a.sentAt, a.sentLit = t, appendQuotedTime(nil, t)
	}
	return a.sentLit[:len(a.sentLit):len(a.sentLit)]
}

// take returns an empty slice with capacity n for a document, in a page
// that may hold an earlier body's bytes beyond its length; a nil arena
// allocates it alone, and so does one for a document larger than a page.
func (a *arena) take(n int) []byte {
	if a == nil || n > docChunk {
		return make([]byte, 0, n)
	}
	if len(a.docs) < n {
		p, _ := pagePool.Get().(*[]byte)
		if p == nil {
			b := make([]byte, docChunk)
			p = &b
		}
		a.pages = append(a.pages, p)
		a.docs = *p
	}
	doc := a.docs[:0:n]
	a.docs = a.docs[n:]
	return doc
}

// release gives a's pages back to pagePool and returns its slice of them,
// empty, for the next body; a has none left, so a second release gives
// nothing back twice.
func (a *arena) release() []*[]byte {
	pages := a.pages
	for _, p := range pages {
		pagePool.Put(p)
	}
	clear(pages)
	a.pages, a.docs = nil, nil
	return pages[:0]
}

// id is decodeString of lit, an id's JSON string (userId, anonymousId,
// messageId), with the string taken from the id chunk when lit has no
// escapes (nearly always); a nil arena decodes it alone.
func (a *arena) id(lit []byte) string {
	if a == nil || len(lit) < 2 || bytes.IndexByte(lit, '\\') >= 0 {
		return decodeString(lit)
	}
	s := lit[1 : len(lit)-1]
	if a.ids.Cap()-a.ids.Len() < len(s) {
		// A new chunk: strings already handed out keep the old one.
		a.ids = strings.Builder{}
		a.ids.Grow(max(len(s), min(idChunk, 2*len(s)*a.left)))
	}
	start := a.ids.Len()
	a.ids.Write(s)
	return a.ids.String()[start:]
}

// bodyBufs are the slices of a Body that Release gives back for reuse.
type bodyBufs struct {
	elems   [][]byte
	depths  []int
	items   []itemSplit
	members []span
	ctx     []span
	pages   []*[]byte
	events  []Event
}

// maxPooledEvents is the most Events a released body's slice of them may
// hold to go back to the pool: a rare batch of thousands does not keep
// its slice there.
const maxPooledEvents = 1000

var bodyPool = sync.Pool{New: func() any { return new(bodyBufs) }}

// Release gives the body's buffers back for reuse by later requests,
// the pages that the documents of its events were built in and the Events
// themselves too. The body, its Items and the events Normalize returned
// must not be used afterwards (later bodies overwrite them, JSON and all);
// the strings of an event's ids, copied out of it, stay valid.
// Like scratch, the pooled elements still point into the request's bytes
// until their next use; the buffers of an unusually large batch (over
// 16,384 members) are dropped.
func (b *Body) Release() {
	if b == nil {
		return
	}
	if b.sc != nil {
		b.sc.release()
		b.sc = nil
	}
	pages := b.arena.release()
	if cap(b.members) > 1<<14 || cap(b.ctx) > 1<<10 {
		return
	}
	// The Events handed out are cleared: the pool keeps no id chunk alive.
	clear(b.events[:b.nev])
	if cap(b.events) > maxPooledEvents {
		b.events = nil
	}
	bufs := &bodyBufs{elems: b.Items[:0], depths: b.depths[:0], items: b.items[:0], members: b.members[:0], ctx: b.ctx[:0],
		pages: pages, events: b.events[:0]}
	*b = Body{}
	bodyPool.Put(bufs)
}

// split returns a split that reuses buffers given back by Release.
func (bb *bodyBufs) split(obj object) split {
	return split{obj: obj, elems: bb.elems, depths: bb.depths, items: bb.items, members: bb.members, ctx: bb.ctx}
}

// Normalize is [Normalize] of Items[i] with the members that checking the
// body found, so that the item is not scanned again. The events of a body
// share their allocations (Events, ids by up to 8 KB): one event kept
// keeps those of its neighbours in memory too. Its JSON is in a page of
// the body's, valid until Release.
func (b *Body) Normalize(i int, forced Type, req *Request) (*Event, *DropError) {
	if i >= len(b.items) || b.items[i].obj < 0 {
		return Normalize(b.Items[i], forced, req)
	}
	it := b.items[i]
	if b.sc == nil {
		b.sc = scratchPool.Get().(*scratch)
	}
	sc := b.sc
	sc.buf = sc.buf[:0] // the previous event's values are in its document
	// The members, and the context's, are read where they are: normalize
	// changes neither (fields keeps the values it sets).
	obj := b.members[it.obj:it.objEnd:it.objEnd]
	var ctx []span
	if it.ctx >= 0 {
		ctx = b.members[it.ctx:it.ctxEnd:it.ctxEnd]
	}
	left := len(b.Items) - i
	if b.nev == len(b.events) { // none left: the body's first, nearly always
		if b.nev == 0 && cap(b.events) >= left {
			b.events = b.events[:left] // a released body's, cleared
		} else {
			b.events, b.nev = make([]Event, left), 0
		}
	}
	ev := &b.events[b.nev]
	b.nev++
	b.arena.left = left
	return sc.normalize(ev, forced, req, b.text, obj, ctx, &b.arena)
}

// CheckDepth returns the drop of the event raw, valid JSON, when it nests
// deeper than MaxDepth, or nil: ingest's check, for callers that hold one
// event's text (preview) rather than a request body.
func CheckDepth(raw []byte) *DropError {
	end, d := validValue(raw, skipSpace(raw, 0))
	if end < 0 && !utf8.Valid(raw) {
		// validValue stops at a string that is not UTF-8, which
		// encoding/json (and so "valid JSON") allows: the nesting is
		// that of the text with those bytes replaced.
		_, d = validValue(bytes.ToValidUTF8(raw, []byte("\uFFFD")), skipSpace(raw, 0))
	}
	return depthError(d)
}

func depthError(d int) *DropError {
	if d <= MaxDepth {
		return nil
	}
	return drop(CodeEventTooDeep, "event nests %d levels of objects and arrays; the limit is %d", d, MaxDepth)
}

// DepthError returns the drop of item i when it nests deeper than MaxDepth
// (as it would be stored, with the batch's context and integrations), or
// nil. An event so deep is not stored: the parsed model ([Parse]) could not
// read it back.
func (b *Body) DepthError(i int) *DropError {
	if i >= len(b.depths) {
		return nil
	}
	return depthError(b.depths[i])
}

var bom = []byte("\xef\xbb\xbf")

// checkJSON validates b as UTF-8 JSON whose top level is an object, and
// splits that object (and the array under key, see splitBody) on the way.
// Nesting is not limited here: an event too deep is dropped on its own
// (Body.DepthError), not the request.
func checkJSON(into split, b []byte, key string) ([]byte, split, *RequestError) {
	if len(b) > MaxRequestBytes {
		return nil, split{}, &RequestError{CodePayloadTooLarge, fmt.Sprintf("request body is larger than %d bytes", MaxRequestBytes)}
	}
	b = bytes.TrimPrefix(b, bom)
	// The check of the JSON checks the UTF-8 of its strings, and nothing
	// else can hold bytes of multi-byte sequences: only a body it refuses
	// may not be UTF-8, and is refused as such first.
	s, valid := splitBody(into, b, key)
	if !valid && !utf8.Valid(b) {
		return nil, split{}, &RequestError{CodeInvalidJSON, "request body is not valid UTF-8"}
	}
	if !valid {
		msg := "request body is not valid JSON"
		var raw json.RawMessage
		var se *json.SyntaxError
		if err := json.Unmarshal(b, &raw); errors.As(err, &se) {
			msg = fmt.Sprintf("%s: %s at byte %d", msg, se.Error(), se.Offset)
		} else if len(bytes.TrimSpace(b)) == 0 {
			msg = "request body is empty"
		}
		return nil, split{}, &RequestError{CodeInvalidJSON, msg}
	}
	if !s.isObj {
		return nil, split{}, &RequestError{CodeInvalidBody, "request body must be a JSON object"}
	}
	return b, s, nil
}

// ParseSingle parses the body of a single-event endpoint (§1.5).
func ParseSingle(b []byte) (*Body, *RequestError) {
	sc := scratchPool.Get().(*scratch)
	defer sc.release()
	bufs := bodyPool.Get().(*bodyBufs)
	b, s, rerr := checkJSON(bufs.split(nil), b, "")
	if rerr != nil {
		return nil, rerr
	}
	if len(b) > MaxEventBytes {
		return nil, &RequestError{CodeEventTooLarge, fmt.Sprintf("event is %d bytes; the limit is %d", len(b), MaxEventBytes)}
	}
	it := s.items[0]
	return &Body{WriteKey: stringValue(spanGet(b, s.members[it.obj:it.objEnd], "writeKey")), Items: [][]byte{b}, text: b,
		depths: []int{s.depth}, items: s.items, members: s.members, ctx: s.ctx, arena: arena{pages: bufs.pages}, events: bufs.events}, nil
}

// ParseBatch parses the body of a batch endpoint (§1.6).
func ParseBatch(b []byte) (*Body, *RequestError) {
	sc := scratchPool.Get().(*scratch)
	defer sc.release()
	bufs := bodyPool.Get().(*bodyBufs)
	b, s, rerr := checkJSON(bufs.split(sc.obj), b, "batch")
	if s.obj != nil {
		sc.obj = s.obj
	}
	if rerr != nil {
		return nil, rerr
	}
	obj, items := s.obj, s.elems
	if items == nil {
		return nil, &RequestError{CodeInvalidBatch, "batch is required and must be an array of events"}
	}
	if len(items) > MaxBatchItems {
		return nil, &RequestError{CodeTooManyItems, fmt.Sprintf("batch has %d events; the limit is %d", len(items), MaxBatchItems)}
	}
	body := &Body{Items: items, WriteKey: stringValue(obj.get("writeKey")), text: b, depths: s.depths, items: s.items,
		members: s.members, ctx: s.ctx, arena: arena{pages: bufs.pages}, events: bufs.events}
	if body.WriteKey == "" && len(items) > 0 {
		if it := s.items[0]; it.obj >= 0 {
			body.WriteKey = stringValue(spanGet(b, s.members[it.obj:it.objEnd], "writeKey"))
		}
	}
	if t, ok := parseTimeValue(obj.get("sentAt")); ok {
		body.Envelope.SentAt = t
	}
	envDepth := 0 // the envelope's members become each item's
	if c := obj.get("context"); kind(c) == 'o' {
		body.Envelope.Context = c
		_, d := validValue(c, 0)
		envDepth = 1 + d
	}
	if in := obj.get("integrations"); kind(in) == 'o' {
		body.Envelope.Integrations = in
		_, d := validValue(in, 0)
		envDepth = max(envDepth, 1+d)
	}
	if envDepth > MaxDepth {
		for i := range body.depths {
			body.depths[i] = max(body.depths[i], envDepth)
		}
	}
	return body, nil
}

func stringValue(v []byte) string {
	if kind(v) != 's' {
		return ""
	}
	return decodeString(v)
}

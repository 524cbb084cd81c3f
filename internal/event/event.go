package event

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Limits of segment-ingest.md §1.3, measured on decompressed bytes.
const (
	MaxRequestBytes = 512000 // a whole POST body
	MaxEventBytes   = 32768  // a single-event body, or one batch item's raw JSON
	MaxBatchItems   = 2500   // items in batch[]
	MaxMetricsBytes = 65536  // a /v1/m body
	MaxMessageIDLen = 100    // characters
)

// MaxDepth is how deeply an event may nest objects and arrays, the event
// object itself counting as the first level: {"properties":{"a":[1]}} nests
// 3. It is the one nesting limit of capstan's event handling: ingest drops
// a deeper event (CodeEventTooDeep) and [Parse] refuses deeper JSON, so
// every stored event can be read back. Segment documents no nesting limit,
// only sizes (segment-ingest.md §1.3); real payloads stay far below 64
// (context.page is level 3, an order's products[i].options[j] level 5),
// while a 32 KB event could nest 16,000 arrays deep.
const MaxDepth = 64

// Type is a Segment event type.
type Type string

// The six event types.
const (
	Track    Type = "track"
	Page     Type = "page"
	Screen   Type = "screen"
	Identify Type = "identify"
	Group    Type = "group"
	Alias    Type = "alias"
)

// ParseType returns the type named s (ASCII case-insensitive).
func ParseType(s string) (Type, bool) {
	switch t := Type(strings.ToLower(s)); t {
	case Track, Page, Screen, Identify, Group, Alias:
		return t, true
	}
	return "", false
}

// parseTypeLiteral is ParseType of the JSON string literal lit. A type
// written as one of the six names, as nearly every event's is, is matched
// on the literal's bytes, without decoding it to a new string (one
// allocation per event); anything else (other case, escapes) is decoded.
func parseTypeLiteral(lit []byte) (Type, bool) {
	if len(lit) >= 2 {
		// Each case returns its constant: returning the converted
		// string would make the conversion allocate.
		switch string(lit[1 : len(lit)-1]) {
		case string(Track):
			return Track, true
		case string(Page):
			return Page, true
		case string(Screen):
			return Screen, true
		case string(Identify):
			return Identify, true
		case string(Group):
			return Group, true
		case string(Alias):
			return Alias, true
		}
	}
	return ParseType(decodeString(lit))
}

// Drop codes of §2.5 and §1.3: why one event was not stored.
const (
	CodeInvalidEvent     = "invalid_event"
	CodeEventTooLarge    = "event_too_large"
	CodeEventTooDeep     = "event_too_deep" // nested deeper than MaxDepth
	CodeMissingType      = "missing_type"
	CodeInvalidType      = "invalid_type"
	CodeInvalidID        = "invalid_id"
	CodeMissingIdentity  = "missing_identity"
	CodeMissingPrevious  = "missing_previous_id"
	CodeMissingEvent     = "missing_event"
	CodeMissingGroupID   = "missing_group_id"
	CodeInvalidField     = "invalid_field"
	CodeInvalidMessageID = "invalid_message_id"
)

// DropError says why one event was dropped. It is reported in the 200
// response body; it never fails the request.
type DropError struct {
	Code    string
	Message string
}

func (e *DropError) Error() string { return e.Code + ": " + e.Message }

func drop(code, format string, args ...any) *DropError {
	return &DropError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Envelope is what a batch request shares with its items (§1.6).
type Envelope struct {
	SentAt       time.Time // zero when absent or unparsable
	Context      []byte    // raw JSON object, or nil
	Integrations []byte    // raw JSON object, or nil
}

// Request is the per-request input of Normalize.
type Request struct {
	// ReceivedAt is capstan's clock when the request's headers were read.
	ReceivedAt time.Time
	// ClientIP fills context.ip when the event has none ("" to leave it out).
	ClientIP string
	// Envelope holds batch-level values (zero for single-event endpoints).
	Envelope Envelope
}

// Event is one validated, normalised event ready to be stored.
type Event struct {
	Type        Type
	MessageID   string
	UserID      string // "" when absent
	AnonymousID string // "" when absent
	// Generated reports that capstan made up MessageID (the event had none).
	Generated bool
	// NoCapstan reports that the stored context has no member capstan,
	// capstan's own namespace (ingest takes the userHash of identity
	// verification from it): the members normalising split show it, so
	// that nothing need search the document for it. False when there is
	// one, or when not known (an Event not made by Normalize).
	NoCapstan bool
	// JSON is the stored document (§2.8).
	JSON []byte
}

// Normalize validates one event (rules of §2.5 in order) and builds its
// stored form. forced is the type of a single-event endpoint ("" for batch
// items, whose own type is checked). raw must be valid JSON.
func Normalize(raw []byte, forced Type, req *Request) (*Event, *DropError) {
	sc := scratchPool.Get().(*scratch)
	defer sc.release()
	obj, ok := parseSpansInto(sc.spans, raw)
	sc.spans = obj
	if !ok {
		return nil, drop(CodeInvalidEvent, "event must be a JSON object")
	}
	return sc.normalize(new(Event), forced, req, raw, obj, nil, nil)
}

// normalize is Normalize of the event whose members are obj, spans of
// text. ctx, when not nil, holds the members of the event's context (the
// value obj holds under context), spans of text too. It reads both and
// changes neither (fields keeps what it sets and deletes). It fills and
// returns ev, and takes the stored document and the ids from a (nil:
// allocated alone).
func (sc *scratch) normalize(ev *Event, forced Type, req *Request, text []byte, obj, ctx []span, a *arena) (*Event, *DropError) {
	ctxSplit := ctx != nil
	// Declared, then set: a composite literal of fields (576 bytes) was
	// built zeroed in a temporary and then copied to f.
	var f fields
	f.text, f.obj = text, obj
	f.find()
	ctxRaw := f.get(fContext) // the context that sc.ctx splits, when ctxSplit
	*ev = Event{Type: forced}
	if forced == "" {
		tv := f.get(fType)
		if tv == nil || kind(tv) == 'n' {
			return nil, drop(CodeMissingType, "type is required")
		}
		if kind(tv) != 's' {
			return nil, drop(CodeInvalidType, "type must be a string")
		}
		t, ok := parseTypeLiteral(tv)
		if !ok {
			return nil, drop(CodeInvalidType, "type %q is not one of track, page, screen, identify, group, alias", truncate(decodeString(tv), 40))
		}
		ev.Type = t
		if string(tv[1:len(tv)-1]) != string(t) { // not written as the name
			f.set(fType, sc.quoted(string(t)))
		}
	} else {
		f.set(fType, sc.quoted(string(ev.Type)))
	}

	// Rule 4: ids, in this order.
	var ids [4]string // userId, anonymousId, previousId, groupId
	for j, k := range [...]int{fUserID, fAnonymousID, fPreviousID, fGroupID} {
		id, lit, derr := sc.id(f.get(k), k, a)
		if derr != nil {
			return nil, derr
		}
		if lit != nil {
			f.set(k, lit)
		}
		ids[j] = id
	}
	ev.UserID, ev.AnonymousID = ids[0], ids[1]
	previousID, groupID := ids[2], ids[3]

	// Rules 5 to 7.
	switch {
	case ev.Type == Alias && ev.UserID == "":
		return nil, drop(CodeMissingIdentity, "alias requires userId")
	case ev.Type == Alias && previousID == "":
		return nil, drop(CodeMissingPrevious, "alias requires previousId")
	case ev.UserID == "" && ev.AnonymousID == "":
		return nil, drop(CodeMissingIdentity, "userId or anonymousId is required")
	case ev.Type == Track:
		if e := f.get(fEvent); kind(e) != 's' || len(e) <= 2 {
			return nil, drop(CodeMissingEvent, "track requires a non-empty event name")
		}
	case ev.Type == Group && groupID == "":
		return nil, drop(CodeMissingGroupID, "group requires groupId")
	}

	// Rule 8: object fields; null becomes absent.
	for _, k := range [...]int{fProperties, fTraits, fContext, fIntegrations} {
		switch v := f.get(k); kind(v) {
		case 0, 'o':
		case 'n':
			f.del(k)
		default:
			return nil, drop(CodeInvalidField, "%s must be an object", fieldNames[k])
		}
	}

	// Rule 9: messageId.
	switch v := f.get(fMessageID); kind(v) {
	case 0, 'n':
		ev.MessageID, ev.Generated = newUUID(), true
	case 's':
		ev.MessageID = a.id(v)
		if ev.MessageID == "" {
			ev.MessageID, ev.Generated = newUUID(), true
		}
	case 'd':
		s, ok := decimal(v)
		if !ok {
			return nil, drop(CodeInvalidMessageID, "messageId must be a string")
		}
		ev.MessageID = s
		f.set(fMessageID, sc.quoted(s))
	default:
		return nil, drop(CodeInvalidMessageID, "messageId must be a string")
	}
	// No more characters than bytes: only a long id is counted.
	if n := len(ev.MessageID); n > MaxMessageIDLen {
		if n = utf8.RuneCountInString(ev.MessageID); n > MaxMessageIDLen {
			return nil, drop(CodeInvalidMessageID, "messageId is %d characters long; the limit is %d", n, MaxMessageIDLen)
		}
	}
	if ev.Generated {
		f.del(fMessageID)
	}

	// Envelope merge (§1.6) and context.ip (§2.8).
	env := &req.Envelope
	if env.Context != nil {
		if c := f.get(fContext); c != nil {
			f.set(fContext, mergeDeep(env.Context, c))
		} else {
			f.set(fContext, env.Context)
		}
	}
	if env.Integrations != nil {
		if in := f.get(fIntegrations); in != nil {
			f.set(fIntegrations, mergeShallow(env.Integrations, in))
		} else {
			f.set(fIntegrations, env.Integrations)
		}
	}
	// The context's members (co, spans of ct), read for capstan and ip.
	c := f.get(fContext)
	var ct []byte
	var co []span
	if c != nil {
		ct, co = sc.context(text, c, ctx, ctxSplit && sameBytes(c, ctxRaw))
	}
	ev.NoCapstan = spanGet(ct, co, "capstan") == nil
	if req.ClientIP != "" {
		if c == nil {
			start := len(sc.buf)
			sc.buf = append(appendQuoted(append(sc.buf, `{"ip":`...), req.ClientIP), '}')
			f.set(fContext, sc.buf[start:len(sc.buf):len(sc.buf)])
		} else if spanGet(ct, co, "ip") == nil {
			if tail := sc.ipTail(c, co, req.ClientIP); tail != nil {
				// c without its closing brace, then tail: written
				// straight into the document, not copied first.
				f.set(fContext, c[:len(c)-1])
				f.tail = tail
			} else {
				f.set(fContext, sc.withIP(c, ct, co, req.ClientIP))
			}
		}
	}

	// Timestamps (§2.6); writeKey is removed (§2.8).
	// A literal already written as sc.time would write it (timeValue) is
	// stored as it is, and those the same for every event of the request
	// (receivedAt, the envelope's sentAt) are formatted once (arena).
	received := req.ReceivedAt.UTC()
	receivedLit := a.received(sc, received)
	original, originalLit, ok := sc.read.timeValue(f.get(fOriginalTimestamp))
	if !ok {
		original, originalLit, ok = sc.read.timeValue(f.get(fTimestamp))
	}
	if !ok {
		original, originalLit = received, receivedLit
	}
	sentAt, sentLit, hasSent := sc.read.timeValue(f.get(fSentAt))
	if !hasSent && !env.SentAt.IsZero() {
		sentAt, sentLit, hasSent = env.SentAt, a.sent(env.SentAt), true
	}
	ts, tsLit := original, originalLit
	if hasSent {
		ts, tsLit = received.Add(-sentAt.Sub(original)), nil
	}
	for _, k := range [...]int{fWriteKey, fTimestamp, fOriginalTimestamp, fSentAt, fReceivedAt} {
		f.del(k)
	}
	if ev.Generated {
		f.set(fMessageID, sc.quoted(ev.MessageID))
	}
	f.set(fOriginalTimestamp, sc.timeLit(original, originalLit))
	if hasSent {
		f.set(fSentAt, sc.timeLit(sentAt, sentLit))
	}
	f.set(fReceivedAt, receivedLit)
	f.set(fTimestamp, sc.timeLit(ts, tsLit))

	ev.JSON = f.appendJSON(a.take(f.jsonLen()))
	return ev, nil
}

// The event keys that Normalize reads or writes, as indexes of fields.pos.
const (
	fType = iota
	fUserID
	fAnonymousID
	fPreviousID
	fGroupID
	fEvent
	fProperties
	fTraits
	fContext
	fIntegrations
	fMessageID
	fWriteKey
	fTimestamp
	fOriginalTimestamp
	fSentAt
	fReceivedAt
	numFields
)

var fieldNames = [numFields]string{
	"type", "userId", "anonymousId", "previousId", "groupId", "event", "properties", "traits", "context",
	"integrations", "messageId", "writeKey", "timestamp", "originalTimestamp", "sentAt", "receivedAt",
}

// quotedFieldNames are fieldNames as JSON strings: the keys as written of
// the members fields.set adds, so that writing them out checks nothing.
var quotedFieldNames = func() (q [numFields][]byte) {
	for k, name := range fieldNames {
		q[k] = quote(name)
	}
	return q
}()

// fieldOf returns the field named key, or -1. It switches on the length
// first, then compares with the one to three names of that length (a
// switch on the key alone searched the sixteen names with string
// comparisons), and takes a key as written in the body without a copy
// (string(b) passed to a string parameter copies b).
func fieldOf[K string | []byte](key K) int {
	switch len(key) {
	case 4:
		if string(key) == "type" {
			return fType
		}
	case 5:
		if string(key) == "event" {
			return fEvent
		}
	case 6:
		switch string(key) {
		case "userId":
			return fUserID
		case "traits":
			return fTraits
		case "sentAt":
			return fSentAt
		}
	case 7:
		switch string(key) {
		case "context":
			return fContext
		case "groupId":
			return fGroupID
		}
	case 8:
		if string(key) == "writeKey" {
			return fWriteKey
		}
	case 9:
		switch string(key) {
		case "messageId":
			return fMessageID
		case "timestamp":
			return fTimestamp
		}
	case 10:
		switch string(key) {
		case "properties":
			return fProperties
		case "previousId":
			return fPreviousID
		case "receivedAt":
			return fReceivedAt
		}
	case 11:
		if string(key) == "anonymousId" {
			return fAnonymousID
		}
	case 12:
		if string(key) == "integrations" {
			return fIntegrations
		}
	case 17:
		if string(key) == "originalTimestamp" {
			return fOriginalTimestamp
		}
	}
	return -1
}

// fields is an event's members, spans of its text, with the member of
// each key Normalize uses found in one pass, so that Normalize's two dozen
// lookups do not each scan the members. It behaves as object's get, set
// and del on the members (parseObject leaves each key once, a key set
// anew after its deletion is appended after the members) without
// changing them: the values set are kept in vals, and appendJSON writes
// the members from the text, in runs of it between those that changed.
// It holds no member structs: a batch's spans are read where the body's
// check left them, not copied; and find stores no pointer (a store
// through a pointer runs a write barrier while the GC marks), only set
// does, inlined into normalize, whose fields are on its stack.
type fields struct {
	text []byte
	obj  []span
	// in[k] is 1 + the index in obj of field k's member, or 0; inObj has
	// bit k set when there is one.
	in    [numFields]int32
	inObj uint32
	// over has bit k set when field k's value is vals[k] (nil: deleted),
	// set or deleted, no longer its member's of obj.
	over uint32
	vals [numFields][]byte
	// added[k] is 1 + the index in extra of field k's member when set
	// after its deletion or absence, or 0 (the member is obj's, if any).
	added [numFields]int8
	// extra holds the fields appended, in order; extra[j] is dead when
	// its field was deleted, or appended anew, since (added[k] != j+1).
	extra  [numFields]int8
	nextra int8
	// objLen is the length of obj's members as appendJSON writes them
	// unchanged, commas left out.
	objLen int
	// tail, when not nil, is written just after the context's value
	// (which then lacks its closing brace, see scratch.ipTail): the
	// context with ip added, without a copy of it made first.
	tail []byte
}

// find records where obj holds each field. f is new: text and obj set,
// the rest zero.
func (f *fields) find() {
	n := 0
	var in uint32
	for i := range f.obj {
		s := &f.obj[i]
		n += int(s.keyEnd-s.key) + 1 + int(s.end-s.val)
		var k int
		if s.esc {
			k = fieldOf(decodeString(s.rawKey(f.text)))
		} else {
			k = fieldOf(f.text[s.key+1 : s.keyEnd-1])
		}
		if k >= 0 {
			f.in[k] = int32(i) + 1
			in |= 1 << k
		}
	}
	f.inObj, f.objLen = in, n
}

func (f *fields) get(k int) []byte {
	if f.over&(1<<k) != 0 {
		return f.vals[k]
	}
	if i := f.in[k]; i > 0 {
		return f.obj[i-1].value(f.text)
	}
	return nil
}

// set replaces field k's value in place, or adds it after the members.
// normalize adds each field at most once (it deletes none it added), so
// extra does not fill.
func (f *fields) set(k int, v []byte) {
	if k == fContext {
		f.tail = nil
	}
	if bit := uint32(1) << k; f.over&bit == 0 && f.in[k] == 0 || f.over&bit != 0 && f.vals[k] == nil {
		f.extra[f.nextra] = int8(k)
		f.nextra++
		f.added[k] = f.nextra
	}
	f.over |= 1 << k
	f.vals[k] = v
}

func (f *fields) del(k int) {
	if k == fContext {
		f.tail = nil
	}
	f.over |= 1 << k
	f.vals[k] = nil
}

// changed returns the fields whose member of obj is not written as the
// text holds it (another value, or deleted), as a bit set.
func (f *fields) changed() uint32 { return f.over & f.inObj }

// objLive reports whether field k's member of obj, changed, holds a value.
func (f *fields) objLive(k int) bool { return f.added[k] == 0 && f.vals[k] != nil }

// extraLive reports whether extra[j] holds its field's value.
func (f *fields) extraLive(j int) bool {
	k := f.extra[j]
	return int(f.added[k]) == j+1 && f.vals[k] != nil
}

// jsonLen is the length of appendJSON's output.
func (f *fields) jsonLen() int {
	n, live := f.objLen, len(f.obj)
	for c := f.changed(); c != 0; c &= c - 1 {
		k := bits.TrailingZeros32(c)
		s := &f.obj[f.in[k]-1]
		n -= int(s.end - s.val)
		if f.objLive(k) {
			n += len(f.vals[k])
		} else {
			n -= int(s.keyEnd-s.key) + 1
			live--
		}
	}
	for j := range int(f.nextra) {
		if f.extraLive(j) {
			k := f.extra[j]
			n += len(quotedFieldNames[k]) + 1 + len(f.vals[k])
			live++
		}
	}
	if live > 1 {
		n += live - 1
	}
	return 2 + n + len(f.tail)
}

// appendJSON writes the event's members as set, obj's then those added,
// as object.appendJSON writes one object of them, with tail after the
// context's value. Members of obj that did not change are copied from
// the text, in one piece for each run of them written there as
// appendJSON writes them.
func (f *fields) appendJSON(buf []byte) []byte {
	// The members of obj that changed, in order.
	var at [numFields]int32
	var ks [numFields]int8
	n := 0
	for c := f.changed(); c != 0; c &= c - 1 {
		k := bits.TrailingZeros32(c)
		i := f.in[k] - 1
		j := n
		for ; j > 0 && at[j-1] > i; j-- {
			at[j], ks[j] = at[j-1], ks[j-1]
		}
		at[j], ks[j] = i, int8(k)
		n++
	}
	buf = append(buf, '{')
	first, from := true, 0
	for j := range n {
		i, k := int(at[j]), int(ks[j])
		buf, first = f.appendSpans(buf, from, i, first)
		from = i + 1
		if f.objLive(k) {
			buf = f.appendMember(buf, f.obj[i].rawKey(f.text), k, first)
			first = false
		}
	}
	buf, first = f.appendSpans(buf, from, len(f.obj), first)
	for j := range int(f.nextra) {
		if f.extraLive(j) {
			k := int(f.extra[j])
			buf = f.appendMember(buf, quotedFieldNames[k], k, first)
			first = false
		}
	}
	return append(buf, '}')
}

// appendMember writes field k's member, under key (as written), with
// tail after the context's value.
func (f *fields) appendMember(buf, key []byte, k int, first bool) []byte {
	if !first {
		buf = append(buf, ',')
	}
	buf = append(buf, key...)
	buf = append(buf, ':')
	buf = append(buf, f.vals[k]...)
	if k == fContext {
		buf = append(buf, f.tail...)
	}
	return buf
}

// appendSpans writes obj[from:to], none of them changed, as
// object.appendMembers writes members, each run of them that the text
// holds as it would write them (key, ':', value, then ',' and the next)
// copied in one piece.
func (f *fields) appendSpans(buf []byte, from, to int, first bool) ([]byte, bool) {
	text := f.text
	var start, end int32 = -1, -1 // the run still to copy
	for i := from; i < to; i++ {
		s := &f.obj[i]
		if s.val == s.keyEnd+1 && text[s.keyEnd] == ':' {
			if start >= 0 {
				if s.key == end+1 && text[end] == ',' {
					end = s.end
					continue
				}
				buf = append(buf, text[start:end]...)
			}
			if !first {
				buf = append(buf, ',')
			}
			first = false
			start, end = s.key, s.end
			continue
		}
		if start >= 0 {
			buf = append(buf, text[start:end]...)
			start = -1
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = append(buf, text[s.key:s.keyEnd]...)
		buf = append(buf, ':')
		buf = append(buf, text[s.val:s.end]...)
	}
	if start >= 0 {
		buf = append(buf, text[start:end]...)
	}
	return buf, first
}

// scratch is Normalize's working memory, reused through scratchPool: the
// members of a request's top-level object (ParseBatch), those of an event
// and of its context, and the values capstan writes. Nothing in it
// outlives the call (the stored document is a copy).
type scratch struct {
	obj   object
	spans []span
	ctx   []span
	buf   []byte
	// read and written are the dates of the timestamps read and of those
	// written (see day), apart: an event's own (read) fall on the client's
	// day, those capstan corrects (written) on receivedAt's. They stay
	// valid from one use of the scratch to the next.
	read, written day
}

var scratchPool = sync.Pool{New: func() any {
	return &scratch{obj: make(object, 0, 16), spans: make([]span, 0, 32), ctx: make([]span, 0, 16), buf: make([]byte, 0, 512)}
}}

// id applies rule 4 to v, the id under field k: "" when absent or null, a
// number made its decimal string (lit, its literal, is then the field's
// new value), any other kind a drop. A string is taken from a's id chunk
// (nil: allocated alone). It does not set the field itself: a call given
// the fields would move normalize's fields to the heap (escape analysis).
func (sc *scratch) id(v []byte, k int, a *arena) (id string, lit []byte, _ *DropError) {
	switch kind(v) {
	case 0, 'n':
		return "", nil, nil
	case 's':
		return a.id(v), nil, nil
	case 'd':
		s, ok := decimal(v)
		if !ok {
			return "", nil, drop(CodeInvalidID, "%s must be a string", fieldNames[k])
		}
		return s, sc.quoted(s), nil
	default:
		return "", nil, drop(CodeInvalidID, "%s must be a string", fieldNames[k])
	}
}

// context returns the members of the context object c and the text
// they are spans of: ctx, spans of the event's text, when split (it holds
// them already), else c split into sc.ctx.
func (sc *scratch) context(text, c []byte, ctx []span, split bool) ([]byte, []span) {
	if split {
		return text, ctx
	}
	co, _ := parseSpansInto(sc.ctx, c)
	sc.ctx = co
	return c, co
}

// sameBytes reports whether a and b are the same bytes in memory.
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && len(a) > 0 && &a[0] == &b[0]
}

// quoted appends s's JSON literal to the scratch buffer and returns it.
func (sc *scratch) quoted(s string) []byte {
	start := len(sc.buf)
	sc.buf = appendQuoted(sc.buf, s)
	return sc.buf[start:len(sc.buf):len(sc.buf)]
}

// time appends t as a JSON string in TimeLayout and returns it.
func (sc *scratch) time(t time.Time) []byte {
	start := len(sc.buf)
	sc.buf = sc.written.appendQuotedTime(sc.buf, t)
	return sc.buf[start:len(sc.buf):len(sc.buf)]
}

// timeLit returns lit, t's literal as sc.time writes it, or sc.time(t)
// when lit is nil.
func (sc *scratch) timeLit(t time.Time, lit []byte) []byte {
	if lit != nil {
		return lit
	}
	return sc.time(t)
}

// withIP writes the context object c, whose members are co, spans of
// text (none of them ip), with a last member ip added, to the scratch
// buffer and returns it. When c is written as object.appendJSON writes
// its members (no space between them, no repeated key: then and only then
// is their JSON as long as c), c is copied with the ip spliced in before
// its closing brace, not written member by member: the same bytes.
func (sc *scratch) withIP(c, text []byte, co []span, ip string) []byte {
	if tail := sc.ipTail(c, co, ip); tail != nil {
		start := len(sc.buf)
		sc.buf = append(sc.buf, c[:len(c)-1]...)
		sc.buf = append(sc.buf, tail...)
		return sc.buf[start:len(sc.buf):len(sc.buf)]
	}
	o := spansObject(text, co)
	o.set("ip", sc.quoted(ip))
	start := len(sc.buf)
	sc.buf = o.appendJSON(sc.buf)
	return sc.buf[start:len(sc.buf):len(sc.buf)]
}

// ipTail returns what withIP writes after c's members when it copies c
// (the ip member and the closing brace, `,"ip":"…"}`), written to the
// scratch buffer; nil when withIP writes c member by member instead (c
// not written as object.appendJSON writes co, or no members).
func (sc *scratch) ipTail(c []byte, co []span, ip string) []byte {
	if len(co) == 0 || spansLen(co) != len(c) {
		return nil
	}
	start := len(sc.buf)
	sc.buf = append(sc.buf, `,"ip":`...)
	sc.buf = append(appendQuoted(sc.buf, ip), '}')
	return sc.buf[start:len(sc.buf):len(sc.buf)]
}

// release returns sc to the pool, unless an unusually large event grew it.
func (sc *scratch) release() {
	if cap(sc.obj) > 1024 || cap(sc.spans) > 1024 || cap(sc.ctx) > 1024 || cap(sc.buf) > 64<<10 {
		return
	}
	// The members of obj still point into the caller's bytes until the
	// next use; clearing them costs more than holding those bytes until
	// the pool is emptied at the next garbage collections.
	sc.obj, sc.spans, sc.ctx, sc.buf = sc.obj[:0], sc.spans[:0], sc.ctx[:0], sc.buf[:0]
	scratchPool.Put(sc)
}

// decimal returns the decimal text of a JSON number that is an integer
// ("42", "4.2e1"), or the number as written otherwise.
func decimal(v []byte) (string, bool) {
	var n json.Number
	if err := json.Unmarshal(v, &n); err != nil {
		return "", false
	}
	if i, err := n.Int64(); err == nil {
		return strconv.FormatInt(i, 10), true
	}
	if f, err := n.Float64(); err == nil && f == float64(int64(f)) {
		return strconv.FormatInt(int64(f), 10), true
	}
	return n.String(), true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// TimeLayout is how capstan stores instants: UTC, milliseconds (§2.6).
const TimeLayout = "2006-01-02T15:04:05.000Z"

// parseTimeValue parses a raw JSON string holding an ISO-8601 instant.
// Numbers and other kinds count as absent (§2.6, §8 Q4).
func parseTimeValue(v []byte) (time.Time, bool) {
	var d day
	t, _, ok := d.timeValue(v)
	return t, ok
}

// canonicalTimeLen is the length of a literal appendQuotedTime writes for
// years 0 to 9999: "2006-01-02T15:04:05.000Z", quotes included.
const canonicalTimeLen = len(`"` + TimeLayout + `"`)

// timeValue is parseTimeValue that also returns v as the time's literal
// when v is written exactly as appendQuotedTime writes the time it holds
// (TimeLayout, milliseconds, UTC), as the timestamps of Segment's
// libraries are; otherwise the literal is nil and the caller formats it.
// The date is read with d (day.parseUTCTime).
func (d *day) timeValue(v []byte) (time.Time, []byte, bool) {
	if kind(v) != 's' {
		return time.Time{}, nil, false
	}
	if t, ok := d.parseUTCTime(v[1 : len(v)-1]); ok {
		if len(v) == canonicalTimeLen && v[20] == '.' {
			return t, v[:len(v):len(v)], true
		}
		return t, nil, true
	}
	t, ok := ParseTime(decodeString(v))
	return t, nil, ok
}

// parseUTCTime parses b when it is written as
// YYYY-MM-DDTHH:MM:SS[.F]Z with 1 to 9 fractional digits and in-range
// fields, the form of nearly every timestamp sent (it is what Segment's
// libraries and capstan write), and gives the time ParseTime gives for it.
// It reads the bytes in place: ParseTime's time.Parse needs a string,
// which cost an allocation per timestamp. Any other form, or a field out
// of range, returns false and is left to ParseTime.
func parseUTCTime(b []byte) (time.Time, bool) {
	var d day
	return d.parseUTCTime(b)
}

// day is the calendar date of the last instant read or written in
// TimeLayout with it: nearly all of a request's timestamps fall on one
// day, so that its date is read by comparing eleven bytes and written by
// copying them, not with the calendar's arithmetic each time (time.Time.Date
// was most of the cost of writing one; the digits and days of the date
// most of reading one).
type day struct {
	// lit is the date as TimeLayout writes it, "YYYY-MM-DDT" (years 0 to
	// 9999), and unix the same date in days from 1970-01-01, when set.
	lit  [11]byte
	unix int64
	set  bool
}

// parseUTCTime is the package's parseUTCTime, reading the date of b as
// d's without checking it again when it is written as d's, and making d
// the date of b otherwise (when it is valid).
func (d *day) parseUTCTime(b []byte) (time.Time, bool) {
	if len(b) < 20 || len(b) > 30 || b[13] != ':' || b[16] != ':' || b[len(b)-1] != 'Z' {
		return time.Time{}, false
	}
	if !d.set || string(b[:11]) != string(d.lit[:]) {
		days, ok := parseDate(b[:11])
		if !ok {
			return time.Time{}, false
		}
		d.lit, d.unix, d.set = [11]byte(b[:11]), days, true
	}
	hour, ok1 := digits(b[11:13])
	minute, ok2 := digits(b[14:16])
	sec, ok3 := digits(b[17:19])
	if !ok1 || !ok2 || !ok3 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	nsec := 0
	if frac := b[19 : len(b)-1]; len(frac) > 0 {
		n, ok := digits(frac[1:])
		if frac[0] != '.' || len(frac) < 2 || !ok {
			return time.Time{}, false
		}
		for range 10 - len(frac) {
			n *= 10
		}
		nsec = n
	}
	// time.Date's instant, counted directly (time.Date normalises each
	// field and looks the zone up first).
	secs := d.unix*86400 + int64(hour*3600+minute*60+sec)
	return time.Unix(secs, int64(nsec)).UTC(), true
}

// parseDate returns the date b, "YYYY-MM-DDT" with in-range fields, in
// days from 1970-01-01.
func parseDate(b []byte) (int64, bool) {
	if b[4] != '-' || b[7] != '-' || b[10] != 'T' {
		return 0, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	if !ok1 || !ok2 || !ok3 || month < 1 || month > 12 || day < 1 {
		return 0, false
	}
	if day > daysIn(month, year) { // time.Date would normalise it
		return 0, false
	}
	return unixDays(year, month, day), true
}

// appendQuotedTime is the package's appendQuotedTime, copying d's date
// when t falls on it and making t's date d's otherwise (years 0-9999).
func (d *day) appendQuotedTime(b []byte, t time.Time) []byte {
	secs := t.Unix()
	days := secs / 86400
	if secs%86400 < 0 {
		days-- // the day before 1970 that secs falls in
	}
	if !d.set || days != d.unix {
		start := len(b)
		b = appendQuotedTime(b, t)
		if len(b)-start == canonicalTimeLen { // a year 0-9999
			d.lit, d.unix, d.set = [11]byte(b[start+1:start+12]), days, true
		}
		return b
	}
	s := int(secs - days*86400)
	h, mi := s/3600, s/60%60
	s %= 60
	ms := t.Nanosecond() / 1e6
	b = append(b, '"')
	b = append(b, d.lit[:]...)
	return append(b,
		byte('0'+h/10), byte('0'+h%10), ':',
		byte('0'+mi/10), byte('0'+mi%10), ':',
		byte('0'+s/10), byte('0'+s%10), '.',
		byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z', '"')
}

// unixDays returns the number of days from 1970-01-01 to the date year,
// month (1-12), day of the proleptic Gregorian calendar, for years 0-9999
// (days_from_civil of H. Hinnant's calendar algorithms, years counted from
// March so that a leap day ends its year).
func unixDays(year, month, day int) int64 {
	y := year + 2000 // the same 400-year cycles, no negative year
	if month <= 2 {
		y--
	}
	era, yoe := y/400, y%400
	doy := (153*((month+9)%12)+2)/5 + day - 1 // day of the March-based year
	doe := yoe*365 + yoe/4 - yoe/100 + doy    // day of the era
	return int64(era-5)*146097 + int64(doe) - 719468
}

// daysIn returns the number of days of month (1-12) in year, of the
// proleptic Gregorian calendar as package time counts them.
func daysIn(month, year int) int {
	if month == 2 {
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	}
	return 30 + (month+month>>3)&1 // 31 in Jan, Mar, May, Jul, Aug, Oct, Dec
}

// digits returns the value of b, ASCII decimal digits only (at most 9).
func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// ParseTime parses the ISO-8601 subset of §2.6: RFC 3339 with any number of
// fractional digits and a Z or ±hh:mm offset, a date-time without zone (UTC)
// or a date alone (midnight UTC).
func ParseTime(s string) (time.Time, bool) {
	if len(s) < 10 || len(s) > 40 {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// NewID returns a random UUID (for request ids and generated messageIds).
func NewID() string { return newUUID() }

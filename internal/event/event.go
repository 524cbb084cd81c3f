package event

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
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
	// JSON is the stored document (§2.8).
	JSON []byte
}

// Normalize validates one event (rules of §2.5 in order) and builds its
// stored form. forced is the type of a single-event endpoint ("" for batch
// items, whose own type is checked). raw must be valid JSON.
func Normalize(raw []byte, forced Type, req *Request) (*Event, *DropError) {
	sc := scratchPool.Get().(*scratch)
	defer sc.release()
	obj, ok := parseObjectInto(sc.obj, raw)
	sc.obj = obj
	if !ok {
		return nil, drop(CodeInvalidEvent, "event must be a JSON object")
	}
	return sc.normalize(new(Event), forced, req, obj, nil, nil)
}

// normalize is Normalize of the event whose members are obj, which it
// changes (sets, deletes and appends members). ctx, when not nil, holds
// the members of the event's context (the value obj holds under context),
// which it only reads. It fills and returns ev, and takes the stored
// document and the ids from a (nil: allocated alone).
func (sc *scratch) normalize(ev *Event, forced Type, req *Request, obj, ctx object, a *arena) (*Event, *DropError) {
	ctxSplit := ctx != nil
	var extra [numFields]member
	f := fields{obj: obj, extra: extra[:0]}
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
	if req.ClientIP != "" {
		if c := f.get(fContext); c == nil {
			start := len(sc.buf)
			sc.buf = append(appendQuoted(append(sc.buf, `{"ip":`...), req.ClientIP), '}')
			f.set(fContext, sc.buf[start:len(sc.buf):len(sc.buf)])
		} else if co := sc.context(c, ctx, ctxSplit && sameBytes(c, ctxRaw)); co.get("ip") == nil {
			if tail := sc.ipTail(c, co, req.ClientIP); tail != nil {
				// c without its closing brace, then tail: written
				// straight into the document, not copied first.
				f.set(fContext, c[:len(c)-1])
				f.tail = tail
			} else {
				f.set(fContext, sc.withIP(c, co, req.ClientIP))
			}
		}
	}

	// Timestamps (§2.6); writeKey is removed (§2.8).
	// A literal already written as sc.time would write it (timeValue) is
	// stored as it is, and those the same for every event of the request
	// (receivedAt, the envelope's sentAt) are formatted once (arena).
	received := req.ReceivedAt.UTC()
	receivedLit := a.received(sc, received)
	original, originalLit, ok := timeValue(f.get(fOriginalTimestamp))
	if !ok {
		original, originalLit, ok = timeValue(f.get(fTimestamp))
	}
	if !ok {
		original, originalLit = received, receivedLit
	}
	sentAt, sentLit, hasSent := timeValue(f.get(fSentAt))
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

// fields is an event's object with the position of each key Normalize uses,
// found in one pass, so that Normalize's two dozen lookups do not each scan
// the members. It behaves as object's get, set and del: parseObject leaves
// each key once, deleted members stay in place with a nil Value, and a key
// set anew is appended. The members appended go to extra, an array of
// normalize's, not to obj: an append to obj would move obj to the heap
// (escape analysis), and Body.Normalize keeps an event's members on the
// stack, where copying them runs no write barriers.
type fields struct {
	obj   object
	pos   [numFields]int // index in obj, len(obj)+j for extra[j], or -1
	extra object         // the members added, in a [numFields]member of the caller's
	// tail, when not nil, is written just after the context's value
	// (which then lacks its closing brace, see scratch.ipTail): the
	// context with ip added, without a copy of it made first.
	tail []byte
}

// find records where obj holds each field.
func (f *fields) find() {
	for k := range f.pos {
		f.pos[k] = -1
	}
	for i := range f.obj {
		m := &f.obj[i]
		var k int
		if m.Key != "" || m.rawKey == nil {
			k = fieldOf(m.Key)
		} else {
			k = fieldOf(m.rawKey[1 : len(m.rawKey)-1])
		}
		if k >= 0 && m.Value != nil {
			f.pos[k] = i
		}
	}
}

// at returns the member at index i of pos.
func (f *fields) at(i int) *member {
	if i < len(f.obj) {
		return &f.obj[i]
	}
	return &f.extra[i-len(f.obj)]
}

func (f *fields) get(k int) []byte {
	if i := f.pos[k]; i >= 0 {
		return f.at(i).Value // nil once deleted
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
	if i := f.pos[k]; i >= 0 {
		if m := f.at(i); m.Value != nil {
			m.Value = v
			return
		}
	}
	f.pos[k] = len(f.obj) + len(f.extra)
	f.extra = f.extra[:len(f.extra)+1] // within its capacity: see above
	f.extra[len(f.extra)-1] = member{rawKey: quotedFieldNames[k], Value: v}
}

func (f *fields) del(k int) {
	if k == fContext {
		f.tail = nil
	}
	if i := f.pos[k]; i >= 0 {
		f.at(i).Value = nil
	}
}

// jsonLen is the length of appendJSON's output.
func (f *fields) jsonLen() int {
	n, live := f.obj.membersLen()
	n2, live2 := f.extra.membersLen()
	if live > 0 && live2 > 0 {
		n++ // the comma between them
	}
	return 2 + n + n2 + len(f.tail)
}

// appendJSON writes the event's members as set, obj's then those added,
// as object.appendJSON writes one object of them, with tail after the
// context's value.
func (f *fields) appendJSON(buf []byte) []byte {
	// The members are obj's then extra's; tail goes after the first at of
	// them (all when there is none), split into o of obj's and e of extra's.
	at := len(f.obj) + len(f.extra)
	if f.tail != nil {
		at = f.pos[fContext] + 1 // set (set and del clear tail)
	}
	o, e := min(at, len(f.obj)), max(at-len(f.obj), 0)
	buf, first := f.obj[:o].appendMembers(append(buf, '{'), true)
	buf, first = f.extra[:e].appendMembers(buf, first)
	buf = append(buf, f.tail...)
	buf, first = f.obj[o:].appendMembers(buf, first)
	buf, _ = f.extra[e:].appendMembers(buf, first)
	return append(buf, '}')
}

// scratch is Normalize's working memory, reused through scratchPool: the
// event's members, context's members, and the values capstan writes. Nothing
// in it outlives the call (the stored document is a copy).
type scratch struct {
	obj object
	ctx object
	buf []byte
}

var scratchPool = sync.Pool{New: func() any {
	return &scratch{obj: make(object, 0, 32), ctx: make(object, 0, 16), buf: make([]byte, 0, 512)}
}}

// id applies rule 4 to v, the id under field k: "" when absent or null, a
// number made its decimal string (lit, its literal, is then the field's
// new value), any other kind a drop. A string is taken from a's id chunk
// (nil: allocated alone). It does not set the field itself: a call given
// the fields would move normalize's members to the heap (escape analysis).
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

// context returns the members of the context object c: ctx when split
// (it holds them already), else c split into sc.ctx.
func (sc *scratch) context(c []byte, ctx object, split bool) object {
	if split {
		return ctx
	}
	co, _ := parseObjectInto(sc.ctx, c)
	sc.ctx = co
	return co
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
	sc.buf = appendQuotedTime(sc.buf, t)
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

// withIP writes the context object c, whose members are co (none of them
// ip), with a last member ip added, to the scratch buffer and returns it;
// co is not changed (ip is appended past its length, to a copy when co
// has no room). When c is written as
// co.appendJSON writes it (no space between its members, no repeated key:
// then and only then is co's JSON as long as c), c is copied with the ip
// spliced in before its closing brace, not written member by member: the
// same bytes.
func (sc *scratch) withIP(c []byte, co object, ip string) []byte {
	if tail := sc.ipTail(c, co, ip); tail != nil {
		start := len(sc.buf)
		sc.buf = append(sc.buf, c[:len(c)-1]...)
		sc.buf = append(sc.buf, tail...)
		return sc.buf[start:len(sc.buf):len(sc.buf)]
	}
	co.set("ip", sc.quoted(ip))
	start := len(sc.buf)
	sc.buf = co.appendJSON(sc.buf)
	return sc.buf[start:len(sc.buf):len(sc.buf)]
}

// ipTail returns what withIP writes after c's members when it copies c
// (the ip member and the closing brace, `,"ip":"…"}`), written to the
// scratch buffer; nil when withIP writes c member by member instead (c
// not written as co.appendJSON writes it, or no members).
func (sc *scratch) ipTail(c []byte, co object, ip string) []byte {
	if len(co) == 0 || co.jsonLen() != len(c) {
		return nil
	}
	start := len(sc.buf)
	sc.buf = append(sc.buf, `,"ip":`...)
	sc.buf = append(appendQuoted(sc.buf, ip), '}')
	return sc.buf[start:len(sc.buf):len(sc.buf)]
}

// release returns sc to the pool, unless an unusually large event grew it.
func (sc *scratch) release() {
	if cap(sc.obj) > 1024 || cap(sc.ctx) > 1024 || cap(sc.buf) > 64<<10 {
		return
	}
	// The members still point into the caller's bytes until the next use;
	// clearing them costs more than holding those bytes until the pool is
	// emptied at the next garbage collections.
	sc.obj, sc.ctx, sc.buf = sc.obj[:0], sc.ctx[:0], sc.buf[:0]
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
	if kind(v) != 's' {
		return time.Time{}, false
	}
	if t, ok := parseUTCTime(v[1 : len(v)-1]); ok {
		return t, true
	}
	return ParseTime(decodeString(v))
}

// canonicalTimeLen is the length of a literal appendQuotedTime writes for
// years 0 to 9999: "2006-01-02T15:04:05.000Z", quotes included.
const canonicalTimeLen = len(`"` + TimeLayout + `"`)

// timeValue is parseTimeValue that also returns v as the time's literal
// when v is written exactly as appendQuotedTime writes the time it holds
// (TimeLayout, milliseconds, UTC), as the timestamps of Segment's
// libraries are; otherwise the literal is nil and the caller formats it.
func timeValue(v []byte) (time.Time, []byte, bool) {
	if len(v) == canonicalTimeLen && v[0] == '"' && v[20] == '.' {
		if t, ok := parseUTCTime(v[1 : len(v)-1]); ok {
			return t, v[:len(v):len(v)], true
		}
	}
	t, ok := parseTimeValue(v)
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
	if len(b) < 20 || len(b) > 30 || b[4] != '-' || b[7] != '-' || b[10] != 'T' ||
		b[13] != ':' || b[16] != ':' || b[len(b)-1] != 'Z' {
		return time.Time{}, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hour, ok4 := digits(b[11:13])
	minute, ok5 := digits(b[14:16])
	sec, ok6 := digits(b[17:19])
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 ||
		month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
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
	if day > daysIn(month, year) { // time.Date would normalise it
		return time.Time{}, false
	}
	// time.Date's instant, counted directly (time.Date normalises each
	// field and looks the zone up first).
	secs := unixDays(year, month, day)*86400 + int64(hour*3600+minute*60+sec)
	return time.Unix(secs, int64(nsec)).UTC(), true
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

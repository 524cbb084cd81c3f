package event

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"strings"
	"time"
	"unicode/utf8"
)

// member is one key/value pair of a JSON object; Value is the raw JSON text.
type member struct {
	// Key is the decoded key when it differs from rawKey's text (escapes) or
	// when capstan added the member; otherwise "" and rawKey is the key.
	Key    string
	rawKey []byte // the key as written, quotes included; nil for keys capstan adds
	Value  []byte
}

// is reports whether the member's key is key, without allocating.
func (m *member) is(key string) bool {
	if m.Key != "" || m.rawKey == nil {
		return m.Key == key
	}
	return string(m.rawKey[1:len(m.rawKey)-1]) == key
}

// span is one member of an object as offsets into the text it was split
// from: its key as written, quotes included, at text[key:keyEnd], its
// value at text[val:end]. It holds no pointer: appending spans to a
// pooled slice, or copying them, runs none of the GC's write barriers, and
// the GC does not scan a slice of them. The members of a request's events
// are spans into its body (Body.members); Normalize reads them in place
// (fields) and writes the values it sets from elsewhere.
type span struct {
	key, keyEnd, val, end int32
	// esc reports that the key holds escapes: it is compared decoded.
	esc bool
}

// rawKey returns the key as written, quotes included.
func (s *span) rawKey(text []byte) []byte { return text[s.key:s.keyEnd] }

// value returns the value's raw JSON text.
func (s *span) value(text []byte) []byte { return text[s.val:s.end] }

// is reports whether the member's key is key, allocating only for a key
// with escapes.
func (s *span) is(text []byte, key string) bool {
	if s.esc {
		return decodeString(s.rawKey(text)) == key
	}
	return int(s.keyEnd-s.key)-2 == len(key) && string(text[s.key+1:s.keyEnd-1]) == key
}

// indexSpan returns the index of the member of o whose key is m's, or -1.
// Keys without escapes are compared as written.
func indexSpan(text []byte, o []span, m *span) int {
	k := m.rawKey(text)
	if m.esc {
		key := decodeString(k)
		for i := len(o) - 1; i >= 0; i-- {
			if o[i].is(text, key) {
				return i
			}
		}
		return -1
	}
	n := m.keyEnd - m.key
	for i := len(o) - 1; i >= 0; i-- {
		s := &o[i]
		if s.esc {
			if s.is(text, string(k[1:len(k)-1])) {
				return i
			}
		} else if s.keyEnd-s.key == n && string(text[s.key:s.keyEnd]) == string(k) {
			return i
		}
	}
	return -1
}

// keyBit maps the key of m, a member of b, to one bit of a uint64, the same
// for the same key: its length and last byte as written. A key with
// escapes maps to every bit (it may equal any key once decoded).
func keyBit(b []byte, m *span) uint64 {
	if m.esc {
		return ^uint64(0)
	}
	return 1 << ((uint(m.keyEnd-m.key) + 7*uint(b[m.keyEnd-2])) & 63)
}

// spanGet returns the raw value of key among the members o of text, or nil.
func spanGet(text []byte, o []span, key string) []byte {
	for i := len(o) - 1; i >= 0; i-- {
		if o[i].is(text, key) {
			return o[i].value(text)
		}
	}
	return nil
}

// spansLen is the length of the JSON object of the members o of text,
// written as object.appendJSON writes them (keys as written, no space).
func spansLen(o []span) int {
	n := 2 + max(len(o)-1, 0) // braces and commas
	for i := range o {
		n += int(o[i].keyEnd-o[i].key) + 1 + int(o[i].end-o[i].val)
	}
	return n
}

// spansObject returns the members o of text as an object, for the code
// that changes members or merges objects (rare on ingest's path).
func spansObject(text []byte, o []span) object {
	obj := make(object, len(o), len(o)+1)
	for i := range o {
		s := &o[i]
		obj[i] = member{rawKey: s.rawKey(text), Value: s.value(text)}
		if s.esc {
			obj[i].Key = decodeString(obj[i].rawKey)
		}
	}
	return obj
}

// object is a JSON object as an ordered list of members. A member whose
// Value is nil has been deleted (fields.del): it is skipped by lookups and
// by appendJSON (deleting in place spares moving the members after it).
type object []member

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipSpace returns the index of the first byte from b[i] that is not
// white space. Most calls find none (compact JSON): the one compare with ' '
// sends every other byte out of the loop.
func skipSpace(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' && isSpace(b[i]) {
		i++
	}
	return i
}

// strPlain marks the bytes that may appear in a JSON string as they are
// and are ASCII: all but control characters, the quote, the backslash and
// the bytes of UTF-8's multi-byte sequences, which validEscString checks
// one sequence at a time.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// strStop is strSpecial that also flags the bytes at or above 0x80, the
// bytes of the multi-byte sequences validEscString checks: non-zero when one of
// the eight bytes of x is not strPlain. Its lowest flag is always a real
// one, as strSpecial's is: the high bytes are flagged as they are (ORing x
// in, before the mask, in place of the &^x that drops them from
// strSpecial's differences).
func strStop(x uint64) uint64 {
	q := x ^ (0x02 * ones)
	b := x ^ ('\\' * ones)
	return ((q - 0x21*ones) | (b - ones) | x) & highs
}

// validJSON reports whether b is one valid JSON value, and how deeply it
// nests (see validValue). It accepts what json.Valid accepts, except that
// it sets no nesting limit (encoding/json refuses more than 10000 levels,
// capstan drops an event deeper than MaxDepth with its own code) and that
// it refuses invalid UTF-8 in strings, as utf8.Valid does (encoding/json
// accepts it there): a value it accepts is valid UTF-8 throughout.
func validJSON(b []byte) (valid bool, depth int) {
	end, depth := validValue(b, skipSpace(b, 0))
	return end >= 0 && skipSpace(b, end) == len(b), depth
}

// validValue checks the JSON value at b[i] and returns the index just past
// it, or -1, and its depth: how many objects and arrays are open at its
// deepest point, itself included (0 for a scalar, 1 for {"a":1}). Syntax is
// checked at any depth, with a stack of one byte per open container (a
// 512000-byte body holds at most 256000); it allocates only for nesting
// deeper than 64 levels.
func validValue(b []byte, i int) (end, depth int) {
	var stackBuf [64]byte
	stack := stackBuf[:0] // '{' or '[' for each container it opened
	var c byte
	// Three states, jumped between: a value starts at b[i] (value), one
	// ended just before b[i] (next), a member's key starts at b[i] (key).
value:
	if i >= len(b) {
		return -1, depth
	}
	switch c = b[i]; {
	case c == '"': // the most frequent value first
		if i, _ = validEscString(b, i); i < 0 {
			return -1, depth
		}
	case c == '{' || c == '[':
		depth = max(depth, len(stack)+1)
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == c+2 { // '}' or ']'
			i++
			break
		}
		stack = append(stack, c)
		if c == '{' {
			goto key
		}
		goto value
	case c == '-' || c >= '0' && c <= '9':
		if i = validNumber(b, i); i < 0 {
			return -1, depth
		}
	case c == 't':
		if len(b)-i < 4 || string(b[i:i+4]) != "true" {
			return -1, depth
		}
		i += 4
	case c == 'f':
		if len(b)-i < 5 || string(b[i:i+5]) != "false" {
			return -1, depth
		}
		i += 5
	case c == 'n':
		if len(b)-i < 4 || string(b[i:i+4]) != "null" {
			return -1, depth
		}
		i += 4
	default:
		return -1, depth
	}
next:
	// Close containers, or go on to the next element.
	if len(stack) == 0 {
		return i, depth
	}
	if i = skipSpace(b, i); i >= len(b) {
		return -1, depth
	}
	if c = stack[len(stack)-1]; b[i] == c+2 {
		stack = stack[:len(stack)-1]
		i++
		goto next
	}
	if b[i] != ',' {
		return -1, depth
	}
	i = skipSpace(b, i+1)
	if c == '[' {
		goto value
	}
key:
	// A key, its colon (mostly right after it) and the space before the value.
	if i >= len(b) || b[i] != '"' {
		return -1, depth
	}
	if i, _ = validEscString(b, i); i < 0 {
		return -1, depth
	}
	if i < len(b) && b[i] == ':' {
		i++
	} else if i = skipSpace(b, i); i < len(b) && b[i] == ':' {
		i++
	} else {
		return -1, depth
	}
	i = skipSpace(b, i)
	goto value
}

// split is a request body as splitBody found it.
type split struct {
	// obj holds the members of the top-level object of a batch; nil when
	// the body is JSON but not an object, or is a single event's (split as
	// items[0]).
	obj object
	// isObj reports that the body is a JSON object.
	isObj bool
	// elems are the elements of the array under the key splitBody was
	// asked for, in the member that the object keeps (the last one); nil
	// when that value is not an array (or when the key is "").
	elems [][]byte
	// depths[i] is how deeply elems[i] nests (see validValue).
	depths []int
	// items[i] says where members holds the members of elems[i] and of
	// its context, found while checking them (see itemSplit): spans of
	// the body's text.
	items   []itemSplit
	members []span
	// ctx is the buffer in which validItem splits an item's context.
	ctx []span
	// depth is how deeply the whole body nests.
	depth int
}

// itemSplit is where one batch item's members are in split.members, so
// that Normalize need not scan the item again: its own at [obj, objEnd)
// (obj < 0 when the item is not an object), then those of the object its
// context member holds at [ctx, ctxEnd) (ctx < 0 when it holds none).
type itemSplit struct {
	obj, objEnd, ctx, ctxEnd int32
}

// splitBody checks b the way json.Valid does (but at any depth, see
// validJSON) and, when it is an object, splits it into members
// (parseObject's result, appended to s.obj[:0]) in the same pass, and the
// array under key into its elements (validArray; s's slices are reused).
// A single event's object (key "") is split as a batch's item is, into
// s.members and s.items[0]. valid is false when b is not JSON.
func splitBody(s split, b []byte, key string) (_ split, valid bool) {
	obj := s.obj
	s.obj = nil
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		valid, s.depth = validJSON(b)
		s.elems, s.depths, s.items = nil, nil, nil
		return s, valid
	}
	if key == "" {
		// A single event: checked and split as a batch's item is, its
		// members then its context's in s.members.
		o, ctx, ctxVal, end, depth := validItem(b, i, s.members[:0], 0, s.ctx[:0])
		if end < 0 || skipSpace(b, end) != len(b) {
			return split{}, false
		}
		it := itemSplit{obj: 0, objEnd: int32(len(o)), ctx: -1}
		if keptContext(b, o, ctxVal) {
			it.ctx = int32(len(o))
			o = append(o, ctx...)
			it.ctxEnd = int32(len(o))
		}
		s.members, s.ctx, s.isObj, s.depth = o, ctx, true, depth
		s.items = append(s.items[:0], it)
		s.elems, s.depths = nil, nil
		return s, true
	}
	if obj == nil {
		obj = make(object, 0, 16)
	}
	obj = obj[:0]
	s.depth = 1
	elemsAt := -1 // index in b of the array that elems splits
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		s.obj, s.isObj = obj, true
		s.elems, s.depths, s.items = nil, nil, nil
		return s, skipSpace(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return split{}, false
		}
		end, esc := validEscString(b, i)
		if end < 0 {
			return split{}, false
		}
		m := member{rawKey: b[i:end]}
		if esc {
			m.Key = decodeString(m.rawKey)
		}
		if i = skipSpace(b, end); i >= len(b) || b[i] != ':' {
			return split{}, false
		}
		i = skipSpace(b, i+1)
		var vend, d int
		if key != "" && i < len(b) && b[i] == '[' && m.is(key) {
			if vend = validArray(b, i, &s); vend < 0 {
				return split{}, false
			}
			elemsAt = i
			d = 1
			for _, ed := range s.depths {
				d = max(d, 1+ed)
			}
		} else if vend, d = validValue(b, i); vend < 0 {
			return split{}, false
		}
		s.depth = max(s.depth, 1+d)
		m.Value = b[i:vend]
		obj.put(m)
		if i = skipSpace(b, vend); i >= len(b) {
			return split{}, false
		}
		if b[i] == '}' {
			break
		}
		if b[i] != ',' {
			return split{}, false
		}
		i = skipSpace(b, i+1)
	}
	if skipSpace(b, i+1) != len(b) {
		return split{}, false
	}
	s.obj, s.isObj = obj, true
	if v := obj.get(key); len(v) == 0 || elemsAt < 0 || &v[0] != &b[elemsAt] {
		s.elems, s.depths, s.items = nil, nil, nil // the kept value is another one, or not an array
	}
	return s, true
}

// validArray checks the array at b[i], a member of the top-level object, and
// puts its elements in s.elems (their depths in s.depths), splitting those
// that are objects into s.members (s.items), all three reset first. It
// returns the index just past the array, or -1.
func validArray(b []byte, i int, s *split) int {
	i = skipSpace(b, i+1)
	if s.elems == nil {
		s.elems = make([][]byte, 0, 16)
		s.depths = make([]int, 0, 16)
		s.items = make([]itemSplit, 0, 16)
	}
	s.elems, s.depths, s.items, s.members = s.elems[:0], s.depths[:0], s.items[:0], s.members[:0]
	if i < len(b) && b[i] == ']' {
		return i + 1
	}
	for {
		var end, d int
		it := itemSplit{obj: -1, ctx: -1}
		if i < len(b) && b[i] == '{' {
			var ctxVal []byte
			start := len(s.members)
			s.members, s.ctx, ctxVal, end, d = validItem(b, i, s.members, start, s.ctx[:0])
			if end < 0 {
				s.members = s.members[:start]
			} else {
				it.obj = int32(start)
				it.objEnd = int32(len(s.members))
				if keptContext(b, s.members[start:], ctxVal) {
					it.ctx = int32(len(s.members))
					s.members = append(s.members, s.ctx...)
					it.ctxEnd = int32(len(s.members))
				}
			}
		} else {
			end, d = validValue(b, i)
		}
		if end < 0 {
			return -1
		}
		s.elems = append(s.elems, b[i:end])
		s.depths = append(s.depths, d)
		s.items = append(s.items, it)
		if i = skipSpace(b, end); i >= len(b) {
			return -1
		}
		if b[i] == ']' {
			return i + 1
		}
		if b[i] != ',' {
			return -1
		}
		i = skipSpace(b, i+1)
	}
}

// keptContext reports whether ctxVal, the context object validItem split,
// is the value obj, members of b, keeps under context (no later member
// replaced it).
func keptContext(b []byte, obj []span, ctxVal []byte) bool {
	if ctxVal == nil {
		return false
	}
	v := spanGet(b, obj, "context")
	return len(v) == len(ctxVal) && &v[0] == &ctxVal[0]
}

// validItem checks the object at b[i] (b[i] is '{') as validValue does and
// splits it as parseObject does, appending its members, spans of b, to obj
// (whose members before start are another object's); the value of its
// (last) member context, when that is an object, is split into ctx[:0]
// too, and ctxVal is its text (nil when no context object was split). end
// is the index just past the object, or -1; depth is as validValue's.
func validItem(b []byte, i int, obj []span, start int, ctx []span) (_, _ []span, ctxVal []byte, end, depth int) {
	depth = 1
	// seen holds the keyBit of each key so far: a key whose bit is not
	// in it is new, and is not compared with the others.
	var seen uint64
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return obj, ctx, nil, i + 1, depth
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return obj, ctx, nil, -1, depth
		}
		kend, esc := validEscString(b, i)
		if kend < 0 {
			return obj, ctx, nil, -1, depth
		}
		m := span{key: int32(i), keyEnd: int32(kend), esc: esc}
		if i = skipSpace(b, kend); i >= len(b) || b[i] != ':' {
			return obj, ctx, nil, -1, depth
		}
		i = skipSpace(b, i+1)
		var vend, d int
		switch {
		case i < len(b) && b[i] == '"':
			vend = validString(b, i) // as validValue, depth 0, without its setup
		case i < len(b) && (b[i] == '-' || isDigit(b[i])):
			vend = validNumber(b, i) // likewise
		case i < len(b) && b[i] == '{' && m.is(b, "context"):
			var c []span
			if c, _, _, vend, d = validItem(b, i, ctx[:0], 0, nil); vend >= 0 {
				ctx, ctxVal = c, b[i:vend]
			}
		default:
			vend, d = validValue(b, i)
		}
		if vend < 0 {
			return obj, ctx, nil, -1, depth
		}
		depth = max(depth, 1+d)
		m.val, m.end = int32(i), int32(vend)
		bit := keyBit(b, &m)
		k := -1
		if seen&bit != 0 {
			k = indexSpan(b, obj[start:], &m)
		}
		seen |= bit
		if k >= 0 {
			// A repeated key: the last value, in the first place.
			obj[start+k].val, obj[start+k].end = m.val, m.end
		} else {
			obj = append(obj, m)
		}
		if i = skipSpace(b, vend); i >= len(b) {
			return obj, ctx, nil, -1, depth
		}
		if b[i] == '}' {
			return obj, ctx, ctxVal, i + 1, depth
		}
		if b[i] != ',' {
			return obj, ctx, nil, -1, depth
		}
		i = skipSpace(b, i+1)
	}
}

// validString checks the string literal at b[i] and returns the index just
// past it, or -1. Runs of plain bytes (strPlain) are skipped 8 at a time
// (strStop, as the Value parser does with strSpecial).
func validString(b []byte, i int) int {
	end, _ := validEscString(b, i)
	return end
}

// validEscString is validString that also reports whether the literal holds
// an escape sequence: an object key's caller decodes only those, and need
// not scan the key again for a backslash. It refuses a string that is not
// valid UTF-8 (as utf8.Valid does), so that checking a request body takes
// one pass over its strings' bytes, not a second one for UTF-8.
func validEscString(b []byte, i int) (end int, escaped bool) {
	for i++; ; i++ {
		// Eight bytes at a time: strStop's lowest flag is always a
		// real stop byte (a false flag only follows a real one), so
		// the run ends exactly there, with no byte-wise loop.
		if uint(i) < uint(len(b)) {
			// From i by 8 while under len(b)-7, i known in b: the
			// compiler sees that each word is in b, and checks none.
			k := i
			for ; k < len(b)-7; k += 8 {
				if m := strStop(binary.LittleEndian.Uint64(b[k : k+8 : k+8])); m != 0 {
					i = k + bits.TrailingZeros64(m)>>3
					if b[i] == '"' { // the usual end, ahead of the switch
						return i + 1, escaped
					}
					goto special
				}
			}
			i = k
		}
		for i < len(b) && strPlain[b[i]] {
			i++
		}
		if i >= len(b) {
			return -1, escaped
		}
	special:
		switch c := b[i]; {
		case c == '"':
			return i + 1, escaped
		case c == '\\':
			escaped = true
			i++
			if i >= len(b) {
				return -1, escaped
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) {
					return -1, escaped
				}
				i += 4
			default:
				return -1, escaped
			}
		case c >= utf8.RuneSelf:
			// A multi-byte sequence, checked as utf8.Valid checks
			// one (no overlong form, surrogate, or rune above
			// U+10FFFF: the second byte's range depends on the
			// first), here rather than by a call (utf8.DecodeRune):
			// a call would cost this function, which calls nothing,
			// a frame and a stack check on every string.
			n, lo, hi := 0, byte(0x80), byte(0xbf)
			switch {
			case c >= 0xc2 && c <= 0xdf:
				n = 2
			case c == 0xe0:
				n, lo = 3, 0xa0
			case c == 0xed:
				n, hi = 3, 0x9f
			case c >= 0xe1 && c <= 0xef:
				n = 3
			case c == 0xf0:
				n, lo = 4, 0x90
			case c >= 0xf1 && c <= 0xf3:
				n = 4
			case c == 0xf4:
				n, hi = 4, 0x8f
			default:
				return -1, escaped
			}
			if i+n > len(b) || b[i+1] < lo || b[i+1] > hi {
				return -1, escaped
			}
			for k := i + 2; k < i+n; k++ {
				if b[k]&0xc0 != 0x80 {
					return -1, escaped
				}
			}
			i += n - 1
		default: // control character
			return -1, escaped
		}
	}
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// validNumber checks the number at b[i] and returns the index just past it,
// or -1. What follows is checked by the caller. It serves both raw JSON
// (validValue) and the Value parser, on bytes and on strings.
func validNumber[T string | []byte](b T, i int) int {
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b) || !isDigit(b[i]):
		return -1
	case b[i] == '0':
		i++
	default:
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i
}

// skipValue returns the index just past the JSON value starting at b[i].
// b must be valid JSON (checked once per request with validJSON).
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return i
	default: // number, true, false, null
		for i < len(b) && !isSpace(b[i]) && b[i] != ',' && b[i] != '}' && b[i] != ']' {
			i++
		}
		return i
	}
}

func skipString(b []byte, i int) int {
	// Most strings (keys, ids) are short: a plain loop ends them sooner
	// than a call to IndexByte would.
	j := i + 1
	for n := min(len(b), j+16); j < n; j++ {
		switch b[j] {
		case '"':
			return j + 1
		case '\\':
			j++
		}
	}
	// Find each candidate closing quote with IndexByte (vectorised), then
	// check that it is not escaped: an even number of backslashes before it.
	for j < len(b) {
		q := bytes.IndexByte(b[j:], '"')
		if q < 0 {
			return len(b)
		}
		end := j + q
		n := 0
		for k := end - 1; k > i && b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return end + 1
		}
		j = end + 1
	}
	return len(b)
}

// parseObject splits a valid JSON object into its members. Repeated keys keep
// the last value (as JavaScript's JSON.parse does). ok is false when raw is
// not an object. It is parseSpansInto's split, as members: for the cold
// paths that change or merge objects (mergeDeep, mergeShallow).
func parseObject(raw []byte) (obj object, ok bool) {
	o, ok := parseSpansInto(nil, raw)
	if !ok {
		return nil, false
	}
	return spansObject(raw, o), true
}

// parseSpansInto splits the valid JSON object raw into spans of raw,
// appended to o[:0]; repeated keys keep the last value, in the first
// key's place. ok is false when raw is not an object.
func parseSpansInto(o []span, raw []byte) ([]span, bool) {
	o = o[:0]
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return o, false
	}
	i = skipSpace(raw, i+1)
	for i < len(raw) && raw[i] != '}' {
		end := skipString(raw, i)
		m := span{key: int32(i), keyEnd: int32(end), esc: bytes.IndexByte(raw[i:end], '\\') >= 0}
		i = skipSpace(raw, end)
		i = skipSpace(raw, i+1) // ':'
		vend := skipValue(raw, i)
		m.val, m.end = int32(i), int32(vend)
		if k := indexSpan(raw, o, &m); k >= 0 {
			o[k].val, o[k].end = m.val, m.end
		} else {
			o = append(o, m)
		}
		i = skipSpace(raw, vend)
		if i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return o, true
}

// decodeString decodes a JSON string literal (quotes included).
func decodeString(lit []byte) string {
	if bytes.IndexByte(lit, '\\') < 0 && len(lit) >= 2 {
		return string(lit[1 : len(lit)-1])
	}
	var s string
	_ = json.Unmarshal(lit, &s)
	return s
}

func (o object) index(key string) int {
	for i := len(o) - 1; i >= 0; i-- {
		if o[i].Value != nil && o[i].is(key) {
			return i
		}
	}
	return -1
}

// indexOf finds a member with the same key as m.
func (o object) indexOf(m *member) int {
	if m.Key != "" || m.rawKey == nil {
		return o.index(m.Key)
	}
	for i := len(o) - 1; i >= 0; i-- {
		if o[i].Value == nil {
			continue
		}
		if o[i].Key == "" && o[i].rawKey != nil {
			if bytes.Equal(o[i].rawKey, m.rawKey) {
				return i
			}
		} else if o[i].is(m.key()) {
			return i
		}
	}
	return -1
}

// put sets m's value under m's key, keeping the key as written.
func (o *object) put(m member) {
	if i := o.indexOf(&m); i >= 0 {
		(*o)[i].Value = m.Value
		return
	}
	*o = append(*o, m)
}

// key returns the member's decoded key.
func (m *member) key() string {
	if m.Key != "" || m.rawKey == nil {
		return m.Key
	}
	return string(m.rawKey[1 : len(m.rawKey)-1])
}

// get returns the raw value of key, or nil.
func (o object) get(key string) []byte {
	if i := o.index(key); i >= 0 {
		return o[i].Value
	}
	return nil
}

// set replaces the value of key in place, or appends it.
func (o *object) set(key string, v []byte) {
	if i := o.index(key); i >= 0 {
		(*o)[i].Value = v
		return
	}
	*o = append(*o, member{Key: key, Value: v})
}

// appendJSON writes the object as compact-at-top-level JSON; member values
// are copied verbatim. Consecutive members that are written so in the
// text they were split from (each key, ':' and value, then ',' and the
// next key) are copied in one piece, as a run of that text.
func (o object) appendJSON(buf []byte) []byte {
	buf, _ = o.appendMembers(append(buf, '{'), true)
	return append(buf, '}')
}

// appendMembers is appendJSON's members, the first of them preceded by a
// comma unless first; first is returned false once a member is written.
func (o object) appendMembers(buf []byte, first bool) ([]byte, bool) {
	var run []byte // source text of the members still to copy
	for i := range o {
		m := &o[i]
		if m.Value == nil {
			continue
		}
		if w := m.text(); w != nil {
			if run != nil {
				if r, ok := extend(run, w); ok {
					run = r
					continue
				}
				buf = append(buf, run...)
			}
			if !first {
				buf = append(buf, ',')
			}
			first = false
			run = w
			continue
		}
		if run != nil {
			buf = append(buf, run...)
			run = nil
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		if m.rawKey != nil {
			buf = append(buf, m.rawKey...)
		} else {
			buf = appendQuoted(buf, m.key())
		}
		buf = append(buf, ':')
		buf = append(buf, m.Value...)
	}
	return append(buf, run...), first
}

// text returns the member as written where it was split from: its key as
// written, ':' and its value, when they follow one another in one array
// (no space around the colon); nil otherwise (capstan's members, values
// replaced).
func (m *member) text() []byte {
	k, n := m.rawKey, len(m.rawKey)
	if n == 0 || cap(k) < n+1+len(m.Value) || len(m.Value) == 0 {
		return nil
	}
	t := k[:n+1+len(m.Value)]
	if t[n] != ':' || &t[n+1] != &m.Value[0] {
		return nil
	}
	return t
}

// extend returns run with ',' and w after it when that is how they are
// written in their array (w follows run and a comma), and false
// otherwise.
func extend(run, w []byte) ([]byte, bool) {
	n := len(run)
	if cap(run) < n+1+len(w) {
		return nil, false
	}
	t := run[:n+1+len(w)]
	if t[n] != ',' || &t[n+1] != &w[0] {
		return nil, false
	}
	return t, true
}

// kind classifies a raw JSON value by its first byte.
func kind(v []byte) byte {
	if len(v) == 0 {
		return 0
	}
	switch v[0] {
	case 'n':
		return 'n' // null
	case 't', 'f':
		return 'b'
	case '"':
		return 's'
	case '{':
		return 'o'
	case '[':
		return 'a'
	default:
		return 'd' // digit or '-'
	}
}

// quote returns s as a JSON string literal.
func quote(s string) []byte {
	if !plainString(s) {
		// A copy: s given to Marshal would escape, and with it the
		// fields that normalize keeps on its stack (rare: keys and
		// values that need escapes).
		b, _ := json.Marshal(strings.Clone(s))
		return b
	}
	b := make([]byte, len(s)+2)
	b[0] = '"'
	copy(b[1:], s)
	b[len(b)-1] = '"'
	return b
}

// plainString reports whether s is its own JSON string literal's content:
// quote adds only the quotes.
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// appendQuoted appends quote(s) to b, allocating only for strings that
// need escapes.
func appendQuoted(b []byte, s string) []byte {
	if !plainString(s) {
		return append(b, quote(s)...)
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// mergeDeep returns base with over's members merged in; over wins at every
// level, and nested objects present in both are merged recursively.
func mergeDeep(base, over []byte) []byte {
	bo, ok1 := parseObject(base)
	oo, ok2 := parseObject(over)
	if !ok1 || !ok2 {
		return over
	}
	for _, m := range oo {
		if i := bo.indexOf(&m); i >= 0 && kind(bo[i].Value) == 'o' && kind(m.Value) == 'o' {
			bo[i].Value = mergeDeep(bo[i].Value, m.Value)
			continue
		}
		bo.put(m)
	}
	return bo.appendJSON(nil)
}

// mergeShallow returns base with over's top-level members set over it.
func mergeShallow(base, over []byte) []byte {
	bo, ok1 := parseObject(base)
	oo, ok2 := parseObject(over)
	if !ok1 || !ok2 {
		return over
	}
	for _, m := range oo {
		bo.put(m)
	}
	return bo.appendJSON(nil)
}

// appendQuotedTime appends t as a JSON string in TimeLayout. It writes the
// digits itself (time.AppendFormat parses its layout on every call) and
// leaves years outside 0-9999 to AppendFormat.
func appendQuotedTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		b = append(b, '"')
		b = t.AppendFormat(b, TimeLayout)
		return append(b, '"')
	}
	h, mi, s := t.Clock()
	ms := t.Nanosecond() / 1e6
	return append(b, '"',
		byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+int(mo)/10), byte('0'+int(mo)%10), '-',
		byte('0'+d/10), byte('0'+d%10), 'T',
		byte('0'+h/10), byte('0'+h%10), ':',
		byte('0'+mi/10), byte('0'+mi%10), ':',
		byte('0'+s/10), byte('0'+s%10), '.',
		byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z', '"')
}

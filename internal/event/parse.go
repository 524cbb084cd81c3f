package event

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// SyntaxError is a JSON syntax error found by [Parse] or [ParseString].
type SyntaxError struct {
	Offset int    // byte offset of the problem in the input
	Msg    string // what is wrong there, e.g. "invalid number"
}

// Error returns the message with its offset: "invalid JSON at offset 3:
// ...".
func (e *SyntaxError) Error() string {
	return "invalid JSON at offset " + strconv.Itoa(e.Offset) + ": " + e.Msg
}

// Parse parses one JSON value (RFC 8259; surrounding whitespace allowed) into
// an order-preserving [Value]. It copies data once, so the caller may reuse
// data afterwards. Invalid UTF-8 is replaced by U+FFFD, as encoding/json does.
// JSON nested deeper than [MaxDepth] is a *SyntaxError, so that ingest's
// limit and the parser's are one: every stored event parses.
//
// Parsing costs a handful of allocations whatever the size of the document:
// one copy of the text (strings and numbers are slices of it), one array
// for all object members and array elements, and one per string that holds
// escape sequences.
func Parse(data []byte) (Value, error) {
	return ParseString(string(data))
}

// ParseString is [Parse] for text already held in a string; it does not copy
// the text, and the returned Value refers to it.
func ParseString(s string) (Value, error) {
	p := parserPool.Get().(*parser)
	v, err := p.parse(s)
	p.reset()
	parserPool.Put(p)
	return v, err
}

var parserPool = sync.Pool{New: func() any { return new(parser) }}

// An Arena holds the members of the documents it parses, for a caller that
// parses many documents and is done with all of them at once (delivery
// parses the events of one chunk, observes and converts them, then takes
// the next chunk). [Parse] allocates the members of each document anew
// (~2 KiB for a browser track event, zeroed and scanned by the GC); an
// Arena hands them out of one reused block, which [Arena.Reset] recycles.
//
// A Value from [Arena.ParseString] is valid until the next Reset: its
// objects and arrays are the Arena's memory, which the parses after Reset
// overwrite, so no Value, nor any Value within it, may be kept past
// Reset. Its strings are the parsed text's (or its own, when they
// held escapes) and stay valid. The zero Arena is ready to use; it is not
// safe for concurrent use.
type Arena struct {
	m []Member // len: the members handed out since Reset
}

// arenaBlock is the smallest block an Arena allocates, in members (64 KiB):
// about one delivery chunk of browser events (64 events of ~28 members).
const arenaBlock = 1024

// arenaKeep bounds the block Reset keeps for reuse, in members (4 MiB):
// a larger one (huge documents) is left to the GC.
const arenaKeep = 1 << 16

// ParseString is [ParseString] with the document's members taken from a.
func (a *Arena) ParseString(s string) (Value, error) {
	p := parserPool.Get().(*parser)
	p.from = a
	v, err := p.parse(s)
	p.reset()
	parserPool.Put(p)
	return v, err
}

// Reset ends the validity of every Value parsed from a so far, and lets the
// next parses reuse its memory. It does not clear it: the members left in
// the block keep the texts they were parsed from reachable until the next
// parses overwrite them or a is dropped (for delivery, one chunk's events
// per worker). Clearing cost a pass over the block with the GC's write
// barriers whenever it runs, for every reset.
func (a *Arena) Reset() {
	if cap(a.m) > arenaKeep {
		a.m = nil
		return
	}
	a.m = a.m[:0]
}

// block returns spare room for at least n members, to be appended to: the
// rest of a's block, or a new block that later parses use.
func (a *Arena) block(n int) []Member {
	if cap(a.m)-len(a.m) < n {
		// The old block stays referenced by the Values parsed into it
		// until they are dropped; a keeps only the new one.
		a.m = make([]Member, 0, max(n, 2*cap(a.m), arenaBlock))
	}
	return a.m[len(a.m):len(a.m)]
}

// took records that a parse used the first n members of block's room.
func (a *Arena) took(n int) { a.m = a.m[:len(a.m)+n] }

type parser struct {
	s       string
	i       int
	depth   int
	badUTF8 bool     // the input holds invalid UTF-8: check every string
	stack   []Member // members of the containers being parsed, innermost last
	arena   []Member // storage handed out to completed containers
	from    *Arena   // arena's owner; nil: arena is the document's own
	spilled bool     // arena was replaced (the estimate was short)
}

func (p *parser) reset() {
	clear(p.stack[:cap(p.stack)])
	p.stack = p.stack[:0]
	p.arena = nil
	p.from, p.spilled = nil, false
	p.s = ""
	if cap(p.stack) > 4096 {
		p.stack = nil // do not keep a huge scratch buffer in the pool
	}
}

func (p *parser) parse(s string) (Value, error) {
	p.s, p.i, p.depth = s, 0, 0
	p.badUTF8 = !utf8.ValidString(s)
	// Every array element or object member is followed by ',' or is the last
	// one of its container, so their count is at most the number of ','
	// plus the number of '[' and '{' (those inside strings only make the
	// bound looser). Members take at least two bytes of text.
	n := strings.Count(s, ",") + strings.Count(s, "{") + strings.Count(s, "[")
	if n = min(n, len(s)/2+1); n > 0 {
		if p.from != nil {
			p.arena = p.from.block(n)
		} else {
			p.arena = make([]Member, 0, n)
		}
	}
	v, err := p.value()
	if p.from != nil && n > 0 {
		// What this document took of the Arena's block, also when it
		// failed (its members are not reused before Reset either way);
		// after a spill, all of the block's room, part of it being used.
		if p.spilled {
			p.from.took(cap(p.from.m) - len(p.from.m))
		} else {
			p.from.took(len(p.arena))
		}
	}
	if err != nil {
		return Value{}, err
	}
	p.skipSpace()
	if p.i < len(p.s) {
		return Value{}, p.errorf("unexpected %s after top-level value", p.describe())
	}
	return v, nil
}

func (p *parser) errorf(format string, args ...any) error {
	return &SyntaxError{Offset: p.i, Msg: fmt.Sprintf(format, args...)}
}

// describe names the byte at the current position for error messages.
func (p *parser) describe() string {
	if p.i >= len(p.s) {
		return "end of input"
	}
	c := p.s[p.i]
	if c < 0x20 || c >= 0x7f {
		return "byte 0x" + strconv.FormatUint(uint64(c), 16)
	}
	return strconv.QuoteRune(rune(c))
}

func (p *parser) skipSpace() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value() (Value, error) {
	p.skipSpace()
	if p.i >= len(p.s) {
		return Value{}, p.errorf("unexpected end of input, expected a value")
	}
	switch c := p.s[p.i]; c {
	case '{':
		return p.object()
	case '[':
		return p.array()
	case '"':
		s, err := p.str()
		if err != nil {
			return Value{}, err
		}
		return Value{kind: String, s: s}, nil
	case 't':
		return p.word("true", Value{kind: Bool, flags: flagTrue})
	case 'f':
		return p.word("false", Value{kind: Bool})
	case 'n':
		return p.word("null", Value{kind: Null})
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return p.number()
		}
		return Value{}, p.errorf("unexpected %s, expected a value", p.describe())
	}
}

func (p *parser) word(w string, v Value) (Value, error) {
	if len(p.s)-p.i >= len(w) && p.s[p.i:p.i+len(w)] == w {
		p.i += len(w)
		return v, nil
	}
	return Value{}, p.errorf("invalid literal, expected %s", w)
}

func (p *parser) number() (Value, error) {
	end := validNumber(p.s, p.i)
	if end < 0 {
		return Value{}, p.errorf("invalid number")
	}
	start := p.i
	p.i = end
	return Value{kind: Number, s: p.s[start:end]}, nil
}

// str parses a string starting at the opening quote.
func (p *parser) str() (string, error) {
	p.i++ // opening quote
	start := p.i
	// Skip eight bytes at a time while none of them ends the plain run
	// (strSpecial); the lowest flag is the byte that does (a false flag
	// only follows a real one), where the loop below starts.
	for p.i+8 <= len(p.s) {
		if m := strSpecial(load64(p.s, p.i)); m != 0 {
			p.i += bits.TrailingZeros64(m) >> 3
			break
		}
		p.i += 8
	}
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			s := p.s[start:p.i]
			p.i++
			if p.badUTF8 && !utf8.ValidString(s) {
				return string(appendValidUTF8(nil, s)), nil
			}
			return s, nil
		case c == '\\':
			return p.strSlow(start)
		case c < 0x20:
			return "", p.errorf("control character %s in string", p.describe())
		}
		p.i++
	}
	return "", p.errorf("unterminated string")
}

// Byte-wise constants of strSpecial.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// strSpecial returns non-zero when one of the eight bytes of x is '"',
// '\\' or a control character (below 0x20): the bytes str stops at. It
// never misses one, and its lowest flag is always a real one: a borrow
// that flags a byte wrongly comes only from a real one below it.
//
// '"' and the control characters are found with one test: x^0x02 maps
// '"' to 0x20 and keeps the bytes below 0x20 below it, while the bytes it
// brings down to 0x20 or below are only those ('"'^0x02 is the only byte
// of 0x20-0x23 that lands under 0x21). A byte of x at or above 0x80 stays
// so in both differences (it borrows nothing): &^x drops it from both at once.
func strSpecial(x uint64) uint64 {
	q := x ^ (0x02 * ones)
	b := x ^ ('\\' * ones)
	return ((q - 0x21*ones) | (b - ones)) &^ x & highs
}

// load64 returns the eight bytes of s from i, little-endian.
func load64(s string, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

// strSlow decodes a string holding escape sequences.
func (p *parser) strSlow(start int) (string, error) {
	buf := make([]byte, 0, p.i-start+16)
	buf = appendValidUTF8(buf, p.s[start:p.i])
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return string(buf), nil
		case c < 0x20:
			return "", p.errorf("control character %s in string", p.describe())
		case c == '\\':
			if p.i+1 >= len(p.s) {
				p.i++
				return "", p.errorf("unterminated string")
			}
			e := p.s[p.i+1]
			p.i += 2
			switch e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, ok := p.hex4()
				if !ok {
					return "", p.errorf("invalid \\u escape")
				}
				if utf16.IsSurrogate(r) {
					// A high surrogate followed by an escaped low one is one
					// character; a lone surrogate becomes U+FFFD.
					if r < 0xdc00 && p.i+1 < len(p.s) && p.s[p.i] == '\\' && p.s[p.i+1] == 'u' {
						save := p.i
						p.i += 2
						r2, ok := p.hex4()
						if ok {
							if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
								buf = utf8.AppendRune(buf, d)
								continue
							}
						}
						p.i = save
					}
					r = utf8.RuneError
				}
				buf = utf8.AppendRune(buf, r)
			default:
				p.i--
				return "", p.errorf("invalid escape sequence")
			}
		default:
			j := p.i
			for j < len(p.s) && p.s[j] != '"' && p.s[j] != '\\' && p.s[j] >= 0x20 {
				j++
			}
			buf = appendValidUTF8(buf, p.s[p.i:j])
			p.i = j
		}
	}
	return "", p.errorf("unterminated string")
}

func (p *parser) hex4() (rune, bool) {
	if len(p.s)-p.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range []byte(p.s[p.i : p.i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	p.i += 4
	return r, true
}

// appendValidUTF8 appends s, replacing each invalid byte by U+FFFD.
func appendValidUTF8(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, "\uFFFD"...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > MaxDepth {
		return p.errorf("nesting deeper than %d levels", MaxDepth)
	}
	return nil
}

func (p *parser) object() (Value, error) {
	if err := p.enter(); err != nil {
		return Value{}, err
	}
	p.i++ // '{'
	base := len(p.stack)
	p.skipSpace()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		p.depth--
		return Value{kind: Object}, nil
	}
	for {
		p.skipSpace()
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return Value{}, p.errorf("unexpected %s, expected a string key", p.describe())
		}
		key, err := p.str()
		if err != nil {
			return Value{}, err
		}
		p.skipSpace()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return Value{}, p.errorf("unexpected %s, expected ':' after object key", p.describe())
		}
		p.i++
		v, err := p.value()
		if err != nil {
			return Value{}, err
		}
		p.stack = append(p.stack, Member{Key: key, Value: v})
		p.skipSpace()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.s) && p.s[p.i] == '}' {
			p.i++
			break
		}
		return Value{}, p.errorf("unexpected %s, expected ',' or '}' in object", p.describe())
	}
	m := dedupe(p.take(base))
	p.depth--
	return Value{kind: Object, m: m}, nil
}

func (p *parser) array() (Value, error) {
	if err := p.enter(); err != nil {
		return Value{}, err
	}
	p.i++ // '['
	base := len(p.stack)
	p.skipSpace()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		p.depth--
		return Value{kind: Array}, nil
	}
	for {
		v, err := p.value()
		if err != nil {
			return Value{}, err
		}
		p.stack = append(p.stack, Member{Value: v})
		p.skipSpace()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.s) && p.s[p.i] == ']' {
			p.i++
			break
		}
		return Value{}, p.errorf("unexpected %s, expected ',' or ']' in array", p.describe())
	}
	m := p.take(base)
	p.depth--
	return Value{kind: Array, m: m}, nil
}

// take moves the members above base from the scratch stack into the arena
// and returns them as a slice of exactly their length and capacity.
func (p *parser) take(base int) []Member {
	n := len(p.stack) - base
	if cap(p.arena)-len(p.arena) < n {
		p.arena = make([]Member, 0, max(n, 16)) // only when the estimate was short
		p.spilled = true
	}
	start := len(p.arena)
	p.arena = append(p.arena, p.stack[base:]...)
	p.stack = p.stack[:base] // stale entries are cleared by reset

	return p.arena[start:len(p.arena):len(p.arena)]
}

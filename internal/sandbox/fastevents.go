package sandbox

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// ---- fast path for well-formed conversion events ----
//
// The generic path of conversionEvents decodes the body three times with
// encoding/json (object, elements, each event into interfaces) before
// validating. fastEvents reads the shapes capstan sends in one pass and
// gives up, so that the generic path answers, on anything else. It accepts
// only a subset of what the generic path accepts without error, and for that
// subset it yields the same events, so the caller's answer is the same
// whichever path ran. In detail, fastEvents gives up on:
//   - anything that is not JSON, or that is JSON the generic path would
//     decode differently than read here (it never guesses: a string with
//     escapes or invalid UTF-8 is decoded by encoding/json itself);
//   - a top-level object with any key but "elements" (batch), an elements
//     value that is not an array of 1 to MaxBatch events;
//   - a field not in the schema (even when unknown fields are tolerated), a
//     repeated field (the generic path keeps the last), a missing required
//     field, a value of another type (null included), a number that is not
//     an integer fitting an int64, an idType not in the enum, a string over
//     its length limit when lengths are enforced.
//
// In all other cases validateSchema finds no error and flatten produces what
// fastEvents produces.

// jsonPlain marks the bytes a JSON string may hold that need neither
// unescaping nor a UTF-8 check: printable ASCII but '"' and '\\'.
var jsonPlain = func() (t [256]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

// fastParser reads one request body. Strings it returns are substrings of s
// (or decoded copies). s is the body's bytes themselves, not a copy (copying
// a request of 5000 events into fresh memory took 5% of the sandbox's CPU),
// so the body must not change while any of them is in use: the server reads
// each body into its own buffer and never writes to it afterwards, and
// acceptEvents copies what it keeps (the eventIds).
type fastParser struct {
	s   string
	i   int
	o   schemaOpts
	ids [][2]string // backing store of the events' userIDs
	ext []string    // backing store of the events' externalIDs
}

// fastEvents parses a trimmed body of a CREATE (batch false) or
// BATCH_CREATE request. ok is false when the generic path must answer.
func fastEvents(body []byte, batch bool, o schemaOpts) (events []*event, ok bool) {
	if len(body) == 0 || body[0] != '{' {
		return nil, false
	}
	p := &fastParser{s: unsafe.String(&body[0], len(body)), o: o}
	var chunk []event // events are allocated in chunks, never moved
	elem := func() bool {
		if len(events) == MaxBatch {
			return false
		}
		if len(chunk) == cap(chunk) {
			chunk = make([]event, 0, min(256, 1+2*cap(chunk)))
		}
		chunk = append(chunk, event{})
		e := &chunk[len(chunk)-1]
		start := p.i
		if !p.event(e) {
			return false
		}
		e.raw = body[start:p.i:p.i]
		events = append(events, e)
		return true
	}
	if batch {
		seen := false
		ok = p.object(func(k string) bool {
			if k != "elements" || seen {
				return false
			}
			seen = true
			return p.array(elem)
		}) && len(events) > 0
	} else {
		ok = elem()
	}
	p.ws()
	if !ok || p.i != len(p.s) {
		return nil, false
	}
	return events, true
}

// ws skips JSON white space.
func (p *fastParser) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// next reports whether the byte at p.i is c, and consumes it if so.
func (p *fastParser) next(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// object reads an object; field is called with p.i at each value and must
// consume it.
func (p *fastParser) object(field func(key string) bool) bool {
	if !p.next('{') {
		return false
	}
	p.ws()
	if p.next('}') {
		return true
	}
	for {
		k, ok := p.str()
		if !ok {
			return false
		}
		p.ws()
		if !p.next(':') {
			return false
		}
		p.ws()
		if !field(k) {
			return false
		}
		p.ws()
		switch {
		case p.next(','):
			p.ws()
		case p.next('}'):
			return true
		default:
			return false
		}
	}
}

// array reads an array; elem is called with p.i at each element and must
// consume it.
func (p *fastParser) array(elem func() bool) bool {
	if !p.next('[') {
		return false
	}
	p.ws()
	if p.next(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		p.ws()
		switch {
		case p.next(','):
			p.ws()
		case p.next(']'):
			return true
		default:
			return false
		}
	}
}

// str reads a string and returns its value as encoding/json decodes it.
func (p *fastParser) str() (string, bool) {
	s := p.s
	if !p.next('"') {
		return "", false
	}
	start := p.i
	plain, escaped := true, false
	for i := start; i < len(s); i++ {
		c := s[i]
		switch {
		case jsonPlain[c]:
		case c == '"':
			p.i = i + 1
			v := s[start:i]
			if plain || (!escaped && utf8.ValidString(v)) {
				return v, true
			}
			// Escapes, or invalid UTF-8 that encoding/json replaces by
			// U+FFFD: let encoding/json decode the literal.
			var out string
			if json.Unmarshal([]byte(s[start-1:i+1]), &out) != nil {
				return "", false
			}
			return out, true
		case c == '\\':
			plain, escaped = false, true
			i++ // skip the escaped byte; json.Unmarshal checks the sequence
		case c < 0x20:
			return "", false
		default: // c >= utf8.RuneSelf
			plain = false
		}
	}
	return "", false
}

// maxStr reads a string of at most maxLen runes when lengths are enforced
// (0: no limit), the check of validator.str.
func (p *fastParser) maxStr(maxLen int) (string, bool) {
	v, ok := p.str()
	if ok && p.o.lengths && maxLen > 0 && utf8.RuneCountInString(v) > maxLen {
		return "", false
	}
	return v, ok
}

// long reads an integer literal that fits an int64, the values asLong
// accepts. A fraction or exponent is left unread, so the caller fails on it.
func (p *fastParser) long() (int64, bool) {
	s, i := p.s, p.i
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i >= len(s):
		return 0, false
	case s[i] == '0':
		i++
	case '1' <= s[i] && s[i] <= '9':
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	default:
		return 0, false
	}
	n, err := strconv.ParseInt(s[p.i:i], 10, 64)
	if err != nil {
		return 0, false
	}
	p.i = i
	return n, true
}

// fields tracks which keys of an object were read, refusing repeats.
type fields uint16

func (f *fields) add(bit fields) bool {
	if bit == 0 || *f&bit != 0 {
		return false
	}
	*f |= bit
	return true
}

// event reads one event object (spec §8.2) into e.
func (p *fastParser) event(e *event) bool {
	const conversion, at, value, eventID, user = 1, 2, 4, 8, 16
	var seen fields
	ok := p.object(func(k string) bool {
		var bit fields
		ok := false
		switch k {
		case "conversion":
			bit = conversion
			e.conversion, ok = p.str()
		case "conversionHappenedAt":
			bit = at
			e.at, ok = p.long()
		case "conversionValue":
			bit = value
			e.hasValue = true
			ok = p.value(e)
		case "eventId":
			bit = eventID
			e.eventID, ok = p.maxStr(64)
		case "user":
			bit = user
			ok = p.user(e)
		}
		return ok && seen.add(bit)
	})
	return ok && seen&(conversion|at|user) == conversion|at|user
}

// value reads conversionValue.
func (p *fastParser) value(e *event) bool {
	const currency, amount = 1, 2
	var seen fields
	return p.object(func(k string) bool {
		var bit fields
		ok := false
		switch k {
		case "currencyCode":
			bit = currency
			e.currency, ok = p.str()
		case "amount":
			bit = amount
			e.amount, ok = p.str()
		}
		return ok && seen.add(bit)
	}) && seen == currency|amount
}

// user reads the user object.
func (p *fastParser) user(e *event) bool {
	const userIDs, userInfo, externalIDs, lead = 1, 2, 4, 8
	var seen fields
	ok := p.object(func(k string) bool {
		var bit fields
		ok := false
		switch k {
		case "userIds":
			bit = userIDs
			if cap(p.ids)-len(p.ids) < 4 { // a new block: earlier events keep theirs
				p.ids = make([][2]string, 0, min(1024, 4+2*cap(p.ids)))
			}
			from := len(p.ids)
			ok = p.array(p.userID)
			if to := len(p.ids); ok && to > from {
				e.userIDs = p.ids[from:to:to]
			}
		case "userInfo":
			bit = userInfo
			e.hasUserInfo = true
			ok = p.userInfo(e)
		case "externalIds":
			bit = externalIDs
			if cap(p.ext)-len(p.ext) < 2 {
				p.ext = make([]string, 0, min(256, 2+2*cap(p.ext)))
			}
			from := len(p.ext)
			ok = p.array(func() bool {
				s, ok := p.str()
				p.ext = append(p.ext, s)
				return ok
			})
			if to := len(p.ext); ok && to > from {
				e.externalIDs = p.ext[from:to:to]
			}
		case "lead":
			bit = lead
			e.lead, ok = p.str()
		}
		return ok && seen.add(bit)
	})
	return ok && seen&userIDs != 0
}

// userID reads one element of userIds.
func (p *fastParser) userID() bool {
	const idType, idValue = 1, 2
	var seen fields
	var id [2]string
	ok := p.object(func(k string) bool {
		var bit fields
		ok := false
		switch k {
		case "idType":
			bit = idType
			id[0], ok = p.str()
			ok = ok && (idTypes[id[0]] || (id[0] == "AXCIOM_ID" && p.o.axciom))
		case "idValue":
			bit = idValue
			id[1], ok = p.str()
		}
		return ok && seen.add(bit)
	})
	if !ok || seen != idType|idValue {
		return false
	}
	p.ids = append(p.ids, id)
	return true
}

// userInfo reads user.userInfo.
func (p *fastParser) userInfo(e *event) bool {
	const first, last, company, title, country, hashedFirst, hashedLast = 1, 2, 4, 8, 16, 32, 64
	var seen fields
	return p.object(func(k string) bool {
		var bit fields
		ok := false
		switch k {
		case "firstName":
			bit = first
			e.firstName, ok = p.maxStr(35)
		case "lastName":
			bit = last
			e.lastName, ok = p.maxStr(35)
		case "companyName":
			bit = company
			_, ok = p.maxStr(50)
		case "title":
			bit = title
			_, ok = p.maxStr(50)
		case "countryCode":
			bit = country
			e.country, ok = p.str()
		case "hashedFirstName":
			if p.o.hashedNames {
				bit = hashedFirst
				_, ok = p.str()
			}
		case "hashedLastName":
			if p.o.hashedNames {
				bit = hashedLast
				_, ok = p.str()
			}
		}
		return ok && seen.add(bit)
	}) && seen&(first|last) == first|last
}

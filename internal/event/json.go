package event

import (
	"bytes"
	"encoding/json"
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

// object is a JSON object as an ordered list of members.
type object []member

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// skipValue returns the index just past the JSON value starting at b[i].
// b must be valid JSON (checked once per request with json.Valid).
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
	// Find each candidate closing quote with IndexByte (vectorised), then
	// check that it is not escaped: an even number of backslashes before it.
	for j := i + 1; j < len(b); {
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
// not an object.
func parseObject(raw []byte) (obj object, ok bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil, false
	}
	i = skipSpace(raw, i+1)
	obj = make(object, 0, 16)
	for i < len(raw) && raw[i] != '}' {
		end := skipString(raw, i)
		m := member{rawKey: raw[i:end]}
		if bytes.IndexByte(m.rawKey, '\\') >= 0 {
			m.Key = decodeString(m.rawKey)
		}
		i = skipSpace(raw, end)
		i = skipSpace(raw, i+1) // ':'
		vend := skipValue(raw, i)
		m.Value = raw[i:vend]
		obj.put(m)
		i = skipSpace(raw, vend)
		if i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return obj, true
}

// parseArray splits a valid JSON array into its elements' raw text.
func parseArray(raw []byte) (elems [][]byte, ok bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return nil, false
	}
	i = skipSpace(raw, i+1)
	for i < len(raw) && raw[i] != ']' {
		end := skipValue(raw, i)
		elems = append(elems, raw[i:end])
		i = skipSpace(raw, end)
		if i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return elems, true
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
		if o[i].is(key) {
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

func (o *object) del(key string) {
	if i := o.index(key); i >= 0 {
		*o = append((*o)[:i], (*o)[i+1:]...)
	}
}

// appendJSON writes the object as compact-at-top-level JSON; member values
// are copied verbatim.
func (o object) appendJSON(buf []byte) []byte {
	buf = append(buf, '{')
	for i, m := range o {
		if i > 0 {
			buf = append(buf, ',')
		}
		if m.rawKey != nil {
			buf = append(buf, m.rawKey...)
		} else {
			buf = append(buf, quote(m.key())...)
		}
		buf = append(buf, ':')
		buf = append(buf, m.Value...)
	}
	return append(buf, '}')
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
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			return b
		}
	}
	b := make([]byte, len(s)+2)
	b[0] = '"'
	copy(b[1:], s)
	b[len(b)-1] = '"'
	return b
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

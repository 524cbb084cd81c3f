package event

import (
	"unicode/utf8"
)

// AppendJSON appends the compact JSON encoding of v to dst, keys in order,
// numbers with their exact text, and returns the extended buffer. Undefined
// object members are left out and Undefined array elements are written as
// null, as JavaScript's JSON.stringify does; an Undefined v itself is written
// as null. "<", ">" and "&" are not escaped; U+2028 and U+2029 are.
func (v Value) AppendJSON(dst []byte) []byte {
	switch v.kind {
	case Undefined, Null:
		return append(dst, "null"...)
	case Bool:
		if v.flags&flagTrue != 0 {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case Number:
		return append(dst, v.s...)
	case String:
		return appendJSONString(dst, v.s)
	case Array:
		dst = append(dst, '[')
		for i := range v.m {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = v.m[i].Value.AppendJSON(dst)
		}
		return append(dst, ']')
	}
	dst = append(dst, '{')
	first := true
	for i := range v.m {
		if v.m[i].Value.kind == Undefined {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendJSONString(dst, v.m[i].Key)
		dst = append(dst, ':')
		dst = v.m[i].Value.AppendJSON(dst)
	}
	return append(dst, '}')
}

// MarshalJSON implements json.Marshaler with [Value.AppendJSON].
func (v Value) MarshalJSON() ([]byte, error) {
	return v.AppendJSON(nil), nil
}

// UnmarshalJSON implements json.Unmarshaler with [Parse].
func (v *Value) UnmarshalJSON(data []byte) error {
	pv, err := Parse(data)
	if err != nil {
		return err
	}
	*v = pv
	return nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string, escaping like encoding/json
// with HTML escaping off: quote, backslash, control characters, U+2028,
// U+2029; invalid UTF-8 becomes U+FFFD. Unlike appendQuoted (raw events,
// encoding/json's escaping with HTML escaping on), it leaves '<', '>' and
// '&' as they are.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\\ufffd"...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

package mapping

import "github.com/capstan-gw/capstan/internal/event"

// JavaScript semantics of the mapping language: how Segment's engine, which
// is JavaScript, tests and converts values. They are written on event.Value's
// exported API; the value model itself knows nothing of them.

// truthy reports whether v, as written in a mapping, is truthy in JavaScript:
// everything except Undefined, null, false, 0, -0 and "".
func truthy(v event.Value) bool {
	switch v.Kind() {
	case event.Undefined, event.Null:
		return false
	case event.Bool:
		b, _ := v.Bool()
		return b
	case event.String:
		s, _ := v.Str()
		return s != ""
	case event.Number:
		f, _ := v.Float64()
		return f != 0
	}
	return true
}

// appendJSText appends the JavaScript String() conversion of v, as used by
// @template and by loose equality with "": arrays join their elements with
// "," (null and undefined elements give ""), objects give "[object Object]".
func appendJSText(dst []byte, v event.Value) []byte {
	switch v.Kind() {
	case event.Undefined:
		return append(dst, "undefined"...)
	case event.Null:
		return append(dst, "null"...)
	case event.Bool:
		if b, _ := v.Bool(); b {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case event.Number:
		n, _ := v.Number()
		return event.AppendNumberText(dst, string(n))
	case event.String:
		s, _ := v.Str()
		return append(dst, s...)
	case event.Array:
		for i := range v.Len() {
			if i > 0 {
				dst = append(dst, ',')
			}
			if e := v.Index(i); e.Exists() {
				dst = appendJSText(dst, e)
			}
		}
		return dst
	}
	return append(dst, "[object Object]"...)
}

// looselyEqualsEmpty reports JavaScript's v == "" (used by @if blank).
func looselyEqualsEmpty(v event.Value) bool {
	switch v.Kind() {
	case event.String:
		s, _ := v.Str()
		return s == ""
	case event.Number:
		f, _ := v.Float64()
		return f == 0
	case event.Bool:
		b, _ := v.Bool()
		return !b
	case event.Array:
		// [] == "" compares the array's text, which is empty for [], [""],
		// [null], [[]] and the like.
		var buf [64]byte
		return len(appendJSText(buf[:0], v)) == 0
	}
	return false
}

package event

import (
	"encoding/json"
	"fmt"
	"iter"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Kind is the JSON type of a [Value], plus [Undefined].
type Kind uint8

// The kinds of [Value]. The zero Value is Undefined.
const (
	// Undefined is "no value": a missing key, a path that leads nowhere, a
	// directive that resolved to nothing. It is distinct from Null. In an
	// object it means the key is absent; in an array it encodes as null.
	Undefined Kind = iota
	Null
	Bool
	Number
	String
	Array
	Object
)

var kindNames = [...]string{"undefined", "null", "boolean", "number", "string", "array", "object"}

// String returns the JavaScript-style type name ("undefined", "null",
// "boolean", "number", "string", "array", "object"), as used in Segment's
// error messages.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// flag bits of Value.flags.
const (
	flagTrue     uint8 = 1 << iota // Bool: the value is true
	flagHasUndef                   // Array/Object: some member, at any depth, is Undefined
)

// Value is an immutable, order-preserving JSON value. It is small (48 bytes),
// is passed by value, and is safe for concurrent reads. The zero Value is
// [Undefined].
//
// Strings are stored decoded; numbers keep their exact JSON text (so
// 1788258896789 and 49.90 survive unchanged); objects keep their keys in
// document order, each key at most once (a repeated key keeps the position
// of its first occurrence and the value of its last, as JavaScript's
// JSON.parse does).
//
// Values returned by [Parse] share memory with the parsed text and with each
// other; they are never modified after construction, so sharing is safe.
type Value struct {
	kind  Kind
	flags uint8
	s     string   // String: the text; Number: the JSON number text
	m     []Member // Array: elements (Key unused); Object: members in order
}

// Member is one key/value pair of a JSON object.
type Member struct {
	Key   string
	Value Value
}

// NullValue returns the JSON null.
func NullValue() Value { return Value{kind: Null} }

// BoolValue returns a JSON boolean.
func BoolValue(b bool) Value {
	if b {
		return Value{kind: Bool, flags: flagTrue}
	}
	return Value{kind: Bool}
}

// StringValue returns a JSON string. s should be valid UTF-8; invalid bytes
// are encoded as U+FFFD.
func StringValue(s string) Value { return Value{kind: String, s: s} }

// Int64Value returns a JSON number.
func Int64Value(n int64) Value { return Value{kind: Number, s: strconv.FormatInt(n, 10)} }

// Float64Value returns a JSON number written with the shortest text that
// round-trips. NaN and infinities have no JSON form and give null, as
// JavaScript's JSON.stringify does.
func Float64Value(f float64) Value {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return NullValue()
	}
	return Value{kind: Number, s: string(appendJSNumber(nil, f))}
}

// NumberValue returns a JSON number with exactly the text n, which must be a
// valid JSON number.
func NumberValue(n json.Number) (Value, error) {
	if n == "" || validNumber(string(n), 0) != len(n) {
		return Value{}, fmt.Errorf("invalid JSON number %q", string(n))
	}
	return Value{kind: Number, s: string(n)}, nil
}

// ArrayValue returns a JSON array holding elems. The slice is copied.
func ArrayValue(elems ...Value) Value {
	if len(elems) == 0 {
		return Value{kind: Array}
	}
	m := make([]Member, len(elems))
	var flags uint8
	for i, e := range elems {
		m[i].Value = e
		flags |= undefBit(e)
	}
	return Value{kind: Array, flags: flags, m: m}
}

// ObjectValue returns a JSON object holding members in the given order. The
// slice is copied. A repeated key keeps its first position and its last
// value. Members whose Value is Undefined are kept in the Value (they read as
// absent and are skipped when encoding).
func ObjectValue(members ...Member) Value {
	if len(members) == 0 {
		return Value{kind: Object}
	}
	return newObject(slices.Clone(members))
}

// ObjectOf returns a JSON object holding members in the given order, as
// [ObjectValue] does (a repeated key keeps its first position and its last
// value; Undefined members read as absent), but without copying: the object
// takes ownership of the slice, removing repeated keys in place, so the
// caller must neither modify nor reuse members afterwards.
func ObjectOf(members []Member) Value { return newObject(members) }

// ObjectOfDistinct is [ObjectOf] for members whose keys the caller knows to
// be distinct, such as keys taken from one object: it skips the search for
// repeated keys, which compares every pair of keys. The caller guarantees
// it: with a repeated key the object would be invalid ([Value.Get] would
// find the first member, [Value.AppendJSON] would write the key twice). Like
// ObjectOf, it takes ownership of members.
func ObjectOfDistinct(members []Member) Value {
	var flags uint8
	for i := range members {
		flags |= undefBit(members[i].Value)
	}
	return Value{kind: Object, flags: flags, m: members}
}

// ArrayOf returns a JSON array of the Values of elems, in order; their Keys
// are ignored (and cleared). Like [ObjectOf] it takes ownership of elems
// instead of copying them, so the caller must neither modify nor reuse elems
// afterwards.
func ArrayOf(elems []Member) Value {
	var flags uint8
	for i := range elems {
		if elems[i].Key != "" {
			elems[i].Key = ""
		}
		flags |= undefBit(elems[i].Value)
	}
	return Value{kind: Array, flags: flags, m: elems}
}

// newObject takes ownership of m, removes repeated keys and sets the flags.
func newObject(m []Member) Value {
	m = dedupe(m)
	var flags uint8
	for i := range m {
		flags |= undefBit(m[i].Value)
	}
	return Value{kind: Object, flags: flags, m: m}
}

// undefBit reports, as a flag, whether v is or contains Undefined.
func undefBit(v Value) uint8 {
	if v.kind == Undefined {
		return flagHasUndef
	}
	return v.flags & flagHasUndef
}

// dedupe removes repeated keys in place: the first position wins, the last
// value wins.
func dedupe(m []Member) []Member {
	if len(m) < 2 {
		return m
	}
	if len(m) <= 16 {
		dup := false
	outer:
		for i := 1; i < len(m); i++ {
			for j := range i {
				if m[i].Key == m[j].Key {
					dup = true
					break outer
				}
			}
		}
		if !dup {
			return m
		}
	}
	pos := make(map[string]int, len(m))
	out := m[:0]
	for _, mb := range m {
		if i, ok := pos[mb.Key]; ok {
			out[i].Value = mb.Value
			continue
		}
		pos[mb.Key] = len(out)
		out = append(out, mb)
	}
	clear(m[len(out):])
	return out
}

// Kind returns the kind of v.
func (v Value) Kind() Kind { return v.kind }

// IsUndefined reports whether v is Undefined (absent).
func (v Value) IsUndefined() bool { return v.kind == Undefined }

// IsNull reports whether v is the JSON null.
func (v Value) IsNull() bool { return v.kind == Null }

// Exists reports whether v is neither Undefined nor null: the meaning of
// "exists" in triggers and in @if.
func (v Value) Exists() bool { return v.kind > Null }

// Str returns the text of a string value.
func (v Value) Str() (string, bool) { return v.s, v.kind == String }

// Bool returns the value of a boolean.
func (v Value) Bool() (b, ok bool) { return v.flags&flagTrue != 0, v.kind == Bool }

// Number returns the exact JSON text of a number.
func (v Value) Number() (json.Number, bool) { return json.Number(v.s), v.kind == Number }

// Float64 returns a number as a float64 (±Inf when out of range).
func (v Value) Float64() (float64, bool) {
	if v.kind != Number {
		return 0, false
	}
	f, _ := strconv.ParseFloat(v.s, 64) // a valid JSON number never fails, at most ErrRange
	return f, true
}

// Len returns the number of elements of an array or members of an object
// (Undefined members included), and 0 for other kinds.
func (v Value) Len() int { return len(v.m) }

// Index returns element i of an array, or Undefined when v is not an array or
// i is out of range.
func (v Value) Index(i int) Value {
	if v.kind != Array || i < 0 || i >= len(v.m) {
		return Value{}
	}
	return v.m[i].Value
}

// At returns member i of an object, Undefined members included, in the
// order that [Value.Len] counts; or element i of an array, as a Member with
// an empty Key. It returns the zero Member (an empty Key and an Undefined
// Value) when i is out of range or v is neither an object nor an array.
// Unlike [Value.All] it shows Undefined members, which matter where values
// are combined: an Undefined member still replaces an earlier one of the
// same key.
func (v Value) At(i int) Member {
	if uint(i) >= uint(len(v.m)) {
		return Member{}
	}
	return v.m[i]
}

// Get returns the value of key in an object, or Undefined when v is not an
// object or has no such key.
func (v Value) Get(key string) Value {
	if v.kind != Object {
		return Value{}
	}
	for i := range v.m {
		if v.m[i].Key == key {
			return v.m[i].Value
		}
	}
	return Value{}
}

// Lookup walks v along path (object keys and decimal array indexes, the
// rules of spec §5.3) and returns what it finds, or Undefined.
func (v Value) Lookup(path ...string) Value {
	for _, seg := range path {
		v = v.step(seg)
	}
	return v
}

// step indexes v by one path segment.
func (v Value) step(seg string) Value {
	switch v.kind {
	case Object:
		return v.Get(seg)
	case Array:
		if i, ok := arrayIndex(seg); ok && i < len(v.m) {
			return v.m[i].Value
		}
	}
	return Value{}
}

// arrayIndex parses a canonical decimal array index ("0", "17"; not "01",
// "+1" or "1.0", which JavaScript treats as ordinary property names).
func arrayIndex(s string) (int, bool) {
	if s == "" || len(s) > 9 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// All iterates over the members of an object in order, skipping Undefined
// members, or over the elements of an array with their decimal indexes as
// keys. It yields nothing for other kinds.
func (v Value) All() iter.Seq2[string, Value] {
	return func(yield func(string, Value) bool) {
		switch v.kind {
		case Object:
			for _, mb := range v.m {
				if mb.Value.kind == Undefined {
					continue
				}
				if !yield(mb.Key, mb.Value) {
					return
				}
			}
		case Array:
			for i, mb := range v.m {
				if !yield(strconv.Itoa(i), mb.Value) {
					return
				}
			}
		}
	}
}

// Elems iterates over the elements of an array. It yields nothing for other
// kinds.
func (v Value) Elems() iter.Seq2[int, Value] {
	return func(yield func(int, Value) bool) {
		if v.kind != Array {
			return
		}
		for i, mb := range v.m {
			if !yield(i, mb.Value) {
				return
			}
		}
	}
}

// Any converts v to plain Go values, the contract with consumers that do not
// know this package: objects become map[string]any (Undefined members are
// left out), arrays []any (Undefined elements become nil), strings string,
// numbers json.Number with their exact text, booleans bool, null nil.
// Undefined itself also becomes nil; check [Value.IsUndefined] first where
// the difference matters. Key order is lost in the map; use
// [Value.AppendJSON] when order matters.
func (v Value) Any() any {
	switch v.kind {
	case Bool:
		return v.flags&flagTrue != 0
	case Number:
		return json.Number(v.s)
	case String:
		return v.s
	case Array:
		a := make([]any, len(v.m))
		for i := range v.m {
			a[i] = v.m[i].Value.Any()
		}
		return a
	case Object:
		o := make(map[string]any, len(v.m))
		for i := range v.m {
			if v.m[i].Value.kind != Undefined {
				o[v.m[i].Key] = v.m[i].Value.Any()
			}
		}
		return o
	}
	return nil
}

// FromAny converts plain Go values to a Value: nil, bool, string,
// json.Number, every integer and float type, []any, map[string]any (and other
// slices and string-keyed maps, by reflection), and Value itself.
//
// Go maps have no key order, so map keys are sorted. Callers that need the
// document's key order (a mapping's is its output order) must pass JSON text
// to [Parse] instead, or build the object with [ObjectValue].
func FromAny(x any) (Value, error) {
	return fromAny(x, 0)
}

func fromAny(x any, depth int) (Value, error) {
	if depth > MaxDepth {
		return Value{}, fmt.Errorf("value nested deeper than %d levels", MaxDepth)
	}
	switch t := x.(type) {
	case nil:
		return NullValue(), nil
	case Value:
		return t, nil
	case bool:
		return BoolValue(t), nil
	case string:
		return StringValue(t), nil
	case json.Number:
		return NumberValue(t)
	case int:
		return Int64Value(int64(t)), nil
	case int64:
		return Int64Value(t), nil
	case int32:
		return Int64Value(int64(t)), nil
	case uint64:
		return Value{kind: Number, s: strconv.FormatUint(t, 10)}, nil
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return Value{}, fmt.Errorf("unsupported number %v", t)
		}
		return Float64Value(t), nil
	case []any:
		elems := make([]Value, len(t))
		for i, e := range t {
			ev, err := fromAny(e, depth+1)
			if err != nil {
				return Value{}, fmt.Errorf("[%d]: %w", i, err)
			}
			elems[i] = ev
		}
		return ArrayValue(elems...), nil
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		m := make([]Member, len(keys))
		for i, k := range keys {
			ev, err := fromAny(t[k], depth+1)
			if err != nil {
				return Value{}, fmt.Errorf("%s: %w", k, err)
			}
			m[i] = Member{Key: k, Value: ev}
		}
		return newObject(m), nil
	}
	return fromReflect(reflect.ValueOf(x), depth)
}

func fromReflect(rv reflect.Value, depth int) (Value, error) {
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return Int64Value(rv.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return Value{kind: Number, s: strconv.FormatUint(rv.Uint(), 10)}, nil
	case reflect.Float32, reflect.Float64:
		return fromAny(rv.Float(), depth)
	case reflect.String:
		return StringValue(rv.String()), nil
	case reflect.Bool:
		return BoolValue(rv.Bool()), nil
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return NullValue(), nil
		}
		a := make([]any, rv.Len())
		for i := range a {
			a[i] = rv.Index(i).Interface()
		}
		return fromAny(a, depth)
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			break
		}
		if rv.IsNil() {
			return NullValue(), nil
		}
		m := make(map[string]any, rv.Len())
		for it := rv.MapRange(); it.Next(); {
			m[it.Key().String()] = it.Value().Interface()
		}
		return fromAny(m, depth)
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return NullValue(), nil
		}
		return fromAny(rv.Elem().Interface(), depth)
	}
	return Value{}, fmt.Errorf("unsupported Go type %s", rv.Type())
}

// WithoutUndefined returns v without Undefined object members, at any
// depth; Undefined array elements become null (what they encode as). Values
// without Undefined inside, Undefined itself included, are returned as they
// are, without copying.
func (v Value) WithoutUndefined() Value {
	if v.flags&flagHasUndef == 0 {
		return v
	}
	m := make([]Member, 0, len(v.m))
	for _, mb := range v.m {
		switch {
		case mb.Value.kind == Undefined && v.kind == Object:
			continue
		case mb.Value.kind == Undefined:
			mb.Value = Value{kind: Null}
		default:
			mb.Value = mb.Value.WithoutUndefined()
		}
		m = append(m, mb)
	}
	return Value{kind: v.kind, m: m}
}

// AppendNumberText appends JavaScript's String(n) of the number written s to
// dst and returns the extended buffer: the shortest digits that round-trip,
// in exponent form below 1e-6 and from 1e21 ("1e-7", "1e+21"); integers of
// at most 15 digits are copied as they are. It is a number's text where a
// value becomes text (templates, string comparisons), not its JSON text,
// which [Value.Number] returns unchanged. s is normally a JSON number; any
// text [strconv.ParseFloat] accepts works, out-of-range values giving
// "Infinity" or "-Infinity".
func AppendNumberText(dst []byte, s string) []byte {
	if simpleInt(s) {
		return append(dst, s...)
	}
	f, _ := strconv.ParseFloat(s, 64)
	return appendJSNumber(dst, f)
}

// simpleInt reports whether s is an integer whose text JavaScript would print
// unchanged: optional '-', no leading zero, at most 15 digits.
func simpleInt(s string) bool {
	d := s
	if d != "" && d[0] == '-' {
		d = d[1:]
	}
	if d == "" || len(d) > 15 || d[0] == '0' {
		return s == "0"
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return false
		}
	}
	return true
}

// appendJSNumber appends JavaScript's Number.prototype.toString() of f.
func appendJSNumber(dst []byte, f float64) []byte {
	switch {
	case f == 0:
		return append(dst, '0') // also -0
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	}
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64) // "-d.ddde±xx"
	if e[0] == '-' {
		dst = append(dst, '-')
		e = e[1:]
	}
	ePos := strings.IndexByte(string(e), 'e') // no allocation: the conversion does not escape
	mant, expText := e[:ePos], e[ePos+1:]
	exp, _ := strconv.Atoi(string(expText))
	var digits [24]byte
	k := 0
	for _, c := range mant {
		if c != '.' {
			digits[k] = c
			k++
		}
	}
	n := exp + 1 // position of the decimal point relative to the digits
	switch {
	case k <= n && n <= 21:
		dst = append(dst, digits[:k]...)
		for range n - k {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(dst, digits[:n]...)
		dst = append(dst, '.')
		dst = append(dst, digits[n:k]...)
	case -6 < n && n <= 0:
		dst = append(dst, "0."...)
		for range -n {
			dst = append(dst, '0')
		}
		dst = append(dst, digits[:k]...)
	default:
		dst = append(dst, digits[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:k]...)
		}
		dst = append(dst, 'e')
		if n-1 >= 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(n-1), 10)
	}
	return dst
}

package event

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

// The events of internal/mapping's tests, which exercised Value there.

// storedEvent is the stored analytics-next track call of spec §2.8, verbatim.
const storedEvent = `{
  "type": "track",
  "event": "Sign Up",
  "messageId": "ajs-next-1788258896789-5b1c2f3e-8d3a-4c1e-9d9a-2a4c6e8f0b1d",
  "anonymousId": "3f0b0c3e-9c1d-4f1e-a1e7-6f2f9b1d2c44",
  "userId": null,
  "properties": { "hashedEmail": "55e79200c1635b37ad31a378c39feb12f120f116625093a19bc32fff15041149", "li_fat_id": "123456" },
  "context": {
    "page": { "path": "/signup", "referrer": "", "search": "?li_fat_id=123456", "title": "Sign up", "url": "https://www.example.com/signup?li_fat_id=123456" },
    "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36",
    "locale": "en-US",
    "library": { "name": "analytics.js", "version": "npm:next-1.84.3" },
    "ip": "203.0.113.7"
  },
  "integrations": { "Segment.io": true },
  "_metadata": { "bundled": ["Segment.io"], "unbundled": [], "bundledIds": [] },
  "originalTimestamp": "2026-09-01T10:34:56.789Z",
  "sentAt": "2026-09-01T10:34:56.801Z",
  "receivedAt": "2026-09-01T10:34:56.950Z",
  "timestamp": "2026-09-01T10:34:56.938Z"
}`

// testEvent has values of every kind; it exercises the directives in
// internal/mapping.
const testEvent = `{"type":"track","event":"Order Completed","messageId":"m1","userId":null,
 "properties":{"revenue":49.9,"currency":"usd","countryCode":"us","phone":"+1 415 555 0100","firstName":"John","lastName":"Doe",
   "key":"plan","plan":"pro","products":[{"sku":"A1","quantity":2},{"sku":"B7"}],"zero":0,"empty":"","f":false,"t":true,
   "hundred":100,"big":1e21,"tiny":0.0000001,"arr":[1,null,"a"],"obj":{"a":1},"json":"{\"b\":2,\"a\":[1,2]}","notjson":"{oops",
   "html":"<a&b>","tpl":"{{properties.firstName}}","ab":"ab","dir":"left","ls":"a\u2028b","ecole":"ÉCOLE"},
 "context":{"page":{"path":"/signup","referrer":"","search":"?x=1","title":"Sign up","url":"https://www.example.com/signup"},
   "traits":{"email":"ctx@example.com"}},
 "traits":{"email":"t@example.com"}}`

// benchEvent is a typical analytics-next track event as stored (spec §2.8),
// with the properties a sign-up form sends.
const benchEvent = `{
  "type": "track",
  "event": "Sign Up",
  "messageId": "ajs-next-1788258896789-5b1c2f3e-8d3a-4c1e-9d9a-2a4c6e8f0b1d",
  "anonymousId": "3f0b0c3e-9c1d-4f1e-a1e7-6f2f9b1d2c44",
  "userId": null,
  "properties": { "hashedEmail": "55e79200c1635b37ad31a378c39feb12f120f116625093a19bc32fff15041149", "li_fat_id": "123456",
    "firstName": "John", "lastName": "Doe", "title": "Engineer", "company": "Acme Inc", "countryCode": "us", "revenue": 49.9 },
  "context": {
    "page": { "path": "/signup", "referrer": "", "search": "?li_fat_id=123456", "title": "Sign up", "url": "https://www.example.com/signup?li_fat_id=123456" },
    "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36",
    "locale": "en-US",
    "library": { "name": "analytics.js", "version": "npm:next-1.84.3" },
    "ip": "203.0.113.7"
  },
  "integrations": { "Segment.io": true },
  "_metadata": { "bundled": ["Segment.io"], "unbundled": [], "bundledIds": [] },
  "originalTimestamp": "2026-09-01T10:34:56.789Z",
  "sentAt": "2026-09-01T10:34:56.801Z",
  "receivedAt": "2026-09-01T10:34:56.950Z",
  "timestamp": "2026-09-01T10:34:56.938Z"
}`

func mustParse(t testing.TB, s string) Value {
	t.Helper()
	v, err := ParseString(s)
	if err != nil {
		t.Fatalf("parse %s: %v", s, err)
	}
	return v
}

func TestParseRoundTrip(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"object order", `{"b":1,"a":2,"c":{"z":true,"y":false}}`, `{"b":1,"a":2,"c":{"z":true,"y":false}}`},
		{"whitespace", " \t\r\n[ 1 , \"a\" , null ]\n", `[1,"a",null]`},
		{"number text kept", `[1.50,-0,1E+2,0.0000001,12345678901234567890]`, `[1.50,-0,1E+2,0.0000001,12345678901234567890]`},
		{"empty containers", `{"a":{},"b":[]}`, `{"a":{},"b":[]}`},
		{"escapes", `"a\"b\\c\/d\b\f\n\r\t\u0001\u00e9\ud83d\ude00"`, `"a\"b\\c/d\b\f\n\r\t\u0001é😀"`},
		{"lone surrogate", `"\ud800x"`, `"` + "\uFFFD" + `x"`},
		{"reversed surrogates", `"\udc00\ud800"`, `"` + "\uFFFD\uFFFD" + `"`},
		{"html not escaped", `"<a&b>"`, `"<a&b>"`},
		{"line separators escaped", "\"\u2028\u2029\"", `"\u2028\u2029"`},
		{"invalid utf8", "\"a\xffb\"", `"a` + "\uFFFD" + `b"`},
		{"invalid utf8 in key", "{\"\xff\":1}", `{"` + "\uFFFD" + `":1}`},
		{"duplicate keys: first position, last value", `{"a":1,"b":2,"a":3}`, `{"a":3,"b":2}`},
		{"many duplicate keys", `{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k0":"last"}`,
			`{"k0":"last","k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16}`},
		{"scalars", `true`, `true`},
		{"deep", strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth), strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if got := string(v.AppendJSON(nil)); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in string
		offset   int
		msg      string
	}{
		{"empty", ``, 0, "unexpected end of input"},
		{"trailing", `{} x`, 3, "after top-level value"},
		{"trailing comma", `[1,]`, 3, "expected a value"},
		{"object trailing comma", `{"a":1,}`, 7, "expected a string key"},
		{"missing colon", `{"a" 1}`, 5, "expected ':'"},
		{"single quotes", `{'a':1}`, 1, "expected a string key"},
		{"leading zero", `01`, 1, "after top-level value"},
		{"bare minus", `-`, 0, "invalid number"},
		{"dot without digits", `1.`, 0, "invalid number"},
		{"exponent without digits", `1e`, 0, "invalid number"},
		{"plus sign", `+1`, 0, "expected a value"},
		{"NaN", `NaN`, 0, "expected a value"},
		{"bad literal", `tru`, 0, "expected true"},
		{"control char", "\"a\nb\"", 2, "control character"},
		{"bad escape", `"\x"`, 2, "invalid escape"},
		{"bad unicode escape", `"\u12G4"`, 3, "invalid \\u escape"},
		{"unterminated", `"abc`, 4, "unterminated string"},
		{"unterminated after escape", `"ab\`, 4, "unterminated string"},
		{"unclosed array", `[1`, 2, "expected ',' or ']'"},
		{"unclosed object", `{"a":1`, 6, "expected ',' or '}'"},
		{"too deep", strings.Repeat("[", MaxDepth+1), MaxDepth, "nesting deeper"},
		{"bom", "\uFEFF{}", 0, "expected a value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			se, ok := err.(*SyntaxError)
			if !ok {
				t.Fatalf("got %v, want *SyntaxError", err)
			}
			if se.Offset != tt.offset || !strings.Contains(se.Msg, tt.msg) {
				t.Errorf("got offset %d %q, want offset %d containing %q", se.Offset, se.Msg, tt.offset, tt.msg)
			}
			if json.Valid([]byte(tt.in)) {
				t.Errorf("encoding/json accepts %q", tt.in)
			}
		})
	}
}

// TestAnyMatchesEncodingJSON checks Any against encoding/json with UseNumber.
func TestAnyMatchesEncodingJSON(t *testing.T) {
	for _, in := range []string{storedEvent, testEvent, benchEvent, `[1,"x",null,true,{"a":[{}]}]`, `"s"`, `-1.5e3`, `null`} {
		v := mustParse(t, in)
		dec := json.NewDecoder(strings.NewReader(in))
		dec.UseNumber()
		var want any
		if err := dec.Decode(&want); err != nil {
			t.Fatal(err)
		}
		if got := v.Any(); !reflect.DeepEqual(got, want) {
			t.Errorf("Any() of %s:\ngot  %#v\nwant %#v", in, got, want)
		}
	}
}

func TestAnyUndefined(t *testing.T) {
	v := ObjectValue(Member{"a", Value{}}, Member{"b", ArrayValue(Value{}, NullValue())}, Member{"c", StringValue("x")})
	want := map[string]any{"b": []any{nil, nil}, "c": "x"}
	if got := v.Any(); !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", got, want)
	}
	if got := string(v.AppendJSON(nil)); got != `{"b":[null,null],"c":"x"}` {
		t.Errorf("AppendJSON = %s", got)
	}
	if (Value{}).Any() != nil || !(Value{}).IsUndefined() || NullValue().IsUndefined() {
		t.Error("Undefined and null are not told apart")
	}
	if got := v.WithoutUndefined(); got.Len() != 2 || got.Get("b").Index(0).Kind() != Null {
		t.Errorf("WithoutUndefined = %s", got.AppendJSON(nil))
	}
}

func TestValueAccessors(t *testing.T) {
	v := mustParse(t, `{"s":"x","n":2.5,"b":true,"z":null,"a":[1,2],"o":{"k":"v"}}`)
	if s, ok := v.Get("s").Str(); !ok || s != "x" {
		t.Error("Str")
	}
	if f, ok := v.Get("n").Float64(); !ok || f != 2.5 {
		t.Error("Float64")
	}
	if n, ok := v.Get("n").Number(); !ok || n != "2.5" {
		t.Error("Number")
	}
	if b, ok := v.Get("b").Bool(); !ok || !b {
		t.Error("Bool")
	}
	if !v.Get("z").IsNull() || v.Get("z").Exists() || !v.Get("nope").IsUndefined() {
		t.Error("null/undefined")
	}
	if v.Lookup("a", "1").AppendJSON(nil)[0] != '2' || v.Lookup("o", "k").s != "v" || !v.Lookup("a", "2").IsUndefined() {
		t.Error("Lookup")
	}
	var keys []string
	for k := range v.All() {
		keys = append(keys, k)
	}
	if strings.Join(keys, ",") != "s,n,b,z,a,o" {
		t.Errorf("All keys = %v", keys)
	}
	n := 0
	for i, e := range v.Get("a").Elems() {
		n += i + int(e.s[0]-'0')
	}
	if n != 4 {
		t.Error("Elems")
	}
	if v.Get("a").Index(5).Kind() != Undefined || v.Index(0).Kind() != Undefined {
		t.Error("Index out of range")
	}
	if Kind(99).String() != "Kind(99)" || Object.String() != "object" {
		t.Error("Kind.String")
	}
	var u Value
	if err := json.Unmarshal([]byte(`{"x":[1]}`), &u); err != nil || string(u.AppendJSON(nil)) != `{"x":[1]}` {
		t.Errorf("UnmarshalJSON: %v", err)
	}
	if b, err := json.Marshal(map[string]Value{"v": u}); err != nil || string(b) != `{"v":{"x":[1]}}` {
		t.Errorf("MarshalJSON: %s %v", b, err)
	}
}

func TestFromAny(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"nil", nil, `null`},
		{"map sorted", map[string]any{"b": 1, "a": []any{true, "x", 1.5}}, `{"a":[true,"x",1.5],"b":1}`},
		{"json.Number", json.Number("1.50"), `1.50`},
		{"ints", []any{int8(-1), uint16(2), int64(3), uint64(4), int32(5)}, `[-1,2,3,4,5]`},
		{"float", math.Pi, `3.141592653589793`},
		{"float32", float32(0.5), `0.5`},
		{"typed map", map[string]string{"k": "v"}, `{"k":"v"}`},
		{"typed slice", []string{"a", "b"}, `["a","b"]`},
		{"nil map", map[string]int(nil), `null`},
		{"pointer", new(int), `0`},
		{"value", StringValue("v"), `"v"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := FromAny(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(v.AppendJSON(nil)); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
	for _, bad := range []any{math.NaN(), json.Number("1x"), struct{}{}, map[int]int{1: 1}} {
		if _, err := FromAny(bad); err == nil {
			t.Errorf("FromAny(%#v): no error", bad)
		}
	}
}

func TestConstructors(t *testing.T) {
	tests := []struct {
		name string
		v    Value
		want string
	}{
		{"int", Int64Value(-42), `-42`},
		{"float", Float64Value(1e21), `1e+21`},
		{"float nan", Float64Value(math.NaN()), `null`},
		{"bool", BoolValue(false), `false`},
		{"object dedupe", ObjectValue(Member{"a", Int64Value(1)}, Member{"a", Int64Value(2)}), `{"a":2}`},
		{"empty object", ObjectValue(), `{}`},
		{"empty array", ArrayValue(), `[]`},
		{"string escaping", StringValue("\x00\"\\\u2029\xff"), `"\u0000\"\\\u2029\ufffd"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(tt.v.AppendJSON(nil)); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
	if _, err := NumberValue("01"); err == nil {
		t.Error("NumberValue(01): no error")
	}
}

// TestJSNumberText checks JavaScript's Number.prototype.toString.
func TestJSNumberText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"100", "100"}, {"49.9", "49.9"}, {"1e21", "1e+21"}, {"0.0000001", "1e-7"}, {"0.000001", "0.000001"},
		{"123456789012345678901", "123456789012345680000"}, {"1e20", "100000000000000000000"}, {"-0", "0"},
		{"-1.5", "-1.5"}, {"1.0", "1"}, {"1E2", "100"}, {"1.25e-10", "1.25e-10"}, {"12345678901234567890123", "1.2345678901234568e+22"},
		{"0.1", "0.1"}, {"5e-324", "5e-324"}, {"1e400", "Infinity"}, {"-1e400", "-Infinity"}, {"007", "7"}, {"0", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := string(AppendNumberText(nil, tt.in)); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's sync.Pool drops the pooled parser at random: allocations vary")
	}
	data := []byte(benchEvent)
	if n := testing.AllocsPerRun(100, func() { _, _ = Parse(data) }); n > 3 {
		t.Errorf("Parse allocates %v times, want at most 3", n)
	}
}

// FuzzParse: the JSON parser agrees with encoding/json on validity and on
// the decoded value, and its encoding parses back to the same value.
func FuzzParse(f *testing.F) {
	for _, s := range []string{storedEvent, `{"a":[1,2.5e3,"\u00e9\ud83d\ude00"],"a":null}`, `[]`, `"\ud800"`, "\"\xff\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Parse(data)
		if valid := json.Valid(data); (err == nil) != valid {
			t.Fatalf("Parse error %v, json.Valid %v for %q", err, valid, data)
		}
		if err != nil {
			return
		}
		enc := v.AppendJSON(nil)
		v2, err := Parse(enc)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", enc, err)
		}
		if enc2 := v2.AppendJSON(nil); string(enc2) != string(enc) {
			t.Fatalf("encoding not stable: %s -> %s", enc, enc2)
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var want any
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
		if got := v.Any(); !reflect.DeepEqual(got, want) {
			t.Fatalf("Any() = %#v, encoding/json = %#v", got, want)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	data := []byte(benchEvent)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

func TestOwningConstructors(t *testing.T) {
	tests := []struct {
		name string
		v    Value
		want string
	}{
		{"ObjectOf dedupe", ObjectOf([]Member{{"a", Int64Value(1)}, {"b", Value{}}, {"a", Int64Value(2)}}), `{"a":2}`},
		{"ObjectOf empty", ObjectOf(nil), `{}`},
		{"ObjectOfDistinct", ObjectOfDistinct([]Member{{"b", NullValue()}, {"a", Value{}}}), `{"b":null}`},
		{"ArrayOf ignores keys", ArrayOf([]Member{{"x", Int64Value(1)}, {Value: Value{}}}), `[1,null]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(tt.v.AppendJSON(nil)); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			// Undefined inside is seen, so it is removed.
			if got := string(tt.v.WithoutUndefined().AppendJSON(nil)); got != tt.want {
				t.Errorf("WithoutUndefined: got %s, want %s", got, tt.want)
			}
		})
	}
	if got := ObjectOfDistinct([]Member{{"a", Value{}}}).WithoutUndefined().Len(); got != 0 {
		t.Errorf("WithoutUndefined kept %d Undefined members", got)
	}
	if got := ArrayOf([]Member{{"x", Value{}}}).WithoutUndefined().Index(0); !got.IsNull() {
		t.Errorf("WithoutUndefined array element = %v, want null", got.Kind())
	}
}

func TestAt(t *testing.T) {
	v := ObjectValue(Member{"a", Int64Value(1)}, Member{"u", Value{}})
	if mb := v.At(1); mb.Key != "u" || !mb.Value.IsUndefined() {
		t.Errorf("At(1) = %q %v, want the Undefined member u", mb.Key, mb.Value.Kind())
	}
	if mb := ArrayOf([]Member{{"k", StringValue("x")}}).At(0); mb.Key != "" || mb.Value.Kind() != String {
		t.Errorf("array At(0) = %q %v, want an element without key", mb.Key, mb.Value.Kind())
	}
	for _, i := range []int{-1, 2} {
		if mb := v.At(i); mb.Key != "" || !mb.Value.IsUndefined() {
			t.Errorf("At(%d) = %q %v, want the zero Member", i, mb.Key, mb.Value.Kind())
		}
	}
	if mb := StringValue("s").At(0); mb.Key != "" || !mb.Value.IsUndefined() {
		t.Error("At on a string is not the zero Member")
	}
}

// TestStrSpecial: the eight-byte test of str flags a word exactly when one
// of its bytes is '"', '\\' or below 0x20, wherever that byte is and
// whatever the others are (every byte value in every position, next to
// plain, special and non-ASCII bytes).
func TestStrSpecial(t *testing.T) {
	special := func(c byte) bool { return c == '"' || c == '\\' || c < 0x20 }
	for _, fill := range []byte{'a', 0xff, 0x80, ' ', 0x00, '"', 0x21, 0x5d} {
		for pos := range 8 {
			for c := range 256 {
				var w [8]byte
				for i := range w {
					w[i] = fill
				}
				w[pos] = byte(c)
				want := false
				for _, b := range w {
					want = want || special(b)
				}
				if got := strSpecial(load64(string(w[:]), 0)) != 0; got != want {
					t.Fatalf("strSpecial(% x) = %v, want %v", w, got, want)
				}
			}
		}
	}
	// Strings whose end, escape or control character sits at every offset
	// of the eight-byte steps parse as encoding/json parses them.
	for n := range 20 {
		for _, end := range []string{`"`, `\n"`, `\u00e9"`, "\x01\""} {
			doc := `"` + strings.Repeat("é", n/2) + strings.Repeat("x", n) + end
			v, err := Parse([]byte(doc))
			var want any
			werr := json.Unmarshal([]byte(doc), &want)
			if (err == nil) != (werr == nil) || err == nil && v.Any() != want {
				t.Errorf("Parse(%q) = %v, %v; encoding/json: %v, %v", doc, v.Any(), err, want, werr)
			}
		}
	}
}

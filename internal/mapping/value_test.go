package mapping

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

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
		{"deep", strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth), strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth)},
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
		{"too deep", strings.Repeat("[", maxDepth+1), maxDepth, "nesting deeper"},
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
	data := []byte(benchEvent)
	if n := testing.AllocsPerRun(100, func() { _, _ = Parse(data) }); n > 3 {
		t.Errorf("Parse allocates %v times, want at most 3", n)
	}
}

package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/capstan-gw/capstan/internal/event"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

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

// testEvent exercises the directives.
const testEvent = `{"type":"track","event":"Order Completed","messageId":"m1","userId":null,
 "properties":{"revenue":49.9,"currency":"usd","countryCode":"us","phone":"+1 415 555 0100","firstName":"John","lastName":"Doe",
   "key":"plan","plan":"pro","products":[{"sku":"A1","quantity":2},{"sku":"B7"}],"zero":0,"empty":"","f":false,"t":true,
   "hundred":100,"big":1e21,"tiny":0.0000001,"arr":[1,null,"a"],"obj":{"a":1},"json":"{\"b\":2,\"a\":[1,2]}","notjson":"{oops",
   "html":"<a&b>","tpl":"{{properties.firstName}}","ab":"ab","dir":"left","ls":"a\u2028b","ecole":"ÉCOLE"},
 "context":{"page":{"path":"/signup","referrer":"","search":"?x=1","title":"Sign up","url":"https://www.example.com/signup"},
   "traits":{"email":"ctx@example.com"}},
 "traits":{"email":"t@example.com"}}`

// applyJSON compiles mapping, applies it to event and returns compact JSON.
func applyJSON(t testing.TB, mapping, event string) (string, error) {
	t.Helper()
	m, err := Compile([]byte(mapping))
	if err != nil {
		t.Fatalf("Compile(%s): %v", mapping, err)
	}
	ev := mustParse(t, event)
	out, err := m.Apply(ev)
	// ApplyScratch gives the same, also in memory used before.
	for range 2 {
		sout, serr := m.ApplyScratch(ev, &testScratch)
		if (serr == nil) != (err == nil) || (err != nil && serr.Error() != err.Error()) {
			t.Errorf("ApplyScratch: error %v, Apply's %v", serr, err)
		} else if g, w := sout.AppendJSON(nil), out.AppendJSON(nil); string(g) != string(w) {
			t.Errorf("ApplyScratch: %s, Apply: %s", g, w)
		}
	}
	if err != nil {
		return "", err
	}
	if hasUndefined(out) {
		t.Errorf("output %s holds Undefined", out.AppendJSON(nil))
	}
	return string(out.AppendJSON(nil)), nil
}

// testScratch is applyJSON's Scratch, shared by every mapping it applies.
var testScratch Scratch

func hasUndefined(v event.Value) bool {
	if v.IsUndefined() {
		return true
	}
	for i := range v.Len() {
		if hasUndefined(v.At(i).Value) {
			return true
		}
	}
	return false
}

func compact(t testing.TB, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatalf("compact %s: %v", s, err)
	}
	return b.String()
}

// TestPathSyntax is the table of spec §5.3 plus the equivalent path forms.
func TestPathSyntax(t *testing.T) {
	tests := []struct {
		name, path, want string // want "" means undefined
	}{
		{"event", "$.event", `"Sign Up"`},
		{"nested", "$.context.page.url", `"https://www.example.com/signup?li_fat_id=123456"`},
		{"without $.", "properties.li_fat_id", `"123456"`},
		{"null", "$.userId", `null`},
		{"undefined", "$.traits.email", ``},
		{"object", "$.context.library", `{"name":"analytics.js","version":"npm:next-1.84.3"}`},
		{"array index dot", "$._metadata.bundled.0", `"Segment.io"`},
		{"array index bracket", "$._metadata.bundled[0]", `"Segment.io"`},
		{"quoted brackets", `_metadata["bundled"][0]`, `"Segment.io"`},
		{"$ before brackets is a key", `$["_metadata"]`, ``},
		{"single quoted brackets", `$.context['page']['path']`, `"/signup"`},
		{"index out of range", "$._metadata.bundled[1]", ``},
		{"non-canonical index", "$._metadata.bundled.00", ``},
		{"empty array", "$._metadata.unbundled.0", ``},
		{"only first $. removed", "context.$.locale", `"en-US"`},
		{"empty segments dropped", "context..locale.", `"en-US"`},
		{"through a string", "$.event.length", ``},
		{"through null", "$.userId.x", ``},
		{"key with brackets not split", "$.a[b]", ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := applyJSON(t, `{"x":{"@path":`+string(event.StringValue(tt.path).AppendJSON(nil))+`}}`, storedEvent)
			if err != nil {
				t.Fatal(err)
			}
			want := `{}`
			if tt.want != "" {
				want = `{"x":` + tt.want + `}`
			}
			if got != want {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
	t.Run("whole event", func(t *testing.T) {
		for _, p := range []string{"$.", "", "."} {
			got, err := applyJSON(t, `{"x":{"@path":"`+p+`"}}`, `{"a":1}`)
			if err != nil || got != `{"x":{"a":1}}` {
				t.Errorf("path %q: got %s, %v", p, got, err)
			}
		}
	})
	t.Run("falsy in the way", func(t *testing.T) {
		// Divergence (spec §5.12): Segment returns 0 here.
		got, _ := applyJSON(t, `{"x":{"@path":"$.properties.a.b"}}`, `{"properties":{"a":0}}`)
		if got != `{}` {
			t.Errorf("got %s, want {}", got)
		}
	})
}

// TestDirectives covers every directive and the examples of spec §5,
// verbatim where the spec gives them.
func TestDirectives(t *testing.T) {
	tests := []struct {
		name    string
		mapping string
		event   string // testEvent when empty
		want    string
	}{
		// §5.1 and §5.2
		{"5.1 example", `{
  "conversionHappenedAt": { "@path": "$.timestamp", "_metadata": { "label": "timestamp", "type": "variable" } },
  "conversionValue": { "currencyCode": "USD", "amount": { "@path": "$.properties.revenue" } },
  "enable_batching": true
}`, storedEvent, `{"conversionHappenedAt":"2026-09-01T10:34:56.938Z","conversionValue":{"currencyCode":"USD"},"enable_batching":true}`},
		{"raw values", `{"s":"x","n":1.50,"b":false,"z":null,"a":[1,"2",{"k":[]}],"o":{"_metadata":1}}`, "", `{"s":"x","n":1.50,"b":false,"z":null,"a":[1,"2",{"k":[]}],"o":{"_metadata":1}}`},
		{"key order kept", `{"z":1,"a":{"@path":"$.messageId"},"m":2}`, "", `{"z":1,"a":"m1","m":2}`},
		{"undefined removed recursively", `{"a":{"b":{"@path":"$.nope"},"c":{"d":{"@path":"$.nope"}}},"e":1}`, "", `{"a":{"c":{}},"e":1}`},
		{"null kept", `{"a":{"@path":"$.userId"}}`, "", `{"a":null}`},
		{"undefined in array is null", `{"x":["a", {"@path": "$.nope"}]}`, "", `{"x":["a",null]}`},
		{"directives in arrays", `{"x":[{"@path":"$.event"},{"y":{"@path":"$.messageId"}}]}`, "", `{"x":["Order Completed",{"y":"m1"}]}`},
		{"number text kept", `{"x":{"@path":"$.properties.big"},"y":{"@path":"$.properties.tiny"}}`, "", `{"x":1e21,"y":0.0000001}`},

		// §5.5 @path
		{"path example", `{"x":{"@path": "$.properties.revenue"}}`, "", `{"x":49.9}`},
		{"path from template", `{"x":{"@path": {"@template": "properties.{{properties.key}}"}}}`, "", `{"x":"pro"}`},
		{"path from path", `{"x":{"@path": {"@path": "$.properties.key"}}}`, `{"properties":{"key":"type"},"type":"page"}`, `{"x":"page"}`},
		{"path from literal", `{"x":{"@path": {"@literal": "$.event"}}}`, "", `{"x":"Order Completed"}`},
		{"path indexes", `{"x":{"@path":"$.properties.products[1].sku"},"y":{"@path":"properties.products.0.quantity"}}`, "", `{"x":"B7","y":2}`},

		// §5.6 @template
		{"template names", `{"x":{"@template": "{{properties.firstName}} {{properties.lastName}}"}}`, "", `{"x":"John Doe"}`},
		{"template missing and type", `{"x":{"@template": "{{ properties.missing }}-{{type}}"}}`, "", `{"x":"-track"}`},
		{"template no $. stripping", `{"x":{"@template": "{{$.properties.firstName}}"}}`, "", `{"x":""}`},
		{"template number", `{"x":{"@template": "{{properties.revenue}}|{{properties.hundred}}|{{properties.big}}|{{properties.tiny}}"}}`, "", `{"x":"49.9|100|1e+21|1e-7"}`},
		{"template bool null", `{"x":{"@template": "{{properties.t}}/{{properties.f}}/{{userId}}/{{properties.zero}}"}}`, "", `{"x":"true/false//0"}`},
		{"template array object", `{"x":{"@template": "{{properties.arr}} {{properties.obj}}"}}`, "", `{"x":"1,,a [object Object]"}`},
		{"template no html escaping", `{"x":{"@template": "{{properties.html}}"}}`, "", `{"x":"<a&b>"}`},
		{"template triple braces", `{"x":{"@template": "{{{ properties.firstName }}}!"}}`, "", `{"x":"John!"}`},
		{"template triple then double", `{"x":{"@template": "{{{properties.tpl}}} {{properties.lastName}}"}}`, "", `{"x":"John Doe"}`},
		{"template empty placeholder", `{"x":{"@template": "{{}} {{ }} {{a"}}`, "", `{"x":"{{}} [object Object] {{a"}`}, // "{{ }}" is the whole event, as in Segment
		{"template four braces", `{"x":{"@template": "{{{{type}}}}"}}`, "", `{"x":"}"}`},
		{"template plain", `{"x":{"@template": "plain"}}`, "", `{"x":"plain"}`},
		{"template empty", `{"x":{"@template": ""}}`, "", `{"x":""}`},
		{"template dynamic", `{"x":{"@template": {"@path": "$.properties.tpl"}}}`, "", `{"x":"John"}`},
		{"template path indexes", `{"x":{"@template": "{{properties.products[0].sku}}/{{properties.products.1.sku}}"}}`, "", `{"x":"A1/B7"}`},

		// §5.7 @literal
		{"literal empty string", `{"x":{"@literal": ""}}`, "", `{"x":""}`},
		{"literal true", `{"x":{"@literal": true}}`, "", `{"x":true}`},
		{"literal null", `{"x":{"@literal": null}}`, "", `{"x":null}`},
		{"literal object with directive", `{"x":{"@literal": {"a": {"@path": "$.event"}, "b": [1]}}}`, "", `{"x":{"a":"Order Completed","b":[1]}}`},
		{"literal of directive", `{"x":{"@literal": {"@path": "$.messageId"}}}`, "", `{"x":"m1"}`},

		// §5.8 @if
		{"if exists then", `{"x":{"@if": {"exists": {"@path": "$.traits.email"}, "then": {"@path": "$.traits.email"},
         "else": {"@path": "$.context.traits.email"}}}}`, "", `{"x":"t@example.com"}`},
		{"if exists else", `{"x":{"@if": {"exists": {"@path": "$.traits.email"}, "then": {"@path": "$.traits.email"},
         "else": {"@path": "$.context.traits.email"}}}}`, `{"context":{"traits":{"email":"ctx@example.com"}}}`, `{"x":"ctx@example.com"}`},
		{"if exists null is false", `{"x":{"@if": {"exists": {"@path": "$.userId"}, "then": 1, "else": 2}}}`, "", `{"x":2}`},
		{"if exists empty string is true", `{"x":{"@if": {"exists": {"@path": "$.properties.empty"}, "then": 1, "else": 2}}}`, "", `{"x":1}`},
		{"if blank present", `{"x":{"@if": {"blank": {"@path": "$.properties.currency"}, "then": {"@path": "$.properties.currency"}, "else": "USD"}}}`, "", `{"x":"usd"}`},
		{"if blank absent", `{"x":{"@if": {"blank": {"@path": "$.properties.currency"}, "then": {"@path": "$.properties.currency"}, "else": "USD"}}}`, `{}`, `{"x":"USD"}`},
		{"if blank empty string", `{"x":{"@if": {"blank": {"@path": "$.p"}, "then": "T", "else": "E"}}}`, `{"p":""}`, `{"x":"E"}`},
		{"if blank zero", `{"x":{"@if": {"blank": {"@path": "$.p"}, "then": "T", "else": "E"}}}`, `{"p":0}`, `{"x":"E"}`},
		{"if blank minus zero", `{"x":{"@if": {"blank": {"@path": "$.p"}, "then": "T", "else": "E"}}}`, `{"p":-0.0}`, `{"x":"E"}`},
		{"if blank false", `{"x":{"@if": {"blank": {"@path": "$.p"}, "then": "T", "else": "E"}}}`, `{"p":false}`, `{"x":"E"}`},
		{"if blank empty array", `{"x":{"@if": {"blank": {"@path": "$.p"}, "then": "T", "else": "E"}}}`, `{"p":[]}`, `{"x":"E"}`},
		{"if blank array of empty", `{"x":{"@if": {"blank": {"@path": "$.p"}, "then": "T", "else": "E"}}}`, `{"p":[""]}`, `{"x":"E"}`},
		{"if blank array of null", `{"x":{"@if": {"blank": {"@path": "$.p"}, "then": "T", "else": "E"}}}`, `{"p":[null]}`, `{"x":"E"}`},
		{"if blank null", `{"x":{"@if": {"blank": {"@path": "$.p"}, "then": "T", "else": "E"}}}`, `{"p":null}`, `{"x":"E"}`},
		{"if blank string zero", `{"x":{"@if": {"blank": {"@path": "$.p"}, "then": "T", "else": "E"}}}`, `{"p":"0"}`, `{"x":"T"}`},
		{"if blank space", `{"x":{"@if": {"blank": {"@path": "$.p"}, "then": "T", "else": "E"}}}`, `{"p":" "}`, `{"x":"T"}`},
		{"if blank empty object", `{"x":{"@if": {"blank": {"@path": "$.p"}, "then": "T", "else": "E"}}}`, `{"p":{}}`, `{"x":"T"}`},
		{"if blank array of two empties", `{"x":{"@if": {"blank": {"@path": "$.p"}, "then": "T", "else": "E"}}}`, `{"p":["",""]}`, `{"x":"T"}`},
		{"if exists wins over blank", `{"x":{"@if": {"exists": {"@path": "$.p"}, "blank": {"@path": "$.q"}, "then": "T", "else": "E"}}}`, `{"p":"", "q":""}`, `{"x":"T"}`},
		{"if falsy exists with blank uses exists", `{"x":{"@if": {"exists": "", "blank": {"@path": "$.q"}, "then": "T", "else": "E"}}}`, `{}`, `{"x":"T"}`},
		{"if null exists with blank uses exists", `{"x":{"@if": {"exists": null, "blank": "x", "then": "T", "else": "E"}}}`, `{}`, `{"x":"E"}`},
		{"if true without then", `{"x":{"@if": {"exists": {"@path": "$.event"}, "else": "E"}}}`, "", `{}`},
		{"if then false kept", `{"x":{"@if": {"exists": {"@path": "$.event"}, "then": false}}}`, "", `{"x":false}`},
		{"if then zero kept", `{"x":{"@if": {"exists": {"@path": "$.event"}, "then": 0}}}`, "", `{"x":0}`},
		{"if then empty kept", `{"x":{"@if": {"exists": {"@path": "$.event"}, "then": ""}}}`, "", `{"x":""}`},
		{"if else false dropped", `{"x":{"@if": {"exists": {"@path": "$.nope"}, "then": 1, "else": false}}}`, "", `{}`},
		{"if else zero dropped", `{"x":{"@if": {"exists": {"@path": "$.nope"}, "then": 1, "else": 0}}}`, "", `{}`},
		{"if else empty dropped", `{"x":{"@if": {"exists": {"@path": "$.nope"}, "then": 1, "else": ""}}}`, "", `{}`},
		{"if else null dropped", `{"x":{"@if": {"exists": {"@path": "$.nope"}, "then": 1, "else": null}}}`, "", `{}`},
		{"if without else", `{"x":{"@if": {"exists": {"@path": "$.nope"}, "then": 1}}}`, "", `{}`},
		{"if raw exists", `{"x":{"@if": {"exists": "yes", "then": 1}}}`, "", `{"x":1}`},
		{"if metadata ignored", `{"x":{"@if": {"exists": {"@path": "$.event"}, "then": 1, "_metadata": {}}}}`, "", `{"x":1}`},

		// §5.9 @case
		{"case upper", `{"x":{"@case": {"operator": "upper", "value": {"@path": "$.properties.countryCode"}}}}`, "", `{"x":"US"}`},
		{"case lower", `{"x":{"@case": {"operator": "lower", "value": {"@path": "$.properties.ecole"}}}}`, "", `{"x":"école"}`},
		{"case number unchanged", `{"x":{"@case": {"operator": "upper", "value": {"@path": "$.properties.revenue"}}}}`, "", `{"x":49.9}`},
		{"case object unchanged", `{"x":{"@case": {"operator": "upper", "value": {"@path": "$.properties.obj"}}}}`, "", `{"x":{"a":1}}`},
		{"case undefined", `{"x":{"@case": {"operator": "upper", "value": {"@path": "$.nope"}}}}`, "", `{}`},
		{"case value missing", `{"x":{"@case": {"operator": "upper"}}}`, "", `{}`},
		{"case value falsy", `{"x":{"@case": {"operator": "upper", "value": ""}}}`, "", `{}`},
		{"case raw value", `{"x":{"@case": {"operator": "upper", "value": "abc"}}}`, "", `{"x":"ABC"}`},
		{"case bad operator non-string", `{"x":{"@case": {"operator": "title", "value": {"@path": "$.properties.zero"}}}}`, "", `{"x":0}`},

		// §5.9 @replace
		{"replace phone", `{"x":{"@replace": {"value": {"@path": "$.properties.phone"}, "pattern": " ", "replacement": ""}}}`, "", `{"x":"+14155550100"}`},
		{"replace first only", `{"x":{"@replace": {"value": "a-b-c", "pattern": "-", "replacement": "+", "global": false}}}`, "", `{"x":"a+b-c"}`},
		{"replace global default", `{"x":{"@replace": {"value": "a-b-c", "pattern": "-", "replacement": "+"}}}`, "", `{"x":"a+b+c"}`},
		{"replace default replacement", `{"x":{"@replace": {"value": "a-b-c", "pattern": "-"}}}`, "", `{"x":"abc"}`},
		{"replace null replacement", `{"x":{"@replace": {"value": "a-b", "pattern": "-", "replacement": null}}}`, "", `{"x":"ab"}`},
		{"replace literal pattern", `{"x":{"@replace": {"value": "a.b*c", "pattern": ".", "replacement": "$"}}}`, "", `{"x":"a$b*c"}`},
		{"replace regexp chars literal", `{"x":{"@replace": {"value": "(a)[b]", "pattern": "(a)", "replacement": "x"}}}`, "", `{"x":"x[b]"}`},
		{"replace case-sensitive", `{"x":{"@replace": {"value": "Hello hello", "pattern": "hello", "replacement": "x"}}}`, "", `{"x":"Hello x"}`},
		{"replace ignorecase", `{"x":{"@replace": {"value": "Hello HELLO", "pattern": "hello", "replacement": "x", "ignorecase": true}}}`, "", `{"x":"x x"}`},
		{"replace ignorecase first", `{"x":{"@replace": {"value": "ÉCOLE école", "pattern": "école", "replacement": "x", "ignorecase": true, "global": false}}}`, "", `{"x":"x école"}`},
		{"replace $&", `{"x":{"@replace": {"value": "ab", "pattern": "a", "replacement": "[$&]"}}}`, "", `{"x":"[a]b"}`},
		{"replace $$", `{"x":{"@replace": {"value": "ab", "pattern": "a", "replacement": "$$"}}}`, "", `{"x":"$b"}`},
		{"replace $backtick", "{\"x\":{\"@replace\": {\"value\": \"abc\", \"pattern\": \"b\", \"replacement\": \"$`\"}}}", "", `{"x":"aac"}`},
		{"replace $quote", `{"x":{"@replace": {"value": "abc", "pattern": "b", "replacement": "$'"}}}`, "", `{"x":"acc"}`},
		{"replace $1 literal", `{"x":{"@replace": {"value": "abc", "pattern": "b", "replacement": "$1$<x>$"}}}`, "", `{"x":"a$1$<x>$c"}`},
		{"replace number", `{"x":{"@replace": {"value": {"@path": "$.properties.revenue"}, "pattern": ".", "replacement": ","}}}`, "", `{"x":"49,9"}`},
		{"replace bool", `{"x":{"@replace": {"value": {"@path": "$.properties.t"}, "pattern": "t", "replacement": "T"}}}`, "", `{"x":"True"}`},
		{"replace null gives empty", `{"x":{"@replace": {"value": {"@path": "$.userId"}, "pattern": "a"}}}`, "", `{"x":""}`},
		{"replace undefined gives empty", `{"x":{"@replace": {"value": {"@path": "$.nope"}, "pattern": "a"}}}`, "", `{"x":""}`},
		{"replace object gives empty", `{"x":{"@replace": {"value": {"@path": "$.properties.obj"}, "pattern": "a"}}}`, "", `{"x":""}`},
		{"replace falsy value", `{"x":{"@replace": {"value": "", "pattern": "a"}}}`, "", `{}`},
		{"replace pattern2", `{"x":{"@replace": {"value": "a-b c-d", "pattern": "-", "replacement": "", "pattern2": " ", "replacement2": "_"}}}`, "", `{"x":"ab_cd"}`},
		{"replace pattern2 shares flags", `{"x":{"@replace": {"value": "a-b-c d e", "pattern": "-", "pattern2": " ", "global": false}}}`, "", `{"x":"ab-cd e"}`},
		{"replace empty pattern2 skipped", `{"x":{"@replace": {"value": "a-b", "pattern": "-", "pattern2": ""}}}`, "", `{"x":"ab"}`},

		// §5.10 @arrayPath
		{"arrayPath example", `{"x":{"@arrayPath": ["$.properties.products", {"id": {"@path": "$.sku"}, "qty": {"@path": "$.quantity"}}]}}`, "", `{"x":[{"id":"A1","qty":2},{"id":"B7"}]}`},
		{"arrayPath object root", `{"x":{"@arrayPath": ["$.properties.obj", {"v": {"@path": "$.a"}}]}}`, "", `{"x":[{"v":1}]}`},
		{"arrayPath no shape", `{"x":{"@arrayPath": ["$.properties.products"]}}`, "", `{"x":[{"sku":"A1","quantity":2},{"sku":"B7"}]}`},
		{"arrayPath empty shape", `{"x":{"@arrayPath": ["$.properties.obj", {}]}}`, "", `{"x":{"a":1}}`},
		{"arrayPath scalar root", `{"x":{"@arrayPath": ["$.event", {"a": 1}]}}`, "", `{"x":"Order Completed"}`},
		{"arrayPath missing root", `{"x":{"@arrayPath": ["$.nope", {"a": 1}]}}`, "", `{}`},
		{"arrayPath directive root", `{"x":{"@arrayPath": [{"@path": "$.properties.products"}, {"id": {"@path": "$.sku"}}]}}`, "", `{"x":[{"id":"A1"},{"id":"B7"}]}`},
		{"arrayPath scalar elements", `{"x":{"@arrayPath": ["$.properties.arr", {"v": {"@path": "$."}}]}}`, "", `{"x":[{"v":1},{"v":null},{"v":"a"}]}`},
		{"arrayPath directive shape", `{"x":{"@arrayPath": ["$.properties.products", {"@path": "$.sku"}]}}`, "", `{"x":["A1","B7"]}`},
		{"arrayPath nested", `{"x":{"@arrayPath": ["$.properties.products", {"s": {"@template": "{{sku}}x{{quantity}}"}}]}}`, "", `{"x":[{"s":"A1x2"},{"s":"B7x"}]}`},

		// §5.10 @json
		{"json encode object", `{"x":{"@json": {"mode": "encode", "value": {"@path": "$.properties.products"}}}}`, "", `{"x":"[{\"sku\":\"A1\",\"quantity\":2},{\"sku\":\"B7\"}]"}`},
		{"json encode no html escaping", `{"x":{"@json": {"mode": "encode", "value": {"@path": "$.properties.html"}}}}`, "", `{"x":"\"<a&b>\""}`},
		{"json encode line separator", `{"x":{"@json": {"mode": "encode", "value": {"@path": "$.properties.ls"}}}}`, "", `{"x":"\"a\\u2028b\""}`},
		{"json encode number text", `{"x":{"@json": {"mode": "encode", "value": {"@path": "$.properties.revenue"}}}}`, "", `{"x":"49.9"}`},
		{"json encode undefined", `{"x":{"@json": {"mode": "encode", "value": {"@path": "$.nope"}}}}`, "", `{}`},
		{"json encode drops undefined keys", `{"x":{"@json": {"mode": "encode", "value": {"a": {"@path": "$.nope"}, "b": [{"@path": "$.nope"}]}}}}`, "", `{"x":"{\"b\":[null]}"}`},
		{"json decode", `{"x":{"@json": {"mode": "decode", "value": {"@path": "$.properties.json"}}}}`, "", `{"x":{"b":2,"a":[1,2]}}`},
		{"json decode invalid", `{"x":{"@json": {"mode": "decode", "value": {"@path": "$.properties.notjson"}}}}`, "", `{"x":"{oops"}`},
		{"json decode non-string", `{"x":{"@json": {"mode": "decode", "value": {"@path": "$.properties.obj"}}}}`, "", `{"x":{"a":1}}`},
		{"json decode scalar text", `{"x":{"@json": {"mode": "decode", "value": " 12.50 "}}}`, "", `{"x":12.50}`},

		// §5.10 @flatten
		{"flatten page", `{"x":{"@flatten": {"value": {"@path": "$.context.page"}, "separator": "_"}}}`, "", `{"x":{"path":"/signup","referrer":"","search":"?x=1","title":"Sign up","url":"https://www.example.com/signup"}}`},
		{"flatten example", `{"x":{"@flatten": {"value": {"a": {"b": 1, "c": [5, 6]}}, "separator": "."}}}`, "", `{"x":{"a.b":1,"a.c.0":5,"a.c.1":6}}`},
		{"flatten omitArrays", `{"x":{"@flatten": {"value": {"a": {"b": 1, "c": [5, 6]}}, "separator": ".", "omitArrays": true}}}`, "", `{"x":{"a.b":1,"a.c":[5,6]}}`},
		{"flatten empties disappear", `{"x":{"@flatten": {"value": {"a": {}, "b": [], "c": {"d": {}}, "e": 1}, "separator": "_"}}}`, "", `{"x":{"e":1}}`},
		{"flatten scalar", `{"x":{"@flatten": {"value": 5, "separator": "."}}}`, "", `{"x":{"":5}}`},
		{"flatten undefined", `{"x":{"@flatten": {"value": {"@path": "$.nope"}, "separator": "."}}}`, "", `{"x":{}}`},
		{"flatten array top", `{"x":{"@flatten": {"value": [1, [2]], "separator": "-"}}}`, "", `{"x":{"0":1,"1-0":2}}`},
		{"flatten repeated key", `{"x":{"@flatten": {"value": {"a.b": 1, "c": 0, "a": {"b": 2}}, "separator": "."}}}`, "", `{"x":{"a.b":2,"c":0}}`},
		{"flatten directive separator", `{"x":{"@flatten": {"value": {"a": {"b": 1}}, "separator": {"@literal": "::"}}}}`, "", `{"x":{"a::b":1}}`},

		// §5.10 @merge
		{"merge example", `{"x":{"@merge": {"direction": "right", "objects": [{"currencyCode": "USD", "amount": "0"},
   {"currencyCode": {"@path": "$.properties.currency"}, "amount": {"@path": "$.properties.revenue"}}]}}}`, "", `{"x":{"currencyCode":"usd","amount":49.9}}`},
		{"merge undefined overwrites default", `{"x":{"@merge": {"direction": "right", "objects": [{"currencyCode": "USD", "amount": "0"},
   {"currencyCode": {"@path": "$.properties.currency"}, "amount": {"@path": "$.properties.revenue"}}]}}}`, `{"properties":{"revenue":5}}`, `{"x":{"amount":5}}`},
		{"merge right", `{"x":{"@merge": {"direction": "right", "objects": [{"a": 1, "b": 1}, {"b": 2, "c": 2}]}}}`, "", `{"x":{"a":1,"b":2,"c":2}}`},
		{"merge left", `{"x":{"@merge": {"direction": "left", "objects": [{"a": 1, "b": 1}, {"b": 2, "c": 2}]}}}`, "", `{"x":{"b":1,"c":2,"a":1}}`},
		{"merge skips scalars", `{"x":{"@merge": {"direction": "right", "objects": [{"@path": "$.userId"}, {"@path": "$.properties.revenue"}, {"@path": "$.properties.t"}, {"@path": "$.nope"}, {"a": 1}]}}}`, "", `{"x":{"a":1}}`},
		{"merge string and array", `{"x":{"@merge": {"direction": "right", "objects": [{"@path": "$.properties.ab"}, {"@path": "$.properties.arr"}]}}}`, "", `{"x":{"0":1,"1":null,"2":"a"}}`},
		{"merge string", `{"x":{"@merge": {"direction": "right", "objects": [{"@path": "$.properties.ab"}]}}}`, "", `{"x":{"0":"a","1":"b"}}`},
		{"merge directive direction", `{"x":{"@merge": {"direction": {"@path": "$.properties.dir"}, "objects": [{"a": 1}, {"a": 2}]}}}`, "", `{"x":{"a":1}}`},
		{"merge empty", `{"x":{"@merge": {"direction": "right", "objects": []}}}`, "", `{"x":{}}`},

		// §5.10 @transform
		{"transform", `{"x":{"@transform": {"apply": {"name": {"@template": "{{properties.firstName}} {{properties.lastName}}"}, "gone": {"@path": "$.nope"}},
   "mapping": {"full": {"@path": "$.name"}, "g": {"@path": "$.gone"}, "keys": {"@json": {"mode": "encode", "value": {"@path": "$."}}}}}}}`, "", `{"x":{"full":"John Doe","keys":"{\"name\":\"John Doe\"}"}}`},
		{"transform directive apply", `{"x":{"@transform": {"apply": {"@path": "$.properties.obj"}, "mapping": {"v": {"@path": "$.a"}}}}}`, "", `{"x":{"v":1}}`},

		// §5.10 @excludeWhenNull
		{"excludeWhenNull null", `{"x":{"@excludeWhenNull": {"@path": "$.userId"}}, "y": 1}`, "", `{"y":1}`},
		{"excludeWhenNull object", `{"x":{"@excludeWhenNull": {"a": null, "b": {"c": null, "d": 1}, "e": [null, {"f": null}]}}}`, "", `{"x":{"b":{"d":1},"e":[null,{"f":null}]}}`},
		{"excludeWhenNull value", `{"x":{"@excludeWhenNull": {"@path": "$.event"}}}`, "", `{"x":"Order Completed"}`},
		{"excludeWhenNull zero", `{"x":{"@excludeWhenNull": 0}}`, "", `{"x":0}`},
		{"excludeWhenNull undefined", `{"x":{"@excludeWhenNull": {"@path": "$.nope"}}}`, "", `{}`},

		// nesting
		{"case of replace of template", `{"x":{"@case": {"operator": "upper", "value": {"@replace": {"value": {"@template": "{{properties.firstName}}-{{properties.lastName}}"}, "pattern": "-", "replacement": " "}}}}}`, "", `{"x":"JOHN DOE"}`},
		{"root directive", `{"@path": "$.properties.obj"}`, "", `{"a":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := tt.event
			if ev == "" {
				ev = testEvent
			}
			got, err := applyJSON(t, tt.mapping, ev)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if want := compact(t, tt.want); got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func TestCaseUnicode(t *testing.T) {
	// Divergence (spec §5.12): Go's Unicode mapping, not JavaScript's
	// special casing; ß has no single-character upper case in Go.
	got, err := applyJSON(t, `{"x":{"@case": {"operator": "upper", "value": "straße ǆ"}}}`, `{}`)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"x":"STRAßE Ǆ"}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestApplyErrors covers the runtime errors of spec §5.5–§5.10.
func TestApplyErrors(t *testing.T) {
	tests := []struct {
		name      string
		mapping   string
		event     string
		location  string
		directive string
		msg       string
	}{
		{"path not string", `{"a":{"b":{"@path": {"@path": "$.properties.revenue"}}}}`, "", "/a/b", "@path", "@path: expected string, got number"},
		{"path undefined", `{"x":{"@path": {"@path": "$.nope"}}}`, "", "/x", "@path", "@path: expected string, got undefined"},
		{"template not string", `{"x":{"@template": {"@path": "$.properties.obj"}}}`, "", "/x", "@template", "@template: expected string, got object"},
		{"if without condition", `{"x":{"@if": {"then": 1}}}`, "", "/x", "@if", `@if requires an "exists" key or a "blank" key`},
		{"if falsy conditions", `{"x":{"@if": {"exists": 0, "blank": "", "then": 1}}}`, "", "/x", "@if", `@if requires an "exists" key or a "blank" key`},
		{"case empty operator", `{"x":{"@case": {"operator": "", "value": "a"}}}`, "", "/x", "@case", `@case requires a "operator" key`},
		{"case bad operator", `{"x":{"@case": {"operator": "title", "value": "a"}}}`, "", "/x", "@case", `operator key should have a value of "lower" or "upper"`},
		{"json falsy value", `{"x":{"@json": {"mode": "encode", "value": 0}}}`, "", "/x", "@json", `@json requires a "value" key`},
		{"flatten empty separator", `{"x":{"@flatten": {"value": {}, "separator": ""}}}`, "", "/x", "@flatten", `@flatten requires a "separator" key`},
		{"flatten separator not string", `{"x":{"@flatten": {"value": {}, "separator": {"@path": "$.properties.revenue"}}}}`, "", "/x", "@flatten", `@flatten requires a string separator`},
		{"error inside arrayPath shape", `{"x":{"@arrayPath": ["$.properties.products", {"id": {"@path": {"@path": "$.quantity"}}}]}}`, "", "/x/@arrayPath/1/id", "@path", "expected string, got number"},
		{"error stops mapping", `{"ok": 1, "y": [{"@case": {"operator": "x", "value": "v"}}]}`, "", "/y/0", "@case", "lower"},
		{"transform on non-object element", `{"x":{"@arrayPath": ["$.properties.arr", {"@transform": {"apply": {}, "mapping": {}}}]}}`, "", "/x/@arrayPath/1", "@transform", "data must be an object, got number"},
		{"event not object", `{"x":1}`, `[]`, "", "", "the event must be a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := tt.event
			if ev == "" {
				ev = testEvent
			}
			_, err := applyJSON(t, tt.mapping, ev)
			var ae *ApplyError
			if !errors.As(err, &ae) {
				t.Fatalf("got %v, want *ApplyError", err)
			}
			if ae.Location != tt.location || ae.Directive != tt.directive {
				t.Errorf("location, directive = %q, %q; want %q, %q", ae.Location, ae.Directive, tt.location, tt.directive)
			}
			if !strings.Contains(ae.Msg, tt.msg) {
				t.Errorf("message %q lacks %q", ae.Msg, tt.msg)
			}
		})
	}
}

// TestCompileErrors covers the save-time validation of spec §5.11.
func TestCompileErrors(t *testing.T) {
	type want struct{ location, code, msg string }
	tests := []struct {
		name    string
		mapping string
		want    []want
	}{
		{"mixed keys", `{"conversionValue":{"amount":{"@path":"$.properties.revenue","currency":"USD"}}}`, []want{{"/conversionValue/amount", "invalid_directive", `also has "currency"`}}},
		{"two directives", `{"a":{"@path":"$.x","@template":"y"}}`, []want{{"/a", "invalid_directive", "only one directive"}}},
		{"unknown directive", `{"a":{"@foo":1}}`, []want{{"/a", "unknown_directive", "unknown directive @foo"}}},
		{"directive case", `{"a":{"@Path":"$.x"}}`, []want{{"/a", "unknown_directive", "did you mean @path?"}}},
		{"bare at", `{"a":{"@":"x"}}`, []want{{"/a", "unknown_directive", "unknown directive @"}}},
		{"liquid", `{"a":{"@liquid":"{{ properties.x | upcase }}"}}`, []want{{"/a", "unsupported_directive", "@liquid (Liquid templates) is not supported"}}},
		{"root internal directive", `{"__segment_internal_directive":{"@arrayPath":["$.x",{}]},"a":1}`, []want{{"/__segment_internal_directive", "unsupported_directive", "not supported"}}},
		{"path number", `{"a":{"@path":5}}`, []want{{"/a/@path", "invalid_argument", "@path must be a string or a directive, got a number"}}},
		{"path plain object", `{"a":{"@path":{"x":1}}}`, []want{{"/a/@path", "invalid_argument", "got an object"}}},
		{"template array", `{"a":{"@template":["x"]}}`, []want{{"/a/@template", "invalid_argument", "@template must be a string or a directive, got an array"}}},
		{"nested directive checked", `{"a":{"@path":{"@template":1}}}`, []want{{"/a/@path/@template", "invalid_argument", "got a number"}}},
		{"if not object", `{"a":{"@if":"x"}}`, []want{{"/a/@if", "invalid_argument", "@if takes an object"}}},
		{"if unknown member", `{"a":{"@if":{"exists":1,"than":2}}}`, []want{{"/a/@if/than", "invalid_argument", `@if does not take "than"`}}},
		{"if branches checked", `{"a":{"@if":{"exists":{"@nope":1},"then":{"@path":1}}}}`, []want{{"/a/@if/exists", "unknown_directive", "@nope"}, {"/a/@if/then/@path", "invalid_argument", "got a number"}}},
		{"case operator number", `{"a":{"@case":{"operator":1,"value":"x"}}}`, []want{{"/a/@case/operator", "invalid_argument", `"operator": "lower" or "upper"; got a number`}}},
		{"case operator missing", `{"a":{"@case":{"value":"x"}}}`, []want{{"/a/@case/operator", "invalid_argument", "it is missing"}}},
		{"case not object", `{"a":{"@case":"upper"}}`, []want{{"/a/@case", "invalid_argument", "@case takes an object"}}},
		{"replace no pattern", `{"a":{"@replace":{"value":"x"}}}`, []want{{"/a/@replace", "invalid_argument", `@replace needs "pattern"`}}},
		{"replace pattern too long", `{"a":{"@replace":{"value":"x","pattern":"12345678901"}}}`, []want{{"/a/@replace/pattern", "invalid_argument", "must be 1 to 10 characters long, got 11"}}},
		{"replace pattern empty", `{"a":{"@replace":{"value":"x","pattern":""}}}`, []want{{"/a/@replace/pattern", "invalid_argument", "got 0"}}},
		{"replace pattern length in UTF-16", `{"a":{"@replace":{"value":"x","pattern":"😀😀😀😀😀😀"}}}`, []want{{"/a/@replace/pattern", "invalid_argument", "got 12"}}},
		{"replace pattern number", `{"a":{"@replace":{"value":"x","pattern":5}}}`, []want{{"/a/@replace/pattern", "invalid_argument", "must be a string, got a number"}}},
		{"replace replacement too long", `{"a":{"@replace":{"value":"x","pattern":"a","replacement":"12345678901"}}}`, []want{{"/a/@replace/replacement", "invalid_argument", "0 to 10 characters"}}},
		{"replace no value", `{"a":{"@replace":{"pattern":"a"}}}`, []want{{"/a/@replace", "invalid_argument", `@replace needs "value"`}}},
		{"replace global string", `{"a":{"@replace":{"value":"x","pattern":"a","global":"true"}}}`, []want{{"/a/@replace/global", "invalid_argument", "must be true or false"}}},
		{"replace ignorecase number", `{"a":{"@replace":{"value":"x","pattern":"a","ignorecase":1}}}`, []want{{"/a/@replace/ignorecase", "invalid_argument", "must be true or false"}}},
		{"replace pattern2 too long", `{"a":{"@replace":{"value":"x","pattern":"a","pattern2":"12345678901"}}}`, []want{{"/a/@replace/pattern2", "invalid_argument", "0 to 10"}}},
		{"replace many", `{"a":{"@replace":{"pattern":"","replacement":"12345678901","global":1}}}`, []want{
			{"/a/@replace/pattern", "invalid_argument", "got 0"},
			{"/a/@replace/replacement", "invalid_argument", "got 11"},
			{"/a/@replace/global", "invalid_argument", "true or false"},
			{"/a/@replace", "invalid_argument", `needs "value"`},
		}},
		{"arrayPath not array", `{"a":{"@arrayPath":"$.x"}}`, []want{{"/a/@arrayPath", "invalid_argument", "@arrayPath takes an array [path, shape]"}}},
		{"arrayPath empty", `{"a":{"@arrayPath":[]}}`, []want{{"/a/@arrayPath", "invalid_argument", "takes an array"}}},
		{"arrayPath first number", `{"a":{"@arrayPath":[1,{}]}}`, []want{{"/a/@arrayPath/0", "invalid_argument", "first element of @arrayPath must be a string or a directive"}}},
		{"arrayPath shape checked", `{"a":{"@arrayPath":["$.x",{"id":{"@bad":1}}]}}`, []want{{"/a/@arrayPath/1/id", "unknown_directive", "@bad"}}},
		{"json bad mode", `{"a":{"@json":{"mode":"stringify","value":"x"}}}`, []want{{"/a/@json/mode", "invalid_argument", `"encode" or "decode"`}}},
		{"json no mode", `{"a":{"@json":{"value":"x"}}}`, []want{{"/a/@json/mode", "invalid_argument", `"encode" or "decode"`}}},
		{"json no value", `{"a":{"@json":{"mode":"encode"}}}`, []want{{"/a/@json", "invalid_argument", `@json needs "value"`}}},
		{"flatten no separator", `{"a":{"@flatten":{"value":{}}}}`, []want{{"/a/@flatten", "invalid_argument", `@flatten needs "separator"`}}},
		{"flatten separator number", `{"a":{"@flatten":{"value":{},"separator":1}}}`, []want{{"/a/@flatten/separator", "invalid_argument", "must be a string"}}},
		{"flatten no value", `{"a":{"@flatten":{"separator":"."}}}`, []want{{"/a/@flatten", "invalid_argument", `@flatten needs "value"`}}},
		{"merge objects not array", `{"a":{"@merge":{"objects":{},"direction":"right"}}}`, []want{{"/a/@merge/objects", "invalid_argument", "an array of objects or directives"}}},
		{"merge objects missing", `{"a":{"@merge":{"direction":"right"}}}`, []want{{"/a/@merge", "invalid_argument", `needs "objects"`}}},
		{"merge element scalar", `{"a":{"@merge":{"objects":[{},"x",null],"direction":"right"}}}`, []want{
			{"/a/@merge/objects/1", "invalid_argument", "got a string"},
			{"/a/@merge/objects/2", "invalid_argument", "got null"},
		}},
		{"merge direction bad", `{"a":{"@merge":{"objects":[],"direction":"up"}}}`, []want{{"/a/@merge/direction", "invalid_argument", `"right" or "left"`}}},
		{"merge direction missing", `{"a":{"@merge":{"objects":[]}}}`, []want{{"/a/@merge", "invalid_argument", `needs "direction"`}}},
		{"transform apply missing", `{"a":{"@transform":{"mapping":{}}}}`, []want{{"/a/@transform", "invalid_argument", `@transform needs "apply"`}}},
		{"transform mapping not object", `{"a":{"@transform":{"apply":{},"mapping":"x"}}}`, []want{{"/a/@transform/mapping", "invalid_argument", "got a string"}}},
		{"root array", `[]`, []want{{"", "invalid_mapping", "a mapping is a JSON object"}}},
		{"root string", `"x"`, []want{{"", "invalid_mapping", "got a string"}}},
		{"invalid json", `{"a":`, []want{{"", "invalid_json", "invalid JSON at offset 5"}}},
		{"pointer escaping", `{"a/b":{"c~d":{"@nope":1}}}`, []want{{"/a~1b/c~0d", "unknown_directive", "@nope"}}},
		{"in arrays", `{"a":[1,{"@path":true}]}`, []want{{"/a/1/@path", "invalid_argument", "got a boolean"}}},
		{"all errors reported", `{"a":{"@liquid":"x"},"b":{"c":{"@path":1}},"d":{"@if":[]}}`, []want{
			{"/a", "unsupported_directive", "@liquid"},
			{"/b/c/@path", "invalid_argument", "got a number"},
			{"/d/@if", "invalid_argument", "got an array"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile([]byte(tt.mapping))
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want *CompileError", err)
			}
			if len(ce.Issues) != len(tt.want) {
				t.Fatalf("got %d issues, want %d: %v", len(ce.Issues), len(tt.want), err)
			}
			for i, w := range tt.want {
				got := ce.Issues[i]
				if got.Location != w.location || got.Code != w.code || !strings.Contains(got.Msg, w.msg) {
					t.Errorf("issue %d = %+v; want location %q, code %q, message containing %q", i, got, w.location, w.code, w.msg)
				}
			}
			if !strings.Contains(err.Error(), tt.want[0].msg) {
				t.Errorf("Error() = %q lacks %q", err.Error(), tt.want[0].msg)
			}
		})
	}
}

func TestCompileAccepts(t *testing.T) {
	valid := []string{
		`{}`,
		`{"a":{"@path":"$.x","_metadata":{"label":"x","type":"variable"}}}`,
		`{"a":{"@if":{"exists":{"@path":"$.x"},"then":1,"else":2,"_metadata":{}}}}`,
		`{"a":{"@replace":{"value":{"@path":"$.x"},"pattern":"1234567890","replacement":"","global":null,"ignorecase":false}}}`,
		`{"a":{"@merge":{"objects":[{"@path":"$.a"},{"b":1}],"direction":{"@path":"$.d"}}}}`,
		`{"a":{"@transform":{"apply":{"@path":"$.a"},"mapping":{"@path":"$.b"}}}}`,
		`{"onMappingSave":{"inputs":{},"outputs":{"id":"12345"}},"enable_batching":true,"batch_size":5000}`,
	}
	for _, src := range valid {
		if _, err := Compile([]byte(src)); err != nil {
			t.Errorf("Compile(%s): %v", src, err)
		}
	}
}

// TestWorkedExample is spec §5.13, checked against a golden file.
func TestWorkedExample(t *testing.T) {
	dir := filepath.Join("testdata", "worked_example")
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	m, err := Compile(read("mapping.json"))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := event.Parse(read("event.json"))
	if err != nil {
		t.Fatal(err)
	}
	if tr := MustParseTrigger(`type = "track" and match(context.page.url, "https://www.example.com/*")`); !tr.Match(ev) {
		t.Fatal("the trigger of the worked example does not match")
	}
	out, err := m.Apply(ev)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := json.Indent(&got, out.AppendJSON(nil), "", "  "); err != nil {
		t.Fatal(err)
	}
	got.WriteByte('\n')
	golden := filepath.Join(dir, "output.golden.json")
	if *update {
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if want := read("output.golden.json"); !bytes.Equal(got.Bytes(), want) {
		t.Errorf("output differs from %s (run with -update to rewrite):\n%s", golden, got.Bytes())
	}
	// The output as given in the spec, key order included.
	const spec = `{
  "conversionHappenedAt": 1788258896789,
  "conversionValue": { "currencyCode": "USD", "amount": "0" },
  "eventId": "ajs-next-1788258896789-5b1c2f3e",
  "email": "55e79200c1635b37ad31a378c39feb12f120f116625093a19bc32fff15041149",
  "linkedInUUID": "123456",
  "userInfo": { "firstName": "John", "lastName": "Doe", "companyName": "Acme Inc", "title": "Engineer", "countryCode": "US" },
  "enable_batching": true,
  "batch_size": 5000
}`
	if got, want := string(out.AppendJSON(nil)), compact(t, spec); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// The contract with internal/linkedin.
	wantAny := map[string]any{
		"conversionHappenedAt": json.Number("1788258896789"),
		"conversionValue":      map[string]any{"currencyCode": "USD", "amount": "0"},
		"eventId":              "ajs-next-1788258896789-5b1c2f3e",
		"email":                "55e79200c1635b37ad31a378c39feb12f120f116625093a19bc32fff15041149",
		"linkedInUUID":         "123456",
		"userInfo":             map[string]any{"firstName": "John", "lastName": "Doe", "companyName": "Acme Inc", "title": "Engineer", "countryCode": "US"},
		"enable_batching":      true,
		"batch_size":           json.Number("5000"),
	}
	if got := out.Any(); !reflect.DeepEqual(got, wantAny) {
		t.Errorf("Any() = %#v\nwant %#v", got, wantAny)
	}
}

func TestWithDefaults(t *testing.T) {
	defaults := MustCompile(`{
  "conversionHappenedAt": {"@path": "$.timestamp"},
  "conversionValue": {"currencyCode": {"@path": "$.properties.currency"}, "amount": {"@path": "$.properties.revenue"}},
  "eventId": {"@path": "$.messageId"},
  "email": {"@path": "$.traits.email"}
}`)
	tests := []struct {
		name   string
		fields string
		want   string
		doc    string
	}{
		{"empty takes defaults", `{}`, `{"conversionHappenedAt":"T","conversionValue":{"currencyCode":"EUR","amount":9},"eventId":"m1"}`, ""},
		{"override in place", `{"eventId": {"@template": "x-{{messageId}}"}}`, `{"conversionHappenedAt":"T","conversionValue":{"currencyCode":"EUR","amount":9},"eventId":"x-m1"}`, ""},
		{"null removes", `{"conversionValue": null, "email": null}`, `{"conversionHappenedAt":"T","eventId":"m1"}`,
			`{"conversionHappenedAt":{"@path":"$.timestamp"},"eventId":{"@path":"$.messageId"}}`},
		{"extra fields appended", `{"batch_size": 100, "eventId": "fixed", "gone": null}`, `{"conversionHappenedAt":"T","conversionValue":{"currencyCode":"EUR","amount":9},"eventId":"fixed","batch_size":100}`, ""},
	}
	ev := mustParse(t, `{"timestamp":"T","messageId":"m1","properties":{"currency":"EUR","revenue":9}}`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := MustCompile(tt.fields).WithDefaults(defaults)
			if err != nil {
				t.Fatal(err)
			}
			out, err := m.Apply(ev)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(out.AppendJSON(nil)); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			if tt.doc != "" {
				if got := string(m.Document().AppendJSON(nil)); got != tt.doc {
					t.Errorf("Document() = %s, want %s", got, tt.doc)
				}
			}
		})
	}
	if _, err := MustCompile(`{"@path":"$.x"}`).WithDefaults(defaults); err == nil {
		t.Error("WithDefaults on a directive root: no error")
	}
	if got := defaults.Fields(); !reflect.DeepEqual(got, []string{"conversionHappenedAt", "conversionValue", "eventId", "email"}) {
		t.Errorf("Fields() = %v", got)
	}
}

func TestCompileValue(t *testing.T) {
	m, err := CompileValue(map[string]any{
		"eventId": map[string]any{"@path": "$.messageId"},
		"amount":  map[string]any{"@literal": 5},
		"list":    []any{"a", map[string]any{"@path": "$.type"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Apply(mustParse(t, `{"messageId":"m1","type":"track"}`))
	if err != nil {
		t.Fatal(err)
	}
	// Go maps lose order: keys come out sorted.
	if got, want := string(out.AppendJSON(nil)), `{"amount":5,"eventId":"m1","list":["a","track"]}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if _, err := CompileValue(map[string]any{"a": map[string]any{"@liquid": "x"}}); err == nil {
		t.Error("CompileValue accepted @liquid")
	}
	if _, err := CompileValue(map[string]any{"a": make(chan int)}); err == nil {
		t.Error("CompileValue accepted a channel")
	}
}

func TestApplyAllocations(t *testing.T) {
	ev := mustParse(t, benchEvent)
	m := MustCompile(benchMapping)
	n := testing.AllocsPerRun(100, func() {
		if _, err := m.Apply(ev); err != nil {
			t.Fatal(err)
		}
	})
	if n > 5 {
		t.Errorf("Apply allocates %v times per event, want at most 5", n)
	}
}

// TestApplyOutputBuiltClean: the output's own objects and arrays are built
// without the members that resolve to undefined (and with null for such
// elements) instead of being copied without them afterwards: two
// allocations per Apply (its context and one block of members), not three. Under a directive an undefined member
// still counts (@merge: it replaces a defined one).
func TestApplyOutputBuiltClean(t *testing.T) {
	m := MustCompile(`{"a":{"@path":"$.x"},"gone":{"@path":"$.missing"},
		"o":{"c":{"@path":"$.missing"},"d":{"@path":"$.x"},"e":{"f":{"@path":"$.missing"},"g":{"@path":"$.x"}}},
		"arr":[{"@path":"$.missing"},{"@path":"$.x"}],
		"m":{"@merge":{"direction":"right","objects":[{"k":1,"l":2},{"k":{"@path":"$.missing"}}]}}}`)
	ev, err := event.Parse([]byte(`{"x":"v"}`))
	if err != nil {
		t.Fatal(err)
	}
	v, err := m.Apply(ev)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"a":"v","o":{"d":"v","e":{"g":"v"}},"arr":[null,"v"],"m":{"l":2}}`
	if got := string(v.AppendJSON(nil)); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	plain := MustCompile(`{"a":{"@path":"$.x"},"gone":{"@path":"$.missing"},"o":{"c":{"@path":"$.missing"},"d":{"@path":"$.x"}}}`)
	if n := testing.AllocsPerRun(100, func() { _, _ = plain.Apply(ev) }); n != 2 {
		t.Errorf("%v allocations per Apply, want 2", n)
	}
	var s Scratch
	if n := testing.AllocsPerRun(100, func() { _, _ = plain.ApplyScratch(ev, &s) }); n != 0 {
		t.Errorf("%v allocations per ApplyScratch, want 0", n)
	}
}

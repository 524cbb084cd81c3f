package mapping

import (
	"encoding/json"
	"testing"

	"github.com/capstan-gw/capstan/internal/event"
)

// fuzzEvents are evaluated by every trigger the fuzzer accepts.
var fuzzEvents = []string{trackSignUp, pageHome, identifyUser, `{}`, `[]`, `{"properties":{"a":{"b":[1]}},"userId":true}`}

// FuzzParseTrigger: the parser never panics; an accepted trigger prints a
// canonical form that parses to itself and means the same thing.
func FuzzParseTrigger(f *testing.F) {
	for _, s := range []string{
		`type = "track"`,
		`type = "track" and (event = "Sign Up" or event = "Order Completed")`,
		`match(context.page.url, "https://www.example.com/*") and !contains(properties.x, 'y')`,
		`properties.revenue >= -10.5 or userId != null or traits.a = true`,
		`(((event = 5)))`,
		`type = "track" and event = "A" or event = "B"`,
	} {
		f.Add(s)
	}
	parsed := make([]event.Value, len(fuzzEvents))
	for i, e := range fuzzEvents {
		parsed[i], _ = event.ParseString(e)
	}
	f.Fuzz(func(t *testing.T, src string) {
		tr, err := ParseTrigger(src)
		if err != nil {
			te, ok := err.(*TriggerError)
			if !ok || te.Column < 1 || te.Line < 1 || te.Offset < 0 || te.Offset > len(src) || te.Msg == "" {
				t.Fatalf("bad error %#v for %q", err, src)
			}
			return
		}
		canon := tr.String()
		tr2, err := ParseTrigger(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, src, err)
		}
		if again := tr2.String(); again != canon {
			t.Fatalf("canonical form not stable: %q -> %q", canon, again)
		}
		for _, ev := range parsed {
			if tr.Match(ev) != tr2.Match(ev) {
				t.Fatalf("%q and its canonical form %q disagree", src, canon)
			}
		}
	})
}

// FuzzMapping: Compile and Apply never panic on arbitrary mappings and
// events; errors are typed; outputs hold no Undefined and encode to valid
// JSON.
func FuzzMapping(f *testing.F) {
	for _, s := range [][2]string{
		{benchMapping, benchEvent},
		{`{"x":{"@template":"{{{properties.tpl}}} {{properties.lastName}} {{ }}"}}`, testEvent},
		{`{"x":{"@arrayPath":["$.properties.products",{"id":{"@path":"$.sku"}}]},"y":{"@flatten":{"value":{"@path":"$."},"separator":"."}}}`, testEvent},
		{`{"x":{"@merge":{"direction":"left","objects":[{"@path":"$.properties.ab"},{"a":{"@json":{"mode":"decode","value":{"@path":"$.properties.json"}}}}]}}}`, testEvent},
		{`{"x":{"@replace":{"value":{"@path":"$.properties.phone"},"pattern":"5","replacement":"$&$'$$","ignorecase":true,"pattern2":" "}}}`, testEvent},
		{`{"x":{"@if":{"blank":{"@path":"$.properties.arr"},"then":{"@case":{"operator":"upper","value":{"@path":"$.event"}}},"else":1}}}`, testEvent},
		{`{"x":{"@transform":{"apply":{"a":{"@path":"$.properties"}},"mapping":{"@excludeWhenNull":{"@path":"$.a"}}}}}`, testEvent},
		{`{"x":{"@json":{"mode":"encode","value":{"@path":"$.properties"}}},"z":{"@literal":{"@path":{"@template":"{{properties.key}}"}}}}`, testEvent},
	} {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, mapping, raw []byte) {
		m, err := Compile(mapping)
		if err != nil {
			ce, ok := err.(*CompileError)
			if !ok || len(ce.Issues) == 0 {
				t.Fatalf("Compile error %#v is not a *CompileError with issues", err)
			}
			return
		}
		ev, err := event.Parse(raw)
		if err != nil {
			return
		}
		out, err := m.Apply(ev)
		if err != nil {
			if _, ok := err.(*ApplyError); !ok {
				t.Fatalf("Apply error %#v is not an *ApplyError", err)
			}
			return
		}
		if hasUndefined(out) {
			t.Fatalf("output holds Undefined: %s", out.AppendJSON(nil))
		}
		if enc := out.AppendJSON(nil); !json.Valid(enc) {
			t.Fatalf("output is not valid JSON: %q", enc)
		}
		_ = out.Any()
	})
}

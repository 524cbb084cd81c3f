// Package mapping evaluates Segment's trigger language and mapping-kit
// directives, so that a trigger ("subscribe" text) and a field mapping
// exported from Segment's LinkedIn Conversions API destination work in
// capstan unchanged (spec/segment-ingest.md §4 and §5).
//
// Both parts work on events parsed into internal/event's [event.Value]:
//
//   - [Trigger], from [ParseTrigger]: the FQL subset of Segment triggers,
//     parsed once with save-time errors ([*TriggerError]) that say how to
//     fix the text, and matched against events without allocating.
//   - [Mapping], from [Compile]: mapping-kit JSON validated at save time
//     (every problem reported at once in a [*CompileError], each with its
//     JSON Pointer), compiled to a tree of evaluators, and applied to events
//     with Segment's semantics ([Mapping.Apply]; runtime failures are
//     [*ApplyError]). [Mapping.WithDefaults] merges a short field map over
//     default fields.
//
// Typical use, once per configured mapping and then per event:
//
//	trig, err := mapping.ParseTrigger(`type = "track" and event = "Sign Up"`)
//	m, err := mapping.Compile(fieldsJSON)
//	...
//	ev, err := event.Parse(body)
//	if trig.Match(ev) {
//		out, err := m.Apply(ev)
//		fields := out.Any().(map[string]any)
//	}
//
// Where the spec leaves a choice open, the package does what a careful
// JavaScript-compatible engine would and says so at the definition: JSON
// numbers keep their text everywhere except in text conversions
// (@template, @replace, string-compared trigger literals), which use
// JavaScript's number formatting; objects keep insertion order (JavaScript
// would move integer-like keys first); @merge splits strings into
// characters rather than UTF-16 code units. Those JavaScript semantics
// (truthiness, conversion to text, loose equality) belong to this package;
// the value model itself is internal/event's.
//
// What this package must never do: perform I/O, log, or keep state between
// calls (it sees event bodies, which hold personal data, so it must not
// leak them anywhere); panic on any trigger, mapping or event, however
// malformed (only the Must* helpers panic, and only for text known at build
// time); modify a Value once built (values share memory with the parsed
// event and with compiled mappings); import capstan packages other than
// internal/event, or know anything about LinkedIn (field names, defaults,
// normalisation and hashing belong to internal/linkedin).
package mapping

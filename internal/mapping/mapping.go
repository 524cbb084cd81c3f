package mapping

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/capstan-gw/capstan/internal/event"
)

// Mapping is a compiled mapping (Segment mapping-kit JSON, spec §5). It is
// immutable and safe for concurrent use.
type Mapping struct {
	root   node
	doc    event.Value // the mapping document as written (after WithDefaults: as merged)
	fields []fieldDef  // the top-level fields when the root is a plain object
	hint   int         // members allocated per Apply by object and array nodes
}

// fieldDef is one top-level field of a mapping, compiled on its own so that
// field maps can be merged (see [Mapping.WithDefaults]).
type fieldDef struct {
	key  string
	node node
	raw  event.Value
}

// Issue is one problem found when a mapping is compiled.
type Issue struct {
	// Location is the JSON Pointer (RFC 6901) of the offending value in the
	// mapping document, e.g. "/conversionValue/amount" or
	// "/email/@replace/pattern"; "" is the whole document.
	Location string
	// Code classifies the problem: "invalid_json", "invalid_mapping",
	// "invalid_directive", "unknown_directive", "unsupported_directive"
	// (a directive Segment has that capstan does not, such as @liquid),
	// "invalid_argument".
	Code string
	Msg  string
}

func (i Issue) String() string {
	loc := i.Location
	if loc == "" {
		loc = "/"
	}
	return loc + ": " + i.Msg
}

// CompileError lists every problem found in a mapping, in document order.
type CompileError struct {
	Issues []Issue
}

func (e *CompileError) Error() string {
	if len(e.Issues) == 1 {
		return "invalid mapping: " + e.Issues[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid mapping: %d problems", len(e.Issues))
	for _, i := range e.Issues {
		b.WriteString("; ")
		b.WriteString(i.String())
	}
	return b.String()
}

// ApplyError is a directive that failed while a mapping was applied to an
// event (spec §5.2 rule 5): the event is not delivered through the mapping
// and is recorded as a mapping error; retrying cannot help.
type ApplyError struct {
	Location  string // JSON Pointer of the directive in the mapping document
	Directive string // "@path", "@case", …; "" for problems with the event itself
	Msg       string // Segment's message where it has one, e.g. `@path: expected string, got number`
}

func (e *ApplyError) Error() string {
	loc := e.Location
	if loc == "" {
		loc = "/"
	}
	return "mapping " + loc + ": " + e.Msg
}

// Compile parses and validates a mapping given as JSON text, the form to use
// whenever the text is available: it keeps the document's key order, which
// is the order of the output object. Validation (spec §5.11) reports every
// problem at once in a *CompileError.
func Compile(raw []byte) (*Mapping, error) {
	doc, err := event.Parse(raw)
	if err != nil {
		msg := err.Error()
		if se, ok := err.(*event.SyntaxError); ok {
			msg = "invalid JSON at offset " + strconv.Itoa(se.Offset) + ": " + se.Msg
		}
		return nil, &CompileError{Issues: []Issue{{Code: "invalid_json", Msg: msg}}}
	}
	return compileDoc(doc)
}

// CompileValue compiles a mapping already decoded into Go values (see
// [event.FromAny]), such as the `fields` of a YAML configuration decoded
// into map[string]any. Go maps have no order, so their keys are compiled in
// sorted order, and the output object follows that order; pass an
// [event.Value] built with [event.Parse] or [event.ObjectValue], or use
// [Compile] with JSON text, to keep the author's order.
func CompileValue(v any) (*Mapping, error) {
	doc, err := event.FromAny(v)
	if err != nil {
		return nil, &CompileError{Issues: []Issue{{Code: "invalid_mapping", Msg: err.Error()}}}
	}
	return compileDoc(doc)
}

// MustCompile is Compile for mappings known to be valid (tests, built-in
// defaults); it panics on error.
func MustCompile(raw string) *Mapping {
	m, err := Compile([]byte(raw))
	if err != nil {
		panic(err)
	}
	return m
}

const rootDirectiveKey = "__segment_internal_directive"

func compileDoc(doc event.Value) (*Mapping, error) {
	c := &compiler{}
	m := &Mapping{doc: doc}
	switch {
	case doc.Kind() != event.Object:
		c.issue("", "invalid_mapping", "a mapping is a JSON object of fields, such as {\"eventId\": {\"@path\": \"$.messageId\"}}; got %s", kindArticle(doc.Kind()))
	case isDirectiveObject(doc):
		m.root = c.compile(doc, "")
	default:
		m.fields = make([]fieldDef, 0, doc.Len())
		for i := range doc.Len() {
			mb := doc.At(i)
			if mb.Key == rootDirectiveKey {
				c.issue("/"+escapePointer(mb.Key), "unsupported_directive", "the root %s key (a Segment-internal directive) is not supported by capstan; remove it", rootDirectiveKey)
				continue
			}
			n := c.compile(mb.Value, "/"+escapePointer(mb.Key))
			m.fields = append(m.fields, fieldDef{key: mb.Key, node: n, raw: mb.Value})
		}
		m.root = objectFromFields(m.fields)
	}
	if len(c.issues) > 0 {
		return nil, &CompileError{Issues: c.issues}
	}
	m.hint = c.members
	if o, ok := m.root.(*objectNode); ok {
		m.hint += len(o.keys) // the root of a field map is built after compilation
	}
	return m, nil
}

// objectFromFields builds the root node of a field map.
func objectFromFields(fields []fieldDef) node {
	keys := make([]string, len(fields))
	kids := make([]node, len(fields))
	for i, f := range fields {
		keys[i], kids[i] = f.key, f.node
	}
	return newObjectNode(keys, kids)
}

// Apply evaluates the mapping against one event (spec §5.2): directives are
// resolved, object members that resolve to undefined are removed at every
// depth, undefined array elements become null. The result holds no
// Undefined. It may share memory with ev and with the mapping. Errors are
// *ApplyError.
func (m *Mapping) Apply(ev event.Value) (event.Value, error) {
	if ev.Kind() != event.Object {
		return event.Value{}, &ApplyError{Msg: "the event must be a JSON object, got " + kindArticle(ev.Kind())}
	}
	return m.apply(&evalCtx{hint: m.hint}, ev)
}

// A Scratch is memory that [Mapping.ApplyScratch] reuses from one event to
// the next. The zero Scratch is ready to use; it is not safe for
// concurrent use.
type Scratch struct{ c evalCtx }

// ApplyScratch is [Mapping.Apply] building the output's objects and arrays
// in s: the output is valid only until the next ApplyScratch with s, which
// overwrites them; keep none of its objects or arrays past it (its strings
// stay valid). Apply allocates them anew for each event (~0.5 KiB for
// LinkedIn's default fields), for a Format that reads them once
// (delivery.Format.Build).
func (m *Mapping) ApplyScratch(ev event.Value, s *Scratch) (event.Value, error) {
	if ev.Kind() != event.Object {
		return m.Apply(ev)
	}
	s.c.arena, s.c.hint = s.c.arena[:0], m.hint
	return m.apply(&s.c, ev)
}

func (m *Mapping) apply(c *evalCtx, ev event.Value) (event.Value, error) {
	v, err := evalOut(c, m.root, ev)
	if err != nil {
		return event.Value{}, err
	}
	return v.WithoutUndefined(), nil // what directives' results still hold
}

// evalOut evaluates n where its value is part of the output as it stands:
// the root and the plain objects and arrays under it, not under a
// directive. There, members that resolve to Undefined are left out and
// Undefined elements become null as the containers are built, which
// Value.WithoutUndefined would do afterwards by copying them (most events
// lack some mapped field: a copy of the output per event). Under a
// directive, objects keep their Undefined members, as Segment's resolved
// objects keep their undefined keys until the end (@merge, for one, lets
// an undefined member replace a defined one).
func evalOut(c *evalCtx, n node, payload event.Value) (event.Value, error) {
	switch n := n.(type) {
	case *objectNode:
		m := c.alloc(len(n.kids))
		j := 0
		for i, k := range n.kids {
			v, err := evalOut(c, k, payload)
			if err != nil {
				return event.Value{}, err
			}
			if v.Kind() == event.Undefined {
				continue
			}
			m[j] = event.Member{Key: n.keys[i], Value: v}
			j++
		}
		return event.ObjectOfDistinct(m[:j:j]), nil
	case *arrayNode:
		m := c.alloc(len(n.kids))
		for i, k := range n.kids {
			v, err := evalOut(c, k, payload)
			if err != nil {
				return event.Value{}, err
			}
			if v.Kind() == event.Undefined {
				v = event.NullValue()
			}
			m[i].Value = v
		}
		return event.ArrayOf(m), nil
	}
	return n.eval(c, payload)
}

// Document returns the mapping as written (for a mapping made by
// WithDefaults, the merged field map), e.g. to print the effective
// configuration.
func (m *Mapping) Document() event.Value { return m.doc }

// Fields returns the names of the top-level fields, in order, or nil when
// the mapping's root is a directive.
func (m *Mapping) Fields() []string {
	if m.fields == nil {
		return nil
	}
	keys := make([]string, len(m.fields))
	for i, f := range m.fields {
		keys[i] = f.key
	}
	return keys
}

// WithDefaults returns a mapping holding every field of defaults, in the
// order of defaults, with the fields of m taking their place where m has
// them, followed by m's other fields in m's order. A field of m written as
// JSON null removes the field (default or not) from the result: this is
// capstan's YAML convention (`field: null` removes a default), not Segment's,
// where null is an ordinary value; so call WithDefaults only for field maps
// that follow that convention, and use m on its own for Segment-format
// mappings, which are complete as given.
//
// Each field was compiled on its own, so the merge needs no recompilation
// and cannot fail except when either root is a directive rather than a field
// map.
func (m *Mapping) WithDefaults(defaults *Mapping) (*Mapping, error) {
	if m.fields == nil || defaults.fields == nil {
		return nil, fmt.Errorf("merge mapping defaults: both mappings must be field maps, not directives")
	}
	own := make(map[string]fieldDef, len(m.fields))
	for _, f := range m.fields {
		own[f.key] = f
	}
	var merged []fieldDef
	used := make(map[string]bool, len(m.fields))
	for _, d := range defaults.fields {
		f, ok := own[d.key]
		if !ok {
			merged = append(merged, d)
			continue
		}
		used[d.key] = true
		if f.raw.Kind() != event.Null {
			merged = append(merged, f)
		}
	}
	for _, f := range m.fields {
		if !used[f.key] && f.raw.Kind() != event.Null {
			merged = append(merged, f)
		}
	}
	doc := make([]event.Member, len(merged))
	for i, f := range merged {
		doc[i] = event.Member{Key: f.key, Value: f.raw}
	}
	if merged == nil {
		merged, doc = []fieldDef{}, nil
	}
	return &Mapping{
		root:   objectFromFields(merged),
		doc:    event.ObjectOf(doc),
		fields: merged,
		hint:   m.hint + defaults.hint,
	}, nil
}

// escapePointer escapes one JSON Pointer reference token.
func escapePointer(s string) string {
	if strings.ContainsAny(s, "~/") {
		s = strings.ReplaceAll(s, "~", "~0")
		s = strings.ReplaceAll(s, "/", "~1")
	}
	return s
}

func kindArticle(k event.Kind) string {
	switch k {
	case event.Undefined:
		return "undefined"
	case event.Null:
		return "null"
	case event.Array, event.Object:
		return "an " + k.String()
	}
	return "a " + k.String()
}

// evalCtx carries the per-Apply allocation arena.
type evalCtx struct {
	arena []event.Member
	hint  int
}

// alloc returns n members from the arena, with capacity n.
func (c *evalCtx) alloc(n int) []event.Member {
	if cap(c.arena)-len(c.arena) < n {
		c.arena = make([]event.Member, 0, max(n, c.hint, 8))
		c.hint = max(c.hint/2, 8) // later chunks (arrays of shapes) grow more slowly
	}
	start := len(c.arena)
	c.arena = c.arena[:start+n]
	return c.arena[start : start+n : start+n]
}

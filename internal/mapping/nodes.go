package mapping

import (
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/capstan-gw/capstan/internal/event"
)

// constNode is a raw value, or a subtree without directives.
type constNode struct{ v event.Value }

func (n constNode) eval(*evalCtx, event.Value) (event.Value, error) { return n.v, nil }

// objectNode is a plain object holding directives.
type objectNode struct {
	keys []string // distinct: the keys of one object
	kids []node
}

func (n *objectNode) eval(c *evalCtx, payload event.Value) (event.Value, error) {
	m := c.alloc(len(n.kids))
	for i, k := range n.kids {
		v, err := k.eval(c, payload)
		if err != nil {
			return event.Value{}, err
		}
		m[i] = event.Member{Key: n.keys[i], Value: v}
	}
	return event.ObjectOfDistinct(m), nil
}

// arrayNode is a plain array holding directives.
type arrayNode struct{ kids []node }

func (n *arrayNode) eval(c *evalCtx, payload event.Value) (event.Value, error) {
	m := c.alloc(len(n.kids))
	for i, k := range n.kids {
		v, err := k.eval(c, payload)
		if err != nil {
			return event.Value{}, err
		}
		m[i].Value = v
	}
	return event.ArrayOf(m), nil
}

// pathNode is @path with a literal path.
type pathNode struct{ segs []string }

func (n *pathNode) eval(_ *evalCtx, payload event.Value) (event.Value, error) {
	return payload.Lookup(n.segs...), nil
}

// dynPathNode is @path with a directive that computes the path.
type dynPathNode struct {
	arg node
	loc string
}

func (n *dynPathNode) eval(c *evalCtx, payload event.Value) (event.Value, error) {
	p, err := n.arg.eval(c, payload)
	if err != nil {
		return event.Value{}, err
	}
	s, ok := p.Str()
	if !ok {
		return event.Value{}, &ApplyError{Location: n.loc, Directive: "@path", Msg: "@path: expected string, got " + p.Kind().String()}
	}
	return lookupPath(payload, stripDollar(s)), nil
}

// templateNode is @template with a literal template, precompiled.
type templateNode struct {
	parts []tplPart
	size  int
}

func (n *templateNode) eval(_ *evalCtx, payload event.Value) (event.Value, error) {
	var buf [256]byte
	b := buf[:0]
	if n.size > len(buf) {
		b = make([]byte, 0, n.size+32)
	}
	for _, p := range n.parts {
		if !p.isPath {
			b = append(b, p.lit...)
			continue
		}
		if v := payload.Lookup(p.path...); v.Exists() {
			b = appendJSText(b, v)
		}
	}
	return event.StringValue(string(b)), nil
}

// rawTemplateNode is @template with "{{{ }}}" placeholders, rendered in full
// each time.
type rawTemplateNode struct{ t string }

func (n *rawTemplateNode) eval(_ *evalCtx, payload event.Value) (event.Value, error) {
	return event.StringValue(renderTemplate(n.t, payload)), nil
}

// dynTemplateNode is @template with a directive that computes the template.
type dynTemplateNode struct {
	arg node
	loc string
}

func (n *dynTemplateNode) eval(c *evalCtx, payload event.Value) (event.Value, error) {
	t, err := n.arg.eval(c, payload)
	if err != nil {
		return event.Value{}, err
	}
	s, ok := t.Str()
	if !ok {
		return event.Value{}, &ApplyError{Location: n.loc, Directive: "@template", Msg: "@template: expected string, got " + t.Kind().String()}
	}
	return event.StringValue(renderTemplate(s, payload)), nil
}

// ifNode is @if.
type ifNode struct {
	noCond    bool // neither "exists" nor "blank" is truthy as written
	exists    bool // test "exists" rather than "blank"
	cond      node
	then, els node // nil: absent (then) or falsy as written (else)
	loc       string
}

func (n *ifNode) eval(c *evalCtx, payload event.Value) (event.Value, error) {
	if n.noCond {
		return event.Value{}, &ApplyError{Location: n.loc, Directive: "@if", Msg: `@if requires an "exists" key or a "blank" key`}
	}
	v, err := n.cond.eval(c, payload)
	if err != nil {
		return event.Value{}, err
	}
	ok := v.Exists()
	if !n.exists && ok {
		ok = !looselyEqualsEmpty(v)
	}
	switch {
	case ok && n.then != nil:
		return n.then.eval(c, payload)
	case !ok && n.els != nil:
		return n.els.eval(c, payload)
	}
	return event.Value{}, nil
}

// caseNode is @case.
type caseNode struct {
	op    string
	value node // nil: falsy as written
	loc   string
}

func (n *caseNode) eval(c *evalCtx, payload event.Value) (event.Value, error) {
	if n.op == "" {
		return event.Value{}, &ApplyError{Location: n.loc, Directive: "@case", Msg: `@case requires a "operator" key`}
	}
	if n.value == nil {
		return event.Value{}, nil
	}
	v, err := n.value.eval(c, payload)
	s, ok := v.Str()
	if err != nil || !ok {
		return v, err
	}
	switch n.op {
	case "lower":
		return event.StringValue(strings.ToLower(s)), nil
	case "upper":
		return event.StringValue(strings.ToUpper(s)), nil
	}
	return event.Value{}, &ApplyError{Location: n.loc, Directive: "@case", Msg: `operator key should have a value of "lower" or "upper"`}
}

// replaceNode is @replace.
type replaceNode struct {
	value                    node // nil: falsy as written
	pattern, replacement     string
	pattern2, replacement2   string
	has2, global, ignoreCase bool
	loc                      string
}

func (n *replaceNode) eval(c *evalCtx, payload event.Value) (event.Value, error) {
	if n.value == nil {
		return event.Value{}, nil
	}
	v, err := n.value.eval(c, payload)
	if err != nil {
		return event.Value{}, err
	}
	var s string
	switch v.Kind() {
	case event.String:
		s, _ = v.Str()
	case event.Number, event.Bool:
		s = string(appendJSText(nil, v))
	default:
		return event.StringValue(""), nil // not undefined: Segment returns ""
	}
	s = jsReplace(s, n.pattern, n.replacement, n.global, n.ignoreCase)
	if n.has2 {
		s = jsReplace(s, n.pattern2, n.replacement2, n.global, n.ignoreCase)
	}
	return event.StringValue(s), nil
}

// jsReplace is JavaScript's s.replace(new RegExp(escaped(pattern), flags),
// repl) for a literal pattern: only the first match unless global; with
// ignoreCase, simple case folding; in repl, $$, $&, $` and $' are expanded.
func jsReplace(s, pattern, repl string, global, ignoreCase bool) string {
	if pattern == "" {
		return s
	}
	var b []byte
	last, pos := 0, 0
	for pos <= len(s) {
		i, end := findLiteral(s, pattern, pos, ignoreCase)
		if i < 0 {
			break
		}
		if b == nil {
			b = make([]byte, 0, len(s)+len(repl))
		}
		b = append(b, s[last:i]...)
		b = expandReplacement(b, repl, s, i, end)
		last, pos = end, end
		if !global {
			break
		}
	}
	if b == nil {
		return s
	}
	return string(append(b, s[last:]...))
}

// findLiteral finds pattern in s at or after pos and returns the byte range
// of the match, or -1.
func findLiteral(s, pattern string, pos int, ignoreCase bool) (int, int) {
	if !ignoreCase {
		i := strings.Index(s[pos:], pattern)
		if i < 0 {
			return -1, 0
		}
		return pos + i, pos + i + len(pattern)
	}
	for i := pos; i < len(s); {
		if end, ok := foldPrefix(s[i:], pattern); ok {
			return i, i + end
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return -1, 0
}

// foldPrefix reports whether s starts with pattern under simple case
// folding, and the length in s of the match.
func foldPrefix(s, pattern string) (int, bool) {
	j := 0
	for _, pr := range pattern {
		if j >= len(s) {
			return 0, false
		}
		sr, size := utf8.DecodeRuneInString(s[j:])
		if !foldEqual(sr, pr) {
			return 0, false
		}
		j += size
	}
	return j, true
}

func foldEqual(a, b rune) bool {
	if a == b {
		return true
	}
	for r := unicode.SimpleFold(a); r != a; r = unicode.SimpleFold(r) {
		if r == b {
			return true
		}
	}
	return false
}

// expandReplacement appends repl with JavaScript's special patterns for a
// match of s[start:end].
func expandReplacement(b []byte, repl, s string, start, end int) []byte {
	for i := 0; i < len(repl); i++ {
		if repl[i] != '$' || i+1 >= len(repl) {
			b = append(b, repl[i])
			continue
		}
		switch repl[i+1] {
		case '$':
			b = append(b, '$')
		case '&':
			b = append(b, s[start:end]...)
		case '`':
			b = append(b, s[:start]...)
		case '\'':
			b = append(b, s[end:]...)
		default:
			b = append(b, '$')
			continue
		}
		i++
	}
	return b
}

// arrayPathNode is @arrayPath.
type arrayPathNode struct {
	segs  []string // literal path
	arg   node     // or a directive giving the root value itself
	shape node     // nil: no shape, or not a non-empty object
}

func (n *arrayPathNode) eval(c *evalCtx, payload event.Value) (event.Value, error) {
	var root event.Value
	if n.arg != nil {
		var err error
		if root, err = n.arg.eval(c, payload); err != nil {
			return event.Value{}, err
		}
	} else {
		root = payload.Lookup(n.segs...)
	}
	if n.shape == nil || (root.Kind() != event.Object && root.Kind() != event.Array) {
		return root, nil
	}
	// An object is shaped as the only item of an array.
	single, items := root.Kind() == event.Object, 1
	if !single {
		items = root.Len()
	}
	out := make([]event.Member, items)
	for i := range out {
		item := root
		if !single {
			item = root.Index(i)
		}
		v, err := n.shape.eval(c, item)
		if err != nil {
			return event.Value{}, err
		}
		out[i].Value = v
	}
	return event.ArrayOf(out), nil
}

// jsonNode is @json.
type jsonNode struct {
	encode bool
	value  node // nil: falsy as written
	loc    string
}

func (n *jsonNode) eval(c *evalCtx, payload event.Value) (event.Value, error) {
	if n.value == nil {
		return event.Value{}, &ApplyError{Location: n.loc, Directive: "@json", Msg: `@json requires a "value" key`}
	}
	v, err := n.value.eval(c, payload)
	if err != nil {
		return event.Value{}, err
	}
	if n.encode {
		if v.IsUndefined() {
			return v, nil
		}
		return event.StringValue(string(v.AppendJSON(nil))), nil
	}
	s, ok := v.Str()
	if !ok {
		return v, nil
	}
	d, err := event.ParseString(s)
	if err != nil {
		return v, nil // not JSON: the string is returned unchanged
	}
	return d, nil
}

// flattenNode is @flatten.
type flattenNode struct {
	value      node
	sep        string
	sepNode    node
	omitArrays bool
	loc        string
}

func (n *flattenNode) eval(c *evalCtx, payload event.Value) (event.Value, error) {
	sep := n.sep
	if n.sepNode != nil {
		s, err := n.sepNode.eval(c, payload)
		if err != nil {
			return event.Value{}, err
		}
		var ok bool
		if sep, ok = s.Str(); !ok {
			return event.Value{}, &ApplyError{Location: n.loc, Directive: "@flatten", Msg: "@flatten requires a string separator"}
		}
	} else if sep == "" {
		return event.Value{}, &ApplyError{Location: n.loc, Directive: "@flatten", Msg: `@flatten requires a "separator" key`}
	}
	v, err := n.value.eval(c, payload)
	if err != nil {
		return event.Value{}, err
	}
	var out []event.Member
	out = flattenInto(out, v, "", sep, n.omitArrays)
	return event.ObjectOf(out), nil
}

// flattenInto appends the flattened members of v under prefix.
func flattenInto(out []event.Member, v event.Value, prefix, sep string, omitArrays bool) []event.Member {
	k := v.Kind()
	if k != event.Object && (k != event.Array || omitArrays) {
		return append(out, event.Member{Key: prefix, Value: v})
	}
	for i := range v.Len() {
		mb := v.At(i)
		key := mb.Key
		if k == event.Array {
			key = strconv.Itoa(i)
		}
		if prefix != "" {
			key = prefix + sep + key
		}
		out = flattenInto(out, mb.Value, key, sep, omitArrays)
	}
	return out
}

// mergeNode is @merge.
type mergeNode struct {
	objects []node
	left    bool
	dirNode node
}

func (n *mergeNode) eval(c *evalCtx, payload event.Value) (event.Value, error) {
	left := n.left
	if n.dirNode != nil {
		d, err := n.dirNode.eval(c, payload)
		if err != nil {
			return event.Value{}, err
		}
		s, ok := d.Str()
		left = ok && s == "left"
	}
	vals := make([]event.Value, len(n.objects))
	size := 0
	for i, o := range n.objects {
		v, err := o.eval(c, payload)
		if err != nil {
			return event.Value{}, err
		}
		vals[i] = v
		size += v.Len()
		if s, ok := v.Str(); ok {
			size += len(s)
		}
	}
	if left {
		slices.Reverse(vals)
	}
	out := make([]event.Member, 0, size)
	for _, v := range vals {
		switch v.Kind() {
		case event.Object:
			for i := range v.Len() {
				out = append(out, v.At(i))
			}
		case event.Array:
			for i := range v.Len() {
				out = append(out, event.Member{Key: strconv.Itoa(i), Value: v.Index(i)})
			}
		case event.String:
			// Object.assign copies a string's characters as index keys.
			// JavaScript indexes UTF-16 code units; capstan indexes
			// characters, which is the same for the Basic Multilingual
			// Plane and never splits a character.
			s, _ := v.Str()
			i := 0
			for _, r := range s {
				out = append(out, event.Member{Key: strconv.Itoa(i), Value: event.StringValue(string(r))})
				i++
			}
		}
	}
	return event.ObjectOf(out), nil
}

// transformNode is @transform.
type transformNode struct {
	apply, mapping node
	loc            string
}

func (n *transformNode) eval(c *evalCtx, payload event.Value) (event.Value, error) {
	if payload.Kind() != event.Object {
		return event.Value{}, &ApplyError{Location: n.loc, Directive: "@transform", Msg: "@transform: data must be an object, got " + payload.Kind().String()}
	}
	applied, err := n.apply.eval(c, payload)
	if err != nil {
		return event.Value{}, err
	}
	return n.mapping.eval(c, applied.WithoutUndefined())
}

// excludeNullNode is @excludeWhenNull.
type excludeNullNode struct{ value node }

func (n *excludeNullNode) eval(c *evalCtx, payload event.Value) (event.Value, error) {
	v, err := n.value.eval(c, payload)
	if err != nil {
		return event.Value{}, err
	}
	switch v.Kind() {
	case event.Null:
		return event.Value{}, nil
	case event.Object:
		return removeNulls(v), nil
	}
	return v, nil
}

// removeNulls returns obj without null-valued members, recursively through
// nested objects (not inside arrays).
func removeNulls(obj event.Value) event.Value {
	out := make([]event.Member, 0, obj.Len())
	for i := range obj.Len() {
		mb := obj.At(i)
		switch mb.Value.Kind() {
		case event.Null:
			continue
		case event.Object:
			mb.Value = removeNulls(mb.Value)
		}
		out = append(out, mb)
	}
	return event.ObjectOfDistinct(out) // some of obj's keys
}

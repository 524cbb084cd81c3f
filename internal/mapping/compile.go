package mapping

import (
	"fmt"
	"strings"

	"github.com/capstan-gw/capstan/internal/event"
)

// node is one compiled piece of a mapping.
type node interface {
	// eval resolves the node against payload (the event, or an element for
	// @arrayPath shapes, or the applied object for @transform).
	eval(c *evalCtx, payload event.Value) (event.Value, error)
}

// directives maps each supported directive to its compiler.
var directives map[string]func(c *compiler, arg event.Value, loc string) node

func init() {
	directives = map[string]func(c *compiler, arg event.Value, loc string) node{
		"@path":            (*compiler).path,
		"@template":        (*compiler).template,
		"@literal":         (*compiler).literal,
		"@if":              (*compiler).ifDirective,
		"@case":            (*compiler).caseDirective,
		"@replace":         (*compiler).replace,
		"@arrayPath":       (*compiler).arrayPath,
		"@json":            (*compiler).json,
		"@flatten":         (*compiler).flatten,
		"@merge":           (*compiler).merge,
		"@transform":       (*compiler).transform,
		"@excludeWhenNull": (*compiler).excludeWhenNull,
	}
}

// unsupportedDirectives are Segment directives capstan deliberately lacks.
var unsupportedDirectives = map[string]string{
	"@liquid": "@liquid (Liquid templates) is not supported in capstan v1; rewrite the field with @template, @if, @case or @replace",
}

type compiler struct {
	issues  []Issue
	members int // members allocated per evaluation by object and array nodes
}

func (c *compiler) issue(loc, code, format string, args ...any) {
	c.issues = append(c.issues, Issue{Location: loc, Code: code, Msg: fmt.Sprintf(format, args...)})
}

// isDirectiveObject reports whether v is an object with an "@" key, which
// makes it a directive (valid or not), as in Segment's validator.
func isDirectiveObject(v event.Value) bool {
	if v.Kind() != event.Object {
		return false
	}
	for i := range v.Len() {
		if strings.HasPrefix(v.At(i).Key, "@") {
			return true
		}
	}
	return false
}

// compile compiles any mapping value at loc.
func (c *compiler) compile(v event.Value, loc string) node {
	switch v.Kind() {
	case event.Array:
		kids := make([]node, v.Len())
		allConst := true
		for i := range kids {
			kids[i] = c.compile(v.Index(i), loc+"/"+fmt.Sprint(i))
			if _, ok := kids[i].(constNode); !ok {
				allConst = false
			}
		}
		if allConst {
			return constNode{v}
		}
		c.members += len(kids)
		return &arrayNode{kids: kids}
	case event.Object:
		if isDirectiveObject(v) {
			return c.directive(v, loc)
		}
		keys := make([]string, v.Len())
		kids := make([]node, v.Len())
		for i := range kids {
			mb := v.At(i)
			keys[i] = mb.Key
			kids[i] = c.compile(mb.Value, loc+"/"+escapePointer(mb.Key))
		}
		n := newObjectNode(keys, kids)
		if _, ok := n.(constNode); !ok {
			c.members += len(keys)
		}
		return n
	}
	return constNode{v}
}

// newObjectNode returns an object node, or a constant when no member holds a
// directive.
func newObjectNode(keys []string, kids []node) node {
	m := make([]event.Member, len(kids))
	for i, k := range kids {
		cn, ok := k.(constNode)
		if !ok {
			return &objectNode{keys: keys, kids: kids}
		}
		m[i] = event.Member{Key: keys[i], Value: cn.v}
	}
	return constNode{event.ObjectOf(m)}
}

// directive compiles a directive object.
func (c *compiler) directive(v event.Value, loc string) node {
	var name string
	var arg event.Value
	ok := true
	for i := range v.Len() {
		mb := v.At(i)
		switch {
		case strings.HasPrefix(mb.Key, "@"):
			if name != "" {
				c.issue(loc, "invalid_directive", "an object may hold only one directive, but this one has %s and %s; nest one inside the other instead", name, mb.Key)
				ok = false
			}
			name, arg = mb.Key, mb.Value
		case mb.Key == "_metadata":
			// Segment's editor bookkeeping; ignored.
		default:
			c.issue(loc, "invalid_directive", "a directive object holds only its directive and \"_metadata\", but this %s object also has %q; move %q out of it", firstDirective(v), mb.Key, mb.Key)
			ok = false
		}
	}
	if !ok {
		return constNode{}
	}
	if msg, unsupported := unsupportedDirectives[name]; unsupported {
		c.issue(loc, "unsupported_directive", "%s", msg)
		return constNode{}
	}
	fn := directives[name]
	if fn == nil {
		msg := fmt.Sprintf("unknown directive %s; known directives are @path, @template, @literal, @if, @case, @replace, @arrayPath, @json, @flatten, @merge, @transform and @excludeWhenNull", name)
		for known := range directives {
			if strings.EqualFold(known, name) {
				msg = fmt.Sprintf("unknown directive %s; directive names are case-sensitive: did you mean %s?", name, known)
			}
		}
		c.issue(loc, "unknown_directive", "%s", msg)
		return constNode{}
	}
	return fn(c, arg, loc+"/"+escapePointer(name))
}

func firstDirective(v event.Value) string {
	for i := range v.Len() {
		if k := v.At(i).Key; strings.HasPrefix(k, "@") {
			return k
		}
	}
	return ""
}

// stringOrDirective compiles an argument that must be a string or a
// directive. It returns the string when it is one.
func (c *compiler) stringOrDirective(arg event.Value, loc, what string) (s string, n node) {
	if str, ok := arg.Str(); ok {
		return str, nil
	}
	if isDirectiveObject(arg) {
		return "", c.compile(arg, loc)
	}
	c.issue(loc, "invalid_argument", "%s must be a string or a directive, got %s", what, kindArticle(arg.Kind()))
	return "", constNode{}
}

// member returns the member key of a directive's object argument.
func member(arg event.Value, key string) (event.Value, bool) {
	for i := range arg.Len() {
		if mb := arg.At(i); mb.Key == key {
			return mb.Value, true
		}
	}
	return event.Value{}, false
}

// checkMembers reports members of an object argument not in allowed.
func (c *compiler) checkMembers(arg event.Value, loc, directive string, allowed ...string) {
	for i := range arg.Len() {
		mb := arg.At(i)
		if mb.Key == "_metadata" || contains(allowed, mb.Key) {
			continue
		}
		c.issue(loc+"/"+escapePointer(mb.Key), "invalid_argument", "%s does not take %q; its members are %s", directive, mb.Key, strings.Join(allowed, ", "))
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// objectArg checks that a directive's argument is an object.
func (c *compiler) objectArg(arg event.Value, loc, directive, example string) bool {
	if arg.Kind() == event.Object && !isDirectiveObject(arg) {
		return true
	}
	got := kindArticle(arg.Kind())
	if arg.Kind() == event.Object {
		got = "a directive"
	}
	c.issue(loc, "invalid_argument", "%s takes an object such as %s, got %s", directive, example, got)
	return false
}

// utf16Len is JavaScript's String.prototype.length.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n++
		if r >= 0x10000 {
			n++
		}
	}
	return n
}

func (c *compiler) path(arg event.Value, loc string) node {
	s, n := c.stringOrDirective(arg, loc, "@path")
	if n != nil {
		return &dynPathNode{arg: n, loc: parentLoc(loc)}
	}
	return &pathNode{segs: splitPath(stripDollar(s))}
}

func (c *compiler) template(arg event.Value, loc string) node {
	s, n := c.stringOrDirective(arg, loc, "@template")
	if n != nil {
		return &dynTemplateNode{arg: n, loc: parentLoc(loc)}
	}
	parts, ok := compileTemplate(s)
	if !ok {
		return &rawTemplateNode{t: s}
	}
	if len(parts) == 0 {
		return constNode{event.StringValue("")}
	}
	if len(parts) == 1 && !parts[0].isPath {
		return constNode{event.StringValue(parts[0].lit)}
	}
	return &templateNode{parts: parts, size: len(s)}
}

func (c *compiler) literal(arg event.Value, loc string) node {
	return c.compile(arg, loc)
}

func (c *compiler) ifDirective(arg event.Value, loc string) node {
	const example = `{"exists": {"@path": "$.traits.email"}, "then": …, "else": …}`
	if arg.Kind() != event.Object || isDirectiveObject(arg) {
		c.objectArg(arg, loc, "@if", example)
		return constNode{}
	}
	c.checkMembers(arg, loc, "@if", "exists", "blank", "then", "else")
	n := &ifNode{loc: parentLoc(loc)}
	exists, hasExists := member(arg, "exists")
	blank, _ := member(arg, "blank")
	switch {
	case !truthy(exists) && !truthy(blank):
		n.noCond = true // Segment fails at run time; so do we (spec §5.8)
	case hasExists:
		n.exists = true
		n.cond = c.compile(exists, loc+"/exists")
	default:
		n.cond = c.compile(blank, loc+"/blank")
	}
	if then, ok := member(arg, "then"); ok {
		n.then = c.compile(then, loc+"/then")
	}
	if els, ok := member(arg, "else"); ok {
		n.els = c.compile(els, loc+"/else")
		if !truthy(els) {
			n.els = nil // a falsy else as written yields undefined (replicated quirk)
		}
	}
	return n
}

func (c *compiler) caseDirective(arg event.Value, loc string) node {
	if !c.objectArg(arg, loc, "@case", `{"operator": "lower", "value": {"@path": "$.properties.countryCode"}}`) {
		return constNode{}
	}
	c.checkMembers(arg, loc, "@case", "operator", "value")
	op, ok := member(arg, "operator")
	opText, isString := op.Str()
	if !ok || !isString {
		got := "it is missing"
		if ok {
			got = "got " + kindArticle(op.Kind())
		}
		c.issue(loc+"/operator", "invalid_argument", "@case needs \"operator\": \"lower\" or \"upper\"; %s", got)
		return constNode{}
	}
	n := &caseNode{op: opText, loc: parentLoc(loc)}
	if v, _ := member(arg, "value"); truthy(v) {
		n.value = c.compile(v, loc+"/value")
	}
	return n
}

const (
	maxPatternLen     = 10
	maxReplacementLen = 10
)

func (c *compiler) replace(arg event.Value, loc string) node {
	if !c.objectArg(arg, loc, "@replace", `{"value": {"@path": "$.properties.phone"}, "pattern": " ", "replacement": ""}`) {
		return constNode{}
	}
	c.checkMembers(arg, loc, "@replace", "value", "pattern", "replacement", "global", "ignorecase", "pattern2", "replacement2")
	n := &replaceNode{global: true, loc: parentLoc(loc)}
	text := func(key string, required bool, minLen, maxLen int) (string, bool) {
		v, ok := member(arg, key)
		if !ok || (v.Kind() == event.Null && !required) {
			if required {
				c.issue(loc, "invalid_argument", "@replace needs %q, the literal text to find (1 to %d characters)", key, maxLen)
			}
			return "", ok && v.Kind() != event.Null
		}
		s, isString := v.Str()
		if !isString {
			c.issue(loc+"/"+key, "invalid_argument", "@replace %q must be a string, got %s", key, kindArticle(v.Kind()))
			return "", false
		}
		if l := utf16Len(s); l < minLen || l > maxLen {
			c.issue(loc+"/"+key, "invalid_argument", "@replace %q must be %d to %d characters long, got %d", key, minLen, maxLen, l)
		}
		return s, true
	}
	n.pattern, _ = text("pattern", true, 1, maxPatternLen)
	n.replacement, _ = text("replacement", false, 0, maxReplacementLen)
	n.pattern2, n.has2 = text("pattern2", false, 0, maxPatternLen)
	n.has2 = n.has2 && n.pattern2 != ""
	n.replacement2, _ = text("replacement2", false, 0, maxReplacementLen)
	for _, key := range []string{"global", "ignorecase"} {
		v, ok := member(arg, key)
		if !ok || v.Kind() == event.Null {
			continue
		}
		if v.Kind() != event.Bool {
			c.issue(loc+"/"+key, "invalid_argument", "@replace %q must be true or false, got %s", key, kindArticle(v.Kind()))
			continue
		}
		b, _ := v.Bool()
		if key == "global" {
			n.global = b
		} else {
			n.ignoreCase = b
		}
	}
	v, ok := member(arg, "value")
	if !ok {
		c.issue(loc, "invalid_argument", "@replace needs \"value\", the text to change, e.g. {\"@path\": \"$.properties.phone\"}")
	} else if truthy(v) {
		n.value = c.compile(v, loc+"/value")
	}
	return n
}

func (c *compiler) arrayPath(arg event.Value, loc string) node {
	if arg.Kind() != event.Array || arg.Len() == 0 {
		c.issue(loc, "invalid_argument", "@arrayPath takes an array [path, shape], such as [\"$.properties.products\", {\"id\": {\"@path\": \"$.sku\"}}], got %s", kindArticle(arg.Kind()))
		return constNode{}
	}
	n := &arrayPathNode{}
	s, dn := c.stringOrDirective(arg.Index(0), loc+"/0", "the first element of @arrayPath")
	if dn != nil {
		n.arg = dn
	} else {
		n.segs = splitPath(stripDollar(s))
	}
	if arg.Len() > 1 {
		shape := arg.Index(1)
		sn := c.compile(shape, loc+"/1")
		if shape.Kind() == event.Object && shape.Len() > 0 {
			n.shape = sn
		}
	}
	return n
}

func (c *compiler) json(arg event.Value, loc string) node {
	if !c.objectArg(arg, loc, "@json", `{"mode": "encode", "value": {"@path": "$.properties"}}`) {
		return constNode{}
	}
	c.checkMembers(arg, loc, "@json", "mode", "value")
	n := &jsonNode{loc: parentLoc(loc)}
	mode, _ := member(arg, "mode")
	switch s, _ := mode.Str(); {
	case mode.Kind() == event.String && s == "encode":
		n.encode = true
	case mode.Kind() == event.String && s == "decode":
	default:
		c.issue(loc+"/mode", "invalid_argument", "@json needs \"mode\": \"encode\" or \"decode\"")
	}
	v, ok := member(arg, "value")
	switch {
	case !ok:
		c.issue(loc, "invalid_argument", "@json needs \"value\", the value to encode or decode")
	case truthy(v):
		n.value = c.compile(v, loc+"/value")
	}
	return n
}

func (c *compiler) flatten(arg event.Value, loc string) node {
	if !c.objectArg(arg, loc, "@flatten", `{"value": {"@path": "$.context.page"}, "separator": "_"}`) {
		return constNode{}
	}
	c.checkMembers(arg, loc, "@flatten", "value", "separator", "omitArrays")
	n := &flattenNode{loc: parentLoc(loc)}
	sep, ok := member(arg, "separator")
	switch {
	case !ok:
		c.issue(loc, "invalid_argument", "@flatten needs \"separator\", the text that joins nested keys, such as \".\"")
	case sep.Kind() == event.String:
		n.sep, _ = sep.Str()
	case isDirectiveObject(sep):
		n.sepNode = c.compile(sep, loc+"/separator")
	default:
		c.issue(loc+"/separator", "invalid_argument", "@flatten \"separator\" must be a string, got %s", kindArticle(sep.Kind()))
	}
	v, ok := member(arg, "value")
	if !ok {
		c.issue(loc, "invalid_argument", "@flatten needs \"value\", the object to flatten")
	} else {
		n.value = c.compile(v, loc+"/value")
	}
	omit, _ := member(arg, "omitArrays")
	n.omitArrays = truthy(omit)
	return n
}

func (c *compiler) merge(arg event.Value, loc string) node {
	if !c.objectArg(arg, loc, "@merge", `{"objects": [{…}, {…}], "direction": "right"}`) {
		return constNode{}
	}
	c.checkMembers(arg, loc, "@merge", "objects", "direction")
	n := &mergeNode{}
	dir, ok := member(arg, "direction")
	switch s, _ := dir.Str(); {
	case dir.Kind() == event.String && (s == "left" || s == "right"):
		n.left = s == "left"
	case isDirectiveObject(dir):
		n.dirNode = c.compile(dir, loc+"/direction")
	case !ok:
		c.issue(loc, "invalid_argument", "@merge needs \"direction\": \"right\" (later objects win) or \"left\" (earlier objects win)")
	default:
		c.issue(loc+"/direction", "invalid_argument", "@merge \"direction\" must be \"right\" or \"left\"")
	}
	objs, ok := member(arg, "objects")
	if !ok || objs.Kind() != event.Array {
		c.issue(loc+map[bool]string{true: "/objects", false: ""}[ok], "invalid_argument", "@merge needs \"objects\", an array of objects or directives")
		return n
	}
	for i := range objs.Len() {
		o := objs.Index(i)
		eloc := loc + "/objects/" + fmt.Sprint(i)
		if o.Kind() != event.Object {
			c.issue(eloc, "invalid_argument", "@merge objects must be objects or directives, got %s", kindArticle(o.Kind()))
			continue
		}
		n.objects = append(n.objects, c.compile(o, eloc))
	}
	return n
}

func (c *compiler) transform(arg event.Value, loc string) node {
	if !c.objectArg(arg, loc, "@transform", `{"apply": {…}, "mapping": {…}}`) {
		return constNode{}
	}
	c.checkMembers(arg, loc, "@transform", "apply", "mapping")
	n := &transformNode{loc: parentLoc(loc)}
	for _, key := range []string{"apply", "mapping"} {
		v, ok := member(arg, key)
		if !ok || v.Kind() != event.Object {
			got := "it is missing"
			if ok {
				got = "got " + kindArticle(v.Kind())
			}
			c.issue(loc+map[bool]string{true: "/" + key, false: ""}[ok], "invalid_argument", "@transform needs %q, an object or a directive; %s", key, got)
			continue
		}
		if key == "apply" {
			n.apply = c.compile(v, loc+"/apply")
		} else {
			n.mapping = c.compile(v, loc+"/mapping")
		}
	}
	return n
}

func (c *compiler) excludeWhenNull(arg event.Value, loc string) node {
	return &excludeNullNode{value: c.compile(arg, loc)}
}

// parentLoc strips the directive name from an argument location, giving the
// location of the directive object.
func parentLoc(loc string) string {
	if i := strings.LastIndexByte(loc, '/'); i >= 0 {
		return loc[:i]
	}
	return loc
}

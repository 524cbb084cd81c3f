package mapping

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/capstan-gw/capstan/internal/event"
)

// maxTriggerDepth bounds parenthesis nesting. The spec allows any depth;
// this limit only stops a hostile input from exhausting the stack, and is
// far beyond anything a person writes (Segment's UI produces one level).
const maxTriggerDepth = 1000

// Trigger is a parsed trigger (Segment's "subscribe" text, spec §4), ready to
// be evaluated. It is immutable and safe for concurrent use; Match does not
// allocate.
type Trigger struct {
	root cond
}

// TriggerError is a trigger rejected when it is parsed: the position of the
// problem and a message that says how to rewrite the trigger.
type TriggerError struct {
	Offset int // byte offset in the trigger text
	Line   int // 1-based line (triggers are usually one line)
	Column int // 1-based column within the line, in characters
	Msg    string
}

func (e *TriggerError) Error() string {
	if e.Line > 1 {
		return fmt.Sprintf("trigger: line %d, column %d: %s", e.Line, e.Column, e.Msg)
	}
	return fmt.Sprintf("trigger: column %d: %s", e.Column, e.Msg)
}

type condOp uint8

const (
	opAnd condOp = iota
	opOr
	opStrEq       // actual is the string str
	opStrNe       // actual is not the string str
	opNumEq       // actual is a number equal to num
	opNumNe       // actual is a number not equal to num
	opLt          // actual is a number < num
	opLe          // actual is a number <= num
	opGt          // actual is a number > num
	opGe          // actual is a number >= num
	opIsTrue      // actual is true
	opIsFalse     // actual is false
	opNotExists   // actual is absent or null
	opExists      // actual is present and not null
	opContains    // actual is a string containing str
	opNotContains // actual is a string not containing str
	opPrefix      // actual is a string starting with str
	opNotPrefix   // actual is a string not starting with str
	opSuffix      // actual is a string ending with str
	opNotSuffix   // actual is a string not ending with str
)

// cond is one node of a compiled trigger. Groups use kids; leaves use path,
// str and num. The written form (field, rel, lit, neg) is kept for String.
type cond struct {
	op   condOp
	path []string
	str  string
	num  float64
	kids []cond

	field string // as written: "context.page.url"
	rel   string // "=", "!=", "<", "<=", ">", ">=", "contains", "match"
	neg   bool   // "!contains" / "!match"
	lit   token  // the literal as written
}

// ParseTrigger parses a trigger (spec §4). Every construct that Segment's
// own parser would silently misread (mixed and/or at one level, unknown
// fields, != with a boolean, match patterns without '*') is rejected with a
// *TriggerError that says how to rewrite it.
//
// capstan accepts the canonical spacing Segment emits and also tighter or
// looser spacing (any run of space, tab, CR or LF between tokens, including
// none where the tokens stay distinct), and "! contains(...)" with a space.
func ParseTrigger(src string) (*Trigger, error) {
	toks, err := lexTrigger(src)
	if err != nil {
		return nil, err
	}
	p := &tparser{src: src, toks: toks}
	if p.peek().kind == tEOF {
		return nil, p.errAt(p.peek(), "the trigger is empty; write a condition such as type = \"track\"")
	}
	root, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		if t.kind == tRParen {
			return nil, p.errAt(t, "unbalanced \")\": there is no \"(\" for it to close")
		}
		return nil, p.errAt(t, "unexpected %s; join conditions with \"and\" or \"or\"", t.describe())
	}
	return &Trigger{root: root}, nil
}

// MustParseTrigger is ParseTrigger for trigger text known to be valid (tests,
// built-in defaults); it panics on error.
func MustParseTrigger(src string) *Trigger {
	t, err := ParseTrigger(src)
	if err != nil {
		panic(err)
	}
	return t
}

// Match reports whether ev satisfies the trigger. It does not allocate.
func (t *Trigger) Match(ev event.Value) bool {
	return t.root.eval(ev)
}

// String returns the trigger in canonical form: single spaces around
// operators and conjunctions, `contains(f, "v")`, strings in double quotes
// (single quotes when the text holds a double quote), numbers as written,
// parentheses only around nested groups. Parsing the canonical form gives
// the same trigger.
func (t *Trigger) String() string {
	return string(t.root.appendTo(nil, false))
}

func (c *cond) eval(ev event.Value) bool {
	switch c.op {
	case opAnd:
		for i := range c.kids {
			if !c.kids[i].eval(ev) {
				return false
			}
		}
		return true
	case opOr:
		for i := range c.kids {
			if c.kids[i].eval(ev) {
				return true
			}
		}
		return false
	}
	v := ev.Lookup(c.path...)
	switch c.op {
	case opStrEq:
		s, ok := v.Str()
		return ok && s == c.str
	case opStrNe:
		s, ok := v.Str()
		return !ok || s != c.str
	case opNumEq, opNumNe, opLt, opLe, opGt, opGe:
		f, ok := v.Float64()
		if !ok {
			return false
		}
		switch c.op {
		case opNumEq:
			return f == c.num
		case opNumNe:
			return f != c.num
		case opLt:
			return f < c.num
		case opLe:
			return f <= c.num
		case opGt:
			return f > c.num
		default:
			return f >= c.num
		}
	case opIsTrue:
		b, ok := v.Bool()
		return ok && b
	case opIsFalse:
		b, ok := v.Bool()
		return ok && !b
	case opNotExists:
		return !v.Exists()
	case opExists:
		return v.Exists()
	}
	s, ok := v.Str()
	if !ok {
		return false // every string test, negated or not, needs a string
	}
	switch c.op {
	case opContains:
		return strings.Contains(s, c.str)
	case opNotContains:
		return !strings.Contains(s, c.str)
	case opPrefix:
		return strings.HasPrefix(s, c.str)
	case opNotPrefix:
		return !strings.HasPrefix(s, c.str)
	case opSuffix:
		return strings.HasSuffix(s, c.str)
	case opNotSuffix:
		return !strings.HasSuffix(s, c.str)
	}
	return false
}

func (c *cond) appendTo(b []byte, nested bool) []byte {
	switch c.op {
	case opAnd, opOr:
		if nested {
			b = append(b, '(')
		}
		word := " and "
		if c.op == opOr {
			word = " or "
		}
		for i := range c.kids {
			if i > 0 {
				b = append(b, word...)
			}
			b = c.kids[i].appendTo(b, true)
		}
		if nested {
			b = append(b, ')')
		}
		return b
	}
	if c.rel == "contains" || c.rel == "match" {
		if c.neg {
			b = append(b, '!')
		}
		b = append(b, c.rel...)
		b = append(b, '(')
		b = append(b, c.field...)
		b = append(b, ", "...)
		b = c.lit.appendLiteral(b)
		return append(b, ')')
	}
	b = append(b, c.field...)
	b = append(b, ' ')
	b = append(b, c.rel...)
	b = append(b, ' ')
	return c.lit.appendLiteral(b)
}

// Lexer.

type tokKind uint8

const (
	tEOF tokKind = iota
	tWord
	tString
	tNumber
	tAnd
	tOr
	tNull
	tTrue
	tFalse
	tContains
	tMatch
	tBang
	tOp
	tLParen
	tRParen
	tComma
)

type token struct {
	kind  tokKind
	text  string // word, string contents, number text, operator
	quote byte   // tString: the quote character used
	pos   int    // byte offset
}

func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of trigger"
	case tString:
		return "string " + string(t.quote) + t.text + string(t.quote)
	case tNumber:
		return "number " + t.text
	case tWord:
		return strconv.Quote(t.text)
	}
	return strconv.Quote(t.text)
}

func (t token) appendLiteral(b []byte) []byte {
	if t.kind == tString {
		q := byte('"')
		if strings.IndexByte(t.text, '"') >= 0 {
			q = '\''
		}
		b = append(b, q)
		b = append(b, t.text...)
		return append(b, q)
	}
	return append(b, t.text...)
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentChar(c byte) bool {
	return isIdentStart(c) || (c >= '0' && c <= '9') || c == '-'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func triggerErr(src string, off int, format string, args ...any) *TriggerError {
	line, col := 1, 1
	lineStart := 0
	for i := 0; i < off && i < len(src); i++ {
		if src[i] == '\n' {
			line++
			lineStart = i + 1
		}
	}
	col = utf8.RuneCountInString(src[lineStart:min(off, len(src))]) + 1
	return &TriggerError{Offset: off, Line: line, Column: col, Msg: fmt.Sprintf(format, args...)}
}

var keywords = map[string]tokKind{"and": tAnd, "or": tOr, "null": tNull, "true": tTrue, "false": tFalse}

func lexTrigger(src string) ([]token, error) {
	var toks []token
	i := 0
	for {
		for i < len(src) && isSpace(src[i]) {
			i++
		}
		if i >= len(src) {
			return append(toks, token{kind: tEOF, pos: i}), nil
		}
		start := i
		c := src[i]
		switch {
		case c == '(':
			toks = append(toks, token{kind: tLParen, text: "(", pos: i})
			i++
		case c == ')':
			toks = append(toks, token{kind: tRParen, text: ")", pos: i})
			i++
		case c == ',':
			toks = append(toks, token{kind: tComma, text: ",", pos: i})
			i++
		case c == '"' || c == '\'':
			end := strings.IndexByte(src[i+1:], c)
			if end < 0 {
				other := "'"
				if c == '\'' {
					other = "\""
				}
				return nil, triggerErr(src, i, "unterminated string: close it with %c (strings have no escapes; to include a %c, quote the string with %s instead)", c, c, other)
			}
			toks = append(toks, token{kind: tString, text: src[i+1 : i+1+end], quote: c, pos: i})
			i += end + 2
		case c == '!':
			if i+1 < len(src) && src[i+1] == '=' {
				toks = append(toks, token{kind: tOp, text: "!=", pos: i})
				i += 2
			} else {
				toks = append(toks, token{kind: tBang, text: "!", pos: i})
				i++
			}
		case c == '=':
			if i+1 < len(src) && src[i+1] == '=' {
				return nil, triggerErr(src, i, "\"==\" is not an operator; write \"=\"")
			}
			toks = append(toks, token{kind: tOp, text: "=", pos: i})
			i++
		case c == '<' || c == '>':
			if i+1 < len(src) && src[i+1] == '=' {
				toks = append(toks, token{kind: tOp, text: src[i : i+2], pos: i})
				i += 2
			} else if c == '<' && i+1 < len(src) && src[i+1] == '>' {
				return nil, triggerErr(src, i, "\"<>\" is not an operator; write \"!=\"")
			} else {
				toks = append(toks, token{kind: tOp, text: src[i : i+1], pos: i})
				i++
			}
		case isDigit(c) || ((c == '-' || c == '+') && i+1 < len(src) && isDigit(src[i+1])):
			i++
			for i < len(src) && isDigit(src[i]) {
				i++
			}
			if i < len(src) && src[i] == '.' {
				if i+1 >= len(src) || !isDigit(src[i+1]) {
					return nil, triggerErr(src, start, "invalid number %q: write digits after the decimal point, e.g. 2.5", src[start:i+1])
				}
				i++
				for i < len(src) && isDigit(src[i]) {
					i++
				}
			}
			if i < len(src) && (isIdentChar(src[i]) || src[i] == '.' || src[i] == '$') {
				j := i
				for j < len(src) && (isIdentChar(src[j]) || src[j] == '.' || src[j] == '$') {
					j++
				}
				return nil, triggerErr(src, start, "invalid number %q: numbers are plain decimals such as 100 or -2.5 (no exponents); quote text, and field names cannot start with a digit", src[start:j])
			}
			toks = append(toks, token{kind: tNumber, text: src[start:i], pos: start})
		case isIdentStart(c) || c == '$':
			for i < len(src) && (isIdentChar(src[i]) || src[i] == '.' || src[i] == '$' || src[i] == '[' || src[i] == ']') {
				i++
			}
			w := src[start:i]
			if k, ok := keywords[w]; ok {
				toks = append(toks, token{kind: k, text: w, pos: start})
				break
			}
			if k, ok := keywords[strings.ToLower(w)]; ok && k != 0 {
				return nil, triggerErr(src, start, "keywords are lower case: write %q instead of %q", strings.ToLower(w), w)
			}
			if w == "contains" || w == "match" {
				j := i
				for j < len(src) && isSpace(src[j]) {
					j++
				}
				if j < len(src) && src[j] == '(' {
					kind := tContains
					if w == "match" {
						kind = tMatch
					}
					toks = append(toks, token{kind: kind, text: w, pos: start})
					break
				}
			}
			toks = append(toks, token{kind: tWord, text: w, pos: start})
		case c == '&' || c == '|':
			word := "and"
			if c == '|' {
				word = "or"
			}
			return nil, triggerErr(src, i, "%q is not an operator; write %q", string(c), word)
		default:
			r, _ := utf8.DecodeRuneInString(src[i:])
			return nil, triggerErr(src, i, "unexpected character %q; text values must be quoted", r)
		}
	}
}

// Parser.

type tparser struct {
	src  string
	toks []token
	pos  int
}

func (p *tparser) peek() token { return p.toks[p.pos] }

func (p *tparser) next() token {
	t := p.toks[p.pos]
	if t.kind != tEOF {
		p.pos++
	}
	return t
}

func (p *tparser) errAt(t token, format string, args ...any) *TriggerError {
	return triggerErr(p.src, t.pos, format, args...)
}

// expr = term { conj term } with a single conjunction word per level.
func (p *tparser) expr(depth int) (cond, error) {
	first, err := p.term(depth)
	if err != nil {
		return cond{}, err
	}
	kids := []cond{first}
	var conj tokKind
	for {
		t := p.peek()
		if t.kind != tAnd && t.kind != tOr {
			break
		}
		if conj != 0 && t.kind != conj {
			return cond{}, p.errAt(t, "mixed \"and\" and \"or\" at one level; add parentheses to say which comes first, e.g. a and (b or c), or (a and b) or c (Segment would silently apply the last conjunction to the whole level)")
		}
		conj = t.kind
		p.next()
		k, err := p.term(depth)
		if err != nil {
			return cond{}, err
		}
		kids = append(kids, k)
	}
	if len(kids) == 1 {
		return kids[0], nil
	}
	op := opAnd
	if conj == tOr {
		op = opOr
	}
	return cond{op: op, kids: kids}, nil
}

func (p *tparser) term(depth int) (cond, error) {
	t := p.next()
	switch t.kind {
	case tLParen:
		if depth >= maxTriggerDepth {
			return cond{}, p.errAt(t, "parentheses nested deeper than %d levels", maxTriggerDepth)
		}
		if p.peek().kind == tRParen {
			return cond{}, p.errAt(p.peek(), "empty parentheses: write a condition inside them")
		}
		c, err := p.expr(depth + 1)
		if err != nil {
			return cond{}, err
		}
		if end := p.next(); end.kind != tRParen {
			if end.kind == tEOF {
				return cond{}, p.errAt(t, "unbalanced \"(\": add a \")\" to close it")
			}
			return cond{}, p.errAt(end, "unexpected %s; expected \"and\", \"or\" or \")\"", end.describe())
		}
		return c, nil
	case tBang:
		f := p.peek()
		if f.kind != tContains && f.kind != tMatch {
			return cond{}, p.errAt(t, "\"!\" only negates contains() or match(); to negate a comparison use its opposite operator (!= instead of =, = null instead of != null)")
		}
		p.next()
		return p.call(f, true)
	case tContains, tMatch:
		return p.call(t, false)
	case tWord:
		return p.comparison(t)
	case tEOF:
		return cond{}, p.errAt(t, "the trigger ends where a condition was expected")
	case tString, tNumber, tTrue, tFalse, tNull:
		return cond{}, p.errAt(t, "a condition starts with a field, e.g. event = \"Sign Up\"; found %s", t.describe())
	}
	return cond{}, p.errAt(t, "expected a condition such as type = \"track\", found %s", t.describe())
}

// fieldClass tells how literals compare against a field.
type fieldClass uint8

const (
	fieldText   fieldClass = iota // type, event, name: literals are compared as text
	fieldUserID                   // userId
	fieldNested                   // properties.*, traits.*, context.*
)

const supportedFields = "supported fields are type, event, name, userId, properties.<path>, traits.<path> and context.<path>"

func (p *tparser) field(t token) ([]string, fieldClass, error) {
	w := t.text
	if strings.HasPrefix(w, "$.") {
		return nil, 0, p.errAt(t, "write fields without \"$.\" in triggers: %s", w[2:])
	}
	if i := strings.IndexAny(w, "$[]"); i >= 0 {
		return nil, 0, triggerErr(p.src, t.pos+i, "%q is not allowed in a field name; property names are letters, digits, '_' and '-' (array indexes cannot be written in triggers)", w[i:i+1])
	}
	segs := strings.Split(w, ".")
	off := t.pos
	for i, s := range segs {
		if s == "" {
			if i == len(segs)-1 && i == 1 {
				break // "properties." is reported below
			}
			return nil, 0, triggerErr(p.src, off, "empty property name in %q; write dot-separated names such as context.page.url", w)
		}
		if !isIdentStart(s[0]) {
			return nil, 0, triggerErr(p.src, off, "property name %q must start with a letter or '_' (array indexes cannot be written in triggers)", s)
		}
		off += len(s) + 1
	}
	switch segs[0] {
	case "type", "event", "name", "userId":
		if len(segs) > 1 {
			return nil, 0, p.errAt(t, "unsupported field %q: %s has no sub-fields; %s", w, segs[0], supportedFields)
		}
		if segs[0] == "userId" {
			return segs, fieldUserID, nil
		}
		return segs, fieldText, nil
	case "properties", "traits", "context":
		if len(segs) < 2 || segs[1] == "" {
			return nil, 0, p.errAt(t, "a path is required after %s., e.g. %s.plan", segs[0], segs[0])
		}
		return segs, fieldNested, nil
	}
	return nil, 0, p.errAt(t, "unsupported field %q (Segment would silently ignore it, so the condition would never hold); %s", w, supportedFields)
}

func (p *tparser) call(fn token, neg bool) (cond, error) {
	p.next() // '(' (guaranteed by the lexer)
	ft := p.next()
	if ft.kind != tWord {
		return cond{}, p.errAt(ft, "%s() takes a field first, e.g. %s(context.page.url, \"…\"); found %s", fn.text, fn.text, ft.describe())
	}
	path, _, err := p.field(ft)
	if err != nil {
		return cond{}, err
	}
	if c := p.next(); c.kind != tComma {
		return cond{}, p.errAt(c, "expected \",\" after the field in %s(); found %s", fn.text, c.describe())
	}
	lit := p.next()
	if lit.kind != tString && lit.kind != tNumber {
		return cond{}, p.errAt(lit, "%s() compares with a quoted string, e.g. %s(%s, \"text\"); found %s", fn.text, fn.text, ft.text, lit.describe())
	}
	if c := p.next(); c.kind != tRParen {
		return cond{}, p.errAt(c, "expected \")\" to close %s(); found %s", fn.text, c.describe())
	}
	text := lit.text
	if lit.kind == tNumber {
		text = string(event.AppendNumberText(nil, lit.text))
	}
	c := cond{path: path, field: ft.text, rel: fn.text, neg: neg, lit: lit}
	if fn.kind == tContains {
		c.op, c.str = opContains, text
		if neg {
			c.op = opNotContains
		}
		return c, nil
	}
	switch {
	case strings.HasSuffix(text, "*"):
		c.op, c.str = opPrefix, text[:len(text)-1]
		if neg {
			c.op = opNotPrefix
		}
	case strings.HasPrefix(text, "*"):
		c.op, c.str = opSuffix, text[1:]
		if neg {
			c.op = opNotSuffix
		}
	default:
		return cond{}, p.errAt(lit, "match pattern must start or end with *: write %q for \"starts with\", %q for \"ends with\", or use contains() or = instead", text+"*", "*"+text)
	}
	return c, nil
}

func (p *tparser) comparison(ft token) (cond, error) {
	path, class, err := p.field(ft)
	if err != nil {
		return cond{}, err
	}
	opTok := p.next()
	if opTok.kind != tOp {
		return cond{}, p.errAt(opTok, "expected an operator (=, !=, <, <=, >, >=) after %s; found %s", ft.text, opTok.describe())
	}
	lit := p.next()
	c := cond{path: path, field: ft.text, rel: opTok.text, lit: lit}
	ordering := opTok.text != "=" && opTok.text != "!="
	switch lit.kind {
	case tString, tNumber, tTrue, tFalse, tNull:
	case tWord:
		return cond{}, p.errAt(lit, "expected a value after %s; quote text values: %s %s \"%s\"", opTok.text, ft.text, opTok.text, lit.text)
	default:
		return cond{}, p.errAt(lit, "expected a value (a quoted string, a number, true, false or null) after %s; found %s", opTok.text, lit.describe())
	}
	if ordering && lit.kind != tNumber {
		return cond{}, p.errAt(lit, "%s needs a number literal, e.g. %s %s 10 (text and booleans cannot be ordered)", opTok.text, ft.text, opTok.text)
	}
	eq := opTok.text == "="
	switch lit.kind {
	case tNull:
		c.op = opNotExists
		if !eq {
			c.op = opExists
		}
	case tString:
		c.op, c.str = opStrEq, lit.text
		if !eq {
			c.op = opStrNe
		}
	case tTrue, tFalse:
		if !eq {
			opposite := "false"
			if lit.kind == tFalse {
				opposite = "true"
			}
			if class == fieldText {
				return cond{}, p.errAt(opTok, "!= with a boolean literal is not supported; to compare text write %s != \"%s\"", ft.text, lit.text)
			}
			return cond{}, p.errAt(opTok, "!= with a boolean literal is not supported; write %s = %s (Segment compares %s !== \"%s\", which is always true)", ft.text, opposite, lit.text, lit.text)
		}
		switch {
		case class == fieldText:
			c.op, c.str = opStrEq, lit.text
		case lit.kind == tTrue:
			c.op = opIsTrue
		default:
			c.op = opIsFalse
		}
	case tNumber:
		f, _ := strconv.ParseFloat(lit.text, 64)
		c.num = f
		switch {
		case class == fieldText && !ordering:
			c.op, c.str = opStrEq, string(event.AppendNumberText(nil, lit.text))
			if !eq {
				c.op = opStrNe
			}
		default:
			c.op = map[string]condOp{"=": opNumEq, "!=": opNumNe, "<": opLt, "<=": opLe, ">": opGt, ">=": opGe}[opTok.text]
		}
	}
	return c, nil
}

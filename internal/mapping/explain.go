package mapping

import (
	"strings"
	"unicode/utf8"

	"github.com/capstan-gw/capstan/internal/event"
)

// maxExplainValue bounds, in bytes, an event value quoted by Explain.
const maxExplainValue = 80

// Explain reports whether ev satisfies the trigger, as Match does, and says
// why in words for the console's event detail: for a match, the trigger
// that held; otherwise the condition that failed (the first one of an
// "and"; each one of an "or"), with the value the event has there, such as
// `event = "Signed Up" is false: event is "Page Viewed"`. Unlike Match it
// allocates; it is for one event at a time.
func (t *Trigger) Explain(ev event.Value) (bool, string) {
	ok, why := t.root.explain(ev)
	if ok {
		return true, "matched: " + t.String()
	}
	return false, why
}

func (c *cond) explain(ev event.Value) (bool, string) {
	switch c.op {
	case opAnd:
		for i := range c.kids {
			if ok, why := c.kids[i].explain(ev); !ok {
				return false, why
			}
		}
		return true, ""
	case opOr:
		whys := make([]string, 0, len(c.kids))
		for i := range c.kids {
			ok, why := c.kids[i].explain(ev)
			if ok {
				return true, ""
			}
			whys = append(whys, why)
		}
		return false, "no alternative holds: " + strings.Join(whys, "; ")
	}
	if c.eval(ev) {
		return true, ""
	}
	text := string(c.appendTo(nil, false))
	return false, text + " is false: " + c.field + " " + describeValue(ev.Lookup(c.path...))
}

// describeValue says what an event holds at a trigger's field.
func describeValue(v event.Value) string {
	if !v.Exists() {
		if v.IsNull() {
			return "is null"
		}
		return "is absent"
	}
	b := v.AppendJSON(nil)
	if len(b) > maxExplainValue {
		cut := maxExplainValue
		for cut > 0 && !utf8.RuneStart(b[cut]) {
			cut--
		}
		b = append(b[:cut:cut], "…"...)
	}
	return "is " + string(b)
}

package mapping

// Example calls set with field values that make an event satisfy the
// trigger: every condition of an "and", the first condition of an "or".
// A value is a string, a float64 or a bool; nil means "remove the field".
// Conditions that only exclude (!=, !contains, !match) set nothing, so the
// caller should check the resulting event with Match. It is how
// `capstan test-event` builds a sample event for a mapping.
func (t *Trigger) Example(set func(path []string, v any)) {
	t.root.example(set)
}

// ExampleInto applies Example to doc, a decoded JSON object: each value is
// set at its path (objects on the way are made or replaced), and a nil
// value removes the field.
func (t *Trigger) ExampleInto(doc map[string]any) {
	t.Example(func(path []string, v any) {
		m := doc
		for _, k := range path[:len(path)-1] {
			next, ok := m[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[k] = next
			}
			m = next
		}
		if v == nil {
			delete(m, path[len(path)-1])
		} else {
			m[path[len(path)-1]] = v
		}
	})
}

func (c *cond) example(set func(path []string, v any)) {
	switch c.op {
	case opAnd:
		for i := range c.kids {
			c.kids[i].example(set)
		}
	case opOr:
		if len(c.kids) > 0 {
			c.kids[0].example(set)
		}
	case opStrEq, opContains, opPrefix, opSuffix:
		set(c.path, c.str)
	case opNumEq, opLe, opGe:
		set(c.path, c.num)
	case opLt:
		set(c.path, c.num-1)
	case opGt:
		set(c.path, c.num+1)
	case opIsTrue:
		set(c.path, true)
	case opIsFalse:
		set(c.path, false)
	case opExists:
		set(c.path, "capstan-test")
	case opNotExists:
		set(c.path, nil)
	}
}

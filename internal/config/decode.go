package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decoder walks a yaml.v3 node tree into Go values, collecting every error
// with its position instead of stopping at the first.
type decoder struct {
	depth  int // nesting of toJSON, bounded against recursive aliases
	errs   *Errors
	pos    map[string]Pos
	lookup func(string) (string, bool)

	// What YAML aliases expand, bounded (maxAliasNodes, maxAliasBytes):
	// inAlias is how many aliases the node being decoded is inside of
	// (see enterAlias);
	// aliasNodes and aliasBytes count the nodes and scalar bytes reached
	// through an alias; aliasBomb is set once a limit was passed (and
	// reported), after which no alias is expanded.
	inAlias    int
	aliasAt    *yaml.Node // the outermost alias being expanded
	aliasNodes int
	aliasBytes int
	aliasBomb  bool
}

// maxDepth bounds the nesting of a mapping's fields.
const maxDepth = 64

// Limits on what YAML aliases expand to. An alias repeats its anchor's
// whole subtree, so a few lines of aliases of aliases of lists ("billion
// laughs") stand for billions of values. Configurations share a mapping's
// fields between a few dozen mappings (thousands of values); these limits
// stop a bomb in milliseconds.
const (
	maxAliasNodes = 20_000       // values (scalars, lists, mappings) reached through aliases
	maxAliasBytes = MaxFileBytes // scalar text reached through aliases
)

// enterAlias notes that the decoder enters the alias n; the caller calls
// leaveAlias when done with it.
func (d *decoder) enterAlias(n *yaml.Node) {
	if d.inAlias == 0 {
		d.aliasAt = n
	}
	d.inAlias++
}

func (d *decoder) leaveAlias() { d.inAlias-- }

// follow resolves n when it is an alias and, when the node is reached
// through one (see enterAlias), counts it against the alias limits. It
// returns false when the limits are passed, having reported the problem
// once, at the outermost alias being expanded: the caller skips the node.
func (d *decoder) follow(path string, n *yaml.Node) (_ *yaml.Node, ok bool) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if d.inAlias == 0 { // not inside an alias: the file's own node
		return n, true
	}
	if d.aliasBomb {
		return n, false
	}
	d.aliasNodes++
	d.aliasBytes += len(n.Value)
	if d.aliasNodes > maxAliasNodes || d.aliasBytes > maxAliasBytes {
		d.aliasBomb = true
		d.errorf(d.aliasAt, path, "YAML aliases expand to more than %d values or %d bytes (an alias bomb?); write the values out instead", maxAliasNodes, maxAliasBytes)
		return n, false
	}
	return n, true
}

// setPos records where the value at path is written. Values reached
// through an alias are written at its anchor, recorded there once under
// the anchor's own path: errors about them point at the outermost alias
// that stands for them (and recording costs nothing per expanded node).
func (d *decoder) setPos(path string, n *yaml.Node) {
	if d.inAlias == 0 {
		d.pos[path] = Pos{n.Line, n.Column}
	}
}

var (
	rawJSONType  = reflect.TypeFor[RawJSON]()
	secretType   = reflect.TypeFor[Secret]()
	durationType = reflect.TypeFor[Duration]()
	syncType     = reflect.TypeFor[SyncPolicy]()
)

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.errs.add(Pos{n.Line, n.Column}, path, fmt.Sprintf(format, args...))
}

func (d *decoder) decode(path string, n *yaml.Node, v reflect.Value) {
	t := v.Type()
	if t == rawJSONType {
		var buf bytes.Buffer
		d.toJSON(&buf, path, n)
		v.SetBytes(buf.Bytes())
		return
	}
	if n.Kind == yaml.AliasNode {
		d.setPos(path, n) // where the file writes the alias
		d.enterAlias(n)
		defer d.leaveAlias()
	}
	n, ok := d.follow(path, n)
	if !ok {
		return
	}
	d.setPos(path, n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		v.SetZero() // an explicit null means "the default"
		return
	}
	switch t {
	case secretType, durationType, syncType:
		s, ok := d.scalar(path, n)
		if !ok {
			return
		}
		switch t {
		case secretType:
			v.SetString(s)
		case durationType:
			dur, err := ParseDuration(s)
			if err != nil {
				d.errorf(n, path, "%v", err)
				return
			}
			v.Set(reflect.ValueOf(dur))
		case syncType:
			p, err := ParseSyncPolicy(s)
			if err != nil {
				d.errorf(n, path, "%v", err)
				return
			}
			v.Set(reflect.ValueOf(p))
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		d.decode(path, n, p.Elem())
		v.Set(p)
	case reflect.Struct:
		d.decodeStruct(path, n, v)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "must be a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(path+"["+strconv.Itoa(i)+"]", item, s.Index(i))
		}
		v.Set(s)
	case reflect.String:
		if s, ok := d.scalar(path, n); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		s, ok := d.scalar(path, n)
		if !ok {
			return
		}
		switch s {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			d.errorf(n, path, "must be true or false, got %q", s)
		}
	case reflect.Int, reflect.Int64:
		s, ok := d.scalar(path, n)
		if !ok {
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
		if err != nil {
			d.errorf(n, path, "must be a whole number, got %q", s)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		s, ok := d.scalar(path, n)
		if !ok {
			return
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			d.errorf(n, path, "must be a number, got %q", s)
			return
		}
		v.SetFloat(f)
	default:
		panic(fmt.Sprintf("config: no decoder for %s", t)) // programmer error
	}
}

func (d *decoder) decodeStruct(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "must be a mapping of keys to values, got %s", describe(n))
		return
	}
	t := v.Type()
	fields := make(map[string]int, t.NumField())
	var names []string
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = i
		names = append(names, tag)
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		if seen[k.Value] {
			d.errorf(k, p, "duplicate key")
			continue
		}
		seen[k.Value] = true
		idx, ok := fields[k.Value]
		if !ok {
			d.errorf(k, p, "unknown field%s", suggest(k.Value, names))
			continue
		}
		d.decode(p, val, v.Field(idx))
	}
}

// scalar returns the scalar text of n with ${VAR} expanded.
func (d *decoder) scalar(path string, n *yaml.Node) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "must be a single value, got %s", describe(n))
		return "", false
	}
	s, missing := expand(n.Value, d.lookup)
	for _, name := range missing {
		d.errorf(n, path, "environment variable %s is not set", name)
	}
	return s, len(missing) == 0
}

// toJSON writes n as JSON, expanding ${VAR} in strings. YAML scalars keep
// their YAML type: 1 is a number, "1" a string, true a boolean.
func (d *decoder) toJSON(buf *bytes.Buffer, path string, n *yaml.Node) {
	if n.Kind == yaml.AliasNode {
		d.setPos(path, n) // where the file writes the alias
		d.enterAlias(n)
		defer d.leaveAlias()
	}
	n, ok := d.follow(path, n)
	if !ok {
		buf.WriteString("null")
		return
	}
	if d.depth >= maxDepth {
		d.errorf(n, path, "nested more than %d levels deep (a recursive YAML alias?)", maxDepth)
		buf.WriteString("null")
		return
	}
	d.depth++
	defer func() { d.depth-- }()
	d.setPos(path, n)
	switch n.Kind {
	case yaml.MappingNode:
		buf.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				buf.WriteByte(',')
			}
			k := n.Content[i]
			key, _ := json.Marshal(k.Value)
			buf.Write(key)
			buf.WriteByte(':')
			d.toJSON(buf, join(path, k.Value), n.Content[i+1])
		}
		buf.WriteByte('}')
	case yaml.SequenceNode:
		buf.WriteByte('[')
		for i, item := range n.Content {
			if i > 0 {
				buf.WriteByte(',')
			}
			d.toJSON(buf, path+"["+strconv.Itoa(i)+"]", item)
		}
		buf.WriteByte(']')
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			buf.WriteString("null")
		case "!!bool":
			b, err := strconv.ParseBool(n.Value)
			if err != nil {
				d.errorf(n, path, "invalid boolean %q", n.Value)
			}
			buf.WriteString(strconv.FormatBool(b))
		case "!!int", "!!float":
			f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
			if err != nil || !json.Valid([]byte(n.Value)) {
				if err != nil {
					d.errorf(n, path, "number %q cannot be written as JSON", n.Value)
				} else {
					buf.WriteString(strconv.FormatFloat(f, 'f', -1, 64))
				}
				return
			}
			buf.WriteString(n.Value)
		default:
			s, missing := expand(n.Value, d.lookup)
			for _, name := range missing {
				d.errorf(n, path, "environment variable %s is not set", name)
			}
			b, _ := json.Marshal(s)
			buf.Write(b)
		}
	default:
		d.errorf(n, path, "unsupported YAML value")
	}
}

// expand replaces ${NAME} and ${NAME:-default}; "$$" stands for "$". It
// returns the names of unset variables that had no default.
func expand(s string, lookup func(string) (string, bool)) (string, []string) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	var missing []string
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
			continue
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				b.WriteByte(c)
				continue
			}
			expr := s[i+2 : i+2+end]
			name, def, hasDef := strings.Cut(expr, ":-")
			if val, ok := lookup(name); ok && (val != "" || !hasDef) {
				b.WriteString(val)
			} else if hasDef {
				b.WriteString(def)
			} else {
				missing = append(missing, name)
			}
			i += 2 + end
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), missing
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return strconv.Quote(n.Value)
	}
}

// suggest names the closest known key, or lists them all.
func suggest(key string, names []string) string {
	best, bestDist := "", 3
	for _, n := range names {
		if d := editDistance(key, n); d < bestDist {
			best, bestDist = n, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	return " (known fields: " + strings.Join(sorted, ", ") + ")"
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// readFile reads the configuration file, at most MaxFileBytes+1 bytes of
// it (Parse refuses a longer text), so that a huge file or a device is not
// read whole.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return b, nil
}

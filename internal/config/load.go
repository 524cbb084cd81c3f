package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is one problem in a configuration file.
type Error struct {
	File string
	Pos  Pos
	// Path is the field, e.g. "sources[0].write_key".
	Path string
	Msg  string
}

// Error formats as "file:line:col: path: message".
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	switch {
	case e.Pos.Line > 0 && e.Pos.Col > 0:
		fmt.Fprintf(&b, "%d:%d:", e.Pos.Line, e.Pos.Col)
	case e.Pos.Line > 0:
		fmt.Fprintf(&b, "%d:", e.Pos.Line)
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a configuration, in file order.
type Errors struct {
	File string
	List []*Error
}

func (es *Errors) add(p Pos, path, msg string) {
	es.List = append(es.List, &Error{File: es.File, Pos: p, Path: path, Msg: msg})
}

// Error joins the messages, one per line.
func (es *Errors) Error() string {
	lines := make([]string, len(es.List))
	for i, e := range es.List {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes the individual errors to errors.Is / errors.As.
func (es *Errors) Unwrap() []error {
	out := make([]error, len(es.List))
	for i, e := range es.List {
		out[i] = e
	}
	return out
}

func (es *Errors) err() error {
	if len(es.List) == 0 {
		return nil
	}
	sort.SliceStable(es.List, func(i, j int) bool {
		a, b := es.List[i].Pos, es.List[j].Pos
		return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col
	})
	return es
}

// Load reads, expands, defaults and validates the configuration file at path.
// Every problem is reported at once in an *Errors.
func Load(path string) (*Config, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, b, os.LookupEnv)
}

// MaxFileBytes is the size limit of a configuration file (4 MiB): real
// ones are a few kilobytes, and the limit bounds the time and memory that
// loading one can take.
const MaxFileBytes = 4 << 20

// Parse is Load for configuration text already in memory. lookup resolves
// ${VAR} references (os.LookupEnv in production).
func Parse(file string, text []byte, lookup func(string) (string, bool)) (*Config, error) {
	es := &Errors{File: file}
	if len(text) > MaxFileBytes {
		es.add(Pos{}, "", fmt.Sprintf("the file is larger than %d bytes (4 MiB), the limit for a configuration file", MaxFileBytes))
		return nil, es.err()
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(text, &doc); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		line := 0
		if _, err := fmt.Sscanf(msg, "line %d:", &line); err == nil {
			msg = strings.TrimSpace(msg[strings.IndexByte(msg, ':')+1:])
		}
		es.add(Pos{Line: line}, "", "invalid YAML: "+msg)
		return nil, es.err()
	}
	cfg := &Config{File: file, pos: map[string]Pos{}}
	if len(doc.Content) == 0 {
		es.add(Pos{}, "", "the file is empty")
		return nil, es.err()
	}
	d := &decoder{errs: es, pos: cfg.pos, lookup: lookup}
	d.decode("", doc.Content[0], reflect.ValueOf(cfg).Elem())
	if err := es.err(); err != nil {
		return nil, err
	}
	cfg.applyDefaults()
	cfg.validate(es)
	if err := es.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Pos returns where the field at path was written, or the closest enclosing
// field that was, so errors about missing fields still point somewhere.
func (c *Config) Pos(path string) Pos {
	for path != "" {
		if p, ok := c.pos[path]; ok {
			return p
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return Pos{}
}

// Errorf returns an *Error about the field at path, positioned in the file.
// Other packages use it to report problems they find in the configuration
// (a trigger that does not parse) the same way config does.
func (c *Config) Errorf(path, format string, args ...any) *Error {
	return &Error{File: c.File, Pos: c.Pos(path), Path: path, Msg: fmt.Sprintf(format, args...)}
}

// IsConfigError reports whether err is a configuration problem (exit code 2).
func IsConfigError(err error) bool {
	var e *Error
	var es *Errors
	return errors.As(err, &es) || errors.As(err, &e)
}

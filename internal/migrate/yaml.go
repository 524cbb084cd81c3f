package migrate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/capstan-gw/capstan/internal/config"
)

// fieldsIndent is the indentation of a field map's JSON lines: deeper than
// the mapping's keys, as YAML wants a flow mapping's lines to be.
const fieldsIndent = "          "

// write renders the translation as capstan's YAML.
// keepLayout keeps each mapping's JSON as the export writes it (only its
// indentation moves); otherwise mappings are re-indented.
func (t *translator) write(opt Options, keepLayout bool) []byte {
	var b bytes.Buffer
	from := "a Segment export"
	if opt.From != "" {
		from = "the Segment export " + opt.From
	}
	fmt.Fprintf(&b, "# capstan configuration written by `capstan migrate segment` from %s.\n", comment(from))
	b.WriteString("# Triggers and field maps are Segment's, unchanged; fields a Segment mapping\n")
	b.WriteString("# leaves out are null here, because capstan would otherwise fill in defaults.\n")
	if len(t.res.Placeholders) > 0 {
		names := make([]string, 0, len(t.res.Placeholders)+1)
		names = append(names, "CAPSTAN_SECRET_KEY")
		for _, p := range t.res.Placeholders {
			names = append(names, p.Env)
		}
		fmt.Fprintf(&b, "# Secrets were not copied: set %s before `capstan serve`.\n", strings.Join(names, ", "))
	}
	b.WriteString("server:\n")
	b.WriteString("  # encrypts the tokens capstan keeps at rest: `capstan secret-key new` makes one\n")
	b.WriteString("  secret_key: ${CAPSTAN_SECRET_KEY}\n")
	b.WriteString("sources:\n")
	for _, s := range t.sources {
		if s.comment != "" {
			fmt.Fprintf(&b, "  # %s\n", comment(s.comment))
		}
		fmt.Fprintf(&b, "  - name: %s\n", s.name)
		switch {
		case s.keyEnv != "":
			fmt.Fprintf(&b, "    write_key: ${%s}\n", s.keyEnv)
		case len(s.keys) == 1:
			fmt.Fprintf(&b, "    write_key: %s\n", str(s.keys[0]))
		default:
			fmt.Fprintf(&b, "    write_keys: %s\n", strList(s.keys))
		}
		if len(s.origins) > 0 {
			fmt.Fprintf(&b, "    allowed_origins: %s\n", strList(s.origins))
		}
		if s.disabled {
			b.WriteString("    disabled: true  # disabled in Segment\n")
		}
	}
	if len(t.dests) == 0 {
		b.WriteString("destinations: []\n")
		return b.Bytes()
	}
	b.WriteString("destinations:\n")
	for _, d := range t.dests {
		fmt.Fprintf(&b, "  # %s\n", comment(d.comment))
		fmt.Fprintf(&b, "  - name: %s\n", d.name)
		b.WriteString("    type: linkedin\n")
		if d.adAccount != 0 {
			fmt.Fprintf(&b, "    ad_account: %d\n", d.adAccount)
		}
		if len(d.sources) > 0 {
			fmt.Fprintf(&b, "    sources: %s\n", strList(d.sources))
		}
		if d.consent != nil {
			fmt.Fprintf(&b, "    consent_categories: %s\n", strList(*d.consent))
		}
		b.WriteString("    auth:\n")
		fmt.Fprintf(&b, "      access_token: ${%s}\n", d.accessEnv)
		b.WriteString("    mappings:\n")
		for _, m := range d.mappings {
			fmt.Fprintf(&b, "      # %s\n", comment(m.comment))
			fmt.Fprintf(&b, "      - name: %s\n", str(m.name))
			if m.disabled {
				b.WriteString("        disabled: true\n")
			}
			fmt.Fprintf(&b, "        trigger: %s\n", trigger(m.trigger))
			switch {
			case m.ruleID != 0:
				fmt.Fprintf(&b, "        conversion_rule: {id: %d}\n", m.ruleID)
			case m.create != nil:
				c := m.create
				fmt.Fprintf(&b, "        conversion_rule:\n          create: {name: %s, type: %s, attribution_type: %s, post_click_window_days: %d, view_through_window_days: %d}\n",
					str(c.Name), c.Type, c.AttributionType, c.PostClickWindowDays, c.ViewThroughWindowDays)
			}
			if len(m.campaigns) > 0 {
				parts := make([]string, len(m.campaigns))
				for i, c := range m.campaigns {
					parts[i] = strconv.FormatInt(c, 10)
				}
				fmt.Fprintf(&b, "        campaigns: [%s]\n", strings.Join(parts, ", "))
			}
			if len(m.nulls) > 0 {
				fmt.Fprintf(&b, "        # not in the Segment mapping, so not sent: %s\n", strings.Join(m.nulls, ", "))
			}
			b.WriteString("        fields: ")
			b.Write(fieldsText(m.raw, m.fields, m.nulls, keepLayout))
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// fieldsText is the export's mapping as a YAML flow mapping: its JSON,
// indented, with the default fields it leaves out added as null. String
// values are rewritten only where YAML or capstan's ${VAR} expansion would
// read them otherwise (a "$" before "{" or "$", a \u escape).
func fieldsText(raw, compact []byte, nulls []string, keepLayout bool) []byte {
	if keepLayout {
		if out, ok := relayout(raw, nulls); ok {
			return out
		}
	}
	var b bytes.Buffer
	b.Write(escapeStrings(compact))
	if len(nulls) > 0 {
		b.Truncate(b.Len() - 1) // the final }
		for i, n := range nulls {
			if i > 0 || b.Len() > 1 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%q:null", n)
		}
		b.WriteByte('}')
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b.Bytes(), fieldsIndent, "  "); err != nil {
		return b.Bytes() // compact JSON is valid YAML too
	}
	return out.Bytes()
}

// relayout is the export's mapping text moved to fieldsIndent, its lines
// otherwise as they were, with nulls added before its closing brace; false
// when its indentation has tabs (YAML allows none).
func relayout(raw []byte, nulls []string) ([]byte, bool) {
	lines := bytes.Split(escapeStrings(bytes.TrimSpace(raw)), []byte("\n"))
	indent := func(l []byte) int { return len(l) - len(bytes.TrimLeft(l, " ")) }
	least := -1
	for i, l := range lines {
		l = bytes.TrimRight(l, "\r")
		lines[i] = l
		if i == 0 || len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		if l[indent(l)] == '\t' {
			return nil, false
		}
		if least < 0 || indent(l) < least {
			least = indent(l)
		}
	}
	var b bytes.Buffer
	for i, l := range lines {
		if i > 0 {
			b.WriteByte('\n')
			if len(bytes.TrimSpace(l)) > 0 {
				b.WriteString(fieldsIndent)
				b.Write(l[least:])
			}
			continue
		}
		b.Write(l)
	}
	if len(nulls) == 0 {
		return b.Bytes(), true
	}
	out := b.Bytes()
	end := bytes.LastIndexByte(out, '}')
	head := bytes.TrimRight(out[:end], " \n")
	var nb bytes.Buffer
	nb.Write(head)
	empty := head[len(head)-1] == '{'
	multi := len(lines) > 1
	keyIndent, closeIndent := fieldsIndent+"  ", ""
	if multi {
		if len(bytes.TrimSpace(lines[1])) > 0 {
			keyIndent = fieldsIndent + strings.Repeat(" ", indent(lines[1])-least)
		}
		if last := lines[len(lines)-1]; bytes.Equal(bytes.TrimSpace(last), []byte("}")) {
			closeIndent = "\n" + fieldsIndent + strings.Repeat(" ", indent(last)-least)
		}
	}
	for i, n := range nulls {
		if !empty || i > 0 {
			nb.WriteByte(',')
		}
		switch {
		case multi:
			nb.WriteString("\n" + keyIndent)
		case !empty || i > 0:
			nb.WriteByte(' ')
		}
		fmt.Fprintf(&nb, "%q: null", n)
	}
	nb.WriteString(closeIndent)
	nb.Write(out[end:])
	return nb.Bytes(), true
}

// escapeStrings rewrites the string tokens of compact JSON that YAML or
// capstan's expansion would not read back as the same text.
func escapeStrings(compact []byte) []byte {
	var out bytes.Buffer
	for i := 0; i < len(compact); i++ {
		c := compact[i]
		if c != '"' {
			out.WriteByte(c)
			continue
		}
		j := i + 1
		for ; j < len(compact) && compact[j] != '"'; j++ {
			if compact[j] == '\\' {
				j++
			}
		}
		tok := compact[i : j+1]
		k := j + 1
		for k < len(compact) && strings.IndexByte(" \t\r\n", compact[k]) >= 0 {
			k++
		}
		isKey := k < len(compact) && compact[k] == ':'
		if bytes.Contains(tok, []byte(`\u`)) || !isKey && bytes.Contains(tok, []byte("$")) {
			var s string
			if json.Unmarshal(tok, &s) == nil {
				if !isKey && (strings.Contains(s, "${") || strings.Contains(s, "$$")) {
					s = strings.ReplaceAll(s, "$", "$$")
				}
				tok = jsonString(s)
			}
		}
		out.Write(tok)
		i = j
	}
	return out.Bytes()
}

// jsonString encodes s as a JSON string without HTML escaping.
func jsonString(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// str is s as a YAML double-quoted scalar that capstan reads back as s.
func str(s string) string {
	if strings.Contains(s, "${") || strings.Contains(s, "$$") {
		s = strings.ReplaceAll(s, "$", "$$")
	}
	return string(jsonString(s))
}

func strList(ss []string) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = str(s)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// trigger is a trigger as a YAML scalar: single-quoted, as capstan's docs
// write them, when that keeps every byte; double-quoted otherwise.
func trigger(s string) string {
	if strings.Contains(s, "${") || strings.Contains(s, "$$") {
		return str(s)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || r == '\u00a0' {
			return str(s)
		}
	}
	if s != strings.TrimSpace(s) {
		return str(s)
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// comment makes s safe for one YAML comment line.
func comment(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// verify loads the YAML with internal/config, every placeholder set, and
// checks that every trigger and field map reads back as in the export.
func (t *translator) verify(yml []byte) error {
	lookup := func(name string) (string, bool) {
		if name == "CAPSTAN_SECRET_KEY" {
			return "bWlncmF0ZS12ZXJpZnktMzItYnl0ZXMta2V5LS0tLS0=", true
		}
		if t.envs[name] {
			return "placeholder-" + strings.ToLower(name), true
		}
		return "", false
	}
	cfg, err := config.Parse("migrated.yaml", yml, lookup)
	if err != nil {
		return fmt.Errorf("migrate: the written configuration does not load (a bug; please report it with the export's shape): %w", err)
	}
	if err := cfg.RequireSecretKey(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if len(cfg.Destinations) != len(t.dests) {
		return fmt.Errorf("migrate: wrote %d destinations, read back %d", len(t.dests), len(cfg.Destinations))
	}
	for i, d := range t.dests {
		got := cfg.Destinations[i].Mappings
		if len(got) != len(d.mappings) {
			return fmt.Errorf("migrate: destination %s: wrote %d mappings, read back %d", d.name, len(d.mappings), len(got))
		}
		for j, m := range d.mappings {
			if got[j].Trigger != m.trigger {
				return fmt.Errorf("migrate: mapping %q: the trigger reads back as %q, not %q", m.name, got[j].Trigger, m.trigger)
			}
			want, err := tokens(withNulls(m.fields, m.nulls))
			if err != nil {
				return fmt.Errorf("migrate: mapping %q: %w", m.name, err)
			}
			have, err := tokens(got[j].Fields)
			if err != nil {
				return fmt.Errorf("migrate: mapping %q: read back: %w", m.name, err)
			}
			if !equalTokens(want, have) {
				return fmt.Errorf("migrate: mapping %q: the fields read back as %s, not as the export's %s", m.name, got[j].Fields, m.fields)
			}
		}
	}
	return nil
}

func withNulls(compact []byte, nulls []string) []byte {
	if len(nulls) == 0 {
		return compact
	}
	b := bytes.TrimSuffix(bytes.Clone(compact), []byte("}"))
	for _, n := range nulls {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, fmt.Sprintf("%q:null", n)...)
	}
	return append(b, '}')
}

// tokens is a JSON document as its token stream, numbers as their text.
func tokens(doc []byte) ([]any, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var out []any
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, tok)
	}
}

func equalTokens(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

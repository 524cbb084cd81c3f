package migrate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/linkedin"
	"github.com/capstan-gw/capstan/internal/mapping"
)

// Options tune [Segment].
type Options struct {
	// From names the export in the written file's first comment (its file
	// name); "" leaves the name out.
	From string
}

// Result is a translated export.
type Result struct {
	// YAML is capstan's configuration. It is written also when some of the
	// export could not be translated: those parts are left out.
	YAML []byte
	// Destinations and Mappings count what was translated.
	Destinations, Mappings int
	// Problems are the parts of the export left out, in document order.
	Problems []Problem
	// Placeholders are the environment variables the YAML reads instead of
	// secrets, in the order they appear in it.
	Placeholders []Placeholder
	// Notes are remarks a person should read (a disabled destination, a
	// source the export does not describe); nothing was left out for them.
	Notes []string
}

// Problem is a part of the export that capstan cannot take.
type Problem struct {
	// Path is the JSON path of the part in the export, such as
	// $.destinations[0].subscriptions[2].mapping.email['@liquid'].
	Path string
	// Name says what the part is: `destination "Facebook CAPI"`,
	// `subscription "Sign Up"`.
	Name string
	// Msg says why it was left out.
	Msg string
}

func (p Problem) String() string { return p.Path + ": " + p.Name + ": " + p.Msg }

// Placeholder is a secret the YAML reads from the environment.
type Placeholder struct {
	// Env is the variable's name, as written in the YAML (${Env}).
	Env string
	// What the value is: "the access token of destination linkedin".
	What string
	// Path is where the export held the value; "" when it had none.
	Path string
}

// SyntaxError is an export that is not JSON, or not shaped like a Segment
// export, at Line and Col (1-based; 0 when unknown).
type SyntaxError struct {
	Line, Col int
	Msg       string
}

func (e *SyntaxError) Error() string {
	if e.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg)
}

// The export's shape (segment-ingest.md §6). Both spellings are read where
// Segment's Public API and its app export differ: subscribe or trigger,
// mapping or settings, partnerAction or actionSlug, sources or sourceId.
type exportSource struct {
	ID             string   `json:"id"`
	Name           string   `json:"name"`
	Enabled        *bool    `json:"enabled"`
	WriteKeys      []string `json:"writeKeys"`
	AllowedOrigins []string `json:"allowedOrigins"`
}

type exportDest struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Type     string `json:"type"`
	Metadata *struct {
		Slug string `json:"slug"`
		Name string `json:"name"`
	} `json:"metadata"`
	Enabled           *bool                      `json:"enabled"`
	Sources           []string                   `json:"sources"`
	SourceID          string                     `json:"sourceId"`
	ConsentCategories *[]string                  `json:"consentCategories"`
	Settings          map[string]json.RawMessage `json:"settings"`
	Subscriptions     []exportSub                `json:"subscriptions"`
}

type exportSub struct {
	ID            string          `json:"id"`
	Name          string          `json:"name"`
	Enabled       *bool           `json:"enabled"`
	PartnerAction string          `json:"partnerAction"`
	ActionSlug    string          `json:"actionSlug"`
	Subscribe     *string         `json:"subscribe"`
	Trigger       *string         `json:"trigger"`
	Mapping       json.RawMessage `json:"mapping"`
	Settings      json.RawMessage `json:"settings"`
}

// linkedInTypes are the destination types (or catalog slugs) of Segment's
// LinkedIn Conversions API destination.
var linkedInTypes = []string{"linkedin-conversions", "actions-linkedin-conversions", "linkedin-conversions-api"}

// streamConversion is the one action capstan runs.
const streamConversion = "streamConversion"

// The translation, before it is written as YAML.
type outSource struct {
	name, comment string
	keys          []string // write keys; empty: keyEnv
	keyEnv        string
	origins       []string
	disabled      bool
}

type outDest struct {
	name, comment string
	adAccount     int64
	adFrom        string // the JSON path the ad account came from
	sources       []string
	consent       *[]string
	accessEnv     string // the access token's environment variable
	mappings      []outMapping
	disabled      bool
}

type outMapping struct {
	name, comment, trigger string
	disabled               bool
	ruleID                 int64
	create                 *config.RuleCreate
	campaigns              []int64
	nulls                  []string        // default fields the export's mapping leaves out
	fields                 json.RawMessage // the export's mapping, compact
	raw                    json.RawMessage // the export's mapping as written there
}

type translator struct {
	text    []byte
	res     *Result
	sources []outSource
	srcByID map[string]string // export source id -> capstan name
	dests   []outDest
	envs    map[string]bool
	names   map[string]bool // capstan names taken (sources, destinations)
	hasSrcs bool            // the export lists sources
}

// Segment translates a Segment destination export into capstan's YAML
// configuration. An export that is not JSON, or not an export, is a
// *SyntaxError; an export that is but holds nothing capstan can take is
// not an error: the Result then has Problems and may have no destination.
// The returned YAML always loads with internal/config once its
// placeholders are set; any other outcome is a bug reported as an error.
func Segment(export []byte, opt Options) (*Result, error) {
	t := &translator{text: export, res: &Result{}, srcByID: map[string]string{}, envs: map[string]bool{}, names: map[string]bool{}}
	var top map[string]json.RawMessage
	if err := t.decode(export, &top); err != nil {
		return nil, err
	}
	if top == nil {
		return nil, &SyntaxError{Line: 1, Col: 1, Msg: "the export is null, not a JSON object"}
	}
	var dests []exportDest
	var base string // JSON path of the destinations' list, or of the one destination
	switch {
	case top["destinations"] != nil:
		var doc struct {
			Sources      []exportSource `json:"sources"`
			Destinations []exportDest   `json:"destinations"`
		}
		if err := t.decode(export, &doc); err != nil {
			return nil, err
		}
		t.hasSrcs = top["sources"] != nil
		t.addSources(doc.Sources)
		dests, base = doc.Destinations, "$.destinations"
	case top["subscriptions"] != nil:
		var d exportDest
		if err := t.decode(export, &d); err != nil {
			return nil, err
		}
		dests, base = []exportDest{d}, "$"
	default:
		return nil, &SyntaxError{Line: 1, Col: 1, Msg: `not a Segment destination export: no "destinations" list and no "subscriptions" of a destination`}
	}
	if len(dests) == 0 {
		return nil, &SyntaxError{Line: 1, Col: 1, Msg: "the export has no destination"}
	}
	if len(t.sources) == 0 {
		t.placeholderSource()
	}
	for i, d := range dests {
		path := base
		if base != "$" {
			path = fmt.Sprintf("%s[%d]", base, i)
		}
		t.destination(path, d)
	}
	// The export's own layout of each mapping, or, should YAML not read
	// that back as written, the mappings re-indented.
	yml := t.write(opt, true)
	if err := t.verify(yml); err != nil {
		yml = t.write(opt, false)
		if err := t.verify(yml); err != nil {
			return nil, err
		}
	}
	t.res.YAML = yml
	return t.res, nil
}

// decode unmarshals text into v, turning JSON errors into *SyntaxError
// with the line and column of the export.
func (t *translator) decode(text []byte, v any) error {
	if len(bytes.TrimSpace(text)) == 0 {
		return &SyntaxError{Line: 1, Col: 1, Msg: "the export is empty"}
	}
	err := json.Unmarshal(text, v)
	if err == nil {
		return nil
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		line, col := position(t.text, se.Offset-1) // Offset counts the bad byte
		return &SyntaxError{Line: line, Col: col, Msg: "invalid JSON: " + se.Error()}
	case errors.As(err, &te):
		line, col := position(t.text, te.Offset-1) // Offset is just past the value
		field := te.Field
		if field == "" {
			field = "the export"
		}
		return &SyntaxError{Line: line, Col: col, Msg: fmt.Sprintf("%s: expected %s, got a JSON %s", field, jsonKind(te.Type.Kind().String()), te.Value)}
	}
	return &SyntaxError{Line: 1, Col: 1, Msg: "invalid JSON: " + err.Error()}
}

// jsonKind names a Go kind the way the export's author thinks of it.
func jsonKind(kind string) string {
	switch kind {
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "ptr":
		return "a value"
	}
	return "a " + kind
}

// position returns the 1-based line and column of byte offset off.
func position(text []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(text)))
	before := text[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

func (t *translator) problem(path, name, format string, args ...any) {
	t.res.Problems = append(t.res.Problems, Problem{Path: path, Name: name, Msg: fmt.Sprintf(format, args...)})
}

func (t *translator) note(format string, args ...any) {
	t.res.Notes = append(t.res.Notes, fmt.Sprintf(format, args...))
}

// env returns a placeholder variable for what, unique in the file.
func (t *translator) env(name, suffix, what, path string) string {
	base := strings.ToUpper(strings.NewReplacer("-", "_").Replace(name)) + "_" + suffix
	v := base
	for n := 2; t.envs[v]; n++ {
		v = fmt.Sprintf("%s_%d", base, n)
	}
	t.envs[v] = true
	t.res.Placeholders = append(t.res.Placeholders, Placeholder{Env: v, What: what, Path: path})
	return v
}

var nameClean = regexp.MustCompile(`[^a-z0-9_]+`)

// capstanName turns a Segment name into a capstan one (lower case letters,
// digits, '-' and '_', at most 63), unique in the file.
func (t *translator) capstanName(names []string, fallback string) string {
	base := ""
	for _, n := range names {
		if base = strings.Trim(nameClean.ReplaceAllString(strings.ToLower(n), "-"), "-_"); base != "" {
			break
		}
	}
	if base == "" {
		base = fallback
	}
	if len(base) > 60 {
		base = strings.TrimRight(base[:60], "-_")
	}
	name := base
	for n := 2; t.names[name]; n++ {
		name = fmt.Sprintf("%s-%d", base, n)
	}
	t.names[name] = true
	return name
}

func (t *translator) addSources(srcs []exportSource) {
	for i, s := range srcs {
		path := fmt.Sprintf("$.sources[%d]", i)
		o := outSource{name: t.capstanName([]string{s.Name, s.ID}, "source"), disabled: s.Enabled != nil && !*s.Enabled}
		o.comment = describe("Segment source", s.ID, s.Name)
		for j, k := range s.WriteKeys {
			if k = strings.TrimSpace(k); k != "" && !slices.Contains(o.keys, k) {
				o.keys = append(o.keys, k)
			} else if k == "" {
				t.note("%s.writeKeys[%d]: an empty write key was left out", path, j)
			}
		}
		if len(o.keys) == 0 {
			o.keyEnv = t.env(o.name, "WRITE_KEY", "the write key of source "+o.name, "")
			t.note("%s: source %q has no write key in the export: the YAML reads it from ${%s}", path, o.name, o.keyEnv)
		}
		o.origins = nil
		for j, origin := range s.AllowedOrigins {
			if origin != "*" && !validOrigin(origin) {
				t.problem(fmt.Sprintf("%s.allowedOrigins[%d]", path, j), fmt.Sprintf("source %q", o.name),
					"%q is not an origin (scheme and host, such as https://www.example.com): left out", origin)
				continue
			}
			o.origins = append(o.origins, origin)
		}
		for _, id := range []string{s.Name, s.ID} { // the id wins
			if id != "" {
				t.srcByID[id] = o.name
			}
		}
		t.sources = append(t.sources, o)
	}
}

var originRe = regexp.MustCompile(`^https?://[^/?#\s]+/?$`)

func validOrigin(o string) bool { return originRe.MatchString(o) }

// placeholderSource gives a file without sources the one source capstan
// needs, its write key from the environment.
func (t *translator) placeholderSource() {
	o := outSource{name: t.capstanName(nil, "website")}
	o.keyEnv = t.env(o.name, "WRITE_KEY", "the write key of source "+o.name, "")
	o.comment = "The export lists no source: set your Segment write key, which your clients send."
	t.note("the export lists no source: the YAML has source %q, its write key read from ${%s} (use the write key your Segment clients send)", o.name, o.keyEnv)
	t.sources = append(t.sources, o)
}

func describe(kind, id, name string) string {
	s := kind
	if id != "" {
		s += " " + id
	}
	if name != "" {
		s += " " + strconv.Quote(name)
	}
	return s
}

func (t *translator) destination(path string, d exportDest) {
	typ := d.Type
	if typ == "" && d.Metadata != nil {
		typ = d.Metadata.Slug
	}
	label := d.Name
	if label == "" {
		label = d.ID
	}
	what := fmt.Sprintf("destination %q", label)
	if !slices.Contains(linkedInTypes, typ) {
		if typ == "" {
			t.problem(path, what, "no type: only LinkedIn Conversions API destinations (type %q) can be migrated", linkedInTypes[0])
		} else {
			t.problem(path+".type", what, "type %q is not a LinkedIn Conversions API destination (%q): capstan has no such destination", typ, linkedInTypes[0])
		}
		return
	}
	o := outDest{comment: describe("Segment destination", d.ID, d.Name), consent: d.ConsentCategories,
		disabled: d.Enabled != nil && !*d.Enabled}
	nameHint := d.Name
	if nameHint == "" || strings.EqualFold(nameHint, "LinkedIn Conversions API") {
		nameHint = "linkedin"
	}
	mark := len(t.res.Placeholders)
	o.name = t.capstanName([]string{nameHint, d.ID}, "linkedin")
	t.settings(path+".settings", what, &o, d.Settings)
	srcs := d.Sources
	if d.SourceID != "" {
		srcs = append(srcs, d.SourceID)
	}
	for j, id := range srcs {
		switch name, ok := t.srcByID[id]; {
		case ok:
			if !slices.Contains(o.sources, name) {
				o.sources = append(o.sources, name)
			}
		case t.hasSrcs:
			t.note("%s.sources[%d]: source %q is not in the export's sources: destination %s is not limited to it", path, j, id, o.name)
		}
	}
	if o.consent == nil {
		empty := []string{}
		o.consent = &empty
		t.note("%s: destination %s has no consent categories in the export, so Segment sent it every event: consent_categories: [] does the same (capstan's default is [Advertising])", path, o.name)
	}
	mnames := map[string]bool{}
	for j, s := range d.Subscriptions {
		if m, ok := t.subscription(fmt.Sprintf("%s.subscriptions[%d]", path, j), s, &o, mnames); ok {
			o.mappings = append(o.mappings, m)
		}
	}
	if len(o.mappings) == 0 {
		t.problem(path+".subscriptions", what, "no subscription could be migrated, so the destination is left out")
		t.res.Placeholders = t.res.Placeholders[:mark]
		return
	}
	if o.disabled {
		t.note("%s: destination %s is disabled in Segment: its mappings are written with disabled: true; set disabled: false on each to start sending", path, o.name)
		for i := range o.mappings {
			o.mappings[i].disabled = true
		}
	}
	t.dests = append(t.dests, o)
	t.res.Destinations++
	t.res.Mappings += len(o.mappings)
}

// secretKey matches the names of settings that hold secrets.
var secretKey = regexp.MustCompile(`(?i)token|secret|password|api_?key|credential`)

// settings reads the destination's settings: OAuth credentials become
// placeholders; nothing secret is copied.
func (t *translator) settings(path, what string, o *outDest, settings map[string]json.RawMessage) {
	creds := map[string]string{} // access_token, refresh_token, client_id, client_secret -> JSON path
	keys := slices.Sorted(mapKeys(settings))
	for _, k := range keys {
		v := settings[k]
		kp := path + jsonPathKey(k)
		switch {
		case k == "oauth":
			var oauth map[string]json.RawMessage
			if json.Unmarshal(v, &oauth) != nil {
				t.problem(kp, what, "not an object: the OAuth settings were not read")
				continue
			}
			for _, ok := range slices.Sorted(mapKeys(oauth)) {
				if slot := credSlot(ok); slot != "" && string(oauth[ok]) != "null" && string(oauth[ok]) != `""` {
					creds[slot] = kp + jsonPathKey(ok)
				}
			}
		case credSlot(k) != "":
			if string(v) != "null" && string(v) != `""` {
				creds[credSlot(k)] = kp
			}
		case secretKey.MatchString(k):
			t.problem(kp, what, "a secret setting with no capstan equivalent: not copied")
		default:
			t.problem(kp, what, "setting %q has no capstan equivalent: left out", k)
		}
	}
	o.accessEnv = t.env(o.name, "ACCESS_TOKEN", "the LinkedIn access token of destination "+o.name, creds["access_token"])
	for _, slot := range []string{"refresh_token", "client_id", "client_secret"} {
		if p := creds[slot]; p != "" {
			t.note("%s: not copied, and not used: Segment's OAuth credentials work only with Segment's own LinkedIn app; "+
				"for token refresh, set auth.refresh_token, client_id and client_secret of your own LinkedIn app", p)
		}
	}
}

// credSlot names the credential a settings key holds, "" for none.
func credSlot(k string) string {
	switch strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(k)) {
	case "accesstoken":
		return "access_token"
	case "refreshtoken":
		return "refresh_token"
	case "clientid":
		return "client_id"
	case "clientsecret":
		return "client_secret"
	}
	return ""
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// jsonPathKey is the JSON path step to key k: .k, or ['k'] when k is not
// an identifier.
func jsonPathKey(k string) string {
	if identRe.MatchString(k) {
		return "." + k
	}
	return "['" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(k) + "']"
}

// pointerPath turns a JSON pointer (/a/0/b) into JSON path steps.
func pointerPath(ptr string) string {
	var b strings.Builder
	for _, seg := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		if seg == "" {
			continue
		}
		seg = strings.NewReplacer("~1", "/", "~0", "~").Replace(seg)
		if _, err := strconv.Atoi(seg); err == nil {
			b.WriteString("[" + seg + "]")
		} else {
			b.WriteString(jsonPathKey(seg))
		}
	}
	return b.String()
}

func (t *translator) subscription(path string, s exportSub, d *outDest, names map[string]bool) (outMapping, bool) {
	m := outMapping{name: strings.TrimSpace(s.Name), disabled: s.Enabled != nil && !*s.Enabled}
	if m.name == "" {
		m.name = s.ID
	}
	if m.name == "" {
		m.name = "Subscription " + path[strings.LastIndexByte(path, '[')+1:len(path)-1]
	}
	base := m.name
	for n := 2; names[m.name]; n++ {
		m.name = fmt.Sprintf("%s (%d)", base, n)
	}
	what := fmt.Sprintf("subscription %q", m.name)
	m.comment = describe("Segment subscription", s.ID, "")
	action, actionKey := s.PartnerAction, "partnerAction"
	if action == "" {
		action, actionKey = s.ActionSlug, "actionSlug"
	}
	if action != streamConversion {
		if action == "" {
			t.problem(path, what, "no partnerAction: capstan runs only the %q action (Stream Conversion Event)", streamConversion)
		} else {
			t.problem(path+"."+actionKey, what, "action %q is not supported: capstan runs only %q (Stream Conversion Event)", action, streamConversion)
		}
		return m, false
	}
	trigger, trigKey := s.Subscribe, "subscribe"
	if trigger == nil {
		trigger, trigKey = s.Trigger, "trigger"
	}
	if trigger == nil || strings.TrimSpace(*trigger) == "" {
		t.problem(path, what, "no trigger (subscribe): Segment requires one")
		return m, false
	}
	m.trigger = *trigger
	if _, err := mapping.ParseTrigger(m.trigger); err != nil {
		var te *mapping.TriggerError
		if errors.As(err, &te) {
			t.problem(path+"."+trigKey, what, "trigger column %d: %s", te.Column, te.Msg)
		} else {
			t.problem(path+"."+trigKey, what, "trigger: %v", err)
		}
		return m, false
	}
	raw, mapKey := s.Mapping, "mapping"
	if raw == nil {
		raw, mapKey = s.Settings, "settings"
	}
	mpath := path + "." + mapKey
	var compact bytes.Buffer
	if raw == nil || json.Compact(&compact, raw) != nil || compact.Len() == 0 || compact.Bytes()[0] != '{' {
		t.problem(mpath, what, "the mapping is missing or not a JSON object")
		return m, false
	}
	m.fields, m.raw = compact.Bytes(), raw
	if _, err := mapping.Compile(m.fields); err != nil {
		var ce *mapping.CompileError
		if !errors.As(err, &ce) {
			t.problem(mpath, what, "%v", err)
			return m, false
		}
		for _, is := range ce.Issues {
			t.problem(mpath+pointerPath(is.Location), what, "%s", is.Msg)
		}
		return m, false
	}
	var top map[string]any
	dec := json.NewDecoder(bytes.NewReader(m.fields))
	dec.UseNumber()
	if err := dec.Decode(&top); err != nil {
		t.problem(mpath, what, "%v", err)
		return m, false
	}
	for _, f := range linkedin.Fields() {
		if _, ok := top[f.Name]; !ok && f.Default != nil {
			m.nulls = append(m.nulls, f.Name)
		}
	}
	if !t.rule(mpath+".onMappingSave", what, top, d, &m) {
		return m, false
	}
	names[m.name] = true
	return m, true
}

var (
	accountURN  = regexp.MustCompile(`^(?:urn:li:sponsoredAccount:)?(\d+)$`)
	campaignURN = regexp.MustCompile(`^(?:urn:li:sponsoredCampaign:)?(\d+)$`)
	ruleURN     = regexp.MustCompile(`^(?:urn:(?:lla|li):llaPartnerConversion:)?(\d+)$`)
)

// rule reads the conversion rule, the ad account and the campaigns from
// the mapping's onMappingSave hook.
func (t *translator) rule(path, what string, top map[string]any, d *outDest, m *outMapping) bool {
	hook, _ := top[linkedin.FieldHook].(map[string]any)
	inputs, _ := hook["inputs"].(map[string]any)
	outputs, _ := hook["outputs"].(map[string]any)
	account := d.adAccount
	if acc, ok := scalar(inputs["adAccountId"]); ok && acc != "" {
		mm := accountURN.FindStringSubmatch(strings.TrimSpace(acc))
		n, err := strconv.ParseInt(safeGroup(mm), 10, 64)
		switch {
		case mm == nil || err != nil || n <= 0:
			t.problem(path+".inputs.adAccountId", what, "%q is not an ad account id or urn:li:sponsoredAccount URN", acc)
			return false
		case d.adAccount != 0 && d.adAccount != n:
			t.problem(path+".inputs.adAccountId", what, "ad account %d differs from %d (%s): a capstan destination sends to one ad account; move this subscription to a destination of its own", n, d.adAccount, d.adFrom)
			return false
		}
		account = n
	}
	for _, key := range []struct {
		obj     map[string]any
		name, p string
	}{
		{outputs, "id", path + ".outputs.id"}, {inputs, "conversionRuleId", path + ".inputs.conversionRuleId"},
	} {
		id, ok := scalar(key.obj[key.name])
		if !ok || strings.TrimSpace(id) == "" {
			continue
		}
		mm := ruleURN.FindStringSubmatch(strings.TrimSpace(id))
		n, err := strconv.ParseInt(safeGroup(mm), 10, 64)
		if mm == nil || err != nil || n <= 0 {
			t.problem(key.p, what, "%q is not a conversion rule id", id)
			return false
		}
		m.ruleID = n
		break
	}
	if m.ruleID == 0 {
		spec := inputs
		if spec == nil {
			spec = outputs
		}
		name, _ := scalar(spec["name"])
		typ, _ := scalar(spec["conversionType"])
		if name == "" || typ == "" {
			t.problem(path, what, "no conversion rule: the mapping has no onMappingSave.outputs.id, and no name and conversionType to create one with")
			return false
		}
		c := &config.RuleCreate{Name: name, Type: typ, AttributionType: "LAST_TOUCH_BY_CAMPAIGN", PostClickWindowDays: 30, ViewThroughWindowDays: 7}
		if a, _ := scalar(spec["attribution_type"]); a != "" {
			c.AttributionType = a
		}
		for _, w := range []struct {
			key string
			to  *int
		}{{"post_click_attribution_window_size", &c.PostClickWindowDays}, {"view_through_attribution_window_size", &c.ViewThroughWindowDays}} {
			if s, ok := scalar(spec[w.key]); ok && s != "" {
				n, err := strconv.Atoi(s)
				if err != nil {
					t.problem(path+".inputs."+w.key, what, "%q is not a number of days", s)
					return false
				}
				*w.to = n
			}
		}
		if !slices.Contains(config.RuleTypes, c.Type) {
			t.problem(path+".inputs.conversionType", what, "unknown conversion type %q", c.Type)
			return false
		}
		m.create = c
	}
	switch camps := inputs["campaignId"].(type) {
	case nil:
	case []any:
		for i, c := range camps {
			if !t.campaign(fmt.Sprintf("%s.inputs.campaignId[%d]", path, i), what, c, m) {
				return false
			}
		}
	default:
		if !t.campaign(path+".inputs.campaignId", what, camps, m) {
			return false
		}
	}
	if (m.create != nil || len(m.campaigns) > 0) && account == 0 {
		t.problem(path+".inputs.adAccountId", what, "no ad account: creating a conversion rule or associating campaigns needs one")
		return false
	}
	if account != d.adAccount {
		d.adAccount, d.adFrom = account, path+".inputs.adAccountId"
	}
	return true
}

func (t *translator) campaign(path, what string, v any, m *outMapping) bool {
	s, _ := scalar(v)
	mm := campaignURN.FindStringSubmatch(strings.TrimSpace(s))
	n, err := strconv.ParseInt(safeGroup(mm), 10, 64)
	if mm == nil || err != nil || n <= 0 {
		t.problem(path, what, "%q is not a campaign id or urn:li:sponsoredCampaign URN", s)
		return false
	}
	if !slices.Contains(m.campaigns, n) {
		m.campaigns = append(m.campaigns, n)
	}
	return true
}

func safeGroup(m []string) string {
	if len(m) < 2 {
		return ""
	}
	return m[1]
}

// scalar returns a string or number as text.
func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	}
	return "", false
}

package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/linkedin"
	"github.com/capstan-gw/capstan/internal/mapping"
)

// Outcome is what became of one event for one destination or mapping.
type Outcome string

// Outcomes, used as metric labels and in preview output.
const (
	Converted            Outcome = "converted"             // a valid conversion was built
	Invalid              Outcome = "invalid"               // the mapping's output failed validation
	NotMatched           Outcome = "not_matched"           // no trigger matched
	FilteredSource       Outcome = "filtered_source"       // the destination does not take this source
	FilteredIntegrations Outcome = "filtered_integrations" // the event's integrations object excludes the destination
	FilteredConsent      Outcome = "filtered_consent"      // consent for a required category is missing
)

// Plan is one destination's compiled mappings. It is immutable after
// construction except for rule ids (SetRuleID) and safe for concurrent use.
type Plan struct {
	// Name is the destination's name.
	Name string
	// DisplayName is looked up in an event's integrations object.
	DisplayName string
	// APIVersion is the LinkedIn-Version its requests carry ("" for the
	// default).
	APIVersion string
	// Routes are the mappings, in configuration order.
	Routes []*Route

	sources map[string]bool // nil: every source
	consent []string
	builder *linkedin.Builder
}

// Route is one mapping: a trigger, the field mapping and the rule it feeds.
type Route struct {
	// Name is the mapping's name.
	Name string
	// Rule is the conversion rule id ("" until a rule to create exists).
	Rule string
	// Create describes the rule to create when Rule is empty.
	Create *config.RuleCreate
	// Campaigns to associate with the rule.
	Campaigns []int64

	trigger *mapping.Trigger // nil: every event (preview --mapping)
	fields  *mapping.Mapping
	// removed are the fields the configuration set to null: neither a
	// default nor enrichment fills them.
	removed map[string]bool
}

// defaultFields is LinkedIn's default field mapping, compiled once.
var defaultFields = mapping.MustCompile(string(linkedin.DefaultMapping()))

// NewPlan compiles a configured destination. Problems are *config.Error
// values positioned in the configuration file; all are returned together.
func NewPlan(cfg *config.Config, index int) (*Plan, []error) {
	d := cfg.Destinations[index]
	p := &Plan{Name: d.Name, DisplayName: d.DisplayName, APIVersion: d.APIVersion, consent: d.ConsentCategories}
	if len(d.Sources) > 0 {
		p.sources = map[string]bool{}
		for _, s := range d.Sources {
			p.sources[s] = true
		}
	}
	var errs []error
	b, err := linkedin.NewBuilder(linkedin.BuilderConfig{})
	if err != nil {
		errs = append(errs, err)
	}
	p.builder = b
	for i, m := range d.Mappings {
		if m.Disabled {
			continue
		}
		path := fmt.Sprintf("destinations[%d].mappings[%d]", index, i)
		r := &Route{Name: m.Name, Create: m.ConversionRule.Create, Campaigns: m.Campaigns}
		if m.ConversionRule.ID != 0 {
			r.Rule = strconv.FormatInt(m.ConversionRule.ID, 10)
		}
		trig, err := mapping.ParseTrigger(m.Trigger)
		var te *mapping.TriggerError
		switch {
		case errors.As(err, &te):
			errs = append(errs, cfg.Errorf(path+".trigger", "column %d: %s", te.Column, te.Msg))
		case err != nil:
			errs = append(errs, cfg.Errorf(path+".trigger", "%v", err))
		}
		r.trigger = trig
		fields := defaultFields
		if len(m.Fields) > 0 && string(m.Fields) != "null" {
			own, err := mapping.Compile(m.Fields)
			if err != nil {
				errs = append(errs, fieldErrors(cfg, path+".fields", err)...)
				continue
			}
			if fields, err = own.WithDefaults(defaultFields); err != nil {
				errs = append(errs, cfg.Errorf(path+".fields", "%v", err))
				continue
			}
			r.removed = nullFields(m.Fields)
		}
		r.fields = fields
		p.Routes = append(p.Routes, r)
	}
	return p, errs
}

// fieldErrors positions each mapping-kit issue at its place in the file.
func fieldErrors(cfg *config.Config, base string, err error) []error {
	var ce *mapping.CompileError
	if !errors.As(err, &ce) {
		return []error{cfg.Errorf(base, "%v", err)}
	}
	var out []error
	for _, is := range ce.Issues {
		out = append(out, cfg.Errorf(base+pointerPath(is.Location), "%s", is.Msg))
	}
	return out
}

// pointerPath turns a JSON pointer (/a/0/b) into config's path syntax (.a[0].b).
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
			b.WriteString("." + seg)
		}
	}
	return b.String()
}

// nullFields returns the top-level keys of a field map whose value is null.
func nullFields(raw []byte) map[string]bool {
	var top map[string]json.RawMessage
	if json.Unmarshal(raw, &top) != nil {
		return nil
	}
	var out map[string]bool
	for k, v := range top {
		if string(v) == "null" {
			if out == nil {
				out = map[string]bool{}
			}
			out[k] = true
		}
	}
	return out
}

// NewSegmentPlan builds a one-mapping plan from a Segment-format mapping
// (preview --mapping, an imported Segment export): complete as given, no
// defaults. trigger may be "" to convert every event.
func NewSegmentPlan(name string, fields []byte, trigger, rule string) (*Plan, error) {
	m, err := mapping.Compile(fields)
	if err != nil {
		return nil, err
	}
	r := &Route{Name: name, Rule: rule, fields: m}
	if trigger != "" {
		if r.trigger, err = mapping.ParseTrigger(trigger); err != nil {
			return nil, err
		}
	}
	b, err := linkedin.NewBuilder(linkedin.BuilderConfig{})
	if err != nil {
		return nil, err
	}
	return &Plan{Name: name, DisplayName: config.DefaultDisplayName, Routes: []*Route{r}, builder: b}, nil
}

// Result is one event's fate for one mapping (or, for the filters, for the
// whole destination, with Route nil).
type Result struct {
	Route   *Route
	Outcome Outcome
	// Conversion is set for Converted.
	Conversion linkedin.Conversion
	// Batching is how the mapping wants the conversion sent.
	Batching linkedin.Batching
	// Err says why the event is Invalid (a *linkedin.ValidationError or a
	// *mapping.ApplyError).
	Err error
	// Enriched names the action fields that capstan filled in, and from where
	// ("linkedInUUID" → "context.page.url").
	Enriched map[string]string
}

// Enricher supplies identifiers the event itself lacks (the identity graph).
// It returns have with empty fields filled where it knows more; the event's
// own values always win. Errors are the enricher's to log: enrichment is best
// effort and never fails a conversion.
type Enricher interface {
	Enrich(ctx context.Context, ev event.Value, have identity.Captured) identity.Captured
}

// Convert runs ev through the plan. source is the event's source name; now
// is the clock used for the 90-day window; enr may be nil. have is what the
// caller already captured from the event (and its request's cookie); nil
// means capture from the event, only once a trigger matches.
func (p *Plan) Convert(ctx context.Context, ev event.Value, source string, now time.Time, enr Enricher, have *identity.Captured) []Result {
	switch {
	case p.sources != nil && !p.sources[source]:
		return []Result{{Outcome: FilteredSource}}
	case !p.integrationAllows(ev):
		return []Result{{Outcome: FilteredIntegrations}}
	case !identity.ConsentAllows(ev, p.consent):
		return []Result{{Outcome: FilteredConsent}}
	}
	var out []Result
	var captured *identity.Captured
	for _, r := range p.Routes {
		if r.trigger != nil && !r.trigger.Match(ev) {
			continue
		}
		if captured == nil {
			var c identity.Captured
			if have != nil {
				c = *have
			} else {
				c = identity.Capture(ev)
			}
			if enr != nil {
				c = enr.Enrich(ctx, ev, c)
			}
			captured = &c
		}
		out = append(out, p.convert(r, ev, *captured, now))
	}
	if len(out) == 0 {
		return []Result{{Outcome: NotMatched}}
	}
	return out
}

func (p *Plan) convert(r *Route, ev event.Value, c identity.Captured, now time.Time) Result {
	res := Result{Route: r}
	v, err := r.fields.Apply(ev)
	if err != nil {
		res.Outcome, res.Err = Invalid, err
		return res
	}
	fields, _ := v.Any().(map[string]any)
	if fields == nil {
		fields = map[string]any{}
	}
	if c.LiFatID != "" && blank(fields[linkedin.FieldLinkedInUUID]) && !r.removed[linkedin.FieldLinkedInUUID] {
		fields[linkedin.FieldLinkedInUUID] = c.LiFatID
		res.Enriched = map[string]string{linkedin.FieldLinkedInUUID: c.LiFatIDFrom}
	}
	if c.Email != "" && blank(fields[linkedin.FieldEmail]) && !r.removed[linkedin.FieldEmail] {
		fields[linkedin.FieldEmail] = c.Email
		if res.Enriched == nil {
			res.Enriched = map[string]string{}
		}
		res.Enriched[linkedin.FieldEmail] = c.EmailFrom
	}
	if res.Batching, err = linkedin.BatchingFrom(fields); err != nil {
		res.Outcome, res.Err = Invalid, err
		return res
	}
	conv, err := p.builder.Build(fields, r.Rule, now)
	if err != nil {
		res.Outcome, res.Err = Invalid, err
		return res
	}
	res.Outcome, res.Conversion = Converted, conv
	return res
}

func blank(v any) bool {
	s, ok := v.(string)
	return v == nil || ok && strings.TrimSpace(s) == ""
}

// integrationAllows applies segment-ingest.md §2.3.
func (p *Plan) integrationAllows(ev event.Value) bool {
	in := ev.Get("integrations")
	d := in.Get(p.DisplayName)
	if b, ok := d.Bool(); ok {
		return b
	}
	if d.Kind() == event.Object {
		return true
	}
	if b, ok := in.Get("All").Bool(); ok {
		return b
	}
	return true
}

// Item is a conversion ready to be sent, with how its mapping wants it sent.
type Item struct {
	Conversion linkedin.Conversion
	Batching   linkedin.Batching
}

// BuildRequests encodes items into LinkedIn requests: items of one rule whose
// mapping batches go into BATCH_CREATE requests of at most the mapping's batch
// size (§17.4), the others — and a rule's lone item — into single creates.
// Each request's Indices are positions in items. Requests come in the order
// of their first item.
func BuildRequests(rc linkedin.RequestConfig, items []Item) ([]linkedin.Request, error) {
	type key struct {
		rule string
		size int
	}
	var reqs []linkedin.Request
	single := func(i int) error {
		req, err := linkedin.NewSingleRequest(rc, &items[i].Conversion)
		if err != nil {
			return err
		}
		req.Indices = []int{i}
		reqs = append(reqs, req)
		return nil
	}
	groups := map[key][]int{}
	var order []key
	for i, it := range items {
		if !it.Batching.Enabled {
			order = append(order, key{size: -1 - i}) // its own group
			continue
		}
		k := key{it.Conversion.Conversion, linkedin.ClampBatchSize(it.Batching.Size)}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	for _, k := range order {
		pos := groups[k]
		if k.size < 0 || len(pos) == 1 {
			i := -1 - k.size
			if k.size >= 0 {
				i = pos[0]
			}
			if err := single(i); err != nil {
				return nil, err
			}
			continue
		}
		cs := make([]linkedin.Conversion, len(pos))
		for j, p := range pos {
			cs[j] = items[p].Conversion
		}
		batch, err := linkedin.NewBatchRequests(rc, cs, k.size)
		if err != nil {
			return nil, err
		}
		for _, req := range batch {
			for j, idx := range req.Indices {
				req.Indices[j] = pos[idx]
			}
			reqs = append(reqs, req)
		}
	}
	return reqs, nil
}

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
	// SkippedUnusable counts stored events that do not parse, for a
	// destination that does not take their source: acknowledged, not
	// dead-lettered.
	SkippedUnusable Outcome = "skipped_unusable"
	Suppressed      Outcome = "suppressed" // the person was deleted on request (privacy suppression)
)

// Plan is one destination's compiled mappings and its Format. It is
// immutable after construction except for Route.Rule (set while preparing,
// before delivery starts) and safe for concurrent use.
type Plan struct {
	// Name is the destination's name.
	Name string
	// DisplayName is looked up in an event's integrations object.
	DisplayName string
	// Routes are the mappings, in configuration order.
	Routes []*Route
	// Format builds the destination's payloads and requests.
	Format Format

	sources map[string]bool // nil: every source
	consent []string
}

// Route is one mapping: a trigger, the field mapping and what it feeds.
type Route struct {
	// Name is the mapping's name.
	Name string
	// Rule is the destination's id of what the mapping feeds (LinkedIn:
	// the conversion rule id); "" until one is known.
	Rule string
	// Config is the mapping as configured (nil for a Segment-format
	// mapping): adapters read their own settings from it.
	Config *config.Mapping

	trigger *mapping.Trigger // nil: every event (preview --mapping)
	fields  *mapping.Mapping
	// removed are the fields the configuration set to null: neither a
	// default nor enrichment fills them.
	removed map[string]bool
	// strict turns enrichment off (enrich: false): the Format gets no
	// identifiers besides what the fields map yields.
	strict bool
}

// Enriches reports whether the route's conversions get identifiers the
// mapping did not yield (the event's li_fat_id sources, the capstan_lfi
// cookie, the identity graph; linkedin-capi.md §15.2). A configured
// mapping's enrich: false turns it off.
func (r *Route) Enriches() bool { return !r.strict }

// Removed reports whether the mapping's configuration removed field (set it
// to null): no default and no enrichment may fill it.
func (r *Route) Removed(field string) bool { return r.removed[field] }

// NewPlan compiles configured destination index, whose payloads f builds.
// Problems are *config.Error values positioned in the configuration file;
// all are returned together.
func NewPlan(cfg *config.Config, index int, f Format) (*Plan, []error) {
	d := cfg.Destinations[index]
	p := &Plan{Name: d.Name, DisplayName: d.DisplayName, Format: f, consent: d.ConsentCategories}
	if len(d.Sources) > 0 {
		p.sources = map[string]bool{}
		for _, s := range d.Sources {
			p.sources[s] = true
		}
	}
	var errs []error
	var defaults *mapping.Mapping
	if def := f.DefaultFields(); def != nil {
		var err error
		if defaults, err = mapping.Compile(def); err != nil {
			return nil, []error{fmt.Errorf("destination %s: default fields: %w", d.Name, err)}
		}
	}
	for i := range d.Mappings {
		m := &d.Mappings[i]
		if m.Disabled {
			continue
		}
		path := fmt.Sprintf("destinations[%d].mappings[%d]", index, i)
		r := &Route{Name: m.Name, Config: m, strict: !m.Enriches(d)}
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
		fields := defaults
		if len(m.Fields) > 0 && string(m.Fields) != "null" {
			own, err := mapping.Compile(m.Fields)
			if err != nil {
				errs = append(errs, fieldErrors(cfg, path+".fields", err)...)
				continue
			}
			fields = own
			if defaults != nil {
				if fields, err = own.WithDefaults(defaults); err != nil {
					errs = append(errs, cfg.Errorf(path+".fields", "%v", err))
					continue
				}
			}
			r.removed = nullFields(m.Fields)
		}
		if fields == nil {
			errs = append(errs, cfg.Errorf(path+".fields", "required: the destination type has no default fields"))
			continue
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
func NewSegmentPlan(name string, fields []byte, trigger, rule string, f Format) (*Plan, error) {
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
	return &Plan{Name: name, DisplayName: config.DefaultDisplayName, Routes: []*Route{r}, Format: f}, nil
}

// Result is one event's fate for one mapping (or, for the filters, for the
// whole destination, with Route nil).
type Result struct {
	Route   *Route
	Outcome Outcome
	// Payload is set for Converted; its Enriched also for Invalid.
	Payload Payload
	// Err says why the event is Invalid (a Problem from the Format, or a
	// *mapping.ApplyError).
	Err error
}

// Enricher supplies identifiers the event itself lacks (the identity graph).
// It returns have with empty fields filled where it knows more; the event's
// own values always win. source is the event's source: the graph uses what
// that source's own unverified browser events taught it, and of other
// sources only their trusted links (identity/trust.go). Errors are the
// enricher's to log: enrichment is best effort and never fails a conversion.
// ev is valid only during the call (as for Graph).
type Enricher interface {
	Enrich(ctx context.Context, ev event.Value, source string, have identity.Captured) identity.Captured
}

// Convert runs ev through the plan. source is the event's source name; now
// is the clock used for the destination's window; enr may be nil. have is
// what the caller already captured from the event (and its request's
// cookie); nil means capture from the event, only once a trigger matches.
// A route that does not enrich (Route.Enriches) gets none of them, and
// the graph is not asked for it.
func (p *Plan) Convert(ctx context.Context, ev event.Value, source string, now time.Time, enr Enricher, have *identity.Captured) []Result {
	return p.appendConvert(ctx, nil, ev, source, now, enr, have, nil)
}

// appendConvert is Convert appending the results to dst (the runner reuses
// one slice for the events it converts in turn). A non-nil s is where the
// mappings' outputs are built (mapping.ApplyScratch: the Format reads each
// during Build, the next overwrites it); nil allocates them.
func (p *Plan) appendConvert(ctx context.Context, dst []Result, ev event.Value, source string, now time.Time, enr Enricher, have *identity.Captured, s *mapping.Scratch) []Result {
	switch {
	case !p.TakesSource(source):
		return append(dst, Result{Outcome: FilteredSource})
	case !p.integrationAllows(ev):
		return append(dst, Result{Outcome: FilteredIntegrations})
	case !identity.ConsentAllows(ev, p.consent):
		return append(dst, Result{Outcome: FilteredConsent})
	}
	out := dst
	var captured identity.Captured
	capturedOK := false // captured is set (not a pointer: it would escape)
	for _, r := range p.Routes {
		if r.trigger != nil && !r.trigger.Match(ev) {
			continue
		}
		if r.strict {
			// enrich: false: strict Segment behaviour, only the fields map.
			out = append(out, p.convert(r, ev, identity.Captured{}, now, s))
			continue
		}
		if !capturedOK {
			if have != nil {
				captured = *have
			} else {
				captured = identity.Capture(ev)
			}
			if enr != nil {
				captured = enr.Enrich(ctx, ev, source, captured)
			}
			capturedOK = true
		}
		out = append(out, p.convert(r, ev, captured, now, s))
	}
	if len(out) == len(dst) {
		return append(dst, Result{Outcome: NotMatched})
	}
	return out
}

func (p *Plan) convert(r *Route, ev event.Value, c identity.Captured, now time.Time, s *mapping.Scratch) Result {
	res := Result{Route: r}
	var v event.Value
	var err error
	if s != nil {
		v, err = r.fields.ApplyScratch(ev, s)
	} else {
		v, err = r.fields.Apply(ev)
	}
	if err != nil {
		res.Outcome, res.Err = Invalid, err
		return res
	}
	res.Payload, err = p.Format.Build(r, v, c, now)
	if err != nil {
		res.Outcome, res.Err = Invalid, err
		return res
	}
	res.Outcome = Converted
	return res
}

// TakesSource reports whether the destination takes events of the source
// named source (a destination with no sources configured takes all).
func (p *Plan) TakesSource(source string) bool {
	return p.sources == nil || p.sources[source]
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

package main

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/ingest"
)

// reloader applies a SIGHUP: it reads the configuration file again and
// applies what can change while running: the sources, each destination's
// mappings, consent categories and display name (delivery.Runner.SetPlan),
// and the TLS certificate from its files. Everything else is reported as
// needing a restart. It is used by one goroutine only.
type reloader struct {
	path  string         // the configuration file; "": none (capstan demo)
	cur   *config.Config // the configuration in force
	ing   *ingest.Handler
	dests []*destination // configuration order, as started
	certs *certReloader  // nil: no certificate files
	log   *slog.Logger
}

// prepareTimeout bounds a reload's preparation of new mappings (a new
// conversion rule is created at LinkedIn before its mapping applies).
const prepareTimeout = 30 * time.Second

// reload handles one SIGHUP. A configuration that does not load or
// validate is logged and the one in force stays; a destination whose new
// mappings cannot be prepared keeps its mappings in force, and the others
// apply.
func (r *reloader) reload(ctx context.Context) {
	certOK := r.certs != nil && r.certs.Reload() == nil // logged; the old certificate stays
	if r.path == "" {
		r.log.Warn("SIGHUP: no configuration file to reload")
		return
	}
	next, err := r.load()
	if err != nil {
		r.log.Error("configuration not reloaded; the previous one stays in force", "file", r.path, "error", err)
		return
	}
	added, removed, changed := diffSources(r.cur.Sources, next.Sources)
	if err := r.ing.SetSources(next); err != nil {
		r.log.Error("configuration not reloaded; the previous one stays in force", "file", r.path, "error", err)
		return
	}
	applied := []string{"sources"}
	if certOK {
		applied = append(applied, "tls certificate")
	}
	// The sources are now next's, and the live settings of each destination
	// whose mappings applied; every other setting stays as started, so that
	// the next SIGHUP still reports it as needing a restart.
	kept := *r.cur
	kept.Sources = next.Sources
	kept.Destinations = slices.Clone(r.cur.Destinations)
	for i, d := range kept.Destinations {
		j := slices.IndexFunc(next.Destinations, func(n config.Destination) bool { return n.Name == d.Name })
		if j < 0 || liveEqual(d, next.Destinations[j]) {
			continue
		}
		live := withLive(d, next.Destinations[j])
		if err := r.setPlan(ctx, next, j, live); err != nil {
			r.log.Error("mappings not reloaded; the ones in force stay", "destination", d.Name, "error", err)
			continue
		}
		kept.Destinations[i] = live
		applied = append(applied, "destinations["+d.Name+"].mappings")
	}
	r.log.Info("reloaded", "file", r.path, "applied", strings.Join(applied, ","),
		"sources", len(next.Sources), "sources_added", added, "sources_removed", removed, "sources_changed", changed)
	if rs := needRestart(&kept, next); len(rs) > 0 {
		r.log.Warn("changed settings need a restart to apply", "settings", strings.Join(rs, ","))
	}
	r.cur = &kept
}

// setPlan compiles live (next's destination j with the settings that need
// a restart kept as started) and installs it in that destination's runner.
func (r *reloader) setPlan(ctx context.Context, next *config.Config, j int, live config.Destination) error {
	i := slices.IndexFunc(r.dests, func(d *destination) bool { return d.Name() == live.Name })
	if i < 0 {
		return errors.New("the destination is not running")
	}
	run := r.dests[i].runner
	c := *next
	c.Destinations = slices.Clone(next.Destinations)
	c.Destinations[j] = live
	p, errs := delivery.NewPlan(&c, j, run.Plan().Format)
	if len(errs) > 0 {
		return errors.Join(errs...) // load validated next: not expected
	}
	ctx, cancel := context.WithTimeout(ctx, prepareTimeout)
	defer cancel()
	old := run.Plan()
	if err := run.SetPlan(ctx, p); err != nil {
		return err
	}
	add, del, chg := diffMappings(old, p)
	r.log.Info("mappings reloaded", "destination", live.Name,
		"mappings_added", add, "mappings_removed", del, "mappings_changed", chg)
	return nil
}

// liveEqual says whether a and b agree on every setting a reload applies
// live: mappings, consent categories and display name.
func liveEqual(a, b config.Destination) bool {
	return reflect.DeepEqual(withLive(a, b), a)
}

// withLive returns d with the live settings of n.
func withLive(d, n config.Destination) config.Destination {
	d.Mappings = n.Mappings
	d.ConsentCategories = n.ConsentCategories
	d.DisplayName = n.DisplayName
	return d
}

// diffMappings names the mappings only in b, only in a, and in both but
// configured differently.
func diffMappings(a, b *delivery.Plan) (added, removed, changed []string) {
	old := map[string]*delivery.Route{}
	for _, rt := range a.Routes {
		old[rt.Name] = rt
	}
	for _, rt := range b.Routes {
		o, ok := old[rt.Name]
		switch {
		case !ok:
			added = append(added, rt.Name)
		case !reflect.DeepEqual(o.Config, rt.Config):
			changed = append(changed, rt.Name)
		}
		delete(old, rt.Name)
	}
	for _, rt := range a.Routes {
		if _, ok := old[rt.Name]; ok {
			removed = append(removed, rt.Name)
		}
	}
	return added, removed, changed
}

// load reads and validates the file as serve does at start.
func (r *reloader) load() (*config.Config, error) {
	cfg, err := config.Load(r.path)
	if err != nil {
		return nil, err
	}
	if err := cfg.RequireSecretKey(); err != nil {
		return nil, err
	}
	if _, err := compilePlans(cfg, ""); err != nil {
		return nil, err
	}
	return cfg, nil
}

// diffSources names the sources only in b, only in a, and in both but
// configured differently.
func diffSources(a, b []config.Source) (added, removed, changed []string) {
	old := map[string]config.Source{}
	for _, s := range a {
		old[s.Name] = s
	}
	for _, s := range b {
		o, ok := old[s.Name]
		switch {
		case !ok:
			added = append(added, s.Name)
		case !reflect.DeepEqual(o, s):
			changed = append(changed, s.Name)
		}
		delete(old, s.Name)
	}
	for _, s := range a {
		if _, ok := old[s.Name]; ok {
			removed = append(removed, s.Name)
		}
	}
	return added, removed, changed
}

// needRestart lists the settings that differ between a and b and apply
// only at start: everything but sources. A destination added or removed
// is named "destinations[NAME]"; a changed one by its changed fields.
func needRestart(a, b *config.Config) []string {
	var out []string
	out = append(out, changedFields("server", a.Server, b.Server)...)
	out = append(out, changedFields("engine", a.Engine, b.Engine)...)
	out = append(out, changedFields("identity", a.Identity, b.Identity)...)
	out = append(out, changedFields("privacy", a.Privacy, b.Privacy)...)
	old := map[string]config.Destination{}
	for _, d := range a.Destinations {
		old[d.Name] = d
	}
	for _, d := range b.Destinations {
		o, ok := old[d.Name]
		if !ok {
			out = append(out, "destinations["+d.Name+"]")
			continue
		}
		delete(old, d.Name)
		out = append(out, changedFields("destinations["+d.Name+"]", o, d)...)
	}
	for _, d := range a.Destinations {
		if _, ok := old[d.Name]; ok {
			out = append(out, "destinations["+d.Name+"]")
		}
	}
	return out
}

// changedFields names, by YAML key under prefix, the fields of structs a
// and b (of one type) that differ. Values are never logged, only names.
func changedFields(prefix string, a, b any) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var out []string
	for i := range va.NumField() {
		f := va.Type().Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if key == "" || key == "-" {
			continue
		}
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			out = append(out, prefix+"."+key)
		}
	}
	return out
}

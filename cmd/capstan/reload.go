package main

import (
	"log/slog"
	"reflect"
	"strings"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/ingest"
)

// reloader applies a SIGHUP: it reads the configuration file again and
// applies what can change while running (the sources, the TLS
// certificate from its files). It is used by one goroutine only.
type reloader struct {
	path  string         // the configuration file; "": none (capstan demo)
	cur   *config.Config // the configuration in force
	ing   *ingest.Handler
	certs *certReloader // nil: no certificate files
	log   *slog.Logger
}

// reload handles one SIGHUP. A configuration that does not load or
// validate is logged and the one in force stays.
func (r *reloader) reload() {
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
	r.log.Info("reloaded", "file", r.path, "applied", strings.Join(applied, ","),
		"sources", len(next.Sources), "sources_added", added, "sources_removed", removed, "sources_changed", changed)
	if rs := needRestart(r.cur, next); len(rs) > 0 {
		r.log.Warn("changed settings need a restart to apply", "settings", strings.Join(rs, ","))
	}
	// The sources are now next's; every other section stays as started, so
	// that the next SIGHUP still reports them as needing a restart.
	kept := *r.cur
	kept.Sources = next.Sources
	r.cur = &kept
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

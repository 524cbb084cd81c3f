package identity

import (
	"maps"
	"slices"
)

// Trust: who may use what a link taught the graph.
//
// Any web page's visitor can read a browser source's write key and send,
// with curl, an identify that links a stranger's userId to an email and an
// li_fat_id of their choosing. If that link enriched the conversions of a
// server source (a "Sign Up" sent by the back end for that userId), the
// stranger's conversion would reach LinkedIn with the attacker's
// identifiers. So each observation says which source sent it and whether
// it is trusted (Observation): a server source's event, or a browser
// source's event whose userId the site's back end signed (identity
// verification, decided by ingest and stored with the event).
//
// A trusted event writes the profile's own fields (the trusted part). An
// untrusted event that names a userId writes everything it teaches, on the
// user's and on the anonymous id's profile, links included, into the part
// of each profile kept for its source (record.Scoped[source]). An
// untrusted event without a userId (a browser's anonymous page view with
// its click id) writes the trusted part of its anonymous id's profile: an
// anonymous id is a random id kept in the visitor's browser, it names no
// user, and it reaches a user only through a trusted link.
//
// Enrich for a conversion of source S reads the trusted part of each
// profile with S's own part merged in (view): S's unverified links still
// serve S's conversions, never another source's.
//
// Profiles written before trust existed have only the trusted part: they
// stay trusted, as the graph was built under the earlier rules (an
// operator who fears earlier poisoning deletes the bucket; the graph is
// rebuilt from new events).

// scope returns the part of the profiles that o writes: "" (the trusted
// part) for a trusted event and for one without a userId, else o's
// source. ok is false for an untrusted event without a source, which the
// graph ignores.
func (o *Observation) scope(id ids) (sc string, ok bool) {
	if o.Trusted || id.user == "" {
		return "", true
	}
	return o.Source, o.Source != ""
}

// partOf returns the part of r that scope sc reads and writes: r itself
// for "", else r.Scoped[sc], or an empty record when r has none.
func partOf(r *record, sc string) *record {
	if sc == "" {
		return r
	}
	if p := r.Scoped[sc]; p != nil {
		return p
	}
	return &record{}
}

// in adapts fn, which changes one part of a profile, to Graph.update: for
// scope "" fn gets the profile itself, for a source its part, created when
// fn changes it.
func in(sc string, fn func(r *record) bool) func(r *record) bool {
	if sc == "" {
		return fn
	}
	return func(r *record) bool {
		var p record
		if old := r.Scoped[sc]; old != nil {
			p = old.clone()
		}
		if !fn(&p) {
			return false
		}
		if r.Scoped == nil {
			r.Scoped = map[string]*record{}
		}
		r.Scoped[sc] = &p
		return true
	}
}

// valuesFor returns the identifiers of r that scope sc may use: the
// trusted ones, with the newer of sc's own merged in.
func valuesFor(r *record, sc string) values {
	if sc == "" || r.Scoped[sc] == nil {
		return valuesOf(r)
	}
	return valuesOf(view(r, sc))
}

// view returns r as the conversions of source src see it: the trusted
// part, with src's own part merged in (the newer identifier wins; src's
// links follow the trusted ones; a trusted alias wins).
func view(r *record, src string) *record {
	p := r.Scoped[src]
	if src == "" || p == nil {
		return r
	}
	out := r.clone()
	out.Scoped = nil
	own := valuesOf(p)
	own.apply(&out, 0)
	for _, l := range p.Links {
		if !slices.Contains(out.Links, l) {
			out.Links = append(out.Links, l)
		}
	}
	if out.AliasOf == "" {
		out.AliasOf = p.AliasOf
	}
	return &out
}

// parts returns the trusted part of r and each source's part, in the order
// of the sources' names: every link and alias the profile holds.
func (r *record) parts() []*record {
	out := []*record{r}
	for _, src := range slices.Sorted(maps.Keys(r.Scoped)) {
		out = append(out, r.Scoped[src])
	}
	return out
}

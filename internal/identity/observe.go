package identity

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/capstan-gw/capstan/internal/event"
)

const (
	// maxGroups caps the groupIds kept per profile (the oldest go first).
	maxGroups = 32
	// pruneBatch is how many of a full profile's oldest links are checked
	// for expiry before it refuses a new link.
	pruneBatch = 10
)

// ids are the identifiers of one event, with the keys of their profiles.
type ids struct {
	typ      string
	user     string
	anon     string
	previous string // alias
	uk, ak   string // UserKey(user), AnonymousKey(anon); "" without the id
}

// Keys are what the graph reads of an event to find its profiles: its
// type, userId, anonymousId and previousId, and the profile keys of the
// first two (a SHA-256 and an allocation each). KeysOf computes them once
// per event, for both ObserveAll (Observation.Keys) and EnrichKeys, instead
// of once in each. The zero Keys is "not computed".
type Keys struct {
	id  ids
	set bool
}

// KeysOf returns the Keys of ev.
func KeysOf(ev event.Value) Keys { return Keys{id: eventIDs(ev), set: true} }

// Set reports whether k was computed by KeysOf (the zero Keys is not).
func (k Keys) Set() bool { return k.set }

func eventIDs(ev event.Value) ids {
	typ, _ := ev.Get("type").Str()
	id := ids{
		typ:      typ,
		user:     idString(ev.Get("userId")),
		anon:     idString(ev.Get("anonymousId")),
		previous: idString(ev.Get("previousId")),
	}
	if id.user != "" {
		id.uk = UserKey(id.user)
	}
	if id.anon != "" {
		id.ak = AnonymousKey(id.anon)
	}
	return id
}

// idString returns a string or number id, trimmed; "" for anything else.
func idString(v event.Value) string {
	if s, ok := v.Str(); ok {
		return strings.TrimSpace(s)
	}
	if n, ok := v.Number(); ok {
		return string(n)
	}
	return ""
}

// eventTime is when the event happened (Unix ms): its corrected timestamp,
// else originalTimestamp, else receivedAt, else now.
func eventTime(ev event.Value, now time.Time) int64 {
	for _, f := range [...]string{"timestamp", "originalTimestamp", "receivedAt"} {
		if s, ok := ev.Get(f).Str(); ok {
			if t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s)); err == nil {
				return t.UnixMilli()
			}
		}
	}
	return now.UnixMilli()
}

// values are identifiers to merge into a profile, from an event or from
// another profile.
type values struct {
	lfi     string
	lfiAt   int64
	email   string // SHA-256
	emailAt int64
	groups  []string
}

func valuesOf(r *record) values {
	return values{lfi: r.LiFatID, lfiAt: r.LiFatAt, email: r.Email, emailAt: r.EmailAt, groups: r.Groups}
}

// apply merges v into r and reports whether r changed. For each identifier
// the newest capture wins (ties: the greater value, so that the result does
// not depend on the order of observation); re-capturing the stored value
// only moves its time forward when it moved by slack or more, so that a
// repeated page view does not write.
func (v *values) apply(r *record, slack int64) bool {
	ch := mergeNewest(&r.LiFatID, &r.LiFatAt, v.lfi, v.lfiAt, slack)
	ch = mergeNewest(&r.Email, &r.EmailAt, v.email, v.emailAt, slack) || ch
	for _, gid := range v.groups {
		if slices.Contains(r.Groups, gid) {
			continue
		}
		r.Groups = append(r.Groups, gid)
		if len(r.Groups) > maxGroups {
			r.Groups = slices.Delete(r.Groups, 0, len(r.Groups)-maxGroups)
		}
		ch = true
	}
	return ch
}

// adds reports whether applying v would change r.
func (v *values) adds(r *record, slack int64) bool {
	c := r.clone()
	return v.apply(&c, slack)
}

func mergeNewest(cur *string, at *int64, v string, vAt int64, slack int64) bool {
	switch {
	case v == "":
		return false
	case *cur == "":
	case v == *cur:
		if vAt-*at < slack {
			return false
		}
	case vAt < *at || vAt == *at && v < *cur:
		return false
	}
	*cur, *at = v, vAt
	return true
}

// Observe records what ev says about its user: it links anonymousId and
// userId (identify, and any event carrying both), merges an alias's
// previousId into its userId, keeps a group's groupId, and records c's
// li_fat_id and the SHA-256 of c's email, each with the event's time (the
// newest wins). Profiles it touches that are older than Config.Refresh are
// rewritten, which restarts their TTL.
//
// Call it once per event before conversion, and only for events whose
// consent allows the destination (delivery's consent check): an event whose
// context.consent.categoryPreferences denies a required category must not
// reach the graph. Observing the same event again changes nothing, so
// several destinations may observe the same event, and redelivery is safe.
//
// In the common case (an event whose ids are known and that carries nothing
// new) it costs one read per id and no write, and no read when the ids were
// met in the last few seconds (the memo).
//
// Observe takes ev for a trusted event (a server source's, trust.go):
// what it links serves every source. ObserveAll takes each event's source
// and trust.
func (g *Graph) Observe(ctx context.Context, ev event.Value, c Captured) error {
	return g.observe(ctx, ev, eventIDs(ev), c, "")
}

// observe is Observe of ev, whose ids are id, writing the part sc of the
// profiles (trust.go).
func (g *Graph) observe(ctx context.Context, ev event.Value, id ids, c Captured, sc string) error {
	if id.user == "" && id.anon == "" && id.previous == "" {
		return nil
	}
	v := g.valuesOf(ev, id, c)
	if id.typ == "alias" && id.previous != "" && id.user != "" && id.previous != id.user {
		if err := g.alias(ctx, id.previous, id.uk, v, sc); err != nil {
			return err
		}
		if id.anon == "" || id.anon == id.previous {
			return nil
		}
	}
	switch {
	case id.user != "" && id.anon != "":
		return g.link(ctx, id.uk, id.ak, v, sc)
	case id.user != "":
		return g.observeOne(ctx, id.uk, v, sc)
	case id.anon != "":
		return g.observeOne(ctx, id.ak, v, sc)
	}
	return nil
}

// valuesOf returns what ev (with ids id and captured c) says about its
// user: the li_fat_id and the email's SHA-256 at the event's time, and a
// group call's groupId.
func (g *Graph) valuesOf(ev event.Value, id ids, c Captured) values {
	at := eventTime(ev, g.cfg.Now())
	var v values
	if c.LiFatID != "" {
		v.lfi, v.lfiAt = strings.TrimSpace(c.LiFatID), at
	}
	if c.Email != "" {
		if h, ok := g.cfg.HashEmail(c.Email); ok {
			v.email, v.emailAt = h, at
		}
	}
	if id.typ == "group" {
		if gid := idString(ev.Get("groupId")); gid != "" {
			v.groups = []string{gid}
		}
	}
	return v
}

// observeOne records v on one profile and, when that added something,
// passes it one hop on: from an anonymous id to its current user, from an
// aliased user id to the user it became. Enrich then finds everything about
// a user in the user's own profile with one read. It writes and follows
// the part sc of the profiles (trust.go).
func (g *Graph) observeOne(ctx context.Context, key string, v values, sc string) error {
	var added bool
	r, _, err := g.update(ctx, key, nil, in(sc, func(r *record) bool {
		added = v.apply(r, g.slack())
		return added
	}))
	if err != nil || !added {
		return err
	}
	return g.propagate(ctx, key, partOf(&r, sc), sc)
}

// propagate passes the identifiers of r, the part sc of the profile at
// key, one hop on along that part's links (see observeOne).
func (g *Graph) propagate(ctx context.Context, key string, r *record, sc string) error {
	to := r.AliasOf
	if isAnon(key) {
		to = r.user()
	}
	if to == "" {
		return nil
	}
	v := valuesOf(r)
	_, _, err := g.update(ctx, to, nil, in(sc, func(t *record) bool { return v.apply(t, g.slack()) }))
	return err
}

func (g *Graph) slack() int64 { return g.cfg.Refresh.Milliseconds() }

// link links the user and the anonymous id whose profiles are at uk and ak
// and records v on both. The user's profile is written first, so that
// whatever happens next, deleting the user finds the anonymous id; what the anonymous id knows is copied into
// the user's profile, and checked again after the anonymous id's write so
// that a concurrent capture on the anonymous id is never lost. The link and
// v go into the part sc of both profiles (trust.go); what the anonymous id
// knows comes from the parts sc may use.
func (g *Graph) link(ctx context.Context, uk, ak string, v values, sc string) error {
	// What the anonymous id knows goes into the user's write. An anonymous
	// id this process never met is most likely new and is not read (ea
	// stays nil); if it knew something after all, the check after its
	// write below copies that into the user.
	var ea *entry
	var fromA values
	switch e, met, err := g.known(ctx, ak); {
	case err != nil:
		return err
	case met:
		ea, fromA = &e, valuesFor(&e.rec, sc)
	}
	ru, linked, wrote, err := g.addLink(ctx, uk, ak, v, fromA, sc)
	if err != nil {
		return err
	}
	if !linked {
		// The user takes no more links: keep the two apart.
		_, _, err := g.update(ctx, ak, ea, in(sc, func(r *record) bool { return v.apply(r, g.slack()) }))
		return err
	}
	ra, _, err := g.update(ctx, ak, ea, in(sc, func(r *record) bool {
		ch := v.apply(r, g.slack())
		if r.user() == uk {
			return ch
		}
		r.Links = slices.DeleteFunc(r.Links, func(l string) bool { return l == uk })
		r.Links = append(r.Links, uk)
		if len(r.Links) > g.cfg.MaxLinks {
			r.Links = slices.Delete(r.Links, 0, len(r.Links)-g.cfg.MaxLinks)
		}
		return true
	}))
	if err != nil {
		return err
	}
	if late := valuesFor(&ra, sc); late.adds(&ru, g.slack()) {
		full, _, err := g.update(ctx, uk, nil, in(sc, func(r *record) bool { return late.apply(r, g.slack()) }))
		if err != nil {
			return err
		}
		ru, wrote = *partOf(&full, sc), true
	}
	if wrote && ru.AliasOf != "" {
		return g.propagate(ctx, uk, &ru, sc)
	}
	return nil
}

// addLink records v on the user profile uk, links the profile at key to it
// when there is room and merges that profile's identifiers from, all in
// the part sc of uk (trust.go), which it returns. When that part is at
// MaxLinks, links to profiles that no longer exist are pruned first;
// linked is false when there is still no room.
func (g *Graph) addLink(ctx context.Context, uk, key string, v, from values, sc string) (r record, linked, wrote bool, err error) {
	for try := 0; try < 2; try++ {
		full := false
		var whole record
		whole, wrote, err = g.update(ctx, uk, nil, in(sc, func(r *record) bool {
			ch := v.apply(r, g.slack())
			if !slices.Contains(r.Links, key) {
				if len(r.Links) >= g.cfg.MaxLinks {
					full = true
					return ch
				}
				r.Links = append(r.Links, key)
				ch = true
			}
			full = false
			return from.apply(r, g.slack()) || ch
		}))
		r = *partOf(&whole, sc)
		if err != nil || !full {
			return r, !full, wrote, err
		}
		if try == 0 {
			pruned, err := g.pruneLinks(ctx, uk, r.Links, sc)
			if err != nil {
				return r, false, wrote, err
			}
			if !pruned {
				break
			}
		}
	}
	g.lim.warn("links_full", "identity profile has too many linked ids; new ids are not linked", nil)
	return r, false, wrote, nil
}

// pruneLinks removes from the part sc of the profile at key the links
// whose profiles no longer exist (expired or deleted), looking at the
// oldest pruneBatch of links (expiry goes oldest first), and reports
// whether any went.
func (g *Graph) pruneLinks(ctx context.Context, key string, links []string, sc string) (bool, error) {
	dead := map[string]bool{}
	for _, l := range links[:min(len(links), pruneBatch)] {
		e, err := g.load(ctx, l)
		if err != nil {
			return false, err
		}
		if !e.exists {
			dead[l] = true
		}
	}
	if len(dead) == 0 {
		return false, nil
	}
	_, _, err := g.update(ctx, key, nil, in(sc, func(r *record) bool {
		n := len(r.Links)
		r.Links = slices.DeleteFunc(r.Links, func(l string) bool { return dead[l] })
		return len(r.Links) != n
	}))
	return err == nil, err
}

// alias merges the profile of previousID into the user's at uk. A previous id the
// graph knows as a user id is linked to the user both ways (its profile
// keeps aliasOf, the user lists it); any other previous id is taken for an
// anonymous id (analytics.js aliases the anonymous id by default) and
// linked like one. Links and identifiers go into the part sc of the
// profiles (trust.go).
func (g *Graph) alias(ctx context.Context, previousID, uk string, v values, sc string) error {
	pk := UserKey(previousID)
	ep, err := g.load(ctx, pk)
	if err != nil {
		return err
	}
	if !ep.exists {
		return g.link(ctx, uk, AnonymousKey(previousID), v, sc)
	}
	ru, linked, _, err := g.addLink(ctx, uk, pk, v, valuesFor(&ep.rec, sc), sc)
	if err != nil || !linked {
		return err
	}
	rp, _, err := g.update(ctx, pk, &ep, in(sc, func(r *record) bool {
		if r.AliasOf == uk {
			return false
		}
		r.AliasOf = uk
		return true
	}))
	if err != nil {
		return err
	}
	if late := valuesFor(&rp, sc); late.adds(&ru, g.slack()) {
		_, _, err = g.update(ctx, uk, nil, in(sc, func(r *record) bool { return late.apply(r, g.slack()) }))
	}
	return err
}

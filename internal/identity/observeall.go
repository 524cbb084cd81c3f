package identity

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/capstan-gw/capstan/internal/event"
)

// Observation is one event for ObserveAll: the event, what was captured
// from it (and its request), and who sent it (trust.go).
type Observation struct {
	Event    event.Value
	Captured Captured
	// Source is the name of the source that sent the event. Required when
	// Trusted is false: an untrusted event without a source is ignored.
	Source string
	// Trusted reports that the links the event makes between its userId
	// and other ids, an email or an li_fat_id may enrich every source's
	// conversions: a server source's event, or a browser source's whose
	// userId identity verification vouched for (stream.TrustServer,
	// stream.TrustVerified). Otherwise they enrich only Source's.
	Trusted bool
	// Keys are KeysOf(Event) when the caller has them (it also enriches
	// the event's conversions: EnrichKeys); zero: computed here.
	Keys Keys
}

// ObserveAll is Observe for several events at once; errs[i] is the error
// of obs[i]. The profiles of ids this process never met, which most events
// on an ad's landing page create (a new browser with its click id, a
// sign-up linking a new user to a new browser), are created in bursts:
// published together and acknowledged together, ~16 CPU-µs per profile
// instead of ~35 for a write that waits alone. A new user is created, with
// its link, in a first burst and its new browser in a second, so that the
// user's profile is written first, as Observe does (deleting the user must
// find the browser). Every other event, and one whose create finds its key
// taken after all (another process wrote it), goes through Observe
// afterwards, so the outcome is the same as observing the events one by one
// (in any order, as concurrent Observes may).
func (g *Graph) ObserveAll(ctx context.Context, obs []Observation) []error {
	errs := make([]error, len(obs))
	var first []*create
	var rest []int
	claimed := make(map[string]bool, 2*len(obs)) // a new visitor's one or two keys
	now := g.cfg.Now()
	idss := make([]ids, len(obs))
	scs := make([]string, len(obs))
	for i, o := range obs {
		if o.Keys.set {
			idss[i] = o.Keys.id
		} else {
			idss[i] = eventIDs(o.Event)
		}
		sc, ok := o.scope(idss[i])
		if !ok {
			continue
		}
		scs[i] = sc
		if c := g.newProfiles(o, idss[i], now, claimed, sc); c != nil {
			c.i = i
			first = append(first, c)
			continue
		}
		rest = append(rest, i)
	}
	var second []*create
	for _, c := range g.burst(ctx, first, now, errs, &rest) {
		if c.then != nil {
			c.then.i = c.i
			second = append(second, c.then)
		}
	}
	g.burst(ctx, second, now, errs, &rest)
	// Events whose profiles are all in the memo (returning visitors) are
	// observed here, in order; the others wait for JetStream, so they run
	// concurrently.
	var wg sync.WaitGroup
	for _, i := range rest {
		if g.memoised(idss[i]) {
			errs[i] = g.observe(ctx, obs[i].Event, idss[i], obs[i].Captured, scs[i])
			continue
		}
		wg.Go(func() { errs[i] = g.observe(ctx, obs[i].Event, idss[i], obs[i].Captured, scs[i]) })
	}
	wg.Wait()
	return errs
}

// create is a profile ObserveAll creates for event i, and the one to create
// once it is stored.
type create struct {
	i    int
	key  string
	rec  record
	rev  uint64 // once stored
	then *create
}

// burst publishes the creates together, waits for their acknowledgements
// and returns those that were stored. The event of a create that failed
// (most likely its key was taken: Observe reads it and merges) is added to
// rest; a timeout or the end of ctx is the event's error.
func (g *Graph) burst(ctx context.Context, cs []*create, now time.Time, errs []error, rest *[]int) []*create {
	if len(cs) == 0 {
		return nil
	}
	keys, data := make([]string, len(cs)), make([][]byte, len(cs))
	for j, c := range cs {
		keys[j], data[j] = c.key, g.encode(&c.rec)
	}
	revs, werrs := g.store.createAll(ctx, keys, data, now)
	stored := make([]*create, 0, len(cs))
	for j, c := range cs {
		switch err := werrs[j]; {
		case err == nil:
			c.rev = revs[j]
			g.seen.add(c.key)
			stored = append(stored, c)
		case errors.Is(err, errNoAck):
			errs[c.i] = fmt.Errorf("write profile: %w", err)
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			errs[c.i] = err
		case errors.Is(err, errNotPublished):
			*rest = append(*rest, c.i)
		default:
			g.seen.add(c.key)
			*rest = append(*rest, c.i)
		}
	}
	g.memo.putAll(len(stored), func(i int) (string, entry) {
		c := stored[i]
		return c.key, entry{rec: c.rec, rev: c.rev, at: now, exists: true}
	})
	return stored
}

// newProfiles returns what Observe would create without a read for o, an
// event whose ids this process never met (nor any earlier event of the
// chunk, claimed): the profile of a single id with something to record, or
// a new user linked to a new anonymous id (then: the anonymous id's
// profile), holding what the event teaches in the part sc (trust.go). Nil
// for any other event.
func (g *Graph) newProfiles(o Observation, id ids, now time.Time, claimed map[string]bool, sc string) *create {
	if id.typ == "alias" && id.previous != "" {
		return nil
	}
	// A key seen never met is in the memo only as a read that found it
	// absent (load), which a create needs no more than Observe's write
	// does: the memo is not asked (its look-ups of a new visitor's keys
	// miss both generations, two cache misses a key).
	unmet := func(key string) bool {
		return key != "" && !claimed[key] && !g.seen.maybe(key)
	}
	switch {
	case id.user != "" && id.anon != "":
		if !unmet(id.uk) || !unmet(id.ak) {
			return nil
		}
	case id.user != "" || id.anon != "":
		if !unmet(id.uk + id.ak) { // one of them is ""
			return nil
		}
	default:
		return nil
	}
	// Only now, for events that qualify: the email's hash is not free.
	v := g.valuesOf(o.Event, id, o.Captured)
	profile := func(key string, links ...string) *create {
		p := record{Links: links}
		if !v.apply(&p, g.slack()) && len(links) == 0 {
			return nil // nothing to record
		}
		c := &create{key: key, rec: p}
		if sc != "" {
			c.rec = record{Scoped: map[string]*record{sc: &p}}
		}
		c.rec.First = now.UnixMilli()
		claimed[key] = true
		return c
	}
	if id.uk != "" && id.ak != "" {
		c := profile(id.uk, id.ak)
		c.then = profile(id.ak, id.uk)
		return c
	}
	return profile(id.uk + id.ak)
}

// memoised reports whether every profile the ids name is in the memo, so
// that observing their event needs no round trip unless it brings
// something new.
func (g *Graph) memoised(id ids) bool {
	for _, k := range [...]string{id.uk, id.ak} {
		if _, ok := g.memo.get(k); k != "" && !ok {
			return false
		}
	}
	return id.previous == "" // an alias reads the previous id's profile
}

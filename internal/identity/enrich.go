package identity

import (
	"context"
	"slices"

	"github.com/capstan-gw/capstan/internal/event"
)

// Sources of enriched values, shown by preview as LiFatIDFrom / EmailFrom.
const (
	FromUser          = "graph (userId)"
	FromAliasOfUser   = "graph (user the userId was aliased to)"
	FromAnonymous     = "graph (anonymousId)"
	FromAnonymousUser = "graph (user of the anonymousId)"
	FromUserAnonymous = "graph (anonymousId linked to the userId)"
)

// maxLinkedReads bounds the anonymous ids of a user read by one Enrich,
// newest first, when the user's own profile lacks something.
const maxLinkedReads = 3

// Enrich fills what have lacks (LiFatID, and Email with the SHA-256 of the
// email, which internal/linkedin sends unchanged) from the graph: from the
// event's userId's profile, then the user it was aliased to, then the
// anonymousId's profile, then the anonymousId's user, then the userId's
// newest anonymous ids. The event's own values always win. LiFatIDFrom and
// EmailFrom name the profile each value came from (the From* constants).
//
// source is the source of the conversion's event: each profile is read as
// that source sees it (trust.go), its trusted part with what the source's
// own unverified events taught it; other sources' unverified links are
// never used. "" reads the trusted parts only.
//
// Profiles that this process read or wrote within Config.MemoTTL (as
// Observe just did for the same event) are not read again; deletions reach
// the memo at once, from any process.
//
// It is best effort: a failed look-up is logged (rate-limited, without ids
// or values) and what was found so far is returned. In the common case (a
// known userId) it costs one read.
func (g *Graph) Enrich(ctx context.Context, ev event.Value, source string, have Captured) Captured {
	c, err := g.EnrichChecked(ctx, ev, source, have)
	if err != nil {
		g.lim.warn("enrich", "identity look-up failed; conversion goes on without the graph", err)
	}
	return c
}

// EnrichChecked is Enrich that returns a failed look-up's error instead of
// logging it, with what was found before it: delivery holds an event whose
// look-up failed because the engine did not answer (Unavailable) rather
// than send its conversion without the graph.
func (g *Graph) EnrichChecked(ctx context.Context, ev event.Value, source string, have Captured) (Captured, error) {
	if have.LiFatID != "" && have.Email != "" {
		return have, nil
	}
	return g.EnrichKeys(ctx, KeysOf(ev), source, have)
}

// EnrichKeys is EnrichChecked for an event whose Keys the caller computed
// already (for ObserveAll): the keys' SHA-256s are not computed again.
// The zero Keys reads nothing.
func (g *Graph) EnrichKeys(ctx context.Context, k Keys, source string, have Captured) (Captured, error) {
	if have.LiFatID != "" && have.Email != "" {
		return have, nil
	}
	id := k.id
	if id.user == "" && id.anon == "" {
		return have, nil
	}
	var uk, ak string
	var ru, ra *record
	var failed error
	look := func(key, from string) (*record, bool) {
		e, err := g.recent(ctx, key)
		if err != nil {
			failed = err
			return nil, false
		}
		if !e.exists {
			return nil, true
		}
		r := view(&e.rec, source)
		fill(&have, r, from)
		return r, true
	}
	done := func() bool { return have.LiFatID != "" && have.Email != "" }
	if id.user != "" {
		uk = id.uk
		var ok bool
		if ru, ok = look(uk, FromUser); !ok || done() {
			return have, failed
		}
		if ru != nil && ru.AliasOf != "" {
			if _, ok := look(ru.AliasOf, FromAliasOfUser); !ok || done() {
				return have, failed
			}
		}
	}
	if id.anon != "" {
		ak = id.ak
		var ok bool
		if ra, ok = look(ak, FromAnonymous); !ok || done() {
			return have, failed
		}
		if ra != nil {
			if u := ra.user(); u != "" && u != uk {
				if _, ok := look(u, FromAnonymousUser); !ok || done() {
					return have, failed
				}
			}
		}
	}
	if ru != nil {
		n := 0
		for _, l := range slices.Backward(ru.Links) {
			if !isAnon(l) || l == ak {
				continue
			}
			if _, ok := look(l, FromUserAnonymous); !ok || done() {
				return have, failed
			}
			if n++; n == maxLinkedReads {
				break
			}
		}
	}
	return have, failed
}

func fill(c *Captured, r *record, from string) {
	if c.LiFatID == "" && r.LiFatID != "" {
		c.LiFatID, c.LiFatIDFrom = r.LiFatID, from
	}
	if c.Email == "" && r.Email != "" {
		c.Email, c.EmailFrom = r.Email, from
	}
}

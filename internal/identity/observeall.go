package identity

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/capstan-gw/capstan/internal/mapping"
)

// Observation is one event for ObserveAll: the event and what was captured
// from it (and its request).
type Observation struct {
	Event    mapping.Value
	Captured Captured
}

// ObserveAll is Observe for several events at once; errs[i] is the error
// of obs[i]. An event that introduces a single id this process never met
// (most events on an ad's landing page: a new browser with its click id)
// has its profile created in one burst with the others like it: published
// together and acknowledged together, ~16 CPU-µs per profile instead of
// ~35 for a write that waits alone. Every other event, and a create that
// finds its key taken after all (another process wrote it), goes through
// Observe afterwards, so the outcome is the same as observing the events
// one by one (in any order, as concurrent Observes may).
func (g *Graph) ObserveAll(ctx context.Context, obs []Observation) []error {
	errs := make([]error, len(obs))
	type create struct {
		i   int
		key string
		rec record
		f   jetstream.PubAckFuture
	}
	var creates []create
	var rest []int
	claimed := map[string]bool{}
	now := g.cfg.Now()
	idss := make([]ids, len(obs))
	for i, o := range obs {
		idss[i] = eventIDs(o.Event)
		if key, rec, ok := g.newProfile(o, idss[i], now); ok && !claimed[key] {
			claimed[key] = true
			creates = append(creates, create{i: i, key: key, rec: rec})
			continue
		}
		rest = append(rest, i)
	}
	for j := range creates {
		c := &creates[j]
		data, err := json.Marshal(&c.rec)
		if err == nil {
			c.f, err = g.js.PublishMsgAsync(&nats.Msg{Subject: g.subPre + c.key, Header: nats.Header{}, Data: data},
				jetstream.WithExpectLastSequencePerSubject(0))
		}
		if err != nil {
			rest = append(rest, c.i)
		}
	}
	timeout := time.NewTimer(writeTimeout)
	defer timeout.Stop()
	for _, c := range creates {
		if c.f == nil {
			continue
		}
		select {
		case ack := <-c.f.Ok():
			g.memo.put(c.key, entry{rec: c.rec, rev: ack.Sequence, at: now, exists: true})
			g.seen.add(c.key)
			continue
		case <-c.f.Err():
			// Most likely taken: Observe reads it and merges.
			g.seen.add(c.key)
		case <-timeout.C:
			errs[c.i] = fmt.Errorf("write profile: no acknowledgement within %s", writeTimeout)
			timeout.Reset(0)
			continue
		case <-ctx.Done():
			errs[c.i] = ctx.Err()
			continue
		}
		rest = append(rest, c.i)
	}
	// Events whose profiles are all in the memo (returning visitors) are
	// observed here, in order; the others wait for JetStream, so they run
	// concurrently.
	var wg sync.WaitGroup
	for _, i := range rest {
		if g.memoised(idss[i]) {
			errs[i] = g.observe(ctx, obs[i].Event, idss[i], obs[i].Captured)
			continue
		}
		wg.Go(func() { errs[i] = g.observe(ctx, obs[i].Event, idss[i], obs[i].Captured) })
	}
	wg.Wait()
	return errs
}

// newProfile returns the key and the profile to create for o when o is an
// event with a single id (no alias) that this process never met and that
// has something to record: what Observe would create without a read.
func (g *Graph) newProfile(o Observation, id ids, now time.Time) (string, record, bool) {
	var key string
	switch {
	case id.typ == "alias" && id.previous != "":
		return "", record{}, false
	case id.user != "" && id.anon != "":
		return "", record{}, false
	case id.user != "":
		key = id.uk
	case id.anon != "":
		key = id.ak
	default:
		return "", record{}, false
	}
	if g.seen.maybe(key) {
		return "", record{}, false
	}
	if _, ok := g.memo.get(key); ok {
		return "", record{}, false
	}
	v := g.valuesOf(o.Event, id, o.Captured)
	var r record
	if !v.apply(&r, g.slack()) {
		return "", record{}, false
	}
	r.First = now.UnixMilli()
	return key, r, true
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

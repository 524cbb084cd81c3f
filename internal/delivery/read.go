package delivery

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/mapping"
	"github.com/capstan-gw/capstan/internal/stream"
)

// tracked is one stored event waiting for its conversions.
type tracked struct {
	*stream.Delivery
	recv    time.Time
	pending atomic.Int32
	failed  atomic.Bool // a DLQ write failed: let the event be redelivered
}

// open creates (or updates) the destination's durable consumer of EVENTS.
// Events a previous process had in flight (it crashed, or lost the lease)
// are redelivered at once; what was already accepted is sent again and
// counted once by the destination.
func (r *Runner) open(ctx context.Context) (*stream.Consumer, error) {
	var sources []string
	for s := range r.plan.sources {
		sources = append(sources, s)
	}
	slices.Sort(sources)
	return r.eng.Consumer(ctx, stream.ConsumerConfig{
		Durable:     r.cfg.Consumer,
		Description: "capstan delivery to " + r.plan.Name,
		Sources:     sources,
		AckWait:     r.cfg.AckWait,
		// Counted in messages: a segment holds one or more events.
		MaxAckPending: 4 * r.cfg.BatchSize * r.cfg.MaxInflight,
		FetchWait:     r.cfg.FetchWait,
		// Each fetch asks for up to 8 MiB of segments (stream's default):
		// as many events as 1,000 single-event messages or more, with the
		// same memory whatever the segments' size.
	})
}

// consume reads events (stream.Consumer.Feed: fetches, none while the
// destination is paused) and hands their conversions to the batcher until
// ctx ends.
func (r *Runner) consume(ctx context.Context, src *stream.Consumer, out chan<- *item) {
	// Workers take what is waiting, whole stored messages (the events of
	// one segment stay together and in order, so that an identify is
	// observed before the events after it convert), and handle it in chunks
	// of up to chunkMax events.
	in := make(chan []*stream.Delivery, r.cfg.Workers)
	var workers sync.WaitGroup
	for range r.cfg.Workers {
		workers.Go(func() {
			var take []*stream.Delivery
			var mem chunkMem
			for ds := range in {
				take = append(take[:0], ds...)
			more:
				for len(take) < chunkMax {
					select {
					case ds, ok := <-in:
						if !ok {
							break more
						}
						take = append(take, ds...)
					default:
						break more
					}
				}
				for start := 0; start < len(take); start += chunkMax {
					r.handleChunk(ctx, take[start:min(start+chunkMax, len(take))], &mem, out)
				}
			}
		})
	}
	src.FeedMessages(ctx, func(ds []*stream.Delivery) bool {
		select {
		case in <- ds:
			return true
		case <-ctx.Done():
			return false
		}
	}, r.unpaused)
	close(in)
	workers.Wait()
}

// chunkMax bounds the events one worker takes at once (handleChunk).
const chunkMax = 64

// chunkMem is the memory a worker reuses from chunk to chunk (handleChunk).
type chunkMem struct {
	arena   event.Arena     // the chunk's parsed events
	scratch mapping.Scratch // one mapping's output at a time (Plan.appendConvert)
}

// handleChunk converts stored events that were waiting together: the
// identity graph observes them in one go (ObserveAll: new visitors'
// profiles are created in one burst), then each is converted.
//
// The events are parsed into mem.arena, which is reset when the chunk is
// done, and the mappings' outputs are built in mem.scratch: nothing keeps a
// parsed event, a mapping's output, or a Value within them, past its
// conversion (the graph, the suppressions and the Format read them during
// their calls and keep strings, which are the stored text's, not the
// arena's). A parse into fresh memory cost ~2 KiB of allocation per
// browser event, zeroed and then scanned by the GC, and a mapping's output
// ~0.5 KiB (bench/results/convert-2026-12-07-s22.md).
func (r *Runner) handleChunk(ctx context.Context, ds []*stream.Delivery, mem *chunkMem, out chan<- *item) {
	arena := &mem.arena
	defer arena.Reset()
	evs := make([]parsed, 0, len(ds))
	var obs []identity.Observation // most events, when there is a graph
	var ts []*tracked              // of obs
	if r.graph != nil {
		obs, ts = make([]identity.Observation, 0, len(ds)), make([]*tracked, 0, len(ds))
	}
	for _, d := range ds {
		p, ok := r.parse(ctx, d, arena)
		if !ok {
			continue
		}
		if p.observe {
			obs = append(obs, identity.Observation{Event: p.ev, Captured: *p.have, Source: d.Source, Trusted: trusted(d.Trust), Keys: p.keys})
			ts = append(ts, p.t)
		}
		evs = append(evs, p)
	}
	var held map[*tracked]bool
	if len(obs) > 0 {
		ok := false
		for i, err := range r.graph.ObserveAll(ctx, obs) {
			switch {
			case err == nil:
				ok = true
			case ctx.Err() != nil:
				// A cancelled ctx (stop, lease lost) is no failure: the
				// events are not acknowledged, so the graph sees them again.
			case identity.Unavailable(err):
				// The engine did not answer (a node restarting): converted
				// now, the event would go without what the graph would have
				// learnt from it and would have given it. It is held.
				if held == nil {
					held = map[*tracked]bool{}
				}
				held[ts[i]] = true
				r.hold(ts[i], err)
			default:
				r.log.Warn("identity graph update failed", "error", err, "event_pos", ts[i].Pos())
			}
		}
		if ok {
			r.graphAnswered()
		}
	}
	var checked *checkedEnricher // one for the chunk's events, in turn
	if r.graph != nil {
		checked = &checkedEnricher{g: r.graph}
	}
	var results []Result // one for the chunk's events, in turn
	for _, p := range evs {
		if held[p.t] {
			continue
		}
		if !r.convert(ctx, p, checked, &mem.scratch, &results, out) {
			return // ctx ended: the rest is not acknowledged, redelivered after restart
		}
	}
}

// graphHoldMin and graphHoldMax bound the delay before a held event (hold)
// is delivered again.
const (
	graphHoldMin = 500 * time.Millisecond
	graphHoldMax = 30 * time.Second
)

// graphDegradedAfter is how long the identity graph must fail without a
// success before the destination shows "degraded" in /readyz: a node
// restart's few seconds of errors are not worth an alert.
const graphDegradedAfter = 5 * time.Second

// graphFault is an ongoing failure of the identity graph (hold).
type graphFault struct {
	since time.Time
	err   string
	held  atomic.Int64
}

// hold has event t delivered again later, without converting it: the
// identity graph could not be reached for it (identity.Unavailable), and
// its conversions are sent only once the graph has learnt from it and can
// enrich them. The delay grows with the fault's age (half of it, from
// graphHoldMin to graphHoldMax); while it lasts beyond
// graphDegradedAfter, the destination shows "degraded" with the error.
func (r *Runner) hold(t *tracked, err error) {
	f := r.graphDown.Load()
	if f == nil {
		f = &graphFault{since: time.Now(), err: err.Error()}
		if !r.graphDown.CompareAndSwap(nil, f) {
			f = r.graphDown.Load()
		}
	}
	n := f.held.Add(1)
	if n == 1 {
		r.log.Warn("identity graph unavailable; events are held and delivered again once it answers", "error", err, "event_pos", t.Pos())
	}
	r.m.events.WithLabelValues(r.plan.Name, "held").Inc()
	delay := min(graphHoldMax, max(graphHoldMin, time.Since(f.since)/2))
	if nerr := t.NakWithDelay(delay); nerr != nil {
		r.log.Debug("nak of a held event failed; it is delivered again after the ack wait", "error", nerr, "event_pos", t.Pos())
	}
}

// graphAnswered ends a graph fault (hold): the graph answered again.
func (r *Runner) graphAnswered() {
	if f := r.graphDown.Load(); f != nil && r.graphDown.CompareAndSwap(f, nil) {
		r.log.Info("identity graph answers again", "held_events", f.held.Load(), "after", time.Since(f.since).Round(time.Millisecond).String())
	}
}

// graphDegraded returns why the destination is degraded by the identity
// graph, "" when it is not.
func (r *Runner) graphDegraded() string {
	f := r.graphDown.Load()
	if f == nil || time.Since(f.since) < graphDegradedAfter {
		return ""
	}
	return fmt.Sprintf("identity graph unavailable for %s (%s): %d events held in the stream, delivered once it answers",
		time.Since(f.since).Round(time.Second), f.err, f.held.Load())
}

// checkedEnricher records the first error of the graph's look-ups for one
// event (Plan.Convert enriches once per event). keys are the event's, when
// parse computed them for the graph (zero: computed if needed).
type checkedEnricher struct {
	g    Graph
	keys identity.Keys
	err  error
}

func (c *checkedEnricher) Enrich(ctx context.Context, ev event.Value, source string, have identity.Captured) identity.Captured {
	var got identity.Captured
	var err error
	if c.keys.Set() {
		got, err = c.g.EnrichKeys(ctx, c.keys, source, have)
	} else {
		got, err = c.g.EnrichChecked(ctx, ev, source, have)
	}
	if err != nil && c.err == nil {
		c.err = err
	}
	return got
}

// trusted reports whether the identity links of a stored event of the given
// trust (stream.Trust*) serve every source's conversions: a server source's
// event, a verified browser event, and an event stored before capstan
// recorded trust ("": its source's trust was not known; like the profiles
// of that time, it is trusted).
func trusted(trust string) bool { return trust != stream.TrustUnverified }

// parsed is a stored event ready for the graph and conversion.
type parsed struct {
	t       *tracked
	ev      event.Value
	have    *identity.Captured // captured identifiers; nil: capture at conversion
	observe bool               // the graph learns from it (consent allows)
	keys    identity.Keys      // for the graph, once (set when observe)
}

// parse reads one stored event, its objects and arrays into arena. It
// returns false when the event needs nothing more (a replay for another
// destination, an event that does not parse: dead-lettered as unusable, or
// skipped when the destination does not take its source).
func (r *Runner) parse(ctx context.Context, d *stream.Delivery, arena *event.Arena) (parsed, bool) {
	t := &tracked{Delivery: d}
	if d.ReplayFor != "" && d.ReplayFor != r.plan.Name {
		_ = d.Ack() // a replay for another destination
		return parsed{}, false
	}
	r.received.Inc()
	r.funnel.dest.Received()
	ev, err := arena.ParseString(d.DocString())
	if err != nil {
		// Ingest stores nothing Parse refuses (one nesting limit,
		// event.MaxDepth), so this is an event stored by an older capstan
		// or damaged. It could never have become a conversion for a
		// destination that does not take its source (Plan.Convert looks
		// at the source first): no dead letter for it there.
		if !r.plan.TakesSource(d.Source) {
			r.m.events.WithLabelValues(r.plan.Name, string(SkippedUnusable)).Inc()
			r.funnel.dest.Outcome(SkippedUnusable)
			r.log.Debug("stored event does not parse; its source is not this destination's", "event_pos", d.Pos(), "source", d.Source)
			r.finish(t)
			return parsed{}, false
		}
		r.deadLetter(ctx, t, &DeadLetter{Reason: ReasonUnusable, Message: "stored event is not valid JSON: " + err.Error()})
		r.finish(t)
		return parsed{}, false
	}
	if r.sup != nil && r.sup.Suppressed(ev) {
		// Deleted on request: not delivered, and the graph learns nothing.
		r.m.events.WithLabelValues(r.plan.Name, string(Suppressed)).Inc()
		r.funnel.dest.Outcome(Suppressed)
		r.finish(t)
		return parsed{}, false
	}
	if s, ok := ev.Get("receivedAt").Str(); ok {
		t.recv, _ = event.ParseTime(s)
	}
	t.pending.Add(1) // held until every conversion is queued
	p := parsed{t: t, ev: ev}
	// Capture once, for the graph and for conversion. The capstan_lfi cookie
	// of the request stands in for an li_fat_id the event itself lacks.
	cookie := d.LiFatID
	p.observe = r.graph != nil && identity.ConsentAllows(ev, r.Plan().consent)
	if cookie != "" || p.observe {
		c := identity.Capture(ev)
		if c.LiFatID == "" && cookie != "" {
			c.LiFatID, c.LiFatIDFrom = cookie, "cookie capstan_lfi"
		}
		p.have = &c
	}
	if p.observe {
		p.keys = identity.KeysOf(ev)
	}
	return p, true
}

// convert runs a parsed event through the plan and queues its conversions;
// false when ctx ended first. checked enriches from the graph (nil: no
// graph); its error is reset here. The results are made in *results, which
// the next event reuses (nothing refers to them once queued), the mappings'
// outputs in s.
func (r *Runner) convert(ctx context.Context, p parsed, checked *checkedEnricher, s *mapping.Scratch, results *[]Result, out chan<- *item) bool {
	t := p.t
	var enr Enricher
	if checked != nil {
		checked.err, checked.keys = nil, p.keys
		enr = checked
	}
	*results = r.Plan().appendConvert(ctx, (*results)[:0], p.ev, t.Source, r.clock.Now(), enr, p.have, s)
	if checked != nil && checked.err != nil {
		switch {
		case ctx.Err() != nil:
			return false // not acknowledged: redelivered after restart
		case identity.Unavailable(checked.err):
			r.hold(t, checked.err) // nothing queued yet: held whole
			return true
		default:
			r.log.Warn("identity look-up failed; conversion goes on without the graph", "error", checked.err, "event_pos", t.Pos())
		}
	} else if checked != nil && r.graphDown.Load() != nil {
		r.graphAnswered()
	}
	for _, res := range *results {
		switch res.Outcome {
		case Converted:
			r.funnel.route(res.Route).Matched(true)
			t.pending.Add(1)
			select {
			case out <- &item{Payload: res.Payload, route: res.Route, ev: t}:
			case <-ctx.Done():
				return false // not acknowledged: redelivered after restart
			}
		case Invalid:
			r.funnel.route(res.Route).Matched(false)
			r.m.events.WithLabelValues(r.plan.Name, string(Invalid)).Inc()
			dl := &DeadLetter{Reason: ReasonInvalid, Mapping: res.Route.Name, Message: res.Err.Error()}
			if pr, ok := problemOf(res.Err); ok {
				dl.Code, dl.Status, dl.Errors = pr.Code(), pr.Status(), pr.Details()
			}
			r.deadLetter(ctx, t, dl)
		default:
			r.m.events.WithLabelValues(r.plan.Name, string(res.Outcome)).Inc()
			r.funnel.dest.Outcome(res.Outcome)
		}
	}
	r.release(t)
	return true
}

// release drops one hold on t and acknowledges it when none is left.
func (r *Runner) release(t *tracked) {
	if t.pending.Add(-1) == 0 {
		r.finish(t)
	}
}

func (r *Runner) finish(t *tracked) {
	if t.failed.Load() {
		// A dead letter could not be written: have the event redelivered
		// later instead of losing it.
		_ = t.NakWithDelay(30 * time.Second)
		return
	}
	if r.eng.Embedded() {
		// One server in this process: no leader can change under the
		// acknowledgement, so it is not confirmed (ack.go: a confirmation
		// costs ~30 CPU-µs per event).
		if err := t.Ack(); err != nil {
			r.log.Warn("acknowledge event failed; it will be delivered again", "error", err, "event_pos", t.Pos())
		}
		return
	}
	if a := r.acks.Load(); a != nil {
		a.ack(t) // confirmed by the ackers (ack.go)
		return
	}
	r.confirmAck(t)
}

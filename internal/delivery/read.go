package delivery

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/mapping"
	"github.com/capstan-gw/capstan/internal/stream"
)

// tracked is one stored event waiting for its conversions.
type tracked struct {
	msg     jetstream.Msg
	seq     uint64
	source  string
	doc     []byte
	recv    time.Time
	pending atomic.Int32
	failed  atomic.Bool // a DLQ write failed: let the event be redelivered
}

// open creates (or updates) the destination's durable consumer.
func (r *Runner) open(ctx context.Context) (jetstream.Consumer, error) {
	js := r.eng.JetStream()
	filters := []string{stream.EventsSubject + ".>"}
	if r.plan.sources != nil {
		filters = filters[:0]
		for s := range r.plan.sources {
			filters = append(filters, stream.EventsSubject+"."+s+".>")
		}
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, stream.EventsStream, jetstream.ConsumerConfig{
		Durable:        r.cfg.Consumer,
		Description:    "capstan delivery to " + r.plan.Name,
		FilterSubjects: filters,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        r.cfg.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  4 * r.cfg.BatchSize * r.cfg.MaxInflight,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, errors.New("delivery consumer for " + r.plan.Name + ": " + err.Error())
	}
	// Events a previous process had in flight (it crashed, or lost the
	// lease) would wait out AckWait; redeliver them now. What was already
	// accepted is sent again and counted once by the destination.
	if _, err := js.ResetConsumer(ctx, stream.EventsStream, r.cfg.Consumer); err != nil {
		r.log.Debug("consumer reset not available; in-flight events of a previous run wait for AckWait", "error", err)
	}
	return cons, nil
}

// consume reads events and hands their conversions to the batcher until ctx
// ends.
//
// It pulls with explicit fetches, two in flight so that one is always
// open, rather than nats.go's continuous Consume or Messages. Those re-pull
// only from the handling of a message, and skip it while their goroutine
// that sends pulls is still busy with the previous one; when the last
// messages of the outstanding pulls are handled in that window (a saturated
// CPU), no pull is ever sent again and delivery stops until two heartbeats
// are missed. Measured while draining a 500,000-event backlog: the server
// held no pull request, every event was delivered and acknowledged, and
// nothing moved for ~10 s (5 s heartbeats) in 3 runs of 4 with Messages and
// 1 of 6 with Consume; with fetches, 0 of 12, at the same rate and CPU per
// event. A fetch ends by itself (full, or expired at the server), so
// nothing waits on such bookkeeping.
func (r *Runner) consume(ctx context.Context, cons jetstream.Consumer, out chan<- *item) {
	// Workers take what is waiting, up to chunkMax events at a time.
	msgs := make(chan jetstream.Msg, chunkMax*r.cfg.Workers)
	var workers sync.WaitGroup
	for range r.cfg.Workers {
		workers.Go(func() {
			chunk := make([]jetstream.Msg, 0, chunkMax)
			for msg := range msgs {
				chunk = append(chunk[:0], msg)
			more:
				for len(chunk) < chunkMax {
					select {
					case m, ok := <-msgs:
						if !ok {
							break more
						}
						chunk = append(chunk, m)
					default:
						break more
					}
				}
				r.handleChunk(ctx, chunk, out)
			}
		})
	}
	var fetchers sync.WaitGroup
	for range fetchersInFlight {
		fetchers.Go(func() { r.fetchLoop(ctx, cons, msgs) })
	}
	fetchers.Wait()
	close(msgs)
	workers.Wait()
}

// Fetching: fetchersInFlight fetches of up to fetchMax events each are open
// at any time. Events are handed on as they arrive, so a fetch's wait adds
// no latency. An idle fetch is renewed after RunnerConfig.FetchWait: the
// server ends it a little earlier (nats.go gives it 90% of the context's
// time, at most 1 s less), so that its last events arrive before the client
// stops listening; the run's end cancels fetches at once.
const (
	fetchersInFlight = 2
	fetchMax         = 1000
)

// fetchLoop fetches events into msgs until ctx ends. Events it received but
// could not hand on are not acknowledged: they are redelivered after
// AckWait, or at once after a restart (consumer reset).
func (r *Runner) fetchLoop(ctx context.Context, cons jetstream.Consumer, msgs chan<- jetstream.Msg) {
	for ctx.Err() == nil {
		// Take no new events while paused; what is in flight keeps trying.
		select {
		case <-r.unpaused():
		case <-ctx.Done():
			return
		}
		fctx, cancel := context.WithTimeout(ctx, r.cfg.FetchWait)
		// Heartbeats end a fetch whose server went away (a cluster node
		// restarting) after two missed ones (10 s) instead of FetchWait.
		hb := min(5*time.Second, r.cfg.FetchWait/4)
		batch, err := cons.Fetch(min(fetchMax, r.cfg.BatchSize*2), jetstream.FetchContext(fctx), jetstream.FetchHeartbeat(hb))
		if err == nil {
			for msg := range batch.Messages() {
				select {
				case msgs <- msg:
				case <-ctx.Done():
				}
			}
			err = batch.Error()
		}
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			r.log.Warn("reading events failed; retrying", "error", err)
			_ = r.clock.Sleep(ctx, time.Second)
		}
	}
}

// chunkMax bounds the events one worker takes at once (handleChunk).
const chunkMax = 64

// handleChunk converts stored events that were waiting together: the
// identity graph observes them in one go (ObserveAll: new visitors'
// profiles are created in one burst), then each is converted.
func (r *Runner) handleChunk(ctx context.Context, msgs []jetstream.Msg, out chan<- *item) {
	evs := make([]parsed, 0, len(msgs))
	var obs []identity.Observation
	var seqs []uint64 // of obs, for the log
	for _, msg := range msgs {
		p, ok := r.parse(ctx, msg)
		if !ok {
			continue
		}
		if p.observe {
			obs = append(obs, identity.Observation{Event: p.ev, Captured: *p.have})
			seqs = append(seqs, p.t.seq)
		}
		evs = append(evs, p)
	}
	if len(obs) > 0 {
		for i, err := range r.graph.ObserveAll(ctx, obs) {
			if err != nil {
				r.log.Warn("identity graph update failed", "error", err, "event_seq", seqs[i])
			}
		}
	}
	for _, p := range evs {
		if !r.convert(ctx, p, out) {
			return // ctx ended: the rest is not acknowledged, redelivered after restart
		}
	}
}

// parsed is a stored event ready for the graph and conversion.
type parsed struct {
	t       *tracked
	ev      mapping.Value
	have    *identity.Captured // captured identifiers; nil: capture at conversion
	observe bool               // the graph learns from it (consent allows)
}

// parse reads one stored event. It returns false when the event needs
// nothing more (a replay for another destination, or dead-lettered as
// unusable).
func (r *Runner) parse(ctx context.Context, msg jetstream.Msg) (parsed, bool) {
	md, _ := msg.Metadata()
	t := &tracked{msg: msg, source: msg.Headers().Get(event.HeaderSource), doc: msg.Data()}
	if md != nil {
		t.seq = md.Sequence.Stream
	}
	if rf := msg.Headers().Get(HeaderReplayFor); rf != "" && rf != r.plan.Name {
		_ = msg.Ack() // a replay for another destination
		return parsed{}, false
	}
	r.received.Inc()
	ev, err := mapping.Parse(t.doc)
	if err != nil {
		r.deadLetter(ctx, t, &DeadLetter{Reason: ReasonUnusable, Message: "stored event is not valid JSON: " + err.Error()})
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
	cookie := msg.Headers().Get(event.HeaderLiFatID)
	p.observe = r.graph != nil && identity.ConsentAllows(ev, r.plan.consent)
	if cookie != "" || p.observe {
		c := identity.Capture(ev)
		if c.LiFatID == "" && cookie != "" {
			c.LiFatID, c.LiFatIDFrom = cookie, "cookie capstan_lfi"
		}
		p.have = &c
	}
	return p, true
}

// convert runs a parsed event through the plan and queues its conversions;
// false when ctx ended first.
func (r *Runner) convert(ctx context.Context, p parsed, out chan<- *item) bool {
	t := p.t
	var enr Enricher
	if r.graph != nil {
		enr = r.graph
	}
	for _, res := range r.plan.Convert(ctx, p.ev, t.source, r.clock.Now(), enr, p.have) {
		switch res.Outcome {
		case Converted:
			t.pending.Add(1)
			select {
			case out <- &item{Payload: res.Payload, route: res.Route, ev: t}:
			case <-ctx.Done():
				return false // not acknowledged: redelivered after restart
			}
		case Invalid:
			r.m.events.WithLabelValues(r.plan.Name, string(Invalid)).Inc()
			dl := &DeadLetter{Reason: ReasonInvalid, Mapping: res.Route.Name, Message: res.Err.Error()}
			if pr, ok := problemOf(res.Err); ok {
				dl.Code, dl.Status, dl.Errors = pr.Code(), pr.Status(), pr.Details()
			}
			r.deadLetter(ctx, t, dl)
		default:
			r.m.events.WithLabelValues(r.plan.Name, string(res.Outcome)).Inc()
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
	r.mu.Lock()
	delete(r.live, t)
	r.mu.Unlock()
	if t.failed.Load() {
		// A dead letter could not be written: have the event redelivered
		// later instead of losing it.
		_ = t.msg.NakWithDelay(30 * time.Second)
		return
	}
	if err := t.msg.Ack(); err != nil {
		r.log.Warn("acknowledge event failed; it will be delivered again", "error", err, "event_seq", t.seq)
	}
}

// keepAlive tells JetStream that un-acknowledged events are still being
// worked on (retries can take longer than AckWait).
func (r *Runner) keepAlive(stop <-chan struct{}) {
	tick := time.NewTicker(r.cfg.AckWait / 3)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			r.mu.Lock()
			live := make([]*tracked, 0, len(r.live))
			for t := range r.live {
				live = append(live, t)
			}
			r.mu.Unlock()
			for _, t := range live {
				_ = t.msg.InProgress()
			}
		}
	}
}

package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/linkedin"
	"github.com/capstan-gw/capstan/internal/stream"
)

// Sender sends one request to LinkedIn and classifies the answer;
// *linkedin.Client implements it. A transport failure is a ClassRetry
// outcome (err says what happened).
type Sender interface {
	Send(ctx context.Context, req linkedin.Request) (linkedin.Outcome, error)
}

// Graph is the identity graph as delivery uses it: learn from every event,
// enrich conversions. *identity.Graph implements it.
type Graph interface {
	Enricher
	ObserveAll(ctx context.Context, obs []identity.Observation) []error
}

// RunnerConfig tunes one destination's delivery. Zero fields take defaults.
type RunnerConfig struct {
	// BatchSize is the most conversions per request (≤ 5000; a mapping's
	// own batch_size can only lower it). Default 5000.
	BatchSize int
	// Linger is how long a batch waits to fill. Default 1s.
	Linger time.Duration
	// PerMinute and PerDay are LinkedIn's request limits for the token.
	// Defaults 600 and 300000.
	PerMinute, PerDay int
	// MaxInflight caps concurrent requests. Default 4.
	MaxInflight int
	// Workers convert events concurrently: identity-graph reads and writes
	// are round trips to JetStream, and more of them in flight share its
	// syscalls and wake-ups (BenchmarkDelivery, new visitors: 8 workers
	// 9.1K events/s at 156 CPU-µs each, 32 workers 12.2K at 131). LinkedIn
	// does not care about the order of conversions. Default 32.
	Workers int
	// RetryBase and RetryMax bound the exponential backoff. Defaults 1s, 5m.
	RetryBase, RetryMax time.Duration
	// PauseRetry is how often a paused destination tries again. Default 30s.
	PauseRetry time.Duration
	// Window is LinkedIn's look-back: a conversion is dead-lettered as
	// expired rather than retried past it. Default 90 days.
	Window time.Duration
	// AckWait is the consumer's redelivery timeout; in-flight events are
	// kept alive well within it. Default 30s.
	AckWait time.Duration
	// FetchWait is how long an idle fetch of events stays open before it
	// is renewed (see consume). Default 30s.
	FetchWait time.Duration
	// Consumer is the durable consumer's name. Default "deliver-<name>".
	Consumer string
	// APIVersion is the LinkedIn-Version of every request.
	APIVersion string
	// Clock defaults to real time.
	Clock Clock
}

func (c *RunnerConfig) defaults(name string) {
	if c.BatchSize <= 0 || c.BatchSize > linkedin.MaxBatchSize {
		c.BatchSize = linkedin.MaxBatchSize
	}
	if c.Linger <= 0 {
		c.Linger = time.Second
	}
	if c.PerMinute <= 0 {
		c.PerMinute = 600
	}
	if c.PerDay <= 0 {
		c.PerDay = 300000
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = 4
	}
	if c.Workers <= 0 {
		c.Workers = 32
	}
	if c.RetryBase <= 0 {
		c.RetryBase = time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 5 * time.Minute
	}
	if c.PauseRetry <= 0 {
		c.PauseRetry = 30 * time.Second
	}
	if c.Window <= 0 {
		c.Window = linkedin.DefaultWindow
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.FetchWait <= 0 {
		c.FetchWait = 30 * time.Second
	}
	if c.Consumer == "" {
		c.Consumer = "deliver-" + name
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
}

// Runner delivers one destination: it reads EVENTS through a durable
// consumer, converts, batches, sends within the rate limits, retries, splits
// refused batches and dead-letters what cannot be delivered. An event is
// acknowledged only once each of its conversions was accepted by LinkedIn or
// is in the DLQ, so a crash at any point loses nothing; LinkedIn's eventId
// de-duplication absorbs the re-sends. It is safe for concurrent use; Run
// must be called once.
type Runner struct {
	plan   *Plan
	cfg    RunnerConfig
	send   Sender
	eng    *stream.Engine
	graph  Graph
	m      *Metrics
	log    *slog.Logger
	limit  *windowLimiter
	rc     linkedin.RequestConfig
	clock  Clock
	paused atomic.Pointer[string]

	resumeMu sync.Mutex
	resume   chan struct{} // closed (and replaced) by Resume: wakes every paused sender

	mu   sync.Mutex
	live map[*tracked]struct{} // un-acknowledged events, kept alive

	// Per-event metrics, resolved once (a label look-up per event is
	// measurable at tens of thousands of events per second).
	received, delivered prometheus.Counter
	endToEnd            prometheus.Observer
}

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

// item is one conversion on its way.
type item struct {
	Item
	route *Route
	ev    *tracked
	tries int
}

// NewRunner returns a Runner for plan. graph may be nil.
func NewRunner(plan *Plan, cfg RunnerConfig, send Sender, eng *stream.Engine, graph Graph, m *Metrics, log *slog.Logger) *Runner {
	cfg.defaults(plan.Name)
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Runner{
		plan: plan, cfg: cfg, send: send, eng: eng, graph: graph, m: m,
		received:  m.events.WithLabelValues(plan.Name, "received"),
		delivered: m.events.WithLabelValues(plan.Name, "delivered"),
		endToEnd:  m.endToEnd.WithLabelValues(plan.Name),
		log:       log.With("component", "delivery", "destination", plan.Name),
		limit:     newWindowLimiter(cfg.Clock, cfg.PerMinute, cfg.PerDay),
		rc:        linkedin.RequestConfig{APIVersion: cfg.APIVersion},
		clock:     cfg.Clock,
		resume:    make(chan struct{}),
		live:      map[*tracked]struct{}{},
	}
}

// TokenSource tells when the destination's access token expires;
// *linkedin.Client implements it.
type TokenSource interface {
	Token() linkedin.Token
}

// tokenWarnBefore is when expiry warnings start (14 days ahead).
const tokenWarnBefore = 14 * 24 * time.Hour

// Status is a destination's health for /readyz.
type Status struct {
	Destination string `json:"destination"`
	// State is "delivering" or "paused".
	State string `json:"state"`
	// Reason says why it is paused.
	Reason string `json:"reason,omitempty"`
	// TokenExpiresAt is the access token's expiry, when known.
	TokenExpiresAt *time.Time `json:"tokenExpiresAt,omitempty"`
	// Warning is set from 14 days before the token expires.
	Warning string `json:"warning,omitempty"`
}

// Status reports the destination's state. tokens may be nil.
func (r *Runner) Status(tokens TokenSource) Status {
	st := Status{Destination: r.plan.Name, State: "delivering"}
	if why := r.Paused(); why != "" {
		st.State, st.Reason = "paused", why
	}
	if tokens != nil {
		if exp := tokens.Token().ExpiresAt; !exp.IsZero() {
			st.TokenExpiresAt = &exp
			left := exp.Sub(r.clock.Now())
			r.m.tokenExpiry.WithLabelValues(r.plan.Name).Set(left.Seconds())
			if left < tokenWarnBefore {
				st.Warning = fmt.Sprintf("the access token expires in %s (%s); configure a new one or refresh credentials", left.Round(time.Hour), exp.UTC().Format(time.RFC3339))
			}
		}
	}
	return st
}

// WatchToken logs a warning once a day from 14 days before the token
// expires, until ctx ends.
func (r *Runner) WatchToken(ctx context.Context, tokens TokenSource) {
	for {
		if st := r.Status(tokens); st.Warning != "" {
			r.log.Warn("access token expiring", "detail", st.Warning)
		}
		if err := r.clock.Sleep(ctx, 24*time.Hour); err != nil {
			return
		}
	}
}

// Paused returns why the destination is paused, or "".
func (r *Runner) Paused() string {
	if p := r.paused.Load(); p != nil {
		return *p
	}
	return ""
}

// Resume makes a paused destination try again now (after an operator
// installed a new token): every paused request is sent again.
func (r *Runner) Resume() {
	r.resumeMu.Lock()
	close(r.resume)
	r.resume = make(chan struct{})
	r.resumeMu.Unlock()
}

func (r *Runner) resumed() <-chan struct{} {
	r.resumeMu.Lock()
	defer r.resumeMu.Unlock()
	return r.resume
}

// Pause pauses the destination from outside the runner (conversion rules
// could not be prepared because of the token, a permission or the version);
// Unpause ends it. Resumed is closed when an operator asks to try again.
func (r *Runner) Pause(why string) { r.pause(why) }

// Unpause ends a pause.
func (r *Runner) Unpause() { r.unpause() }

// Resumed returns a channel closed by the next Resume.
func (r *Runner) Resumed() <-chan struct{} { return r.resumed() }

func (r *Runner) pause(why string) {
	if r.Paused() == "" {
		r.log.Error("destination paused: events wait in the stream until this is fixed", "reason", why)
	}
	r.paused.Store(&why)
	r.m.paused.WithLabelValues(r.plan.Name).Set(1)
}

func (r *Runner) unpause() {
	if r.paused.Swap(nil) != nil {
		r.log.Info("destination resumed")
		r.m.paused.WithLabelValues(r.plan.Name).Set(0)
	}
}

// Run delivers until ctx ends. On stop it flushes what is batched and waits
// for requests in flight; events not yet accepted stay in the stream and are
// delivered after the next start.
func (r *Runner) Run(ctx context.Context) error {
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
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("delivery consumer for %s: %w", r.plan.Name, err)
	}
	// Events a previous process had in flight (it crashed, or lost the
	// lease) would wait out AckWait; redeliver them now. What was already
	// accepted is sent again and counted once by LinkedIn (eventId).
	if _, err := js.ResetConsumer(ctx, stream.EventsStream, r.cfg.Consumer); err != nil {
		r.log.Debug("consumer reset not available; in-flight events of a previous run wait for AckWait", "error", err)
	}
	items := make(chan *item, r.cfg.BatchSize)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() { r.keepAlive(stop) })
	var senders sync.WaitGroup
	batcherDone := make(chan struct{})
	go func() {
		defer close(batcherDone)
		r.batch(ctx, items, &senders)
	}()
	r.consume(ctx, cons, items)
	close(items)
	<-batcherDone
	senders.Wait()
	close(stop)
	wg.Wait()
	return nil
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
		if r.Paused() != "" {
			// Take no new events while paused; what is in flight keeps trying.
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
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
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
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
	ev      event.Value
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
	ev, err := event.Parse(t.doc)
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
			case out <- &item{Item: Item{Conversion: res.Conversion, Batching: res.Batching}, route: res.Route, ev: t}:
			case <-ctx.Done():
				return false // not acknowledged: redelivered after restart
			}
		case Invalid:
			r.m.events.WithLabelValues(r.plan.Name, string(Invalid)).Inc()
			dl := &DeadLetter{Reason: ReasonInvalid, Mapping: res.Route.Name, Message: res.Err.Error()}
			var ve *linkedin.ValidationError
			if errors.As(res.Err, &ve) {
				dl.Code, dl.Status, dl.Errors = ve.Code(), ve.Status(), ve.Errors
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

// batch gathers conversions and flushes on count, linger or stop.
func (r *Runner) batch(ctx context.Context, in <-chan *item, senders *sync.WaitGroup) {
	sem := make(chan struct{}, r.cfg.MaxInflight)
	var pending []*item
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() {
		if len(pending) == 0 {
			return
		}
		batch := pending
		pending = nil
		timer.Stop()
		sem <- struct{}{}
		senders.Go(func() {
			defer func() { <-sem }()
			// Requests already under way finish even when ctx ends; only
			// their retries stop.
			r.deliver(context.WithoutCancel(ctx), ctx, batch)
		})
	}
	for {
		select {
		case it, ok := <-in:
			if !ok {
				flush() // soft stop: send what is batched
				return
			}
			r.mu.Lock()
			r.live[it.ev] = struct{}{}
			r.mu.Unlock()
			if len(pending) == 0 {
				timer.Reset(r.cfg.Linger)
			}
			pending = append(pending, it)
			if len(pending) >= r.cfg.BatchSize {
				flush()
			}
		case <-timer.C:
			flush()
		}
	}
}

// deliver sends a flushed batch, each conversion in requests of at most
// its mapping's batch size and the destination's. send is used for
// requests, stop ends retries.
func (r *Runner) deliver(send, stop context.Context, batch []*item) {
	for _, it := range batch {
		if it.Batching.Size <= 0 || it.Batching.Size > r.cfg.BatchSize {
			it.Batching.Size = r.cfg.BatchSize
		}
	}
	r.sendItems(send, stop, batch)
}

// sendRequest sends req (whose elements are items, in order) until it is
// accepted, split, dead-lettered, or stop ends.
func (r *Runner) sendRequest(send, stop context.Context, req linkedin.Request, items []*item) {
	for attempt := 0; ; attempt++ {
		if waited, err := r.limit.Wait(stop); err != nil {
			r.abandon(items)
			return
		} else if waited {
			r.m.limited.WithLabelValues(r.plan.Name, "local").Inc()
		}
		start := time.Now()
		out, err := r.send.Send(send, req)
		r.m.latency.WithLabelValues(r.plan.Name).Observe(time.Since(start).Seconds())
		if out.Class == 0 {
			out.Class = linkedin.ClassRetry
		}
		r.m.requests.WithLabelValues(r.plan.Name, out.Class.String()).Inc()
		for _, it := range items {
			it.tries++
		}
		switch out.Class {
		case linkedin.ClassSuccess:
			r.unpause()
			r.m.batchSize.WithLabelValues(r.plan.Name).Observe(float64(len(items)))
			now := time.Now()
			r.delivered.Add(float64(len(items)))
			for _, it := range items {
				if !it.ev.recv.IsZero() {
					r.endToEnd.Observe(now.Sub(it.ev.recv).Seconds())
				}
				r.release(it.ev)
			}
			return

		case linkedin.ClassSplit:
			refused := map[int]linkedin.Failure{}
			for _, f := range out.Failures {
				refused[f.Index] = f
			}
			var rest []*item
			for i, it := range items {
				if f, ok := refused[i]; ok {
					r.reject(stop, it, out, f.Status, f.Message, f.Errors)
				} else {
					rest = append(rest, it)
				}
			}
			if len(refused) == 0 { // nothing named: treat as refused whole
				for _, it := range items {
					r.reject(stop, it, out, out.Status, out.Message, nil)
				}
				return
			}
			r.sendItems(send, stop, rest)
			return

		case linkedin.ClassTooLarge:
			if len(items) == 1 {
				r.reject(stop, items[0], out, out.Status, out.Message, nil)
				return
			}
			half := len(items) / 2
			r.sendItems(send, stop, items[:half])
			r.sendItems(send, stop, items[half:])
			return

		case linkedin.ClassDeadLetter:
			// A 422 on a single create carries its parsed errors.
			var errs any
			if len(items) == 1 && len(out.Failures) > 0 {
				errs = out.Failures[0].Errors
			}
			for _, it := range items {
				r.reject(stop, it, out, out.Status, out.Message, errs)
			}
			return

		case linkedin.ClassRetry:
			r.m.retries.WithLabelValues(r.plan.Name).Inc()
			if out.Status == 429 {
				r.m.limited.WithLabelValues(r.plan.Name, "remote").Inc()
				if out.DailyLimit {
					r.limit.exhaustDay()
				}
			}
			wait := backoff(r.cfg.RetryBase, r.cfg.RetryMax, attempt, out.RetryAfter)
			if out.DailyLimit {
				wait += time.Duration(rand.Int64N(int64(time.Minute)))
			}
			items = r.expire(stop, items, wait, out)
			if len(items) == 0 {
				return
			}
			r.log.Warn("LinkedIn request failed; retrying", "status", out.Status, "attempt", attempt+1, "wait", wait.String(), "batch_size", len(items), "error", errText(err, out))
			if err := r.clock.Sleep(stop, wait); err != nil {
				r.abandon(items)
				return
			}
			if len(items) != len(req.Indices) { // some expired: rebuild
				r.sendItems(send, stop, items)
				return
			}

		default: // auth, forbidden, version: pause and wait for a fix
			why := fmt.Sprintf("%s (HTTP %d): %s", out.Class, out.Status, out.Message)
			if out.Class == linkedin.ClassVersion {
				why += fmt.Sprintf("; LinkedIn-Version %s is not active: set destinations[].api_version to a current version (YYYYMM; LinkedIn supports each for a year) and restart", r.cfg.APIVersion)
			}
			wake := r.resumed()
			r.pause(why)
			select {
			case <-stop.Done():
				r.abandon(items)
				return
			case <-wake:
			case <-time.After(r.cfg.PauseRetry):
			}
		}
	}
}

// sendItems encodes items into requests (grouped per rule and batch size)
// and sends each; a split sends what LinkedIn did not refuse through here
// again.
func (r *Runner) sendItems(send, stop context.Context, items []*item) {
	if len(items) == 0 {
		return
	}
	conv := make([]Item, len(items))
	for i, it := range items {
		conv[i] = it.Item
	}
	reqs, err := BuildRequests(r.rc, conv)
	if err != nil {
		// Conversions passed validation, so this is a bug; keep the events
		// (they are redelivered shortly, not acknowledged).
		r.log.Error("encode request failed; events will be redelivered", "error", err)
		for _, it := range items {
			it.ev.failed.Store(true)
			r.release(it.ev)
		}
		return
	}
	for _, req := range reqs {
		sub := make([]*item, len(req.Indices))
		for j, idx := range req.Indices {
			sub[j] = items[idx]
		}
		r.sendRequest(send, stop, req, sub)
	}
}

// expire dead-letters the items that would leave LinkedIn's window before the
// next attempt and returns the others.
func (r *Runner) expire(ctx context.Context, items []*item, wait time.Duration, out linkedin.Outcome) []*item {
	deadline := r.clock.Now().Add(wait + time.Minute)
	keep := items[:0:0]
	for _, it := range items {
		happened := time.UnixMilli(it.Conversion.ConversionHappenedAt)
		if deadline.Sub(happened) >= r.cfg.Window {
			r.deadLetterItem(ctx, it, ReasonExpired, out.Status, "not delivered within LinkedIn's 90-day window; last error: "+out.Message, nil, out)
			continue
		}
		keep = append(keep, it)
	}
	return keep
}

// abandon leaves items un-acknowledged (stop): JetStream redelivers them.
func (r *Runner) abandon(items []*item) {
	for _, it := range items {
		r.mu.Lock()
		delete(r.live, it.ev)
		r.mu.Unlock()
	}
}

func (r *Runner) reject(ctx context.Context, it *item, out linkedin.Outcome, status int, msg string, errs any) {
	r.deadLetterItem(ctx, it, ReasonRejected, status, msg, errs, out)
}

func (r *Runner) deadLetterItem(ctx context.Context, it *item, reason string, status int, msg string, errs any, out linkedin.Outcome) {
	payload, _ := json.Marshal(it.Conversion)
	r.deadLetter(ctx, it.ev, &DeadLetter{
		Reason: reason, Mapping: it.route.Name, Status: status, Code: out.Code, Message: msg, Errors: errs,
		RequestID: out.RequestID, Attempts: it.tries, Payload: payload,
	})
	r.release(it.ev)
}

// deadLetter writes dl for event t. A failed write marks t so that it is
// redelivered rather than acknowledged.
func (r *Runner) deadLetter(ctx context.Context, t *tracked, dl *DeadLetter) {
	dl.At = r.clock.Now().UTC()
	dl.Destination, dl.Source, dl.EventSeq, dl.Event = r.plan.Name, t.source, t.seq, t.doc
	var probe struct {
		MessageID string `json:"messageId"`
	}
	_ = json.Unmarshal(t.doc, &probe)
	dl.MessageID = probe.MessageID
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := writeDeadLetter(wctx, r.eng, dl); err != nil {
		t.failed.Store(true)
		r.log.Error("dead-letter write failed; the event will be delivered again", "error", err, "event_seq", t.seq)
		return
	}
	r.m.deadLetters.WithLabelValues(r.plan.Name, dl.Reason).Inc()
	r.m.events.WithLabelValues(r.plan.Name, "dead_lettered").Inc()
	// The detail stays in the DLQ entry (capstan dlq show): LinkedIn's messages
	// may echo field values.
	r.log.Warn("conversion dead-lettered", "reason", dl.Reason, "mapping", dl.Mapping, "status", dl.Status, "code", dl.Code, "message_id", dl.MessageID)
}

// backoff is capped exponential backoff with full jitter; retryAfter is the
// minimum (STYLE §7).
func backoff(base, maxWait time.Duration, attempt int, retryAfter time.Duration) time.Duration {
	ceil := maxWait
	if attempt < 30 {
		ceil = min(maxWait, base<<attempt)
	}
	return max(retryAfter, time.Duration(rand.Int64N(int64(ceil)+1)))
}

func errText(err error, out linkedin.Outcome) string {
	if err != nil {
		return err.Error()
	}
	return out.Message
}

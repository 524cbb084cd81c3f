package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/stream"
)

// Graph is the identity graph as delivery uses it: learn from every event,
// enrich conversions. *identity.Graph implements it. The events it is given
// (an Observation's Event too) are valid only during the call: they are
// parsed into the runner's reused memory (event.Arena), so it keeps none of
// their objects or arrays; their strings it may keep.
type Graph interface {
	Enricher
	// EnrichChecked is Enrich returning a failed look-up's error.
	EnrichChecked(ctx context.Context, ev event.Value, source string, have identity.Captured) (identity.Captured, error)
	// EnrichKeys is EnrichChecked with the event's keys computed already.
	EnrichKeys(ctx context.Context, k identity.Keys, source string, have identity.Captured) (identity.Captured, error)
	ObserveAll(ctx context.Context, obs []identity.Observation) []error
}

// Suppressor tells the events of people deleted on request (privacy
// suppression). *privacy.Suppressions implements it. Suppressed must be
// cheap: it is asked about every event, which is valid only during the
// call (as for Graph).
type Suppressor interface {
	Suppressed(ev event.Value) bool
}

// RunnerConfig tunes one destination's delivery. Zero fields take defaults.
type RunnerConfig struct {
	// BatchSize is the most payloads one flushed batch holds; the Format
	// may split it into smaller requests. Default 5000.
	BatchSize int
	// Linger is how long a batch waits to fill. Default 1s.
	Linger time.Duration
	// PerMinute and PerDay are the remote's request limits for one
	// LimitKey, counted in UTC-aligned windows. Defaults 600 and 300000
	// (LinkedIn's).
	PerMinute, PerDay int
	// MaxInflight caps concurrent requests. Default 4.
	MaxInflight int
	// Workers convert events concurrently: identity-graph reads and writes
	// are round trips to JetStream, and more of them in flight share its
	// syscalls and wake-ups (BenchmarkDelivery, new visitors: 8 workers
	// 9.1K events/s at 156 CPU-µs each, 32 workers 12.2K at 131). The
	// remote does not care about the order of conversions. Default 32.
	Workers int
	// RetryBase and RetryMax bound the exponential backoff. Defaults 1s, 5m.
	RetryBase, RetryMax time.Duration
	// PauseRetry is how often a paused destination tries again. Default 30s.
	PauseRetry time.Duration
	// AccessCheck is how often an AccessChecker destination checks its
	// access while it delivers, in real time (a check is a request to the
	// remote: a skipping test clock must not turn it into a flood).
	// Default AccessCheckEvery (24h).
	AccessCheck time.Duration
	// Window is how long after it happened a conversion may still be
	// sent: one that would leave it before the next attempt is
	// dead-lettered as expired rather than retried. Default 90 days
	// (LinkedIn's look-back).
	Window time.Duration
	// AckWait is the consumer's redelivery timeout; in-flight events are
	// kept alive well within it. Default 30s.
	AckWait time.Duration
	// FetchWait is how long an idle fetch of events stays open before it
	// is renewed (see consume). Default 30s.
	FetchWait time.Duration
	// Consumer is the durable consumer's name. Default "deliver-<name>".
	Consumer string
	// Clock defaults to real time.
	Clock Clock
	// EventIDCollision is what happens to a conversion that repeats the
	// key of another with different content within GuardTTL, when the
	// Format is Keyed: CollisionSuffix (default) or CollisionDeadLetter.
	EventIDCollision string
}

// DefaultWindow is RunnerConfig.Window's default: LinkedIn's 90 days.
const DefaultWindow = 90 * 24 * time.Hour

func (c *RunnerConfig) defaults(name string) {
	if c.BatchSize <= 0 {
		c.BatchSize = 5000
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
	if c.AccessCheck <= 0 {
		c.AccessCheck = AccessCheckEvery
	}
	if c.Window <= 0 {
		c.Window = DefaultWindow
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

// Deps are a Runner's collaborators.
type Deps struct {
	// Engine holds the EVENTS and DLQ streams. Required.
	Engine *stream.Engine
	// Graph learns from events and enriches conversions; nil for none.
	Graph Graph
	// Suppressor, when set, keeps the events of people deleted on request
	// from being delivered and from teaching the graph; nil: none.
	Suppressor Suppressor
	// Limits is shared by every runner of the process, so that
	// destinations with the same LimitKey share the remote's limits; nil
	// gives the runner limits of its own.
	Limits *Limits
	// Lease, when set, makes only the replica holding it deliver (an
	// external cluster shared by replicas). nil: deliver at once (the
	// embedded engine's lock already makes this the only process).
	Lease *Lease
	// Metrics is shared by every runner; nil: not registered.
	Metrics *Metrics
	// Ledger, when set, counts the conversions the remote accepted per
	// rule and day (reconciliation); nil: not counted.
	Ledger *Ledger
	// Funnel, when set, counts each stage of the destination's funnel for
	// durable statistics (internal/stats); nil: none.
	Funnel Funnel
	// GuardStore, when set, holds the eventId collision guard's claims
	// (the embedded engine's local store, shared by every runner of the
	// process); nil: the KV bucket GuardKV.
	GuardStore *GuardLocal
	// Log defaults to discarding.
	Log *slog.Logger
}

// Runner delivers one destination: it reads EVENTS through a durable
// consumer, converts with its Plan, batches, sends through its Destination
// within the rate limits, retries, splits refused batches and dead-letters
// what cannot be delivered. An event is acknowledged only once each of its
// conversions was accepted or is in the DLQ, so a crash at any point loses
// nothing; the destination's own de-duplication (LinkedIn: eventId) absorbs
// the re-sends. It is safe for concurrent use; Serve or Run must be called
// once.
type Runner struct {
	// plan is the plan the runner started with: its name, sources and
	// format never change. current is the plan in force for conversion
	// (mappings, consent, display name), replaced by SetPlan.
	plan    *Plan
	current atomic.Pointer[Plan]
	setMu   sync.Mutex // serialises Prepare calls (start and SetPlan)
	dest    Destination
	cfg     RunnerConfig
	eng     *stream.Engine
	graph   Graph
	sup     Suppressor
	limits  *Limits
	lease   *Lease
	m       *Metrics
	ledger  *Ledger
	guard   *guard // nil: the Format has no keys (set by Run)
	// guardLocal is Deps.GuardStore.
	guardLocal *GuardLocal
	log        *slog.Logger
	clock      Clock
	paused     atomic.Pointer[string]
	standby    atomic.Bool
	ready      atomic.Bool // Prepare succeeded: the plan's routes are final
	// degraded says why delivery cannot read events now (a transient
	// engine error, retried with backoff); nil when it can.
	degraded atomic.Pointer[string]
	// graphDown is an ongoing failure of the identity graph (read.go hold).
	graphDown atomic.Pointer[graphFault]
	// acks confirms the acknowledgements of the current Run (ack.go).
	acks atomic.Pointer[acker]

	// retrying is set by a failed attempt, cleared by an accepted one.
	retrying atomic.Pointer[Retrying]

	resumeMu sync.Mutex
	resume   chan struct{} // closed (and replaced) by Resume: wakes every paused sender
	running  chan struct{} // closed while not paused: paused readers wait on it

	// Per-event metrics, resolved once (a label look-up per event is
	// measurable at tens of thousands of events per second).
	received, delivered prometheus.Counter
	endToEnd            prometheus.Observer
	funnel              *funnelCounters
}

// NewRunner returns the Runner of plan, sending through dest.
func NewRunner(plan *Plan, dest Destination, cfg RunnerConfig, deps Deps) (*Runner, error) {
	switch {
	case plan == nil:
		return nil, errors.New("delivery: a runner needs a plan")
	case dest == nil:
		return nil, fmt.Errorf("delivery: destination %s: a runner needs a destination", plan.Name)
	case deps.Engine == nil:
		return nil, fmt.Errorf("delivery: destination %s: a runner needs the engine", plan.Name)
	}
	cfg.defaults(plan.Name)
	m := deps.Metrics
	if m == nil {
		m = NewMetrics(nil)
	}
	limits := deps.Limits
	if limits == nil {
		limits = NewLimits(cfg.Clock)
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Runner{
		plan: plan, dest: dest, cfg: cfg, eng: deps.Engine, graph: deps.Graph, sup: deps.Suppressor, limits: limits, lease: deps.Lease, m: m, ledger: deps.Ledger, guardLocal: deps.GuardStore,
		received:  m.events.WithLabelValues(plan.Name, "received"),
		delivered: m.events.WithLabelValues(plan.Name, "delivered"),
		endToEnd:  m.endToEnd.WithLabelValues(plan.Name),
		funnel:    newFunnelCounters(plan, deps.Funnel, m),
		log:       log.With("component", "delivery", "destination", plan.Name),
		clock:     cfg.Clock,
		resume:    make(chan struct{}),
		running:   closedChan(),
	}
	r.current.Store(plan)
	return r, nil
}

// Plan returns the plan in force: the one the runner started with or the
// last one SetPlan installed.
func (r *Runner) Plan() *Plan { return r.current.Load() }

// SetPlan makes p the plan in force for the events read from now on: its
// mappings (added, removed or changed), consent categories and display
// name apply without a restart. p must be the same destination's, built
// with the runner's Format (NewPlan with Plan().Format) and taking the same
// sources (the durable consumer's filter is set at start). When the
// destination is a Preparer, p is prepared first (a new mapping's
// conversion rule created, campaigns associated); if that fails, the plan
// in force stays and the error says why. Conversions already batched are
// sent as built; nothing is read twice or skipped.
func (r *Runner) SetPlan(ctx context.Context, p *Plan) error {
	switch {
	case p == nil:
		return errors.New("delivery: no plan")
	case p.Name != r.plan.Name:
		return fmt.Errorf("delivery: plan of %s given to the runner of %s", p.Name, r.plan.Name)
	case !maps.Equal(p.sources, r.plan.sources):
		return fmt.Errorf("destination %s: its sources changed; that needs a restart", p.Name)
	}
	r.setMu.Lock()
	defer r.setMu.Unlock()
	if pr, ok := r.dest.(Preparer); ok {
		if err := pr.Prepare(ctx, p); err != nil {
			return fmt.Errorf("destination %s: new mappings not applied: %w", p.Name, err)
		}
	}
	r.current.Store(p)
	return nil
}

// Name returns the destination's name.
func (r *Runner) Name() string { return r.plan.Name }

// Retrying says since when, and why, the destination's requests are being
// retried: the remote failed (a 5xx, a 429, a timeout) and no request has
// been accepted since.
type Retrying struct {
	// Since is the first failed attempt since the last accepted request.
	Since time.Time `json:"since"`
	// Status and Message are the last failed attempt's answer (Status 0:
	// no answer, such as a timeout); never a secret.
	Status  int    `json:"status,omitempty"`
	Message string `json:"message"`
}

// Retrying returns the destination's ongoing retries, nil when its last
// request was accepted (or none failed).
func (r *Runner) Retrying() *Retrying {
	if p := r.retrying.Load(); p != nil {
		c := *p
		return &c
	}
	return nil
}

// RateUsage reports the rate-limit use of the destination's current
// LimitKey (for LinkedIn, its access token) this minute and today.
func (r *Runner) RateUsage() RateUsage {
	return r.limits.usage(r.dest.LimitKey(), r.cfg.PerMinute, r.cfg.PerDay)
}

// tokenWarnBefore is when expiry warnings start (14 days ahead).
const tokenWarnBefore = 14 * 24 * time.Hour

// Status is a destination's health for /readyz and the console.
type Status struct {
	Destination string `json:"destination"`
	// State is "delivering", "paused", "degraded" (the engine refused to
	// open the destination's consumer, or the identity graph has not
	// answered for a while and events are held: retried with backoff,
	// Reason says why) or "standby" (another replica holds the lease).
	State string `json:"state"`
	// Reason says why it is paused or degraded.
	Reason string `json:"reason,omitempty"`
	// TokenExpiresAt is the access token's expiry, when known.
	TokenExpiresAt *time.Time `json:"tokenExpiresAt,omitempty"`
	// Warning is set from 14 days before the token expires.
	Warning string `json:"warning,omitempty"`
}

// Status reports the destination's state.
func (r *Runner) Status() Status {
	st := Status{Destination: r.plan.Name, State: "delivering"}
	if why := r.Paused(); why != "" {
		st.State, st.Reason = "paused", why
	} else if why := r.degraded.Load(); why != nil {
		st.State, st.Reason = "degraded", *why
	} else if why := r.graphDegraded(); why != "" {
		st.State, st.Reason = "degraded", why
	} else if r.standby.Load() {
		st.State = "standby"
	}
	if ts, ok := r.dest.(TokenSource); ok {
		if exp := ts.TokenExpiresAt(); !exp.IsZero() {
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

// watchToken keeps capstan_destination_token_expiry_seconds current (every
// tokenGaugeEvery, so an alert on it does not depend on someone reading
// /readyz) and logs a warning once a day from 14 days before the token
// expires, until ctx ends.
func (r *Runner) watchToken(ctx context.Context) {
	if _, ok := r.dest.(TokenSource); !ok {
		return
	}
	var warned time.Time
	for {
		if st := r.Status(); st.Warning != "" && r.clock.Now().Sub(warned) >= 24*time.Hour {
			r.log.Warn("access token expiring", "detail", st.Warning)
			warned = r.clock.Now()
		}
		if err := r.clock.Sleep(ctx, tokenGaugeEvery); err != nil {
			return
		}
	}
}

// AccessCheckEvery is RunnerConfig.AccessCheck's default.
const AccessCheckEvery = 24 * time.Hour

// watchAccess checks the destination's access every cfg.AccessCheck
// (AccessChecker) until ctx ends: a problem only an operator can fix
// pauses the destination, which is checked again every PauseRetry and at
// every Resume, and resumes once a check passes. Its waits are in real
// time, like a pause's retry.
func (r *Runner) watchAccess(ctx context.Context) {
	ac, ok := r.dest.(AccessChecker)
	if !ok {
		return
	}
	needsOperator := func(err error) bool {
		if p, ok := r.dest.(Preparer); ok {
			return p.NeedsOperator(err)
		}
		return true
	}
	paused, wait := false, r.cfg.AccessCheck
	var resumed <-chan struct{} // taken before the last check
	for {
		var wake <-chan struct{}
		if paused {
			// A Resume during the check that paused counts: the
			// operator may have fixed what it found.
			wake = resumed
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-wake:
		case <-t.C:
		}
		t.Stop()
		resumed = r.resumed()
		err := ac.CheckAccess(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			if paused {
				r.unpause()
			}
			paused, wait = false, r.cfg.AccessCheck
		case needsOperator(err):
			r.pause(err.Error())
			paused, wait = true, r.cfg.PauseRetry
		default:
			r.log.Warn("access check failed; delivery goes on and the check is tried again", "error", err)
			if !paused {
				wait = min(time.Hour, r.cfg.AccessCheck)
			}
		}
	}
}

// tokenGaugeEvery is how often watchToken refreshes the token-expiry gauge.
const tokenGaugeEvery = time.Minute

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

// resumed returns a channel closed by the next Resume.
func (r *Runner) resumed() <-chan struct{} {
	r.resumeMu.Lock()
	defer r.resumeMu.Unlock()
	return r.resume
}

func (r *Runner) pause(why string) {
	r.resumeMu.Lock()
	if r.paused.Swap(&why) == nil {
		r.running = make(chan struct{})
		r.log.Error("destination paused: events wait in the stream until this is fixed", "reason", why)
	}
	r.resumeMu.Unlock()
	r.m.paused.WithLabelValues(r.plan.Name).Set(1)
}

func (r *Runner) unpause() {
	r.resumeMu.Lock()
	if r.paused.Swap(nil) != nil {
		close(r.running)
		r.log.Info("destination resumed")
		r.m.paused.WithLabelValues(r.plan.Name).Set(0)
	}
	r.resumeMu.Unlock()
}

// unpaused returns a channel closed while the destination is not paused.
func (r *Runner) unpaused() <-chan struct{} {
	r.resumeMu.Lock()
	defer r.resumeMu.Unlock()
	return r.running
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// sleep waits d on the runner's clock, or until wake is closed; it returns
// ctx's error if ctx ends first.
func (r *Runner) sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-wake:
			cancel()
		case <-wctx.Done():
		}
	}()
	if err := r.clock.Sleep(wctx, d); err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

// Serve prepares the destination (when it is a Preparer: retried with
// backoff, paused while only an operator can help) and delivers until ctx
// ends. With a Lease, only the replica holding it delivers; the others
// stand by (Status says so) and take over when it stops renewing.
func (r *Runner) Serve(ctx context.Context) error {
	go r.watchToken(ctx)
	go r.watchAccess(ctx)
	if err := r.prepare(ctx); err != nil || ctx.Err() != nil {
		return err
	}
	if r.lease == nil {
		r.runRetrying(ctx)
		return nil
	}
	return r.lease.Hold(ctx, func() {
		r.standby.Store(true)
		r.degraded.Store(nil)
		r.log.Info("another replica delivers this destination; standing by")
	}, func(ctx context.Context) error {
		r.standby.Store(false)
		r.runRetrying(ctx)
		return nil
	})
}

// runRetrying calls Run until ctx ends. An error of Run is the engine's (a
// cluster node restarting, a consumer leader being elected): it never ends
// the process; the destination shows "degraded" with the error in /readyz
// and Run is tried again with backoff (1s doubling to 30s), which also
// keeps the lease renewed meanwhile.
func (r *Runner) runRetrying(ctx context.Context) {
	for attempt := 0; ctx.Err() == nil; attempt++ {
		err := r.Run(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		why := err.Error()
		r.degraded.Store(&why)
		wait := min(30*time.Second, time.Second<<min(attempt, 5))
		r.log.Warn("delivery cannot read events; retrying", "error", err, "attempt", attempt+1, "retry_in", wait.String())
		if r.sleep(ctx, wait, nil) != nil {
			return
		}
	}
}

// prepare calls the destination's Prepare until it succeeds or ctx ends.
func (r *Runner) prepare(ctx context.Context) error {
	p, ok := r.dest.(Preparer)
	if !ok {
		return nil
	}
	for attempt := 0; ; attempt++ {
		// Taken before the attempt: a Resume while Prepare runs (an
		// operator who has just installed a token) wakes the retry at
		// once instead of being lost.
		wake := r.resumed()
		r.setMu.Lock() // not at once with SetPlan's: a rule is created once
		err := p.Prepare(ctx, r.Plan())
		r.setMu.Unlock()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		wait := min(5*time.Minute, time.Second<<min(attempt, 8))
		if p.NeedsOperator(err) {
			// Only a new token or configuration helps: say so in /readyz,
			// and wait for a person (Resume) or PauseRetry in real time,
			// like a paused send: never a busy loop under a skipping clock.
			r.pause(err.Error())
			r.log.Error("destination not ready; delivery waits for an operator", "error", err, "retry_in", r.cfg.PauseRetry.String())
			t := time.NewTimer(r.cfg.PauseRetry)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-wake:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		r.log.Error("destination not ready; delivery waits", "error", err, "retry_in", wait.String())
		if r.sleep(ctx, wait, wake) != nil {
			return nil
		}
	}
	r.unpause()
	r.ready.Store(true)
	return nil
}

// Prepared reports whether the destination is prepared (Serve's Prepare
// succeeded, or it needs none): from then on the plan's routes, their
// rule ids included, no longer change and may be read concurrently.
func (r *Runner) Prepared() bool {
	if _, ok := r.dest.(Preparer); !ok {
		return true
	}
	return r.ready.Load()
}

// Run delivers until ctx ends, without preparing or a lease (Serve does
// both). On stop it flushes what is batched and waits for requests in
// flight; events not yet accepted stay in the stream and are delivered
// after the next start.
func (r *Runner) Run(ctx context.Context) error {
	g, err := openGuard(ctx, r.eng, r.plan.Format, r.cfg.EventIDCollision, r.guardLocal)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("destination %s: %w", r.plan.Name, err)
	}
	r.guard = g
	src, err := r.open(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if r.degraded.Swap(nil) != nil {
		r.log.Info("delivery reads events again")
	}
	if !r.eng.Embedded() {
		acks := r.startAcker()
		r.acks.Store(acks)
		defer func() {
			r.acks.Store(nil)
			acks.stop()
		}()
	}
	items := make(chan *item, r.cfg.BatchSize)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() { src.KeepAlive(stop) })
	var senders sync.WaitGroup
	batcherDone := make(chan struct{})
	go func() {
		defer close(batcherDone)
		r.batch(ctx, items, &senders)
	}()
	r.consume(ctx, src, items)
	close(items)
	<-batcherDone
	senders.Wait()
	close(stop)
	wg.Wait()
	return nil
}

package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ConsumerConfig configures a durable consumer of EVENTS. Zero fields take
// the defaults.
type ConsumerConfig struct {
	// Durable is the consumer's name; required. Its position survives
	// restarts and is shared by every process that uses the name.
	Durable string
	// Description is shown by the nats CLI.
	Description string
	// Sources selects the sources whose events are delivered; empty means
	// every source.
	Sources []string
	// AckWait is how long a delivered event may stay unacknowledged (and
	// without InProgress) before it is delivered again. Default 30s.
	AckWait time.Duration
	// MaxAckPending is the most events delivered and not yet acknowledged;
	// beyond it the consumer delivers nothing new. Default 1000.
	MaxAckPending int
	// FetchWait is how long an idle fetch stays open before it is renewed
	// (see Feed). Default 30s.
	FetchWait time.Duration
	// Batch, when set, is the most messages (segments, each holding one
	// or more events) one fetch asks for, 1 to 1000. By default a fetch
	// asks for up to FetchBytes (and at most 1,000 messages) instead, so
	// that a fetch of large segments holds as little memory as one of
	// single events.
	Batch int
	// FetchBytes bounds the data one fetch asks for when Batch is not set.
	// Default 8 MiB (more than the largest message).
	FetchBytes int
	// Dedup, while it follows the stream (Dedup.Follow: cluster mode), is
	// asked about each event: one whose first occurrence is earlier in the
	// stream (stored by another replica at the same moment) is acknowledged
	// without being handed on. Default: the process's index (OpenDedup).
	Dedup *Dedup
}

// Fetching: fetchersInFlight fetches of up to fetchMax events each are open
// at any time. Events are handed on as they arrive, so a fetch's wait adds
// no latency. An idle fetch is renewed after ConsumerConfig.FetchWait: the
// server ends it a little earlier (nats.go gives it 90% of the context's
// time, at most 1 s less), so that its last events arrive before the client
// stops listening; the end of Feed's context cancels fetches at once.
const (
	fetchersInFlight = 2
	fetchMax         = 1000
)

// Consumer is a durable, acknowledged consumer of EVENTS: the read path of
// delivery. Every event is delivered until it is acknowledged, at least
// once; with two fetches in flight, not necessarily in stream order.
type Consumer struct {
	cons jetstream.Consumer
	cfg  ConsumerConfig
	log  *slog.Logger

	mu sync.Mutex
	// done holds, per segment delivered and not yet acknowledged, which
	// of its events were acknowledged in this process: a segment given
	// back or delivered again hands on only the others.
	done map[uint64][]bool
	// held holds every message received and not yet settled or dropped
	// (KeepAlive keeps them alive), from the moment nats.go hands it over.
	held map[*segState]struct{}
}

// Consumer creates the durable consumer cfg.Durable, or updates it to cfg,
// and returns it. Events a previous process had in flight (it crashed, or
// lost a lease) are redelivered at once rather than after AckWait.
func (e *Engine) Consumer(ctx context.Context, cfg ConsumerConfig) (*Consumer, error) {
	if cfg.Durable == "" {
		return nil, errors.New("events consumer: no durable name")
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.MaxAckPending <= 0 {
		cfg.MaxAckPending = 1000
	}
	if cfg.FetchWait <= 0 {
		cfg.FetchWait = 30 * time.Second
	}
	if cfg.Batch > fetchMax {
		cfg.Batch = fetchMax
	}
	if cfg.FetchBytes <= 0 {
		cfg.FetchBytes = 8 << 20
	}
	if cfg.Dedup == nil {
		cfg.Dedup = e.dedup.Load()
	}
	filters := []string{EventsSubject + ".>"}
	if len(cfg.Sources) > 0 {
		filters = filters[:0]
		for _, s := range cfg.Sources {
			if !validToken(s) {
				return nil, fmt.Errorf("events consumer %s: %q is not a source name", cfg.Durable, s)
			}
			filters = append(filters, EventsSubject+"."+s+".>")
		}
	}
	cons, err := e.js.CreateOrUpdateConsumer(ctx, EventsStream, jetstream.ConsumerConfig{
		Durable:        cfg.Durable,
		Description:    cfg.Description,
		FilterSubjects: filters,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        cfg.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  cfg.MaxAckPending,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("events consumer %s: %w", cfg.Durable, err)
	}
	c := &Consumer{cons: cons, cfg: cfg, log: e.log.With("consumer", cfg.Durable), done: make(map[uint64][]bool), held: make(map[*segState]struct{})}
	// Events a previous process had in flight would wait out AckWait;
	// redeliver them now. What was already handled is handled again.
	if _, err := e.js.ResetConsumer(ctx, EventsStream, cfg.Durable); err != nil {
		c.log.Debug("consumer reset not available; in-flight events of a previous run wait for AckWait", "error", err)
	}
	return c, nil
}

// Delivery is one event delivered by a Consumer. It must be settled
// (Ack, AckSync or NakWithDelay) once handled, or it is delivered again
// after AckWait.
//
// The events of one segment share its message (segment.go): the segment is
// acknowledged once every event of it is acknowledged, with a confirmed
// acknowledgement if any of them asked for one (AckSync); when one of them
// was given back (NakWithDelay), the segment is delivered again once every
// event is settled, and then only the events not acknowledged in this
// process are handed on again.
type Delivery struct {
	Stored
	seg *segState
}

// segState is one delivered message (a segment, or an event of an older
// release) and the settling of its events. It is held (Consumer.held) from
// its receipt until it is finished or dropped.
type segState struct {
	c   *Consumer
	msg jetstream.Msg
	seq uint64

	mu       sync.Mutex
	done     []bool // by index: acknowledged in this process (shared with c.done until the message is acknowledged)
	state    []byte // by index: 0 in flight, 1 acknowledged, 2 given back
	open     int    // events handed on and not settled
	sync     bool   // an event asked for a confirmed acknowledgement
	nak      time.Duration
	naked    bool
	finished bool // the message was acknowledged or given back
	acked    bool // ... and the acknowledgement confirmed (sync)
	progress time.Time
}

const (
	stateInFlight = iota
	stateAcked
	stateNaked
)

// settle records the end of event idx; complete is true when it was the
// last event of the message in flight.
func (s *segState) settle(idx int, st byte, sync bool, delay time.Duration) (complete bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state[idx] != stateInFlight {
		return false
	}
	s.state[idx] = st
	switch st {
	case stateAcked:
		s.c.mu.Lock()
		s.done[idx] = true
		s.c.mu.Unlock()
		s.sync = s.sync || sync
	case stateNaked:
		s.naked = true
		s.nak = max(s.nak, delay)
	}
	s.open--
	if s.open > 0 {
		return false
	}
	s.finished = true
	return true
}

// finishMsg acknowledges (or gives back) the message once every event of
// it is settled; with wait, a confirmed acknowledgement is awaited.
func (s *segState) finishMsg(ctx context.Context) error {
	s.c.drop(s)
	s.mu.Lock()
	naked, delay, sync, acked := s.naked, s.nak, s.sync, s.acked
	s.mu.Unlock()
	switch {
	case naked:
		return s.msg.NakWithDelay(delay)
	case acked:
		return nil
	case sync:
		if err := s.msg.DoubleAck(ctx); err != nil {
			return err
		}
		s.mu.Lock()
		s.acked = true
		s.mu.Unlock()
	default:
		if err := s.msg.Ack(); err != nil {
			return err
		}
	}
	s.c.forget(s.seq)
	return nil
}

// Ack acknowledges the event: it is not delivered again. It does not wait
// for the server: an acknowledgement lost on the way (a consumer-leader
// change in a cluster) has the event delivered again; AckSync confirms.
// When an event of the same segment asked for a confirmed
// acknowledgement, the segment's is confirmed in the background.
func (d *Delivery) Ack() error {
	if !d.seg.settle(d.Index, stateAcked, false, 0) {
		return nil
	}
	d.seg.mu.Lock()
	sync := d.seg.sync
	d.seg.mu.Unlock()
	if !sync {
		return d.seg.finishMsg(context.Background())
	}
	go d.seg.confirm()
	return nil
}

// confirm retries the segment's confirmed acknowledgement for up to
// AckWait (after which it is delivered again anyway).
func (s *segState) confirm() {
	deadline := time.Now().Add(s.c.cfg.AckWait)
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.finishMsg(ctx)
		cancel()
		if err == nil || time.Now().Add(wait).After(deadline) {
			if err != nil {
				s.c.log.Warn("segment acknowledgement not confirmed; it will be delivered again", "seq", s.seq, "error", err)
			}
			return
		}
		time.Sleep(wait)
	}
}

// AckSync acknowledges the event and, when it is the last of its segment
// to be settled, acknowledges the segment and waits for the server's
// confirmation (JetStream's "double ack"). Once it returns nil, the event
// is not delivered again, even after a leader change: either the segment's
// acknowledgement is recorded, or another event of it is still in flight in
// this process, which hands on only the events not acknowledged when the
// segment comes again. An error means the acknowledgement may not have
// been recorded; calling it again is safe.
func (d *Delivery) AckSync(ctx context.Context) error {
	if !d.seg.settle(d.Index, stateAcked, true, 0) {
		d.seg.mu.Lock()
		retry := d.seg.finished && d.seg.state[d.Index] == stateAcked && !d.seg.acked && !d.seg.naked
		d.seg.mu.Unlock()
		if !retry {
			return nil
		}
	}
	return d.seg.finishMsg(ctx)
}

// NakWithDelay has the event delivered again after delay (with the other
// events of its segment not acknowledged, once they are all settled).
func (d *Delivery) NakWithDelay(delay time.Duration) error {
	if !d.seg.settle(d.Index, stateNaked, false, delay) {
		return nil
	}
	return d.seg.finishMsg(context.Background())
}

// InProgress tells the stream the event is still being worked on: its
// segment's AckWait starts again (told at most once a second, or four
// times per AckWait, per segment).
func (d *Delivery) InProgress() error { return d.seg.inProgress() }

// Abandon stops keeping the event's segment alive (KeepAlive) without
// settling it: a reader that stops leaves it to be delivered again after
// AckWait, or at once to the next Consumer of the same name.
func (d *Delivery) Abandon() { d.seg.c.drop(d.seg) }

// inProgress restarts the message's AckWait (at most once a second, or
// four times per AckWait).
func (s *segState) inProgress() error {
	s.mu.Lock()
	now := time.Now()
	skip := s.finished || now.Sub(s.progress) < min(time.Second, s.c.cfg.AckWait/4)
	if !skip {
		s.progress = now
	}
	s.mu.Unlock()
	if skip {
		return nil
	}
	return s.msg.InProgress()
}

// Feed sends the consumer's events to out until ctx ends, then returns once
// its fetches have stopped; it does not close out. Before each fetch it
// waits for the channel ready returns to be closed: a reader that must
// take no new events (a paused destination) hands out an open channel and
// closes it when it may go on, so nothing polls; a fetch already open still
// delivers what it receives, for at most FetchWait. ready may be nil. Events received but
// not sent on because ctx ended are not acknowledged: they are delivered
// again after AckWait, or at once to the next Consumer of the same name.
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
func (c *Consumer) Feed(ctx context.Context, out chan<- *Delivery, ready func() <-chan struct{}) {
	c.FeedMessages(ctx, func(ds []*Delivery) bool {
		for _, d := range ds {
			select {
			case out <- d:
			case <-ctx.Done():
				return false
			}
		}
		return true
	}, ready)
}

// FeedMessages is Feed handing on the deliveries of each fetched message
// together (the events of one segment, in order) to fn, which returns false
// when ctx ended before it took them. A reader whose events depend on the
// ones before them (the identity graph learns from an identify that a
// track of the same request needs) keeps a segment's events together.
func (c *Consumer) FeedMessages(ctx context.Context, fn func([]*Delivery) bool, ready func() <-chan struct{}) {
	if ready == nil {
		ready = func() <-chan struct{} { return closedChan }
	}
	var fetchers sync.WaitGroup
	for range fetchersInFlight {
		fetchers.Go(func() { c.fetchLoop(ctx, fn, ready) })
	}
	fetchers.Wait()
}

// fetchLoop fetches events into out until ctx ends.
func (c *Consumer) fetchLoop(ctx context.Context, fn func([]*Delivery) bool, ready func() <-chan struct{}) {
	var dec msgDecoder // this loop's, reused for every message
	for ctx.Err() == nil {
		// Take no new events until ready; what is in flight goes on.
		select {
		case <-ready():
		case <-ctx.Done():
			return
		}
		// The fetch expires at the server after FetchWait; the client
		// ends it on the server's answer to that, or ctx's end, never on
		// a deadline of its own (fetchExpiry says why).
		opts := []jetstream.FetchOpt{fetchExpiry(c.cfg.FetchWait), jetstream.FetchContext(ctx)}
		// Heartbeats end a fetch whose server went away (a cluster node
		// restarting) after two missed ones (10 s) instead of FetchWait.
		// A fetch that ends within 20 s gains nothing from them, and short
		// ones fail on a loaded machine: the fetch ends with an error while
		// the server has sent it events, which then wait for AckWait.
		if hb := 5 * time.Second; c.cfg.FetchWait > 4*hb {
			opts = append(opts, jetstream.FetchHeartbeat(hb))
		}
		// A fetch bounded by bytes asks for up to fetchMax messages too:
		// nats.go's FetchBytes asks for 1,000,000 and sizes its two
		// channels by that count, 32 MB allocated per fetch whatever it
		// receives (measured: half the Go heap's live size while draining
		// a backlog, bench/memory.sh).
		n := fetchMax
		if c.cfg.Batch > 0 {
			n = c.cfg.Batch
		} else {
			opts = append(opts, jetstream.FetchMaxBytes(c.cfg.FetchBytes))
		}
		batch, err := c.cons.Fetch(n, opts...)
		if err == nil {
			for s := range c.receive(batch, n) {
				if ctx.Err() != nil {
					c.drop(s) // not handed on: delivered again later
					continue
				}
				if ds := c.deliveries(ctx, s, &dec); len(ds) > 0 && (ctx.Err() != nil || !fn(ds)) {
					c.drop(s)
				}
			}
			err = batch.Error()
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			c.log.Warn("reading events failed; retrying", "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// receive takes the messages of a fetch of up to n as they arrive and
// holds them (KeepAlive) until they are settled, in a goroutine of its
// own: the fetch loop hands them on only as fast as the reader takes them,
// and a message waiting in nats.go's buffer is on AckWait's clock too. The
// channel it returns holds them all (a fetch brings at most n), so the
// goroutine never waits for the loop; it is closed when the fetch ends.
//
// Before, a reader slower than AckWait per fetch (a slow destination, a
// starved machine) had the last messages of a fetch delivered again while
// their first delivery was still on its way, and a conversion whose first
// send was not yet accepted was sent again (the eventId guard sends a
// claimed, unaccepted conversion again: it cannot tell a second delivery
// in this process from a retry after a crash).
func (c *Consumer) receive(batch jetstream.MessageBatch, n int) <-chan *segState {
	out := make(chan *segState, n)
	go func() {
		defer close(out)
		for msg := range batch.Messages() {
			// Its AckWait started at the server a moment ago: the first
			// InProgress can wait (inProgress).
			s := &segState{c: c, msg: msg, progress: time.Now()}
			c.mu.Lock()
			c.held[s] = struct{}{}
			c.mu.Unlock()
			out <- s
		}
	}()
	return out
}

// drop stops holding s (KeepAlive).
func (c *Consumer) drop(s *segState) {
	c.mu.Lock()
	delete(c.held, s)
	c.mu.Unlock()
}

// KeepAlive tells the stream, every third of AckWait until stop is closed,
// that the messages this Consumer received and has not settled are still
// being worked on, wherever they wait: in a fetch's buffer, in the reader's
// queues, or being sent. A reader runs it for as long as it may settle
// events. What a process still holds when it dies is delivered again after
// AckWait, or at once to the next Consumer of the same name.
func (c *Consumer) KeepAlive(stop <-chan struct{}) {
	tick := time.NewTicker(c.cfg.AckWait / 3)
	defer tick.Stop()
	var held []*segState
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		c.mu.Lock()
		for s := range c.held {
			held = append(held, s)
		}
		c.mu.Unlock()
		for _, s := range held {
			_ = s.inProgress()
		}
		clear(held)
		held = held[:0]
	}
}

// fetchExpiry sets a fetch's expiry at the server to d, leaving its
// context to a FetchContext option after it.
//
// nats.go takes the expiry from FetchMaxWait, which excludes FetchContext,
// or from a FetchContext's deadline: 90% of the time left, at most 1 s
// less. A fetch whose context has that deadline ends at the client a few
// milliseconds after the server gave up on it when d is short, and on a
// loaded machine the client often gives up first: the events the server
// sent it just before expiry reach an inbox nobody reads, and wait for
// AckWait (30 s) before anyone delivers them. So the expiry comes from a
// context of its own whose deadline gives d, and a later FetchContext(ctx)
// without a deadline replaces it for cancellation: the client then ends
// the fetch on the server's expiry answer, or after a second more without
// any message, or when ctx ends.
func fetchExpiry(d time.Duration) jetstream.FetchOpt {
	left := d * 10 / 9 // expiry = 90% of the time left
	if d >= 9*time.Second {
		left = d + time.Second // expiry = the time left less 1 s
	}
	// Only the deadline is read (when the option is applied, at once);
	// the context itself is replaced, so it may end now.
	dctx, cancel := context.WithTimeout(context.Background(), left)
	cancel()
	return jetstream.FetchContext(dctx)
}

// dedupWait bounds how long a consumer waits for the de-duplication
// follower to cover a message before delivering it unchecked.
const dedupWait = 10 * time.Second

// closedChan is ready when Feed has no ready function.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// deliveries decodes a fetched message (s, as received) into the
// deliveries of its events not yet acknowledged in this process, decoding
// it with dec. A message that holds none any more (its acknowledgement was
// lost) is acknowledged again; one that does not decode is logged and
// terminated: it stays in the stream, but this consumer does not deliver it
// again.
func (c *Consumer) deliveries(ctx context.Context, s *segState, dec *msgDecoder) []*Delivery {
	msg := s.msg
	var seq uint64
	var at time.Time
	if md, err := msg.Metadata(); err == nil {
		seq, at = md.Sequence.Stream, md.Timestamp
	}
	if h := msg.Headers(); h.Get(headerRewriteOf) != "" && slices.Contains(strings.Fields(h.Get(headerRewriteHandled)), c.cfg.Durable) {
		// A privacy deletion's rewrite of a segment this consumer had
		// handled: its events were delivered already.
		c.drop(s)
		_ = msg.Ack()
		return nil
	}
	// The deliveries of a message in one allocation, sized by its event
	// count, each filled in place: one per event, and the copies of a
	// growing slice, were a tenth of what reading an event cost. A
	// segment's events are settled together anyway.
	n, err := dec.decode(seq, msg.Subject(), msg.Headers(), msg.Data(), at)
	if err != nil {
		c.log.Error("a stored event message does not decode; it is not delivered", "seq", seq, "error", err)
		c.drop(s)
		_ = msg.Term()
		return nil
	}
	ds := make([]Delivery, n)
	for i := range ds {
		dec.event(i, &ds[i].Stored)
	}
	// Nothing else reads these before the deliveries are handed on
	// (KeepAlive reads only msg, progress and finished, under s.mu).
	s.seq, s.state = seq, make([]byte, len(ds))
	c.mu.Lock()
	s.done = c.done[seq]
	if len(s.done) != len(ds) {
		s.done = make([]bool, len(ds))
		if len(ds) > 1 {
			c.done[seq] = s.done
		}
	}
	skip := slices.Clone(s.done)
	c.mu.Unlock()
	if d := c.cfg.Dedup; d != nil && d.followed.Load() {
		evs := make([]Stored, len(ds))
		for i := range ds {
			evs[i] = ds[i].Stored
		}
		for i, first := range d.firstOf(ctx, seq, evs, dedupWait) {
			if first != 0 && !skip[i] {
				skip[i] = true
				c.log.Debug("event skipped: a duplicate of an earlier one", "event_pos", evs[i].Pos(), "first", Pos(first))
			}
		}
	}
	out := make([]*Delivery, 0, len(ds))
	s.mu.Lock()
	for i := range ds {
		if skip[i] {
			s.state[i] = stateAcked
			continue
		}
		ds[i].seg = s
		out = append(out, &ds[i])
	}
	s.open = len(out)
	if s.open == 0 {
		s.finished = true
	}
	s.mu.Unlock()
	if len(out) == 0 {
		_ = s.finishMsg(context.Background())
	}
	return out
}

// forget drops the acknowledged events of the message at seq.
func (c *Consumer) forget(seq uint64) {
	c.mu.Lock()
	delete(c.done, seq)
	c.mu.Unlock()
}

// ConsumerState is where a durable consumer of EVENTS stands: what the
// console's event detail derives a delivery outcome from.
type ConsumerState struct {
	// AckFloor is the stream sequence up to which every event of the
	// consumer's selection is acknowledged; later ones may be too (two
	// fetches in flight acknowledge out of order).
	AckFloor uint64
	// Delivered is the highest stream sequence delivered to the consumer.
	Delivered uint64
	// AckPending counts events delivered and not yet acknowledged;
	// Pending, events of the selection not yet delivered.
	AckPending int
	Pending    uint64
}

// ConsumerState returns the state of durable consumer name of EVENTS, or an
// error wrapping ErrNotFound when there is no such consumer (its
// destination never ran).
func (e *Engine) ConsumerState(ctx context.Context, name string) (ConsumerState, error) {
	cons, err := e.js.Consumer(ctx, EventsStream, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return ConsumerState{}, fmt.Errorf("events consumer %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return ConsumerState{}, fmt.Errorf("events consumer %s: %w", name, err)
	}
	info, err := cons.Info(ctx)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return ConsumerState{}, fmt.Errorf("events consumer %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return ConsumerState{}, fmt.Errorf("events consumer %s: %w", name, err)
	}
	return ConsumerState{
		AckFloor:   info.AckFloor.Stream,
		Delivered:  info.Delivered.Stream,
		AckPending: info.NumAckPending,
		Pending:    info.NumPending,
	}, nil
}

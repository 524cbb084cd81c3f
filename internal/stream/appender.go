package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/prometheus/client_golang/prometheus"
)

// record is one message to append to a stream.
type record struct {
	Subject string
	// MsgID is the de-duplication id (Nats-Msg-Id); "" for none.
	MsgID string
	// Header is read, never modified, so records may share one.
	Header nats.Header
	Data   []byte
}

// minAtomic is the smallest group written as an atomic batch (external
// clusters only). JetStream stages every atomic batch in a temporary store of
// its own (a directory, a metadata file and their fsyncs), so a handful of
// records is cheaper published one by one, pipelined, each fsynced by the
// servers.
const minAtomic = 8

// errDuplicateInBatch is JetStream's "atomic publish batch contains
// duplicate message id" (10201).
const errDuplicateInBatch = 10201

// appenderMetrics show how group commit behaves: how many records one
// commit carries (the larger, the cheaper each record), how long a commit
// takes (fsync included) and its sync alone, how long a request waits for
// its commit to start, and how many records wait for one.
type appenderMetrics struct {
	records   prometheus.Histogram
	seconds   prometheus.Histogram
	sync      prometheus.Histogram
	queueWait prometheus.Histogram
}

func newAppenderMetrics(reg prometheus.Registerer, a *appender) *appenderMetrics {
	m := &appenderMetrics{
		records: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "capstan_store_commit_records",
			Help:    "Events written by one commit to the EVENTS stream (made durable by one fsync).",
			Buckets: []float64{1, 8, 32, 100, 250, 500, 750, 1000},
		}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "capstan_store_commit_duration_seconds",
			Help:    "Time to write one commit to the EVENTS stream: until JetStream acknowledged its events and, with the embedded engine, they were fsynced (capstan_store_sync_duration_seconds is that last part).",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		sync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "capstan_store_sync_duration_seconds",
			Help:    "Time one commit waited, once JetStream acknowledged its events, for them to be durable: the fsync of the stream's block file, and the one already running when it asked (embedded engine only).",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "capstan_store_queue_wait_seconds",
			Help:    "Time from a request handing its events to the EVENTS writer to the start of their commit: waiting for a free commit loop (each busy one publishing, syncing or recording its events in the de-duplication index) and engine.group_commit.linger.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
	}
	if reg != nil {
		reg.MustRegister(m.records, m.seconds, m.sync, m.queueWait, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "capstan_store_queued_records",
			Help: "Events waiting for a commit to the EVENTS stream; when too many wait, ingest answers 503 with Retry-After.",
		}, func() float64 {
			a.mu.Lock()
			defer a.mu.Unlock()
			return float64(a.queued)
		}))
	}
	return m
}

// appender appends records durably with group commit: the records of
// concurrent Append calls are written together and made durable by one
// fsync. On the embedded engine they are published, pipelined, and the
// stream's block file is fsynced once they are all acknowledged (Engine.Sync,
// see sync.go); on an external cluster they are written as one JetStream
// atomic batch, which the servers' sync_interval always commits with one
// fsync. It is safe for concurrent use; Run must be running for Append to
// make progress.
type appender struct {
	cfg WriterConfig
	eng *Engine
	nc  *nats.Conn
	js  jetstream.JetStream
	log *slog.Logger
	// atomic is true on an external cluster with atomic batch publish
	// (nats-server 2.12 or later). Otherwise every record is published and
	// acknowledged on its own (pipelined), and then, when syncs, the group
	// is made durable by Engine.Sync.
	atomic, syncs bool
	// inboxes, on capstan's own server, read the acknowledgements of
	// publishEach where the connection delivers them (acks.go); nil on an
	// external cluster.
	inboxes *ackInboxes

	m *appenderMetrics

	mu      sync.Mutex
	queue   []*pending
	queued  int
	signal  chan struct{} // one slot: "queue not empty"
	running bool          // Run's commit loops are running
	stopped bool
	// slots holds a token per commit in flight (at most Inflight): a
	// commit loop, or a caller committing in its own goroutine (enqueue).
	slots chan struct{}
	here  atomic.Int64 // commits made by callers (commitHere), for tests

	// Per-event de-duplication of segment commits (commit.go).
	dedup    *Dedup // nil: only inside this process's commits in flight
	segMax   int    // the most bytes of one segment's frame
	dmu      sync.Mutex
	inflight *keyTable               // keys of the commits in flight
	commits  map[*segCommit]struct{} // commits in flight
	// maxAssigned is the highest stream sequence a commit of this appender
	// got; maxAdded the highest one whose events are in the index.
	maxAssigned, maxAdded, lastCovered uint64
	coverStuck                         bool // an Add failed: covered stays until the next start

	// outcome of the last commit that wrote something, for Writer.Ready.
	outMu     sync.Mutex
	refused   error            // nil when the last commit stored every record
	refusedAt time.Time        // when refused was set
	now       func() time.Time // the clock (a test seam)
}

type pending struct {
	recs []record // records to append as they are (appender.Append)
	evs  []Event  // or events to store in segments (appendEvents)
	// pre is what the caller's goroutine built of evs before queueing
	// (prebuild.go); nil: nothing. Whoever takes the request out of the
	// queue releases it: the commit, or enqueue.
	pre     *prebuilt
	results []Result
	done    chan struct{}
	// released is closed once the commit that took the request reads
	// recs and evs no more (commitAll): from then on a caller whose
	// context ended may return and reuse their memory.
	released chan struct{}
	queued   time.Time // when enqueue queued it
}

// newPending returns the request of recs or of evs (the other empty).
func newPending(recs []record, evs []Event) *pending {
	return &pending{recs: recs, evs: evs, results: make([]Result, len(recs)+len(evs)),
		done: make(chan struct{}), released: make(chan struct{})}
}

// size is the number of records or events p holds.
func (p *pending) size() int { return len(p.recs) + len(p.evs) }

// newAppender returns an appender writing through e.
func newAppender(e *Engine, cfg WriterConfig, log *slog.Logger) *appender {
	if cfg.MaxBatch <= 0 || cfg.MaxBatch > 1000 {
		cfg.MaxBatch = 1000
	}
	if cfg.Inflight <= 0 {
		cfg.Inflight = 2
	}
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = 50000
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 10 * time.Second
	}
	if cfg.RetestAfter <= 0 {
		cfg.RetestAfter = 30 * time.Second
	}
	// Atomic batches exist here for their single fsync. Where capstan syncs
	// the stream itself, or no fsync is wanted (engine.sync interval), they
	// would only add JetStream's staging of each batch (a temporary store
	// created and removed).
	external := !e.Embedded() && !e.SyncsLocally() // not a tool attached to the embedded engine
	a := &appender{
		cfg: cfg, eng: e, nc: e.nc, js: e.js, log: log.With("component", "appender"), signal: make(chan struct{}, 1),
		slots:    make(chan struct{}, cfg.Inflight),
		syncs:    e.SyncsLocally(),
		atomic:   external && e.AtomicBatches(),
		now:      time.Now,
		dedup:    cfg.Dedup,
		segMax:   segmentMaxBytes(e.nc.MaxPayload()),
		inflight: newKeyTable(),
		commits:  make(map[*segCommit]struct{}),
	}
	if !external {
		a.inboxes = &ackInboxes{nc: e.nc, size: cfg.MaxBatch + 16}
	}
	a.m = newAppenderMetrics(cfg.Registry, a)
	if external && !a.atomic {
		a.log.Warn("the NATS server has no atomic batch publish (needs 2.12 or later): events are written one by one, which is slower", "server_version", e.nc.ConnectedServerVersion())
	}
	return a
}

// Append stores recs and returns one Result per record once every record is
// durable (or failed). Records of one call are stored in order. It returns
// ErrOverloaded without storing anything when the queue is full, and ctx's
// error if ctx ends first (enqueue says what is stored then). Once it
// returns the appender reads nothing of recs.
func (a *appender) Append(ctx context.Context, recs []record) ([]Result, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	return a.enqueue(ctx, newPending(recs, nil))
}

// appendEvents stores evs in segments (commitEvents), as Append does
// records.
func (a *appender) appendEvents(ctx context.Context, evs []Event) ([]Result, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	p := newPending(nil, evs)
	p.pre = a.prebuild(evs)
	return a.enqueue(ctx, p)
}

// enqueue queues p for a commit and waits for its results. If ctx ends
// first it returns ctx's error, but never while a commit may still read
// p's records or events: a request still queued is taken out of the queue
// (none of it is stored), and one a commit has taken is waited for until
// that commit has built its messages from it (released), which does not
// wait for their write (except, for a call of more than MaxBatch events,
// that of the chunks before its last). Its records or events may then
// still be stored; a retry is de-duplicated. So the caller may reuse their
// memory as soon as enqueue returns, whatever the outcome.
func (a *appender) enqueue(ctx context.Context, p *pending) ([]Result, error) {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		p.pre.release()
		return nil, errors.New("event store is shutting down")
	}
	if a.queued > 0 && a.queued+p.size() > a.cfg.MaxQueued {
		a.mu.Unlock()
		p.pre.release()
		return nil, ErrOverloaded
	}
	p.queued = time.Now()
	a.queue = append(a.queue, p)
	a.queued += p.size()
	inline := a.running && a.cfg.Linger == 0
	a.mu.Unlock()
	if !inline || !a.commitHere(context.WithoutCancel(ctx)) {
		a.wake()
	}
	select {
	case <-p.done:
		return p.results, nil
	case <-ctx.Done():
	}
	if a.unqueue(p) {
		p.pre.release()
	} else {
		<-p.released
	}
	return nil, ctx.Err()
}

// unqueue takes p out of the queue and reports whether it was there (no
// commit has taken it).
func (a *appender) unqueue(p *pending) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	i := slices.Index(a.queue, p)
	if i < 0 {
		return false
	}
	a.queue = slices.Delete(a.queue, i, i+1)
	a.queued -= p.size()
	return true
}

// queuedNow returns the number of records or events queued.
func (a *appender) queuedNow() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.queued
}

// wake tells an idle commit loop that the queue is not empty.
func (a *appender) wake() {
	select {
	case a.signal <- struct{}{}:
	default:
	}
}

// commitHere commits what is queued in the calling goroutine (the request
// that just queued, and any queued before it) when no commit is in flight,
// and reports whether it did. A request that finds the store idle, the
// rule at a few thousand single-event requests per second, is then written
// without two goroutine hand-offs (waking a commit loop, and the loop
// waking the request when it is done). Otherwise it queues for the loops
// as before: a loop that finishes a commit takes what queued meanwhile at
// once, where a caller would have to wake a loop for it (taking a free
// slot beside a running commit measured the same CPU and a higher p50).
func (a *appender) commitHere(ctx context.Context) bool {
	if len(a.slots) > 0 {
		return false
	}
	select {
	case a.slots <- struct{}{}:
	default:
		return false
	}
	if batch := a.take(); batch != nil {
		a.here.Add(1)
		a.commitAll(ctx, batch)
	}
	<-a.slots
	a.wakeIfQueued()
	return true
}

// wakeIfQueued wakes a commit loop if requests are queued.
func (a *appender) wakeIfQueued() {
	a.mu.Lock()
	more := len(a.queue) > 0
	a.mu.Unlock()
	if more {
		a.wake()
	}
}

// Run writes queued records until ctx ends, then drains what is queued.
func (a *appender) Run(ctx context.Context) error {
	a.mu.Lock()
	a.running = true
	a.mu.Unlock()
	var wg sync.WaitGroup
	for range a.cfg.Inflight {
		wg.Go(func() { a.loop(ctx) })
	}
	wg.Wait()
	// Drain: refuse new work, wait for the commits callers run
	// (commitHere), write what is left.
	a.mu.Lock()
	a.stopped, a.running = true, false
	a.mu.Unlock()
	for range a.cfg.Inflight {
		a.slots <- struct{}{}
	}
	defer func() {
		for range a.cfg.Inflight {
			<-a.slots
		}
	}()
	for {
		batch := a.take()
		if batch == nil {
			return nil
		}
		a.commitAll(context.Background(), batch)
	}
}

func (a *appender) loop(ctx context.Context) {
	for {
		select {
		case a.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		batch := a.take()
		if batch == nil {
			<-a.slots
			select {
			case <-a.signal:
				continue
			case <-ctx.Done():
				return
			}
		}
		if a.cfg.Linger > 0 && countRecs(batch) < a.cfg.MaxBatch {
			batch = a.linger(ctx, batch)
		}
		a.commitAll(ctx, batch)
		<-a.slots
		// Wake a sibling if more is queued.
		a.wakeIfQueued()
	}
}

func countRecs(ps []*pending) int {
	n := 0
	for _, p := range ps {
		n += p.size()
	}
	return n
}

// take removes requests from the queue: the first one always, then more
// while they fit in one batch. Nil when the queue is empty.
func (a *appender) take() []*pending {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.queue) == 0 {
		return nil
	}
	batch, _ := a.popLocked(0, true)
	return batch
}

// popLocked removes requests from the front of the queue while their records
// fit in one batch beside have records (the first one regardless, when
// first) and returns them with the new record count. a.mu must be held.
func (a *appender) popLocked(have int, first bool) ([]*pending, int) {
	n, total := 0, have
	for n < len(a.queue) {
		size := a.queue[n].size()
		if total+size > a.cfg.MaxBatch && !(first && n == 0) {
			break
		}
		total += size
		n++
	}
	batch := make([]*pending, n)
	copy(batch, a.queue)
	a.queue = append(a.queue[:0], a.queue[n:]...)
	a.queued -= total - have
	return batch, total
}

func (a *appender) linger(ctx context.Context, batch []*pending) []*pending {
	t := time.NewTimer(a.cfg.Linger)
	defer t.Stop()
	for n := countRecs(batch); n < a.cfg.MaxBatch; {
		select {
		case <-t.C:
			return batch
		case <-ctx.Done():
			return batch
		case <-a.signal:
			a.mu.Lock()
			var more []*pending
			more, n = a.popLocked(n, false)
			a.mu.Unlock()
			batch = append(batch, more...)
		}
	}
	return batch
}

// commitAll writes the records of batch, in chunks of at most MaxBatch, and
// completes each pending request.
func (a *appender) commitAll(ctx context.Context, batch []*pending) {
	nrecs, nevs := 0, 0
	for _, p := range batch {
		nrecs, nevs = nrecs+len(p.recs), nevs+len(p.evs)
	}
	recs := make([]*record, 0, nrecs)
	res := make([]*Result, 0, nrecs) // of recs
	evs := make([]*Event, 0, nevs)
	eres := make([]*Result, 0, nevs) // of evs
	start := time.Now()
	for _, p := range batch {
		a.m.queueWait.Observe(start.Sub(p.queued).Seconds())
		for i := range p.recs {
			recs = append(recs, &p.recs[i])
			res = append(res, &p.results[i])
		}
		for i := range p.evs {
			evs = append(evs, &p.evs[i])
			eres = append(eres, &p.results[i])
		}
	}
	for start := 0; start < len(recs); start += a.cfg.MaxBatch {
		end := min(start+a.cfg.MaxBatch, len(recs))
		a.commit(ctx, recs[start:end], res[start:end])
	}
	// The requests of records are released once written: their records
	// are the messages published.
	var evReqs []*pending // the requests of events, in order
	for _, p := range batch {
		if len(p.evs) == 0 {
			close(p.released)
		} else {
			evReqs = append(evReqs, p)
		}
	}
	// Those of events as soon as the segments holding their last events
	// are built: the write and the sync read only the segments.
	through := 0 // the events of evReqs[:released]
	released := 0
	for start := 0; start < len(evs); start += a.cfg.MaxBatch {
		end := min(start+a.cfg.MaxBatch, len(evs))
		a.commitEvents(ctx, evs[start:end], eres[start:end], chunkParts(evReqs, start, end), func() {
			for released < len(evReqs) && through+len(evReqs[released].evs) <= end {
				through += len(evReqs[released].evs)
				close(evReqs[released].released)
				released++
			}
		})
	}
	for _, p := range evReqs {
		p.pre.release()
	}
	for _, p := range batch {
		close(p.done)
	}
}

// pubAck is JetStream's publish acknowledgement, batch fields included.
type pubAck struct {
	Stream    string `json:"stream"`
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate"`
	BatchID   string `json:"batch"`
	Count     int    `json:"count"`
	Error     *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
}

// commit writes one chunk as an atomic batch (one fsync). Records whose
// MsgID repeats inside the chunk are marked duplicates first; if the stream
// already holds one of the ids, JetStream refuses the whole batch (10201) and
// the chunk is written record by record so the duplicates are dropped and the
// rest stored.
func (a *appender) commit(ctx context.Context, recs []*record, res []*Result) {
	seen := make(map[string]bool, len(recs))
	send := make([]*record, 0, len(recs))
	sendRes := make([]*Result, 0, len(recs))
	for i, r := range recs {
		if r.MsgID != "" {
			if seen[r.MsgID] {
				*res[i] = Result{Duplicate: true}
				continue
			}
			seen[r.MsgID] = true
		}
		send = append(send, r)
		sendRes = append(sendRes, res[i])
	}
	if len(send) == 0 {
		return
	}
	a.write(ctx, send, sendRes, len(send))
}

// write writes records (events records or segments holding events events)
// as one commit: an atomic batch on an external cluster, else published
// one by one, pipelined, and synced.
func (a *appender) write(ctx context.Context, send []*record, sendRes []*Result, events int) {
	start := time.Now()
	defer func() {
		a.m.records.Observe(float64(events))
		a.m.seconds.Observe(time.Since(start).Seconds())
		a.noteOutcome(sendRes)
	}()
	if len(send) < minAtomic || !a.atomic {
		a.publishEach(send, sendRes)
		if a.syncs {
			a.sync(ctx, sendRes)
		}
		return
	}
	ack, id, err := a.publishAtomic(ctx, send)
	if err == nil && ack.Error == nil && (ack.BatchID != id || ack.Count != len(send)) {
		// Not an atomic commit of this batch: what was stored is unknown, so
		// nothing is acknowledged; a retry is de-duplicated.
		err = fmt.Errorf("atomic batch not confirmed (batch %q count %d, sent %q count %d)", ack.BatchID, ack.Count, id, len(send))
	}
	switch {
	case err == nil && ack.Error == nil:
		first := ack.Seq - uint64(len(send)) + 1
		for i := range sendRes {
			*sendRes[i] = Result{Seq: first + uint64(i)}
		}
	case err == nil && ack.Error.ErrCode == errDuplicateInBatch:
		a.publishEach(send, sendRes)
	default:
		if err == nil {
			err = fmt.Errorf("atomic batch refused: %s (%d)", ack.Error.Description, ack.Error.ErrCode)
		}
		a.log.Warn("append batch failed", "batch_size", len(send), "error", err)
		for i := range sendRes {
			*sendRes[i] = Result{Err: err}
		}
	}
}

// noteOutcome records whether a commit stored its records: the first error
// of res, or nil when every record is stored (or a duplicate).
func (a *appender) noteOutcome(res []*Result) {
	var failed error
	for _, r := range res {
		if r.Err != nil {
			failed = r.Err
			break
		}
	}
	a.outMu.Lock()
	defer a.outMu.Unlock()
	a.refused = failed
	if failed != nil {
		a.refusedAt = a.now()
	}
}

// refusal returns an error wrapping ErrWritesRefused while the last commit
// failed, for at most RetestAfter; nil otherwise.
func (a *appender) refusal() error {
	a.outMu.Lock()
	defer a.outMu.Unlock()
	if a.refused == nil {
		return nil
	}
	ago := a.now().Sub(a.refusedAt)
	if ago >= a.cfg.RetestAfter {
		return nil
	}
	return fmt.Errorf("%w: the last write failed %s ago: %w", ErrWritesRefused, ago.Round(time.Second), a.refused)
}

// sync makes the records just published durable. If it fails, what was
// stored may not survive a power loss, so no record is acknowledged: the
// client retries and the stream's de-duplication keeps one copy.
func (a *appender) sync(ctx context.Context, res []*Result) {
	start := time.Now()
	err := a.eng.Sync(ctx, EventsStream)
	a.m.sync.Observe(time.Since(start).Seconds())
	if err == nil {
		return
	}
	a.log.Error("append: sync failed", "records", len(res), "error", err)
	for _, r := range res {
		if r.Err == nil {
			*r = Result{Err: err}
		}
	}
}

// message builds r's NATS message: its own header map (r.Header is shared
// and read-only) with the de-duplication id.
func message(r *record) *nats.Msg {
	m := &nats.Msg{Subject: r.Subject, Data: r.Data, Header: make(nats.Header, len(r.Header)+4)}
	for k, v := range r.Header {
		m.Header[k] = v
	}
	if r.MsgID != "" {
		m.Header.Set(nats.MsgIdHdr, r.MsgID)
	}
	return m
}

// setMessage makes m, a message reused for every record of a write,
// hold what message(r) would: its header map is cleared and filled again,
// and msgID, a one-element slice also reused, takes r's Nats-Msg-Id. The
// connection copies a message out while publishing it, so nothing is
// allocated per record.
func setMessage(m *nats.Msg, msgID []string, r *record) {
	clear(m.Header)
	for k, v := range r.Header {
		m.Header[k] = v
	}
	if r.MsgID != "" {
		msgID[0] = r.MsgID
		m.Header[nats.MsgIdHdr] = msgID
	}
	m.Subject, m.Data = r.Subject, r.Data
}

// batchSeqs holds the Nats-Batch-Sequence values of a batch of MaxBatch
// records, so that writing them allocates nothing.
var batchSeqs = func() []string {
	s := make([]string, 1001)
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func batchSeq(n int) string {
	if n < len(batchSeqs) {
		return batchSeqs[n]
	}
	return strconv.Itoa(n)
}

// publishAtomic writes recs as one atomic batch. The connection copies each
// message out while publishing it, so one message and its header map serve
// every record: nothing is allocated per record on this side.
func (a *appender) publishAtomic(ctx context.Context, recs []*record) (*pubAck, string, error) {
	id := nuid.Next()
	m := &nats.Msg{Header: make(nats.Header, 8)}
	msgID, batchID, seq := []string{""}, []string{id}, []string{""}
	for i, r := range recs {
		// What message(r) holds, then the batch headers over it.
		setMessage(m, msgID, r)
		m.Header["Nats-Batch-Id"] = batchID
		seq[0] = batchSeq(i + 1)
		m.Header["Nats-Batch-Sequence"] = seq
		if i < len(recs)-1 {
			if err := a.nc.PublishMsg(m); err != nil {
				return nil, id, fmt.Errorf("publish batch: %w", err)
			}
			continue
		}
		m.Header["Nats-Batch-Commit"] = []string{"1"}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.AckTimeout)
		defer cancel()
		resp, err := a.nc.RequestMsgWithContext(rctx, m)
		if err != nil {
			return nil, id, fmt.Errorf("commit batch: %w", err)
		}
		var ack pubAck
		if err := json.Unmarshal(resp.Data, &ack); err != nil {
			return nil, id, fmt.Errorf("commit batch: bad acknowledgement: %w", err)
		}
		return &ack, id, nil
	}
	return nil, id, errors.New("empty batch")
}

// publishEach writes records one by one, in order and pipelined, each with
// its own acknowledgement (so duplicates are reported per record).
func (a *appender) publishEach(recs []*record, res []*Result) {
	if a.inboxes != nil {
		a.publishDirect(recs, res)
		return
	}
	futures := make([]jetstream.PubAckFuture, len(recs))
	for i, r := range recs {
		f, err := a.js.PublishMsgAsync(message(r))
		if err != nil {
			*res[i] = Result{Err: fmt.Errorf("publish: %w", err)}
			continue
		}
		futures[i] = f
	}
	timeout := time.NewTimer(a.cfg.AckTimeout)
	defer timeout.Stop()
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			*res[i] = Result{Seq: ack.Sequence, Duplicate: ack.Duplicate}
		case err := <-f.Err():
			*res[i] = Result{Err: fmt.Errorf("publish: %w", err)}
		case <-timeout.C:
			*res[i] = Result{Err: errNoAck}
			timeout.Reset(0)
		}
	}
}

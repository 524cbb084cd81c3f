package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/stream"
)

// Live events: GET /admin/api/live streams the events stored from now on as
// server-sent events, for the console's Live events page.
//
// It is built to cost ingest little however many consoles watch and however
// busy ingest is. One shared reader runs while at least one client is
// connected, started by the first and stopped when the last leaves. Every
// livePoll it asks the stream for its last sequence (one request) and
// looks at what was stored since: everything when that is at most
// liveSample events, else only the newest liveSample, counting the others
// as skipped for every client. It reads them with batched direct gets
// (EventRanger.ReadRange), which set nothing up on the server (a consumer
// per poll would stay there for minutes and cost every event stored
// meanwhile), and only as many as the clients can take: a client gets at
// most liveRate events a second (a token bucket), and once none can take
// another the rest is skipped unread. So at 20,000 events/s it reads a few
// dozen events a second for consoles that filter nothing, at most a
// twentieth of them for consoles whose filters take few, and at a few per
// second all of them, within livePoll. It hands each event to the clients
// whose filters take it through a bounded buffer per client, without ever
// waiting (what the buffer cannot hold is dropped), each client's events
// of a poll in a row so that it writes them at once. Everything a client
// misses is counted and the client is told the count (the "skipped"
// event): under heavy load the view is a sample and says so. The event's
// document is parsed only for the events a client takes, or to test a
// client's event-name or user filter after a cheap search of the raw
// document for the value, and the message the clients are sent is encoded
// once, whatever their number.
//
// An EventReader that is not an EventRanger (or an engine that cannot read
// a range) is read with ReadEvents instead; one that is not an EventCursor
// (it cannot say its last sequence) is followed: every event is read.

// EventCursor is implemented by an EventReader that can say where the
// stream ends (EngineEvents): Live events then samples under load.
type EventCursor interface {
	// LastSeq returns the sequence of the last stored event.
	LastSeq(ctx context.Context) (uint64, error)
}

// EventRanger is implemented by an EventReader that reads a range of
// sequences in one request, without setting a read up on the server
// (EngineEvents): the shared reader of Live events polls with it.
type EventRanger interface {
	// ReadRange calls fn for each event stored at sequences from to upTo
	// (at most a few thousand), oldest first, passing over the sequences
	// that hold none; it stops at fn's first error, which it returns. It
	// returns ErrNoRange, before calling fn, when the engine cannot.
	ReadRange(ctx context.Context, from, upTo uint64, fn func(StoredEvent) error) error
}

// ErrNoRange means the engine cannot read a range of events in one request
// (EventRanger): read them with ReadEvents.
var ErrNoRange = errors.New("the engine cannot read a range of events in one request")

// Live events tuning.
const (
	// liveRate and liveBurst bound the events one client receives per
	// second; a browser table shows no more anyway.
	liveRate  = 50
	liveBurst = 100
	// liveBuffer is the events queued for one client before it drops.
	liveBuffer = 256
	// livePoll is how often the shared reader looks for new events, and
	// liveSample the most it reads each time (1,000 a second).
	livePoll   = 200 * time.Millisecond
	liveSample = 200
	// liveHeartbeat is the longest a stream stays silent (an SSE comment
	// keeps proxies and the browser from timing it out).
	liveHeartbeat = 15 * time.Second
	// liveTick is how often a client's skipped count is checked.
	liveTick = time.Second
	// liveWriteTimeout bounds one write to a client.
	liveWriteTimeout = 10 * time.Second
	// maxLiveFilter bounds a filter value, in bytes.
	maxLiveFilter = 200
)

// maxIndex is the highest index of an event in a segment: a position with
// it stands for "after the whole segment".
const maxIndex = 0xffff

// LiveEvent is one stored event as Live events shows it.
type LiveEvent struct {
	Seq         uint64    `json:"seq"`
	Pos         string    `json:"pos"` // the event's identity, "seq:index"
	Source      string    `json:"source"`
	Type        string    `json:"type"`
	Event       string    `json:"event,omitempty"` // track: event; page and screen: name
	UserID      string    `json:"userId,omitempty"`
	AnonymousID string    `json:"anonymousId,omitempty"`
	MessageID   string    `json:"messageId,omitempty"`
	Time        time.Time `json:"time"` // when it was stored
	// DuplicateOf: the position of the earlier copy delivery delivers
	// instead of this one (cluster mode; StoredEvent.DuplicateOf).
	DuplicateOf string `json:"duplicateOf,omitempty"`
}

// liveEventOf reads what Live events shows of a stored event.
func liveEventOf(se StoredEvent) LiveEvent {
	le := LiveEvent{Seq: se.Seq, Pos: se.pos().String(), Source: se.Source, Type: se.Type, Time: se.StoredAt, DuplicateOf: se.DuplicateOf}
	v, err := event.Parse(se.Event)
	if err != nil {
		return le
	}
	str := func(k string) string { s, _ := v.Get(k).Str(); return s }
	if le.Type == "" {
		le.Type = str("type")
	}
	le.Event = str("event")
	if le.Event == "" && (le.Type == string(event.Page) || le.Type == string(event.Screen)) {
		le.Event = str("name")
	}
	le.UserID, le.AnonymousID, le.MessageID = str("userId"), str("anonymousId"), str("messageId")
	return le
}

// liveMsg is one event's message to the clients, shared by all of them.
type liveMsg struct {
	seq uint64
	sse []byte // "id: <seq>\ndata: <LiveEvent>\n\n"
}

// newLiveMsg encodes le's message.
func newLiveMsg(le *LiveEvent) *liveMsg {
	b := make([]byte, 0, 256)
	b = append(b, "id: "...)
	b = strconv.AppendUint(b, le.Seq, 10)
	b = append(b, "\ndata: "...)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(le) // ends with a newline; a LiveEvent always encodes
	b = append(b, buf.Bytes()...)
	b = append(b, '\n')
	return &liveMsg{seq: le.Seq, sse: b}
}

// liveFilter is a client's filters; "" takes everything.
type liveFilter struct {
	source, typ, event, user string
	// The event and user values as JSON strings (when they have one
	// spelling, see needle): a document that does not hold them cannot
	// match, which is found without parsing it.
	eventJSON, userJSON []byte
}

func newLiveFilter(source, typ, name, user string) liveFilter {
	return liveFilter{source: source, typ: typ, event: name, user: user, eventJSON: needle(name), userJSON: needle(user)}
}

// needle is v as a JSON string when every way of writing it in JSON is
// that one (printable ASCII with nothing JSON may escape); nil otherwise,
// and the document is parsed to test it.
func needle(v string) []byte {
	if v == "" {
		return nil
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '/' {
			return nil
		}
	}
	return []byte(`"` + v + `"`)
}

// cheap tests what needs no parsing: source, type, and whether the raw
// document holds the event name and user at all.
func (f *liveFilter) cheap(se StoredEvent) bool {
	return (f.source == "" || f.source == se.Source) && (f.typ == "" || f.typ == se.Type) &&
		(f.eventJSON == nil || bytes.Contains(se.Event, f.eventJSON)) &&
		(f.userJSON == nil || bytes.Contains(se.Event, f.userJSON))
}

// exact tests the event name and user on the parsed event.
func (f *liveFilter) exact(le *LiveEvent) bool {
	return (f.event == "" || f.event == le.Event) && (f.user == "" || f.user == le.UserID || f.user == le.AnonymousID)
}

func (f *liveFilter) needsParse() bool { return f.event != "" || f.user != "" }

// liveClient is one connected Live events stream.
type liveClient struct {
	f       liveFilter
	ch      chan *liveMsg
	skipped atomic.Uint64

	// started is its generation's (liveGen.started).
	started <-chan struct{}

	// The token bucket, and the events taken but not yet delivered
	// (dispatch, deliver): touched only by the reader of the client's
	// generation.
	tokens  float64
	last    time.Time
	pending []*liveMsg
}

// tokensAt returns the tokens the client has at now.
func (c *liveClient) tokensAt(now time.Time, rate, burst float64) float64 {
	if c.last.IsZero() {
		return burst
	}
	return min(burst, c.tokens+now.Sub(c.last).Seconds()*rate)
}

// take spends a token of the client's rate, if it has one.
func (c *liveClient) take(now time.Time, rate, burst float64) bool {
	c.tokens = c.tokensAt(now, rate, burst)
	c.last = now
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

// liveGen is one run of the shared reader and the clients it serves. A
// client belongs to the generation that was running when it joined: a
// generation ends only once it has no client left.
type liveGen struct {
	clients atomic.Pointer[[]*liveClient]
	cancel  context.CancelFunc
	// started is closed once the reader knows where it starts: the
	// events stored after that reach the clients.
	started chan struct{}
}

// liveHub is the shared reader and its clients.
type liveHub struct {
	events EventReader
	log    *slog.Logger
	// rate, burst, buffer, sample, heartbeat, tick and poll are liveRate,
	// liveBurst, liveBuffer, liveSample, liveHeartbeat, liveTick and
	// livePoll (tests change them before the first client joins).
	rate, burst     float64
	buffer, sample  int
	heartbeat, tick time.Duration
	poll            time.Duration

	mu      sync.Mutex
	gen     *liveGen
	clients map[*liveClient]struct{}
	closed  bool
	closing chan struct{} // closed by Shutdown
	readers sync.WaitGroup
}

func newLiveHub(events EventReader, log *slog.Logger) *liveHub {
	return &liveHub{
		events: events, log: log,
		rate: liveRate, burst: liveBurst, buffer: liveBuffer,
		sample: liveSample, heartbeat: liveHeartbeat, tick: liveTick, poll: livePoll,
		clients: map[*liveClient]struct{}{},
		closing: make(chan struct{}),
	}
}

// join adds a client, starting the reader if it is the first; nil once
// the hub is shut down.
func (h *liveHub) join(f liveFilter) *liveClient {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	c := &liveClient{f: f, ch: make(chan *liveMsg, h.buffer)}
	h.clients[c] = struct{}{}
	if h.gen == nil {
		ctx, cancel := context.WithCancel(context.Background())
		h.gen = &liveGen{cancel: cancel, started: make(chan struct{})}
		// Events stored from now on, whenever the reader gets going.
		since := time.Now()
		h.readers.Add(1)
		go func(g *liveGen) {
			defer h.readers.Done()
			h.read(ctx, g, since)
		}(h.gen)
		h.log.Debug("live events: reader started")
	}
	h.publish()
	c.started = h.gen.started
	return c
}

// leave removes a client, stopping the reader if it was the last.
func (h *liveHub) leave(c *liveClient) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.clients, c)
	if len(h.clients) > 0 {
		h.publish()
		return
	}
	if h.gen != nil {
		h.gen.clients.Store(nil)
		h.gen.cancel()
		h.gen = nil
		h.log.Debug("live events: reader stopped")
	}
}

// publish hands the current generation's reader a new list of clients.
// h.mu is held.
func (h *liveHub) publish() {
	list := make([]*liveClient, 0, len(h.clients))
	for c := range h.clients {
		list = append(list, c)
	}
	h.gen.clients.Store(&list)
}

// shutdown ends every stream (their handlers return) and refuses new ones.
func (h *liveHub) shutdown() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.closing)
	}
}

// read runs the shared reader of generation g until ctx ends: it samples
// the stream from its end at the start when the EventReader is an
// EventCursor, else follows it from since.
func (h *liveHub) read(ctx context.Context, g *liveGen, since time.Time) {
	cur, ok := h.events.(EventCursor)
	if !ok {
		close(g.started) // from since, whenever the read starts
		h.follow(ctx, g, since)
		return
	}
	var cursor uint64 // the last sequence handled
	for {
		var err error
		if cursor, err = cur.LastSeq(ctx); err == nil {
			break
		}
		if !h.retry(ctx, err) {
			close(g.started)
			return
		}
	}
	close(g.started)
	ranger, _ := h.events.(EventRanger) // nil: ReadEvents
	tick := time.NewTicker(h.poll)
	defer tick.Stop()
	failing := false // logged once until a read succeeds again
	var ratio msgRatio
	fail := func(err error) {
		if !failing {
			h.log.Warn("live events: reading the stored events failed; retrying every poll", "error", err)
		}
		failing = true
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		last, err := cur.LastSeq(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			fail(err)
			continue
		}
		if last <= cursor {
			cursor = last // the same, or the stream was restored to an earlier state
			failing = false
			continue
		}
		from := cursor + 1
		if last-cursor > uint64(h.sample) {
			// Too many to look at: the newest ones, the rest skipped.
			from = last - uint64(h.sample) + 1
			h.skipAll(g, ratio.estimate(from-cursor-1))
			cursor = from - 1
		}
		handle := func(se StoredEvent) error {
			if se.Seq > last {
				return errEnough // the next poll's
			}
			cursor = se.Seq
			ratio.saw(se.Seq)
			h.dispatch(g, se)
			return nil
		}
		if ranger != nil {
			err = h.readRange(ctx, g, ranger, from, last, handle, &cursor, &ratio)
			if errors.Is(err, ErrNoRange) {
				h.log.Info("live events: the engine cannot read a range of events in one request; reading with ReadEvents", "error", err)
				ranger = nil
			}
		}
		if ranger == nil {
			err = h.events.ReadEvents(ctx, EventQuery{After: stream.MakePos(from-1, maxIndex)}, handle)
			if err == nil || errors.Is(err, errEnough) {
				cursor = last // what is not there was deleted
			}
		}
		h.deliver(g)
		switch {
		case ctx.Err() != nil:
			return
		case err == nil || errors.Is(err, errEnough):
			failing = false
		default:
			fail(err)
		}
	}
}

// readRange reads messages from..last for generation g with r, in chunks
// of one message, then twice the previous chunk, never more than the room
// clients have (a message is one event or a whole request's segment, so a
// chunk is sized in messages, and a client whose filter takes few events
// costs few requests). Once no client can take another event, the rest is
// skipped unread for every client, counted in events estimated from the
// messages read (msgRatio). A sequence that holds nothing was deleted, or
// its event has not reached the server that answered yet (a replica): the
// next poll asks again from after the last event seen (*cursor, which
// handle moves).
func (h *liveHub) readRange(ctx context.Context, g *liveGen, r EventRanger, from, last uint64, handle func(StoredEvent) error, cursor *uint64, ratio *msgRatio) error {
	var chunk uint64
	for from <= last {
		room := uint64(h.room(g, time.Now()))
		if room == 0 {
			h.skipAll(g, ratio.estimate(last-from+1))
			*cursor = last
			return nil
		}
		// A message may hold one event or a whole request's (a segment):
		// one message first, then twice as many each time while clients
		// still have room, never more messages than they have room for.
		chunk = min(max(1, 2*chunk), room, last-from+1)
		if err := r.ReadRange(ctx, from, from+chunk-1, handle); err != nil {
			return err
		}
		from += chunk
	}
	return nil
}

// room returns the most events a client of g can take now: its tokens,
// bounded by the room in its buffer.
func (h *liveHub) room(g *liveGen, now time.Time) int {
	p := g.clients.Load()
	if p == nil {
		return 0
	}
	most := 0
	for _, c := range *p {
		most = max(most, min(int(c.tokensAt(now, h.rate, h.burst)), cap(c.ch)-len(c.ch)-len(c.pending)))
	}
	return most
}

// follow reads every event stored from since for generation g until ctx
// ends, and resumes after the last event it saw when the read fails.
func (h *liveHub) follow(ctx context.Context, g *liveGen, since time.Time) {
	q := EventQuery{Since: since, Follow: true}
	for {
		err := h.events.ReadEvents(ctx, q, func(se StoredEvent) error {
			q.After, q.Since = se.pos(), time.Time{}
			h.dispatch(g, se)
			h.deliver(g)
			return nil
		})
		if !h.retry(ctx, err) {
			return
		}
	}
}

// retry logs a failed read and waits a second; false when ctx ended.
func (h *liveHub) retry(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	h.log.Warn("live events: reading the stored events failed; retrying", "error", err)
	select {
	case <-ctx.Done():
		return false
	case <-time.After(time.Second):
		return true
	}
}

// msgRatio estimates how many events the messages left unread held, from
// the events per message of those read: a message is one event (releases
// before segments) or a whole request's (a segment), so a count of unread
// messages would say far fewer events were skipped than were. The figures
// are halved now and then, so that the estimate follows a changing mix.
type msgRatio struct {
	msgs, events float64
	last         uint64 // the sequence of the last event seen
}

// saw notes an event read, of the message at seq.
func (r *msgRatio) saw(seq uint64) {
	r.events++
	if seq != r.last {
		r.msgs++
		r.last = seq
	}
	if r.msgs > 10000 {
		r.msgs, r.events = r.msgs/2, r.events/2
	}
}

// estimate returns the events msgs unread messages likely held (msgs
// itself before any was read).
func (r *msgRatio) estimate(msgs uint64) uint64 {
	if r.msgs == 0 {
		return msgs
	}
	return uint64(float64(msgs)*r.events/r.msgs + 0.5)
}

// skipAll counts n events skipped unread for every client of g.
func (h *liveHub) skipAll(g *liveGen, n uint64) {
	if p := g.clients.Load(); p != nil {
		for _, c := range *p {
			c.skipped.Add(n)
		}
	}
}

// dispatch gives se to the clients of g that take it, for deliver.
func (h *liveHub) dispatch(g *liveGen, se StoredEvent) {
	p := g.clients.Load()
	if p == nil {
		return
	}
	var le *LiveEvent // parsed at most once, only when needed
	parse := func() *LiveEvent {
		if le == nil {
			v := liveEventOf(se)
			le = &v
		}
		return le
	}
	var msg *liveMsg // encoded at most once, when a client takes it
	now := time.Now()
	for _, c := range *p {
		if !c.f.cheap(se) {
			continue
		}
		if c.f.needsParse() && !c.f.exact(parse()) {
			continue
		}
		if !c.take(now, h.rate, h.burst) {
			c.skipped.Add(1) // sampled
			continue
		}
		if msg == nil {
			msg = newLiveMsg(parse())
		}
		c.pending = append(c.pending, msg)
	}
}

// deliver hands the clients of g the events dispatch gave them, without
// waiting: each client's in a row, so that it wakes once for them and
// writes them at once.
func (h *liveHub) deliver(g *liveGen) {
	p := g.clients.Load()
	if p == nil {
		return
	}
	for _, c := range *p {
		for i, m := range c.pending {
			select {
			case c.ch <- m:
			default:
				c.skipped.Add(1) // the client is slow
			}
			c.pending[i] = nil
		}
		c.pending = c.pending[:0]
	}
}

// liveEvents: GET /admin/api/live?source=&type=&event=&user= streams the
// events stored from now on as server-sent events:
//
//	event: ready      data: {"rate": N}   once, when the stream is set up
//	(message)         data: LiveEvent     each event, with id: <seq>
//	event: skipped    data: {"skipped": N} the events not sent so far (sampled), when it grows
//	: heartbeat                           after 15 s of silence
func (s *Server) liveEvents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := checkQuery(q, "source", "type", "event", "user"); err != nil {
		return err
	}
	source, typ, name, user := q.Get("source"), q.Get("type"), q.Get("event"), q.Get("user")
	if err := checkName("source", source); err != nil {
		return err
	}
	if typ != "" {
		t, ok := event.ParseType(typ)
		if !ok {
			return badRequest("type %q: use track, page, screen, identify, group or alias", typ)
		}
		typ = string(t)
	}
	for _, p := range []struct{ name, v string }{{"source", source}, {"event", name}, {"user", user}} {
		if len(p.v) > maxLiveFilter {
			return badRequest("%s is %d bytes long: at most %d", p.name, len(p.v), maxLiveFilter)
		}
	}
	c := s.live.join(newLiveFilter(source, typ, name, user))
	if c == nil {
		return &apiError{http.StatusServiceUnavailable, codeUnavailable, "the server is shutting down"}
	}
	defer s.live.leave(c)

	// Set up before "ready": what is stored after it is sent.
	select {
	case <-c.started:
	case <-r.Context().Done():
		return nil
	case <-s.live.closing:
		return &apiError{http.StatusServiceUnavailable, codeUnavailable, "the server is shutting down"}
	}
	rc := http.NewResponseController(w)
	// The stream outlives the server's read and write timeouts: no read
	// deadline (it would end the request), a write deadline per write.
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("X-Accel-Buffering", "no") // a proxy must not buffer the stream
	w.WriteHeader(http.StatusOK)

	var buf bytes.Buffer
	flush := func() error {
		_ = rc.SetWriteDeadline(time.Now().Add(liveWriteTimeout))
		if _, err := w.Write(buf.Bytes()); err != nil {
			return err
		}
		buf.Reset()
		return rc.Flush()
	}
	buf.WriteString("retry: 3000\n")
	buf.WriteString("event: ready\ndata: {\"rate\":" + strconv.Itoa(int(s.live.rate)) + "}\n\n")
	if flush() != nil {
		return nil
	}
	tick := time.NewTicker(s.live.tick)
	defer tick.Stop()
	var reported uint64
	lastWrite := time.Now()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-s.live.closing:
			buf.WriteString("event: bye\ndata: {\"reason\":\"the server is shutting down\"}\n\n")
			_ = flush()
			return nil
		case m := <-c.ch:
			// Send what is waiting in one write.
			buf.Write(m.sse)
		more:
			for range 64 {
				select {
				case m = <-c.ch:
					buf.Write(m.sse)
				default:
					break more
				}
			}
		case now := <-tick.C:
			if n := c.skipped.Load(); n != reported {
				reported = n
				buf.WriteString("event: skipped\ndata: {\"skipped\":" + strconv.FormatUint(n, 10) + "}\n\n")
			} else if now.Sub(lastWrite) >= s.live.heartbeat {
				buf.WriteString(": heartbeat\n\n")
			}
		}
		if buf.Len() > 0 {
			if flush() != nil {
				return nil // the client is gone
			}
			lastWrite = time.Now()
		}
	}
}

// Shutdown ends every Live events stream and refuses new ones, so that an
// http.Server's Shutdown does not wait for them: register it with
// RegisterOnShutdown. The shared reader stops once the last stream has
// ended; Wait waits for that. It also stops the console's running imports
// after the rows being stored (WaitImports waits for them) and refuses new
// ones.
func (s *Server) Shutdown() {
	s.live.shutdown()
	s.imports.stop()
}

// Wait waits until the shared reader of Live events has stopped (after
// Shutdown, once every stream has ended).
func (s *Server) Wait() { s.live.readers.Wait() }

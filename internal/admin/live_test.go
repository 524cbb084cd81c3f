package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/stream"
)

// sseEvent is one server-sent event as a client reads it.
type sseEvent struct {
	name, id, data string
}

// sseClient reads a Live events stream.
type sseClient struct {
	t        *testing.T
	events   chan sseEvent
	comments chan string
	cancel   context.CancelFunc
	done     chan struct{}
}

// liveServer serves e's admin API over real HTTP; at the end of the test
// it shuts the Live events streams down and checks that the shared reader
// stopped.
func liveServer(t *testing.T, e *env) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(e.s)
	t.Cleanup(func() {
		e.s.Shutdown()
		srv.Close()
		waitReaders(t, e.s)
	})
	return srv
}

// waitReaders waits for the shared reader to stop.
func waitReaders(t *testing.T, s *Server) {
	t.Helper()
	done := make(chan struct{})
	go func() { s.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the Live events reader did not stop within 10s")
	}
}

// openLive opens GET /admin/api/live?query and waits for its ready event.
func openLive(t *testing.T, srv *httptest.Server, query string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/admin/api/live"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", operator)
	resp, err := srv.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
		cancel()
		resp.Body.Close()
		t.Fatalf("live%s: %d %s", query, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	c := &sseClient{t: t, events: make(chan sseEvent, 10000), comments: make(chan string, 100), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer close(c.events)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.data != "" || ev.name != "" {
					c.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				select {
				case c.comments <- line:
				default:
				}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				ev.data += strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	t.Cleanup(c.close)
	if ev := c.next(); ev.name != "ready" {
		t.Fatalf("first event %+v, want ready", ev)
	}
	return c
}

// close disconnects and waits for the reading goroutine.
func (c *sseClient) close() {
	c.cancel()
	<-c.done
}

// next returns the next event, failing after 10s.
func (c *sseClient) next() sseEvent {
	c.t.Helper()
	select {
	case ev, ok := <-c.events:
		if !ok {
			c.t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		c.t.Fatal("no server-sent event within 10s")
		return sseEvent{}
	}
}

// nextLive returns the next stored event, skipping other events.
func (c *sseClient) nextLive() LiveEvent {
	c.t.Helper()
	for {
		ev := c.next()
		if ev.name != "" {
			continue
		}
		var le LiveEvent
		if err := json.Unmarshal([]byte(ev.data), &le); err != nil {
			c.t.Fatalf("event %q: %v", ev.data, err)
		}
		if ev.id != fmt.Sprint(le.Seq) {
			c.t.Errorf("id %q for event %d", ev.id, le.Seq)
		}
		return le
	}
}

// quiet checks that no stored event arrives for d.
func (c *sseClient) quiet(d time.Duration) {
	c.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case ev := <-c.events:
			if ev.name == "" {
				c.t.Errorf("unexpected event %s", ev.data)
			}
		case <-deadline:
			return
		}
	}
}

// store appends documents of source through w and returns their sequences.
func store(t *testing.T, w *stream.Writer, source string, docs ...string) []uint64 {
	t.Helper()
	var evs []stream.Event
	for _, d := range docs {
		var probe struct{ Type, MessageID string }
		if err := json.Unmarshal([]byte(d), &probe); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, stream.Event{Source: source, Type: probe.Type, MessageID: probe.MessageID, Doc: []byte(d)})
	}
	res, err := w.Append(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		seqs = append(seqs, r.Seq)
	}
	return seqs
}

// storeEach stores docs one Append each, so that each is a message of its
// own (one segment): what the sampling tests count in.
func storeEach(t *testing.T, w *stream.Writer, source string, docs ...string) []uint64 {
	t.Helper()
	var seqs []uint64
	for _, d := range docs {
		seqs = append(seqs, store(t, w, source, d)...)
	}
	return seqs
}

// liveClients counts the hub's clients.
func liveClients(s *Server) int {
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	return len(s.live.clients)
}

// TestLiveFilters: every client gets the events stored after it connected
// that its filters take (source, type, event name, user as userId or
// anonymousId), with their ids and time.
func TestLiveFilters(t *testing.T) {
	e := newEnv(t)
	srv := liveServer(t, e)
	store(t, e.w, "web", `{"type":"track","event":"Sign Up","userId":"u1","messageId":"before"}`)
	all := openLive(t, srv, "")
	some := openLive(t, srv, "?source=web&type=track&event=Sign+Up&user=u1")
	pages := openLive(t, srv, "?type=PAGE")
	seqs := store(t, e.w, "web",
		`{"type":"track","event":"Sign Up","userId":"u1","anonymousId":"a1","messageId":"m1"}`,
		`{"type":"page","name":"Sign Up","userId":"u1","messageId":"m2"}`,
		`{"type":"track","event":"Sign Up","userId":"u2","messageId":"m3","properties":{"note":"u1"}}`,
		`{"type":"track","event":"Sign Up","anonymousId":"u1","messageId":"m4"}`,
	)
	seqs = append(seqs, store(t, e.w, "app", `{"type":"track","event":"Sign Up","userId":"u1","messageId":"m5"}`)...)
	start := time.Now()
	var got []LiveEvent
	for range 5 {
		got = append(got, all.nextLive())
	}
	for i, le := range got {
		if le.Seq != seqs[i] || le.MessageID != fmt.Sprintf("m%d", i+1) || le.Time.IsZero() || le.Time.After(time.Now()) {
			t.Errorf("event %d: %+v", i, le)
		}
	}
	if le := got[0]; le.Source != "web" || le.Type != "track" || le.Event != "Sign Up" || le.UserID != "u1" || le.AnonymousID != "a1" {
		t.Errorf("first event %+v", le)
	}
	if le := got[1]; le.Type != "page" || le.Event != "Sign Up" {
		t.Errorf("page event %+v: its name is its event", le)
	}
	if le := got[4]; le.Source != "app" {
		t.Errorf("last event %+v", le)
	}
	t.Logf("5 events in %s", time.Since(start))
	if le := some.nextLive(); le.MessageID != "m1" {
		t.Errorf("filtered: %+v, want m1", le)
	}
	if le := some.nextLive(); le.MessageID != "m4" {
		t.Errorf("filtered: %+v, want m4 (user as anonymousId)", le)
	}
	if le := pages.nextLive(); le.MessageID != "m2" {
		t.Errorf("pages: %+v, want m2", le)
	}
	some.quiet(300 * time.Millisecond)
	pages.quiet(10 * time.Millisecond)
}

// TestLiveSampling: a client past its rate is sampled and told how many
// events it skipped; a client whose buffer is full drops and counts too.
// A busy client does not hold up the others.
func TestLiveSampling(t *testing.T) {
	e := newEnv(t)
	e.s.live.rate, e.s.live.burst, e.s.live.tick = 0.001, 5, 50*time.Millisecond
	srv := liveServer(t, e)
	c := openLive(t, srv, "")
	docs := make([]string, 40)
	for i := range docs {
		docs[i] = fmt.Sprintf(`{"type":"track","event":"E","messageId":"s%d"}`, i)
	}
	store(t, e.w, "web", docs...)
	received, skipped := 0, uint64(0)
	for received+int(skipped) < 40 {
		ev := c.next()
		switch ev.name {
		case "":
			received++
		case "skipped":
			var s struct{ Skipped uint64 }
			if err := json.Unmarshal([]byte(ev.data), &s); err != nil {
				t.Fatal(err)
			}
			if s.Skipped < skipped {
				t.Fatalf("skipped went down: %d after %d", s.Skipped, skipped)
			}
			skipped = s.Skipped
		}
	}
	if received != 5 || skipped != 35 {
		t.Errorf("received %d and skipped %d, want 5 and 35", received, skipped)
	}

	// Heavy load: the reader looks at no more than sample events per poll,
	// the newest, and counts the others as skipped for every client.
	e2 := newEnv(t)
	e2.s.live.sample, e2.s.live.poll, e2.s.live.tick = 5, 300*time.Millisecond, 50*time.Millisecond
	srv2 := liveServer(t, e2)
	c2 := openLive(t, srv2, "")
	seqs := storeEach(t, e2.w, "web", docs...)
	received, skipped = 0, 0
	var last LiveEvent
	for received+int(skipped) < 40 {
		ev := c2.next()
		switch ev.name {
		case "":
			received++
			if err := json.Unmarshal([]byte(ev.data), &last); err != nil {
				t.Fatal(err)
			}
		case "skipped":
			var s struct{ Skipped uint64 }
			if err := json.Unmarshal([]byte(ev.data), &s); err != nil {
				t.Fatal(err)
			}
			skipped = s.Skipped
		}
	}
	if received+int(skipped) != 40 || skipped < 20 || last.Seq != seqs[39] {
		t.Errorf("sampled reader: received %d (the last %d), skipped %d; want the newest of 40 and the rest skipped", received, last.Seq, skipped)
	}

	// A slow client: its buffer is full, the dispatch does not wait.
	h := newLiveHub(EngineEvents{Engine: e.eng}, discard)
	h.buffer = 2
	slow := h.join(liveFilter{})
	fast := h.join(liveFilter{})
	g := h.gen
	for i := range 5 {
		h.dispatch(g, StoredEvent{Seq: uint64(i + 1), Source: "web", Type: "track", Event: []byte(`{"type":"track"}`)})
		h.deliver(g)
		<-fast.ch
	}
	if len(slow.ch) != 2 || slow.skipped.Load() != 3 || fast.skipped.Load() != 0 {
		t.Errorf("slow client: %d queued, %d skipped; fast skipped %d", len(slow.ch), slow.skipped.Load(), fast.skipped.Load())
	}
	h.leave(slow)
	h.leave(fast)
	h.readers.Wait()
}

// TestLiveClients: one shared reader serves several clients, started by
// the first and stopped when the last leaves; a client that disconnects
// is removed; after Shutdown every stream ends and no new one opens.
func TestLiveClients(t *testing.T) {
	e := newEnv(t)
	e.s.live.heartbeat, e.s.live.tick = 50*time.Millisecond, 20*time.Millisecond
	srv := liveServer(t, e)
	a := openLive(t, srv, "")
	b := openLive(t, srv, "?source=web")
	c := openLive(t, srv, "?user=u9")
	if n := liveClients(e.s); n != 3 {
		t.Fatalf("%d clients", n)
	}
	// Heartbeats keep a silent stream open.
	select {
	case hb := <-c.comments:
		if hb != ": heartbeat" {
			t.Errorf("comment %q", hb)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no heartbeat")
	}
	store(t, e.w, "web", `{"type":"identify","userId":"u9","messageId":"x1"}`)
	for _, cl := range []*sseClient{a, b, c} {
		if le := cl.nextLive(); le.MessageID != "x1" || le.Type != "identify" {
			t.Errorf("%+v", le)
		}
	}
	b.close()
	eventually(t, func() bool { return liveClients(e.s) == 2 })
	store(t, e.w, "web", `{"type":"track","event":"E","userId":"u9","messageId":"x2"}`)
	if le := a.nextLive(); le.MessageID != "x2" {
		t.Errorf("%+v", le)
	}
	a.close()
	c.close()
	eventually(t, func() bool { return liveClients(e.s) == 0 })
	waitReaders(t, e.s) // the last client stopped the reader

	// A new client starts a new reader.
	d := openLive(t, srv, "")
	store(t, e.w, "web", `{"type":"track","event":"E","messageId":"x3"}`)
	if le := d.nextLive(); le.MessageID != "x3" {
		t.Errorf("%+v", le)
	}
	e.s.Shutdown()
	for ev := range d.events {
		if ev.name == "bye" {
			continue
		}
		if ev.name != "" {
			t.Errorf("after shutdown: %+v", ev)
		}
	}
	waitReaders(t, e.s)
	a2 := do(t, e.s, http.MethodGet, "/admin/api/live", operator, "")
	wantError(t, a2, http.StatusServiceUnavailable, codeUnavailable, "shutting down")
}

func TestLiveBadRequests(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct{ query, fragment string }{
		{"?type=purchase", `type "purchase": use track`},
		{"?source=a.b", `source "a.b"`},
		{"?person=x", `unknown query parameter "person"`},
		{"?user=" + strings.Repeat("x", 201), "user is 201 bytes long"},
		{"?event=a&event=b", `"event" is given 2 times`},
	} {
		wantError(t, e.do(t, http.MethodGet, "/admin/api/live"+tt.query, ""), http.StatusBadRequest, codeBadRequest, tt.fragment)
	}
	wantError(t, do(t, e.s, http.MethodGet, "/admin/api/live", "", ""), http.StatusUnauthorized, codeUnauthorized, "admin token")
	if n := liveClients(e.s); n != 0 {
		t.Errorf("%d clients after refused requests", n)
	}
}

// eventually polls cond for up to 10s.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLiveFollow: with an EventReader that cannot say its last sequence,
// the shared reader follows the stream: every event reaches the client.
func TestLiveFollow(t *testing.T) {
	e := newEnv(t)
	h := newLiveHub(struct{ EventReader }{EngineEvents{Engine: e.eng}}, discard)
	c := h.join(liveFilter{})
	<-c.started
	seqs := store(t, e.w, "web", `{"type":"track","event":"A","messageId":"f1"}`, `{"type":"track","event":"B","messageId":"f2"}`)
	for _, want := range seqs {
		select {
		case m := <-c.ch:
			if m.seq != want {
				t.Errorf("event %d, want %d", m.seq, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("event %d not received", want)
		}
	}
	h.leave(c)
	h.readers.Wait()
}

// TestLiveFilterSpellings: the filters' cheap search of the raw document
// never hides an event whose values JSON spells another way (escapes).
func TestLiveFilterSpellings(t *testing.T) {
	se := StoredEvent{Type: "track", Event: []byte(`{"type":"track","event":"a\/b \u003cc\u003e","userId":"jos\u00e9"}`)}
	f := newLiveFilter("", "track", "a/b <c>", "josé")
	le := liveEventOf(se)
	if !f.cheap(se) || !f.exact(&le) {
		t.Errorf("escaped values: cheap %v, exact %v (%+v)", f.cheap(se), f.exact(&le), le)
	}
	other := StoredEvent{Type: "track", Event: []byte(`{"type":"track","event":"Sign Up","userId":"u2"}`)}
	if g := newLiveFilter("", "", "Sign Up", "u1"); g.cheap(other) {
		t.Error("the raw document lacks the user, yet the cheap test takes it")
	}
	if g := newLiveFilter("", "", "", "u2"); !g.cheap(other) {
		t.Error("the raw document holds the user, yet the cheap test drops it")
	}
}

// noRange is an EventReader and EventCursor whose engine cannot read a
// range in one request (a NATS server before 2.11).
type noRange struct{ EngineEvents }

func (noRange) ReadRange(context.Context, uint64, uint64, func(StoredEvent) error) error {
	return fmt.Errorf("%w (an old server)", ErrNoRange)
}

// TestLiveReadsRanges: the shared reader polls with ReadRange and leaves
// no consumer on the server however often it polls; without ReadRange, or
// when the engine cannot, it reads with ReadEvents and every event still
// arrives. Clients taking the same event share its one encoded message.
func TestLiveReadsRanges(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	consumers := func() int {
		t.Helper()
		s, err := e.eng.JetStream().Stream(ctx, stream.EventsStream)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().State.Consumers
	}
	before := consumers()
	for i, r := range []EventReader{
		EngineEvents{Engine: e.eng},
		noRange{EngineEvents{Engine: e.eng}},
		struct {
			EventReader
			EventCursor
		}{EngineEvents{Engine: e.eng}, EngineEvents{Engine: e.eng}},
	} {
		h := newLiveHub(r, discard)
		h.poll = 20 * time.Millisecond
		a, b := h.join(liveFilter{}), h.join(liveFilter{})
		<-a.started
		// One at a time: each is read by another poll.
		for j := range 4 {
			seq := store(t, e.w, "web", fmt.Sprintf(`{"type":"track","event":"E","messageId":"r%d-%d"}`, i, j))[0]
			var got [2]*liveMsg
			for k, c := range []*liveClient{a, b} {
				select {
				case got[k] = <-c.ch:
				case <-time.After(10 * time.Second):
					t.Fatalf("reader %d: event %d not received", i, seq)
				}
			}
			if got[0].seq != seq || got[0] != got[1] {
				t.Errorf("reader %d: events %d and %d, want %d, one message for both", i, got[0].seq, got[1].seq, seq)
			}
			if want := fmt.Sprintf("id: %d\ndata: {\"seq\":%d,", seq, seq); !strings.HasPrefix(string(got[0].sse), want) ||
				!strings.HasSuffix(string(got[0].sse), "}\n\n") {
				t.Errorf("reader %d: message %q", i, got[0].sse)
			}
		}
		if i == 0 {
			if n := consumers(); n != before {
				t.Errorf("ReadRange: %d consumers on EVENTS after the polls, %d before", n, before)
			}
		}
		h.leave(a)
		h.leave(b)
		h.readers.Wait()
	}
}

// countRanger counts the sequences the shared reader asks for.
type countRanger struct {
	EngineEvents
	asked *atomic.Uint64
}

func (r countRanger) ReadRange(ctx context.Context, from, upTo uint64, fn func(StoredEvent) error) error {
	r.asked.Add(upTo - from + 1)
	return r.EngineEvents.ReadRange(ctx, from, upTo, fn)
}

// TestLiveReadsWhatClientsTake: the shared reader stops reading once no
// client can take another event (the rest is skipped unread), but reads
// on for a client whose filter has taken nothing yet.
func TestLiveReadsWhatClientsTake(t *testing.T) {
	e := newEnv(t)
	for k, tc := range []struct {
		name    string
		filters []liveFilter
		asked   uint64
	}{
		{"every client full", []liveFilter{{}, {}}, 3},
		{"a filter that takes none", []liveFilter{{}, newLiveFilter("app", "", "", "")}, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var asked atomic.Uint64
			h := newLiveHub(countRanger{EngineEvents{Engine: e.eng}, &asked}, discard)
			h.rate, h.burst, h.poll = 0.001, 3, 20*time.Millisecond
			var cs []*liveClient
			for _, f := range tc.filters {
				cs = append(cs, h.join(f))
			}
			<-cs[0].started
			docs := make([]string, 40)
			for i := range docs {
				docs[i] = fmt.Sprintf(`{"type":"track","event":"E","messageId":"w%d-%d"}`, k, i)
			}
			storeEach(t, e.w, "web", docs...)
			eventually(t, func() bool { return len(cs[0].ch) == 3 && cs[0].skipped.Load() == 37 })
			if len(cs[1].ch) == 3 != (tc.asked == 3) {
				t.Errorf("second client: %d events", len(cs[1].ch))
			}
			if n := asked.Load(); n != tc.asked {
				t.Errorf("the reader asked for %d events, want %d", n, tc.asked)
			}
			for _, c := range cs {
				h.leave(c)
			}
			h.readers.Wait()
		})
	}
}

// TestMsgRatio: events skipped unread are counted as the messages read
// suggest, not one per message.
func TestMsgRatio(t *testing.T) {
	var r msgRatio
	if n := r.estimate(7); n != 7 {
		t.Errorf("before any read: %d, want 7 (one event a message)", n)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		for range 100 { // three segments of 100 events
			r.saw(seq)
		}
	}
	if n := r.estimate(5); n != 500 {
		t.Errorf("after segments of 100: %d, want 500", n)
	}
	for seq := uint64(4); seq < 30000; seq++ { // then one event a message
		r.saw(seq)
	}
	if n := r.estimate(10); n < 10 || n > 11 {
		t.Errorf("after many single events: %d, want about 10", n)
	}
}

package stream

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func openWriter(t *testing.T, cfg Config) (*Engine, *Writer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	eng, err := Open(ctx, cfg, discard)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(eng, WriterConfig{}, discard)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; eng.Close() })
	return eng, w
}

func appendOK(t *testing.T, w *Writer, evs ...Event) []Result {
	t.Helper()
	res, err := w.Append(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("event %d: %v", i, r.Err)
		}
	}
	return res
}

func readEvents(t *testing.T, eng *Engine, opt ReadOptions) []Stored {
	t.Helper()
	var out []Stored
	if err := eng.ReadEvents(context.Background(), opt, func(s Stored) error {
		out = append(out, s)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDedupID(t *testing.T) {
	if got := dedupIDOf("web", "m-1"); got != "web:m-1" {
		t.Errorf("got %q", got)
	}
	if got := dedupIDOf("web", "a\nb"); !strings.HasPrefix(got, "web:sha256:") || strings.ContainsAny(got, "\r\n") {
		t.Errorf("got %q", got)
	}
	// keyOf hashes what follows the source in the de-duplication id.
	for _, id := range []string{"m-1", "a\nb", "web:x", ":", "\x7f"} {
		src, got, ok := keyOf("web", id, "")
		if want := strings.TrimPrefix(dedupIDOf("web", id), "web:"); !ok || src != "web" || got != want {
			t.Errorf("keyOf(web, %q) = %q, %q, %v; want web, %q", id, src, got, ok, want)
		}
	}
}

func TestNewWriterConfig(t *testing.T) {
	eng, _ := openTest(t, Config{DataDir: t.TempDir()})
	for _, tc := range []struct {
		name string
		eng  *Engine
		cfg  WriterConfig
		want string // error fragment; "" for none
	}{
		{name: "defaults", eng: eng},
		{name: "max batch 1000", eng: eng, cfg: WriterConfig{MaxBatch: 1000}},
		{name: "no engine", want: "no engine"},
		{name: "max batch too large", eng: eng, cfg: WriterConfig{MaxBatch: 1001}, want: "max batch must be between 1 and 1000, got 1001"},
		{name: "negative linger", eng: eng, cfg: WriterConfig{Linger: -time.Millisecond}, want: "linger must not be negative"},
		{name: "negative retest", eng: eng, cfg: WriterConfig{RetestAfter: -time.Second}, want: "retest after must not be negative, got -1s"},
		{name: "all reported", eng: eng, cfg: WriterConfig{Inflight: -1, MaxQueued: -1, AckTimeout: -1}, want: "inflight must not be negative, got -1\nmax queued must not be negative, got -1\nack timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := NewWriter(tc.eng, tc.cfg, discard)
			switch {
			case tc.want == "" && (err != nil || w == nil):
				t.Fatalf("got %v, want a writer", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestWriterStorageFormat pins what the writer stores on the wire: the
// subject, Nats-Msg-Id and headers that operators and stored data rely on.
func TestWriterStorageFormat(t *testing.T) {
	eng, w := openWriter(t, Config{DataDir: t.TempDir()})
	facts := Event{Source: "web", RequestID: "r1", UserAgent: "Mozilla/5.0\r\n(X11)" + strings.Repeat("x", 600), LiFatID: "lfi-1"}
	ev := func(typ, id, doc string, with func(*Event)) Event {
		e := facts
		e.Type, e.MessageID, e.Doc = typ, id, []byte(doc)
		if with != nil {
			with(&e)
		}
		return e
	}
	evs := []Event{
		ev("track", "m1", `{"n":1}`, nil),
		ev("page", "m2", `{"n":2}`, nil),
		ev("track", "m1", `{"n":3}`, func(e *Event) {
			*e = Event{Source: "app", Type: "track", MessageID: "m1", Doc: e.Doc, Trust: TrustServer}
		}),
		ev("track", "m1", `{"n":4}`, nil), // duplicate of the first
		ev("track", "m1", `{"n":5}`, func(e *Event) {
			*e = Event{Source: "web", Type: "track", MessageID: "m1", Doc: e.Doc, ReplayFor: "li", DedupID: "replay:li:7"}
		}),
		ev("track", "m6", `{"n":6}`, func(e *Event) { e.Source = "bad.source" }),
		ev("", "m7", `{"n":7}`, nil),
		ev("track", "m\n8", `{"n":8}`, nil),
	}
	res, err := w.Append(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		wantErr, wantDup := i == 5 || i == 6, i == 3
		if (r.Err != nil) != wantErr || r.Duplicate != wantDup || (!wantErr && !wantDup) != (r.Seq != 0) {
			t.Errorf("event %d: %+v", i, r)
		}
	}
	if res[5].Err == nil || !strings.Contains(res[5].Err.Error(), `source "bad.source"`) {
		t.Errorf("bad source: %v", res[5].Err)
	}
	ua := "Mozilla/5.0(X11)" + strings.Repeat("x", 512-len("Mozilla/5.0\r\n(X11)"))
	// One segment per source, its events in order: web's compressed (its
	// user agents repeat), app's too short to be.
	type wire struct {
		subject, msgID string
		header         map[string]string
		events         int
	}
	want := []wire{
		{"events.web.seg", segmentID("web", []string{"m1", "m2", "replay:li:7", "sha256:" + strings.TrimPrefix(dedupIDOf("web", "m\n8"), "web:sha256:")}), map[string]string{headerSeg: "2", headerSource: "web"}, 4},
		{"events.app.seg", segmentID("app", []string{"m1"}), map[string]string{headerSeg: "1", headerSource: "app"}, 1},
	}
	msgs := readAll(t, eng, EventsStream)
	if len(msgs) != len(want) {
		t.Fatalf("stored %d messages, want %d", len(msgs), len(want))
	}
	for i, m := range msgs {
		w := want[i]
		if m.Subject != w.subject || m.Header.Get(nats.MsgIdHdr) != w.msgID {
			t.Errorf("message %d: %s %q, want %s %q", i, m.Subject, m.Header.Get(nats.MsgIdHdr), w.subject, w.msgID)
		}
		got := map[string]string{}
		for k := range m.Header {
			if k != nats.MsgIdHdr {
				got[k] = m.Header.Get(k)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(w.header) {
			t.Errorf("message %d: headers %v, want %v", i, got, w.header)
		}
		frame, err := segmentFrame(m.Header.Get(headerSeg), m.Data)
		if err != nil {
			t.Errorf("message %d: %v", i, err)
		}
		if evs, err := decodeSegment(frame); err != nil || len(evs) != w.events {
			t.Errorf("message %d: %d events, %v; want %d", i, len(evs), err, w.events)
		}
	}
	for i, r := range res {
		if wantPos := map[int]string{0: "1:0", 1: "1:1", 2: "2:0", 4: "1:2", 7: "1:3"}[i]; r.Pos().String() != wantPos && wantPos != "" {
			t.Errorf("event %d stored at %s, want %s", i, r.Pos(), wantPos)
		}
	}

	// Read back as Stored: the same facts, decoded, in stream order.
	stored := readEvents(t, eng, ReadOptions{})
	if len(stored) != 5 {
		t.Fatalf("read %d events, want 5", len(stored))
	}
	first, replay := stored[0], stored[2]
	if first.Pos() != res[0].Pos() || first.Subject != "events.web.seg" || first.Source != "web" || first.Type != "track" || first.MessageID != "m1" ||
		string(first.Doc) != `{"n":1}` || first.RequestID != "r1" || first.UserAgent != ua || first.LiFatID != "lfi-1" ||
		first.ReplayFor != "" || time.Since(first.StoredAt) > time.Minute {
		t.Errorf("first event read back as %+v", first)
	}
	if replay.Pos() != res[4].Pos() || replay.Source != "web" || replay.Type != "track" || replay.ReplayFor != "li" || replay.DedupID != "replay:li:7" || replay.RequestID != "" {
		t.Errorf("replayed event read back as %+v", replay)
	}
	if stored[1].Type != "page" || stored[3].MessageID != "m\n8" || stored[4].Source != "app" || stored[4].Trust != TrustServer || first.Trust != "" {
		t.Errorf("events read back: %+v %+v %+v", stored[1], stored[3], stored[4])
	}
}

// TestOldMessagesMixedWithSegments: per-event messages of older releases
// (the record path, format.go) and segments read back in stream order,
// with the facts each form carries.
func TestOldMessagesMixedWithSegments(t *testing.T) {
	eng, w := openWriter(t, Config{DataDir: t.TempDir()})
	var enc encoder
	old := []Event{
		{Source: "web", Type: "track", MessageID: "o1", Doc: []byte(`{"n":1}`), RequestID: "r", Trust: TrustServer},
		{Source: "web", Type: "page", DedupID: "replay:li:3", ReplayFor: "li", Doc: []byte(`{"n":2}`)},
	}
	app := w.app
	if _, err := app.Append(context.Background(), []record{enc.record(&old[0]), enc.record(&old[1])}); err != nil {
		t.Fatal(err)
	}
	appendOK(t, w, Event{Source: "web", Type: "track", MessageID: "s1", Doc: []byte(`{"n":3}`)}, Event{Source: "web", Type: "identify", MessageID: "s2", Doc: []byte(`{"n":4}`)})
	if _, err := app.Append(context.Background(), []record{enc.record(&Event{Source: "web", Type: "track", MessageID: "o3", Doc: []byte(`{"n":5}`)})}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range readEvents(t, eng, ReadOptions{Source: "web"}) {
		got = append(got, fmt.Sprintf("%s %s %s %s %s %s", s.Pos(), s.Type, s.MessageID, s.DedupID, s.Doc, s.Trust))
	}
	want := []string{
		`1:0 track o1  {"n":1} server`,
		`2:0 page  replay:li:3 {"n":2} `,
		`3:0 track s1  {"n":3} `,
		`3:1 identify s2  {"n":4} `,
		`4:0 track o3  {"n":5} `,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("read back\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestReadEventsOptions(t *testing.T) {
	eng, w := openWriter(t, Config{DataDir: t.TempDir()})
	for i := range 6 {
		src := "web"
		if i%3 == 2 {
			src = "app"
		}
		appendOK(t, w, Event{Source: src, Type: "track", MessageID: fmt.Sprint("m", i), Doc: []byte("{}")})
	}
	seqs := func(ss []Stored) string {
		var b strings.Builder
		for _, s := range ss {
			fmt.Fprintf(&b, "%d%s ", s.Seq, s.Source[:1])
		}
		return b.String()
	}
	for _, tc := range []struct {
		name string
		opt  ReadOptions
		want string
	}{
		{"all", ReadOptions{}, "1w 2w 3a 4w 5w 6a "},
		{"source", ReadOptions{Source: "app"}, "3a 6a "},
		{"from seq", ReadOptions{FromSeq: 4}, "4w 5w 6a "},
		{"from seq and source", ReadOptions{FromSeq: 4, Source: "web"}, "4w 5w "},
		{"past the end", ReadOptions{FromSeq: 7}, ""},
		{"since", ReadOptions{Since: time.Now().Add(-time.Minute)}, "1w 2w 3a 4w 5w 6a "},
		{"unknown source", ReadOptions{Source: "none"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := seqs(readEvents(t, eng, tc.opt)); got != tc.want {
				t.Errorf("read %q, want %q", got, tc.want)
			}
		})
	}
	for _, opt := range []ReadOptions{{Since: time.Now(), FromSeq: 1}, {Source: "a.>"}} {
		if err := eng.ReadEvents(context.Background(), opt, func(Stored) error { return nil }); err == nil {
			t.Errorf("%+v: no error", opt)
		}
	}
	// fn's error stops the read.
	stop := errors.New("stop")
	n := 0
	if err := eng.ReadEvents(context.Background(), ReadOptions{}, func(Stored) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("read %d, error %v", n, err)
	}
	// Follow: events stored later arrive, until ctx ends.
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan Stored, 10)
	done := make(chan error, 1)
	go func() {
		done <- eng.ReadEvents(ctx, ReadOptions{FromSeq: 6, Follow: true}, func(s Stored) error { got <- s; return nil })
	}()
	appendOK(t, w, Event{Source: "web", Type: "page", MessageID: "later", Doc: []byte("{}")})
	for _, want := range []uint64{6, 7} {
		select {
		case s := <-got:
			if s.Seq != want {
				t.Errorf("followed %d, want %d", s.Seq, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d not followed", want)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("follow ended with %v", err)
	}
}

// TestReadyWhileTheStoreRefusesWrites is the regression test of issue 17:
// a full store (here the EVENTS stream at its max_bytes, which refuses new
// events) refused every write while Engine.Ready, all /readyz asked, said
// ready. Writer.Ready reports the refusal with the store's reason until a
// commit succeeds again.
func TestReadyWhileTheStoreRefusesWrites(t *testing.T) {
	eng, w := openWriter(t, Config{DataDir: t.TempDir(), MaxBytes: 64 << 10})
	ctx := context.Background()
	if err := w.Ready(ctx); err != nil {
		t.Fatalf("a fresh store: Ready = %v", err)
	}
	// Padding that does not compress (segments are compressed).
	pad := make([]byte, 4000)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range pad {
		pad[i] = 'a' + byte(r.IntN(26))
	}
	doc := []byte(`{"pad":"` + string(pad) + `"}`)
	var refused error
	for i := 0; i < 100 && refused == nil; i++ {
		res, err := w.Append(ctx, []Event{{Source: "web", Type: "track", MessageID: fmt.Sprint("m", i), Doc: doc}})
		if err != nil {
			t.Fatal(err)
		}
		refused = res[0].Err
	}
	if refused == nil {
		t.Fatal("a stream of 64 KiB took 400 KB of events")
	}
	if err := eng.Ready(ctx); err != nil {
		t.Fatalf("the engine itself is up: Ready = %v", err)
	}
	err := w.Ready(ctx)
	if !errors.Is(err, ErrWritesRefused) || !strings.Contains(err.Error(), "maximum bytes exceeded") {
		t.Fatalf("while the stream is full: Ready = %v, want ErrWritesRefused with JetStream's reason", err)
	}

	// Past RetestAfter without a successful commit, Ready lets traffic
	// retest the store; a refused commit reports it again.
	w.app.outMu.Lock()
	w.app.now = func() time.Time { return time.Now().Add(time.Minute) }
	w.app.outMu.Unlock()
	if err := w.Ready(ctx); err != nil {
		t.Fatalf("after RetestAfter: Ready = %v, want nil", err)
	}
	res, err := w.Append(ctx, []Event{{Source: "web", Type: "track", MessageID: "again", Doc: doc}})
	if err != nil || res[0].Err == nil {
		t.Fatalf("append to the full stream: %v %+v", err, res)
	}
	if err := w.Ready(ctx); !errors.Is(err, ErrWritesRefused) {
		t.Fatalf("refused again: Ready = %v, want ErrWritesRefused", err)
	}

	// Room again (an operator purged the stream): the next commit succeeds
	// and Ready says ready.
	s, err := eng.JetStream().Stream(ctx, EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	appendOK(t, w, Event{Source: "web", Type: "track", MessageID: "after-purge", Doc: doc})
	if err := w.Ready(ctx); err != nil {
		t.Fatalf("after a successful write: Ready = %v", err)
	}
}

// TestSegmentFramesReused stores events from concurrent writers while
// another goroutine keeps taking frames from the pool and overwriting
// them, as the next commit would. A frame given back while anything still
// read it (before its segment was published and acknowledged) would be
// overwritten under it: an event read back would differ from the one
// appended, or the race detector would report the overwrite.
func TestSegmentFramesReused(t *testing.T) {
	eng, w := openWriter(t, Config{DataDir: t.TempDir()})
	ctx, cancel := context.WithCancel(context.Background())
	scribbled := make(chan struct{})
	go func() {
		defer close(scribbled)
		for ctx.Err() == nil {
			f := getFrame()
			b := (*f)[:cap(*f)]
			for i := range b {
				b[i] = 0xee
			}
			putFrame(f)
		}
	}()
	const writers, appends, batch = 4, 25, 20
	want := make(map[string]string, writers*appends*batch)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for a := range appends {
				evs := make([]Event, batch)
				for i := range evs {
					id := fmt.Sprintf("w%d-%d-%d", g, a, i)
					// Documents of many sizes, so frames of many sizes
					// are taken, grown and given back.
					doc := fmt.Sprintf(`{"id":%q,"pad":%q}`, id, strings.Repeat(id[:2], (a*batch+i)%97))
					evs[i] = Event{Source: "web", Type: "track", MessageID: id, Doc: []byte(doc)}
					mu.Lock()
					want[id] = doc
					mu.Unlock()
				}
				appendOK(t, w, evs...)
			}
		})
	}
	wg.Wait()
	cancel()
	<-scribbled
	got := readEvents(t, eng, ReadOptions{})
	if len(got) != len(want) {
		t.Fatalf("read %d events, stored %d", len(got), len(want))
	}
	for _, s := range got {
		if doc, ok := want[s.MessageID]; !ok || string(s.Doc) != doc {
			t.Fatalf("event %q read back as %q, stored %q", s.MessageID, s.Doc, doc)
		}
	}
}

// TestPlainAndCompressedSegments: segments as releases before compression
// stored them (version 1, the frame as it is) and segments this release
// compresses (version 2) read back alike, in stream order, through
// ReadEvents and through a consumer: a data directory written by an older
// release keeps working.
func TestPlainAndCompressedSegments(t *testing.T) {
	eng, w := openWriter(t, Config{DataDir: t.TempDir()})
	ctx := context.Background()
	batch := func(prefix string, n int) []Event {
		evs := make([]Event, n)
		for i := range evs {
			id := fmt.Sprintf("%s%d", prefix, i)
			evs[i] = Event{Source: "web", Type: "track", MessageID: id, RequestID: "req-" + prefix, UserAgent: "Mozilla/5.0 (X11; Linux x86_64)",
				Trust: TrustServer, Doc: []byte(`{"type":"track","event":"Order Completed","messageId":"` + id + `","properties":{"revenue":12.5,"currency":"EUR"}}`)}
		}
		return evs
	}
	// An older release's segment: its exact message, published as it did.
	publishPlain := func(evs []Event) {
		t.Helper()
		ptrs := make([]*Event, len(evs))
		ids := make([]string, len(evs))
		for i := range evs {
			ptrs[i], ids[i] = &evs[i], evs[i].MessageID
		}
		m := &nats.Msg{Subject: segSubject("web"), Header: segHeader("web", segVersion), Data: encodeSegment(ptrs)}
		m.Header.Set(nats.MsgIdHdr, segmentID("web", ids))
		if _, err := eng.JetStream().PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	var want []Event
	old1, new1, old2, new2 := batch("o", 20), batch("n", 30), batch("p", 5), batch("q", 1)
	publishPlain(old1)
	appendOK(t, w, new1...)
	publishPlain(old2)
	appendOK(t, w, new2...)
	want = append(append(append(append(want, old1...), new1...), old2...), new2...)

	var versions []string
	for _, m := range readAll(t, eng, EventsStream) {
		versions = append(versions, m.Header.Get(headerSeg))
	}
	if fmt.Sprint(versions) != "[1 2 1 1]" { // the last is too short to compress
		t.Errorf("segment versions %v, want [1 2 1 1]", versions)
	}
	check := func(how string, got []Stored) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d events, want %d", how, len(got), len(want))
		}
		for i, s := range got {
			e := want[i]
			if s.MessageID != e.MessageID || string(s.Doc) != string(e.Doc) || s.DocString() != string(e.Doc) || s.RequestID != e.RequestID ||
				s.UserAgent != e.UserAgent || s.Trust != e.Trust || s.Source != "web" || s.Type != "track" {
				t.Fatalf("%s: event %d read back as %+v, want %+v", how, i, s, e)
			}
		}
	}
	check("ReadEvents", readEvents(t, eng, ReadOptions{}))

	c, err := eng.Consumer(ctx, ConsumerConfig{Durable: "both", FetchWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	out, stop := feed(t, c, nil)
	var got []*Delivery
	for range want {
		got = append(got, receive(t, out)) // held: their documents must stay as read
	}
	stop()
	stored := make([]Stored, len(got))
	for i, d := range got {
		stored[i] = d.Stored
	}
	slices.SortFunc(stored, func(a, b Stored) int { return cmp.Compare(a.Pos(), b.Pos()) }) // delivery order is not stream order
	check("consumer", stored)
}

// TestPlainSegments: with Config.PlainSegments (engine.compression: none,
// for a rolling upgrade) the writer stores plain frames, version 1, which
// releases before compression read, even where compression would shrink
// them.
func TestPlainSegments(t *testing.T) {
	eng, w := openWriter(t, Config{DataDir: t.TempDir(), PlainSegments: true})
	evs := make([]Event, 30)
	for i := range evs {
		id := fmt.Sprintf("m%d", i)
		evs[i] = Event{Source: "web", Type: "track", MessageID: id, UserAgent: "Mozilla/5.0 (X11; Linux x86_64)",
			Doc: []byte(`{"type":"track","event":"Order Completed","messageId":"` + id + `","properties":{"currency":"EUR"}}`)}
	}
	appendOK(t, w, evs...)
	msgs := readAll(t, eng, EventsStream)
	if len(msgs) != 1 {
		t.Fatalf("stored %d messages, want 1", len(msgs))
	}
	if v := msgs[0].Header.Get(headerSeg); v != segVersion {
		t.Fatalf("segment version %q, want %q (plain)", v, segVersion)
	}
	if got, _ := compressFrame(nil, msgs[0].Data); len(got) >= len(msgs[0].Data) {
		t.Fatalf("the test's segment does not compress (%d bytes): it shows nothing", len(msgs[0].Data))
	}
	got, err := decodeSegment(msgs[0].Data)
	if err != nil || len(got) != len(evs) {
		t.Fatalf("plain frame: %d events, %v; want %d", len(got), err, len(evs))
	}
}

// TestCancelledAppendReadsNothingAfter: once Append returns, here because
// its context ended, the writer reads nothing of the caller's events, so
// the caller may overwrite their documents (ingest reuses the memory). A
// call still queued is taken out of the queue and nothing of it is stored;
// one a commit has taken (here lingering for more) returns once its
// segment is built, and is stored as it was given.
func TestCancelledAppendReadsNothingAfter(t *testing.T) {
	const doc = `{"event":"Signed Up","n":1}`
	// appendCancelled calls Append, cancels it once wait returns, checks
	// that it returns, then overwrites the event's document.
	appendCancelled := func(t *testing.T, w *Writer, id string, wait func()) {
		t.Helper()
		buf := []byte(doc)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, err := w.Append(ctx, []Event{{Source: "web", Type: "track", MessageID: id, Doc: buf}})
			errc <- err
		}()
		wait()
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("append: %v, want context.Canceled", err)
		}
		for i := range buf {
			buf[i] = 'X'
		}
	}

	t.Run("queued", func(t *testing.T) {
		eng, w := openWriter(t, Config{DataDir: t.TempDir()})
		appendOK(t, w, Event{Source: "web", Type: "track", MessageID: "before", Doc: []byte(doc)})
		for range w.app.cfg.Inflight { // every commit slot taken: the call stays queued
			w.app.slots <- struct{}{}
		}
		appendCancelled(t, w, "queued", func() { eventually(t, func() bool { return w.app.queuedNow() == 1 }) })
		if n := w.app.queuedNow(); n != 0 {
			t.Errorf("%d events still queued after the call returned", n)
		}
		for range w.app.cfg.Inflight {
			<-w.app.slots
		}
		appendOK(t, w, Event{Source: "web", Type: "track", MessageID: "after", Doc: []byte(doc)})
		var ids []string
		for _, s := range readEvents(t, eng, ReadOptions{}) {
			ids = append(ids, s.MessageID)
		}
		if !slices.Equal(ids, []string{"before", "after"}) {
			t.Errorf("stored %q, want the cancelled call's event not stored", ids)
		}
	})

	t.Run("in a commit", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		eng, err := Open(ctx, Config{DataDir: t.TempDir()}, discard)
		if err != nil {
			t.Fatal(err)
		}
		// The loop takes the call, then lingers for more before building
		// its segment.
		w, err := NewWriter(eng, WriterConfig{Linger: 300 * time.Millisecond, Inflight: 1}, discard)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = w.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done; eng.Close() })
		w.app.slots <- struct{}{} // the call queues until the loop may take it
		appendCancelled(t, w, "taken", func() {
			eventually(t, func() bool { return w.app.queuedNow() == 1 })
			<-w.app.slots
			eventually(t, func() bool { return w.app.queuedNow() == 0 })
		})
		var got []Stored
		eventually(t, func() bool {
			got = readEvents(t, eng, ReadOptions{})
			return len(got) > 0
		})
		if len(got) != 1 || got[0].MessageID != "taken" || string(got[0].Doc) != doc {
			t.Fatalf("stored %+v, want the event as given: %s", got, doc)
		}
	})
}

package stream

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go"
)

// batchOf returns n events of source src with messageIds prefix0…, as a
// request of a batch carries them.
func batchOf(src, prefix string, n int) []Event {
	evs := make([]Event, n)
	for i := range evs {
		id := fmt.Sprintf("%s%d", prefix, i)
		evs[i] = Event{Source: src, Type: "track", MessageID: id, RequestID: "req-" + prefix, UserAgent: "Mozilla/5.0 (X11; Linux x86_64)",
			Trust: TrustServer, Doc: []byte(`{"type":"track","event":"Order Completed","messageId":"` + id + `","properties":{"revenue":12.5,"currency":"EUR"}}`)}
	}
	return evs
}

// queueHeld calls app.appendEvents with each of reqs, in order, while every
// commit slot is taken, so that they wait in the queue together; then it
// calls inspect, gives the slots back and returns each call's results
// once all are done: one commit takes them all.
func queueHeld(t *testing.T, app *appender, inspect func(queue []*pending), reqs ...[]Event) [][]Result {
	t.Helper()
	for range app.cfg.Inflight {
		app.slots <- struct{}{}
	}
	type outcome struct {
		res []Result
		err error
	}
	done := make([]chan outcome, len(reqs))
	queued := 0
	for i, evs := range reqs {
		done[i] = make(chan outcome, 1)
		go func() {
			res, err := app.appendEvents(context.Background(), evs)
			done[i] <- outcome{res, err}
		}()
		queued += len(evs)
		for app.queuedNow() < queued {
			time.Sleep(time.Millisecond)
		}
	}
	app.mu.Lock()
	inspect(app.queue)
	app.mu.Unlock()
	for range app.cfg.Inflight {
		<-app.slots
	}
	app.wake()
	out := make([][]Result, len(reqs))
	for i := range reqs {
		o := <-done[i]
		if o.err != nil {
			t.Fatalf("request %d: %v", i, o.err)
		}
		out[i] = o.res
	}
	return out
}

// TestRequestPrebuildsItsShare: a request of prebuildMin events or more
// queues with its events' keys hashed and their records built and
// compressed, by its own goroutine; a smaller one queues with nothing
// built, and one of several sources with its keys only.
func TestRequestPrebuildsItsShare(t *testing.T) {
	_, app := openTest(t, Config{DataDir: t.TempDir()})
	big := batchOf("web", "b", 20)
	big[4].MessageID = "" // no id: no key
	small := batchOf("web", "s", prebuildMin-1)
	mixed := append(batchOf("web", "m", 10), batchOf("app", "n", 10)...)
	queueHeld(t, app, func(queue []*pending) {
		// t.Errorf and return: the slots are held until inspect returns.
		if len(queue) != 3 {
			t.Errorf("%d requests queued, want 3", len(queue))
			return
		}
		pb := queue[0].pre
		if pb == nil {
			t.Error("a request of 20 events queued with nothing prebuilt")
			return
		}
		for i, ev := range big {
			if want := ev.MessageID != ""; pb.keyed[i] != want || want && pb.keys[i] != app.hashKey("web", ev.MessageID) {
				t.Errorf("event %d: keyed %v, key %x; want keyed %v, the key of %q", i, pb.keyed[i], pb.keys[i], want, ev.MessageID)
			}
		}
		ptrs := make([]*Event, len(big))
		for i := range big {
			ptrs[i] = &big[i]
		}
		plain, err := s2.Decode(nil, pb.part)
		if want := appendRecords(nil, ptrs); err != nil || string(plain) != string(want) || pb.plain != len(want) || !pb.s2 {
			t.Errorf("prebuilt part: %d bytes (%v), plain %d, s2 %v; want the %d bytes of the events' records, compressed", len(plain), err, pb.plain, pb.s2, len(want))
		}
		if queue[1].pre != nil {
			t.Errorf("a request of %d events queued with a prebuilt share", len(small))
		}
		if pb := queue[2].pre; pb == nil || pb.part != nil || !pb.keyed[15] || pb.keys[15] != app.hashKey("app", "n5") {
			t.Errorf("a request of two sources: prebuilt %+v, want its keys and no part", pb)
		}
	}, big, small, mixed)
}

// TestPrebuiltSegments: requests committed together are stored as before
// their parts were prebuilt: one segment per source, holding the events
// of every request in order, whose Nats-Msg-Id is segmentID of its events'
// ids; a duplicate inside a prebuilt request (of an event in the index, or
// of an earlier one of the commit) is left out of the segment and answered
// Duplicate.
func TestPrebuiltSegments(t *testing.T) {
	eng, _, w, _ := openDedupWriter(t, t.TempDir())
	app, ctx := w.app, context.Background()

	if _, err := app.appendEvents(ctx, batchOf("web", "x", 20)); err != nil {
		t.Fatal(err)
	}
	a := batchOf("web", "a", 20)
	a[6] = batchOf("web", "x", 6)[5] // in the index
	b := batchOf("web", "b", 3)      // too small to prebuild
	c := batchOf("web", "c", 20)
	c[0], c[19] = a[3], a[19] // of the commit, first and last
	dd := batchOf("web", "d", 20)
	e := batchOf("app", "e", 20)
	res := queueHeld(t, app, func([]*pending) {}, a, b, c, dd, e)

	dups := map[[2]int]bool{{0, 6}: true, {2, 0}: true, {2, 19}: true}
	want := map[string][]Event{}
	for r, evs := range [][]Event{a, b, c, dd, e} {
		for i, ev := range evs {
			if dups[[2]int{r, i}] {
				if !res[r][i].Duplicate {
					t.Errorf("request %d, event %d (%s): %+v, want a duplicate", r, i, ev.MessageID, res[r][i])
				}
				continue
			}
			if res[r][i].Seq == 0 || res[r][i].Err != nil {
				t.Errorf("request %d, event %d (%s): %+v, want stored", r, i, ev.MessageID, res[r][i])
			}
			want[ev.Source] = append(want[ev.Source], ev)
		}
	}
	msgs := readAll(t, eng, EventsStream)
	if len(msgs) != 3 {
		t.Fatalf("%d messages, want 3: x's segment, then one per source", len(msgs))
	}
	for _, m := range msgs[1:] {
		src := m.Header.Get(headerSource)
		if v := m.Header.Get(headerSeg); v != segVersionS2 {
			t.Errorf("%s: version %q, want %q", src, v, segVersionS2)
		}
		frame, err := segmentFrame(m.Header.Get(headerSeg), m.Data)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeSegment(frame)
		if err != nil {
			t.Fatal(err)
		}
		w := want[src]
		if len(got) != len(w) {
			t.Fatalf("%s: %d events in the segment, want %d", src, len(got), len(w))
		}
		ptrs := make([]*Event, len(w))
		ids := make([]string, len(w))
		for i := range w {
			ptrs[i], ids[i] = &w[i], w[i].MessageID
		}
		if string(frame) != string(encodeSegment(ptrs)) {
			t.Errorf("%s: the frame differs from the one built of its events", src)
		}
		if id := m.Header.Get(nats.MsgIdHdr); id != segmentID(src, ids) {
			t.Errorf("%s: Nats-Msg-Id %q, want %q", src, id, segmentID(src, ids))
		}
		if src != "app" {
			continue
		}
		for i, r := range res[4] {
			if r.Seq != m.Seq || r.Index != i {
				t.Errorf("app event %d: %+v, want %d:%d", i, r, m.Seq, i)
			}
		}
	}
}

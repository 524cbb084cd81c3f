package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// feed runs c.Feed into a channel until the test ends or the returned stop
// is called; stop waits for Feed to return.
func feed(t *testing.T, c *Consumer, ready func() <-chan struct{}) (<-chan *Delivery, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan *Delivery, 100)
	done := make(chan struct{})
	go func() { c.Feed(ctx, out, ready); close(done) }()
	stop := func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Feed did not return within 5s of its context's end")
		}
	}
	t.Cleanup(stop)
	return out, stop
}

func receive(t *testing.T, out <-chan *Delivery) *Delivery {
	t.Helper()
	select {
	case d := <-out:
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("no event delivered within 5s")
		return nil
	}
}

// nothing checks that out stays empty for d.
func nothing(t *testing.T, out <-chan *Delivery, d time.Duration) {
	t.Helper()
	select {
	case got := <-out:
		t.Fatalf("unexpected delivery of event %d", got.Seq)
	case <-time.After(d):
	}
}

func TestConsumerConfig(t *testing.T) {
	eng, _ := openWriter(t, Config{DataDir: t.TempDir()})
	ctx := context.Background()
	if _, err := eng.Consumer(ctx, ConsumerConfig{}); err == nil {
		t.Error("consumer without a durable name")
	}
	if _, err := eng.Consumer(ctx, ConsumerConfig{Durable: "d", Sources: []string{"web", "a.*"}}); err == nil {
		t.Error("consumer of source a.*")
	}
	c, err := eng.Consumer(ctx, ConsumerConfig{Durable: "d", Description: "test", Sources: []string{"web", "app"}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cc := info.Config
	if cc.Durable != "d" || cc.Description != "test" || fmt.Sprint(cc.FilterSubjects) != "[events.web.> events.app.>]" ||
		cc.AckWait != 30*time.Second || cc.MaxAckPending != 1000 || cc.MaxDeliver != -1 {
		t.Errorf("consumer config %+v", cc)
	}
	if c.cfg.FetchWait != 30*time.Second || c.cfg.Batch != 0 || c.cfg.FetchBytes != 8<<20 {
		t.Errorf("fetch settings %+v", c.cfg)
	}
}

// TestConsumerFeed: events of the selected sources are delivered with their
// sequence and facts; an acknowledged event is not delivered
// again, a nak'd one is.
func TestConsumerFeed(t *testing.T) {
	eng, w := openWriter(t, Config{DataDir: t.TempDir()})
	ctx := context.Background()
	// One call each: one segment each (TestConsumerSegment has several
	// events in one).
	for _, ev := range []Event{
		{Source: "web", Type: "track", MessageID: "m1", Doc: []byte(`{"n":1}`), RequestID: "r1", UserAgent: "ua", LiFatID: "lfi", Trust: TrustUnverified},
		{Source: "other", Type: "track", MessageID: "m2", Doc: []byte(`{"n":2}`)},
		{Source: "web", Type: "page", MessageID: "m3", Doc: []byte(`{"n":3}`), ReplayFor: "li", DedupID: "replay:li:1"},
		{Source: "web", Type: "identify", MessageID: "m4", Doc: []byte(`{"n":4}`)},
	} {
		appendOK(t, w, ev)
	}
	// AckWait is long enough that a loaded machine (CI under -race) does
	// not let it pass between event 4's delivery and its first
	// InProgress below: at 300 ms it did (event 4 delivered again).
	const ackWait = time.Second
	c, err := eng.Consumer(ctx, ConsumerConfig{Durable: "feed", Sources: []string{"web"}, AckWait: ackWait, FetchWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := feed(t, c, nil)
	// Two fetches in flight: the order of deliveries is not the stream's.
	got := map[uint64]*Delivery{}
	for range 3 {
		d := receive(t, out)
		got[d.Seq] = d
	}
	d1, d3, d4 := got[1], got[3], got[4]
	if d1 == nil || d3 == nil || d4 == nil {
		t.Fatalf("delivered events %v, want 1, 3 and 4", slices.Sorted(maps.Keys(got)))
	}
	if err := d4.InProgress(); err != nil { // kept alive from here on
		t.Fatal(err)
	}
	if d1.Seq != 1 || d1.Source != "web" || d1.Type != "track" || string(d1.Doc) != `{"n":1}` ||
		d1.RequestID != "r1" || d1.UserAgent != "ua" || d1.LiFatID != "lfi" || d1.ReplayFor != "" || d1.Trust != TrustUnverified || d1.StoredAt.IsZero() {
		t.Errorf("first delivery %+v", d1.Stored)
	}
	if d3.Seq != 3 || d3.Type != "page" || d3.ReplayFor != "li" || d3.Trust != "" || d4.Seq != 4 || d4.Type != "identify" {
		t.Errorf("deliveries %+v, %+v", d3.Stored, d4.Stored)
	}
	if err := d1.Ack(); err != nil {
		t.Fatal(err)
	}
	if err := d3.NakWithDelay(10 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	again := receive(t, out)
	if again.Seq != 3 || again.ReplayFor != "li" {
		t.Fatalf("redelivered %+v, want event 3", again.Stored)
	}
	if err := again.Ack(); err != nil {
		t.Fatal(err)
	}
	// Kept alive past AckWait, then acknowledged: not delivered again.
	for range 3 {
		time.Sleep(ackWait / 2)
		if err := d4.InProgress(); err != nil {
			t.Fatal(err)
		}
	}
	if err := d4.Ack(); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool {
		info, err := c.cons.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	nothing(t, out, 2*ackWait)
	// A new event is delivered next.
	appendOK(t, w, Event{Source: "web", Type: "track", MessageID: "m5", Doc: []byte(`{"n":5}`)})
	if d := receive(t, out); d.Seq != 5 {
		t.Errorf("delivered %d, want the new event 5", d.Seq)
	}
}

// TestConsumerHold: while ready's channel is open no new fetch starts; once
// it is closed, waiting events arrive.
func TestConsumerHold(t *testing.T) {
	eng, w := openWriter(t, Config{DataDir: t.TempDir()})
	c, err := eng.Consumer(context.Background(), ConsumerConfig{Durable: "hold", FetchWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	out, _ := feed(t, c, func() <-chan struct{} { return gate })
	appendOK(t, w, Event{Source: "web", Type: "track", MessageID: "h1", Doc: []byte(`{}`)})
	nothing(t, out, 500*time.Millisecond)
	close(gate)
	if d := receive(t, out); d.Seq != 1 {
		t.Errorf("delivered %d", d.Seq)
	}
}

// TestConsumerRestart: Feed returns when its context ends, also with a
// fetch open for a long FetchWait; events it had delivered but that were
// not acknowledged go at once to the next Consumer of the same name.
func TestConsumerRestart(t *testing.T) {
	eng, w := openWriter(t, Config{DataDir: t.TempDir()})
	ctx := context.Background()
	cfg := ConsumerConfig{Durable: "restart", AckWait: time.Hour, FetchWait: time.Minute}
	c, err := eng.Consumer(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	out, stop := feed(t, c, nil)
	appendOK(t, w, Event{Source: "web", Type: "track", MessageID: "r1", Doc: []byte(`{}`)})
	if d := receive(t, out); d.Seq != 1 {
		t.Fatalf("delivered %d", d.Seq)
	}
	start := time.Now()
	stop() // fails the test if Feed does not return
	// An open fetch not cancelled would hold Feed for its FetchWait (a
	// minute); cancelled, it returns in milliseconds, even on a loaded machine.
	if time.Since(start) > 20*time.Second {
		t.Errorf("Feed took %s to return", time.Since(start))
	}
	c2, err := eng.Consumer(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	out2, _ := feed(t, c2, nil)
	d := receive(t, out2)
	if d.Seq != 1 {
		t.Fatalf("delivered %d", d.Seq)
	}
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
}

// TestConsumerState: the ack floor, delivered sequence and counts of a
// durable consumer; a consumer that does not exist is ErrNotFound.
func TestConsumerState(t *testing.T) {
	eng, w := openWriter(t, Config{DataDir: t.TempDir()})
	ctx := context.Background()
	if _, err := eng.ConsumerState(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing consumer: %v", err)
	}
	for i := range 3 {
		appendOK(t, w, Event{Source: "web", Type: "track", MessageID: fmt.Sprint("s", i), Doc: []byte(`{}`)})
	}
	c, err := eng.Consumer(ctx, ConsumerConfig{Durable: "state", Batch: 2, FetchWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	st, err := eng.ConsumerState(ctx, "state")
	if err != nil || st != (ConsumerState{Pending: 3}) {
		t.Fatalf("before any delivery: %+v, %v", st, err)
	}
	out, stop := feed(t, c, nil)
	got := map[uint64]*Delivery{}
	for range 3 {
		d := receive(t, out)
		got[d.Seq] = d
	}
	stop()
	if err := got[1].Ack(); err != nil {
		t.Fatal(err)
	}
	if err := got[3].Ack(); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool {
		st, err = eng.ConsumerState(ctx, "state")
		return err == nil && st.AckFloor == 1 && st.Delivered == 3 && st.AckPending == 1 && st.Pending == 0
	})
}

// TestConsumerSegment: the events of one segment are delivered one by one;
// the segment is acknowledged once all of them are, and an event given back
// has the segment delivered again with only the events not acknowledged.
func TestConsumerSegment(t *testing.T) {
	eng, w := openWriter(t, Config{DataDir: t.TempDir()})
	ctx := context.Background()
	appendOK(t, w, track("a"), track("b"), track("c"), track("d"))
	c, err := eng.Consumer(ctx, ConsumerConfig{Durable: "seg", AckWait: time.Minute, FetchWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := feed(t, c, nil)
	got := map[string]*Delivery{}
	for range 4 {
		d := receive(t, out)
		got[d.MessageID] = d
	}
	if got["a"] == nil || got["d"] == nil || got["b"].Pos() != MakePos(1, 1) || got["d"].Pos() != MakePos(1, 3) {
		t.Fatalf("deliveries %v", slices.Sorted(maps.Keys(got)))
	}
	state := func() ConsumerState {
		t.Helper()
		st, err := eng.ConsumerState(ctx, "seg")
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	// Acknowledged in part: the segment is not.
	if err := got["a"].Ack(); err != nil {
		t.Fatal(err)
	}
	if err := got["c"].AckSync(ctx); err != nil {
		t.Fatal(err)
	}
	if st := state(); st.AckFloor != 0 || st.AckPending != 1 {
		t.Fatalf("two of four events acknowledged: %+v", st)
	}
	// b given back, d acknowledged: the segment comes again with b only.
	if err := got["b"].NakWithDelay(10 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	nothing(t, out, 200*time.Millisecond) // not before d is settled
	if err := got["d"].Ack(); err != nil {
		t.Fatal(err)
	}
	again := receive(t, out)
	if again.MessageID != "b" || again.Pos() != MakePos(1, 1) {
		t.Fatalf("redelivered %s at %s, want b at 1:1", again.MessageID, again.Pos())
	}
	nothing(t, out, 200*time.Millisecond)
	// The last one's confirmed acknowledgement acknowledges the segment
	// (the confirmation asked by c).
	if err := again.AckSync(ctx); err != nil {
		t.Fatal(err)
	}
	if st := state(); st.AckFloor != 1 || st.AckPending != 0 {
		t.Fatalf("every event acknowledged: %+v", st)
	}
	// Settling twice changes nothing.
	if err := got["a"].Ack(); err != nil {
		t.Fatal(err)
	}
	if err := again.AckSync(ctx); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	left := len(c.done)
	c.mu.Unlock()
	if left != 0 {
		t.Errorf("%d segments still tracked after their acknowledgement", left)
	}
}

// TestFetchExpiresAtTheServer: a fetch asks the server to expire it after
// FetchWait, and the client does not end it on a deadline of its own
// first. With the deadline on the fetch's context (nats.go then asks for
// 90% of FetchWait and gives up at FetchWait), events the server sent in
// the last moments of a short fetch waited for AckWait on a loaded machine.
func TestFetchExpiresAtTheServer(t *testing.T) {
	for _, wait := range []time.Duration{200 * time.Millisecond, 3 * time.Second, 30 * time.Second} {
		t.Run(wait.String(), func(t *testing.T) {
			eng, _ := openWriter(t, Config{DataDir: t.TempDir()})
			reqs := make(chan []byte, 16)
			sub, err := eng.Conn().Subscribe("$JS.API.CONSUMER.MSG.NEXT.>", func(m *nats.Msg) {
				select {
				case reqs <- m.Data:
				default:
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
			c, err := eng.Consumer(context.Background(), ConsumerConfig{Durable: "expiry", Sources: []string{"web"}, FetchWait: wait})
			if err != nil {
				t.Fatal(err)
			}
			_, stop := feed(t, c, nil)
			defer stop()
			var req struct {
				Expires time.Duration `json:"expires"`
			}
			select {
			case b := <-reqs:
				if err := json.Unmarshal(b, &req); err != nil {
					t.Fatalf("pull request %s: %v", b, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no pull request seen")
			}
			// Within a few milliseconds: the time between the option's
			// context and its use.
			if d := wait - req.Expires; d < 0 || d > 20*time.Millisecond {
				t.Errorf("fetch expires at the server after %s, want %s", req.Expires, wait)
			}
		})
	}
}

func TestConsumerFetchAllocation(t *testing.T) {
	eng, w := openWriter(t, Config{DataDir: t.TempDir()})
	const n = 20
	for i := range n {
		appendOK(t, w, Event{Source: "web", Type: "track", MessageID: fmt.Sprint("m", i), Doc: []byte(`{"n":1}`)})
	}
	c, err := eng.Consumer(context.Background(), ConsumerConfig{Durable: "alloc", FetchWait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	out, stop := feed(t, c, nil)
	for range n {
		if err := receive(t, out).Ack(); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	runtime.ReadMemStats(&after)
	// At least two fetches ran (two in flight); with FetchBytes they
	// allocated 64 MB or more. What else runs (the embedded server,
	// acknowledgements) allocates a few MB at most.
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Errorf("delivering %d events allocated %d MB", n, got>>20)
	}
}

// TestDeliveriesAllocation: the deliveries of a segment cost a few
// allocations beyond decoding its events, not one or more per event.
func TestDeliveriesAllocation(t *testing.T) {
	eng, w := openWriter(t, Config{DataDir: t.TempDir()})
	ctx := context.Background()
	const n = 100
	evs := make([]Event, n)
	for i := range evs {
		evs[i] = track(fmt.Sprint("m", i))
	}
	appendOK(t, w, evs...)
	c, err := eng.Consumer(ctx, ConsumerConfig{Durable: "allocs", AckWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	msg := <-batch.Messages()
	if msg == nil {
		t.Fatalf("no message fetched: %v", batch.Error())
	}
	var dec msgDecoder
	if ds := c.deliveries(ctx, &segState{c: c, msg: msg}, &dec); len(ds) != n {
		t.Fatalf("%d deliveries, want %d", len(ds), n)
	}
	decode := testing.AllocsPerRun(20, func() {
		_ = decodeMessage(1, msg.Subject(), msg.Headers(), msg.Data(), time.Time{}, func(Stored) error { return nil })
	})
	got := testing.AllocsPerRun(20, func() { c.deliveries(ctx, &segState{c: c, msg: msg}, &dec) })
	t.Logf("deliveries of %d events: %v allocations, decoding them %v", n, got, decode)
	if got > decode+10 {
		t.Errorf("deliveries of %d events: %v allocations, decoding them %v; want at most 10 more", n, got, decode)
	}
}

// TestKeepAliveHoldsWaitingMessages: a reader that takes a fetch's messages
// slower than AckWait (here it stalls on the first for three times
// AckWait) gets each of them once: KeepAlive keeps alive those still in
// the fetch's buffer, not only those handed on. Without it the stream
// delivered the waiting ones again, to the other fetch, while their first
// delivery was still on its way.
func TestKeepAliveHoldsWaitingMessages(t *testing.T) {
	eng, w := openWriter(t, Config{DataDir: t.TempDir()})
	const n = 20
	for i := range n { // one message each
		appendOK(t, w, track(fmt.Sprint("k", i)))
	}
	const ackWait = time.Second
	c, err := eng.Consumer(context.Background(), ConsumerConfig{Durable: "slow", AckWait: ackWait, FetchWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	kept := make(chan struct{})
	go func() { c.KeepAlive(stop); close(kept) }()
	defer func() { close(stop); <-kept }()
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	seen := map[uint64]int{}
	stalled := false
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		c.FeedMessages(ctx, func(ds []*Delivery) bool {
			mu.Lock()
			stall := !stalled
			stalled = true
			mu.Unlock()
			if stall {
				time.Sleep(3 * ackWait)
			}
			for _, d := range ds {
				mu.Lock()
				seen[d.Seq]++
				mu.Unlock()
				if err := d.Ack(); err != nil {
					t.Error(err)
				}
			}
			return true
		}, nil)
	}()
	defer func() { cancel(); <-fed }()
	eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == n
	})
	time.Sleep(2 * ackWait) // a redelivery would arrive by now
	mu.Lock()
	defer mu.Unlock()
	for seq, k := range seen {
		if k != 1 {
			t.Errorf("event %d delivered %d times, want once", seq, k)
		}
	}
}

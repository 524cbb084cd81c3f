package inproc

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/cputime"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/capstan-gw/capstan/internal/stream"
)

// BenchmarkEngineFloor is what the engine alone costs per event under
// capstan's architecture (ARCHITECTURE.md: one JetStream message per event,
// de-duplicated on Nats-Msg-Id), with none of capstan's own work around it:
//
//   - store: group commit of 100-record appends from 32 goroutines, each
//     record a real stored event (~700 bytes) with a fresh Nats-Msg-Id,
//     fsynced (sync=always) — what ingest pays on top of its handler;
//   - publish: the same events published with nats.go alone (asynchronous
//     publishes, 100 in flight per goroutine, each acknowledged), without
//     the appender and without fsync: the least storing can cost;
//   - consume: delivery's read path (stream.Consumer) reads those events
//     and acknowledges each one — what delivery pays before it parses
//     anything.
//
// Since issue 22 store writes segments (one message per commit and source)
// and looks every event up in the de-duplication index, and consume
// decodes segments and acknowledges each once all its events are.
//
// Their sum bounds the end-to-end rate on a machine: with ingest and
// delivery sharing its cores, no event can cost less (see bench/README.md).
//
// storeread is store and consume of the same events at once, as capstan
// serve runs them: the appends of store while a consumer reads right
// behind them through FeedMessages (delivery's call: a segment's events
// handed on together) and acknowledges each event. It reports the
// process's CPU per event for both together, the figure issue 22's goal
// (≤ 5 CPU-µs per event, store plus read) is about. consume alone reads a
// backlog stored before its timer starts: the server loads each block
// from disk again and checks every message's checksum (a quarter of its
// CPU in a profile), which a reader right behind the writer finds in the
// writer's cache, checked.
//
// request measures the alternative the architecture does not take, for
// whoever weighs it: the same 100 events stored as one message (one
// publish, one fetched message, one acknowledgement per request, no
// fsync), reported as store-µs/event and consume-µs/event.
func BenchmarkEngineFloor(b *testing.B) {
	b.Run("store", func(b *testing.B) { benchAppend(b, 0) })
	b.Run("publish", func(b *testing.B) {
		proto := storedEvents(b)
		eng, _ := openEngine(b)
		js := eng.JetStream()
		b.ReportAllocs()
		b.SetParallelism(16)
		b.ResetTimer()
		cpu0 := cputime.Process()
		b.RunParallel(func(pb *testing.PB) {
			futures := make([]jetstream.PubAckFuture, len(proto))
			for pb.Next() {
				base := ids.Add(uint64(len(proto)))
				for i, e := range proto {
					m := &nats.Msg{Subject: eventSubject(e), Data: e.Doc, Header: nats.Header{}}
					m.Header.Set(nats.MsgIdHdr, fmt.Sprintf("bench:%d", base+uint64(i)))
					f, err := js.PublishMsgAsync(m)
					if err != nil {
						b.Error(err)
						return
					}
					futures[i] = f
				}
				for _, f := range futures {
					select {
					case <-f.Ok():
					case err := <-f.Err():
						b.Error(err)
						return
					}
				}
			}
		})
		b.StopTimer()
		report(b, int64(b.N*len(proto)), cputime.Process()-cpu0)
	})
	b.Run("storeread", func(b *testing.B) {
		protos := storedRequests(b)
		proto := protos[0]
		eng, app := openEngine(b)
		b.ReportAllocs()
		b.SetParallelism(16)
		b.ResetTimer()
		cpu0 := cputime.Process()
		read := make(chan error, 1)
		go func() { read <- readEvents(eng, b.N*len(proto)) }()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := appendCopy(app, nextRequest(protos)); err != nil {
					b.Error(err)
					return
				}
			}
		})
		if err := <-read; err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		report(b, int64(b.N*len(proto)), cputime.Process()-cpu0)
	})
	b.Run("request", func(b *testing.B) {
		proto := storedEvents(b)
		var body []byte
		for _, e := range proto {
			body = append(append(body, e.Doc...), '\n')
		}
		eng, _ := openEngine(b)
		js := eng.JetStream()
		b.ReportAllocs()
		b.ResetTimer()
		cpu0 := cputime.Process()
		futures := make([]jetstream.PubAckFuture, 0, 32)
		for i := range b.N {
			m := &nats.Msg{Subject: eventSubject(proto[0]), Data: body, Header: nats.Header{}}
			m.Header.Set(nats.MsgIdHdr, fmt.Sprintf("bench:%d", ids.Add(1)))
			f, err := js.PublishMsgAsync(m)
			if err != nil {
				b.Fatal(err)
			}
			if futures = append(futures, f); len(futures) < cap(futures) && i < b.N-1 {
				continue
			}
			for _, f := range futures {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					b.Fatal(err)
				}
			}
			futures = futures[:0]
		}
		store := cputime.Process() - cpu0
		cpu0 = cputime.Process()
		consumeAll(b, eng, b.N, 10)
		b.StopTimer()
		events := float64(b.N * len(proto))
		b.ReportMetric(float64(store.Microseconds())/events, "store-µs/event")
		b.ReportMetric(float64((cputime.Process()-cpu0).Microseconds())/events, "consume-µs/event")
	})
	b.Run("consume", func(b *testing.B) {
		protos := storedRequests(b)
		eng, app := openEngine(b)
		for stored := 0; stored < b.N; stored += len(protos[0]) {
			proto := nextRequest(protos)
			if err := appendCopy(app, proto[:min(len(proto), b.N-stored)]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		cpu0 := cputime.Process()
		consumeEvents(b, eng, b.N)
		b.StopTimer()
		report(b, int64(b.N), cputime.Process()-cpu0)
	})
}

// consumeEvents reads n events of EVENTS through the read path of delivery
// (stream.Consumer's Feed: fetches, segments decoded into deliveries) and
// acknowledges each event; a segment is acknowledged once all its events
// are.
func consumeEvents(b *testing.B, eng *stream.Engine, n int) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := eng.Consumer(ctx, stream.ConsumerConfig{Durable: "floor", AckWait: time.Minute, MaxAckPending: 20000, FetchWait: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	out := make(chan *stream.Delivery, 1024)
	done := make(chan struct{})
	go func() { c.Feed(ctx, out, nil); close(done) }()
	for range n {
		var d *stream.Delivery
		select {
		case d = <-out:
		default: // a timer only when waiting
			select {
			case d = <-out:
			case <-time.After(10 * time.Second):
				b.Fatal("no event for 10s")
			}
		}
		if err := d.Ack(); err != nil {
			b.Fatal(err)
		}
	}
	cancel()
	<-done
}

// readEvents reads n events of EVENTS as delivery.Runner does
// (stream.Consumer's FeedMessages: a fetched segment's deliveries together)
// and acknowledges each event.
func readEvents(eng *stream.Engine, n int) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := eng.Consumer(ctx, stream.ConsumerConfig{Durable: "floor", AckWait: time.Minute, MaxAckPending: 20000, FetchWait: 5 * time.Second})
	if err != nil {
		return err
	}
	in := make(chan []*stream.Delivery, 64)
	done := make(chan struct{})
	go func() {
		c.FeedMessages(ctx, func(ds []*stream.Delivery) bool {
			select {
			case in <- ds:
				return true
			case <-ctx.Done():
				return false
			}
		}, nil)
		close(done)
	}()
	defer func() { cancel(); <-done }()
	for got := 0; got < n; {
		select {
		case ds := <-in:
			for _, d := range ds {
				if err := d.Ack(); err != nil {
					return err
				}
			}
			got += len(ds)
		case <-time.After(30 * time.Second):
			return fmt.Errorf("%d of %d events read: none for 30s", got, n)
		}
	}
	return nil
}

// consumeAll reads n messages of EVENTS with a durable pull consumer,
// fetching up to batch at a time, and acknowledges each one.
func consumeAll(b *testing.B, eng *stream.Engine, n, batch int) {
	b.Helper()
	cons, err := eng.JetStream().CreateOrUpdateConsumer(context.Background(), stream.EventsStream, jetstream.ConsumerConfig{
		Durable: "floor", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute,
		MaxDeliver: -1, MaxAckPending: 20000, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		b.Fatal(err)
	}
	for got := 0; got < n; {
		msgs, err := cons.Fetch(batch, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		for msg := range msgs.Messages() {
			if err := msg.Ack(); err != nil {
				b.Fatal(err)
			}
			got++
		}
		if err := msgs.Error(); err != nil {
			b.Fatal(err)
		}
	}
}

// storedEvents returns the events the ingest handler hands to the store
// for one request of 100 benchmark events.
func storedEvents(b *testing.B) []stream.Event { return storedRequests(b)[0] }

// storedRequests returns the events the ingest handler hands to the store
// for each of 16 different requests of 100 benchmark events. The writer
// merges the appends of concurrent requests into segments of up to 1,000
// events: appends of one request over and over would make each segment
// the same 100 events repeated, which compresses (segment.go) far better
// than the different events of real requests do.
func storedRequests(b *testing.B) [][]stream.Event {
	b.Helper()
	capture := &captureStore{}
	h := newHandler(b, capture)
	var out [][]stream.Event
	for _, t := range templates(b, 100) {
		req := httptest.NewRequest("POST", "/v1/batch", bytes.NewReader(t.Stamp(nil, 0)))
		req.Header.Set("Authorization", authHeader)
		h.ServeHTTP(httptest.NewRecorder(), req)
		if len(capture.evs) == 0 {
			b.Fatal("the handler stored nothing")
		}
		out = append(out, slices.Clone(capture.evs))
	}
	return out
}

// requests hands out the next of storedRequests' requests, round robin.
var requests atomic.Uint64

// nextRequest returns the next of protos, round robin across goroutines.
func nextRequest(protos [][]stream.Event) []stream.Event {
	return protos[(requests.Add(1)-1)%uint64(len(protos))]
}

// eventSubject is the subject the writer stores e on, for the benchmarks
// that publish with nats.go alone.
func eventSubject(e stream.Event) string {
	return stream.EventsSubject + "." + e.Source + "." + e.Type
}

// appendCopy appends a copy of proto with fresh messageIds (de-duplication
// ids bench:<n>).
func appendCopy(app *stream.Writer, proto []stream.Event) error {
	evs := make([]stream.Event, len(proto))
	copy(evs, proto)
	base := ids.Add(uint64(len(evs)))
	for i := range evs {
		evs[i].MessageID = strconv.FormatUint(base+uint64(i), 10)
	}
	res, err := app.Append(context.Background(), evs)
	if err != nil {
		return err
	}
	for _, r := range res {
		if r.Err != nil {
			return r.Err
		}
	}
	return nil
}

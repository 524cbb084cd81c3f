package stream

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/cputime"
)

// TestPublishDirect: on the embedded engine publishEach reads each
// acknowledgement from an inbox of its own (acks.go), reused by the next
// write; a stored id is a duplicate, a subject no stream holds an error; a
// write whose acknowledgement does not come in time fails, and its inbox
// is dropped, so an acknowledgement arriving late is not taken for the
// next write's.
func TestPublishDirect(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	eng, err := Open(ctx, Config{DataDir: t.TempDir()}, discard)
	if err != nil {
		t.Fatal(err)
	}
	a := newAppender(eng, WriterConfig{AckTimeout: 300 * time.Millisecond}, discard)
	done := make(chan struct{})
	go func() { _ = a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; eng.Close() })
	if a.inboxes == nil {
		t.Fatal("embedded engine: acknowledgements not read from an inbox of the appender's")
	}

	publish := func(recs ...record) []Result {
		t.Helper()
		ps := make([]*record, len(recs))
		res := make([]Result, len(recs))
		rs := make([]*Result, len(recs))
		for i := range recs {
			ps[i], rs[i] = &recs[i], &res[i]
		}
		a.publishEach(ps, rs)
		return res
	}

	res := publish(rec("events.s.track", "a"), rec("events.s.track", "b"), rec("events.s.track", "a"), rec("nostream.x", "c"))
	if res[0].Err != nil || res[1].Err != nil || res[0].Seq == 0 || res[1].Seq <= res[0].Seq || res[0].Duplicate || res[1].Duplicate {
		t.Fatalf("stored records: %+v", res[:2])
	}
	if res[2].Err != nil || !res[2].Duplicate {
		t.Fatalf("an id stored before: %+v, want a duplicate", res[2])
	}
	if res[3].Err == nil {
		t.Fatalf("a subject no stream holds: %+v, want an error", res[3])
	}
	if n := len(a.inboxes.free); n != 1 {
		t.Fatalf("%d inboxes free after one write, want 1 (reused)", n)
	}
	last := res[1].Seq
	res = publish(rec("events.s.track", "d"))
	if res[0].Err != nil || res[0].Seq <= last {
		t.Fatalf("second write: %+v", res)
	}
	if n := len(a.inboxes.free); n != 1 {
		t.Fatalf("%d inboxes free after two writes, want 1 (reused)", n)
	}

	// A subject someone listens to without answering: no acknowledgement.
	mute, err := eng.nc.SubscribeSync("mute.x")
	if err != nil {
		t.Fatal(err)
	}
	res = publish(rec("mute.x", "e"))
	if !errors.Is(res[0].Err, errNoAck) {
		t.Fatalf("unanswered publish: %+v, want %v", res[0], errNoAck)
	}
	if n := len(a.inboxes.free); n != 0 {
		t.Fatalf("%d inboxes free after a timeout, want 0 (dropped)", n)
	}
	m, err := mute.NextMsg(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Its answer comes late, before the next write's own.
	if err := eng.nc.Publish(m.Reply, []byte(`{"stream":"EVENTS","seq":999999}`)); err != nil {
		t.Fatal(err)
	}
	if err := eng.nc.Flush(); err != nil { // the server has delivered it
		t.Fatal(err)
	}
	res = publish(rec("events.s.track", "f"))
	if res[0].Err != nil || res[0].Seq == 999999 {
		t.Fatalf("write after a timeout: %+v (a late acknowledgement of the write before?)", res[0])
	}
}

// BenchmarkPublishEach is one record published and acknowledged at a
// time (a single-event commit's publish, without its fsync), its
// acknowledgement read from an inbox (direct, acks.go) or through
// jetstream's PublishMsgAsync (async), in alternating blocks of 100 so
// that both see the same machine. It reports each one's process CPU per
// record.
func BenchmarkPublishEach(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	eng, err := Open(ctx, Config{DataDir: b.TempDir()}, discard)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cancel(); eng.Close() })
	a := newAppender(eng, WriterConfig{}, discard)
	inboxes := a.inboxes
	var cpu [2]time.Duration
	var n [2]int
	var res Result
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		mode := i / 100 % 2 // 0 direct, 1 async
		if i%100 == 0 {
			a.inboxes = inboxes
			if mode == 1 {
				a.inboxes = nil
			}
		}
		r := rec("events.s.track", "p"+strconv.Itoa(i))
		t0 := cputime.Process()
		a.publishEach([]*record{&r}, []*Result{&res})
		cpu[mode] += cputime.Process() - t0
		n[mode]++
		if res.Err != nil {
			b.Fatal(res.Err)
		}
	}
	for m, name := range []string{"direct", "async"} {
		if n[m] > 0 {
			b.ReportMetric(float64(cpu[m].Nanoseconds())/1e3/float64(n[m]), name+"-cpu-µs/op")
		}
	}
}

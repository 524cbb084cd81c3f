package stream

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

var discard = slog.New(slog.DiscardHandler)

func openTest(t *testing.T, cfg Config) (*Engine, *appender) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	eng, err := Open(ctx, cfg, discard)
	if err != nil {
		t.Fatal(err)
	}
	app := newAppender(eng, WriterConfig{}, discard)
	done := make(chan struct{})
	go func() { _ = app.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; eng.Close() })
	return eng, app
}

func rec(subject, id string) record {
	return record{Subject: subject, MsgID: id, Header: nats.Header{"X-Test": []string{id}}, Data: []byte(`{"id":"` + id + `"}`)}
}

func readAll(t *testing.T, eng *Engine, stream string) []rawMessage {
	t.Helper()
	var out []rawMessage
	if err := eng.read(context.Background(), stream, readSpec{}, func(m rawMessage) error {
		out = append(out, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAppendConcurrentGroupCommit(t *testing.T) {
	eng, app := openTest(t, Config{DataDir: t.TempDir()})
	const writers, per = 16, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; i < per; i += 5 {
				var recs []record
				for j := range 5 {
					recs = append(recs, rec("events.s.track", fmt.Sprintf("w%d-%d", w, i+j)))
				}
				res, err := app.Append(context.Background(), recs)
				if err != nil {
					t.Error(err)
					return
				}
				for k, r := range res {
					if r.Err != nil || r.Duplicate || r.Seq == 0 {
						t.Errorf("record %d: %+v", k, r)
					}
					if k > 0 && r.Seq <= res[k-1].Seq {
						t.Errorf("records of one call stored out of order: %d after %d", r.Seq, res[k-1].Seq)
					}
				}
			}
		})
	}
	wg.Wait()
	msgs := readAll(t, eng, EventsStream)
	if len(msgs) != writers*per {
		t.Fatalf("stored %d, want %d", len(msgs), writers*per)
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		id := m.Header.Get("X-Test")
		if seen[id] {
			t.Errorf("stored twice: %s", id)
		}
		seen[id] = true

	}
}

func TestAppendDuplicates(t *testing.T) {
	eng, app := openTest(t, Config{DataDir: t.TempDir()})
	ctx := context.Background()
	res, err := app.Append(ctx, []record{rec("events.s.track", "a"), rec("events.s.track", "a"), rec("events.s.track", "b")})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Duplicate || !res[1].Duplicate || res[2].Duplicate {
		t.Fatalf("in-call duplicate: %+v", res)
	}
	// "a" is stored: an atomic batch holding it is refused (10201) and its
	// records are written one by one, in order.
	batch := []record{rec("events.s.track", "c")}
	for i := range 8 {
		batch = append(batch, rec("events.s.track", fmt.Sprintf("c%d", i)))
	}
	batch = append(batch, rec("events.s.track", "a"), rec("events.s.track", "d"))
	res, err = app.Append(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for i, r := range res {
		switch {
		case r.Err != nil || r.Duplicate != (i == 9):
			t.Fatalf("fallback record %d: %+v", i, r)
		case !r.Duplicate && r.Seq <= last:
			t.Fatalf("fallback record %d stored out of order: %+v", i, res)
		case !r.Duplicate:
			last = r.Seq
		}
	}
	res, err = app.Append(ctx, []record{rec("events.s.track", "d")})
	if err != nil || !res[0].Duplicate {
		t.Fatalf("single duplicate: %+v %v", res, err)
	}
	var ids []string
	for _, m := range readAll(t, eng, EventsStream) {
		ids = append(ids, m.Header.Get("X-Test"))
	}
	if fmt.Sprint(ids) != "[a b c c0 c1 c2 c3 c4 c5 c6 c7 d]" {
		t.Errorf("stored %v", ids)
	}
}

func TestLargeCallSplitInOrder(t *testing.T) {
	eng, app := openTest(t, Config{DataDir: t.TempDir()})
	var recs []record
	for i := range 2500 {
		recs = append(recs, rec("events.s.page", fmt.Sprintf("%05d", i)))
	}
	res, err := app.Append(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil || r.Seq != uint64(i+1) {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	msgs := readAll(t, eng, EventsStream)
	if len(msgs) != 2500 || msgs[2499].Header.Get("X-Test") != "02499" {
		t.Fatalf("stored %d", len(msgs))
	}
}

func TestDurableAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	eng, err := Open(ctx, Config{DataDir: dir}, discard)
	if err != nil {
		t.Fatal(err)
	}
	app := newAppender(eng, WriterConfig{}, discard)
	done := make(chan struct{})
	go func() { _ = app.Run(ctx); close(done) }()
	if _, err := app.Append(ctx, []record{rec("events.s.track", "x1"), rec("events.s.track", "x2")}); err != nil {
		t.Fatal(err)
	}
	// A second process may not open the same store.
	if _, err := Open(ctx, Config{DataDir: dir}, discard); err == nil {
		t.Fatal("second Open of a locked data dir succeeded")
	}
	cancel()
	<-done
	eng.Close()

	eng2, app2 := openTest(t, Config{DataDir: dir})
	res, err := app2.Append(context.Background(), []record{rec("events.s.track", "x2"), rec("events.s.track", "x3")})
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Duplicate || res[1].Duplicate {
		t.Errorf("dedup window lost across restart: %+v", res)
	}
	if n := len(readAll(t, eng2, EventsStream)); n != 3 {
		t.Errorf("stored %d, want 3", n)
	}
}

func TestAttachToRunningEngine(t *testing.T) {
	dir := t.TempDir()
	_, app := openTest(t, Config{DataDir: dir, Listen: "127.0.0.1:0"})
	if _, err := app.Append(context.Background(), []record{rec("events.web.track", "t1")}); err != nil {
		t.Fatal(err)
	}
	cli, err := Attach(context.Background(), Config{DataDir: dir}, discard)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if cli.Embedded() {
		t.Error("attached to a running engine but started its own")
	}
	msgs := readAll(t, cli, EventsStream)
	if len(msgs) != 1 || string(msgs[0].Data) != `{"id":"t1"}` {
		t.Errorf("read %v", msgs)
	}
	var n int
	err = cli.ReadEvents(context.Background(), ReadOptions{Source: "other"}, func(Stored) error { n++; return nil })
	if err != nil || n != 0 {
		t.Errorf("filtered read: %d %v", n, err)
	}
	err = cli.ReadEvents(context.Background(), ReadOptions{Since: time.Now().Add(time.Hour)}, func(Stored) error { n++; return nil })
	if err != nil || n != 0 {
		t.Errorf("future read: %d %v", n, err)
	}
}

func TestAttachWithoutServer(t *testing.T) {
	dir := t.TempDir()
	eng, err := Open(context.Background(), Config{DataDir: dir}, discard)
	if err != nil {
		t.Fatal(err)
	}
	app := newAppender(eng, WriterConfig{}, discard)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = app.Run(ctx); close(done) }()
	if _, err := app.Append(ctx, []record{rec("events.web.track", "o1")}); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	eng.Close()

	cli, err := Attach(context.Background(), Config{DataDir: dir}, discard)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if !cli.Embedded() {
		t.Error("no capstan running: expected a private embedded engine")
	}
	if msgs := readAll(t, cli, EventsStream); len(msgs) != 1 {
		t.Errorf("read %d events, want 1", len(msgs))
	}
}

func TestOverloaded(t *testing.T) {
	eng, err := Open(context.Background(), Config{DataDir: t.TempDir()}, discard)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	app := newAppender(eng, WriterConfig{MaxQueued: 3}, discard) // not running: nothing drains
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := app.Append(ctx, []record{rec("events.s.t", "1"), rec("events.s.t", "2")})
		first <- err
	}()
	eventually(t, func() bool { return app.queuedNow() == 2 })
	if _, err := app.Append(context.Background(), []record{rec("events.s.t", "3"), rec("events.s.t", "4")}); err != ErrOverloaded {
		t.Fatalf("second call: %v, want ErrOverloaded", err)
	}
	cancel()
	if err := <-first; err != context.Canceled {
		t.Fatalf("first call: %v", err)
	}
	if n := app.queuedNow(); n != 0 {
		t.Errorf("%d records queued after the first call was cancelled, want 0", n)
	}
}

// TestAppendCommitsInTheCallersGoroutine: a call that finds no commit in
// flight commits in its own goroutine; one that finds a commit in flight
// queues for the commit loops, which take it once a slot is free (no
// wake-up lost).
func TestAppendCommitsInTheCallersGoroutine(t *testing.T) {
	_, app := openTest(t, Config{DataDir: t.TempDir()})
	// Run has started once an append returns (the first may come before,
	// and then a loop commits it and frees its slot just after).
	if _, err := app.Append(context.Background(), []record{rec("events.s.t", "first")}); err != nil {
		t.Fatal(err)
	}
	for len(app.slots) > 0 {
		time.Sleep(time.Millisecond)
	}
	here := app.here.Load()
	for i := range 5 {
		if res, err := app.Append(context.Background(), []record{rec("events.s.t", fmt.Sprint("here-", i))}); err != nil || res[0].Err != nil {
			t.Fatalf("append %d: %v %+v", i, err, res)
		}
	}
	if n := app.here.Load() - here; n != 5 {
		t.Errorf("5 appends one at a time: %d committed by the caller, want 5", n)
	}

	// A commit in flight (a slot taken): the call queues, and a loop
	// commits it.
	app.slots <- struct{}{}
	if res, err := app.Append(context.Background(), []record{rec("events.s.t", "beside")}); err != nil || res[0].Err != nil {
		t.Fatalf("append beside a commit: %v %+v", err, res)
	}
	if app.here.Load() != here+5 {
		t.Error("an append beside a commit in flight was committed by its caller")
	}

	// Every slot taken: the call waits in the queue until one is free.
	for range app.cfg.Inflight - 1 {
		app.slots <- struct{}{}
	}
	type outcome struct {
		res []Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := app.Append(context.Background(), []record{rec("events.s.t", "queued")})
		done <- outcome{res, err}
	}()
	for app.queuedNow() == 0 {
		time.Sleep(time.Millisecond)
	}
	select {
	case o := <-done:
		t.Fatalf("append returned while every slot was taken: %+v", o)
	default:
	}
	<-app.slots
	o := <-done
	if o.err != nil || o.res[0].Err != nil || o.res[0].Seq == 0 {
		t.Fatalf("queued append: %+v", o)
	}
	if app.here.Load() != here+5 {
		t.Error("the queued append was committed by its caller")
	}
	for range app.cfg.Inflight - 1 {
		<-app.slots
	}
}

// TestExternalEngine runs against the NATS server with JetStream that this
// machine provides at 127.0.0.1:4222.
func TestExternalEngine(t *testing.T) {
	conn, err := net.DialTimeout("tcp", "127.0.0.1:4222", time.Second)
	if err != nil {
		t.Skip("no NATS server at 127.0.0.1:4222: external-engine test skipped")
	}
	conn.Close()
	eng, app := openTest(t, Config{URL: "nats://127.0.0.1:4222"})
	if eng.Embedded() {
		t.Fatal("external engine started an embedded server")
	}
	run := fmt.Sprintf("ext-%d", time.Now().UnixNano())
	res, err := app.Append(context.Background(), []record{rec("events.exttest.track", run+"-1"), rec("events.exttest.track", run+"-1"), rec("events.exttest.track", run+"-2")})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || !res[1].Duplicate || res[2].Err != nil {
		t.Fatalf("results %+v", res)
	}
	var found []string
	err = eng.read(context.Background(), EventsStream, readSpec{subject: "events.exttest.>", since: time.Now().Add(-time.Minute)}, func(m rawMessage) error {
		if id := m.Header.Get("X-Test"); len(id) > len(run) && id[:len(run)] == run {
			found = append(found, id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(found) != fmt.Sprintf("[%s-1 %s-2]", run, run) {
		t.Errorf("found %v", found)
	}
}

// With a linger, requests that arrive while a batch waits join it, up to
// MaxBatch records; larger calls still go whole.
func TestAppendLinger(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	eng, err := Open(ctx, Config{DataDir: t.TempDir()}, discard)
	if err != nil {
		t.Fatal(err)
	}
	app := newAppender(eng, WriterConfig{Linger: 20 * time.Millisecond, MaxBatch: 10, Inflight: 1}, discard)
	done := make(chan struct{})
	go func() { _ = app.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; eng.Close() })
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			n := 3
			if w == 0 {
				n = 25 // more than MaxBatch: written in chunks, in order
			}
			var recs []record
			for i := range n {
				recs = append(recs, rec("events.s.track", fmt.Sprintf("l%d-%d", w, i)))
			}
			res, err := app.Append(context.Background(), recs)
			if err != nil {
				t.Error(err)
				return
			}
			for i, r := range res {
				if r.Err != nil || r.Duplicate || (i > 0 && r.Seq <= res[i-1].Seq) {
					t.Errorf("worker %d record %d: %+v", w, i, r)
				}
			}
		})
	}
	wg.Wait()
	if n := len(readAll(t, eng, EventsStream)); n != 25+5*3 {
		t.Errorf("stored %d, want %d", n, 25+5*3)
	}
}

// TestAtomicBatchHeaders checks that records sharing one message on the way
// out each keep exactly their own headers and de-duplication id.
func TestAtomicBatchHeaders(t *testing.T) {
	eng, app := openTest(t, Config{DataDir: t.TempDir()})
	shared := nats.Header{"Capstan-Source": []string{"web"}, "Capstan-Request-Id": []string{"r1"}}
	other := nats.Header{"Capstan-Source": []string{"app"}, "X-Only-Other": []string{"yes"}}
	var recs []record
	for i := range 2 * minAtomic {
		h := shared
		if i%3 == 2 {
			h = other
		}
		recs = append(recs, record{Subject: "events.s.track", MsgID: fmt.Sprintf("h%d", i), Header: h, Data: []byte(fmt.Sprintf(`{"i":%d}`, i))})
	}
	recs = append(recs, record{Subject: "events.s.page", Header: shared, Data: []byte(`{"no":"id"}`)})
	res, err := app.Append(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil || r.Duplicate || r.Seq == 0 {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	msgs := readAll(t, eng, EventsStream)
	if len(msgs) != len(recs) {
		t.Fatalf("stored %d, want %d", len(msgs), len(recs))
	}
	for i, m := range msgs {
		want := recs[i]
		if m.Subject != want.Subject || string(m.Data) != string(want.Data) {
			t.Errorf("message %d: %s %s, want %s %s", i, m.Subject, m.Data, want.Subject, want.Data)
		}
		if got := m.Header.Get(nats.MsgIdHdr); got != want.MsgID {
			t.Errorf("message %d: Nats-Msg-Id %q, want %q", i, got, want.MsgID)
		}
		for _, k := range []string{"Capstan-Source", "Capstan-Request-Id", "X-Only-Other"} {
			if got, w := m.Header.Get(k), want.Header.Get(k); got != w {
				t.Errorf("message %d: %s %q, want %q", i, k, got, w)
			}
		}
	}
}

// TestAppenderMetrics: every commit is counted with its records and time,
// and the queue gauge reads the records waiting.
func TestAppenderMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	eng, err := Open(ctx, Config{DataDir: t.TempDir()}, discard)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	app := newAppender(eng, WriterConfig{Registry: reg}, discard)
	gather := func(name string) []float64 { // gauge value, or histogram count and sum
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			m := mf.GetMetric()[0]
			if h := m.GetHistogram(); h != nil {
				return []float64{float64(h.GetSampleCount()), h.GetSampleSum()}
			}
			return []float64{m.GetGauge().GetValue()}
		}
		t.Fatalf("no %s", name)
		return nil
	}
	gauge := func() float64 { return gather("capstan_store_queued_records")[0] }
	// Not running yet: the records wait.
	waiting := make(chan error, 1)
	go func() {
		_, err := app.Append(ctx, []record{rec("events.s.track", "q1"), rec("events.s.track", "q2")})
		waiting <- err
	}()
	eventually(t, func() bool { return gauge() == 2 })
	done := make(chan struct{})
	go func() { _ = app.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; eng.Close() })
	if err := <-waiting; err != nil {
		t.Fatal(err)
	}
	var recs []record
	for i := range 20 {
		recs = append(recs, rec("events.s.track", fmt.Sprint("r", i)))
	}
	if _, err := app.Append(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if got := gather("capstan_store_commit_records"); got[0] != 2 || got[1] != 22 {
		t.Errorf("commits %v with %v records, want 2 with 22", got[0], got[1])
	}
	if got := gather("capstan_store_commit_duration_seconds"); got[0] != 2 || got[1] <= 0 {
		t.Errorf("commit durations: %v", got)
	}
	if got := gather("capstan_store_sync_duration_seconds"); got[0] != 2 || got[1] <= 0 {
		t.Errorf("sync durations: %v", got)
	}
	// The first request waited for Run to start: at least until the gauge read 2.
	if got := gather("capstan_store_queue_wait_seconds"); got[0] != 2 || got[1] <= 0 {
		t.Errorf("queue waits: %v", got)
	}
	if gauge() != 0 {
		t.Errorf("queued %v after the commits", gauge())
	}
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
	}
}

// TestSyncIntervalPublishesEach: with engine.sync an interval nothing is
// fsynced per write, so atomic batches would only add JetStream's staging;
// records go one by one, pipelined, with duplicates still dropped.
func TestSyncIntervalPublishesEach(t *testing.T) {
	ctx := context.Background()
	eng, app := openTest(t, Config{DataDir: t.TempDir(), SyncInterval: time.Second})
	if eng.SyncsLocally() || app.atomic || app.syncs {
		t.Fatalf("SyncsLocally %v, atomic %v, syncs %v with a sync interval", eng.SyncsLocally(), app.atomic, app.syncs)
	}
	if _, err := app.Append(ctx, []record{rec("events.s.track", "m0")}); err != nil {
		t.Fatal(err)
	}
	var recs []record
	for i := range 50 {
		recs = append(recs, rec("events.s.track", fmt.Sprint("m", i))) // m0 is stored already
	}
	recs = append(recs, rec("events.s.track", "m7")) // and m7 twice in the call
	res, err := app.Append(ctx, recs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		dup := i == 0 || i == 50
		if r.Err != nil || r.Duplicate != dup || !dup && (r.Seq == 0 || i > 1 && r.Seq <= res[i-1].Seq) {
			t.Errorf("record %d: %+v", i, r)
		}
	}
	if got := len(readAll(t, eng, EventsStream)); got != 50 {
		t.Errorf("stored %d, want 50", got)
	}
}

package inproc

import (
	"bytes"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/cputime"

	"github.com/capstan-gw/capstan/bench/internal/segmentgen"
	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/ingest"
	"github.com/capstan-gw/capstan/internal/stream"
)

const writeKey = "wk_bench"

var authHeader = "Basic " + base64.StdEncoding.EncodeToString([]byte(writeKey+":"))

// ids hands out messageId counters; the run id keeps benchmark runs apart.
var ids atomic.Uint64

// templates makes 16 request bodies of batch events (a /v1/track body with
// 0), as loadgen sends them by default.
func templates(b *testing.B, batch int) []*segmentgen.Template {
	b.Helper()
	return templatesOf(b, batch, newGenerator())
}

// newGenerator is a segmentgen.Generator with a run id of its own, so that
// runs against one store never share a messageId.
func newGenerator() *segmentgen.Generator {
	return segmentgen.New(7, fmt.Sprintf("%012x", time.Now().UnixNano()&0xffffffffffff), time.Now())
}

// templatesOf is templates from g, for bodies like loadgen's -convertible
// and -new-people ones.
func templatesOf(b *testing.B, batch int, g *segmentgen.Generator) []*segmentgen.Template {
	b.Helper()
	ts := make([]*segmentgen.Template, 16)
	for i := range ts {
		var err error
		if batch > 0 {
			ts[i], err = g.Batch(batch)
		} else {
			ts[i], err = g.Single()
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	return ts
}

func newHandler(b *testing.B, store ingest.Appender) http.Handler {
	b.Helper()
	cfg, err := config.Parse("bench.yaml", []byte(`
server: {addr: "127.0.0.1:0", data_dir: `+b.TempDir()+`}
sources: [{name: bench, write_key: `+writeKey+`, rate_limit: {disabled: true}}]
`), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	h, err := ingest.New(cfg, ingest.Options{Store: store})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// nullStore acknowledges everything at once, so the handler's own cost shows.
type nullStore struct{}

func (nullStore) Append(_ context.Context, evs []stream.Event) ([]stream.Result, error) {
	return make([]stream.Result, len(evs)), nil
}

// captureStore keeps the events of one request, to feed the writer: their
// documents copied, since the handler reuses their memory once Append
// returns.
type captureStore struct {
	mu  sync.Mutex
	evs []stream.Event
}

func (c *captureStore) Append(_ context.Context, evs []stream.Event) ([]stream.Result, error) {
	c.mu.Lock()
	c.evs = append(c.evs[:0], evs...)
	for i := range c.evs {
		c.evs[i].Doc = bytes.Clone(c.evs[i].Doc)
	}
	c.mu.Unlock()
	return make([]stream.Result, len(evs)), nil
}

var (
	ingestInflight = flag.Int("ingest.inflight", 0, "engine.group_commit.inflight of the writers of BenchmarkIngest and BenchmarkAppender (0: the writer's default)")
	ingestLinger   = flag.Duration("ingest.linger", 0, "engine.group_commit.linger of the writers of BenchmarkIngest and BenchmarkAppender")
)

// openAppender starts an embedded engine in a temp dir and runs a writer
// on it until the benchmark ends.
func openAppender(b *testing.B, sync time.Duration) *stream.Writer {
	_, app := openEngineSync(b, sync)
	return app
}

// openEngine is openAppender with sync always, returning the engine too.
func openEngine(b *testing.B) (*stream.Engine, *stream.Writer) { return openEngineSync(b, 0) }

func openEngineSync(b *testing.B, sync time.Duration) (*stream.Engine, *stream.Writer) {
	b.Helper()
	log := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	eng, err := stream.Open(ctx, stream.Config{DataDir: b.TempDir(), SyncInterval: sync, Listen: "none"}, log)
	if err != nil {
		b.Fatal(err)
	}
	// With the de-duplication index, as capstan serve stores events.
	dd, err := stream.OpenDedup(ctx, eng, stream.DedupConfig{Dir: b.TempDir()}, log)
	if err != nil {
		b.Fatal(err)
	}
	app, err := stream.NewWriter(eng, stream.WriterConfig{Dedup: dd, Inflight: *ingestInflight, Linger: *ingestLinger}, log)
	if err != nil {
		b.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = app.Run(rctx) }()
	b.Cleanup(func() { cancel(); <-done; _ = dd.Close(); eng.Close() })
	return eng, app
}

// serve runs requests through h from 32 concurrent goroutines (like the
// loadgen's 32 connections) and reports events/s.
func serve(b *testing.B, h http.Handler, path string, ts []*segmentgen.Template) {
	b.Helper()
	drive(b, ts, func(body []byte) bool { return post(h, path, body).Code == http.StatusOK })
}

// post sends body to h at path as a source's client does (the write key,
// JSON) and returns the recorded answer.
func post(h http.Handler, path string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Authorization", authHeader)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// drive sends the requests of ts, stamped with new ids, through send from
// 32 concurrent goroutines and reports events/s and CPU per event; send
// reports whether the request was answered 200. Any other answer fails
// the benchmark.
func drive(b *testing.B, ts []*segmentgen.Template, send func(body []byte) bool) {
	b.Helper()
	b.SetBytes(int64(ts[0].Len()))
	b.ReportAllocs()
	b.SetParallelism(16) // × GOMAXPROCS (2 here) = 32 goroutines
	var events, failed atomic.Int64
	b.ResetTimer()
	cpu0 := cputime.Process()
	b.RunParallel(func(pb *testing.PB) {
		var buf []byte
		i := 0
		for pb.Next() {
			t := ts[i%len(ts)]
			i++
			n := uint64(t.Events())
			buf = t.Stamp(buf, ids.Add(n)-n)
			if !send(buf) {
				failed.Add(1)
				continue
			}
			events.Add(int64(n))
		}
	})
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d requests failed", f)
	}
	report(b, events.Load(), cputime.Process()-cpu0)
}

// BenchmarkHandlerNoStore is the handler's own cost: read, parse, auth,
// normalise, build records; the store acknowledges at once. The
// convertible sub-benchmarks send delivery.sh's bodies (loadgen
// -convertible: li_fat_id or traits.email on every event), with returning
// visitors or with new ones (-new-people: every event's anonymousId and
// userId carry its counter), so that the handler's cost for each can be
// compared with the end-to-end profiles.
func BenchmarkHandlerNoStore(b *testing.B) {
	b.Run("batch100", func(b *testing.B) { serve(b, newHandler(b, nullStore{}), "/v1/batch", templates(b, 100)) })
	b.Run("batch100-convertible", func(b *testing.B) {
		serve(b, newHandler(b, nullStore{}), "/v1/batch", templatesOf(b, 100, newGenerator().Convertible()))
	})
	b.Run("batch100-convertible-new", func(b *testing.B) {
		serve(b, newHandler(b, nullStore{}), "/v1/batch", templatesOf(b, 100, newGenerator().Convertible().NewPeople()))
	})
	b.Run("track", func(b *testing.B) { serve(b, newHandler(b, nullStore{}), "/v1/track", templates(b, 0)) })
}

// BenchmarkIngest is the whole path in-process: handler, group commit,
// embedded JetStream on disk.
func BenchmarkIngest(b *testing.B) {
	for _, sc := range []struct {
		name string
		sync time.Duration
	}{{"sync=always", 0}, {"sync=1s", time.Second}} {
		b.Run(sc.name+"/batch100", func(b *testing.B) {
			serve(b, newHandler(b, openAppender(b, sc.sync)), "/v1/batch", templates(b, 100))
		})
		b.Run(sc.name+"/track", func(b *testing.B) {
			serve(b, newHandler(b, openAppender(b, sc.sync)), "/v1/track", templates(b, 0))
		})
	}
}

// BenchmarkAppender is the writer (group commit) and JetStream alone: 32
// goroutines each appending the events of one 100-event request (as the
// handler hands them over) with fresh messageIds.
func BenchmarkAppender(b *testing.B) {
	for _, sc := range []struct {
		name string
		sync time.Duration
	}{{"sync=always", 0}, {"sync=1s", time.Second}} {
		b.Run(sc.name+"/100", func(b *testing.B) { benchAppend(b, sc.sync) })
	}
}

// benchAppend appends the events of one 100-event request (fresh
// messageIds each time) from 32 goroutines.
func benchAppend(b *testing.B, sync time.Duration) {
	protos := storedRequests(b)
	size := 0
	for _, e := range protos[0] {
		size += len(e.Doc)
	}
	eng, app := openEngineSync(b, sync)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.SetParallelism(16)
	var events atomic.Int64
	b.ResetTimer()
	cpu0 := cputime.Process()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			proto := nextRequest(protos)
			if err := appendCopy(app, proto); err != nil {
				b.Error(err)
				return
			}
			events.Add(int64(len(proto)))
		}
	})
	b.StopTimer()
	report(b, events.Load(), cputime.Process()-cpu0)
	reportDisk(b, eng, events.Load())
}

// reportDisk adds what EVENTS holds per event stored (its messages' bytes
// as the server counts them: data, headers, subject and framing), the
// disk an event costs before delivery adds its own.
func reportDisk(b *testing.B, eng *stream.Engine, events int64) {
	s, err := eng.JetStream().Stream(context.Background(), stream.EventsStream)
	if err != nil || events == 0 {
		return
	}
	b.ReportMetric(float64(s.CachedInfo().State.Bytes)/float64(events), "disk-B/event")
}

// report adds events/s and the process's CPU time per event: on a shared
// machine the first depends on what else runs, the second much less.
func report(b *testing.B, events int64, cpu time.Duration) {
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	if events > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(events), "cpu-µs/event")
	}
}

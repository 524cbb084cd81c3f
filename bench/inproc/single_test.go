package inproc

import (
	"net/http"
	"testing"

	"github.com/capstan-gw/capstan/internal/cputime"
)

// BenchmarkSingle is one single-event request's cost with no other request
// in flight: one goroutine, one request (or append) at a time, so every
// commit holds one event and has its own fsync, whatever the machine's load
// (concurrent benchmarks group more events per commit on a busy machine,
// and their CPU per event falls with it). It reports the process's CPU per
// request (cpu-µs/event): the store's fixed cost of a commit (hand-offs,
// publish, acknowledgement, sync) that dominates single events at 2,000
// requests/s. track is a POST /v1/track through the handler (httptest, no
// socket) and the writer with engine.sync always and the de-duplication
// index; append is the writer alone.
func BenchmarkSingle(b *testing.B) {
	b.Run("track", func(b *testing.B) {
		h := newHandler(b, openAppender(b, 0))
		ts := templates(b, 0)
		var buf []byte
		b.ReportAllocs()
		b.ResetTimer()
		cpu0 := cputime.Process()
		for i := range b.N {
			buf = ts[i%len(ts)].Stamp(buf, ids.Add(1)-1)
			if rec := post(h, "/v1/track", buf); rec.Code != http.StatusOK {
				b.Fatalf("request %d: status %d: %s", i, rec.Code, rec.Body)
			}
		}
		b.StopTimer()
		report(b, int64(b.N), cputime.Process()-cpu0)
	})
	b.Run("append", func(b *testing.B) {
		proto := storedEvents(b)[:1]
		_, app := openEngine(b)
		b.ReportAllocs()
		b.ResetTimer()
		cpu0 := cputime.Process()
		for range b.N {
			if err := appendCopy(app, proto); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		report(b, int64(b.N), cputime.Process()-cpu0)
	})
}

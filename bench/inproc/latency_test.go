package inproc

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/cputime"
	"github.com/capstan-gw/capstan/internal/stream"
)

var openRate = flag.Int("latency.rate", 2000, "BenchmarkAppendLatency: single-event appends per second")

// BenchmarkAppendLatency is the store's part of single-event latency
// without HTTP or a load generator: b.N appends of one event each (a track
// request's stored event, fresh messageId), open loop at -latency.rate per
// second (append i is due at start + i/rate and runs in its own goroutine,
// whatever the store does), through the group-commit writer with
// engine.sync always, for several group_commit.inflight values. It reports
// percentiles of the time from each append's due time until it is durable
// (p50-ms, p99-ms, p99.9-ms, max-ms), and the process's CPU per append
// (cpu-µs/event; it falls as more appends share a commit, which a busy
// machine makes more likely). Use a fixed count: -benchtime 20000x is 10 s at 2,000/s.
func BenchmarkAppendLatency(b *testing.B) {
	proto := storedEvents(b)[:1]
	for _, inflight := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			app := openWriter(b, stream.WriterConfig{Inflight: inflight})
			interval := time.Second / time.Duration(*openRate)
			lat := make([]time.Duration, b.N)
			var wg sync.WaitGroup
			var failed sync.Once
			b.ResetTimer()
			cpu0 := cputime.Process()
			start := time.Now()
			for i := range b.N {
				due := start.Add(time.Duration(i) * interval)
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				}
				wg.Go(func() {
					if err := appendCopy(app, proto); err != nil {
						failed.Do(func() { b.Error(err) })
					}
					lat[i] = time.Since(due)
				})
			}
			wg.Wait()
			b.StopTimer()
			cpu := cputime.Process() - cpu0
			slices.Sort(lat)
			q := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / 1e6
			}
			b.ReportMetric(q(0.50), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(q(0.999), "p99.9-ms")
			b.ReportMetric(float64(lat[len(lat)-1])/1e6, "max-ms")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/event")
		})
	}
}

// openWriter starts an embedded engine (engine.sync always) in a temp dir
// and runs a writer with cfg on it until the benchmark ends.
func openWriter(b *testing.B, cfg stream.WriterConfig) *stream.Writer {
	b.Helper()
	log := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	eng, err := stream.Open(ctx, stream.Config{DataDir: b.TempDir(), Listen: "none"}, log)
	if err != nil {
		b.Fatal(err)
	}
	app, err := stream.NewWriter(eng, cfg, log)
	if err != nil {
		b.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = app.Run(rctx) }()
	b.Cleanup(func() { cancel(); <-done; eng.Close() })
	return app
}

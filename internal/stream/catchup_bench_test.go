package stream

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/cputime"
)

// BenchmarkCatchUp is the de-duplication index's catch-up at start over a
// stream of segments (100-event appends of ~700-byte events), reading
// every event into an empty index: b.N events, reported as CPU-µs/event
// (process user+sys, all of it, pebble's too).
func BenchmarkCatchUp(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := b.TempDir()
	eng, err := Open(ctx, Config{DataDir: dir, SyncInterval: time.Second}, discard)
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	w, err := NewWriter(eng, WriterConfig{}, discard)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	evs := make([]Event, 100)
	for stored := 0; stored < b.N; stored += len(evs) {
		for i := range evs {
			id := strconv.Itoa(stored + i)
			evs[i] = Event{Source: "web", Type: "track", MessageID: id, Doc: fmt.Appendf(nil,
				`{"type":"track","event":"Order Completed","messageId":%q,"userId":"user-%d","anonymousId":"anon-%d","properties":{"revenue":%d.5,"currency":"EUR","li_fat_id":"fat-%d"},"context":{"ip":"203.0.113.%d","userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36","page":{"url":"https://shop.example.com/checkout/%d","title":"Checkout"}},"timestamp":"2026-12-07T01:02:03.456Z","receivedAt":"2026-12-07T01:02:03.789Z"}`,
				id, (stored+i)%5000, stored+i, i, stored+i, i, stored)}
		}
		res, err := w.Append(ctx, evs[:min(len(evs), b.N-stored)])
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
	b.ResetTimer()
	cpu0 := cputime.Process()
	d, err := OpenDedup(ctx, eng, DedupConfig{Dir: b.TempDir(), Window: time.Hour}, discard)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	cpu := cputime.Process() - cpu0
	_ = d.Close()
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/event")
}

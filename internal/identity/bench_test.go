package identity

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/event"
)

// benchGraph holds n people, each with a browser (click id) linked to a
// user (email), as after the story of TestStory.
func benchGraph(b *testing.B, n int, cfg Config) *Graph {
	b.Helper()
	g := openGraph(b, openJS(b), cfg)
	for i := range n {
		observe(b, g, fmt.Sprintf(`{"type":"page","anonymousId":"anon-%d","context":{"page":{"search":"?li_fat_id=L%d"}}}`, i, i))
		observe(b, g, fmt.Sprintf(`{"type":"identify","userId":"user-%d","anonymousId":"anon-%d","traits":{"email":"u%d@example.com"}}`, i, i, i))
	}
	return g
}

// BenchmarkEnrich is enrichment's cost for a conversion with nothing in
// the memo: capture from the event, then the reads of the graph.
func BenchmarkEnrich(b *testing.B) {
	const people = 1000
	g := benchGraph(b, people, Config{MemoTTL: -1})
	cases := []struct{ name, ev string }{
		// The common case: a server-side event with a known userId (1 read).
		{"userId", `{"type":"track","event":"Order Completed","userId":"user-%d","properties":{"revenue":49}}`},
		// A browser event of a known user: still one read.
		{"userId+anonymousId", `{"type":"track","event":"Sign Up","userId":"user-%d","anonymousId":"anon-%[1]d"}`},
		// An anonymous-only event: the anonymous id, then its user (2 reads).
		{"anonymousId", `{"type":"track","event":"Sign Up","anonymousId":"anon-%d"}`},
		// An unknown user: one read that finds nothing.
		{"unknown", `{"type":"track","event":"Sign Up","userId":"stranger-%d"}`},
	}
	// Enrich right after Observe of the same event: the memo answers.
	b.Run("memo", func(b *testing.B) {
		g := benchGraph(b, 10, Config{MemoTTL: time.Hour})
		ev := parse(b, `{"type":"track","event":"Order Completed","userId":"user-1"}`)
		if err := g.Observe(context.Background(), ev, Capture(ev)); err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if got := g.Enrich(ctx, ev, "", Capture(ev)); got.LiFatID == "" {
				b.Fatalf("not enriched: %+v", got)
			}
		}
	})
	for _, c := range cases {
		evs := make([]event.Value, people)
		for i := range evs {
			evs[i] = parse(b, fmt.Sprintf(c.ev, i))
		}
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ev := evs[i%people]
				got := g.Enrich(ctx, ev, "", Capture(ev))
				if c.name != "unknown" && got.LiFatID == "" {
					b.Fatalf("not enriched: %+v", got)
				}
				i++
			}
		})
	}
}

// BenchmarkConversion is the graph's whole cost per conversion on
// delivery's path: capture, Observe, then Enrich of the same event (which
// finds in the memo what Observe just read).
func BenchmarkConversion(b *testing.B) {
	const people = 1000
	g := benchGraph(b, people, Config{Async: true}) // as serve runs it on the embedded engine
	cases := []struct{ name, ev string }{
		{"userId", `{"type":"track","event":"Order Completed","userId":"user-%d","properties":{"revenue":49}}`},
		{"userId+anonymousId", `{"type":"track","event":"Sign Up","userId":"user-%d","anonymousId":"anon-%[1]d"}`},
	}
	for _, c := range cases {
		evs := make([]event.Value, people)
		for i := range evs {
			evs[i] = parse(b, fmt.Sprintf(c.ev, i))
		}
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ev := evs[i%people]
				have := Capture(ev)
				if err := g.Observe(ctx, ev, have); err != nil {
					b.Fatal(err)
				}
				if got := g.Enrich(ctx, ev, "", have); got.LiFatID == "" || got.Email == "" {
					b.Fatalf("not enriched: %+v", got)
				}
				i++
			}
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			var n atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					ev := evs[int(n.Add(1))%people]
					have := Capture(ev)
					if err := g.Observe(ctx, ev, have); err != nil {
						b.Error(err)
						return
					}
					if got := g.Enrich(ctx, ev, "", have); got.LiFatID == "" {
						b.Errorf("not enriched: %+v", got)
						return
					}
				}
			})
		})
	}
}

// BenchmarkObserve is the graph's cost per event observed.
func BenchmarkObserve(b *testing.B) {
	const people = 1000
	g := benchGraph(b, people, Config{Async: true}) // as serve runs it on the embedded engine
	cases := []struct{ name, ev string }{
		// Nothing new about a known browser and user (2 reads, no write).
		{"known both", `{"type":"page","userId":"user-%d","anonymousId":"anon-%[1]d"}`},
		// Nothing new about a known user (1 read, no write).
		{"known user", `{"type":"track","event":"x","userId":"user-%d"}`},
		// An anonymous visitor the graph does not know and will not store (1 read).
		{"unknown anonymous", `{"type":"page","anonymousId":"visitor-%d"}`},
	}
	for _, c := range cases {
		evs := make([]event.Value, people)
		for i := range evs {
			evs[i] = parse(b, fmt.Sprintf(c.ev, i))
		}
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ev := evs[i%people]
				if err := g.Observe(ctx, ev, Capture(ev)); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
	// New people, as on an ad's landing page: a browser never seen with a
	// click id, and a sign-up linking a new user to a new browser.
	newPeople := []struct{ name, ev string }{
		{"new anonymous", `{"type":"page","anonymousId":"new-%d","properties":{"li_fat_id":"L%[1]d"}}`},
		{"new user+anonymous", `{"type":"identify","userId":"new-user-%d","anonymousId":"new-anon-%[1]d","traits":{"email":"n%[1]d@example.com"}}`},
	}
	for _, c := range newPeople {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			evs := make([]event.Value, b.N)
			for i := range evs {
				evs[i] = parse(b, fmt.Sprintf(c.ev, i))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if err := g.Observe(ctx, evs[i], Capture(evs[i])); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// A new click id on a linked browser: a write on the anonymous id and
	// one on its user.
	b.Run("new li_fat_id", func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			ts := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano)
			ev := parse(b, fmt.Sprintf(`{"type":"page","anonymousId":"anon-%d","timestamp":"%s","properties":{"li_fat_id":"N%d"}}`, i%people, ts, i))
			if err := g.Observe(ctx, ev, Capture(ev)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkProfileMemory is the live heap each new profile leaves behind
// (b.N new visitors, each a browser with a click id, created by ObserveAll
// in chunks as delivery does; memo off): with the KV bucket, the embedded
// engine's per-key index lives in this heap; with the local store only its
// bounded caches do. Run it with a fixed count, e.g. -benchtime 200000x,
// and -store jetstream or local.
func BenchmarkProfileMemory(b *testing.B) {
	g := openGraph(b, openJS(b), Config{MemoTTL: -1})
	ctx := context.Background()
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	const chunk = 500
	obs := make([]Observation, 0, chunk)
	b.ResetTimer()
	for i := 0; i < b.N; {
		obs = obs[:0]
		for ; len(obs) < chunk && i < b.N; i++ {
			ev := parse(b, fmt.Sprintf(`{"type":"page","anonymousId":"mem-%d","properties":{"li_fat_id":"L%[1]d"}}`, i))
			obs = append(obs, Observation{Event: ev, Captured: Capture(ev), Trusted: true})
		}
		for _, err := range g.ObserveAll(ctx, obs) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	time.Sleep(time.Second) // the engine's asynchronous flushes
	after := heap()
	b.ReportMetric(float64(int64(after)-int64(before))/float64(b.N), "heap-B/profile")
	b.ReportMetric(float64(after)/(1<<20), "heap-MB")
}

// BenchmarkObserveAllNew is delivery's graph work for a chunk of new
// visitors on the local store, per event: ObserveAll of 64 events (each a
// new browser with a click id, or a sign-up linking a new user to a new
// browser), then EnrichKeys of each from the memo.
func BenchmarkObserveAllNew(b *testing.B) {
	g := openGraph(b, nil, Config{Store: openLocal(b), HashEmail: hashEmail})
	const chunk = 64
	obs := make([]Observation, 0, chunk)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i += chunk {
		b.StopTimer()
		obs = obs[:0]
		for j := i; j < min(i+chunk, b.N); j++ {
			s := fmt.Sprintf(`{"type":"page","anonymousId":"3f0b0c3e-9c1d-4f1e-a1e7-%012d","properties":{"li_fat_id":"L%[1]d"}}`, j)
			if j%2 == 1 {
				s = fmt.Sprintf(`{"type":"identify","userId":"new-user-%d","anonymousId":"3f0b0c3e-9c1d-4f1e-a1e7-%012[1]d","traits":{"email":"n%[1]d@example.com"}}`, j)
			}
			ev := parse(b, s)
			obs = append(obs, Observation{Event: ev, Captured: Capture(ev), Trusted: true, Keys: KeysOf(ev)})
		}
		b.StartTimer()
		for j, err := range g.ObserveAll(ctx, obs) {
			if err != nil {
				b.Fatalf("observe %d: %v", i+j, err)
			}
		}
		for _, o := range obs {
			if _, err := g.EnrichKeys(ctx, o.Keys, "", o.Captured); err != nil {
				b.Fatal(err)
			}
		}
	}
}

package stats

import (
	"context"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/delivery"
)

// BenchmarkFunnel measures what the statistics cost delivery per event: one
// event received, matched by a mapping, valid and delivered (the path of
// nearly every conversion), in memory; flushing is periodic and not per
// event. Run in parallel, as delivery's workers count.
func BenchmarkFunnel(b *testing.B) {
	col := &Collector{dests: map[string]*destCounters{}}
	d := col.Destination("li")
	m := d.Mapping("Sign Up")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d.Received()
			m.Matched(true)
			m.Delivered(delivery.IDLiFatID|delivery.IDEmail, 1500*time.Millisecond)
		}
	})
}

// BenchmarkFunnelSerial is BenchmarkFunnel on one goroutine.
func BenchmarkFunnelSerial(b *testing.B) {
	col := &Collector{dests: map[string]*destCounters{}}
	d := col.Destination("li")
	m := d.Mapping("Sign Up")
	b.ReportAllocs()
	for b.Loop() {
		d.Received()
		m.Matched(true)
		m.Delivered(delivery.IDLiFatID|delivery.IDEmail, 1500*time.Millisecond)
	}
}

// BenchmarkFlush measures one flush of one destination with two mappings
// (two compare-and-set writes, each made durable) on the real embedded
// engine: what every FlushEvery costs, whatever the event rate.
func BenchmarkFlush(b *testing.B) {
	eng := openEngine(b, b.TempDir())
	defer eng.Close()
	col, err := Open(context.Background(), eng, Config{}, discard)
	if err != nil {
		b.Fatal(err)
	}
	d := col.Destination("li")
	ms := []delivery.MappingFunnel{d.Mapping("Sign Up"), d.Mapping("Purchase")}
	b.ReportAllocs()
	for b.Loop() {
		for i := range 100 {
			d.Received()
			m := ms[i%2]
			m.Matched(true)
			m.Delivered(delivery.IDs(i%4), time.Duration(i)*time.Millisecond)
		}
		if err := col.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReport24h measures the console's heaviest read: the 24 h window
// of a destination with a key for every minute of the day (1440 records
// read through one watch of the minutes bucket).
func BenchmarkReport24h(b *testing.B) {
	eng := openEngine(b, b.TempDir())
	defer eng.Close()
	c := &clock{t: base}
	col := openCollector(b, eng, c)
	d := col.Destination("li")
	m := d.Mapping("Sign Up")
	for i := range 1440 {
		c.set(base.Add(-time.Duration(i) * time.Minute))
		col.mu.Lock()
		col.start = c.Now()
		col.mu.Unlock()
		d.Received()
		m.Matched(true)
		m.Delivered(delivery.IDEmail, time.Second)
		if err := col.flush(context.Background(), c.Now()); err != nil {
			b.Fatal(err)
		}
	}
	c.set(base)
	w, _ := WindowNamed("24h")
	b.ReportAllocs()
	for b.Loop() {
		rep, err := col.Report(context.Background(), Query{Window: w})
		if err != nil {
			b.Fatal(err)
		}
		// The window is 96 steps of 15 minutes ending with the one that
		// holds now: the 4 minutes before its start are outside.
		if got := rep.Destinations[0].Funnel.Received; got != 1436 {
			b.Fatalf("received %d, want 1436", got)
		}
	}
}

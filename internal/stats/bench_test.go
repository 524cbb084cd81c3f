package stats

import (
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

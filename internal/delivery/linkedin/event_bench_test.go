package linkedin

import (
	"context"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/cputime"
	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/identity"
)

// storedTrack is a stored event as bench/inproc's BenchmarkDelivery stores
// it (bench/internal/segmentgen's convertible track event after ingest).
const storedTrack = `{"timestamp":"2026-12-07T16:07:48.336Z","type":"track","properties":{"product_id":"sku-854777","category":"Books","price":13.82,"currency":"USD","revenue":13.82,"li_fat_id":"ba69eb07-d862-49b4-a0e3-8ce05689c78b"},"event":"Order Completed","messageId":"ajs-next-abc123-0000000000000001","anonymousId":"aa1875b7-4424-4574-a4ac-29d84f72bbb1","userId":"user_2870726","context":{"page":{"path":"/blog/attribution-in-2026","referrer":"https://www.linkedin.com/","search":"","url":"https://www.example.com/blog/attribution-in-2026"},"userAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15","library":{"name":"analytics.js","version":"npm:next-1.84.3"},"ip":"203.0.113.9"},"sentAt":"2026-12-07T16:07:48.339Z","receivedAt":"2026-12-07T16:07:48.412Z","originalTimestamp":"2026-12-07T16:07:48.336Z"}`

// BenchmarkEvent is delivery's own work on one stored event as the runner
// does it (Runner.parse, then Runner.convert without the graph's look-ups):
// parse (into an event.Arena), consent, capture, the graph's keys, then the plan of
// bench/inproc's BenchmarkDelivery (trigger type = "track", the default
// fields) and the conversion.
func BenchmarkEvent(b *testing.B) {
	p := plan(b, `      - name: Sign Up
        trigger: 'type = "track"'
        conversion_rule: {id: 22833300}
`)
	ctx := context.Background()
	at := time.UnixMilli(1796659700000)
	b.ReportAllocs()
	cpu0, n := cputime.Process(), 0
	var arena event.Arena // reset after every 64 events, as the runner's chunks
	for b.Loop() {
		if n++; n%64 == 0 {
			arena.Reset()
		}
		ev, err := arena.ParseString(storedTrack)
		if err != nil {
			b.Fatal(err)
		}
		if s, ok := ev.Get("receivedAt").Str(); ok {
			_, _ = event.ParseTime(s)
		}
		if !identity.ConsentAllows(ev, nil) {
			b.Fatal("consent")
		}
		c := identity.Capture(ev)
		_ = identity.KeysOf(ev)
		results := p.Convert(ctx, ev, "web", at, nil, &c)
		if results[0].Outcome != delivery.Converted {
			b.Fatal(results[0].Err)
		}
	}
	b.ReportMetric(float64(cputime.Process()-cpu0)/float64(n), "cpu-ns/op")
}

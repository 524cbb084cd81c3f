package mapping

import (
	"testing"

	"github.com/capstan-gw/capstan/internal/event"
)

// benchEvent is a typical analytics-next track event as stored (spec §2.8),
// with the properties a sign-up form sends.
const benchEvent = `{
  "type": "track",
  "event": "Sign Up",
  "messageId": "ajs-next-1788258896789-5b1c2f3e-8d3a-4c1e-9d9a-2a4c6e8f0b1d",
  "anonymousId": "3f0b0c3e-9c1d-4f1e-a1e7-6f2f9b1d2c44",
  "userId": null,
  "properties": { "hashedEmail": "55e79200c1635b37ad31a378c39feb12f120f116625093a19bc32fff15041149", "li_fat_id": "123456",
    "firstName": "John", "lastName": "Doe", "title": "Engineer", "company": "Acme Inc", "countryCode": "us", "revenue": 49.9 },
  "context": {
    "page": { "path": "/signup", "referrer": "", "search": "?li_fat_id=123456", "title": "Sign up", "url": "https://www.example.com/signup?li_fat_id=123456" },
    "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36",
    "locale": "en-US",
    "library": { "name": "analytics.js", "version": "npm:next-1.84.3" },
    "ip": "203.0.113.7"
  },
  "integrations": { "Segment.io": true },
  "_metadata": { "bundled": ["Segment.io"], "unbundled": [], "bundledIds": [] },
  "originalTimestamp": "2026-09-01T10:34:56.789Z",
  "sentAt": "2026-09-01T10:34:56.801Z",
  "receivedAt": "2026-09-01T10:34:56.950Z",
  "timestamp": "2026-09-01T10:34:56.938Z"
}`

const benchTrigger = `type = "track" and match(context.page.url, "https://www.example.com/*")`

// benchMapping has the 8 top-level fields of the LinkedIn action, with the
// directives real mappings use (@path, @if, @case, nested objects).
const benchMapping = `{
  "conversionHappenedAt": {"@path": "$.timestamp"},
  "conversionValue": {"currencyCode": {"@if": {"exists": {"@path": "$.properties.currency"}, "then": {"@path": "$.properties.currency"}, "else": "USD"}},
                      "amount": {"@path": "$.properties.revenue"}},
  "eventId": {"@path": "$.messageId"},
  "email": {"@if": {"exists": {"@path": "$.properties.hashedEmail"}, "then": {"@path": "$.properties.hashedEmail"}, "else": {"@path": "$.context.traits.email"}}},
  "linkedInUUID": {"@path": "$.properties.li_fat_id"},
  "userInfo": {
    "firstName": {"@path": "$.properties.firstName"},
    "lastName": {"@path": "$.properties.lastName"},
    "companyName": {"@path": "$.properties.company"},
    "title": {"@path": "$.properties.title"},
    "countryCode": {"@case": {"operator": "upper", "value": {"@path": "$.properties.countryCode"}}}
  },
  "enable_batching": true,
  "batch_size": 5000
}`

func BenchmarkTriggerMatch(b *testing.B) {
	ev, _ := event.Parse([]byte(benchEvent))
	tr := MustParseTrigger(benchTrigger)
	b.ReportAllocs()
	for b.Loop() {
		if !tr.Match(ev) {
			b.Fatal("no match")
		}
	}
}

func BenchmarkApply(b *testing.B) {
	ev, _ := event.Parse([]byte(benchEvent))
	m := MustCompile(benchMapping)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Apply(ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEvent is the per-event cost of one mapping: trigger evaluation
// plus mapping, without and with parsing the event's bytes.
func BenchmarkEvent(b *testing.B) {
	data := []byte(benchEvent)
	tr := MustParseTrigger(benchTrigger)
	m := MustCompile(benchMapping)
	b.Run("without_parse", func(b *testing.B) {
		ev, _ := event.Parse(data)
		b.ReportAllocs()
		for b.Loop() {
			if tr.Match(ev) {
				if _, err := m.Apply(ev); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("with_parse", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			ev, err := event.Parse(data)
			if err != nil {
				b.Fatal(err)
			}
			if tr.Match(ev) {
				if _, err := m.Apply(ev); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("with_parse_and_any", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ev, _ := event.Parse(data)
			if tr.Match(ev) {
				out, _ := m.Apply(ev)
				_ = out.Any()
			}
		}
	})
}

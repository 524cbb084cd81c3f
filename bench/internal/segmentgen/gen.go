package segmentgen

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// counterDigits is the width of the per-event counter inside a messageId.
const counterDigits = 16

// placeholder marks where a counter goes in a template; it is replaced by
// Stamp before anything is sent.
var placeholder = []byte("################")

// Template is a pre-built request body with the byte offsets of every
// messageId counter in it. It is read-only after New* and safe for
// concurrent use; Stamp writes only into the caller's buffer.
type Template struct {
	body    []byte
	offsets []int // every counter slot, in order
	slots   []int // counter slots of each event, in order
}

// Events is the number of events in the body.
func (t *Template) Events() int { return len(t.slots) }

// Len is the body size in bytes.
func (t *Template) Len() int { return len(t.body) }

// Stamp copies the template into dst (grown as needed) and gives its events
// the counters first, first+1, ... (in the messageId, and with NewPeople in
// the anonymousId and userId too); the caller hands out disjoint ranges so
// that no messageId repeats. It returns the body.
func (t *Template) Stamp(dst []byte, first uint64) []byte {
	dst = append(dst[:0], t.body...)
	var digits [counterDigits]byte
	slot := 0
	for i, k := range t.slots {
		n := first + uint64(i)
		for j := counterDigits - 1; j >= 0; j-- {
			digits[j] = byte('0' + n%10)
			n /= 10
		}
		for _, off := range t.offsets[slot : slot+k] {
			copy(dst[off:off+counterDigits], digits[:])
		}
		slot += k
	}
	return dst
}

// Generator makes templates. RunID goes into every messageId so that two
// runs against one store never collide. A Generator is not safe for
// concurrent use (it owns a random source).
type Generator struct {
	rnd         *rand.Rand
	runID       string
	now         time.Time
	convertible bool
	newPeople   bool
	n           int // events generated, for Convertible's alternation
}

// NewPeople makes every stamped event come from a person never seen
// before: its anonymousId (and userId, when it has one) carries the event's
// counter, as on an ad's landing page; without it, identifiers are fixed
// per template, so that a run's events come from a few thousand returning
// people. It returns g.
func (g *Generator) NewPeople() *Generator {
	g.newPeople = true
	return g
}

// Convertible makes every later event a valid LinkedIn conversion (the
// delivery benchmark): properties.revenue (= price) goes with the currency,
// even events get properties.li_fat_id, odd ones traits.email (hashed by
// capstan); identifiers are fixed per template. It returns g.
func (g *Generator) Convertible() *Generator {
	g.convertible = true
	return g
}

// New returns a Generator seeded with seed; runID (hex, a few characters)
// prefixes every messageId; now is the events' clock.
func New(seed uint64, runID string, now time.Time) *Generator {
	return &Generator{rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), runID: runID, now: now.UTC()}
}

var (
	eventNames = []string{"Product Viewed", "Product Added", "Checkout Started", "Order Completed",
		"Signed Up", "Demo Requested", "Pricing Viewed", "Video Played", "Form Submitted", "Search Performed"}
	categories = []string{"Shoes", "Jackets", "Accessories", "Software", "Books", "Outdoor"}
	paths      = []string{"/", "/pricing", "/products/trail-runner-2", "/blog/attribution-in-2026",
		"/signup", "/checkout", "/docs/getting-started", "/customers"}
	referrers = []string{"https://www.google.com/", "https://www.linkedin.com/", "", "https://news.ycombinator.com/",
		"https://www.bing.com/"}
	userAgents = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
	}
)

// kv is one key of an ordered JSON object.
type kv struct {
	k string
	v any
}

// obj is a JSON object that keeps its key order, as browsers do.
type obj []kv

// MarshalJSON writes the keys in order.
func (o obj) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, f := range o {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, f.k)
		b = append(b, ':')
		v, err := json.Marshal(f.v)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", f.k, err)
		}
		b = append(b, v...)
	}
	return append(b, '}'), nil
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

func (g *Generator) hex(n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[g.rnd.IntN(16)]
	}
	return string(b)
}

func (g *Generator) uuid() string {
	h := g.hex(32)
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

// track builds one analytics-next track event; its messageId ends in the
// counter placeholder (so do its ids with NewPeople). It returns the event
// and its number of placeholders.
func (g *Generator) track(ts time.Time) (obj, int) {
	r := g.rnd
	path := pick(r, paths)
	search := ""
	if r.IntN(10) == 0 {
		search = "?li_fat_id=" + g.uuid()
	}
	price := float64(r.IntN(20000)) / 100
	props := obj{
		{"product_id", fmt.Sprintf("sku-%06d", r.IntN(1000000))},
		{"category", pick(r, categories)},
		{"price", price},
		{"currency", "USD"},
	}
	email := false
	if g.convertible {
		// A currency without revenue is an invalid conversionValue.
		props = append(props, kv{"revenue", price})
		if g.n%2 == 0 {
			props = append(props, kv{"li_fat_id", g.uuid()})
		} else {
			email = true
		}
	}
	g.n++
	anon, slots := g.uuid(), 1
	if g.newPeople {
		anon, slots = anon[:19]+g.runID+"-"+string(placeholder), slots+1
	}
	e := obj{
		{"timestamp", ts.Format("2006-01-02T15:04:05.000Z")},
		{"type", "track"},
		{"properties", props},
		{"event", pick(r, eventNames)},
		{"messageId", "ajs-next-" + g.runID + "-" + string(placeholder)},
		{"anonymousId", anon},
	}
	if r.IntN(3) == 0 {
		user := fmt.Sprintf("user_%d", r.IntN(10000000))
		if g.newPeople {
			user, slots = "user_"+g.runID+"_"+string(placeholder), slots+1
		}
		e = append(e, kv{"userId", user})
	}
	if email {
		e = append(e, kv{"traits", obj{{"email", fmt.Sprintf("Visitor.%s@Example.com", g.hex(10))}}})
	}
	e = append(e,
		kv{"context", obj{
			{"page", obj{
				{"path", path},
				{"referrer", pick(r, referrers)},
				{"search", search},
				{"url", "https://www.example.com" + path + search},
			}},
			{"userAgent", pick(r, userAgents)},
			{"library", obj{{"name", "analytics.js"}, {"version", "npm:next-1.84.3"}}},
		}},
	)
	return e, slots
}

// Batch returns a /v1/batch body with n track events.
func (g *Generator) Batch(n int) (*Template, error) {
	items := make([]obj, n)
	slots := make([]int, n)
	for i := range items {
		items[i], slots[i] = g.track(g.now.Add(-time.Duration(n-i) * time.Millisecond))
	}
	body, err := json.Marshal(obj{
		{"batch", items},
		{"sentAt", g.now.Format("2006-01-02T15:04:05.000Z")},
	})
	if err != nil {
		return nil, fmt.Errorf("encode batch: %w", err)
	}
	return newTemplate(body, slots)
}

// Single returns a /v1/track body with one track event, as analytics-next
// sends it (sentAt inside the event).
func (g *Generator) Single() (*Template, error) {
	ev, slots := g.track(g.now)
	ev = append(ev, kv{"sentAt", g.now.Format("2006-01-02T15:04:05.000Z")})
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	return newTemplate(body, []int{slots})
}

func newTemplate(body []byte, slots []int) (*Template, error) {
	t := &Template{body: body, slots: slots}
	want := 0
	for _, k := range slots {
		want += k
	}
	for i := 0; i+len(placeholder) <= len(body); i++ {
		if body[i] == '#' && string(body[i:i+len(placeholder)]) == string(placeholder) {
			t.offsets = append(t.offsets, i)
			i += len(placeholder) - 1
		}
	}
	if len(t.offsets) != want {
		return nil, fmt.Errorf("template has %d counter slots, want %d", len(t.offsets), want)
	}
	return t, nil
}

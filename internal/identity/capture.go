package identity

import (
	"net/url"
	"strings"

	"github.com/capstan-gw/capstan/internal/event"
)

// Captured is what one event says about its user.
type Captured struct {
	// LiFatID is the LinkedIn click id, "" when the event has none.
	LiFatID string
	// LiFatIDFrom names where it was found ("properties.li_fat_id",
	// "context.page.url", "cookie capstan_lfi", …, or one of the From*
	// constants when Graph.Enrich supplied it).
	LiFatIDFrom string
	// Email is the email as written (not normalised), "" when none. When
	// the graph supplied it (Graph.Enrich), it is the email's normalised
	// SHA-256, which internal/linkedin recognises and sends unchanged.
	Email string
	// EmailFrom names where it was found ("traits.email", …, or one of the
	// From* constants for the graph).
	EmailFrom string
}

// liFatIDSources are read in this order; the first non-empty value wins
// (linkedin-capi.md §15.2): the page URL's query first (context.page.url,
// then context.page.search), then properties.li_fat_id and
// context.li_fat_id. The rest are capstan's additions, after the spec's:
// traits (identify calls), then a URL in properties (page calls).
var liFatIDSources = []struct {
	fieldPath
	inURL bool // the value is a URL or query string carrying ?li_fat_id=
}{
	{pathOf("context.page.url"), true},
	{pathOf("context.page.search"), true},
	{pathOf("properties.li_fat_id"), false},
	{pathOf("context.li_fat_id"), false},
	{pathOf("traits.li_fat_id"), false},
	{pathOf("context.traits.li_fat_id"), false},
	{pathOf("properties.url"), true},
	{pathOf("properties.search"), true},
}

var emailFields = []fieldPath{
	pathOf("traits.email"),
	pathOf("context.traits.email"),
	pathOf("properties.email"),
}

// fieldPath is a field of an event that Capture reads: its path, and its
// name for Captured's …From (built once, not per event).
type fieldPath struct {
	path []string
	name string
}

func pathOf(name string) fieldPath { return fieldPath{path: strings.Split(name, "."), name: name} }

// Capture returns the identifiers ev carries.
func Capture(ev event.Value) Captured {
	var c Captured
	for _, src := range liFatIDSources {
		s := str(ev.Lookup(src.path...))
		if src.inURL {
			s = FromURL(s)
		}
		if s != "" {
			c.LiFatID, c.LiFatIDFrom = s, src.name
			break
		}
	}
	for _, p := range emailFields {
		if s := str(ev.Lookup(p.path...)); strings.Contains(s, "@") {
			c.Email, c.EmailFrom = s, p.name
			break
		}
	}
	return c
}

// FromURL returns the li_fat_id query parameter of a URL, a query string
// ("?li_fat_id=…" or "li_fat_id=…"), or "".
func FromURL(s string) string {
	if !strings.Contains(s, "li_fat_id") {
		return ""
	}
	q := s
	if i := strings.IndexByte(s, '?'); i >= 0 {
		q = s[i+1:]
	}
	if i := strings.IndexByte(q, '#'); i >= 0 {
		q = q[:i]
	}
	vals, err := url.ParseQuery(q)
	if err != nil {
		// ParseQuery keeps what it could parse; use it.
		if vals == nil {
			return ""
		}
	}
	return strings.TrimSpace(vals.Get("li_fat_id"))
}

func str(v event.Value) string {
	s, _ := v.Str()
	return strings.TrimSpace(s)
}

// ConsentAllows applies segment-ingest.md §2.10: an event without
// context.consent.categoryPreferences (absent, null or not an object) is not
// subject to consent; otherwise every required category must be present and
// true. A denied event is stored but neither sent to the destination nor
// allowed to teach the graph anything (Observe must not be called for it).
func ConsentAllows(ev event.Value, required []string) bool {
	prefs := ev.Lookup("context", "consent", "categoryPreferences")
	if prefs.Kind() != event.Object {
		return true
	}
	for _, c := range required {
		if b, ok := prefs.Get(c).Bool(); !ok || !b {
			return false
		}
	}
	return true
}

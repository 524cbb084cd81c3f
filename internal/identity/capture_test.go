package identity

import "testing"

// TestCaptureLiFatIDPrecedence: li_fat_id comes from the page URL's query
// first, then context.page.search, then properties.li_fat_id, then
// context.li_fat_id (linkedin-capi.md §15.2), then capstan's additions.
func TestCaptureLiFatIDPrecedence(t *testing.T) {
	const (
		pageURL    = `"page":{"url":"https://www.example.com/l?utm_source=li&li_fat_id=from-url#top"`
		pageSearch = `"search":"?li_fat_id=from-search"`
	)
	tests := []struct {
		name, ev string
		want     string
		from     string
	}{
		{"page url beats properties and context",
			`{"properties":{"li_fat_id":"from-props"},"context":{"li_fat_id":"from-context",` + pageURL + `,` + pageSearch + `}}}`,
			"from-url", "context.page.url"},
		{"page search when the url has none",
			`{"properties":{"li_fat_id":"from-props"},"context":{"li_fat_id":"from-context","page":{"url":"https://www.example.com/l?utm_source=li",` + pageSearch + `}}}`,
			"from-search", "context.page.search"},
		{"properties when the page has none",
			`{"properties":{"li_fat_id":" from-props "},"context":{"li_fat_id":"from-context","page":{"url":"https://www.example.com/"}}}`,
			"from-props", "properties.li_fat_id"},
		{"context after properties",
			`{"properties":{"li_fat_id":""},"context":{"li_fat_id":"from-context"}}`,
			"from-context", "context.li_fat_id"},
		{"traits after the spec's sources",
			`{"traits":{"li_fat_id":"from-traits"},"properties":{"url":"https://x.example/?li_fat_id=from-prop-url"}}`,
			"from-traits", "traits.li_fat_id"},
		{"a page call's properties.url last",
			`{"type":"page","properties":{"url":"https://x.example/?li_fat_id=from-prop-url"}}`,
			"from-prop-url", "properties.url"},
		{"raw: not lower-cased or validated",
			`{"context":{"page":{"search":"li_fat_id=AbC-123_x"}}}`,
			"AbC-123_x", "context.page.search"},
		{"none", `{"properties":{"url":"https://x.example/?utm=1"}}`, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Capture(parse(t, tt.ev))
			if c.LiFatID != tt.want || c.LiFatIDFrom != tt.from {
				t.Errorf("got %q from %q, want %q from %q", c.LiFatID, c.LiFatIDFrom, tt.want, tt.from)
			}
		})
	}
}

// TestCaptureAllocs: capturing an event's li_fat_id and email, what delivery
// does for every event, allocates nothing: the values are the event's and
// the names of their fields are built once.
func TestCaptureAllocs(t *testing.T) {
	ev := parse(t, `{"properties":{"li_fat_id":"lfi-1"},"traits":{"email":"Ann@example.com"},"context":{"page":{"url":"https://x.example/"}}}`)
	c := Capture(ev)
	if c.LiFatIDFrom != "properties.li_fat_id" || c.EmailFrom != "traits.email" {
		t.Fatalf("captured %+v", c)
	}
	if n := testing.AllocsPerRun(100, func() { _ = Capture(ev) }); n != 0 {
		t.Errorf("Capture allocates %v times, want 0", n)
	}
}

package linkedin

import (
	"context"
	"strings"
	"testing"

	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/identity"
	capi "github.com/capstan-gw/capstan/internal/linkedin"
)

// TestEnrichmentPrecedence is linkedin-capi.md §15.2's order for the
// LinkedIn UUID of a conversion: the mapping's own value, then the page
// URL's query (context.page.url, then context.page.search), then
// properties.li_fat_id / context.li_fat_id, then the cookie, then the
// identity graph.
func TestEnrichmentPrecedence(t *testing.T) {
	const head = `{"type":"track","event":"Sign Up","userId":"u1","timestamp":"2026-09-01T10:00:00Z",`
	g := graph{identity.Captured{LiFatID: "from-graph"}}
	tests := []struct {
		name     string
		mappings string
		event    string
		cookie   string
		want     string
		from     string // Enriched["linkedInUUID"]; "" for the mapping's own value
	}{
		{"mapping first", signUp + "        fields: {linkedInUUID: {\"@path\": \"$.properties.click\"}}\n",
			head + `"properties":{"click":"from-mapping","li_fat_id":"from-props"},"context":{"page":{"url":"https://x.example/?li_fat_id=from-url"}}}`,
			"", "from-mapping", ""},
		{"page url before properties and context", signUp,
			head + `"properties":{"li_fat_id":"from-props"},"context":{"li_fat_id":"from-context","page":{"url":"https://x.example/?li_fat_id=from-url","search":"?li_fat_id=from-search"}}}`,
			"", "from-url", "context.page.url"},
		{"page search next", signUp,
			head + `"properties":{"li_fat_id":"from-props"},"context":{"page":{"url":"https://x.example/","search":"?li_fat_id=from-search"}}}`,
			"", "from-search", "context.page.search"},
		{"properties next", signUp,
			head + `"properties":{"li_fat_id":"from-props"},"context":{"li_fat_id":"from-context"}}`,
			"", "from-props", "properties.li_fat_id"},
		{"context next", signUp, head + `"context":{"li_fat_id":"from-context"}}`, "", "from-context", "context.li_fat_id"},
		{"cookie next", signUp, head + `"properties":{}}`, "from-cookie", "from-cookie", "cookie capstan_lfi"},
		{"graph last", signUp, head + `"properties":{}}`, "", "from-graph", "graph"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := plan(t, tt.mappings)
			e := ev(t, tt.event)
			have := identity.Capture(e)
			if have.LiFatID == "" && tt.cookie != "" {
				have.LiFatID, have.LiFatIDFrom = tt.cookie, "cookie capstan_lfi"
			}
			res := p.Convert(context.Background(), e, "web", now, g, &have)
			if len(res) != 1 || res[0].Outcome != delivery.Converted {
				t.Fatalf("%+v", res)
			}
			ids := payload(t, res[0]).User.UserIDs
			if len(ids) != 1 || ids[0].IDType != capi.IDLinkedInUUID || ids[0].IDValue != tt.want {
				t.Errorf("userIds %+v, want %s", ids, tt.want)
			}
			if got := res[0].Payload.Enriched[capi.FieldLinkedInUUID]; got != tt.from {
				t.Errorf("enriched from %q, want %q", got, tt.from)
			}
		})
	}
}

// TestEnrichFalse: a mapping with enrich: false sends only what its fields
// map yields (strict Segment behaviour, §15.2): neither the page URL nor
// the cookie nor the graph fills linkedInUUID or email; a mapping of the
// same destination without it is still enriched.
func TestEnrichFalse(t *testing.T) {
	p := plan(t, `      - name: strict
        trigger: 'type = "track"'
        conversion_rule: {id: 1}
        enrich: false
      - name: strict-own
        trigger: 'type = "track"'
        conversion_rule: {id: 2}
        enrich: false
        fields: {linkedInUUID: {"@path": "$.properties.click"}}
      - name: enriched
        trigger: 'type = "track"'
        conversion_rule: {id: 3}
`)
	hash, _ := capi.HashEmail("ann@example.com")
	g := graph{identity.Captured{LiFatID: "from-graph", Email: hash}}
	e := ev(t, `{"type":"track","event":"Sign Up","userId":"u1","timestamp":"2026-09-01T10:00:00Z",
		"properties":{"click":"own","li_fat_id":"from-props"},"context":{"page":{"url":"https://x.example/?li_fat_id=from-url"}}}`)
	have := identity.Captured{LiFatID: "from-cookie", LiFatIDFrom: "cookie capstan_lfi"}
	res := p.Convert(context.Background(), e, "web", now, g, &have)
	if len(res) != 3 {
		t.Fatalf("%+v", res)
	}
	if r := res[0]; r.Outcome != delivery.Invalid || len(r.Payload.Enriched) != 0 ||
		!strings.Contains(r.Err.Error(), "One of email or LinkedIn UUID or Acxiom ID or Oracle ID is required.") {
		t.Errorf("strict: %+v", r)
	}
	if r := res[1]; r.Outcome != delivery.Converted || len(r.Payload.Enriched) != 0 {
		t.Errorf("strict with its own field: %+v", r)
	} else if ids := payload(t, r).User.UserIDs; len(ids) != 1 || ids[0].IDValue != "own" {
		t.Errorf("strict with its own field: userIds %+v", ids)
	}
	if r := res[2]; r.Outcome != delivery.Converted || r.Payload.Enriched[capi.FieldLinkedInUUID] != "cookie capstan_lfi" || r.Payload.Enriched[capi.FieldEmail] != "graph" {
		t.Errorf("enriched: %+v", r)
	}
	if !p.Routes[2].Enriches() || p.Routes[0].Enriches() {
		t.Error("Route.Enriches does not follow enrich:")
	}
}

package linkedin

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/identity"
	capi "github.com/capstan-gw/capstan/internal/linkedin"
)

var now = time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)

func plan(t testing.TB, mappings string) *delivery.Plan {
	t.Helper()
	text := `
sources: [{name: web, write_key: k1}, {name: crm, write_key: k2}]
destinations:
  - name: li
    sources: [web]
    auth: {access_token: t}
    mappings:
` + mappings
	cfg, err := config.Parse("t.yaml", []byte(text), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFormat(FormatConfig{})
	if err != nil {
		t.Fatal(err)
	}
	p, errs := delivery.NewPlan(cfg, 0, f)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return p
}

// payload returns the LinkedIn conversion of a converted result.
func payload(t testing.TB, r delivery.Result) *conversion {
	t.Helper()
	c, ok := r.Payload.Value.(*conversion)
	if !ok {
		t.Fatalf("result %+v holds no conversion", r)
	}
	return c
}

func ev(t testing.TB, s string) event.Value {
	t.Helper()
	v, err := event.Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

const signUp = `      - name: Sign Up
        trigger: 'type = "track" and event = "Sign Up"'
        conversion_rule: {id: 123}
`

func TestConvertDefaults(t *testing.T) {
	p := plan(t, signUp)
	e := ev(t, `{"type":"track","event":"Sign Up","messageId":"m1","timestamp":"2026-09-01T10:00:00.000Z",
		"traits":{"email":" Ann@Example.com "},"properties":{"revenue":49.9,"currency":"EUR"}}`)
	res := p.Convert(context.Background(), e, "web", now, nil, nil)
	if len(res) != 1 || res[0].Outcome != delivery.Converted {
		t.Fatalf("%+v", res)
	}
	c := payload(t, res[0]).Conversion
	if c.Conversion != "urn:lla:llaPartnerConversion:123" || c.EventID != "m1" || c.ConversionHappenedAt != 1788256800000 {
		t.Errorf("conversion %+v", c)
	}
	if c.ConversionValue == nil || c.ConversionValue.Amount != "49.9" || c.ConversionValue.CurrencyCode != "EUR" {
		t.Errorf("value %+v", c.ConversionValue)
	}
	want, _ := capi.HashEmail("ann@example.com")
	if len(c.User.UserIDs) != 1 || c.User.UserIDs[0].IDValue != want {
		t.Errorf("user %+v", c.User)
	}
	if b := payload(t, res[0]).batching; !b.Enabled || b.Size != 5000 {
		t.Errorf("batching %+v", b)
	}
}

func TestConvertFieldOverridesAndNull(t *testing.T) {
	p := plan(t, signUp+`        fields:
          eventId: {"@path": "$.properties.order_id"}
          email: null
          linkedInUUID: {"@path": "$.properties.click"}
`)
	e := ev(t, `{"type":"track","event":"Sign Up","messageId":"m1","timestamp":"2026-09-01T10:00:00Z",
		"traits":{"email":"ann@example.com"},"properties":{"order_id":"o-9","click":"abc"}}`)
	res := p.Convert(context.Background(), e, "web", now, nil, nil)
	c := payload(t, res[0]).Conversion
	if c.EventID != "o-9" || len(c.User.UserIDs) != 1 || c.User.UserIDs[0].IDType != "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID" {
		t.Errorf("%+v", c)
	}
}

func TestConvertFilters(t *testing.T) {
	p := plan(t, signUp)
	base := `"type":"track","event":"Sign Up","timestamp":"2026-09-01T10:00:00Z","properties":{"li_fat_id":"x"}`
	tests := []struct {
		name, event, source string
		want                delivery.Outcome
	}{
		{"converted", `{` + base + `}`, "web", delivery.Converted},
		{"other source", `{` + base + `}`, "crm", delivery.FilteredSource},
		{"not matched", `{"type":"track","event":"Other"}`, "web", delivery.NotMatched},
		{"integrations: destination false", `{` + base + `,"integrations":{"LinkedIn Conversions API":false}}`, "web", delivery.FilteredIntegrations},
		{"integrations: All false", `{` + base + `,"integrations":{"All":false}}`, "web", delivery.FilteredIntegrations},
		{"integrations: All false but destination true", `{` + base + `,"integrations":{"All":false,"LinkedIn Conversions API":true}}`, "web", delivery.Converted},
		{"integrations: destination object", `{` + base + `,"integrations":{"All":false,"LinkedIn Conversions API":{}}}`, "web", delivery.Converted},
		{"integrations: Segment.io only", `{` + base + `,"integrations":{"Segment.io":true}}`, "web", delivery.Converted},
		{"consent granted", `{` + base + `,"context":{"consent":{"categoryPreferences":{"Advertising":true}}}}`, "web", delivery.Converted},
		{"consent denied", `{` + base + `,"context":{"consent":{"categoryPreferences":{"Advertising":false}}}}`, "web", delivery.FilteredConsent},
		{"consent missing category", `{` + base + `,"context":{"consent":{"categoryPreferences":{"Analytics":true}}}}`, "web", delivery.FilteredConsent},
		{"consent not boolean", `{` + base + `,"context":{"consent":{"categoryPreferences":{"Advertising":"yes"}}}}`, "web", delivery.FilteredConsent},
		{"consent preferences absent", `{` + base + `,"context":{"consent":{}}}`, "web", delivery.Converted},
		{"consent preferences null", `{` + base + `,"context":{"consent":{"categoryPreferences":null}}}`, "web", delivery.Converted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := p.Convert(context.Background(), ev(t, tt.event), tt.source, now, nil, nil)
			if res[0].Outcome != tt.want {
				t.Errorf("outcome %s (%v), want %s", res[0].Outcome, res[0].Err, tt.want)
			}
		})
	}
}

type graph struct{ c identity.Captured }

func (g graph) Enrich(_ context.Context, _ event.Value, _ string, have identity.Captured) identity.Captured {
	if have.LiFatID == "" {
		have.LiFatID, have.LiFatIDFrom = g.c.LiFatID, "graph"
	}
	if have.Email == "" {
		have.Email, have.EmailFrom = g.c.Email, "graph"
	}
	return have
}

func TestConvertEnrichment(t *testing.T) {
	p := plan(t, signUp)
	// li_fat_id parsed from the page URL; no email anywhere.
	e := ev(t, `{"type":"track","event":"Sign Up","timestamp":"2026-09-01T10:00:00Z","context":{"page":{"url":"https://x.example/?utm=a&li_fat_id=123456#f"}}}`)
	res := p.Convert(context.Background(), e, "web", now, nil, nil)
	if res[0].Outcome != delivery.Converted || res[0].Payload.Enriched["linkedInUUID"] != "context.page.url" || payload(t, res[0]).User.UserIDs[0].IDValue != "123456" {
		t.Fatalf("%+v", res[0])
	}
	// Server-side event with only a userId: both from the graph.
	e = ev(t, `{"type":"track","event":"Sign Up","userId":"u1","timestamp":"2026-09-01T10:00:00Z"}`)
	hash, _ := capi.HashEmail("ann@example.com")
	res = p.Convert(context.Background(), e, "web", now, graph{identity.Captured{LiFatID: "777", Email: hash}}, nil)
	ids := payload(t, res[0]).User.UserIDs
	if res[0].Outcome != delivery.Converted || len(ids) != 2 || ids[0].IDValue != hash || ids[1].IDValue != "777" {
		t.Fatalf("%+v", res[0])
	}
	// Without any identifier the event is invalid with Segment's message.
	res = p.Convert(context.Background(), ev(t, `{"type":"track","event":"Sign Up","timestamp":"2026-09-01T10:00:00Z"}`), "web", now, nil, nil)
	if res[0].Outcome != delivery.Invalid || !strings.Contains(res[0].Err.Error(), "One of email or LinkedIn UUID or Acxiom ID or Oracle ID is required.") {
		t.Errorf("%+v", res[0])
	}
}

func TestBuildRequestsGrouping(t *testing.T) {
	p := plan(t, signUp+`      - name: Page
        trigger: 'type = "page"'
        conversion_rule: {id: 456}
        fields: {enable_batching: false}
`)
	var ps []delivery.Payload
	for _, s := range []string{
		`{"type":"track","event":"Sign Up","messageId":"a","timestamp":"2026-09-01T10:00:00Z","properties":{"li_fat_id":"1"}}`,
		`{"type":"page","messageId":"b","timestamp":"2026-09-01T10:00:00Z","properties":{"li_fat_id":"2"}}`,
		`{"type":"track","event":"Sign Up","messageId":"c","timestamp":"2026-09-01T10:00:00Z","properties":{"li_fat_id":"3"}}`,
	} {
		r := p.Convert(context.Background(), ev(t, s), "web", now, nil, nil)[0]
		ps = append(ps, r.Payload)
	}
	reqs, err := p.Format.Requests(ps)
	if err != nil {
		t.Fatal(err)
	}
	batch := func(i int) bool { return reqs[i].Value.(capi.Request).Batch }
	if len(reqs) != 2 || !batch(0) || len(reqs[0].Items) != 2 || reqs[0].Items[1] != 2 || batch(1) || reqs[1].Items[0] != 1 {
		t.Fatalf("%+v", reqs)
	}
}

// BenchmarkConvert is trigger evaluation plus mapping plus validation of a
// typical browser track event with an 8-field mapping (issue goal: trigger +
// mapping under 5 µs and 20 allocations; conversion building is extra).
func BenchmarkConvert(b *testing.B) {
	p := plan(b, `      - name: Form
        trigger: 'type = "track" and match(context.page.url, "https://www.example.com/*")'
        conversion_rule: {id: 22833300}
        fields:
          conversionHappenedAt: {"@path": "$.properties.timestamp"}
          conversionValue: {currencyCode: USD, amount: "0"}
          eventId: {"@path": "$.messageId"}
          email: {"@path": "$.properties.hashedEmail"}
          linkedInUUID: {"@path": "$.properties.li_fat_id"}
          userInfo:
            firstName: {"@path": "$.properties.firstName"}
            lastName: {"@path": "$.properties.lastName"}
            companyName: {"@path": "$.properties.company"}
`)
	e := ev(b, `{"type":"track","event":"Sign Up","messageId":"ajs-next-1788258896789-5b1c2f3e",
 "properties":{"hashedEmail":"55e79200c1635b37ad31a378c39feb12f120f116625093a19bc32fff15041149",
   "firstName":"John","lastName":"Doe","title":"Engineer","company":"Acme Inc","countryCode":"US",
   "li_fat_id":"123456","timestamp":1788258896789},
 "context":{"page":{"url":"https://www.example.com/signup?li_fat_id=123456"}}}`)
	ctx := context.Background()
	at := time.UnixMilli(1788258900000)
	b.ReportAllocs()
	for b.Loop() {
		if r := p.Convert(ctx, e, "web", at, nil, nil); r[0].Outcome != delivery.Converted {
			b.Fatal(r[0].Err)
		}
	}
}

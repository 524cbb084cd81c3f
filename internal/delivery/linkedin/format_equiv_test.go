package linkedin

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/identity"
	capi "github.com/capstan-gw/capstan/internal/linkedin"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/*.golden from the code as it is")

// passthrough maps every action field from properties.<field>, so that an
// event's properties are the mapping's output as given (missing ones are
// Undefined).
const passthrough = `{
	"conversionHappenedAt": {"@path": "$.properties.conversionHappenedAt"},
	"conversionValue": {"@path": "$.properties.conversionValue"},
	"eventId": {"@path": "$.properties.eventId"},
	"email": {"@path": "$.properties.email"},
	"linkedInUUID": {"@path": "$.properties.linkedInUUID"},
	"acxiomID": {"@path": "$.properties.acxiomID"},
	"oracleID": {"@path": "$.properties.oracleID"},
	"userInfo": {"@path": "$.properties.userInfo"},
	"externalIds": {"@path": "$.properties.externalIds"},
	"enable_batching": {"@path": "$.properties.enable_batching"},
	"batch_size": {"@path": "$.properties.batch_size"},
	"onMappingSave": {"@path": "$.properties.onMappingSave"}
}`

// equivOutputs are mapping outputs (as passthrough's properties) of every
// shape the builder reads: valid, invalid at each stage, each field of
// each JSON type.
var equivOutputs = []string{
	`{}`,
	`{"conversionHappenedAt":1788258896789,"conversionValue":{"currencyCode":"USD","amount":"0"},"eventId":"ajs-next-1788258896789-5b1c2f3e","email":"55e79200c1635b37ad31a378c39feb12f120f116625093a19bc32fff15041149","linkedInUUID":"123456","userInfo":{"firstName":"John","lastName":"Doe","companyName":"Acme Inc","title":"Engineer","countryCode":"US"},"enable_batching":true,"batch_size":5000,"onMappingSave":{"outputs":{"id":"22833300","name":"CAPI-Page-View"}}}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"  Jane.Doe@Example.com "}`,
	`{"conversionHappenedAt":"1788258896789","linkedInUUID":"  "}`,
	`{"conversionHappenedAt":"  ","email":"a@b.c"}`,
	`{"conversionHappenedAt":null,"email":"a@b.c"}`,
	`{"conversionHappenedAt":true,"email":"a@b.c"}`,
	`{"conversionHappenedAt":{},"email":"a@b.c"}`,
	`{"conversionHappenedAt":[1],"email":"a@b.c"}`,
	`{"conversionHappenedAt":1.7882588967890e12,"email":"a@b.c"}`,
	`{"conversionHappenedAt":1788258896789.5,"email":"a@b.c"}`,
	`{"conversionHappenedAt":"garbage","email":"a@b.c"}`,
	`{"conversionHappenedAt":"2020-01-01T00:00:00Z","email":"a@b.c"}`,
	`{"conversionHappenedAt":"2030-01-01T00:00:00Z","email":"a@b.c"}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z"}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"","linkedInUUID":""}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"\ufeff","linkedInUUID":"\ufeff"}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":true,"linkedInUUID":5}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","linkedInUUID":12345678901234567890,"acxiomID":"ax","oracleID":7}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","conversionValue":{"currencyCode":"usd","amount":49.90}}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","conversionValue":{"currencyCode":" eur ","amount":1.5e3}}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","conversionValue":{"currencyCode":"USD","amount":25e-1}}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","conversionValue":{"currencyCode":"USD","amount":-3}}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","conversionValue":{"currencyCode":"USD","amount":"1,000.50"}}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","conversionValue":{"currencyCode":"USD","amount":" 12.00 "}}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","conversionValue":{"currencyCode":"US","amount":"1"}}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","conversionValue":{"currencyCode":"USD"}}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","conversionValue":{"amount":"5"}}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","conversionValue":{"currencyCode":"","amount":null}}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","conversionValue":{"currencyCode":true,"amount":{}}}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","conversionValue":"USD 5"}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","conversionValue":[]}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","eventId":" "}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","eventId":42.0}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","eventId":{}}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","userInfo":{"firstName":" Jane ","lastName":"Doe","countryCode":"fr"}}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","userInfo":{"firstName":"Jane","lastName":"Doe","countryCode":"France"}}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","userInfo":{"companyName":"Acme"}}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","userInfo":{"firstName":1,"lastName":false,"title":[]}}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","userInfo":{"firstName":null,"lastName":"  "}}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","userInfo":"Jane"}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","externalIds":"  ext-1 "}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","externalIds":["", null, " ext-2", "ext-3", 4]}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","externalIds":[true, {}, "x"]}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","externalIds":17}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","externalIds":{}}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","enable_batching":"true","batch_size":"10"}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","enable_batching":" false ","batch_size":" 7 "}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","enable_batching":"yes"}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","enable_batching":1}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","enable_batching":true,"batch_size":0}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","enable_batching":true,"batch_size":2.5}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","enable_batching":true,"batch_size":1e4}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","enable_batching":true,"batch_size":true}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","batch_size":null,"enable_batching":null}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","onMappingSave":{"outputs":{"id":22833301}}}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","onMappingSave":{"outputs":{"id":" urn:li:llaPartnerConversion:5 "}}}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","onMappingSave":{"outputs":{"id":"abc"}}}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","onMappingSave":{"outputs":{"id":true}}}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","onMappingSave":{"outputs":"22833300"}}`,
	`{"conversionHappenedAt":"2026-09-01T11:00:00Z","email":"a@b.c","onMappingSave":[{"outputs":{"id":"1"}}]}`,
	`{"conversionValue":{"amount":1},"userInfo":{"title":"CTO"},"email":{},"externalIds":[[]]}`,
}

// equivEvents are whole events for LinkedIn's default mapping.
var equivEvents = []string{
	`{"type":"track","event":"Order Completed","messageId":"m1","timestamp":"2026-09-01T11:00:00Z","userId":"u1","anonymousId":"a1","properties":{"revenue":49.90,"currency":"usd","li_fat_id":"lfi-1"},"context":{"traits":{"email":"Jane@Example.com","first_name":"Jane","last_name":"Doe","company":"Acme","title":"CTO","country":"US"}}}`,
	`{"type":"track","event":"Sign Up","messageId":"m2","timestamp":"2026-09-01T11:00:00Z","anonymousId":"a2","context":{"page":{"url":"https://x.example/?li_fat_id=from-url"}}}`,
	`{"type":"page","messageId":"m3","timestamp":"2026-09-01T11:00:00Z","userId":42,"properties":{"revenue":"12.5","currency":"EUR"},"traits":{"email":"n@example.com"}}`,
	`{"type":"identify","messageId":"m4","timestamp":"2020-09-01T11:00:00Z","userId":"u4","traits":{"email":"old@example.com"}}`,
	`{"type":"track","event":"x","messageId":"m5","originalTimestamp":"2026-09-01T11:00:00Z","properties":{"revenue":-1,"currency":"USD"},"context":{"traits":{"email":true}}}`,
}

// TestBuildEquivalence: the payloads (conversion JSON, batching, Enriched,
// IDs, Happened) and errors that Build makes from varied mapping outputs,
// with and without identifiers to enrich from, are byte for byte those of
// testdata/build_equivalence.golden, which the map-based Build of main at
// b00c32c wrote (Build now reads the mapping's output without a map).
func TestBuildEquivalence(t *testing.T) {
	f, err := NewFormat(FormatConfig{BatchSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	through, err := delivery.NewSegmentPlan("pass", []byte(passthrough), "", "", f)
	if err != nil {
		t.Fatal(err)
	}
	ruled, err := delivery.NewSegmentPlan("ruled", []byte(passthrough), "", "22833399", f)
	if err != nil {
		t.Fatal(err)
	}
	def, err := delivery.NewSegmentPlan("default", capi.DefaultMapping(), "", "22833300", f)
	if err != nil {
		t.Fatal(err)
	}
	idss := []identity.Captured{
		{},
		{LiFatID: "graph-lfi", LiFatIDFrom: identity.FromUser},
		{Email: "55e79200c1635b37ad31a378c39feb12f120f116625093a19bc32fff15041149", EmailFrom: identity.FromAnonymous},
		{LiFatID: "cookie-lfi", LiFatIDFrom: "cookie capstan_lfi", Email: "graph@example.com", EmailFrom: identity.FromUser},
	}
	var out bytes.Buffer
	run := func(p *delivery.Plan, name, evText string) {
		e := ev(t, evText)
		for i, ids := range idss {
			fmt.Fprintf(&out, "== %s %s ids=%d\n", name, evText, i)
			have := ids
			for _, r := range p.Convert(context.Background(), e, "web", now, nil, &have) {
				writeResult(t, &out, r)
			}
		}
	}
	for _, o := range equivOutputs {
		ev := `{"type":"track","event":"x","properties":` + o + `}`
		run(through, "passthrough", ev)
		run(ruled, "passthrough+rule", ev)
	}
	for _, e := range equivEvents {
		run(def, "default", e)
	}
	path := "testdata/build_equivalence.golden"
	if *updateGolden {
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.Bytes(); !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("line %d differs:\n got %s\nwant %s", i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("got %d lines, want %d", len(gl), len(wl))
	}
}

// TestActionFieldsOfValue: the action fields read from a mapping's output
// are those capi.ActionFieldsOf reads from its plain Go values.
func TestActionFieldsOfValue(t *testing.T) {
	for _, o := range append(equivOutputs, `[1]`, `"x"`, `null`,
		`{"conversionValue":{"currencyCode":null,"amount":"1"},"userInfo":{"firstName":"a","extra":1},"externalIds":[],"onMappingSave":{"outputs":[]}}`) {
		v := ev(t, o)
		m, _ := v.Any().(map[string]any)
		if want, got := capi.ActionFieldsOf(m), actionFields(v); !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", o, got, want)
		}
	}
}

func writeResult(t *testing.T, out *bytes.Buffer, r delivery.Result) {
	t.Helper()
	fmt.Fprintf(out, "outcome=%s", r.Outcome)
	if r.Err != nil {
		fmt.Fprintf(out, " err=%q", r.Err.Error())
	}
	p := r.Payload
	keys := make([]string, 0, len(p.Enriched))
	for k := range p.Enriched {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(out, " enriched[%s]=%q", k, p.Enriched[k])
	}
	if c, ok := p.Value.(*conversion); ok {
		js, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(out, " ids=%d happened=%d batching=%+v\n  %s", p.IDs, p.Happened.UnixMilli(), c.batching, js)
	} else if !p.Happened.IsZero() {
		fmt.Fprintf(out, " happened=%s", p.Happened.Format(time.RFC3339))
	}
	out.WriteString("\n")
}

package migrate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/capstan-gw/capstan/internal/config"
)

// load parses a migrated file as capstan serve would, with every
// placeholder of res set; anything else unset.
func load(t testing.TB, res *Result) *config.Config {
	t.Helper()
	vars := map[string]string{"CAPSTAN_SECRET_KEY": "bWlncmF0ZS10ZXN0LWtleS0zMi1ieXRlcy1sb25nLS0="}
	for _, p := range res.Placeholders {
		vars[p.Env] = "set-" + p.Env
	}
	cfg, err := config.Parse("migrated.yaml", res.YAML, func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		t.Fatalf("the migrated file does not load: %v\n%s", err, res.YAML)
	}
	return cfg
}

// sub is a subscription of a test export with the given trigger, mapping
// and fields merged in.
func sub(name, trigger, mapping string) string {
	return fmt.Sprintf(`{"id": "sub_%s", "name": %q, "enabled": true, "partnerAction": "streamConversion", "subscribe": %q, "mapping": %s}`,
		strings.ReplaceAll(strings.ToLower(name), " ", "_"), name, trigger, mapping)
}

// dest is a LinkedIn destination of a test export.
func dest(name, settings string, subs ...string) string {
	return fmt.Sprintf(`{"id": "dst_%s", "name": %q, "type": "linkedin-conversions", "consentCategories": ["Advertising"], "settings": %s, "subscriptions": [%s]}`,
		strings.ReplaceAll(strings.ToLower(name), " ", "_"), name, settings, strings.Join(subs, ","))
}

const (
	oauth   = `{"oauth": {"access_token": "AQV-secret-access", "refresh_token": "AQW-secret-refresh"}}`
	signUp  = `type = "track" and event = "Sign Up"`
	minimal = `{"conversionHappenedAt": {"@path": "$.timestamp"}, "email": {"@path": "$.context.traits.email"}, "onMappingSave": {"outputs": {"id": "22833302"}}}`
)

func export(dests ...string) []byte {
	return []byte(`{"sources": [{"id": "src_web", "name": "Website", "writeKeys": ["wk_web"]}], "destinations": [` + strings.Join(dests, ",") + `]}`)
}

func TestSegmentTranslates(t *testing.T) {
	res, err := Segment(export(dest("LinkedIn Conversions API", oauth, sub("Sign Up", signUp, minimal))), Options{From: "x.json"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) != 0 || res.Destinations != 1 || res.Mappings != 1 {
		t.Fatalf("problems %v, %d destinations, %d mappings", res.Problems, res.Destinations, res.Mappings)
	}
	cfg := load(t, res)
	d := cfg.Destinations[0]
	m := d.Mappings[0]
	if d.Name != "linkedin" || m.Name != "Sign Up" || m.Trigger != signUp || m.ConversionRule.ID != 22833302 {
		t.Errorf("destination %s mapping %+v", d.Name, m)
	}
	want := `{"conversionHappenedAt":{"@path":"$.timestamp"},"email":{"@path":"$.context.traits.email"},"onMappingSave":{"outputs":{"id":"22833302"}},` +
		`"conversionValue":null,"eventId":null,"enable_batching":null,"batch_size":null}`
	if string(m.Fields) != want {
		t.Errorf("fields %s\nwant   %s", m.Fields, want)
	}
	for _, s := range []string{"AQV-secret-access", "AQW-secret-refresh"} {
		if bytes.Contains(res.YAML, []byte(s)) {
			t.Errorf("secret %s copied:\n%s", s, res.YAML)
		}
	}
	if len(res.Placeholders) != 1 || res.Placeholders[0].Env != "LINKEDIN_ACCESS_TOKEN" || res.Placeholders[0].Path != "$.destinations[0].settings.oauth.access_token" {
		t.Errorf("placeholders %+v", res.Placeholders)
	}
	if d.Auth.AccessToken.Value() != "set-LINKEDIN_ACCESS_TOKEN" || d.Auth.RefreshToken != "" {
		t.Errorf("auth %+v", d.Auth)
	}
	// The mapping is in the file as the export writes it.
	if !bytes.Contains(res.YAML, []byte("fields: "+strings.TrimSuffix(minimal, "}"))) {
		t.Errorf("the export's mapping text is not in the file:\n%s", res.YAML)
	}
}

// TestSegmentSingleDestination: an export of one destination (its object at
// the top) without sources gets a source whose write key is a placeholder.
func TestSegmentSingleDestination(t *testing.T) {
	res, err := Segment([]byte(dest("LinkedIn CAPI (EU)", `{}`, sub("Sign Up", signUp, minimal))), Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := load(t, res)
	if len(cfg.Sources) != 1 || cfg.Sources[0].Name != "website" || cfg.Sources[0].WriteKey.Value() != "set-WEBSITE_WRITE_KEY" {
		t.Errorf("sources %+v", cfg.Sources)
	}
	if cfg.Destinations[0].Name != "linkedin-capi-eu" || len(res.Notes) == 0 {
		t.Errorf("destination %s, notes %v", cfg.Destinations[0].Name, res.Notes)
	}
	if got := res.Placeholders[1]; got.Env != "LINKEDIN_CAPI_EU_ACCESS_TOKEN" || got.Path != "" {
		t.Errorf("placeholder %+v: the export had no token", got)
	}
}

// TestSegmentProblems: each part capstan cannot take is named by its JSON
// path; the rest is written and loads.
func TestSegmentProblems(t *testing.T) {
	hook := func(extra string) string {
		return `{"conversionHappenedAt": {"@path": "$.timestamp"}, "onMappingSave": {` + extra + `}}`
	}
	tests := []struct {
		name     string
		export   []byte
		path     string
		msg      string
		mappings int
	}{
		{"another destination type", export(`{"name": "Facebook", "type": "facebook-conversions-api", "subscriptions": []}`, dest("LinkedIn", `{}`, sub("A", signUp, minimal))),
			"$.destinations[0].type", `type "facebook-conversions-api" is not a LinkedIn Conversions API destination`, 1},
		{"no type", export(`{"name": "Mystery", "subscriptions": []}`), "$.destinations[0]", "no type", 0},
		{"catalog slug", export(`{"name": "LinkedIn", "metadata": {"slug": "actions-linkedin-conversions"}, "subscriptions": [` + sub("A", signUp, minimal) + `]}`), "", "", 1},
		{"another action", export(dest("LinkedIn", `{}`, strings.Replace(sub("Audience", signUp, minimal), "streamConversion", "syncAudience", 1), sub("A", signUp, minimal))),
			"$.destinations[0].subscriptions[0].partnerAction", `action "syncAudience" is not supported`, 1},
		{"no trigger", export(dest("LinkedIn", `{}`, sub("A", "", minimal), sub("B", signUp, minimal))), "$.destinations[0].subscriptions[0]", "no trigger", 1},
		{"bad trigger", export(dest("LinkedIn", `{}`, sub("A", `type = "track" and`, minimal), sub("B", signUp, minimal))),
			"$.destinations[0].subscriptions[0].subscribe", "trigger column", 1},
		{"mapping not an object", export(dest("LinkedIn", `{}`, sub("A", signUp, `[1]`), sub("B", signUp, minimal))),
			"$.destinations[0].subscriptions[0].mapping", "not a JSON object", 1},
		{"liquid", export(dest("LinkedIn", `{}`, sub("A", signUp, `{"email": {"@liquid": "{{x}}"}, "onMappingSave": {"outputs": {"id": 1}}}`), sub("B", signUp, minimal))),
			"$.destinations[0].subscriptions[0].mapping.email", "@liquid", 1},
		{"unknown directive deep", export(dest("LinkedIn", `{}`, sub("A", signUp, `{"userInfo": {"firstName": {"@Path": "$.x"}}}`), sub("B", signUp, minimal))),
			"$.destinations[0].subscriptions[0].mapping.userInfo.firstName", "unknown directive @Path", 1},
		{"no conversion rule", export(dest("LinkedIn", `{}`, sub("A", signUp, hook(`"inputs": {"adAccountId": "1"}`)), sub("B", signUp, minimal))),
			"$.destinations[0].subscriptions[0].mapping.onMappingSave", "no conversion rule", 1},
		{"bad rule id", export(dest("LinkedIn", `{}`, sub("A", signUp, hook(`"outputs": {"id": "abc"}`)))),
			"$.destinations[0].subscriptions[0].mapping.onMappingSave.outputs.id", `"abc" is not a conversion rule id`, 0},
		{"two ad accounts", export(dest("LinkedIn", `{}`, sub("A", signUp, hook(`"inputs": {"adAccountId": "urn:li:sponsoredAccount:1"}, "outputs": {"id": 5}`)),
			sub("B", signUp, hook(`"inputs": {"adAccountId": "2"}, "outputs": {"id": 6}`)))),
			"$.destinations[0].subscriptions[1].mapping.onMappingSave.inputs.adAccountId", "ad account 2 differs from 1", 1},
		{"bad campaign", export(dest("LinkedIn", `{}`, sub("A", signUp, hook(`"inputs": {"adAccountId": "1", "campaignId": ["urn:li:sponsoredCampaign:x"]}, "outputs": {"id": 5}`)))),
			"$.destinations[0].subscriptions[0].mapping.onMappingSave.inputs.campaignId[0]", "not a campaign id", 0},
		{"create without ad account", export(dest("LinkedIn", `{}`, sub("A", signUp, hook(`"inputs": {"name": "R", "conversionType": "LEAD"}`)))),
			"$.destinations[0].subscriptions[0].mapping.onMappingSave.inputs.adAccountId", "no ad account", 0},
		{"unknown conversion type", export(dest("LinkedIn", `{}`, sub("A", signUp, hook(`"inputs": {"adAccountId": "1", "name": "R", "conversionType": "MEETING"}`)))),
			"$.destinations[0].subscriptions[0].mapping.onMappingSave.inputs.conversionType", `unknown conversion type "MEETING"`, 0},
		{"unknown setting", export(dest("LinkedIn", `{"region": "eu"}`, sub("A", signUp, minimal))), "$.destinations[0].settings.region", `setting "region" has no capstan equivalent`, 1},
		{"secret setting", export(dest("LinkedIn", `{"apiKey": "k-123"}`, sub("A", signUp, minimal))), "$.destinations[0].settings.apiKey", "secret setting", 1},
		{"odd setting name", export(dest("LinkedIn", `{"a b": 1}`, sub("A", signUp, minimal))), "$.destinations[0].settings['a b']", "no capstan equivalent", 1},
		{"bad origin", []byte(`{"sources": [{"id": "s", "name": "Web", "writeKeys": ["k"], "allowedOrigins": ["https://x.example/path"]}], "destinations": [` + dest("LinkedIn", `{}`, sub("A", signUp, minimal)) + `]}`),
			"$.sources[0].allowedOrigins[0]", "is not an origin", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Segment(tt.export, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if tt.path == "" {
				if len(res.Problems) != 0 {
					t.Errorf("problems %v", res.Problems)
				}
			} else if len(res.Problems) == 0 || res.Problems[0].Path != tt.path || !strings.Contains(res.Problems[0].Msg, tt.msg) {
				t.Errorf("problems %v; want the first at %s saying %q", res.Problems, tt.path, tt.msg)
			}
			if res.Mappings != tt.mappings {
				t.Errorf("%d mappings, want %d", res.Mappings, tt.mappings)
			}
			cfg := load(t, res)
			n := 0
			for _, d := range cfg.Destinations {
				n += len(d.Mappings)
			}
			if n != tt.mappings {
				t.Errorf("the file has %d mappings, want %d", n, tt.mappings)
			}
			for _, s := range []string{"k-123"} {
				if bytes.Contains(res.YAML, []byte(s)) {
					t.Errorf("secret copied:\n%s", res.YAML)
				}
			}
		})
	}
}

// TestSegmentKeepsText: strings YAML or ${VAR} expansion would read
// otherwise (dollars, \u escapes, HTML characters, quotes) come back from
// the file exactly as the export has them.
func TestSegmentKeepsText(t *testing.T) {
	trigger := `type = "track" and event = "Cost ${PRICE} 'quoted' $$"`
	mapping := `{
  "eventId": {"@template": "${HOME}-$$-{{messageId}}-caf\u00e9 \ud83d\ude00 <&> \"q\" 'a'"},
  "conversionValue": {"currencyCode": "USD", "amount": 1.50},
  "batch_size": 100, "$weird key${X}": "$.x",
  "conversionHappenedAt": {"@path": "$.timestamp"},
  "email": {"@path": "$.context.traits.email"}, "onMappingSave": {"outputs": {"id": 7}}
}`
	res, err := Segment(export(dest("LinkedIn", `{}`, sub("Cost ${X} 'n'", trigger, mapping))), Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := load(t, res)
	m := cfg.Destinations[0].Mappings[0]
	if m.Trigger != trigger || m.Name != "Cost ${X} 'n'" {
		t.Errorf("trigger %q name %q", m.Trigger, m.Name)
	}
	var want, got []any
	for doc, into := range map[string]*[]any{mapping: &want, string(m.Fields): &got} {
		dec := json.NewDecoder(strings.NewReader(doc))
		dec.UseNumber()
		for {
			tok, err := dec.Token()
			if err != nil {
				break
			}
			*into = append(*into, tok)
		}
	}
	want = append(want[:len(want)-1], "enable_batching", nil, "}") // the null added for the left-out default
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("fields read back as\n%v\nwant\n%v", got, want)
	}
	if !bytes.Contains(m.Fields, []byte(`"amount":1.50`)) {
		t.Errorf("the number 1.50 lost its text: %s", m.Fields)
	}
}

// TestSegmentNames: capstan names are slugs, unique, and the placeholders
// follow them.
func TestSegmentNames(t *testing.T) {
	res, err := Segment(export(dest("LinkedIn - EU!", `{}`, sub("A", signUp, minimal), sub("A", signUp, minimal)),
		dest("linkedin eu", `{}`, sub("", signUp, minimal))), Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := load(t, res)
	if cfg.Destinations[0].Name != "linkedin-eu" || cfg.Destinations[1].Name != "linkedin-eu-2" {
		t.Errorf("names %s, %s", cfg.Destinations[0].Name, cfg.Destinations[1].Name)
	}
	if m := cfg.Destinations[0].Mappings; m[0].Name != "A" || m[1].Name != "A (2)" {
		t.Errorf("mapping names %q %q", m[0].Name, m[1].Name)
	}
	if m := cfg.Destinations[1].Mappings[0]; m.Name != "sub_" {
		t.Errorf("unnamed subscription: %q", m.Name)
	}
	if res.Placeholders[0].Env != "LINKEDIN_EU_ACCESS_TOKEN" || res.Placeholders[1].Env != "LINKEDIN_EU_2_ACCESS_TOKEN" {
		t.Errorf("placeholders %+v", res.Placeholders)
	}
}

// TestSegmentDisabled: a disabled destination's and subscription's mappings
// are written disabled.
func TestSegmentDisabled(t *testing.T) {
	d := strings.Replace(dest("LinkedIn", `{}`, sub("A", signUp, minimal)), `"consentCategories"`, `"enabled": false, "consentCategories"`, 1)
	s := strings.Replace(sub("B", signUp, minimal), `"enabled": true`, `"enabled": false`, 1)
	res, err := Segment(export(d, dest("Other", `{}`, s, sub("C", signUp, minimal))), Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := load(t, res)
	got := []bool{cfg.Destinations[0].Mappings[0].Disabled, cfg.Destinations[1].Mappings[0].Disabled, cfg.Destinations[1].Mappings[1].Disabled}
	if fmt.Sprint(got) != "[true true false]" {
		t.Errorf("disabled %v", got)
	}
}

func TestSegmentSyntaxErrors(t *testing.T) {
	tests := []struct {
		text, want string
	}{
		{"", "1:1: the export is empty"},
		{"  \n ", "1:1: the export is empty"},
		{"null", "1:1: the export is null"},
		{"[]", "1:1: the export: expected an object"},
		{"{\n\"destinations\": [\n  {\"name\": 1}]}", "3:12: destinations.name: expected a string, got a JSON number"},
		{"{\"destinations\": [}", "1:19: invalid JSON"},
		{"{\"destinations\": []}", "1:1: the export has no destination"},
		{"{\"name\": \"x\"}", `1:1: not a Segment destination export`},
		{"{\"destinations\": [{\"subscriptions\": [{\"mapping\": 5}]}]}", "not a JSON object"},
	}
	for _, tt := range tests {
		res, err := Segment([]byte(tt.text), Options{})
		var se *SyntaxError
		if tt.want == "not a JSON object" {
			// A mapping of the wrong type is a problem, not a syntax error.
			if err != nil || len(res.Problems) == 0 {
				t.Errorf("%q: %v %v", tt.text, err, res)
			}
			continue
		}
		if !errors.As(err, &se) || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%q: %v; want %s", tt.text, err, tt.want)
		}
	}
}

// FuzzSegment: any input gives a *SyntaxError or a file that loads.
func FuzzSegment(f *testing.F) {
	f.Add(export(dest("LinkedIn", oauth, sub("Sign Up", signUp, minimal))))
	f.Add([]byte(dest("X", `{"a": 1}`, sub("B", `type = "page"`, `{"email": {"@if": {"exists": {"@path": "$.a"}, "then": "x", "else": "y"}}}`))))
	f.Add([]byte(`{"destinations": [{"type": "linkedin-conversions", "subscriptions": [{"partnerAction": "streamConversion", "subscribe": "type = \"track\"", "mapping": {"eventId": "\u0024{X}"}}]}]}`))
	f.Fuzz(func(t *testing.T, text []byte) {
		res, err := Segment(text, Options{})
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("%q: %v", text, err)
			}
			return
		}
		load(t, res)
	})
}

// TestSegmentOrigins: every origin that is not one is named and left out;
// the others are kept in order.
func TestSegmentOrigins(t *testing.T) {
	text := `{"sources": [{"id": "s", "name": "Web", "writeKeys": ["k"],
	  "allowedOrigins": ["https://a.example", "https://x.example/path", "not an origin", "https://b.example:8443"]}],
	  "destinations": [` + dest("LinkedIn", `{}`, sub("A", signUp, minimal)) + `]}`
	res, err := Segment([]byte(text), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) != 2 || res.Problems[0].Path != "$.sources[0].allowedOrigins[1]" || res.Problems[1].Path != "$.sources[0].allowedOrigins[2]" {
		t.Errorf("problems %v", res.Problems)
	}
	if got := load(t, res).Sources[0].AllowedOrigins; fmt.Sprint(got) != "[https://a.example https://b.example:8443]" {
		t.Errorf("origins %v", got)
	}
}

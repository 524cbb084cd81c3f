package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/capstan-gw/capstan/internal/config"
)

// The realistic export of testdata/migrate: the seed's Page View and Form
// Submission mappings and four more actions (directives, batching off, a
// rule to create, campaigns, a disabled subscription), two sources and
// OAuth tokens.
var (
	migrateExport = filepath.Join("testdata", "migrate", "segment-export.json")
	migrateEvents = filepath.Join("testdata", "migrate", "events.json")
)

// The secrets of the export, which must appear nowhere in the output.
var exportSecrets = []string{"AQV8xJv-not-a-real-access-token-3f9a", "AQW2kq-not-a-real-refresh-token-81bd"}

// migrateEnv sets the variables the migrated file reads.
func migrateEnv(t *testing.T) {
	t.Setenv("CAPSTAN_SECRET_KEY", "bWlncmF0ZS10ZXN0LWtleS0zMi1ieXRlcy1sb25nLS0=")
	t.Setenv("LINKEDIN_CAPI_TEST_CSE_ACCESS_TOKEN", "token-from-the-environment")
}

// TestMigrateSegment: the export becomes the golden YAML on standard
// output, with the placeholders and the refresh token named on standard
// error, no secret anywhere, and exit code 0.
func TestMigrateSegment(t *testing.T) {
	out, stderr, code := capstan(t, "migrate", "segment", "--from", migrateExport)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	golden(t, "../migrate/segment-export.golden.yaml", out)
	for _, s := range exportSecrets {
		if strings.Contains(out, s) || strings.Contains(stderr, s) {
			t.Errorf("a token of the export was copied:\nstdout:\n%s\nstderr:\n%s", out, stderr)
		}
	}
	for _, want := range []string{
		"${LINKEDIN_CAPI_TEST_CSE_ACCESS_TOKEN}", "$.destinations[0].settings.oauth.access_token",
		"${CAPSTAN_SECRET_KEY}", "$.destinations[0].settings.oauth.refresh_token: not copied",
		"migrated 1 destination(s) with 6 mapping(s) to standard output",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, stderr)
		}
	}
}

// exportedSubscription is a subscription of the export as the test reads it.
type exportedSubscription struct {
	Name      string          `json:"name"`
	Enabled   bool            `json:"enabled"`
	Subscribe string          `json:"subscribe"`
	Mapping   json.RawMessage `json:"mapping"`
}

func readExport(t *testing.T) []exportedSubscription {
	t.Helper()
	b, err := os.ReadFile(migrateExport)
	if err != nil {
		t.Fatal(err)
	}
	var exp struct {
		Destinations []struct {
			Subscriptions []exportedSubscription `json:"subscriptions"`
		} `json:"destinations"`
	}
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatal(err)
	}
	return exp.Destinations[0].Subscriptions
}

// migrated runs migrate segment --out into a temporary directory and
// returns the file's path.
func migrated(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "capstan.yaml")
	if _, stderr, code := capstan(t, "migrate", "segment", "--from", migrateExport, "--out", path); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	return path
}

// TestMigrateSegmentLoads: the written file passes capstan serve's
// validation (internal/config, the secret key required), and each mapping
// has the subscription's trigger, its fields with the defaults it left out
// set to null, and the rule id its hook saved.
func TestMigrateSegmentLoads(t *testing.T) {
	path := migrated(t)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("written file: %v, mode %v; want 0600", err, fi.Mode())
	}
	if _, err := config.Load(path); err == nil || !strings.Contains(err.Error(), "environment variable") {
		t.Fatalf("loaded without its variables set: %v", err)
	}
	migrateEnv(t)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("the migrated file does not load: %v", err)
	}
	if err := cfg.RequireSecretKey(); err != nil {
		t.Fatal(err)
	}
	if got := cfg.Destinations[0].Auth.AccessToken.Value(); got != "token-from-the-environment" {
		t.Errorf("access token %q", got)
	}
	if len(cfg.Sources) != 2 || cfg.Sources[0].WriteKey.Value() != "wk_live_web_4f2a9c" || len(cfg.Sources[1].Keys()) != 2 {
		t.Errorf("sources %+v", cfg.Sources)
	}
	d := cfg.Destinations[0]
	if d.AdAccount != 508747394 || !reflect.DeepEqual(d.Sources, []string{"website", "backend-node"}) || !reflect.DeepEqual(d.ConsentCategories, []string{"Advertising"}) {
		t.Errorf("destination %s: ad account %d, sources %v, consent %v", d.Name, d.AdAccount, d.Sources, d.ConsentCategories)
	}
	subs := readExport(t)
	if len(d.Mappings) != len(subs) {
		t.Fatalf("%d mappings for %d subscriptions", len(d.Mappings), len(subs))
	}
	wantRules := []int64{22833300, 22833301, 22833302, 22833303, 0, 22833299}
	defaults := []string{"conversionHappenedAt", "conversionValue", "eventId", "email", "enable_batching", "batch_size"}
	for i, s := range subs {
		m := d.Mappings[i]
		if m.Name != s.Name || m.Trigger != s.Subscribe || m.Disabled == s.Enabled {
			t.Errorf("mapping %d: %q %q disabled %v; want %q %q enabled %v", i, m.Name, m.Trigger, m.Disabled, s.Name, s.Subscribe, s.Enabled)
		}
		if m.ConversionRule.ID != wantRules[i] {
			t.Errorf("%s: conversion rule %d, want %d", m.Name, m.ConversionRule.ID, wantRules[i])
		}
		// The fields: the export's keys and values in its order, then null
		// for each default field it has not.
		var want bytes.Buffer
		if err := json.Compact(&want, s.Mapping); err != nil {
			t.Fatal(err)
		}
		w := strings.TrimSuffix(want.String(), "}")
		for _, f := range defaults {
			if !bytes.Contains(want.Bytes(), []byte(`"`+f+`":`)) {
				w += `,"` + f + `":null`
			}
		}
		w += "}"
		if string(m.Fields) != w {
			t.Errorf("%s: fields\n%s\nwant\n%s", m.Name, m.Fields, w)
		}
	}
	if c := d.Mappings[4].ConversionRule.Create; c == nil || *c != (config.RuleCreate{Name: "Demo Requested (CAPI)", Type: "LEAD",
		AttributionType: "LAST_TOUCH_BY_CAMPAIGN", PostClickWindowDays: 30, ViewThroughWindowDays: 7}) {
		t.Errorf("Demo Requested: create %+v", c)
	}
	if got := d.Mappings[2].Campaigns; !reflect.DeepEqual(got, []int64{435901, 435902}) {
		t.Errorf("Sign Up: campaigns %v", got)
	}
}

// previewOut is capstan preview's output.
type previewOut struct {
	Requests []json.RawMessage `json:"requests"`
	Events   []struct {
		Index   int `json:"index"`
		Results []struct {
			Mapping string          `json:"mapping"`
			Outcome string          `json:"outcome"`
			Request *int            `json:"request"`
			Error   json.RawMessage `json:"error"`
		} `json:"results"`
	} `json:"events"`
}

func runPreview(t *testing.T, args ...string) previewOut {
	t.Helper()
	out, stderr, code := capstan(t, append([]string{"preview", "--now", now, "--event", migrateEvents}, args...)...)
	if code != 0 && code != 3 {
		t.Fatalf("preview %v: exit %d: %s", args, code, stderr)
	}
	var p previewOut
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("preview %v printed %q: %v", args, out, err)
	}
	return p
}

// perMapping is what one mapping made of the events: the requests, and for
// each event the outcome (with its error) or "" when the trigger did not
// match.
type perMapping struct {
	requests []string
	outcomes []string
}

func (p previewOut) of(mapping string) perMapping {
	var r perMapping
	seen := map[int]bool{}
	for _, ev := range p.Events {
		outcome := ""
		for _, res := range ev.Results {
			if res.Mapping != mapping && res.Mapping != "" {
				continue
			}
			if res.Mapping == "" && res.Outcome != "not_matched" {
				outcome = res.Outcome // filtered for the whole destination
				continue
			}
			if res.Mapping == "" {
				continue
			}
			outcome = res.Outcome + " " + string(res.Error)
			if res.Request != nil && !seen[*res.Request] {
				seen[*res.Request] = true
				r.requests = append(r.requests, string(p.Requests[*res.Request]))
			}
		}
		r.outcomes = append(r.outcomes, outcome)
	}
	return r
}

// TestMigrateSegmentPreviewMatches: for every action of the export,
// `capstan preview` on the migrated file gives the same LinkedIn requests,
// and the same outcome for every event, as `preview --mapping` on the
// exported subscription (its trigger and mapping as Segment has them).
func TestMigrateSegmentPreviewMatches(t *testing.T) {
	path := migrated(t)
	// The disabled subscription is compared too: enable it in a copy.
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(text, []byte("        disabled: true\n")) {
		t.Fatalf("the disabled subscription is not disabled:\n%s", text)
	}
	enabled := filepath.Join(filepath.Dir(path), "enabled.yaml")
	if err := os.WriteFile(enabled, bytes.ReplaceAll(text, []byte("        disabled: true\n"), nil), 0o600); err != nil {
		t.Fatal(err)
	}
	// Once capstan has created the rule of the mapping that has none yet,
	// that mapping sends with its id: a copy with the id in place of create.
	created := filepath.Join(filepath.Dir(path), "created.yaml")
	createRe := regexp.MustCompile(`conversion_rule:\n +create: \{[^\n]*\}\n`)
	if !createRe.Match(text) {
		t.Fatalf("no conversion_rule.create in the migrated file:\n%s", text)
	}
	withID := createRe.ReplaceAll(bytes.ReplaceAll(text, []byte("        disabled: true\n"), nil), []byte("conversion_rule: {id: 99123}\n"))
	if err := os.WriteFile(created, withID, 0o600); err != nil {
		t.Fatal(err)
	}
	migrateEnv(t)
	dir := t.TempDir()
	for _, pass := range []struct {
		name, config string
		min          int // requests the comparison must cover
	}{
		{"as exported", enabled, 5},
		{"rule created", created, 6},
	} {
		fromConfig := runPreview(t, "--config", pass.config, "--source", "website")
		compared := 0
		for i, s := range readExport(t) {
			t.Run(pass.name+"/"+s.Name, func(t *testing.T) {
				sub, _ := json.Marshal(map[string]any{"name": s.Name, "subscribe": s.Subscribe, "mapping": s.Mapping})
				file := filepath.Join(dir, fmt.Sprintf("sub-%d.json", i))
				if err := os.WriteFile(file, sub, 0o600); err != nil {
					t.Fatal(err)
				}
				args := []string{"--mapping", file}
				if pass.config == created && !bytes.Contains(s.Mapping, []byte(`"outputs"`)) {
					args = append(args, "--conversion-rule", "99123")
				}
				want := runPreview(t, args...).of(s.Name)
				got := fromConfig.of(s.Name)
				if !reflect.DeepEqual(got.outcomes, want.outcomes) {
					t.Errorf("outcomes per event:\nmigrated: %q\nSegment:  %q", got.outcomes, want.outcomes)
				}
				if !reflect.DeepEqual(got.requests, want.requests) {
					t.Errorf("requests:\nmigrated: %s\nSegment:  %s", got.requests, want.requests)
				}
				compared += len(want.requests)
			})
		}
		// Not vacuous: the events make requests of every action (of the
		// rule to create once it exists).
		if compared < pass.min {
			t.Errorf("%s: only %d requests compared, want at least %d", pass.name, compared, pass.min)
		}
	}
}

// TestMigrateSegmentErrors: usage errors exit 2 with the file, line and
// column of bad JSON; parts capstan cannot take are named by JSON path and
// exit 3, the rest still written.
func TestMigrateSegmentErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bad := write("bad.json", "{\n  \"destinations\": [\n    {\"name\": \"LinkedIn\",}\n  ]\n}\n")
	wrong := write("wrong.json", "{\"destinations\": {\"name\": \"LinkedIn\"}}")
	empty := write("empty.json", "")
	mixed := write("mixed.json", `{
  "destinations": [
    {"id": "dst_fb", "name": "Facebook Conversions API", "type": "facebook-conversions-api", "subscriptions": []},
    {"id": "dst_li", "name": "LinkedIn Conversions API", "type": "linkedin-conversions",
     "settings": {"oauth": {"access_token": "AQV-secret-1"}, "conversionRuleCache": true},
     "subscriptions": [
       {"name": "Liquid", "partnerAction": "streamConversion", "subscribe": "type = \"track\"",
        "mapping": {"conversionHappenedAt": {"@path": "$.timestamp"}, "email": {"@liquid": "{{ properties.email | downcase }}"},
                    "onMappingSave": {"outputs": {"id": "1"}}}},
       {"name": "Audience", "partnerAction": "updateAudience", "subscribe": "type = \"identify\"", "mapping": {}},
       {"name": "Mixed", "partnerAction": "streamConversion", "subscribe": "type = \"track\" and event = \"A\" or event = \"B\"",
        "mapping": {"onMappingSave": {"outputs": {"id": "2"}}}},
       {"name": "Good", "partnerAction": "streamConversion", "subscribe": "type = \"track\" and event = \"Sign Up\"",
        "mapping": {"conversionHappenedAt": {"@path": "$.timestamp"}, "email": {"@path": "$.context.traits.email"},
                    "onMappingSave": {"outputs": {"id": "22833302"}}}}
     ]}
  ]
}`)
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr []string
	}{
		{"no --from", []string{}, 2, []string{"--from is required"}},
		{"missing file", []string{"--from", filepath.Join(dir, "nope.json")}, 2, []string{"read the export", "nope.json"}},
		{"bad JSON", []string{"--from", bad}, 2, []string{bad + ":3:25: invalid JSON"}},
		{"not an export", []string{"--from", wrong}, 2, []string{wrong + ":1:18: destinations: expected an array, got a JSON object"}},
		{"empty file", []string{"--from", empty}, 2, []string{empty + ":1:1: the export is empty"}},
		{"unknown flag", []string{"--from", mixed, "--nope"}, 2, []string{"unknown flag"}},
		{"out is the export", []string{"--from", mixed, "--out", mixed}, 2, []string{"is the export itself"}},
		{"untranslatable parts", []string{"--from", mixed}, 3, []string{
			`$.destinations[0].type: destination "Facebook Conversions API": type "facebook-conversions-api" is not a LinkedIn Conversions API destination`,
			`$.destinations[1].settings.conversionRuleCache: destination "LinkedIn Conversions API": setting "conversionRuleCache" has no capstan equivalent`,
			`$.destinations[1].subscriptions[0].mapping.email: subscription "Liquid": @liquid (Liquid templates) is not supported`,
			`$.destinations[1].subscriptions[1].partnerAction: subscription "Audience": action "updateAudience" is not supported`,
			`$.destinations[1].subscriptions[2].subscribe: subscription "Mixed": trigger column`,
			"migrated 1 destination(s) with 1 mapping(s)",
			"5 part(s) of " + mixed + " could not be migrated",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, stderr, code := capstan(t, append([]string{"migrate", "segment"}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			for _, w := range tt.stderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, stderr)
				}
			}
			if strings.Contains(out+stderr, "AQV-secret-1") {
				t.Errorf("the token was copied")
			}
			if tt.code == 2 && out != "" {
				t.Errorf("a usage error wrote %q", out)
			}
			if tt.code == 3 {
				// What could be translated is written, and loads.
				cfg, err := config.Parse("mixed.yaml", []byte(out), func(k string) (string, bool) {
					return map[string]string{"CAPSTAN_SECRET_KEY": "bWlncmF0ZS10ZXN0LWtleS0zMi1ieXRlcy1sb25nLS0=", "LINKEDIN_ACCESS_TOKEN": "t", "WEBSITE_WRITE_KEY": "wk"}[k], true
				})
				if err != nil {
					t.Fatalf("the partial file does not load: %v\n%s", err, out)
				}
				if len(cfg.Destinations) != 1 || len(cfg.Destinations[0].Mappings) != 1 || cfg.Destinations[0].Mappings[0].Name != "Good" {
					t.Errorf("partial file: %+v", cfg.Destinations)
				}
			}
		})
	}
}

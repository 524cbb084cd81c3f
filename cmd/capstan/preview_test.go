package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capstan-gw/capstan/internal/config"
	lidest "github.com/capstan-gw/capstan/internal/delivery/linkedin"
	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/linkedin"
	"github.com/capstan-gw/capstan/internal/stream"
)

var update = flag.Bool("update", false, "rewrite golden files")

// capstan runs the command line in-process and returns stdout, stderr and
// the exit code.
func capstan(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return out.String(), errb.String(), code
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "preview", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n%s", path, got)
	}
}

const now = "1765900000000" // 2025-12-16T15:46:40Z, shortly after the seed's events

func TestPreviewGolden(t *testing.T) {
	td := filepath.Join("testdata", "preview")
	tests := []struct {
		name   string
		args   []string
		golden string
		code   int
	}{
		{"seed 000 page view, Segment mapping", []string{"--mapping", "page-view.mapping.json", "--event", "page.json"}, "page-view.golden.json", 0},
		{"seed 000 form submission, Segment mapping", []string{"--mapping", "form-submission.mapping.json", "--event", "track.json"}, "form-submission.golden.json", 0},
		{"seed 000 set-up from config, mixed events", []string{"--config", "seed000.yaml", "--event", "seed000-events.json"}, "seed000.golden.json", 3},
		{"rule id from the command line", []string{"--mapping", "page-view.mapping.json", "--event", "page.json", "--conversion-rule", "14488340"}, "rule-override.golden.json", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"preview", "--now", now}
			for i, a := range tt.args {
				if i%2 == 1 {
					a = filepath.Join(td, a)
				}
				args = append(args, a)
			}
			if tt.golden == "rule-override.golden.json" {
				args[len(args)-1] = "14488340"
			}
			out, stderr, code := capstan(t, args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, stderr)
			}
			golden(t, tt.golden, out)
		})
	}
}

func TestPreviewErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ev := write("ev.json", `{"type":"track","event":"E","userId":"u"}`)
	liquid := write("liquid.json", `{"eventId":{"@liquid":"{{ messageId }}"}}`)
	badTrigger := write("bad.yaml", `sources: [{name: web, write_key: k}]
destinations:
  - name: li
    auth: {access_token: t}
    mappings:
      - name: m
        trigger: 'type = "track" and event = "A" or event = "B"'
        conversion_rule: {id: 1}
        fields:
          conversionValue: {"@path": 5}
`)
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"both sources", []string{"preview", "--mapping", liquid, "--config", badTrigger, "--event", ev}, 2, []string{"exactly one of --mapping and --config"}},
		{"no event", []string{"preview", "--mapping", liquid}, 2, []string{"--event is required"}},
		{"liquid refused", []string{"preview", "--mapping", liquid, "--event", ev}, 2, []string{"/eventId", "@liquid"}},
		{"config errors positioned", []string{"preview", "--config", badTrigger, "--event", ev}, 2, []string{"bad.yaml:7:18: destinations[0].mappings[0].trigger:", "bad.yaml:10:38: destinations[0].mappings[0].fields.conversionValue.@path:"}},
		{"events not JSON", []string{"preview", "--mapping", write("ok.json", `{"eventId":{"@path":"$.messageId"}}`), "--event", write("bad.json", `{"type":`)}, 2, []string{"not a JSON event"}},
		{"unknown flag", []string{"preview", "--nope"}, 2, []string{"unknown flag"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := capstan(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

func TestPreviewWithEngine(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.yaml")
	text := "server: {data_dir: " + filepath.Join(dir, "data") + "}\nengine: {listen: none}\n" + `sources: [{name: web, write_key: k}]
destinations:
  - name: li
    ad_account: 512345678
    auth: {access_token: t}
    mappings:
      - name: Sign Up
        trigger: 'type = "track" and event = "Sign Up"'
        conversion_rule: {create: {name: "Sign Up (capstan)", type: SIGN_UP}}
`
	if err := os.WriteFile(cfgPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// What an earlier run left: the created rule's id and a graph that
	// knows user u1's click id and email.
	ctx := context.Background()
	eng, err := stream.Open(ctx, engineConfig(cfg), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	state, _ := eng.KV(ctx, stream.StateKV, 0)

	if _, err := state.Put(ctx, lidest.RuleKey("li", "Sign Up"), []byte("24242424")); err != nil {
		t.Fatal(err)
	}
	g, err := identity.Open(ctx, eng.JetStream(), identity.Config{HashEmail: linkedin.HashEmail}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{
		`{"type":"page","anonymousId":"a1","context":{"page":{"url":"https://x.example/?li_fat_id=123456"}}}`,
		`{"type":"identify","anonymousId":"a1","userId":"u1","traits":{"email":"Ann@Example.com"}}`,
	} {
		v, _ := event.Parse([]byte(raw))
		if err := g.Observe(ctx, v, identity.Capture(v)); err != nil {
			t.Fatal(err)
		}
	}
	eng.Close()

	ev := filepath.Join(dir, "ev.json")
	_ = os.WriteFile(ev, []byte(`{"type":"track","event":"Sign Up","userId":"u1","messageId":"crm-1"}`), 0o644)
	out, stderr, code := capstan(t, "preview", "--config", cfgPath, "--engine", "--event", ev)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, stderr, out)
	}
	hash, _ := linkedin.HashEmail("ann@example.com")
	for _, want := range []string{`"conversion": "urn:lla:llaPartnerConversion:24242424"`, `"idValue": "123456"`, `"idValue": "` + hash + `"`, `"linkedInUUID": "graph`, `"email": "graph`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
}

// Each destination's requests carry its own LinkedIn-Version.
func TestPreviewAPIVersionPerDestination(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	mapping := `
    auth: {access_token: t}
    mappings:
      - name: Sign Up
        trigger: 'type = "track"'
        conversion_rule: {id: 22833300}
`
	text := "sources: [{name: web, write_key: k}]\ndestinations:\n  - name: a\n    api_version: \"202607\"" + mapping +
		"  - name: b\n    api_version: \"202609\"" + mapping
	ev := filepath.Join(dir, "ev.json")
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(ev, []byte(`{"type":"track","event":"Sign Up","userId":"u","properties":{"li_fat_id":"1"}}`), 0o644)
	out, stderr, code := capstan(t, "preview", "--config", cfg, "--event", ev)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got struct {
		Requests []struct {
			Headers map[string]string `json:"headers"`
		} `json:"requests"`
		Events []struct {
			Results []struct {
				Destination string `json:"destination"`
				Request     int    `json:"request"`
			} `json:"results"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "202607", "b": "202609"}
	for _, r := range got.Events[0].Results {
		if v := got.Requests[r.Request].Headers["LinkedIn-Version"]; v != want[r.Destination] {
			t.Errorf("destination %s: LinkedIn-Version %s, want %s", r.Destination, v, want[r.Destination])
		}
	}
}

package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/stream"
)

// TestAdminWiring runs the admin API on what serve wires it to: the
// destinations, the engine's DLQ and EVENTS, the identity graph and preview.
func TestAdminWiring(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "capstan.yaml")
	text := `server:
  data_dir: ` + filepath.Join(dir, "data") + `
  admin_token: adm-1
sources:
  - name: website
    write_key: wk_1
destinations:
  - name: linkedin
    api_base: http://127.0.0.1:1
    ad_account: 512345678
    auth: {access_token: tok-a}
    mappings:
      - name: Sign Up
        trigger: 'type = "track" and event = "Sign Up"'
        conversion_rule: {id: 22833300}
`
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	plans, err := compilePlans(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	eng, err := stream.Open(ctx, engineConfig(cfg), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	graph, err := identity.Open(ctx, eng.JetStream(), identityConfig(cfg), log)
	if err != nil {
		t.Fatal(err)
	}
	dests, err := newDestinations(ctx, cfg, plans, eng, graph, nil, nil, prometheus.NewRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	state, err := eng.KV(ctx, stream.StateKV, 0)
	if err != nil {
		t.Fatal(err)
	}
	w, err := stream.NewWriter(eng, stream.WriterConfig{}, log)
	if err != nil {
		t.Fatal(err)
	}
	adm, err := newAdmin(cfg, dests, graph, nil, eng, w, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(adm)
	t.Cleanup(srv.Close)

	call := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer adm-1")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if status, body := call("GET", "/admin/api/destinations", ""); status != 200 || !strings.Contains(body, `"destination":"linkedin","state":"delivering"`) {
		t.Errorf("destinations: %d %s", status, body)
	}

	// A token installed is in use and saved for the next start.
	status, body := call("PUT", "/admin/api/destinations/linkedin/token", `{"access_token":"tok-b","expires_at":"2027-03-01T00:00:00Z"}`)
	if status != 200 || !strings.Contains(body, `"tokenExpiresAt":"2027-03-01T00:00:00Z"`) {
		t.Errorf("install token: %d %s", status, body)
	}
	if got := dests[0].li.Client().Token().AccessToken; got != "tok-b" {
		t.Errorf("the client uses %q", got)
	}
	e, err := state.Get(ctx, "token.linkedin")
	if err != nil {
		t.Fatalf("saved token: %v", err)
	}
	var saved struct {
		Token struct {
			AccessToken string `json:"access_token"`
		} `json:"token"`
		Config string `json:"config"`
	}
	if err := json.Unmarshal(e.Value(), &saved); err != nil || saved.Token.AccessToken != "tok-b" || saved.Config == "" {
		t.Errorf("saved token: %+v %v", saved, err)
	}

	// A dead letter that is not there is a 404, not the engine's error.
	if status, body := call("GET", "/admin/api/dlq/7", ""); status != 404 || !strings.Contains(body, "no dead letter 7") {
		t.Errorf("unknown dead letter: %d %s", status, body)
	}
	if status, body := call("GET", "/admin/api/dlq", ""); status != 200 || body != `{"deadLetters":[],"more":false}`+"\n" {
		t.Errorf("dead letters: %d %s", status, body)
	}
	if status, body := call("GET", "/admin/api/events?source=website", ""); status != 200 || body != `{"events":[],"more":false}`+"\n" {
		t.Errorf("events: %d %s", status, body)
	}

	// Preview maps with the running plans and sends nothing.
	ev := `{"type":"track","event":"Sign Up","userId":"u1","messageId":"m-1","timestamp":"` +
		time.Now().UTC().Format(time.RFC3339) + `","traits":{"email":"ann@example.com"}}`
	status, body = call("POST", "/admin/api/preview", `{"events":`+ev+`,"source":"website","destination":"linkedin"}`)
	var pv struct {
		Invalid bool
		Preview delivery.PreviewOutput
	}
	if err := json.Unmarshal([]byte(body), &pv); err != nil || status != 200 {
		t.Fatalf("preview: %d %s", status, body)
	}
	if pv.Invalid || len(pv.Preview.Requests) != 1 || len(pv.Preview.Events) != 1 || len(pv.Preview.Events[0].Results) != 1 ||
		pv.Preview.Events[0].Results[0].Outcome != "converted" {
		t.Errorf("preview: %s", body)
	}
	if strings.Contains(body, "tok-b") {
		t.Errorf("preview shows the access token: %s", body)
	}
}

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
	dests, err := newDestinations(ctx, cfg, plans, eng, graph, nil, nil, nil, prometheus.NewRegistry(), log)
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
	// The console's view: the configured rule, the limiter's counts.
	if status, body := call("GET", "/admin/api/destinations/linkedin", ""); status != 200 ||
		!strings.Contains(body, `"rules":[{"mapping":"Sign Up","ruleId":"22833300","created":false,"campaigns":[],"campaignsAssociated":false}]`) ||
		!strings.Contains(body, `"minute":0,"perMinute":600,"day":0,"perDay":300000}`) || !strings.Contains(body, `"adAccount":512345678`) ||
		!strings.Contains(body, `"health":"delivering"`) {
		t.Errorf("destination: %d %s", status, body)
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

// TestAdminConfig: the admin API's configuration from server.*: users with
// their roles, Secure cookies under server.tls or an https public_url, and
// the trusted proxies as prefixes.
func TestAdminConfig(t *testing.T) {
	const hash = "$2a$10$Ip2wog9ePwpS25k1VtJC8OoR1avz5xjEf8hwFrSATSQX.MQglOHSu"
	s := config.Server{
		AdminToken:     "adm",
		AdminUsers:     []config.AdminUser{{Name: "ana", PasswordHash: hash, Role: "operator"}, {Name: "bo", PasswordHash: hash, Role: "viewer"}},
		TrustedProxies: []string{"127.0.0.1", "10.0.0.0/8", "::1"},
	}
	c, err := adminConfig(s)
	if err != nil {
		t.Fatal(err)
	}
	if c.Token.Value() != "adm" || len(c.Users) != 2 || c.Users[0].Role.String() != "operator" || c.Users[1].Role.String() != "viewer" || c.Users[1].PasswordHash != hash {
		t.Errorf("users %+v", c.Users)
	}
	if c.SecureCookies {
		t.Error("Secure cookies without TLS")
	}
	var pfx []string
	for _, p := range c.TrustedProxies {
		pfx = append(pfx, p.String())
	}
	if strings.Join(pfx, " ") != "127.0.0.1/32 10.0.0.0/8 ::1/128" {
		t.Errorf("trusted proxies %v", pfx)
	}
	s.PublicURL = "https://t.example.com"
	if c, _ := adminConfig(s); !c.SecureCookies {
		t.Error("no Secure cookies behind an https public_url")
	}
	s.PublicURL, s.TLS.CertFile = "", "cert.pem"
	if c, _ := adminConfig(s); !c.SecureCookies {
		t.Error("no Secure cookies with server.tls")
	}
	s.AdminUsers[0].Role = "admin"
	if _, err := adminConfig(s); err == nil || !strings.Contains(err.Error(), `"ana"`) {
		t.Errorf("bad role: %v", err)
	}
}

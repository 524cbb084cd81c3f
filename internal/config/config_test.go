package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

const minimal = `
sources:
  - name: website
    write_key: wk_1
`

func TestParseDefaults(t *testing.T) {
	cfg, err := Parse("capstan.yaml", []byte(minimal), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.Server; s.Addr != DefaultAddr || s.DataDir != DefaultDataDir ||
		s.MaxConnections != 10000 || s.MaxInflightBodyBytes != 256<<20 {
		t.Errorf("server defaults: got %+v", cfg.Server)
	}
	if !cfg.Engine.Sync.Always() || cfg.Engine.Dedup.Window.D() != 24*time.Hour || cfg.Engine.Dedup.MemoryBytes != 256<<20 || cfg.Engine.Dedup.Dir != filepath.Join(cfg.Server.DataDir, "dedup") || cfg.Engine.GroupCommit.MaxEvents != 1000 {
		t.Errorf("engine defaults: got %+v", cfg.Engine)
	}
	if cfg.Identity.TTL.D() != 90*24*time.Hour {
		t.Errorf("identity ttl: got %s", cfg.Identity.TTL)
	}
	if cfg.Identity.Store != IdentityStoreAuto || !cfg.IdentityLocal() || cfg.IdentityDir() != filepath.Join(cfg.Server.DataDir, "identity") {
		t.Errorf("identity store: got %q, local %v, dir %s", cfg.Identity.Store, cfg.IdentityLocal(), cfg.IdentityDir())
	}
	if cfg.Engine.GuardStore != GuardStoreAuto || !cfg.GuardLocal() || cfg.GuardDir() != filepath.Join(cfg.Server.DataDir, "eventids") {
		t.Errorf("guard store: got %q, local %v, dir %s", cfg.Engine.GuardStore, cfg.GuardLocal(), cfg.GuardDir())
	}
	if cfg.Engine.GuardMemoryBytes != 16<<20 {
		t.Errorf("guard memory: got %d, want 16 MiB", cfg.Engine.GuardMemoryBytes)
	}
	if cfg.Engine.Compression != CompressionS2 {
		t.Errorf("compression: got %q, want s2", cfg.Engine.Compression)
	}
	big, err := Parse("capstan.yaml", []byte("engine: {guard_memory_bytes: 268435456}\n"+minimal), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if big.Engine.GuardMemoryBytes != 256<<20 {
		t.Errorf("guard_memory_bytes 256 MiB: got %d", big.Engine.GuardMemoryBytes)
	}
	cluster, err := Parse("capstan.yaml", []byte("engine: {nats_url: 'nats://n1:4222'}\n"+minimal), env(nil))
	if err == nil && cluster.GuardLocal() {
		t.Error("guard store auto with nats_url: local, want jetstream")
	}
	if err != nil || cluster.IdentityLocal() {
		t.Errorf("identity store auto with nats_url: local %v (%v), want jetstream", cluster != nil && cluster.IdentityLocal(), err)
	}
	if rl := cfg.Sources[0].RateLimit; rl != (RateLimit{}) {
		t.Errorf("source rate limit: got %+v, want off (segment-ingest.md §1.11)", rl)
	}
	if s := cfg.Server; s.MetricsAuth != MetricsAuthNone || s.OpsAddr != "" {
		t.Errorf("metrics: got metrics_auth %q, ops_addr %q", s.MetricsAuth, s.OpsAddr)
	}
	if !cfg.Privacy.Suppresses() || !*cfg.Privacy.Suppress || cfg.Privacy.SuppressionTTL.D() != 365*24*time.Hour {
		t.Errorf("privacy defaults: got %+v", cfg.Privacy)
	}
	off, err := Parse("capstan.yaml", []byte("privacy: {suppress: false, suppression_ttl: 30d}\n"+minimal), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if off.Privacy.Suppresses() || off.Privacy.SuppressionTTL.D() != 30*24*time.Hour {
		t.Errorf("privacy: got %+v", off.Privacy)
	}
}

func TestParseRateLimit(t *testing.T) {
	tests := []struct {
		name string
		rl   string
		want RateLimit
	}{
		{"default: off (segment-ingest.md §1.11)", "", RateLimit{}},
		{"rate only", "{requests_per_second: 50}", RateLimit{RequestsPerSecond: 50, Burst: 100}},
		{"both", "{requests_per_second: 0.5, burst: 3}", RateLimit{RequestsPerSecond: 0.5, Burst: 3}},
		{"off", "{disabled: true}", RateLimit{Disabled: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := minimal
			if tt.rl != "" {
				text += "    rate_limit: " + tt.rl + "\n"
			}
			cfg, err := Parse("c.yaml", []byte(text), env(nil))
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Sources[0].RateLimit; got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseFull(t *testing.T) {
	text := `
server:
  addr: "127.0.0.1:9090"
  public_url: https://ingest.example.com
  trusted_proxies: [10.0.0.0/8, 192.168.1.1]
engine:
  sync: 1s
  dedup_window: 7d
  retention: 30d
sources:
  - name: website
    write_key: ${WK}
    allowed_origins: ["https://www.example.com"]
    browser_batching: {size: 20}
destinations:
  - name: linkedin
    ad_account: 512345678
    auth:
      access_token: ${TOKEN}
    mappings:
      - name: Sign Up
        trigger: 'type = "track" and event = "Sign Up"'
        conversion_rule:
          create: {name: "Sign Up (capstan)", type: SIGN_UP}
        campaigns: [123456]
        fields:
          eventId: {"@path": "$.messageId"}
          conversionValue: {currencyCode: USD, amount: "0"}
          batch_size: 100
          email: null
`
	cfg, err := Parse("c.yaml", []byte(text), env(map[string]string{"WK": "wk_live", "TOKEN": "AQV"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Engine.Sync.Interval; got != time.Second {
		t.Errorf("sync: got %s", got)
	}
	if got := cfg.Sources[0].WriteKey.Value(); got != "wk_live" {
		t.Errorf("write key: got %q", got)
	}
	d := cfg.Destinations[0]
	if d.APIVersion != DefaultAPIVersion || d.BatchSize != 5000 || d.DisplayName != DefaultDisplayName ||
		len(d.ConsentCategories) != 1 || d.RateLimit.PerMinute != 600 {
		t.Errorf("destination defaults: got %+v", d)
	}
	m := d.Mappings[0]
	if m.ConversionRule.Create.PostClickWindowDays != 30 || m.ConversionRule.Create.AttributionType != DefaultAttributionType {
		t.Errorf("rule defaults: got %+v", m.ConversionRule.Create)
	}
	want := `{"eventId":{"@path":"$.messageId"},"conversionValue":{"currencyCode":"USD","amount":"0"},"batch_size":100,"email":null}`
	if string(m.Fields) != want {
		t.Errorf("fields:\n got %s\nwant %s", m.Fields, want)
	}
	if p := cfg.Pos("destinations[0].mappings[0].trigger"); p.Line != 22 {
		t.Errorf("trigger position: got %+v", p)
	}
}

// testHash is the bcrypt hash (cost 10) of "correct horse battery".
const testHash = "$2a$10$Ip2wog9ePwpS25k1VtJC8OoR1avz5xjEf8hwFrSATSQX.MQglOHSu"

// TestAdminUsers: server.admin_users is read with its roles, and makes the
// admin surface enabled without an admin token.
func TestAdminUsers(t *testing.T) {
	c, err := Parse("c.yaml", []byte("server:\n  admin_users:\n    - name: ana@example.com\n      password_hash: ${ANA_HASH}\n      role: operator\n    - {name: bo, password_hash: '"+testHash+"', role: viewer}\n"+minimal),
		env(map[string]string{"ANA_HASH": testHash}))
	if err != nil {
		t.Fatal(err)
	}
	u := c.Server.AdminUsers
	if len(u) != 2 || u[0].Name != "ana@example.com" || u[0].PasswordHash.Value() != testHash || u[0].Role != RoleOperator || u[1].Role != RoleViewer {
		t.Errorf("admin_users %+v", u)
	}
	if !c.Server.AdminEnabled() || (Server{}).AdminEnabled() || !(Server{AdminToken: "t"}).AdminEnabled() {
		t.Error("AdminEnabled is wrong")
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string // fragments, in order
	}{
		{"unknown key with suggestion", "server:\n  adr: x\n" + minimal, []string{`c.yaml:2:3: server.adr: unknown field (did you mean "addr"?)`}},
		{"unknown top-level", "sorces: []\n", []string{`c.yaml:1:1: sorces: unknown field (did you mean "sources"?)`}},
		{"wrong type", "engine:\n  replicas: three\n" + minimal, []string{`c.yaml:2:13: engine.replicas: must be a whole number, got "three"`}},
		{"unset env, all listed", "sources:\n  - name: a\n    write_key: ${A}\n  - name: b\n    write_key: ${B}\n",
			[]string{"c.yaml:3:16: sources[0].write_key: environment variable A is not set", "c.yaml:5:16: sources[1].write_key: environment variable B is not set"}},
		{"bad sync", "engine:\n  sync: sometimes\n" + minimal, []string{`engine.sync: must be "always" or a positive interval`}},
		{"no sources", "server: {addr: ':1'}\n", []string{"sources: at least one source is required"}},
		{"duplicate names and keys", "sources:\n  - {name: a, write_key: k}\n  - {name: a, write_key: k}\n",
			[]string{`c.yaml:3:12: sources[1].name: "a" is already the name of sources[0]`, "sources[1].write_key: the same write key is already used by sources[0]"}},
		{"bad origin", "sources:\n  - name: a\n    write_key: k\n    allowed_origins: [www.example.com]\n", []string{"sources[0].allowed_origins[0]: must be an origin"}},
		{"suppression ttl too short", "privacy:\n  suppression_ttl: 30m\n" + minimal, []string{"c.yaml:2:20: privacy.suppression_ttl: must be at least 1h, got 30m"}},
		{"identity store unknown", "identity:\n  store: disk\n" + minimal, []string{`c.yaml:2:10: identity.store: must be auto, jetstream or local, got "disk"`}},
		{"identity store local on a cluster", "engine: {nats_url: 'nats://n1:4222'}\nidentity:\n  store: local\n" + minimal, []string{"c.yaml:3:10: identity.store: local needs the embedded engine"}},
		{"guard store unknown", "engine:\n  guard_store: disk\n" + minimal, []string{`c.yaml:2:16: engine.guard_store: must be auto, jetstream or local, got "disk"`}},
		{"guard store local on a cluster", "engine: {nats_url: 'nats://n1:4222', guard_store: local}\n" + minimal, []string{"engine.guard_store: local needs the embedded engine"}},
		{"dedup window too short", "engine:\n  dedup:\n    window: 30s\n" + minimal, []string{"engine.dedup.window: must be between 1m and 30d"}},
		{"dedup window under both names", "engine:\n  dedup_window: 48h\n  dedup:\n    window: 36h\n" + minimal, []string{"engine.dedup_window: is the older name of engine.dedup.window"}},
		{"dedup memory too small", "engine:\n  dedup:\n    memory_bytes: 1024\n" + minimal, []string{"engine.dedup.memory_bytes: must be at least 33554432"}},
		{"identity memory too small", "identity:\n  memory_bytes: 1024\n" + minimal, []string{"identity.memory_bytes: must be at least 8388608 (8 MiB), got 1024"}},
		{"guard memory too small", "engine:\n  guard_memory_bytes: 1024\n" + minimal, []string{"engine.guard_memory_bytes: must be at least 8388608 (8 MiB), got 1024"}},
		{"unknown compression", "engine:\n  compression: gzip\n" + minimal, []string{`engine.compression: must be s2 or none, got "gzip"`}},
		{"dedup memory under what the index needs", "engine:\n  dedup:\n    memory_bytes: 20000000\n" + minimal, []string{"engine.dedup.memory_bytes: must be at least 33554432 (32 MiB)"}},
		{"lease ttl too short", "engine:\n  lease_ttl: 1s\n" + minimal, []string{"engine.lease_ttl: must be between 3s and 5m, got 1s"}},
		{"monitor url scheme", "engine:\n  nats_url: nats://n1:4222\n  monitor_url: http://n1:8222,n2:8222\n" + minimal, []string{`engine.monitor_url: must be a list of http://host:port URLs (the NATS servers' monitoring ports) separated by commas, got "n2:8222"`}},
		{"monitor url embedded", "engine:\n  monitor_url: http://n1:8222\n" + minimal, []string{"engine.monitor_url: only applies with engine.nats_url"}},
		{"startup timeout too long", "engine:\n  startup_timeout: 2h\n" + minimal, []string{"engine.startup_timeout: must be between 1s and 1h, got 2h"}},
		{"server limits", "server:\n  max_connections: -1\n  max_inflight_body_bytes: 512000\n" + minimal,
			[]string{"c.yaml:2:20: server.max_connections: must be at least 1, got -1",
				"c.yaml:3:28: server.max_inflight_body_bytes: must be at least 1048576 (1 MiB), got 512000"}},
		{"group commit bound", "engine:\n  group_commit: {max_events: 5000}\n" + minimal, []string{"must be between 1 and 1000"}},
		{"negative rate limit", minimal + "    rate_limit: {requests_per_second: -1}\n", []string{"sources[0].rate_limit: requests_per_second and burst must not be negative"}},
		{"bad ops addr", "server:\n  ops_addr: localhost\n" + minimal, []string{`c.yaml:2:13: server.ops_addr: must be host:port`}},
		{"metrics auth without token", "server:\n  metrics_auth: admin_token\n" + minimal, []string{"c.yaml:2:17: server.metrics_auth: admin_token needs server.admin_token"}},
		{"pprof without token", "server:\n  pprof: true\n" + minimal, []string{"c.yaml:2:10: server.pprof: true needs server.admin_token"}},
		{"bad metrics auth", "server:\n  metrics_auth: basic\n" + minimal, []string{`server.metrics_auth: must be none or admin_token, got "basic"`}},
		{"bad public url", "server:\n  public_url: t.example.com\n" + minimal, []string{`c.yaml:2:15: server.public_url: must be an absolute http or https URL`}},
		{"listen not loopback", "engine:\n  listen: 0.0.0.0:4222\n" + minimal, []string{"engine.listen: must be a loopback address"}},
		{"replicas embedded", "engine:\n  replicas: 3\n" + minimal, []string{"replicas must be 1"}},
		{"list expected", "sources: {name: a}\n", []string{"c.yaml:1:10: sources: must be a list, got a mapping"}},
		{"invalid yaml", "sources: [\n", []string{"c.yaml:", "invalid YAML"}},
		{"empty", "", []string{"the file is empty"}},
		{"recursive alias", minimal + "destinations:\n  - name: li\n    auth: {access_token: t}\n    mappings:\n      - name: m\n        conversion_rule: {id: 1}\n        fields: &x {a: *x}\n",
			[]string{"nested more than 64 levels deep"}},
		{"destination checks", minimal + `destinations:
  - name: li
    type: meta
    api_version: "2026-09"
    auth: {refresh_token: r}
    mappings:
      - name: m
        conversion_rule: {create: {name: x, type: SIGNUP, post_click_window_days: 365}}
`, []string{`destinations[0].type: unknown destination type "meta"`, "destinations[0].api_version: must be a LinkedIn version YYYYMM",
			"destinations[0].auth: refresh_token, client_id and client_secret go together",
			"conversion_rule.create: needs the destination's ad_account",
			`conversion_rule.create.type: unknown conversion type "SIGNUP"`,
			"conversion_rule.create.post_click_window_days: must be one of [1 7 30 90]"}},
		{"collision and reconcile", minimal + `destinations:
  - name: li
    ad_account: 1
    auth: {access_token: t}
    event_id_collision: drop
    reconcile: {interval: 30m, days: 100, min_ratio: 2, min_accepted: -1}
    mappings:
      - name: m
        conversion_rule: {id: 1}
`, []string{`c.yaml:9:25: destinations[0].event_id_collision: must be "suffix" or "dead_letter", got "drop"`,
			"destinations[0].reconcile.interval: must be at least 1h", "destinations[0].reconcile.days: must be between 1 and 90, got 100",
			"destinations[0].reconcile.min_ratio: must be between 0 and 1, got 2", "destinations[0].reconcile.min_accepted: must be at least 1, got -1"}},
		{"bad trust", "sources:\n  - name: a\n    write_key: k\n    trust: public\n", []string{`c.yaml:4:12: sources[0].trust: must be "browser" or "server", got "public"`}},
		{"verification on a server source", "sources:\n  - name: a\n    write_key: k\n    trust: server\n    identity_verification: {secret: 0123456789abcdef}\n",
			[]string{`sources[0].identity_verification: applies to browser sources only (trust is "server")`}},
		{"verification secret", "sources:\n  - name: a\n    write_key: k\n    identity_verification: {secret: short}\n  - name: b\n    write_key: l\n    identity_verification: {}\n",
			[]string{"sources[0].identity_verification.secret: must be at least 16 characters", "sources[1].identity_verification.secret: required"}},
		{"alias bomb", aliasBomb(), []string{"c.yaml:", "destinations[0].mappings[0].fields.", "YAML aliases expand to more than 20000 values"}},
		{"file too large", minimal + "#" + strings.Repeat("x", MaxFileBytes), []string{"c.yaml: the file is larger than 4194304 bytes (4 MiB)"}},
		{"dlq bounds", "engine:\n  dlq: {max_age: 10m, max_bytes: 1000}\n" + minimal,
			[]string{"c.yaml:2:18: engine.dlq.max_age: must be at least 1h, got 10m", "c.yaml:2:34: engine.dlq.max_bytes: must be at least 1048576 (1 MiB), got 1000"}},
		{"admin users", "server:\n  admin_users:\n" +
			"    - {name: ana, password_hash: '" + testHash + "', role: admin}\n" +
			"    - {name: ana, password_hash: '$2a$04$abcdefghijklmnopqrstuuFZZQ5ob1eVaMD4N1mhzZOFr6PmeORzC', role: viewer}\n" +
			"    - {name: 'bad name', password_hash: plain, role: ''}\n" +
			"    - {role: viewer}\n" + minimal,
			[]string{`c.yaml:3:104: server.admin_users[0].role: must be viewer or operator, got "admin"`,
				`server.admin_users[1].name: "ana" is also server.admin_users[0]`,
				"server.admin_users[1].password_hash: bcrypt cost 4: use 10 to 14",
				`server.admin_users[2].name: must be 1 to 64 letters, digits`,
				"server.admin_users[2].password_hash: not a bcrypt hash",
				"server.admin_users[2].role: required: viewer or operator",
				"server.admin_users[3].name: required",
				"server.admin_users[3].password_hash: required: the bcrypt hash of the password; make one with `capstan admin hash-password`"}},
		{"rule id or create", minimal + "destinations:\n  - name: li\n    auth: {access_token: t}\n    mappings: [{name: m}]\n",
			[]string{"destinations[0].mappings[0].conversion_rule: required"}},
		{"connect credentials", minimal + "destinations:\n  - name: li\n    auth: {client_id: a, authorize_url: 'ftp://x', redirect_uri: 'https://c.example/admin/oauth/callback#x'}\n    mappings:\n      - name: m\n        conversion_rule: {id: 1}\n",
			[]string{"destinations[0].auth.access_token: required (or client_id and client_secret, then run `capstan auth linkedin` to connect)",
				"destinations[0].auth: client_id and client_secret go together",
				`destinations[0].auth.authorize_url: must be an absolute http(s) URL, got "ftp://x"`,
				"destinations[0].auth.redirect_uri: must not contain a fragment (#)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tt.text), env(nil))
			if err == nil {
				t.Fatal("no error")
			}
			if !IsConfigError(err) {
				t.Errorf("IsConfigError(%v) = false", err)
			}
			msg := err.Error()
			for _, w := range tt.want {
				i := strings.Index(msg, w)
				if i < 0 {
					t.Fatalf("error does not contain %q:\n%s", w, msg)
				}
				msg = msg[i+len(w):]
			}
		})
	}
}

// aliasBomb is a "billion laughs" configuration: in 614 bytes, nine
// levels of anchored nine-element lists, each element an alias of the
// level below, stand for 9^9 (387 million) values in a mapping's fields.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString(minimal + "destinations:\n  - name: li\n    auth: {access_token: t}\n    mappings:\n      - name: m\n        conversion_rule: {id: 1}\n        fields:\n")
	b.WriteString(`          a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]` + "\n")
	for c := 'b'; c <= 'i'; c++ {
		prev := "*" + string(c-1)
		fmt.Fprintf(&b, "          %c: &%c [%s]\n", c, c, strings.TrimSuffix(strings.Repeat(prev+",", 9), ","))
	}
	return b.String()
}

// TestAliasBomb: the alias bomb fails fast, with one error at the alias
// where expansion passed the limit; a configuration that shares fields
// through an alias still loads.
func TestAliasBomb(t *testing.T) {
	text := aliasBomb()
	start := time.Now()
	_, err := Parse("capstan.yaml", []byte(text), env(nil))
	// Expanded, the bomb is 9^9 strings: minutes of work and gigabytes.
	// Stopped at the limit it takes milliseconds; the bound leaves a loaded
	// CI machine under the race detector all the room it needs.
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("Parse took %s", d)
	}
	var es *Errors
	if !errors.As(err, &es) || len(es.List) != 1 {
		t.Fatalf("got %v, want one error", err)
	}
	e := es.List[0]
	lines := strings.Split(text, "\n")
	if e.File != "capstan.yaml" || e.Pos.Line < 1 || e.Pos.Line > len(lines) || !strings.Contains(lines[e.Pos.Line-1], "*") ||
		!strings.HasPrefix(e.Path, "destinations[0].mappings[0].fields.") || !strings.Contains(e.Msg, "YAML aliases expand to more than") {
		t.Errorf("got %v", e)
	}

	shared := minimal + `destinations:
  - name: li
    auth: {access_token: t}
    mappings:
      - name: a
        conversion_rule: {id: 1}
        fields: &common
          email: {"@path": "$.traits.email"}
          userInfo: &names {firstName: {"@path": "$.traits.firstName"}}
      - name: b
        conversion_rule: {id: 2}
        fields: *common
      - name: c
        conversion_rule: {id: 3}
        fields: {userInfo: *names}
`
	cfg, err := Parse("capstan.yaml", []byte(shared), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Destinations[0].Mappings
	want := `{"email":{"@path":"$.traits.email"},"userInfo":{"firstName":{"@path":"$.traits.firstName"}}}`
	if string(m[0].Fields) != want || string(m[1].Fields) != want || string(m[2].Fields) != `{"userInfo":{"firstName":{"@path":"$.traits.firstName"}}}` {
		t.Errorf("fields: %s | %s | %s", m[0].Fields, m[1].Fields, m[2].Fields)
	}
}

// TestLoadTooLarge: Load reads no more of a file than the limit.
func TestLoadTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, []byte(minimal+"#"+strings.Repeat("x", 2*MaxFileBytes)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if !IsConfigError(err) || !strings.Contains(err.Error(), "big.yaml: the file is larger than 4194304 bytes") {
		t.Errorf("got %v", err)
	}
}

func TestSourceTrust(t *testing.T) {
	text := `
sources:
  - name: website
    write_key: wk_1
    allowed_origins: ["https://www.example.com"]
    identity_verification:
      secret: ${IV_SECRET}
  - name: shop
    write_key: wk_2
    trust: browser
  - name: backend
    write_key: wk_3
  - name: crm
    write_key: wk_4
    trust: server
    allowed_origins: ["https://crm.example.com"]
`
	cfg, err := Parse("c.yaml", []byte(text), env(map[string]string{"IV_SECRET": "0123456789abcdef0123"}))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, true, false, false} {
		if got := cfg.Sources[i].BrowserTrust(); got != want {
			t.Errorf("%s: BrowserTrust() = %v, want %v", cfg.Sources[i].Name, got, want)
		}
	}
	if got := cfg.Sources[0].IdentityVerification.Secret.Value(); got != "0123456789abcdef0123" {
		t.Errorf("identity_verification.secret = %q", got)
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	s := Secret("AQVtoken")
	for _, got := range []string{s.String(), s.LogValue().String()} {
		if strings.Contains(got, "AQV") {
			t.Errorf("secret leaked: %q", got)
		}
	}
	cfg, err := Parse("c.yaml", []byte("sources:\n  - name: a\n    write_key: ${K}\n    disabled: maybe\n"), env(map[string]string{"K": "supersecret"}))
	if err == nil || strings.Contains(err.Error(), "supersecret") {
		t.Errorf("cfg=%v err=%v", cfg, err)
	}
}

func TestExpand(t *testing.T) {
	lookup := env(map[string]string{"A": "1", "E": ""})
	tests := []struct{ in, want, missing string }{
		{"x${A}y", "x1y", ""},
		{"${B:-def}", "def", ""},
		{"${E:-def}", "def", ""},
		{"$$A ${A}", "$A 1", ""},
		{"${B}", "", "B"},
		{"price $5", "price $5", ""},
		{"${unterminated", "${unterminated", ""},
	}
	for _, tt := range tests {
		got, missing := expand(tt.in, lookup)
		if got != tt.want || strings.Join(missing, ",") != tt.missing {
			t.Errorf("expand(%q) = %q, %v; want %q, %q", tt.in, got, missing, tt.want, tt.missing)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "1.5s": 1500 * time.Millisecond, "24h": 24 * time.Hour} {
		got, err := ParseDuration(in)
		if err != nil || got.D() != want {
			t.Errorf("ParseDuration(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "1x", "d", "1.5d", "-d"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q): no error", in)
		}
	}
}

func TestLoadExample(t *testing.T) {
	path := filepath.Join("..", "..", "examples", "capstan.yaml")
	if _, err := os.Stat(path); err != nil {
		t.Skip("no example config")
	}
	if _, err := Load(path); err != nil {
		t.Fatalf("examples/capstan.yaml: %v", err)
	}
	_, err := Load("does-not-exist.yaml")
	if err == nil || IsConfigError(err) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestLoadProductionExample: examples/production.yaml is valid with its
// secrets set (every ${NAME} in it is required).
func TestLoadProductionExample(t *testing.T) {
	path := filepath.Join("..", "..", "examples", "production.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	secrets := func(name string) (string, bool) {
		switch name {
		case "CAPSTAN_SECRET_KEY":
			return "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", true // 32 bytes
		case "WEBSITE_IDENTITY_SECRET":
			return "0123456789abcdef0123", true
		}
		return "set-" + strings.ToLower(name), true
	}
	cfg, err := Parse(path, b, secrets)
	if err != nil {
		t.Fatalf("examples/production.yaml: %v", err)
	}
	if len(cfg.Destinations) != 1 || len(cfg.Destinations[0].Mappings) != 3 || cfg.Server.SecretKey == "" {
		t.Errorf("got %d destinations", len(cfg.Destinations))
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("server:\n  addr: ':1'\nsources: [{name: a, write_key: '${X:-y}'}]\n"))
	f.Add([]byte("a: &x {b: *x}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Parse("f.yaml", b, env(nil))
	})
}

// A destination with only the OAuth client is valid: `capstan auth
// linkedin` connects it. The authorization page defaults next to the token
// endpoint.
func TestConnectOnlyDestination(t *testing.T) {
	text := minimal + "destinations:\n  - name: li\n    auth: {client_id: a, client_secret: b, token_url: 'http://127.0.0.1:9/oauth/v2/accessToken'}\n    mappings:\n      - name: m\n        conversion_rule: {id: 1}\n  - name: li2\n    auth: {client_id: a, client_secret: b, token_url: 'https://proxy.example/token'}\n    mappings:\n      - name: m\n        conversion_rule: {id: 1}\n"
	cfg, err := Parse("c.yaml", []byte(text), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Destinations[0].Auth.AuthorizeURL; got != "http://127.0.0.1:9/oauth/v2/authorization" {
		t.Errorf("authorize_url = %q", got)
	}
	if got := cfg.Destinations[1].Auth.AuthorizeURL; got != DefaultAuthorizeURL {
		t.Errorf("authorize_url = %q", got)
	}
}

package config

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

var (
	nameRe    = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	versionRe = regexp.MustCompile(`^20[0-9]{2}(0[1-9]|1[0-2])$`)
)

// RuleTypes are LinkedIn's conversion rule types (linkedin-capi.md §12.5).
var RuleTypes = []string{"ADD_TO_CART", "DOWNLOAD", "INSTALL", "KEY_PAGE_VIEW", "LEAD", "PURCHASE", "SIGN_UP",
	"OTHER", "TALENT_LEAD", "JOB_APPLY", "SAVE", "START_CHECKOUT", "SCHEDULE", "VIEW_CONTENT", "VIEW_VIDEO",
	"ADD_BILLING_INFO", "BOOK_APPOINTMENT", "REQUEST_QUOTE", "SEARCH", "SUBSCRIBE", "AD_CLICK", "AD_VIEW",
	"COMPLETE_SIGNUP", "SUBMIT_APPLICATION", "PHONE_CALL", "INVITE", "LOGIN", "SHARE", "DONATE", "ADD_TO_LIST",
	"RATE", "START_TRIAL", "OUTBOUND_CLICK", "CONTACT", "QUALIFIED_LEAD", "MARKETING_QUALIFIED_LEAD",
	"SALES_QUALIFIED_LEAD"}

// yearWindowTypes may use 365-day attribution windows (§12.1).
var yearWindowTypes = []string{"SUBMIT_APPLICATION", "PURCHASE", "ADD_TO_CART", "QUALIFIED_LEAD", "LEAD"}

// minVerificationSecret is the shortest identity_verification.secret.
const minVerificationSecret = 16

type validator struct {
	c  *Config
	es *Errors
}

func (v *validator) errorf(path, format string, args ...any) {
	v.es.add(v.c.Pos(path), path, fmt.Sprintf(format, args...))
}

func (c *Config) validate(es *Errors) {
	v := &validator{c: c, es: es}
	v.server()
	v.engine()
	if c.Identity.TTL.D() < time.Hour {
		v.errorf("identity.ttl", "must be at least 1h, got %s", c.Identity.TTL)
	}
	switch c.Identity.Store {
	case IdentityStoreAuto, IdentityStoreJetStream:
	case IdentityStoreLocal:
		if c.Engine.NatsURL != "" {
			v.errorf("identity.store", "local needs the embedded engine: with engine.nats_url every replica must share the graph, so use jetstream (or auto)")
		}
	default:
		v.errorf("identity.store", "must be auto, jetstream or local, got %q", c.Identity.Store)
	}
	if c.Identity.MemoryBytes < MinIdentityMemory {
		v.errorf("identity.memory_bytes", "must be at least %d (8 MiB), got %d", MinIdentityMemory, c.Identity.MemoryBytes)
	}
	switch c.Engine.GuardStore {
	case GuardStoreAuto, GuardStoreJetStream:
	case GuardStoreLocal:
		if c.Engine.NatsURL != "" {
			v.errorf("engine.guard_store", "local needs the embedded engine: with engine.nats_url every replica must share the eventIds sent, so use jetstream (or auto)")
		}
	default:
		v.errorf("engine.guard_store", "must be auto, jetstream or local, got %q", c.Engine.GuardStore)
	}
	if e := c.Engine.Compression; e != CompressionS2 && e != CompressionNone {
		v.errorf("engine.compression", "must be s2 or none, got %q", e)
	}
	if c.Engine.GuardMemoryBytes < MinGuardMemory {
		v.errorf("engine.guard_memory_bytes", "must be at least %d (8 MiB), got %d", MinGuardMemory, c.Engine.GuardMemoryBytes)
	}
	if c.Privacy.SuppressionTTL.D() < time.Hour {
		v.errorf("privacy.suppression_ttl", "must be at least 1h, got %s", c.Privacy.SuppressionTTL)
	}
	v.sources()
	v.destinations()
}

func (v *validator) server() {
	s := v.c.Server
	if _, port, err := net.SplitHostPort(s.Addr); err != nil || !validPort(port) {
		v.errorf("server.addr", "must be host:port (e.g. :8080 or 127.0.0.1:8080), got %q", s.Addr)
	}
	if s.PublicURL != "" {
		if u, err := url.Parse(s.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			v.errorf("server.public_url", "must be an absolute http or https URL such as https://ingest.example.com (no query), got %q", s.PublicURL)
		}
	}
	if s.OpsAddr != "" {
		if _, port, err := net.SplitHostPort(s.OpsAddr); err != nil || !validPort(port) {
			v.errorf("server.ops_addr", "must be host:port (e.g. 127.0.0.1:9090), got %q", s.OpsAddr)
		}
	}
	switch s.MetricsAuth {
	case MetricsAuthNone:
	case MetricsAuthAdminToken:
		if s.AdminToken == "" {
			v.errorf("server.metrics_auth", "admin_token needs server.admin_token")
		}
	default:
		v.errorf("server.metrics_auth", "must be none or admin_token, got %q", s.MetricsAuth)
	}
	if s.Pprof && s.AdminToken == "" {
		v.errorf("server.pprof", "true needs server.admin_token")
	}
	for i, p := range s.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(p); err != nil {
			v.errorf(fmt.Sprintf("server.trusted_proxies[%d]", i), "must be an IP address or CIDR, got %q", p)
		}
	}
	for _, f := range []struct {
		path string
		d    Duration
	}{{"server.read_timeout", s.ReadTimeout}, {"server.write_timeout", s.WriteTimeout},
		{"server.idle_timeout", s.IdleTimeout}, {"server.shutdown_grace", s.ShutdownGrace}} {
		if f.d < 0 {
			v.errorf(f.path, "must not be negative")
		}
	}
	if s.MaxConnections < 1 {
		v.errorf("server.max_connections", "must be at least 1, got %d", s.MaxConnections)
	}
	if s.MaxInflightBodyBytes < MinMaxInflightBody {
		v.errorf("server.max_inflight_body_bytes", "must be at least %d (1 MiB), got %d", MinMaxInflightBody, s.MaxInflightBodyBytes)
	}
	if k := s.SecretKey.Value(); k != "" {
		raw, err := base64.StdEncoding.DecodeString(k)
		switch {
		case err != nil:
			v.errorf("server.secret_key", "not base64 (%v): the key is %d random bytes in standard base64; generate one with `capstan secret-key new`", err, SecretKeySize)
		case len(raw) != SecretKeySize:
			v.errorf("server.secret_key", "wrong length: %d bytes, the key is %d random bytes in base64; generate one with `capstan secret-key new`", len(raw), SecretKeySize)
		}
		if s.InsecurePlaintextSecrets {
			v.errorf("server.insecure_plaintext_secrets", "must not be true with server.secret_key: secrets are encrypted with the key")
		}
	}
	v.tls(s.TLS)
	v.adminUsers(s.AdminUsers)
}

var adminUserRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// bcrypt costs accepted in admin_users: below 10 is too cheap to guess
// against, above 14 makes every sign-in take seconds.
const (
	MinBcryptCost = 10
	MaxBcryptCost = 14
)

func (v *validator) adminUsers(users []AdminUser) {
	seen := map[string]int{}
	for i, u := range users {
		p := fmt.Sprintf("server.admin_users[%d]", i)
		switch {
		case u.Name == "":
			v.errorf(p+".name", "required")
		case !adminUserRe.MatchString(u.Name):
			v.errorf(p+".name", "must be 1 to 64 letters, digits, '.', '_', '@' or '-' (starting with a letter or digit), got %q", u.Name)
		default:
			if j, dup := seen[u.Name]; dup {
				v.errorf(p+".name", "%q is also server.admin_users[%d]", u.Name, j)
			}
			seen[u.Name] = i
		}
		h := u.PasswordHash.Value()
		if h == "" {
			v.errorf(p+".password_hash", "required: the bcrypt hash of the password; make one with `capstan admin hash-password`")
		} else if cost, err := bcrypt.Cost([]byte(h)); err != nil {
			v.errorf(p+".password_hash", "not a bcrypt hash ($2a$/$2b$/$2y$…, 60 characters): %v; make one with `capstan admin hash-password`", err)
		} else if cost < MinBcryptCost || cost > MaxBcryptCost {
			v.errorf(p+".password_hash", "bcrypt cost %d: use %d to %d (`capstan admin hash-password` uses %d)", cost, MinBcryptCost, MaxBcryptCost, bcrypt.DefaultCost)
		}
		switch u.Role {
		case RoleViewer, RoleOperator:
		case "":
			v.errorf(p+".role", "required: viewer or operator")
		default:
			v.errorf(p+".role", "must be viewer or operator, got %q", u.Role)
		}
	}
}

// SecretKeySize is the length of server.secret_key, decoded: AES-256.
const SecretKeySize = 32

func (v *validator) tls(t TLS) {
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		v.errorf("server.tls.key_file", "required with cert_file")
	case t.KeyFile != "" && t.CertFile == "":
		v.errorf("server.tls.cert_file", "required with key_file")
	case t.CertFile != "":
		cert, cerr := os.ReadFile(t.CertFile)
		if cerr != nil {
			v.errorf("server.tls.cert_file", "cannot read: %v", cerr)
		}
		key, kerr := os.ReadFile(t.KeyFile)
		if kerr != nil {
			v.errorf("server.tls.key_file", "cannot read: %v", kerr)
		}
		if cerr == nil && kerr == nil {
			if _, err := tls.X509KeyPair(cert, key); err != nil {
				v.errorf("server.tls", "cert_file and key_file are not a PEM certificate and its key: %v", err)
			}
		}
	}
	a := t.ACME
	if a == nil {
		return
	}
	if t.CertFile != "" || t.KeyFile != "" {
		v.errorf("server.tls.acme", "set either cert_file and key_file or acme, not both")
	}
	if len(a.Domains) == 0 {
		v.errorf("server.tls.acme.domains", "at least one domain is required")
	}
	for i, d := range a.Domains {
		if !hostnameRe.MatchString(d) {
			v.errorf(fmt.Sprintf("server.tls.acme.domains[%d]", i), "must be a host name such as ingest.example.com (no wildcard, port or scheme), got %q", d)
		}
	}
	if a.Email != "" && !strings.Contains(a.Email, "@") {
		v.errorf("server.tls.acme.email", "must be an email address, got %q", a.Email)
	}
	if a.DirectoryURL != "" {
		if u, err := url.Parse(a.DirectoryURL); err != nil || u.Scheme != "https" || u.Host == "" {
			v.errorf("server.tls.acme.directory_url", "must be an https URL, got %q", a.DirectoryURL)
		}
	}
}

// hostnameRe is a DNS host name with at least two labels.
var hostnameRe = regexp.MustCompile(`^(?i)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// RequireSecretKey returns the error `capstan serve` refuses to start with
// when destinations are configured without server.secret_key and without
// server.insecure_plaintext_secrets: the tokens they obtain at run time
// would be stored in plaintext. Other commands do not need the key.
func (c *Config) RequireSecretKey() error {
	if len(c.Destinations) == 0 || c.Server.SecretKey != "" || c.Server.InsecurePlaintextSecrets {
		return nil
	}
	return c.Errorf("server.secret_key", "required with destinations, to encrypt the LinkedIn tokens kept at rest: "+
		"generate a key with `capstan secret-key new` (or: head -c32 /dev/urandom | base64), keep it in the environment "+
		"and set secret_key: ${CAPSTAN_SECRET_KEY}; for development only, set server.insecure_plaintext_secrets: true")
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n <= 65535
}

func (v *validator) engine() {
	e := v.c.Engine
	if e.NatsURL != "" {
		for _, raw := range strings.Split(e.NatsURL, ",") {
			u, err := url.Parse(strings.TrimSpace(raw))
			if err != nil || u.Host == "" || !slices.Contains([]string{"nats", "tls", "ws", "wss"}, u.Scheme) {
				v.errorf("engine.nats_url", "must be a list of nats://host:port URLs separated by commas, got %q", raw)
			}
		}
	} else if e.Listen != "none" {
		host, port, err := net.SplitHostPort(e.Listen)
		if err != nil || !validPort(port) {
			v.errorf("engine.listen", `must be host:port on loopback (e.g. 127.0.0.1:0) or "none", got %q`, e.Listen)
		} else if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			v.errorf("engine.listen", "must be a loopback address (the embedded engine is not for remote clients; use nats_url for a cluster), got %q", e.Listen)
		}
	}
	if e.MonitorURL != "" {
		if e.NatsURL == "" {
			v.errorf("engine.monitor_url", "only applies with engine.nats_url")
		}
		for _, raw := range strings.Split(e.MonitorURL, ",") {
			u, err := url.Parse(strings.TrimSpace(raw))
			if err != nil || u.Host == "" || u.User != nil || (u.Scheme != "http" && u.Scheme != "https") {
				v.errorf("engine.monitor_url", "must be a list of http://host:port URLs (the NATS servers' monitoring ports) separated by commas, got %q", raw)
			}
		}
	}
	if e.Credentials != "" && e.NatsURL == "" {
		v.errorf("engine.credentials", "only applies with engine.nats_url")
	}
	if e.Replicas < 1 || e.Replicas > 5 {
		v.errorf("engine.replicas", "must be between 1 and 5, got %d", e.Replicas)
	}
	if e.NatsURL == "" && e.Replicas > 1 {
		v.errorf("engine.replicas", "the embedded engine is a single server: replicas must be 1 (set engine.nats_url for a cluster)")
	}
	if d := e.LeaseTTL.D(); d < 3*time.Second || d > 5*time.Minute {
		v.errorf("engine.lease_ttl", "must be between 3s and 5m, got %s", e.LeaseTTL)
	}
	if d := e.StartupTimeout.D(); d < time.Second || d > time.Hour {
		v.errorf("engine.startup_timeout", "must be between 1s and 1h, got %s", e.StartupTimeout)
	}
	if e.DedupWindow != 0 && e.DedupWindow != e.Dedup.Window {
		v.errorf("engine.dedup_window", "is the older name of engine.dedup.window: set only engine.dedup.window")
	}
	if d := e.Dedup.Window.D(); d < time.Minute || d > 30*24*time.Hour {
		v.errorf("engine.dedup.window", "must be between 1m and 30d, got %s", e.Dedup.Window)
	}
	if e.Retention.D() < e.Dedup.Window.D() {
		v.errorf("engine.retention", "must be at least engine.dedup.window (%s), got %s", e.Dedup.Window, e.Retention)
	}
	if e.Dedup.MemoryBytes < MinDedupMemory {
		v.errorf("engine.dedup.memory_bytes", "must be at least %d (32 MiB), got %d", MinDedupMemory, e.Dedup.MemoryBytes)
	}
	if e.MaxBytes < 0 {
		v.errorf("engine.max_bytes", "must not be negative")
	}
	if e.DLQ.MaxAge.D() < time.Hour {
		v.errorf("engine.dlq.max_age", "must be at least 1h, got %s", e.DLQ.MaxAge)
	}
	if e.DLQ.MaxBytes < MinDLQMaxBytes {
		v.errorf("engine.dlq.max_bytes", "must be at least %d (1 MiB), got %d", MinDLQMaxBytes, e.DLQ.MaxBytes)
	}
	g := e.GroupCommit
	if g.MaxEvents < 1 || g.MaxEvents > 1000 {
		v.errorf("engine.group_commit.max_events", "must be between 1 and 1000 (JetStream's atomic batch limit), got %d", g.MaxEvents)
	}
	if g.Linger < 0 || g.Linger.D() > 100*time.Millisecond {
		v.errorf("engine.group_commit.linger", "must be between 0 and 100ms, got %s", g.Linger)
	}
	if g.Inflight < 1 || g.Inflight > 16 {
		v.errorf("engine.group_commit.inflight", "must be between 1 and 16, got %d", g.Inflight)
	}
}

func (v *validator) sources() {
	if len(v.c.Sources) == 0 {
		v.errorf("sources", "at least one source is required")
		return
	}
	names := map[string]string{}
	keys := map[Secret]string{}
	for i, s := range v.c.Sources {
		p := fmt.Sprintf("sources[%d]", i)
		switch {
		case s.Name == "":
			v.errorf(p+".name", "required")
		case !nameRe.MatchString(s.Name):
			v.errorf(p+".name", "must be lower case letters, digits, '-' or '_' (at most 63), got %q", s.Name)
		case names[s.Name] != "":
			v.errorf(p+".name", "%q is already the name of %s", s.Name, names[s.Name])
		default:
			names[s.Name] = p
		}
		if len(s.Keys()) == 0 {
			v.errorf(p+".write_key", "required (or write_keys)")
		}
		for j, k := range s.Keys() {
			kp := p + ".write_key"
			if s.WriteKey == "" || j > 0 {
				kp = fmt.Sprintf("%s.write_keys[%d]", p, j-boolInt(s.WriteKey != ""))
			}
			switch {
			case k == "":
				v.errorf(kp, "must not be empty")
			case strings.ContainsAny(string(k), ":/ \t"):
				v.errorf(kp, "must not contain ':', '/' or spaces")
			case keys[k] != "":
				v.errorf(kp, "the same write key is already used by %s", keys[k])
			default:
				keys[k] = p
			}
		}
		for j, o := range s.AllowedOrigins {
			if o == "*" {
				continue
			}
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
				v.errorf(fmt.Sprintf("%s.allowed_origins[%d]", p, j), "must be an origin such as https://www.example.com (scheme and host, no path), got %q", o)
			}
		}
		if rl := s.RateLimit; rl.RequestsPerSecond < 0 || rl.Burst < 0 || !rl.Disabled && rl.RequestsPerSecond > 0 && rl.Burst < 1 {
			v.errorf(p+".rate_limit", "requests_per_second and burst must not be negative, and burst is at least 1 with a rate (0 or disabled: true means no limit)")
		}
		if b := s.BrowserBatching; b != nil && (b.Size < 1 || b.Size > 100 || b.Timeout.D() < 100*time.Millisecond) {
			v.errorf(p+".browser_batching", "size must be 1 to 100 and timeout at least 100ms")
		}
		switch s.Trust {
		case "", TrustBrowser, TrustServer:
		default:
			v.errorf(p+".trust", "must be %q or %q, got %q", TrustBrowser, TrustServer, s.Trust)
		}
		if iv := s.IdentityVerification; iv != nil {
			switch {
			case s.Trust == TrustServer:
				v.errorf(p+".identity_verification", "applies to browser sources only (trust is %q)", TrustServer)
			case iv.Secret == "":
				v.errorf(p+".identity_verification.secret", "required")
			case len(iv.Secret) < minVerificationSecret:
				v.errorf(p+".identity_verification.secret", "must be at least %d characters", minVerificationSecret)
			}
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (v *validator) destinations() {
	names := map[string]string{}
	sources := map[string]bool{}
	for _, s := range v.c.Sources {
		sources[s.Name] = true
	}
	for i, d := range v.c.Destinations {
		p := fmt.Sprintf("destinations[%d]", i)
		switch {
		case d.Name == "":
			v.errorf(p+".name", "required")
		case !nameRe.MatchString(d.Name):
			v.errorf(p+".name", "must be lower case letters, digits, '-' or '_' (at most 63), got %q", d.Name)
		case names[d.Name] != "":
			v.errorf(p+".name", "%q is already the name of %s", d.Name, names[d.Name])
		default:
			names[d.Name] = p
		}
		if d.Type != "linkedin" {
			v.errorf(p+".type", `unknown destination type %q (only "linkedin" exists)`, d.Type)
		}
		for j, s := range d.Sources {
			if !sources[s] {
				v.errorf(fmt.Sprintf("%s.sources[%d]", p, j), "no source is named %q", s)
			}
		}
		if u, err := url.Parse(d.APIBase); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.errorf(p+".api_base", "must be an http(s) URL such as https://api.linkedin.com, got %q", d.APIBase)
		}
		if !versionRe.MatchString(d.APIVersion) {
			v.errorf(p+".api_version", "must be a LinkedIn version YYYYMM such as %q, got %q", DefaultAPIVersion, d.APIVersion)
		}
		if d.AdAccount < 0 {
			v.errorf(p+".ad_account", "must be a positive account id")
		}
		v.auth(p+".auth", d.Auth)
		if d.BatchSize < 1 || d.BatchSize > 5000 {
			v.errorf(p+".batch_size", "must be between 1 and 5000 (LinkedIn's limit), got %d", d.BatchSize)
		}
		if d.Linger < 0 || d.Linger.D() > time.Minute {
			v.errorf(p+".linger", "must be between 0 and 1m, got %s", d.Linger)
		}
		if d.RateLimit.PerMinute < 1 || d.RateLimit.PerDay < 1 {
			v.errorf(p+".rate_limit", "per_minute and per_day must be positive")
		}
		if len(d.Mappings) == 0 {
			v.errorf(p+".mappings", "at least one mapping is required")
		}
		if d.EventIDCollision != "suffix" && d.EventIDCollision != "dead_letter" {
			v.errorf(p+".event_id_collision", `must be "suffix" or "dead_letter", got %q`, d.EventIDCollision)
		}
		v.reconcile(p+".reconcile", d.Reconcile)
		mnames := map[string]bool{}
		for j, m := range d.Mappings {
			v.mapping(fmt.Sprintf("%s.mappings[%d]", p, j), d, m, mnames)
		}
	}
}

func (v *validator) reconcile(p string, r Reconcile) {
	if r.Interval.D() < time.Hour {
		v.errorf(p+".interval", "must be at least 1h (LinkedIn's reporting changes slowly and has its own limits), got %s", r.Interval)
	}
	if r.Days < 1 || r.Days > 90 {
		v.errorf(p+".days", "must be between 1 and 90, got %d", r.Days)
	}
	if r.MinRatio < 0 || r.MinRatio > 1 {
		v.errorf(p+".min_ratio", "must be between 0 and 1, got %g", r.MinRatio)
	}
	if r.MinAccepted < 1 {
		v.errorf(p+".min_accepted", "must be at least 1, got %d", r.MinAccepted)
	}
}

func (v *validator) auth(p string, a Auth) {
	client := a.ClientID != "" && a.ClientSecret != ""
	if a.AccessToken == "" && a.RefreshToken == "" && !client {
		v.errorf(p+".access_token", "required (or client_id and client_secret, then run `capstan auth linkedin` to connect)")
	}
	if a.RefreshToken != "" && !client {
		v.errorf(p, "refresh_token, client_id and client_secret go together: set all three or none")
	} else if (a.ClientID != "") != (a.ClientSecret != "") {
		v.errorf(p, "client_id and client_secret go together: set both or neither")
	}
	for _, kv := range [][2]string{{"authorize_url", a.AuthorizeURL}, {"redirect_uri", a.RedirectURI}} {
		key, val := kv[0], kv[1]
		if val == "" {
			continue
		}
		if u, err := url.Parse(val); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.errorf(p+"."+key, "must be an absolute http(s) URL, got %q", val)
		} else if u.Fragment != "" || strings.Contains(val, "#") {
			v.errorf(p+"."+key, "must not contain a fragment (#): LinkedIn refuses it, got %q", val)
		}
	}
	if u, err := url.Parse(a.TokenURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.errorf(p+".token_url", "must be an http(s) URL, got %q", a.TokenURL)
	}
	if a.ExpiresAt != "" {
		if _, err := time.Parse(time.RFC3339, a.ExpiresAt); err != nil {
			v.errorf(p+".expires_at", "must be an RFC 3339 time such as 2027-01-31T00:00:00Z, got %q", a.ExpiresAt)
		}
	}
}

func (v *validator) mapping(p string, d Destination, m Mapping, names map[string]bool) {
	switch {
	case m.Name == "":
		v.errorf(p+".name", "required")
	case names[m.Name]:
		v.errorf(p+".name", "%q is already the name of another mapping of this destination", m.Name)
	default:
		names[m.Name] = true
	}
	rc := m.ConversionRule
	switch {
	case rc.ID == 0 && rc.Create == nil:
		v.errorf(p+".conversion_rule", "required: {id: N} for an existing rule or {create: {...}} to create one")
	case rc.ID != 0 && rc.Create != nil:
		v.errorf(p+".conversion_rule", "set either id or create, not both")
	case rc.ID < 0:
		v.errorf(p+".conversion_rule.id", "must be a positive rule id")
	case rc.Create != nil:
		v.ruleCreate(p+".conversion_rule.create", *rc.Create)
		if d.AdAccount == 0 {
			v.errorf(p+".conversion_rule.create", "needs the destination's ad_account")
		}
	}
	for k, c := range m.Campaigns {
		if c <= 0 {
			v.errorf(fmt.Sprintf("%s.campaigns[%d]", p, k), "must be a positive campaign id")
		}
	}
	if len(m.Campaigns) > 0 && d.AdAccount == 0 {
		v.errorf(p+".campaigns", "needs the destination's ad_account")
	}
	if m.Fields != nil && (len(m.Fields) == 0 || m.Fields[0] != '{') && string(m.Fields) != "null" {
		v.errorf(p+".fields", "must be a mapping of LinkedIn field names to values or directives")
	}
}

func (v *validator) ruleCreate(p string, r RuleCreate) {
	if r.Name == "" {
		v.errorf(p+".name", "required")
	}
	if !slices.Contains(RuleTypes, r.Type) {
		if r.Type == "" {
			v.errorf(p+".type", "required, one of %s", strings.Join(RuleTypes, ", "))
		} else {
			v.errorf(p+".type", "unknown conversion type %q; one of %s", r.Type, strings.Join(RuleTypes, ", "))
		}
	}
	if r.AttributionType != "LAST_TOUCH_BY_CAMPAIGN" && r.AttributionType != "LAST_TOUCH_BY_CONVERSION" {
		v.errorf(p+".attribution_type", "must be LAST_TOUCH_BY_CAMPAIGN or LAST_TOUCH_BY_CONVERSION, got %q", r.AttributionType)
	}
	allowed := []int{1, 7, 30, 90}
	if slices.Contains(yearWindowTypes, r.Type) {
		allowed = append(allowed, 365)
	}
	for _, w := range []struct {
		name string
		days int
	}{{"post_click_window_days", r.PostClickWindowDays}, {"view_through_window_days", r.ViewThroughWindowDays}} {
		if !slices.Contains(allowed, w.days) {
			v.errorf(p+"."+w.name, "must be one of %v for type %s, got %d", allowed, r.Type, w.days)
		}
	}
	switch r.ValueType {
	case "", "DYNAMIC", "NO_VALUE":
		if r.Value != nil {
			v.errorf(p+".value", "only allowed with value_type FIXED (value_type is %q)", r.ValueType)
		}
	case "FIXED":
		if r.Value == nil {
			v.errorf(p+".value", "required with value_type FIXED: {currency_code: USD, amount: \"49.90\"}")
		}
	default:
		v.errorf(p+".value_type", "must be DYNAMIC, FIXED or NO_VALUE, got %q", r.ValueType)
	}
	if val := r.Value; val != nil {
		if !currencyRE.MatchString(val.CurrencyCode) {
			v.errorf(p+".value.currency_code", "must be a three-letter upper-case ISO 4217 code such as USD, got %q", val.CurrencyCode)
		}
		if !amountRE.MatchString(val.Amount) {
			v.errorf(p+".value.amount", "must be a non-negative decimal such as \"49.90\", got %q", val.Amount)
		}
	}
	if r.AutoAssociationType != "" && r.AutoAssociationType != AutoAssociateAllCampaigns {
		v.errorf(p+".auto_association_type", "must be %s (the only value LinkedIn documents) or left out, got %q", AutoAssociateAllCampaigns, r.AutoAssociationType)
	}
}

// AutoAssociateAllCampaigns is the one auto_association_type value
// (linkedin-capi.md §12.1, §19 Q15).
const AutoAssociateAllCampaigns = "ALL_CAMPAIGNS"

var (
	currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)
	amountRE   = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)
)

package config

import (
	"encoding/json"
	"path/filepath"
)

// Config is the whole capstan.yaml. The zero value of every field means "the
// default", stated in the field's comment; Load fills defaults in and
// validates. A Config is read-only after Load and safe for concurrent use.
type Config struct {
	// Server is the HTTP listener and where local state lives.
	Server Server `yaml:"server"`
	// Engine is the event store: embedded NATS JetStream or an external cluster.
	Engine Engine `yaml:"engine"`
	// Identity configures the first-party identity graph.
	Identity Identity `yaml:"identity"`
	// Privacy configures privacy deletions (capstan privacy delete).
	Privacy Privacy `yaml:"privacy"`
	// Sources are the senders of events, each with its write keys. At least one.
	Sources []Source `yaml:"sources"`
	// Destinations receive conversions. Optional.
	Destinations []Destination `yaml:"destinations"`

	// File is the path the configuration was read from ("" when built in code).
	File string `yaml:"-"`
	// pos maps a field path ("sources[0].write_key") to its place in File.
	pos map[string]Pos
}

// Server configures the HTTP listener.
type Server struct {
	// Addr is the listen address, host:port. Default ":8080".
	Addr string `yaml:"addr"`
	// DataDir holds the embedded engine's store and local state. Default "./data".
	DataDir string `yaml:"data_dir"`
	// PublicURL is capstan's externally visible base URL
	// (https://t.example.com), an absolute http or https URL: the browser
	// settings document gives it to analytics-next as the host to send
	// events to, and may then be cached for 60s. Default: derived from each
	// request's Host header (X-Forwarded-Host from trusted proxies), and the
	// document is then never cached.
	PublicURL string `yaml:"public_url"`
	// TrustedProxies are IPs or CIDRs of reverse proxies whose
	// X-Forwarded-For and X-Forwarded-Host headers are believed. Default none.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// AdminToken protects the admin API (Bearer token) and signs in to the
	// console at /admin/ as an operator. With it or admin_users, `capstan
	// serve` serves the admin API and the console. Default: both off.
	AdminToken Secret `yaml:"admin_token"`
	// AdminUsers are the console's users, who sign in at /admin/ with a
	// name and password, each with a role: viewer (reads) or operator (also
	// installs tokens, replays dead letters, deletes people, sends test
	// events). Passwords are kept as bcrypt hashes: `capstan admin
	// hash-password` makes one. Default none.
	AdminUsers []AdminUser `yaml:"admin_users"`
	// SecretKey encrypts, with AES-256-GCM, the secrets capstan keeps at
	// rest: the LinkedIn tokens it refreshes or an operator installs at run
	// time, kept in the state bucket. 32 random bytes in standard base64,
	// usually ${CAPSTAN_SECRET_KEY}; `capstan secret-key new` prints one
	// (or: head -c32 /dev/urandom | base64). `capstan serve` with
	// destinations requires it unless insecure_plaintext_secrets is true;
	// `capstan secret-key rotate` changes it. Default none.
	SecretKey Secret `yaml:"secret_key"`
	// InsecurePlaintextSecrets keeps those tokens in plaintext instead:
	// for development only (`capstan demo` sets it). Must not be true with
	// secret_key. Default false.
	InsecurePlaintextSecrets bool `yaml:"insecure_plaintext_secrets"`
	// TLS makes the listener serve HTTPS, with a certificate from files or
	// from ACME (Let's Encrypt). Default: plain HTTP (behind a proxy that
	// terminates TLS).
	TLS TLS `yaml:"tls"`
	// OpsAddr is a second listen address, host:port (e.g.
	// "127.0.0.1:9090"), serving only /metrics, /healthz and /readyz (and
	// /debug/pprof/ with pprof), so that they can be kept off the public
	// port. /metrics then leaves the main port; /healthz and /readyz stay
	// on both. Default "": none.
	OpsAddr string `yaml:"ops_addr"`
	// MetricsAuth is who may read /metrics: "none" (anyone who reaches it,
	// the default) or "admin_token" (Authorization: Bearer <admin_token>,
	// which must then be set; applies on ops_addr too).
	MetricsAuth string `yaml:"metrics_auth"`
	// Pprof serves Go's runtime profiles (net/http/pprof) under
	// /debug/pprof/, to the admin token only (Authorization: Bearer
	// <admin_token>, which must then be set), on ops_addr when set, else
	// on addr: for finding where capstan's CPU or memory goes (`curl -H
	// "Authorization: Bearer $TOKEN" -o cpu.out
	// http://HOST/debug/pprof/profile?seconds=30`, then `go tool pprof
	// cpu.out`). A profile costs CPU while it runs. Default false.
	Pprof bool `yaml:"pprof"`
	// ReadTimeout bounds reading one request, body included. Default 30s.
	ReadTimeout Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing one response. Default 30s.
	WriteTimeout Duration `yaml:"write_timeout"`
	// IdleTimeout closes idle keep-alive connections. Default 120s.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// ShutdownGrace is how long in-flight requests may run after SIGTERM. Default 15s.
	ShutdownGrace Duration `yaml:"shutdown_grace"`
	// MaxConnections caps the client connections open at once, idle
	// keep-alive ones included; further connections wait in the system's
	// listen backlog until one closes. Default 10000.
	MaxConnections int `yaml:"max_connections"`
	// MaxInflightBodyBytes caps the request body bytes (decompressed)
	// that requests in progress hold together, counted as they arrive: a
	// connection that sent only headers holds none. A request that would
	// pass it waits up to 1s, then gets 503 unavailable with Retry-After,
	// which Segment clients retry. At least 1048576 (1 MiB). Default
	// 268435456 (256 MiB).
	MaxInflightBodyBytes int64 `yaml:"max_inflight_body_bytes"`
}

// AdminUser is one console user.
type AdminUser struct {
	// Name is what the user types to sign in, and how the audit log names
	// them: letters, digits and . _ @ - (up to 64). Required, unique.
	Name string `yaml:"name"`
	// PasswordHash is the bcrypt hash of the password ($2a$, $2b$ or
	// $2y$, cost 10 to 14), as `capstan admin hash-password` prints it;
	// may be ${VAR}. Required.
	PasswordHash Secret `yaml:"password_hash"`
	// Role is viewer or operator. Required.
	Role string `yaml:"role"`
}

// Admin user roles (AdminUser.Role).
const (
	RoleViewer   = "viewer"
	RoleOperator = "operator"
)

// AdminEnabled reports whether the admin API and the console are served:
// an admin token or an admin user is configured.
func (s Server) AdminEnabled() bool { return s.AdminToken.Value() != "" || len(s.AdminUsers) > 0 }

// TLS is the listener's certificate: cert_file and key_file, or acme.
type TLS struct {
	// CertFile is a PEM certificate chain, leaf first. With key_file.
	// Read again on SIGHUP (the old pair stays in use if the new one
	// fails). Default none.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of cert_file. With cert_file. Default none.
	KeyFile string `yaml:"key_file"`
	// ACME obtains and renews certificates automatically (TLS-ALPN-01:
	// server.addr must be reachable on port 443 from the internet under
	// each domain). Not with cert_file and key_file. Default off.
	ACME *ACME `yaml:"acme"`
}

// Enabled reports whether the listener serves HTTPS.
func (t TLS) Enabled() bool { return t.CertFile != "" || t.ACME != nil }

// ACME configures automatic certificates, for capstan on its first-party
// subdomain (ingest.example.com).
type ACME struct {
	// Domains are the host names to obtain certificates for; requests for
	// other names are refused. At least one; no wildcards.
	Domains []string `yaml:"domains"`
	// Email is the contact address given to the certificate authority
	// (expiry notices). Optional.
	Email string `yaml:"email"`
	// CacheDir keeps the account key and the certificates across
	// restarts (mode 0700). Default data_dir/acme.
	CacheDir string `yaml:"cache_dir"`
	// DirectoryURL is the ACME directory. Default Let's Encrypt's
	// production directory; its staging directory
	// (https://acme-staging-v02.api.letsencrypt.org/directory) for trials.
	DirectoryURL string `yaml:"directory_url"`
}

// Who may read /metrics (Server.MetricsAuth).
const (
	MetricsAuthNone       = "none"
	MetricsAuthAdminToken = "admin_token"
)

// Engine configures the event store.
type Engine struct {
	// NatsURL selects an external NATS cluster with JetStream
	// ("nats://n1:4222,nats://n2:4222"). Default "": embedded JetStream in
	// server.data_dir.
	NatsURL string `yaml:"nats_url"`
	// Credentials is a NATS .creds file for the external cluster. Default none.
	Credentials string `yaml:"credentials"`
	// Listen is where the embedded engine accepts NATS clients, so that
	// `capstan events|dlq|identity` and the nats CLI can reach a running
	// server. Loopback only, protected by a random token written to
	// data_dir/engine.json (mode 0600). Default "127.0.0.1:0" (random port);
	// "none" disables it. Ignored with nats_url.
	Listen string `yaml:"listen"`
	// Sync is "always" (fsync before every acknowledgement, the default) or an
	// interval such as "1s" (faster; loses up to that much on power loss).
	// With nats_url, the cluster's own jetstream.sync_interval decides.
	Sync SyncPolicy `yaml:"sync"`
	// Replicas of each stream and bucket (1 to 5). Default 1; use 3 on a cluster.
	Replicas int `yaml:"replicas"`
	// DedupWindow is the older name of dedup.window, still read; setting
	// both is an error.
	DedupWindow Duration `yaml:"dedup_window"`
	// Dedup configures per-event de-duplication: the on-disk index of the
	// (source, messageId) pairs stored within a window.
	Dedup Dedup `yaml:"dedup"`
	// GuardStore is where the eventId collision guard remembers, for 7
	// days, the eventIds sent per destination and conversion rule:
	// "jetstream" (the KV bucket eventids, shared by every replica on an
	// external cluster), "local" (an on-disk store in data_dir/eventids,
	// owned by the serving process: memory bounded whatever the number of
	// conversions; embedded engine only) or "auto" (the default: local
	// with the embedded engine, jetstream with nats_url). capstan backup
	// reaches the local store through the running capstan. Switching an
	// existing data directory to local moves the bucket's keys into the
	// store once, at start, and removes the bucket.
	GuardStore string `yaml:"guard_store"`
	// GuardMemoryBytes bounds the local guard store's memory (guard_store
	// local): pebble's memtables and block cache, and the filter of absent
	// keys, which grows 1.25 bytes per claim up to half of it and lets the
	// claim of a new eventId skip the disk: the default holds 6.7 million
	// claims; beyond them more and more claims read the store's tables.
	// The filter holds the claims in the store (the conversions of the
	// last 7 days) and those written since it was last rebuilt from them
	// (once the sweeps removed half of the claims it holds): at most twice
	// the claims of the 7 days. So a site sending more than 3.3 million
	// conversions in 7 days sets 5 bytes per such claim (at 2.5 bytes at
	// most 17% of claims read the tables, just before a rebuild):
	// 134217728 (128 MiB) holds 26 million, 3.8 million conversions a
	// day. At least 8388608 (8 MiB). Default 16777216 (16 MiB).
	GuardMemoryBytes int64 `yaml:"guard_memory_bytes"`
	// Compression is how capstan writes the EVENTS segments: "s2" (the
	// default: each segment compressed as one S2 block, about 7 times
	// smaller, and cheaper to store and to read) or "none" (plain, as
	// releases before compression wrote them). Readers take both whatever
	// the setting. Set none while a cluster's replicas are upgraded one by
	// one from a release that cannot read compressed segments (it would
	// skip them), and s2 once every replica runs this one.
	Compression string `yaml:"compression"`
	// Retention is how long accepted events are kept in the EVENTS stream.
	// Default 7d.
	Retention Duration `yaml:"retention"`
	// MaxBytes caps the EVENTS stream's size; 0 means unlimited. When full,
	// ingest answers 503 rather than dropping old events. Default 0.
	MaxBytes int64 `yaml:"max_bytes"`
	// GroupCommit gathers concurrent writes into groups made durable by one
	// fsync (with sync: always; the embedded engine writes a group and
	// capstan fsyncs the stream once, an external cluster gets one JetStream
	// atomic batch).
	GroupCommit GroupCommit `yaml:"group_commit"`
	// DLQ bounds the dead-letter queue (the DLQ stream) in age and size.
	DLQ DLQ `yaml:"dlq"`
	// LeaseTTL is how long a destination's delivery lease lasts without
	// renewal (nats_url only: one replica delivers each destination). The
	// holder renews it every third of it; after the holder dies another
	// replica resumes delivery within lease_ttl plus one fetch. 3s to 5m.
	// Default 10s.
	LeaseTTL Duration `yaml:"lease_ttl"`
	// MonitorURL lists the NATS servers' HTTP monitoring endpoints
	// ("http://n1:8222,http://n2:8222,http://n3:8222"), read once at start
	// to report each server's version and to check that its
	// jetstream.sync_interval is always (the NATS client protocol does not
	// expose it). nats_url only. Default "": not checked, a warning says so.
	MonitorURL string `yaml:"monitor_url"`
	// StartupTimeout is how long start-up waits for an external cluster
	// that is still forming (connection, streams and buckets are retried
	// with backoff, each retry logged) before it fails (nats_url only).
	// 1s to 1h. Default 2m.
	StartupTimeout Duration `yaml:"startup_timeout"`
}

// Dedup configures the de-duplication index (docs/storage.md): every
// (source, messageId) pair stored within the window is remembered on disk,
// with memory bounded independently of window and rate.
type Dedup struct {
	// Window is how long a (source, messageId) pair is remembered, 1m to
	// 30d, at most engine.retention (a lost index is rebuilt from the
	// events of the window). Default 24h (Segment's window).
	Window Duration `yaml:"window"`
	// MemoryBytes bounds the index's memory (caches, tables, filters), at
	// least 33554432 (32 MiB). Default 268435456 (256 MiB).
	MemoryBytes int64 `yaml:"memory_bytes"`
	// Dir holds the index, on a local disk. Default data_dir/dedup (also
	// with nats_url: each replica keeps its own index).
	Dir string `yaml:"dir"`
}

// DLQ bounds the dead-letter queue. When a limit is reached the oldest dead
// letters are dropped first (JetStream's DiscardOld); capstan_dlq_removed_total
// counts the dead letters no longer kept.
type DLQ struct {
	// MaxAge is how long a dead letter is kept, at least 1h. Default 30d.
	MaxAge Duration `yaml:"max_age"`
	// MaxBytes caps the dead-letter queue's size in bytes, at least 1048576
	// (1 MiB); beyond it the oldest dead letters are dropped. Default
	// 1073741824 (1 GiB).
	MaxBytes int64 `yaml:"max_bytes"`
}

// GroupCommit tunes how events are gathered into groups.
type GroupCommit struct {
	// MaxEvents per group, 1 to 1000 (JetStream's atomic batch limit).
	// Default 1000.
	MaxEvents int `yaml:"max_events"`
	// Linger is how long the first event of a batch may wait for others when
	// the store is idle. Default 0: a batch is written as soon as the previous
	// one is done, so waiting is only ever for the disk (0 to 100ms).
	Linger Duration `yaml:"linger"`
	// Inflight is how many groups may be written at once (1 to 16). Default 2.
	Inflight int `yaml:"inflight"`
}

// Identity configures the identity graph.
type Identity struct {
	// TTL is how long identifiers are kept after they were last seen.
	// Default 90d (LinkedIn's look-back window).
	TTL Duration `yaml:"ttl"`
	// Store is where the graph's profiles live: "jetstream" (a KV bucket of
	// the engine, shared by every replica on an external cluster), "local"
	// (an on-disk store in data_dir/identity, owned by the serving process:
	// memory bounded whatever the number of visitors; embedded engine only)
	// or "auto" (the default: local with the embedded engine, jetstream
	// with nats_url). Tools attached to a running capstan (identity show,
	// delete, privacy delete, backup) reach its local store through it,
	// so engine.listen does not change what auto picks; the nats CLI does
	// not see a local graph.
	Store string `yaml:"store"`
	// MemoryBytes bounds the local store's memory (store local): pebble's
	// memtables and block cache, and the filter of absent profiles, which
	// grows 1.25 bytes per profile up to half of it and lets the creates
	// of a new visitor's two profiles skip the disk: the default holds 13
	// million profiles; beyond them more and more creates read the store's
	// tables. The filter holds the stored profiles and those written since
	// it was last rebuilt from them (once the sweeps removed half of the
	// profiles it holds): at most twice the profiles within identity.ttl.
	// So a site with more than 6.7 million profiles within identity.ttl
	// (3.3 million visitors) sets 5 bytes per profile, 10 per visitor (at
	// 2.5 bytes at most 17% of creates read the tables, just before a
	// rebuild). At least 8388608 (8 MiB). Default 33554432 (32 MiB).
	MemoryBytes int64 `yaml:"memory_bytes"`
}

// Identity stores (Identity.Store).
const (
	IdentityStoreAuto      = "auto"
	IdentityStoreJetStream = "jetstream"
	IdentityStoreLocal     = "local"
)

// IdentityLocal reports whether the identity graph lives in the local
// store (identity.store, with auto resolved).
func (c *Config) IdentityLocal() bool {
	switch c.Identity.Store {
	case IdentityStoreLocal:
		return true
	case IdentityStoreJetStream:
		return false
	}
	return c.Engine.NatsURL == ""
}

// Segment compressions (Engine.Compression).
const (
	CompressionS2   = "s2"
	CompressionNone = "none"
)

// Guard stores (Engine.GuardStore).
const (
	GuardStoreAuto      = "auto"
	GuardStoreJetStream = "jetstream"
	GuardStoreLocal     = "local"
)

// GuardLocal reports whether the eventId collision guard lives in the
// local store (engine.guard_store, with auto resolved).
func (c *Config) GuardLocal() bool {
	switch c.Engine.GuardStore {
	case GuardStoreLocal:
		return true
	case GuardStoreJetStream:
		return false
	}
	return c.Engine.NatsURL == ""
}

// GuardDir is the local eventId guard store's directory: data_dir/eventids.
func (c *Config) GuardDir() string { return filepath.Join(c.Server.DataDir, DefaultGuardDir) }

// IdentityDir is the local identity store's directory: data_dir/identity.
func (c *Config) IdentityDir() string { return filepath.Join(c.Server.DataDir, DefaultIdentityDir) }

// Privacy configures what a privacy deletion leaves behind.
type Privacy struct {
	// Suppress keeps, after a privacy deletion, a suppression entry per
	// deleted id (userId, anonymousId, email; stored only as SHA-256), so
	// that later events carrying them are stored but neither delivered nor
	// added to the identity graph. Default true. false: deletions keep
	// none, and delivery checks none (entries kept before are ignored).
	Suppress *bool `yaml:"suppress"`
	// SuppressionTTL is how long a suppression entry lasts. Default 365d.
	// Minimum 1h.
	SuppressionTTL Duration `yaml:"suppression_ttl"`
}

// Suppresses reports whether privacy deletions keep suppression entries.
func (p Privacy) Suppresses() bool { return p.Suppress == nil || *p.Suppress }

// Source is one sender of events (a website, a back end).
type Source struct {
	// Name identifies the source in metrics, logs and stream subjects:
	// lower case letters, digits, '-' and '_'. Required, unique.
	Name string `yaml:"name"`
	// WriteKey is the source's write key. One of write_key / write_keys is required.
	WriteKey Secret `yaml:"write_key"`
	// WriteKeys lists further write keys (for key rotation).
	WriteKeys []Secret `yaml:"write_keys"`
	// AllowedOrigins restricts browser origins ("https://www.example.com").
	// Default: any origin.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// Disabled sources answer 403 source_disabled. Default false.
	Disabled bool `yaml:"disabled"`
	// RateLimit caps the requests per second of the source's write keys
	// together; over it, requests get 429 rate_limited with Retry-After,
	// which every Segment client retries. Default off, as
	// segment-ingest.md §1.11 specifies; 1000 requests/s with a burst of
	// 2000 suits a busy site (about 15,000 events/s from analytics-node).
	RateLimit RateLimit `yaml:"rate_limit"`
	// BrowserBatching, when set, switches analytics-next browsers to batching
	// mode through the settings document. Default off (one request per event).
	BrowserBatching *BrowserBatching `yaml:"browser_batching"`
	// CookieDomain is the Domain attribute of the capstan_lfi cookie, for
	// capstan on a first-party subdomain (".example.com"). Default: host-only.
	CookieDomain string `yaml:"cookie_domain"`
	// Trust says whether what the source's events tell the identity graph
	// about a userId may enrich other sources' conversions: "server" (a back
	// end whose write key is secret: yes) or "browser" (a web page, whose
	// write key anyone can read: a link its events make between a userId
	// and an email, li_fat_id or anonymous id enriches only its own
	// conversions, unless identity_verification vouches for the userId).
	// Default: "browser" when allowed_origins is set; otherwise "server",
	// but a request carrying an Origin header (every browser sends one,
	// capstan.js included) is taken as a browser's. A source whose write
	// key is in a web page should say "browser" (or list allowed_origins):
	// curl sends no Origin.
	Trust string `yaml:"trust"`
	// IdentityVerification lets a browser source's links enrich every
	// source's conversions when the site's back end signs the userId.
	// Default off.
	IdentityVerification *IdentityVerification `yaml:"identity_verification"`
}

// Trust levels of a source (Source.Trust).
const (
	TrustBrowser = "browser"
	TrustServer  = "server"
)

// IdentityVerification is a browser source's identity verification: the
// site's back end computes the lower-case hex HMAC-SHA256 of the userId
// with Secret and gives it to the page, which sends it with its events as
// context.capstan.userHash (capstan.js: the userHash option of identify or
// load). An event whose userHash matches its userId is verified: its links
// enrich every source's conversions. capstan removes the userHash before
// storing the event.
type IdentityVerification struct {
	// Secret is the HMAC key, shared with the site's back end and never
	// with the browser: at least 16 characters (32 random bytes, hex or
	// base64, recommended), usually ${ENV}. Required.
	Secret Secret `yaml:"secret"`
}

// BrowserTrust reports whether every event of the source is a browser's
// (Trust "browser", or unset with allowed_origins). When false, the
// source is a server's, except for requests with an Origin header when
// Trust is unset (see Trust).
func (s *Source) BrowserTrust() bool {
	return s.Trust == TrustBrowser || s.Trust == "" && len(s.AllowedOrigins) > 0
}

// Keys returns every write key of the source.
func (s *Source) Keys() []Secret {
	keys := make([]Secret, 0, 1+len(s.WriteKeys))
	if s.WriteKey != "" {
		keys = append(keys, s.WriteKey)
	}
	return append(keys, s.WriteKeys...)
}

// RateLimit is a token bucket.
type RateLimit struct {
	// RequestsPerSecond is the sustained rate; 0 (the default) means no
	// limit.
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	// Burst is the bucket size. Default: two seconds' worth of
	// RequestsPerSecond (at least 1).
	Burst int `yaml:"burst"`
	// Disabled turns a configured limit off (benchmarks, trusted bulk
	// imports). Default false.
	Disabled bool `yaml:"disabled"`
}

// BrowserBatching is analytics-next's batching delivery strategy.
type BrowserBatching struct {
	// Size is events per batch. Default 10.
	Size int `yaml:"size"`
	// Timeout is the longest an event waits in the browser. Default 5s.
	Timeout Duration `yaml:"timeout"`
}

// Destination is where conversions go. Only type "linkedin" exists for now.
type Destination struct {
	// Name identifies the destination in metrics, logs and the CLI. Required, unique.
	Name string `yaml:"name"`
	// Type is the destination kind. Default and only value "linkedin".
	Type string `yaml:"type"`
	// DisplayName is the key looked up in an event's integrations object.
	// Default "LinkedIn Conversions API".
	DisplayName string `yaml:"display_name"`
	// Sources limits the destination to these sources. Default: all.
	Sources []string `yaml:"sources"`
	// ConsentCategories must all be granted in context.consent.categoryPreferences
	// (when the event carries preferences). Default ["Advertising"]; [] disables.
	ConsentCategories []string `yaml:"consent_categories"`
	// APIBase is LinkedIn's API origin. Default "https://api.linkedin.com";
	// the sandbox's URL in demos and tests.
	APIBase string `yaml:"api_base"`
	// APIVersion is the LinkedIn-Version header, YYYYMM. Default "202609".
	APIVersion string `yaml:"api_version"`
	// AdAccount is the sponsored ad account id. Required for rule creation.
	AdAccount int64 `yaml:"ad_account"`
	// Auth holds the OAuth credentials.
	Auth Auth `yaml:"auth"`
	// BatchSize is the most conversions per request, 1 to 5000. Default 5000.
	BatchSize int `yaml:"batch_size"`
	// Linger is how long a batch waits to fill. Default 1s.
	Linger Duration `yaml:"linger"`
	// RateLimit is LinkedIn's per-token request limit.
	RateLimit DestinationRateLimit `yaml:"rate_limit"`
	// Mappings turn events into conversions. At least one.
	Mappings []Mapping `yaml:"mappings"`
	// Enrich is the default of its mappings' enrich (linkedin-capi.md
	// §15.2): false sends only what each fields map yields, as Segment
	// does. Default true.
	Enrich *bool `yaml:"enrich"`
	// EventIDCollision is what happens to a conversion that repeats the eventId of another conversion of the same rule with different content (value, currency, time or identifiers) within 7 days: "suffix" sends it under the eventId "<eventId>-<8 hex of its content>" (the same content always gets the same one), "dead_letter" keeps it in the DLQ with reason event_id_collision. Default "suffix".
	EventIDCollision string `yaml:"event_id_collision"`
	// Reconcile compares the conversions LinkedIn reports per rule and day with those it accepted (capstan reconcile; needs the r_ads_reporting scope).
	Reconcile Reconcile `yaml:"reconcile"`
}

// Reconcile configures a destination's reconciliation with LinkedIn's
// conversion reporting (adAnalytics).
type Reconcile struct {
	// Interval is how often `capstan serve` reconciles. Default 6h (spec linkedin-capi.md §21.9).
	Interval Duration `yaml:"interval"`
	// Disabled turns the periodic reconciliation off (capstan reconcile still works).
	Disabled bool `yaml:"disabled"`
	// Days is how many UTC days back are compared, 1 to 90. Default 14.
	Days int `yaml:"days"`
	// MinRatio flags a rule whose reported/accepted ratio over its mature days (older than 72 h) is below it, 0 to 1. Default 0.2.
	MinRatio float64 `yaml:"min_ratio"`
	// MinAccepted is how many conversions a rule's mature days must have been accepted before it can be flagged. Default 50.
	MinAccepted int `yaml:"min_accepted"`
}

// Auth holds a destination's OAuth credentials.
type Auth struct {
	// AccessToken is the member access token. Required, unless client_id
	// and client_secret are set and `capstan auth linkedin` (or the
	// console's Connect LinkedIn) obtains the tokens; until then the
	// destination is paused.
	AccessToken Secret `yaml:"access_token"`
	// ExpiresAt is when the access token expires (RFC 3339), for warnings. Optional.
	ExpiresAt string `yaml:"expires_at"`
	// RefreshToken, ClientID and ClientSecret allow automatic refresh. Optional;
	// a refresh token needs the client id and secret, which go together and
	// also serve to connect and to introspect the token.
	RefreshToken Secret `yaml:"refresh_token"`
	ClientID     Secret `yaml:"client_id"`
	ClientSecret Secret `yaml:"client_secret"`
	// TokenURL is LinkedIn's OAuth token endpoint, used to refresh.
	// Default "https://www.linkedin.com/oauth/v2/accessToken"; the
	// sandbox's /oauth/v2/accessToken in demos and tests.
	TokenURL string `yaml:"token_url"`
	// AuthorizeURL is LinkedIn's authorization page, where connecting
	// (`capstan auth linkedin`, the console's Connect LinkedIn) sends the
	// member. Default: token_url's sibling /authorization
	// ("https://www.linkedin.com/oauth/v2/authorization").
	AuthorizeURL string `yaml:"authorize_url"`
	// RedirectURI is the redirect URL registered on the LinkedIn app (its
	// Auth tab) for connecting: for the console, capstan's public admin
	// address plus /admin/oauth/callback
	// ("https://capstan.example.com/admin/oauth/callback"); a loopback
	// http://127.0.0.1:PORT/... URL is used by `capstan auth linkedin`
	// (default there http://127.0.0.1:8765/oauth/linkedin/callback). No
	// fragment (#). Optional.
	RedirectURI string `yaml:"redirect_uri"`
}

// DestinationRateLimit is LinkedIn's per-token limit.
type DestinationRateLimit struct {
	// PerMinute requests. Default 600.
	PerMinute int `yaml:"per_minute"`
	// PerDay requests. Default 300000.
	PerDay int `yaml:"per_day"`
}

// Mapping selects events with a trigger and builds one conversion from each.
type Mapping struct {
	// Name identifies the mapping. Required, unique within the destination.
	Name string `yaml:"name"`
	// Trigger is Segment's subscription text, e.g. `type = "track" and event = "Sign Up"`.
	// Default `type = "track"`.
	Trigger string `yaml:"trigger"`
	// Disabled mappings match nothing. Default false.
	Disabled bool `yaml:"disabled"`
	// ConversionRule names an existing rule (id) or one to create (create).
	ConversionRule ConversionRule `yaml:"conversion_rule"`
	// Campaigns are campaign ids to associate with the rule.
	Campaigns []int64 `yaml:"campaigns"`
	// Fields is the Segment mapping-kit field map, key order preserved.
	// Keys left out take the Segment defaults; `key: null` removes a default.
	Fields RawJSON `yaml:"fields"`
	// Enrich fills an empty linkedInUUID or email of this mapping's
	// conversions (linkedin-capi.md §15.2): li_fat_id from the event's page
	// URL (context.page.url, then context.page.search), then
	// properties.li_fat_id / context.li_fat_id, then the capstan_lfi cookie,
	// then the identity graph (li_fat_id and email hash). false is strict
	// Segment behaviour: only what the fields map yields is sent. Default:
	// the destination's enrich (true).
	Enrich *bool `yaml:"enrich"`
}

// Enriches reports whether the mapping's conversions are enriched
// (Mapping.Enrich, else the destination's, else true).
func (m Mapping) Enriches(d Destination) bool {
	switch {
	case m.Enrich != nil:
		return *m.Enrich
	case d.Enrich != nil:
		return *d.Enrich
	}
	return true
}

// ConversionRule is either an existing rule (ID) or one to create.
type ConversionRule struct {
	// ID of an existing CONVERSIONS_API rule.
	ID int64 `yaml:"id"`
	// Create describes a rule to create once (its id is kept in the state bucket).
	Create *RuleCreate `yaml:"create"`
}

// RuleCreate describes a conversion rule to create.
type RuleCreate struct {
	// Name of the rule in Campaign Manager. Required.
	Name string `yaml:"name"`
	// Type is the conversion type (SIGN_UP, PURCHASE, KEY_PAGE_VIEW, …). Required.
	Type string `yaml:"type"`
	// AttributionType is LAST_TOUCH_BY_CAMPAIGN (default) or LAST_TOUCH_BY_CONVERSION.
	AttributionType string `yaml:"attribution_type"`
	// PostClickWindowDays is 1, 7, 30 (default) or 90 (365 for some types).
	PostClickWindowDays int `yaml:"post_click_window_days"`
	// ViewThroughWindowDays is 1, 7 (default), 30 or 90 (365 for some types).
	ViewThroughWindowDays int `yaml:"view_through_window_days"`
	// ValueType is the rule's value method (valueType, linkedin-capi.md
	// §12.1): DYNAMIC (each conversion's conversionValue), FIXED (the rule's
	// value) or NO_VALUE. Default: not sent (LinkedIn's default, DYNAMIC).
	ValueType string `yaml:"value_type"`
	// Value is the rule's fixed value, required with value_type FIXED and
	// only allowed with it.
	Value *RuleValue `yaml:"value"`
	// Enabled is the rule's enabled flag: only enabled rules count
	// conversions. Default true.
	Enabled *bool `yaml:"enabled"`
	// AutoAssociationType ALL_CAMPAIGNS associates every campaign of the ad
	// account with the rule when capstan creates it (linkedin-capi.md
	// §12.1, the only value LinkedIn documents). It applies at creation
	// only: for a rule that already exists capstan reports it and changes
	// nothing (add campaigns with campaigns: or in Campaign Manager).
	// Default: none.
	AutoAssociationType string `yaml:"auto_association_type"`
}

// RuleValue is a conversion rule's fixed value.
type RuleValue struct {
	// CurrencyCode is an ISO 4217 code such as USD. Required.
	CurrencyCode string `yaml:"currency_code"`
	// Amount is a non-negative decimal such as "49.90". Required.
	Amount string `yaml:"amount"`
}

// RawJSON is a YAML subtree converted to JSON text with key order preserved.
// It is nil when the key was absent.
type RawJSON json.RawMessage

// Pos is a position in the configuration file.
type Pos struct{ Line, Col int }

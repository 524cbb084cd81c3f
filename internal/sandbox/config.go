package sandbox

import (
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Defaults of Config. A zero Config field takes the value named here.
const (
	DefaultAdAccount          int64  = 508747394
	DefaultMember                    = "Xy12AbCd"
	DefaultClientID                  = "sandbox-client"
	DefaultClientSecret              = "sandbox-secret"
	DefaultLatestVersion             = "202609"
	DefaultRatePerMinute             = 600
	DefaultRatePerDay                = 300000
	DefaultOtherRatePerMinute        = 100
	DefaultFutureTolerance           = 5 * time.Minute
	DefaultEventWindow               = 90 * 24 * time.Hour
	DefaultMaxConversions            = 100000
	DefaultMaxDedupKeys              = 200000
	DefaultDedupWindow               = 48 * time.Hour
	DefaultMaxRequestLog             = 1000
	DefaultMaxRequestLogBody         = 64 << 10
	DefaultMaxBodyBytes       int64  = 32 << 20
	DefaultMaxHang                   = 10 * time.Minute
	DefaultStateInterval             = time.Second
	DefaultSeed               uint64 = 1

	// AccessTokenTTL is the lifetime of an access token (spec §6.2).
	AccessTokenTTL = 60 * 24 * time.Hour
	// RefreshTokenTTL is the lifetime of a refresh token from the original
	// authorisation; refreshing never extends it (spec §6.2).
	RefreshTokenTTL = 365 * 24 * time.Hour
	// MaxBatch is the largest BATCH_CREATE LinkedIn accepts (spec §9.1).
	MaxBatch = 5000
)

// Values of Config.RuleStatusUpdates (switch rule_status.capi_updates,
// spec §22.4).
const (
	RuleStatusBoth             = "both"
	RuleStatusLastCallbackOnly = "last_callback_only"
	RuleStatusFirstPartyOnly   = "first_party_only"
	RuleStatusNone             = "none"
)

// BatchMode selects how a BATCH_CREATE with invalid elements is answered
// (spec §9.3, switch batch_mode).
type BatchMode string

// Batch modes.
const (
	// BatchAllOrNothing fails the whole batch with one 422 or 400 and stores
	// nothing, as LinkedIn has always been observed to do. The default.
	BatchAllOrNothing BatchMode = "all_or_nothing"
	// BatchPartial answers 200 with a status per element and stores the
	// valid elements.
	BatchPartial BatchMode = "partial"
)

// Config configures a Server. It is passed by value to New; every zero field
// means the default stated in its comment. Field names follow the switches
// of spec §18.4; where the spec's default is "on", the field is the negation
// so that the zero value keeps the spec's default.
type Config struct {
	// Now is the clock. Token expiry, the event window, version activity and
	// rate-limit windows all read it. Default time.Now. The admin endpoint
	// POST /_sandbox/clock adds an offset on top of it.
	Now func() time.Time

	// Seed seeds the generator of rule ids, generated tokens, X-LI-UUID
	// values and probabilistic faults, so runs are reproducible. Default 1.
	Seed uint64

	// AdAccount is the id of the seeded main ad account, on which the seeded
	// member is ACCOUNT_MANAGER and which holds the seeded campaigns and
	// rules. Default 508747394.
	AdAccount int64

	// Tokens are access tokens registered at start and again by Reset. A
	// token for an account that does not exist creates that account.
	Tokens []TokenSpec

	// ClientID and ClientSecret identify the one OAuth application known to
	// the sandbox (spec §6). Defaults "sandbox-client" / "sandbox-secret".
	ClientID     string
	ClientSecret string

	// LatestVersion is the newest released API version (YYYYMM). A version
	// is active when it is well-formed, not after max(LatestVersion, the
	// clock's current month) and not past its sunset (the 15th of the same
	// month one year later, spec §4). Default "202609", capstan's pinned
	// version, so that tests using the spec's clock (2026-01-01) can use it.
	LatestVersion string
	// SunsetVersions are versions treated as sunset whatever the clock says.
	SunsetVersions []string

	// RatePerMinute and RatePerDay limit /rest/conversionEvents requests per
	// access token in fixed UTC minute and day windows (spec §11).
	// Defaults 600 and 300000; negative means unlimited.
	RatePerMinute int
	RatePerDay    int
	// OtherRatePerMinute limits every other /rest endpoint per token and
	// minute. Default 100; negative means unlimited.
	OtherRatePerMinute int
	// SendRetryAfter adds Retry-After (seconds to the end of the window) to
	// 429 answers. Default off, as LinkedIn does not document it.
	SendRetryAfter bool

	// LaxHashFormat turns off strict_hash_format: SHA256_EMAIL and
	// SHA256_IP_ADDRESS values are then not checked for 64 hex characters.
	// Default false (checked).
	LaxHashFormat bool
	// StrictUnknownFields reports unknown event fields as 422. Default off.
	StrictUnknownFields bool
	// AcceptAxciomAlias accepts the misspelt idType AXCIOM_ID. Default off.
	AcceptAxciomAlias bool
	// RejectLiURNNamespace turns off accept_li_urn_namespace: events naming
	// their rule as urn:li:llaPartnerConversion:{id} are then rejected (B1).
	// Default false (accepted).
	RejectLiURNNamespace bool
	// RejectDisabledRule rejects events for a disabled rule (B1). Default off.
	RejectDisabledRule bool
	// FutureTolerance is how far in the future conversionHappenedAt may be.
	// Default 5 minutes; negative means no tolerance at all.
	FutureTolerance time.Duration
	// EventWindow is how old conversionHappenedAt may be. Default 90 days.
	EventWindow time.Duration
	// BatchMode is BatchAllOrNothing (default) or BatchPartial.
	BatchMode BatchMode
	// RuleStatusDelay is how long after an accepted event the rule's
	// lastCallbackAt / latestFirstPartyCallbackAt show it (switch
	// rule_status.delay, spec §22.4). Default 0 (at once).
	RuleStatusDelay time.Duration
	// RuleStatusUpdates names the rule fields an accepted event updates
	// (switch rule_status.capi_updates): RuleStatusBoth (default),
	// RuleStatusLastCallbackOnly, RuleStatusFirstPartyOnly or
	// RuleStatusNone.
	RuleStatusUpdates string
	// EnforceFieldLengths enforces 35/35/50/50/64 characters for firstName,
	// lastName, companyName, title and eventId (422). Default off.
	EnforceFieldLengths bool

	// RotateRefreshToken makes a refresh mint a new refresh token string
	// with the same absolute expiry; the old string stops working.
	// Default off (the same string is returned).
	RotateRefreshToken bool
	// OAuthExpiredError is the "error" value for an expired, revoked or
	// unknown refresh token: "invalid_request" (default) or "invalid_grant".
	OAuthExpiredError string

	// MaxConversions bounds the accepted conversions kept for read-back
	// (oldest dropped first), and separately the de-duplicated repeats kept
	// for /_sandbox/records. Default 100000.
	MaxConversions int
	// MaxDedupKeys bounds the eventId de-duplication set (oldest dropped
	// first). Default 200000.
	MaxDedupKeys int
	// DedupWindow is how long an eventId marks a repeat for the same rule
	// as a duplicate (DuplicateOf, left out of /_sandbox/conversions).
	// Default 48 hours. Reports count repeats unless
	// Reporting.DedupEventIDWindow is set.
	DedupWindow time.Duration
	// MaxRequestLog bounds the request log of /_sandbox/requests.
	// Default 1000; negative turns the log off.
	MaxRequestLog int
	// MaxRequestLogBody bounds each logged request and response body in
	// bytes (longer ones are cut and marked). Default 65536.
	MaxRequestLogBody int
	// MaxBodyBytes bounds request bodies; larger ones get 413.
	// Default 32 MiB.
	MaxBodyBytes int64
	// MaxHang bounds how long a "hang" fault holds a request when the client
	// never gives up. Default 10 minutes.
	MaxHang time.Duration

	// StateFile, when set, persists accounts, campaigns, rules, associations,
	// tokens and accepted conversions as JSON: loaded by New when present,
	// written atomically at most every StateInterval after a change and by
	// Save. Default none (memory only).
	StateFile string
	// StateInterval throttles state file writes. Default 1 second.
	StateInterval time.Duration

	// Reporting configures GET /rest/adAnalytics (spec §21.10); POST
	// /_sandbox/reporting changes it at run time.
	Reporting Reporting
}

// TokenSpec describes an access token to register.
type TokenSpec struct {
	// Token is the access token string. Required.
	Token string `json:"token"`
	// AdAccount is the account on which the token's member gets Role.
	// Default Config.AdAccount.
	AdAccount int64 `json:"ad_account,omitempty"`
	// Member is the id of the token's member (urn:li:person:{Member}).
	// Default "Xy12AbCd".
	Member string `json:"member,omitempty"`
	// Role is the member's role on AdAccount. Default ACCOUNT_MANAGER.
	Role string `json:"role,omitempty"`
	// Scopes of the token. Default r_ads and rw_conversions.
	Scopes []string `json:"scopes,omitempty"`
	// IssuedAt is when the token was minted. Default now.
	IssuedAt time.Time `json:"issued_at,omitzero"`
	// TTL is the token's lifetime from IssuedAt. Default 60 days.
	TTL time.Duration `json:"ttl,omitempty"`
	// RefreshToken, when set, registers a refresh token for the same member
	// and scopes, valid RefreshTTL from IssuedAt.
	RefreshToken string `json:"refresh_token,omitempty"`
	// RefreshTTL is the refresh token's lifetime. Default 365 days.
	RefreshTTL time.Duration `json:"refresh_ttl,omitempty"`
}

var versionRE = regexp.MustCompile(`^[0-9]{4}(0[1-9]|1[0-2])$`)

// withDefaults returns cfg with every zero field set to its default, and all
// problems found.
func (cfg Config) withDefaults() (Config, error) {
	var errs []error
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Seed == 0 {
		cfg.Seed = DefaultSeed
	}
	if cfg.AdAccount == 0 {
		cfg.AdAccount = DefaultAdAccount
	}
	if cfg.AdAccount < 0 {
		errs = append(errs, fmt.Errorf("ad account %d: must be positive", cfg.AdAccount))
	}
	if cfg.AdAccount == otherAccountID || cfg.AdAccount == viewerAccountID {
		errs = append(errs, fmt.Errorf("ad account %d: reserved for a seeded account", cfg.AdAccount))
	}
	if cfg.ClientID == "" {
		cfg.ClientID = DefaultClientID
	}
	if cfg.ClientSecret == "" {
		cfg.ClientSecret = DefaultClientSecret
	}
	if cfg.LatestVersion == "" {
		cfg.LatestVersion = DefaultLatestVersion
	}
	if !versionRE.MatchString(cfg.LatestVersion) {
		errs = append(errs, fmt.Errorf("latest version %q: want YYYYMM", cfg.LatestVersion))
	}
	for _, v := range cfg.SunsetVersions {
		if !versionRE.MatchString(v) {
			errs = append(errs, fmt.Errorf("sunset version %q: want YYYYMM", v))
		}
	}
	cfg.RatePerMinute = defaultInt(cfg.RatePerMinute, DefaultRatePerMinute)
	cfg.RatePerDay = defaultInt(cfg.RatePerDay, DefaultRatePerDay)
	cfg.OtherRatePerMinute = defaultInt(cfg.OtherRatePerMinute, DefaultOtherRatePerMinute)
	if cfg.FutureTolerance == 0 {
		cfg.FutureTolerance = DefaultFutureTolerance
	} else if cfg.FutureTolerance < 0 {
		cfg.FutureTolerance = 0
	}
	if cfg.EventWindow == 0 {
		cfg.EventWindow = DefaultEventWindow
	}
	if cfg.EventWindow < 0 {
		errs = append(errs, fmt.Errorf("event window %s: must be positive", cfg.EventWindow))
	}
	switch cfg.BatchMode {
	case "":
		cfg.BatchMode = BatchAllOrNothing
	case BatchAllOrNothing, BatchPartial:
	default:
		errs = append(errs, fmt.Errorf("batch mode %q: want %q or %q", cfg.BatchMode, BatchAllOrNothing, BatchPartial))
	}
	switch cfg.RuleStatusUpdates {
	case "":
		cfg.RuleStatusUpdates = RuleStatusBoth
	case RuleStatusBoth, RuleStatusLastCallbackOnly, RuleStatusFirstPartyOnly, RuleStatusNone:
	default:
		errs = append(errs, fmt.Errorf("rule status updates %q: want %s, %s, %s or %s", cfg.RuleStatusUpdates,
			RuleStatusBoth, RuleStatusLastCallbackOnly, RuleStatusFirstPartyOnly, RuleStatusNone))
	}
	if cfg.RuleStatusDelay < 0 {
		errs = append(errs, fmt.Errorf("rule status delay %s: must not be negative", cfg.RuleStatusDelay))
	}
	switch cfg.OAuthExpiredError {
	case "":
		cfg.OAuthExpiredError = "invalid_request"
	case "invalid_request", "invalid_grant":
	default:
		errs = append(errs, fmt.Errorf("oauth expired error %q: want invalid_request or invalid_grant", cfg.OAuthExpiredError))
	}
	cfg.MaxConversions = defaultInt(cfg.MaxConversions, DefaultMaxConversions)
	if cfg.MaxConversions < 0 {
		errs = append(errs, fmt.Errorf("max conversions %d: must be positive", cfg.MaxConversions))
	}
	cfg.MaxDedupKeys = defaultInt(cfg.MaxDedupKeys, DefaultMaxDedupKeys)
	if cfg.MaxDedupKeys < 0 {
		errs = append(errs, fmt.Errorf("max dedup keys %d: must be positive", cfg.MaxDedupKeys))
	}
	if cfg.DedupWindow == 0 {
		cfg.DedupWindow = DefaultDedupWindow
	}
	if cfg.DedupWindow < 0 {
		errs = append(errs, fmt.Errorf("dedup window %s: must be positive", cfg.DedupWindow))
	}
	cfg.MaxRequestLog = defaultInt(cfg.MaxRequestLog, DefaultMaxRequestLog)
	cfg.MaxRequestLogBody = defaultInt(cfg.MaxRequestLogBody, DefaultMaxRequestLogBody)
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("max body bytes %d: must be positive", cfg.MaxBodyBytes))
	}
	if cfg.MaxHang <= 0 {
		cfg.MaxHang = DefaultMaxHang
	}
	if cfg.StateInterval <= 0 {
		cfg.StateInterval = DefaultStateInterval
	}
	for i, ts := range cfg.Tokens {
		if err := ts.check(); err != nil {
			errs = append(errs, fmt.Errorf("token %d: %w", i, err))
		}
	}
	return cfg, errors.Join(errs...)
}

func defaultInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func (ts TokenSpec) check() error {
	if ts.Token == "" {
		return errors.New("empty token")
	}
	if ts.AdAccount < 0 {
		return fmt.Errorf("ad account %d: must be positive", ts.AdAccount)
	}
	if ts.Role != "" && !validRoles[ts.Role] {
		return fmt.Errorf("role %q: unknown", ts.Role)
	}
	if ts.TTL < 0 || ts.RefreshTTL < 0 {
		return errors.New("negative lifetime")
	}
	return nil
}

var validRoles = map[string]bool{
	"ACCOUNT_BILLING_ADMIN": true, "ACCOUNT_MANAGER": true, "CAMPAIGN_MANAGER": true,
	"CREATIVE_MANAGER": true, "VIEWER": true,
}

// qualifyingRole reports whether role may write conversions (spec §6.1).
func qualifyingRole(role string) bool { return validRoles[role] && role != "VIEWER" }

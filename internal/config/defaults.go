package config

import (
	"path/filepath"
	"strings"
	"time"
)

// Defaults. Every default of the schema is here and applied in applyDefaults,
// so that `capstan config print` can show the effective configuration.
const (
	DefaultAddr               = ":8080"
	DefaultDataDir            = "./data"
	DefaultReadTimeout        = 30 * time.Second
	DefaultWriteTimeout       = 30 * time.Second
	DefaultIdleTimeout        = 120 * time.Second
	DefaultShutdownGrace      = 15 * time.Second
	DefaultMaxConnections     = 10000
	DefaultMaxInflightBody    = 256 << 20
	MinMaxInflightBody        = 1 << 20 // two requests at the 512000-byte limit
	DefaultACMECacheDir       = "acme"  // in data_dir
	DefaultEngineListen       = "127.0.0.1:0"
	DefaultReplicas           = 1
	DefaultDedupWindow        = 24 * time.Hour
	DefaultDedupMemory        = 256 << 20
	DefaultDedupDir           = "dedup"
	MinDedupMemory            = 32 << 20
	DefaultLeaseTTL           = 10 * time.Second
	DefaultStartupTimeout     = 2 * time.Minute
	DefaultRetention          = 7 * 24 * time.Hour
	DefaultGroupCommitMax     = 1000
	DefaultGroupCommitFlights = 2
	DefaultDLQMaxAge          = 30 * 24 * time.Hour
	DefaultDLQMaxBytes        = 1 << 30
	MinDLQMaxBytes            = 1 << 20
	DefaultIdentityTTL        = 90 * 24 * time.Hour
	DefaultIdentityStore      = IdentityStoreAuto
	DefaultIdentityDir        = "identity" // in data_dir
	DefaultIdentityMemory     = 32 << 20
	MinIdentityMemory         = 8 << 20
	DefaultGuardStore         = GuardStoreAuto
	DefaultGuardDir           = "eventids" // in data_dir
	DefaultGuardMemory        = 16 << 20
	MinGuardMemory            = 8 << 20
	DefaultMetricsAuth        = MetricsAuthNone
	DefaultSuppressionTTL     = 365 * 24 * time.Hour
	DefaultBrowserBatchSize   = 10
	DefaultBrowserBatchWait   = 5 * time.Second
	DefaultDestinationType    = "linkedin"
	DefaultDisplayName        = "LinkedIn Conversions API"
	DefaultAPIBase            = "https://api.linkedin.com"
	DefaultAPIVersion         = "202609"
	DefaultTokenURL           = "https://www.linkedin.com/oauth/v2/accessToken"
	DefaultAuthorizeURL       = "https://www.linkedin.com/oauth/v2/authorization"
	DefaultBatchSize          = 5000
	DefaultLinger             = time.Second
	DefaultPerMinute          = 600
	DefaultPerDay             = 300000
	DefaultTrigger            = `type = "track"`
	DefaultAttributionType    = "LAST_TOUCH_BY_CAMPAIGN"
	DefaultPostClickDays      = 30
	DefaultViewThroughDays    = 7

	DefaultEventIDCollision     = "suffix"
	DefaultReconcileInterval    = 6 * time.Hour
	DefaultReconcileDays        = 14
	DefaultReconcileMinRatio    = 0.2
	DefaultReconcileMinAccepted = 50
)

// DefaultConsentCategories are required for LinkedIn unless configured otherwise.
var DefaultConsentCategories = []string{"Advertising"}

func setDur(d *Duration, def time.Duration) {
	if *d == 0 {
		*d = Duration(def)
	}
}

func setInt(i *int, def int) {
	if *i == 0 {
		*i = def
	}
}

func setStr(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

func (c *Config) applyDefaults() {
	s := &c.Server
	setStr(&s.Addr, DefaultAddr)
	setStr(&s.DataDir, DefaultDataDir)
	setDur(&s.ReadTimeout, DefaultReadTimeout)
	setDur(&s.WriteTimeout, DefaultWriteTimeout)
	setDur(&s.IdleTimeout, DefaultIdleTimeout)
	setDur(&s.ShutdownGrace, DefaultShutdownGrace)
	setInt(&s.MaxConnections, DefaultMaxConnections)
	setStr(&s.MetricsAuth, DefaultMetricsAuth)
	if s.MaxInflightBodyBytes == 0 {
		s.MaxInflightBodyBytes = DefaultMaxInflightBody
	}
	if a := s.TLS.ACME; a != nil {
		setStr(&a.CacheDir, filepath.Join(s.DataDir, DefaultACMECacheDir))
	}

	e := &c.Engine
	setStr(&e.Listen, DefaultEngineListen)
	setInt(&e.Replicas, DefaultReplicas)
	if e.Dedup.Window == 0 {
		e.Dedup.Window = e.DedupWindow // the older name
	}
	setDur(&e.Dedup.Window, DefaultDedupWindow)
	if e.Dedup.MemoryBytes == 0 {
		e.Dedup.MemoryBytes = DefaultDedupMemory
	}
	setStr(&e.Dedup.Dir, filepath.Join(s.DataDir, DefaultDedupDir))
	setDur(&e.LeaseTTL, DefaultLeaseTTL)
	setDur(&e.StartupTimeout, DefaultStartupTimeout)
	setDur(&e.Retention, DefaultRetention)
	setInt(&e.GroupCommit.MaxEvents, DefaultGroupCommitMax)
	setInt(&e.GroupCommit.Inflight, DefaultGroupCommitFlights)
	setDur(&e.DLQ.MaxAge, DefaultDLQMaxAge)
	if e.DLQ.MaxBytes == 0 {
		e.DLQ.MaxBytes = DefaultDLQMaxBytes
	}

	setDur(&c.Identity.TTL, DefaultIdentityTTL)
	setStr(&c.Identity.Store, DefaultIdentityStore)
	if c.Identity.MemoryBytes == 0 {
		c.Identity.MemoryBytes = DefaultIdentityMemory
	}
	setStr(&c.Engine.GuardStore, DefaultGuardStore)
	setStr(&c.Engine.Compression, CompressionS2)
	if c.Engine.GuardMemoryBytes == 0 {
		c.Engine.GuardMemoryBytes = DefaultGuardMemory
	}
	if c.Privacy.Suppress == nil {
		on := true
		c.Privacy.Suppress = &on
	}
	setDur(&c.Privacy.SuppressionTTL, DefaultSuppressionTTL)

	for i := range c.Sources {
		src := &c.Sources[i]
		if b := src.BrowserBatching; b != nil {
			setInt(&b.Size, DefaultBrowserBatchSize)
			setDur(&b.Timeout, DefaultBrowserBatchWait)
		}
		if rl := &src.RateLimit; !rl.Disabled && rl.RequestsPerSecond > 0 && rl.Burst == 0 {
			rl.Burst = max(1, int(2*rl.RequestsPerSecond))
		}
	}
	for i := range c.Destinations {
		d := &c.Destinations[i]
		setStr(&d.Type, DefaultDestinationType)
		setStr(&d.DisplayName, DefaultDisplayName)
		setStr(&d.APIBase, DefaultAPIBase)
		setStr(&d.APIVersion, DefaultAPIVersion)
		setStr(&d.Auth.TokenURL, DefaultTokenURL)
		if d.Auth.AuthorizeURL == "" {
			if base, ok := strings.CutSuffix(strings.TrimRight(d.Auth.TokenURL, "/"), "/accessToken"); ok {
				d.Auth.AuthorizeURL = base + "/authorization"
			} else {
				d.Auth.AuthorizeURL = DefaultAuthorizeURL
			}
		}
		setInt(&d.BatchSize, DefaultBatchSize)
		setDur(&d.Linger, DefaultLinger)
		setInt(&d.RateLimit.PerMinute, DefaultPerMinute)
		setInt(&d.RateLimit.PerDay, DefaultPerDay)
		setStr(&d.EventIDCollision, DefaultEventIDCollision)
		setDur(&d.Reconcile.Interval, DefaultReconcileInterval)
		setInt(&d.Reconcile.Days, DefaultReconcileDays)
		setInt(&d.Reconcile.MinAccepted, DefaultReconcileMinAccepted)
		if d.Reconcile.MinRatio == 0 {
			d.Reconcile.MinRatio = DefaultReconcileMinRatio
		}
		if d.ConsentCategories == nil {
			d.ConsentCategories = append([]string(nil), DefaultConsentCategories...)
		}
		for j := range d.Mappings {
			m := &d.Mappings[j]
			setStr(&m.Trigger, DefaultTrigger)
			if rc := m.ConversionRule.Create; rc != nil {
				setStr(&rc.AttributionType, DefaultAttributionType)
				setInt(&rc.PostClickWindowDays, DefaultPostClickDays)
				setInt(&rc.ViewThroughWindowDays, DefaultViewThroughDays)
			}
		}
	}
}

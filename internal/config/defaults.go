package config

import "time"

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
	DefaultEngineListen       = "127.0.0.1:0"
	DefaultReplicas           = 1
	DefaultDedupWindow        = 24 * time.Hour
	DefaultRetention          = 7 * 24 * time.Hour
	DefaultGroupCommitMax     = 1000
	DefaultGroupCommitFlights = 2
	DefaultIdentityTTL        = 90 * 24 * time.Hour
	DefaultSuppressionTTL     = 365 * 24 * time.Hour
	DefaultBrowserBatchSize   = 10
	DefaultBrowserBatchWait   = 5 * time.Second
	DefaultDestinationType    = "linkedin"
	DefaultDisplayName        = "LinkedIn Conversions API"
	DefaultAPIBase            = "https://api.linkedin.com"
	DefaultAPIVersion         = "202609"
	DefaultTokenURL           = "https://www.linkedin.com/oauth/v2/accessToken"
	DefaultBatchSize          = 5000
	DefaultLinger             = time.Second
	DefaultPerMinute          = 600
	DefaultPerDay             = 300000
	DefaultTrigger            = `type = "track"`
	DefaultAttributionType    = "LAST_TOUCH_BY_CAMPAIGN"
	DefaultPostClickDays      = 30
	DefaultViewThroughDays    = 7
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
	if s.MaxInflightBodyBytes == 0 {
		s.MaxInflightBodyBytes = DefaultMaxInflightBody
	}

	e := &c.Engine
	setStr(&e.Listen, DefaultEngineListen)
	setInt(&e.Replicas, DefaultReplicas)
	setDur(&e.DedupWindow, DefaultDedupWindow)
	setDur(&e.Retention, DefaultRetention)
	setInt(&e.GroupCommit.MaxEvents, DefaultGroupCommitMax)
	setInt(&e.GroupCommit.Inflight, DefaultGroupCommitFlights)

	setDur(&c.Identity.TTL, DefaultIdentityTTL)
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
		if rl := &src.RateLimit; rl.RequestsPerSecond > 0 && rl.Burst == 0 {
			rl.Burst = max(1, int(rl.RequestsPerSecond))
		}
	}
	for i := range c.Destinations {
		d := &c.Destinations[i]
		setStr(&d.Type, DefaultDestinationType)
		setStr(&d.DisplayName, DefaultDisplayName)
		setStr(&d.APIBase, DefaultAPIBase)
		setStr(&d.APIVersion, DefaultAPIVersion)
		setStr(&d.Auth.TokenURL, DefaultTokenURL)
		setInt(&d.BatchSize, DefaultBatchSize)
		setDur(&d.Linger, DefaultLinger)
		setInt(&d.RateLimit.PerMinute, DefaultPerMinute)
		setInt(&d.RateLimit.PerDay, DefaultPerDay)
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

package config

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Secret is a string that never appears in logs or error messages: its
// LogValue and String print REDACTED. Use Value to read it.
type Secret string

// Value returns the secret in clear text.
func (s Secret) Value() string { return string(s) }

// String implements fmt.Stringer and never reveals the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "REDACTED"
}

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalYAML prints REDACTED so that `capstan config print` is safe to share.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// Duration is a time.Duration written as Go duration text ("1.5s", "24h").
// Days are accepted too ("90d"), since retention windows are usually in days.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats the duration like time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes the duration as text.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// ParseDuration parses Go duration text, plus a whole number of days ("90d").
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(s, "d"); ok && n != "" && !strings.ContainsAny(n, "hmsuµn.") {
		var days int64
		if _, err := fmt.Sscanf(n, "%d", &days); err == nil && fmt.Sprint(days) == n && days >= 0 {
			return Duration(time.Duration(days) * 24 * time.Hour), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (use e.g. 500ms, 1s, 24h or 90d)", s)
	}
	return Duration(d), nil
}

// SyncPolicy says when the event store fsyncs: before every acknowledgement
// (Always, the default) or on a timer (Interval > 0), an explicit opt-in that
// trades durability on power loss for speed.
type SyncPolicy struct {
	// Interval is zero for "always"; otherwise the flush interval.
	Interval time.Duration
}

// Always reports whether every write is fsynced before it is acknowledged.
func (p SyncPolicy) Always() bool { return p.Interval == 0 }

// String returns "always" or the interval.
func (p SyncPolicy) String() string {
	if p.Always() {
		return "always"
	}
	return p.Interval.String()
}

// MarshalYAML writes the policy as text.
func (p SyncPolicy) MarshalYAML() (any, error) { return p.String(), nil }

// ParseSyncPolicy parses "always" or a positive duration.
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	if strings.TrimSpace(s) == "always" || s == "" {
		return SyncPolicy{}, nil
	}
	d, err := ParseDuration(s)
	if err != nil || d <= 0 {
		return SyncPolicy{}, fmt.Errorf(`must be "always" or a positive interval such as 1s, got %q`, s)
	}
	return SyncPolicy{Interval: d.D()}, nil
}

package linkedin

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseConversionTime(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want int64 // -1: not a valid date
	}{
		{"ms number", json.Number("1767139200000"), 1767139200000},
		{"ms string", "1767139200000", 1767139200000},
		{"seconds number", json.Number("1767139200"), 1767139200000},
		{"seconds string (Segment reads ms)", "1714900000", 1714900000000},
		{"seconds just below 10^11", json.Number("99999999999"), 99999999999000},
		{"10^11 is ms", json.Number("100000000000"), 100000000000},
		{"zero", json.Number("0"), 0},
		{"upper bound 2100-01-01 ms", json.Number("4102444800000"), 4102444800000},
		{"above upper bound", json.Number("4102444800001"), -1},
		{"negative", json.Number("-1"), -1},
		{"fractional seconds", json.Number("1767139200.5"), -1},
		{"integral float text", json.Number("1767139200000.0"), 1767139200000},
		{"exponent", json.Number("1.7671392e12"), 1767139200000},
		{"padded digit string", " 1767139200000\n", 1767139200000},
		{"leading zeros", "001767139200", 1767139200000},
		{"float64", float64(1767139200000), 1767139200000},
		{"int seconds", 1767139200, 1767139200000},
		{"int64 ms", int64(1767139200000), 1767139200000},
		{"huge int64", int64(1) << 62, -1},
		{"huge number", json.Number("1e400"), -1},
		{"hex is not a number", "0x10", -1},
		{"Infinity", "Infinity", -1},
		{"NaN", "NaN", -1},

		{"RFC 3339 ms Z", "2025-12-31T00:00:00.000Z", 1767139200000},
		{"RFC 3339 no fraction", "2025-12-31T00:00:00Z", 1767139200000},
		{"fraction truncated to ms", "2025-12-31T00:00:00.999999Z", 1767139200999},
		{"nanoseconds with offset", "2026-09-01T12:34:56.123456789+02:00", 1788258896123},
		{"python isoformat", "2026-09-01T10:34:56.123456+00:00", 1788258896123},
		{"negative offset", "2025-12-30T19:00:00-05:00", 1767139200000},
		{"offset without colon", "2025-12-31T02:00:00+0200", 1767139200000},
		{"hour-only offset", "2025-12-31T02:00:00+02", 1767139200000},
		{"comma fraction", "2025-12-31T00:00:00,5Z", 1767139200500},
		{"lower-case t and z", "2025-12-31t00:00:00z", 1767139200000},
		{"space separator", "2025-12-31 00:00:00", 1767139200000},
		{"no zone is UTC", "2025-12-31T00:00:00", 1767139200000},
		{"no seconds", "2025-12-31T00:00Z", 1767139200000},
		{"date only is midnight UTC", "2025-12-31", 1767139200000},
		{"leap day", "2024-02-29T00:00:00Z", 1709164800000},
		{"padded ISO", "  2025-12-31T00:00:00Z  ", 1767139200000},

		{"empty", "", -1},
		{"words", "yesterday", -1},
		{"not a leap year", "2025-02-29", -1},
		{"month 13", "2026-13-01", -1},
		{"day 0", "2026-01-00", -1},
		{"hour 24", "2026-01-01T24:00:00Z", -1},
		{"minute 60", "2026-01-01T10:60:00Z", -1},
		{"leap second", "2026-01-01T10:00:60Z", -1},
		{"empty fraction", "2026-01-01T10:00:00.Z", -1},
		{"fraction without seconds", "2026-01-01T10:00.5Z", -1},
		{"one-digit offset", "2026-01-01T10:00:00+2", -1},
		{"offset 24h", "2026-01-01T10:00:00+24:00", -1},
		{"trailing garbage", "2026-01-01T10:00:00Zjunk", -1},
		{"RFC 1123", "Wed, 31 Dec 2025 00:00:00 GMT", -1},
		{"slashes", "2025/12/31", -1},
		{"basic format", "20251231T000000Z", -1},
		{"two-digit year", "25-12-31", -1},
		{"bool", true, -1},
		{"nil", nil, -1},
		{"object", map[string]any{}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseConversionTime(tt.in)
			if tt.want < 0 {
				if ok {
					t.Errorf("ParseConversionTime(%#v) = %d, want invalid", tt.in, got)
				}
				return
			}
			if !ok || got != tt.want {
				t.Errorf("ParseConversionTime(%#v) = %d, %v; want %d", tt.in, got, ok, tt.want)
			}
		})
	}
}

func FuzzParseConversionTime(f *testing.F) {
	for _, s := range []string{
		"1767139200000", "1767139200", "2025-12-31T00:00:00.000Z", "2026-09-01T12:34:56.123456789+02:00",
		"2025-12-31", "2025-12-31 00:00", "1e12", "-0", "2026-02-29", "9999-12-31T23:59:59.999999999-23:59",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := ParseConversionTime(s)
		if !ok {
			return
		}
		// Every accepted value is a real instant between year 0 and 10000.
		if got < -62167219200000-24*3600*1000 || got > 253402300800000+24*3600*1000 {
			t.Fatalf("ParseConversionTime(%q) = %d, out of any plausible range", s, got)
		}
		// Where Go's strict RFC 3339 parser also accepts the text, both agree.
		trimmed := strings.TrimSpace(s)
		if tm, err := time.Parse(time.RFC3339Nano, trimmed); err == nil && !isJSONNumber(trimmed) {
			if want := tm.UnixMilli(); got != want {
				t.Fatalf("ParseConversionTime(%q) = %d, time.Parse says %d", s, got, want)
			}
		}
		// The same value as a JSON number (when it is one) parses the same.
		if isJSONNumber(trimmed) {
			if got2, ok2 := ParseConversionTime(json.Number(trimmed)); !ok2 || got2 != got {
				t.Fatalf("string %q → %d, json.Number → %d, %v", s, got, got2, ok2)
			}
		}
	})
}

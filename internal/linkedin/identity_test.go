package linkedin

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestHashEmail(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // "" means no identifier
	}{
		// Test vectors of §15.1.
		{"spec vector 1", "email@email.com", "f3273dd18d95bc19d51d3e6356e4a679e6f13824497272a270e7bb540b0abb9d"},
		{"spec vector 2", "test@example.com", "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"},
		{"spec vector 3: trim and lower-case", "  Jane.Doe@Example.COM ", "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d"},
		{"spec vector 4: hashed upper case kept", "973DFE463EC85785F5F95AF5BA3906EEDB2D931C24E69824A89EA65DBA4E813B", "973DFE463EC85785F5F95AF5BA3906EEDB2D931C24E69824A89EA65DBA4E813B"},
		{"hashed lower case kept", "55e79200c1635b37ad31a378c39feb12f120f116625093a19bc32fff15041149", "55e79200c1635b37ad31a378c39feb12f120f116625093a19bc32fff15041149"},
		{"hashed with padding trimmed", "\t973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b\n", "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"},
		{"63 hex digits are hashed", "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813", sum("973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813")},
		{"65 hex digits are hashed", "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813bb", sum("973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813bb")},
		{"64 chars with a non-hex digit are hashed", "g73dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b", sum("g73dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b")},
		{"no gmail dot or tag removal", "Jo.Hn+Ads@GMail.com", sum("jo.hn+ads@gmail.com")},
		{"inner space kept", "jane doe@example.com", sum("jane doe@example.com")},
		{"unicode lower-casing", "ÉLODIE@EXAMPLE.FR", sum("élodie@example.fr")},
		{"unicode white space trimmed", "\u00a0\u3000test@example.com\u2003\ufeff", "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"},
		{"empty", "", ""},
		{"only white space", " \t\r\n\u00a0", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := HashEmail(tt.in)
			if ok != (tt.want != "") || got != tt.want {
				t.Errorf("HashEmail(%q) = %q, %v; want %q", tt.in, got, ok, tt.want)
			}
		})
	}
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestNormalizeRawID(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"li_fat_id untouched", "8a1f0c52-6d3e-4B7A-9c21-5e4f7d2a9b10", "8a1f0c52-6d3e-4B7A-9c21-5e4f7d2a9b10"},
		{"trimmed only", "  AbC-123 \n", "AbC-123"},
		{"inner space kept", "a b", "a b"},
		{"not hashed even if email-like", "Jane@Example.com", "Jane@Example.com"},
		{"empty", "", ""},
		{"white space only", "\t ", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := NormalizeRawID(tt.in)
			if ok != (tt.want != "") || got != tt.want {
				t.Errorf("NormalizeRawID(%q) = %q, %v; want %q", tt.in, got, ok, tt.want)
			}
		})
	}
}

// TestHashEmailLongAndMixedCase: addresses longer than HashEmail's stack
// buffer, and every ASCII letter in both cases, hash as strings.ToLower's
// lower case does; a plain address costs one allocation, the hex string.
func TestHashEmailLongAndMixedCase(t *testing.T) {
	long := strings.Repeat("AbC", 60) + "@Example.COM"
	letters := "ABCDEFGHIJKLMNOPQRSTUVWXYZ@abcdefghijklmnopqrstuvwxyz.[`{~"
	for _, in := range []string{long, letters, long + "É"} {
		want := sum(strings.ToLower(in))
		if got, ok := HashEmail(in); !ok || got != want {
			t.Errorf("HashEmail(%.20q…) = %q, %v; want %q", in, got, ok, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = HashEmail("Jane.Doe@Example.com") }); n > 1 {
		t.Errorf("HashEmail allocates %.0f times, want 1", n)
	}
}

package main

import "testing"

func TestParseDays(t *testing.T) {
	for in, want := range map[string]int{"14d": 14, "14": 14, "336h": 14, "25h": 2, "90d": 90, "1d": 1} {
		if got, err := parseDays(in); err != nil || got != want {
			t.Errorf("parseDays(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0d", "91d", "2w", "-3d", "1.5d", "soon"} {
		if got, err := parseDays(in); err == nil {
			t.Errorf("parseDays(%q) = %d, want an error", in, got)
		}
	}
}

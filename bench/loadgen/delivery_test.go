package main

import (
	"math"
	"testing"
)

func TestHistQuantile(t *testing.T) {
	b := []bucket{{0.1, 0}, {1, 50}, {10, 100}, {math.Inf(1), 100}}
	for _, c := range []struct{ q, want float64 }{{0.5, 1}, {0.25, 0.55}, {0.75, 5.5}} {
		if got := histQuantile(b, c.q); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("q%.2f = %v, want %v", c.q, got, c.want)
		}
	}
}

func TestParseSample(t *testing.T) {
	name, labels, v, ok := parseSample(`capstan_delivery_end_to_end_seconds_bucket{destination="linkedin",le="0.25"} 42`)
	if !ok || name != "capstan_delivery_end_to_end_seconds_bucket" || labels["le"] != "0.25" || labels["destination"] != "linkedin" || v != 42 {
		t.Errorf("got %q %v %v %v", name, labels, v, ok)
	}
	if _, _, _, ok := parseSample("# HELP x y"); ok {
		t.Error("comment parsed")
	}
}

func TestLatencyStats(t *testing.T) {
	v := make([]float64, 100)
	for i := range v {
		v[i] = float64(100 - i)
	}
	s := latencyStats(v)
	if s.P50 != 50 || s.P95 != 95 || s.P99 != 99 || s.Max != 100 || s.Min != 1 {
		t.Errorf("%+v", s)
	}
}

package main

import (
	"math"
	"testing"
	"time"
)

func TestHistQuantileWithinOnePercent(t *testing.T) {
	tests := []struct {
		name string
		vals []time.Duration
		q    float64
		want time.Duration
	}{
		{"exact small", []time.Duration{10, 20, 30}, 0.5, 20},
		{"1ms", []time.Duration{time.Millisecond}, 0.99, time.Millisecond},
		{"p99 of 1..1000us", seq(1000, time.Microsecond), 0.99, 990 * time.Microsecond},
		{"p50 of 1..1000us", seq(1000, time.Microsecond), 0.50, 500 * time.Microsecond},
		{"10s", []time.Duration{10 * time.Second}, 0.5, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h hist
			for _, v := range tt.vals {
				h.record(v)
			}
			got := h.quantile(tt.q)
			if rel := math.Abs(float64(got-tt.want)) / float64(tt.want); rel > 0.01 {
				t.Errorf("quantile(%v) = %v, want %v ±1%%", tt.q, got, tt.want)
			}
		})
	}
}

func TestBucketRoundTrip(t *testing.T) {
	for v := int64(1); v < int64(time.Hour); v = v*3/2 + 1 {
		got := valueOf(bucketOf(v))
		if rel := math.Abs(float64(got-v)) / float64(v); rel > 0.008 {
			t.Fatalf("valueOf(bucketOf(%d)) = %d", v, got)
		}
	}
}

func seq(n int, unit time.Duration) []time.Duration {
	s := make([]time.Duration, n)
	for i := range s {
		s[i] = time.Duration(i+1) * unit
	}
	return s
}

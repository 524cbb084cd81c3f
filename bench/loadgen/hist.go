package main

import (
	"math/bits"
	"time"
)

// hist is a log-bucketed latency histogram in nanoseconds, HDR-like: values
// below 256 ns are exact, above that each power of two is split into 128
// buckets, so a reported percentile is within 0.8% of the true sample. It
// is not safe for concurrent use: each worker owns one and they are merged.
type hist struct {
	counts [256 + 40*128]uint64
	n      uint64
	max    int64
	sum    int64
}

func bucketOf(v int64) int {
	if v < 256 {
		return int(max(v, 0))
	}
	shift := bits.Len64(uint64(v)) - 8
	i := 256 + (shift-1)*128 + int(uint64(v)>>shift) - 128
	return min(i, len(hist{}.counts)-1)
}

// valueOf is the middle of bucket i.
func valueOf(i int) int64 {
	if i < 256 {
		return int64(i)
	}
	shift := (i-256)/128 + 1
	lo := int64(128+(i-256)%128) << shift
	return lo + (int64(1)<<shift)/2
}

func (h *hist) record(d time.Duration) {
	v := int64(d)
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += v
	h.max = max(h.max, v)
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the q-quantile (0 < q ≤ 1); 0 when empty.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(valueOf(i), h.max))
		}
	}
	return time.Duration(h.max)
}

func (h *hist) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / int64(h.n))
}

package stats

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/capstan-gw/capstan/internal/delivery"
)

// outcomes are the outcomes of events that became no conversion, as kept.
var outcomes = [nOutcomes]delivery.Outcome{
	delivery.NotMatched, delivery.FilteredSource, delivery.FilteredIntegrations,
	delivery.FilteredConsent, delivery.Suppressed, delivery.SkippedUnusable,
}

// nOutcomes is len(outcomes).
const nOutcomes = 6

// outcomeIndex returns o's position in outcomes; len(outcomes) for another.
func outcomeIndex(o delivery.Outcome) int {
	for i, k := range outcomes {
		if k == o {
			return i
		}
	}
	return len(outcomes)
}

// otherOutcome names the count of outcomes not in outcomes.
const otherOutcome = "other"

// Latency histogram: bucket i holds latencies up to latencyBounds[i]; the
// last bucket holds those above every bound.
const (
	latencyBuckets = 68
	latencyFirst   = 5 * time.Millisecond
	latencyGrowth  = 1.25
)

// latencyBounds are the upper bounds of the histogram's buckets but the last.
var latencyBounds = func() []time.Duration {
	b := make([]time.Duration, latencyBuckets-1)
	f := float64(latencyFirst)
	for i := range b {
		b[i] = time.Duration(f)
		f *= latencyGrowth
	}
	return b
}()

// latencyBucket returns the bucket of d.
func latencyBucket(d time.Duration) int {
	i, _ := slices.BinarySearch(latencyBounds, d)
	return i // len(latencyBounds) is the overflow bucket
}

// destCounters are one destination's counts since the last flush. It
// implements delivery.DestinationFunnel.
type destCounters struct {
	name     string
	received atomic.Int64
	outcomes [nOutcomes + 1]atomic.Int64 // + other
	dead     atomic.Int64                // dead letters of no mapping

	mu       sync.Mutex
	mappings map[string]*mappingCounters
	order    []string
}

// mappingCounters are one mapping's counts since the last flush. It
// implements delivery.MappingFunnel.
type mappingCounters struct {
	matched, valid, delivered, dead atomic.Int64
	ids                             [4]atomic.Int64
	latency                         [latencyBuckets]atomic.Int64
}

func newDestCounters(name string) *destCounters {
	return &destCounters{name: name, mappings: map[string]*mappingCounters{}}
}

// Received implements delivery.DestinationFunnel.
func (d *destCounters) Received() { d.received.Add(1) }

// Outcome implements delivery.DestinationFunnel.
func (d *destCounters) Outcome(o delivery.Outcome) { d.outcomes[outcomeIndex(o)].Add(1) }

// DeadLettered implements delivery.DestinationFunnel.
func (d *destCounters) DeadLettered() { d.dead.Add(1) }

// Mapping implements delivery.DestinationFunnel.
func (d *destCounters) Mapping(name string) delivery.MappingFunnel { return d.mapping(name) }

func (d *destCounters) mapping(name string) *mappingCounters {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.mappings[name]
	if m == nil {
		m = &mappingCounters{}
		d.mappings[name] = m
		d.order = append(d.order, name)
	}
	return m
}

// mappingNames returns the mappings counted so far, in the order first seen.
func (d *destCounters) mappingNames() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.order)
}

// Matched implements delivery.MappingFunnel.
func (m *mappingCounters) Matched(valid bool) {
	m.matched.Add(1)
	if valid {
		m.valid.Add(1)
	}
}

// Delivered implements delivery.MappingFunnel.
func (m *mappingCounters) Delivered(ids delivery.IDs, latency time.Duration) {
	m.delivered.Add(1)
	m.ids[ids.Index()].Add(1)
	if latency >= 0 {
		m.latency[latencyBucket(latency)].Add(1)
	}
}

// DeadLettered implements delivery.MappingFunnel.
func (m *mappingCounters) DeadLettered() { m.dead.Add(1) }

// take returns the destination's counts as a Record and, when drain is
// true, resets them (a flush); nil when there are none.
func (d *destCounters) take(drain bool) *Record {
	get := func(a *atomic.Int64) int64 {
		if drain {
			return a.Swap(0)
		}
		return a.Load()
	}
	r := &Record{Received: get(&d.received), DeadLettered: get(&d.dead)}
	for i := range d.outcomes {
		if n := get(&d.outcomes[i]); n != 0 {
			name := otherOutcome
			if i < len(outcomes) {
				name = string(outcomes[i])
			}
			if r.Outcomes == nil {
				r.Outcomes = map[string]int64{}
			}
			r.Outcomes[name] = n
		}
	}
	d.mu.Lock()
	ms := make(map[string]*mappingCounters, len(d.mappings))
	for k, v := range d.mappings {
		ms[k] = v
	}
	d.mu.Unlock()
	for name, m := range ms {
		mr := &MappingRecord{Matched: get(&m.matched), Valid: get(&m.valid), Delivered: get(&m.delivered), DeadLettered: get(&m.dead)}
		for i := range m.ids {
			mr.IDs[i] = get(&m.ids[i])
		}
		lat := make([]int64, latencyBuckets)
		for i := range m.latency {
			lat[i] = get(&m.latency[i])
		}
		mr.Latency = trimZeros(lat)
		if mr.empty() {
			continue
		}
		if r.Mappings == nil {
			r.Mappings = map[string]*MappingRecord{}
		}
		r.Mappings[name] = mr
	}
	if r.empty() {
		return nil
	}
	return r
}

func trimZeros(s []int64) []int64 {
	n := len(s)
	for n > 0 && s[n-1] == 0 {
		n--
	}
	if n == 0 {
		return nil
	}
	return s[:n]
}

package stats

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Window is a period the statistics are reported over.
type Window struct {
	// Name is how the API names it: "1h", "24h", "7d".
	Name string
	// Span is its length; Step the length of one point of its series.
	Span, Step time.Duration
	gran       int // the bucket it reads (index in grans); Step is its unit
}

// Windows are the windows a Query may ask for.
var Windows = []Window{
	{Name: "1h", Span: time.Hour, Step: time.Minute, gran: 0},
	{Name: "24h", Span: 24 * time.Hour, Step: 15 * time.Minute, gran: 1},
	{Name: "7d", Span: 7 * 24 * time.Hour, Step: time.Hour, gran: 2},
}

// WindowNamed returns the window named name ("1h", "24h" or "7d").
func WindowNamed(name string) (Window, bool) {
	for _, w := range Windows {
		if w.Name == name {
			return w, true
		}
	}
	return Window{}, false
}

// Query selects statistics.
type Query struct {
	// Window is the period (see Windows); zero: the first (1h).
	Window Window
	// Destination and Mapping keep only one destination, or one of its
	// mappings; "" for all.
	Destination, Mapping string
}

// Report is the statistics of a Query.
type Report struct {
	Window string `json:"window"`
	// From and To bound the window: the first point starts at From, the
	// last ends at To (the current step, still filling).
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// StepSeconds is the length of one point of the series.
	StepSeconds int64 `json:"stepSeconds"`
	// FlushSeconds is how often counts are written to the engine.
	FlushSeconds float64 `json:"flushSeconds"`
	// Destinations in the order delivery registered them.
	Destinations []*DestinationReport `json:"destinations"`
}

// DestinationReport is one destination's statistics. Its funnel from
// matched on sums its mappings' (conversions: an event that matches two
// mappings counts twice); DeadLettered also counts the dead letters of no
// mapping (stored events that do not parse).
type DestinationReport struct {
	Name   string `json:"name"`
	Funnel Funnel `json:"funnel"`
	// Outcomes count the events that became no conversion, by outcome.
	Outcomes map[string]int64 `json:"outcomes"`
	Coverage Coverage         `json:"coverage"`
	Latency  Latency          `json:"latency"`
	Series   []Point          `json:"series"`
	Mappings []*MappingReport `json:"mappings"`
}

// MappingReport is one mapping's statistics. Its funnel's Received is the
// destination's: the events the mapping's trigger was tried on.
type MappingReport struct {
	Name     string   `json:"name"`
	Funnel   Funnel   `json:"funnel"`
	Coverage Coverage `json:"coverage"`
	Latency  Latency  `json:"latency"`
	Series   []Point  `json:"series"`
}

// Funnel is the counts of each stage.
type Funnel struct {
	Received     int64 `json:"received"`
	Matched      int64 `json:"matched"`
	Valid        int64 `json:"valid"`
	Delivered    int64 `json:"delivered"`
	DeadLettered int64 `json:"deadLettered"`
}

// Coverage counts delivered conversions by the identifiers they carried.
type Coverage struct {
	LiFatID int64 `json:"li_fat_id"`
	Email   int64 `json:"email"`
	Both    int64 `json:"both"`
	Neither int64 `json:"neither"`
}

// Latency summarises delivery latency, from an event being stored to the
// destination accepting its conversion.
type Latency struct {
	// Count is the number of delivered conversions measured.
	Count int64 `json:"count"`
	// P50 and P95 are in seconds; absent when Count is 0.
	P50 *float64 `json:"p50,omitempty"`
	P95 *float64 `json:"p95,omitempty"`
}

// Point is one step of a series: the counts in [T, T+step).
type Point struct {
	T time.Time `json:"t"`
	// Received is the destination's events read (for a mapping too);
	// Matched, Delivered and DeadLettered the conversions.
	Received     int64 `json:"received"`
	Matched      int64 `json:"matched"`
	Delivered    int64 `json:"delivered"`
	DeadLettered int64 `json:"deadLettered"`
}

// Report reads the statistics q selects: what is stored plus what is
// counted in memory and not yet flushed.
func (c *Collector) Report(ctx context.Context, q Query) (*Report, error) {
	w := q.Window
	if w.Name == "" {
		w = Windows[0]
	}
	now := c.cfg.Now()
	n := int(w.Span / w.Step)
	last := now.Truncate(w.Step) // the step holding now
	from := last.Add(-time.Duration(n-1) * w.Step)
	rep := &Report{
		Window: w.Name, From: from.UTC(), To: last.Add(w.Step).UTC(),
		StepSeconds: int64(w.Step / time.Second), FlushSeconds: c.cfg.FlushEvery.Seconds(),
		Destinations: []*DestinationReport{},
	}
	for _, d := range c.destinations() {
		if q.Destination != "" && d.name != q.Destination {
			continue
		}
		steps := make([]*Record, n)
		for i := range steps {
			steps[i] = &Record{}
		}
		put := func(t time.Time, r *Record) {
			if t.Before(from) || !t.Before(rep.To) {
				return
			}
			steps[int(t.Sub(from)/w.Step)].add(r)
		}
		// No flush while the stored counts, the counts in memory and the
		// pending writes are read: each count is in exactly one of them.
		c.flushMu.Lock()
		kv, unit := c.kvs[w.gran], grans[w.gran].unit
		if err := readKeys(ctx, kv, keyToken(d.name), func(k int64, r *Record) {
			put(time.Unix(k*int64(unit/time.Second), 0), r)
		}); err != nil {
			c.flushMu.Unlock()
			return nil, err
		}
		// What is counted since the last flush, and what waits for a
		// failed write to be tried again.
		c.mu.Lock()
		start := c.start
		c.mu.Unlock()
		put(start, d.take(false))
		for _, p := range c.pending {
			if p.gran == w.gran && strings.HasPrefix(p.key, keyToken(d.name)+".") {
				if k, err := strconv.ParseInt(p.key[strings.LastIndexByte(p.key, '.')+1:], 10, 64); err == nil {
					put(time.Unix(k*int64(unit/time.Second), 0), p.rec)
				}
			}
		}
		c.flushMu.Unlock()
		rep.Destinations = append(rep.Destinations, c.destinationReport(d, steps, from, w.Step, q.Mapping))
	}
	if q.Destination != "" && len(rep.Destinations) == 0 {
		return nil, fmt.Errorf("%w: no destination %q", ErrUnknown, q.Destination)
	}
	if q.Mapping != "" && q.Destination != "" && len(rep.Destinations[0].Mappings) == 0 {
		return nil, fmt.Errorf("%w: destination %q has no mapping %q", ErrUnknown, q.Destination, q.Mapping)
	}
	return rep, nil
}

// ErrUnknown is wrapped by Report's error for a destination or mapping it
// knows nothing of.
var ErrUnknown = errors.New("unknown")

// readKeys calls fn with each record of dest in kv and the number of its
// key (the unix time in the bucket's unit).
func readKeys(ctx context.Context, kv jetstream.KeyValue, dest string, fn func(k int64, r *Record)) error {
	w, err := kv.WatchFiltered(ctx, []string{dest + ".*"}, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("statistics: read %s: %w", kv.Bucket(), err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("statistics: read %s: watch ended", kv.Bucket())
			}
			if e == nil {
				return nil // every current value was sent
			}
			k, err := strconv.ParseInt(e.Key()[len(dest)+1:], 10, 64)
			if err != nil {
				continue
			}
			var r Record
			if err := jsonUnmarshal(e.Value(), &r); err != nil {
				continue // damaged: skip it
			}
			fn(k, &r)
		}
	}
}

// destinationReport sums one destination's steps.
func (c *Collector) destinationReport(d *destCounters, steps []*Record, from time.Time, step time.Duration, only string) *DestinationReport {
	dr := &DestinationReport{Name: d.name, Outcomes: map[string]int64{}, Series: make([]Point, len(steps)), Mappings: []*MappingReport{}}
	total := &Record{}
	for _, r := range steps {
		total.add(r)
	}
	// Mappings: those delivery registered, in its order, then any other
	// the stored figures name (a mapping since removed or renamed).
	names := d.mappingNames()
	var extra []string
	for name := range total.Mappings {
		if !slices.Contains(names, name) {
			extra = append(extra, name)
		}
	}
	slices.Sort(extra)
	names = append(names, extra...)

	dr.Funnel.Received = total.Received
	dr.Funnel.DeadLettered = total.DeadLettered
	for k, v := range total.Outcomes {
		dr.Outcomes[k] = v
	}
	var lat []int64
	for _, name := range names {
		m := total.Mappings[name]
		if m == nil {
			m = &MappingRecord{}
		}
		dr.Funnel.Matched += m.Matched
		dr.Funnel.Valid += m.Valid
		dr.Funnel.Delivered += m.Delivered
		dr.Funnel.DeadLettered += m.DeadLettered
		dr.Coverage.add(m.IDs)
		lat = addLatency(lat, m.Latency)
		if only != "" && name != only {
			continue
		}
		mr := &MappingReport{
			Name:    name,
			Funnel:  Funnel{Received: total.Received, Matched: m.Matched, Valid: m.Valid, Delivered: m.Delivered, DeadLettered: m.DeadLettered},
			Latency: latencyOf(m.Latency),
			Series:  make([]Point, len(steps)),
		}
		mr.Coverage.add(m.IDs)
		for i, r := range steps {
			p := Point{T: from.Add(time.Duration(i) * step).UTC(), Received: r.Received}
			if sm := r.Mappings[name]; sm != nil {
				p.Matched, p.Delivered, p.DeadLettered = sm.Matched, sm.Delivered, sm.DeadLettered
			}
			mr.Series[i] = p
		}
		dr.Mappings = append(dr.Mappings, mr)
	}
	dr.Latency = latencyOf(lat)
	for i, r := range steps {
		p := Point{T: from.Add(time.Duration(i) * step).UTC(), Received: r.Received, DeadLettered: r.DeadLettered}
		for _, m := range r.Mappings {
			p.Matched += m.Matched
			p.Delivered += m.Delivered
			p.DeadLettered += m.DeadLettered
		}
		dr.Series[i] = p
	}
	return dr
}

func (cv *Coverage) add(ids [4]int64) {
	cv.LiFatID += ids[0]
	cv.Email += ids[1]
	cv.Both += ids[2]
	cv.Neither += ids[3]
}

func addLatency(a, b []int64) []int64 {
	if len(b) > len(a) {
		a = append(a, make([]int64, len(b)-len(a))...)
	}
	for i, v := range b {
		a[i] += v
	}
	return a
}

// latencyOf summarises a latency histogram.
func latencyOf(h []int64) Latency {
	var l Latency
	for _, v := range h {
		l.Count += v
	}
	if l.Count == 0 {
		return l
	}
	p50, p95 := quantile(h, l.Count, 0.5), quantile(h, l.Count, 0.95)
	l.P50, l.P95 = &p50, &p95
	return l
}

// quantile estimates the q-quantile, in seconds, of histogram h holding
// count values: linear inside the bucket that holds it.
func quantile(h []int64, count int64, q float64) float64 {
	rank := q * float64(count)
	var cum float64
	for i, v := range h {
		if v == 0 {
			continue
		}
		if cum+float64(v) >= rank {
			lo := time.Duration(0)
			if i > 0 {
				lo = latencyBounds[i-1]
			}
			if i >= len(latencyBounds) { // above every bound
				return lo.Seconds()
			}
			hi := latencyBounds[i]
			frac := (rank - cum) / float64(v)
			return (lo + time.Duration(frac*float64(hi-lo))).Seconds()
		}
		cum += float64(v)
	}
	return latencyBounds[len(latencyBounds)-1].Seconds()
}

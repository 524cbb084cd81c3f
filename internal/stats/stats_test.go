package stats

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/stream"
)

var discard = slog.New(slog.DiscardHandler)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func openEngine(t testing.TB, dir string) *stream.Engine {
	t.Helper()
	eng, err := stream.Open(context.Background(), stream.Config{DataDir: dir}, discard)
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

func openCollector(t testing.TB, eng *stream.Engine, c *clock) *Collector {
	t.Helper()
	col, err := Open(context.Background(), eng, Config{Now: c.Now}, discard)
	if err != nil {
		t.Fatal(err)
	}
	return col
}

// base is a time on a 15-minute (so also minute) boundary, 10 minutes into an hour.
var base = time.Date(2026, 12, 5, 14, 10, 0, 0, time.UTC)

func report(t *testing.T, col *Collector, window string, dest, mapping string) *Report {
	t.Helper()
	w, ok := WindowNamed(window)
	if !ok {
		t.Fatalf("no window %q", window)
	}
	rep, err := col.Report(context.Background(), Query{Window: w, Destination: dest, Mapping: mapping})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func findDest(t *testing.T, rep *Report, name string) *DestinationReport {
	t.Helper()
	for _, d := range rep.Destinations {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("no destination %q in %+v", name, rep.Destinations)
	return nil
}

func findMapping(t *testing.T, d *DestinationReport, name string) *MappingReport {
	t.Helper()
	for _, m := range d.Mappings {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("no mapping %q in destination %s", name, d.Name)
	return nil
}

// count drives one destination's funnel: received events, and per mapping
// conversions matched (valid or not), delivered with their ids and
// dead-lettered.
func countSome(col *Collector) {
	d := col.Destination("li")
	signUp, purchase := d.Mapping("Sign Up"), d.Mapping("Purchase")
	for range 10 {
		d.Received()
	}
	d.Outcome(delivery.NotMatched)
	d.Outcome(delivery.NotMatched)
	d.Outcome(delivery.FilteredConsent)
	d.DeadLettered() // unusable
	for range 5 {
		signUp.Matched(true)
	}
	signUp.Matched(false)
	signUp.DeadLettered()
	signUp.Delivered(delivery.IDLiFatID, 100*time.Millisecond)
	signUp.Delivered(delivery.IDEmail, 200*time.Millisecond)
	signUp.Delivered(delivery.IDLiFatID|delivery.IDEmail, 300*time.Millisecond)
	signUp.Delivered(0, 400*time.Millisecond)
	signUp.Delivered(delivery.IDLiFatID|delivery.IDEmail, 10*time.Second)
	purchase.Matched(true)
	purchase.Matched(true)
	purchase.Delivered(delivery.IDEmail, time.Second)
	purchase.DeadLettered()
}

func TestCountsPerStageAndMapping(t *testing.T) {
	eng := openEngine(t, t.TempDir())
	defer eng.Close()
	c := &clock{t: base.Add(5 * time.Second)}
	col := openCollector(t, eng, c)
	countSome(col)

	check := func(when string) {
		t.Helper()
		d := findDest(t, report(t, col, "1h", "", ""), "li")
		want := Funnel{Received: 10, Matched: 8, Valid: 7, Delivered: 6, DeadLettered: 3}
		if d.Funnel != want {
			t.Errorf("%s: destination funnel %+v, want %+v", when, d.Funnel, want)
		}
		if d.Outcomes["not_matched"] != 2 || d.Outcomes["filtered_consent"] != 1 || len(d.Outcomes) != 2 {
			t.Errorf("%s: outcomes %v", when, d.Outcomes)
		}
		if want := (Coverage{LiFatID: 1, Email: 2, Both: 2, Neither: 1}); d.Coverage != want {
			t.Errorf("%s: coverage %+v, want %+v", when, d.Coverage, want)
		}
		su := findMapping(t, d, "Sign Up")
		if want := (Funnel{Received: 10, Matched: 6, Valid: 5, Delivered: 5, DeadLettered: 1}); su.Funnel != want {
			t.Errorf("%s: Sign Up funnel %+v, want %+v", when, su.Funnel, want)
		}
		if want := (Coverage{LiFatID: 1, Email: 1, Both: 2, Neither: 1}); su.Coverage != want {
			t.Errorf("%s: Sign Up coverage %+v, want %+v", when, su.Coverage, want)
		}
		pu := findMapping(t, d, "Purchase")
		if want := (Funnel{Received: 10, Matched: 2, Valid: 2, Delivered: 1, DeadLettered: 1}); pu.Funnel != want {
			t.Errorf("%s: Purchase funnel %+v, want %+v", when, pu.Funnel, want)
		}
		if d.Mappings[0].Name != "Sign Up" || d.Mappings[1].Name != "Purchase" {
			t.Errorf("%s: mappings not in the order counted: %s, %s", when, d.Mappings[0].Name, d.Mappings[1].Name)
		}
		// Sign Up's latencies: 0.1, 0.2, 0.3, 0.4, 10 s.
		if su.Latency.Count != 5 || !near(*su.Latency.P50, 0.3) || !near(*su.Latency.P95, 10) {
			t.Errorf("%s: Sign Up latency count %d p50 %v p95 %v, want 5, ~0.3, ~10", when, su.Latency.Count, *su.Latency.P50, *su.Latency.P95)
		}
		// The series: everything in the step of 14:10.
		var sum int64
		for _, p := range d.Series {
			sum += p.Received
			if p.Received != 0 && !p.T.Equal(base) {
				t.Errorf("%s: %d received at %s, want at %s", when, p.Received, p.T, base)
			}
		}
		if sum != 10 {
			t.Errorf("%s: series received %d, want 10", when, sum)
		}
	}
	check("before flush") // from memory
	if err := col.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	check("after flush") // from the engine
	// Only one mapping, only one destination.
	rep := report(t, col, "1h", "li", "Purchase")
	if len(rep.Destinations) != 1 || len(rep.Destinations[0].Mappings) != 1 || rep.Destinations[0].Mappings[0].Name != "Purchase" {
		t.Errorf("mapping filter: %+v", rep.Destinations)
	}
	if _, err := col.Report(context.Background(), Query{Destination: "nope"}); err == nil {
		t.Error("unknown destination: no error")
	}
}

// near reports whether got is within 25% of want (the histogram's bucket).
func near(got, want float64) bool { return math.Abs(got-want) <= 0.25*want }

func TestWindows(t *testing.T) {
	eng := openEngine(t, t.TempDir())
	defer eng.Close()
	c := &clock{t: base}
	col := openCollector(t, eng, c)
	d := col.Destination("li")
	// Counts at four moments: 3 days ago, 5 hours ago, 30 minutes ago, now.
	at := []time.Duration{-72 * time.Hour, -5 * time.Hour, -30 * time.Minute, 0}
	for i, ago := range at {
		c.set(base.Add(ago))
		col.mu.Lock()
		col.start = c.Now()
		col.mu.Unlock()
		for range i + 1 {
			d.Received()
		}
		if err := col.flush(context.Background(), c.Now()); err != nil {
			t.Fatal(err)
		}
	}
	c.set(base.Add(20 * time.Second))
	for _, tc := range []struct {
		window     string
		want       int64
		points     int
		stepSecond int64
	}{
		{"1h", 3 + 4, 60, 60},
		{"24h", 2 + 3 + 4, 96, 900},
		{"7d", 1 + 2 + 3 + 4, 168, 3600},
	} {
		rep := report(t, col, tc.window, "", "")
		dr := findDest(t, rep, "li")
		if dr.Funnel.Received != tc.want {
			t.Errorf("%s: received %d, want %d", tc.window, dr.Funnel.Received, tc.want)
		}
		if len(dr.Series) != tc.points || rep.StepSeconds != tc.stepSecond {
			t.Errorf("%s: %d points of %ds, want %d of %ds", tc.window, len(dr.Series), rep.StepSeconds, tc.points, tc.stepSecond)
		}
		last := dr.Series[len(dr.Series)-1]
		if last.Received != 4 || !last.T.Add(time.Duration(rep.StepSeconds)*time.Second).Equal(rep.To) {
			t.Errorf("%s: last point %+v (to %s), want the 4 of now", tc.window, last, rep.To)
		}
	}
}

func TestSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: base.Add(time.Second)}
	eng := openEngine(t, dir)
	col := openCollector(t, eng, c)
	countSome(col)
	// Run, stopped: the final flush writes what is counted.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- col.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	eng.Close()

	eng = openEngine(t, dir)
	defer eng.Close()
	col = openCollector(t, eng, c)
	// Not counted by this process: only what the engine kept.
	col.Destination("li")
	d := findDest(t, report(t, col, "1h", "", ""), "li")
	if want := (Funnel{Received: 10, Matched: 8, Valid: 7, Delivered: 6, DeadLettered: 3}); d.Funnel != want {
		t.Errorf("after restart: funnel %+v, want %+v", d.Funnel, want)
	}
	if want := (Coverage{LiFatID: 1, Email: 2, Both: 2, Neither: 1}); d.Coverage != want {
		t.Errorf("after restart: coverage %+v, want %+v", d.Coverage, want)
	}
	if len(d.Mappings) != 2 {
		t.Errorf("after restart: mappings %d, want the 2 stored", len(d.Mappings))
	}
	// Counting goes on where it was: the same minute adds up.
	countSome(col)
	if err := col.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	d = findDest(t, report(t, col, "7d", "", ""), "li")
	if d.Funnel.Received != 20 || d.Funnel.Delivered != 12 {
		t.Errorf("after a second flush: %+v, want 20 received, 12 delivered", d.Funnel)
	}
}

func TestRunFlushesPeriodically(t *testing.T) {
	eng := openEngine(t, t.TempDir())
	defer eng.Close()
	col, err := Open(context.Background(), eng, Config{FlushEvery: 50 * time.Millisecond}, discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- col.Run(ctx) }()
	defer func() { cancel(); <-done }()
	col.Destination("li").Received()
	kv, err := eng.JetStream().KeyValue(context.Background(), MinutesBucket)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		keys, _ := kv.ListKeys(context.Background())
		var n int
		if keys != nil {
			for k := range keys.Keys() {
				e, err := kv.Get(context.Background(), k)
				if err != nil {
					t.Fatal(err)
				}
				var r Record
				if err := json.Unmarshal(e.Value(), &r); err != nil {
					t.Fatal(err)
				}
				n += int(r.Received)
			}
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the count was not flushed by Run within 10s (found %d)", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two collectors (two replicas on one cluster) adding to the same keys add
// up: the writes compare and set.
func TestConcurrentWritersAddUp(t *testing.T) {
	eng := openEngine(t, t.TempDir())
	defer eng.Close()
	c := &clock{t: base}
	a, b := openCollector(t, eng, c), openCollector(t, eng, c)
	var wg sync.WaitGroup
	for _, col := range []*Collector{a, b} {
		wg.Go(func() {
			for range 20 {
				col.Destination("li").Received()
				if err := col.Flush(context.Background()); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	fresh := openCollector(t, eng, c)
	fresh.Destination("li")
	if got := findDest(t, report(t, fresh, "1h", "", ""), "li").Funnel.Received; got != 40 {
		t.Errorf("received %d, want 40 (20 from each writer)", got)
	}
}

func TestCoverageClasses(t *testing.T) {
	for _, tc := range []struct {
		ids  delivery.IDs
		want string
	}{
		{0, "neither"}, {delivery.IDLiFatID, "li_fat_id"}, {delivery.IDEmail, "email"}, {delivery.IDLiFatID | delivery.IDEmail, "both"},
	} {
		if got := tc.ids.Class(); got != tc.want {
			t.Errorf("%d: %q, want %q", tc.ids, got, tc.want)
		}
		if got := delivery.CoverageClasses[tc.ids.Index()]; got != tc.want {
			t.Errorf("%d: index names %q, want %q", tc.ids, got, tc.want)
		}
	}
}

func TestLatencyQuantiles(t *testing.T) {
	h := make([]int64, latencyBuckets)
	// 100 values, 1 ms … 100 s spread log-uniformly.
	var vals []time.Duration
	for i := range 100 {
		d := time.Duration(float64(time.Millisecond) * math.Pow(10, float64(i)*5/99))
		vals = append(vals, d)
		h[latencyBucket(d)]++
	}
	l := latencyOf(h)
	if l.Count != 100 {
		t.Fatalf("count %d", l.Count)
	}
	if want := vals[49].Seconds(); !near(*l.P50, want) {
		t.Errorf("p50 %v, want ~%v", *l.P50, want)
	}
	if want := vals[94].Seconds(); !near(*l.P95, want) {
		t.Errorf("p95 %v, want ~%v", *l.P95, want)
	}
	if l := latencyOf(nil); l.P50 != nil || l.Count != 0 {
		t.Errorf("empty: %+v", l)
	}
	if b := latencyBucket(10 * 24 * time.Hour); b != latencyBuckets-1 {
		t.Errorf("10 days in bucket %d, want the last", b)
	}
}

// The statistics are in capstan backup and come back with capstan restore.
func TestBackupAndRestore(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: base.Add(time.Second)}
	eng := openEngine(t, t.TempDir())
	col := openCollector(t, eng, c)
	countSome(col)
	if err := col.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "backup")
	m, err := eng.Backup(ctx, out, "test")
	eng.Close()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range m.Streams {
		names = append(names, s.Name)
	}
	for _, want := range []string{"KV_stats_minutes", "KV_stats_quarters", "KV_stats_hours"} {
		if !slices.Contains(names, want) {
			t.Errorf("backup holds %v, not %s", names, want)
		}
	}
	target := filepath.Join(t.TempDir(), "data")
	if _, err := stream.Restore(ctx, stream.Config{DataDir: target}, out, discard); err != nil {
		t.Fatal(err)
	}
	eng = openEngine(t, target)
	defer eng.Close()
	col = openCollector(t, eng, c)
	col.Destination("li")
	for _, w := range []string{"1h", "24h", "7d"} {
		d := findDest(t, report(t, col, w, "", ""), "li")
		if want := (Funnel{Received: 10, Matched: 8, Valid: 7, Delivered: 6, DeadLettered: 3}); d.Funnel != want {
			t.Errorf("%s after restore: funnel %+v, want %+v", w, d.Funnel, want)
		}
	}
}

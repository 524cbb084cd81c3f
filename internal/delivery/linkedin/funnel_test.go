package linkedin

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/sandbox"
	"github.com/capstan-gw/capstan/internal/stats"
	"github.com/capstan-gw/capstan/internal/stream"
)

// TestFunnelAndMatchCoverage runs conversions of two mappings through the
// real sandbox and checks what the runner counted at each stage, in the
// durable statistics (internal/stats) and in
// capstan_delivery_conversions_total: the identifiers each delivered
// conversion carried, li_fat_id, email, both or neither.
func TestFunnelAndMatchCoverage(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics := delivery.NewMetrics(reg)
	// The statistics live in an engine of their own: the harness's engine
	// is opened inside it.
	col := openStats(t)
	long := strings.Repeat("x", 40)
	h := newHarness(t, opts{
		sandbox: sandbox.Config{EnforceFieldLengths: true},
		mappings: signUpMapping + "        fields:\n          userInfo: {firstName: {\"@path\": \"$.properties.first\"}, lastName: Doe}\n" +
			`      - name: Purchase
        trigger: 'type = "track" and event = "Order Completed"'
        conversion_rule: {create: {name: "Purchase (capstan)", type: PURCHASE}}
`,
		runner:  delivery.RunnerConfig{Linger: 50 * time.Millisecond},
		funnel:  col,
		metrics: metrics,
	})
	h.send(
		// Sign Up: li_fat_id only, email only, both; one refused by
		// LinkedIn (a first name too long): dead-lettered, rejected.
		`{"type":"track","event":"Sign Up","userId":"u1","messageId":"m-1","properties":{"li_fat_id":"lfi-1","first":"Ann"}}`,
		`{"type":"track","event":"Sign Up","userId":"u2","messageId":"m-2","properties":{"email":"b@example.com","first":"Ann"}}`,
		`{"type":"track","event":"Sign Up","userId":"u3","messageId":"m-3","context":{"traits":{"email":"c@example.com"}},"properties":{"li_fat_id":"lfi-3","first":"Ann"}}`,
		`{"type":"track","event":"Sign Up","userId":"u4","messageId":"m-4","properties":{"li_fat_id":"lfi-4","first":"`+long+`"}}`,
		// Sign Up with no identifier: invalid, dead-lettered, never sent.
		`{"type":"track","event":"Sign Up","userId":"u5","messageId":"m-5"}`,
		// Purchase: email only.
		`{"type":"track","event":"Order Completed","userId":"u6","messageId":"m-6","properties":{"email":"d@example.com","revenue":10,"currency":"USD"}}`,
		// No mapping matches.
		`{"type":"page","userId":"u7","messageId":"m-7"}`,
	)
	eventually(t, 20*time.Second, "4 conversions delivered", func() bool { return len(h.delivered()) == 4 })
	eventually(t, 10*time.Second, "2 dead letters", func() bool { return len(h.deadLetters("")) == 2 })

	w, _ := stats.WindowNamed("1h")
	var d *stats.DestinationReport
	eventually(t, 10*time.Second, "the funnel counted", func() bool {
		rep, err := col.Report(context.Background(), stats.Query{Window: w})
		if err != nil {
			t.Fatal(err)
		}
		d = rep.Destinations[0]
		return d.Funnel.Delivered+d.Funnel.DeadLettered == 6 && d.Funnel.Received == 7
	})
	if want := (stats.Funnel{Received: 7, Matched: 6, Valid: 5, Delivered: 4, DeadLettered: 2}); d.Funnel != want {
		t.Errorf("destination funnel %+v, want %+v", d.Funnel, want)
	}
	if d.Outcomes["not_matched"] != 1 {
		t.Errorf("outcomes %v, want not_matched 1", d.Outcomes)
	}
	if want := (stats.Coverage{LiFatID: 1, Email: 2, Both: 1}); d.Coverage != want {
		t.Errorf("coverage %+v, want %+v", d.Coverage, want)
	}
	byName := map[string]*stats.MappingReport{}
	for _, m := range d.Mappings {
		byName[m.Name] = m
	}
	if m := byName["Sign Up"]; m == nil || m.Funnel != (stats.Funnel{Received: 7, Matched: 5, Valid: 4, Delivered: 3, DeadLettered: 2}) {
		t.Errorf("Sign Up: %+v", m)
	}
	if m := byName["Purchase"]; m == nil || m.Funnel != (stats.Funnel{Received: 7, Matched: 1, Valid: 1, Delivered: 1}) || m.Coverage.Email != 1 {
		t.Errorf("Purchase: %+v", m)
	}
	if d.Latency.Count != 4 || d.Latency.P50 == nil || *d.Latency.P50 <= 0 {
		t.Errorf("latency %+v", d.Latency)
	}

	for _, tc := range []struct {
		mapping, ids string
		want         float64
	}{
		{"Sign Up", "li_fat_id", 1}, {"Sign Up", "email", 1}, {"Sign Up", "both", 1}, {"Sign Up", "neither", 0},
		{"Purchase", "email", 1}, {"Purchase", "li_fat_id", 0},
	} {
		if got := counterValue(t, reg, "capstan_delivery_conversions_total", map[string]string{"destination": "li", "mapping": tc.mapping, "ids": tc.ids}); got != tc.want {
			t.Errorf("capstan_delivery_conversions_total{mapping=%q,ids=%q} = %v, want %v", tc.mapping, tc.ids, got, tc.want)
		}
	}
}

// openStats opens a statistics collector on an engine of its own.
func openStats(t *testing.T) *stats.Collector {
	t.Helper()
	eng, err := stream.Open(context.Background(), stream.Config{DataDir: t.TempDir()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	col, err := stats.Open(context.Background(), eng, stats.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return col
}

// counterValue returns the value of the counter name with exactly labels
// in reg (0 when it has no such child).
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

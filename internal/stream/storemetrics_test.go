package stream

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// collected gathers c's metrics as name → value, "name{label value}" for
// a labelled one (gauges and counters).
func collected(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			if l := m.GetLabel(); len(l) > 0 {
				key += "{" + l[0].GetValue() + "}"
			}
			got[key] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return got
}

// storeMetrics gathers the store collector's metrics as "name{scope}".
func storeMetrics(t *testing.T, eng *Engine) map[string]float64 {
	t.Helper()
	return collected(t, eng.StoreCollector())
}

// TestStoreCollector: how full the store is, against engine.max_bytes and
// the embedded JetStream's limit; the events limit only when one is set.
func TestStoreCollector(t *testing.T) {
	ctx := context.Background()
	t.Run("max_bytes set", func(t *testing.T) {
		eng, app := openTest(t, Config{DataDir: t.TempDir(), MaxBytes: 1 << 20})
		var recs []record
		for i := range 50 {
			recs = append(recs, rec("events.web.track", fmt.Sprintf("m%d", i)))
		}
		if _, err := app.Append(ctx, recs); err != nil {
			t.Fatal(err)
		}
		st, err := eng.StoreState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.EventsBytes == 0 || st.EventsLimit != 1<<20 || st.EngineBytes < st.EventsBytes || st.EngineLimit <= 0 {
			t.Fatalf("state %+v", st)
		}
		got := storeMetrics(t, eng)
		want := map[string]float64{
			"capstan_store_used_bytes{events}":  float64(st.EventsBytes),
			"capstan_store_limit_bytes{events}": 1 << 20,
			"capstan_store_used_bytes{engine}":  got["capstan_store_used_bytes{engine}"],
			"capstan_store_limit_bytes{engine}": float64(st.EngineLimit),
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("metrics %v, want %v", got, want)
		}
		if got["capstan_store_used_bytes{engine}"] < float64(st.EventsBytes) {
			t.Errorf("engine use %v below the events' %d", got["capstan_store_used_bytes{engine}"], st.EventsBytes)
		}
	})
	t.Run("unlimited events", func(t *testing.T) {
		eng, _ := openTest(t, Config{DataDir: t.TempDir()})
		got := storeMetrics(t, eng)
		if _, ok := got["capstan_store_limit_bytes{events}"]; ok || len(got) != 3 || got["capstan_store_limit_bytes{engine}"] <= 0 {
			t.Errorf("metrics %v: want no events limit, an engine limit", got)
		}
	})
}

package delivery

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/stream"
)

// TestUnusableEventOfAnotherSource: a stored event that does not parse (an
// older capstan stored events nested deeper than event.MaxDepth) is
// dead-lettered as unusable only by a destination that takes its source;
// one that does not counts it as skipped_unusable and writes no dead letter.
func TestUnusableEventOfAnotherSource(t *testing.T) {
	e := newWebhookEnv(t, 1)
	cfg, err := config.Parse("t.yaml", []byte(`
sources: [{name: web, write_key: k1}, {name: other, write_key: k2}]
destinations:
  - name: wh0
    sources: [web]
    auth: {access_token: unused}
    mappings:
      - {name: Order, trigger: 'event = "Order"', conversion_rule: {id: 1}}
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	wh := &webhook{url: "http://127.0.0.1:1/unused", batch: 10}
	p, errs := NewPlan(cfg, 0, wh)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	reg := prometheus.NewRegistry()
	r, err := NewRunner(p, wh, RunnerConfig{Clock: e.clock}, Deps{Engine: e.eng, Metrics: NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}

	deep := `{"type":"track","event":"Order","userId":"u","properties":{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}}`
	res, err := e.w.Append(context.Background(), []stream.Event{
		{Source: "other", Type: "track", MessageID: "deep-other", Doc: []byte(deep)},
		{Source: "web", Type: "track", MessageID: "deep-web", Doc: []byte(deep)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range res {
		if x.Err != nil {
			t.Fatal(x.Err)
		}
	}
	// A consumer of every source, so that the runner sees the other
	// source's event (its own consumer filters it out already).
	ctx, cancel := context.WithCancel(context.Background())
	cons, err := e.eng.Consumer(ctx, stream.ConsumerConfig{Durable: "all-sources", FetchWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	in := make(chan *stream.Delivery, 2)
	fed := make(chan struct{})
	go func() { cons.Feed(ctx, in, nil); close(fed) }()
	t.Cleanup(func() { cancel(); <-fed })
	for range 2 {
		select {
		case d := <-in:
			if _, ok := r.parse(ctx, d, new(event.Arena)); ok {
				t.Errorf("event %d of %s parsed", d.Seq, d.Source)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("events not delivered")
		}
	}

	dls := e.deadLetters()
	if len(dls) != 1 || dls[0].Source != "web" || dls[0].Reason != ReasonUnusable {
		t.Fatalf("dead letters %+v, want one unusable from web", dls)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "capstan_delivery_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					got[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	if got[string(SkippedUnusable)] != 1 || got["dead_lettered"] != 1 || got["received"] != 2 {
		t.Errorf("outcomes %v, want received 2, skipped_unusable 1, dead_lettered 1", got)
	}
}

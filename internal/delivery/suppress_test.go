package delivery

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/stream"
)

// userSuppressor suppresses the events of some userIds.
type userSuppressor map[string]bool

func (s userSuppressor) Suppressed(ev event.Value) bool {
	u, _ := ev.Get("userId").Str()
	return s[u]
}

// TestSuppressedNotDelivered: the events of a suppressed person are
// acknowledged without being delivered, counted as "suppressed"; other
// people's are delivered.
func TestSuppressedNotDelivered(t *testing.T) {
	env := newWebhookEnv(t, 1)
	env.sup = userSuppressor{"gone": true}
	env.m = NewMetrics(prometheus.NewRegistry())
	rcv := &receiver{took: map[string]int{}}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	env.run(0, &webhook{url: srv.URL, batch: 10, hc: srv.Client()}, RunnerConfig{}, nil)

	req := &event.Request{ReceivedAt: env.clock.Now()}
	var evs []stream.Event
	for _, e := range []struct{ id, user string }{{"k-1", "kept"}, {"g-1", "gone"}, {"k-2", "kept"}, {"g-2", "gone"}} {
		ev, derr := event.Normalize([]byte(`{"type":"track","event":"Order","userId":"`+e.user+`","messageId":"`+e.id+`"}`), "", req)
		if derr != nil {
			t.Fatal(derr)
		}
		evs = append(evs, stream.Event{Source: "web", Type: string(ev.Type), MessageID: ev.MessageID, Doc: ev.JSON})
	}
	if _, err := env.w.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	suppressed := env.m.events.WithLabelValues("wh0", string(Suppressed))
	eventually(t, 10*time.Second, "2 delivered, 2 suppressed", func() bool {
		return len(rcv.taken()) == 2 && counterValue(suppressed) == 2
	})
	if got := rcv.taken(); got["k-1"] != 1 || got["k-2"] != 1 {
		t.Errorf("delivered %v, want k-1 and k-2", got)
	}
	if dls := env.deadLetters(); len(dls) != 0 {
		t.Errorf("%d dead letters", len(dls))
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// suppressingEnricher enriches nothing and suppresses some userIds.
type suppressingEnricher struct{ userSuppressor }

func (suppressingEnricher) Enrich(_ context.Context, _ event.Value, _ string, have identity.Captured) identity.Captured {
	return have
}

// TestPreviewSuppressed: preview reports a suppressed person's event as
// "suppressed" when its enricher is also a Suppressor, as delivery would.
func TestPreviewSuppressed(t *testing.T) {
	env := newWebhookEnv(t, 1)
	p, errs := NewPlan(env.cfg, 0, &webhook{batch: 10})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	raw := []byte(`[{"type":"track","event":"Order","userId":"gone","messageId":"g"},{"type":"track","event":"Order","userId":"kept","messageId":"k"}]`)
	out, _, err := Preview(context.Background(), []*Plan{p}, raw, "web", time.Now(), suppressingEnricher{userSuppressor{"gone": true}})
	if err != nil {
		t.Fatal(err)
	}
	var got []Outcome
	for _, e := range out.Events {
		for _, r := range e.Results {
			got = append(got, r.Outcome)
		}
	}
	if len(got) != 2 || got[0] != Suppressed || got[1] != Converted {
		t.Errorf("outcomes %v, want [suppressed converted]", got)
	}
}

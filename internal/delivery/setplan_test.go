package delivery

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/stream"
)

// TestSetPlan replaces a running destination's mappings: events read
// after the swap convert with the new plan, and a plan of another
// destination or with other sources is refused, leaving the one in force.
func TestSetPlan(t *testing.T) {
	env := newWebhookEnv(t, 1)
	rcv := &receiver{took: map[string]int{}}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	w := &webhook{url: srv.URL, batch: 50, hc: srv.Client()}
	r := env.run(0, w, RunnerConfig{BatchSize: 50}, nil)
	env.send(3)
	eventually(t, 10*time.Second, "3 orders delivered", func() bool { return len(rcv.taken()) == 3 })

	parse := func(text string) *config.Config {
		t.Helper()
		cfg, err := config.Parse("t.yaml", []byte(text), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	plan := func(cfg *config.Config) *Plan {
		t.Helper()
		p, errs := NewPlan(cfg, 0, r.Plan().Format)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		return p
	}
	ctx := context.Background()
	other := parse("sources: [{name: web, write_key: k}]\ndestinations:\n  - name: wh9\n    auth: {access_token: x}\n    mappings: [{name: Order, trigger: 'event = \"Order\"', conversion_rule: {id: 1}}]\n")
	if err := r.SetPlan(ctx, plan(other)); err == nil || !strings.Contains(err.Error(), "wh9") {
		t.Errorf("plan of another destination: %v", err)
	}
	sources := parse("sources: [{name: web, write_key: k}]\ndestinations:\n  - name: wh0\n    sources: [web]\n    auth: {access_token: x}\n    mappings: [{name: Order, trigger: 'event = \"Order\"', conversion_rule: {id: 1}}]\n")
	if err := r.SetPlan(ctx, plan(sources)); err == nil || !strings.Contains(err.Error(), "sources changed") {
		t.Errorf("plan with other sources: %v", err)
	}
	if got := r.Plan().Routes[0].trigger; got == nil {
		t.Fatal("the plan in force lost its trigger")
	}

	// The mapping now takes only "Refund" tracks: new "Order" tracks
	// are read and acknowledged, not delivered.
	refunds := parse("sources: [{name: web, write_key: k}]\ndestinations:\n  - name: wh0\n    auth: {access_token: x}\n    mappings: [{name: Refund, trigger: 'event = \"Refund\"', conversion_rule: {id: 2}}]\n")
	p := plan(refunds)
	if err := r.SetPlan(ctx, p); err != nil {
		t.Fatal(err)
	}
	if r.Plan() != p {
		t.Fatal("Plan does not return the plan set")
	}
	var evs []stream.Event
	for _, id := range []string{"o-3", "o-4", "refund-1"} {
		name := "Order"
		if strings.HasPrefix(id, "refund") {
			name = "Refund"
		}
		ev, derr := event.Normalize([]byte(`{"type":"track","event":"`+name+`","userId":"u","messageId":"`+id+`"}`), "", &event.Request{ReceivedAt: env.clock.Now()})
		if derr != nil {
			t.Fatal(derr)
		}
		evs = append(evs, stream.Event{Source: "web", Type: string(ev.Type), MessageID: ev.MessageID, Doc: ev.JSON})
	}
	if _, err := env.w.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	// Delivery reads in order: once the refund is taken, the orders
	// before it were read with the new plan.
	eventually(t, 10*time.Second, "the refund delivered", func() bool { return rcv.taken()["refund-1"] == 1 })
	if got := rcv.taken(); got["o-3"]+got["o-4"] != 0 || len(got) != 4 {
		t.Errorf("taken after the swap: %v; want the 3 orders of before and the refund", got)
	}
}

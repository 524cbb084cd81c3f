package delivery

import (
	"context"
	"strings"
	"testing"

	"github.com/capstan-gw/capstan/internal/stream"
)

// TestExplainNotSent: the event detail of events a destination takes none
// of says exactly why: consent, source, integrations, suppression, another
// destination's replay; and a mapping whose trigger does not match says
// which condition failed. Nothing is read from the consumer for them.
func TestExplainNotSent(t *testing.T) {
	env := newWebhookEnv(t, 1)
	d := &env.cfg.Destinations[0]
	d.ConsentCategories = []string{"Advertising"}
	d.Sources = []string{"web"}
	p, errs := NewPlan(env.cfg, 0, &webhook{batch: 10})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	r, err := NewRunner(p, &webhook{batch: 10}, RunnerConfig{}, Deps{Engine: env.eng, Suppressor: userSuppressor{"gone": true}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, source, replayFor, doc string
		outcome                      Outcome
		reason                       string
	}{
		{"consent", "web", "", `{"type":"track","event":"Order","userId":"u","context":{"consent":{"categoryPreferences":{"Advertising":false}}}}`,
			FilteredConsent, "consent for a required category is missing"},
		{"source", "app", "", `{"type":"track","event":"Order","userId":"u"}`, FilteredSource, `does not take source "app"`},
		{"integrations", "web", "", `{"type":"track","event":"Order","userId":"u","integrations":{"All":false}}`, FilteredIntegrations, "integrations object excludes"},
		{"suppressed", "web", "", `{"type":"track","event":"Order","userId":"gone"}`, Suppressed, "deleted on request"},
		{"replay", "web", "other", `{"type":"track","event":"Order","userId":"u"}`, "replay", "replay for destination other"},
		{"trigger", "web", "", `{"type":"track","event":"Refund","userId":"u"}`, NotMatched, "no mapping's trigger matched"},
	}
	for _, tc := range cases {
		de, err := r.Explain(context.Background(), stream.Stored{Seq: 7, Source: tc.source, Type: "track", ReplayFor: tc.replayFor, Doc: []byte(tc.doc)})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if de.Outcome != tc.outcome || !strings.Contains(de.Reason, tc.reason) || de.Delivery.State != StateNotSent ||
			!strings.Contains(de.Delivery.Reason, tc.reason) || len(de.Mappings) != 1 || de.Mappings[0].Request != nil {
			t.Errorf("%s: %+v", tc.name, de)
		}
		if tc.outcome == NotMatched {
			if m := de.Mappings[0]; m.Matched || m.Why != `event = "Order" is false: event is "Refund"` || m.Trigger != `event = "Order"` {
				t.Errorf("trigger: %+v", m)
			}
		}
	}
}

package mapping

import (
	"encoding/json"
	"testing"

	"github.com/capstan-gw/capstan/internal/event"
)

// TestTriggerExample: the values Example sets make a neutral event match.
func TestTriggerExample(t *testing.T) {
	for _, src := range []string{
		`type = "track" and event = "Order Completed"`,
		`type = "page" and match(context.page.url, "https://www.example.com/thank-you*")`,
		`event = "Sign Up" and (properties.plan = "pro" or properties.plan = "team") and properties.seats > 3`,
		`type = "track" and properties.trial = true and properties.coupon != "FREE" and contains(event, "Purchase")`,
		`type = "identify" and traits.email != null and properties.internal = null`,
		`properties.total >= 100 and properties.total < 1000 and match(properties.sku, "*-XL")`,
	} {
		trig := MustParseTrigger(src)
		doc := map[string]any{"type": "track", "event": "Test", "properties": map[string]any{"internal": true}}
		trig.ExampleInto(doc)
		b, _ := json.Marshal(doc)
		ev, err := event.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		if !trig.Match(ev) {
			t.Errorf("%s: example %s does not match", src, b)
		}
	}
}

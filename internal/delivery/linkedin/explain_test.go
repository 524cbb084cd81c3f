package linkedin

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/sandbox"
	"github.com/capstan-gw/capstan/internal/stream"
)

// seqOf returns the position of the stored event with messageID.
func (h *harness) seqOf(messageID string) stream.Pos {
	h.t.Helper()
	var seq stream.Pos
	err := h.eng.ReadEvents(context.Background(), stream.ReadOptions{}, func(s stream.Stored) error {
		var doc struct{ MessageID string }
		if json.Unmarshal(s.Doc, &doc) == nil && doc.MessageID == messageID {
			seq = s.Pos()
		}
		return nil
	})
	if err != nil || seq == 0 {
		h.t.Fatalf("event %s: position %s, %v", messageID, seq, err)
	}
	return seq
}

func (h *harness) explain(seq stream.Pos) *delivery.Explanation {
	h.t.Helper()
	x, err := delivery.ExplainEvent(context.Background(), h.eng, []*delivery.Runner{h.runner}, seq)
	if err != nil {
		h.t.Fatal(err)
	}
	if x.Pos != seq.String() || x.Seq != seq.Seq() || len(x.Destinations) != 1 || x.Destinations[0].Destination != "li" || len(x.Event) == 0 {
		h.t.Fatalf("explanation %+v", x)
	}
	return x
}

// TestExplain: the console's event detail for a delivered event (with the
// request preview builds), one no trigger matched (with the reason), an
// invalid one (with the validation reason, dead-lettered), one LinkedIn
// refused (dead-lettered with its answer), and one not yet read (pending).
func TestExplain(t *testing.T) {
	long := strings.Repeat("x", 40)
	h := newHarness(t, opts{
		sandbox: sandbox.Config{EnforceFieldLengths: true},
		mappings: signUpMapping + "        fields:\n          userInfo: {firstName: {\"@path\": \"$.properties.first\"}, lastName: Doe}\n" +
			`      - name: Purchase
        trigger: 'type = "track" and event = "Order Completed"'
        conversion_rule: {create: {name: "Purchase (capstan)", type: PURCHASE}}
`,
	})
	h.send(
		`{"type":"track","event":"Sign Up","userId":"u1","messageId":"ok","properties":{"li_fat_id":"lfi-1","first":"Ann"}}`,
		`{"type":"page","name":"Home","userId":"u2","messageId":"page"}`,
		`{"type":"track","event":"Sign Up","userId":"u3","messageId":"no-id","properties":{"first":"Ann"}}`,
		`{"type":"track","event":"Sign Up","userId":"u4","messageId":"long","properties":{"li_fat_id":"lfi-4","first":"`+long+`"}}`,
	)
	eventually(t, 20*time.Second, "1 delivered, 2 dead letters", func() bool {
		return len(h.delivered()) == 1 && len(h.deadLetters("")) == 2
	})
	floor := h.seqOf("long")
	eventually(t, 10*time.Second, "every event acknowledged", func() bool {
		st, err := h.eng.ConsumerState(context.Background(), "deliver-li")
		return err == nil && st.AckFloor >= floor.Seq()
	})

	// Delivered: the trigger's reason, the request, the state.
	d := h.explain(h.seqOf("ok")).Destinations[0]
	if d.Outcome != "" || d.Delivery.State != delivery.StateDelivered || len(d.Mappings) != 2 {
		t.Fatalf("delivered event: %+v", d)
	}
	m := d.Mappings[0]
	if m.Mapping != "Sign Up" || !m.Matched || m.Why != `matched: type = "track" and event = "Sign Up"` || m.Outcome != delivery.Converted ||
		m.Delivery == nil || m.Delivery.State != delivery.StateDelivered {
		t.Errorf("Sign Up mapping: %+v", m)
	}
	req, _ := json.Marshal(m.Request)
	if !strings.Contains(string(req), `"method":"POST"`) || !strings.Contains(string(req), `"idValue":"lfi-1"`) || !strings.Contains(string(req), "/rest/conversionEvents") {
		t.Errorf("request %s", req)
	}
	if p := d.Mappings[1]; p.Mapping != "Purchase" || p.Matched || p.Outcome != delivery.NotMatched || p.Request != nil ||
		p.Why != `event = "Order Completed" is false: event is "Sign Up"` {
		t.Errorf("Purchase mapping: %+v", p)
	}

	// No trigger matched: not sent, each mapping says why.
	d = h.explain(h.seqOf("page")).Destinations[0]
	if d.Outcome != delivery.NotMatched || d.Delivery.State != delivery.StateNotSent || d.Mappings[0].Matched ||
		d.Mappings[0].Why != `type = "track" is false: type is "page"` {
		t.Errorf("page event: %+v", d)
	}

	// Invalid: the validation reason; dead-lettered as invalid.
	d = h.explain(h.seqOf("no-id")).Destinations[0]
	m = d.Mappings[0]
	if m.Outcome != delivery.Invalid || m.Error == nil || !strings.Contains(m.Error.Message, "One of email or LinkedIn UUID") ||
		m.Delivery == nil || m.Delivery.State != delivery.StateDeadLettered || m.Delivery.DeadLetter == nil ||
		m.Delivery.DeadLetter.Reason != delivery.ReasonInvalid || m.Request != nil {
		t.Errorf("invalid event: %+v (delivery %+v)", m, m.Delivery)
	}

	// Refused by LinkedIn: the request was built; the dead letter has
	// LinkedIn's answer and the id to replay it by.
	d = h.explain(h.seqOf("long")).Destinations[0]
	m = d.Mappings[0]
	rejected := h.deadLetters(delivery.ReasonRejected)
	if m.Outcome != delivery.Converted || m.Request == nil || m.Delivery == nil || m.Delivery.State != delivery.StateDeadLettered ||
		len(rejected) != 1 || m.Delivery.DeadLetter.ID != rejected[0].Seq || m.Delivery.DeadLetter.Status != 422 ||
		!strings.Contains(m.Delivery.DeadLetter.Message, "firstName") {
		t.Errorf("refused event: %+v (delivery %+v)", m, m.Delivery)
	}

	// Not yet read: pending.
	h.stop()
	h.send(`{"type":"track","event":"Sign Up","userId":"u5","messageId":"later","properties":{"li_fat_id":"lfi-5","first":"Ann"}}`)
	d = h.explain(h.seqOf("later")).Destinations[0]
	if d.Delivery.State != delivery.StatePending || !strings.Contains(d.Delivery.Reason, "not yet read") ||
		d.Mappings[0].Delivery.State != delivery.StatePending || d.Mappings[0].Request == nil {
		t.Errorf("pending event: %+v", d)
	}

	// What the Event tester offers.
	info := h.runner.Info()
	if info.Destination != "li" || len(info.Sources) != 0 || len(info.Mappings) != 2 || info.Mappings[1].Name != "Purchase" ||
		info.Mappings[1].Trigger != `type = "track" and event = "Order Completed"` {
		t.Errorf("info %+v", info)
	}

	// No such event.
	if _, err := delivery.ExplainEvent(context.Background(), h.eng, nil, stream.MakePos(999, 0)); !errors.Is(err, delivery.ErrNoEvent) {
		t.Errorf("missing event: %v", err)
	}
}

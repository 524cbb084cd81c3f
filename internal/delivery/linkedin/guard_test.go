package linkedin

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstan-gw/capstan/internal/delivery"
	capi "github.com/capstan-gw/capstan/internal/linkedin"
	"github.com/capstan-gw/capstan/internal/sandbox"
	"github.com/capstan-gw/capstan/internal/stream"
)

// orderMapping sends Order Completed events with the order id as eventId.
const orderMapping = `      - name: Orders
        trigger: 'type = "track" and event = "Order Completed"'
        conversion_rule: {create: {name: "Orders (capstan)", type: PURCHASE}}
        fields:
          eventId: {"@path": "$.properties.order_id"}
          conversionValue: {currencyCode: USD, amount: {"@path": "$.properties.revenue"}}
`

func order(msgID, orderID, revenue, at string) string {
	return `{"type":"track","event":"Order Completed","userId":"u1","messageId":"` + msgID + `","timestamp":"` + at +
		`","properties":{"order_id":"` + orderID + `","revenue":` + revenue + `,"li_fat_id":"lfi-1"}}`
}

// records returns every conversion the sandbox stored, duplicates included.
func (h *harness) records() []sandbox.Conversion {
	return h.sb.Conversions(sandbox.ConversionFilter{Duplicates: true})
}

func amountOf(t *testing.T, c sandbox.Conversion) string {
	t.Helper()
	var b struct {
		Value struct {
			Amount string `json:"amount"`
		} `json:"conversionValue"`
	}
	if err := json.Unmarshal(c.Body, &b); err != nil {
		t.Fatal(err)
	}
	return b.Value.Amount
}

// TestEventIDCollisionSuffix: the upsell pair (order wc_order_5291, $149 then
// $39) is sent as two conversions, the second under a derived eventId, and
// both are counted; a replay of either (same content) is no new send: the
// sent-conversion record says LinkedIn accepted it, also after a restart,
// for the derived eventId too.
func TestEventIDCollisionSuffix(t *testing.T) { bothGuardStores(t, testEventIDCollisionSuffix) }

func testEventIDCollisionSuffix(t *testing.T, local bool) {
	reg := prometheus.NewRegistry()
	h := newHarness(t, opts{guardLocal: local, mappings: orderMapping, metrics: delivery.NewMetrics(reg)})
	at := h.clock.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	h.send(order("m-1", "wc_order_5291", "149", at))
	eventually(t, 20*time.Second, "the first order", func() bool { return len(h.records()) == 1 })
	h.send(order("m-2", "wc_order_5291", "39", at))
	eventually(t, 20*time.Second, "the upsell", func() bool { return len(h.records()) == 2 })
	recs := h.records()
	if recs[0].EventID != "wc_order_5291" || amountOf(t, recs[0]) != "149" {
		t.Errorf("first: %s %s", recs[0].EventID, recs[0].Body)
	}
	derived := recs[1].EventID
	if !strings.HasPrefix(derived, "wc_order_5291-") || len(derived) != len("wc_order_5291-")+8 || amountOf(t, recs[1]) != "39" {
		t.Errorf("upsell: %s %s", derived, recs[1].Body)
	}
	if kept := h.sb.Conversions(sandbox.ConversionFilter{}); len(kept) != 2 {
		t.Errorf("the sandbox counts %d of the pair, want both", len(kept))
	}
	// Replays (new messageIds, same content), across a restart of the
	// runner: both already accepted, neither is sent again.
	h.stop()
	h.start(delivery.RunnerConfig{Clock: h.clock, Linger: 20 * time.Millisecond})
	h.send(order("m-3", "wc_order_5291", "39", at), order("m-4", "wc_order_5291", "149", at))
	eventually(t, 20*time.Second, "the replays skipped as already sent", func() bool {
		return counterValue(t, reg, "capstan_delivery_already_sent_total", map[string]string{"destination": "li", "mapping": "Orders"}) == 2
	})
	// A third content under the eventId still gets a derived eventId of
	// its own, so everything that was held back was held back as sent.
	h.send(order("m-5", "wc_order_5291", "7", at))
	eventually(t, 20*time.Second, "the third order", func() bool { return len(h.records()) == 3 })
	if recs := h.records(); amountOf(t, recs[2]) != "7" || recs[2].EventID == derived || recs[2].EventID == "wc_order_5291" {
		t.Errorf("third: %s %s; the replays must not have been sent (derived %s)", recs[2].EventID, recs[2].Body, derived)
	}
	if n := len(h.deadLetters(delivery.ReasonCollision)); n != 0 {
		t.Errorf("%d dead letters", n)
	}
	ts, err := h.ledger.Tallies(context.Background(), "li", h.clock.Now().Add(-48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var acc, col int64
	for _, tl := range ts {
		acc += tl.Accepted
		col += tl.Collisions
	}
	if acc != 3 || col != 2 {
		t.Errorf("ledger: %d accepted, %d collisions (%+v); want 3 and 2", acc, col, ts)
	}
}

// TestEventIDCollisionDeadLetter: with dead_letter the upsell is held in
// the DLQ with reason event_id_collision; the first order is delivered, and
// its replay is neither a collision nor sent again.
func TestEventIDCollisionDeadLetter(t *testing.T) { bothGuardStores(t, testEventIDCollisionDeadLetter) }

func testEventIDCollisionDeadLetter(t *testing.T, local bool) {
	reg := prometheus.NewRegistry()
	h := newHarness(t, opts{guardLocal: local, mappings: orderMapping, runner: delivery.RunnerConfig{EventIDCollision: delivery.CollisionDeadLetter}, metrics: delivery.NewMetrics(reg)})
	at := h.clock.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	h.send(order("m-1", "wc_order_5291", "149", at))
	eventually(t, 20*time.Second, "the first order", func() bool { return len(h.records()) == 1 })
	h.settled() // its acceptance recorded
	h.send(order("m-2", "wc_order_5291", "39", at), order("m-3", "wc_order_5291", "149", at))
	eventually(t, 20*time.Second, "the dead letter", func() bool { return len(h.deadLetters(delivery.ReasonCollision)) == 1 })
	eventually(t, 20*time.Second, "the replay skipped", func() bool {
		return counterValue(t, reg, "capstan_delivery_already_sent_total", map[string]string{"destination": "li", "mapping": "Orders"}) == 1
	})
	dl := h.deadLetters(delivery.ReasonCollision)[0]
	if dl.MessageID != "m-2" || dl.Code != "EVENT_ID_COLLISION" || !strings.Contains(string(dl.Payload), `"amount":"39"`) {
		t.Errorf("dead letter %+v %s", dl, dl.Payload)
	}
	for _, r := range h.records() {
		if r.EventID != "wc_order_5291" || amountOf(t, r) != "149" {
			t.Errorf("sent %s %s", r.EventID, r.Body)
		}
	}
	if n := len(h.records()); n != 1 {
		t.Errorf("%d conversions sent, want 1", n)
	}
}

// TestAlreadySentAfterLostAcknowledgements: the events of 50 accepted
// conversions are read again, as after acknowledgements that never reached
// the stream (a replica killed between LinkedIn's 2xx and the ack, a
// consumer leader that died with them): the delivery consumer is deleted
// and the runner restarted, so it reads every event again. None is sent
// again; each is counted as already sent and acknowledged. A new event
// afterwards is sent as usual.
func TestAlreadySentAfterLostAcknowledgements(t *testing.T) {
	bothGuardStores(t, testAlreadySentAfterLostAcknowledgements)
}

func testAlreadySentAfterLostAcknowledgements(t *testing.T, local bool) {
	reg := prometheus.NewRegistry()
	h := newHarness(t, opts{guardLocal: local, metrics: delivery.NewMetrics(reg)})
	var evs []string
	for i := range 50 {
		evs = append(evs, signUpEvent(i, ""))
	}
	h.send(evs...)
	eventually(t, 20*time.Second, "50 delivered", func() bool { return len(h.records()) == 50 })
	h.stop()
	if err := h.eng.JetStream().DeleteConsumer(context.Background(), stream.EventsStream, "deliver-li"); err != nil {
		t.Fatal(err)
	}
	h.start(delivery.RunnerConfig{Clock: h.clock, Linger: 20 * time.Millisecond})
	eventually(t, 20*time.Second, "50 skipped as already sent", func() bool {
		return counterValue(t, reg, "capstan_delivery_already_sent_total", map[string]string{"destination": "li", "mapping": "Sign Up"}) == 50
	})
	h.send(signUpEvent(50, ""))
	eventually(t, 20*time.Second, "the new event", func() bool { return len(h.records()) == 51 })
	if n := len(h.records()); n != 51 {
		t.Errorf("%d conversions sent, want 51 (50 once, then the new one)", n)
	}
	h.settled()
}

// settled waits until the runner acknowledged every stored event.
func (h *harness) settled() {
	h.t.Helper()
	eventually(h.t, 20*time.Second, "every event acknowledged", func() bool {
		ci, err := h.eng.JetStream().Consumer(context.Background(), stream.EventsStream, "deliver-li")
		if err != nil {
			h.t.Fatal(err)
		}
		info, err := ci.Info(context.Background())
		if err != nil {
			h.t.Fatal(err)
		}
		return info.NumAckPending == 0 && info.NumPending == 0
	})
}

// TestRekeyFitsEventIDLimit: a derived eventId never exceeds 64 characters
// and differs for different long ids with a common prefix.
func TestRekeyFitsEventIDLimit(t *testing.T) {
	f, err := NewFormat(FormatConfig{})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("é", 70)
	mk := func(id string) delivery.Payload {
		c := &conversion{}
		c.EventID = id
		return delivery.Payload{Value: c}
	}
	seen := map[string]bool{}
	for _, id := range []string{long + "a", long + "b", "short"} {
		p := mk(id)
		_, _, content, ok := f.EventKey(p)
		if !ok {
			t.Fatal("no key")
		}
		q, derived, err := f.Rekey(p, content)
		if err != nil {
			t.Fatal(err)
		}
		if n := len([]rune(derived)); n > MaxEventIDLength || q.Value.(*conversion).EventID != derived {
			t.Errorf("%q: derived %q (%d characters)", id, derived, n)
		}
		q2, _, _ := f.Rekey(p, content)
		if q2.Value.(*conversion).EventID != derived {
			t.Error("not stable")
		}
		if seen[derived] {
			t.Errorf("%q: derived %q twice", id, derived)
		}
		seen[derived] = true
	}
}

// The collision guard's content covers what the issue names — value,
// currency, conversionHappenedAt and identifiers — and the rule: a change
// of any gives another content under the same eventId; the same
// conversion gives the same content (a retry is no collision).
func TestEventKeyContent(t *testing.T) {
	f, err := NewFormat(FormatConfig{})
	if err != nil {
		t.Fatal(err)
	}
	base := func() *conversion {
		c := &conversion{}
		c.Conversion = capi.Conversion{Conversion: "urn:lla:llaPartnerConversion:1", ConversionHappenedAt: 1767225600000,
			ConversionValue: &capi.ConversionValue{CurrencyCode: "USD", Amount: "149"}, EventID: "wc_order_5291",
			User: capi.User{UserIDs: []capi.UserID{{IDType: "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID", IDValue: "lfi-1"}}}}
		return c
	}
	key := func(c *conversion) (string, string, [32]byte) {
		t.Helper()
		scope, id, content, ok := f.EventKey(delivery.Payload{Value: c})
		if !ok {
			t.Fatal("no key")
		}
		return scope, id, content
	}
	scope0, id0, c0 := key(base())
	if _, _, again := key(base()); again != c0 {
		t.Error("the same conversion gives another content")
	}
	if scope0 != "urn:lla:llaPartnerConversion:1" || id0 != "wc_order_5291" {
		t.Errorf("key %s %s", scope0, id0)
	}
	for name, change := range map[string]func(*conversion){
		"value":      func(c *conversion) { c.ConversionValue.Amount = "39" },
		"currency":   func(c *conversion) { c.ConversionValue.CurrencyCode = "EUR" },
		"time":       func(c *conversion) { c.ConversionHappenedAt++ },
		"identifier": func(c *conversion) { c.User.UserIDs[0].IDValue = "lfi-2" },
		"email added": func(c *conversion) {
			c.User.UserIDs = append(c.User.UserIDs, capi.UserID{IDType: "SHA256_EMAIL", IDValue: strings.Repeat("a", 64)})
		},
	} {
		c := base()
		change(c)
		if _, _, content := key(c); content == c0 {
			t.Errorf("%s changed, content did not", name)
		}
	}
}

// The guard remembers an eventId for 7 days (its bucket's TTL) — the
// window of the issue and of spec §16's outbound ledger.
func TestEventIDGuardWindow(t *testing.T) {
	h := newHarness(t, opts{mappings: orderMapping})
	h.send(order("m-1", "wc_order_5291", "149", h.clock.Now().UTC().Format(time.RFC3339)))
	eventually(t, 20*time.Second, "the order", func() bool { return len(h.records()) == 1 })
	kv, err := h.eng.JetStream().KeyValue(context.Background(), stream.EventIDsKV)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.TTL() != 7*24*time.Hour || delivery.GuardTTL != 7*24*time.Hour {
		t.Errorf("eventId guard bucket TTL %s (GuardTTL %s), want 168h", st.TTL(), delivery.GuardTTL)
	}
}

func TestClaimedButNotSentIsSentOnce(t *testing.T) {
	bothGuardStores(t, testClaimedButNotSentIsSentOnce)
}

func testClaimedButNotSentIsSentOnce(t *testing.T, local bool) {
	reg := prometheus.NewRegistry()
	h := newHarness(t, opts{guardLocal: local, metrics: delivery.NewMetrics(reg)})
	if _, err := h.sb.AddFault(sandbox.Fault{Endpoint: "conversionEvents", Action: sandbox.FaultStatus, Status: 503, Next: 1000}); err != nil {
		t.Fatal(err)
	}
	var evs []string
	for i := range 20 {
		evs = append(evs, signUpEvent(i, ""))
	}
	h.send(evs...)
	eventually(t, 20*time.Second, "a refused send", func() bool { return h.sb.Counters().FaultsInjected > 0 })
	h.stop() // claimed, not sent
	if n := len(h.records()); n != 0 {
		t.Fatalf("%d conversions reached the sandbox through the fault", n)
	}
	h.sb.RemoveFault("")
	h.start(delivery.RunnerConfig{Clock: h.clock, Linger: 20 * time.Millisecond})
	eventually(t, 20*time.Second, "20 delivered", func() bool { return len(h.records()) == 20 })
	h.settled()
	already := func() float64 {
		return counterValue(t, reg, "capstan_delivery_already_sent_total", map[string]string{"destination": "li", "mapping": "Sign Up"})
	}
	if n := already(); n != 0 {
		t.Errorf("%v counted as already sent; none was", n)
	}
	h.stop()
	if err := h.eng.JetStream().DeleteConsumer(context.Background(), stream.EventsStream, "deliver-li"); err != nil {
		t.Fatal(err)
	}
	h.start(delivery.RunnerConfig{Clock: h.clock, Linger: 20 * time.Millisecond})
	eventually(t, 20*time.Second, "20 skipped as already sent", func() bool { return already() == 20 })
	h.settled()
	if n := len(h.records()); n != 20 {
		t.Errorf("%d conversions sent, want 20 (each once)", n)
	}
}

func TestSentConversionRecordIsOneWritePerRequest(t *testing.T) {
	h := newHarness(t, opts{})
	h.send(many(100, nil)...)
	h.waitDelivered(100, nil)
	h.settled()
	s, err := h.eng.JetStream().Stream(context.Background(), "KV_"+delivery.GuardKV)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	reqs := h.sb.Counters().Batches
	if got, want := info.State.LastSeq, 100+uint64(reqs); got > want {
		t.Errorf("%d writes to the eventId bucket for 100 conversions in %d requests; want at most %d", got, reqs, want)
	}
}

func TestEventKeyHashesTheMarshalledConversion(t *testing.T) {
	f, err := NewFormat(FormatConfig{})
	if err != nil {
		t.Fatal(err)
	}
	odd := "a<b>&c\"d\\e\u2028f\u2029g\x01h\xffi é 😀\t\n"
	for _, cv := range []capi.Conversion{
		{Conversion: "urn:lla:llaPartnerConversion:1", ConversionHappenedAt: 1, EventID: "e1"},
		{
			Conversion: "urn:lla:llaPartnerConversion:" + odd, ConversionHappenedAt: 1733400000000, EventID: odd,
			ConversionValue: &capi.ConversionValue{CurrencyCode: "USD", Amount: "149.00"},
			User: capi.User{
				UserIDs:     []capi.UserID{{IDType: capi.IDType("SHA256_EMAIL"), IDValue: odd}, {IDType: capi.IDType("LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID"), IDValue: "x"}},
				UserInfo:    &capi.UserInfo{FirstName: odd, LastName: "L", CompanyName: "<c>", Title: "&", CountryCode: "FR"},
				ExternalIDs: []string{odd},
			},
		},
		{Conversion: "r", EventID: strings.Repeat("é<", 400), User: capi.User{UserInfo: &capi.UserInfo{FirstName: "F", LastName: "L"}}},
	} {
		c := &conversion{Conversion: cv}
		_, id, content, ok := f.EventKey(delivery.Payload{Value: c})
		if !ok || id != cv.EventID {
			t.Fatalf("EventKey: %v %q", ok, id)
		}
		b, err := json.Marshal(&cv)
		if err != nil {
			t.Fatal(err)
		}
		if content != sha256.Sum256(b) {
			t.Errorf("content hash differs from json.Marshal's for %s", b)
		}
	}
}

// bothGuardStores runs test with the eventId guard on the KV bucket, then
// on the local store.
func bothGuardStores(t *testing.T, test func(t *testing.T, local bool)) {
	t.Run("jetstream", func(t *testing.T) { test(t, false) })
	t.Run("local", func(t *testing.T) { test(t, true) })
}

// TestGuardLocalLeavesTheBucketAlone: with the local guard store, the
// claims and sent-conversion records of delivered conversions make no KV
// bucket (no index entry in the engine's memory per conversion).
func TestGuardLocalLeavesTheBucketAlone(t *testing.T) {
	h := newHarness(t, opts{guardLocal: true})
	h.send(many(20, nil)...)
	h.waitDelivered(20, nil)
	h.settled()
	if _, err := h.eng.JetStream().Stream(context.Background(), "KV_"+delivery.GuardKV); err == nil {
		t.Error("the eventId bucket exists with the local guard store")
	}
}

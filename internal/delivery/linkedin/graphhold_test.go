package linkedin

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/identity"
	capi "github.com/capstan-gw/capstan/internal/linkedin"
	"github.com/capstan-gw/capstan/internal/stream"
)

// TestGraphUnavailableHoldsEvents: while the identity graph's bucket does
// not answer (its stream is gone, as while the nodes holding it restart:
// "no responders"), a Sign Up that has no identifier of its own, only the
// li_fat_id the graph learnt from an earlier event of the same user, is
// neither sent without it nor dead-lettered for lacking it: it is held in
// the stream, the destination shows "degraded" with the graph's error once
// that lasts, and the runner keeps running. Once the bucket answers again
// the Sign Up is delivered with the graph's li_fat_id, and the destination
// delivers again.
func TestGraphUnavailableHoldsEvents(t *testing.T) {
	h := newHarness(t, opts{graph: true})
	ctx := context.Background()
	gr := h.graph
	// What the graph learns: u1's li_fat_id, from an identify (no mapping).
	h.send(`{"type":"identify","userId":"u1","messageId":"m-1","context":{"li_fat_id":"lfi-graph"}}`)
	eventually(t, 20*time.Second, "the graph learnt u1's li_fat_id", func() bool {
		c, err := gr.EnrichChecked(ctx, ev(t, `{"type":"track","event":"Sign Up","userId":"u1"}`), "web", identity.Captured{})
		return err == nil && c.LiFatID == "lfi-graph"
	})
	js := h.eng.JetStream()
	kvStream := "KV_" + stream.IdentityKV
	info, err := js.Stream(ctx, kvStream)
	if err != nil {
		t.Fatal(err)
	}
	saved := info.CachedInfo().Config
	kv, err := js.KeyValue(ctx, stream.IdentityKV)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := kv.Get(ctx, identity.UserKey("u1"))
	if err != nil {
		t.Fatal(err)
	}
	profile := entry.Value()
	if err := js.DeleteStream(ctx, kvStream); err != nil {
		t.Fatal(err)
	}
	// The Sign Up carries no identifier: only the graph can give it one.
	h.send(`{"type":"track","event":"Sign Up","userId":"u1","messageId":"m-2"}`)
	eventually(t, 30*time.Second, "degraded by the graph", func() bool {
		st := h.runner.Status()
		return st.State == "degraded" && strings.Contains(st.Reason, "identity graph unavailable")
	})
	if n := len(h.records()); n != 0 {
		t.Fatalf("%d conversions sent while the graph did not answer", n)
	}
	if dls := h.deadLetters(""); len(dls) != 0 {
		t.Fatalf("dead-lettered while the graph did not answer: %+v", dls[0])
	}
	// The bucket answers again, with what it held.
	if _, err := js.CreateStream(ctx, saved); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, identity.UserKey("u1"), profile); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the Sign Up delivered", func() bool { return len(h.records()) == 1 })
	rec := h.records()[0]
	var body struct {
		User struct {
			UserIDs []capi.UserID `json:"userIds"`
		} `json:"user"`
	}
	if err := json.Unmarshal(rec.Body, &body); err != nil {
		t.Fatal(err)
	}
	if ids := body.User.UserIDs; len(ids) != 1 || ids[0].IDValue != "lfi-graph" {
		t.Errorf("sent with userIds %+v, want the graph's li_fat_id", ids)
	}
	if dls := h.deadLetters(""); len(dls) != 0 {
		t.Errorf("dead letters: %+v", dls)
	}
	eventually(t, 10*time.Second, "delivering again", func() bool { return h.runner.Status().State == "delivering" })
}

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestEventsTailPrintsStoredBytes checks the contract the other tests rely
// on: `capstan events tail --json` prints each event "exactly as kept". The
// stored message is read independently, straight from the running embedded
// engine (through data_dir/engine.json), and compared byte for byte; the
// event carries characters that JSON encoders like to rewrite (&, <, >,
// U+2028, non-ASCII) in ordinary places such as a page URL.
func TestEventsTailPrintsStoredBytes(t *testing.T) {
	cfg := newConfig(t)
	srv := startServer(t, cfg)
	hc := newHTTPClient(t)

	props := "{\"url\":\"https://www.example.com/p?a=1&b=<2>\",\"sep\":\"line\u2028para\u2029end\",\"name\":\"Zoë 東京\",\"esc\":\"\\u0041\\/\"}"
	body := `{"userId":"u-tail","event":"Viewed <Pricing> & More","messageId":"tail-1","properties":` + props + `}`
	status, ans, err := post(context.Background(), hc, srv.URL, "/v1/track", []byte(body))
	if err != nil || status != http.StatusOK || !ans.Success {
		t.Fatalf("track: status %d %+v %v", status, ans, err)
	}

	evs := tailEvents(t, cfg)
	if len(evs) != 1 {
		t.Fatalf("events tail printed %d events, want 1", len(evs))
	}
	// The stored message is a segment (docs/storage.md): a binary frame
	// that holds the document as kept.
	raw := storedMessage(t, cfg, evs[0].Seq)

	// events tail --json prints that document unchanged.
	if len(evs[0].Event) == 0 || !bytes.Contains(raw, evs[0].Event) {
		t.Errorf("events tail --json does not print the stored document as kept:\n stored  %q\n printed %s", raw, evs[0].Event)
	}
	// The store keeps the sender's properties byte for byte (§2.5).
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(evs[0].Event, &doc); err != nil {
		t.Fatalf("stored document is not JSON: %s", evs[0].Event)
	}
	if got := string(doc["properties"]); got != props {
		t.Errorf("stored properties changed:\n sent   %s\n stored %s", props, got)
	}
}

// TestWriteKeyNotStored authenticates with the write key in the body only,
// as browsers (≤ 1.83) and curl callers do: the key is never stored (§2.8).
func TestWriteKeyNotStored(t *testing.T) {
	cfg := newConfig(t)
	srv := startServer(t, cfg)
	hc := newHTTPClient(t)
	bodies := []struct{ path, body string }{
		{"/v1/track", `{"writeKey":"` + testWriteKey + `","userId":"u-wk","event":"Single","messageId":"wk-1"}`},
		{"/v1/batch", `{"writeKey":"` + testWriteKey + `","batch":[{"type":"track","userId":"u-wk","event":"Envelope key","messageId":"wk-2"}]}`},
		{"/v1/batch", `{"batch":[{"writeKey":"` + testWriteKey + `","type":"track","userId":"u-wk","event":"Item key","messageId":"wk-3"},` +
			`{"writeKey":"` + testWriteKey + `","type":"identify","userId":"u-wk","messageId":"wk-4"}]}`},
	}
	for _, b := range bodies {
		status, ans, err := postAuth(context.Background(), hc, srv.URL, b.path, []byte(b.body), false)
		if err != nil || status != http.StatusOK || !ans.Success || ans.Dropped != 0 {
			t.Fatalf("%s %s: status %d %+v %v", b.path, b.body, status, ans, err)
		}
	}
	evs := tailEvents(t, cfg)
	if len(evs) != 4 {
		t.Fatalf("%d events stored, want 4", len(evs))
	}
	for _, ev := range evs {
		if bytes.Contains(ev.Event, []byte(testWriteKey)) || bytes.Contains(ev.Event, []byte(`"writeKey"`)) {
			t.Errorf("event %s stored with its write key: %s", ev.MessageID(), ev.Event)
		}
	}
}

// storedMessage reads message seq of the EVENTS stream directly from the
// embedded engine of a running capstan: its data, or for a compressed
// segment (Capstan-Seg: 2, one S2 block) the frame it holds.
func storedMessage(t testing.TB, cfg string, seq uint64) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := eventsStream(t, cfg).GetMsg(ctx, seq)
	if err != nil {
		t.Fatalf("get message %d: %v", seq, err)
	}
	if m.Header.Get("Capstan-Seg") != "2" {
		return m.Data
	}
	frame, err := s2.Decode(nil, m.Data)
	if err != nil {
		t.Fatalf("message %d: compressed segment: %v", seq, err)
	}
	return frame
}

// eventsStream opens the EVENTS stream of a running capstan's embedded
// engine (through data_dir/engine.json), on a connection closed when the
// test ends.
func eventsStream(t testing.TB, cfg string) jetstream.Stream {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(filepath.Dir(cfg), "data", "engine.json"))
	if err != nil {
		t.Fatalf("read engine control file: %v", err)
	}
	var ctl struct{ URL, Token string }
	if err := json.Unmarshal(b, &ctl); err != nil {
		t.Fatalf("engine.json: %v", err)
	}
	nc, err := nats.Connect(ctl.URL, nats.Token(ctl.Token), nats.Timeout(5*time.Second), nats.NoReconnect())
	if err != nil {
		t.Fatalf("connect to the embedded engine: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "EVENTS")
	if err != nil {
		t.Fatalf("stream EVENTS: %v", err)
	}
	return s
}

package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// storedTimeLayout is how capstan stores instants (segment-ingest.md §2.6).
const storedTimeLayout = "2006-01-02T15:04:05.000Z"

// requireNodeModules fails (never skips) when node or the pinned npm
// packages are missing: `make test` installs them first.
func requireNodeModules(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is not on PATH: install Node.js 20+ and run scripts/setup-e2e.sh")
	}
	pkg := filepath.Join(e2eDir, "node_modules", "@segment", "analytics-node", "package.json")
	b, err := os.ReadFile(pkg)
	if err != nil {
		t.Fatalf("e2e/node_modules is missing or incomplete (%v): run scripts/setup-e2e.sh (make test runs it first)", err)
	}
	var p struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(b, &p); err != nil || !strings.HasPrefix(p.Version, "3.") {
		t.Fatalf("@segment/analytics-node in e2e/node_modules is %q, want 3.x: run scripts/setup-e2e.sh", p.Version)
	}
}

// nodeRun is what e2e/node/send.mjs prints.
type nodeRun struct {
	Version  string `json:"version"`
	Requests []struct {
		URL     string            `json:"url"`
		Method  string            `json:"method"`
		Headers map[string]string `json:"headers"`
		Body    struct {
			Batch    []json.RawMessage `json:"batch"`
			WriteKey string            `json:"writeKey"`
			SentAt   string            `json:"sentAt"`
		} `json:"body"`
	} `json:"requests"`
	Responses []struct {
		URL    string `json:"url"`
		Status int    `json:"status"`
	} `json:"responses"`
	Errors []string `json:"errors"`
}

// sentItem is one event as analytics-node put it on the wire.
type sentItem struct {
	raw    json.RawMessage
	fields map[string]json.RawMessage
	sentAt string // the request envelope's sentAt
	req    int    // index of the request that carried it
}

func TestAnalyticsNode(t *testing.T) {
	requireNodeModules(t)
	cfg := newConfig(t)
	srv := startServer(t, cfg)
	run := strings.ReplaceAll(t.Name(), "/", "-") + "-" + time.Now().UTC().Format("150405.000")

	begin := time.Now()
	// The limit is for a hung client, not a slow one: on a saturated CI
	// machine node alone can take a minute to start and send.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join("node", "send.mjs"),
		"--host", srv.URL, "--write-key", testWriteKey, "--run", run)
	cmd.Dir = e2eDir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	end := time.Now()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run node send.mjs: %v", err)
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w, at the test's limit after %s", err, end.Sub(begin).Round(time.Second))
		}
		t.Fatalf("node send.mjs failed (%v):\nstderr: %s\nstdout: %s", err, stderr.String(), stdout.String())
	}
	var nr nodeRun
	if err := json.Unmarshal(stdout.Bytes(), &nr); err != nil {
		t.Fatalf("send.mjs output is not JSON (%v): %s", err, stdout.String())
	}
	t.Logf("@segment/analytics-node %s made %d requests", nr.Version, len(nr.Requests))

	// What the library sent: five single-event requests, then the batch of
	// four (flushAt) and the last two (closeAndFlush).
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte(testWriteKey+":"))
	var items []sentItem
	var sizes []int
	for i, r := range nr.Requests {
		if r.URL != srv.URL+"/v1/batch" || r.Method != "POST" {
			t.Errorf("request %d: %s %s, want POST %s/v1/batch", i, r.Method, r.URL, srv.URL)
		}
		if got := r.Headers["Authorization"]; got != wantAuth {
			t.Errorf("request %d: Authorization %q, want %q", i, got, wantAuth)
		}
		if r.Body.WriteKey != testWriteKey {
			t.Errorf("request %d: body writeKey %q, want %q", i, r.Body.WriteKey, testWriteKey)
		}
		sizes = append(sizes, len(r.Body.Batch))
		for _, raw := range r.Body.Batch {
			var f map[string]json.RawMessage
			if err := json.Unmarshal(raw, &f); err != nil {
				t.Fatalf("request %d: item is not an object: %s", i, raw)
			}
			items = append(items, sentItem{raw: raw, fields: f, sentAt: r.Body.SentAt, req: i})
		}
	}
	sort.Ints(sizes)
	if want := []int{1, 1, 1, 1, 1, 2, 4}; !slices.Equal(sizes, want) {
		t.Fatalf("analytics-node sent batches of sizes %v, want %v (five single calls, flushAt 4, closeAndFlush 2)", sizes, want)
	}
	if len(nr.Responses) != len(nr.Requests) {
		t.Fatalf("%d requests but %d responses", len(nr.Requests), len(nr.Responses))
	}
	for i, r := range nr.Responses {
		if r.Status != 200 {
			t.Errorf("response %d: status %d, want 200", i, r.Status)
		}
	}

	// What capstan stored: exactly those events, each once.
	stored := tailEvents(t, cfg)
	if len(stored) != len(items) {
		t.Errorf("stream holds %d events, analytics-node sent %d", len(stored), len(items))
	}
	byID := map[string]storedEvent{}
	for _, ev := range stored {
		id := ev.MessageID()
		if _, dup := byID[id]; dup {
			t.Errorf("messageId %q stored twice", id)
		}
		byID[id] = ev
	}

	// The calls send.mjs makes and the fields they set, as stored (raw
	// JSON: key order matters, and "zeta" comes before "alpha").
	q := func(s string) string { return strconv.Quote(s) }
	user, anon := q("user-"+run), q("anon-"+run)
	wantFields := map[string]map[string]string{
		"track Order Completed": {"type": `"track"`, "userId": user, "event": `"Order Completed"`,
			"properties": `{"zeta":"last-but-first","revenue":49.9,"currency":"EUR","products":[` +
				`{"product_id":"p-1","sku":"SKU-1","price":19.95,"quantity":2,"tags":["a","b"]},` +
				`{"product_id":"p-2","price":9.99,"quantity":1,"meta":{"nested":{"deep":[1,2,{"x":null}]}}}],` +
				`"unicode":"Zürich – 東京 – emoji 🎉 – \"quoted\" \\ back","empty":{},"nothing":null,"flag":false,"big":12345678901234,"alpha":"first-but-last"}`},
		// analytics-node copies the page's category into its properties.
		"page Pricing": {"type": `"page"`, "anonymousId": anon, "name": `"Pricing"`, "category": `"Docs"`,
			"properties": `{"url":"https://www.example.com/pricing?li_fat_id=abc","path":"/pricing","search":"?li_fat_id=abc","referrer":"","title":"Pricing","category":"Docs"}`},
		"identify": {"type": `"identify"`, "userId": user, "anonymousId": anon,
			"traits": `{"email":"ann@example.com","firstName":"Ann","lastName":"Lee","company":{"name":"Acme Inc","employee_count":50},"title":"Engineer"}`},
		"group": {"type": `"group"`, "userId": user, "groupId": q("org-" + run),
			"traits": `{"name":"Acme Corporation","industry":"Technology","employees":500}`},
		"alias": {"type": `"alias"`, "userId": user, "previousId": anon},
	}
	for i := range 6 {
		wantFields[fmt.Sprintf("track Batch Event %d", i)] = map[string]string{"type": `"track"`, "anonymousId": anon,
			"properties": fmt.Sprintf(`{"index":%d,"list":[%d,"%d"],"obj":{"b":%d,"a":%d}}`, i, i, i, i, -i)}
	}
	var wantCalls []string
	for call := range wantFields {
		wantCalls = append(wantCalls, call)
	}
	var gotCalls []string
	receivedAt := map[int]string{} // request index -> receivedAt of its events
	for _, it := range items {
		var id string
		mustUnmarshal(t, it.fields["messageId"], &id)
		if !strings.HasPrefix(id, "node-next-") {
			t.Errorf("analytics-node messageId %q lacks the node-next- prefix", id)
		}
		ev, ok := byID[id]
		if !ok {
			t.Errorf("event %s (messageId %s) was acknowledged but is not in the stream", it.raw, id)
			continue
		}
		gotCalls = append(gotCalls, describeCall(t, it.fields))
		var doc struct {
			ReceivedAt string `json:"receivedAt"`
		}
		mustUnmarshal(t, ev.Event, &doc)
		if r, ok := receivedAt[it.req]; ok && r != doc.ReceivedAt {
			t.Errorf("events of request %d have receivedAt %s and %s; one request has one receivedAt (§2.6)", it.req, r, doc.ReceivedAt)
		}
		receivedAt[it.req] = doc.ReceivedAt
		call := describeCall(t, it.fields)
		t.Run(call, func(t *testing.T) {
			checkStoredNodeEvent(t, it, ev, nr.Version, begin, end)
			// Independently of what send.mjs did, the fields its calls set.
			var got map[string]json.RawMessage
			mustUnmarshal(t, ev.Event, &got)
			for k, want := range wantFields[call] {
				if string(got[k]) != want {
					t.Errorf("stored %s = %s, want %s", k, got[k], want)
				}
			}
		})
	}
	sort.Strings(gotCalls)
	sort.Strings(wantCalls)
	if !slices.Equal(gotCalls, wantCalls) {
		t.Errorf("calls stored:\n%q\nwant:\n%q", gotCalls, wantCalls)
	}
}

func describeCall(t testing.TB, f map[string]json.RawMessage) string {
	var typ, name string
	mustUnmarshal(t, f["type"], &typ)
	if raw, ok := f["event"]; ok {
		mustUnmarshal(t, raw, &name)
	} else if raw, ok := f["name"]; ok {
		mustUnmarshal(t, raw, &name)
	}
	return strings.TrimSpace(typ + " " + name)
}

// checkStoredNodeEvent compares one stored document with the item the
// library sent (segment-ingest.md §2.5, §2.6, §2.8).
func checkStoredNodeEvent(t *testing.T, sent sentItem, ev storedEvent, version string, begin, end time.Time) {
	var typ string
	mustUnmarshal(t, sent.fields["type"], &typ)
	if ev.Source != testSource || ev.Type != typ || ev.Subject != "events."+testSource+".seg" {
		t.Errorf("stored with source %q type %q subject %q, want %q, %q and events.%s.seg", ev.Source, ev.Type, ev.Subject, testSource, typ, testSource)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal(ev.Event, &got); err != nil {
		t.Fatalf("stored event is not an object: %s", ev.Event)
	}
	if bytes.Contains(ev.Event, []byte(testWriteKey)) {
		t.Errorf("the write key appears in the stored event: %s", ev.Event)
	}

	// Every field the library sent is stored byte for byte (nested values
	// and key order included), except the server-owned ones.
	serverOwned := map[string]bool{"timestamp": true, "originalTimestamp": true, "sentAt": true, "receivedAt": true, "writeKey": true, "context": true}
	for k, want := range sent.fields {
		if serverOwned[k] {
			continue
		}
		if g, ok := got[k]; !ok {
			t.Errorf("%s: sent %s, not stored", k, want)
		} else if !bytes.Equal(g, want) {
			t.Errorf("%s changed:\n sent   %s\n stored %s", k, want, g)
		}
	}
	// Nothing else but the server's fields was added.
	for k := range got {
		if _, ok := sent.fields[k]; !ok && !serverOwned[k] {
			t.Errorf("stored event has field %s=%s that was not sent", k, got[k])
		}
	}
	if _, ok := got["writeKey"]; ok {
		t.Errorf("writeKey is stored: %s", got["writeKey"])
	}

	// context: as sent, plus context.ip when the event had none.
	var sentCtx, gotCtx map[string]json.RawMessage
	mustUnmarshal(t, sent.fields["context"], &sentCtx)
	mustUnmarshal(t, got["context"], &gotCtx)
	for k, want := range sentCtx {
		if !bytes.Equal(gotCtx[k], want) {
			t.Errorf("context.%s changed:\n sent   %s\n stored %s", k, want, gotCtx[k])
		}
	}
	for k, v := range gotCtx {
		if _, ok := sentCtx[k]; !ok && (k != "ip" || string(v) != `"127.0.0.1"`) {
			t.Errorf("context.%s=%s added; only context.ip=\"127.0.0.1\" may be", k, v)
		}
	}
	if _, ok := gotCtx["ip"]; !ok {
		t.Errorf("context.ip missing from the stored event")
	}
	var lib struct{ Name, Version string }
	mustUnmarshal(t, gotCtx["library"], &lib)
	if lib.Name != "@segment/analytics-node" || lib.Version != version {
		t.Errorf("context.library = %+v, want @segment/analytics-node %s", lib, version)
	}

	// Timestamps: stored format, and the clock-skew rule of §2.6.
	ts := map[string]time.Time{}
	for _, k := range []string{"originalTimestamp", "sentAt", "receivedAt", "timestamp"} {
		var s string
		if raw, ok := got[k]; !ok {
			t.Errorf("%s missing from the stored event", k)
			continue
		} else {
			mustUnmarshal(t, raw, &s)
		}
		tm, err := time.Parse(storedTimeLayout, s)
		if err != nil || tm.Format(storedTimeLayout) != s {
			t.Errorf("%s = %q, not in the stored format %s", k, s, storedTimeLayout)
		}
		ts[k] = tm
	}
	var sentTS string
	mustUnmarshal(t, sent.fields["timestamp"], &sentTS)
	if got := ts["originalTimestamp"].Format(storedTimeLayout); got != sentTS {
		t.Errorf("originalTimestamp %s, want the timestamp the library sent, %s", got, sentTS)
	}
	if got := ts["sentAt"].Format(storedTimeLayout); got != sent.sentAt {
		t.Errorf("sentAt %s, want the batch's sentAt %s", got, sent.sentAt)
	}
	if r := ts["receivedAt"]; r.Before(begin.Add(-time.Second)) || r.After(end.Add(time.Second)) {
		t.Errorf("receivedAt %s is not within the test's run, %s to %s", r, begin.UTC(), end.UTC())
	}
	want := ts["receivedAt"].Add(-ts["sentAt"].Sub(ts["originalTimestamp"]))
	if !ts["timestamp"].Equal(want) {
		t.Errorf("timestamp %s, want receivedAt - (sentAt - originalTimestamp) = %s", ts["timestamp"].Format(storedTimeLayout), want.Format(storedTimeLayout))
	}
}

func mustUnmarshal(t testing.TB, raw json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("unmarshal %s into %s: %v", raw, reflect.TypeOf(v), err)
	}
}

package event

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/normalize.golden with what this code stores")

const goldenFile = "testdata/normalize.golden"

// goldenEvents are batch items that exercise what Normalize rewrites:
// timestamps in every form (stored as they are only when already in
// TimeLayout), contexts written compactly or not, with repeated keys,
// empty or holding an ip, escaped keys and ids, numbers as ids.
var goldenEvents = []string{
	// analytics-next, as loadgen sends it
	`{"timestamp":"2026-12-06T08:13:54.123Z","type":"track","properties":{"product_id":"sku-000042","category":"Games","price":18.99,"currency":"USD"},"event":"Product Viewed","messageId":"ajs-next-1-000001","anonymousId":"3f0b0c3e-9c1d-4f1e-a1e7-6f2f9b1d2c44","userId":"user_42","context":{"page":{"path":"/p","referrer":"","search":"","url":"https://www.example.com/p"},"userAgent":"Mozilla/5.0","library":{"name":"analytics.js","version":"npm:next-1.84.3"}}}`,
	`{"timestamp":"2026-12-06T08:13:54.123Z","type":"track","event":"E","messageId":"m-sent","anonymousId":"a","sentAt":"2026-12-06T08:13:55.000Z","context":{"library":{"name":"analytics.js"}}}`,
	`{"originalTimestamp":"2026-12-06T08:13:54.999Z","timestamp":"2020-01-01T00:00:00.000Z","type":"page","messageId":"m-orig","userId":"u"}`,
	`{"timestamp":"2026-12-06T08:13:54Z","type":"identify","messageId":"m-nofrac","userId":"u","traits":{"email":"a@example.com"}}`,
	`{"timestamp":"2026-12-06T08:13:54.5Z","type":"track","event":"E","messageId":"m-frac1","userId":"u"}`,
	`{"timestamp":"2026-12-06T08:13:54.123456789Z","type":"track","event":"E","messageId":"m-frac9","userId":"u"}`,
	`{"timestamp":"2026-12-06T10:13:54.123+02:00","type":"track","event":"E","messageId":"m-offset","userId":"u"}`,
	`{"timestamp":"2026-12-06T08:13:54.123","type":"track","event":"E","messageId":"m-nozone","userId":"u"}`,
	`{"timestamp":"2026-12-06","type":"track","event":"E","messageId":"m-date","userId":"u"}`,
	`{"timestamp":"\u0032026-12-06T08:13:54.123Z","type":"track","event":"E","messageId":"m-escaped-ts","userId":"u"}`,
	`{"timestamp":"2026-12-06T08:13:54.12\u0033Z","type":"track","event":"E","messageId":"m-escaped-ms","userId":"u"}`,
	`{"timestamp":"0000-01-01T00:00:00.000Z","type":"track","event":"E","messageId":"m-year0","userId":"u"}`,
	`{"timestamp":"9999-12-31T23:59:59.999Z","type":"track","event":"E","messageId":"m-year9999","userId":"u"}`,
	`{"timestamp":"2024-02-29T12:00:00.000Z","type":"track","event":"E","messageId":"m-leap","userId":"u"}`,
	`{"timestamp":"2023-02-29T12:00:00.000Z","type":"track","event":"E","messageId":"m-notleap","userId":"u"}`,
	`{"timestamp":"2026-13-01T00:00:00.000Z","type":"track","event":"E","messageId":"m-month13","userId":"u"}`,
	`{"timestamp":"2026-12-06T24:00:00.000Z","type":"track","event":"E","messageId":"m-hour24","userId":"u"}`,
	`{"timestamp":"2026-12-06T08:13:54.123z","type":"track","event":"E","messageId":"m-lowerz","userId":"u"}`,
	`{"timestamp":"2026-12-06 08:13:54.123Z","type":"track","event":"E","messageId":"m-space","userId":"u"}`,
	`{"timestamp":"2026-12-06T08:13:54,123Z","type":"track","event":"E","messageId":"m-comma","userId":"u"}`,
	`{"timestamp":1765008834123,"type":"track","event":"E","messageId":"m-number-ts","userId":"u"}`,
	`{"timestamp":"2026-12-06T08:13:54.123Z","sentAt":"2026-12-06T08:13:54.1Z","type":"track","event":"E","messageId":"m-sent-short","userId":"u"}`,
	`{"timestamp":"2026-12-06T08:13:54.123Z","sentAt":null,"type":"track","event":"E","messageId":"m-sent-null","userId":"u"}`,
	`{"timestamp":"2026-12-06T08:13:54.123Z","receivedAt":"2000-01-01T00:00:00.000Z","type":"track","event":"E","messageId":"m-received","userId":"u"}`,
	`{"type":"track","event":"E","messageId":"m-no-ts","userId":"u"}`,
	// contexts
	`{"type":"track","event":"E","messageId":"m-ctx-spaced","userId":"u","context":{ "a" : 1 , "b":[1, 2] }}`,
	`{"type":"track","event":"E","messageId":"m-ctx-dup","userId":"u","context":{"a":1,"a":22}}`,
	`{"type":"track","event":"E","messageId":"m-ctx-dup-short","userId":"u","context":{"a":111,"a":2}}`,
	`{"type":"track","event":"E","messageId":"m-ctx-empty","userId":"u","context":{}}`,
	`{"type":"track","event":"E","messageId":"m-ctx-empty-spaced","userId":"u","context":{ }}`,
	`{"type":"track","event":"E","messageId":"m-ctx-ip","userId":"u","context":{"ip":"10.0.0.1","a":1}}`,
	`{"type":"track","event":"E","messageId":"m-ctx-ip-null","userId":"u","context":{"ip":null}}`,
	`{"type":"track","event":"E","messageId":"m-ctx-escaped-key","userId":"u","context":{"\u0069p":"x","b\u0061":1}}`,
	`{"type":"track","event":"E","messageId":"m-ctx-twice","userId":"u","context":{"a":1},"context":{"b":2}}`,
	`{"type":"track","event":"E","messageId":"m-ctx-null","userId":"u","context":null}`,
	`{"type":"track","event":"E","messageId":"m-ctx-nested","userId":"u","context":{"page":{"context":{"ip":"1"}},"x":"}"}}`,
	`{"type":"track","event":"E","messageId":"m-ctx-last-space","userId":"u","context":{"a":1 }}`,
	// ids, keys, types
	`{"type":"track","event":"E","messageId":42,"userId":7,"anonymousId":"an\u00efd"}`,
	`{"type":"track","event":"E","messageId":"m\u0031-escaped","userId":"u"}`,
	`{"t\u0079pe":"TRACK","event":"E","messageId":"m-key-escaped","userId":"u"}`,
	`{"type":"alias","userId":"u","previousId":"p","messageId":"m-alias"}`,
	`{"type":"group","userId":"u","groupId":"g","messageId":"m-group"}`,
	`{"type":"track","event":"","messageId":"m-no-event","userId":"u"}`,
	`{"type":"screen","messageId":"m-no-id"}`,
	`{"type":"track","event":"E","userId":"u","writeKey":"k"}`,
	`{"type":"track","event":"E","messageId":"","userId":"u","integrations":{"All":false}}`,
}

// goldenBodies are the request bodies of TestNormalizeGolden: goldenEvents
// in batches with and without an envelope, and FuzzNormalize's corpus.
func goldenBodies(t *testing.T) []string {
	t.Helper()
	batch := strings.Join(goldenEvents, ",")
	bodies := []string{
		`{"batch":[` + batch + `]}`,
		`{"batch":[` + batch + `],"sentAt":"2026-12-06T08:13:56.000Z"}`,
		`{"batch":[` + batch + `],"sentAt":"2026-12-06T08:13:56.5+00:00","context":{"library":{"name":"env"},"ip":"192.0.2.9"},"integrations":{"X":true}}`,
		`{"batch":[` + batch + `],"context":{"a":{"b":1}}}`,
	}
	bodies = append(bodies, goldenEvents...) // each also as a single-event body
	dir := "testdata/fuzz/FuzzNormalize"
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(b)) {
			if lit, ok := strings.CutPrefix(strings.TrimSpace(line), "[]byte("); ok {
				s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
				if err != nil {
					t.Fatalf("%s: %v", e.Name(), err)
				}
				bodies = append(bodies, s)
			}
		}
	}
	return bodies
}

// TestNormalizeGolden: what ingest stores for goldenBodies (batch items
// through ParseBatch and Body.Normalize, every body also as a single
// event through ParseSingle), with and without a client IP, is what the
// golden file recorded, byte for byte. The file was written by the code
// before Normalize reused timestamp literals and spliced context.ip
// (go test -run TestNormalizeGolden -update-golden).
func TestNormalizeGolden(t *testing.T) {
	var out bytes.Buffer
	for i, body := range goldenBodies(t) {
		for _, ip := range []string{"", "203.0.113.7", "2001:db8::1"} {
			fmt.Fprintf(&out, "## body %d, client ip %q\n", i, ip)
			goldenBatch(&out, []byte(body), ip)
			goldenSingle(&out, []byte(body), ip)
		}
	}
	if *updateGolden {
		if err := os.WriteFile(goldenFile, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(out.String(), "\n")
	for i, w := range strings.Split(string(want), "\n") {
		if i >= len(got) || got[i] != w {
			g := "(missing)"
			if i < len(got) {
				g = got[i]
			}
			t.Fatalf("%s:%d:\n got %s\nwant %s", goldenFile, i+1, g, w)
		}
	}
	if len(got) != len(strings.Split(string(want), "\n")) {
		t.Fatalf("%d lines, golden file has %d", len(got), len(strings.Split(string(want), "\n")))
	}
}

func goldenBatch(out *bytes.Buffer, body []byte, ip string) {
	b, rerr := ParseBatch(body)
	if rerr != nil {
		fmt.Fprintf(out, "batch: %s: %s\n", rerr.Code, rerr.Message)
		return
	}
	defer b.Release()
	req := &Request{ReceivedAt: received, ClientIP: ip, Envelope: b.Envelope}
	for i := range b.Items {
		if derr := b.DepthError(i); derr != nil {
			fmt.Fprintf(out, "batch %d: drop %s: %s\n", i, derr.Code, derr.Message)
			continue
		}
		goldenEvent(out, fmt.Sprintf("batch %d", i), b, i, "", req)
	}
}

func goldenSingle(out *bytes.Buffer, body []byte, ip string) {
	b, rerr := ParseSingle(body)
	if rerr != nil {
		fmt.Fprintf(out, "single: %s: %s\n", rerr.Code, rerr.Message)
		return
	}
	defer b.Release()
	if derr := b.DepthError(0); derr != nil {
		fmt.Fprintf(out, "single: drop %s: %s\n", derr.Code, derr.Message)
		return
	}
	goldenEvent(out, "single", b, 0, Track, &Request{ReceivedAt: received, ClientIP: ip})
}

// goldenEvent writes the event stored for item i of b, or its drop. A
// messageId capstan made up is random: it is written as GENERATED.
func goldenEvent(out *bytes.Buffer, name string, b *Body, i int, forced Type, req *Request) {
	ev, derr := b.Normalize(i, forced, req)
	if derr != nil {
		fmt.Fprintf(out, "%s: drop %s: %s\n", name, derr.Code, derr.Message)
		return
	}
	doc, id := string(ev.JSON), ev.MessageID
	if ev.Generated {
		doc, id = strings.ReplaceAll(doc, ev.MessageID, "GENERATED"), "GENERATED"
	}
	fmt.Fprintf(out, "%s: %s %q user %q anonymous %q: %s\n", name, ev.Type, id, ev.UserID, ev.AnonymousID, doc)
}

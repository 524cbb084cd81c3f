package event

import (
	"bytes"
	"encoding/json"
	"math/bits"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var received = time.Date(2026, 9, 1, 10, 34, 56, 700_000_000, time.UTC)

func normalize(t *testing.T, raw string, forced Type, env Envelope) (*Event, *DropError) {
	t.Helper()
	if !json.Valid([]byte(raw)) {
		t.Fatalf("test input is not JSON: %s", raw)
	}
	return Normalize([]byte(raw), forced, &Request{ReceivedAt: received, ClientIP: "203.0.113.7", Envelope: env})
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("stored document is not JSON: %v\n%s", err, b)
	}
	return m
}

func TestNormalizeDrops(t *testing.T) {
	tests := []struct {
		name   string
		raw    string
		forced Type
		code   string
	}{
		{"not an object", `[1]`, "", CodeInvalidEvent},
		{"missing type", `{"userId":"u"}`, "", CodeMissingType},
		{"null type", `{"type":null,"userId":"u"}`, "", CodeMissingType},
		{"numeric type", `{"type":1,"userId":"u"}`, "", CodeInvalidType},
		{"unknown type", `{"type":"purchase","userId":"u"}`, "", CodeInvalidType},
		{"boolean id", `{"type":"page","userId":true}`, "", CodeInvalidID},
		{"object id", `{"type":"page","anonymousId":{}}`, "", CodeInvalidID},
		{"no identity", `{"type":"page"}`, "", CodeMissingIdentity},
		{"empty identity", `{"type":"page","userId":"","anonymousId":null}`, "", CodeMissingIdentity},
		{"alias without userId", `{"type":"alias","anonymousId":"a","previousId":"p"}`, "", CodeMissingIdentity},
		{"alias without previousId", `{"type":"alias","userId":"u"}`, "", CodeMissingPrevious},
		{"track without event", `{"type":"track","userId":"u"}`, "", CodeMissingEvent},
		{"track with empty event", `{"userId":"u","event":""}`, Track, CodeMissingEvent},
		{"track with numeric event", `{"userId":"u","event":5}`, Track, CodeMissingEvent},
		{"group without groupId", `{"type":"group","userId":"u"}`, "", CodeMissingGroupID},
		{"properties not object", `{"type":"page","userId":"u","properties":[1]}`, "", CodeInvalidField},
		{"context string", `{"type":"page","userId":"u","context":"x"}`, "", CodeInvalidField},
		{"messageId object", `{"type":"page","userId":"u","messageId":{}}`, "", CodeInvalidMessageID},
		{"messageId too long", `{"type":"page","userId":"u","messageId":"` + strings.Repeat("é", 101) + `"}`, "", CodeInvalidMessageID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, derr := normalize(t, tt.raw, tt.forced, Envelope{})
			if derr == nil {
				t.Fatalf("accepted: %s", ev.JSON)
			}
			if derr.Code != tt.code {
				t.Errorf("code = %s (%s), want %s", derr.Code, derr.Message, tt.code)
			}
		})
	}
}

func TestNormalizeAccepts(t *testing.T) {
	tests := []struct {
		name   string
		raw    string
		forced Type
		check  func(t *testing.T, ev *Event, doc map[string]any)
	}{
		{"type from path overrides body", `{"type":"page","userId":"u","event":"E"}`, Track, func(t *testing.T, ev *Event, doc map[string]any) {
			if ev.Type != Track || doc["type"] != "track" {
				t.Errorf("type = %v", doc["type"])
			}
		}},
		{"type lower-cased", `{"type":"TRACK","userId":"u","event":"E"}`, "", func(t *testing.T, ev *Event, doc map[string]any) {
			if doc["type"] != "track" {
				t.Errorf("type = %v", doc["type"])
			}
		}},
		{"numeric ids become strings", `{"type":"group","userId":42,"groupId":7,"messageId":12}`, "", func(t *testing.T, ev *Event, doc map[string]any) {
			if doc["userId"] != "42" || doc["groupId"] != "7" || ev.UserID != "42" || ev.MessageID != "12" {
				t.Errorf("doc = %v", doc)
			}
		}},
		{"null userId kept, anonymous identity", `{"type":"page","userId":null,"anonymousId":"a"}`, "", func(t *testing.T, ev *Event, doc map[string]any) {
			if v, ok := doc["userId"]; !ok || v != nil {
				t.Errorf("userId = %v, %v; want null kept", v, ok)
			}
		}},
		{"null properties removed", `{"type":"page","userId":"u","properties":null}`, "", func(t *testing.T, ev *Event, doc map[string]any) {
			if _, ok := doc["properties"]; ok {
				t.Error("properties: null kept")
			}
		}},
		{"messageId generated", `{"type":"page","userId":"u","messageId":""}`, "", func(t *testing.T, ev *Event, doc map[string]any) {
			if !ev.Generated || len(ev.MessageID) != 36 || doc["messageId"] != ev.MessageID {
				t.Errorf("messageId = %q generated=%v doc=%v", ev.MessageID, ev.Generated, doc["messageId"])
			}
		}},
		{"writeKey removed, client receivedAt overwritten", `{"type":"page","userId":"u","writeKey":"wk","receivedAt":"2000-01-01T00:00:00Z"}`, "", func(t *testing.T, ev *Event, doc map[string]any) {
			if _, ok := doc["writeKey"]; ok {
				t.Error("writeKey stored")
			}
			if doc["receivedAt"] != "2026-09-01T10:34:56.700Z" {
				t.Errorf("receivedAt = %v", doc["receivedAt"])
			}
		}},
		{"client ip added", `{"type":"page","userId":"u","context":{"page":{"url":"x"}}}`, "", func(t *testing.T, ev *Event, doc map[string]any) {
			if doc["context"].(map[string]any)["ip"] != "203.0.113.7" {
				t.Errorf("context = %v", doc["context"])
			}
		}},
		{"client ip kept", `{"type":"page","userId":"u","context":{"ip":"198.51.100.1"}}`, "", func(t *testing.T, ev *Event, doc map[string]any) {
			if doc["context"].(map[string]any)["ip"] != "198.51.100.1" {
				t.Errorf("context = %v", doc["context"])
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, derr := normalize(t, tt.raw, tt.forced, Envelope{})
			if derr != nil {
				t.Fatal(derr)
			}
			tt.check(t, ev, decode(t, ev.JSON))
		})
	}
}

// The worked example of segment-ingest.md §2.6.
func TestClockSkewCorrection(t *testing.T) {
	ev, derr := normalize(t, `{"type":"track","event":"E","userId":"u","timestamp":"2026-09-01T10:36:55.000Z","sentAt":"2026-09-01T10:36:56.500Z"}`, "", Envelope{})
	if derr != nil {
		t.Fatal(derr)
	}
	doc := decode(t, ev.JSON)
	want := map[string]string{
		"originalTimestamp": "2026-09-01T10:36:55.000Z",
		"sentAt":            "2026-09-01T10:36:56.500Z",
		"receivedAt":        "2026-09-01T10:34:56.700Z",
		"timestamp":         "2026-09-01T10:34:55.200Z",
	}
	for k, v := range want {
		if doc[k] != v {
			t.Errorf("%s = %v, want %s", k, doc[k], v)
		}
	}
}

func TestTimestamps(t *testing.T) {
	tests := []struct {
		name, raw string
		env       Envelope
		want      map[string]any // nil value: absent
	}{
		{"no timestamps: receivedAt", `{"userId":"u"}`, Envelope{}, map[string]any{
			"timestamp": "2026-09-01T10:34:56.700Z", "originalTimestamp": "2026-09-01T10:34:56.700Z", "sentAt": nil}},
		{"no sentAt: trusted as-is", `{"userId":"u","timestamp":"2020-01-01T00:00:00Z"}`, Envelope{}, map[string]any{
			"timestamp": "2020-01-01T00:00:00.000Z"}},
		{"nanoseconds and offset", `{"userId":"u","timestamp":"2026-09-01T12:34:56.123456789+02:00"}`, Envelope{}, map[string]any{
			"timestamp": "2026-09-01T10:34:56.123Z"}},
		{"python isoformat", `{"userId":"u","timestamp":"2026-09-01T10:34:56.123456+00:00"}`, Envelope{}, map[string]any{
			"timestamp": "2026-09-01T10:34:56.123Z"}},
		{"no zone is UTC", `{"userId":"u","timestamp":"2026-09-01T10:34:56"}`, Envelope{}, map[string]any{
			"timestamp": "2026-09-01T10:34:56.000Z"}},
		{"date only", `{"userId":"u","timestamp":"2026-09-01"}`, Envelope{}, map[string]any{
			"timestamp": "2026-09-01T00:00:00.000Z"}},
		{"number is absent", `{"userId":"u","timestamp":1788258896789}`, Envelope{}, map[string]any{
			"timestamp": "2026-09-01T10:34:56.700Z"}},
		{"garbage is absent", `{"userId":"u","timestamp":"yesterday"}`, Envelope{}, map[string]any{
			"timestamp": "2026-09-01T10:34:56.700Z"}},
		{"originalTimestamp wins", `{"userId":"u","originalTimestamp":"2026-09-01T10:00:00Z","timestamp":"2026-09-01T09:00:00Z"}`, Envelope{}, map[string]any{
			"originalTimestamp": "2026-09-01T10:00:00.000Z"}},
		{"envelope sentAt", `{"userId":"u","timestamp":"2026-09-01T10:36:55.000Z"}`, Envelope{SentAt: time.Date(2026, 9, 1, 10, 36, 56, 500e6, time.UTC)}, map[string]any{
			"timestamp": "2026-09-01T10:34:55.200Z", "sentAt": "2026-09-01T10:36:56.500Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, derr := normalize(t, tt.raw, Page, tt.env)
			if derr != nil {
				t.Fatal(derr)
			}
			doc := decode(t, ev.JSON)
			for k, v := range tt.want {
				got, ok := doc[k]
				if v == nil && ok {
					t.Errorf("%s = %v, want absent", k, got)
				} else if v != nil && got != v {
					t.Errorf("%s = %v, want %v", k, got, v)
				}
			}
		})
	}
}

func TestUserDataVerbatim(t *testing.T) {
	raw := `{"type":"track", "event":"Order Completed","userId":"u","properties":{"z":1.50,"a":{"y":[1,2,{"b":null}],"x":"\u00e9\n"},"revenue":49.90},"messageId":"m1"}`
	ev, derr := normalize(t, raw, "", Envelope{})
	if derr != nil {
		t.Fatal(derr)
	}
	if !strings.Contains(string(ev.JSON), `"properties":{"z":1.50,"a":{"y":[1,2,{"b":null}],"x":"\u00e9\n"},"revenue":49.90}`) {
		t.Errorf("properties not verbatim:\n%s", ev.JSON)
	}
	order := []string{`"type"`, `"event"`, `"userId"`, `"properties"`, `"messageId"`, `"context"`, `"originalTimestamp"`, `"receivedAt"`, `"timestamp"`}
	s := string(ev.JSON)
	last := -1
	for _, k := range order {
		i := strings.Index(s, k)
		if i <= last {
			t.Fatalf("key %s out of order in %s", k, s)
		}
		last = i
	}
}

func TestEnvelopeMerge(t *testing.T) {
	env := Envelope{
		Context:      []byte(`{"library":{"name":"analytics-go","version":"3.0.0"},"page":{"url":"env","title":"T"}}`),
		Integrations: []byte(`{"All":false,"LinkedIn Conversions API":true}`),
	}
	ev, derr := normalize(t, `{"type":"track","event":"E","userId":"u","context":{"page":{"url":"item"}},"integrations":{"All":true}}`, "", env)
	if derr != nil {
		t.Fatal(derr)
	}
	doc := decode(t, ev.JSON)
	ctx := doc["context"].(map[string]any)
	page := ctx["page"].(map[string]any)
	if page["url"] != "item" || page["title"] != "T" || ctx["library"].(map[string]any)["name"] != "analytics-go" {
		t.Errorf("context = %v", ctx)
	}
	in := doc["integrations"].(map[string]any)
	if in["All"] != true || in["LinkedIn Conversions API"] != true {
		t.Errorf("integrations = %v", in)
	}
}

func TestParseBatch(t *testing.T) {
	tests := []struct {
		name, body, code, key string
		items                 int
	}{
		{"ok", `{"batch":[{"type":"page"},{}],"writeKey":"k"}`, "", "k", 2},
		{"key from first item", `{"batch":[{"writeKey":"k1"}]}`, "", "k1", 1},
		{"empty batch", `{"batch":[]}`, "", "", 0},
		{"missing batch", `{"writeKey":"k"}`, CodeInvalidBatch, "", 0},
		{"batch not array", `{"batch":{}}`, CodeInvalidBatch, "", 0},
		{"array body", `[{"type":"page"}]`, CodeInvalidBody, "", 0},
		{"invalid json", `{"batch":[`, CodeInvalidJSON, "", 0},
		{"invalid utf8", "{\"batch\":[],\"x\":\"\xff\"}", CodeInvalidJSON, "", 0},
		{"bom", "\xef\xbb\xbf{\"batch\":[]}", "", "", 0},
		{"too many", `{"batch":[` + strings.Repeat(`{},`, MaxBatchItems) + `{}]}`, CodeTooManyItems, "", 0},
		{"too large", `{"batch":[],"pad":"` + strings.Repeat("x", MaxRequestBytes) + `"}`, CodePayloadTooLarge, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, rerr := ParseBatch([]byte(tt.body))
			if tt.code != "" {
				if rerr == nil || rerr.Code != tt.code {
					t.Fatalf("got %v, want %s", rerr, tt.code)
				}
				return
			}
			if rerr != nil {
				t.Fatal(rerr)
			}
			if len(b.Items) != tt.items || b.WriteKey != tt.key {
				t.Errorf("items=%d key=%q", len(b.Items), b.WriteKey)
			}
		})
	}
	if _, rerr := ParseSingle([]byte(`{"pad":"` + strings.Repeat("x", MaxEventBytes) + `"}`)); rerr == nil || rerr.Code != CodeEventTooLarge {
		t.Errorf("single too large: %v", rerr)
	}
	if _, rerr := ParseSingle([]byte(`"x"`)); rerr == nil || rerr.Code != CodeInvalidBody {
		t.Errorf("single string body: %v", rerr)
	}
}

// TestRequestUTF8: a body that is not UTF-8 is refused as such whatever
// else is wrong with it (the check of the JSON checks its strings' UTF-8,
// and the body's is checked again only when that refuses it), and a body
// that is UTF-8 never is.
func TestRequestUTF8(t *testing.T) {
	const notUTF8 = "request body is not valid UTF-8"
	for _, c := range []struct{ body, code, msg string }{
		{"{\"batch\":[],\"x\":\"\xff\"}", CodeInvalidJSON, notUTF8},
		{"{\"batch\":[{\"k\xc3\xa9\xc3\":1}]}", CodeInvalidJSON, notUTF8},
		{"{\"batch\":[{\"context\":{\"p\":\"\xed\xa0\x80\"}}]}", CodeInvalidJSON, notUTF8},
		{"{\"batch\":[\xff]}", CodeInvalidJSON, notUTF8},
		{"{\"batch\":[\"\xc3", CodeInvalidJSON, notUTF8},
		{"[\"\xff\"]", CodeInvalidJSON, notUTF8},
		{"\xef\xbb\xbf{\"batch\":[\"\xc0\xaf\"]}", CodeInvalidJSON, notUTF8},
		{"\"\xc3\xa9\"", CodeInvalidBody, "request body must be a JSON object"},
		{`{"batch":[`, CodeInvalidJSON, "request body is not valid JSON: unexpected end of JSON input at byte 10"},
		{"{\"batch\":[{\"k\":\"\xf0\x9f\x98\x80\u00e9\"}]}", "", ""},
	} {
		_, rerr := ParseBatch([]byte(c.body))
		if c.code == "" && rerr != nil || c.code != "" && (rerr == nil || rerr.Code != c.code || rerr.Message != c.msg) {
			t.Errorf("ParseBatch(%q): %v, want %s: %s", c.body, rerr, c.code, c.msg)
		}
	}
}

// TestCheckDepthNotUTF8: a string that is not UTF-8, which encoding/json
// takes as valid JSON, does not hide the nesting after it.
func TestCheckDepthNotUTF8(t *testing.T) {
	deep := deepEvent(MaxDepth + 1)
	for _, raw := range []string{deep, "{\"a\":\"\xff\"," + deep[1:], "{\"\xc3\":[\"\xed\xa0\x80\"]," + deep[1:]} {
		if derr := CheckDepth([]byte(raw)); derr == nil || derr.Code != CodeEventTooDeep {
			t.Errorf("CheckDepth(%.50q): %v, want %s", raw, derr, CodeEventTooDeep)
		}
		if derr := CheckDepth([]byte(strings.Replace(raw, "[]", "", 1))); derr != nil {
			t.Errorf("CheckDepth(%.50q) a level less: %v", raw, derr)
		}
	}
}

// FuzzRequestUTF8: a body is refused as not UTF-8 exactly when it is not
// (after a byte order mark), by both parsers.
func FuzzRequestUTF8(f *testing.F) {
	f.Add([]byte("{\"batch\":[{\"a\":\"\xc3\xa9\"}]}"))
	f.Add([]byte("{\"a\":\"\xe2\x82\"}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		want := !utf8.Valid(bytes.TrimPrefix(b, bom))
		for _, parse := range []func([]byte) (*Body, *RequestError){ParseBatch, ParseSingle} {
			body, rerr := parse(b)
			if got := rerr != nil && rerr.Message == "request body is not valid UTF-8"; got != want {
				t.Fatalf("%q: refused as not UTF-8 %v (%v), want %v", b, got, rerr, want)
			}
			body.Release()
		}
	})
}

// deepEvent returns a track event that nests depth levels (at least 3):
// the event, its properties, then arrays.
func deepEvent(depth int) string {
	return `{"type":"track","event":"E","userId":"u","properties":{"a":` +
		strings.Repeat("[", depth-2) + strings.Repeat("]", depth-2) + `}}`
}

// TestDepthLimit checks that ingest's nesting limit is the parser's: an
// event is dropped exactly when Parse could not read its stored form.
func TestDepthLimit(t *testing.T) {
	ok := `{"type":"track","event":"E","userId":"u"}`
	for _, depth := range []int{3, MaxDepth, MaxDepth + 1, 1001, 10000, 10001} {
		tooDeep := depth > MaxDepth
		single, rerr := ParseSingle([]byte(deepEvent(depth)))
		if rerr != nil {
			t.Fatalf("depth %d: single: %v", depth, rerr)
		}
		batch, rerr := ParseBatch([]byte(`{"batch":[` + ok + `,` + deepEvent(depth) + `]}`))
		if rerr != nil {
			t.Fatalf("depth %d: batch: %v", depth, rerr)
		}
		if derr := batch.DepthError(0); derr != nil {
			t.Errorf("depth %d: the shallow item is dropped: %v", depth, derr)
		}
		for name, derr := range map[string]*DropError{"single": single.DepthError(0), "batch": batch.DepthError(1)} {
			if !tooDeep {
				if derr != nil {
					t.Errorf("depth %d: %s: dropped: %v", depth, name, derr)
				}
				continue
			}
			if derr == nil || derr.Code != CodeEventTooDeep || !strings.Contains(derr.Message, "the limit is") {
				t.Errorf("depth %d: %s: got %v, want %s", depth, name, derr, CodeEventTooDeep)
			}
		}
		ev, derr := Normalize(single.Items[0], Track, &Request{ReceivedAt: received})
		if derr != nil {
			t.Fatalf("depth %d: %v", depth, derr)
		}
		if _, err := Parse(ev.JSON); (err != nil) != tooDeep {
			t.Errorf("depth %d: Parse of the stored form: %v", depth, err)
		}
	}
	// The batch's context becomes each item's: it counts.
	for _, arrays := range []int{MaxDepth - 2, MaxDepth - 1} {
		body := `{"batch":[` + ok + `],"context":{"a":` + strings.Repeat("[", arrays) + strings.Repeat("]", arrays) + `}}`
		b, rerr := ParseBatch([]byte(body))
		if rerr != nil {
			t.Fatal(rerr)
		}
		derr := b.DepthError(0)
		if tooDeep := arrays+2 > MaxDepth; (derr != nil) != tooDeep {
			t.Errorf("context with %d arrays: %v", arrays, derr)
		}
		if derr == nil {
			ev, derr := Normalize(b.Items[0], "", &Request{ReceivedAt: received, Envelope: b.Envelope})
			if derr != nil {
				t.Fatal(derr)
			}
			if _, err := Parse(ev.JSON); err != nil {
				t.Errorf("context with %d arrays: stored form does not parse: %v", arrays, err)
			}
		}
	}
}

// FuzzNormalize checks that no body makes the parser panic, and that every
// accepted event is stored as valid JSON with the server fields set.
func FuzzNormalize(f *testing.F) {
	f.Add([]byte(`{"batch":[{"type":"track","event":"E","userId":"u","properties":{"a":[1,{"b":"c"}]}}],"context":{"x":1}}`))
	f.Add([]byte(`{"batch":[{"type":"alias","userId":1,"previousId":2,"messageId":3.5}],"sentAt":"2026-09-01T10:00:00Z"}`))
	f.Add([]byte(`{"batch":[{"type":"identify","anonymousId":"a","traits":null,"context":{"ip":"1.2.3.4"}},{"\u0074ype":"page","userId":"x"}]}`))
	f.Add([]byte(`{"batch":[{"type":"page","userId":"u","userId":"v","timestamp":"2026-09-01T12:34:56.123456789+02:00"}]}`))
	f.Add([]byte(`{"batch":[{"type":"track","event":"E","userId":"u","context":{"c\u0061pstan":{"userHash":"ab"}}},{"type":"page","userId":"u","context":null}],"context":{"capstan":{"v":1}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		b, rerr := ParseBatch(body)
		if rerr != nil {
			return
		}
		for i, item := range b.Items {
			if b.DepthError(i) != nil {
				continue
			}
			req := &Request{ReceivedAt: received, ClientIP: "127.0.0.1", Envelope: b.Envelope}
			ev, derr := Normalize(item, "", req)
			// The body's members, ids and document chunks give the same event.
			bev, bderr := b.Normalize(i, "", req)
			if (derr == nil) != (bderr == nil) || derr != nil && *derr != *bderr {
				t.Fatalf("item %d: Body.Normalize drop %v, Normalize %v", i, bderr, derr)
			}
			if derr != nil {
				continue
			}
			if bev.Type != ev.Type || bev.UserID != ev.UserID || bev.AnonymousID != ev.AnonymousID || bev.Generated != ev.Generated ||
				!ev.Generated && (bev.MessageID != ev.MessageID || string(bev.JSON) != string(ev.JSON)) {
				t.Fatalf("item %d: Body.Normalize %+v\n%s\nNormalize %+v\n%s", i, *bev, bev.JSON, *ev, ev.JSON)
			}
			// Whatever ingest stores, the parsed model reads back.
			v, err := Parse(ev.JSON)
			if err != nil {
				t.Fatalf("stored document does not parse: %v\n%s", err, ev.JSON)
			}
			if no := v.Get("context").Get("capstan").IsUndefined(); ev.NoCapstan != no || bev.NoCapstan != no {
				t.Fatalf("item %d: NoCapstan %v (body %v), want %v: %s", i, ev.NoCapstan, bev.NoCapstan, no, ev.JSON)
			}
			var doc map[string]any
			if err := json.Unmarshal(ev.JSON, &doc); err != nil {
				t.Fatalf("stored document is not JSON: %v\n%s\nfrom %s", err, ev.JSON, item)
			}
			if doc["type"] != string(ev.Type) || doc["receivedAt"] == nil || doc["timestamp"] == nil {
				t.Fatalf("server fields missing: %s", ev.JSON)
			}
			if mid, _ := doc["messageId"].(string); mid != ev.MessageID {
				t.Fatalf("messageId %q, stored %v", ev.MessageID, doc["messageId"])
			}
		}
	})
}

func BenchmarkNormalize(b *testing.B) {
	raw := []byte(`{"timestamp":"2026-09-01T10:34:56.789Z","integrations":{"Segment.io":true},"type":"track","event":"Sign Up","properties":{"li_fat_id":"123456","plan":"pro"},"context":{"page":{"url":"https://www.example.com/signup?li_fat_id=123456","search":"?li_fat_id=123456","path":"/signup","referrer":"","title":"Sign up"},"library":{"name":"analytics.js","version":"npm:next-1.84.3"}},"messageId":"ajs-next-1788258896789-5b1c2f3e-8d3a-4c1e-9d9a-2a4c6e8f0b1d","anonymousId":"3f0b0c3e-9c1d-4f1e-a1e7-6f2f9b1d2c44","userId":null,"writeKey":"wk_live_123","sentAt":"2026-09-01T10:34:56.801Z","_metadata":{"bundled":["Segment.io"],"unbundled":[],"bundledIds":[]}}`)
	req := &Request{ReceivedAt: received, ClientIP: "203.0.113.7"}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, derr := Normalize(raw, Track, req); derr != nil {
			b.Fatal(derr)
		}
	}
}

// BenchmarkParseBatch checks and splits a batch of 100 analytics-next-like
// events (ParseBatch), as ingest does before normalising them.
func BenchmarkParseBatch(b *testing.B) {
	item := `{"timestamp":"2026-09-01T10:34:56.789Z","integrations":{},"type":"track","event":"Product Viewed","properties":{"product_id":"507f1f77bcf86cd799439011","sku":"G-32","category":"Games","name":"Monopoly: 3rd Edition","price":18.99,"url":"https://www.example.com/product/path"},"context":{"page":{"path":"/products/monopoly","referrer":"https://www.google.com/","search":"","title":"Monopoly: 3rd Edition","url":"https://www.example.com/products/monopoly"},"userAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36","locale":"en-US","library":{"name":"analytics.js","version":"npm:next-1.84.3"}},"messageId":"ajs-next-1788258896789-5b1c2f3e-8d3a-4c1e-9d9a-2a4c6e8f0b1d","anonymousId":"3f0b0c3e-9c1d-4f1e-a1e7-6f2f9b1d2c44","writeKey":"wk_live_123","sentAt":"2026-09-01T10:34:56.801Z","_metadata":{"bundled":["Segment.io"],"unbundled":[],"bundledIds":[]}}`
	body := []byte(`{"batch":[` + strings.TrimSuffix(strings.Repeat(item+",", 100), ",") + `],"sentAt":"2026-09-01T10:34:56.801Z"}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		bd, rerr := ParseBatch(body)
		if rerr != nil {
			b.Fatal(rerr)
		}
		bd.Release()
	}
}

// FuzzParseObject checks the raw splitter against encoding/json: the same
// keys (last one wins) with the same values.
func FuzzParseObject(f *testing.F) {
	f.Add([]byte(`{"a":"x\"y","b\\\\":"\\\\","c":[1,"]"],"d":{"e":"}\\\""},"a":2}`))
	f.Add([]byte(`{"k\u0041":"v","":null," ":true}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var want map[string]json.RawMessage
		if json.Unmarshal(b, &want) != nil || !utf8.Valid(b) {
			return
		}
		if want == nil { // null, which Unmarshal takes into a map, is not an object
			if _, ok := parseObject(b); ok {
				t.Fatalf("split a non-object: %s", b)
			}
			return
		}
		obj, ok := parseObject(b)
		if !ok {
			t.Fatalf("not split: %s", b)
		}
		if len(obj) != len(want) {
			t.Fatalf("%d members, want %d: %s", len(obj), len(want), b)
		}
		for _, m := range obj {
			w, ok := want[m.key()]
			if !ok {
				t.Fatalf("key %q not in %s", m.key(), b)
			}
			var g1, g2 bytes.Buffer
			_ = json.Compact(&g1, m.Value)
			_ = json.Compact(&g2, w)
			if g1.String() != g2.String() {
				t.Fatalf("key %q: value %s, want %s", m.key(), m.Value, w)
			}
		}
	})
}

func TestValidJSON(t *testing.T) {
	cases := []string{``, ` `, `{}`, `[]`, `{ }`, `[ ]`, `{"a":1,}`, `[1,]`, `[,1]`, `{"a"}`, `{"a":}`, `{a:1}`,
		`01`, `-0`, `-`, `1.`, `1.e5`, `1e`, `1e+`, `1E-2`, `-01`, `0.0e0`, `[.5]`, `[+1]`, `[1e5e5]`, `[--1]`,
		`"\u00zz"`, `"\u00aF"`, `"\u12"`, `"\x"`, `"\/"`, "\"\x01\"", "\"\x7f\xff\"", `"abc`, `"abc\`, `"abc\"`,
		`tru`, `true `, ` null`, `nul`, `falsey`, `[true,false,null]`, "\t\n\r 1 \t", "\v1", `1 2`,
		`{"a":[{"b":{}}]}`, `{"a":1}}`, `[[]`, `[1}`, `{"a":1]`, `{,}`, `{"a":1 "b":2}`, `{"a" : 1 , "b" : [ 1 , 2 ] }`}
	// encoding/json refuses more than 10000 nested containers; validJSON
	// sets no limit and reports the depth (ingest applies MaxDepth).
	for _, d := range []int{64, 65, 9999, 10000, 10001, 20000} {
		cases = append(cases, strings.Repeat("[", d)+strings.Repeat("]", d),
			strings.Repeat(`{"a":`, d)+"1"+strings.Repeat("}", d),
			strings.Repeat("[", d-1)+"{}"+strings.Repeat("]", d-1),
			strings.Repeat("[", d)+strings.Repeat("]", d-1)+"}")
	}
	for _, c := range cases {
		checkValidJSON(t, []byte(c))
	}
}

// checkValidJSON compares validJSON with json.Valid and utf8.Valid
// (json.Valid accepts strings that are not UTF-8, and refuses valid JSON
// nested deeper than 10000 levels).
func checkValidJSON(t *testing.T, b []byte) {
	t.Helper()
	got, depth := validJSON(b)
	want := json.Valid(b) && utf8.Valid(b)
	if got != want && !(got && depth > 10000) {
		t.Fatalf("validJSON(%.40q) = %v (depth %d), json.Valid and utf8.Valid = %v", b, got, depth, want)
	}
}

// TestValidStringWords: strings whose end, escape, control character or
// non-ASCII byte sits at every offset of the string scan's eight-byte
// words, as keys and values, in a batch's item, in a nested object, and at
// the very end of the input, are accepted as json.Valid and utf8.Valid
// accept them.
func TestValidStringWords(t *testing.T) {
	ends := []string{`"`, `\n"`, `\u00e9"`, "\x01\"", `\"`, `\`, ``, "\x7f\"", "\xc3\xa9\"", `\\"`, `\u00"`, `\q"`,
		"\xc3\"", "\xff\"", "\xe2\x82\xac\"", "\xe2\x82\"", "\xed\xa0\x80\"", "\xf0\x9f\x98\x80\"", "\xf4\x90\x80\x80\"", "\xc0\xaf\""}
	for n := range 20 {
		for _, end := range ends {
			str := `"` + strings.Repeat("x", n) + end
			docs := []string{
				str,
				`{` + str + `:1}`,
				`{` + str + ` :1}`,
				`{"a":` + str + `}`,
				`{"a":{"b":[` + str + `]},"c":` + str + `}`,
				`{"batch":[{` + str + `:-1.5e3,"k":` + str + `,"n":01}]}`,
				`{"batch":[{"k":` + str + `,"context":{"p":{` + str + `:null}}}]}`,
			}
			for _, doc := range docs {
				b := []byte(doc)
				checkValidJSON(t, b)
				if _, valid := splitBody(split{}, b, "batch"); valid != (json.Valid(b) && utf8.Valid(b)) {
					t.Fatalf("splitBody(%q): valid = %v, json.Valid and utf8.Valid: %v", b, valid, !valid)
				}
			}
		}
	}
}

func TestValidJSONDepth(t *testing.T) {
	tests := []struct {
		in    string
		depth int
	}{
		{`1`, 0}, {`"[{"`, 0}, {`{}`, 1}, {`[]`, 1}, {`{"a":1}`, 1}, {`{"a":[1]}`, 2}, {`[[],[[]],{}]`, 3},
		{`{"properties":{"a":[{"b":"]]]"}]},"c":{}}`, 4},
		{strings.Repeat("[", 1001) + strings.Repeat("]", 1001), 1001},
	}
	for _, tt := range tests {
		if ok, d := validJSON([]byte(tt.in)); !ok || d != tt.depth {
			t.Errorf("validJSON(%.40q) = %v, depth %d; want depth %d", tt.in, ok, d, tt.depth)
		}
	}
}

// FuzzValidJSON checks the validator against encoding/json.
func FuzzValidJSON(f *testing.F) {
	f.Add([]byte(`{"a":[1,-2.5e+3,"x\"\u00e9",true,false,null,{}],"b":{"c":[]}}`))
	f.Add([]byte(`[01]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkValidJSON(t, b)
	})
}

// parseArray splits a valid JSON array into its elements' raw text: the
// reference splitBody's elements are checked against.
func parseArray(raw []byte) (elems [][]byte, ok bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return nil, false
	}
	i = skipSpace(raw, i+1)
	for i < len(raw) && raw[i] != ']' {
		end := skipValue(raw, i)
		elems = append(elems, raw[i:end])
		i = skipSpace(raw, end)
		if i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return elems, true
}

// FuzzSplitBody checks the one-pass validate-and-split against json.Valid,
// then parseObject, then parseArray of the kept "batch" value.
func FuzzSplitBody(f *testing.F) {
	f.Add([]byte(` {"batch":[{"type":"page"}], "b\u0061tch":[ {"type":"track"} , 1 ] , "writeKey":"k"} `))
	f.Add([]byte(`{"batch":[{"a":1}], "batch":5}`))
	f.Add([]byte(`{"batch":5, "batch":[]}`))
	f.Add([]byte(`{"batch":[[[[[]]]],{"writeKey":"z"}], "x":{"y":[1,2,{"z":null}]}}`))
	f.Add([]byte(`[{"batch":[]}]`))
	f.Add([]byte(`{"batch":[]} x`))
	f.Add([]byte(`{} `))
	f.Add([]byte(`{"batch":[{"a":1,"a":2,"context":{"x":1},"context":{"y":2,"y":3}},{"a":3,"a":4,"context":null},{"context":{"a":1},"a":2,"b":[}]}`))
	f.Add([]byte(`{"batch":[{"a":1,"a":2,"context":{"x":1},"context":{"y":2,"y":3}},{"a":3,"a":4,"context":null},{"context":{"a":1},"a":2}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, valid := splitBody(split{}, b, "batch")
		obj, elems := s.obj, s.elems
		if ok, depth := validJSON(b); valid != ok || valid && depth != s.depth {
			t.Fatalf("valid = %v, depth %d; validJSON: %v, depth %d: %q", valid, s.depth, ok, depth, b)
		}
		checkValidJSON(t, b)
		if !valid {
			return
		}
		wantObj, isObj := parseObject(b)
		if (obj != nil) != isObj {
			t.Fatalf("object %v, want %v: %q", obj != nil, isObj, b)
		}
		if !isObj {
			return
		}
		if len(obj) != len(wantObj) {
			t.Fatalf("%d members, want %d: %q", len(obj), len(wantObj), b)
		}
		for i := range obj {
			if obj[i].key() != wantObj[i].key() || !bytes.Equal(obj[i].Value, wantObj[i].Value) {
				t.Fatalf("member %d: %s=%s, want %s=%s", i, obj[i].key(), obj[i].Value, wantObj[i].key(), wantObj[i].Value)
			}
		}
		wantElems, isArr := parseArray(wantObj.get("batch"))
		if (elems != nil) != isArr || len(elems) != len(wantElems) {
			t.Fatalf("elements %q, want %q (array %v): %q", elems, wantElems, isArr, b)
		}
		if len(s.depths) != len(elems) {
			t.Fatalf("%d depths for %d elements", len(s.depths), len(elems))
		}
		for i := range elems {
			if !bytes.Equal(elems[i], wantElems[i]) {
				t.Fatalf("element %d: %s, want %s", i, elems[i], wantElems[i])
			}
			if _, d := validJSON(elems[i]); d != s.depths[i] {
				t.Fatalf("element %d: depth %d, want %d", i, s.depths[i], d)
			}
		}
		checkItems(t, b, s, elems)
	})
}

// checkItems checks the members split.items gives for each element against
// parseObject's of the element and of its context.
func checkItems(t *testing.T, text []byte, s split, elems [][]byte) {
	t.Helper()
	if len(s.items) != len(elems) {
		t.Fatalf("%d items for %d elements", len(s.items), len(elems))
	}
	for i, e := range elems {
		it := s.items[i]
		want, isObj := parseObject(e)
		if (it.obj >= 0) != isObj {
			t.Fatalf("element %d: split %v, object %v: %s", i, it.obj >= 0, isObj, e)
		}
		if !isObj {
			continue
		}
		sameMembers(t, spansObject(text, s.members[it.obj:it.objEnd]), want, e)
		wantCtx, ctxObj := parseObject(want.get("context"))
		if (it.ctx >= 0) != ctxObj {
			t.Fatalf("element %d: context split %v, object %v: %s", i, it.ctx >= 0, ctxObj, e)
		}
		if ctxObj {
			sameMembers(t, spansObject(text, s.members[it.ctx:it.ctxEnd]), wantCtx, e)
		}
	}
}

func sameMembers(t *testing.T, got, want object, in []byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d members, want %d: %s", len(got), len(want), in)
	}
	for i := range got {
		if got[i].key() != want[i].key() || !bytes.Equal(got[i].Value, want[i].Value) || !bytes.Equal(got[i].rawKey, want[i].rawKey) {
			t.Fatalf("member %d: %s=%s, want %s=%s in %s", i, got[i].key(), got[i].Value, want[i].key(), want[i].Value, in)
		}
	}
}

// FuzzSplitSingle checks a single event's split (ParseSingle's) as
// FuzzSplitBody checks a batch's items.
func FuzzSplitSingle(f *testing.F) {
	f.Add([]byte(` {"type":"track","context":{"ip":"1.2.3.4","page":{"context":{}}}, "cont\u0065xt":{"a":1}} `))
	f.Add([]byte(`{"context":{"a":1},"context":null}`))
	f.Add([]byte(`{"context":[],"context":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, valid := splitBody(split{}, b, "")
		if ok, depth := validJSON(b); valid != ok || valid && depth != s.depth {
			t.Fatalf("valid = %v, depth %d; validJSON: %v, depth %d: %q", valid, s.depth, ok, depth, b)
		}
		if !valid {
			return
		}
		if _, isObj := parseObject(b); !isObj {
			if s.isObj {
				t.Fatalf("split a non-object: %q", b)
			}
			return
		}
		if !s.isObj {
			t.Fatalf("object not split: %q", b)
		}
		checkItems(t, b, s, [][]byte{bytes.TrimSpace(b)})
	})
}

// TestBodyNormalize: an item normalised with the members found while
// checking the body is stored exactly as Normalize stores it alone.
func TestBodyNormalize(t *testing.T) {
	items := []string{
		`{"type":"track","event":"A","userId":"u","context":{"page":{"url":"x"},"library":{"name":"n"}},"messageId":"m1"}`,
		`{"type":"track","event":"A","userId":"u","context":{"ip":"10.0.0.1"},"messageId":"m2"}`,
		`{"type":"track","event":"A","userId":"u","context":{"a":1},"context":{"b":2},"messageId":"m3"}`,
		`{"type":"track","event":"A","userId":"u","context":{"a":1},"context":null,"messageId":"m4"}`,
		`{"type":"track","event":"A","userId":"u","context":{"a":1},"messageId":"m5"}`,
		`{"type":"track","event":"A","userId":"u","context":{"a":1,"a":2, "ip" : "x"} ,"messageId":"m6"}`,
		`{"type":"track","event":"A","userId":"u","context":{"page":{"context":{"ip":"1"}}},"messageId":"m7"}`,
		`{"type":"identify","userId":"u","messageId":"m8"}`,
		`{"type":"track","event":"A","userId":"u","context":{},"messageId":"m9"}`,
		`{"type":"track","event":"A","userId":"u","context":5,"messageId":"m10"}`,
		`[1]`, `"x"`,
	}
	for _, env := range []string{``, `"context":{"library":{"name":"env"}},`, `"integrations":{"X":true},`} {
		for _, ip := range []string{"", "203.0.113.7"} {
			req := &Request{ReceivedAt: received, ClientIP: ip}
			body, rerr := ParseBatch([]byte(`{` + env + `"batch":[` + strings.Join(items, ",") + `]}`))
			if rerr != nil {
				t.Fatal(rerr)
			}
			req.Envelope = body.Envelope
			for i, item := range body.Items {
				got, gerr := body.Normalize(i, "", req)
				want, werr := Normalize(item, "", req)
				if (gerr == nil) != (werr == nil) || gerr != nil && *gerr != *werr {
					t.Fatalf("env %q ip %q item %d: drop %v, want %v", env, ip, i, gerr, werr)
				}
				if gerr == nil && (string(got.JSON) != string(want.JSON) || got.MessageID != want.MessageID) {
					t.Fatalf("env %q ip %q item %d:\n got %s\nwant %s", env, ip, i, got.JSON, want.JSON)
				}
			}
			body.Release()
			for _, item := range items {
				single, rerr := ParseSingle([]byte(" " + item + "\n"))
				if rerr != nil {
					if _, isObj := parseObject([]byte(item)); isObj {
						t.Fatal(rerr)
					}
					continue
				}
				got, gerr := single.Normalize(0, Track, req)
				want, werr := Normalize([]byte(item), Track, req)
				if (gerr == nil) != (werr == nil) || gerr == nil && string(got.JSON) != string(want.JSON) {
					t.Fatalf("single %s, ip %q:\n got %s %v\nwant %s %v", item, ip, got.JSON, gerr, want.JSON, werr)
				}
				single.Release()
			}
		}
	}
}

func TestAppendQuotedTime(t *testing.T) {
	for _, tm := range []time.Time{
		time.Unix(0, 0),
		received,
		time.Date(2026, 9, 1, 12, 34, 56, 789_999_999, time.FixedZone("", 2*3600)),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 1_000_000, time.UTC),
	} {
		want := `"` + tm.UTC().Format(TimeLayout) + `"`
		if got := string(appendQuotedTime(nil, tm)); got != want {
			t.Errorf("%v: got %s, want %s", tm, got, want)
		}
	}
}

func TestFieldNames(t *testing.T) {
	for k, name := range fieldNames {
		if got := fieldOf(name); got != k {
			t.Errorf("fieldOf(%q) = %d, want %d", name, got, k)
		}
	}
	if got := fieldOf("Type"); got != -1 {
		t.Errorf("fieldOf(%q) = %d, want -1", "Type", got)
	}
}

// TestValidStringSpecials puts each kind of special byte at every offset
// of strings around the 8-byte steps of validString.
func TestValidStringSpecials(t *testing.T) {
	specials := []string{`"`, `\\`, `\"`, `\u00e9`, `\u00`, `\x`, "\x00", "\x1f", "\x7f", "\xc3\xa9", " ", `\`}
	for n := 0; n <= 20; n++ {
		for at := 0; at <= n; at++ {
			for _, sp := range specials {
				str := strings.Repeat("a", at) + sp + strings.Repeat("b", n-at)
				checkValidJSON(t, []byte(`"`+str+`"`))
				checkValidJSON(t, []byte(`{"`+str+`":1}`))
				checkValidJSON(t, []byte(`["`+str+`"]`))
			}
		}
	}
	// strStop against strPlain, strSpecial against strPlain with the
	// high bytes plain: one byte among plain ones.
	for _, bg := range []uint64{0x6161616161616161, 0x2020202020202020, 0x2121212121212121} {
		for x := range 256 {
			for pos := range 8 {
				w := bg&^(0xff<<(8*pos)) | uint64(x)<<(8*pos)
				if got, want := strStop(w) != 0, !strPlain[x]; got != want {
					t.Fatalf("strStop(%#x) != 0 is %v, want %v", w, got, want)
				}
				if m := strStop(w); m != 0 && bits.TrailingZeros64(m)>>3 != pos {
					t.Fatalf("strStop(%#x) flags byte %d first, want %d", w, bits.TrailingZeros64(m)>>3, pos)
				}
			}
		}
	}
	for _, bg := range []uint64{0x6161616161616161, 0xffffffffffffffff, 0x8080808080808080, 0x2020202020202020, 0x2121212121212121} {
		for x := range 256 {
			for pos := range 8 {
				w := bg&^(0xff<<(8*pos)) | uint64(x)<<(8*pos)
				if got, want := strSpecial(w) != 0, !strPlain[x] && x < utf8.RuneSelf; got != want {
					t.Fatalf("strSpecial(%#x) != 0 is %v, want %v", w, got, want)
				}
			}
		}
	}
}

// TestParseTypeLiteral: matching the literal's bytes agrees with decoding
// it and ParseType, and the six names as written cost no allocation.
func TestParseTypeLiteral(t *testing.T) {
	for _, lit := range []string{`"track"`, `"page"`, `"screen"`, `"identify"`, `"group"`, `"alias"`,
		`"Track"`, `"TRACK"`, `"tr\u0061ck"`, `"trac\u212a"`, `"tracks"`, `"trac"`, `""`, `"x"`, `"\u0000"`} {
		got, gok := parseTypeLiteral([]byte(lit))
		want, wok := ParseType(decodeString([]byte(lit)))
		if got != want || gok != wok {
			t.Errorf("%s: got %q %v, want %q %v", lit, got, gok, want, wok)
		}
	}
	for _, typ := range []Type{Track, Page, Screen, Identify, Group, Alias} {
		lit := []byte(`"` + typ + `"`)
		if n := testing.AllocsPerRun(100, func() { _, _ = parseTypeLiteral(lit) }); n != 0 {
			t.Errorf("%s: %v allocations, want 0", lit, n)
		}
	}
}

// parseUTCTimeCases are timestamps in and around parseUTCTime's form.
var parseUTCTimeCases = []string{
	"2026-12-06T06:12:15Z", "2026-12-06T06:12:15.1Z", "2026-12-06T06:12:15.123Z",
	"2026-12-06T06:12:15.123456789Z", "2026-12-06T06:12:15.1234567891Z", "2026-12-06T06:12:15.Z",
	"0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "2024-02-29T00:00:00Z",
	"2026-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z",
	"2026-12-00T00:00:00Z", "2026-12-06T24:00:00Z", "2026-12-06T06:60:00Z", "2026-12-06T06:12:60Z",
	"2026-12-06t06:12:15Z", "2026-12-06T06:12:15z", "2026-12-06T06:12:15+00:00", "2026-12-06T06:12:15",
	"2026-12-06", "2026-12-06T06:12:15,123Z", "2026-12-06T06:12:15.12aZ", "+026-12-06T06:12:15Z",
	"2026-1-06T06:12:15.000Z", "2026-12-06T06:12:1Z", "2026-12-06 06:12:15Z",
}

// TestParseUTCTime: the fast form gives what ParseTime gives, and parsing
// it allocates nothing.
func TestParseUTCTime(t *testing.T) {
	fast := 0
	for _, s := range parseUTCTimeCases {
		if checkParseUTCTime(t, s) {
			fast++
		}
	}
	if fast < 6 {
		t.Errorf("parseUTCTime parsed %d of the cases, want at least 6", fast)
	}
	lit := []byte(`"2026-12-06T06:12:15.123Z"`)
	if n := testing.AllocsPerRun(100, func() { _, _ = parseTimeValue(lit) }); n != 0 {
		t.Errorf("parseTimeValue(%s): %v allocations, want 0", lit, n)
	}
}

// checkParseUTCTime fails t when parseUTCTime(s) parses s to another time
// than ParseTime does, and reports whether it parsed s.
func checkParseUTCTime(t *testing.T, s string) bool {
	t.Helper()
	got, ok := parseUTCTime([]byte(s))
	if !ok {
		return false
	}
	want, wok := ParseTime(s)
	if !wok || got != want {
		t.Errorf("%q: parseUTCTime %v, ParseTime %v %v", s, got, want, wok)
	}
	return true
}

func FuzzParseUTCTime(f *testing.F) {
	for _, s := range parseUTCTimeCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkParseUTCTime(t, s) })
}

var docSink []byte

// TestDocArena: the documents of a body's events share pages, each
// document ending at its capacity, so appending to one leaves the next
// alone; a document larger than a page is allocated alone; released
// pages are reused as they are, by the next body.
func TestDocArena(t *testing.T) {
	var a arena
	d1 := append(a.take(3), "abc"...)
	d2 := append(a.take(3), "def"...)
	if cap(d1) != 3 || cap(d2) != 3 {
		t.Fatalf("capacities %d and %d, want 3", cap(d1), cap(d2))
	}
	d1 = append(d1, "xyz"...)
	if string(d1) != "abcxyz" || string(d2) != "def" {
		t.Errorf("after appending to the first: %q and %q", d1, d2)
	}
	if d3 := a.take(docChunk + 1); cap(d3) != docChunk+1 || len(a.pages) != 1 {
		t.Errorf("a document larger than a page: capacity %d, %d pages; want %d, 1", cap(d3), len(a.pages), docChunk+1)
	}
	if d := (*arena)(nil).take(7); len(d) != 0 || cap(d) != 7 {
		t.Errorf("nil arena: len %d cap %d, want 0 7", len(d), cap(d))
	}
	pages := a.release()
	if len(pages) != 0 || cap(pages) == 0 || a.docs != nil || a.pages != nil {
		t.Errorf("released: %d pages kept (room for %d), docs %d bytes, %d pages left; want 0, some room, none, none", len(pages), cap(pages), len(a.docs), len(a.pages))
	}
	if raceEnabled {
		return // the race detector's sync.Pool drops pooled pages at random
	}
	if n := testing.AllocsPerRun(100, func() {
		a = arena{pages: pages}
		for range 200 { // a few pages
			docSink = a.take(500)
		}
		pages = a.release()
	}); n != 0 {
		t.Errorf("200 documents, the pages released: %v allocations, want 0", n)
	}
}

// TestNoCapstan: NoCapstan is set exactly when the stored context has no
// member capstan, wherever the context comes from (the event, the batch's,
// both merged, capstan's own with the client's ip) and however its keys
// are written, in a batch and alone.
func TestNoCapstan(t *testing.T) {
	for _, tt := range []struct {
		name, item, env string
		want            bool
	}{
		{"no context", `{}`, ``, true},
		{"null context", `{"context":null}`, ``, true},
		{"context without", `{"context":{"page":{"capstan":1},"library":{}}}`, ``, true},
		{"context with", `{"context":{"locale":"en","capstan":{"userHash":"ab"}}}`, ``, false},
		{"escaped key", `{"context":{"c\u0061pstan":{}}}`, ``, false},
		{"escaped context key", `{"cont\u0065xt":{"capstan":1}}`, ``, false},
		{"repeated context, the last without", `{"context":{"capstan":1},"context":{"a":1}}`, ``, true},
		{"repeated context, the last with", `{"context":{"a":1},"context":{"capstan":1}}`, ``, false},
		{"batch's context with", `{"context":{"a":1}}`, `,"context":{"capstan":{"v":1}}`, false},
		{"batch's context alone with", `{}`, `,"context":{"capstan":{"v":1}}`, false},
		{"batch's context without", `{"context":{"a":1}}`, `,"context":{"b":{"capstan":1}}`, true},
	} {
		item := `{"type":"track","event":"E","userId":"u",` + tt.item[1:]
		if tt.item == `{}` {
			item = `{"type":"track","event":"E","userId":"u"}`
		}
		body, rerr := ParseBatch([]byte(`{"batch":[` + item + `]` + tt.env + `}`))
		if rerr != nil {
			t.Fatalf("%s: %v", tt.name, rerr)
		}
		for _, ip := range []string{"", "203.0.113.7"} {
			req := &Request{ReceivedAt: received, ClientIP: ip, Envelope: body.Envelope}
			bev, derr := body.Normalize(0, "", req)
			if derr != nil {
				t.Fatalf("%s: %v", tt.name, derr)
			}
			ev, derr := Normalize([]byte(item), "", req)
			if derr != nil {
				t.Fatalf("%s: %v", tt.name, derr)
			}
			if bev.NoCapstan != tt.want || ev.NoCapstan != tt.want {
				t.Errorf("%s, ip %q: NoCapstan %v in a batch, %v alone, want %v: %s", tt.name, ip, bev.NoCapstan, ev.NoCapstan, tt.want, bev.JSON)
			}
		}
		body.Release()
	}
}

// TestBodyNormalizeAllocations: normalising a batch's events costs a few
// allocations shared by all of them (the chunks of ids; the pages of
// documents and the Events are reused): not an Event, a document, a
// userId, a messageId, a type and a timestamp string each.
func TestBodyNormalizeAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's sync.Pool drops pooled buffers at random: allocations vary")
	}
	const items = 20
	item := `{"type":"track","event":"A","userId":"u1","messageId":"m1","timestamp":"2026-12-06T06:12:15.123Z","context":{"a":1}}`
	raw := []byte(`{"batch":[` + strings.TrimSuffix(strings.Repeat(item+",", items), ",") + `]}`)
	req := &Request{ReceivedAt: received, ClientIP: "203.0.113.7"}
	n := testing.AllocsPerRun(50, func() {
		body, rerr := ParseBatch(raw)
		if rerr != nil {
			t.Fatal(rerr)
		}
		for i := range body.Items {
			if _, derr := body.Normalize(i, "", req); derr != nil {
				t.Fatal(derr)
			}
		}
		body.Release()
	})
	if want := float64(4); n > want {
		t.Errorf("%d events: %v allocations, want at most %v", items, n, want)
	}
	t.Logf("%d events: %v allocations", items, n)
}

// TestArenaIDs: ids share chunks, and each keeps its bytes when later ids
// fill the chunk or start a new one; an id with escapes is decoded.
func TestArenaIDs(t *testing.T) {
	a := arena{left: 2}
	lits := []string{`"anon-1"`, `"user-1"`, `"an id long enough to start a new chunk"`, `"\u00e9t\u00e9"`, `""`, `"x"`}
	var got []string
	for _, lit := range lits {
		got = append(got, a.id([]byte(lit)))
	}
	for i, lit := range lits {
		if want := decodeString([]byte(lit)); got[i] != want {
			t.Errorf("%s: got %q, want %q", lit, got[i], want)
		}
	}
	id := []byte(`"0b6c1f6e-1a52-4f0e-9a4e-8f1a0c3d2e7b"`)
	if n := testing.AllocsPerRun(10, func() {
		a = arena{left: 50}
		for range 50 {
			_ = a.id(id)
		}
	}); n != 1 {
		t.Errorf("50 ids: %v allocations, want 1", n)
	}
	if s := (*arena)(nil).id([]byte(`"u"`)); s != "u" {
		t.Errorf("nil arena: got %q, want %q", s, "u")
	}
}

// TestBodyNormalizeReceivedAt: the receivedAt literal formatted once per
// body follows the request's ReceivedAt when a caller changes it.
func TestBodyNormalizeReceivedAt(t *testing.T) {
	item := `{"type":"track","event":"A","userId":"u","messageId":"m"}`
	body, rerr := ParseBatch([]byte(`{"batch":[` + item + `,` + item + `,` + item + `]}`))
	if rerr != nil {
		t.Fatal(rerr)
	}
	defer body.Release()
	for i, at := range []time.Time{received, received.Add(time.Millisecond), received.In(time.FixedZone("", 3600))} {
		ev, derr := body.Normalize(i, "", &Request{ReceivedAt: at})
		if derr != nil {
			t.Fatal(derr)
		}
		if got, want := decode(t, ev.JSON)["receivedAt"], at.UTC().Format(TimeLayout); got != want {
			t.Errorf("item %d: receivedAt %v, want %s", i, got, want)
		}
	}
}

// FuzzTimeValue: timeValue parses as parseTimeValue does, and the literal
// it hands back to be stored as it is, when it does, is the one
// appendQuotedTime writes for the time.
func FuzzTimeValue(f *testing.F) {
	for _, s := range []string{`"2026-12-06T08:13:54.123Z"`, `"0000-01-01T00:00:00.000Z"`, `"2023-02-29T12:00:00.000Z"`,
		`"2026-12-06T08:13:54.5Z"`, `"2026-12-06T08:13:54.12\u0033Z"`, `"2026-12-06T08:13:54+01:00"`, `42`, `"x"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		if k := kind(v); k == 's' && !json.Valid(v) {
			return // raw values are valid JSON
		}
		want, wok := parseTimeValue(v)
		// A new day, one that holds v's date (set by reading v once), and
		// one that holds another.
		var fresh, same, other day
		same.timeValue(v)
		other.timeValue([]byte(`"2026-12-06T08:13:54.123Z"`))
		for _, d := range []*day{&fresh, &same, &other} {
			tm, lit, ok := d.timeValue(v)
			if ok != wok || !tm.Equal(want) || tm.Location() != want.Location() {
				t.Fatalf("%s: %v %v, parseTimeValue %v %v", v, tm, ok, want, wok)
			}
			if lit != nil && string(appendQuotedTime(nil, tm)) != string(lit) {
				t.Fatalf("%s: literal %s, appendQuotedTime %s", v, lit, appendQuotedTime(nil, tm))
			}
		}
	})
}

// dayTimes are instants around the days a day holds: midnight, either
// side of 1970, the first and last years TimeLayout writes in four
// digits, and beyond.
var dayTimes = []time.Time{
	time.Unix(0, 0), time.Unix(-1, 999_999_999), time.Unix(-86400, 0), time.Unix(-86401, 500_000_000),
	time.Unix(86399, 999_000_000), time.Unix(86400, 0),
	received, received.Add(time.Millisecond), received.Add(-24 * time.Hour), received.Add(24 * time.Hour),
	time.Date(2026, 12, 6, 23, 59, 59, 999_999_999, time.UTC), time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC),
	time.Date(2026, 9, 1, 12, 34, 56, 789_999_999, time.FixedZone("", 2*3600)),
	time.Date(2024, 2, 29, 6, 0, 0, 0, time.UTC), time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC),
	time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(0, 1, 1, 23, 59, 59, 999_000_000, time.UTC),
	time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
	time.Date(10000, 1, 1, 0, 0, 0, 1_000_000, time.UTC), time.Date(-1, 12, 31, 12, 0, 0, 0, time.UTC),
}

// TestDayAppendQuotedTime: writing a time with a day gives what
// appendQuotedTime gives, whatever date the day held before (none, the
// same, another), and the day then holds the time's date.
func TestDayAppendQuotedTime(t *testing.T) {
	for _, prev := range append([]time.Time{{}}, dayTimes...) {
		for _, tm := range dayTimes {
			var d day
			if !prev.IsZero() {
				d.appendQuotedTime(nil, prev)
			}
			want := string(appendQuotedTime(nil, tm))
			if got := string(d.appendQuotedTime(nil, tm)); got != want {
				t.Fatalf("after %v: %v written %s, want %s", prev, tm, got, want)
			}
			// Again, now that d may hold tm's date.
			if got := string(d.appendQuotedTime(nil, tm)); got != want {
				t.Fatalf("again: %v written %s, want %s", tm, got, want)
			}
			if y := tm.UTC().Year(); y >= 0 && y <= 9999 && (!d.set || string(d.lit[:]) != want[1:12]) {
				t.Fatalf("%v: day holds %q (set %v), want %q", tm, d.lit, d.set, want[1:12])
			}
		}
	}
}

// TestDayParseUTCTime: parsing with a day gives what parseUTCTime gives,
// after any other timestamp was parsed or written with it.
func TestDayParseUTCTime(t *testing.T) {
	cases := append([]string(nil), parseUTCTimeCases...)
	for _, tm := range dayTimes {
		lit := appendQuotedTime(nil, tm)
		cases = append(cases, string(lit[1:len(lit)-1]))
	}
	for _, prev := range cases {
		for _, s := range cases {
			want, wok := parseUTCTime([]byte(s))
			for _, written := range []bool{false, true} {
				var d day
				if written {
					if pt, ok := parseUTCTime([]byte(prev)); ok {
						d.appendQuotedTime(nil, pt)
					}
				} else {
					d.parseUTCTime([]byte(prev))
				}
				if got, ok := d.parseUTCTime([]byte(s)); ok != wok || got != want {
					t.Fatalf("after %q (written %v): %q parsed %v %v, want %v %v", prev, written, s, got, ok, want, wok)
				}
			}
		}
	}
}

// FuzzDay: a day read and written by turns gives what parseUTCTime and
// appendQuotedTime give.
func FuzzDay(f *testing.F) {
	f.Add("2026-12-06T08:13:54.123Z", int64(1796544834), int64(123_000_000), "2026-12-06T23:59:59.999Z")
	f.Add("1969-12-31T23:59:59Z", int64(-1), int64(0), "1970-01-01T00:00:00.000Z")
	f.Fuzz(func(t *testing.T, s1 string, sec, nsec int64, s2 string) {
		var d day
		tm := time.Unix(sec, nsec)
		for _, s := range []string{s1, s2} {
			want, wok := parseUTCTime([]byte(s))
			if got, ok := d.parseUTCTime([]byte(s)); ok != wok || got != want {
				t.Fatalf("%q parsed %v %v, want %v %v", s, got, ok, want, wok)
			}
			for _, w := range []time.Time{tm, want} {
				if got, want := d.appendQuotedTime(nil, w), appendQuotedTime(nil, w); string(got) != string(want) {
					t.Fatalf("%v written %s, want %s", w, got, want)
				}
			}
		}
	})
}

// FuzzWithIP: the context with the client IP spliced into its text is
// what setting ip among its members and writing them gives.
func FuzzWithIP(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":1,"a":22}`, `{"a":111,"a":2}`, `{ "a" : 1 }`, `{}`, `{"a":{"b":[1, 2]},"c":"}"}`, `{"\u0061":1}`} {
		f.Add([]byte(s), "203.0.113.7")
	}
	f.Fuzz(func(t *testing.T, c []byte, ip string) {
		if ok, _ := validJSON(c); !ok {
			return
		}
		c = bytes.TrimSpace(c)
		co, isObj := parseSpansInto(nil, c)
		if !isObj || spanGet(c, co, "ip") != nil {
			return
		}
		want, _ := parseObject(c)
		want.set("ip", quote(ip))
		sc := &scratch{}
		got := sc.withIP(c, c, co, ip)
		if w := want.appendJSON(nil); string(got) != string(w) {
			t.Fatalf("%s with ip %q: %s, want %s", c, ip, got, w)
		}
	})
}

// BenchmarkBodyNormalize parses a batch of 100 events like loadgen's
// (bench/internal/segmentgen) and normalises each with a client IP, as
// ingest does.
func BenchmarkBodyNormalize(b *testing.B) {
	item := `{"timestamp":"2026-12-06T08:13:54.123Z","type":"track","properties":{"product_id":"sku-000042","category":"Games","price":18.99,"currency":"USD"},"event":"Product Viewed","messageId":"ajs-next-1a2b3c4d5e6f-000000000001","anonymousId":"3f0b0c3e-9c1d-4f1e-a1e7-6f2f9b1d2c44","userId":"user_4242","context":{"page":{"path":"/products/monopoly","referrer":"https://www.google.com/","search":"","url":"https://www.example.com/products/monopoly"},"userAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36","library":{"name":"analytics.js","version":"npm:next-1.84.3"}}}`
	body := []byte(`{"batch":[` + strings.TrimSuffix(strings.Repeat(item+",", 100), ",") + `],"sentAt":"2026-12-06T08:13:54.200Z"}`)
	req := &Request{ReceivedAt: received, ClientIP: "203.0.113.7"}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		bd, rerr := ParseBatch(body)
		if rerr != nil {
			b.Fatal(rerr)
		}
		req.Envelope = bd.Envelope
		for i := range bd.Items {
			if _, derr := bd.Normalize(i, "", req); derr != nil {
				b.Fatal(derr)
			}
		}
		bd.Release()
	}
}

// appendJSONByMember is appendJSON writing every member on its own, as it
// did before it copied runs of members.
func appendJSONByMember(o object, buf []byte) []byte {
	buf = append(buf, '{')
	first := true
	for _, m := range o {
		if m.Value == nil {
			continue
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		if m.rawKey != nil {
			buf = append(buf, m.rawKey...)
		} else {
			buf = appendQuoted(buf, m.key())
		}
		buf = append(buf, ':')
		buf = append(buf, m.Value...)
	}
	return append(buf, '}')
}

// FuzzAppendJSON: an object split from text, with members deleted,
// replaced and added as Normalize does (mask picks which), is written
// as member by member.
func FuzzAppendJSON(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":[1,2],"c":{"d":"}"}}`), uint16(0))
	f.Add([]byte(`{"a":1, "b":2 ,"c" :3,"a":4}`), uint16(5))
	f.Add([]byte(`{"type":"track","event":"E","context":{"x":1}}`), uint16(0x1234))
	f.Fuzz(func(t *testing.T, b []byte, mask uint16) {
		if ok, _ := validJSON(b); !ok {
			return
		}
		for _, split := range []bool{false, true} {
			var o object
			if split {
				i := skipSpace(b, 0)
				if i >= len(b) || b[i] != '{' {
					return
				}
				spans, _, _, end, _ := validItem(b, i, nil, 0, nil)
				if end < 0 {
					t.Fatalf("validItem refused valid %q", b)
				}
				o = spansObject(b, spans)
			} else if o, _ = parseObject(b); len(o) == 0 {
				return
			}
			for i := range o {
				switch mask >> (2 * (i % 8)) & 3 {
				case 1:
					o[i].Value = nil
				case 2:
					o[i].Value = []byte(`"v"`)
				}
			}
			if mask&0x8000 != 0 {
				o.set("added", []byte(`2`))
			}
			if got, want := o.appendJSON(nil), appendJSONByMember(o, nil); string(got) != string(want) {
				t.Fatalf("%q mask %x: %s, want %s", b, mask, got, want)
			}
		}
	})
}

// validEscStringByByte is validEscString reading one byte at a time, then
// checking the string's UTF-8 with utf8.Valid: the reference for its
// eight-byte runs and its UTF-8 sequences.
func validEscStringByByte(b []byte, i int) (end int, escaped bool) {
	start := i
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			if !utf8.Valid(b[start+1 : i]) {
				return -1, escaped
			}
			return i + 1, escaped
		case c < 0x20:
			return -1, escaped
		case c == '\\':
			escaped = true
			if i++; i >= len(b) {
				return -1, escaped
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) {
					return -1, escaped
				}
				i += 4
			default:
				return -1, escaped
			}
		}
	}
	return -1, escaped
}

// TestValidEscString puts each byte that can end or break a run ('"',
// '\\' and its escapes, control characters, and bytes that are not, such
// as 0x1f's neighbours and UTF-8's high bytes) at every offset of strings
// up to 40 bytes, after and before other specials, and compares
// validEscString with the byte-wise reference.
func TestValidEscString(t *testing.T) {
	specials := []string{`"`, `\"`, `\\`, `\n`, `\u00e9`, `\u12`, `\x`, "\x00", "\x1f", " ", "\x7f", "\x80", "\xff", "é", `\`,
		"\xc3", "\xe2\x82\xac", "\xe2\x82", "\xed\xa0\x80", "\xf0\x9f\x98\x80", "\xf4\x90\x80\x80", "\xc0\xaf", "\xef\xbf\xbd",
		"\xc2\x80", "\xdf\xbf", "\xc1\xbf", "\xe0\x80\x80", "\xe0\xa0\x80", "\xed\x9f\xbf", "\xee\x80\x80", "\xf0\x80\x80\x80",
		"\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf", "\xf3\xbf\xbf\xbf", "\xf5\x80\x80\x80", "\xf8", "\xe2\x28\xa1", "\xf0\x9f\x98", "\xe2\x82\x22", "\xe2\x82\xc3", "\xf0\x9f\xc3\xa9", "\xf0\x9f\x98\xff"}
	for n := range 41 {
		for pos := range n + 1 {
			for _, sp := range specials {
				for _, tail := range []string{`"`, `x"`, "\x01\"", `\"`, ``, `\u0041"`} {
					s := []byte(`"` + strings.Repeat("a", pos) + sp + strings.Repeat("b", n-pos) + tail)
					gotEnd, gotEsc := validEscString(s, 0)
					wantEnd, wantEsc := validEscStringByByte(s, 0)
					if gotEnd != wantEnd || gotEnd >= 0 && gotEsc != wantEsc {
						t.Fatalf("validEscString(%q) = %d, %v; want %d, %v", s, gotEnd, gotEsc, wantEnd, wantEsc)
					}
				}
			}
		}
	}
}

// TestDaysIn checks parseUTCTime's calendar against package time's for
// every month of years 0-9999: month lengths, and the first and last day
// of each month counted from 1970.
func TestDaysIn(t *testing.T) {
	for y := 0; y <= 9999; y++ {
		for m := 1; m <= 12; m++ {
			n := time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
			if got := daysIn(m, y); got != n {
				t.Fatalf("daysIn(%d, %d) = %d, want %d", m, y, got, n)
			}
			for _, d := range []int{1, n} {
				want := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC).Unix() / 86400
				if got := unixDays(y, m, d); got != want {
					t.Fatalf("unixDays(%d, %d, %d) = %d, want %d", y, m, d, got, want)
				}
			}
		}
	}
}

// TestContextIPPlacement: the client's ip is added as the context's last
// member wherever the context stands among the event's members (first,
// between others, added from the envelope), the members after it kept.
func TestContextIPPlacement(t *testing.T) {
	const r = `"2026-09-01T10:34:56.700Z"`
	times := `"originalTimestamp":` + r + `,"receivedAt":` + r + `,"timestamp":` + r
	for _, c := range []struct{ env, item, want string }{
		{``, `{"context":{"a":1},"type":"track","event":"E","messageId":"m","userId":"u"}`,
			`{"context":{"a":1,"ip":"203.0.113.7"},"type":"track","event":"E","messageId":"m","userId":"u",` + times + `}`},
		{``, `{"type":"track","context":{"a":{"b":[1,2]}},"event":"E","messageId":"m","userId":"u","timestamp":` + r + `}`,
			`{"type":"track","context":{"a":{"b":[1,2]},"ip":"203.0.113.7"},"event":"E","messageId":"m","userId":"u",` + times + `}`},
		{`"context":{"library":{"name":"env"}},`, `{"type":"track","event":"E","messageId":"m","userId":"u"}`,
			`{"type":"track","event":"E","messageId":"m","userId":"u","context":{"library":{"name":"env"},"ip":"203.0.113.7"},` + times + `}`},
		{`"context":{"library":{"name":"env"}},`, `{"type":"track","context":{"a":1},"event":"E","messageId":"m","userId":"u"}`,
			`{"type":"track","context":{"library":{"name":"env"},"a":1,"ip":"203.0.113.7"},"event":"E","messageId":"m","userId":"u",` + times + `}`},
	} {
		body, rerr := ParseBatch([]byte(`{` + c.env + `"batch":[` + c.item + `]}`))
		if rerr != nil {
			t.Fatal(rerr)
		}
		req := &Request{ReceivedAt: received, ClientIP: "203.0.113.7", Envelope: body.Envelope}
		ev, derr := body.Normalize(0, "", req)
		if derr != nil {
			t.Fatalf("%s: %v", c.item, derr)
		}
		if string(ev.JSON) != c.want {
			t.Errorf("env %s item %s:\n got %s\nwant %s", c.env, c.item, ev.JSON, c.want)
		}
		ev, derr = Normalize([]byte(c.item), "", req)
		if derr != nil || string(ev.JSON) != c.want {
			t.Errorf("Normalize(%s): %v\n got %s\nwant %s", c.item, derr, ev.JSON, c.want)
		}
	}
}

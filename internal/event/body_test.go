package event

import "testing"

// FuzzContextMayHold: when ContextMayHold says an item's stored document
// cannot hold a key in its context, the document, parsed, holds none
// there (keys with escapes included), for batch and single bodies.
func FuzzContextMayHold(f *testing.F) {
	for _, s := range []string{
		`{"batch":[{"type":"track","event":"E","userId":"u","context":{"capstan":{"userHash":"a"}}},{"type":"page","userId":"u","context":{"locale":"en"}}]}`,
		`{"batch":[{"type":"page","userId":"u","context":{"c\u0061pstan":{"v":1}}}]}`,
		`{"batch":[{"type":"page","userId":"u","cont\u0065xt":{"capstan":{"v":1}}}]}`,
		`{"batch":[{"type":"page","userId":"u","context":{"capstan":1},"context":{"locale":"en"}}]}`,
		`{"batch":[{"type":"page","userId":"u","context":{"locale":"en"},"context":{"capstan":{}}}]}`,
		`{"batch":[{"type":"page","userId":"u"},{"type":"page","userId":"u","context":{"a":1}}],"context":{"capstan":{"v":1}}}`,
		`{"batch":[{"type":"page","userId":"u","context":{"library":{}}}],"context":{"c\u0061pstan":{}}}`,
		`{"batch":[{"type":"page","userId":"u","context":{ "capstan" : {} }}]}`,
		`{"type":"page","userId":"u","context":{"capstan":{"v":1}}} `, // single (a last space)
		`{"type":"page","userId":"u","context":{"library":{"name":"x"}}} `,
		`{"type":"page","userId":"u","context":{"c\u0061pstan":{"v":1},"libr\u0061ry":{}}} `,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, raw []byte, library bool) {
		key := "capstan"
		if library { // a key that events hold: the check can fail
			key = "library"
		}
		var body *Body
		var rerr *RequestError
		if len(raw) > 0 && raw[len(raw)-1] == ' ' { // a single event's body
			body, rerr = ParseSingle(raw)
		} else {
			body, rerr = ParseBatch(raw)
		}
		if rerr != nil {
			return
		}
		defer body.Release()
		req := &Request{ReceivedAt: received, ClientIP: "203.0.113.7", Envelope: body.Envelope}
		for i := range body.Items {
			if body.DepthError(i) != nil {
				continue
			}
			ev, derr := body.Normalize(i, "", req)
			if derr != nil || body.ContextMayHold(i, key) {
				continue
			}
			v, err := Parse(ev.JSON)
			if err != nil {
				t.Fatalf("item %d: stored document does not parse: %v: %s", i, err, ev.JSON)
			}
			if !v.Get("context").Get(key).IsUndefined() {
				t.Fatalf("item %d: ContextMayHold(%q) = false, but the document holds it: %s", i, key, ev.JSON)
			}
		}
	})
}

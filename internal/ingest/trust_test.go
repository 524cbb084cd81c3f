package ingest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/capstan-gw/capstan/internal/stream"
)

// recordStore keeps what it is asked to store, documents copied (the
// handler reuses their memory once Append returns).
type recordStore struct {
	mu  sync.Mutex
	evs []stream.Event
}

func (s *recordStore) Append(_ context.Context, evs []stream.Event) ([]stream.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := make([]stream.Result, len(evs))
	for i := range evs {
		ev := evs[i]
		ev.Doc = bytes.Clone(ev.Doc)
		s.evs = append(s.evs, ev)
		res[i].Seq = uint64(len(s.evs))
	}
	return res, nil
}

func (s *recordStore) take() []stream.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.evs
	s.evs = nil
	return out
}

const trustSecret = "0123456789abcdef-test-secret"

const trustConfig = `
sources:
  - name: website
    write_key: wk_web
    allowed_origins: ["https://www.example.com"]
    identity_verification:
      secret: ` + trustSecret + `
  - name: app
    write_key: wk_app
    trust: browser
  - name: backend
    write_key: wk_back
  - name: crm
    write_key: wk_crm
    trust: server
`

func userHash(secret, user string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(user))
	return hex.EncodeToString(m.Sum(nil))
}

// TestIdentityTrust: ingest decides each stored event's trust from the
// source's configuration, the request's Origin and the userHash, and never
// stores the userHash.
func TestIdentityTrust(t *testing.T) {
	store := &recordStore{}
	e := newEnv(t, trustConfig, store)
	good := userHash(trustSecret, "u_1")
	ctxHash := func(h string) string { return `"context":{"capstan":{"userHash":"` + h + `"},"locale":"en"}` }
	origin := []string{"Origin", "https://www.example.com"}
	tests := []struct {
		name, key, path, body string
		hdr                   []string
		want                  []string // trust of each stored event
	}{
		{"verified identify", "wk_web", "/v1/identify", `{"userId":"u_1",` + ctxHash(good) + `}`, origin, []string{stream.TrustVerified}},
		{"upper-case hex", "wk_web", "/v1/identify", `{"userId":"u_1",` + ctxHash(strings.ToUpper(good)) + `}`, origin, []string{stream.TrustVerified}},
		{"verified without Origin", "wk_web", "/v1/track", `{"event":"E","userId":"u_1",` + ctxHash(good) + `}`, nil, []string{stream.TrustVerified}},
		{"hash of another user", "wk_web", "/v1/identify", `{"userId":"u_2",` + ctxHash(good) + `}`, origin, []string{stream.TrustUnverified}},
		{"hash with another secret", "wk_web", "/v1/identify", `{"userId":"u_1",` + ctxHash(userHash("another-secret-0123", "u_1")) + `}`, nil, []string{stream.TrustUnverified}},
		{"garbage hash", "wk_web", "/v1/identify", `{"userId":"u_1",` + ctxHash("zz") + `}`, origin, []string{stream.TrustUnverified}},
		{"no hash, curl", "wk_web", "/v1/identify", `{"userId":"u_1","traits":{"email":"x@example.com"}}`, nil, []string{stream.TrustUnverified}},
		{"alias is never verified", "wk_web", "/v1/alias", `{"userId":"u_1","previousId":"u_victim",` + ctxHash(good) + `}`, origin, []string{stream.TrustUnverified}},
		{"anonymous", "wk_web", "/v1/page", `{"anonymousId":"a_1"}`, origin, []string{stream.TrustUnverified}},
		{"browser without a secret", "wk_app", "/v1/identify", `{"userId":"u_1",` + ctxHash(good) + `}`, nil, []string{stream.TrustUnverified}},
		{"default source, no Origin", "wk_back", "/v1/identify", `{"userId":"u_1"}`, nil, []string{stream.TrustServer}},
		{"default source from a browser", "wk_back", "/v1/identify", `{"userId":"u_1"}`, origin, []string{stream.TrustUnverified}},
		{"server source from a browser", "wk_crm", "/v1/identify", `{"userId":"u_1",` + ctxHash(good) + `}`, origin, []string{stream.TrustServer}},
		{"escaped capstan key", "wk_web", "/v1/identify", `{"userId":"u_1","context":{"c\u0061pstan":{"userHash":"` + good + `"}}}`, origin, []string{stream.TrustVerified}},
		{"escaped context key", "wk_web", "/v1/identify", `{"userId":"u_1","cont\u0065xt":{"capstan":{"userHash":"` + good + `"}}}`, origin, []string{stream.TrustVerified}},
		{"repeated context, the last holds it", "wk_web", "/v1/identify", `{"userId":"u_1","context":{"locale":"en"},` + ctxHash(good) + `}`, origin, []string{stream.TrustVerified}},
		{"batch items, one with a hash", "wk_web", "/v1/batch",
			`{"batch":[{"type":"identify","userId":"u_1","context":{"locale":"en"}},{"type":"identify","userId":"u_1",` + ctxHash(good) + `}]}`, origin,
			[]string{stream.TrustUnverified, stream.TrustVerified}},
		{"batch context with escapes", "wk_web", "/v1/batch",
			`{"batch":[{"type":"identify","userId":"u_1","context":{"locale":"en"}}],"context":{"c\u0061pstan":{"userHash":"` + good + `"}}}`, origin,
			[]string{stream.TrustVerified}},
		{"batch context vouches for its user only", "wk_web", "/v1/batch",
			`{"batch":[{"type":"identify","userId":"u_1"},{"type":"identify","userId":"u_2"}],` + ctxHash(good) + `}`, origin,
			[]string{stream.TrustVerified, stream.TrustUnverified}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("POST", tt.path, tt.body, append([]string{"Authorization", basic(tt.key + ":")}, tt.hdr...)...)
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			evs := store.take()
			if len(evs) != len(tt.want) {
				t.Fatalf("stored %d events, want %d", len(evs), len(tt.want))
			}
			for i, ev := range evs {
				if ev.Trust != tt.want[i] {
					t.Errorf("event %d: trust %q, want %q", i, ev.Trust, tt.want[i])
				}
				if strings.Contains(string(ev.Doc), "userHash") || strings.Contains(string(ev.Doc), good) {
					t.Errorf("event %d: stored with its userHash: %s", i, ev.Doc)
				}
				var doc map[string]any
				if err := json.Unmarshal(ev.Doc, &doc); err != nil {
					t.Fatalf("event %d: stored document is not JSON: %v", i, err)
				}
				if c, _ := doc["context"].(map[string]any); strings.Contains(tt.body, "locale") && (c["locale"] != "en" || c["capstan"] != nil) {
					t.Errorf("event %d: context %v, want the locale kept and capstan gone", i, c)
				}
			}
		})
	}
}

func TestTakeUserHash(t *testing.T) {
	tests := []struct {
		name, doc, hash, out string
	}{
		{"none", `{"a":1}`, "", `{"a":1}`},
		{"elsewhere", `{"properties":{"userHash":"x"}}`, "", `{"properties":{"userHash":"x"}}`},
		{"only key", `{"type":"identify","context":{"capstan":{"userHash":"ab"}},"n":1.50}`, "ab", `{"type":"identify","context":{},"n":1.50}`},
		{"other keys kept", `{"context":{"capstan":{"userHash":"ab","v":2},"ip":"1.2.3.4"}}`, "ab", `{"context":{"capstan":{"v":2},"ip":"1.2.3.4"}}`},
		{"not a string", `{"context":{"capstan":{"userHash":7}}}`, "", `{"context":{}}`},
		{"escaped key", `{"context":{"capstan":{"user\u0048ash":"ab"}}}`, "ab", `{"context":{}}`},
		{"escaped parents", `{"cont\u0065xt":{"c\u0061pstan":{"userHash":"ab","v":1}}}`, "ab", `{"context":{"capstan":{"v":1}}}`},
		{"escape elsewhere", `{"a":"\u00e9","context":{"capstan":{"v":1}}}`, "", `{"a":"\u00e9","context":{"capstan":{"v":1}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hash, out, _ := takeUserHash([]byte(tt.doc))
			if hash != tt.hash || string(out) != tt.out {
				t.Errorf("got %q %s, want %q %s", hash, out, tt.hash, tt.out)
			}
		})
	}
}

func TestHasUserHashKey(t *testing.T) {
	for _, doc := range []string{``, `"userHash"`, `userHash"`, `"userHash`, `x"userHash"`, `"userHash"x`,
		`H"userHash"`, `"userHas"userHash"`, `{"KHTML":"Hash","context":{"capstan":{"userHash":"a"}}}`,
		`{"a":"user\u0048ash"}`, `HHHHHH`, `"userhash"`, `{"a":"\/"}`} {
		want := strings.Contains(doc, `"userHash"`) || strings.Contains(doc, `\u`)
		if got := hasUserHashKey([]byte(doc)); got != want {
			t.Errorf("hasUserHashKey(%q) = %v, want %v", doc, got, want)
		}
	}
}

func FuzzHasUserHashKey(f *testing.F) {
	f.Add([]byte(`{"context":{"capstan":{"userHash":"a"}},"ua":"KHTML"}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		if got, want := hasUserHashLit(doc), bytes.Contains(doc, []byte(`"userHash"`)); got != want {
			t.Fatalf("hasUserHashLit(%q) = %v, want %v", doc, got, want)
		}
	})
}

package identity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/stream"
)

var discard = slog.New(slog.DiscardHandler)

// hashEmail is linkedin.HashEmail's rule (trim, lower-case, SHA-256 hex),
// repeated here because identity must not import internal/linkedin.
func hashEmail(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", false
	}
	sum := sha256.Sum256([]byte(strings.ToLower(s)))
	return hex.EncodeToString(sum[:]), true
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// openJS starts an embedded engine in a temporary directory.
func openJS(t testing.TB) jetstream.JetStream {
	t.Helper()
	eng, err := stream.Open(context.Background(), stream.Config{DataDir: t.TempDir()}, discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	return eng.JetStream()
}

// bothStores runs test against each Store: the JetStream KV bucket and the
// local store (openGraph gives a test running under "local" a Local).
func bothStores(t *testing.T, test func(t *testing.T)) {
	t.Run("jetstream", test)
	t.Run("local", test)
}

var storeFlag = flag.String("store", "jetstream", "the store of graphs outside bothStores (benchmarks): jetstream or local")

// onLocal reports whether t runs under bothStores' "local".
func onLocal(t testing.TB) bool { return strings.Contains(t.Name(), "/local") }

// openLocal opens a local store in a temporary directory.
func openLocal(t testing.TB) *Local {
	t.Helper()
	l, err := OpenLocal(LocalConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// openGraph opens a graph on js, with a local store when t runs under
// bothStores' "local" (one per bucket name and engine, so that graphs of
// one test that share a bucket share the store).
func openGraph(t testing.TB, js jetstream.JetStream, cfg Config) *Graph {
	t.Helper()
	if cfg.HashEmail == nil {
		cfg.HashEmail = hashEmail
	}
	if cfg.Store == nil && (onLocal(t) || *storeFlag == "local") {
		localsMu.Lock()
		k := localsKey{js, cfg.Bucket}
		l, ok := locals[k]
		if !ok {
			l = openLocal(t)
			locals[k] = l
			t.Cleanup(func() { localsMu.Lock(); delete(locals, k); localsMu.Unlock() })
		}
		localsMu.Unlock()
		cfg.Store = l
	}
	g, err := Open(context.Background(), js, cfg, discard)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

type localsKey struct {
	js     jetstream.JetStream
	bucket string
}

var (
	localsMu sync.Mutex
	locals   = map[localsKey]*Local{}
)

func newGraph(t testing.TB) *Graph {
	t.Helper()
	return openGraph(t, openJS(t), Config{})
}

func parse(t testing.TB, s string) event.Value {
	t.Helper()
	v, err := event.ParseString(s)
	if err != nil {
		t.Fatalf("parse %s: %v", s, err)
	}
	return v
}

// observe parses, captures and observes one event.
func observe(t testing.TB, g *Graph, s string) {
	t.Helper()
	ev := parse(t, s)
	if err := g.Observe(context.Background(), ev, Capture(ev)); err != nil {
		t.Fatalf("observe %s: %v", s, err)
	}
}

func enrich(t testing.TB, g *Graph, s string) Captured {
	t.Helper()
	ev := parse(t, s)
	return g.Enrich(context.Background(), ev, "", Capture(ev))
}

// keys lists every key of the bucket.
func keys(t testing.TB, g *Graph) []string {
	t.Helper()
	ks, ok := tryKeys(t, g)
	if !ok {
		t.Fatal("listing the identity bucket's keys did not finish within 5s")
	}
	return ks
}

// tryKeys lists the bucket's keys, sorted; ok is false when the listing did
// not finish within 5 s. nats.go's KV Keys waits without bound for its
// watcher's "all initial values" marker, and under load that marker can be
// missed while the server expires keys (TestTTLExpiry once hung for 15
// minutes in Keys); ListKeys ends with its context.
func tryKeys(t testing.TB, g *Graph) (ks []string, ok bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := g.store.each(ctx, func(k string, _ stored) error {
		ks = append(ks, k)
		return nil
	})
	if ctx.Err() != nil {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ks)
	return slices.Compact(ks), true
}

func revision(t testing.TB, g *Graph, key string) uint64 {
	t.Helper()
	e, err := g.load(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return e.rev
}

const (
	anonA   = "3f0b0c3e-9c1d-4f1e-a1e7-6f2f9b1d2c44"
	userU   = "user_12345"
	email   = "John.Doe@Example.com"
	pageA   = `{"type":"page","name":"Home","anonymousId":"` + anonA + `","userId":null,"timestamp":"2026-09-01T10:00:00.000Z","context":{"page":{"url":"https://www.example.com/?li_fat_id=123456","search":"?li_fat_id=123456"}},"properties":{"url":"https://www.example.com/?li_fat_id=123456"}}`
	identAU = `{"type":"identify","anonymousId":"` + anonA + `","userId":"` + userU + `","timestamp":"2026-09-01T10:05:00.000Z","traits":{"email":"` + email + `","firstName":"John"}}`
	trackU  = `{"type":"track","event":"Order Completed","userId":"` + userU + `","timestamp":"2026-10-15T09:00:00.000Z","properties":{"revenue":4900}}`
)

var emailHash = sha(strings.ToLower(email))

// TestStory is the story: the click id lands on an anonymous page
// view, identify links the browser to the user and brings the email, and a
// later server-side event that carries only the userId gets both.
// TestProfileKeys pins the key format, which names every stored profile:
// "u." or "a." and the lower-case hex SHA-256 of the id, whatever the id.
func TestProfileKeys(t *testing.T) {
	for _, id := range []string{"", "u1", "ajs-anon-ü-\x00", strings.Repeat("x", 300)} {
		sum := sha256.Sum256([]byte(id))
		if got, want := UserKey(id), "u."+hex.EncodeToString(sum[:]); got != want {
			t.Errorf("UserKey(%q) = %q, want %q", id, got, want)
		}
		if got, want := AnonymousKey(id), "a."+hex.EncodeToString(sum[:]); got != want {
			t.Errorf("AnonymousKey(%q) = %q, want %q", id, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = UserKey("ajs-user-1234") }); n > 1 {
		t.Errorf("UserKey allocates %v times, want 1", n)
	}
}

func TestStory(t *testing.T) { bothStores(t, testStory) }

func testStory(t *testing.T) {
	g := newGraph(t)
	observe(t, g, pageA)
	observe(t, g, identAU)

	ev := parse(t, trackU)
	got := g.Enrich(context.Background(), ev, "", Capture(ev))
	want := Captured{LiFatID: "123456", LiFatIDFrom: FromUser, Email: emailHash, EmailFrom: FromUser}
	if got != want {
		t.Errorf("Enrich = %+v\nwant %+v", got, want)
	}
	if err := g.Observe(context.Background(), ev, Capture(ev)); err != nil {
		t.Fatal(err)
	}

	// The event's own values win.
	own := `{"type":"track","event":"Order Completed","userId":"` + userU + `","properties":{"li_fat_id":"999"},"context":{"traits":{"email":"other@example.com"}}}`
	got = enrich(t, g, own)
	if got.LiFatID != "999" || got.LiFatIDFrom != "properties.li_fat_id" || got.Email != "other@example.com" {
		t.Errorf("own values lost: %+v", got)
	}

	// An anonymous-only event from the same browser finds the email via the
	// anonymous id's profile (it holds the click id, the user the email).
	got = enrich(t, g, `{"type":"track","event":"x","anonymousId":"`+anonA+`"}`)
	want = Captured{LiFatID: "123456", LiFatIDFrom: FromAnonymous, Email: emailHash, EmailFrom: FromAnonymous}
	if got != want {
		t.Errorf("anonymous Enrich = %+v\nwant %+v", got, want)
	}

	// Unknown ids: nothing is added.
	if got := enrich(t, g, `{"type":"track","event":"x","userId":"nobody"}`); got != (Captured{}) {
		t.Errorf("unknown user enriched: %+v", got)
	}

	// No raw id or email anywhere in the key names.
	wantKeys := []string{"a." + sha(anonA), "u." + sha(userU)}
	if got := keys(t, g); !slices.Equal(got, wantKeys) {
		t.Errorf("keys = %v, want %v", got, wantKeys)
	}
	for _, k := range keys(t, g) {
		e, _ := g.store.get(context.Background(), k)
		if strings.Contains(strings.ToLower(string(e.data)), "example.com") {
			t.Errorf("%s stores the email in clear: %s", k, e.data)
		}
	}
}

func TestEnrichOrder(t *testing.T) { bothStores(t, testEnrichOrder) }

func testEnrichOrder(t *testing.T) {
	tests := []struct {
		name   string
		events []string
		conv   string
		want   Captured
	}{
		{
			name:   "userId first",
			events: []string{`{"type":"identify","userId":"u1","traits":{"email":"u1@example.com","li_fat_id":"L-u1"}}`, `{"type":"page","anonymousId":"a1","properties":{"li_fat_id":"L-a1"}}`},
			conv:   `{"type":"track","event":"x","userId":"u1","anonymousId":"a1"}`,
			want:   Captured{LiFatID: "L-u1", LiFatIDFrom: FromUser, Email: must(hashEmail("u1@example.com")), EmailFrom: FromUser},
		},
		{
			name:   "anonymousId fills what the user lacks",
			events: []string{`{"type":"identify","userId":"u1","traits":{"email":"u1@example.com"}}`, `{"type":"page","anonymousId":"a1","properties":{"li_fat_id":"L-a1"}}`},
			conv:   `{"type":"track","event":"x","userId":"u1","anonymousId":"a1"}`,
			want:   Captured{LiFatID: "L-a1", LiFatIDFrom: FromAnonymous, Email: must(hashEmail("u1@example.com")), EmailFrom: FromUser},
		},
		{
			name: "user of the anonymousId",
			events: []string{
				`{"type":"identify","userId":"u1","anonymousId":"a1"}`,
				`{"type":"identify","userId":"u1","traits":{"email":"u1@example.com"}}`,
			},
			conv: `{"type":"track","event":"x","anonymousId":"a1"}`,
			want: Captured{Email: must(hashEmail("u1@example.com")), EmailFrom: FromAnonymousUser},
		},
		{
			name: "newest li_fat_id wins by event time, whatever the order observed",
			events: []string{
				`{"type":"page","anonymousId":"a1","timestamp":"2026-09-02T00:00:00Z","properties":{"li_fat_id":"new"}}`,
				`{"type":"page","anonymousId":"a1","timestamp":"2026-09-01T00:00:00Z","properties":{"li_fat_id":"old"}}`,
				`{"type":"identify","userId":"u1","anonymousId":"a1"}`,
			},
			conv: `{"type":"track","event":"x","userId":"u1"}`,
			want: Captured{LiFatID: "new", LiFatIDFrom: FromUser},
		},
		{
			name: "a later click on the linked browser reaches the user",
			events: []string{
				`{"type":"identify","userId":"u1","anonymousId":"a1","timestamp":"2026-09-01T00:00:00Z","traits":{"email":"u1@example.com"}}`,
				`{"type":"page","anonymousId":"a1","timestamp":"2026-09-03T00:00:00Z","context":{"page":{"search":"?li_fat_id=later"}}}`,
			},
			conv: `{"type":"track","event":"x","userId":"u1"}`,
			want: Captured{LiFatID: "later", LiFatIDFrom: FromUser, Email: must(hashEmail("u1@example.com")), EmailFrom: FromUser},
		},
		{
			name:   "numeric userId",
			events: []string{`{"type":"identify","userId":42,"traits":{"email":"n@example.com"}}`},
			conv:   `{"type":"track","event":"x","userId":42}`,
			want:   Captured{Email: must(hashEmail("n@example.com")), EmailFrom: FromUser},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGraph(t)
			for _, e := range tt.events {
				observe(t, g, e)
			}
			if got := enrich(t, g, tt.conv); got != tt.want {
				t.Errorf("Enrich = %+v\nwant %+v", got, tt.want)
			}
			// The keys computed once (delivery: for ObserveAll too) find
			// the same; the zero Keys name no profile and find nothing.
			ev := parse(t, tt.conv)
			if got, err := g.EnrichKeys(context.Background(), KeysOf(ev), "", Capture(ev)); got != tt.want || err != nil {
				t.Errorf("EnrichKeys = %+v, %v\nwant %+v", got, err, tt.want)
			}
			if got, err := g.EnrichKeys(context.Background(), Keys{}, "", Capture(ev)); got != Capture(ev) || err != nil {
				t.Errorf("EnrichKeys with zero Keys = %+v, %v; want the event's own %+v", got, err, Capture(ev))
			}
		})
	}
}

func must(s string, _ bool) string { return s }

func TestAlias(t *testing.T) { bothStores(t, testAlias) }

func testAlias(t *testing.T) {
	t.Run("previous user id", func(t *testing.T) {
		g := newGraph(t)
		observe(t, g, `{"type":"identify","userId":"old-id","anonymousId":"a1","traits":{"email":"p@example.com"}}`)
		observe(t, g, `{"type":"page","anonymousId":"a1","properties":{"li_fat_id":"L1"}}`)
		observe(t, g, `{"type":"alias","userId":"new-id","previousId":"old-id"}`)
		want := Captured{LiFatID: "L1", LiFatIDFrom: FromUser, Email: must(hashEmail("p@example.com")), EmailFrom: FromUser}
		if got := enrich(t, g, `{"type":"track","event":"x","userId":"new-id"}`); got != want {
			t.Errorf("new id: %+v\nwant %+v", got, want)
		}
		p, err := g.Show(context.Background(), Key{UserID: "new-id"})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(p.Links, UserKey("old-id")) {
			t.Errorf("new id does not list the old one: %+v", p.Links)
		}
		old, err := g.Show(context.Background(), Key{UserID: "old-id"})
		if err != nil {
			t.Fatal(err)
		}
		if old.AliasOf != UserKey("new-id") {
			t.Errorf("old id aliasOf = %q", old.AliasOf)
		}
		// What the new id learns later reaches events of the old id through
		// the alias (one hop).
		observe(t, g, `{"type":"identify","userId":"new-id","timestamp":"2030-01-01T00:00:00Z","traits":{"email":"q@example.com"}}`)
		g2 := enrich(t, g, `{"type":"track","event":"x","userId":"old-id"}`)
		if g2.Email != must(hashEmail("p@example.com")) || g2.EmailFrom != FromUser {
			t.Errorf("old id: %+v", g2)
		}
		// A later capture on the old id passes to the new one.
		observe(t, g, `{"type":"track","event":"y","userId":"old-id","timestamp":"2031-01-01T00:00:00Z","properties":{"li_fat_id":"L2"}}`)
		if got := enrich(t, g, `{"type":"track","event":"x","userId":"new-id"}`); got.LiFatID != "L2" {
			t.Errorf("new id after old id's capture: %+v", got)
		}
	})
	t.Run("previous anonymous id", func(t *testing.T) {
		g := newGraph(t)
		observe(t, g, `{"type":"page","anonymousId":"anon-9","properties":{"li_fat_id":"L9"}}`)
		observe(t, g, `{"type":"alias","userId":"u9","previousId":"anon-9"}`)
		want := Captured{LiFatID: "L9", LiFatIDFrom: FromUser}
		if got := enrich(t, g, `{"type":"track","event":"x","userId":"u9"}`); got != want {
			t.Errorf("%+v, want %+v", got, want)
		}
		p, err := g.Show(context.Background(), Key{AnonymousID: "anon-9"})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(p.Links, []string{UserKey("u9")}) {
			t.Errorf("anonymous links = %v", p.Links)
		}
	})
}

func TestGroup(t *testing.T) { bothStores(t, testGroup) }

func testGroup(t *testing.T) {
	g := newGraph(t)
	observe(t, g, `{"type":"group","userId":"user_12345","groupId":"org_98765","traits":{"name":"Acme"}}`)
	observe(t, g, `{"type":"group","userId":"user_12345","groupId":4711}`)
	observe(t, g, `{"type":"group","userId":"user_12345","groupId":"org_98765"}`)
	p, err := g.Show(context.Background(), Key{UserID: "user_12345"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"org_98765", "4711"}; !slices.Equal(p.Groups, want) {
		t.Errorf("groups = %v, want %v", p.Groups, want)
	}
}

func TestBucketConfig(t *testing.T) {
	js := openJS(t)
	g := openGraph(t, js, Config{})
	st, err := g.store.(*jsStore).kv.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Bucket() != stream.IdentityKV || st.TTL() != DefaultTTL || st.History() != 1 {
		t.Errorf("bucket %s ttl %s history %d", st.Bucket(), st.TTL(), st.History())
	}
	info := st.(*jetstream.KeyValueBucketStatus).StreamInfo()
	if info.Config.Storage != jetstream.FileStorage || info.Config.Replicas != 1 {
		t.Errorf("storage %v replicas %d", info.Config.Storage, info.Config.Replicas)
	}
	// Reopening with another TTL updates the bucket; reopening with the same
	// one binds it unchanged.
	g = openGraph(t, js, Config{TTL: 30 * 24 * time.Hour})
	if st, _ := g.store.(*jsStore).kv.Status(context.Background()); st.TTL() != 30*24*time.Hour {
		t.Errorf("ttl after reopen = %s", st.TTL())
	}
	_ = openGraph(t, js, Config{TTL: 30 * 24 * time.Hour})

	_, err = Open(context.Background(), js, Config{TTL: time.Second}, discard)
	if err == nil || !strings.Contains(err.Error(), "ttl") || !strings.Contains(err.Error(), "HashEmail") {
		t.Errorf("bad config: %v", err)
	}
}

// TestTTLRefresh: activity rewrites a profile once it is older than Refresh,
// which restarts the bucket's TTL for it; before that it writes nothing.
func TestTTLRefresh(t *testing.T) { bothStores(t, testTTLRefresh) }

func testTTLRefresh(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	g := openGraph(t, openJS(t), Config{Now: clock})
	observe(t, g, identAU)
	uk := UserKey(userU)
	r1 := revision(t, g, uk)
	observe(t, g, trackU)
	if r := revision(t, g, uk); r != r1 {
		t.Errorf("fresh profile rewritten: %d -> %d", r1, r)
	}
	mu.Lock()
	now = now.Add(25 * time.Hour)
	mu.Unlock()
	observe(t, g, trackU)
	if r := revision(t, g, uk); r == r1 {
		t.Error("profile older than Refresh not rewritten")
	}
	// The anonymous id was not seen: it is left to expire.
	p, err := g.Show(context.Background(), Key{AnonymousID: anonA})
	if err != nil {
		t.Fatal(err)
	}
	if p.Expires.Sub(p.Updated) != DefaultTTL {
		t.Errorf("expires %s after update", p.Expires.Sub(p.Updated))
	}
}

// TestTTLExpiry uses a short bucket TTL and waits (by polling) for the
// server to expire a profile.
func TestTTLExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a 1 s TTL")
	}
	js := openJS(t)
	g := openGraph(t, js, Config{TTL: time.Minute})
	// The minimum of Open is a minute; shorten the bucket directly.
	_, err := js.UpdateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: g.Bucket(), History: 1, TTL: time.Second, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	observe(t, g, pageA)
	eventually(t, 20*time.Second, func() bool {
		ks, ok := tryKeys(t, g)
		return ok && len(ks) == 0
	})
}

// eventually polls ok every 20 ms until it holds, failing after within.
func eventually(t testing.TB, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", within)
		}
		<-tick.C
	}
}

func TestObserveIdempotent(t *testing.T) { bothStores(t, testObserveIdempotent) }

func testObserveIdempotent(t *testing.T) {
	g := newGraph(t)
	events := []string{pageA, identAU, trackU,
		`{"type":"group","userId":"` + userU + `","groupId":"org_1"}`,
		`{"type":"alias","userId":"` + userU + `","previousId":"older"}`,
	}
	for _, e := range events {
		observe(t, g, e)
	}
	before := map[string]uint64{}
	for _, k := range keys(t, g) {
		before[k] = revision(t, g, k)
	}
	for _, e := range events {
		observe(t, g, e)
	}
	after := map[string]uint64{}
	for _, k := range keys(t, g) {
		after[k] = revision(t, g, k)
	}
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("observing again changed the graph:\nbefore %v\nafter  %v", before, after)
	}
}

// TestConcurrentObserve races related events (-race) and checks that no
// link and no identifier is lost.
func TestConcurrentObserve(t *testing.T) { bothStores(t, testConcurrentObserve) }

func testConcurrentObserve(t *testing.T) {
	g := newGraph(t)
	const users, anons = 4, 6
	var evs []string
	for u := range users {
		for a := range anons {
			ak := fmt.Sprintf("anon-%d-%d", u, a)
			evs = append(evs,
				fmt.Sprintf(`{"type":"page","anonymousId":"%s","timestamp":"2026-09-01T00:00:0%dZ","properties":{"li_fat_id":"L-%d-%d"}}`, ak, a, u, a),
				fmt.Sprintf(`{"type":"identify","userId":"user-%d","anonymousId":"%s","traits":{"email":"user%d@example.com"}}`, u, ak, u),
			)
		}
	}
	var wg sync.WaitGroup
	for i, e := range evs {
		ev := parse(t, e)
		// Each event twice, from different goroutines, as two destinations would.
		for range 2 {
			wg.Go(func() {
				if err := g.Observe(context.Background(), ev, Capture(ev)); err != nil {
					t.Errorf("event %d: %v", i, err)
				}
			})
		}
	}
	wg.Wait()
	for u := range users {
		p, err := g.Show(context.Background(), Key{UserID: fmt.Sprintf("user-%d", u)})
		if err != nil {
			t.Fatal(err)
		}
		got := slices.Sorted(slices.Values(p.Links))
		var want []string
		for a := range anons {
			want = append(want, AnonymousKey(fmt.Sprintf("anon-%d-%d", u, a)))
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("user-%d links %v\nwant %v", u, got, want)
		}
		if wantLFI := fmt.Sprintf("L-%d-%d", u, anons-1); p.LiFatID != wantLFI {
			t.Errorf("user-%d li_fat_id %q, want the newest %q", u, p.LiFatID, wantLFI)
		}
		if p.EmailSHA256 != must(hashEmail(fmt.Sprintf("user%d@example.com", u))) {
			t.Errorf("user-%d email hash %q", u, p.EmailSHA256)
		}
		for _, l := range p.Linked {
			if !slices.Equal(l.Links, []string{UserKey(fmt.Sprintf("user-%d", u))}) {
				t.Errorf("%s links %v", l.Key, l.Links)
			}
		}
	}
}

func TestMaxLinks(t *testing.T) { bothStores(t, testMaxLinks) }

func testMaxLinks(t *testing.T) {
	g := openGraph(t, openJS(t), Config{MaxLinks: 2})
	for i := range 3 {
		observe(t, g, fmt.Sprintf(`{"type":"identify","userId":"bot","anonymousId":"a%d","properties":{"li_fat_id":"L%d"}}`, i, i))
	}
	p, err := g.Show(context.Background(), Key{UserID: "bot"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{AnonymousKey("a0"), AnonymousKey("a1")}; !slices.Equal(p.Links, want) {
		t.Errorf("links %v, want %v", p.Links, want)
	}
	a2, err := g.Show(context.Background(), Key{AnonymousID: "a2"})
	if err == nil && len(a2.Links) > 0 {
		t.Errorf("a2 linked although the user is full: %v", a2.Links)
	}
	// Once a linked anonymous id is gone, the next link prunes it.
	if _, err := g.Delete(context.Background(), Key{AnonymousID: "a0"}); err != nil {
		t.Fatal(err)
	}
	observe(t, g, `{"type":"identify","userId":"bot2","anonymousId":"b0"}`)
	observe(t, g, `{"type":"identify","userId":"bot2","anonymousId":"b1"}`)
	if err := g.purge(context.Background(), AnonymousKey("b0")); err != nil {
		t.Fatal(err)
	}
	observe(t, g, `{"type":"identify","userId":"bot2","anonymousId":"b2"}`)
	p, err = g.Show(context.Background(), Key{UserID: "bot2"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{AnonymousKey("b1"), AnonymousKey("b2")}; !slices.Equal(p.Links, want) {
		t.Errorf("after prune: links %v, want %v", p.Links, want)
	}
}

func TestDelete(t *testing.T) { bothStores(t, testDelete) }

func testDelete(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) *Graph {
		g := newGraph(t)
		observe(t, g, pageA)
		observe(t, g, identAU)
		observe(t, g, `{"type":"identify","userId":"`+userU+`","anonymousId":"phone-1"}`)
		observe(t, g, `{"type":"identify","userId":"former-id","traits":{"email":"x@example.com"}}`)
		observe(t, g, `{"type":"alias","userId":"`+userU+`","previousId":"former-id"}`)
		observe(t, g, `{"type":"group","userId":"`+userU+`","groupId":"org_1"}`)
		// Another person, sharing the phone's browser later.
		observe(t, g, `{"type":"identify","userId":"flatmate","anonymousId":"phone-1","traits":{"email":"f@example.com"}}`)
		observe(t, g, `{"type":"identify","userId":"flatmate","anonymousId":"laptop-f"}`)
		return g
	}
	person := []string{AnonymousKey(anonA), AnonymousKey("phone-1"), UserKey(userU), UserKey("former-id")}
	slices.Sort(person)
	flatmate := []string{AnonymousKey("laptop-f"), UserKey("flatmate")}
	slices.Sort(flatmate)

	for _, k := range []Key{{UserID: userU}, {UserID: "former-id"}, {AnonymousID: anonA}} {
		t.Run(fmt.Sprintf("%+v", k), func(t *testing.T) {
			g := setup(t)
			removed, err := g.Delete(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(removed)
			if !slices.Equal(removed, person) {
				t.Errorf("removed %v\nwant    %v", removed, person)
			}
			if got := keys(t, g); !slices.Equal(got, flatmate) {
				t.Errorf("keys left %v, want only the flatmate's %v", got, flatmate)
			}
			// Not even a marker: the stream holds no message for the person.
			for _, k := range person {
				if st, ok := g.store.(*jsStore); ok {
					if _, err := st.st.GetLastMsgForSubject(ctx, st.subPre+k); !errors.Is(err, jetstream.ErrMsgNotFound) {
						t.Errorf("%s: message left (%v)", k, err)
					}
				} else if s, err := g.store.get(ctx, k); err != nil || s.exists || s.rev != 0 {
					t.Errorf("%s: left in the local store (%+v, %v)", k, s, err)
				}
			}
			fm, err := g.Show(ctx, Key{UserID: "flatmate"})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(fm.Links, []string{AnonymousKey("laptop-f")}) {
				t.Errorf("flatmate links %v", fm.Links)
			}
			if got := enrich(t, g, trackU); got != (Captured{}) {
				t.Errorf("enriched after delete: %+v", got)
			}
			if _, err := g.Delete(ctx, k); !errors.Is(err, ErrNotFound) {
				t.Errorf("second delete: %v", err)
			}
			// The person may come back later: a new profile starts empty.
			observe(t, g, trackU)
			if got := enrich(t, g, trackU); got != (Captured{}) {
				t.Errorf("enriched after return: %+v", got)
			}
		})
	}
	t.Run("bad key", func(t *testing.T) {
		g := newGraph(t)
		for _, k := range []Key{{}, {UserID: "u", AnonymousID: "a"}} {
			if _, err := g.Delete(ctx, k); !errors.Is(err, ErrBadKey) {
				t.Errorf("Delete(%+v) = %v", k, err)
			}
			if _, err := g.Show(ctx, k); !errors.Is(err, ErrBadKey) {
				t.Errorf("Show(%+v) = %v", k, err)
			}
		}
	})
}

func TestShow(t *testing.T) { bothStores(t, testShow) }

func testShow(t *testing.T) {
	ctx := context.Background()
	g := newGraph(t)
	observe(t, g, pageA)
	observe(t, g, identAU)
	observe(t, g, `{"type":"group","userId":"`+userU+`","groupId":"org_98765"}`)
	p, err := g.Show(ctx, Key{UserID: userU})
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time { tm, _ := time.Parse(time.RFC3339, s); return tm }
	if p.Key != UserKey(userU) || p.Kind != KindUser || p.LiFatID != "123456" || !p.LiFatIDAt.Equal(at("2026-09-01T10:00:00Z")) ||
		p.EmailSHA256 != emailHash || !p.EmailAt.Equal(at("2026-09-01T10:05:00Z")) ||
		!slices.Equal(p.Links, []string{AnonymousKey(anonA)}) || !slices.Equal(p.Groups, []string{"org_98765"}) {
		t.Errorf("profile %+v", p)
	}
	if p.Created.IsZero() || p.Updated.IsZero() || p.Expires.Sub(p.Updated) != DefaultTTL || p.Revision == 0 {
		t.Errorf("times %+v", p)
	}
	if len(p.Linked) != 1 || p.Linked[0].Kind != KindAnonymous || p.Linked[0].LiFatID != "123456" ||
		!slices.Equal(p.Linked[0].Links, []string{UserKey(userU)}) {
		t.Errorf("linked %+v", p.Linked)
	}
	if _, err := g.Show(ctx, Key{UserID: "nobody"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown: %v", err)
	}
}

// TestEnrichErrorReturnsHave: with the engine gone, Enrich returns what it
// was given.
func TestEnrichErrorReturnsHave(t *testing.T) {
	eng, err := stream.Open(context.Background(), stream.Config{DataDir: t.TempDir()}, discard)
	if err != nil {
		t.Fatal(err)
	}
	g := openGraph(t, eng.JetStream(), Config{})
	eng.Close()
	have := Captured{LiFatID: "own", LiFatIDFrom: "properties.li_fat_id"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if got := g.Enrich(ctx, parse(t, trackU), "", have); got != have {
		t.Errorf("Enrich = %+v, want %+v", got, have)
	}
	if err := g.Observe(ctx, parse(t, identAU), Capture(parse(t, identAU))); err == nil {
		t.Error("Observe on a closed engine: no error")
	}
}

// TestMemo: Enrich right after Observe needs no read; a write by another
// process shows in Enrich within MemoTTL; Delete in this process shows at once.
func TestMemo(t *testing.T) { bothStores(t, testMemo) }

func testMemo(t *testing.T) {
	js := openJS(t)
	g1 := openGraph(t, js, Config{MemoTTL: 50 * time.Millisecond})
	g2 := openGraph(t, js, Config{MemoTTL: -1})
	observe(t, g1, identAU)
	if _, ok := g1.memo.get(UserKey(userU)); !ok {
		t.Error("Observe left nothing in the memo")
	}
	if _, ok := g2.memo.get(UserKey(userU)); ok {
		t.Error("memo off but used")
	}
	if got := enrich(t, g1, trackU); got.Email != emailHash {
		t.Fatalf("Enrich = %+v", got)
	}
	observe(t, g2, `{"type":"track","event":"x","userId":"`+userU+`","properties":{"li_fat_id":"from-g2"}}`)
	eventually(t, 5*time.Second, func() bool { return enrich(t, g1, trackU).LiFatID == "from-g2" })
	if _, err := g1.Delete(context.Background(), Key{UserID: userU}); err != nil {
		t.Fatal(err)
	}
	if got := enrich(t, g1, trackU); got != (Captured{}) {
		t.Errorf("Enrich right after Delete = %+v", got)
	}
}

// TestUnseenKeys: a process that never met a profile (it restarted, or
// another replica wrote it) creates new keys without reading them first;
// when the key existed after all, nothing that was stored is lost.
func TestUnseenKeys(t *testing.T) { bothStores(t, testUnseenKeys) }

func testUnseenKeys(t *testing.T) {
	js := openJS(t)
	g1 := openGraph(t, js, Config{MemoTTL: -1})
	observe(t, g1, pageA) // the browser's click id, known to g1 only

	g2 := openGraph(t, js, Config{MemoTTL: -1})
	if g2.seen.maybe(AnonymousKey(anonA)) {
		t.Fatal("a fresh graph claims to have met the anonymous id")
	}
	// g2 links the user to the browser without having read the browser's
	// profile: the click id still reaches the user.
	observe(t, g2, identAU)
	p, err := g2.Show(context.Background(), Key{UserID: userU})
	if err != nil {
		t.Fatal(err)
	}
	if p.LiFatID != "123456" || p.EmailSHA256 != emailHash {
		t.Errorf("user after identify by an unseeing graph: li_fat_id %q email %q", p.LiFatID, p.EmailSHA256)
	}
	if !slices.Equal(p.Links, []string{AnonymousKey(anonA)}) {
		t.Errorf("user links %v", p.Links)
	}

	// A third process adds a newer click id to the known browser: merged
	// into the stored profile (links kept), and passed on to the user.
	g3 := openGraph(t, js, Config{MemoTTL: -1})
	observe(t, g3, `{"type":"page","anonymousId":"`+anonA+`","timestamp":"2026-09-02T10:00:00.000Z","properties":{"li_fat_id":"777"}}`)
	a, err := g3.Show(context.Background(), Key{AnonymousID: anonA})
	if err != nil {
		t.Fatal(err)
	}
	if a.LiFatID != "777" || !slices.Equal(a.Links, []string{UserKey(userU)}) {
		t.Errorf("browser after a new click id: li_fat_id %q links %v", a.LiFatID, a.Links)
	}
	if got := enrich(t, g3, trackU); got.LiFatID != "777" || got.Email != emailHash {
		t.Errorf("Enrich = %+v", got)
	}
	// Profiles it found or wrote are now known to it.
	for _, k := range []string{AnonymousKey(anonA), UserKey(userU)} {
		if !g3.seen.maybe(k) {
			t.Errorf("%s not recorded as met", k[:10])
		}
	}
}

func TestSeenRotates(t *testing.T) { bothStores(t, testSeenRotates) }

func testSeenRotates(t *testing.T) {
	const gen = 1000
	s := newSeen(gen)
	first := s.cur.Load()
	for i := 0; s.cur.Load() == first; i++ {
		if i == 2*gen {
			t.Fatal("a full generation did not rotate")
		}
		s.add(fmt.Sprint("k", i))
	}
	if s.prev.Load() != first {
		t.Fatal("the full generation was not kept as the previous one")
	}
	if !s.maybe("k0") || !s.maybe(fmt.Sprint("k", gen-1)) {
		t.Error("keys of the previous generation forgotten")
	}
	for i := range 10000 {
		if s.maybe(fmt.Sprint("other", i)) {
			t.Errorf("never-met key other%d reported as met", i) // ~1e-12 with 1000 keys
		}
	}
}

// TestForget: a deletion by another process (the CLI, another replica)
// reaches this process's memo at once, not after the memo's TTL.
func TestForget(t *testing.T) {
	js := openJS(t)
	g1 := openGraph(t, js, Config{MemoTTL: time.Hour})
	observe(t, g1, pageA)
	observe(t, g1, identAU)
	if got := enrich(t, g1, trackU); got.LiFatID != "123456" {
		t.Fatalf("Enrich = %+v", got)
	}
	g2 := openGraph(t, js, Config{MemoTTL: -1})
	if _, err := g2.Delete(context.Background(), Key{UserID: userU}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return enrich(t, g1, trackU) == (Captured{}) })
	// The graph learns the person again from new events.
	observe(t, g1, pageA)
	if got := enrich(t, g1, `{"type":"track","event":"x","anonymousId":"`+anonA+`"}`); got.LiFatID != "123456" {
		t.Errorf("after deletion and a new page view: %+v", got)
	}
}

// TestAsyncBucket: with Config.Async the bucket is an ordinary KV bucket,
// configured exactly as nats.go creates one, but persisted asynchronously;
// a TTL change keeps the persist mode (JetStream refuses to change it).
func TestAsyncBucket(t *testing.T) {
	ctx := context.Background()
	js := openJS(t)
	g := openGraph(t, js, Config{Bucket: "async", Async: true})
	ref, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: "reference", Description: "capstan identity graph: li_fat_id, email SHA-256 and id links",
		History: 1, TTL: DefaultTTL, Storage: jetstream.FileStorage, Replicas: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	config := func(kv jetstream.KeyValue) jetstream.StreamConfig {
		t.Helper()
		st, err := kv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config
	}
	got, want := config(g.store.(*jsStore).kv), config(ref)
	if got.PersistMode != jetstream.AsyncPersistMode {
		t.Errorf("persist mode %v", got.PersistMode)
	}
	// The server notes in Metadata the API level async persistence needs.
	got.Name, got.Subjects, got.PersistMode, got.Metadata = want.Name, want.Subjects, want.PersistMode, want.Metadata
	if !reflect.DeepEqual(got, want) {
		t.Errorf("async bucket config differs from nats.go's:\n got %+v\nwant %+v", got, want)
	}

	observe(t, g, pageA)
	observe(t, g, identAU)
	if got := enrich(t, g, trackU); got.LiFatID != "123456" || got.Email != emailHash {
		t.Errorf("Enrich = %+v", got)
	}

	g = openGraph(t, js, Config{Bucket: "async", Async: true, TTL: 30 * 24 * time.Hour})
	if c := config(g.store.(*jsStore).kv); c.MaxAge != 30*24*time.Hour || c.PersistMode != jetstream.AsyncPersistMode {
		t.Errorf("after a TTL change: max age %s, persist mode %v", c.MaxAge, c.PersistMode)
	}
	if got := enrich(t, g, trackU); got.LiFatID != "123456" {
		t.Errorf("Enrich after reopening = %+v", got)
	}
}

// TestObserveAll: observing a chunk of events at once leaves the graph as
// observing them one by one does, whether their ids are new, repeated in
// the chunk, linked, aliased, or already stored by another process.
func TestObserveAll(t *testing.T) { bothStores(t, testObserveAll) }

// TestObserveAllGivenKeys: the Keys a caller gives are the ones used, not
// computed again (delivery computes them once per event for ObserveAll and
// EnrichKeys). Given another browser's keys, the click id lands on that
// browser's profile, which a graph recomputing them would not do.
func TestObserveAllGivenKeys(t *testing.T) { bothStores(t, testObserveAllGivenKeys) }

func testObserveAllGivenKeys(t *testing.T) {
	ctx := context.Background()
	g := openGraph(t, openJS(t), Config{})
	ev := parse(t, `{"type":"page","anonymousId":"a-1","timestamp":"2026-09-01T10:00:00.000Z","properties":{"li_fat_id":"L1"}}`)
	other := KeysOf(parse(t, `{"type":"page","anonymousId":"a-2"}`))
	for i, err := range g.ObserveAll(ctx, []Observation{{Event: ev, Captured: Capture(ev), Trusted: true, Keys: other}}) {
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	if p, err := g.Show(ctx, Key{AnonymousID: "a-2"}); err != nil || p.LiFatID != "L1" {
		t.Errorf("the given keys' profile: %+v, %v; want li_fat_id L1", p, err)
	}
	if p, err := g.Show(ctx, Key{AnonymousID: "a-1"}); err == nil && p.LiFatID != "" {
		t.Errorf("the event's own keys were used: %+v", p)
	}
}

func testObserveAll(t *testing.T) {
	ctx := context.Background()
	js := openJS(t)
	var evs []string
	for i := range 12 {
		ts := fmt.Sprintf("2026-09-01T10:%02d:00.000Z", i)
		evs = append(evs,
			fmt.Sprintf(`{"type":"page","anonymousId":"new-%d","timestamp":"%s","properties":{"li_fat_id":"L%d"}}`, i, ts, i),
			fmt.Sprintf(`{"type":"track","event":"x","userId":"u-%d","timestamp":"%s","traits":{"email":"u%d@example.com"}}`, i%4, ts, i),
		)
		if i%3 == 0 {
			evs = append(evs, fmt.Sprintf(`{"type":"identify","userId":"u-%d","anonymousId":"new-%d","timestamp":"%s"}`, i%4, i, ts))
		}
	}
	evs = append(evs,
		`{"type":"page","anonymousId":"new-1","timestamp":"2026-09-01T11:00:00.000Z","properties":{"li_fat_id":"again"}}`,
		`{"type":"page","anonymousId":"stored","timestamp":"2026-09-01T09:00:00.000Z","properties":{"li_fat_id":"S2"}}`,
		`{"type":"alias","previousId":"u-3","userId":"u-merged","timestamp":"2026-09-01T12:00:00.000Z"}`,
		`{"type":"group","userId":"u-2","groupId":"org_1"}`,
		`{"type":"page","anonymousId":"quiet"}`,
		// New users with new browsers, and pairs of which one side is stored.
		`{"type":"identify","userId":"pair-u-0","anonymousId":"pair-a-0","timestamp":"2026-09-01T13:00:00.000Z","traits":{"email":"p0@example.com"},"properties":{"li_fat_id":"P0"}}`,
		`{"type":"identify","userId":"pair-u-1","anonymousId":"pair-a-1","timestamp":"2026-09-01T13:00:00.000Z"}`,
		`{"type":"track","event":"x","userId":"pair-u-1","anonymousId":"pair-a-1","timestamp":"2026-09-01T13:01:00.000Z","properties":{"li_fat_id":"P1"}}`,
		`{"type":"identify","userId":"pair-u-s","anonymousId":"pair-a-stored","timestamp":"2026-09-01T13:00:00.000Z","traits":{"email":"ps@example.com"}}`,
		`{"type":"identify","userId":"pair-u-old","anonymousId":"pair-a-new","timestamp":"2026-09-01T13:00:00.000Z","properties":{"li_fat_id":"PN"}}`,
	)
	one, all := openGraph(t, js, Config{Bucket: "one"}), openGraph(t, js, Config{Bucket: "all"})
	// A profile another process stored: unknown to both graphs.
	for _, b := range []string{"one", "all"} {
		other := openGraph(t, js, Config{Bucket: b})
		observe(t, other, `{"type":"identify","userId":"u-9","anonymousId":"stored","timestamp":"2026-09-01T08:00:00.000Z","properties":{"li_fat_id":"S1"},"traits":{"email":"s@example.com"}}`)
		observe(t, other, `{"type":"page","anonymousId":"pair-a-stored","timestamp":"2026-09-01T08:00:00.000Z","properties":{"li_fat_id":"PS"}}`)
		observe(t, other, `{"type":"track","event":"x","userId":"pair-u-old","timestamp":"2026-09-01T08:00:00.000Z","traits":{"email":"old@example.com"}}`)
	}
	var obs []Observation
	for _, s := range evs {
		observe(t, one, s)
		ev := parse(t, s)
		o := Observation{Event: ev, Captured: Capture(ev), Trusted: true}
		if len(obs)%2 == 1 {
			o.Keys = KeysOf(ev) // given by the caller, as delivery does
		}
		obs = append(obs, o)
	}
	for i, err := range all.ObserveAll(ctx, obs) {
		if err != nil {
			t.Errorf("event %d: %v", i, err)
		}
	}
	norm := func(p Profile) Profile {
		p.Created, p.Updated, p.Expires, p.Revision, p.Linked = time.Time{}, time.Time{}, time.Time{}, 0, nil
		slices.Sort(p.Links)
		return p
	}
	keys := []Key{{UserID: "u-9"}, {AnonymousID: "stored"}, {UserID: "u-merged"}, {AnonymousID: "quiet"},
		{UserID: "pair-u-0"}, {AnonymousID: "pair-a-0"}, {UserID: "pair-u-1"}, {AnonymousID: "pair-a-1"},
		{UserID: "pair-u-s"}, {AnonymousID: "pair-a-stored"}, {UserID: "pair-u-old"}, {AnonymousID: "pair-a-new"}}
	for i := range 12 {
		keys = append(keys, Key{AnonymousID: fmt.Sprint("new-", i)}, Key{UserID: fmt.Sprint("u-", i%4)})
	}
	for _, k := range keys {
		want, werr := one.Show(ctx, k)
		got, gerr := all.Show(ctx, k)
		if !errors.Is(gerr, werr) && (gerr == nil) != (werr == nil) {
			t.Errorf("%+v: error %v, one by one %v", k, gerr, werr)
			continue
		}
		if !reflect.DeepEqual(norm(got), norm(want)) {
			t.Errorf("%+v:\n got %+v\nwant %+v", k, norm(got), norm(want))
		}
	}
	if p, err := all.Show(ctx, Key{AnonymousID: "stored"}); err != nil || p.LiFatID != "S2" || len(p.Links) != 1 {
		t.Errorf("the stored profile was not merged: %+v %v", p, err)
	}
	// A stored browser's click id reaches its new user; a stored user keeps
	// its email and gains the new browser's click id.
	if p, err := all.Show(ctx, Key{UserID: "pair-u-s"}); err != nil || p.LiFatID != "PS" || p.EmailSHA256 == "" {
		t.Errorf("new user of a stored browser: %+v %v", p, err)
	}
	if p, err := all.Show(ctx, Key{UserID: "pair-u-old"}); err != nil || p.LiFatID != "PN" || p.EmailSHA256 != must(hashEmail("old@example.com")) {
		t.Errorf("stored user of a new browser: %+v %v", p, err)
	}
}

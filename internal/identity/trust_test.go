package identity

import (
	"context"
	"slices"
	"testing"
	"time"
)

// Sources of the trust tests: a browser source (public write key) and a
// server source.
const (
	website = "website"
	backend = "backend"
)

// observeAs observes events through ObserveAll, as delivery does, as sent
// by source with the given trust.
func observeAs(t testing.TB, g *Graph, source string, trusted bool, evs ...string) {
	t.Helper()
	var obs []Observation
	for _, s := range evs {
		ev := parse(t, s)
		obs = append(obs, Observation{Event: ev, Captured: Capture(ev), Source: source, Trusted: trusted})
	}
	for i, err := range g.ObserveAll(context.Background(), obs) {
		if err != nil {
			t.Fatalf("observe %s: %v", evs[i], err)
		}
	}
}

// enrichAs enriches the conversion of an event of source.
func enrichAs(t testing.TB, g *Graph, source, s string) Captured {
	t.Helper()
	ev := parse(t, s)
	return g.Enrich(context.Background(), ev, source, Capture(ev))
}

const (
	victim = "victim_42"
	// The attack: with the website's public write key only, an
	// identify links the attacker's email and click id to the victim's
	// userId.
	poison = `{"type":"identify","userId":"` + victim + `","timestamp":"2026-09-02T10:00:00.000Z","traits":{"email":"attacker@evil.example"},"context":{"li_fat_id":"ATTACKER-LFI-1"}}`
	// The back end's later Sign Up for that user, with its own email.
	signUpVictim = `{"type":"track","event":"Sign Up","userId":"` + victim + `","timestamp":"2026-09-03T10:00:00.000Z","context":{"traits":{"email":"victim@example.com"}}}`
	signUpBare   = `{"type":"track","event":"Sign Up","userId":"` + victim + `","timestamp":"2026-09-03T10:00:00.000Z"}`
)

// TestUnverifiedBrowserLinks is the regression test of issue 17: what a
// browser source's unverified events link to a userId enriches that
// source's own conversions only; verified (or server) links enrich all.
func TestUnverifiedBrowserLinks(t *testing.T) { bothStores(t, testUnverifiedBrowserLinks) }

func testUnverifiedBrowserLinks(t *testing.T) {
	attacker := Captured{LiFatID: "ATTACKER-LFI-1", LiFatIDFrom: FromUser, Email: must(hashEmail("attacker@evil.example")), EmailFrom: FromUser}
	tests := []struct {
		name    string
		source  string // of the poisoning events
		trusted bool
		events  []string
		// what a server Sign Up with only the userId, and the browser
		// source's own, get from the graph
		server, own Captured
	}{
		{
			name: "unverified identify", source: website, events: []string{poison},
			server: Captured{}, own: attacker,
		},
		{
			name: "verified identify", source: website, trusted: true, events: []string{poison},
			server: attacker, own: attacker,
		},
		{
			name: "server identify", source: backend, trusted: true, events: []string{poison},
			server: attacker, own: attacker,
		},
		{
			// The click id lands on the attacker's own anonymous id; the
			// unverified identify links that browser to the victim.
			name: "unverified link to an anonymous id", source: website,
			events: []string{
				`{"type":"page","anonymousId":"attacker-browser","timestamp":"2026-09-01T10:00:00.000Z","properties":{"li_fat_id":"ATTACKER-LFI-1"}}`,
				`{"type":"identify","userId":"` + victim + `","anonymousId":"attacker-browser","timestamp":"2026-09-02T10:00:00.000Z","traits":{"email":"attacker@evil.example"}}`,
			},
			server: Captured{}, own: attacker,
		},
		{
			name: "unverified track with ids", source: website,
			events: []string{`{"type":"track","event":"Viewed","userId":"` + victim + `","anonymousId":"attacker-browser","timestamp":"2026-09-02T10:00:00.000Z","properties":{"li_fat_id":"ATTACKER-LFI-1"},"context":{"traits":{"email":"attacker@evil.example"}}}`},
			server: Captured{}, own: attacker,
		},
		{
			name: "untrusted event without a source", source: "", events: []string{poison},
			server: Captured{}, own: Captured{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGraph(t)
			observeAs(t, g, tt.source, tt.trusted, tt.events...)
			if got := enrichAs(t, g, backend, signUpBare); got != tt.server {
				t.Errorf("server Sign Up enriched with %+v\nwant %+v", got, tt.server)
			}
			if got := enrichAs(t, g, "", signUpBare); got != tt.server {
				t.Errorf("Sign Up of no source enriched with %+v\nwant %+v", got, tt.server)
			}
			if got := enrichAs(t, g, website, signUpBare); got != tt.own {
				t.Errorf("the browser source's own Sign Up enriched with %+v\nwant %+v", got, tt.own)
			}
			// The server's Sign Up with its own email gets no click id.
			got := enrichAs(t, g, backend, signUpVictim)
			if want := tt.server.LiFatID; got.LiFatID != want || got.Email != "victim@example.com" {
				t.Errorf("server Sign Up with its email enriched with %+v, want li_fat_id %q", got, want)
			}
		})
	}
}

// TestUnverifiedKeepsTrusted: an unverified identify cannot replace what
// trusted events linked to a user, for other sources, even when newer; the
// browser source sees the newer of both.
func TestUnverifiedKeepsTrusted(t *testing.T) { bothStores(t, testUnverifiedKeepsTrusted) }

func testUnverifiedKeepsTrusted(t *testing.T) {
	g := newGraph(t)
	observeAs(t, g, backend, true, `{"type":"identify","userId":"`+victim+`","anonymousId":"real-browser","timestamp":"2026-09-01T10:00:00.000Z","traits":{"email":"victim@example.com"},"properties":{"li_fat_id":"REAL-LFI"}}`)
	observeAs(t, g, website, false, poison)
	real := Captured{LiFatID: "REAL-LFI", LiFatIDFrom: FromUser, Email: must(hashEmail("victim@example.com")), EmailFrom: FromUser}
	if got := enrichAs(t, g, backend, signUpBare); got != real {
		t.Errorf("server Sign Up enriched with %+v\nwant %+v", got, real)
	}
	if got := enrichAs(t, g, website, signUpBare); got.LiFatID != "ATTACKER-LFI-1" {
		t.Errorf("the browser source's own Sign Up enriched with %+v, want its newer click id", got)
	}
	// A later verified identify makes the browser's link trusted.
	observeAs(t, g, website, true, `{"type":"identify","userId":"`+victim+`","anonymousId":"real-browser","timestamp":"2026-09-04T10:00:00.000Z","properties":{"li_fat_id":"NEWER-LFI"}}`)
	if got := enrichAs(t, g, backend, signUpBare); got.LiFatID != "NEWER-LFI" || got.Email != real.Email {
		t.Errorf("after a verified identify the server Sign Up got %+v", got)
	}
}

// TestUnverifiedAlias: an unverified alias of the victim's userId into the
// attacker's does not send the attacker's identifiers to the victim's
// server conversions.
func TestUnverifiedAlias(t *testing.T) { bothStores(t, testUnverifiedAlias) }

func testUnverifiedAlias(t *testing.T) {
	for _, oneByOne := range []bool{false, true} {
		g := newGraph(t)
		observeAs(t, g, backend, true,
			`{"type":"group","userId":"`+victim+`","groupId":"org_v","timestamp":"2026-09-01T09:00:00.000Z"}`,
			`{"type":"identify","userId":"attacker","timestamp":"2026-09-01T10:00:00.000Z","traits":{"email":"attacker@evil.example"},"properties":{"li_fat_id":"ATTACKER-LFI-1"}}`)
		alias := `{"type":"alias","previousId":"` + victim + `","userId":"attacker","timestamp":"2026-09-02T10:00:00.000Z"}`
		if oneByOne {
			ev := parse(t, alias)
			if err := g.observe(context.Background(), ev, eventIDs(ev), Capture(ev), website); err != nil {
				t.Fatal(err)
			}
		} else {
			observeAs(t, g, website, false, alias)
		}
		if got := enrichAs(t, g, backend, signUpBare); got != (Captured{}) {
			t.Errorf("server Sign Up of the aliased victim enriched with %+v, want nothing", got)
		}
		if got := enrichAs(t, g, website, signUpBare); got.LiFatID != "ATTACKER-LFI-1" || got.LiFatIDFrom != FromAliasOfUser {
			t.Errorf("the browser source's own Sign Up got %+v, want the alias followed", got)
		}
	}
}

// TestOldProfilesTrusted: profiles stored before trust existed (no scoped
// part, "first" always written) stay trusted and keep working.
func TestOldProfilesTrusted(t *testing.T) { bothStores(t, testOldProfilesTrusted) }

func testOldProfilesTrusted(t *testing.T) {
	ctx := context.Background()
	g := newGraph(t)
	old := `{"lfi":"OLD-LFI","lfiAt":1788000000000,"emailSha256":"` + must(hashEmail("old@example.com")) + `","emailAt":1788000000000,"links":["` + AnonymousKey("old-browser") + `"],"first":1788000000000}`
	if _, err := g.store.put(ctx, UserKey(victim), []byte(old), 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	want := Captured{LiFatID: "OLD-LFI", LiFatIDFrom: FromUser, Email: must(hashEmail("old@example.com")), EmailFrom: FromUser}
	for _, src := range []string{backend, website, ""} {
		if got := enrichAs(t, g, src, signUpBare); got != want {
			t.Errorf("source %q: Enrich = %+v\nwant %+v", src, got, want)
		}
	}
	observeAs(t, g, website, false, poison)
	if got := enrichAs(t, g, backend, signUpBare); got != want {
		t.Errorf("after an unverified identify, server Enrich = %+v\nwant %+v", got, want)
	}
	p, err := g.Show(ctx, Key{UserID: victim})
	if err != nil {
		t.Fatal(err)
	}
	u, ok := p.Unverified[website]
	if p.LiFatID != "OLD-LFI" || !ok || u.LiFatID != "ATTACKER-LFI-1" || u.EmailSHA256 != must(hashEmail("attacker@evil.example")) {
		t.Errorf("Show = %+v", p)
	}
}

// TestDeleteUnverifiedLinks: a privacy deletion follows unverified links
// too, and Show lists them.
func TestDeleteUnverifiedLinks(t *testing.T) { bothStores(t, testDeleteUnverifiedLinks) }

func testDeleteUnverifiedLinks(t *testing.T) {
	ctx := context.Background()
	g := newGraph(t)
	observeAs(t, g, website, false,
		`{"type":"page","anonymousId":"b1","timestamp":"2026-09-01T10:00:00.000Z","properties":{"li_fat_id":"L1"}}`,
		`{"type":"identify","userId":"`+victim+`","anonymousId":"b1","timestamp":"2026-09-02T10:00:00.000Z"}`)
	p, err := g.Show(ctx, Key{UserID: victim})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Links) != 0 || !slices.Equal(p.Unverified[website].Links, []string{AnonymousKey("b1")}) || len(p.Linked) != 1 {
		t.Errorf("Show = %+v", p)
	}
	removed, err := g.Delete(ctx, Key{AnonymousID: "b1"})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	want := []string{AnonymousKey("b1"), UserKey(victim)}
	slices.Sort(want)
	if !slices.Equal(removed, want) {
		t.Errorf("Delete removed %v, want %v", removed, want)
	}
	if ks := keys(t, g); len(ks) != 0 {
		t.Errorf("keys left: %v", ks)
	}
}

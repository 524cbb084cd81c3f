package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	body429Minute = `{"status":429,"serviceErrorCode":101,"code":"TOO_MANY_REQUESTS","message":"Resource level throttle limit for calls to this resource is reached."}`
	body429Day    = `{"status":429,"serviceErrorCode":101,"code":"TOO_MANY_REQUESTS","message":"Resource level throttle APPLICATION_AND_MEMBER DAY limit for calls to this resource is reached."}`
)

func TestRateLimitPerMinute(t *testing.T) {
	h := newHarness(t, Config{RatePerMinute: 3})
	h.clock.Set(specNow.Add(30 * time.Second))
	wantStatus(t, h.sendEvent(tok, ev("a")), 201)
	wantStatus(t, h.sendBatch(tok, ev("b"), ev("c")), 200) // a batch is one request
	wantStatus(t, h.sendEvent(tok, `{}`), 422)             // invalid requests count too
	r := h.sendEvent(tok, ev("d"))
	wantStatus(t, r, 429)
	wantBody(t, r, body429Minute)
	if r.header.Get("Retry-After") != "" {
		t.Errorf("Retry-After sent by default: %q", r.header.Get("Retry-After"))
	}
	// Other tokens have their own quota; unauthenticated requests are not counted.
	wantStatus(t, h.sendEvent("nope", ev("x")), 401)
	if err := h.srv.AddToken(TokenSpec{Token: "second"}); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, h.sendEvent("second", ev("e")), 201)
	// The window is the UTC minute: at :59.999 still limited, at :00 free.
	h.clock.Set(specNow.Add(59*time.Second + 999*time.Millisecond))
	wantStatus(t, h.sendEvent(tok, ev("f")), 429)
	h.clock.Set(specNow.Add(time.Minute))
	wantStatus(t, h.sendEvent(tok, ev("g")), 201)
	c := h.srv.Counters()
	if c.RateLimited != 2 || c.Accepted != 5 {
		t.Errorf("counters %+v", c)
	}
}

func TestRateLimitRetryAfter(t *testing.T) {
	h := newHarness(t, Config{RatePerMinute: 1, SendRetryAfter: true})
	h.clock.Set(specNow.Add(45*time.Second + 500*time.Millisecond))
	wantStatus(t, h.sendEvent(tok, ev("a")), 201)
	r := h.sendEvent(tok, ev("b"))
	wantStatus(t, r, 429)
	if got := r.header.Get("Retry-After"); got != "15" {
		t.Errorf("Retry-After = %q, want 15", got)
	}
}

func TestRateLimitPerDay(t *testing.T) {
	h := newHarness(t, Config{RatePerDay: 2, SendRetryAfter: true})
	h.clock.Set(specNow.Add(23 * time.Hour))
	wantStatus(t, h.sendEvent(tok, ev("a")), 201)
	h.clock.Advance(time.Minute)
	wantStatus(t, h.sendEvent(tok, ev("b")), 201)
	h.clock.Advance(time.Minute)
	r := h.sendEvent(tok, ev("c"))
	wantStatus(t, r, 429)
	wantBody(t, r, body429Day)
	if got := r.header.Get("Retry-After"); got != "3480" {
		t.Errorf("Retry-After = %q, want 3480 (to 00:00 UTC)", got)
	}
	h.clock.Set(specNow.Add(24 * time.Hour))
	wantStatus(t, h.sendEvent(tok, ev("d")), 201)
}

func TestRateLimitOtherEndpoints(t *testing.T) {
	h := newHarness(t, Config{OtherRatePerMinute: 2, RatePerMinute: 1})
	wantStatus(t, h.do("GET", "/rest/me", restHeaders(tok), ""), 200)
	wantStatus(t, h.do("GET", "/rest/adAccountUsers?q=authenticatedUser", restHeaders(tok), ""), 200)
	r := h.do("GET", "/rest/me", restHeaders(tok), "")
	wantStatus(t, r, 429)
	wantBody(t, r, body429Minute)
	// conversionEvents has its own quota.
	wantStatus(t, h.sendEvent(tok, ev("a")), 201)
	wantStatus(t, h.sendEvent(tok, ev("b")), 429)
	// Unlimited when negative.
	h2 := newHarness(t, Config{OtherRatePerMinute: -1})
	for range 150 {
		wantStatus(t, h2.do("GET", "/rest/me", restHeaders(tok), ""), 200)
	}
}

func TestDedup(t *testing.T) {
	h := newHarness(t, Config{})
	wantStatus(t, h.sendEvent(tok, ev("order-1")), 201)
	wantStatus(t, h.sendEvent(tok, ev("order-1")), 201) // a resend: accepted, counted once
	wantStatus(t, h.sendBatch(tok, ev("order-2"), ev("order-2"), ev("")), 200)
	wantStatus(t, h.sendEvent(tok, ev("")), 201) // no eventId: never de-duplicated
	// Same eventId, another rule: a different conversion.
	body := `{"name":"R","account":"urn:li:sponsoredAccount:508747394","conversionMethod":"CONVERSIONS_API","type":"LEAD"}`
	r := h.do("POST", "/rest/conversions", restHeaders(tok), body)
	wantStatus(t, r, 201)
	wantStatus(t, h.sendEvent(tok, strings.Replace(ev("order-1"), "22833300", r.header.Get("x-restli-id"), 1)), 201)
	if got := len(h.conversions("")); got != 5 {
		t.Errorf("%d conversions, want 5", got)
	}
	if got := len(h.conversions("?event_id=order-1&rule=22833300")); got != 1 {
		t.Errorf("order-1 on rule 22833300 listed %d times", got)
	}
	recs := h.srv.Conversions(ConversionFilter{EventID: "order-1", Rule: 22833300, Duplicates: true})
	if len(recs) != 2 || recs[1].DuplicateOf != recs[0].Seq {
		t.Errorf("records %+v", recs)
	}
	c := h.srv.Counters()
	if c.Accepted != 5 || c.Deduplicated != 2 {
		t.Errorf("counters %+v", c)
	}
	// After the window a repeat counts again.
	h.clock.Advance(DefaultDedupWindow)
	wantStatus(t, h.sendEvent(tok, ev("order-1")), 201)
	if got := len(h.conversions("?event_id=order-1&rule=22833300")); got != 2 {
		t.Errorf("after the window: %d", got)
	}
}

func TestRetentionAndDedupBound(t *testing.T) {
	h := newHarness(t, Config{MaxConversions: 3, MaxDedupKeys: 2})
	for i := range 5 {
		wantStatus(t, h.sendEvent(tok, ev(fmt.Sprint("e", i))), 201)
	}
	got := h.srv.Conversions(ConversionFilter{})
	if len(got) != 3 || got[0].EventID != "e2" || got[2].EventID != "e4" {
		t.Fatalf("kept %+v", got)
	}
	if c := h.srv.Counters(); c.Evicted != 2 {
		t.Errorf("evicted %d", c.Evicted)
	}
	// e2 fell out of the 2-key dedup set, e4 did not.
	wantStatus(t, h.sendEvent(tok, ev("e2")), 201)
	wantStatus(t, h.sendEvent(tok, ev("e4")), 201)
	if c := h.srv.Counters(); c.Deduplicated != 1 || c.Accepted != 6 {
		t.Errorf("counters %+v", c)
	}
	// Many keys keep the set bounded.
	cs := newConversionStore(10, 100, time.Hour)
	for i := range 10000 {
		cs.add(Conversion{Rule: 1, EventID: fmt.Sprint(i)}, specNow)
	}
	if len(cs.dedup) != 100 || len(cs.dedupQueue)-cs.dedupStart > 4*100+1024 || cs.len() != 10 {
		t.Errorf("dedup %d, queue %d, kept %d", len(cs.dedup), len(cs.dedupQueue)-cs.dedupStart, cs.len())
	}
}

// TestDedupSetModel checks the de-duplication set against a plain model
// (the dedupMax keys remembered last, each with the time it was remembered),
// with keys remembered again after the window: the refs they leave behind
// are stale, and eviction must tell them from live ones. With fewer keys
// than the set holds, nothing is evicted and the stale refs are dropped by
// the queue's compaction.
func TestDedupSetModel(t *testing.T) {
	const maxKeys, window = 10, 5 * time.Second
	for _, tc := range []struct {
		pool  int
		fresh bool // every 7th event has a new eventId
	}{{15, true}, {5, false}} {
		rng := rand.New(rand.NewPCG(1, 2))
		cs := newConversionStore(1000, maxKeys, window)
		type seen struct {
			key string
			at  time.Time
		}
		var model []seen // remember order, one per key, newest last
		now := specNow
		maxStale, shrinks, lastLen := 0, 0, 0
		for i := range 50_000 {
			now = now.Add(time.Duration(rng.IntN(1500)) * time.Millisecond)
			key := strconv.Itoa(rng.IntN(tc.pool))
			if tc.fresh && i%7 == 0 {
				key = "n" + strconv.Itoa(i)
			}
			j := slices.IndexFunc(model, func(s seen) bool { return s.key == key })
			wantDup := j >= 0 && now.Sub(model[j].at) < window
			if !wantDup {
				if j >= 0 {
					model = slices.Delete(model, j, j+1)
				}
				model = append(model, seen{key, now})
				if len(model) > maxKeys {
					model = model[len(model)-maxKeys:]
				}
			}
			if dup := cs.add(Conversion{Rule: 1, EventID: key}, now); dup != wantDup {
				t.Fatalf("pool %d op %d: key %s dup %v, want %v", tc.pool, i, key, dup, wantDup)
			}
			if len(cs.dedup) != len(model) {
				t.Fatalf("pool %d op %d: set of %d keys, want %d", tc.pool, i, len(cs.dedup), len(model))
			}
			maxStale = max(maxStale, cs.dedupStale)
			if len(cs.dedupQueue) < lastLen {
				shrinks++
			}
			lastLen = len(cs.dedupQueue)
			if i%10 != 0 {
				continue
			}
			stale := 0
			for _, ref := range cs.dedupQueue[cs.dedupStart:] {
				if cs.dedup[ref.key].gen != ref.gen {
					stale++
				}
			}
			if stale != cs.dedupStale {
				t.Fatalf("pool %d op %d: %d stale refs, counted %d", tc.pool, i, stale, cs.dedupStale)
			}
		}
		if maxStale == 0 || shrinks == 0 {
			t.Errorf("pool %d: at most %d stale refs, queue compacted %d times: the test misses a case", tc.pool, maxStale, shrinks)
		}
	}
}

func TestSandboxConversionsFilters(t *testing.T) {
	h := newHarness(t, Config{})
	wantStatus(t, h.sendEvent(tok, ev("a")), 201)
	h.clock.Advance(time.Minute)
	wantStatus(t, h.sendEvent(tok, strings.Replace(ev("b"), "urn:lla:", "urn:li:", 1)), 201)
	since := specNow.Add(time.Minute).UnixMilli()
	if got := h.conversions(fmt.Sprint("?since=", since)); len(got) != 1 || !strings.Contains(string(got[0]), `"b"`) {
		t.Errorf("since: %s", got)
	}
	if got := h.conversions("?since=" + url.QueryEscape(specNow.Add(30*time.Second).Format(time.RFC3339))); len(got) != 1 {
		t.Errorf("since RFC 3339: %d", len(got))
	}
	if got := h.conversions("?rule=urn%3Alla%3AllaPartnerConversion%3A22833300"); len(got) != 2 {
		t.Errorf("rule by URN: %d", len(got))
	}
	if got := h.conversions("?rule=1"); len(got) != 0 {
		t.Errorf("rule 1: %d", len(got))
	}
	if r := h.do("GET", "/_sandbox/conversions?since=yesterday", nil, ""); r.status != 400 {
		t.Errorf("bad since: %d", r.status)
	}
	// Records carry the metadata.
	r := h.do("GET", "/_sandbox/records?event_id=b", nil, "")
	for _, frag := range []string{`"rule":22833300`, `"account":508747394`, `"token":"test-token"`, `"version":"202609"`, `"received_at":1767225660000`} {
		if !strings.Contains(r.body, frag) {
			t.Errorf("record %s lacks %s", r.body, frag)
		}
	}
}

func TestTokenLifetime(t *testing.T) {
	h := newHarness(t, Config{})
	wantStatus(t, h.sendEvent(tok, ev("a")), 201)
	h.clock.Advance(AccessTokenTTL - time.Millisecond)
	wantStatus(t, h.do("GET", "/rest/me", restHeaders(tok), ""), 200)
	h.clock.Advance(time.Millisecond)
	r := h.sendEvent(tok, ev("b"))
	wantStatus(t, r, 401)
	wantBody(t, r, bodyExpiredTok)
}

func TestExpireAndRevoke(t *testing.T) {
	h := newHarness(t, Config{})
	r := h.do("POST", "/_sandbox/tokens", nil, `{"refresh":true}`)
	wantStatus(t, r, 201)
	var nt struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal([]byte(r.body), &nt); err != nil || nt.AccessToken == "" || nt.RefreshToken == "" {
		t.Fatalf("new token %s: %v", r.body, err)
	}
	wantStatus(t, h.sendEvent(nt.AccessToken, ev("a")), 201)
	wantStatus(t, h.do("POST", "/_sandbox/tokens/"+nt.AccessToken+"/expire", nil, ""), 204)
	wantBody(t, h.sendEvent(nt.AccessToken, ev("b")), bodyExpiredTok)
	wantStatus(t, h.do("POST", "/_sandbox/tokens/"+tok+"/revoke", nil, ""), 204)
	wantBody(t, h.sendEvent(tok, ev("c")), bodyRevokedTok)
	wantStatus(t, h.do("POST", "/_sandbox/tokens/nope/revoke", nil, ""), 404)
	r = h.do("GET", "/_sandbox/tokens", nil, "")
	if !strings.Contains(r.body, `"token":"test-token","kind":"access","member":"Xy12AbCd","scopes":["r_ads","rw_conversions"],"issued_at":1767225600000,"expires_at":1772409600000,"status":"revoked"`) {
		t.Errorf("tokens %s", r.body)
	}
	// Reset restores the seed tokens and drops the added one.
	wantStatus(t, h.do("POST", "/_sandbox/reset", nil, ""), 204)
	wantStatus(t, h.sendEvent(tok, ev("d")), 201)
	wantBody(t, h.sendEvent(nt.AccessToken, ev("e")), bodyInvalidTok)
	if got := len(h.conversions("")); got != 1 {
		t.Errorf("after reset %d conversions", got)
	}
}

func (h *harness) form(path, form string) resp {
	h.t.Helper()
	return h.do("POST", path, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, form)
}

func TestOAuthRefresh(t *testing.T) {
	const client = "&client_id=sandbox-client&client_secret=sandbox-secret"
	tests := []struct {
		name   string
		cfg    Config
		form   string
		status int
		want   string
	}{
		{name: "missing refresh token", form: "grant_type=refresh_token" + client, status: 400,
			want: `{"error":"invalid_request","error_description":"A required parameter \"refresh_token\" is missing"}`},
		{name: "missing grant type", form: "refresh_token=test-refresh" + client, status: 400,
			want: `{"error":"unsupported_grant_type","error_description":"The provided grant_type is not supported"}`},
		{name: "bad grant type", form: "grant_type=password&refresh_token=test-refresh" + client, status: 400,
			want: `{"error":"unsupported_grant_type","error_description":"The provided grant_type is not supported"}`},
		{name: "wrong secret", form: "grant_type=refresh_token&refresh_token=test-refresh&client_id=sandbox-client&client_secret=x", status: 401,
			want: `{"error":"invalid_client","error_description":"Client authentication failed"}`},
		{name: "unknown refresh token", form: "grant_type=refresh_token&refresh_token=nope" + client, status: 400,
			want: `{"error":"invalid_request","error_description":"The provided authorization grant or refresh token is invalid, expired or revoked"}`},
		{name: "invalid_grant switch", cfg: Config{OAuthExpiredError: "invalid_grant"}, form: "grant_type=refresh_token&refresh_token=nope" + client, status: 400,
			want: `{"error":"invalid_grant","error_description":"The provided authorization grant or refresh token is invalid, expired or revoked"}`},
		{name: "success, any order", form: "client_secret=sandbox-secret&refresh_token=test-refresh&client_id=sandbox-client&grant_type=refresh_token", status: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.cfg)
			r := h.form("/oauth/v2/accessToken", tc.form)
			wantStatus(t, r, tc.status)
			if tc.want != "" {
				wantBody(t, r, tc.want)
			}
		})
	}
}

func TestOAuthRefreshLifetimes(t *testing.T) {
	for _, rotate := range []bool{false, true} {
		t.Run(fmt.Sprint("rotate=", rotate), func(t *testing.T) {
			h := newHarness(t, Config{RotateRefreshToken: rotate})
			h.clock.Advance(59 * 24 * time.Hour)
			form := "grant_type=refresh_token&refresh_token=test-refresh&client_id=sandbox-client&client_secret=sandbox-secret"
			r := h.form("/oauth/v2/accessToken", form)
			wantStatus(t, r, 200)
			var tr tokenResponse
			if err := json.Unmarshal([]byte(r.body), &tr); err != nil {
				t.Fatal(err)
			}
			if tr.ExpiresIn != 5184000 || tr.RefreshTokenExpiresIn != 26438400 || tr.Scope != "r_ads,rw_conversions" {
				t.Errorf("response %s", r.body)
			}
			if (tr.RefreshToken != "test-refresh") != rotate {
				t.Errorf("refresh token %q with rotate=%v", tr.RefreshToken, rotate)
			}
			if rotate {
				wantStatus(t, h.form("/oauth/v2/accessToken", form), 400) // old string is gone
			}
			// The new access token works for 60 days; the old one expires on day 60.
			wantStatus(t, h.sendEvent(tr.AccessToken, ev("a")), 201)
			h.clock.Advance(24 * time.Hour)
			wantBody(t, h.sendEvent(tok, ev("b")), bodyExpiredTok)
			wantStatus(t, h.sendEvent(tr.AccessToken, ev("c")), 201)
			// The refresh token dies on day 365 whatever the refreshes.
			h.clock.Set(specNow.Add(RefreshTokenTTL))
			r = h.form("/oauth/v2/accessToken", strings.Replace(form, "test-refresh", tr.RefreshToken, 1))
			wantStatus(t, r, 400)
			wantBody(t, r, `{"error":"invalid_request","error_description":"The provided authorization grant or refresh token is invalid, expired or revoked"}`)
		})
	}
}

func TestOAuthCodeFlowAndIntrospection(t *testing.T) {
	h := newHarness(t, Config{})
	// The member already consented: LinkedIn redirects at once (§24.2).
	wantStatus(t, h.do("POST", "/_sandbox/consent", nil, `{"auto_approve":true}`), 204)
	client := h.ts.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := client.Get(h.ts.URL + "/oauth/v2/authorization?response_type=code&client_id=sandbox-client&redirect_uri=https%3A%2F%2Fcapstan.example%2Fcb&state=xyz&scope=r_ads%20rw_conversions")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	loc, err := url.Parse(res.Header.Get("Location"))
	if res.StatusCode != 302 || err != nil || loc.Host != "capstan.example" || loc.Query().Get("state") != "xyz" || loc.Query().Get("code") == "" {
		t.Fatalf("redirect %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	form := "grant_type=authorization_code&code=" + loc.Query().Get("code") + "&redirect_uri=https%3A%2F%2Fcapstan.example%2Fcb&client_id=sandbox-client&client_secret=sandbox-secret"
	r := h.form("/oauth/v2/accessToken", form)
	wantStatus(t, r, 200)
	var tr tokenResponse
	if err := json.Unmarshal([]byte(r.body), &tr); err != nil || tr.RefreshTokenExpiresIn != 31536000 || tr.ExpiresIn != 5184000 {
		t.Fatalf("exchange %s", r.body)
	}
	wantStatus(t, h.form("/oauth/v2/accessToken", form), 400) // a code works once
	wantStatus(t, h.sendEvent(tr.AccessToken, ev("a")), 201)

	intro := func(token string) string {
		return h.form("/oauth/v2/introspectToken", "token="+token+"&client_id=sandbox-client&client_secret=sandbox-secret").body
	}
	if got, want := intro(tr.AccessToken), `{"active":true,"client_id":"sandbox-client","authorized_at":1767225600,"created_at":1767225600,"expires_at":1772409600,"scope":"r_ads,rw_conversions","auth_type":"3L","status":"active"}`; got != want {
		t.Errorf("introspect = %s, want %s", got, want)
	}
	if got := intro("nope"); got != `{"active":false}` {
		t.Errorf("introspect unknown = %s", got)
	}
	h.srv.ExpireToken(tr.AccessToken)
	if got := intro(tr.AccessToken); !strings.Contains(got, `"active":false`) || !strings.Contains(got, `"status":"expired"`) {
		t.Errorf("introspect expired = %s", got)
	}
	wantStatus(t, h.form("/oauth/v2/introspectToken", "client_id=sandbox-client&client_secret=sandbox-secret"), 400)
}

func TestFaults(t *testing.T) {
	t.Run("next N status", func(t *testing.T) {
		h := newHarness(t, Config{})
		r := h.do("POST", "/_sandbox/faults", nil, `{"endpoint":"conversionEvents","next":2,"action":"status","status":503,"retry_after":7}`)
		wantStatus(t, r, 201)
		for range 2 {
			r := h.sendEvent(tok, ev("a"))
			wantStatus(t, r, 503)
			wantBody(t, r, `{"status":503,"code":"SERVICE_UNAVAILABLE","message":"Service Unavailable"}`)
			if r.header.Get("Retry-After") != "7" {
				t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
			}
		}
		wantStatus(t, h.sendEvent(tok, ev("a")), 201)
		if len(h.srv.Faults()) != 0 || len(h.conversions("")) != 1 {
			t.Error("fault not removed or events stored by faulted requests")
		}
	})
	t.Run("every k-th, html and empty bodies", func(t *testing.T) {
		h := newHarness(t, Config{})
		if _, err := h.srv.AddFault(Fault{Every: 3, Action: FaultStatus, Status: 502, Body: "html"}); err != nil {
			t.Fatal(err)
		}
		var statuses []int
		for range 6 {
			statuses = append(statuses, h.sendEvent(tok, ev("")).status)
		}
		if fmt.Sprint(statuses) != "[201 201 502 201 201 502]" {
			t.Errorf("statuses %v", statuses)
		}
		h.srv.RemoveFault("")
		if _, err := h.srv.AddFault(Fault{Next: 1, Action: FaultStatus, Status: 500, Body: "empty"}); err != nil {
			t.Fatal(err)
		}
		r := h.sendEvent(tok, ev(""))
		wantStatus(t, r, 500)
		wantBody(t, r, "")
	})
	t.Run("probability is seeded", func(t *testing.T) {
		share := func() int {
			h := newHarness(t, Config{Seed: 42})
			if _, err := h.srv.AddFault(Fault{Probability: 0.3, Action: FaultStatus, Status: 500}); err != nil {
				t.Fatal(err)
			}
			n := 0
			for range 100 {
				if h.sendEvent(tok, ev("")).status == 500 {
					n++
				}
			}
			return n
		}
		a, b := share(), share()
		if a != b || a < 15 || a > 45 {
			t.Errorf("500s: %d and %d of 100 at p=0.3", a, b)
		}
	})
	t.Run("burst of 429 with DAY", func(t *testing.T) {
		h := newHarness(t, Config{})
		if _, err := h.srv.AddFault(Fault{Next: 3, Action: FaultRateLimit, Day: true}); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			wantBody(t, h.sendEvent(tok, ev("")), body429Day)
		}
		wantStatus(t, h.sendEvent(tok, ev("")), 201)
		if c := h.srv.Counters(); c.FaultsInjected != 3 || c.Rejected.Fault != 3 || c.RateLimited != 0 {
			t.Errorf("counters %+v", c)
		}
	})
	t.Run("401 revoked once for one token", func(t *testing.T) {
		h := newHarness(t, Config{})
		if _, err := h.srv.AddFault(Fault{Token: tok, Next: 1, Action: FaultAuth}); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, h.sendEvent(viewerTok, ev("")), 403) // other token untouched
		wantBody(t, h.sendEvent(tok, ev("")), bodyRevokedTok)
		wantStatus(t, h.sendEvent(tok, ev("")), 201)
	})
	t.Run("token endpoint fails", func(t *testing.T) {
		h := newHarness(t, Config{})
		if _, err := h.srv.AddFault(Fault{Endpoint: "oauth", Next: 1, Action: FaultStatus, Status: 400}); err != nil {
			t.Fatal(err)
		}
		r := h.form("/oauth/v2/accessToken", "grant_type=refresh_token&refresh_token=test-refresh&client_id=sandbox-client&client_secret=sandbox-secret")
		wantStatus(t, r, 400)
		if !strings.Contains(r.body, `"error":"invalid_request"`) {
			t.Errorf("body %s", r.body)
		}
		wantStatus(t, h.sendEvent(tok, ev("")), 201) // other endpoints untouched
	})
	t.Run("delay", func(t *testing.T) {
		h := newHarness(t, Config{})
		if _, err := h.srv.AddFault(Fault{Next: 1, Action: FaultDelay, Delay: Duration(50 * time.Millisecond)}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		wantStatus(t, h.sendEvent(tok, ev("")), 201)
		if d := time.Since(start); d < 50*time.Millisecond {
			t.Errorf("answered after %s", d)
		}
	})
	t.Run("hang until the client gives up", func(t *testing.T) {
		h := newHarness(t, Config{})
		if _, err := h.srv.AddFault(Fault{Next: 1, Action: FaultHang}); err != nil {
			t.Fatal(err)
		}
		err := h.postWithTimeout(ev("h1"), 100*time.Millisecond)
		if err == nil {
			t.Fatal("hung request answered")
		}
		eventually(t, 5*time.Second, func() bool { return len(h.srv.Requests()) == 1 })
		if len(h.conversions("")) != 0 {
			t.Error("hung request stored its event")
		}
	})
	t.Run("accept then hang stores", func(t *testing.T) {
		h := newHarness(t, Config{})
		if _, err := h.srv.AddFault(Fault{Next: 1, Action: FaultAcceptHang}); err != nil {
			t.Fatal(err)
		}
		if err := h.postWithTimeout(ev("h2"), 100*time.Millisecond); err == nil {
			t.Fatal("hung request answered")
		}
		eventually(t, 5*time.Second, func() bool { return len(h.srv.Conversions(ConversionFilter{})) == 1 })
	})
	t.Run("hang released by Close", func(t *testing.T) {
		h := newHarness(t, Config{})
		if _, err := h.srv.AddFault(Fault{Action: FaultHang}); err != nil {
			t.Fatal(err)
		}
		done := make(chan resp)
		go func() { done <- h.sendEvent(tok, ev("")) }()
		eventually(t, 5*time.Second, func() bool { return h.srv.Counters().FaultsInjected == 1 })
		h.srv.Close()
		if r := <-done; r.status != 504 {
			t.Errorf("released hang answered %d", r.status)
		}
	})
	for _, action := range []FaultAction{FaultReset, FaultResetAfterStore} {
		t.Run(string(action), func(t *testing.T) {
			h := newHarness(t, Config{})
			if _, err := h.srv.AddFault(Fault{Next: 1, Action: action}); err != nil {
				t.Fatal(err)
			}
			if err := h.postWithTimeout(ev("r"), 5*time.Second); err == nil {
				t.Fatal("reset request answered")
			}
			stored := len(h.srv.Conversions(ConversionFilter{}))
			if want := map[FaultAction]int{FaultReset: 0, FaultResetAfterStore: 1}[action]; stored != want {
				t.Errorf("stored %d, want %d", stored, want)
			}
		})
	}
	t.Run("invalid faults", func(t *testing.T) {
		h := newHarness(t, Config{})
		for _, body := range []string{`{"action":"explode"}`, `{"action":"status","status":200}`, `{"endpoint":"nope","action":"hang"}`,
			`{"action":"status","probability":2}`, `{"action":"auth","service_error_code":1}`, `{"action":"hang","bogus":1}`} {
			if r := h.do("POST", "/_sandbox/faults", nil, body); r.status != 400 {
				t.Errorf("%s: %d", body, r.status)
			}
		}
		wantStatus(t, h.do("POST", "/_sandbox/faults", nil, `{"action":"delay","delay":"10ms","delay_max":20}`), 201)
		r := h.do("GET", "/_sandbox/faults", nil, "")
		if !strings.Contains(r.body, `"delay":"10ms","delay_max":"20ms"`) {
			t.Errorf("faults %s", r.body)
		}
		wantStatus(t, h.do("DELETE", "/_sandbox/faults/f1", nil, ""), 204)
		wantStatus(t, h.do("DELETE", "/_sandbox/faults/f1", nil, ""), 404)
	})
}

// postWithTimeout sends one event with a client timeout and returns the
// transport error, if any.
func (h *harness) postWithTimeout(body string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", h.ts.URL+"/rest/conversionEvents", strings.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range restHeaders(tok) {
		req.Header.Set(k, v)
	}
	res, err := h.ts.Client().Do(req)
	if err == nil {
		res.Body.Close()
	}
	return err
}

func TestVersionSunsetNow(t *testing.T) {
	h := newHarness(t, Config{})
	wantStatus(t, h.sendEvent(tok, ev("")), 201)
	wantStatus(t, h.do("POST", "/_sandbox/versions/202609/sunset", nil, ""), 204)
	wantStatus(t, h.sendEvent(tok, ev("")), 426)
	// The real clock: 202609 sunsets on 2027-09-15.
	h.clock.Set(time.Date(2027, 9, 14, 23, 59, 0, 0, time.UTC))
	h.srv.Reset()
	h.srv.AddToken(TokenSpec{Token: "late"})
	wantStatus(t, h.sendEvent("late", ev("", h.clock.Now().UnixMilli())), 201)
	h.clock.Advance(time.Minute)
	wantStatus(t, h.sendEvent("late", ev("", h.clock.Now().UnixMilli())), 426)
}

func TestAdminClockCountersRequests(t *testing.T) {
	h := newHarness(t, Config{})
	r := h.do("POST", "/_sandbox/clock", nil, `{"advance":"24h"}`)
	wantBody(t, r, `{"now":1767312000000,"offset_ms":86400000}`+"\n")
	wantStatus(t, h.sendEvent(tok, ev("", 1767312000000-1000)), 201)
	wantStatus(t, h.do("POST", "/_sandbox/clock", nil, `{"now":1767225600000}`), 200)
	wantStatus(t, h.sendEvent(tok, `{}`), 422)
	wantStatus(t, h.sendEvent("nope", `{}`), 401)
	r = h.do("GET", "/_sandbox/counters", nil, "")
	want := `{"requests":3,"conversion_requests":3,"batches":0,"accepted":1,"deduplicated":0,"evicted":0,"rejected_events":1,"rate_limited":0,"faults_injected":0,` +
		`"rejected":{"route":0,"auth":1,"version":0,"permission":0,"bad_request":0,"schema":1,"business":0,"not_found":0,"fault":0}}` + "\n"
	wantBody(t, r, want)
	r = h.do("GET", "/_sandbox/requests?limit=1", nil, "")
	var out struct{ Elements []RequestRecord }
	if err := json.Unmarshal([]byte(r.body), &out); err != nil || len(out.Elements) != 1 {
		t.Fatalf("requests %s", r.body)
	}
	if rec := out.Elements[0]; rec.Status != 401 || rec.Body != `{}` || rec.Headers.Get("Authorization") != "Bearer nope" || rec.Endpoint != "conversionEvents" || rec.ResponseBody != bodyInvalidTok {
		t.Errorf("record %+v", rec)
	}
	r = h.do("GET", "/_sandbox/state", nil, "")
	for _, frag := range []string{`"rules":[{"id":22833300`, `"rate_limits":{"test-token":{`, `"conversions":1`} {
		if !strings.Contains(r.body, frag) {
			t.Errorf("state lacks %s", frag)
		}
	}
	wantStatus(t, h.do("GET", "/_sandbox/", nil, ""), 200)
	wantStatus(t, h.do("POST", "/_sandbox/campaigns", nil, `{"id":9,"account":508747394,"name":"Nine"}`), 204)
	wantStatus(t, h.do("POST", "/_sandbox/accounts", nil, `{"id":42,"name":"A","role":"CAMPAIGN_MANAGER"}`), 204)
	r = h.do("GET", "/rest/adAccountUsers?q=authenticatedUser", restHeaders(tok), "")
	if !strings.Contains(r.body, `"account":"urn:li:sponsoredAccount:42","role":"CAMPAIGN_MANAGER"`) {
		t.Errorf("account users %s", r.body)
	}
}

func TestStateFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state.json")
	clock := &fakeClock{t: specNow}
	cfg := Config{Now: clock.Now, StateFile: file, Tokens: []TokenSpec{{Token: tok}}}
	srv, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()
	do := func(method, path string, hd map[string]string, body string) resp {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		for k, v := range hd {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return resp{status: res.StatusCode, header: res.Header}
	}
	r := do("POST", "/rest/conversions", restHeaders(tok), `{"name":"Kept","account":"urn:li:sponsoredAccount:508747394","conversionMethod":"CONVERSIONS_API","type":"LEAD"}`)
	wantStatus(t, r, 201)
	id := r.header.Get("x-restli-id")
	wantStatus(t, do("POST", "/rest/conversionEvents", restHeaders(tok), ev("kept-1")), 201)
	wantStatus(t, do("POST", "/_sandbox/tokens", nil, `{"token":"added"}`), 201)
	// The throttled writer saves without a shutdown.
	eventually(t, 5*time.Second, func() bool {
		b, err := readFileIfExists(file)
		return err == nil && strings.Contains(string(b), "kept-1") && strings.Contains(string(b), `"added"`)
	})
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Serve: %v", err)
	}

	srv2, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	h2 := &harness{t: t, srv: srv2, clock: clock}
	h2.ts = newTestServerFor(t, srv2)
	wantStatus(t, h2.do("GET", "/rest/conversions/"+id+"?"+acctQ, restHeaders(tok), ""), 200)
	wantStatus(t, h2.sendEvent("added", ev("kept-1")), 201) // a duplicate of the restored event
	if got := srv2.Conversions(ConversionFilter{}); len(got) != 1 || got[0].EventID != "kept-1" {
		t.Errorf("restored conversions %+v", got)
	}
	if c := srv2.Counters(); c.Deduplicated != 1 {
		t.Errorf("counters %+v", c)
	}
}

func TestConcurrentClients(t *testing.T) {
	h := newHarness(t, Config{MaxConversions: 1000, RatePerMinute: -1})
	const clients, requests, perBatch = 6, 8, 50
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			tokName := fmt.Sprint("client-", c)
			if err := h.srv.AddToken(TokenSpec{Token: tokName}); err != nil {
				t.Error(err)
				return
			}
			for r := range requests {
				elems := make([]string, perBatch)
				for i := range elems {
					// Every event is sent twice across clients c and c^1.
					elems[i] = ev(fmt.Sprintf("e-%d-%d-%d", c/2, r, i))
				}
				if got := h.sendBatch(tokName, elems...); got.status != 200 {
					t.Errorf("status %d", got.status)
				}
				h.srv.Counters()
				if r%4 == 0 {
					h.conversions("?since=0")
				}
			}
		})
	}
	wg.Go(func() {
		for range 5 {
			h.do("GET", "/_sandbox/state", nil, "")
			h.do("GET", "/_sandbox/requests", nil, "")
		}
	})
	wg.Wait()
	c := h.srv.Counters()
	total := int64(clients * requests * perBatch)
	if c.Accepted != total/2 || c.Deduplicated != total/2 || c.Batches != clients*requests {
		t.Errorf("counters %+v", c)
	}
	if got := len(h.srv.Conversions(ConversionFilter{})); got != 1000 {
		t.Errorf("kept %d, want the 1000 newest", got)
	}
}

func TestConfigErrors(t *testing.T) {
	_, err := New(Config{BatchMode: "some", OAuthExpiredError: "x", LatestVersion: "2026", AdAccount: viewerAccountID,
		Tokens: []TokenSpec{{Token: ""}, {Token: "a", Role: "OWNER"}}}, nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, frag := range []string{"batch mode", "oauth expired error", "latest version", "reserved", "token 0: empty token", "token 1: role"} {
		if !strings.Contains(err.Error(), frag) {
			t.Errorf("error %q lacks %q", err, frag)
		}
	}
}

func TestCodeTables(t *testing.T) {
	if len(countryCodes) != 249 {
		t.Errorf("%d country codes, want 249", len(countryCodes))
	}
	if len(ruleTypes) != 37 {
		t.Errorf("%d rule types", len(ruleTypes))
	}
	for _, c := range []string{"USD", "EUR", "GBP", "JPY", "CHF", "INR"} {
		if !currencyCodes[c] {
			t.Errorf("currency %s missing", c)
		}
	}
}

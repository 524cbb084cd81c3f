package admin

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/capstan-gw/capstan/internal/audit"
	"github.com/capstan-gw/capstan/internal/config"
)

const (
	veraPassword = "vera's password"
	ottoPassword = "otto's password"
)

var (
	hashOnce           sync.Once
	veraHash, ottoHash string
)

// testClock is a clock the tests move.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// newUsersEnv is newEnv with the console users vera (viewer) and otto
// (operator) and a clock the test moves.
func newUsersEnv(t testing.TB, extra func(*Config)) (*env, *testClock) {
	t.Helper()
	hashOnce.Do(func() {
		v, _ := bcrypt.GenerateFromPassword([]byte(veraPassword), bcrypt.MinCost)
		o, _ := bcrypt.GenerateFromPassword([]byte(ottoPassword), bcrypt.MinCost)
		veraHash, ottoHash = string(v), string(o)
	})
	cfg := Config{Token: config.Secret(testToken), Users: []User{
		{Name: "vera", PasswordHash: veraHash, Role: RoleViewer},
		{Name: "otto", PasswordHash: ottoHash, Role: RoleOperator},
	}}
	if extra != nil {
		extra(&cfg)
	}
	e := newEnvConfig(t, cfg)
	clock := &testClock{now: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)}
	e.s.clock = clock.Now
	return e, clock
}

// req is one request to the admin handler.
type req struct {
	method, target, body string
	cookie, csrf, auth   string
	addr                 string // RemoteAddr; default 192.0.2.1:1234
	header               map[string]string
	tls                  bool
}

func (e *env) send(t testing.TB, r req) (answer, *http.Cookie) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hr := httptest.NewRequestWithContext(ctx, r.method, r.target, strings.NewReader(r.body))
	hr.RemoteAddr = "192.0.2.1:1234"
	if r.addr != "" {
		hr.RemoteAddr = r.addr
	}
	if r.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.cookie != "" {
		hr.AddCookie(&http.Cookie{Name: sessionCookie, Value: r.cookie})
	}
	if r.csrf != "" {
		hr.Header.Set(csrfHeader, r.csrf)
	}
	if r.auth != "" {
		hr.Header.Set("Authorization", r.auth)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	if r.tls {
		hr.TLS = &tls.ConnectionState{}
	}
	rec := httptest.NewRecorder()
	e.s.ServeHTTP(rec, hr)
	var c *http.Cookie
	for _, ck := range rec.Result().Cookies() {
		if ck.Name == sessionCookie {
			c = ck
		}
	}
	return answer{rec.Code, rec.Header(), rec.Body.Bytes()}, c
}

// session is a signed-in console session.
type testSession struct {
	id   string
	info sessionInfo
}

// signIn signs in with body and fails unless it works.
func (e *env) signIn(t testing.TB, body string) testSession {
	t.Helper()
	a, c := e.send(t, req{method: "POST", target: "/admin/api/session", body: body})
	if a.status != http.StatusOK || c == nil {
		t.Fatalf("sign in with %s: %d %s", body, a.status, a.body)
	}
	var info sessionInfo
	if err := json.Unmarshal(a.body, &info); err != nil {
		t.Fatal(err)
	}
	return testSession{id: c.Value, info: info}
}

func (e *env) auditRecords(t testing.TB) []audit.Record {
	t.Helper()
	var out struct{ Records []audit.Record }
	decodeAnswer(t, e.do(t, "GET", "/admin/api/audit?limit=1000", ""), &out)
	return out.Records
}

// TestSignIn: the admin token and each user's password open a session
// with the user's role and an HttpOnly, SameSite=Strict cookie (Secure
// under TLS); a wrong credential opens none.
func TestSignIn(t *testing.T) {
	e, _ := newUsersEnv(t, nil)
	a, c := e.send(t, req{method: "POST", target: "/admin/api/session", body: `{"token":"` + testToken + `"}`})
	if a.status != 200 || c == nil {
		t.Fatalf("token sign-in: %d %s", a.status, a.body)
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure || c.Path != "/admin/" || c.MaxAge != int(SessionMax/time.Second) || len(c.Value) < 40 {
		t.Errorf("cookie %+v", c)
	}
	var info sessionInfo
	decodeAnswer(t, a, &info)
	if info.User != "admin token" || info.Role != "operator" || info.Via != "session" || len(info.CSRF) < 40 || info.ExpiresAt == nil {
		t.Errorf("session %+v", info)
	}
	if strings.Contains(string(a.body), c.Value) {
		t.Error("the answer holds the session id")
	}
	// The session answers who is signed in.
	a, _ = e.send(t, req{method: "GET", target: "/admin/api/session", cookie: c.Value})
	var again sessionInfo
	decodeAnswer(t, a, &again)
	if again.User != "admin token" || again.CSRF != info.CSRF {
		t.Errorf("GET session %+v", again)
	}

	v := e.signIn(t, `{"username":"vera","password":"`+veraPassword+`"}`)
	o := e.signIn(t, `{"username":"otto","password":"`+ottoPassword+`"}`)
	if v.info.Role != "viewer" || v.info.User != "vera" || o.info.Role != "operator" || v.id == o.id || v.info.CSRF == o.info.CSRF {
		t.Errorf("vera %+v, otto %+v", v, o)
	}

	// Secure under TLS, and with SecureCookies (server.tls) on every request.
	if _, c := e.send(t, req{method: "POST", target: "/admin/api/session", body: `{"token":"` + testToken + `"}`, tls: true}); c == nil || !c.Secure {
		t.Errorf("cookie under TLS: %+v", c)
	}
	es, _ := newUsersEnv(t, func(c *Config) { c.SecureCookies = true })
	if _, c := es.send(t, req{method: "POST", target: "/admin/api/session", body: `{"token":"` + testToken + `"}`}); c == nil || !c.Secure {
		t.Errorf("cookie with SecureCookies: %+v", c)
	}

	for _, tt := range []struct {
		name, body     string
		header         map[string]string
		status         int
		code, fragment string
	}{
		{"wrong token", `{"token":"nope"}`, nil, 401, "unauthorized", "wrong admin token"},
		{"wrong password", `{"username":"vera","password":"` + ottoPassword + `"}`, nil, 401, "unauthorized", "wrong username or password"},
		{"unknown user", `{"username":"nobody","password":"x"}`, nil, 401, "unauthorized", "wrong username or password"},
		{"both", `{"token":"` + testToken + `","username":"vera","password":"x"}`, nil, 400, "bad_request", "not both"},
		{"nothing", `{}`, nil, 400, "bad_request", "give the admin token"},
		{"no password", `{"username":"vera"}`, nil, 400, "bad_request", "give the admin token"},
		{"unknown field", `{"tok":"x"}`, nil, 400, "bad_request", "unknown field"},
		{"form post", `token=x`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 400, "bad_request", "Content-Type: application/json"},
		{"cross-site", `{"token":"` + testToken + `"}`, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "forbidden", "console's own page"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, c := e.send(t, req{method: "POST", target: "/admin/api/session", body: tt.body, header: tt.header, addr: "198.51.100.7:1"})
			wantError(t, a, tt.status, tt.code, tt.fragment)
			if c != nil {
				t.Errorf("a refused sign-in set a cookie: %+v", c)
			}
		})
	}
}

// TestConsoleUnauthenticated: without a session or token the API answers
// 401 (also with an unknown or signed-out cookie) and the console the
// sign-in page; with one, the console's shell. The console's files need no
// credential and are revalidated by ETag.
func TestConsoleUnauthenticated(t *testing.T) {
	e, _ := newUsersEnv(t, nil)
	for _, cookie := range []string{"", "not-a-session"} {
		for _, target := range []string{"/admin/api/session", "/admin/api/destinations", "/admin/api/people?userId=u", "/admin/api/audit"} {
			a, _ := e.send(t, req{method: "GET", target: target, cookie: cookie})
			wantError(t, a, 401, "unauthorized", "console session")
		}
	}
	a, _ := e.send(t, req{method: "GET", target: "/admin/"})
	page := string(a.body)
	if a.status != 200 || !strings.HasPrefix(a.header.Get("Content-Type"), "text/html") || !strings.Contains(page, `<label for="token">Admin token</label>`) ||
		!strings.Contains(page, `<label for="username">Username</label>`) || !strings.Contains(page, `<label for="password">Password</label>`) || !strings.Contains(page, ">Sign in</button>") {
		t.Errorf("sign-in page: %d %s", a.status, page)
	}
	if csp := a.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if cc := a.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	// Token only: no user fields.
	a, _ = (&env{s: newEnv(t).s}).send(t, req{method: "GET", target: "/admin/"})
	if strings.Contains(string(a.body), "Username") || !strings.Contains(string(a.body), "Admin token") {
		t.Errorf("sign-in page without users: %s", a.body)
	}

	s := e.signIn(t, `{"username":"vera","password":"`+veraPassword+`"}`)
	a, _ = e.send(t, req{method: "GET", target: "/admin/", cookie: s.id})
	if !strings.Contains(string(a.body), `<nav aria-label="Console"`) || !strings.Contains(string(a.body), `<main id="page"`) {
		t.Errorf("the shell: %s", a.body)
	}
	a, _ = e.send(t, req{method: "GET", target: "/admin/", auth: operator})
	if !strings.Contains(string(a.body), `<nav aria-label="Console"`) {
		t.Errorf("the shell with the admin token: %s", a.body)
	}
	if a, _ := e.send(t, req{method: "GET", target: "/admin"}); a.status != http.StatusMovedPermanently || a.header.Get("Location") != "/admin/" {
		t.Errorf("/admin: %d %v", a.status, a.header)
	}
	if a, _ := e.send(t, req{method: "POST", target: "/admin/"}); a.status != 405 {
		t.Errorf("POST /admin/: %d", a.status)
	}

	a, _ = e.send(t, req{method: "GET", target: "/admin/ui/app.js"})
	etag := a.header.Get("ETag")
	if a.status != 200 || !strings.Contains(a.header.Get("Content-Type"), "javascript") || etag == "" || a.header.Get("Cache-Control") != "no-cache" ||
		!strings.Contains(string(a.body), "window.capstan") {
		t.Errorf("app.js: %d %v", a.status, a.header)
	}
	if a, _ := e.send(t, req{method: "GET", target: "/admin/ui/app.js", header: map[string]string{"If-None-Match": etag}}); a.status != http.StatusNotModified {
		t.Errorf("app.js revalidated: %d", a.status)
	}
	for _, p := range []string{"/admin/ui/nope.js", "/admin/ui/index.html", "/admin/ui/../ui/signin.html", "/admin/ui/"} {
		if a, _ := e.send(t, req{method: "GET", target: p}); a.status != 404 {
			t.Errorf("%s: %d", p, a.status)
		}
	}
}

// operatorRequests returns a request for every operator route (those of
// routes() as registered, so a new one is covered at once), with a body it
// accepts where the test knows one.
func operatorRequests(t testing.TB, s *Server) []req {
	t.Helper()
	bodies := map[string]string{
		"PUT /admin/api/destinations/{name}/token": `{"access_token":"tok-by-viewer"}`,
		"PUT /admin/destinations/{name}/token":     `{"access_token":"tok-by-viewer"}`,
		"POST /admin/api/dlq/replay":               `{"all":true}`,
		"POST /admin/api/privacy/delete":           `{"userId":"someone"}`,
	}
	var out []req
	for pattern, role := range s.roles {
		if role != RoleOperator {
			continue
		}
		method, path, _ := strings.Cut(pattern, " ")
		path = strings.ReplaceAll(path, "{name}", "linkedin")
		path = strings.ReplaceAll(path, "{id}", "1")
		if strings.HasSuffix(path, "/identity") {
			path += "?userId=someone"
		}
		// The role and the CSRF token are checked before the body is
		// read: routes without an entry get an empty JSON object.
		body, ok := bodies[pattern]
		if !ok && method != "DELETE" {
			body = "{}"
		}
		out = append(out, req{method: method, target: path, body: body})
	}
	if len(out) < 6 {
		t.Fatalf("only %d operator routes", len(out))
	}
	return out
}

// TestViewerRefused: a viewer's session is refused every operator route
// with 403 (CSRF token and all), and nothing happens; an operator's is not.
func TestViewerRefused(t *testing.T) {
	e, _ := newUsersEnv(t, nil)
	v := e.signIn(t, `{"username":"vera","password":"`+veraPassword+`"}`)
	for _, r := range operatorRequests(t, e.s) {
		r.cookie, r.csrf = v.id, v.info.CSRF
		a, _ := e.send(t, r)
		wantError(t, a, http.StatusForbidden, "forbidden", "vera may not do this: it needs the operator role")
	}
	if got := e.dests["linkedin"].installed(); len(got) != 0 {
		t.Errorf("a viewer installed %v", got)
	}
	// Reads are a viewer's.
	for _, target := range []string{"/admin/api/destinations", "/admin/api/audit", "/admin/api/dlq", "/admin/api/session"} {
		if a, _ := e.send(t, req{method: "GET", target: target, cookie: v.id}); a.status != 200 {
			t.Errorf("viewer GET %s: %d %s", target, a.status, a.body)
		}
	}
	o := e.signIn(t, `{"username":"otto","password":"`+ottoPassword+`"}`)
	a, _ := e.send(t, req{method: "PUT", target: "/admin/api/destinations/linkedin/token", body: `{"access_token":"tok-by-otto"}`, cookie: o.id, csrf: o.info.CSRF})
	if a.status != 200 {
		t.Errorf("operator install: %d %s", a.status, a.body)
	}
}

// TestCSRF: a state-changing request with the session cookie needs the
// session's CSRF token; reads and Bearer-token requests do not.
func TestCSRF(t *testing.T) {
	e, _ := newUsersEnv(t, nil)
	o := e.signIn(t, `{"username":"otto","password":"`+ottoPassword+`"}`)
	other := e.signIn(t, `{"token":"`+testToken+`"}`)
	for _, r := range operatorRequests(t, e.s) {
		for _, csrf := range []string{"", "wrong", other.info.CSRF} {
			r.cookie, r.csrf = o.id, csrf
			a, _ := e.send(t, r)
			wantError(t, a, http.StatusForbidden, "csrf_failed", "X-CSRF-Token")
		}
	}
	a, _ := e.send(t, req{method: "DELETE", target: "/admin/api/session", cookie: o.id})
	wantError(t, a, http.StatusForbidden, "csrf_failed", "X-CSRF-Token")
	if got := e.dests["linkedin"].installed(); len(got) != 0 {
		t.Errorf("installed without the CSRF token: %v", got)
	}
	if a, _ := e.send(t, req{method: "GET", target: "/admin/api/destinations", cookie: o.id}); a.status != 200 {
		t.Errorf("a read without the CSRF token: %d", a.status)
	}
	if a, _ := e.send(t, req{method: "PUT", target: "/admin/api/destinations/linkedin/token", body: `{"access_token":"tok-bearer"}`, auth: operator}); a.status != 200 {
		t.Errorf("Bearer install without a CSRF token: %d %s", a.status, a.body)
	}
	if a, _ := e.send(t, req{method: "PUT", target: "/admin/api/destinations/linkedin/token", body: `{"access_token":"tok-csrf"}`, cookie: o.id, csrf: o.info.CSRF}); a.status != 200 {
		t.Errorf("install with the CSRF token: %d %s", a.status, a.body)
	}
}

// TestThrottle: the 11th failed sign-in from one address within 15
// minutes is 429 with Retry-After, even with the right credential; other
// addresses are not affected; the window's end lets it try again; behind a
// trusted proxy the client's address counts.
func TestThrottle(t *testing.T) {
	e, clock := newUsersEnv(t, func(c *Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} })
	try := func(addr, body string, xff string) answer {
		r := req{method: "POST", target: "/admin/api/session", body: body, addr: addr}
		if xff != "" {
			r.header = map[string]string{"X-Forwarded-For": xff}
		}
		a, _ := e.send(t, r)
		return a
	}
	const wrong, right = `{"token":"nope"}`, `{"token":"` + testToken + `"}`
	for i := range maxFailures {
		if a := try("192.0.2.9:1", wrong, ""); a.status != 401 {
			t.Fatalf("failure %d: %d %s", i+1, a.status, a.body)
		}
		clock.add(time.Second)
	}
	a := try("192.0.2.9:2", right, "")
	wantError(t, a, http.StatusTooManyRequests, "too_many_requests", "too many failed sign-ins")
	ra, err := strconv.Atoi(a.header.Get("Retry-After"))
	if err != nil || ra < 880 || ra > 900 {
		t.Errorf("Retry-After %q, want about 890 s", a.header.Get("Retry-After"))
	}
	if a := try("192.0.2.10:1", right, ""); a.status != 200 {
		t.Errorf("another address: %d", a.status)
	}
	clock.add(time.Duration(ra) * time.Second)
	if a := try("192.0.2.9:3", right, ""); a.status != 200 {
		t.Errorf("after the window: %d %s", a.status, a.body)
	}
	// A success forgets the failures.
	if e.s.throttle.wait("192.0.2.9", clock.Now()) != 0 {
		t.Error("still throttled after a success")
	}

	// Behind a trusted proxy: the forwarded client counts, not the proxy.
	for range maxFailures {
		try("10.1.2.3:1", wrong, "203.0.113.5")
	}
	wantError(t, try("10.1.2.3:1", right, "203.0.113.5"), 429, "too_many_requests", "")
	if a := try("10.1.2.3:1", right, "203.0.113.6"); a.status != 200 {
		t.Errorf("another client behind the proxy: %d", a.status)
	}
	// An untrusted peer's X-Forwarded-For is not believed.
	for range maxFailures {
		try("192.0.2.77:1", wrong, fmt.Sprintf("198.51.100.%d", 1))
	}
	wantError(t, try("192.0.2.77:1", right, "198.51.100.2"), 429, "too_many_requests", "")
}

// TestThrottleBounded: the throttle remembers at most maxThrottled
// addresses; beyond, new addresses share one entry, throttled together.
func TestThrottleBounded(t *testing.T) {
	th := newThrottle()
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	for i := range maxThrottled + 500 {
		th.fail(fmt.Sprintf("addr-%d", i), now)
	}
	if n := len(th.m); n > maxThrottled+1 {
		t.Fatalf("%d entries, want at most %d", n, maxThrottled+1)
	}
	if th.m[overflowKey] == nil || th.m[overflowKey].n != 500 {
		t.Fatalf("overflow entry %+v", th.m[overflowKey])
	}
	for range maxFailures {
		th.fail("yet-another", now)
	}
	if th.wait("a-new-one", now) == 0 {
		t.Error("a new address beyond the bound is not throttled with the overflow")
	}
	// Once the window passed, old entries make room.
	later := now.Add(failureWindow + time.Second)
	th.fail("fresh", later)
	if len(th.m) > 2 || th.wait("fresh", later) != 0 {
		t.Errorf("after the window: %d entries", len(th.m))
	}
}

// TestSessionExpiry: a session ends after SessionIdle without a request,
// and SessionMax after sign-in however busy; Sign out ends it at once.
func TestSessionExpiry(t *testing.T) {
	e, clock := newUsersEnv(t, nil)
	get := func(s testSession) int {
		a, _ := e.send(t, req{method: "GET", target: "/admin/api/session", cookie: s.id})
		return a.status
	}
	s := e.signIn(t, `{"token":"`+testToken+`"}`)
	clock.add(SessionIdle - time.Minute)
	if get(s) != 200 {
		t.Fatal("ended before the idle timeout")
	}
	clock.add(SessionIdle - time.Minute) // idle time counts from the last request
	if get(s) != 200 {
		t.Fatal("the last request did not count")
	}
	clock.add(SessionIdle + time.Second)
	if get(s) != 401 {
		t.Fatal("alive after the idle timeout")
	}

	s = e.signIn(t, `{"token":"`+testToken+`"}`)
	for elapsed := time.Duration(0); elapsed < SessionMax-time.Hour; elapsed += time.Hour {
		clock.add(time.Hour)
		if get(s) != 200 {
			t.Fatalf("ended after %s of activity", elapsed+time.Hour)
		}
	}
	clock.add(time.Hour)
	if get(s) != 401 {
		t.Fatal("alive after SessionMax")
	}

	s = e.signIn(t, `{"token":"`+testToken+`"}`)
	a, c := e.send(t, req{method: "DELETE", target: "/admin/api/session", cookie: s.id, csrf: s.info.CSRF})
	if a.status != 200 || c == nil || c.MaxAge >= 0 {
		t.Fatalf("sign out: %d %s, cookie %+v", a.status, a.body, c)
	}
	if get(s) != 401 {
		t.Fatal("alive after sign-out")
	}
	// The store is bounded.
	st := newSessions()
	for i := range maxSessions + 10 {
		st.create(fmt.Sprint("u", i), RoleViewer, clock.Now())
	}
	if st.len() != maxSessions {
		t.Errorf("%d sessions kept, want %d", st.len(), maxSessions)
	}
}

// TestAuditWritten: sign-ins (refused and accepted), token installs,
// identity deletions, replays and sign-outs are in the audit log, with who
// did them and how they ended; no secret is.
func TestAuditWritten(t *testing.T) {
	e, _ := newUsersEnv(t, nil)
	e.send(t, req{method: "POST", target: "/admin/api/session", body: `{"username":"My password 1","password":"guess"}`})
	e.send(t, req{method: "POST", target: "/admin/api/session", body: `{"username":"vera","password":"guess"}`})
	o := e.signIn(t, `{"username":"otto","password":"`+ottoPassword+`"}`)
	send := func(method, target, body string) answer {
		a, _ := e.send(t, req{method: method, target: target, body: body, cookie: o.id, csrf: o.info.CSRF})
		return a
	}
	if a := send("PUT", "/admin/api/destinations/linkedin/token", `{"access_token":"tok-secret-b"}`); a.status != 200 {
		t.Fatalf("install: %d %s", a.status, a.body)
	}
	send("PUT", "/admin/api/destinations/broken/token", `{"access_token":"tok-secret-c"}`)
	send("DELETE", "/admin/api/identity?userId=nobody-known", "")
	if a := send("POST", "/admin/api/dlq/replay", `{"destination":"linkedin","reason":"rejected"}`); a.status != 200 {
		t.Fatalf("replay: %d %s", a.status, a.body)
	}
	send("DELETE", "/admin/api/session", "")

	recs := e.auditRecords(t)
	type row struct{ by, action, target, err string }
	var got []row
	for _, r := range recs {
		got = append(got, row{r.By, r.Action, r.Target, r.Error})
		if r.At.IsZero() {
			t.Errorf("record without a time: %+v", r)
		}
	}
	want := []row{ // newest first
		{"otto", "sign_out", "", ""},
		{"otto", "dlq_replay", "dead letters with destination=linkedin reason=rejected", ""},
		{"otto", "identity_delete", "", "the identity graph holds nothing for this id"},
		{"otto", "token_install", "broken", "the destination could not install the token"},
		{"otto", "token_install", "linkedin", ""},
		{"otto", "sign_in", "", ""},
		{"vera", "sign_in", "", "wrong username or password"},
		{"unknown user", "sign_in", "", "wrong username or password"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("audit log:\n got %v\nwant %v", got, want)
	}
	if recs[1].Result["replayed"] != 0 || recs[2].IDKind != "userId" || len(recs[2].IDSHA256) != 64 {
		t.Errorf("replay %+v, identity %+v", recs[1], recs[2])
	}
	raw, _ := json.Marshal(recs)
	for _, secret := range []string{"tok-secret", "guess", ottoPassword, "nobody-known", testToken, "My password"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("the audit log holds %q", secret)
		}
	}
	// Paging: newest first, then before the last one's seq.
	var page struct {
		Records []audit.Record
		More    bool
	}
	decodeAnswer(t, e.do(t, "GET", "/admin/api/audit?limit=3", ""), &page)
	if len(page.Records) != 3 || !page.More || page.Records[0].Action != "sign_out" {
		t.Fatalf("first page %+v", page)
	}
	decodeAnswer(t, e.do(t, "GET", "/admin/api/audit?limit=3&before="+strconv.FormatUint(page.Records[2].Seq, 10), ""), &page)
	if len(page.Records) != 3 || !page.More || page.Records[0].Action != "token_install" || page.Records[0].Target != "broken" {
		t.Fatalf("second page %+v", page)
	}
	decodeAnswer(t, e.do(t, "GET", "/admin/api/audit?limit=3&before="+strconv.FormatUint(page.Records[2].Seq, 10), ""), &page)
	if len(page.Records) != 2 || page.More || page.Records[0].By != "vera" {
		t.Fatalf("last page %+v", page)
	}
}

// TestUsersOnly: with admin_users and no admin token, the sign-in page
// asks for a username and password only, and no Bearer token is accepted.
func TestUsersOnly(t *testing.T) {
	e, _ := newUsersEnv(t, func(c *Config) { c.Token = "" })
	a, _ := e.send(t, req{method: "GET", target: "/admin/"})
	if page := string(a.body); strings.Contains(page, "Admin token") || !strings.Contains(page, "Username") || !strings.Contains(page, "Password") {
		t.Errorf("sign-in page: %s", page)
	}
	for _, auth := range []string{"Bearer ", "Bearer  ", operator} {
		a, _ := e.send(t, req{method: "GET", target: "/admin/api/destinations", auth: auth})
		wantError(t, a, 401, "unauthorized", "")
	}
	a, _ = e.send(t, req{method: "POST", target: "/admin/api/session", body: `{"token":""}`})
	wantError(t, a, 400, "bad_request", "give the admin token")
	a, _ = e.send(t, req{method: "POST", target: "/admin/api/session", body: `{"token":"` + testToken + `"}`})
	wantError(t, a, 401, "unauthorized", "wrong admin token")
	s := e.signIn(t, `{"username":"otto","password":"`+ottoPassword+`"}`)
	if s.info.Role != "operator" {
		t.Errorf("otto: %+v", s.info)
	}
}

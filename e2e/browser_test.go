package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/web"
)

// The browser tests run capstan.js and the unmodified @segment/analytics-next
// in Debian's headless Chromium, driven through playwright-core by
// browser/driver.mjs. The test pages come from an httptest server on another
// port than capstan, so every request to capstan is cross-origin, as in
// production; that server also serves capstan.js (web.Handler), like a CDN.

// chromiumPath is Debian's chromium, installed by scripts/setup-e2e.sh.
const chromiumPath = "/usr/bin/chromium"

var (
	uuidV4RE     = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	capstanMsgRE = regexp.MustCompile(`^capstan-\d{13}-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	ajsMsgRE     = regexp.MustCompile(`^ajs-next-\d{13}-[0-9a-f-]{36}$`)
)

// requireBrowser fails (never skips) when Chromium, node or the npm packages
// are missing.
func requireBrowser(t testing.TB) {
	t.Helper()
	const fix = "run `bash scripts/setup-e2e.sh` (make test runs it first)"
	if fi, err := os.Stat(chromiumPath); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("%s is missing (%v): %s", chromiumPath, err, fix)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is not on PATH: install Node.js 20+ and %s", fix)
	}
	for _, f := range []string{
		"node_modules/playwright-core/package.json",
		"node_modules/@segment/analytics-next/dist/umd/index.js",
	} {
		if _, err := os.Stat(filepath.Join(e2eDir, f)); err != nil {
			t.Fatalf("e2e/%s is missing: %s", f, fix)
		}
	}
}

// browserConfig writes a capstan.yaml listening on addr whose source allows
// the test pages' origin, and returns its path.
func browserConfig(t testing.TB, addr, origin string) string {
	t.Helper()
	dir := t.TempDir()
	text := fmt.Sprintf(`# written by capstan's browser e2e tests
server:
  addr: %q
  data_dir: %q
  shutdown_grace: 5s
engine:
  sync: always
sources:
  - name: %s
    write_key: %s
    allowed_origins: [%q]
`, addr, filepath.Join(dir, "data"), testSource, testWriteKey, origin)
	path := filepath.Join(dir, "capstan.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var testPage = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>{{.Title}}</title>
<script>
  // The LinkedIn Insight Tag's queue stub: records every lintrk call.
  window.lintrkCalls = [];
  window.lintrk = function (a, b) { window.lintrkCalls.push([a, b]) };
</script>
{{if .AJS}}<script src="/ajs/index.js"></script>{{end}}
{{if .Stub}}<script>
  // The async installation of docs/capstan-js.md: calls are queued until capstan.js runs.
  window.capstan = window.capstan || [];
  ['load', 'page', 'track', 'identify', 'alias', 'group', 'consent', 'attach'].forEach(function (m) {
    capstan[m] = capstan[m] || function () { capstan.push([m].concat([].slice.call(arguments))) };
  });
  capstan.load({writeKey: {{.WriteKey}}, host: {{.Host}}, flushInterval: 20});
  capstan.page('Stub');
  capstan.track('Stub Track', {via: 'stub'});
</script>
<script async src="/capstan.js"></script>
{{else if not .Plain}}<script src="/capstan.js"></script>{{end}}
</head><body><h1>{{.Title}}</h1></body></html>
`))

// newPageServer serves the test pages: /ajs/* is analytics-next's UMD
// bundle, /capstan.js the embedded script, /ajs-* a page that loads both,
// /plain-* a page without either, /stub-*?host=URL a page that loads
// capstan.js async behind the documented stub and sends a page and a track
// to URL, any other path a page with capstan.js, each titled after its path.
func newPageServer(t testing.TB) *httptest.Server {
	t.Helper()
	umd := filepath.Join(e2eDir, "node_modules", "@segment", "analytics-next", "dist", "umd")
	mux := http.NewServeMux()
	mux.Handle("GET /capstan.js", web.Handler())
	mux.Handle("GET /ajs/", http.StripPrefix("/ajs/", http.FileServer(http.Dir(umd))))
	mux.HandleFunc("GET /favicon.ico", http.NotFound)
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		name := strings.Trim(r.URL.Path, "/")
		if name == "" {
			name = "home"
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_ = testPage.Execute(w, struct {
			Title            string
			AJS, Plain, Stub bool
			WriteKey, Host   string
		}{
			Title: strings.ToUpper(name[:1]) + name[1:],
			AJS:   strings.HasPrefix(name, "ajs"), Plain: strings.HasPrefix(name, "plain"), Stub: strings.HasPrefix(name, "stub"),
			WriteKey: testWriteKey, Host: r.URL.Query().Get("host"),
		})
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// browser is one Chromium driven by browser/driver.mjs.
type browser struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan []byte
	stderr *bytes.Buffer
	mu     sync.Mutex
	nextID int
}

// startBrowser launches Chromium with a fresh profile, driven by
// browser/driver.mjs; it is closed when the test ends.
func startBrowser(t testing.TB) *browser { return startDriver(t, "driver.mjs") }

// startDriver launches Chromium driven by the node script browser/<script>,
// which speaks driver.mjs's line protocol.
func startDriver(t testing.TB, script string) *browser {
	t.Helper()
	b := &browser{t: t, lines: make(chan []byte, 16), stderr: new(bytes.Buffer)}
	b.cmd = exec.Command("node", filepath.Join("browser", script), t.TempDir(), chromiumPath)
	b.cmd.Dir = e2eDir
	b.cmd.Stderr = &lockedWriter{w: b.stderr, mu: &b.mu}
	var err error
	if b.stdin, err = b.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := b.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start node browser/%s: %v", script, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(b.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			b.lines <- append([]byte(nil), sc.Bytes()...)
		}
	}()
	t.Cleanup(func() {
		_ = b.stdin.Close() // the driver closes Chromium and exits at EOF
		exited := make(chan error, 1)
		go func() {
			for range b.lines {
			}
			<-done
			exited <- b.cmd.Wait()
		}()
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = b.cmd.Process.Kill()
			<-exited
		}
	})
	return b
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (b *browser) stderrText() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stderr.String()
}

// do runs one driver command and returns its result; the test fails when
// the command fails or takes more than 30 s.
func (b *browser) do(cmd map[string]any) json.RawMessage {
	b.t.Helper()
	b.nextID++
	cmd["id"] = b.nextID
	line, _ := json.Marshal(cmd)
	if _, err := b.stdin.Write(append(line, '\n')); err != nil {
		b.t.Fatalf("browser driver: write %s: %v\n%s", cmd["op"], err, b.stderrText())
	}
	var ans struct {
		ID     int             `json:"id"`
		OK     bool            `json:"ok"`
		Result json.RawMessage `json:"result"`
		Error  string          `json:"error"`
	}
	select {
	case l, ok := <-b.lines:
		if !ok {
			b.t.Fatalf("browser driver exited during %s:\n%s", cmd["op"], b.stderrText())
		}
		if err := json.Unmarshal(l, &ans); err != nil {
			b.t.Fatalf("browser driver printed %q: %v", l, err)
		}
	case <-time.After(30 * time.Second):
		b.t.Fatalf("browser driver: no answer to %s in 30 s:\n%s", line, b.stderrText())
	}
	if !ans.OK || ans.ID != b.nextID {
		if cmd["op"] != "logs" {
			b.t.Logf("browser logs: %s", b.do(map[string]any{"op": "logs"}))
		}
		b.t.Fatalf("browser %s failed: %s", line, ans.Error)
	}
	return ans.Result
}

func (b *browser) goTo(u string) { b.t.Helper(); b.do(map[string]any{"op": "goto", "url": u}) }
func (b *browser) reload()       { b.t.Helper(); b.do(map[string]any{"op": "reload"}) }

// waitForURL waits until a navigation the page started itself has loaded u.
func (b *browser) waitForURL(u string) {
	b.t.Helper()
	b.do(map[string]any{"op": "waitForURL", "url": u})
}

// eval evaluates a JavaScript expression in the page (awaiting a Promise)
// and decodes its value into v (when v is not nil).
func (b *browser) eval(v any, expr string) {
	b.t.Helper()
	res := b.do(map[string]any{"op": "eval", "expr": expr})
	if v != nil {
		if err := json.Unmarshal(res, v); err != nil {
			b.t.Fatalf("eval result %s: %v", res, err)
		}
	}
}

// cookie is one of the browser's cookies, as playwright reports it.
type cookie struct {
	Name     string  `json:"name"`
	Value    string  `json:"value"`
	Domain   string  `json:"domain"`
	Path     string  `json:"path"`
	Expires  float64 `json:"expires"`
	Secure   bool    `json:"secure"`
	SameSite string  `json:"sameSite"`
}

func (b *browser) cookies() map[string]cookie {
	b.t.Helper()
	var list []cookie
	if err := json.Unmarshal(b.do(map[string]any{"op": "cookies"}), &list); err != nil {
		b.t.Fatal(err)
	}
	m := map[string]cookie{}
	for _, c := range list {
		m[c.Name] = c
	}
	return m
}

// doc is a stored event decoded for inspection.
type doc map[string]any

// get returns the value at a dotted path ("context.page.url"), nil if absent.
func (d doc) get(path string) any {
	var v any = map[string]any(d)
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func (d doc) str(path string) string { s, _ := d.get(path).(string); return s }

// waitStored polls `capstan events tail` until every messageId in ids is
// stored and returns the stored documents by messageId; it fails when one
// is stored more than once.
func waitStored(t testing.TB, cfg string, ids ...string) map[string]doc {
	t.Helper()
	var evs []storedEvent
	ok := poll(20*time.Second, func() bool {
		evs = tailEvents(t, cfg)
		n := countByMessageID(evs)
		for _, id := range ids {
			if n[id] == 0 {
				return false
			}
		}
		return true
	})
	n := countByMessageID(evs)
	if !ok {
		t.Fatalf("after 20 s, stored %v; want all of %v", n, ids)
	}
	out := map[string]doc{}
	for _, ev := range evs {
		id := ev.MessageID()
		if n[id] > 1 {
			t.Errorf("messageId %s stored %d times", id, n[id])
		}
		if ev.Source != testSource {
			t.Errorf("event %s stored for source %q, want %q", id, ev.Source, testSource)
		}
		var d doc
		if err := json.Unmarshal(ev.Event, &d); err != nil {
			t.Fatalf("stored event %s: %v", id, err)
		}
		out[id] = d
	}
	return out
}

// want compares d's value at each path with the expected value (JSON
// numbers compare as float64).
func want(t testing.TB, what string, d doc, fields map[string]any) {
	t.Helper()
	for path, w := range fields {
		got := d.get(path)
		if wm, ok := w.(map[string]bool); ok {
			m := map[string]any{}
			for k, v := range wm {
				m[k] = v
			}
			w = m
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("%s: %s = %#v, want %#v", what, path, got, w)
		}
	}
}

// sent is what the test pages return about one event they sent.
type sent struct {
	MessageID string `json:"messageId"`
	Delivered bool   `json:"delivered"`
	Error     string `json:"error"`
}

// loadJS is the capstan.load call of the test pages.
func loadJS(capstanURL, extra string) string {
	return fmt.Sprintf(`capstan.load({writeKey: %q, host: %q, flushInterval: 50%s})`, testWriteKey, capstanURL, extra)
}

// TestBrowserCapstanJS: capstan.js on a landing page with ?li_fat_id sends
// page, identify and track; they are stored with analytics-next's shape, the
// li_fat_id and the consent preferences, and the Insight Tag got the stored
// messageId as event_id. The li_fat_id cookie outlives the page; denying
// Advertising consent removes it and stops lintrk.
func TestBrowserCapstanJS(t *testing.T) {
	requireBrowser(t)
	pages := newPageServer(t)
	cfg := browserConfig(t, "127.0.0.1:0", pages.URL)
	srv := startServer(t, cfg)
	b := startBrowser(t)

	landing := pages.URL + "/landing?li_fat_id=123456&utm_source=linkedin&utm_campaign=spring"
	b.goTo(landing)
	var r struct {
		Sent   []sent          `json:"sent"`
		Lintrk [][]any         `json:"lintrk"`
		User   map[string]any  `json:"user"`
		Prefs  map[string]bool `json:"prefs"`
	}
	b.eval(&r, `(async () => {
		`+loadJS(srv.URL, `, insightTag: {conversions: {'Sign Up': 123456}}`)+`
		capstan.consent({Advertising: true, Analytics: true, Functional: false})
		const rs = await Promise.all([
			capstan.page('Home Page'),
			capstan.identify('user_12345', {email: 'john.doe@example.com', firstName: 'John'}),
			capstan.track('Sign Up', {plan: 'pro'}),
		])
		return {
			sent: rs.map(x => ({messageId: x.event.messageId, delivered: x.delivered, error: x.error || ''})),
			lintrk: window.lintrkCalls, user: capstan.user(), prefs: capstan.consent(),
		}
	})()`)
	if len(r.Sent) != 3 {
		t.Fatalf("page returned %+v", r)
	}
	for i, s := range r.Sent {
		if !s.Delivered || !capstanMsgRE.MatchString(s.MessageID) {
			t.Errorf("event %d: %+v; want delivered with a capstan-<ms>-<uuid> messageId", i, s)
		}
	}
	anon, _ := r.User["anonymousId"].(string)
	if !uuidV4RE.MatchString(anon) {
		t.Errorf("anonymousId %q is not a UUID v4", anon)
	}
	pageID, identifyID, trackID := r.Sent[0].MessageID, r.Sent[1].MessageID, r.Sent[2].MessageID
	wantLintrk := []any{"track", map[string]any{"conversion_id": float64(123456), "event_id": trackID}}
	if len(r.Lintrk) != 1 || !reflect.DeepEqual(r.Lintrk[0], wantLintrk) {
		t.Errorf("lintrk calls %v, want exactly %v", r.Lintrk, wantLintrk)
	}

	stored := waitStored(t, cfg, pageID, identifyID, trackID)
	prefs := map[string]bool{"Advertising": true, "Analytics": true, "Functional": false}
	pageCtx := map[string]any{
		"context.page.url":      landing,
		"context.page.path":     "/landing",
		"context.page.search":   "?li_fat_id=123456&utm_source=linkedin&utm_campaign=spring",
		"context.page.title":    "Landing",
		"context.page.referrer": "",
	}
	for id, d := range stored {
		what := fmt.Sprintf("%s %s", d.str("type"), id)
		want(t, what, d, pageCtx)
		want(t, what, d, map[string]any{
			"anonymousId":                         anon,
			"context.li_fat_id":                   "123456",
			"context.consent.categoryPreferences": prefs,
			"context.library.name":                "capstan.js",
			"context.campaign.source":             "linkedin",
			"context.campaign.name":               "spring",
			"context.locale":                      "en-US",
			"integrations":                        map[string]any{},
		})
		if ua := d.str("context.userAgent"); !strings.Contains(ua, "Chrome/") {
			t.Errorf("%s: context.userAgent %q", what, ua)
		}
		if d.str("context.library.version") == "" || d.str("context.timezone") == "" || d.str("context.ip") == "" {
			t.Errorf("%s: library version, timezone or ip missing: %v", what, d.get("context"))
		}
		for _, f := range []string{"timestamp", "originalTimestamp", "sentAt", "receivedAt"} {
			if _, err := time.Parse(storedTimeLayout, d.str(f)); err != nil {
				t.Errorf("%s: %s %q: %v", what, f, d.str(f), err)
			}
		}
	}
	want(t, "page", stored[pageID], map[string]any{
		"type":                 "page",
		"name":                 "Home Page",
		"userId":               nil,
		"properties.name":      "Home Page",
		"properties.url":       landing,
		"properties.path":      "/landing",
		"properties.search":    "?li_fat_id=123456&utm_source=linkedin&utm_campaign=spring",
		"properties.title":     "Landing",
		"properties.referrer":  "",
		"properties.li_fat_id": "123456",
	})
	want(t, "identify", stored[identifyID], map[string]any{
		"type":             "identify",
		"userId":           "user_12345",
		"traits.email":     "john.doe@example.com",
		"traits.firstName": "John",
	})
	want(t, "track", stored[trackID], map[string]any{
		"type":                 "track",
		"event":                "Sign Up",
		"userId":               "user_12345",
		"properties.plan":      "pro",
		"properties.li_fat_id": "123456",
	})

	cs := b.cookies()
	for name, val := range map[string]string{"ajs_anonymous_id": anon, "ajs_user_id": "user_12345", "li_fat_id": "123456"} {
		if cs[name].Value != val {
			t.Errorf("cookie %s = %q, want %q", name, cs[name].Value, val)
		}
	}
	lfi := cs["li_fat_id"]
	if days := (lfi.Expires - float64(time.Now().Unix())) / 86400; days < 89 || days > 91 || lfi.SameSite != "Lax" || lfi.Path != "/" || lfi.Secure {
		t.Errorf("li_fat_id cookie %+v: want 90 days, SameSite=Lax, path /, not Secure on http", lfi)
	}

	// A later page without the parameter: li_fat_id comes from the cookie,
	// the user and consent from storage.
	b.goTo(pages.URL + "/pricing")
	var s2 sent
	b.eval(&s2, `(async () => {
		`+loadJS(srv.URL, `, insightTag: {conversions: {'Sign Up': 123456}}`)+`
		const x = await capstan.track('Pricing Viewed')
		return {messageId: x.event.messageId, delivered: x.delivered}
	})()`)
	// Then the visitor withdraws advertising consent.
	var s3 struct {
		sent
		Lintrk int    `json:"lintrk"`
		Cookie string `json:"cookie"`
	}
	b.eval(&s3, `(async () => {
		capstan.consent({Advertising: false, Analytics: true})
		const x = await capstan.track('Sign Up')
		return {messageId: x.event.messageId, delivered: x.delivered, lintrk: window.lintrkCalls.length, cookie: document.cookie}
	})()`)
	stored = waitStored(t, cfg, s2.MessageID, s3.MessageID)
	want(t, "track on the second page", stored[s2.MessageID], map[string]any{
		"event":                               "Pricing Viewed",
		"userId":                              "user_12345",
		"anonymousId":                         anon,
		"properties.li_fat_id":                "123456",
		"context.li_fat_id":                   "123456",
		"context.page.search":                 "",
		"context.page.path":                   "/pricing",
		"context.consent.categoryPreferences": prefs,
	})
	want(t, "track after consent withdrawal", stored[s3.MessageID], map[string]any{
		"event":                               "Sign Up",
		"properties.li_fat_id":                nil,
		"context.li_fat_id":                   nil,
		"context.consent.categoryPreferences": map[string]bool{"Advertising": false, "Analytics": true},
	})
	if s3.Lintrk != 0 || strings.Contains(s3.Cookie, "li_fat_id") {
		t.Errorf("after Advertising=false: %d lintrk calls, cookies %q; want none and no li_fat_id", s3.Lintrk, s3.Cookie)
	}
}

// freeAddr returns a loopback address with a port nothing listens on, for
// a server started later (capstan restarted on the same port, nats-server's
// client, route and monitoring ports).
//
// The port comes from below the kernel's ephemeral range: a port that
// 127.0.0.1:0 handed out and that was closed again can be handed to the
// next :0 listener or outgoing connection of this process (the package's
// other servers and clients) before the server it was meant for binds it,
// which made nats-server stop with "bind: address already in use". A port
// below the range is only taken by an explicit bind: each is checked by a
// bind and handed out once per process.
func freeAddr(t testing.TB) string {
	t.Helper()
	fixedPorts.Lock()
	defer fixedPorts.Unlock()
	if fixedPorts.lo == 0 {
		fixedPorts.lo, fixedPorts.hi = fixedPortRange()
		fixedPorts.given = make(map[int]bool)
		if fixedPorts.hi > fixedPorts.lo {
			fixedPorts.next = fixedPorts.lo + rand.IntN(fixedPorts.hi-fixedPorts.lo)
		}
	}
	for range fixedPorts.hi - fixedPorts.lo {
		p := fixedPorts.next
		if fixedPorts.next++; fixedPorts.next >= fixedPorts.hi {
			fixedPorts.next = fixedPorts.lo
		}
		if fixedPorts.given[p] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue // taken by another process
		}
		ln.Close()
		fixedPorts.given[p] = true
		return ln.Addr().String()
	}
	// No room below the ephemeral range (or none free): what :0 gives.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// fixedPorts are the ports freeAddr has handed out, from [lo, hi).
var fixedPorts struct {
	sync.Mutex
	lo, hi, next int
	given        map[int]bool
}

// fixedPortRange returns the 8,192 ports below the kernel's ephemeral range
// (Linux's ip_local_port_range; 32768 when it cannot be read), or an empty
// range when they would reach into the privileged ports.
func fixedPortRange() (lo, hi int) {
	hi = 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				hi = n
			}
		}
	}
	if hi-8192 < 1024 {
		return 1, 1
	}
	return hi - 8192, hi
}

// TestBrowserCapstanJSRetry: events tracked while capstan is down stay
// queued in localStorage across a page reload and arrive, once each, when
// capstan is back on the same port with the same data.
func TestBrowserCapstanJSRetry(t *testing.T) {
	requireBrowser(t)
	pages := newPageServer(t)
	cfg := browserConfig(t, freeAddr(t), pages.URL)
	srv := startServer(t, cfg)
	b := startBrowser(t)
	load := loadJS(srv.URL, `, retryDelay: 100, maxRetryDelay: 400`)

	b.goTo(pages.URL + "/shop")
	var online sent
	b.eval(&online, `(async () => {
		`+load+`
		const x = await capstan.track('Online')
		return {messageId: x.event.messageId, delivered: x.delivered}
	})()`)
	if !online.Delivered {
		t.Fatalf("track while capstan is up: %+v", online)
	}

	srv.Kill()
	var offline []sent
	b.eval(&offline, `(async () => {
		const rs = await Promise.all([capstan.track('Offline 1'), capstan.track('Offline 2', {n: 2})])
		return rs.map(x => ({messageId: x.event.messageId, delivered: x.delivered, error: x.error || ''}))
	})()`)
	for _, s := range offline {
		if s.Delivered || s.Error != "network" {
			t.Errorf("track while capstan is down: %+v; want not delivered, error network", s)
		}
	}

	// The queue survives a reload (the new page adopts the closed page's queue).
	b.reload()
	var after struct {
		Pending int  `json:"pending"`
		Third   sent `json:"third"`
	}
	b.eval(&after, `(async () => {
		`+load+`
		const pending = capstan.pending()
		const x = await capstan.track('Offline 3')
		return {pending, third: {messageId: x.event.messageId, delivered: x.delivered}}
	})()`)
	if after.Pending != 2 || after.Third.Delivered {
		t.Fatalf("after reload: %+v; want 2 events adopted and the third not delivered", after)
	}

	startServer(t, cfg) // same port, same data directory
	var left int
	if !poll(15*time.Second, func() bool {
		b.eval(&left, `capstan.pending()`)
		return left == 0
	}) {
		t.Fatalf("%d events still queued 15 s after capstan came back", left)
	}
	ids := []string{online.MessageID, offline[0].MessageID, offline[1].MessageID, after.Third.MessageID}
	stored := waitStored(t, cfg, ids...)
	if len(stored) != len(ids) {
		t.Errorf("%d events stored, want %d", len(stored), len(ids))
	}
	for i, name := range []string{"Online", "Offline 1", "Offline 2", "Offline 3"} {
		if got := stored[ids[i]].str("event"); got != name {
			t.Errorf("event %s: %q, want %q", ids[i], got, name)
		}
	}
	if got := stored[ids[2]].get("properties.n"); got != float64(2) {
		t.Errorf("Offline 2 properties.n = %v, want 2", got)
	}
}

// TestBrowserCapstanJSUnload: a form submit that leaves the page at once.
// The event, still queued when the page goes (flushInterval is long), leaves
// with the pagehide keepalive request: it is stored although the next page
// has no capstan.js. A later page with capstan.js adopts whatever the closed
// page left in localStorage and sends it again; capstan keeps one copy.
func TestBrowserCapstanJSUnload(t *testing.T) {
	requireBrowser(t)
	pages := newPageServer(t)
	cfg := browserConfig(t, "127.0.0.1:0", pages.URL)
	srv := startServer(t, cfg)
	b := startBrowser(t)

	b.goTo(pages.URL + "/form")
	id := fmt.Sprintf("submit-%d", time.Now().UnixNano())
	b.eval(nil, `(() => {
		`+loadJS(srv.URL, `, flushInterval: 60000, flushAt: 100`)+`
		capstan.track('Form Submitted', {form: 'demo'}, {messageId: `+fmt.Sprintf("%q", id)+`})
		setTimeout(() => { location.href = '/plain-thanks' }, 0)
		return capstan.pending()
	})()`)
	b.waitForURL(pages.URL + "/plain-thanks")
	stored := waitStored(t, cfg, id)
	want(t, "submitted on pagehide", stored[id], map[string]any{
		"event":             "Form Submitted",
		"properties.form":   "demo",
		"context.page.path": "/form",
	})

	b.goTo(pages.URL + "/next")
	b.eval(nil, loadJS(srv.URL, ""))
	var left int
	if !poll(10*time.Second, func() bool {
		b.eval(&left, `capstan.pending()`)
		return left == 0
	}) {
		t.Fatalf("%d events still queued on the next page", left)
	}
	waitStored(t, cfg, id) // fails when stored twice
	resp, err := newHTTPClient(t).Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, l := range strings.Split(string(m), "\n") {
		if strings.HasPrefix(l, "capstan_ingest_events_total") {
			t.Logf("%s", l)
		}
	}
}

// fakeIngest is a scripted stand-in for capstan's /v1/b: it answers the
// queued statuses in order (200 once they are used up), with capstan's CORS
// headers, and records every request.
type fakeIngest struct {
	*httptest.Server
	mu     sync.Mutex
	script []int
	reqs   []fakeRequest
}

type fakeRequest struct {
	at     time.Time
	status int
	header http.Header
	body   struct {
		Batch    []doc  `json:"batch"`
		WriteKey string `json:"writeKey"`
		SentAt   string `json:"sentAt"`
	}
}

func newFakeIngest(t testing.TB) *fakeIngest {
	f := &fakeIngest{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
		hd.Set("Access-Control-Allow-Credentials", "true")
		hd.Set("Access-Control-Expose-Headers", "Retry-After, X-RateLimit-Reset")
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		req := fakeRequest{at: time.Now(), status: http.StatusOK, header: r.Header.Clone()}
		if err := json.NewDecoder(r.Body).Decode(&req.body); err != nil || r.URL.Path != "/v1/b" {
			req.status = http.StatusBadRequest
		}
		f.mu.Lock()
		if len(f.script) > 0 && req.status == http.StatusOK {
			req.status, f.script = f.script[0], f.script[1:]
		}
		f.reqs = append(f.reqs, req)
		f.mu.Unlock()
		if req.status == http.StatusTooManyRequests {
			hd.Set("Retry-After", "1")
		}
		hd.Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(req.status)
		_, _ = fmt.Fprintf(w, `{"success":%v}`, req.status < 300)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeIngest) answer(statuses ...int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script = statuses
}

// named returns the events called name that were sent, in order.
func (f *fakeIngest) named(name string) []doc {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []doc
	for _, r := range f.reqs {
		for _, ev := range r.body.Batch {
			if ev.str("event") == name || ev.str("name") == name {
				out = append(out, ev)
			}
		}
	}
	return out
}

// requestsFor returns the requests that carried messageId, in order.
func (f *fakeIngest) requestsFor(messageID string) []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeRequest
	for _, r := range f.reqs {
		for _, ev := range r.body.Batch {
			if ev.str("messageId") == messageID {
				out = append(out, r)
			}
		}
	}
	return out
}

// TestBrowserCapstanJSStatusCodes: capstan.js's reaction to capstan's
// answers (segment-ingest.md §3.5): 429 is retried no sooner than
// Retry-After, 5xx with backoff, other 4xx are dropped; requests are simple
// CORS requests (text/plain, no Authorization) that carry the site's
// cookies (credentials: 'include').
func TestBrowserCapstanJSStatusCodes(t *testing.T) {
	requireBrowser(t)
	pages := newPageServer(t)
	fake := newFakeIngest(t)
	b := startBrowser(t)

	b.goTo(pages.URL + "/codes?li_fat_id=555")
	b.eval(nil, fmt.Sprintf(`capstan.load({writeKey: %q, host: %q, flushInterval: 20, retryDelay: 50, maxRetryDelay: 200}) && 1`, testWriteKey, fake.URL))
	track := func(name string) sent {
		t.Helper()
		var s sent
		b.eval(&s, `capstan.track(`+fmt.Sprintf("%q", name)+`).then(x => ({messageId: x.event.messageId, delivered: x.delivered, error: x.error || ''}))`)
		return s
	}
	drained := func() {
		t.Helper()
		var left int
		if !poll(10*time.Second, func() bool {
			b.eval(&left, `capstan.pending()`)
			return left == 0
		}) {
			t.Fatalf("%d events still queued after 10 s", left)
		}
	}

	fake.answer(http.StatusTooManyRequests)
	limited := track("Rate Limited")
	if limited.Delivered || limited.Error != "http_429" {
		t.Errorf("after a 429: %+v; want not delivered, error http_429", limited)
	}
	drained()
	reqs := fake.requestsFor(limited.MessageID)
	if len(reqs) != 2 || reqs[0].status != 429 || reqs[1].status != 200 {
		t.Fatalf("%d requests for the rate-limited event, want a 429 then a 200", len(reqs))
	}
	if gap := reqs[1].at.Sub(reqs[0].at); gap < 950*time.Millisecond {
		t.Errorf("retried %s after a 429 with Retry-After: 1", gap)
	}
	if reqs[0].body.SentAt == reqs[1].body.SentAt {
		t.Errorf("the retry kept sentAt %s; want the time of each request", reqs[0].body.SentAt)
	}

	fake.answer(http.StatusBadRequest)
	refused := track("Refused")
	if refused.Delivered || refused.Error != "http_400" {
		t.Errorf("after a 400: %+v; want dropped with error http_400", refused)
	}

	fake.answer(http.StatusServiceUnavailable, http.StatusInternalServerError)
	flaky := track("Flaky")
	if flaky.Delivered || flaky.Error != "http_503" {
		t.Errorf("after a 503: %+v; want not delivered yet, error http_503", flaky)
	}
	drained()
	if got := fake.requestsFor(flaky.MessageID); len(got) != 3 || got[2].status != 200 {
		t.Errorf("%d requests for the event answered 503 then 500, want 3 ending with a 200", len(got))
	}
	if got := fake.requestsFor(refused.MessageID); len(got) != 1 {
		t.Errorf("the event refused with 400 was sent %d times, want once", len(got))
	}

	r := reqs[0]
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want text/plain (no CORS preflight)", ct)
	}
	if a := r.header.Get("Authorization"); a != "" {
		t.Errorf("Authorization %q sent; the write key belongs in the body", a)
	}
	if o := r.header.Get("Origin"); o != pages.URL {
		t.Errorf("Origin %q, want %q", o, pages.URL)
	}
	if c := r.header.Get("Cookie"); !strings.Contains(c, "li_fat_id=555") || !strings.Contains(c, "ajs_anonymous_id=") {
		t.Errorf("Cookie %q: want the site's cookies (credentials: 'include')", c)
	}
	if r.body.WriteKey != testWriteKey {
		t.Errorf("body writeKey %q, want %q", r.body.WriteKey, testWriteKey)
	}

	// The async installation: calls made before the script loaded are sent.
	b.goTo(pages.URL + "/stub-page?host=" + url.QueryEscape(fake.URL))
	if !poll(10*time.Second, func() bool { return len(fake.named("Stub Track")) > 0 && len(fake.named("Stub")) > 0 }) {
		t.Fatalf("the calls queued by the stub were not sent")
	}
	if got := fake.named("Stub Track")[0].str("properties.via"); got != "stub" {
		t.Errorf("Stub Track properties.via = %q", got)
	}
}

// loadAnalyticsNext is the page set-up of segment-ingest.md §3.2.
func loadAnalyticsNext(capstanURL string) string {
	host := strings.TrimPrefix(capstanURL, "http://")
	return fmt.Sprintf(`const [analytics] = await AnalyticsNext.AnalyticsBrowser.load(
			{writeKey: %q, cdnURL: %q},
			{integrations: {'Segment.io': {apiHost: %q, protocol: 'http'}}})
		window.analytics = analytics`, testWriteKey, capstanURL, host+"/v1")
}

// TestBrowserAnalyticsNextPublicURL: with server.public_url set and no
// apiHost in the page's init options, analytics-next sends where the
// settings document's apiHost (public_url's host + "/v1") and protocol say.
func TestBrowserAnalyticsNextPublicURL(t *testing.T) {
	requireBrowser(t)
	pages := newPageServer(t)
	addr := freeAddr(t)
	cfg := browserConfig(t, addr, pages.URL)
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text = []byte(strings.Replace(string(text), "  shutdown_grace: 5s\n", "  shutdown_grace: 5s\n  public_url: http://"+addr+"\n", 1))
	if err := os.WriteFile(cfg, text, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, cfg)
	b := startBrowser(t)

	b.goTo(pages.URL + "/ajs-docs")
	var r sent
	b.eval(&r, `(async () => {
		const [analytics] = await AnalyticsNext.AnalyticsBrowser.load({writeKey: `+fmt.Sprintf("%q, cdnURL: %q", testWriteKey, srv.URL)+`})
		const c = await analytics.track('Public URL')
		return {messageId: c.event.messageId, delivered: !c.failedDelivery(), error: c.failedDelivery() ? String(c.failedDelivery().reason) : ''}
	})()`)
	if !r.Delivered {
		t.Fatalf("track: %+v", r)
	}
	stored := waitStored(t, cfg, r.MessageID)
	want(t, "track", stored[r.MessageID], map[string]any{"event": "Public URL"})
}

// TestBrowserAnalyticsNext: the unmodified analytics-next, pointed at
// capstan, loads its settings from capstan and sends page, identify and
// track cross-origin (preflight, Basic auth), and they are stored.
func TestBrowserAnalyticsNext(t *testing.T) {
	requireBrowser(t)
	pages := newPageServer(t)
	cfg := browserConfig(t, "127.0.0.1:0", pages.URL)
	srv := startServer(t, cfg)
	b := startBrowser(t)

	b.goTo(pages.URL + "/ajs-docs")
	var r struct {
		Sent    []sent `json:"sent"`
		Version string `json:"version"`
		Anon    string `json:"anon"`
	}
	b.eval(&r, `(async () => {
		`+loadAnalyticsNext(srv.URL)+`
		const cs = [
			await analytics.page('Docs'),
			await analytics.identify('user_ajs', {email: 'ann@example.com'}),
			await analytics.track('AJS Track', {n: 1}),
		]
		return {
			sent: cs.map(c => ({messageId: c.event.messageId, delivered: !c.failedDelivery(), error: c.failedDelivery() ? String(c.failedDelivery().reason) : ''})),
			version: analytics.VERSION, anon: analytics.user().anonymousId(),
		}
	})()`)
	t.Logf("@segment/analytics-next %s", r.Version)
	if len(r.Sent) != 3 {
		t.Fatalf("page returned %+v", r)
	}
	ids := make([]string, 3)
	for i, s := range r.Sent {
		if !s.Delivered || !ajsMsgRE.MatchString(s.MessageID) {
			t.Errorf("event %d: %+v", i, s)
		}
		ids[i] = s.MessageID
	}
	stored := waitStored(t, cfg, ids...)
	for i, typ := range []string{"page", "identify", "track"} {
		d := stored[ids[i]]
		want(t, typ, d, map[string]any{
			"type":                 typ,
			"anonymousId":          r.Anon,
			"context.library.name": "analytics.js",
			"context.page.path":    "/ajs-docs",
			"context.page.title":   "Ajs-docs",
		})
		if v := d.str("context.library.version"); !strings.HasSuffix(v, r.Version) {
			t.Errorf("%s: context.library.version %q, want ...%s", typ, v, r.Version)
		}
		if _, has := d["writeKey"]; has {
			t.Errorf("%s stored with its writeKey", typ)
		}
	}
	want(t, "page", stored[ids[0]], map[string]any{"name": "Docs", "properties.path": "/ajs-docs"})
	want(t, "identify", stored[ids[1]], map[string]any{"userId": "user_ajs", "traits.email": "ann@example.com"})
	want(t, "track", stored[ids[2]], map[string]any{"userId": "user_ajs", "event": "AJS Track", "properties.n": float64(1)})
}

// TestBrowserAttach: capstan.attach(analytics) adds li_fat_id and consent
// to analytics-next's events, and for a mapped track event sets the
// messageId that lintrk received as event_id.
func TestBrowserAttach(t *testing.T) {
	requireBrowser(t)
	pages := newPageServer(t)
	cfg := browserConfig(t, "127.0.0.1:0", pages.URL)
	srv := startServer(t, cfg)
	b := startBrowser(t)

	b.goTo(pages.URL + "/ajs-demo?li_fat_id=987654")
	var r struct {
		Sent   []sent  `json:"sent"`
		Lintrk [][]any `json:"lintrk"`
	}
	b.eval(&r, `(async () => {
		`+loadAnalyticsNext(srv.URL)+`
		capstan.consent({Advertising: true, Analytics: false})
		await capstan.attach(analytics, {insightTag: {conversions: {'Demo Requested': 777}}})
		const cs = [
			await analytics.page(),
			await analytics.track('Demo Requested', {plan: 'team'}),
			await analytics.identify('user_att'),
		]
		return {
			sent: cs.map(c => ({messageId: c.event.messageId, delivered: !c.failedDelivery()})),
			lintrk: window.lintrkCalls,
		}
	})()`)
	if len(r.Sent) != 3 {
		t.Fatalf("page returned %+v", r)
	}
	ids := make([]string, 3)
	for i, s := range r.Sent {
		if !s.Delivered {
			t.Errorf("event %d not delivered: %+v", i, s)
		}
		ids[i] = s.MessageID
	}
	wantLintrk := []any{"track", map[string]any{"conversion_id": float64(777), "event_id": ids[1]}}
	if len(r.Lintrk) != 1 || !reflect.DeepEqual(r.Lintrk[0], wantLintrk) {
		t.Errorf("lintrk calls %v, want exactly %v", r.Lintrk, wantLintrk)
	}
	stored := waitStored(t, cfg, ids...)
	prefs := map[string]bool{"Advertising": true, "Analytics": false}
	for i, typ := range []string{"page", "track", "identify"} {
		want(t, typ, stored[ids[i]], map[string]any{
			"type":                                typ,
			"context.library.name":                "analytics.js",
			"context.li_fat_id":                   "987654",
			"context.consent.categoryPreferences": prefs,
		})
	}
	want(t, "page", stored[ids[0]], map[string]any{"properties.li_fat_id": "987654"})
	want(t, "track", stored[ids[1]], map[string]any{"properties.li_fat_id": "987654", "properties.plan": "team", "messageId": ids[1]})
	if !ajsMsgRE.MatchString(ids[1]) {
		t.Errorf("track messageId %q is not analytics-next's", ids[1])
	}
	if c := b.cookies()["li_fat_id"]; c.Value != "987654" {
		t.Errorf("li_fat_id cookie %+v, want 987654", c)
	}
}

// TestBrowserCapstanJSUserHash: the userHash given to identify (or to load,
// for the stored user id) goes with every event of that user id as
// context.capstan.userHash, and with no other user's.
func TestBrowserCapstanJSUserHash(t *testing.T) {
	requireBrowser(t)
	pages := newPageServer(t)
	fake := newFakeIngest(t)
	b := startBrowser(t)
	load := fmt.Sprintf(`capstan.load({writeKey: %q, host: %q, flushInterval: 20%%s})`, testWriteKey, fake.URL)

	var ids []string
	b.goTo(pages.URL + "/verified")
	b.eval(&ids, `(async () => {
		`+fmt.Sprintf(load, "")+`
		const rs = []
		rs.push(await capstan.identify('u_1', {plan: 'pro'}, {userHash: 'h1'}))
		rs.push(await capstan.track('Signed In'))
		rs.push(await capstan.identify('u_2'))
		rs.push(await capstan.track('Other User'))
		return rs.map(x => x.event.messageId)
	})()`)
	var more []string
	b.goTo(pages.URL + "/verified-again")
	b.eval(&more, `(async () => {
		`+fmt.Sprintf(load, ", userHash: 'h2'")+`
		const rs = [await capstan.track('Next Page')]
		capstan.reset()
		rs.push(await capstan.track('Signed Out'))
		return rs.map(x => x.event.messageId)
	})()`)
	ids = append(ids, more...)
	want := []string{"h1", "h1", "", "", "h2", ""}
	if len(ids) != len(want) {
		t.Fatalf("sent %v", ids)
	}
	for i, id := range ids {
		var ev doc
		for _, r := range fake.requestsFor(id) {
			for _, e := range r.body.Batch {
				if e.str("messageId") == id {
					ev = e
				}
			}
		}
		if ev == nil {
			t.Fatalf("event %d (%s) was not sent", i, id)
		}
		if got := ev.str("context.capstan.userHash"); got != want[i] || ev.get("context.userHash") != nil {
			t.Errorf("event %d (%s %s, user %s): context %v; want context.capstan.userHash %q", i, ev.str("type"), ev.str("event"), ev.str("userId"), ev.get("context.capstan"), want[i])
		}
	}
}

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The demo test runs the real `capstan demo` (capstan, its in-process
// LinkedIn sandbox and the /demo page) and walks through the demo as a
// visitor would, in Debian's headless Chromium driven by browser/demo.mjs:
// an ad click landing, a sign-up on a later visit, a server-side event from
// the site's back end (the real @segment/analytics-node), and a visitor who
// denies advertising consent. It also keeps docs/demo.png, the README's
// screenshot of the page: CAPSTAN_UPDATE_SCREENSHOT=1 rewrites it.

// updateScreenshotEnv, set to 1, makes TestDemo rewrite docs/demo.png.
const updateScreenshotEnv = "CAPSTAN_UPDATE_SCREENSHOT"

const (
	demoWriteKey   = "wk_demo_website"
	demoPageRule   = "CAPI Page View (capstan demo)"
	demoSignUpRule = "CAPI Sign Up (capstan demo)"
	// The demo form's default email, and the SHA-256 LinkedIn must get.
	demoEmail     = "john.doe@example.com"
	demoEmailHash = "836f82db99121b3481011f16b49dfa5fbc714a0d1b1b9f784a1ebbbf5b39577f"
	demoLiFatID   = "123456"
	demoIDLiFatID = "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID"
	demoIDEmail   = "SHA256_EMAIL"
	demoShotW     = 1280
	demoShotH     = 900
)

// demoProc is one `capstan demo` child process.
type demoProc struct {
	t          testing.TB
	URL        string // capstan: http://127.0.0.1:PORT (tracking API under /v1, page at /demo)
	SandboxURL string
	DataDir    string
	info       demoInfo

	cmd     *exec.Cmd
	mu      sync.Mutex
	out     bytes.Buffer
	exited  chan struct{}
	waitErr error
}

// demoInfo is GET /demo/api/info.
type demoInfo struct {
	WriteKey   string            `json:"writeKey"`
	Rules      map[string]string `json:"rules"`
	SignUpRule string            `json:"signUpRule"`
	SandboxURL string            `json:"sandboxUrl"`
}

func (d *demoProc) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.Write(p)
}

func (d *demoProc) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

var (
	demoPageLine    = regexp.MustCompile(`(?m)^\s*demo page:\s+(http://\S+)/demo\?li_fat_id=123456$`)
	demoSandboxLine = regexp.MustCompile(`(?m)^\s*LinkedIn sandbox:\s+(http://\S+)\s`)
)

// startDemo runs `capstan demo` on ports the kernel picks, with a data
// directory of its own, and waits until capstan is ready and the page knows
// both conversion rules. The process is killed when the test ends.
func startDemo(t testing.TB) *demoProc {
	t.Helper()
	d := &demoProc{t: t, DataDir: filepath.Join(t.TempDir(), "data"), exited: make(chan struct{})}
	d.cmd = exec.Command(capstanBin, "demo", "--addr", "127.0.0.1:0", "--sandbox-addr", "127.0.0.1:0", "--data-dir", d.DataDir, "--log-level", "info")
	d.cmd.Stdout, d.cmd.Stderr = d, d
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start capstan demo: %v", err)
	}
	go func() {
		d.waitErr = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		d.kill()
		if strings.Contains(d.output(), "WARNING: DATA RACE") {
			t.Errorf("capstan demo reported a data race")
		}
		if t.Failed() {
			t.Logf("capstan demo (pid %d) output:\n%s", d.cmd.Process.Pid, d.output())
		}
	})
	running := func() bool {
		select {
		case <-d.exited:
			return false
		default:
			return true
		}
	}

	if !poll(30*time.Second, func() bool {
		out := d.output()
		p, s := demoPageLine.FindStringSubmatch(out), demoSandboxLine.FindStringSubmatch(out)
		if p != nil && s != nil {
			d.URL, d.SandboxURL = p[1], s[1]
			return true
		}
		return !running()
	}) || !running() {
		t.Fatalf("capstan demo printed no URLs (exited: %v, %v):\n%s", !running(), d.waitErr, d.output())
	}
	hc := newHTTPClient(t)
	hc.Timeout = 2 * time.Second
	if !poll(30*time.Second, func() bool {
		if !running() {
			return true
		}
		resp, err := hc.Get(d.URL + "/readyz")
		if err != nil {
			return false
		}
		drain(resp)
		if resp.StatusCode != http.StatusOK {
			return false
		}
		d.info = demoInfo{}
		return demoGetJSON(hc, d.URL+"/demo/api/info", &d.info) == nil && d.info.SignUpRule != "" && d.info.Rules[demoPageRule] != ""
	}) || !running() {
		t.Fatalf("capstan demo not ready with both rules in 30 s (running: %v; info %+v)", running(), d.info)
	}
	return d
}

// stop interrupts the demo as Ctrl-C does and waits for a clean exit.
func (d *demoProc) stop() {
	d.t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil {
		d.t.Fatalf("interrupt capstan demo: %v", err)
	}
	select {
	case <-d.exited:
	case <-time.After(20 * time.Second):
		d.t.Fatalf("capstan demo still running 20 s after SIGINT")
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		d.t.Fatalf("capstan demo exited %d after SIGINT", code)
	}
}

func (d *demoProc) kill() {
	select {
	case <-d.exited:
	default:
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
}

// ruleURN is how a conversion names the rule called name.
func (d *demoProc) ruleURN(name string) string {
	return "urn:lla:llaPartnerConversion:" + d.info.Rules[name]
}

// config writes a configuration for the demo's data directory (the demo
// has no file of its own), for the commands that read it once it stopped.
func (d *demoProc) config() string {
	d.t.Helper()
	path := filepath.Join(d.t.TempDir(), "demo.yaml")
	text := fmt.Sprintf("server:\n  addr: \"127.0.0.1:0\"\n  data_dir: %q\nsources:\n  - name: website\n    write_key: %s\n", d.DataDir, demoWriteKey)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		d.t.Fatal(err)
	}
	return path
}

func demoGetJSON(hc *http.Client, url string, v any) error {
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return json.Unmarshal(b, v)
}

// demoConversion is one conversion body as the sandbox accepted it.
type demoConversion struct {
	Conversion           string `json:"conversion"`
	ConversionHappenedAt int64  `json:"conversionHappenedAt"`
	EventID              string `json:"eventId"`
	ConversionValue      *struct {
		CurrencyCode string `json:"currencyCode"`
		Amount       string `json:"amount"`
	} `json:"conversionValue"`
	User struct {
		UserIDs []struct {
			IDType  string `json:"idType"`
			IDValue string `json:"idValue"`
		} `json:"userIds"`
		UserInfo map[string]string `json:"userInfo"`
	} `json:"user"`
}

// ids returns the conversion's user ids by type.
func (c demoConversion) ids() map[string][]string {
	m := map[string][]string{}
	for _, id := range c.User.UserIDs {
		m[id.IDType] = append(m[id.IDType], id.IDValue)
	}
	return m
}

// conversions returns every conversion the sandbox accepted, oldest first.
func (d *demoProc) conversions(hc *http.Client) []demoConversion {
	d.t.Helper()
	var out struct {
		Elements []demoConversion `json:"elements"`
	}
	if err := demoGetJSON(hc, d.SandboxURL+"/_sandbox/conversions", &out); err != nil {
		d.t.Fatal(err)
	}
	return out.Elements
}

// waitConversion polls the sandbox until it holds the conversion whose
// eventId is id, and returns it; it fails the test after 15 s.
func (d *demoProc) waitConversion(hc *http.Client, id, what string) demoConversion {
	d.t.Helper()
	var found *demoConversion
	var all []demoConversion
	if !poll(15*time.Second, func() bool {
		all = d.conversions(hc)
		for i := range all {
			if all[i].EventID == id {
				found = &all[i]
				return true
			}
		}
		return false
	}) {
		d.t.Fatalf("%s: no conversion with eventId %s in the sandbox after 15 s; it holds %d: %+v\ndelivery metrics: %v",
			what, id, len(all), all, d.outcomes(hc))
	}
	return *found
}

// outcomes returns the demo's capstan_delivery_events_total by outcome.
func (d *demoProc) outcomes(hc *http.Client) map[string]int {
	d.t.Helper()
	m := map[string]int{}
	for _, o := range []string{"received", "delivered", "dead_lettered", "invalid", "not_matched", "filtered_consent", "filtered_source", "filtered_integrations"} {
		m[o] = deliveryEvents(d.t, hc, d.URL, o)
	}
	return m
}

// demoSettled reports whether every event capstan received has been delivered,
// dead-lettered or set aside (no match, no consent, filtered).
func demoSettled(m map[string]int) bool {
	done := m["delivered"] + m["dead_lettered"] + m["not_matched"] + m["filtered_consent"] + m["filtered_source"] + m["filtered_integrations"]
	return done >= m["received"]
}

// startDemoBrowser starts browser/demo.mjs: driver.mjs's protocol (so the
// browser type of browser_test.go drives it) with a 1280x900 window and the
// extra commands the demo needs (form input, screenshots, a fresh profile,
// analytics-node).
func startDemoBrowser(t testing.TB) *browser { return startDriver(t, "demo.mjs") }

// demoWaitFor waits (15 s at most) until the page expression expr is truthy and
// decodes its value into v.
func demoWaitFor(b *browser, v any, expr string) {
	b.t.Helper()
	res := b.do(map[string]any{"op": "waitFor", "expr": expr})
	if err := json.Unmarshal(res, v); err != nil {
		b.t.Fatalf("waitFor %s: result %s: %v", expr, res, err)
	}
}

// demoSent is window.lastPageView / window.lastSignUp of the demo page.
type demoSent struct {
	UserID    string `json:"userId"`
	MessageID string `json:"messageId"`
	Delivered bool   `json:"delivered"`
}

// visit opens the demo page at u and returns its page view once capstan
// has stored it.
func demoVisit(b *browser, u string) demoSent {
	b.t.Helper()
	b.goTo(u)
	var pv demoSent
	demoWaitFor(b, &pv, `window.lastPageView`)
	if !pv.Delivered || !capstanMsgRE.MatchString(pv.MessageID) {
		b.t.Fatalf("page view on %s: %+v; want stored with a capstan.js messageId", u, pv)
	}
	return pv
}

// submit submits the demo form and returns the Sign Up once capstan has
// stored it.
func demoSubmit(b *browser) demoSent {
	b.t.Helper()
	b.eval(nil, `window.lastSignUp = undefined`)
	b.do(map[string]any{"op": "click", "selector": "#submit"})
	var su demoSent
	demoWaitFor(b, &su, `window.lastSignUp`)
	if !su.Delivered || !capstanMsgRE.MatchString(su.MessageID) {
		b.t.Fatalf("Sign Up: %+v; want stored with a capstan.js messageId", su)
	}
	return su
}

// demoLintrkCall is one call the page made to its Insight Tag stub.
type demoLintrkCall struct {
	Action string `json:"action"`
	Data   struct {
		ConversionID json.Number `json:"conversion_id"`
		EventID      string      `json:"event_id"`
	} `json:"data"`
}

// demoServerTrack sends, from the site's back end with @segment/analytics-node,
// a track "Sign Up" that names the person by userId only, and returns its
// messageId.
func demoServerTrack(b *browser, d *demoProc, userID string) string {
	b.t.Helper()
	var r struct {
		Event  doc `json:"event"`
		Status int `json:"status"`
	}
	res := b.do(map[string]any{"op": "segmentTrack", "host": d.URL, "writeKey": demoWriteKey, "userId": userID, "event": "Sign Up",
		// As in the README's curl example: the demo mapping reads
		// conversionValue.currencyCode from properties.currency.
		"properties": map[string]any{"currency": "USD"}})
	if err := json.Unmarshal(res, &r); err != nil {
		b.t.Fatalf("segmentTrack: %s: %v", res, err)
	}
	if r.Status != http.StatusOK || r.Event.str("userId") != userID || r.Event.str("messageId") == "" {
		b.t.Fatalf("analytics-node: status %d, event %v", r.Status, r.Event)
	}
	for _, k := range []string{"anonymousId", "context.li_fat_id", "properties.li_fat_id", "properties.email", "context.traits"} {
		if v := r.Event.get(k); v != nil {
			b.t.Fatalf("the server-side event carries %s = %v; it must name the person by userId only", k, v)
		}
	}
	return r.Event.str("messageId")
}

// demoIdentityShow runs `capstan identity show --json` on the stopped demo's
// data; ok is false when the graph holds nothing for the id (exit 1).
func demoIdentityShow(t testing.TB, cfg, flag, id string) (p struct {
	LiFatID     string `json:"liFatId"`
	EmailSHA256 string `json:"emailSha256"`
	Links       []string
	// Unverified is what the demo page's events (a browser's, whose
	// userId nobody signed) taught the graph, by source.
	Unverified map[string]struct {
		LiFatID     string `json:"liFatId"`
		EmailSHA256 string `json:"emailSha256"`
		Links       []string
	}
}, ok bool) {
	t.Helper()
	code, stdout, stderr := runCapstan(t, filepath.Dir(cfg), nil, 30*time.Second, "identity", "show", "--config", cfg, flag, id, "--json")
	switch code {
	case 0:
		if err := json.Unmarshal([]byte(stdout), &p); err != nil {
			t.Fatalf("identity show %s %s printed %q: %v", flag, id, stdout, err)
		}
		return p, true
	case 1:
		if !strings.Contains(stderr, "no identity profile") {
			t.Fatalf("identity show %s %s: exit 1: %s", flag, id, stderr)
		}
		return p, false
	default:
		t.Fatalf("identity show %s %s: exit %d: %s%s", flag, id, code, stdout, stderr)
	}
	return p, false
}

// TestDemo walks through `capstan demo` in a real browser:
//  1. landing on /demo?li_fat_id=123456 gives a Page View conversion with
//     the click id;
//  2. a later visit without the parameter (same browser) and a sign-up give
//     a Sign Up conversion with the click id, the hashed email and the
//     names, whose eventId is the event_id of the Insight Tag call and the
//     messageId capstan stored;
//  3. a server-side track with only the userId (analytics-node) becomes a
//     conversion enriched from the identity graph;
//  4. a visitor who denies advertising consent (a fresh browser) sends
//     nothing to LinkedIn and teaches the graph nothing: a later server-side
//     track with their userId is dead-lettered as invalid;
//  5. docs/demo.png is the page after step 3 (taken before step 4).
func TestDemo(t *testing.T) {
	requireBrowser(t)
	requireNodeModules(t)
	hc := newHTTPClient(t)
	hc.Timeout = 5 * time.Second
	d := startDemo(t)
	b := startDemoBrowser(t)
	pageRule, signUpRule := d.ruleURN(demoPageRule), d.ruleURN(demoSignUpRule)

	start := time.Now()
	step := func(what string) { t.Logf("%-14s done at %s", what, time.Since(start).Round(time.Millisecond)) }

	// 1. The ad click's landing page.
	landing := demoVisit(b, d.URL+"/demo?li_fat_id="+demoLiFatID)
	c := d.waitConversion(hc, landing.MessageID, "landing page view")
	if c.Conversion != pageRule || !slices.Equal(c.ids()[demoIDLiFatID], []string{demoLiFatID}) {
		t.Errorf("landing page view: conversion %s with user ids %v; want %s with %s [%s]", c.Conversion, c.ids(), pageRule, demoIDLiFatID, demoLiFatID)
	}
	step("landing")

	// 2. Back later, without the parameter: the click id comes from the
	// first-party cookie.
	back := demoVisit(b, d.URL+"/demo")
	var shown string
	b.eval(&shown, `document.getElementById('li_fat_id').value`)
	if shown != demoLiFatID {
		t.Errorf("the form shows li_fat_id %q on the second visit, want %s (from the cookie)", shown, demoLiFatID)
	}
	su := demoSubmit(b)
	if want := "demo-" + demoEmailHash[:16]; su.UserID != want {
		t.Errorf("userId %q, want %q", su.UserID, want)
	}
	var calls []demoLintrkCall
	b.eval(&calls, `window.lintrkCalls`)
	if len(calls) != 1 || calls[0].Action != "track" || calls[0].Data.ConversionID.String() != d.info.SignUpRule || calls[0].Data.EventID != su.MessageID {
		t.Errorf("lintrk calls %+v; want one track with conversion_id %s and event_id %s (the Sign Up's messageId)", calls, d.info.SignUpRule, su.MessageID)
	}
	c = d.waitConversion(hc, su.MessageID, "Sign Up")
	if c.Conversion != signUpRule {
		t.Errorf("Sign Up: conversion %s, want %s", c.Conversion, signUpRule)
	}
	if ids := c.ids(); !slices.Equal(ids[demoIDLiFatID], []string{demoLiFatID}) || !slices.Equal(ids[demoIDEmail], []string{demoEmailHash}) || len(ids) != 2 {
		t.Errorf("Sign Up: user ids %v; want %s [%s] and %s [%s]", ids, demoIDLiFatID, demoLiFatID, demoIDEmail, demoEmailHash)
	}
	wantInfo := map[string]string{"firstName": "John", "lastName": "Doe", "companyName": "Acme Inc", "title": "Engineer", "countryCode": "US"}
	if !maps.Equal(c.User.UserInfo, wantInfo) {
		t.Errorf("Sign Up: userInfo %v, want %v", c.User.UserInfo, wantInfo)
	}
	if v := c.ConversionValue; v == nil || v.CurrencyCode != "USD" || v.Amount != "0" {
		t.Errorf("Sign Up: conversionValue %+v, want 0 USD", v)
	}
	d.waitConversion(hc, back.MessageID, "page view of the second visit")
	step("sign-up")

	// 3. The back end reports a Sign Up naming the user only.
	serverID := demoServerTrack(b, d, su.UserID)
	c = d.waitConversion(hc, serverID, "server-side Sign Up")
	if ids := c.ids(); c.Conversion != signUpRule || !slices.Equal(ids[demoIDLiFatID], []string{demoLiFatID}) || !slices.Equal(ids[demoIDEmail], []string{demoEmailHash}) {
		t.Errorf("server-side Sign Up: conversion %s with user ids %v; want %s enriched from the graph with %s and the email hash",
			c.Conversion, ids, signUpRule, demoLiFatID)
	}
	convs := d.conversions(hc)
	if len(convs) != 4 {
		t.Errorf("the sandbox holds %d conversions, want 4 (two page views, two Sign Ups): %+v", len(convs), convs)
	}
	step("server-side")

	// 5. The screenshot: the live panel shows the four conversions, the
	// Sign Up marked as sharing its id with the Insight Tag call.
	var panel struct {
		Items  int  `json:"items"`
		Badged bool `json:"badged"`
	}
	demoWaitFor(b, &panel, `(() => {
		const items = document.querySelectorAll('#conversions li.conv')
		const badged = [...items].some(li => li.textContent.includes(`+fmt.Sprintf("%q", su.MessageID)+`) && li.querySelector('.badge'))
		return items.length === `+fmt.Sprint(len(convs))+` && badged && {items: items.length, badged}
	})()`)
	demoScreenshot(t, b)
	step("screenshot")

	// 4. A visitor who denies advertising consent, in a fresh browser.
	var before map[string]int
	if !poll(15*time.Second, func() bool {
		before = d.outcomes(hc)
		return before["received"] >= 5 && demoSettled(before)
	}) {
		t.Fatalf("capstan did not settle the first visitor's 5 events in 15 s: %v", before)
	}
	b.do(map[string]any{"op": "newContext", "userDataDir": t.TempDir()})
	first := demoVisit(b, d.URL+"/demo") // consent is granted by default until the box is unchecked
	b.do(map[string]any{"op": "check", "selector": "#consent", "checked": false})
	var prefs map[string]bool
	b.eval(&prefs, `capstan.consent()`)
	if !maps.Equal(prefs, map[string]bool{"Advertising": false}) {
		t.Fatalf("after unchecking the box, capstan.consent() = %v", prefs)
	}
	// Then the visitor comes from an ad and signs up.
	denied := demoVisit(b, d.URL+"/demo?li_fat_id=654321")
	var state struct {
		Checked bool   `json:"checked"`
		LiFatID string `json:"liFatId"`
		Anon    string `json:"anon"`
	}
	b.eval(&state, `({checked: document.getElementById('consent').checked, liFatId: capstan.user().liFatId || '', anon: capstan.user().anonymousId})`)
	if state.Checked || state.LiFatID != "" {
		t.Errorf("returning visitor who denied consent: box checked %v, capstan.js click id %q; want unchecked and none", state.Checked, state.LiFatID)
	}
	b.do(map[string]any{"op": "fill", "selector": "#email", "value": "jane.roe@example.com"})
	deniedSU := demoSubmit(b)
	b.eval(&calls, `window.lintrkCalls`)
	if len(calls) != 0 {
		t.Errorf("lintrk called without advertising consent: %+v", calls)
	}
	if c, ok := b.cookies()["li_fat_id"]; ok {
		t.Errorf("li_fat_id cookie %q set although advertising consent is denied", c.Value)
	}
	// (capstan's own capstan_lfi cookie: TestDemoDeniedClickID.)
	deniedServer := demoServerTrack(b, d, deniedSU.UserID)

	var now map[string]int
	if !poll(15*time.Second, func() bool {
		now = d.outcomes(hc)
		return now["received"] >= before["received"]+5 && demoSettled(now)
	}) {
		t.Fatalf("capstan did not settle the denied visitor's 5 events in 15 s: before %v, now %v", before, now)
	}
	delta := func(o string) int { return now[o] - before[o] }
	// identify, the page view and the Sign Up carry the denial; the first
	// page view (no click id yet) matches no trigger, and the server-side
	// track, which the graph cannot enrich, is invalid.
	if delta("filtered_consent") != 3 || delta("not_matched") != 1 || delta("invalid") != 1 || delta("delivered") != 0 {
		t.Errorf("outcomes of the denied visitor's events: %d filtered for consent, %d not matched, %d invalid, %d delivered; want 3, 1, 1, 0 (before %v, after %v)",
			delta("filtered_consent"), delta("not_matched"), delta("invalid"), delta("delivered"), before, now)
	}
	after := d.conversions(hc)
	for _, c := range after {
		if slices.Contains([]string{first.MessageID, denied.MessageID, deniedSU.MessageID, deniedServer}, c.EventID) || slices.Contains(c.ids()[demoIDLiFatID], "654321") {
			t.Errorf("a conversion of the visitor who denied consent reached LinkedIn: %+v", c)
		}
	}
	if len(after) != len(convs) {
		t.Errorf("the sandbox holds %d conversions after the denied visitor, want still %d", len(after), len(convs))
	}
	step("consent denied")

	// What capstan kept, read from its data once stopped.
	d.stop()
	cfg := d.config()
	// The page's Sign Up came from a browser without identity
	// verification: what it linked to the user serves the website
	// source's conversions only (the server-side track above is the
	// website source's too).
	p, ok := demoIdentityShow(t, cfg, "--user-id", su.UserID)
	if u := p.Unverified["website"]; !ok || u.LiFatID != demoLiFatID || u.EmailSHA256 != demoEmailHash {
		t.Errorf("identity graph for %s: %+v (found %v); want li_fat_id %s and the email hash from the website source", su.UserID, p, ok, demoLiFatID)
	}
	if p, ok := demoIdentityShow(t, cfg, "--user-id", deniedSU.UserID); ok {
		t.Errorf("the identity graph learnt about %s, who denied consent: %+v", deniedSU.UserID, p)
	}
	if p, ok := demoIdentityShow(t, cfg, "--anonymous-id", state.Anon); ok && (p.LiFatID != "" || p.EmailSHA256 != "" || len(p.Links) > 0 || len(p.Unverified) > 0) {
		t.Errorf("the identity graph learnt about anonymousId %s, who denied consent: %+v", state.Anon, p)
	}
	stored := map[string]doc{}
	for _, ev := range tailEvents(t, cfg) {
		var e doc
		if err := json.Unmarshal(ev.Event, &e); err != nil {
			t.Fatal(err)
		}
		stored[ev.MessageID()] = e
	}
	want(t, "stored Sign Up", stored[su.MessageID], map[string]any{
		"type": "track", "event": "Sign Up", "messageId": su.MessageID, "userId": su.UserID,
		"properties.email": demoEmail, "context.li_fat_id": demoLiFatID,
	})
	want(t, "stored Sign Up without consent", stored[deniedSU.MessageID], map[string]any{
		"type": "track", "event": "Sign Up", "userId": deniedSU.UserID, "context.li_fat_id": nil,
		"context.consent.categoryPreferences": map[string]bool{"Advertising": false},
	})
	var dl *deadLetter
	for _, x := range dlqShow(t, cfg) {
		if x.MessageID == deniedServer {
			dl = &x
		}
	}
	if dl == nil || dl.Reason != "invalid" || !strings.Contains(dl.Message, "One of email or LinkedIn UUID") {
		t.Errorf("the server-side Sign Up of the user who denied consent: dead letter %+v; want invalid for lack of an identifier", dl)
	}
	step("stopped, read")
}

// demoScreenshot takes the page's 1280x900 screenshot: into docs/demo.png with
// CAPSTAN_UPDATE_SCREENSHOT=1, otherwise into a temporary file, checking
// that it renders and that docs/demo.png is there and the same size.
func demoScreenshot(t *testing.T, b *browser) {
	t.Helper()
	doc := filepath.Join(filepath.Dir(e2eDir), "docs", "demo.png")
	path := filepath.Join(t.TempDir(), "demo.png")
	update := os.Getenv(updateScreenshotEnv) == "1"
	if update {
		path = doc
	}
	b.do(map[string]any{"op": "screenshot", "path": path})
	img := demoDecodePNG(t, path)
	if s := img.Bounds().Size(); s.X != demoShotW || s.Y != demoShotH {
		t.Errorf("screenshot is %dx%d, want %dx%d", s.X, s.Y, demoShotW, demoShotH)
	}
	if n := demoColours(img); n < 50 {
		t.Errorf("the screenshot has %d colours: the page did not render", n)
	}
	if update {
		t.Logf("wrote %s", doc)
		return
	}
	f, err := os.Open(doc)
	if err == nil {
		defer f.Close()
		var cfg image.Config
		if cfg, err = png.DecodeConfig(f); err == nil && (cfg.Width != demoShotW || cfg.Height != demoShotH) {
			err = fmt.Errorf("%dx%d, want %dx%d", cfg.Width, cfg.Height, demoShotW, demoShotH)
		}
	}
	if err != nil {
		t.Errorf("%s: %v: run %s=1 go test ./e2e/ -run TestDemo", doc, err, updateScreenshotEnv)
	}
}

func demoDecodePNG(t testing.TB, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}

// colours counts the distinct colours of img, up to 1000.
func demoColours(img image.Image) int {
	seen := map[[4]uint32]bool{}
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y += 3 {
		for x := r.Min.X; x < r.Max.X; x += 3 {
			cr, cg, cb, ca := img.At(x, y).RGBA()
			seen[[4]uint32{cr, cg, cb, ca}] = true
			if len(seen) >= 1000 {
				return len(seen)
			}
		}
	}
	return len(seen)
}

// TestDemoDeniedClickID: a click id that arrives while advertising consent
// is denied is not kept anywhere, so it cannot reach LinkedIn when the
// visitor grants consent later on a page without it. capstan.js keeps no
// li_fat_id cookie then; capstan must not keep it in its capstan_lfi cookie
// either.
func TestDemoDeniedClickID(t *testing.T) {
	requireBrowser(t)
	requireNodeModules(t)
	hc := newHTTPClient(t)
	hc.Timeout = 5 * time.Second
	d := startDemo(t)
	b := startDemoBrowser(t)

	demoVisit(b, d.URL+"/demo")
	b.do(map[string]any{"op": "check", "selector": "#consent", "checked": false})
	demoVisit(b, d.URL+"/demo?li_fat_id=654321") // from an ad, consent denied
	ck := b.cookies()
	for _, name := range []string{"li_fat_id", "capstan_lfi"} {
		if c, ok := ck[name]; ok {
			t.Errorf("cookie %s=%s (expires %s) set from a page view whose advertising consent is denied",
				name, c.Value, time.Unix(int64(c.Expires), 0).UTC().Format(time.DateOnly))
		}
	}

	demoVisit(b, d.URL+"/demo")
	b.do(map[string]any{"op": "check", "selector": "#consent", "checked": true}) // grants consent where the URL has no click id
	var lfi any
	b.eval(&lfi, `capstan.user().liFatId`)
	if lfi != nil {
		t.Fatalf("capstan.js has click id %v after consent was granted on a page without one", lfi)
	}
	later := demoVisit(b, d.URL+"/demo")
	var now map[string]int
	if !poll(15*time.Second, func() bool {
		now = d.outcomes(hc)
		return now["received"] >= 4 && demoSettled(now)
	}) {
		t.Fatalf("capstan did not settle the 4 page views in 15 s: %v", now)
	}
	for _, c := range d.conversions(hc) {
		if slices.Contains(c.ids()[demoIDLiFatID], "654321") {
			t.Errorf("the click id seen only while consent was denied reached LinkedIn (eventId %s; the page view after consent was granted is %s): %+v",
				c.EventID, later.MessageID, c.User.UserIDs)
		}
	}
}

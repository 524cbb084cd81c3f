package e2e

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// signUps returns n Sign Up events with messageIds prefix-0 … prefix-(n-1),
// each with an email.
func signUps(prefix string, n int) ([]map[string]any, []string) {
	evs := make([]map[string]any, n)
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("%s-%d", prefix, i)
		evs[i] = signUp(ids[i], ids[i]+"@example.com", "")
	}
	return evs, ids
}

// waitPaused polls /readyz until it answers 503 with the linkedin
// destination paused for a reason that mentions the token, and returns the
// reason; "" when that did not happen within timeout (the last answer is
// then in last).
func waitPaused(t testing.TB, hc *http.Client, url string, timeout time.Duration) (reason string, last readiness) {
	t.Helper()
	poll(timeout, func() bool {
		last = readyz(t, hc, url)
		state, why := last.destination("linkedin")
		if last.HTTPStatus == http.StatusServiceUnavailable && state == "paused" && strings.Contains(strings.ToLower(why), "token") {
			reason = why
			return true
		}
		return false
	})
	return reason, last
}

// waitReady polls /readyz until it answers 200 with the linkedin destination
// delivering; it fails the test after timeout.
func waitReady(t testing.TB, hc *http.Client, url string, timeout time.Duration) {
	t.Helper()
	var last readiness
	if !poll(timeout, func() bool {
		last = readyz(t, hc, url)
		state, _ := last.destination("linkedin")
		return last.HTTPStatus == http.StatusOK && state == "delivering"
	}) {
		t.Fatalf("/readyz after %s: %d %+v, want 200 with linkedin delivering", timeout, last.HTTPStatus, last)
	}
}

// putToken calls PUT /admin/destinations/{name}/token and returns the status
// and body.
func putToken(t testing.TB, hc *http.Client, base, name, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, base+"/admin/destinations/"+url.PathEscape(name)+"/token", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("PUT admin token: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// checkAllOnce fails the test unless the sandbox holds exactly the
// conversions ids, each once.
func checkAllOnce(t testing.TB, convs []sandboxConversion, ids []string, when string) {
	t.Helper()
	got := byEventID(t, convs)
	if len(convs) != len(ids) {
		t.Errorf("%s: the sandbox holds %d conversions, want %d", when, len(convs), len(ids))
	}
	for _, id := range ids {
		if _, ok := got[id]; !ok {
			t.Errorf("%s: %s did not arrive", when, id)
		}
	}
}

// TestDeliveryRevokedTokenAdminAPI revokes the access token in the sandbox
// while events flow: the destination pauses (/readyz 503 naming the token),
// the events wait in the stream, the admin API refuses bad calls, and once
// a new token is installed through it everything arrives at once, once.
func TestDeliveryRevokedTokenAdminAPI(t *testing.T) {
	const admin = "admin-secret-e2e"
	sb := startSandbox(t, "--token", "tok-a")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	// Batches of 10: several requests are in flight when the token is revoked.
	dest := linkedInDest{sandbox: sb, accessToken: "tok-a", batchSize: 10}
	cfg := writeDeliveryConfig(t, dir, "capstan.yaml", data, admin, dest)
	srv := startServer(t, cfg)
	hc := newHTTPClient(t)

	evs, ids := signUps("rev1", 50)
	sendEvents(t, hc, srv.URL, evs)
	sb.waitConversions(50, 20*time.Second, "before the revocation")

	// Revoked: paused, nothing delivered, nothing lost.
	sb.control(http.MethodPost, "/_sandbox/tokens/tok-a/revoke", "", nil)
	evs, more := signUps("rev2", 100)
	ids = append(ids, more...)
	sendEvents(t, hc, srv.URL, evs)
	reason, last := waitPaused(t, hc, srv.URL, 20*time.Second)
	if reason == "" {
		t.Fatalf("/readyz does not report the destination paused for its token after the revocation: %d %+v", last.HTTPStatus, last)
	}
	t.Logf("paused: %s", reason)
	// Let several requests in flight (batches of 10) meet the revoked token
	// before the fix: each waits for it, and all must resume.
	poll(5*time.Second, func() bool { return sb.counters().Rejected.Auth >= 2 })
	t.Logf("%d requests refused for the revoked token", sb.counters().Rejected.Auth)
	if c := sb.counters(); c.Accepted != 50 || c.Rejected.Auth == 0 {
		t.Errorf("while revoked: sandbox accepted %d (want 50) and refused %d requests for auth (want > 0)", c.Accepted, c.Rejected.Auth)
	}
	stored := countByMessageID(tailEvents(t, cfg))
	for _, id := range ids {
		if stored[id] != 1 {
			t.Errorf("event %s is stored %d times while paused, want 1", id, stored[id])
		}
	}

	// The admin API refuses what it must, and changes nothing then.
	for _, tc := range []struct {
		name, dest, auth, body string
		want                   int
		wantBody               string
	}{
		{name: "no credentials", dest: "linkedin", body: `{"access_token":"tok-b"}`, want: 401, wantBody: "admin token"},
		{name: "wrong admin token", dest: "linkedin", auth: "Bearer not-" + admin, body: `{"access_token":"tok-b"}`, want: 401, wantBody: "admin token"},
		{name: "unknown destination", dest: "facebook", auth: "Bearer " + admin, body: `{"access_token":"tok-b"}`, want: 404, wantBody: "no such destination"},
		{name: "no access_token", dest: "linkedin", auth: "Bearer " + admin, body: `{"token":"tok-b"}`, want: 400, wantBody: "access_token"},
		{name: "not JSON", dest: "linkedin", auth: "Bearer " + admin, body: `access_token=tok-b`, want: 400, wantBody: "access_token"},
		{name: "bad expires_at", dest: "linkedin", auth: "Bearer " + admin, body: `{"access_token":"tok-b","expires_at":"tomorrow"}`, want: 400, wantBody: "RFC 3339"},
	} {
		t.Run("admin refuses/"+tc.name, func(t *testing.T) {
			status, body := putToken(t, hc, srv.URL, tc.dest, tc.auth, tc.body)
			if status != tc.want || !strings.Contains(body, tc.wantBody) {
				t.Errorf("PUT token: %d %s, want %d with %q", status, body, tc.want, tc.wantBody)
			}
		})
	}
	if r := readyz(t, hc, srv.URL); r.HTTPStatus != http.StatusServiceUnavailable {
		t.Errorf("after refused admin calls /readyz answers %d %+v, want still 503", r.HTTPStatus, r)
	}

	// A new token through the admin API: delivery resumes at once.
	sb.control(http.MethodPost, "/_sandbox/tokens", `{"token":"tok-b"}`, nil)
	exp := time.Now().Add(50 * 24 * time.Hour).UTC().Truncate(time.Second)
	status, body := putToken(t, hc, srv.URL, "linkedin", "Bearer "+admin, `{"access_token":"tok-b","expires_at":"`+exp.Format(time.RFC3339)+`"}`)
	if status != http.StatusOK || !strings.Contains(body, `"destination":"linkedin"`) {
		t.Fatalf("PUT /admin/destinations/linkedin/token: %d %s, want 200 with the destination's status", status, body)
	}
	resumed := time.Now()
	convs := sb.waitConversions(150, 10*time.Second, "after the admin API installed a new token")
	t.Logf("admin API: the 100 waiting conversions arrived %s after the new token", time.Since(resumed).Round(time.Millisecond))
	checkAllOnce(t, convs, ids, "after the admin token")
	waitReady(t, hc, srv.URL, 5*time.Second)
	for _, r := range sb.records() {
		if strings.HasPrefix(r.EventID, "rev2-") && r.Token != "tok-b" {
			t.Errorf("%s was accepted with token %q, want tok-b", r.EventID, r.Token)
		}
	}
}

// TestDeliveryRevokedTokenNewConfig revokes the access token while events
// flow; the operator's fix is a new token in the configuration and a
// restart (SIGTERM): the events that waited arrive promptly, once.
func TestDeliveryRevokedTokenNewConfig(t *testing.T) {
	sb := startSandbox(t, "--token", "cfg-a")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	dest := linkedInDest{sandbox: sb, accessToken: "cfg-a"}
	cfg := writeDeliveryConfig(t, dir, "capstan.yaml", data, "", dest)
	srv := startServer(t, cfg)
	hc := newHTTPClient(t)

	evs, ids := signUps("cfg1", 20)
	sendEvents(t, hc, srv.URL, evs)
	sb.waitConversions(20, 20*time.Second, "before the revocation")

	sb.control(http.MethodPost, "/_sandbox/tokens/cfg-a/revoke", "", nil)
	evs, more := signUps("cfg2", 30)
	ids = append(ids, more...)
	sendEvents(t, hc, srv.URL, evs)
	if reason, last := waitPaused(t, hc, srv.URL, 20*time.Second); reason == "" {
		t.Fatalf("/readyz does not report the destination paused after the revocation: %d %+v", last.HTTPStatus, last)
	}
	sb.control(http.MethodPost, "/_sandbox/tokens", `{"token":"cfg-b"}`, nil)
	stopServer(t, srv)
	dest.accessToken = "cfg-b"
	cfg = writeDeliveryConfig(t, dir, "capstan-new-token.yaml", data, "", dest)
	srv = startServer(t, cfg)
	restarted := time.Now()
	convs := sb.waitConversions(50, 20*time.Second, "after a restart (SIGTERM) with a new token in the configuration")
	t.Logf("the 30 waiting conversions arrived %s after the restart", time.Since(restarted).Round(time.Millisecond))
	checkAllOnce(t, convs, ids, "after the restart with a new token")
	waitReady(t, hc, srv.URL, 5*time.Second)
	for _, r := range sb.records() {
		if strings.HasPrefix(r.EventID, "cfg2-") && r.Token != "cfg-b" {
			t.Errorf("%s was accepted with token %q, want cfg-b", r.EventID, r.Token)
		}
	}
}

// TestDeliveryRevokedTokenAtStart restarts capstan after its token was
// revoked: /readyz must say so (rather than "ready" while nothing is
// delivered), and a token installed through the admin API must get the
// waiting events delivered promptly.
func TestDeliveryRevokedTokenAtStart(t *testing.T) {
	const admin = "admin-secret-e2e"
	sb := startSandbox(t, "--token", "start-a")
	dir := t.TempDir()
	cfg := writeDeliveryConfig(t, dir, "capstan.yaml", filepath.Join(dir, "data"), admin, linkedInDest{sandbox: sb, accessToken: "start-a"})
	srv := startServer(t, cfg)
	hc := newHTTPClient(t)
	evs, ids := signUps("start1", 10)
	sendEvents(t, hc, srv.URL, evs)
	sb.waitConversions(10, 20*time.Second, "before the revocation")
	stopServer(t, srv)

	sb.control(http.MethodPost, "/_sandbox/tokens/start-a/revoke", "", nil)
	srv = startServerListening(t, cfg)
	evs, more := signUps("start2", 20)
	ids = append(ids, more...)
	sendEvents(t, hc, srv.URL, evs)

	// Wait until /readyz reports the pause, or until capstan has retried
	// LinkedIn four times (its log says so) without reporting it.
	var paused string
	var last readiness
	poll(20*time.Second, func() bool {
		last = readyz(t, hc, srv.URL)
		if state, why := last.destination("linkedin"); last.HTTPStatus == http.StatusServiceUnavailable && state == "paused" {
			paused = why
			return true
		}
		return strings.Contains(srv.Output(), "retry_in=8s")
	})
	if paused == "" {
		t.Errorf("restarted with a revoked token, capstan answers /readyz %d %+v while it delivers nothing (log: %q); want 503 with the destination paused",
			last.HTTPStatus, last, lastLines(srv.Output(), 2))
	}
	if c := sb.counters(); c.Accepted != 10 {
		t.Errorf("sandbox accepted %d events with a revoked token, want 10", c.Accepted)
	}

	sb.control(http.MethodPost, "/_sandbox/tokens", `{"token":"start-b"}`, nil)
	if status, body := putToken(t, hc, srv.URL, "linkedin", "Bearer "+admin, `{"access_token":"start-b"}`); status != http.StatusOK {
		t.Fatalf("PUT /admin/destinations/linkedin/token: %d %s", status, body)
	}
	installed := time.Now()
	if !poll(5*time.Second, func() bool { return len(sb.conversions()) >= 30 }) {
		t.Errorf("the 20 waiting events did not arrive within 5s of the admin API installing a new token")
	}
	convs := sb.waitConversions(30, 30*time.Second, "after the new token")
	t.Logf("the waiting events arrived %s after the new token", time.Since(installed).Round(time.Millisecond))
	checkAllOnce(t, convs, ids, "after the new token")
	waitReady(t, hc, srv.URL, 5*time.Second)
}

// startServerListening is startServer without waiting for /readyz to
// answer 200: for a server expected not to be ready.
func startServerListening(t testing.TB, cfg string) *server {
	t.Helper()
	s := &server{t: t, log: newLogBuffer(), exited: make(chan struct{})}
	s.cmd = exec.Command(capstanBin, "serve", "--config", cfg, "--log-level", "info")
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.Dir = filepath.Dir(cfg)
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start capstan serve: %v", err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			t.Logf("capstan serve (pid %d) output:\n%s", s.cmd.Process.Pid, s.Output())
		}
	})
	select {
	case s.URL = <-s.log.listening:
	case <-s.exited:
		t.Fatalf("capstan serve exited before listening (%v):\n%s", s.waitErr, s.Output())
	case <-time.After(30 * time.Second):
		t.Fatalf("capstan serve printed no listening line in 30s:\n%s", s.Output())
	}
	return s
}

// stopServer stops srv with SIGTERM, as an operator's restart does, and waits for
// it to exit 0.
func stopServer(t testing.TB, srv *server) {
	t.Helper()
	srv.Signal(syscall.SIGTERM)
	if code := srv.Wait(30 * time.Second); code != 0 {
		t.Errorf("capstan serve exited %d after SIGTERM, want 0", code)
	}
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) []string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[max(0, len(lines)-n):]
}

// TestDeliveryTokenRefresh expires the access token in the sandbox:
// capstan refreshes it with the configured refresh token and client
// credentials and delivery goes on without a pause; the refreshed token is
// kept, so a restart does not refresh again.
func TestDeliveryTokenRefresh(t *testing.T) {
	sb := startSandbox(t, "--token", "ref-access", "--refresh-token", "ref-refresh",
		"--client-id", "e2e-client", "--client-secret", "e2e-secret")
	dir := t.TempDir()
	cfg := writeDeliveryConfig(t, dir, "capstan.yaml", filepath.Join(dir, "data"), "", linkedInDest{sandbox: sb,
		accessToken: "ref-access", refreshToken: "ref-refresh", clientID: "e2e-client", clientSecret: "e2e-secret"})
	srv := startServer(t, cfg)
	hc := newHTTPClient(t)

	evs, ids := signUps("ref1", 20)
	sendEvents(t, hc, srv.URL, evs)
	sb.waitConversions(20, 20*time.Second, "before the expiry")
	if n := len(sb.requests("oauth.accessToken")); n != 0 {
		t.Errorf("%d token requests before the access token expired, want 0", n)
	}

	sb.control(http.MethodPost, "/_sandbox/tokens/ref-access/expire", "", nil)
	evs, more := signUps("ref2", 30)
	ids = append(ids, more...)
	sendEvents(t, hc, srv.URL, evs)
	convs := sb.waitConversions(50, 20*time.Second, "after the expiry")
	checkAllOnce(t, convs, ids, "after the expiry")

	refreshes := sb.requests("oauth.accessToken")
	if len(refreshes) != 1 {
		t.Errorf("%d requests to the token endpoint, want 1 refresh: %+v", len(refreshes), refreshes)
	}
	for _, r := range refreshes {
		q, _ := url.ParseQuery(r.Body)
		if r.Status != http.StatusOK || q.Get("grant_type") != "refresh_token" || q.Get("refresh_token") != "ref-refresh" || q.Get("client_id") != "e2e-client" {
			t.Errorf("token request: %s %s %q answered %d; want a refresh_token grant with ref-refresh and e2e-client, answered 200", r.Method, r.Path, r.Body, r.Status)
		}
	}
	newToken := ""
	for _, r := range sb.records() {
		if strings.HasPrefix(r.EventID, "ref2-") {
			if r.Token == "ref-access" {
				t.Errorf("%s was accepted with the expired token", r.EventID)
			}
			newToken = r.Token
		}
	}
	t.Logf("refreshed: conversions after the expiry came with token %.8s…", newToken)
	if r := readyz(t, hc, srv.URL); r.HTTPStatus != http.StatusOK {
		t.Errorf("/readyz after the refresh: %d %+v, want 200", r.HTTPStatus, r)
	}
	if c := sb.counters(); c.Rejected.Auth == 0 {
		t.Logf("capstan refreshed before LinkedIn refused the expired token")
	}

	// After a restart capstan uses the refreshed token it kept.
	stopServer(t, srv)
	srv = startServer(t, cfg)
	evs, more = signUps("ref3", 10)
	ids = append(ids, more...)
	sendEvents(t, hc, srv.URL, evs)
	convs = sb.waitConversions(60, 20*time.Second, "after the restart")
	checkAllOnce(t, convs, ids, "after the restart")
	if n := len(sb.requests("oauth.accessToken")); n != 1 {
		t.Errorf("%d requests to the token endpoint after the restart, want still 1 (the refreshed token is kept)", n)
	}
	for _, r := range sb.records() {
		if strings.HasPrefix(r.EventID, "ref3-") && r.Token != newToken {
			t.Errorf("after the restart %s came with token %.8s…, want the refreshed %.8s…", r.EventID, r.Token, newToken)
		}
	}
}

// TestDeliveryAdminTokenSurvivesRestart installs a new token through the
// admin API after the configured one was revoked, then restarts capstan with
// the same configuration: it must keep using the installed token (as it
// keeps a refreshed one) rather than fall back to the revoked one and stop
// delivering.
func TestDeliveryAdminTokenSurvivesRestart(t *testing.T) {
	const admin = "admin-secret-e2e"
	sb := startSandbox(t, "--token", "keep-a")
	dir := t.TempDir()
	cfg := writeDeliveryConfig(t, dir, "capstan.yaml", filepath.Join(dir, "data"), admin, linkedInDest{sandbox: sb, accessToken: "keep-a"})
	srv := startServer(t, cfg)
	hc := newHTTPClient(t)

	sb.control(http.MethodPost, "/_sandbox/tokens", `{"token":"keep-b"}`, nil)
	if status, body := putToken(t, hc, srv.URL, "linkedin", "Bearer "+admin, `{"access_token":"keep-b"}`); status != http.StatusOK {
		t.Fatalf("PUT /admin/destinations/linkedin/token: %d %s", status, body)
	}
	sb.control(http.MethodPost, "/_sandbox/tokens/keep-a/revoke", "", nil)
	evs, ids := signUps("keep1", 10)
	sendEvents(t, hc, srv.URL, evs)
	sb.waitConversions(10, 20*time.Second, "with the token installed through the admin API")

	stopServer(t, srv)
	// The installed token is kept encrypted (server.secret_key): no file of
	// the data directory holds it in plaintext.
	checkNotOnDisk(t, filepath.Join(dir, "data"), "keep-b")
	srv = startServer(t, cfg)
	evs, more := signUps("keep2", 10)
	ids = append(ids, more...)
	sendEvents(t, hc, srv.URL, evs)
	if !poll(10*time.Second, func() bool { return len(sb.conversions()) >= 20 }) {
		t.Fatalf("after a restart with the same configuration, %d of 20 conversions arrived within 10s: capstan went back to the revoked configured token (log: %q)",
			len(sb.conversions()), lastLines(srv.Output(), 1))
	}
	checkAllOnce(t, sb.conversions(), ids, "after the restart")
	for _, r := range sb.records() {
		if r.Token != "keep-b" {
			t.Errorf("%s was accepted with token %q, want keep-b", r.EventID, r.Token)
		}
	}
}

// checkNotOnDisk fails the test if a file under dir contains secret.
func checkNotOnDisk(t testing.TB, dir, secret string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds the token %q in plaintext", path, secret)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

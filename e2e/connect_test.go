package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// connectConfig writes a configuration whose destination has the sandbox
// app's client id and secret, and accessToken ("" for none).
func connectConfig(t testing.TB, dir string, sb *sandboxProc, accessToken string) string {
	t.Helper()
	path := writeDeliveryConfig(t, dir, "capstan.yaml", filepath.Join(dir, "data"), "", linkedInDest{sandbox: sb, accessToken: accessToken})
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), "    auth:\n", "    auth:\n      client_id: sandbox-client\n      client_secret: sandbox-secret\n", 1)
	if accessToken == "" {
		text = strings.Replace(text, "      access_token: \"\"\n", "", 1)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// authRun is one `capstan auth linkedin` in progress.
type authRun struct {
	cmd    *exec.Cmd
	url    string
	stdout *syncBuf
	stderr *syncBuf
	done   chan struct{}
	code   int
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startAuth runs `capstan auth linkedin` for cfg on a free loopback port
// and returns once it printed the authorization URL.
func startAuth(t *testing.T, cfg string, extra ...string) *authRun {
	t.Helper()
	args := append([]string{"auth", "linkedin", "--config", cfg, "--destination", "linkedin",
		"--redirect-uri", "http://127.0.0.1:0/oauth/linkedin/callback", "--timeout", "2m"}, extra...)
	a := &authRun{cmd: exec.Command(capstanBin, args...), stderr: &syncBuf{}, stdout: &syncBuf{}, done: make(chan struct{})}
	a.cmd.Dir = filepath.Dir(cfg)
	pr, pw := io.Pipe()
	a.cmd.Stdout = io.MultiWriter(pw, a.stdout)
	a.cmd.Stderr = a.stderr
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = a.cmd.Wait()
		a.code = a.cmd.ProcessState.ExitCode()
		pw.Close()
		close(a.done)
	}()
	t.Cleanup(func() {
		select {
		case <-a.done:
		default:
			_ = a.cmd.Process.Kill()
			<-a.done
		}
	})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "http") && strings.Contains(l, "/oauth/v2/authorization?") {
				select {
				case urls <- l:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case a.url = <-urls:
	case <-a.done:
		t.Fatalf("capstan auth linkedin exited %d before printing the URL:\n%s\n%s", a.code, a.stdout, a.stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("capstan auth linkedin printed no URL in 60s:\n%s\n%s", a.stdout, a.stderr)
	}
	return a
}

// wait waits for the command to exit and returns its exit code.
func (a *authRun) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-a.done:
	case <-time.After(90 * time.Second):
		t.Fatalf("capstan auth linkedin still running:\n%s\n%s", a.stdout, a.stderr)
	}
	return a.code
}

// consentResult is consent.mjs's answer.
type consentResult struct {
	OK      bool     `json:"ok"`
	Error   string   `json:"error"`
	Scopes  []string `json:"scopes"`
	URL     string   `json:"url"`
	Message string   `json:"message"`
}

// clickConsent opens authURL in Chromium and clicks button on the consent
// page.
func clickConsent(t *testing.T, authURL, button string) consentResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(e2eDir, "browser", "consent.mjs"), t.TempDir(), authURL, button, chromiumPath)
	cmd.Dir = e2eDir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	_ = cmd.Run()
	var r consentResult
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &r); err != nil || !r.OK {
		t.Fatalf("consent.mjs %s: %v %+v\n%s\n%s", button, err, r, out.String(), errb.String())
	}
	return r
}

// TestConnectLinkedIn connects a destination the way a new user does, with
// capstan serve running: the configured token lacks rw_conversions, so the
// destination is paused with a message naming the scope and the command
// while the events wait; `capstan auth linkedin` is clicked through the
// sandbox's consent page in Chromium: Cancel gives a clear message, a
// consent that again yields no rw_conversions is refused and stores
// nothing, and Allow stores the new tokens, which the running server picks
// up: the waiting conversions are delivered with the new token.
func TestConnectLinkedIn(t *testing.T) {
	requireBrowser(t)
	sb := startSandbox(t)
	sb.control(http.MethodPost, "/_sandbox/tokens", `{"token":"no-conversions","scopes":["r_ads"]}`, nil)
	dir := t.TempDir()
	cfg := connectConfig(t, dir, sb, "no-conversions")
	srv := startServerListening(t, cfg)
	hc := newHTTPClient(t)

	evs, ids := signUps("conn", 5)
	sendEvents(t, hc, srv.URL, evs)
	reason, last := waitPaused(t, hc, srv.URL, 30*time.Second)
	if reason == "" {
		t.Fatalf("/readyz does not report the destination paused for its token: %d %+v", last.HTTPStatus, last)
	}
	for _, want := range []string{"lacks the rw_conversions scope", "capstan auth linkedin --config FILE --destination linkedin"} {
		if !strings.Contains(reason, want) {
			t.Errorf("pause reason %q lacks %q", reason, want)
		}
	}
	if n := len(sb.conversions()); n != 0 {
		t.Fatalf("%d conversions delivered with a token without rw_conversions", n)
	}

	// Cancel on the consent page.
	a := startAuth(t, cfg)
	for _, want := range []string{"response_type=code", "client_id=sandbox-client", "scope=r_ads%20r_ads_reporting%20rw_conversions", "state="} {
		if !strings.Contains(a.url, want) {
			t.Errorf("authorization URL %s lacks %s", a.url, want)
		}
	}
	r := clickConsent(t, a.url, "Cancel")
	if code := a.wait(t); code == 0 || !strings.Contains(a.stderr.String(), "refused the permissions on LinkedIn's consent page (user_cancelled_authorize)") {
		t.Errorf("after Cancel: exit %d\n%s", code, a.stderr)
	}
	if !strings.Contains(r.Message, "Not connected") || !strings.Contains(r.Message, "choose Allow") {
		t.Errorf("callback page after Cancel: %+v", r)
	}

	// The app grants no rw_conversions: refused, nothing stored.
	sb.control(http.MethodPost, "/_sandbox/consent", `{"scopes":["r_ads","r_ads_reporting"]}`, nil)
	a = startAuth(t, cfg)
	r = clickConsent(t, a.url, "Allow")
	if code := a.wait(t); code == 0 || !strings.Contains(a.stderr.String(), "the new token was not stored") ||
		!strings.Contains(a.stderr.String(), "lacks the rw_conversions scope") {
		t.Errorf("token without rw_conversions: exit %d\n%s", code, a.stderr)
	}
	if !strings.Contains(r.Message, "lacks the rw_conversions scope") {
		t.Errorf("callback page: %+v", r)
	}
	if n := len(sb.conversions()); n != 0 {
		t.Fatalf("%d conversions delivered after a refused connection", n)
	}

	// Allow with the app's full scopes: connected; the running server
	// delivers the waiting conversions with the new token.
	sb.control(http.MethodPost, "/_sandbox/consent", `{}`, nil)
	a = startAuth(t, cfg)
	r = clickConsent(t, a.url, "Allow")
	if got := strings.Join(r.Scopes, " "); got != "r_ads r_ads_reporting rw_conversions" {
		t.Errorf("consent page asked for %q", got)
	}
	if code := a.wait(t); code != 0 {
		t.Fatalf("connect: exit %d\n%s\n%s", code, a.stdout, a.stderr)
	}
	out := a.stdout.String()
	for _, want := range []string{"Connected destination linkedin.", fmt.Sprintf("ad account:     %d (ACCOUNT_MANAGER)", testAdAccount),
		"scopes:         r_ads, r_ads_reporting, rw_conversions", "refresh token:  expires"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(r.Message, "Connected") {
		t.Errorf("callback page: %+v", r)
	}
	convs := sb.waitConversions(len(ids), 30*time.Second, "after connecting")
	checkAllOnce(t, convs, ids, "after connecting")
	waitReady(t, hc, srv.URL, 10*time.Second)
	for _, rec := range sb.records() {
		if rec.Token == "no-conversions" || !strings.HasPrefix(rec.Token, "AQV") {
			t.Errorf("%s was accepted with token %q, want the connected one", rec.EventID, rec.Token)
		}
	}
	// No token in capstan's output.
	for _, rec := range sb.records() {
		if strings.Contains(srv.Output(), rec.Token) || strings.Contains(out, rec.Token) {
			t.Errorf("the access token appears in capstan's output")
			break
		}
	}

	// Stopped, then started again: the stored token is the one in use.
	srv.Signal(syscall.SIGTERM)
	srv.Wait(60 * time.Second)
	srv = startServer(t, cfg)
	evs, more := signUps("conn2", 2)
	ids = append(ids, more...)
	sendEvents(t, hc, srv.URL, evs)
	convs = sb.waitConversions(len(ids), 30*time.Second, "after a restart")
	checkAllOnce(t, convs, ids, "after a restart")

	// Connected while capstan is stopped: the command opens the data
	// directory itself; the next start uses the new token (the old one is
	// revoked, so the old one could not deliver).
	srv.Signal(syscall.SIGTERM)
	srv.Wait(60 * time.Second)
	old := ""
	for _, rec := range sb.records() {
		old = rec.Token
	}
	sb.control(http.MethodPost, "/_sandbox/consent", `{}`, nil) // forget the grant: the page shows again
	a = startAuth(t, cfg)
	clickConsent(t, a.url, "Allow")
	if code := a.wait(t); code != 0 {
		t.Fatalf("connect while stopped: exit %d\n%s\n%s", code, a.stdout, a.stderr)
	}
	sb.control(http.MethodPost, "/_sandbox/tokens/"+old+"/revoke", "", nil)
	srv = startServer(t, cfg)
	evs, more = signUps("conn3", 2)
	ids = append(ids, more...)
	sendEvents(t, hc, srv.URL, evs)
	convs = sb.waitConversions(len(ids), 30*time.Second, "after connecting while stopped")
	checkAllOnce(t, convs, ids, "after connecting while stopped")
	for _, rec := range sb.records() {
		if strings.HasPrefix(rec.EventID, "conn3-") && rec.Token == old {
			t.Errorf("%s was accepted with the revoked token", rec.EventID)
		}
	}
}

// startUnconnected starts a sandbox and `capstan serve` on a fixed free
// port with the admin token admin and a destination that has the app's
// credentials and the console's redirect URI but no token yet, and waits
// until /readyz reports it paused for that.
func startUnconnected(t *testing.T, admin string) (*sandboxProc, string, *http.Client) {
	t.Helper()
	return startUnconnectedWith(t, admin, nil)
}

// startUnconnectedWith is startUnconnected with the configuration's text
// changed by edit (nil: none) before capstan starts.
func startUnconnectedWith(t *testing.T, admin string, edit func(string) string) (*sandboxProc, string, *http.Client) {
	t.Helper()
	sb := startSandbox(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := connectConfig(t, dir, sb, "")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), `addr: "127.0.0.1:0"`, fmt.Sprintf("addr: %q\n  admin_token: %q", addr, admin), 1)
	if edit != nil {
		text = edit(text)
	}
	text = strings.Replace(text, "      client_id: sandbox-client\n", "      client_id: sandbox-client\n      redirect_uri: http://"+addr+"/admin/oauth/callback\n", 1)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	startServerListening(t, cfg)
	hc := newHTTPClient(t)
	srvURL := "http://" + addr
	if !poll(30*time.Second, func() bool {
		res, err := hc.Get(srvURL + "/readyz")
		if err == nil {
			res.Body.Close()
		}
		return err == nil
	}) {
		t.Fatal("capstan serve does not answer")
	}
	reason, last := waitPaused(t, hc, srvURL, 30*time.Second)
	if !strings.Contains(reason, "no access token yet") {
		t.Fatalf("a destination not connected yet: %q %+v", reason, last)
	}
	return sb, srvURL, hc
}

// TestConnectLinkedInConsoleButton clicks Connect LinkedIn in the console
// (Chromium): the sandbox's consent page, Allow, capstan's callback, back
// on the Destinations page with the destination connected and delivering
// the events that waited.
func TestConnectLinkedInConsoleButton(t *testing.T) {
	requireBrowser(t)
	sb, srvURL, hc := startUnconnected(t, consoleAdminToken)
	evs, ids := signUps("button", 3)
	sendEvents(t, hc, srvURL, evs)
	var res struct {
		Scopes          []string `json:"scopes"`
		CallbackMessage string   `json:"callbackMessage"`
		Toast           string   `json:"toast"`
	}
	runConsole(t, "console-connect.mjs", srvURL, map[string]any{"destination": "linkedin"}, &res)
	if strings.Join(res.Scopes, " ") != "r_ads r_ads_reporting rw_conversions" || !strings.Contains(res.CallbackMessage, "Destination linkedin is connected") ||
		!strings.Contains(res.Toast, "linkedin is connected to LinkedIn") {
		t.Errorf("console connect: %+v", res)
	}
	convs := sb.waitConversions(len(ids), 30*time.Second, "after Connect LinkedIn in the console")
	checkAllOnce(t, convs, ids, "after Connect LinkedIn in the console")
}

// TestConnectLinkedInConsoleChooseAccount: Connect LinkedIn in the console
// (Chromium) for a destination without ad_account, with a member who may
// write to two ad accounts and only read a third: after Allow, capstan's
// page offers the two as buttons and the third greyed with the reason; one
// click chooses, the token is installed as `capstan auth linkedin` stores
// it (the events that waited are delivered), the page shows the
// configuration line to add, and the audit log names the chosen account.
func TestConnectLinkedInConsoleChooseAccount(t *testing.T) {
	requireBrowser(t)
	const second = 508710001
	sb, srvURL, hc := startUnconnectedWith(t, consoleAdminToken, func(text string) string {
		text = strings.Replace(text, fmt.Sprintf("    ad_account: %d\n", testAdAccount), "", 1)
		return strings.Replace(text, `conversion_rule: {create: {name: "Sign Up (capstan)", type: SIGN_UP}}`, "conversion_rule: {id: 22833300}", 1)
	})
	sb.control(http.MethodPost, "/_sandbox/accounts", fmt.Sprintf(`{"id":%d,"name":"Acme APAC","role":"CAMPAIGN_MANAGER"}`, second), nil)
	evs, ids := signUps("choose", 3)
	sendEvents(t, hc, srvURL, evs)

	var res struct {
		Writable []string `json:"writable"`
		ReadOnly []struct {
			Name   string `json:"name"`
			Reason string `json:"reason"`
		} `json:"readOnly"`
		Message string `json:"message"`
		Config  string `json:"config"`
	}
	runConsole(t, "console-connect-choose.mjs", srvURL, map[string]any{"destination": "linkedin", "account": testAdAccount}, &res)
	t.Logf("chooser: %+v", res)
	want := []string{fmt.Sprintf("Use ad account %d", testAdAccount), fmt.Sprintf("Use ad account %d", second)}
	if !slices.Equal(sortedCopy(res.Writable), sortedCopy(want)) {
		t.Errorf("writable accounts offered %q, want %q", res.Writable, want)
	}
	if len(res.ReadOnly) != 1 || res.ReadOnly[0].Name != "Use ad account 508700001" || !strings.Contains(res.ReadOnly[0].Reason, "only VIEWER") {
		t.Errorf("read-only accounts %+v, want 508700001 greyed (only VIEWER)", res.ReadOnly)
	}
	if !strings.Contains(res.Message, fmt.Sprintf("Destination linkedin is connected: ad account %d (ACCOUNT_MANAGER)", testAdAccount)) {
		t.Errorf("message %q", res.Message)
	}
	if res.Config != fmt.Sprintf("destinations:\n  - name: linkedin\n    ad_account: %d", testAdAccount) {
		t.Errorf("configuration to add %q", res.Config)
	}
	convs := sb.waitConversions(len(ids), 30*time.Second, "after choosing the ad account in the console")
	checkAllOnce(t, convs, ids, "after choosing the ad account in the console")

	req, _ := http.NewRequest(http.MethodGet, srvURL+"/admin/api/audit", nil)
	req.Header.Set("Authorization", "Bearer "+consoleAdminToken)
	r, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if !strings.Contains(string(body), fmt.Sprintf("ad account %d (ACCOUNT_MANAGER)", testAdAccount)) {
		t.Errorf("audit log: %s", body)
	}

	// A choice works once: posting it again (or forged) is refused.
	r, err = hc.PostForm(srvURL+"/admin/oauth/choose", url.Values{"choice": {"forged"}, "account": {fmt.Sprint(second)}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "does not belong to a connection in progress") {
		t.Errorf("forged choice: %d %s", r.StatusCode, body)
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// TestConnectLinkedInConsole connects from the console's side: an
// operator's POST /admin/api/destinations/linkedin/connect gives the
// authorization URL; Allow on the sandbox's consent page (Chromium) comes
// back to /admin/oauth/callback, which installs the token, resumes the
// destination and records who did it in the audit log.
func TestConnectLinkedInConsole(t *testing.T) {
	requireBrowser(t)
	const admin = "admin-secret-connect"
	sb, srvURL, hc := startUnconnected(t, admin)
	evs, ids := signUps("console", 3)
	sendEvents(t, hc, srvURL, evs)

	req, _ := http.NewRequest(http.MethodPost, srvURL+"/admin/api/destinations/linkedin/connect", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	res, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var started struct {
		URL string `json:"url"`
	}
	err = json.NewDecoder(res.Body).Decode(&started)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || !strings.Contains(started.URL, "redirect_uri="+url.QueryEscape(srvURL+"/admin/oauth/callback")) {
		t.Fatalf("start: %d %+v %v", res.StatusCode, started, err)
	}
	r := clickConsent(t, started.URL, "Allow")
	if !strings.HasPrefix(r.URL, srvURL+"/admin/oauth/callback?") || !strings.Contains(r.Message, "Destination linkedin is connected: ad account") {
		t.Fatalf("callback page: %+v", r)
	}
	convs := sb.waitConversions(len(ids), 30*time.Second, "after connecting from the console")
	checkAllOnce(t, convs, ids, "after connecting from the console")
	waitReady(t, hc, srvURL, 10*time.Second)

	req, _ = http.NewRequest(http.MethodGet, srvURL+"/admin/api/audit", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	res, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), `"action":"linkedin_connect"`) || !strings.Contains(string(body), `"by":"admin token"`) {
		t.Errorf("audit log: %s", body)
	}
}

// follow opens url with a plain HTTP client, following redirects (the
// sandbox's consent is set to auto-approve), and returns the final page.
func follow(t *testing.T, u string) string {
	t.Helper()
	hc := &http.Client{Timeout: 90 * time.Second}
	res, err := hc.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// TestConnectLinkedInAccountChoice connects a destination without
// ad_account: the command lists the member's accounts and, with no
// terminal to ask on, wants --account; an account where the member is only
// VIEWER is refused; a writable one is stored and the line to add printed.
func TestConnectLinkedInAccountChoice(t *testing.T) {
	sb := startSandbox(t)
	sb.control(http.MethodPost, "/_sandbox/consent", `{"auto_approve":true}`, nil)
	dir := t.TempDir()
	cfg := connectConfig(t, dir, sb, "")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), fmt.Sprintf("    ad_account: %d\n", testAdAccount), "", 1)
	text = strings.Replace(text, `conversion_rule: {create: {name: "Sign Up (capstan)", type: SIGN_UP}}`, "conversion_rule: {id: 22833300}", 1)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}

	a := startAuth(t, cfg)
	// A callback that does not carry the command's state (forged, or from
	// another attempt) is refused, and the command keeps waiting for the
	// real one.
	au, err := url.Parse(a.url)
	if err != nil {
		t.Fatal(err)
	}
	forged := au.Query().Get("redirect_uri") + "?code=forged-code&state=not-the-state"
	resp, err := http.Get(forged)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "the state does not match") {
		t.Errorf("forged callback: %d %s", resp.StatusCode, body)
	}
	follow(t, a.url)
	if code := a.wait(t); code != 2 || !strings.Contains(a.stderr.String(), "run again with --account ID") ||
		!strings.Contains(a.stdout.String(), fmt.Sprintf("1) %d  ACCOUNT_MANAGER", testAdAccount)) {
		t.Errorf("no terminal, no --account: exit %d\n%s\n%s", code, a.stdout, a.stderr)
	}

	a = startAuth(t, cfg, "--account", "508700001")
	follow(t, a.url)
	if code := a.wait(t); code != 1 || !strings.Contains(a.stderr.String(), "may not write to ad account 508700001 (the member is only VIEWER)") {
		t.Errorf("viewer account: exit %d\n%s", code, a.stderr)
	}

	a = startAuth(t, cfg, "--account", fmt.Sprint(testAdAccount))
	page := follow(t, a.url)
	if code := a.wait(t); code != 0 || !strings.Contains(a.stdout.String(), fmt.Sprintf("      ad_account: %d", testAdAccount)) {
		t.Errorf("--account: exit %d\n%s\n%s", code, a.stdout, a.stderr)
	}
	if !strings.Contains(page, "Connected") {
		t.Errorf("callback page: %s", page)
	}
}

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// The console tests run the admin console (internal/admin/ui) of the real
// binary in Debian's headless Chromium: a Go test starts `capstan serve`
// (or `capstan demo`), then runConsole runs one script of browser/
// (console-*.mjs, built on browser/console.mjs), which signs in and drives
// the pages by role and label, and returns its findings as JSON for the Go
// test to judge. With CAPSTAN_SCREENSHOTS=1 the scripts also write their
// pages' screenshots into docs/console/ (the README shows them).

// screenshotsEnv, set to 1, makes the console tests write docs/console/*.png.
const screenshotsEnv = "CAPSTAN_SCREENSHOTS"

// consoleAdminToken is the admin token of the console tests' servers.
const consoleAdminToken = "console-admin-token-e2e"

// screenshotDir is where the console scripts write screenshots: "" unless
// CAPSTAN_SCREENSHOTS=1.
func screenshotDir(t testing.TB) string {
	t.Helper()
	if os.Getenv(screenshotsEnv) != "1" {
		return ""
	}
	dir := filepath.Join(filepath.Dir(e2eDir), "docs", "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runConsole runs node browser/<script> with args (plus baseURL, token
// unless set, a fresh userDataDir, chromium and screenshotDir) and decodes
// the script's result into result (when not nil). The test fails when the
// script fails or runs over 3 minutes; the page's logs are then shown.
func runConsole(t testing.TB, script, baseURL string, args map[string]any, result any) {
	t.Helper()
	requireBrowser(t)
	all := map[string]any{
		"baseURL":       baseURL,
		"token":         consoleAdminToken,
		"userDataDir":   t.TempDir(),
		"chromium":      chromiumPath,
		"screenshotDir": screenshotDir(t),
	}
	for k, v := range args {
		all[k] = v
	}
	js, err := json.Marshal(all)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join("browser", script))
	cmd.Dir = e2eDir
	cmd.Env = append(os.Environ(), "CAPSTAN_CONSOLE_ARGS="+string(js))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var out struct {
		OK     bool            `json:"ok"`
		Result json.RawMessage `json:"result"`
		Error  string          `json:"error"`
		Logs   []string        `json:"logs"`
		URL    string          `json:"url"`
		Text   string          `json:"text"`
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &out); err != nil {
		t.Fatalf("node browser/%s: %v; printed %q\nstderr:\n%s", script, runErr, stdout.String(), stderr.String())
	}
	if !out.OK || runErr != nil {
		t.Fatalf("node browser/%s failed (%v) at %s:\n%s\nthe page showed:\n%s\nbrowser logs:\n  %s\nstderr:\n%s",
			script, runErr, out.URL, out.Error, out.Text, strings.Join(out.Logs, "\n  "), stderr.String())
	}
	for _, l := range out.Logs {
		if strings.HasPrefix(l, "pageerror:") {
			t.Errorf("browser/%s: the console threw: %s", script, l)
		}
	}
	if result != nil {
		if err := json.Unmarshal(out.Result, result); err != nil {
			t.Fatalf("browser/%s result %s: %v", script, out.Result, err)
		}
	}
}

// consoleServer is a `capstan serve` with the console on and a LinkedIn
// destination delivering to a sandbox.
type consoleServer struct {
	*server
	sandbox *sandboxProc
	cfg     string
}

// startConsoleServer starts a sandbox and `capstan serve` with the admin
// token consoleAdminToken, the destination of writeDeliveryConfig, and
// serverYAML (lines of the server section, indented by two spaces, such as
// admin_users) when not "".
func startConsoleServer(t testing.TB, serverYAML string) *consoleServer {
	t.Helper()
	sb := startSandbox(t, "--token", "tok-console", "--token", "tok-console-new")
	dir := t.TempDir()
	cfg := writeDeliveryConfig(t, dir, "capstan.yaml", filepath.Join(dir, "data"), consoleAdminToken,
		linkedInDest{sandbox: sb, accessToken: "tok-console"})
	if serverYAML != "" {
		b, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Replace(string(b), "\nengine:\n", "\n"+strings.TrimRight(serverYAML, "\n")+"\nengine:\n", 1)
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return &consoleServer{server: startServer(t, cfg), sandbox: sb, cfg: cfg}
}

// consoleLink is one navigation link as console-signin.mjs found it.
type consoleLink struct {
	Name    string `json:"name"`
	Href    string `json:"href"`
	Current string `json:"current"`
	Failed  bool   `json:"failed"`
}

// apiAnswer is a request the page made itself (apiStatus in console.mjs).
type apiAnswer struct {
	Status int `json:"status"`
	Body   struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	} `json:"body"`
}

// TestConsoleSignIn: the console's sign-in page refuses a wrong admin
// token (an error, no cookie), accepts the right one (an HttpOnly,
// SameSite=Strict session cookie), shows the navigation in the contract's
// order with each link opening its page, says when a page is not in the
// build, refuses a cookie request without the CSRF token, and signs out.
func TestConsoleSignIn(t *testing.T) {
	srv := startConsoleServer(t, "")
	var got struct {
		SignInTitle         string        `json:"signInTitle"`
		UserFields          int           `json:"userFields"`
		WrongTokenError     string        `json:"wrongTokenError"`
		CookiesAfterFailure []string      `json:"cookiesAfterFailure"`
		User                string        `json:"user"`
		Role                string        `json:"role"`
		Cookie              cookieAttrs   `json:"cookie"`
		Links               []consoleLink `json:"links"`
		MissingPage         string        `json:"missingPage"`
		NoCSRF              apiAnswer     `json:"noCSRF"`
		WithCSRF            apiAnswer     `json:"withCSRF"`
		SignOutStatus       int           `json:"signOutStatus"`
		CookiesAfterSignOut []string      `json:"cookiesAfterSignOut"`
		SessionAfterSignOut apiAnswer     `json:"sessionAfterSignOut"`
	}
	runConsole(t, "console-signin.mjs", srv.URL, nil, &got)

	if !strings.Contains(got.SignInTitle, "Sign in") || got.UserFields != 0 {
		t.Errorf("sign-in page: title %q, %d username fields (no admin_users: want none)", got.SignInTitle, got.UserFields)
	}
	if !strings.Contains(strings.ToLower(got.WrongTokenError), "wrong admin token") {
		t.Errorf("wrong token: the page says %q", got.WrongTokenError)
	}
	if len(got.CookiesAfterFailure) != 0 {
		t.Errorf("wrong token: cookies %v, want none", got.CookiesAfterFailure)
	}
	if got.User != "admin token" || got.Role != "operator" {
		t.Errorf("signed in as %q (%q), want the admin token, an operator", got.User, got.Role)
	}
	if !got.Cookie.HTTPOnly || got.Cookie.SameSite != "Strict" || got.Cookie.Secure || got.Cookie.Path != "/admin/" {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/admin/ (not Secure over plain HTTP)", got.Cookie)
	}
	want := []string{"Live events #/live", "Overview #/overview", "Dead letters #/dead-letters", "Destinations #/destinations",
		"Event tester #/tester", "Import #/import", "People #/people", "Audit log #/audit"}
	var links []string
	for _, l := range got.Links {
		links = append(links, l.Name+" "+l.Href)
		if l.Current != "page" || l.Failed {
			t.Errorf("link %s: aria-current %q, failed %v", l.Name, l.Current, l.Failed)
		}
	}
	if strings.Join(links, ", ") != strings.Join(want, ", ") {
		t.Errorf("navigation:\n got %v\nwant %v", links, want)
	}
	if !strings.Contains(got.MissingPage, "This page is not available in this build") {
		t.Errorf("a page missing from the build shows %q", got.MissingPage)
	}
	if got.NoCSRF.Status != 403 || got.NoCSRF.Body.Error.Code != "csrf_failed" {
		t.Errorf("POST without the CSRF token: %+v, want 403 csrf_failed", got.NoCSRF)
	}
	if got.WithCSRF.Status != 404 || got.WithCSRF.Body.Error.Code != "not_found" {
		t.Errorf("POST with the CSRF token (replay of a dead letter that does not exist): %+v, want 404 not_found", got.WithCSRF)
	}
	if got.SignOutStatus != 200 {
		t.Errorf("Sign out: DELETE /admin/api/session answered %d, want 200", got.SignOutStatus)
	}
	for _, c := range got.CookiesAfterSignOut {
		if c == "capstan_session" {
			t.Errorf("the session cookie outlived Sign out (5 s after the DELETE's %d)", got.SignOutStatus)
		}
	}
	if got.SessionAfterSignOut.Status != 401 {
		t.Errorf("GET /admin/api/session after Sign out: %+v, want 401", got.SessionAfterSignOut)
	}
}

// cookieAttrs are a cookie's attributes as playwright reports them.
type cookieAttrs struct {
	HTTPOnly bool   `json:"httpOnly"`
	SameSite string `json:"sameSite"`
	Secure   bool   `json:"secure"`
	Path     string `json:"path"`
}

// adminGet GETs an admin API path with the admin token and decodes the
// 200 answer into v.
func adminGet(t testing.TB, base, path string, v any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+consoleAdminToken)
	resp, err := newHTTPClient(t).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %s: %v", path, b, err)
	}
}

// auditRecord is one record of GET /admin/api/audit.
type auditRecord struct {
	By     string         `json:"by"`
	Action string         `json:"action"`
	Target string         `json:"target"`
	IDKind string         `json:"idKind"`
	Result map[string]int `json:"result"`
	Error  string         `json:"error"`
}

// auditLog returns the audit records, newest first.
func auditLog(t testing.TB, base string) []auditRecord {
	t.Helper()
	var out struct{ Records []auditRecord }
	adminGet(t, base, "/admin/api/audit?limit=1000", &out)
	return out.Records
}

// findAudit returns the newest record of action by by, or nil.
func findAudit(recs []auditRecord, action, by string) *auditRecord {
	for i := range recs {
		if recs[i].Action == action && recs[i].By == by {
			return &recs[i]
		}
	}
	return nil
}

// consoleDestination is a destination of GET /admin/api/destinations.
type consoleDestination struct {
	Destination    string     `json:"destination"`
	State          string     `json:"state"`
	Health         string     `json:"health"`
	TokenExpiresAt *time.Time `json:"tokenExpiresAt"`
	TokenDaysLeft  *int       `json:"tokenDaysLeft"`
	Problems       []string   `json:"problems"`
	Rules          []struct {
		Mapping string `json:"mapping"`
		RuleID  string `json:"ruleId"`
	} `json:"rules"`
	RateLimit struct {
		Key    string `json:"key"`
		Minute int    `json:"minute"`
		Day    int    `json:"day"`
	} `json:"rateLimit"`
}

// TestConsoleDestinations: after a conversion is delivered, the
// Destinations page shows the destination delivering, its rule's LinkedIn
// id and the requests counted this minute and today; an operator installs
// a new token that expires in 10 days with the form: the page warns
// (degraded, days left), the token is in use (delivery goes on once the
// old one is revoked), and the audit log has the install.
func TestConsoleDestinations(t *testing.T) {
	srv := startConsoleServer(t, "")
	hc := newHTTPClient(t)
	sendEvents(t, hc, srv.URL, []map[string]any{signUp("console-dest-1", "dest1@example.com", "")})
	srv.sandbox.waitConversions(1, 30*time.Second, "before the page")
	var list struct{ Destinations []consoleDestination }
	adminGet(t, srv.URL, "/admin/api/destinations", &list)
	if len(list.Destinations) != 1 || len(list.Destinations[0].Rules) != 1 || list.Destinations[0].Rules[0].RuleID == "" {
		t.Fatalf("destinations %+v: want linkedin with its created rule", list.Destinations)
	}
	old := list.Destinations[0]
	ruleID := old.Rules[0].RuleID

	exp := time.Now().UTC().Add(10*24*time.Hour + time.Hour).Truncate(time.Minute)
	var got struct {
		Before struct {
			Health string `json:"health"`
			Text   string `json:"text"`
			Today  int    `json:"today"`
		} `json:"before"`
		After struct {
			Health string `json:"health"`
			Text   string `json:"text"`
			Today  int    `json:"today"`
		} `json:"after"`
	}
	runConsole(t, "console-destinations.mjs", srv.URL, map[string]any{
		"newToken": "tok-console-new", "expiresAt": exp.Format("2006-01-02T15:04"), "writeKey": testWriteKey,
	}, &got)
	if got.Before.Health != "delivering" || !strings.Contains(got.Before.Text, ruleID) || !strings.Contains(got.Before.Text, "Sign Up") || got.Before.Today < 1 {
		t.Errorf("before: health %q, today %d, page:\n%s\nwant delivering, rule %s, at least 1 request today", got.Before.Health, got.Before.Today, got.Before.Text, ruleID)
	}
	if got.After.Health != "degraded" || !strings.Contains(got.After.Text, "10 days left") || !strings.Contains(got.After.Text, "expires in 10 days") || got.After.Today != 1 {
		t.Errorf("after: health %q, today %d, page:\n%s\nwant degraded with 10 days left, 1 request today with the new token", got.After.Health, got.After.Today, got.After.Text)
	}

	adminGet(t, srv.URL, "/admin/api/destinations", &list)
	d := list.Destinations[0]
	if d.TokenExpiresAt == nil || !d.TokenExpiresAt.Equal(exp) || d.TokenDaysLeft == nil || *d.TokenDaysLeft != 10 || d.Health != "degraded" {
		t.Errorf("after the install: %+v, want the token expiring at %s (10 days left), degraded", d, exp)
	}
	if d.RateLimit.Key == old.RateLimit.Key {
		t.Errorf("the rate limit still counts against the old token (%s)", d.RateLimit.Key)
	}
	// The new token is the one in use: with the old one revoked, delivery goes on.
	srv.sandbox.waitConversions(2, 30*time.Second, "the page's event")
	srv.sandbox.control(http.MethodPost, "/_sandbox/tokens/tok-console/revoke", "", nil)
	sendEvents(t, hc, srv.URL, []map[string]any{signUp("console-dest-2", "dest2@example.com", "")})
	srv.sandbox.waitConversions(3, 30*time.Second, "with the installed token")

	rec := findAudit(auditLog(t, srv.URL), "token_install", "admin token")
	if rec == nil || rec.Target != "linkedin" || rec.Error != "" {
		t.Errorf("audit: token_install record %+v", rec)
	}
	if strings.Contains(srv.Output(), "tok-console-new") {
		t.Errorf("the server log holds the installed token")
	}
}

// TestConsolePeople: a person identified by an event (userId, email,
// li_fat_id, consent) is found on the People page by userId and by email,
// the email hashed in the browser; Delete after confirmation erases them
// through the privacy route; the Audit log page shows the deletion.
func TestConsolePeople(t *testing.T) {
	srv := startConsoleServer(t, "")
	hc := newHTTPClient(t)
	const userID, email, liFatID = "console-person-1", "Person.One@Example.com", "li-fat-console-1"
	ev := signUp("console-people-1", "", liFatID)
	ev["userId"] = userID
	ev["context"] = map[string]any{"traits": map[string]any{"email": email},
		"consent": map[string]any{"categoryPreferences": map[string]any{"Advertising": true, "Analytics": false}}}
	sendEvents(t, hc, srv.URL, []map[string]any{ev})
	if !poll(30*time.Second, func() bool {
		var p struct{ People []json.RawMessage }
		adminGet(t, srv.URL, "/admin/api/people?userId="+userID, &p)
		return len(p.People) == 1
	}) {
		t.Fatalf("the identity graph did not learn %s in 30 s", userID)
	}
	emailHash := sha256Hex(strings.ToLower(email))
	// Other audited actions, for the Audit log page: a refused sign-in and
	// a replay through the API.
	resp, err := hc.Post(srv.URL+"/admin/api/session", "application/json", strings.NewReader(`{"token":"a wrong one"}`))
	if err != nil {
		t.Fatal(err)
	}
	drain(resp)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong sign-in: %d", resp.StatusCode)
	}
	rq, _ := http.NewRequest(http.MethodPost, srv.URL+"/admin/api/dlq/replay", strings.NewReader(`{"destination":"linkedin"}`))
	rq.Header.Set("Authorization", "Bearer "+consoleAdminToken)
	if resp, err = hc.Do(rq); err != nil {
		t.Fatal(err)
	}
	drain(resp)

	var got struct {
		ByUserID   string   `json:"byUserId"`
		ByEmail    string   `json:"byEmail"`
		EmailURLs  []string `json:"emailURLs"`
		Dialog     string   `json:"dialog"`
		Deleted    string   `json:"deleted"`
		DeleteURLs []string `json:"deleteURLs"`
		Audit      []string `json:"audit"`
	}
	runConsole(t, "console-people.mjs", srv.URL, map[string]any{"userId": userID, "email": email}, &got)
	for _, w := range []string{liFatID, emailHash, "Advertising: granted", "Analytics: denied", "First seen", "Last seen"} {
		if !strings.Contains(got.ByUserID, w) {
			t.Errorf("the person found by userId lacks %q:\n%s", w, got.ByUserID)
		}
	}
	if !strings.Contains(got.ByEmail, liFatID) {
		t.Errorf("looked up by email:\n%s", got.ByEmail)
	}
	sentHash := false
	for _, u := range append(got.EmailURLs, got.DeleteURLs...) {
		if strings.Contains(strings.ToLower(u), "example.com") || strings.Contains(strings.ToLower(u), "person.one") {
			t.Errorf("the browser sent the email: %s", u)
		}
		sentHash = sentHash || strings.Contains(u, "emailSha256="+emailHash)
	}
	if !sentHash {
		t.Errorf("no lookup by emailSha256=%s among %v", emailHash, got.EmailURLs)
	}
	if !strings.Contains(got.Dialog, "cannot be undone") || !strings.Contains(got.Deleted, "Deleted") {
		t.Errorf("dialog %q, result %q", got.Dialog, got.Deleted)
	}
	if len(got.Audit) == 0 || !strings.Contains(got.Audit[0], "Privacy deletion") || !strings.Contains(got.Audit[0], "admin token") {
		t.Errorf("the Audit log page's newest row: %q", got.Audit)
	}

	var p struct{ People []json.RawMessage }
	adminGet(t, srv.URL, "/admin/api/people?userId="+userID, &p)
	if len(p.People) != 0 {
		t.Errorf("after Delete the graph still holds %s: %s", userID, p.People)
	}
	rec := findAudit(auditLog(t, srv.URL), "privacy_delete", "admin token")
	if rec == nil || rec.IDKind != "email" && rec.IDKind != "userId" || rec.Result["graphKeysRemoved"] < 1 || rec.Result["eventsDeleted"] < 1 {
		t.Errorf("audit: privacy_delete %+v", rec)
	}
}

// TestConsoleViewer: with server.admin_users, a wrong password is refused;
// a viewer signs in and finds operator controls disabled, and the server
// answers 403 when the page forces an operator action; the audit log has
// the refused and the accepted sign-in.
func TestConsoleViewer(t *testing.T) {
	const password = "viewer password 1"
	// The hash as an operator makes it: with the binary, the password on stdin.
	code, stdout, stderr := runCapstanStdin(t, password+"\n", "admin", "hash-password")
	if code != 0 {
		t.Fatalf("capstan admin hash-password: exit %d: %s", code, stderr)
	}
	hash := []byte(strings.TrimSpace(stdout))
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil {
		t.Fatalf("capstan admin hash-password printed %q", stdout)
	}
	users := fmt.Sprintf("  admin_users:\n    - {name: vera, role: viewer, password_hash: '%s'}\n    - {name: otto, role: operator, password_hash: '%s'}\n", hash, hash)
	srv := startConsoleServer(t, users)
	var got struct {
		Fields struct {
			Username, Password, Token int
		} `json:"fields"`
		WrongPassword  string    `json:"wrongPassword"`
		User           string    `json:"user"`
		Role           string    `json:"role"`
		InstallDisable bool      `json:"installDisabled"`
		InstallTitle   string    `json:"installTitle"`
		ForcedInstall  apiAnswer `json:"forcedInstall"`
		ForcedReplay   apiAnswer `json:"forcedReplay"`
		ForcedDelete   apiAnswer `json:"forcedDelete"`
	}
	runConsole(t, "console-viewer.mjs", srv.URL, map[string]any{"viewer": "vera", "password": password}, &got)
	if got.Fields.Username != 1 || got.Fields.Password != 1 || got.Fields.Token != 1 {
		t.Errorf("sign-in fields %+v: want Username, Password and Admin token", got.Fields)
	}
	if !strings.Contains(strings.ToLower(got.WrongPassword), "wrong username or password") {
		t.Errorf("wrong password: %q", got.WrongPassword)
	}
	if got.User != "vera" || got.Role != "viewer" {
		t.Errorf("signed in as %q (%q)", got.User, got.Role)
	}
	if !got.InstallDisable || !strings.Contains(got.InstallTitle, "operator") {
		t.Errorf("Install token for a viewer: disabled %v, title %q", got.InstallDisable, got.InstallTitle)
	}
	for name, a := range map[string]apiAnswer{"install": got.ForcedInstall, "replay": got.ForcedReplay, "delete": got.ForcedDelete} {
		if a.Status != http.StatusForbidden || a.Body.Error.Code != "forbidden" || !strings.Contains(a.Body.Error.Message, "operator") {
			t.Errorf("forced %s as a viewer: %+v, want 403 forbidden", name, a)
		}
	}
	recs := auditLog(t, srv.URL)
	failed, ok := false, false
	for _, r := range recs {
		if r.Action == "sign_in" && r.By == "vera" {
			failed = failed || r.Error != ""
			ok = ok || r.Error == ""
		}
	}
	if !failed || !ok {
		t.Errorf("audit: vera's refused sign-in %v, accepted %v; records %+v", failed, ok, recs)
	}
	if strings.Contains(srv.Output(), password) {
		t.Errorf("the server log holds the password")
	}
}

// runCapstanStdin runs the binary with stdin and returns its exit code and
// output.
func runCapstanStdin(t testing.TB, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(capstanBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("run capstan %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// sha256Hex is the lower-case hex SHA-256 of s.
func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// demoConsoleLine is the console line `capstan demo` prints.
var demoConsoleLine = regexp.MustCompile(`(?m)^\s*console:\s+(http://\S+/admin/)#token=(\S+)$`)

// TestConsoleDemo: `capstan demo` turns the console on with a token of its
// own and prints its URL with the token in the fragment; opening it signs
// in as the admin token, without the token ever reaching the server (its
// log) or staying in the address bar.
func TestConsoleDemo(t *testing.T) {
	d := startDemo(t)
	m := demoConsoleLine.FindStringSubmatch(d.output())
	if m == nil || m[1] != d.URL+"/admin/" || len(m[2]) < 26 {
		t.Fatalf("capstan demo printed no console URL with a token:\n%s", d.output())
	}
	token := m[2]
	var got struct {
		URL  string `json:"url"`
		User string `json:"user"`
		Role string `json:"role"`
	}
	runConsole(t, "console-demo.mjs", d.URL, map[string]any{"consoleURL": m[1] + "#token=" + token, "token": token}, &got)
	if got.User != "admin token" || got.Role != "operator" || strings.Contains(got.URL, token) {
		t.Errorf("after opening the console URL: %+v", got)
	}
	if n := strings.Count(d.output(), token); n != 1 {
		t.Errorf("the token appears %d times in the demo's output (want once: the printed URL)", n)
	}
	// Each run makes its own.
	if d2 := startDemo(t); strings.Contains(d2.output(), token) {
		t.Error("a second demo printed the same admin token")
	}
}

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &out); err != nil {
		t.Fatalf("node browser/%s: %v; printed %q\nstderr:\n%s", script, runErr, stdout.String(), stderr.String())
	}
	if !out.OK || runErr != nil {
		t.Fatalf("node browser/%s failed (%v) at %s:\n%s\nbrowser logs:\n  %s\nstderr:\n%s",
			script, runErr, out.URL, out.Error, strings.Join(out.Logs, "\n  "), stderr.String())
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
	sb := startSandbox(t, "--token", "tok-console")
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
		"Event tester #/tester", "People #/people", "Audit log #/audit"}
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
	for _, c := range got.CookiesAfterSignOut {
		if c == "capstan_session" {
			t.Errorf("the session cookie outlived Sign out")
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

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReloadMappings edits the configuration of a running `capstan serve`
// and sends SIGHUP, as an operator would (systemctl reload): a mapping
// added applies without a restart (its conversion rule is created at the
// sandbox first), a setting that applies only at start is named as
// needing a restart, a broken file leaves the configuration in force, and
// a mapping removed stops converting.
func TestReloadMappings(t *testing.T) {
	sb := startSandbox(t, "--token", "tok-reload")
	dir := t.TempDir()
	path := writeDeliveryConfig(t, dir, "capstan.yaml", filepath.Join(dir, "data"), "", linkedInDest{sandbox: sb, accessToken: "tok-reload"})
	base, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, path)
	hc := newHTTPClient(t)
	rewrite := func(text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		srv.Signal(syscall.SIGHUP)
	}
	waitLog := func(what string, n int) {
		t.Helper()
		if !poll(30*time.Second, func() bool { return strings.Count(srv.Output(), what) >= n }) {
			t.Fatalf("capstan did not log %q (%d times) after SIGHUP:\n%s", what, n, srv.Output())
		}
	}
	order := func(id string) map[string]any {
		ev := signUp(id, "", "li-"+id)
		ev["event"] = "Order Completed"
		return ev
	}

	sendEvents(t, hc, srv.URL, []map[string]any{signUp("su-1", "", "li-su-1")})
	first := sb.waitConversions(1, 30*time.Second, "Sign Up before the reload")
	signUpRule := first[0].Conversion

	// A second mapping with a rule to create, and a start-only setting.
	added := strings.Replace(string(base), "  shutdown_grace: 20s\n", "  shutdown_grace: 20s\n  read_timeout: 25s\n", 1) +
		"      - name: Order Completed\n" +
		"        trigger: 'type = \"track\" and event = \"Order Completed\"'\n" +
		"        conversion_rule: {create: {name: \"Purchase (capstan)\", type: PURCHASE}}\n"
	rewrite(added)
	waitLog("mappings reloaded", 1)
	waitLog("changed settings need a restart to apply", 1)
	if out := srv.Output(); !strings.Contains(out, "server.read_timeout") || !strings.Contains(out, `mappings_added="[Order Completed]"`) {
		t.Fatalf("the reload's log does not name the new mapping and the start-only setting:\n%s", out)
	}
	sendEvents(t, hc, srv.URL, []map[string]any{order("oc-1"), signUp("su-2", "", "li-su-2")})
	convs := byEventID(t, sb.waitConversions(3, 30*time.Second, "both mappings after the reload"))
	oc, ok := convs["oc-1"]
	switch {
	case !ok:
		t.Fatalf("Order Completed not delivered after the reload; got %v", convs)
	case oc.Conversion == signUpRule || oc.Conversion == "":
		t.Fatalf("Order Completed delivered to rule %q, want a new rule (Sign Up's is %q)", oc.Conversion, signUpRule)
	case convs["su-2"].Conversion != signUpRule:
		t.Fatalf("Sign Up after the reload went to rule %q, want %q", convs["su-2"].Conversion, signUpRule)
	}

	// A broken trigger: logged, and the mappings in force stay.
	rewrite(strings.Replace(added, "event = \"Order Completed\"'", "event = '", 1))
	waitLog("configuration not reloaded; the previous one stays in force", 1)
	sendEvents(t, hc, srv.URL, []map[string]any{order("oc-2")})
	sb.waitConversions(4, 30*time.Second, "Order Completed after a broken reload")

	// Sign Up removed: its events no longer convert; Order Completed does.
	// Delivery reads in order, so once oc-3 is delivered su-3 was seen.
	rewrite(strings.Replace(added, "      - name: Sign Up\n        trigger: '"+signUpTrigger+"'\n        conversion_rule: {create: {name: \"Sign Up (capstan)\", type: SIGN_UP}}\n", "", 1))
	waitLog("mappings reloaded", 2)
	sendEvents(t, hc, srv.URL, []map[string]any{signUp("su-3", "", "li-su-3"), order("oc-3")})
	convs = byEventID(t, sb.waitConversions(5, 30*time.Second, "Order Completed after Sign Up was removed"))
	if _, ok := convs["su-3"]; ok {
		t.Fatalf("Sign Up converted after its mapping was removed")
	}
	if _, ok := convs["oc-3"]; !ok {
		t.Fatalf("Order Completed not delivered after Sign Up was removed; got %v", convs)
	}
}

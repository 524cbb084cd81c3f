package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/linkedin"
	"github.com/capstan-gw/capstan/internal/sandbox"
	"github.com/capstan-gw/capstan/web/demo"
)

const (
	demoWriteKey  = "wk_demo_website"
	demoAdAccount = 512345678
)

// demoConfig is the configuration `capstan demo` runs: the two mappings of
// LinkedIn's Segment onboarding guide (shared/seeds/000), creating their
// rules in the sandbox.
const demoConfig = `
server:
  addr: %q
  data_dir: %q
  # The demo keeps the sandbox's tokens in plaintext; never in production.
  insecure_plaintext_secrets: true
  # A new random token on every run: it signs in to the console.
  admin_token: %s
engine:
  listen: none
sources:
  - name: website
    write_key: %s
destinations:
  - name: linkedin
    api_base: %s
    ad_account: %d
    linger: 100ms
    auth:
      access_token: %s
      token_url: %s/oauth/v2/accessToken
    mappings:
      - name: Page View
        # Only page views with a click id: others could not be matched by
        # LinkedIn and would only fill the dead-letter queue.
        trigger: 'type = "page" and properties.li_fat_id != null'
        conversion_rule:
          create: {name: "CAPI Page View (capstan demo)", type: KEY_PAGE_VIEW}
      - name: Sign Up
        trigger: 'type = "track" and event = "Sign Up"'
        conversion_rule:
          create: {name: "CAPI Sign Up (capstan demo)", type: SIGN_UP}
        fields:
          email: {"@path": "$.properties.email"}
          conversionValue:
            currencyCode:
              "@if": {exists: {"@path": "$.properties.currency"}, then: {"@path": "$.properties.currency"}, else: USD}
            amount: "0"
          userInfo:
            firstName: {"@path": "$.properties.firstName"}
            lastName: {"@path": "$.properties.lastName"}
            companyName: {"@path": "$.properties.company"}
            title: {"@path": "$.properties.title"}
            countryCode: {"@path": "$.properties.countryCode"}
`

func newDemoCmd() *cobra.Command {
	var addr, sandboxAddr, dataDir string
	var lf logFlags
	cmd := &cobra.Command{
		Use:   "demo [--addr HOST:PORT] [--sandbox-addr HOST:PORT] [--data-dir DIR]",
		Short: "Run the zero-setup demo: capstan, a LinkedIn sandbox and the demo page",
		Long: `Run capstan with its embedded engine, a LinkedIn API sandbox on another
port, and a sample configuration whose two mappings (Page View, Sign Up)
create their conversion rules in the sandbox. Open the printed URL: the
demo page (LinkedIn's "Online CAPI Demo" form) sends its events with
capstan.js and shows each conversion as the sandbox accepted it. The
console URL signs in to the admin console with a random admin token made
for this run (it is in the URL's fragment, which browsers never send).

Nothing is installed and nothing leaves the machine. Without --data-dir the
data lives in a temporary directory removed on exit.`,
		Example: `  capstan demo
  capstan demo --addr 127.0.0.1:9080 --sandbox-addr 127.0.0.1:9090 --data-dir ./demo-data`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := lf.logger(os.Stderr)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runDemo(ctx, cmd, addr, sandboxAddr, dataDir, log)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8080", "capstan's address")
	cmd.Flags().StringVar(&sandboxAddr, "sandbox-addr", "127.0.0.1:8090", "the LinkedIn sandbox's address")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "data directory (default: a temporary one, removed on exit)")
	lf.add(cmd)
	return cmd
}

func runDemo(ctx context.Context, cmd *cobra.Command, addr, sandboxAddr, dataDir string, log *slog.Logger) error {
	if dataDir == "" {
		tmp, err := os.MkdirTemp("", "capstan-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dataDir = tmp
	}
	token := sandbox.RandomToken("AQV")
	sb, err := sandbox.New(sandbox.Config{AdAccount: demoAdAccount, Tokens: []sandbox.TokenSpec{{Token: token, AdAccount: demoAdAccount,
		// The scopes `capstan auth linkedin` asks for: delivery and reporting
		// (capstan reconcile).
		Scopes: []string{"r_ads", "r_ads_reporting", "rw_conversions"}}}}, log)
	if err != nil {
		return err
	}
	sln, err := net.Listen("tcp", sandboxAddr)
	if err != nil {
		return fmt.Errorf("sandbox: listen on %s: %w", sandboxAddr, err)
	}
	sandboxURL := "http://" + sln.Addr().String()
	sbDone := make(chan error, 1)
	sctx, stopSandbox := context.WithCancel(context.WithoutCancel(ctx))
	go func() { sbDone <- sb.Serve(sctx, sln) }()
	defer func() { stopSandbox(); <-sbDone }()

	// Reserve capstan's port now so the printed URL is the real one.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	addr = ln.Addr().String()
	ln.Close()

	adminToken := "capadm_" + rand.Text()
	text := fmt.Sprintf(demoConfig, addr, dataDir, adminToken, demoWriteKey, sandboxURL, demoAdAccount, token, sandboxURL)
	cfg, err := config.Parse("demo.yaml", []byte(text), os.LookupEnv)
	if err != nil {
		return fmt.Errorf("demo configuration: %w", err) // a bug, not a user error
	}
	rules := demoRules(sandboxURL, token, log)
	extra := func(mux *http.ServeMux) {
		dh := demo.Handler(func(r *http.Request) demo.Info {
			ids := rules(r.Context())
			return demo.Info{WriteKey: demoWriteKey, Rules: ids, SignUpRule: ids["CAPI Sign Up (capstan demo)"], SandboxURL: sandboxURL}
		}, func(*http.Request) any {
			return map[string]any{"elements": demoConversions(sb)}
		})
		mux.Handle("/demo", dh)
		mux.Handle("/demo/", dh)
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "capstan demo\n  demo page:        http://%s/demo?li_fat_id=123456\n  console:          http://%s/admin/#token=%s\n  tracking API:     http://%s/v1  (write key %s)\n  LinkedIn sandbox: %s  (read back: %s/_sandbox/conversions)\n  data:             %s\nPress Ctrl-C to stop.\n",
		addr, addr, adminToken, addr, demoWriteKey, sandboxURL, sandboxURL, dataDir)
	return serve(ctx, cfg, "", log, extra)
}

// demoRules returns a function giving the sandbox's rule ids by name, read
// with capstan's own LinkedIn client (rules are created when delivery starts).
func demoRules(base, token string, log *slog.Logger) func(context.Context) map[string]string {
	client, err := linkedin.NewClient(linkedin.ClientConfig{APIBase: base, Credentials: linkedin.Credentials{AccessToken: token}}, linkedin.NewHTTPClient(5*time.Second), log)
	return func(ctx context.Context) map[string]string {
		ids := map[string]string{}
		if err != nil {
			return ids
		}
		list, lerr := client.ListRules(ctx, demoAdAccount)
		if lerr != nil {
			return ids
		}
		for _, r := range list {
			ids[r.Name] = r.ID
		}
		return ids
	}
}

// demoConversions is the sandbox's accepted conversions for the page.
func demoConversions(sb *sandbox.Server) []map[string]any {
	var out []map[string]any
	for _, c := range sb.Conversions(sandbox.ConversionFilter{}) {
		out = append(out, map[string]any{"rule": strconv.FormatInt(c.Rule, 10), "eventId": c.EventID, "body": json.RawMessage(c.Body)})
	}
	return out
}

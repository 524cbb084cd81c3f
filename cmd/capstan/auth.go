package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"golang.org/x/term"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/capstan-gw/capstan/internal/audit"
	"github.com/capstan-gw/capstan/internal/config"
	lidest "github.com/capstan-gw/capstan/internal/delivery/linkedin"
	capi "github.com/capstan-gw/capstan/internal/linkedin"
	"github.com/capstan-gw/capstan/internal/stream"
)

// DefaultCLIRedirectURI is the loopback redirect URL of `capstan auth
// linkedin` when neither --redirect-uri nor a loopback auth.redirect_uri is
// set. Register it on the LinkedIn app.
const DefaultCLIRedirectURI = "http://127.0.0.1:8765/oauth/linkedin/callback"

func newAuthCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "Connect a destination to its remote account",
	}
	cmd.AddCommand(newAuthLinkedInCmd())
	return cmd
}

type authFlags struct {
	cfgPath, dest, redirect string
	account                 int64
	timeout                 time.Duration
}

func newAuthLinkedInCmd() *cobra.Command {
	var f authFlags
	cmd := &cobra.Command{
		Use:   "linkedin --config FILE --destination NAME [--account ID] [--redirect-uri URL]",
		Short: "Connect a LinkedIn destination: sign in, consent, store the tokens",
		Long: `Run LinkedIn's authorization-code flow for a destination and store the new
tokens where the destination reads them (the state bucket, encrypted with
server.secret_key).

It prints an authorization URL: open it in a browser, sign in to LinkedIn
with a member who manages the ad account, and choose Allow. LinkedIn sends the
browser back to a callback this command serves on the loopback interface. The
redirect URL must be registered on the LinkedIn app (developer portal, Auth
tab, Authorized redirect URLs); the default is
` + DefaultCLIRedirectURI + ` (or the destination's auth.redirect_uri when it is a
loopback http URL, or --redirect-uri; port 0 picks a free port, which only
the sandbox accepts).

capstan asks for r_ads, r_ads_reporting and rw_conversions. The command then
lists the member's ad accounts, checks the scopes (rw_conversions is
required; r_ads_reporting only for capstan reconcile) and the member's role on
the ad account (ACCOUNT_BILLING_ADMIN, ACCOUNT_MANAGER, CAMPAIGN_MANAGER or
CREATIVE_MANAGER; VIEWER is not enough), and refuses a token that cannot
deliver. With no ad_account configured it asks which account to use (or takes
--account) and prints the line to add to the configuration.

The destination needs auth.client_id and auth.client_secret (the app's). It
works whether capstan serve is running (it watches the state bucket and
resumes delivery with the new token at once) or stopped (the token is used at
the next start).`,
		Example: `  capstan auth linkedin --config capstan.yaml --destination linkedin
  capstan auth linkedin --config capstan.yaml --destination linkedin --account 508747394`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runAuthLinkedIn(cmd, f) },
	}
	cmd.Flags().StringVarP(&f.cfgPath, "config", "c", "", "configuration file (YAML)")
	cmd.Flags().StringVar(&f.dest, "destination", "", "name of the LinkedIn destination to connect")
	cmd.Flags().Int64Var(&f.account, "account", 0, "ad account id to use (default: the destination's ad_account, or asked)")
	cmd.Flags().StringVar(&f.redirect, "redirect-uri", "", "loopback redirect URL registered on the LinkedIn app (default "+DefaultCLIRedirectURI+")")
	cmd.Flags().DurationVar(&f.timeout, "timeout", lidest.StateTTL, "how long to wait for the browser to come back")
	return cmd
}

// loopbackRedirect picks the redirect URL: the flag, a loopback
// auth.redirect_uri, or the default. It must be http on a loopback address.
func loopbackRedirect(flag string, dc config.Destination) (*url.URL, error) {
	s := flag
	if s == "" {
		if u, err := url.Parse(dc.Auth.RedirectURI); err == nil && u.Scheme == "http" && isLoopback(u.Hostname()) {
			s = dc.Auth.RedirectURI
		} else {
			s = DefaultCLIRedirectURI
		}
	}
	if err := capi.CheckRedirectURI(s); err != nil {
		return nil, err
	}
	u, _ := url.Parse(s)
	if u.Scheme != "http" || !isLoopback(u.Hostname()) || u.Port() == "" {
		return nil, fmt.Errorf("redirect URI %q: the command serves its callback itself, so it must be http://127.0.0.1:PORT/… (or localhost, [::1]); "+
			"for a public URL use the console's Connect LinkedIn", s)
	}
	if u.Path == "" {
		u.Path = "/"
	}
	return u, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// callback is what the browser brought back; the handler shows the
// outcome sent on done.
type callback struct {
	query url.Values
	done  chan string
}

func runAuthLinkedIn(cmd *cobra.Command, f authFlags) error {
	if f.dest == "" {
		return usageErr(errors.New("--destination is required: the name of the LinkedIn destination to connect"))
	}
	cfg, err := loadConfig(f.cfgPath)
	if err != nil {
		return err
	}
	var dc config.Destination
	found := false
	var names []string
	for _, d := range cfg.Destinations {
		names = append(names, d.Name)
		if d.Name == f.dest {
			dc, found = d, true
		}
	}
	if !found {
		return usageErr(fmt.Errorf("--destination: %s has no destination %q (it has: %s)", f.cfgPath, f.dest, strings.Join(names, ", ")))
	}
	if dc.AdAccount != 0 && f.account != 0 && f.account != dc.AdAccount {
		return usageErr(fmt.Errorf("--account %d differs from the destination's ad_account %d in %s: change one of them", f.account, dc.AdAccount, f.cfgPath))
	}
	redirect, err := loopbackRedirect(f.redirect, dc)
	if err != nil {
		return usageErr(err)
	}
	if _, _, err := lidest.StartConnect(dc, redirect.String()); err != nil {
		return usageErr(err)
	}
	// Before anyone signs in: can the tokens be stored?
	if _, err := secretKey(cfg); err != nil {
		return err
	}
	eng, err := stream.Attach(cmd.Context(), engineConfig(cfg), stderrLogger())
	if errors.Is(err, stream.ErrBusy) {
		return fmt.Errorf("the tokens could not be stored: %w; use the console's Connect LinkedIn, or stop capstan and run this again", err)
	}
	if err != nil {
		return fmt.Errorf("the tokens could not be stored: %w", err)
	}
	eng.Close()
	ln, err := net.Listen("tcp", redirect.Host)
	if err != nil {
		return fmt.Errorf("listen for LinkedIn's callback on %s: %w (is another capstan auth running? pass --redirect-uri with a free port registered on the app)", redirect.Host, err)
	}
	// The real port when it was 0; the host as registered.
	redirect.Host = net.JoinHostPort(redirect.Hostname(), strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	authURL, state, err := lidest.StartConnect(dc, redirect.String())
	if err != nil {
		ln.Close()
		return usageErr(err)
	}

	got := make(chan callback, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+redirect.Path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		q := r.URL.Query()
		if q.Get("state") != state {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, callbackPage("This is not the answer to capstan's request (the state does not match). Start again from the terminal."))
			return
		}
		cb := callback{query: q, done: make(chan string, 1)}
		select {
		case got <- cb:
		default:
			fmt.Fprint(w, callbackPage("capstan already has LinkedIn's answer; see the terminal."))
			return
		}
		msg := "LinkedIn answered; see the terminal for the outcome."
		select {
		case msg = <-cb.done:
		case <-time.After(time.Minute):
		case <-r.Context().Done():
		}
		fmt.Fprint(w, callbackPage(msg))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()

	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	fmt.Fprintf(out, "Open this URL in a browser, sign in to LinkedIn and choose Allow:\n\n  %s\n\n", authURL)
	fmt.Fprintf(out, "Waiting up to %s for LinkedIn to send the browser back to %s\n", f.timeout, redirect)
	fmt.Fprintf(errOut, "(the redirect URL must be registered on the LinkedIn app: developer portal > Auth > Authorized redirect URLs)\n")

	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	var cb callback
	select {
	case cb = <-got:
	case <-time.After(f.timeout):
		return fmt.Errorf("no answer from LinkedIn within %s: run the command again (and check that %s is the registered redirect URL)", f.timeout, redirect)
	case <-ctx.Done():
		return ctx.Err()
	}
	err = connectAndStore(cmd, f, dc, cb.query, state, redirect.String())
	if err != nil {
		cb.done <- "Not connected: " + err.Error()
		return err
	}
	cb.done <- "Connected: capstan delivers to LinkedIn with the new token. You may close this page."
	return nil
}

// connectAndStore finishes the connection of dc from the callback's query
// and stores the tokens.
func connectAndStore(cmd *cobra.Command, f authFlags, dc config.Destination, q url.Values, state, redirect string) error {
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	conn, err := lidest.FinishConnect(ctx, dc, q, state, redirect, stderrLogger())
	if err != nil {
		return fmt.Errorf("destination %s not connected: %w", dc.Name, err)
	}
	if conn.Problem != nil {
		return fmt.Errorf("destination %s not connected, the new token was not stored: %w", dc.Name, conn.Problem)
	}

	account := dc.AdAccount
	if account == 0 {
		if account, err = chooseAccount(cmd, conn, f.account); err != nil {
			return err
		}
		if err := conn.CheckChosenAccount(dc.Name, account); err != nil {
			return fmt.Errorf("destination %s not connected, the new token was not stored: %w", dc.Name, err)
		}
	}
	role := ""
	for _, a := range conn.Access.Accounts {
		if a.Account == account {
			role = a.Role
		}
	}

	err = withEngine(cmd, f.cfgPath, func(ctx context.Context, cfg *config.Config, eng *stream.Engine) error {
		key, err := secretKey(cfg)
		if err != nil {
			return err
		}
		state, err := eng.KV(ctx, stream.StateKV, 0)
		if err != nil {
			return err
		}
		if err := lidest.SaveConnectedToken(ctx, state, key, dc, conn.Token); err != nil {
			return err
		}
		rec := audit.Record{At: time.Now().UTC(), By: "cli", Action: audit.ActionLinkedInConnect, Target: dc.Name,
			Detail: connectDetail(account, role, conn)}
		if err := audit.Append(ctx, eng, rec); err != nil {
			fmt.Fprintf(errOut, "warning: the token is stored but the audit record was not: %v\n", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("destination %s: the new token could not be stored: %w", dc.Name, err)
	}

	fmt.Fprintf(out, "\nConnected destination %s.\n", dc.Name)
	fmt.Fprintf(out, "  ad account:     %d (%s)\n", account, role)
	fmt.Fprintf(out, "  scopes:         %s\n", strings.Join(conn.Access.Scopes, ", "))
	fmt.Fprintf(out, "  access token:   expires %s\n", fmtWhen(conn.Token.ExpiresAt))
	if conn.Token.RefreshToken != "" {
		fmt.Fprintf(out, "  refresh token:  expires %s (capstan refreshes the access token until then)\n", fmtWhen(conn.Token.RefreshTokenExpiresAt))
	}
	for _, w := range conn.Warnings() {
		fmt.Fprintf(out, "warning: %s\n", w)
	}
	if dc.AdAccount == 0 {
		fmt.Fprintf(out, "Set the destination's ad account in %s:\n\n  destinations:\n    - name: %s\n      ad_account: %d\n\n", f.cfgPath, dc.Name, account)
	}
	fmt.Fprintln(out, "A running capstan uses the new token at once; otherwise it is used at the next start.")
	return nil
}

// chooseAccount picks the ad account for a destination without one: the
// flag, or a prompt on a terminal.
func chooseAccount(cmd *cobra.Command, conn lidest.Connected, flag int64) (int64, error) {
	if flag != 0 {
		return flag, nil
	}
	writable := conn.Writable()
	if len(writable) == 0 {
		return 0, fmt.Errorf("the member may write to none of their ad accounts (%d accounts, none with a role other than VIEWER): "+
			"give them a role in Campaign Manager, or connect with another member", len(conn.Access.Accounts))
	}
	out := cmd.OutOrStdout()
	fmt.Fprintln(out, "\nAd accounts the member may write to:")
	for i, a := range writable {
		fmt.Fprintf(out, "  %d) %d  %s\n", i+1, a.Account, a.Role)
	}
	in := cmd.InOrStdin()
	if f, ok := in.(*os.File); !ok || !term.IsTerminal(int(f.Fd())) {
		return 0, usageErr(errors.New("no ad_account is configured and this is not a terminal to ask on: run again with --account ID (one of the accounts listed)"))
	}
	r := bufio.NewReader(in)
	for {
		fmt.Fprintf(out, "Choose 1-%d: ", len(writable))
		line, err := r.ReadString('\n')
		if n, perr := strconv.Atoi(strings.TrimSpace(line)); perr == nil && n >= 1 && n <= len(writable) {
			return writable[n-1].Account, nil
		}
		if err == io.EOF {
			return 0, usageErr(errors.New("no account chosen: run again with --account ID"))
		}
	}
}

func connectDetail(account int64, role string, conn lidest.Connected) string {
	d := fmt.Sprintf("ad account %d (%s), scopes %s", account, role, strings.Join(conn.Access.Scopes, ","))
	if conn.Token.RefreshToken == "" {
		d += ", no refresh token"
	}
	return d
}

func fmtWhen(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format(time.RFC3339)
}

// callbackPage is the small page the browser shows after the redirect.
func callbackPage(msg string) string {
	return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>capstan: LinkedIn connection</title></head>` +
		`<body><main><h1>capstan</h1><p role="status">` + html.EscapeString(msg) + `</p></main></body></html>`
}

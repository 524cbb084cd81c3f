package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/capstan-gw/capstan/internal/sandbox"
)

func newSandboxCmd() *cobra.Command {
	var (
		addr         string
		tokens       []string
		refreshToken string
		batchMode    string
		cfg          sandbox.Config
		logs         logFlags
	)
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Run the LinkedIn Conversions API simulator",
		Long: `Run capstan's LinkedIn API simulator on its own: the REST endpoints capstan
uses (conversion events, conversion rules, campaign association, ad accounts,
campaigns, /rest/me) and OAuth (token refresh, authorisation, introspection),
with LinkedIn's validation, error bodies, rate limits and eventId
de-duplication, plus an inspection and control API under /_sandbox/
(accepted conversions, request log, counters, tokens, clock, faults, reset).

--token registers a valid access token (repeatable) for ad account
--ad-account; without --token the sandbox creates one, with a refresh token,
and prints them. The first line on stdout names the URL and the token.
The seeded world (accounts, campaigns, rules) is described in docs/sandbox.md.`,
		Example: `  capstan sandbox --addr 127.0.0.1:8090
  capstan sandbox --addr 127.0.0.1:8090 --token my-token --ad-account 512345678
  capstan sandbox --addr 127.0.0.1:0 --rate-per-minute 5 --send-retry-after --state sandbox.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logs.logger(os.Stderr)
			if err != nil {
				return err
			}
			cfg.BatchMode = sandbox.BatchMode(batchMode)
			generated := len(tokens) == 0
			if generated {
				tokens = []string{sandbox.RandomToken("AQV")}
				if refreshToken == "" {
					refreshToken = sandbox.RandomToken("AQW")
				}
			}
			for i, t := range tokens {
				ts := sandbox.TokenSpec{Token: t, AdAccount: cfg.AdAccount}
				if i == 0 {
					ts.RefreshToken = refreshToken
				}
				cfg.Tokens = append(cfg.Tokens, ts)
			}
			srv, err := sandbox.New(cfg, log)
			if err != nil {
				return usageErr(err)
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("sandbox: listen %s: %w", addr, err)
			}
			line := fmt.Sprintf("capstan sandbox: LinkedIn API at http://%s ad_account=%d", ln.Addr(), adAccountOrDefault(cfg.AdAccount))
			if generated {
				line += " token=" + tokens[0] + " refresh_token=" + refreshToken
			}
			fmt.Fprintln(cmd.OutOrStdout(), line)
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return srv.Serve(ctx, ln)
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8090", "listen address (host:port; port 0 picks a free one)")
	f.StringArrayVar(&tokens, "token", nil, "register this access token (repeatable); default: generate one and print it")
	f.StringVar(&refreshToken, "refresh-token", "", "register this refresh token for the first token's member (default: generated with a generated token)")
	f.Int64Var(&cfg.AdAccount, "ad-account", 0, "id of the main ad account the tokens may write to (default 508747394)")
	f.StringVar(&cfg.StateFile, "state", "", "persist rules, tokens and accepted conversions in this JSON file")
	f.StringVar(&cfg.ClientID, "client-id", "", "OAuth client id (default sandbox-client)")
	f.StringVar(&cfg.ClientSecret, "client-secret", "", "OAuth client secret (default sandbox-secret)")
	f.Uint64Var(&cfg.Seed, "seed", 0, "seed of rule ids, X-LI-UUID values and probabilistic faults (default 1)")
	f.StringVar(&cfg.LatestVersion, "latest-version", "", "newest released LinkedIn-Version, YYYYMM (default 202609; the current month is always released)")
	f.StringSliceVar(&cfg.SunsetVersions, "sunset-version", nil, "treat these versions (YYYYMM) as sunset")
	f.IntVar(&cfg.RatePerMinute, "rate-per-minute", 0, "conversionEvents requests per token per UTC minute (default 600; -1 unlimited)")
	f.IntVar(&cfg.RatePerDay, "rate-per-day", 0, "conversionEvents requests per token per UTC day (default 300000; -1 unlimited)")
	f.IntVar(&cfg.OtherRatePerMinute, "other-rate-per-minute", 0, "requests to other /rest endpoints per token per minute (default 100; -1 unlimited)")
	f.BoolVar(&cfg.SendRetryAfter, "send-retry-after", false, "send Retry-After on 429 answers")
	f.StringVar(&batchMode, "batch-mode", "all_or_nothing", "invalid batch elements fail the batch (all_or_nothing) or only themselves (partial)")
	f.DurationVar(&cfg.FutureTolerance, "future-tolerance", 0, "how far in the future conversionHappenedAt may be (default 5m; negative: none)")
	f.DurationVar(&cfg.EventWindow, "event-window", 0, "how old conversionHappenedAt may be (default 2160h, 90 days)")
	f.BoolVar(&cfg.StrictUnknownFields, "strict-unknown-fields", false, "reject unknown event fields (422)")
	f.BoolVar(&cfg.LaxHashFormat, "lax-hash-format", false, "do not check that SHA256_EMAIL/SHA256_IP_ADDRESS values are 64 hex characters")
	f.BoolVar(&cfg.AcceptAxciomAlias, "accept-axciom-alias", false, "accept the misspelt idType AXCIOM_ID")
	f.BoolVar(&cfg.RejectLiURNNamespace, "reject-li-urn-namespace", false, "reject rules named urn:li:llaPartnerConversion:{id}")
	f.BoolVar(&cfg.RejectDisabledRule, "reject-disabled-rule", false, "reject events for disabled rules")
	f.BoolVar(&cfg.EnforceFieldLengths, "enforce-field-lengths", false, "enforce 35/35/50/50/64 characters for names, company, title, eventId")
	f.BoolVar(&cfg.RotateRefreshToken, "rotate-refresh-token", false, "mint a new refresh token string on every refresh")
	f.StringVar(&cfg.OAuthExpiredError, "oauth-expired-error", "", "error code for expired or revoked refresh tokens: invalid_request (default) or invalid_grant")
	f.IntVar(&cfg.MaxConversions, "max-conversions", 0, "accepted conversions kept for /_sandbox/conversions (default 100000)")
	f.DurationVar(&cfg.DedupWindow, "dedup-window", 0, "how long a rule+eventId pair marks repeats as duplicate_of in read-back (default 48h; reports count them unless --reporting-dedup-event-id-window)")
	f.DurationVar(&cfg.MaxHang, "max-hang", 0, "longest time a hang fault holds a request (default 10m)")
	f.DurationVar(&cfg.RuleStatusDelay, "rule-status-delay", 0, "how long after an accepted event a rule's lastCallbackAt/latestFirstPartyCallbackAt show it (default 0)")
	f.StringVar(&cfg.RuleStatusUpdates, "rule-status-updates", "", "rule fields an accepted event updates: both (default), last_callback_only, first_party_only or none")
	f.Float64Var(&cfg.Reporting.MatchedShare, "reporting-matched-share", 0, "adAnalytics: share of events without li_fat_id or email that LinkedIn matches (default 0.6; negative: 0)")
	f.Float64Var(&cfg.Reporting.EmailMatchShare, "reporting-email-match-share", 0, "adAnalytics: share of email-only events that LinkedIn matches (default: --reporting-matched-share; li_fat_id always matches)")
	f.Float64Var(&cfg.Reporting.PostViewShare, "reporting-post-view-share", 0, "adAnalytics: share of matched events attributed to a view (default 0.1)")
	f.Var((*durationFlag)(&cfg.Reporting.DedupEventIDWindow), "reporting-dedup-event-id-window", "adAnalytics: count a repeat of a rule+eventId once when it arrives within this window of the first (default 0: off, both count)")
	f.Var((*durationFlag)(&cfg.Reporting.Delay), "reporting-delay", "adAnalytics: how long after receipt an event is reported (LinkedIn: up to 72h)")
	logs.add(cmd)
	return cmd
}

// durationFlag is a sandbox.Duration as a command-line flag.
type durationFlag sandbox.Duration

func (d *durationFlag) String() string { return time.Duration(*d).String() }

func (d *durationFlag) Set(s string) error {
	v, err := time.ParseDuration(s)
	*d = durationFlag(v)
	return err
}

func (d *durationFlag) Type() string { return "duration" }

func adAccountOrDefault(id int64) int64 {
	if id == 0 {
		return sandbox.DefaultAdAccount
	}
	return id
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/delivery"
	lidest "github.com/capstan-gw/capstan/internal/delivery/linkedin"
	"github.com/capstan-gw/capstan/internal/stream"
)

func newReconcileCmd() *cobra.Command {
	var (
		cfgPath, dest, since, at string
		asJSON                   bool
	)
	cmd := &cobra.Command{
		Use:   "reconcile --config FILE [--destination NAME] [--since 14d] [--json]",
		Short: "Compare what LinkedIn reports per rule and day with what it accepted",
		Long: `Read LinkedIn's conversion reporting (adAnalytics, pivot CONVERSION, daily)
for each destination's ad account and print, per conversion rule and UTC day
of the conversions, how many LinkedIn accepted from capstan, how many it
reports, and the ratio.

The ratio is a match-and-attribution rate, not a delivery rate: LinkedIn
reports only conversions it matched to a member who clicked or saw one of the
rule's campaigns, so it is normally below 100%. LinkedIn takes up to 72 hours
to report a conversion: days whose latest conversion was sent less than 72 h
ago are marked "processing" and never flagged. A rule is flagged when at
least reconcile.min_accepted conversions of mature days were accepted and
nothing is reported (nothing_reported), or the ratio is under
reconcile.min_ratio (low_ratio).

Reporting needs the r_ads_reporting scope: a token without it still
delivers, and reconcile names the missing scope and exits 1.
capstan serve runs the same reconciliation every reconcile.interval (default
6h) and shows it in the console and as capstan_reconcile_* metrics.`,
		Example: `  capstan reconcile --config capstan.yaml
  capstan reconcile --config capstan.yaml --destination linkedin --since 30d --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			days := 0
			if since != "" {
				d, err := parseDays(since)
				if err != nil {
					return usageErr(fmt.Errorf("--since %q: %w", since, err))
				}
				days = d
			}
			var now time.Time
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return usageErr(fmt.Errorf("--now %q: want an RFC 3339 time such as 2026-12-05T10:00:00Z", at))
				}
				now = t
			}
			return withEngine(cmd, cfgPath, func(ctx context.Context, cfg *config.Config, eng *stream.Engine) error {
				if dest != "" && !hasDestination(cfg, dest) {
					return usageErr(fmt.Errorf("--destination %q: no destination of %s has that name", dest, cfg.File))
				}
				recs, err := reconcileAll(ctx, cfg, eng, dest, days, now)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if asJSON {
					enc := json.NewEncoder(w)
					enc.SetIndent("", "  ")
					if err := enc.Encode(recs); err != nil {
						return err
					}
				} else {
					for _, rec := range recs {
						printReconciliation(w, rec)
					}
				}
				var missing []string
				for _, rec := range recs {
					if rec.MissingScope != "" {
						missing = append(missing, "destination "+rec.Destination+": "+strings.Replace(rec.Error, "--config FILE", "--config "+cfgPath, 1))
					}
				}
				if len(missing) > 0 {
					return errors.New(strings.Join(missing, "\n"))
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "", "configuration file (required)")
	f.StringVar(&dest, "destination", "", "only this destination")
	f.StringVar(&since, "since", "", "how many UTC days back, today included: 14d, 30d or 336h (default reconcile.days, 14)")
	f.BoolVar(&asJSON, "json", false, "print the reconciliation as JSON")
	f.StringVar(&at, "now", "", "reconcile as of this RFC 3339 time (tests against the sandbox's clock)")
	_ = f.MarkHidden("now")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

func hasDestination(cfg *config.Config, name string) bool {
	for _, d := range cfg.Destinations {
		if d.Name == name {
			return true
		}
	}
	return false
}

// parseDays reads "14d", "14" or a Go duration ("336h", rounded up to whole
// days), 1 to 90 days.
func parseDays(s string) (int, error) {
	s = strings.TrimSpace(s)
	var n int
	if v, ok := strings.CutSuffix(s, "d"); ok || !strings.ContainsAny(s, "hms") {
		d, err := strconv.Atoi(v)
		if err != nil {
			return 0, errors.New("want a number of days such as 14d, or a duration such as 336h")
		}
		n = d
	} else {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, errors.New("want a number of days such as 14d, or a duration such as 336h")
		}
		n = int(math.Ceil(d.Hours() / 24))
	}
	if n < 1 || n > 90 {
		return 0, fmt.Errorf("must be between 1 and 90 days, got %d", n)
	}
	return n, nil
}

// reconcileAll reconciles every selected destination.
func reconcileAll(ctx context.Context, cfg *config.Config, eng *stream.Engine, only string, days int, now time.Time) ([]*lidest.Reconciliation, error) {
	plans, err := compilePlans(cfg, only)
	if err != nil {
		return nil, err
	}
	state, err := eng.KV(ctx, stream.StateKV, 0)
	if err != nil {
		return nil, err
	}
	key, err := secretKey(cfg)
	if err != nil {
		return nil, err
	}
	ledger, err := delivery.OpenLedger(ctx, eng)
	if err != nil {
		return nil, err
	}
	var out []*lidest.Reconciliation
	for _, p := range plans {
		var dc config.Destination
		for _, d := range cfg.Destinations {
			if d.Name == p.Name {
				dc = d
			}
		}
		li, err := lidest.New(ctx, lidest.Config{Destination: dc, State: state, Key: key}, stderrLogger())
		if err != nil {
			return nil, err
		}
		maps, err := lidest.RuleMappings(ctx, state, p)
		if err != nil {
			return nil, fmt.Errorf("destination %s: %w", dc.Name, err)
		}
		o := lidest.ReconcileOptions{Days: dc.Reconcile.Days, MinRatio: dc.Reconcile.MinRatio, MinAccepted: dc.Reconcile.MinAccepted, Now: now}
		if days > 0 {
			o.Days = days
		}
		rec, err := lidest.Reconcile(ctx, li.Client(), dc.AdAccount, ledger, dc.Name, maps, o)
		if err != nil {
			return nil, fmt.Errorf("destination %s: %w", dc.Name, err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// printReconciliation writes rec as a table, then its flags.
func printReconciliation(w io.Writer, rec *lidest.Reconciliation) {
	fmt.Fprintf(w, "destination %s, ad account %d, %s to %s (UTC days of the conversions)\n", rec.Destination, rec.Account, rec.From, rec.To)
	fmt.Fprintln(w, "accepted: conversions LinkedIn accepted from capstan; reported: conversions LinkedIn reports (attributed, as reported by LinkedIn); ratio = reported/accepted")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tMAPPINGS\tDAY\tACCEPTED\tREPORTED\tRATIO\tCOLLISIONS\tSTATE")
	for _, r := range rec.Rules {
		maps := strings.Join(r.Mappings, ",")
		if maps == "" {
			maps = "-"
		}
		if len(r.Days) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t-\t0\t-\t-\t0\tno conversions\n", r.Rule, maps)
		}
		for _, d := range r.Days {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\n", r.Rule, maps, d.Day, d.Accepted, fmtCount(d.Reported), fmtRatio(d.Ratio), d.Collisions, d.State)
		}
	}
	_ = tw.Flush()
	for _, r := range rec.Rules {
		if r.Flag != "" {
			fmt.Fprintf(w, "FLAGGED rule %s (%s): %s: %s\n", r.Rule, strings.Join(r.Mappings, ","), r.Flag, r.Reason)
		} else if r.Reason != "" {
			fmt.Fprintf(w, "rule %s (%s): %s\n", r.Rule, strings.Join(r.Mappings, ","), r.Reason)
		} else if r.Ratio != nil {
			fmt.Fprintf(w, "rule %s (%s): %s of %d accepted conversions of mature days reported (%s)\n", r.Rule, strings.Join(r.Mappings, ","), fmtCount(r.Reported), r.Accepted, fmtRatio(r.Ratio))
		}
	}
	if rec.MissingScope != "" {
		fmt.Fprintf(w, "reported counts unavailable: missing scope %s\n", rec.MissingScope)
	}
	fmt.Fprintln(w)
}

func fmtCount(n *int64) string {
	if n == nil {
		return "-"
	}
	return strconv.FormatInt(*n, 10)
}

func fmtRatio(r *float64) string {
	if r == nil {
		return "-"
	}
	return strconv.FormatFloat(100**r, 'f', 0, 64) + "%"
}

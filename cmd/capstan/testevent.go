package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/capstan-gw/capstan/internal/admin"
	"github.com/capstan-gw/capstan/internal/audit"
	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/delivery"
	lidest "github.com/capstan-gw/capstan/internal/delivery/linkedin"
	"github.com/capstan-gw/capstan/internal/stream"
)

func newTestEventCmd() *cobra.Command {
	var (
		cfgPath, dest, mappingName, eventPath, source string
		asJSON                                        bool
	)
	cmd := &cobra.Command{
		Use:   "test-event --config FILE --destination NAME [--mapping NAME] [--event FILE] [--json]",
		Short: "Send ONE real conversion to LinkedIn and print the request and LinkedIn's answer",
		Long: `Send one conversion, for real, through a configured destination's own path:
the mapping's trigger and fields, enrichment (the event's li_fat_id sources
and the identity graph, unless the mapping says enrich: false), local
validation, then the destination's client with its current token (the one
the state bucket holds, refreshed if need be) and its rate limits. It prints
the exact request (token redacted) and LinkedIn's answer: status, id headers
(X-LI-UUID, x-restli-id) and body. This is a REAL SEND: LinkedIn stores and
counts the conversion like any other (with api_base the sandbox's URL, the
sandbox does).

Without --event the mapping's built-in sample is sent: a track event named
"capstan test event" whose messageId (the eventId) is capstan-test-<ms>,
with the email capstan-test-event@example.com (in traits, context.traits and
properties), properties.firstName/lastName, a page URL carrying
li_fat_id=capstan-test-event (identifiers that match no LinkedIn member),
revenue 1 USD, and the values the mapping's trigger asks for. --event takes
one JSON event instead (normalised as ingest does). Without --mapping the
first mapping whose trigger the event passes is used (the first mapping for
the sample).

Rules the configuration creates are created first, as capstan serve does
before delivering (an existing rule is only read, and updated where the
configuration changed an option). It works with capstan serve running or
stopped. The send is recorded in the audit log (stream AUDIT).

Exit code 0 when LinkedIn accepted the conversion (2xx), 1 when LinkedIn
refused it or did not answer, 3 when it was refused before sending (no
mapping matched, validation failed), 2 for usage or configuration errors.`,
		Example: `  capstan test-event --config capstan.yaml --destination linkedin
  capstan test-event --config capstan.yaml --destination linkedin --mapping "Order Completed" --event order.json
  capstan test-event --config capstan.yaml --destination linkedin --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dest == "" {
				return usageErr(errors.New("--destination is required"))
			}
			var raw json.RawMessage
			if eventPath != "" {
				b, err := os.ReadFile(eventPath)
				if err != nil {
					return usageErr(fmt.Errorf("read the event: %w", err))
				}
				var probe any
				if err := json.Unmarshal(b, &probe); err != nil {
					return usageErr(fmt.Errorf("%s: not a JSON event: %w", eventPath, err))
				}
				if _, ok := probe.(map[string]any); !ok {
					return usageErr(fmt.Errorf("%s: must hold one JSON event object", eventPath))
				}
				raw = b
			}
			return withEngine(cmd, cfgPath, func(ctx context.Context, cfg *config.Config, eng *stream.Engine) error {
				lt, err := openLinkedIn(ctx, cfg, eng, dest)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "capstan test-event: REAL SEND of one conversion to %s (destination %s): LinkedIn stores and counts it like any other\n",
					lt.dc.APIBase, dest)
				if err := lt.li.Prepare(ctx, lt.plan); err != nil {
					return fmt.Errorf("destination %s: %w", dest, err)
				}
				g, local, err := openIdentity(ctx, cfg, eng, stderrLogger())
				if err != nil {
					return fmt.Errorf("identity graph: %w", err)
				}
				defer closeLocal(local)
				res, err := sendTestEvent(ctx, eng, lt.li, lidest.TestEvent{
					Plan: lt.plan, Mapping: mappingName, Event: raw, Source: source, Enricher: g,
					PerMinute: lt.dc.RateLimit.PerMinute, PerDay: lt.dc.RateLimit.PerDay,
				}, "cli")
				if err != nil {
					return err
				}
				if asJSON {
					if err := writeIndented(cmd.OutOrStdout(), res); err != nil {
						return err
					}
				} else if err := printTestResult(cmd.OutOrStdout(), res); err != nil {
					return err
				}
				switch {
				case res.Accepted():
					return nil
				case res.Request == nil:
					return &exitError{code: exitInvalid, err: fmt.Errorf("not sent: %s", res.Error)}
				}
				return &exitError{code: exitRuntime, err: errors.New(res.Error)}
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&cfgPath, "config", "c", "", "capstan's configuration file (YAML)")
	f.StringVar(&dest, "destination", "", "the destination to send through (required)")
	f.StringVar(&mappingName, "mapping", "", "the mapping to use (default: the first whose trigger the event passes)")
	f.StringVar(&eventPath, "event", "", "a JSON file with one event (default: the mapping's built-in sample)")
	f.StringVar(&source, "source", "", "the source the event comes from (default: any)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// linkedInTarget is one configured LinkedIn destination, opened for a
// command: its compiled plan and its client, with the token and rule ids
// the state bucket holds.
type linkedInTarget struct {
	dc   config.Destination
	plan *delivery.Plan
	li   *lidest.Destination
}

// openLinkedIn opens destination name of cfg on eng's state bucket.
func openLinkedIn(ctx context.Context, cfg *config.Config, eng *stream.Engine, name string) (*linkedInTarget, error) {
	plans, err := compilePlans(cfg, name)
	if err != nil {
		return nil, err
	}
	if len(plans) == 0 {
		return nil, usageErr(fmt.Errorf("no destination %q in %s", name, cfg.File))
	}
	var dc config.Destination
	for _, d := range cfg.Destinations {
		if d.Name == name {
			dc = d
		}
	}
	state, err := eng.KV(ctx, stream.StateKV, 0)
	if err != nil {
		return nil, err
	}
	key, err := secretKey(cfg)
	if err != nil {
		return nil, err
	}
	li, err := lidest.New(ctx, lidest.Config{Destination: dc, State: state, Key: key}, stderrLogger())
	if err != nil {
		return nil, err
	}
	lidest.LoadRuleIDs(ctx, state, plans[0])
	return &linkedInTarget{dc: dc, plan: plans[0], li: li}, nil
}

// sendTestEvent sends a test event and records it in the audit log, by
// by ("cli" or the admin principal). A record that cannot be written is
// an error after the send (the result is still returned).
func sendTestEvent(ctx context.Context, eng *stream.Engine, li *lidest.Destination, te lidest.TestEvent, by string) (*lidest.TestResult, error) {
	res, err := li.SendTest(ctx, te)
	if err != nil {
		return nil, err
	}
	target := res.Destination
	if res.Mapping != "" {
		target += ", mapping " + strconv.Quote(res.Mapping)
	}
	if res.Rule != "" {
		target += ", rule " + res.Rule
	}
	rec := audit.Record{At: time.Now().UTC(), By: by, Action: audit.ActionTestEvent, Target: target,
		Error: res.Error, Result: map[string]int{"httpStatus": res.Status}}
	if res.Accepted() {
		rec.Result["accepted"] = 1
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if res.Accepted() && res.Rule != "" {
		// LinkedIn counts it like any other conversion: so does capstan's
		// accepted count, which reconcile compares with LinkedIn's report.
		now := time.Now().UTC()
		day := res.Happened
		if day.IsZero() {
			day = now
		}
		ledger, err := delivery.OpenLedger(actx, eng)
		if err == nil {
			err = ledger.Add(actx, res.Destination, []delivery.Tally{{Rule: res.Rule, Day: day.UTC().Format(delivery.DayLayout), Accepted: 1, LastSent: now.UnixMilli()}})
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "warning: the test event was accepted but not added to the accepted count of capstan reconcile: %v\n", err)
		}
	}
	if err := audit.Append(actx, eng, rec); err != nil {
		return res, fmt.Errorf("the test event was sent (HTTP %d) but not recorded in the audit log: %w", res.Status, err)
	}
	return res, nil
}

// printTestResult writes a test send's request and answer for people.
func printTestResult(w io.Writer, res *lidest.TestResult) error {
	var b strings.Builder
	fmt.Fprintf(&b, "REAL SEND to %s — destination %s", res.APIBase, res.Destination)
	if res.Mapping != "" {
		fmt.Fprintf(&b, ", mapping %q", res.Mapping)
	}
	if res.Rule != "" {
		fmt.Fprintf(&b, ", conversion rule %s", res.Rule)
	}
	b.WriteString("\n")
	if len(res.Enriched) > 0 {
		keys := make([]string, 0, len(res.Enriched))
		for k := range res.Enriched {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "enriched: %s from %s\n", k, res.Enriched[k])
		}
	}
	if res.Request != nil {
		req, err := json.MarshalIndent(res.Request, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "\nrequest:\n%s\n", req)
	}
	if a := res.Answer; a != nil {
		fmt.Fprintf(&b, "\nanswer: HTTP %d\n", a.Status)
		keys := make([]string, 0, len(a.Headers))
		for k := range a.Headers {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "%s: %s\n", k, a.Headers[k])
		}
		if string(a.Body) == "null" {
			b.WriteString("(empty body)\n")
		} else {
			var v any
			if json.Unmarshal(a.Body, &v) == nil {
				body, _ := json.MarshalIndent(v, "", "  ")
				fmt.Fprintf(&b, "%s\n", body)
			}
		}
	}
	b.WriteString("\n")
	switch {
	case res.Accepted():
		fmt.Fprintf(&b, "accepted: LinkedIn took the conversion (HTTP %d); `capstan rules list` shows when LinkedIn saw it\n", res.Status)
	case res.Request == nil:
		fmt.Fprintf(&b, "not sent (%s): %s\n", res.Code, res.Error)
	default:
		fmt.Fprintf(&b, "refused: %s\n", res.Error)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func newRulesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Show the conversion rules of the configured mappings as LinkedIn has them",
	}
	cmd.AddCommand(newRulesListCmd())
	return cmd
}

func newRulesListCmd() *cobra.Command {
	var (
		cfgPath, dest string
		asJSON        bool
	)
	cmd := &cobra.Command{
		Use:   "list --config FILE [--destination NAME] [--json]",
		Short: "List each mapping's conversion rule with LinkedIn's status fields and a verdict",
		Long: `For each mapping of each LinkedIn destination (or of --destination), read its
conversion rule from LinkedIn (GET /rest/conversions/{id}) and print its
id, LinkedIn's status fields (enabled, lastCallbackAt,
latestFirstPartyCallbackAt, associated campaigns with their association
time; linkedin-capi.md §22) and capstan's derived status:

  receiving   LinkedIn saw a conversion signal within the last 7 days
  stale       the last signal is older than 7 days
  unverified  LinkedIn never saw a signal for the rule
  disabled    the rule is disabled: LinkedIn counts nothing for it
  not_capi    not a Conversions API rule: LinkedIn refuses API events
  not_created the rule is to be created and capstan serve has not yet
  unknown     LinkedIn could not be asked (the reason is shown)

plus a warning when no campaign is associated (LinkedIn then accepts the
conversions but attributes and reports none) and the configured rule
options the live rule does not have. The token and the ids of created
rules come from the state bucket; it works with capstan serve running or
stopped. It changes nothing.

Exit code 1 when any rule could not be read.`,
		Example: `  capstan rules list --config capstan.yaml
  capstan rules list --config capstan.yaml --destination linkedin --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withEngine(cmd, cfgPath, func(ctx context.Context, cfg *config.Config, eng *stream.Engine) error {
				var reports []lidest.RuleReport
				found := false
				for _, d := range cfg.Destinations {
					if dest != "" && d.Name != dest {
						continue
					}
					found = true
					lt, err := openLinkedIn(ctx, cfg, eng, d.Name)
					if err != nil {
						return err
					}
					reports = append(reports, lt.li.RuleReports(ctx, lt.plan, time.Now())...)
				}
				if !found {
					return usageErr(fmt.Errorf("no destination %q in %s", dest, cfg.File))
				}
				if reports == nil {
					reports = []lidest.RuleReport{}
				}
				var err error
				if asJSON {
					err = writeIndented(cmd.OutOrStdout(), struct {
						Rules []lidest.RuleReport `json:"rules"`
					}{reports})
				} else {
					err = printRuleReports(cmd.OutOrStdout(), reports)
				}
				if err != nil {
					return err
				}
				for _, r := range reports {
					if r.Status == lidest.RuleUnknown {
						return &exitError{code: exitRuntime, err: fmt.Errorf("the rule of mapping %q could not be read: %s", r.Mapping, r.Error)}
					}
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&cfgPath, "config", "c", "", "capstan's configuration file (YAML)")
	f.StringVar(&dest, "destination", "", "only this destination")
	f.BoolVar(&asJSON, "json", false, "print the rules as JSON")
	return cmd
}

// printRuleReports writes rule reports as a table and a verdict per rule.
func printRuleReports(w io.Writer, reports []lidest.RuleReport) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DESTINATION\tMAPPING\tRULE\tSTATUS\tENABLED\tLAST CALLBACK\tLAST FIRST-PARTY\tCAMPAIGNS")
	for _, r := range reports {
		enabled, last, first, camps := "-", "-", "-", "-"
		if f := r.Rule; f != nil {
			enabled = fmt.Sprint(f.Enabled)
			if f.LastCallbackAt != nil {
				last = f.LastCallbackAt.UTC().Format(time.RFC3339)
			}
			if f.LatestFirstPartyCallbackAt != nil {
				first = f.LatestFirstPartyCallbackAt.UTC().Format(time.RFC3339)
			}
			camps = fmt.Sprint(max(len(f.Campaigns), len(f.AssociatedCampaigns)))
		}
		id := r.RuleID
		if id == "" {
			id = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Destination, r.Mapping, id, r.Status, enabled, last, first, camps)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range reports {
		if _, err := fmt.Fprintf(w, "\n%s / %s: %s\n", r.Destination, r.Mapping, r.Verdict); err != nil {
			return err
		}
	}
	return nil
}

// SendTest sends a test event through the running destination (the
// console's route): the plan in force (prepared; also after a reload), the process's rate limiters and
// identity graph, recorded in the audit log as the principal's.
func (d *destination) SendTest(ctx context.Context, req admin.TestEventRequest) (any, error) {
	if !d.runner.Prepared() {
		// Its rules are still being created (or it is paused before
		// that): the routes are not final.
		why := "its conversion rules are still being set up"
		if st := d.runner.Status(); st.Reason != "" {
			why = "it is paused: " + st.Reason
		}
		return &lidest.TestResult{RealSend: true, APIBase: d.li.APIBase(), Destination: d.Name(), Mapping: req.Mapping,
			Code: "NOT_READY", Error: "destination " + d.Name() + " is not ready to send: " + why}, nil
	}
	return sendTestEvent(ctx, d.test.eng, d.li, lidest.TestEvent{
		Plan: d.runner.Plan(), Mapping: req.Mapping, Event: req.Event, Enricher: d.test.enr,
		Limits: d.test.limits, PerMinute: d.test.perMinute, PerDay: d.test.perDay,
	}, req.By)
}

// RuleReports reports the destination's rules (the console's route).
func (d *destination) RuleReports(ctx context.Context) (any, error) {
	return d.li.RuleReports(ctx, d.runner.Plan(), time.Now()), nil
}

// testDeps are what a running destination's test sends use.
type testDeps struct {
	eng               *stream.Engine
	enr               delivery.Enricher
	limits            *delivery.Limits
	perMinute, perDay int
}

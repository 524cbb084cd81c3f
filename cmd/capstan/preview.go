package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/delivery"
	lidest "github.com/capstan-gw/capstan/internal/delivery/linkedin"
	"github.com/capstan-gw/capstan/internal/stream"
)

func newPreviewCmd() *cobra.Command {
	var (
		mappingPath, cfgPath, eventPath string
		rule, trigger, source, dest     string
		nowMS                           int64
		useEngine                       bool
	)
	cmd := &cobra.Command{
		Use:   "preview (--mapping FILE | --config FILE) --event FILE",
		Short: "Show the LinkedIn requests events would produce, without sending anything",
		Long: `Dry run: print, as JSON, the exact LinkedIn requests the event(s) would
produce (method, path, headers with the token redacted, body), and what
became of each event for each mapping. Nothing is sent.

--mapping takes one Segment-format mapping: the field map of a "Stream
Conversion Event" action as Segment exports it (complete as given: a field
that is not there is not sent), optionally with onMappingSave.outputs.id as
the conversion rule id, enable_batching and batch_size; or a Segment
subscription ({"name","subscribe","mapping"}), whose subscribe text is the
trigger. --config takes capstan's configuration and runs every mapping of
every destination (or of --destination), triggers, consent and integrations
included.

--event holds one event or a JSON array of events. Events are first
normalised exactly as ingest does (receivedAt is --now); an event that
already has receivedAt is taken as stored. Conversions of mappings that
batch are grouped into BATCH_CREATE requests when there is more than one.

Exit code 3 when any event was invalid (dropped at ingest or refused by
validation); 0 otherwise, even when no trigger matched.`,
		Example: `  capstan preview --mapping signup.json --event event.json --now 1788258900000
  capstan preview --mapping page-view.json --conversion-rule 22833300 --event events.json
  capstan preview --config capstan.yaml --event events.json --conversion-rule 22833300`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (mappingPath == "") == (cfgPath == "") {
				return usageErr(errors.New("give exactly one of --mapping and --config"))
			}
			if eventPath == "" {
				return usageErr(errors.New("--event is required"))
			}
			now := time.Now()
			if nowMS != 0 {
				now = time.UnixMilli(nowMS)
			}
			var plans []*delivery.Plan
			var enr delivery.Enricher
			if useEngine && mappingPath != "" {
				return usageErr(errors.New("--engine goes with --config"))
			}
			if mappingPath != "" {
				p, err := segmentPlan(mappingPath, trigger, rule)
				if err != nil {
					return usageErr(err)
				}
				plans = append(plans, p)
			} else {
				cfg, err := loadConfig(cfgPath)
				if err != nil {
					return err
				}
				if plans, err = configPlans(cfg, dest, rule); err != nil {
					return err
				}
				if useEngine {
					closeEngine, g, err := previewEngine(cmd.Context(), cfg, plans)
					if err != nil {
						return err
					}
					defer closeEngine()
					enr = g
				}
			}
			raw, err := os.ReadFile(eventPath)
			if err != nil {
				return usageErr(fmt.Errorf("read events: %w", err))
			}
			out, invalid, err := delivery.Preview(cmd.Context(), plans, raw, source, now, enr)
			if err != nil {
				return usageErr(fmt.Errorf("%s: %w", eventPath, err))
			}
			if err := writeIndented(cmd.OutOrStdout(), out); err != nil {
				return err
			}
			if invalid {
				return &exitError{code: exitInvalid, err: errors.New("")}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&mappingPath, "mapping", "", "a Segment-format mapping (JSON)")
	f.StringVarP(&cfgPath, "config", "c", "", "capstan's configuration file (YAML)")
	f.StringVar(&eventPath, "event", "", "a JSON file with one event or an array of events")
	f.StringVar(&rule, "conversion-rule", "", "conversion rule id to use (overrides the mapping's)")
	f.StringVar(&trigger, "trigger", "", "with --mapping: only events matching this trigger")
	f.StringVar(&source, "source", "", "with --config: the source the events come from (default: any)")
	f.StringVar(&dest, "destination", "", "with --config: only this destination")
	f.Int64Var(&nowMS, "now", 0, "the clock, in epoch milliseconds (default: now)")
	f.BoolVar(&useEngine, "engine", false, "with --config: read the ids of created conversion rules and the identity graph from the configured engine (read only)")
	return cmd
}

// segmentPlan reads a Segment-format mapping or subscription.
func segmentPlan(path, trigger, rule string) (*delivery.Plan, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read mapping: %w", err)
	}
	var sub struct {
		Name      string          `json:"name"`
		Subscribe string          `json:"subscribe"`
		Mapping   json.RawMessage `json:"mapping"`
	}
	name := "mapping"
	if json.Unmarshal(b, &sub) == nil && len(sub.Mapping) > 0 && sub.Mapping[0] == '{' {
		b = sub.Mapping
		if trigger == "" {
			trigger = sub.Subscribe
		}
		if sub.Name != "" {
			name = sub.Name
		}
	}
	f, err := lidest.NewFormat(lidest.FormatConfig{})
	if err != nil {
		return nil, err
	}
	p, err := delivery.NewSegmentPlan(name, b, trigger, rule, f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// configPlans compiles the configured destinations for preview.
func configPlans(cfg *config.Config, only, rule string) ([]*delivery.Plan, error) {
	plans, err := compilePlans(cfg, only)
	if err != nil {
		return nil, err
	}
	if len(plans) == 0 {
		return nil, usageErr(fmt.Errorf("no destination %q in %s", only, cfg.File))
	}
	for _, p := range plans {
		if rule != "" {
			for _, r := range p.Routes {
				r.Rule = rule
			}
		}
	}
	return plans, nil
}

// previewEngine attaches to the configured engine: the plans get the rule
// ids delivery created, and the identity graph enriches as in delivery.
func previewEngine(ctx context.Context, cfg *config.Config, plans []*delivery.Plan) (func(), delivery.Enricher, error) {
	eng, err := stream.Attach(ctx, engineConfig(cfg), stderrLogger())
	if err != nil {
		return nil, nil, err
	}
	state, err := eng.KV(ctx, stream.StateKV, 0)
	if err != nil {
		eng.Close()
		return nil, nil, err
	}
	for _, p := range plans {
		lidest.LoadRuleIDs(ctx, state, p)
	}
	g, local, err := openIdentity(ctx, cfg, eng, stderrLogger())
	if err != nil {
		eng.Close()
		return nil, nil, fmt.Errorf("identity graph: %w", err)
	}
	return func() { closeLocal(local); eng.Close() }, g, nil
}

func writeIndented(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

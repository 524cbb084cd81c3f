package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/stream"
)

// dlqFlags are the selection flags shared by the dlq subcommands.
type dlqFlags struct {
	cfgPath string
	dest    string
	reason  string
	since   time.Duration
	id      uint64
}

func (f *dlqFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.cfgPath, "config", "c", "", "configuration file (YAML)")
	cmd.Flags().StringVar(&f.dest, "destination", "", "only this destination")
	cmd.Flags().StringVar(&f.reason, "reason", "", "only this reason: invalid, rejected, expired, unusable, event_id_collision")
	cmd.Flags().DurationVar(&f.since, "since", 0, "only dead letters of this last period (e.g. 24h)")
	cmd.Flags().Uint64Var(&f.id, "id", 0, "only the dead letter with this id (as listed)")
}

func (f *dlqFlags) filter() (delivery.DLQFilter, error) {
	switch f.reason {
	case "", delivery.ReasonInvalid, delivery.ReasonRejected, delivery.ReasonExpired, delivery.ReasonUnusable, delivery.ReasonCollision:
	default:
		return delivery.DLQFilter{}, usageErr(fmt.Errorf("--reason %q: use invalid, rejected, expired, unusable or event_id_collision", f.reason))
	}
	fl := delivery.DLQFilter{Destination: f.dest, Reason: f.reason, Seq: f.id}
	if f.since > 0 {
		fl.Since = time.Now().Add(-f.since)
	}
	return fl, nil
}

func newDLQCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect and replay the dead-letter queue",
		Long: `Conversions that LinkedIn refused, that failed capstan's validation, or that
could not be delivered within LinkedIn's 90-day window are kept in the DLQ
stream with the reason, LinkedIn's answer and the original event.`,
	}
	cmd.AddCommand(newDLQListCmd(), newDLQShowCmd(), newDLQReplayCmd())
	return cmd
}

func dlqRun(cmd *cobra.Command, f *dlqFlags, fn func(eng *stream.Engine, fl delivery.DLQFilter) error) error {
	fl, err := f.filter()
	if err != nil {
		return err
	}
	return withEngine(cmd, f.cfgPath, func(ctx context.Context, _ *config.Config, eng *stream.Engine) error {
		cmd.SetContext(ctx)
		return fn(eng, fl)
	})
}

func newDLQListCmd() *cobra.Command {
	var f dlqFlags
	cmd := &cobra.Command{
		Use:   "list --config FILE [--destination D] [--reason R] [--since D]",
		Short: "List dead letters, oldest first",
		Example: `  capstan dlq list --config capstan.yaml
  capstan dlq list --config capstan.yaml --destination linkedin --reason rejected --since 24h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return dlqRun(cmd, &f, func(eng *stream.Engine, fl delivery.DLQFilter) error {
				out := cmd.OutOrStdout()
				n := 0
				err := delivery.ListDeadLetters(cmd.Context(), eng, fl, func(dl *delivery.DeadLetter) error {
					if n == 0 {
						fmt.Fprintf(out, "%-6s  %-20s  %-12s  %-16s  %-8s  %-6s  %-36s  %s\n", "ID", "AT", "DESTINATION", "MAPPING", "REASON", "STATUS", "MESSAGE ID", "DETAIL")
					}
					n++
					return printDeadLetterLine(out, dl)
				})
				if err == nil && n == 0 {
					fmt.Fprintln(out, "no dead letters")
				}
				return err
			})
		},
	}
	f.add(cmd)
	return cmd
}

func printDeadLetterLine(w io.Writer, dl *delivery.DeadLetter) error {
	status := ""
	if dl.Status != 0 {
		status = strconv.Itoa(dl.Status)
	}
	detail := dl.Message
	if len(detail) > 100 {
		detail = detail[:100] + "…"
	}
	_, err := fmt.Fprintf(w, "%-6d  %-20s  %-12s  %-16s  %-8s  %-6s  %-36s  %s\n", dl.Seq, dl.At.Format(time.DateTime), dl.Destination, dl.Mapping, dl.Reason, status, dl.MessageID, detail)
	return err
}

func newDLQShowCmd() *cobra.Command {
	var f dlqFlags
	cmd := &cobra.Command{
		Use:   "show --config FILE [--id ID | filters]",
		Short: "Print dead letters in full, as JSON",
		Long: `Print each selected dead letter as a JSON document: the reason, LinkedIn's
status, code and message (with per-field errors), the request id to give
LinkedIn's support, the conversion as sent and the original event.`,
		Example: `  capstan dlq show --config capstan.yaml --id 42`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return dlqRun(cmd, &f, func(eng *stream.Engine, fl delivery.DLQFilter) error {
				return delivery.ListDeadLetters(cmd.Context(), eng, fl, func(dl *delivery.DeadLetter) error {
					return writeIndented(cmd.OutOrStdout(), dl)
				})
			})
		},
	}
	f.add(cmd)
	return cmd
}

func newDLQReplayCmd() *cobra.Command {
	var f dlqFlags
	cmd := &cobra.Command{
		Use:   "replay --config FILE [--destination D] [--reason R] [--since D] [--id ID]",
		Short: "Send dead letters again, mapped with the current configuration",
		Long: `Put the original events of the selected dead letters back into the EVENTS
stream for their destination only, and remove them from the DLQ. The
running capstan maps them again with its current configuration, so fixing a
mapping (or a token, or an event's data upstream) and replaying rescues
them; one that fails again returns to the DLQ. The eventId stays the same,
so LinkedIn never counts a conversion twice.`,
		Example: `  capstan dlq replay --config capstan.yaml --destination linkedin --reason invalid
  capstan dlq replay --config capstan.yaml --id 42`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return dlqRun(cmd, &f, func(eng *stream.Engine, fl delivery.DLQFilter) error {
				return withWriter(cmd.Context(), eng, func(w *stream.Writer) error {
					n, err := delivery.ReplayDeadLetters(cmd.Context(), eng, w, fl)
					fmt.Fprintf(cmd.OutOrStdout(), "replayed %d dead letter(s)\n", n)
					return err
				})
			})
		},
	}
	f.add(cmd)
	return cmd
}

// withWriter runs a Writer on eng while fn uses it, for tools that store
// events: the engine they are attached to (a running capstan's, the data
// directory's or the external cluster) makes them durable as it does for
// ingest, before each Append returns.
func withWriter(ctx context.Context, eng *stream.Engine, fn func(w *stream.Writer) error) error {
	w, err := stream.NewWriter(eng, stream.WriterConfig{}, stderrLogger())
	if err != nil {
		return err
	}
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	err = fn(w)
	stop()
	return errors.Join(err, <-done)
}

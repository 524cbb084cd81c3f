package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/linkedin"
	"github.com/capstan-gw/capstan/internal/privacy"
	"github.com/capstan-gw/capstan/internal/stream"
)

func newPrivacyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "privacy",
		Short: "Erase a person everywhere capstan keeps them (privacy requests)",
	}
	cmd.AddCommand(newPrivacyDeleteCmd())
	return cmd
}

func newPrivacyDeleteCmd() *cobra.Command {
	var (
		cfgPath                   string
		userID, anonymousID, mail string
		asJSON                    bool
	)
	cmd := &cobra.Command{
		Use:   "delete --config FILE (--user-id ID | --anonymous-id ID | --email EMAIL) [--json]",
		Short: "Erase a person from the identity graph, EVENTS and the DLQ, and suppress them",
		Long: `Erase a person, named by a userId, an anonymousId or an email:

  - from the identity graph, with every linked id (as "capstan identity
    delete" does);
  - from the EVENTS stream and the DLQ: every stored event, and every dead
    letter whose event, carries the userId, anonymousId or previousId of
    the person or of a linked id, or their email (traits.email,
    context.traits.email or properties.email, trimmed and lower-cased).
    Messages are erased with JetStream's secure delete, which overwrites
    them in the store. An email alone also erases the ids of the events
    that carry it (of an unverified browser event, only its anonymousId). Every stored event and dead letter is read once: the
    time this takes grows with the streams' retention, and is printed;
  - and, with privacy.suppress (the default), keeps a suppression entry per
    id (their SHA-256 only) for privacy.suppression_ttl (default 1 year):
    later events carrying them are stored but never delivered nor added to
    the graph; a running capstan applies it at once.

The deletion is recorded in the audit log (stream AUDIT): by "cli", the
kind of id and its SHA-256 (never the id), when, and the counts. Deleting a
person capstan does not know succeeds with zero counts.`,
		Example: `  capstan privacy delete --config capstan.yaml --user-id user_12345
  capstan privacy delete --config capstan.yaml --email jane@example.com --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := privacy.Request{
				UserID: strings.TrimSpace(userID), AnonymousID: strings.TrimSpace(anonymousID), Email: strings.TrimSpace(mail), By: "cli",
			}
			n := 0
			for _, s := range []string{req.UserID, req.AnonymousID, req.Email} {
				if s != "" {
					n++
				}
			}
			if n != 1 {
				return usageErr(errors.New("give exactly one of --user-id, --anonymous-id and --email"))
			}
			return withEngine(cmd, cfgPath, func(ctx context.Context, cfg *config.Config, eng *stream.Engine) error {
				g, local, err := openIdentity(ctx, cfg, eng, stderrLogger())
				if err != nil {
					return err
				}
				defer closeLocal(local)
				var sup *privacy.Suppressions
				if cfg.Privacy.Suppresses() {
					if sup, err = privacy.OpenSuppressions(ctx, eng, suppressionConfig(cfg)); err != nil {
						return err
					}
				}
				del, err := privacy.NewDeleter(eng, g, sup, linkedin.HashEmail, stderrLogger())
				if err != nil {
					return err
				}
				rep, err := del.Delete(ctx, req)
				if errors.Is(err, privacy.ErrBadRequest) {
					return usageErr(err)
				}
				if err != nil {
					return fmt.Errorf("privacy delete (partly done: %d graph keys, %d events, %d dead letters): %w",
						rep.GraphKeysRemoved, rep.EventsDeleted, rep.DeadLettersDeleted, err)
				}
				out := cmd.OutOrStdout()
				if asJSON {
					return writeIndentedJSON(out, rep)
				}
				fmt.Fprintf(out, "erased %s sha256:%s in %.1fs\n", rep.IDKind, rep.IDSHA256, rep.Seconds)
				fmt.Fprintf(out, "  identity graph keys removed  %d\n", rep.GraphKeysRemoved)
				fmt.Fprintf(out, "  events deleted (EVENTS)      %d\n", rep.EventsDeleted)
				fmt.Fprintf(out, "  dead letters deleted (DLQ)   %d\n", rep.DeadLettersDeleted)
				if sup != nil {
					fmt.Fprintf(out, "  ids suppressed               %d (for %s)\n", rep.Suppressed, days(cfg.Privacy.SuppressionTTL.D()))
				} else {
					fmt.Fprintf(out, "  ids suppressed               none (privacy.suppress is off)\n")
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "configuration file (YAML)")
	cmd.Flags().StringVar(&userID, "user-id", "", "the person's userId")
	cmd.Flags().StringVar(&anonymousID, "anonymous-id", "", "the person's anonymousId")
	cmd.Flags().StringVar(&mail, "email", "", "the person's email")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// days writes a whole number of days as "365d", anything else as Go does.
func days(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

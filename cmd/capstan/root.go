package main

import (
	"errors"
	"strings"

	"github.com/spf13/cobra"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "capstan",
		Short: "Self-hosted gateway from Segment clients to the LinkedIn Conversions API",
		Long: `capstan accepts events from unmodified Segment clients, stores them durably in
NATS JetStream, keeps a first-party identity graph and delivers conversions to
the LinkedIn Conversions API with batching, rate limits, retries and a
dead-letter queue.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr(err) })
	root.AddCommand(
		newServeCmd(),
		newEventsCmd(),
		newImportCmd(),
		newPreviewCmd(),
		newMigrateCmd(),
		newDLQCmd(),
		newReconcileCmd(),
		newDemoCmd(),
		newSandboxCmd(),
		newIdentityCmd(),
		newSecretKeyCmd(),
		newPrivacyCmd(),
		newBackupCmd(),
		newRestoreCmd(),
		newVersionCmd(),
		newHealthcheckCmd(),
		newTestEventCmd(),
		newRulesCmd(),
		newAdminCmd(),
	)
	bi := readBuildInfo()
	root.Version = bi.Version // enables --version
	root.SetVersionTemplate(bi.String())
	return root
}

// isUsage reports whether err came from cobra's own argument checking.
func isUsage(err error) bool {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code == exitUsage
	}
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "unknown flag") ||
		strings.Contains(msg, "arg(s)") || strings.HasPrefix(msg, "required flag")
}

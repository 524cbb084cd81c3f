package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

const cliReferencePath = "../../docs/cli.md"

// TestCLIReferenceUpToDate regenerates docs/cli.md from the commands'
// Use, Short, Long, Example and flags, and fails when it is stale.
func TestCLIReferenceUpToDate(t *testing.T) {
	var b strings.Builder
	b.WriteString("# capstan command-line reference\n\nGenerated from the commands by `go test ./cmd/capstan -run CLIReference -update`; do not edit.\n\n")
	b.WriteString("Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error, 3 some events were invalid (preview, import), some of an export could not be migrated (migrate segment), or test-event was refused before sending.\n")
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		if c.Runnable() || c.HasSubCommands() {
			fmt.Fprintf(&b, "\n## %s\n\n%s\n", c.CommandPath(), c.Short)
			if c.Long != "" {
				fmt.Fprintf(&b, "\n%s\n", c.Long)
			}
			if c.Runnable() {
				fmt.Fprintf(&b, "\n```\n%s\n```\n", c.UseLine())
			}
			if c.Example != "" {
				fmt.Fprintf(&b, "\nExamples:\n\n```\n%s\n```\n", c.Example)
			}
			if f := c.LocalFlags().FlagUsages(); f != "" {
				fmt.Fprintf(&b, "\nFlags:\n\n```\n%s```\n", f)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd())
	got := b.String()
	if *update {
		if err := os.WriteFile(cliReferencePath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if want, err := os.ReadFile(cliReferencePath); err != nil || string(want) != got {
		t.Fatal("docs/cli.md is stale: run go test ./cmd/capstan -run CLIReference -update")
	}
}

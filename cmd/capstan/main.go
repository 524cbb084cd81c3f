// Command capstan is the LinkedIn Conversions API gateway: one binary that
// ingests Segment-compatible events, stores them durably in NATS JetStream
// and delivers conversions to LinkedIn. This package only wires the CLI; all
// logic lives under internal/.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Exit codes are part of the CLI contract (shared/ARCHITECTURE.md).
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
	exitInvalid = 3
)

// exitError carries a specific exit code out of a command's RunE.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr marks err as a usage or configuration error (exit code 2).
func usageErr(err error) error { return &exitError{code: exitUsage, err: err} }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(stderr, "capstan:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "capstan:", err)
	if isUsage(err) {
		return exitUsage
	}
	return exitRuntime
}

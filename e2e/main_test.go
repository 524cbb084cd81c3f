package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// Paths shared by every test, set by TestMain.
var (
	// capstanBin is the binary built from ./cmd/capstan for this run.
	capstanBin string
	// e2eDir is this package's directory (where e2e/node_modules lives).
	e2eDir string
	// buildDir holds binaries built for this run (removed at its end).
	buildDir string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	e2eDir = wd
	tmp, err := os.MkdirTemp("", "capstan-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	buildDir = tmp
	capstanBin = filepath.Join(tmp, "capstan")
	if err := buildCapstan(filepath.Dir(wd), capstanBin); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(5 * time.Second); len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "e2e: %d goroutines leaked by the tests:\n\n%s\n", len(leaked), strings.Join(leaked, "\n\n"))
			return 1
		}
	}
	return code
}

// raceEnv, set to 1, builds capstan with the race detector: the tests then
// also fail when a server reports a data race. Off by default (slower).
const raceEnv = "CAPSTAN_E2E_RACE"

// buildCapstan builds ./cmd/capstan of the module rooted at root into out.
func buildCapstan(root, out string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"build", "-o", out}
	if os.Getenv(raceEnv) == "1" {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/capstan")...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/capstan: %w\n%s", err, stderr.Bytes())
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "e2e: built %s in %s\n", out, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// leakedGoroutines returns the stacks of goroutines still running that the
// tests started, after waiting up to grace for them to end (as net/http's
// own tests do in main_test.go).
func leakedGoroutines(grace time.Duration) []string {
	var leaked []string
	poll(grace, func() bool {
		leaked = interestingGoroutines()
		return len(leaked) == 0
	})
	return leaked
}

func interestingGoroutines() []string {
	buf := make([]byte, 2<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		_, stack, ok := strings.Cut(g, "\n")
		if !ok {
			continue
		}
		if stack == "" || slices.ContainsFunc(ignoredStacks, func(s string) bool { return strings.Contains(stack, s) }) {
			continue
		}
		out = append(out, strings.TrimSpace(g))
	}
	return out
}

// ignoredStacks mark goroutines of the runtime and the test framework.
var ignoredStacks = []string{
	"e2e.interestingGoroutines",
	"testing.(*M).",
	"testing.Main(",
	"testing.tRunner(",
	"created by runtime.gc",
	"os/signal.signal_recv",
	"os/signal.loop",
	"runtime.ensureSigM",
	"runtime/trace.Start",
}

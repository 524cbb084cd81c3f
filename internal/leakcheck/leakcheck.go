// Package leakcheck fails a test binary whose tests leave goroutines
// running. Every package's main_test.go calls it:
//
//	func TestMain(m *testing.M) { leakcheck.Main(m) }
//
// It is for tests only; no non-test code imports it.
package leakcheck

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Grace is how long Main waits, after the tests, for their goroutines to end:
// a server's connection goroutines and a closed engine's workers finish
// shortly after Close returns, not before.
const Grace = 5 * time.Second

// ignored are stack fragments of goroutines that are nobody's leak: the
// signal-handling goroutines, which the runtime starts on the first
// signal.Notify and never stops (go test -fuzz starts them: its
// coordinator and workers run under signal.NotifyContext, so a count of
// goroutines would fail every fuzzing run). Nothing else is ignored. The embedded
// nats-server needs no entry: Server.Shutdown waits for its goroutines, and
// after the stream, ingest and delivery tests none of them was left at the
// first poll. Nor do HTTP clients' keep-alive connections: closing the
// httptest.Server (or the sandbox) they talk to ends them.
var ignored = []string{
	"os/signal.loop",
	"runtime.ensureSigM",
}

// Main runs the tests and, if they passed, checks that every goroutine they
// started has ended; if some have not, it prints their stacks and the run
// fails. It calls os.Exit.
//
// The goroutines that exist before the tests (the runtime's, the testing
// framework's, those package initialisers start) are noted by id and never
// count. The others are polled every 10 ms until none is left or Grace has
// passed since the tests ended; goroutines the runtime hides from
// runtime.Stack (the collector's, the finaliser's) never appear.
//
// A failed run is not checked: its failure is what matters, and a test that
// stops half-way often leaves goroutines behind as a consequence.
func Main(m *testing.M) {
	before := ids(stacks())
	code := m.Run()
	if code == 0 {
		if leaked := wait(before, Grace); len(leaked) > 0 {
			report(os.Stderr, leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// wait polls until no goroutine outside before is left, or until grace has
// passed, and returns the stacks of those left.
func wait(before map[int]bool, grace time.Duration) []string {
	deadline := time.Now().Add(grace)
	for {
		leaked := extra(stacks(), before)
		if len(leaked) == 0 || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline, not synchronisation
	}
}

func report(w io.Writer, leaked []string) {
	fmt.Fprintf(w, "leakcheck: %d goroutines still running %s after the tests passed:\n\n%s\n", len(leaked), Grace, strings.Join(leaked, "\n\n"))
}

// stacks returns the stack of every goroutine, one string each.
func stacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Split(strings.TrimSpace(string(buf[:n])), "\n\n")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// ids returns the ids of goroutines, from their stacks' "goroutine N [...]:"
// header.
func ids(stacks []string) map[int]bool {
	m := make(map[int]bool, len(stacks))
	for _, s := range stacks {
		if id, ok := id(s); ok {
			m[id] = true
		}
	}
	return m
}

func id(stack string) (int, bool) {
	rest, ok := strings.CutPrefix(stack, "goroutine ")
	if !ok {
		return 0, false
	}
	num, _, _ := strings.Cut(rest, " ")
	n, err := strconv.Atoi(num)
	return n, err == nil
}

// extra returns the stacks of goroutines not in before and not ignored; the
// calling goroutine is always in before (it ran the tests).
func extra(stacks []string, before map[int]bool) []string {
	var out []string
	for _, s := range stacks {
		if n, ok := id(s); ok && before[n] {
			continue
		}
		if slices.ContainsFunc(ignored, func(f string) bool { return strings.Contains(s, f) }) {
			continue
		}
		out = append(out, s)
	}
	return out
}

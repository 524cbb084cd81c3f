package leakcheck

import (
	"bytes"
	"context"
	"os"
	"os/signal"
	"strings"
	"testing"
	"time"
)

func TestWait(t *testing.T) {
	before := ids(stacks())
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		<-stop
		close(done)
	}()
	leaked := wait(before, 50*time.Millisecond)
	if len(leaked) != 1 || !strings.Contains(leaked[0], "leakcheck.TestWait.func1") {
		t.Errorf("leaked = %q, want the goroutine TestWait started", leaked)
	}
	var buf bytes.Buffer
	report(&buf, leaked)
	if !strings.Contains(buf.String(), "1 goroutines still running") || !strings.Contains(buf.String(), "TestWait.func1") {
		t.Errorf("report:\n%s", buf.String())
	}

	close(stop)
	<-done // the goroutine may still be running for a moment: wait polls
	if leaked := wait(before, 5*time.Second); len(leaked) != 0 {
		t.Errorf("leaked after it ended: %q", leaked)
	}
}

// TestWaitAfterFuzzing: go test -fuzz runs the fuzzing coordinator and its
// workers under signal.NotifyContext(ctx, os.Interrupt) (testing's
// testdeps), whose signal goroutine outlives the run. A check that counted
// goroutines (runtime.NumGoroutine, as internal/linkedin's own TestMain did)
// failed every fuzzing run after it passed: "leaked goroutines: 1 before
// tests, 2 after". Main ignores that goroutine and waits for the rest.
func TestWaitAfterFuzzing(t *testing.T) {
	before := ids(stacks())
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	cancel()
	<-ctx.Done()
	if leaked := wait(before, 5*time.Second); len(leaked) != 0 {
		t.Errorf("leaked: %q", leaked)
	}
}

// TestWaitIgnoresSignals: the goroutines the runtime starts for
// signal.Notify outlive signal.Stop and are nobody's leak.
func TestWaitIgnoresSignals(t *testing.T) {
	before := ids(stacks())
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt)
	signal.Stop(c)
	if leaked := wait(before, 5*time.Second); len(leaked) != 0 {
		t.Errorf("leaked: %q", leaked)
	}
}

func TestID(t *testing.T) {
	tests := []struct {
		name  string
		stack string
		want  int
		ok    bool
	}{
		{"running", "goroutine 1 [running]:\nmain.main()", 1, true},
		{"waiting", "goroutine 4711 [chan receive (nil chan), 2 minutes]:\nx.f()", 4711, true},
		{"no header", "main.main()\n\tmain.go:3", 0, false},
		{"bad number", "goroutine x [running]:", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := id(tc.stack)
			if got != tc.want || ok != tc.ok {
				t.Errorf("id = %d, %v; want %d, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

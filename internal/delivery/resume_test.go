package delivery

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"
)

// errNeedsToken is scripted's operator error: only a new token helps.
var errNeedsToken = errors.New("the token lacks a scope")

// scripted is a webhook that is also a Preparer and an AccessChecker whose
// answers the test gives one call at a time: each call says it started on
// started and returns the next error sent on answers.
type scripted struct {
	*webhook
	started chan string // "prepare" or "check"
	answers chan error
}

func (s *scripted) call(ctx context.Context, what string) error {
	select {
	case s.started <- what:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-s.answers:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *scripted) Prepare(ctx context.Context, _ *Plan) error { return s.call(ctx, "prepare") }
func (s *scripted) CheckAccess(ctx context.Context) error      { return s.call(ctx, "check") }
func (s *scripted) NeedsOperator(err error) bool               { return errors.Is(err, errNeedsToken) }

// serveScripted starts a runner with Serve on a new scripted destination
// (its requests go to a receiver that takes them all); pauses are retried
// only after an hour, so that only a Resume can end one within a test.
func serveScripted(t *testing.T, access time.Duration) (*Runner, *scripted) {
	t.Helper()
	env := newWebhookEnv(t, 1)
	srv := httptest.NewServer(&receiver{took: map[string]int{}})
	t.Cleanup(srv.Close)
	s := &scripted{webhook: &webhook{url: srv.URL, batch: 50, hc: srv.Client()}, started: make(chan string), answers: make(chan error)}
	p, errs := NewPlan(env.cfg, 0, s)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	r, err := NewRunner(p, s, RunnerConfig{Clock: env.clock, Linger: 20 * time.Millisecond, PauseRetry: time.Hour, AccessCheck: access},
		Deps{Engine: env.eng})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		if err := r.Serve(ctx); err != nil {
			t.Error(err)
		}
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return r, s
}

// expectCall waits for s's next call and checks what it is.
func expectCall(t *testing.T, s *scripted, want string) {
	t.Helper()
	select {
	case got := <-s.started:
		if got != want {
			t.Fatalf("call %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s call within 10 s", want)
	}
}

// A Resume that arrives while Prepare runs (an operator installed a token
// while the attempt that will fail was in flight) is not lost: the pause
// that attempt starts ends with a new attempt at once, not after
// PauseRetry.
func TestResumeDuringPrepare(t *testing.T) {
	r, s := serveScripted(t, time.Hour)

	expectCall(t, s, "prepare")
	r.Resume()
	s.answers <- errNeedsToken
	expectCall(t, s, "prepare")
	s.answers <- nil
	eventually(t, 10*time.Second, "prepared", r.Prepared)
	if why := r.Paused(); why != "" {
		t.Errorf("still paused: %s", why)
	}
}

// The same for the periodic access check: a Resume during the check that
// pauses makes the next check run at once.
func TestResumeDuringAccessCheck(t *testing.T) {
	r, s := serveScripted(t, 20*time.Millisecond)

	expectCall(t, s, "prepare")
	s.answers <- nil
	eventually(t, 10*time.Second, "prepared", r.Prepared)
	expectCall(t, s, "check")
	r.Resume()
	s.answers <- errNeedsToken
	expectCall(t, s, "check")
	s.answers <- nil
	eventually(t, 10*time.Second, "unpaused", func() bool { return r.Paused() == "" })
}

// And for a request: a Resume while the request that pauses is in flight
// sends it again at once.
func TestResumeDuringSend(t *testing.T) {
	env := newWebhookEnv(t, 1)
	inFlight, answer := make(chan struct{}), make(chan struct{})
	rcv := &receiver{took: map[string]int{}, script: func(n int, _ []map[string]any) (int, string) {
		if n == 1 {
			close(inFlight)
			<-answer
			return 401, "expired"
		}
		return 200, ""
	}}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	w := &webhook{url: srv.URL, batch: 50, hc: srv.Client()}
	r := env.run(0, w, RunnerConfig{BatchSize: 50, PauseRetry: time.Hour}, nil)
	env.send(1)
	select {
	case <-inFlight:
	case <-time.After(10 * time.Second):
		t.Fatal("no request within 10 s")
	}
	r.Resume()
	close(answer)
	eventually(t, 10*time.Second, "the order delivered", func() bool { return len(rcv.taken()) == 1 })
}

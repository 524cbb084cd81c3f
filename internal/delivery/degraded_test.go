package delivery

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/stream"
)

// TestEngineErrorDegradesAndRecovers: an engine error while opening the
// destination's consumer (here the EVENTS stream is missing, as while a
// cluster forms or a node restarts) does not end Serve: the destination
// shows "degraded" with the reason, is retried with backoff, and delivers
// by itself once the engine is back.
func TestEngineErrorDegradesAndRecovers(t *testing.T) {
	env := newWebhookEnv(t, 1)
	ctx := context.Background()
	js := env.eng.JetStream()
	info, err := js.Stream(ctx, stream.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	scfg := info.CachedInfo().Config
	if err := js.DeleteStream(ctx, stream.EventsStream); err != nil {
		t.Fatal(err)
	}
	rcv := &receiver{took: map[string]int{}}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	w := &webhook{url: srv.URL, batch: 8, hc: srv.Client()}
	p, errs := NewPlan(env.cfg, 0, w)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	// The real clock: the retries' backoff is what is tested.
	r, err := NewRunner(p, w, RunnerConfig{Linger: 20 * time.Millisecond}, Deps{Engine: env.eng, Metrics: env.m})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- r.Serve(sctx) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()
	eventually(t, 10*time.Second, "degraded", func() bool { return r.Status().State == "degraded" })
	if st := r.Status(); !strings.Contains(st.Reason, "stream not found") {
		t.Errorf("status %+v: the reason does not name the engine's error", st)
	}
	select {
	case err := <-served:
		t.Fatalf("Serve ended on an engine error: %v", err)
	default:
	}
	if _, err := js.CreateStream(ctx, scfg); err != nil {
		t.Fatal(err)
	}
	env.send(5)
	eventually(t, 30*time.Second, "5 delivered after recovery", func() bool { return len(rcv.taken()) == 5 })
	if st := r.Status(); st.State != "delivering" || st.Reason != "" {
		t.Errorf("status after recovery %+v", st)
	}
}

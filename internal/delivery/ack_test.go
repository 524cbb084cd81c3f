package delivery

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/stream"
)

// TestConfirmedAcks runs a runner on an engine connected over TCP, as to an
// external cluster (stream.Engine.Embedded is false): its acknowledgements
// go through the pool of ackers and are confirmed. Every event is delivered
// once, and once the runner stopped the consumer holds nothing
// unacknowledged: nothing is sent again by the next run.
func TestConfirmedAcks(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	dir := t.TempDir()
	server, err := stream.Open(ctx, stream.Config{DataDir: dir, Listen: "127.0.0.1:0"}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	b, err := os.ReadFile(filepath.Join(dir, "engine.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ctl struct{ URL, Token string }
	if err := json.Unmarshal(b, &ctl); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(ctl.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(ctl.Token)
	eng, err := stream.Open(ctx, stream.Config{URL: u.String()}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if eng.Embedded() {
		t.Fatal("the TCP engine counts as embedded")
	}

	env := newWebhookEnv(t, 1) // for its configuration and helpers
	w, err := stream.NewWriter(eng, stream.WriterConfig{}, log)
	if err != nil {
		t.Fatal(err)
	}
	wctx, stopW := context.WithCancel(ctx)
	wdone := make(chan struct{})
	go func() { _ = w.Run(wctx); close(wdone) }()
	defer func() { stopW(); <-wdone }()
	env.eng, env.w = eng, w

	rcv := &receiver{took: map[string]int{}}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	wh := &webhook{url: srv.URL, batch: 8, hc: srv.Client()}
	p, errs := NewPlan(env.cfg, 0, wh)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	r, err := NewRunner(p, wh, RunnerConfig{Linger: 20 * time.Millisecond, Clock: env.clock}, Deps{Engine: eng, Metrics: env.m})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	env.send(50)
	eventually(t, 20*time.Second, "50 delivered", func() bool { return len(rcv.taken()) == 50 })
	eventually(t, 20*time.Second, "all acknowledged", func() bool {
		c, err := eng.JetStream().Consumer(ctx, stream.EventsStream, "deliver-wh0")
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for id, n := range rcv.taken() {
		if n != 1 {
			t.Errorf("%s taken %d times", id, n)
		}
	}
}

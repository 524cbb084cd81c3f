package delivery

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/stream"
)

func TestLeaseOneActiveDeliverer(t *testing.T) {
	eng, err := stream.Open(context.Background(), stream.Config{DataDir: t.TempDir()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	kv, err := eng.KV(context.Background(), stream.StateKV, 0)
	if err != nil {
		t.Fatal(err)
	}
	var active, most atomic.Int32
	run := func(ctx context.Context) error {
		n := active.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-ctx.Done()
		active.Add(-1)
		return nil
	}
	ctx1, stop1 := context.WithCancel(context.Background())
	ctx2, stop2 := context.WithCancel(context.Background())
	defer stop2()
	a, b := NewLease(kv, "li", 300*time.Millisecond), NewLease(kv, "li", 300*time.Millisecond)
	var standby atomic.Bool
	done1, done2 := make(chan error), make(chan error)
	go func() { done1 <- a.Hold(ctx1, nil, run) }()
	eventually(t, 5*time.Second, "first replica active", func() bool { return active.Load() == 1 })
	go func() { done2 <- b.Hold(ctx2, func() { standby.Store(true) }, run) }()
	eventually(t, 5*time.Second, "second replica standing by", standby.Load)
	stop1() // the active replica stops: the standby takes over
	if err := <-done1; err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "failover", func() bool { return active.Load() == 1 })
	if most.Load() != 1 {
		t.Errorf("%d deliverers were active at once", most.Load())
	}
	stop2()
	if err := <-done2; err != nil {
		t.Fatal(err)
	}
}

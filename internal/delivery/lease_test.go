package delivery

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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

func leaseKV(t *testing.T) jetstream.KeyValue {
	t.Helper()
	eng, err := stream.Open(context.Background(), stream.Config{DataDir: t.TempDir()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	kv, err := eng.KV(context.Background(), stream.StateKV, 0)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// TestLeaseFenced: the holder's renewals are a compare-and-set on the
// revision it last wrote. When another writer changed the key (a replica
// that took over while this one was cut off), the next renewal fails, the
// holder's delivery is cancelled and Valid turns false: it sends nothing
// more.
func TestLeaseFenced(t *testing.T) {
	kv := leaseKV(t)
	a := NewLease(kv, "li", 600*time.Millisecond)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var runs atomic.Int32
	stopped := make(chan struct{}, 4)
	done := make(chan error, 1)
	go func() {
		done <- a.Hold(ctx, nil, func(ctx context.Context) error {
			runs.Add(1)
			<-ctx.Done()
			stopped <- struct{}{}
			return nil
		})
	}()
	eventually(t, 5*time.Second, "holder active", func() bool { return runs.Load() == 1 && a.Valid() })
	// Another replica writes the key (it took the lease over).
	if _, err := kv.Put(context.Background(), "lease.li", []byte(`{"owner":"other","ttlMillis":600000}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("the holder kept delivering after another replica wrote the lease")
	}
	if a.Valid() {
		t.Error("the lease is still valid after its renewal was refused")
	}
	// The other replica's lease (ttl 10 min) keeps this one standing by.
	time.Sleep(time.Second)
	if n := runs.Load(); n != 1 {
		t.Errorf("the fenced replica delivered again (%d runs)", n)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestLeaseTakeoverIgnoresClocks: a holder that died without releasing
// leaves its key behind. A standby takes over once the key's revision has
// not changed for the holder's ttl, measured on its own clock: an expiry
// written with a clock a year ahead does not keep it waiting, and it does
// not take over early either.
func TestLeaseTakeoverIgnoresClocks(t *testing.T) {
	kv := leaseKV(t)
	dead := `{"owner":"dead","ttlMillis":900,"expires":"` + time.Now().Add(365*24*time.Hour).UTC().Format(time.RFC3339) + `"}`
	if _, err := kv.Put(context.Background(), "lease.li", []byte(dead)); err != nil {
		t.Fatal(err)
	}
	b := NewLease(kv, "li", 300*time.Millisecond)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	start := time.Now()
	var took atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- b.Hold(ctx, nil, func(ctx context.Context) error {
			took.Store(int64(time.Since(start)))
			<-ctx.Done()
			return nil
		})
	}()
	eventually(t, 10*time.Second, "take-over", func() bool { return took.Load() != 0 })
	if d := time.Duration(took.Load()); d < 900*time.Millisecond {
		t.Errorf("took over after %s, before the holder's ttl of 900ms", d)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

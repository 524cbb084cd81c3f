package localdb

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	natstest "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// openBucket returns a KV bucket of a JetStream server of its own holding
// the keys k0000, k0001, … (n of them), each with its name as value.
func openBucket(t *testing.T, n int) jetstream.KeyValue {
	t.Helper()
	opts := natstest.DefaultTestOptions
	opts.Port = -1
	opts.JetStream = true
	opts.StoreDir = t.TempDir()
	ns := natstest.RunServer(&opts)
	t.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "test"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		k := fmt.Sprintf("k%04d", i)
		if _, err := kv.Put(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	return kv
}

// putAll is a Copy's Put that adds every entry under its key.
func putAll(b *pebble.Batch, e jetstream.KeyValueEntry, _ bool) (Copied, error) {
	return Added, b.Set([]byte(e.Key()), e.Value(), nil)
}

// TestCopyBucketBatches: a bucket larger than a batch is copied whole, in
// batches, with progress after each full one (Every 0); Put learns from
// Empty that the store was fresh and decides each entry (kept and skipped
// ones are counted apart or not at all); Sync runs once, with Close still
// held off; without Sync the log is fsynced.
func TestCopyBucketBatches(t *testing.T) {
	const n, batch = 25, 10
	kv := openBucket(t, n)
	d := openTest(t)
	var progress [][2]int
	syncs := 0
	closed := make(chan struct{})
	c := Copy{
		Batch: batch,
		Empty: func() (bool, error) { return true, nil },
		Put: func(b *pebble.Batch, e jetstream.KeyValueEntry, fresh bool) (Copied, error) {
			if !fresh {
				t.Errorf("Put of %s: not fresh, though Empty said so", e.Key())
			}
			switch e.Key() {
			case "k0003":
				return Kept, nil
			case "k0004":
				return Skipped, nil
			}
			return putAll(b, e, fresh)
		},
		Sync: func() error {
			syncs++
			// Close waits for the copy's end: it has not begun.
			go func() { _ = d.Close(); close(closed) }()
			select {
			case <-closed:
				t.Error("Close ended before Sync returned: CopyBucket no longer held it off")
			case <-time.After(50 * time.Millisecond):
			}
			return d.LogData(nil, pebble.Sync)
		},
	}
	got, kept, err := d.CopyBucket(context.Background(), kv, c, func(n, kept int) { progress = append(progress, [2]int{n, kept}) })
	if err != nil || got != n-2 || kept != 1 {
		t.Fatalf("CopyBucket: %d copied, %d kept (%v), want %d, 1", got, kept, err, n-2)
	}
	if syncs != 1 {
		t.Errorf("Sync called %d times, want 1", syncs)
	}
	if want := [][2]int{{10, 1}, {20, 1}}; fmt.Sprint(progress) != fmt.Sprint(want) {
		t.Errorf("progress %v, want %v", progress, want)
	}
	// The Close begun in Sync ends: the store reopens with what was
	// copied.
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close begun in Sync did not end after the copy")
	}
	d, err = Open(Options{Dir: d.dir, MemoryBytes: 8 << 20, What: "test store"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for i := range n {
		k := fmt.Sprintf("k%04d", i)
		v, closer, err := d.Get([]byte(k))
		switch {
		case k == "k0003" || k == "k0004":
			if err == nil {
				closer.Close()
				t.Errorf("%s copied, though Put kept or skipped it", k)
			}
		case err != nil:
			t.Errorf("%s: %v", k, err)
		default:
			if string(v) != k {
				t.Errorf("%s = %q", k, v)
			}
			closer.Close()
		}
	}

	// Without Sync (nor Empty: fresh is false), the log is fsynced.
	d2 := openTest(t)
	got, _, err = d2.CopyBucket(context.Background(), kv, Copy{Batch: batch, Put: func(b *pebble.Batch, e jetstream.KeyValueEntry, fresh bool) (Copied, error) {
		if fresh {
			t.Errorf("Put of %s: fresh without Empty", e.Key())
		}
		return putAll(b, e, fresh)
	}}, nil)
	if err != nil || got != n {
		t.Errorf("CopyBucket without Sync: %d (%v), want %d", got, err, n)
	}
}

// TestCopyBucketEmpty: an empty bucket copies nothing and still syncs.
func TestCopyBucketEmpty(t *testing.T) {
	kv := openBucket(t, 0)
	d := openTest(t)
	syncs, puts := 0, 0
	n, kept, err := d.CopyBucket(context.Background(), kv, Copy{
		Batch: 10,
		Put: func(b *pebble.Batch, e jetstream.KeyValueEntry, fresh bool) (Copied, error) {
			puts++
			return putAll(b, e, fresh)
		},
		Sync: func() error { syncs++; return nil },
	}, nil)
	if n != 0 || kept != 0 || err != nil || puts != 0 || syncs != 1 {
		t.Errorf("CopyBucket of an empty bucket: %d copied, %d kept (%v), %d puts, %d syncs; want 0, 0, nil, 0, 1", n, kept, err, puts, syncs)
	}
}

// TestCopyBucketClosed: a closed store copies nothing: the error wraps
// ErrClosed and names the store; neither Empty nor Put nor Sync runs.
func TestCopyBucketClosed(t *testing.T) {
	kv := openBucket(t, 3)
	d := openTest(t)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	called := ""
	n, _, err := d.CopyBucket(context.Background(), kv, Copy{
		Batch: 10,
		Empty: func() (bool, error) { called += "Empty "; return true, nil },
		Put: func(b *pebble.Batch, e jetstream.KeyValueEntry, fresh bool) (Copied, error) {
			called += "Put "
			return Added, nil
		},
		Sync: func() error { called += "Sync "; return nil },
	}, nil)
	if !errors.Is(err, ErrClosed) || err.Error() != "test store closed" || n != 0 {
		t.Errorf("CopyBucket after Close: %d, %v; want 0, test store closed", n, err)
	}
	if called != "" {
		t.Errorf("called after Close: %s", called)
	}
}

// TestCopyBucketCancelled: a copy cancelled midway returns ctx's error
// without syncing; the batches committed before stay, and the store is
// released (Close does not wait for the copy).
func TestCopyBucketCancelled(t *testing.T) {
	const n, batch = 40, 10
	kv := openBucket(t, n)
	d := openTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	puts, synced := 0, false
	got, _, err := d.CopyBucket(ctx, kv, Copy{
		Batch: batch,
		Put: func(b *pebble.Batch, e jetstream.KeyValueEntry, fresh bool) (Copied, error) {
			if puts++; puts == batch+5 {
				cancel()
			}
			return putAll(b, e, fresh)
		},
		Sync: func() error { synced = true; return nil },
	}, nil)
	if !errors.Is(err, context.Canceled) || got >= n || got < batch+5 {
		t.Fatalf("cancelled CopyBucket: %d copied, %v; want context.Canceled after %d to %d", got, err, batch+5, n-1)
	}
	if synced {
		t.Error("a cancelled copy was synced")
	}
	v, closer, err := d.Get([]byte("k0000"))
	if err != nil || string(v) != "k0000" {
		t.Errorf("the first batch after cancellation: %q, %v", v, err)
	} else {
		closer.Close()
	}
	closed := make(chan error, 1)
	go func() { closed <- d.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close still waits for a cancelled copy")
	}
}

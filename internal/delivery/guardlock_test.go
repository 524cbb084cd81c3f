package delivery

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestGuardLocalLocksByKey: a write holds its key only. While a
// compare-and-delete holds claim key B (stopped inside it, in the clock
// its read of B asks), a create of 2000 other keys completes (with 256
// stripes of keys, as before, one of them shared B's and waited); a create
// of a chunk with B in it waits for the delete, and then finds B kept (the
// delete's value was not B's); a chunk naming a key twice does not wait
// for itself; no key stays locked.
func TestGuardLocalLocksByKey(t *testing.T) {
	ctx := context.Background()
	var stop atomic.Bool
	stopped, resume := make(chan struct{}), make(chan struct{})
	l := openTestGuardLocal(t, t.TempDir(), func() time.Time {
		if stop.CompareAndSwap(true, false) {
			close(stopped)
			<-resume
		}
		return time.Now()
	})
	b := guardKey("li", "r1", "b")
	if created, err := l.create(ctx, b, []byte("b")); err != nil || !created {
		t.Fatalf("create of B: %v %v", created, err)
	}
	stop.Store(true)
	deleted := make(chan error, 1)
	go func() { deleted <- l.deleteIf(ctx, b, []byte("not b")) }()
	<-stopped // the delete holds B

	others := guardFilterKeys("other", 2000)
	created := make(chan []error, 1)
	go func() { created <- l.createKeys(ctx, others, make([][]byte, len(others))) }()
	select {
	case errs := <-created:
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		close(resume)
		t.Fatal("a create of other keys waited for the delete of B")
	}

	a := guardKey("li", "r1", "a")
	withB := make(chan []error, 1)
	go func() { withB <- l.createKeys(ctx, []string{a, b}, [][]byte{[]byte("a"), []byte("b2")}) }()
	select {
	case errs := <-withB:
		t.Fatalf("a create of B did not wait for the delete of B: %v", errs)
	case <-time.After(100 * time.Millisecond):
	}
	close(resume)
	if err := <-deleted; err != nil {
		t.Fatalf("delete of B: %v", err)
	}
	if errs := <-withB; errs[0] != nil || !errors.Is(errs[1], errClaimExists) {
		t.Errorf("create of A and B after the delete: %v, want A created and B existing", errs)
	}

	twice := guardKey("li", "r1", "twice")
	done := make(chan []error, 1)
	go func() { done <- l.createKeys(ctx, []string{twice, twice}, [][]byte{[]byte("1"), []byte("2")}) }()
	select {
	case errs := <-done:
		if errs[0] != nil || !errors.Is(errs[1], errClaimExists) {
			t.Errorf("create of a key named twice: %v, want the first created", errs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a create naming a key twice waited for itself")
	}
	if n := l.keys.InUse(); n != 0 {
		t.Errorf("%d keys still locked after every write returned", n)
	}
}

package identity

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// TestLocalLocksByKey: a write holds its key only. While a put holds key
// B (stopped inside its compare-and-set, in the clock its read of B's
// profile asks), a create of 2000 other keys completes (with 256 stripes
// of keys, as before, one of them shared B's and waited); a create of a
// chunk with B in it waits for the put, and then finds B taken; a chunk
// naming a key twice does not wait for itself.
func TestLocalLocksByKey(t *testing.T) {
	ctx := context.Background()
	l := openLocal(t)
	var stop atomic.Bool
	stopped, resume := make(chan struct{}), make(chan struct{})
	l.bind(time.Hour, func() time.Time {
		if stop.CompareAndSwap(true, false) {
			close(stopped)
			<-resume
		}
		return time.Now()
	})
	b := UserKey("b")
	if _, err := l.put(ctx, b, []byte(`{}`), 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	stop.Store(true)
	put := make(chan error, 1)
	go func() { _, err := l.put(ctx, b, []byte(`{"first":1}`), 1, time.Now()); put <- err }()
	<-stopped // the put holds B

	others := make([]string, 2000)
	for i := range others {
		others[i] = AnonymousKey(fmt.Sprint("other", i))
	}
	created := make(chan []error, 1)
	go func() { _, errs := l.createAll(ctx, others, make([][]byte, len(others)), time.Now()); created <- errs }()
	select {
	case errs := <-created:
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		close(resume)
		t.Fatal("a create of other keys waited for the put of B")
	}

	withB := make(chan []error, 1)
	go func() {
		_, errs := l.createAll(ctx, []string{AnonymousKey("a"), b}, make([][]byte, 2), time.Now())
		withB <- errs
	}()
	select {
	case errs := <-withB:
		t.Fatalf("a create of B did not wait for the put of B: %v", errs)
	case <-time.After(100 * time.Millisecond):
	}
	close(resume)
	if err := <-put; err != nil {
		t.Fatalf("put of B: %v", err)
	}
	if errs := <-withB; errs[0] != nil || !casConflict(errs[1]) {
		t.Errorf("create of A and B after the put: %v, want A created and B a conflict", errs)
	}

	twice := AnonymousKey("twice")
	done := make(chan []error, 1)
	go func() {
		_, errs := l.createAll(ctx, []string{twice, twice}, make([][]byte, 2), time.Now())
		done <- errs
	}()
	select {
	case errs := <-done:
		if errs[0] != nil {
			t.Errorf("create of a key named twice: %v", errs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a create naming a key twice waited for itself")
	}
	if n := l.keys.InUse(); n != 0 {
		t.Errorf("%d keys still locked after every write returned", n)
	}
}

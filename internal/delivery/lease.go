package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Lease makes one replica the active deliverer of a destination. With an
// external NATS cluster, every `capstan serve` replica ingests, but LinkedIn's
// rate limits are per token and delivery order matters per destination, so
// only the lease holder delivers; the others stand by and take over when it
// stops renewing (crash, network partition, shutdown).
//
// The lease is a key in the state bucket, fenced by the key's revision (the
// KV stream's sequence, assigned by the cluster): every write is a
// compare-and-set on the revision the writer last saw, so two replicas can
// never both believe they wrote the current value. No wall-clock time is
// compared between replicas, so clock skew cannot make two deliverers:
//
//   - The holder renews every ttl/3 with a compare-and-set on the revision it
//     last wrote. It counts itself the holder until ttl after it sent its last
//     successful renewal (its own monotonic clock), and not at all once a
//     renewal's compare-and-set fails: the runner asks Valid before every
//     request, so a replica that lost the lease sends nothing more.
//   - A standby remembers the revision it read and when it read it (its own
//     monotonic clock). Only when the revision has not changed for the ttl
//     written in the value does it take the lease, with a compare-and-set on
//     that revision. The holder wrote that revision before the standby read
//     it, so the holder's own validity ended before the standby takes over.
//
// After the holder dies, another replica delivers within ttl + ttl/3 plus
// one fetch of events: the holder's last renewal is at most ttl/3 old, a
// standby reads it within ttl/3 (it looks every ttl/3), and takes over ttl
// after that read (it looks again exactly then).
type Lease struct {
	kv    jetstream.KeyValue
	key   string
	owner string
	ttl   time.Duration

	mu         sync.Mutex
	rev        uint64        // revision this replica last wrote; 0: not holding
	validUntil time.Time     // holding until then (monotonic)
	seenRev    uint64        // standby: the other holder's revision last read
	seenAt     time.Time     // and when it was first read (monotonic)
	retryIn    time.Duration // standby: when to look again (acquire)
}

// leaseValue is the lease key's value. TTLMillis is the holder's lease
// duration, which standbys wait for; Expires is informational only (for
// people reading the key), never compared by capstan.
type leaseValue struct {
	Owner     string    `json:"owner"`
	TTLMillis int64     `json:"ttlMillis"`
	Expires   time.Time `json:"expires"`
}

// NewLease returns the lease of destination dest for this process.
func NewLease(kv jetstream.KeyValue, dest string, ttl time.Duration) *Lease {
	host, _ := os.Hostname()
	return &Lease{kv: kv, key: "lease." + dest, owner: fmt.Sprintf("%s/%d/%d", host, os.Getpid(), time.Now().UnixNano()), ttl: ttl}
}

// TTL returns the lease's duration.
func (l *Lease) TTL() time.Duration { return l.ttl }

// errHeld means another replica holds the lease.
var errHeld = errors.New("lease held by another replica")

// errLost means this replica's renewal found another writer's revision.
var errLost = errors.New("lease lost: another replica wrote it")

func (l *Lease) value() []byte {
	val, _ := json.Marshal(leaseValue{Owner: l.owner, TTLMillis: l.ttl.Milliseconds(), Expires: time.Now().Add(l.ttl).UTC()})
	return val
}

// Valid reports whether this replica holds the lease now: its last renewal
// succeeded less than ttl ago and no renewal found another writer.
func (l *Lease) Valid() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rev != 0 && time.Now().Before(l.validUntil)
}

// held records a successful write of revision rev sent at sent.
func (l *Lease) held(rev uint64, sent time.Time) {
	l.mu.Lock()
	l.rev, l.validUntil = rev, sent.Add(l.ttl)
	l.mu.Unlock()
}

// drop forgets the lease (lost or released).
func (l *Lease) drop() {
	l.mu.Lock()
	l.rev, l.validUntil = 0, time.Time{}
	l.mu.Unlock()
}

// acquire tries once to take the lease: it succeeds when the key is absent
// or deleted, or when its revision has not changed for the holder's ttl
// since this replica first read it.
func (l *Lease) acquire(ctx context.Context) error {
	sent := time.Now()
	e, err := l.kv.Get(ctx, l.key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		rev, err := l.kv.Create(ctx, l.key, l.value())
		if err != nil {
			return fmt.Errorf("%w (%v)", errHeld, err)
		}
		l.held(rev, sent)
		return nil
	case err != nil:
		return err
	}
	var cur leaseValue
	_ = json.Unmarshal(e.Value(), &cur)
	wait := time.Duration(cur.TTLMillis) * time.Millisecond
	if wait <= 0 {
		wait = l.ttl // written by an older capstan
	}
	now := time.Now()
	l.mu.Lock()
	if e.Revision() != l.seenRev {
		l.seenRev, l.seenAt = e.Revision(), now
	}
	left := wait - now.Sub(l.seenAt)
	stale := left <= 0
	// Look again every ttl/3, and exactly when this revision would be stale,
	// so that a take-over is not up to a period late.
	l.retryIn = min(l.ttl/3, max(left, time.Millisecond))
	l.mu.Unlock()
	if cur.Owner != l.owner && !stale {
		return errHeld
	}
	sent = time.Now()
	rev, err := l.kv.Update(ctx, l.key, l.value(), e.Revision())
	if err != nil {
		return fmt.Errorf("%w (%v)", errHeld, err)
	}
	l.held(rev, sent)
	return nil
}

// renew extends the lease with a compare-and-set on the revision this
// replica last wrote. errLost when another replica wrote it since; another
// error is transient (the lease stays valid until its ttl runs out).
func (l *Lease) renew(ctx context.Context) error {
	l.mu.Lock()
	last := l.rev
	l.mu.Unlock()
	if last == 0 {
		return errLost
	}
	sent := time.Now()
	rev, err := l.kv.Update(ctx, l.key, l.value(), last)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		// A renewal whose answer was lost (timeout) may have been written:
		// if the key still names this replica, that revision is ours.
		e, gerr := l.kv.Get(ctx, l.key)
		if gerr != nil {
			if errors.Is(gerr, jetstream.ErrKeyNotFound) {
				return errLost
			}
			return gerr
		}
		var cur leaseValue
		_ = json.Unmarshal(e.Value(), &cur)
		if cur.Owner != l.owner {
			return errLost
		}
		sent = time.Now()
		rev, err = l.kv.Update(ctx, l.key, l.value(), e.Revision())
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return errLost
		}
	}
	if err != nil {
		return err
	}
	l.held(rev, sent)
	return nil
}

// Hold runs fn whenever this replica holds the lease, until ctx ends: it
// waits to acquire the lease (calling standby, if set, each time it starts
// waiting), renews it every ttl/3, and cancels fn's context when the lease is
// lost, then waits to acquire it again. It releases the lease when ctx ends.
func (l *Lease) Hold(ctx context.Context, standby func(), fn func(context.Context) error) error {
	for ctx.Err() == nil {
		waiting := false
		for {
			actx, cancel := context.WithTimeout(ctx, l.ttl/3)
			err := l.acquire(actx)
			cancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			if !waiting && standby != nil {
				standby()
			}
			waiting = true
			l.mu.Lock()
			wait := l.retryIn
			l.retryIn = 0
			l.mu.Unlock()
			if wait <= 0 {
				wait = l.ttl / 3
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
		if err := l.run(ctx, fn); err != nil {
			return err
		}
	}
	return nil
}

// run calls fn while renewing the lease; it returns fn's error, or nil when
// the lease was lost (the caller then waits for it again).
func (l *Lease) run(ctx context.Context, fn func(context.Context) error) error {
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lost := make(chan struct{})
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		every := l.ttl / 3
		t := time.NewTimer(every)
		defer t.Stop()
		for {
			select {
			case <-fctx.Done():
				return
			case <-t.C:
			}
			rctx, rcancel := context.WithTimeout(fctx, every)
			err := l.renew(rctx)
			rcancel()
			if fctx.Err() != nil {
				return
			}
			if errors.Is(err, errLost) || err != nil && !l.Valid() {
				// Another replica wrote the key, or no renewal succeeded
				// for ttl: stop delivering now.
				l.drop()
				close(lost)
				cancel()
				return
			}
			next := every
			if err != nil {
				next = every / 4 // transient: try again sooner while still valid
			}
			t.Reset(next)
		}
	}()
	err := fn(fctx)
	cancel()
	<-renewed
	select {
	case <-lost:
		return nil
	default:
	}
	// Released: a standby takes over at once instead of after the expiry.
	l.mu.Lock()
	rev := l.rev
	l.mu.Unlock()
	l.drop()
	if rev != 0 {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer rcancel()
		_ = l.kv.Delete(rctx, l.key, jetstream.LastRevision(rev))
	}
	return err
}

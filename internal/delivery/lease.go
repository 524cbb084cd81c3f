package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Lease makes one replica the active deliverer of a destination. With an
// external NATS cluster, every `capstan serve` replica ingests, but LinkedIn's
// rate limits are per token and delivery order matters per destination, so
// only the lease holder delivers; the others stand by and take over when it
// stops renewing (crash, network partition, shutdown).
//
// The lease is a key in the state bucket holding the owner and an expiry,
// written with compare-and-set on the key's revision, so it works on any
// JetStream version (no per-key TTL needed).
type Lease struct {
	kv    jetstream.KeyValue
	key   string
	owner string
	ttl   time.Duration
	rev   uint64
}

type leaseValue struct {
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
}

// NewLease returns the lease of destination dest for this process.
func NewLease(kv jetstream.KeyValue, dest string, ttl time.Duration) *Lease {
	host, _ := os.Hostname()
	return &Lease{kv: kv, key: "lease." + dest, owner: fmt.Sprintf("%s/%d/%d", host, os.Getpid(), time.Now().UnixNano()), ttl: ttl}
}

// errHeld means another replica holds the lease.
var errHeld = errors.New("lease held by another replica")

// try takes or renews the lease once.
func (l *Lease) try(ctx context.Context) error {
	val, _ := json.Marshal(leaseValue{Owner: l.owner, Expires: time.Now().Add(l.ttl)})
	e, err := l.kv.Get(ctx, l.key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		rev, err := l.kv.Create(ctx, l.key, val)
		if err != nil {
			return fmt.Errorf("%w (%v)", errHeld, err)
		}
		l.rev = rev
		return nil
	case err != nil:
		return err
	}
	var cur leaseValue
	_ = json.Unmarshal(e.Value(), &cur)
	if cur.Owner != l.owner && time.Now().Before(cur.Expires) {
		return errHeld
	}
	rev, err := l.kv.Update(ctx, l.key, val, e.Revision())
	if err != nil {
		return fmt.Errorf("%w (%v)", errHeld, err)
	}
	l.rev = rev
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
			err := l.try(ctx)
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
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(l.ttl / 3):
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
	var lost atomic.Bool
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		t := time.NewTicker(l.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-fctx.Done():
				return
			case <-t.C:
				if err := l.try(fctx); err != nil && fctx.Err() == nil {
					lost.Store(true)
					cancel()
					return
				}
			}
		}
	}()
	err := fn(fctx)
	cancel()
	<-renewed
	if lost.Load() {
		return nil
	}
	// Released: a standby takes over at once instead of after the expiry.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer rcancel()
	_ = l.kv.Delete(rctx, l.key, jetstream.LastRevision(l.rev))
	return err
}

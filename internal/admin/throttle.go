package admin

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Sign-in throttling: after maxFailures failed sign-ins from one address
// within failureWindow, that address may not try again until the window
// that began with its first failure has passed.
const (
	maxFailures   = 10
	failureWindow = 15 * time.Minute
	// maxThrottled bounds the addresses remembered; when it is reached
	// and none has expired, further addresses share one entry (and so are
	// throttled together): memory stays bounded under a spray of addresses.
	maxThrottled = 10000
)

// failures counts an address's failed sign-ins since start.
type failures struct {
	n     int
	start time.Time
}

// throttle remembers failed sign-ins by client address.
type throttle struct {
	mu sync.Mutex
	m  map[string]*failures
}

func newThrottle() *throttle { return &throttle{m: map[string]*failures{}} }

// overflowKey is the shared entry of the addresses beyond maxThrottled.
const overflowKey = "*"

// wait returns how long addr must wait before it may try again; 0 when it
// may now.
func (t *throttle) wait(addr string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.m[addr]
	if f == nil {
		f = t.m[overflowKey]
		if f == nil || len(t.m) < maxThrottled {
			return 0
		}
	}
	end := f.start.Add(failureWindow)
	if f.n < maxFailures || !now.Before(end) {
		return 0
	}
	return end.Sub(now)
}

// fail counts a failed sign-in from addr.
func (t *throttle) fail(addr string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.m[addr]
	if f == nil {
		if len(t.m) >= maxThrottled {
			for k, v := range t.m {
				if !now.Before(v.start.Add(failureWindow)) {
					delete(t.m, k)
				}
			}
		}
		if len(t.m) >= maxThrottled {
			addr = overflowKey
			f = t.m[addr]
		}
	}
	if f == nil || !now.Before(f.start.Add(failureWindow)) {
		f = &failures{start: now}
		t.m[addr] = f
	}
	f.n++
}

// succeed forgets addr's failures.
func (t *throttle) succeed(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, addr)
}

// clientAddr is the TCP peer, or the left-most untrusted X-Forwarded-For
// hop when the peer is one of the trusted proxies.
func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	peer = peer.Unmap()
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	if !isTrusted(peer) {
		return peer.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		a = a.Unmap()
		if !isTrusted(a) {
			return a.String()
		}
		peer = a
	}
	return peer.String()
}

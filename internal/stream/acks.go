package stream

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Acknowledgements read where they arrive.
//
// jetstream.PublishMsgAsync takes every acknowledgement through one
// wildcard subscription whose handler runs in a goroutine of its own: the
// connection's reader hands the message to that goroutine, which finds
// the future and hands the acknowledgement to the publisher. At 2,000
// single-event requests/s a commit is one message, so that is one of the
// ~11 goroutine wake-ups of a request, each a wait for a CPU on a busy
// machine. Where capstan's server is its own (embedded, or a tool attached
// to it) a commit's messages are published with PublishMsg and a reply
// subject of an ackInbox instead: a channel subscription, into which the
// connection's reader delivers the acknowledgement itself, read by the
// commit that published. The "no responders" retries of PublishMsgAsync
// are for an external cluster electing a leader; they stay there.

// ackInbox is a reply subject prefix whose messages land in ch. One commit
// uses it at a time (ackInboxes); message i of a write is published with the
// reply subject prefix+i.
type ackInbox struct {
	prefix string // "<inbox>."
	sub    *nats.Subscription
	ch     chan *nats.Msg
}

// ackInboxes is a free list of ackInbox, made on demand: at most one per
// commit in flight.
type ackInboxes struct {
	nc   *nats.Conn
	size int // channel capacity: the most messages of one write
	mu   sync.Mutex
	free []*ackInbox
}

// get returns a free inbox, or a new one.
func (p *ackInboxes) get() (*ackInbox, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		in := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return in, nil
	}
	p.mu.Unlock()
	in := &ackInbox{prefix: p.nc.NewInbox() + ".", ch: make(chan *nats.Msg, p.size)}
	sub, err := p.nc.ChanSubscribe(in.prefix+"*", in.ch)
	if err != nil {
		return nil, fmt.Errorf("subscribe to acknowledgements: %w", err)
	}
	in.sub = sub
	return in, nil
}

// put gives in back once every acknowledgement of its write arrived, so
// that its channel is empty; otherwise (a timeout) it is dropped, and a
// late acknowledgement reaches no later write.
func (p *ackInboxes) put(in *ackInbox, clean bool) {
	if !clean {
		_ = in.sub.Unsubscribe()
		return
	}
	p.mu.Lock()
	p.free = append(p.free, in)
	p.mu.Unlock()
}

// errNoAck is a publish whose acknowledgement did not come in time.
var errNoAck = errors.New("publish: no acknowledgement in time")

// publishDirect writes recs one by one, in order and pipelined, each with
// its own acknowledgement, read from an ackInbox (see above). It is
// publishEach for capstan's own server.
func (a *appender) publishDirect(recs []*record, res []*Result) {
	in, err := a.inboxes.get()
	if err != nil {
		for i := range res {
			*res[i] = Result{Err: err}
		}
		return
	}
	// PublishMsg copies the message into the connection's buffer before
	// it returns: one message and header map serve every record.
	m := &nats.Msg{Header: make(nats.Header, 4)}
	msgID := []string{""}
	waiting := make([]bool, len(recs))
	pending := 0
	for i, r := range recs {
		setMessage(m, msgID, r)
		m.Reply = in.prefix + batchSeq(i)
		if err := a.nc.PublishMsg(m); err != nil {
			*res[i] = Result{Err: fmt.Errorf("publish: %w", err)}
			continue
		}
		waiting[i] = true
		pending++
	}
	timeout := time.NewTimer(a.cfg.AckTimeout)
	defer timeout.Stop()
	for pending > 0 {
		select {
		case ack := <-in.ch:
			i, ok := ackIndex(ack.Subject, in.prefix, len(recs))
			if !ok || !waiting[i] {
				continue // not one of this write's: none is expected
			}
			waiting[i] = false
			pending--
			*res[i] = readAck(ack)
		case <-timeout.C:
			for i, w := range waiting {
				if w {
					*res[i] = Result{Err: errNoAck}
				}
			}
			a.inboxes.put(in, false)
			return
		}
	}
	a.inboxes.put(in, true)
}

// ackIndex returns i of an acknowledgement's subject prefix+i, i < n.
func ackIndex(subject, prefix string, n int) (int, bool) {
	s, ok := strings.CutPrefix(subject, prefix)
	if !ok || s == "" || len(s) > 4 {
		return 0, false
	}
	i := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		i = i*10 + int(c-'0')
	}
	return i, i < n
}

// readAck returns the Result of one message from JetStream's answer to it:
// its sequence (and whether it was a duplicate), or an error.
func readAck(m *nats.Msg) Result {
	if len(m.Data) == 0 {
		if st := m.Header.Get("Status"); st != "" {
			return Result{Err: fmt.Errorf("publish: status %s %s", st, m.Header.Get("Description"))}
		}
		return Result{Err: errors.New("publish: empty acknowledgement")}
	}
	var ack pubAck
	if err := json.Unmarshal(m.Data, &ack); err != nil {
		return Result{Err: fmt.Errorf("publish: bad acknowledgement: %w", err)}
	}
	if ack.Error != nil {
		return Result{Err: fmt.Errorf("publish: %s (%d)", ack.Error.Description, ack.Error.ErrCode)}
	}
	if ack.Stream == "" {
		return Result{Err: fmt.Errorf("publish: invalid acknowledgement %q", m.Data)}
	}
	return Result{Seq: ack.Seq, Duplicate: ack.Duplicate}
}

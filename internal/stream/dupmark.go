package stream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/capstan-gw/capstan/internal/stream/dedup"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Readers that show events (`capstan events tail`, the console) mark the
// duplicates consumers skip (Stored.DuplicateOf), with the consumers' own
// verdict (Dedup.verdict): only in cluster mode, where two replicas can
// both store the same (source, messageId) and the later copy in stream
// order is skipped. With the embedded engine, one process writes and a
// duplicate is never stored (ingest answers it as such), so there is
// nothing to mark.
//
// A process that follows the stream (capstan serve with an external
// cluster) asks its own index. A tool connected to the cluster (events
// tail) has no index: it asks a running replica's through the cluster
// (dedupFirstSubject, answered by any one replica of a queue group,
// ServeDedup), sending only keys hashed with the install's secret and
// positions.

// markWait bounds how long a reader waits for the follower to cover the
// message it shows; past it, the message's events are shown unmarked.
const markWait = 2 * time.Second

const (
	// dedupFirstSubject: data: the message's 8-byte sequence, then 16-byte
	// keys, then the events' 8-byte positions; reply: 8 bytes per key (the
	// earlier first occurrence, or 0), or "!" and an error. Versioned
	// with the keys' derivation, as dedupCheckSubject: in a rolling
	// upgrade only replicas that derive keys as the tool does answer.
	dedupFirstSubject = "capstan.engine.dedup.v2.first"
	dedupFirstQueue   = "capstan-dedup"
)

// marker is how an engine's readers get the verdict (Engine.markDuplicates).
type marker struct {
	once   sync.Once
	secret []byte // nil: nothing to ask (no replica ever made an index)
	err    error
	failed bool // a verdict failed: this read marks nothing more
}

// markDuplicates sets DuplicateOf on the events of one message (all of
// seq) that consumers skip as duplicates of an earlier one. It marks
// nothing with the embedded engine. When no verdict can be had (the
// follower is behind, no replica answers) it logs a warning and marks
// nothing more for this reader (m).
func (e *Engine) markDuplicates(ctx context.Context, seq uint64, evs []Stored, m *marker) {
	if len(evs) == 0 || m.failed {
		return
	}
	var (
		first []uint64
		err   error
	)
	switch d := e.dedup.Load(); {
	case d != nil && d.x != nil && d.followed.Load():
		keys, pos, at := d.keysOf(evs)
		if len(keys) == 0 {
			return
		}
		var f []uint64
		if f, err = d.verdict(ctx, seq, keys, pos, markWait); err == nil {
			first = spread(f, at, len(evs))
		}
	case e.ns == nil && !e.attached: // a tool on an external cluster
		first, err = e.askFirst(ctx, seq, evs, m)
	default:
		return // one writer: duplicates are never stored
	}
	if err != nil {
		// Once: a follower far behind would otherwise make every message
		// of the read wait.
		m.failed = true
		e.log.Warn("duplicates are not marked from here on: no verdict of the de-duplication index", "seq", seq, "error", err)
		return
	}
	for i, f := range first {
		if f != 0 {
			evs[i].DuplicateOf = Pos(f)
		}
	}
}

// askFirst asks a running replica for the verdict on evs (the events of
// the message at seq).
func (e *Engine) askFirst(ctx context.Context, seq uint64, evs []Stored, m *marker) ([]uint64, error) {
	m.once.Do(func() { m.secret, m.err = readDedupSecret(ctx, e) })
	if m.err != nil || m.secret == nil {
		return nil, m.err
	}
	d := &Dedup{secret: m.secret, hasher: dedup.NewHasher(m.secret)}
	keys, pos, at := d.keysOf(evs)
	if len(keys) == 0 {
		return nil, nil
	}
	req := binary.BigEndian.AppendUint64(make([]byte, 0, 8+24*len(keys)), seq)
	req = append(req, joinKeys(keys, pos)...)
	rctx, cancel := context.WithTimeout(ctx, markWait+3*time.Second)
	defer cancel()
	resp, err := e.nc.RequestWithContext(rctx, dedupFirstSubject, req)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return nil, errors.New("no capstan replica answers on the cluster")
		}
		return nil, fmt.Errorf("asking a capstan replica: %w", err)
	}
	first, err := splitPos(resp.Data, len(keys))
	if err != nil {
		return nil, fmt.Errorf("a capstan replica: %w", err)
	}
	return spread(first, at, len(evs)), nil
}

// readDedupSecret returns the install's hash secret; nil when there is none
// yet (no replica ever opened an index: nothing to ask). A reader does not
// make it.
func readDedupSecret(ctx context.Context, e *Engine) ([]byte, error) {
	kv, err := e.KV(ctx, StateKV, 0)
	if err != nil {
		return nil, fmt.Errorf("de-duplication secret: %w", err)
	}
	entry, err := kv.Get(ctx, secretKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("de-duplication secret: %w", err)
	}
	return entry.Value(), nil
}

// splitPos decodes n 8-byte positions, or the "!"-prefixed error a
// service answered.
func splitPos(b []byte, n int) ([]uint64, error) {
	if len(b) > 0 && b[0] == '!' {
		return nil, errors.New(string(b[1:]))
	}
	if len(b) != 8*n {
		return nil, fmt.Errorf("answered %d bytes for %d keys", len(b), n)
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = binary.BigEndian.Uint64(b[8*i:])
	}
	return out, nil
}

// serveFirst answers readers' verdict requests (askFirst) on the cluster,
// one replica of the queue group each, with d's verdict.
func (e *Engine) serveFirst(d *Dedup) error {
	_, err := e.nc.QueueSubscribe(dedupFirstSubject, dedupFirstQueue, func(m *nats.Msg) {
		if len(m.Data) < 8 || (len(m.Data)-8)%24 != 0 {
			_ = m.Respond([]byte("!a verdict request holds a sequence, 16-byte keys and 8-byte positions"))
			return
		}
		seq := binary.BigEndian.Uint64(m.Data)
		b := m.Data[8:]
		n := len(b) / 24
		keys, pos := make([]dedup.Key, n), make([]uint64, n)
		for i := range n {
			copy(keys[i][:], b[16*i:])
			pos[i] = binary.BigEndian.Uint64(b[16*n+8*i:])
		}
		ctx, cancel := context.WithTimeout(context.Background(), markWait)
		defer cancel()
		first, err := d.verdict(ctx, seq, keys, pos, markWait)
		if err != nil {
			_ = m.Respond([]byte("!" + err.Error()))
			return
		}
		_ = m.Respond(joinPos(first))
	})
	if err != nil {
		return fmt.Errorf("de-duplication verdict service: %w", err)
	}
	return nil
}

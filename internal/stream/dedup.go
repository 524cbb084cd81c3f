package stream

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/capstan-gw/capstan/internal/stream/dedup"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Per-event de-duplication (docs/storage.md): every (source, messageId)
// pair the Writer stores is recorded in an on-disk index with the position
// of its first occurrence; the Writer looks each event up before a commit.
// The index is derived state: it knows up to which stream sequence it
// covers EVENTS and is caught up from there at start (OpenDedup), so a
// crash between a commit and its recording loses nothing.

// DedupConfig configures the de-duplication index.
type DedupConfig struct {
	// Dir holds the index. Required.
	Dir string
	// Window is how long a pair is remembered. Default 24h.
	Window time.Duration
	// MemoryBytes bounds the index's memory. Default 256 MiB.
	MemoryBytes int64
	// Follow says that the process will run Follow (several writers: an
	// external cluster): from the start, writers leave covered to it.
	Follow bool
}

// Dedup is the per-event de-duplication index of one process, with the
// install's hash secret. Writers share it through WriterConfig.Dedup.
type Dedup struct {
	x      *dedup.Index // the index of this process; nil for a tool's (AttachDedup)
	idx    keyIndex     // what writers look keys up in: x, or the running capstan's
	secret []byte
	hasher *dedup.Hasher // HashKey under secret
	log    *slog.Logger
	// followed is set when Follow runs, or will (DedupConfig.Follow): it
	// alone then moves covered, and consumers check their events against
	// the index (cluster mode).
	followed atomic.Bool
}

// keyIndex is what a Writer needs of the index.
type keyIndex interface {
	Check(keys []dedup.Key) ([]uint64, error)
	Add(keys []dedup.Key, pos []uint64, covered uint64) error
}

// secretKey is the state bucket's key of the index's hash secret: the same
// for every replica of an install, so that their indexes agree.
const secretKey = "dedup-secret"

// OpenDedup opens the index in cfg.Dir (a damaged one, dedup.ErrDamaged, is
// removed and rebuilt), takes the install's hash secret from the state bucket (made on
// first use) and catches the index up with EVENTS: every event stored
// after the position it covers is recorded, through the read path, and a
// log line says how many. Ingest must not store events before it returns.
func OpenDedup(ctx context.Context, e *Engine, cfg DedupConfig, log *slog.Logger) (*Dedup, error) {
	if cfg.Dir == "" {
		return nil, errors.New("de-duplication index: no directory")
	}
	if cfg.Window <= 0 {
		cfg.Window = 24 * time.Hour
	}
	if cfg.MemoryBytes <= 0 {
		cfg.MemoryBytes = 256 << 20
	}
	log = log.With("component", "dedup")
	secret, err := dedupSecret(ctx, e)
	if err != nil {
		return nil, err
	}
	opt := dedup.Options{Dir: cfg.Dir, Window: cfg.Window, MemoryBytes: cfg.MemoryBytes, Logger: log}
	x, err := dedup.Open(opt)
	if err != nil && !errors.Is(err, dedup.ErrDamaged) {
		return nil, fmt.Errorf("de-duplication index: %w", err) // in use, no permission: not ours to remove
	}
	switch {
	case errors.Is(err, dedup.ErrFormat):
		// An upgrade that changed the index's format (its keys): the old
		// index cannot answer for this release's keys, so it is rebuilt
		// from the stream like a damaged one, which loses no duplicate
		// of the window, and takes the catch-up's time once.
		log.Warn("de-duplication index is of another format (an upgrade); rebuilding it from the events of the window", "dir", cfg.Dir, "error", err)
	case err != nil:
		log.Warn("de-duplication index damaged; rebuilding it from the events of the window", "dir", cfg.Dir, "error", err)
	}
	if err != nil {
		// Emptied under the directory's lock: a second opener (two
		// replicas given one directory) is refused, never races the rebuild.
		if x, err = dedup.OpenEmpty(opt); err != nil {
			return nil, fmt.Errorf("de-duplication index: %w", err)
		}
	}
	// An index ahead of the stream (a restored backup, another data
	// directory) remembers events the stream no longer holds: rebuild it.
	if last, err := e.LastEventSeq(ctx); err == nil && x.Covered() > last {
		log.Warn("de-duplication index is ahead of the event stream (restored?); rebuilding it from the events of the window", "covered", x.Covered(), "last_seq", last)
		if x, err = x.Rebuild(); err != nil { // the lock held throughout
			return nil, fmt.Errorf("de-duplication index: %w", err)
		}
	}
	d := &Dedup{x: x, idx: x, secret: secret, hasher: dedup.NewHasher(secret), log: log}
	if _, err := d.catchUp(ctx, e, cfg.Window); err != nil {
		_ = x.Close()
		return nil, err
	}
	d.followed.Store(cfg.Follow)
	e.dedup.Store(d) // the process's index: consumers check against it while it follows
	return d, nil
}

// dedupSecret returns the install's hash secret, creating it once.
func dedupSecret(ctx context.Context, e *Engine) ([]byte, error) {
	kv, err := e.KV(ctx, StateKV, 0)
	if err != nil {
		return nil, fmt.Errorf("de-duplication secret: %w", err)
	}
	for range 3 {
		entry, err := kv.Get(ctx, secretKey)
		if err == nil {
			if len(entry.Value()) < 16 {
				return nil, fmt.Errorf("de-duplication secret: %s in bucket %s is too short", secretKey, StateKV)
			}
			return entry.Value(), nil
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, fmt.Errorf("de-duplication secret: %w", err)
		}
		s := make([]byte, 32)
		_, _ = rand.Read(s)
		if _, err := kv.Create(ctx, secretKey, s); err == nil {
			return s, nil
		} else if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("de-duplication secret: %w", err)
		}
		// Another replica made it first: read theirs.
	}
	return nil, errors.New("de-duplication secret: could not be read or created")
}

// catchUpBatch is how many events catch-up records at once.
const catchUpBatch = 4096

// catchUp records the events EVENTS holds after the index's covered
// sequence, and returns how many events it read; an empty index reads
// only the window.
func (d *Dedup) catchUp(ctx context.Context, e *Engine, window time.Duration) (int, error) {
	start := time.Now()
	spec := readSpec{fromSeq: d.x.Covered() + 1}
	if spec.fromSeq == 1 {
		spec = readSpec{since: start.Add(-window)}
	}
	var (
		keys  []dedup.Key
		pos   []uint64
		n     int
		last  uint64
		flush = func() error {
			if last == 0 {
				return nil
			}
			err := d.x.Add(keys, pos, last)
			keys, pos = keys[:0], pos[:0]
			return err
		}
	)
	var dec msgDecoder // one for the read: its arrays serve every message
	err := e.read(ctx, EventsStream, spec, func(m rawMessage) error {
		_, err := dec.decode(m.Seq, m.Subject, m.Header, m.Data, m.Time)
		if err == nil {
			dec.eachKey(func(i int, source, messageID, dedupID string) {
				n++
				if k, ok := d.key(source, messageID, dedupID); ok {
					keys = append(keys, k)
					pos = append(pos, uint64(MakePos(m.Seq, i)))
				}
			})
		}
		if err != nil {
			d.log.Warn("de-duplication catch-up: a stored message does not decode; its events are not recorded", "seq", m.Seq, "error", err)
		}
		last = m.Seq
		if len(keys) >= catchUpBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return n, fmt.Errorf("de-duplication index: catch up with %s: %w", EventsStream, err)
	}
	d.log.Info("de-duplication index caught up with the event stream", "events_read", n, "covered", d.x.Covered(), "took", time.Since(start).Round(time.Millisecond))
	return n, nil
}

// key returns the index key of an event; false for one never de-duplicated.
func (d *Dedup) key(source, messageID, dedupID string) (dedup.Key, bool) {
	src, id, ok := keyOf(source, messageID, dedupID)
	if !ok {
		return dedup.Key{}, false
	}
	return d.hash(src, id), true
}

// hash returns the key of (src, id), keyOf's pair.
func (d *Dedup) hash(src, id string) dedup.Key {
	if d.hasher == nil {
		return dedup.HashKey(d.secret, src, id)
	}
	return d.hasher.Key(src, id)
}

// Follow keeps the index current with EVENTS until ctx ends: an ordered
// read from the covered position on records every event stored by any
// writer (other replicas of an external cluster, tools) and moves covered
// message by message. Once it started, Writers leave covered to it and
// Consumers with this index skip the events whose first occurrence is
// earlier in the stream (ConsumerConfig.Dedup): the verdict "first in
// stream order" that every replica reaches alike (docs/storage.md,
// "Cluster mode"). A read that fails is retried after a second.
func (d *Dedup) Follow(ctx context.Context, e *Engine) {
	if d.x == nil {
		return
	}
	d.followed.Store(true) // for good: covered stays the follower's
	var (
		keys []dedup.Key
		pos  []uint64
		dec  msgDecoder // its arrays serve every message
	)
	for ctx.Err() == nil {
		spec := readSpec{fromSeq: d.x.Covered() + 1, follow: true}
		err := e.read(ctx, EventsStream, spec, func(m rawMessage) error {
			keys, pos = keys[:0], pos[:0]
			_, err := dec.decode(m.Seq, m.Subject, m.Header, m.Data, m.Time)
			if err == nil {
				dec.eachKey(func(i int, source, messageID, dedupID string) {
					if k, ok := d.key(source, messageID, dedupID); ok {
						keys, pos = append(keys, k), append(pos, uint64(MakePos(m.Seq, i)))
					}
				})
			}
			if err != nil {
				d.log.Warn("de-duplication follower: a stored message does not decode; its events are not recorded", "seq", m.Seq, "error", err)
			}
			return d.x.Add(keys, pos, m.Seq)
		})
		if ctx.Err() != nil {
			return
		}
		d.log.Warn("de-duplication follower: reading the event stream failed; retrying", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// firstOf returns, for the events of the message at seq, the position of
// each one's first occurrence when it is earlier (a duplicate), else 0. It
// waits, up to wait, for the follower to cover seq; if it does not, it
// returns nil (no verdict: the events are delivered).
func (d *Dedup) firstOf(ctx context.Context, seq uint64, evs []Stored, wait time.Duration) []uint64 {
	keys, pos, at := d.keysOf(evs)
	if len(keys) == 0 {
		return nil
	}
	first, err := d.verdict(ctx, seq, keys, pos, wait)
	if err != nil {
		d.log.Warn("events delivered without the duplicate check", "seq", seq, "error", err)
		return nil
	}
	return spread(first, at, len(evs))
}

// keysOf returns the index keys and positions of the events of evs that
// are de-duplicated, and the index in evs of each.
func (d *Dedup) keysOf(evs []Stored) (keys []dedup.Key, pos []uint64, at []int) {
	for i := range evs {
		if k, ok := d.key(evs[i].Source, evs[i].MessageID, evs[i].DedupID); ok {
			keys, pos, at = append(keys, k), append(pos, uint64(evs[i].Pos())), append(at, i)
		}
	}
	return keys, pos, at
}

// spread places first (one per key, keysOf's at) at the events' indexes.
func spread(first []uint64, at []int, n int) []uint64 {
	out := make([]uint64, n)
	for k, i := range at {
		out[i] = first[k]
	}
	return out
}

// errFollowerBehind: the index does not cover the message yet.
var errFollowerBehind = errors.New("the de-duplication follower is behind")

// verdict is the rule of cluster mode (docs/storage.md, "The rule: first
// occurrence in stream order wins"), the one consumers apply and readers
// show: for each key, stored at pos[i] in the message at seq, the position
// of its first occurrence when that is earlier (the event is a duplicate
// of it), else 0. It waits, up to wait, for the follower to cover seq; if
// it does not, errFollowerBehind.
func (d *Dedup) verdict(ctx context.Context, seq uint64, keys []dedup.Key, pos []uint64, wait time.Duration) ([]uint64, error) {
	deadline := time.Now().Add(wait)
	for d.x.Covered() < seq {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("%w (message %d, covered %d)", errFollowerBehind, seq, d.x.Covered())
		}
		time.Sleep(10 * time.Millisecond)
	}
	found, err := d.x.Check(keys)
	if err != nil {
		return nil, fmt.Errorf("de-duplication index lookup: %w", err)
	}
	for i, f := range found {
		if f >= pos[i] {
			found[i] = 0
		}
	}
	return found, nil
}

// Covered returns the stream sequence up to which the index records every
// event this process knows of (0 for a tool's, AttachDedup).
func (d *Dedup) Covered() uint64 {
	if d.x == nil {
		return 0
	}
	return d.x.Covered()
}

// Close closes the index.
func (d *Dedup) Close() error {
	if d.x == nil {
		return nil
	}
	return d.x.Close()
}

// A tool attached to the embedded engine of a running capstan (import,
// DLQ replay) cannot open the index, which that capstan holds: it looks
// keys up in it, and records what it stored there, through requests to the
// running capstan (ServeDedup), on the engine's local, token-protected
// port. Keys travel, never messageIds: the tool hashes them with the
// install's secret from the state bucket.
//
// The subjects name the keys' derivation (v2: the index's format 2,
// dedup.HashKey), so that a tool and a capstan of releases that derive
// keys differently do not exchange them: the request finds no responder
// and fails, where it would miss every duplicate.
const (
	dedupCheckSubject = "capstan.engine.dedup.v2.check" // data: keys; reply: 8-byte positions, or "!" and an error
	dedupAddSubject   = "capstan.engine.dedup.v2.add"   // data: keys then 8-byte positions; reply: "" or the error
)

// AttachDedup returns, for a tool attached to a running capstan's embedded
// engine (Attach), that capstan's index, reached through the engine; nil
// when the tool is not attached so (it opens the index itself with
// OpenDedup when it runs the engine, and has none with an external
// cluster).
func AttachDedup(ctx context.Context, e *Engine) (*Dedup, error) {
	if !e.attached {
		return nil, nil
	}
	secret, err := dedupSecret(ctx, e)
	if err != nil {
		return nil, err
	}
	return &Dedup{idx: remoteIndex{e}, secret: secret, hasher: dedup.NewHasher(secret), log: e.log.With("component", "dedup")}, nil
}

// remoteIndex is the index of the capstan whose engine a tool is attached to.
type remoteIndex struct{ e *Engine }

func (r remoteIndex) request(subject string, data []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := r.e.nc.RequestWithContext(ctx, subject, data)
	if err != nil {
		return nil, fmt.Errorf("de-duplication index of the running capstan: %w", err)
	}
	return resp.Data, nil
}

func (r remoteIndex) Check(keys []dedup.Key) ([]uint64, error) {
	resp, err := r.request(dedupCheckSubject, joinKeys(keys, nil))
	if err != nil {
		return nil, err
	}
	if len(resp) != 8*len(keys) {
		return nil, fmt.Errorf("de-duplication index of the running capstan: %s", resp)
	}
	out := make([]uint64, len(keys))
	for i := range out {
		out[i] = binary.BigEndian.Uint64(resp[8*i:])
	}
	return out, nil
}

func (r remoteIndex) Add(keys []dedup.Key, pos []uint64, _ uint64) error {
	if len(keys) == 0 {
		return nil
	}
	resp, err := r.request(dedupAddSubject, joinKeys(keys, pos))
	if err != nil {
		return err
	}
	if len(resp) > 0 {
		return fmt.Errorf("de-duplication index of the running capstan: %s", resp)
	}
	return nil
}

// joinKeys encodes keys, then pos (8 bytes each, big-endian) if given.
func joinKeys(keys []dedup.Key, pos []uint64) []byte {
	b := make([]byte, 0, len(keys)*(16+8))
	for _, k := range keys {
		b = append(b, k[:]...)
	}
	for _, p := range pos {
		b = binary.BigEndian.AppendUint64(b, p)
	}
	return b
}

// ServeDedup answers the index requests of tools attached to this process's
// embedded engine (AttachDedup), when the engine accepts local clients, and,
// when d follows the stream (DedupConfig.Follow: an external cluster), the
// verdict requests of readers that mark duplicates (events tail, through
// the cluster; see dupmark.go).
func (e *Engine) ServeDedup(d *Dedup) error {
	if d == nil || d.x == nil {
		return nil
	}
	if d.followed.Load() {
		if err := e.serveFirst(d); err != nil {
			return err
		}
	}
	if e.ctlFile == "" {
		return nil
	}
	if _, err := e.nc.Subscribe(dedupCheckSubject, func(m *nats.Msg) {
		if len(m.Data)%16 != 0 {
			_ = m.Respond([]byte("a check request holds 16-byte keys"))
			return
		}
		keys := make([]dedup.Key, len(m.Data)/16)
		for i := range keys {
			copy(keys[i][:], m.Data[16*i:])
		}
		found, err := d.x.Check(keys)
		if err != nil {
			_ = m.Respond([]byte(err.Error()))
			return
		}
		_ = m.Respond(joinPos(found))
	}); err != nil {
		return fmt.Errorf("de-duplication service: %w", err)
	}
	if _, err := e.nc.Subscribe(dedupAddSubject, func(m *nats.Msg) {
		if len(m.Data)%24 != 0 {
			_ = m.Respond([]byte("an add request holds 16-byte keys and 8-byte positions"))
			return
		}
		n := len(m.Data) / 24
		keys, pos := make([]dedup.Key, n), make([]uint64, n)
		for i := range n {
			copy(keys[i][:], m.Data[16*i:])
			pos[i] = binary.BigEndian.Uint64(m.Data[16*n+8*i:])
		}
		var reply []byte
		if err := d.x.Add(keys, pos, 0); err != nil {
			reply = []byte(err.Error())
		}
		_ = m.Respond(reply)
	}); err != nil {
		return fmt.Errorf("de-duplication service: %w", err)
	}
	return nil
}

func joinPos(pos []uint64) []byte {
	b := make([]byte, 0, 8*len(pos))
	for _, p := range pos {
		b = binary.BigEndian.AppendUint64(b, p)
	}
	return b
}

// Collector returns the index's metrics (capstan_dedup_*) for a registry;
// a tool's Dedup, attached to another process's index, has none.
func (d *Dedup) Collector() prometheus.Collector {
	if d.x == nil {
		return noCollector{}
	}
	return d.x.Collector()
}

// noCollector describes and collects nothing.
type noCollector struct{}

func (noCollector) Describe(chan<- *prometheus.Desc) {}
func (noCollector) Collect(chan<- prometheus.Metric) {}

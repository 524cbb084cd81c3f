package delivery

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/capstan-gw/capstan/internal/stream"
)

// claimStore holds the eventId collision guard's keys (guardKey's claims
// and groupKey's accepted bitmaps) for GuardTTL after their last write.
// Two kinds exist: the JetStream KV bucket GuardKV (kvClaims, shared by
// every replica of an external cluster) and the local on-disk store
// (GuardLocal, the embedded engine's: one process owns it).
type claimStore interface {
	// createAll creates the keys of claims with claim group cg's values,
	// together (one burst of writes), and sets owner and mine of the checks
	// it created. It returns the checks whose create failed or went
	// unanswered (the key exists, the store refused or did not answer: the
	// slow path finds out which) and whether it created any; a check still
	// unanswered when ctx ends gets ctx's error.
	createAll(ctx context.Context, cg *claimGroup, claims []*guardCheck) (slow []*guardCheck, created bool)
	// create writes value at key if the key is absent; created false: it
	// exists.
	create(ctx context.Context, key string, value []byte) (created bool, err error)
	// get returns the value at key; found false when absent or expired.
	get(ctx context.Context, key string) (value []byte, found bool, err error)
	// putAll writes each key's value, whatever is there, and returns the
	// writes that were not confirmed, with the last error.
	putAll(ctx context.Context, writes []markWrite) (failed []markWrite, err error)
	// deleteIf deletes key if its value is still value.
	deleteIf(ctx context.Context, key string, value []byte) error
	// sync makes the writes made so far durable (one fsync).
	sync(ctx context.Context) error
}

// kvClaims is the JetStream KV bucket GuardKV. Its writes are not synced
// one by one: a batch's claims are made durable together by one eng.Sync
// (one fsync, not one per claim).
type kvClaims struct {
	kv  jetstream.KeyValue
	eng *stream.Engine
}

// createAll creates the keys of claims with claim group cg's values,
// pipelined, and sets owner and mine of the checks it created. It returns
// the checks whose create failed or went unanswered (the key exists, the
// engine refused or did not answer: the slow path finds out which) and
// whether it created any; a check still unanswered when ctx ends gets
// ctx's error.
//
// The creates are plain publishes whose acknowledgements come back to one
// inbox subscription, and an acknowledgement is only looked at for an
// error: the jetstream client's asynchronous publish costs a future, two
// channels, a timer and a JSON decode per key.
func (s *kvClaims) createAll(ctx context.Context, cg *claimGroup, claims []*guardCheck) (slow []*guardCheck, created bool) {
	nc := s.eng.Conn()
	inbox := nc.NewInbox() + "."
	acks := make(chan *nats.Msg, guardPipeline)
	sub, err := nc.ChanSubscribe(inbox+"*", acks)
	if err != nil {
		return claims, false
	}
	defer func() { _ = sub.Unsubscribe() }()
	replies := make([]string, 0, min(len(claims), guardPipeline))
	for start := 0; start < len(claims); start += guardPipeline {
		if err := ctx.Err(); err != nil {
			for _, c := range claims[start:] {
				c.err = err // not tried: ctx ended
			}
			break
		}
		chunk := claims[start:min(start+guardPipeline, len(claims))]
		msgs := make([]nats.Msg, len(chunk))
		vals := make([]byte, len(chunk)*groupedLen)
		answered := make([]bool, len(chunk))
		sent := 0
		for i, c := range chunk {
			if i == len(replies) {
				replies = append(replies, inbox+strconv.Itoa(i))
			}
			m := &msgs[i]
			m.Subject, m.Reply, m.Header = c.subject, replies[i], createHeader
			m.Data = cg.putValue(vals[i*groupedLen:(i+1)*groupedLen:(i+1)*groupedLen], c.content, c.idx)
			if nc.PublishMsg(m) != nil {
				answered[i] = true
				slow = append(slow, c)
				continue
			}
			sent++
		}
		for sent > 0 {
			select {
			case m := <-acks:
				i, err := strconv.Atoi(strings.TrimPrefix(m.Subject, inbox))
				if err != nil || i < 0 || i >= len(chunk) || answered[i] {
					continue // not an answer of this chunk
				}
				answered[i] = true
				sent--
				if c := chunk[i]; createdAck(m) {
					c.owner, c.mine = c.content, true
					created = true
				} else {
					slow = append(slow, c)
				}
			case <-ctx.Done():
				for i, c := range chunk {
					if !answered[i] {
						c.err = ctx.Err()
					}
				}
				sent = 0
			}
		}
	}
	return slow, created
}

// createdAck reports whether m is JetStream's acknowledgement of a stored
// message: a status reply (no responders) or an API error is not.
func createdAck(m *nats.Msg) bool {
	return len(m.Data) > 0 && m.Header.Get("Status") == "" && !bytes.Contains(m.Data, []byte(`"error"`))
}

// createHeader makes a put a create (the key must have no value): shared
// by every claim, and only read (nats.go encodes it, never changes it).
var createHeader = nats.Header{jetstream.ExpectedLastSubjSeqHeader: []string{"0"}}

func (s *kvClaims) create(ctx context.Context, key string, value []byte) (bool, error) {
	_, err := s.kv.Create(ctx, key, value)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyExists):
		return false, nil
	}
	return false, err
}

func (s *kvClaims) get(ctx context.Context, key string) ([]byte, bool, error) {
	e, err := s.kv.Get(ctx, key)
	switch {
	case err == nil:
		return e.Value(), true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, false, nil
	}
	return nil, false, err
}

// putAll publishes writes once, pipelined.
func (s *kvClaims) putAll(ctx context.Context, writes []markWrite) ([]markWrite, error) {
	js := s.eng.JetStream()
	var failed []markWrite
	var last error
	for chunk := range slices.Chunk(writes, guardPipeline) {
		futs := make([]jetstream.PubAckFuture, len(chunk))
		for i, w := range chunk {
			// No headers: a plain put.
			m := &nats.Msg{Subject: "$KV." + GuardKV + "." + w.key, Data: w.data}
			var err error
			if futs[i], err = js.PublishMsgAsync(m); err != nil {
				last = err
			}
		}
		for i, w := range chunk {
			if futs[i] == nil {
				failed = append(failed, w)
				continue
			}
			select {
			case <-futs[i].Ok():
			case err := <-futs[i].Err():
				failed, last = append(failed, w), err
			case <-ctx.Done():
				failed, last = append(failed, w), ctx.Err()
			}
		}
	}
	return failed, last
}

// deleteIf leaves a delete marker at the revision it read.
func (s *kvClaims) deleteIf(ctx context.Context, key string, value []byte) error {
	e, err := s.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil
	case err != nil:
		return err
	case !bytes.Equal(e.Value(), value):
		return nil
	}
	return s.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
}

func (s *kvClaims) sync(ctx context.Context) error { return s.eng.Sync(ctx, "KV_"+GuardKV) }

package identity

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/capstan-gw/capstan/internal/localdb"
)

// A tool attached to the embedded engine of a running capstan (`capstan
// identity show|delete`, privacy deletes, preview) cannot open the local
// store, which that capstan holds: it reaches it through requests to the
// running capstan (Serve), on the engine's local, token-protected
// connection. Keys travel (hashes), never ids.
var remoteService = localdb.Service{
	Subject: "capstan.engine.identity",
	What:    "identity store",
	Timeout: remoteTimeout,
	Absent:  "it runs without the identity graph",
}

// remoteTimeout bounds one request to the running capstan.
const remoteTimeout = 10 * time.Second

// remoteRequest is one operation on the store: get (Keys[0]), put
// (Keys[0], Data[0], Rev, At), create (Keys, Data, At), purge (Keys[0]),
// compact (Keys), checkpoint (Dir).
type remoteRequest struct {
	Op   string   `json:"op"`
	Dir  string   `json:"dir,omitempty"`
	Keys []string `json:"keys"`
	Data [][]byte `json:"data,omitempty"`
	Rev  uint64   `json:"rev,omitempty"`
	At   int64    `json:"at,omitempty"` // Unix ms
}

// remoteError is an error as it travels: its text, and whether it was a
// failed compare-and-set.
type remoteError struct {
	Msg      string `json:"msg"`
	Conflict bool   `json:"conflict,omitempty"`
}

type remoteReply struct {
	Err    *remoteError   `json:"err,omitempty"`
	Data   []byte         `json:"data,omitempty"`
	Rev    uint64         `json:"rev,omitempty"`
	At     int64          `json:"at,omitempty"`
	Exists bool           `json:"exists,omitempty"`
	Revs   []uint64       `json:"revs,omitempty"`
	Errs   []*remoteError `json:"errs,omitempty"`
}

func toRemote(err error) *remoteError {
	if err == nil {
		return nil
	}
	return &remoteError{Msg: err.Error(), Conflict: casConflict(err)}
}

func (e *remoteError) err() error {
	switch {
	case e == nil:
		return nil
	case e.Conflict:
		return fmt.Errorf("%w (running capstan: %s)", errRevision, e.Msg)
	}
	return fmt.Errorf("identity store of the running capstan: %s", e.Msg)
}

// Serve answers the requests of tools attached to this process's embedded
// engine (Remote) from l, until nc closes or the subscription is
// unsubscribed.
func Serve(nc *nats.Conn, l *Local) (*nats.Subscription, error) {
	return localdb.Serve(nc, remoteService, l.answer, func(err error) remoteReply { return remoteReply{Err: toRemote(err)} })
}

func (l *Local) answer(req remoteRequest) remoteReply {
	ctx, cancel := context.WithTimeout(context.Background(), remoteTimeout)
	defer cancel()
	one := len(req.Keys) == 1
	switch {
	case req.Op == "get" && one:
		s, err := l.get(ctx, req.Keys[0])
		return remoteReply{Err: toRemote(err), Data: jsonRecord(s.data), Rev: s.rev, At: s.at.UnixMilli(), Exists: s.exists}
	case req.Op == "put" && one && len(req.Data) == 1:
		rev, err := l.put(ctx, req.Keys[0], req.Data[0], req.Rev, time.UnixMilli(req.At))
		return remoteReply{Err: toRemote(err), Rev: rev}
	case req.Op == "create" && len(req.Data) == len(req.Keys):
		revs, errs := l.createAll(ctx, req.Keys, req.Data, time.UnixMilli(req.At))
		out := remoteReply{Revs: revs, Errs: make([]*remoteError, len(errs))}
		for i, err := range errs {
			out.Errs[i] = toRemote(err)
		}
		return out
	case req.Op == "purge" && one:
		return remoteReply{Err: toRemote(l.purge(ctx, req.Keys[0]))}
	case req.Op == "compact":
		return remoteReply{Err: toRemote(l.compact(ctx, req.Keys))}
	case req.Op == "checkpoint" && filepath.IsAbs(req.Dir):
		return remoteReply{Err: toRemote(l.Checkpoint(req.Dir))}
	}
	return remoteReply{Err: toRemote(fmt.Errorf("bad request: op %q with %d keys", req.Op, len(req.Keys)))}
}

// Remote returns the local store of the capstan whose embedded engine nc
// is attached to (a tool's), reached through requests that it answers
// (Serve).
func Remote(nc *nats.Conn) Store { return remote{nc} }

type remote struct{ nc *nats.Conn }

func (r remote) call(ctx context.Context, req remoteRequest) (remoteReply, error) {
	return localdb.Call[remoteRequest, remoteReply](ctx, r.nc, remoteService, req)
}

func (r remote) get(ctx context.Context, key string) (stored, error) {
	rep, err := r.call(ctx, remoteRequest{Op: "get", Keys: []string{key}})
	if err != nil {
		return stored{}, err
	}
	if err := rep.Err.err(); err != nil {
		return stored{}, err
	}
	return stored{data: rep.Data, rev: rep.Rev, at: time.UnixMilli(rep.At), exists: rep.Exists}, nil
}

func (r remote) put(ctx context.Context, key string, data []byte, rev uint64, at time.Time) (uint64, error) {
	rep, err := r.call(ctx, remoteRequest{Op: "put", Keys: []string{key}, Data: [][]byte{data}, Rev: rev, At: at.UnixMilli()})
	if err != nil {
		return 0, err
	}
	return rep.Rev, rep.Err.err()
}

func (r remote) createAll(ctx context.Context, keys []string, data [][]byte, at time.Time) ([]uint64, []error) {
	errs := make([]error, len(keys))
	rep, err := r.call(ctx, remoteRequest{Op: "create", Keys: keys, Data: data, At: at.UnixMilli()})
	if err == nil {
		err = rep.Err.err()
	}
	if err == nil && (len(rep.Revs) != len(keys) || len(rep.Errs) != len(keys)) {
		err = errors.New("identity store of the running capstan: bad reply to a create")
	}
	if err != nil {
		for i := range errs {
			errs[i] = fmt.Errorf("%w: %w", errNotPublished, err)
		}
		return make([]uint64, len(keys)), errs
	}
	for i, e := range rep.Errs {
		errs[i] = e.err()
	}
	return rep.Revs, errs
}

func (r remote) purge(ctx context.Context, key string) error {
	rep, err := r.call(ctx, remoteRequest{Op: "purge", Keys: []string{key}})
	if err != nil {
		return err
	}
	return rep.Err.err()
}

func (r remote) compact(ctx context.Context, keys []string) error {
	rep, err := r.call(ctx, remoteRequest{Op: "compact", Keys: keys})
	if err != nil {
		return err
	}
	return rep.Err.err()
}

// RemoteServes reports whether the running capstan whose embedded engine
// nc is attached to serves its local store (Serve): false when it runs
// without the identity graph (no destination, no admin API), whose store
// is then free for the tool to open.
func RemoteServes(ctx context.Context, nc *nats.Conn) (bool, error) {
	_, err := remote{nc}.get(ctx, UserKey(""))
	if errors.Is(err, nats.ErrNoResponders) {
		return false, nil
	}
	return err == nil, err
}

// CheckpointRemote has the running capstan whose embedded engine nc is
// attached to write a checkpoint of its local store into dir (an absolute
// path, which must not exist; that process writes it): a tool's backup.
func CheckpointRemote(ctx context.Context, nc *nats.Conn, dir string) error {
	rep, err := remote{nc}.call(ctx, remoteRequest{Op: "checkpoint", Dir: dir})
	if err != nil {
		return err
	}
	return rep.Err.err()
}

func (remote) each(context.Context, func(string, stored) error) error {
	return errors.New("identity store of the running capstan: listing its profiles is for that process only")
}

// jsonRecord returns a stored profile as JSON, the encoding of Remote's
// requests and replies, which tools of an older version read too: a
// compact one (recordbin.go) is re-encoded; an unreadable one is sent as
// it is (the tool reports it unreadable, as this process would).
func jsonRecord(data []byte) []byte {
	if len(data) == 0 || data[0] != recordBinary {
		return data
	}
	var r record
	if decodeRecord(data, &r) != nil {
		return data
	}
	return r.marshal()
}

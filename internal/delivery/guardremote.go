package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
)

// A tool attached to the embedded engine of a running capstan (`capstan
// backup`) cannot open the local guard store, which that capstan holds: it
// asks the running capstan (ServeGuard) on the engine's local,
// token-protected connection. Delivery itself is the store's only other
// user, inside that process.
const guardServiceSubject = "capstan.engine.eventids"

// guardRemoteTimeout bounds one request to the running capstan (a
// checkpoint: hard links and a flushed log).
const guardRemoteTimeout = time.Minute

type guardRequest struct {
	Op  string `json:"op"`
	Dir string `json:"dir"`
}

type guardReply struct {
	Err string `json:"err,omitempty"`
}

// ServeGuard answers the requests of tools attached to this process's
// embedded engine (CheckpointGuardRemote) from l, until nc closes or the
// subscription is unsubscribed.
func ServeGuard(nc *nats.Conn, l *GuardLocal) (*nats.Subscription, error) {
	sub, err := nc.Subscribe(guardServiceSubject, func(m *nats.Msg) {
		var req guardRequest
		var rep guardReply
		switch err := json.Unmarshal(m.Data, &req); {
		case err != nil:
			rep.Err = "bad request: " + err.Error()
		case req.Op == "checkpoint" && filepath.IsAbs(req.Dir):
			if err := l.Checkpoint(req.Dir); err != nil {
				rep.Err = err.Error()
			}
		default:
			rep.Err = fmt.Sprintf("bad request: op %q", req.Op)
		}
		b, _ := json.Marshal(rep)
		_ = m.Respond(b)
	})
	if err != nil {
		return nil, fmt.Errorf("eventId guard store service: %w", err)
	}
	return sub, nil
}

// CheckpointGuardRemote has the running capstan whose embedded engine nc
// is attached to write a checkpoint of its local guard store into dir (an
// absolute path, which must not exist; that process writes it): a tool's
// backup. nats.ErrNoResponders: that capstan has no local guard store open
// (no destination), which is then free for the tool to open.
func CheckpointGuardRemote(ctx context.Context, nc *nats.Conn, dir string) error {
	b, err := json.Marshal(guardRequest{Op: "checkpoint", Dir: dir})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, guardRemoteTimeout)
	defer cancel()
	m, err := nc.RequestWithContext(ctx, guardServiceSubject, b)
	if errors.Is(err, nats.ErrNoResponders) {
		return err
	}
	if err != nil {
		return fmt.Errorf("eventId guard store of the running capstan: %w", err)
	}
	var rep guardReply
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		return fmt.Errorf("eventId guard store of the running capstan: bad reply: %w", err)
	}
	if rep.Err != "" {
		return fmt.Errorf("eventId guard store of the running capstan: %s", rep.Err)
	}
	return nil
}

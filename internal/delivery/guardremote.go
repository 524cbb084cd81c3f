package delivery

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/capstan-gw/capstan/internal/localdb"
)

// A tool attached to the embedded engine of a running capstan (`capstan
// backup`) cannot open the local guard store, which that capstan holds: it
// asks the running capstan (ServeGuard) on the engine's local,
// token-protected connection. Delivery itself is the store's only other
// user, inside that process. A checkpoint (hard links and a flushed log)
// may take a while: a minute at most.
var guardService = localdb.Service{Subject: "capstan.engine.eventids", What: "eventId guard store", Timeout: time.Minute}

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
	return localdb.Serve(nc, guardService, func(req guardRequest) guardReply {
		if req.Op != "checkpoint" || !filepath.IsAbs(req.Dir) {
			return guardReply{Err: fmt.Sprintf("bad request: op %q", req.Op)}
		}
		if err := l.Checkpoint(req.Dir); err != nil {
			return guardReply{Err: err.Error()}
		}
		return guardReply{}
	}, func(err error) guardReply { return guardReply{Err: err.Error()} })
}

// CheckpointGuardRemote has the running capstan whose embedded engine nc
// is attached to write a checkpoint of its local guard store into dir (an
// absolute path, which must not exist; that process writes it): a tool's
// backup. An error wrapping nats.ErrNoResponders: that capstan has no
// local guard store open (no destination), which is then free for the
// tool to open.
func CheckpointGuardRemote(ctx context.Context, nc *nats.Conn, dir string) error {
	rep, err := localdb.Call[guardRequest, guardReply](ctx, nc, guardService, guardRequest{Op: "checkpoint", Dir: dir})
	if err != nil {
		return err
	}
	if rep.Err != "" {
		return fmt.Errorf("eventId guard store of the running capstan: %s", rep.Err)
	}
	return nil
}

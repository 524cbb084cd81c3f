package localdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// Service is the request service of a local store: a tool attached to the
// embedded engine of a running capstan (`capstan backup`, `capstan
// identity`) cannot open the store that capstan holds, and asks it on the
// engine's local, token-protected connection instead, one JSON request
// and one JSON reply per call. Each store keeps its subject and its
// messages: backups of a running capstan depend on them.
type Service struct {
	// Subject the running capstan answers on: "capstan.engine.identity".
	Subject string
	// What names the store in errors: "<What> service: …" (Serve),
	// "<What> of the running capstan: …" (Call).
	What string
	// Timeout bounds one call.
	Timeout time.Duration
	// Absent says, after nats.ErrNoResponders in Call's error, why no
	// process may answer (without a leading space); "": nothing.
	Absent string
}

// Serve answers the requests on s.Subject until nc closes or the
// subscription is unsubscribed: each request decoded into a Q and its
// reply, answer's, encoded; a request that does not decode is answered
// with bad's reply to an error "bad request: …".
func Serve[Q, R any](nc *nats.Conn, s Service, answer func(Q) R, bad func(error) R) (*nats.Subscription, error) {
	sub, err := nc.Subscribe(s.Subject, func(m *nats.Msg) {
		var req Q
		var rep R
		if err := json.Unmarshal(m.Data, &req); err != nil {
			rep = bad(fmt.Errorf("bad request: %w", err))
		} else {
			rep = answer(req)
		}
		b, _ := json.Marshal(rep)
		_ = m.Respond(b)
	})
	if err != nil {
		return nil, fmt.Errorf("%s service: %w", s.What, err)
	}
	return sub, nil
}

// Call sends req to the process that serves s (Serve) and returns its
// reply, within s.Timeout. Without such a process its error wraps
// nats.ErrNoResponders.
func Call[Q, R any](ctx context.Context, nc *nats.Conn, s Service, req Q) (R, error) {
	var rep R
	b, err := json.Marshal(req)
	if err != nil {
		return rep, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	m, err := nc.RequestWithContext(ctx, s.Subject, b)
	if errors.Is(err, nats.ErrNoResponders) && s.Absent != "" {
		return rep, fmt.Errorf("%s of the running capstan: %w (%s)", s.What, err, s.Absent)
	}
	if err != nil {
		return rep, fmt.Errorf("%s of the running capstan: %w", s.What, err)
	}
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		var none R
		return none, fmt.Errorf("%s of the running capstan: bad reply: %w", s.What, err)
	}
	return rep, nil
}

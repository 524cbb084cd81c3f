package localdb

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	natstest "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
)

type echoRequest struct {
	Op string `json:"op"`
}

type echoReply struct {
	Got string `json:"got,omitempty"`
	Err string `json:"err,omitempty"`
}

// connect returns a connection to a NATS server of its own (no
// JetStream: the service is plain request and reply).
func connect(t *testing.T) *nats.Conn {
	t.Helper()
	ns := natstest.RunRandClientPortServer()
	t.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestService: Call's request reaches Serve's answer and its reply comes
// back; a request that does not decode gets bad's reply; without a server
// Call's error wraps nats.ErrNoResponders and says why; a reply that does
// not decode is an error naming the store.
func TestService(t *testing.T) {
	nc := connect(t)
	ctx := context.Background()
	s := Service{Subject: "test.store", What: "test store", Timeout: 5 * time.Second, Absent: "it has no test store"}
	_, err := Call[echoRequest, echoReply](ctx, nc, s, echoRequest{Op: "ping"})
	if !errors.Is(err, nats.ErrNoResponders) || err.Error() != "test store of the running capstan: nats: no responders available for request (it has no test store)" {
		t.Errorf("without a server: %v", err)
	}
	sub, err := Serve(nc, s, func(req echoRequest) echoReply { return echoReply{Got: req.Op} },
		func(err error) echoReply { return echoReply{Err: err.Error()} })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if rep, err := Call[echoRequest, echoReply](ctx, nc, s, echoRequest{Op: "ping"}); err != nil || rep.Got != "ping" {
		t.Errorf("Call: %+v, %v", rep, err)
	}
	m, err := nc.Request(s.Subject, []byte("{"), 5*time.Second)
	if err != nil || !strings.HasPrefix(string(m.Data), `{"err":"bad request: `) {
		t.Errorf("a request that does not decode: %s, %v", m.Data, err)
	}
	type numberReply struct{ Got int }
	if rep, err := Call[echoRequest, numberReply](ctx, nc, s, echoRequest{Op: "ping"}); err == nil || rep.Got != 0 ||
		!strings.HasPrefix(err.Error(), "test store of the running capstan: bad reply: ") {
		t.Errorf("a reply that does not decode: %+v, %v", rep, err)
	}
}

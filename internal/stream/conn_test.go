package stream

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// connectedAddr is the remote address of the engine's connection: the
// embedded server's listener over loopback TCP, "pipe" in process.
func connectedAddr(eng *Engine) string { return eng.nc.ConnectedAddr() }

// appendOne stores one event and fails the test if it is not acknowledged.
func appendOne(t *testing.T, app *appender, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := app.Append(ctx, []record{rec("events.web.track", id)}); err != nil {
		t.Fatalf("append %s: %v", id, err)
	}
}

// dropConnection has the embedded server close the engine's connection, as
// it would a slow consumer, and waits until nats.go has reconnected.
func dropConnection(t *testing.T, eng *Engine) {
	t.Helper()
	cid, err := eng.nc.GetClientID()
	if err != nil {
		t.Fatal(err)
	}
	before := eng.nc.Stats().Reconnects
	if err := eng.ns.DisconnectClientByID(cid); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for eng.nc.Stats().Reconnects == before || !eng.nc.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatalf("not reconnected after the server closed the connection (status %v, last error %v)", eng.nc.Status(), eng.nc.LastError())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEmbeddedConnectsOverLoopback(t *testing.T) {
	eng, app := openTest(t, Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if got, want := connectedAddr(eng), eng.ns.Addr().String(); got != want {
		t.Errorf("listening engine connected to %q, want its listener %s", got, want)
	}
	appendOne(t, app, "l1")

	eng2, app2 := openTest(t, Config{DataDir: t.TempDir(), Listen: "none"})
	if got := connectedAddr(eng2); got != "pipe" {
		t.Errorf("engine.listen none connected to %q, want the in-process pipe", got)
	}
	appendOne(t, app2, "p1")
}

// TestLoopbackReconnects: a loopback connection the server drops is
// reconnected over loopback, and writes go on, as with the pipe.
func TestLoopbackReconnects(t *testing.T) {
	eng, app := openTest(t, Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0"})
	appendOne(t, app, "r1")
	dropConnection(t, eng)
	if got, want := connectedAddr(eng), eng.ns.Addr().String(); got != want {
		t.Errorf("reconnected to %q, want the listener %s", got, want)
	}
	appendOne(t, app, "r2")
	if msgs := readAll(t, eng, EventsStream); len(msgs) != 2 {
		t.Errorf("stored %d events, want 2", len(msgs))
	}
}

// TestLoopbackDialFailsFallsBackInProcess: when the loopback dial fails on a
// reconnect (out of file descriptors, say), the engine connects in process
// and writes go on.
func TestLoopbackDialFailsFallsBackInProcess(t *testing.T) {
	var dials atomic.Int32
	dialLoopback = func(network, addr string) (net.Conn, error) {
		if dials.Add(1) > 1 {
			return nil, errors.New("dial refused by the test")
		}
		return net.Dial(network, addr)
	}
	t.Cleanup(func() { dialLoopback = nil })
	eng, app := openTest(t, Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if got, want := connectedAddr(eng), eng.ns.Addr().String(); got != want {
		t.Fatalf("connected to %q, want the listener %s", got, want)
	}
	appendOne(t, app, "f1")
	dropConnection(t, eng)
	if dials.Load() < 2 {
		t.Errorf("reconnected without dialing the listener (%d dials)", dials.Load())
	}
	if got := connectedAddr(eng); got != "pipe" {
		t.Errorf("reconnected to %q, want the in-process pipe", got)
	}
	appendOne(t, app, "f2")
	if msgs := readAll(t, eng, EventsStream); len(msgs) != 2 {
		t.Errorf("stored %d events, want 2", len(msgs))
	}
}

package main

import (
	"errors"
	"net"
	"testing"
	"time"
)

// TestLimitListener checks server.max_connections: with n connections open
// Accept waits, a closed connection frees its slot (once, however often it
// is closed), and Close ends a waiting Accept.
func TestLimitListener(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := limitListen(tcp, 2)
	t.Cleanup(func() { _ = ln.Close() })
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
	}
	first, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ln.Accept(); err != nil {
		t.Fatal(err)
	}
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.Close()
		}
		accepted <- err
	}()
	select {
	case err := <-accepted:
		t.Fatalf("a third connection was accepted while two are open (%v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	_ = first.Close()
	_ = first.Close() // a second Close frees nothing more
	select {
	case err := <-accepted:
		if err != nil {
			t.Fatalf("accept after a close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("closing a connection did not let the third one in")
	}
	if got := len(ln.slots); got != 1 {
		t.Errorf("%d slots taken, want 1 (the second connection)", got)
	}

	// Close ends an Accept that waits for a slot.
	full := limitListen(tcp, 1)
	full.slots <- struct{}{}
	go func() { _, err := full.Accept(); accepted <- err }()
	_ = full.Close()
	select {
	case err := <-accepted:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("accept on a closed listener: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a waiting Accept")
	}
}

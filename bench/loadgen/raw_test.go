package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestRawClient: the raw client sends what net/http's would (path, headers,
// body), reads each answer into the same outcome, reuses one keep-alive
// connection for sequential requests and opens a new one after the server
// closed its connection.
func TestRawClient(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		user, pass, ok := r.BasicAuth()
		switch {
		case r.Method != http.MethodPost || r.URL.Path != "/v1/track" || !ok || user != "wk_x" || pass != "" ||
			r.Header.Get("Content-Type") != "application/json" || r.UserAgent() != "ua/1":
			http.Error(w, "bad request line or headers", http.StatusBadRequest)
		case string(body) == "dup":
			_, _ = io.WriteString(w, `{"success":true,"accepted":0,"duplicates":1}`)
		case string(body) == "close":
			w.Header().Set("Connection", "close")
			_, _ = io.WriteString(w, `{"success":true}`)
		case string(body) == "fail":
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"success":false}`)
		default:
			_, _ = io.WriteString(w, `{"success":true}`+"\n")
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	rc, err := newRawClient(runConfig{url: srv.URL, endpoint: "/v1/track", writeKey: "wk_x", timeout: 5 * time.Second, concurrency: 4}, "ua/1")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.close()
	ctx := context.Background()
	for _, c := range []struct {
		body           string
		status         int
		accepted, dups int64
		fails          bool
		conns          int64 // connections opened so far, after the request
	}{
		{body: `{"event":"a"}`, status: 200, accepted: 1, conns: 1},
		{body: `{"event":"b"}`, status: 200, accepted: 1, conns: 1},
		{body: "dup", status: 200, dups: 1, conns: 1},
		{body: "fail", status: 503, fails: true, conns: 1},
		{body: "close", status: 200, accepted: 1, conns: 1},
		{body: `{"event":"c"}`, status: 200, accepted: 1, conns: 2},
	} {
		o, reusable := rc.send(ctx, []byte(c.body), 1)
		if o.status != c.status || o.accepted != c.accepted || o.dups != c.dups || (o.err != nil) != c.fails || !reusable {
			t.Errorf("%s: got status %d accepted %d dups %d err %v reusable %v", c.body, o.status, o.accepted, o.dups, o.err, reusable)
		}
		if n := conns.Load(); n != c.conns {
			t.Errorf("%s: %d connections opened, want %d", c.body, n, c.conns)
		}
	}
}

package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sender sends one request body and reports its outcome; reusable says
// whether the caller may reuse body's buffer.
type sender interface {
	send(ctx context.Context, body []byte, events int) (o outcome, reusable bool)
	close()
}

// rawClient is a lean HTTP/1.1 keep-alive client for the open loop (-client
// raw): the goroutine that sends a request writes it on a connection of its
// own (one write: head and body), then reads the answer from it with
// http.ReadResponse, so a request costs no goroutine hand-off and little CPU
// on the generator's side. net/http's Transport hands every request to the
// connection's write goroutine and the answer back from its read goroutine:
// two more wake-ups per request, which on a 2-core machine shared with the
// server show in the tail. Idle connections are reused last in, first out,
// so a steady rate keeps a few connections warm.
type rawClient struct {
	addr    string
	head    []byte // request line and headers up to "Content-Length: "
	timeout time.Duration
	max     int // connections at most

	mu   sync.Mutex
	idle []*rawConn
	open int
}

type rawConn struct {
	c    net.Conn
	br   *bufio.Reader
	wbuf []byte
}

func newRawClient(c runConfig, ua string) (*rawClient, error) {
	u, err := url.Parse(c.url)
	if err != nil {
		return nil, fmt.Errorf("-url: %w", err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("-client raw speaks plain HTTP only, not %q", u.Scheme)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	path := strings.TrimSuffix(u.Path, "/") + c.endpoint
	head := "POST " + path + " HTTP/1.1\r\n" +
		"Host: " + u.Host + "\r\n" +
		"User-Agent: " + ua + "\r\n" +
		"Content-Type: application/json\r\n" +
		"Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(c.writeKey+":")) + "\r\n" +
		"Content-Length: "
	return &rawClient{addr: addr, head: []byte(head), timeout: c.timeout, max: c.concurrency}, nil
}

var errNoConn = errors.New("no connection free: all -concurrency connections are busy")

// get returns an idle connection, the most recently used, or a new one.
func (rc *rawClient) get(ctx context.Context) (*rawConn, error) {
	rc.mu.Lock()
	if n := len(rc.idle); n > 0 {
		c := rc.idle[n-1]
		rc.idle = rc.idle[:n-1]
		rc.mu.Unlock()
		return c, nil
	}
	if rc.open >= rc.max {
		rc.mu.Unlock()
		return nil, errNoConn
	}
	rc.open++
	rc.mu.Unlock()
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	c, err := d.DialContext(ctx, "tcp", rc.addr)
	if err != nil {
		rc.drop(nil)
		return nil, err
	}
	return &rawConn{c: c, br: bufio.NewReaderSize(c, 4096)}, nil
}

func (rc *rawClient) put(c *rawConn) {
	rc.mu.Lock()
	rc.idle = append(rc.idle, c)
	rc.mu.Unlock()
}

// drop closes c (nil: a dial that failed) and frees its place.
func (rc *rawClient) drop(c *rawConn) {
	if c != nil {
		c.c.Close()
	}
	rc.mu.Lock()
	rc.open--
	rc.mu.Unlock()
}

func (rc *rawClient) send(ctx context.Context, body []byte, events int) (outcome, bool) {
	c, err := rc.get(ctx)
	if err != nil {
		return outcome{err: err}, true
	}
	c.wbuf = append(append(append(append(c.wbuf[:0], rc.head...), strconv.Itoa(len(body))...), "\r\n\r\n"...), body...)
	deadline := time.Now().Add(rc.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.c.SetDeadline(deadline); err != nil {
		rc.drop(c)
		return outcome{err: err}, true
	}
	if _, err := c.c.Write(c.wbuf); err != nil {
		rc.drop(c)
		return outcome{err: fmt.Errorf("write request: %w", err)}, true
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		rc.drop(c)
		return outcome{err: fmt.Errorf("read answer: %w", err)}, true
	}
	var rbuf [4096]byte
	n, _ := io.ReadFull(resp.Body, rbuf[:])
	_, rerr := io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if rerr != nil || resp.Close {
		rc.drop(c)
	} else {
		rc.put(c)
	}
	return answer(resp.StatusCode, rbuf[:n], events), true
}

func (rc *rawClient) close() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, c := range rc.idle {
		c.c.Close()
	}
	rc.open -= len(rc.idle)
	rc.idle = nil
}

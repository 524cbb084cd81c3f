package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/stream"
)

// okStore stores nothing and says every event was stored.
type okStore struct{}

func (okStore) Append(_ context.Context, evs []stream.Event) ([]stream.Result, error) {
	res := make([]stream.Result, len(evs))
	for i := range res {
		res[i].Seq = uint64(i + 1)
	}
	return res, nil
}

// eventually polls ok every 20 ms until it holds, failing after within.
func eventually(t testing.TB, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", within)
		}
		<-tick.C
	}
}

// heapInuse returns the heap in use after a full collection.
func heapInuse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// TestHeaderOnlyRequestsHoldLittleMemory is the regression test of issue
// 17: readBody reserved each request's declared Content-Length before a
// byte of the body arrived, so 300 connections that sent only headers
// announcing 512000 bytes held about 150 MB for as long as they liked
// (read_timeout). Bodies are now read as they arrive.
func TestHeaderOnlyRequestsHoldLittleMemory(t *testing.T) {
	const conns = 300
	e := newEnv(t, testConfig, okStore{})
	var entered atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered.Add(1)
		e.h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	head := "POST /v1/batch HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: " + basic("wk_back:") +
		"\r\nContent-Type: application/json\r\nContent-Length: 512000\r\n\r\n"

	before := heapInuse()
	cs := make([]net.Conn, 0, conns)
	t.Cleanup(func() {
		for _, c := range cs {
			_ = c.Close()
		}
	})
	for range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
		if _, err := c.Write([]byte(head)); err != nil {
			t.Fatal(err)
		}
	}
	// Every request is in its handler, waiting for its body.
	eventually(t, 10*time.Second, func() bool { return entered.Load() == conns })
	growth := heapInuse() - before
	t.Logf("%d connections that sent only headers: heap grew by %.1f MB", conns, float64(growth)/(1<<20))
	if growth > 20<<20 {
		t.Errorf("%d connections that sent only headers added %.1f MB of heap, want under 20 MB", conns, float64(growth)/(1<<20))
	}
	if got := e.h.budget.inflight(); got != 0 {
		t.Errorf("they hold %d bytes of the in-flight budget, want 0", got)
	}

	// The bodies still arrive and are read in full.
	body := `{"batch":[` + strings.TrimSuffix(strings.Repeat(`{"type":"track","event":"E","userId":"u"},`, 10), ",")
	body += strings.Repeat(" ", 512000-len(body)-2) + "]}"
	c := cs[0]
	if _, err := c.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 200 ")) {
		t.Errorf("a body of 512000 bytes after the headers: %q %v", buf[:n], err)
	}
}

// TestInflightBodyBudget checks server.max_inflight_body_bytes: a request
// whose body would pass the budget gets 503 with Retry-After once it has
// waited, and every byte taken is given back.
func TestInflightBodyBudget(t *testing.T) {
	e := newEnv(t, testConfig, okStore{})
	if e.h.budget == nil || e.h.budget.inflight() != 0 {
		t.Fatalf("default budget: %+v", e.h.budget)
	}
	e.h.budget = newBudget(32 << 10)
	e.srv = httptest.NewServer(e.h) // started after the change, so its goroutines see it
	t.Cleanup(e.srv.Close)
	auth := []string{"Authorization", basic("wk_back:")}
	ev := `{"type":"track","event":"E","userId":"u","properties":{"pad":"` + strings.Repeat("x", 1000) + `"}},`
	small := `{"batch":[` + strings.TrimSuffix(strings.Repeat(ev, 10), ",") + `]}`
	big := `{"batch":[` + strings.TrimSuffix(strings.Repeat(ev, 60), ",") + `]}`
	for _, tc := range []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"within the budget", small, 200, ""},
		{"past the budget", big, 503, "unavailable"},
		{"within it again", small, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/v1/batch", tc.body, auth...)
			if r.status != tc.status || tc.code != "" && (r.body["code"] != tc.code || r.header.Get("Retry-After") != "1") {
				t.Errorf("got %d %v %s, want %d %s with Retry-After", r.status, r.header, r.raw, tc.status, tc.code)
			}
			if got := e.h.budget.inflight(); got != 0 {
				t.Errorf("%d bytes still taken after the answer", got)
			}
		})
	}
}

// TestFillGrowsWithTheBytes checks that fill's buffer follows the bytes
// that arrived, whatever Content-Length said, and keeps the limit.
func TestFillGrowsWithTheBytes(t *testing.T) {
	h := &Handler{}
	for _, tc := range []struct {
		n, limit int
		err      error
	}{
		{0, 100, nil},
		{1, 100, nil},
		{100, 100, nil},
		{101, 100, nil}, // fill stops past the limit; readBody refuses
		{300 << 10, 512000, nil},
		{600 << 10, 512000, nil},
	} {
		t.Run(fmt.Sprint(tc.n, "/", tc.limit), func(t *testing.T) {
			var buf bytes.Buffer
			var held int64
			err := h.fill(context.Background(), &buf, bytes.NewReader(bytes.Repeat([]byte("x"), tc.n)), tc.limit, &held)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v", err)
			}
			if want := min(tc.n, tc.limit+1); buf.Len() != want {
				t.Errorf("read %d bytes, want %d", buf.Len(), want)
			}
			if buf.Cap() > max(2*buf.Len(), firstRead) {
				t.Errorf("buffer of %d bytes for %d read", buf.Cap(), buf.Len())
			}
		})
	}
}

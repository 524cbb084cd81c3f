package inproc

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/bench/internal/segmentgen"
	"github.com/capstan-gw/capstan/internal/config"
)

// BenchmarkLoopback is BenchmarkIngest's batch100 over real sockets: the
// handler behind a net/http server on 127.0.0.1 (capstan serve's timeouts
// and header limit), driven by 32 keep-alive connections as bench/ingest.sh
// drives capstan serve. BenchmarkIngest calls the handler directly
// (httptest.NewRecorder), so it leaves out what every request costs
// between the socket and the handler: loopback TCP in the kernel, net/http's
// connection goroutines, request parsing and response writing, and the
// wake-ups of goroutines blocked on the network. The client runs in the
// same process and its CPU is counted too: the null sub-benchmark (a
// handler that reads the body and answers, as bench/nullserver does) is
// that floor, so that sync=always minus null is capstan's cost over a real
// connection, comparable with serve's CPU per event under bench/ingest.sh.
func BenchmarkLoopback(b *testing.B) {
	b.Run("null/batch100", func(b *testing.B) {
		serveLoopback(b, http.HandlerFunc(nullHandler), "/v1/batch", templates(b, 100))
	})
	b.Run("sync=always/batch100", func(b *testing.B) {
		serveLoopback(b, newHandler(b, openAppender(b, 0)), "/v1/batch", templates(b, 100))
	})
}

var nullBody = []byte(`{"success":true}` + "\n")

// nullHandler is bench/nullserver's handler.
func nullHandler(w http.ResponseWriter, r *http.Request) {
	if _, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 512000)); err != nil {
		http.Error(w, `{"success":false}`, http.StatusBadRequest)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Length", "17")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(nullBody)
}

// serveLoopback is serve over a loopback connection per client goroutine.
func serveLoopback(b *testing.B, h http.Handler, path string, ts []*segmentgen.Template) {
	b.Helper()
	srv := httptest.NewUnstartedServer(h)
	// As cmd/capstan/serve.go builds it, with config's default timeouts
	// (each costs a deadline per request).
	srv.Config.ReadHeaderTimeout = 10 * time.Second
	srv.Config.ReadTimeout = config.DefaultReadTimeout
	srv.Config.WriteTimeout = config.DefaultWriteTimeout
	srv.Config.IdleTimeout = config.DefaultIdleTimeout
	srv.Config.MaxHeaderBytes = 64 << 10
	srv.Start()
	b.Cleanup(srv.Close)
	const conns = 32
	tr := &http.Transport{
		DialContext:         (&net.Dialer{}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		DisableCompression:  true,
	}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	url := srv.URL + path

	drive(b, ts, func(body []byte) bool {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			b.Error(err)
			return false
		}
		req.Header.Set("Authorization", authHeader)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// The source every test config declares.
const (
	testSource   = "e2e"
	testWriteKey = "wk_e2e_f00dfeed"
)

// poll calls cond every 20 ms until it returns true or timeout has passed,
// and reports whether it returned true.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
}

// writeConfig writes a capstan.yaml for dataDir into dir and returns its
// path. engine is the YAML body of the engine section ("" for the defaults
// but sync: always stated explicitly).
func writeConfig(t testing.TB, dir, dataDir, engine string) string {
	t.Helper()
	if engine == "" {
		engine = "  sync: always\n"
	}
	text := fmt.Sprintf(`# written by capstan's e2e tests
server:
  addr: "127.0.0.1:0"
  data_dir: %q
  shutdown_grace: 20s
engine:
%ssources:
  - name: %s
    write_key: %s
    rate_limit: {disabled: true}   # load tests send back to back; the default limit is ingest's to test
`, dataDir, engine, testSource, testWriteKey)
	path := filepath.Join(dir, "capstan.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// newConfig makes a fresh data directory and a config for it.
func newConfig(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	return writeConfig(t, dir, filepath.Join(dir, "data"), "")
}

// server is one `capstan serve` child process.
type server struct {
	t testing.TB
	// URL is the tracking API's base URL, http://127.0.0.1:PORT.
	URL string

	cmd     *exec.Cmd
	log     *logBuffer
	exited  chan struct{} // closed once the process has been waited for
	waitErr error         // cmd.Wait's result, readable after exited is closed
}

// startServer runs `capstan serve --config cfg`, waits until it listens and
// /readyz answers 200, and stops it (SIGKILL) when the test ends.
func startServer(t testing.TB, cfg string) *server {
	t.Helper()
	s := launchServer(t, cfg)
	s.waitReady(30 * time.Second)
	return s
}

// launchServer runs `capstan serve --config cfg` without waiting for it
// (waitReady does), and stops it (SIGKILL) when the test ends.
func launchServer(t testing.TB, cfg string) *server {
	t.Helper()
	s := &server{t: t, log: newLogBuffer(), exited: make(chan struct{})}
	s.cmd = exec.Command(capstanBin, "serve", "--config", cfg, "--log-level", "info")
	s.cmd.Stdout = s.log
	s.cmd.Stderr = s.log
	s.cmd.Dir = filepath.Dir(cfg)
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start capstan serve: %v", err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.Kill()
		if strings.Contains(s.Output(), "WARNING: DATA RACE") {
			t.Errorf("capstan serve reported a data race")
		}
		if t.Failed() {
			t.Logf("capstan serve (pid %d) output:\n%s", s.cmd.Process.Pid, s.Output())
		}
	})
	return s
}

// waitReady waits up to timeout until the server listens and then up to
// 30s until /readyz answers 200.
func (s *server) waitReady(timeout time.Duration) {
	t := s.t
	t.Helper()
	select {
	case s.URL = <-s.log.listening:
	case <-s.exited:
		t.Fatalf("capstan serve exited before listening (%v):\n%s", s.waitErr, s.Output())
	case <-time.After(timeout):
		t.Fatalf("capstan serve printed no listening line in %s:\n%s", timeout, s.Output())
	}
	hc := newHTTPClient(t)
	hc.Timeout = 2 * time.Second
	ready := poll(30*time.Second, func() bool {
		select {
		case <-s.exited:
			return true
		default:
		}
		resp, err := hc.Get(s.URL + "/readyz")
		if err != nil {
			return false
		}
		drain(resp)
		return resp.StatusCode == http.StatusOK
	})
	select {
	case <-s.exited:
		t.Fatalf("capstan serve exited while starting (%v):\n%s", s.waitErr, s.Output())
	default:
	}
	if !ready {
		t.Fatalf("%s/readyz did not answer 200 within 30s:\n%s", s.URL, s.Output())
	}
}

// Kill sends SIGKILL (unless the process has exited) and waits for the end.
func (s *server) Kill() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// Signal sends sig to the process.
func (s *server) Signal(sig os.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signal %v: %v", sig, err)
	}
}

// Wait waits up to timeout for the process to exit and returns its exit
// code (-1 when a signal ended it).
func (s *server) Wait(timeout time.Duration) int {
	s.t.Helper()
	select {
	case <-s.exited:
	case <-time.After(timeout):
		s.t.Fatalf("capstan serve still running %s after being asked to stop:\n%s", timeout, s.Output())
	}
	return s.cmd.ProcessState.ExitCode()
}

// Output is everything the process wrote to stdout and stderr so far.
func (s *server) Output() string { return s.log.String() }

// logBuffer collects a child's output and reports the address from its
// `msg="capstan listening" addr=http://…` line.
type logBuffer struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	scanned   int
	found     bool
	listening chan string
}

func newLogBuffer() *logBuffer { return &logBuffer{listening: make(chan string, 1)} }

var listeningLine = regexp.MustCompile(`msg="capstan listening".* addr="?(http://[^\s"]+)`)

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	for !b.found {
		rest := b.buf.Bytes()[b.scanned:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		if m := listeningLine.FindSubmatch(rest[:i]); m != nil {
			b.found = true
			b.listening <- string(m[1])
		}
		b.scanned += i + 1
	}
	return len(p), nil
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runCapstan runs the binary with args in dir and returns its exit code,
// stdout and stderr; it fails the test if the command runs longer than
// timeout. env, when not nil, replaces the environment.
func runCapstan(t testing.TB, dir string, env []string, timeout time.Duration, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, capstanBin, args...)
	cmd.Dir = dir
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
	default:
		t.Fatalf("run capstan %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("capstan %s still running after %s:\n%s", strings.Join(args, " "), timeout, errb.String())
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// storedEvent is one line of `capstan events tail --json`.
type storedEvent struct {
	Pos      string          `json:"pos"`
	Seq      uint64          `json:"seq"`
	Subject  string          `json:"subject"`
	Source   string          `json:"source"`
	Type     string          `json:"type"`
	StoredAt time.Time       `json:"storedAt"`
	Event    json.RawMessage `json:"event"`
	// DuplicateOf: the position of the earlier copy delivery delivers
	// instead of this one (cluster mode).
	DuplicateOf string `json:"duplicateOf"`
}

// MessageID is the stored event's messageId ("" when it has none).
func (e storedEvent) MessageID() string {
	var v struct {
		MessageID string `json:"messageId"`
	}
	_ = json.Unmarshal(e.Event, &v)
	return v.MessageID
}

// tailEvents reads every stored event with `capstan events tail --json`
// (through the running server's engine, or by opening the data directory
// when no server runs). extra adds flags such as --since.
func tailEvents(t testing.TB, cfg string, extra ...string) []storedEvent {
	t.Helper()
	args := append([]string{"events", "tail", "--config", cfg, "--json"}, extra...)
	code, stdout, stderr := runCapstan(t, filepath.Dir(cfg), nil, 60*time.Second, args...)
	if code != 0 {
		t.Fatalf("capstan %s: exit %d:\n%s", strings.Join(args, " "), code, stderr)
	}
	return parseTail(t, stdout)
}

// parseTail reads the lines of `capstan events tail --json`.
func parseTail(t testing.TB, stdout string) []storedEvent {
	t.Helper()
	var evs []storedEvent
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev storedEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("events tail printed a line that is not JSON (%v): %s", err, sc.Text())
		}
		evs = append(evs, ev)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return evs
}

// countByMessageID counts stored events per messageId.
func countByMessageID(evs []storedEvent) map[string]int {
	n := make(map[string]int, len(evs))
	for _, ev := range evs {
		n[ev.MessageID()]++
	}
	return n
}

// newHTTPClient returns a client for talking to capstan; idle connections
// are closed when the test ends.
func newHTTPClient(t testing.TB) *http.Client {
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   64,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       30 * time.Second,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// ingestAnswer is capstan's JSON answer to a tracking request.
type ingestAnswer struct {
	Success    bool   `json:"success"`
	Accepted   *int   `json:"accepted"`
	Duplicates int    `json:"duplicates"`
	Dropped    int    `json:"dropped"`
	Code       string `json:"code"`
	Message    string `json:"message"`
	Errors     []struct {
		Index     int    `json:"index"`
		MessageID string `json:"messageId"`
		Code      string `json:"code"`
	} `json:"errors"`
}

// post sends body (JSON) to baseURL+path with the test write key as Basic
// auth, the way Segment's server libraries do.
func post(ctx context.Context, hc *http.Client, baseURL, path string, body []byte) (int, ingestAnswer, error) {
	return postAuth(ctx, hc, baseURL, path, body, true)
}

// postAuth is post, with the Basic auth header only when basic is true (the
// write key must then be in the body).
func postAuth(ctx context.Context, hc *http.Client, baseURL, path string, body []byte, basic bool) (int, ingestAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+path, bytes.NewReader(body))
	if err != nil {
		return 0, ingestAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if basic {
		req.SetBasicAuth(testWriteKey, "")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, ingestAnswer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, ingestAnswer{}, fmt.Errorf("read answer: %w", err)
	}
	var a ingestAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		return resp.StatusCode, a, fmt.Errorf("answer %d is not JSON: %q", resp.StatusCode, b)
	}
	return resp.StatusCode, a, nil
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
}

// trackEvent is a track event with the given messageId and a few hundred
// bytes of properties.
func trackEvent(messageID string, n int) map[string]any {
	return map[string]any{
		"type":      "track",
		"event":     "Crash Test",
		"userId":    fmt.Sprintf("user-%d", n%17),
		"messageId": messageID,
		"timestamp": time.Now().UTC().Format(time.RFC3339Nano),
		"properties": map[string]any{
			"n":       n,
			"padding": strings.Repeat("x", 200),
			"nested":  map[string]any{"a": []any{1, "two", 3.5, nil}},
		},
	}
}

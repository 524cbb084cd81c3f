package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The NATS cluster of the cluster tests (issue 23): three nats-server
// processes of the version capstan embeds, built from the module in go.mod
// (offline, no download) once per test run, clustered on loopback with
// JetStream, each with its own store and sync_interval: always.

var (
	natsOnce sync.Once
	natsBin  string
	natsErr  error
)

// natsServerBin builds nats-server from the module capstan embeds, once
// per run, into buildDir.
func natsServerBin(t testing.TB) string {
	t.Helper()
	natsOnce.Do(func() {
		out := filepath.Join(buildDir, "nats-server")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "github.com/nats-io/nats-server/v2")
		cmd.Dir = filepath.Dir(e2eDir)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Run(); err != nil {
			natsErr = fmt.Errorf("go build github.com/nats-io/nats-server/v2: %w\n%s", err, stderr.Bytes())
			return
		}
		natsBin = out
	})
	if natsErr != nil {
		t.Fatal(natsErr)
	}
	return natsBin
}

// natsNode is one nats-server process of a natsCluster. It keeps its ports
// and store across restarts.
type natsNode struct {
	t                      testing.TB
	name                   string
	client, route, monitor string // host:port
	conf                   string
	cmd                    *exec.Cmd
	log                    *logBuffer
	exited                 chan struct{}
}

// natsCluster is a three-node JetStream cluster on loopback.
type natsCluster struct {
	t     testing.TB
	nodes []*natsNode
}

// startNATSCluster starts n clustered nats-server processes and waits until
// JetStream answers (a meta leader is elected). They are killed when the
// test ends.
func startNATSCluster(t testing.TB, n int) *natsCluster {
	t.Helper()
	c := newNATSCluster(t, n)
	c.startAll()
	c.waitJetStream(60 * time.Second)
	return c
}

// startAll starts every node, without waiting.
func (c *natsCluster) startAll() {
	c.t.Helper()
	for _, nd := range c.nodes {
		nd.start(natsServerBin(c.t))
	}
}

// newNATSCluster chooses the ports and writes the configuration of n
// clustered nodes, without starting them (startAll). They are killed when
// the test ends.
func newNATSCluster(t testing.TB, n int) *natsCluster {
	t.Helper()
	natsServerBin(t)
	c := &natsCluster{t: t}
	for i := range n {
		c.nodes = append(c.nodes, &natsNode{
			t: t, name: fmt.Sprintf("n%d", i+1),
			client: freeAddr(t), route: freeAddr(t), monitor: freeAddr(t),
		})
	}
	var routes []string
	for _, nd := range c.nodes {
		routes = append(routes, "nats-route://"+nd.route)
	}
	dir := t.TempDir()
	for _, nd := range c.nodes {
		store := filepath.Join(dir, nd.name)
		conf := fmt.Sprintf(`# written by capstan's e2e cluster tests
server_name: %s
listen: %q
http: %q
jetstream {
  store_dir: %q
  sync_interval: always
}
cluster {
  name: capstan-e2e
  listen: %q
  routes: [%s]
}
`, nd.name, nd.client, nd.monitor, store, nd.route, strings.Join(routes, ", "))
		nd.conf = filepath.Join(dir, nd.name+".conf")
		if err := os.WriteFile(nd.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			nd.kill()
			if t.Failed() && nd.log != nil {
				t.Logf("nats-server %s output (last 4 KB):\n%s", nd.name, tail(nd.log.String(), 4096))
			}
		}
	})
	return c
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// URL is the cluster's client URLs, as engine.nats_url takes them.
func (c *natsCluster) URL() string {
	var urls []string
	for _, nd := range c.nodes {
		urls = append(urls, "nats://"+nd.client)
	}
	return strings.Join(urls, ",")
}

// MonitorURL is the nodes' monitoring endpoints, as engine.monitor_url
// takes them.
func (c *natsCluster) MonitorURL() string {
	var urls []string
	for _, nd := range c.nodes {
		urls = append(urls, "http://"+nd.monitor)
	}
	return strings.Join(urls, ",")
}

// waitJetStream waits until JetStream answers through the cluster.
func (c *natsCluster) waitJetStream(timeout time.Duration) {
	c.t.Helper()
	var last error
	if !poll(timeout, func() bool {
		nc, err := nats.Connect(c.URL(), nats.Timeout(2*time.Second), nats.NoReconnect(), nats.Name("capstan-e2e"))
		if err != nil {
			last = err
			return false
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			last = err
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, last = js.AccountInfo(ctx)
		return last == nil
	}) {
		c.t.Fatalf("the NATS cluster's JetStream did not answer within %s: %v", timeout, last)
	}
}

// streamLeader returns the node that leads stream's replicas ("" if none).
func (c *natsCluster) streamLeader(stream string) string {
	nc, err := nats.Connect(c.URL(), nats.Timeout(2*time.Second), nats.NoReconnect())
	if err != nil {
		return ""
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil || s.CachedInfo().Cluster == nil {
		return ""
	}
	return s.CachedInfo().Cluster.Leader
}

// moveLeader asks the leader of stream to step down in favour of node to
// (JetStream's leader step-down with a preferred placement) and waits until
// to leads it; false when it could not.
func (c *natsCluster) moveLeader(stream, to string) bool {
	if c.streamLeader(stream) == to {
		return true
	}
	nc, err := nats.Connect(c.URL(), nats.Timeout(2*time.Second), nats.NoReconnect())
	if err != nil {
		return false
	}
	defer nc.Close()
	req := []byte(`{"placement":{"preferred":"` + to + `"}}`)
	if _, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+stream, req, 5*time.Second); err != nil {
		return false
	}
	return poll(10*time.Second, func() bool { return c.streamLeader(stream) == to })
}

// node returns the node called name.
func (c *natsCluster) node(name string) *natsNode {
	for _, nd := range c.nodes {
		if nd.name == name {
			return nd
		}
	}
	c.t.Fatalf("no NATS node %q", name)
	return nil
}

func (nd *natsNode) start(bin string) {
	nd.t.Helper()
	nd.log = newLogBuffer()
	nd.exited = make(chan struct{})
	nd.cmd = exec.Command(bin, "-c", nd.conf)
	nd.cmd.Stdout, nd.cmd.Stderr = nd.log, nd.log
	if err := nd.cmd.Start(); err != nil {
		nd.t.Fatalf("start nats-server %s: %v", nd.name, err)
	}
	exited := nd.exited
	cmd := nd.cmd
	go func() { _ = cmd.Wait(); close(exited) }()
}

// kill sends SIGKILL and waits for the process to end.
func (nd *natsNode) kill() {
	if nd.exited == nil {
		return // never started
	}
	select {
	case <-nd.exited:
		return
	default:
	}
	_ = nd.cmd.Process.Kill()
	<-nd.exited
}

// stop asks the node to shut down (SIGTERM, a graceful stop) and waits.
func (nd *natsNode) stop() {
	select {
	case <-nd.exited:
		return
	default:
	}
	_ = nd.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-nd.exited:
	case <-time.After(30 * time.Second):
		nd.t.Errorf("nats-server %s still running 30s after SIGTERM; killed", nd.name)
		nd.kill()
	}
}

// restart starts the node again on its ports and store, and waits until
// its monitoring endpoint reports it healthy (JetStream caught up).
func (nd *natsNode) restart(timeout time.Duration) {
	nd.t.Helper()
	nd.start(natsServerBin(nd.t))
	hc := &http.Client{Timeout: 2 * time.Second}
	if !poll(timeout, func() bool {
		resp, err := hc.Get("http://" + nd.monitor + "/healthz")
		if err != nil {
			return false
		}
		drain(resp)
		return resp.StatusCode == http.StatusOK
	}) {
		nd.t.Errorf("nats-server %s not healthy %s after its restart", nd.name, timeout)
	}
}

package stream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func TestVersionAtLeast(t *testing.T) {
	for _, c := range []struct {
		v, min string
		want   bool
	}{
		{"2.12.0", "2.12.0", true},
		{"v2.12.1", "2.12.0", true},
		{"2.15.2", "2.12.0", true},
		{"3.0.0", "2.12.0", true},
		{"2.11.9", "2.12.0", false},
		{"2.9.10", "2.12.0", false},
		{"2.9.10", "2.9.0", true},
		{"2.8.4", "2.9.0", false},
		{"2.12.0-RC.1", "2.12.0", true},
		{"2.12", "2.12.0", true},
		{"", "2.9.0", false},
		{"dev", "2.9.0", false},
	} {
		if got := versionAtLeast(c.v, c.min); got != c.want {
			t.Errorf("versionAtLeast(%q, %q) = %v, want %v", c.v, c.min, got, c.want)
		}
	}
}

// startNATS runs a real nats-server (the version capstan embeds) on a
// loopback port with JetStream and its HTTP monitoring port, syncing always
// or every interval. It returns the client and monitoring URLs.
func startNATS(t *testing.T, name string, syncAlways bool) (string, string) {
	t.Helper()
	opts := &server.Options{
		ServerName: name,
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		HTTPHost:   "127.0.0.1",
		HTTPPort:   server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoSigs:     true,
		NoLog:      true,
	}
	if syncAlways {
		opts.SyncAlways = true
	} else {
		opts.SyncInterval = 2 * time.Minute
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return ns.ClientURL(), "http://" + ns.MonitorAddr().String()
}

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu sync.Mutex
	sb strings.Builder
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.String()
}

// CheckServers reads each server's version and sync setting from its
// monitoring endpoint: a server that syncs always passes, one with an
// interval is named in a warning with the Jepsen finding, and an endpoint
// that does not answer is a warning too.
func TestCheckServersSync(t *testing.T) {
	url1, mon1 := startNATS(t, "n1", true)
	_, mon2 := startNATS(t, "n2", false)
	var logs logBuffer
	ctx := context.Background()
	eng, err := Open(ctx, Config{URL: url1}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()

	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + dead.Addr().String()
	dead.Close() // nothing listens there now

	r := eng.CheckServers(ctx, []string{mon1, " " + mon2, deadURL})
	if r.Version != server.VERSION || r.Name != "n1" || !r.AtomicBatches {
		t.Errorf("report %+v", r)
	}
	if len(r.Nodes) != 3 {
		t.Fatalf("nodes %+v", r.Nodes)
	}
	if n := r.Nodes[0]; n.Name != "n1" || n.Version != server.VERSION || !n.SyncAlways || n.Err != "" {
		t.Errorf("n1 %+v", n)
	}
	if n := r.Nodes[1]; n.Name != "n2" || n.SyncAlways || n.SyncInterval != 2*time.Minute {
		t.Errorf("n2 %+v", n)
	}
	if n := r.Nodes[2]; n.Err == "" || n.MonitorURL != deadURL {
		t.Errorf("dead endpoint %+v", n)
	}
	warnings := strings.Join(r.Warnings, "\n")
	if len(r.Warnings) != 2 || !strings.Contains(warnings, "does not sync always") || !strings.Contains(warnings, "Jepsen") || !strings.Contains(warnings, "cannot read a NATS server's monitoring endpoint") {
		t.Errorf("warnings:\n%s", warnings)
	}
	out := logs.String()
	for _, want := range []string{`msg="external NATS cluster" component=stream server=n1 version=` + server.VERSION, "servers_checked=2", "atomic_batches=true",
		"server=n1 version=" + server.VERSION + ` cluster="" sync_interval=always`, "server=n2 version=" + server.VERSION + ` cluster="" sync_interval=2m0s`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if !eng.AtomicBatches() {
		t.Error("atomic batches off on " + server.VERSION)
	}
}

// Without engine.monitor_url the sync setting cannot be read: the warning
// says so and how to have it checked.
func TestCheckServersUnmonitored(t *testing.T) {
	url, _ := startNATS(t, "solo", true)
	eng, err := Open(context.Background(), Config{URL: url}, discard)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	r := eng.CheckServers(context.Background(), nil)
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "cannot check the NATS servers' jetstream.sync_interval") || !strings.Contains(r.Warnings[0], "engine.monitor_url") {
		t.Errorf("warnings %q", r.Warnings)
	}
}

// TestCheckServersMachineNATS runs the check against the machine's NATS at
// 127.0.0.1:4222 (Debian's nats-server 2.9.10): accepted, with the fall-back
// to one-by-one writes (no atomic batches before 2.12) stated.
func TestCheckServersMachineNATS(t *testing.T) {
	conn, err := net.DialTimeout("tcp", "127.0.0.1:4222", time.Second)
	if err != nil {
		t.Skip("no NATS server at 127.0.0.1:4222: external-engine check skipped")
	}
	conn.Close()
	eng, err := Open(context.Background(), Config{URL: "nats://127.0.0.1:4222"}, discard)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	r := eng.CheckServers(context.Background(), nil)
	t.Logf("machine NATS: version %s, domain %q, API level %d, atomic batches %v, warnings %q", r.Version, r.Domain, r.APILevel, r.AtomicBatches, r.Warnings)
	if want := versionAtLeast(r.Version, AtomicBatchVersion); r.AtomicBatches != want || eng.AtomicBatches() != want {
		t.Errorf("atomic batches %v on %s", r.AtomicBatches, r.Version)
	}
	if !r.AtomicBatches && !strings.Contains(strings.Join(r.Warnings, "\n"), "falls back to writing events one by one") {
		t.Errorf("no fall-back warning: %q", r.Warnings)
	}
}

// oldServer stands in for a nats-server older than MinServerVersion (none
// can be built from the module): it speaks just enough of the client
// protocol (INFO, then PONG to the handshake's PING) for a connection to
// learn its version.
func oldServer(t *testing.T, version string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				fmt.Fprintf(c, "INFO {\"server_id\":\"OLD\",\"server_name\":\"old\",\"version\":%q,\"proto\":1,\"max_payload\":1048576,\"headers\":true}\r\n", version)
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if strings.HasPrefix(sc.Text(), "PING") {
						fmt.Fprint(c, "PONG\r\n")
					}
				}
			}()
		}
	}()
	return "nats://" + ln.Addr().String()
}

// A server older than MinServerVersion is refused, with the reason.
func TestServerTooOld(t *testing.T) {
	url := oldServer(t, "2.8.4")
	_, err := Open(context.Background(), Config{URL: url}, discard)
	if !errors.Is(err, ErrServerTooOld) || !strings.Contains(err.Error(), "version 2.8.4; capstan needs nats-server 2.9.0 or later") {
		t.Fatalf("Open against 2.8.4: %v", err)
	}
	if _, err := Attach(context.Background(), Config{URL: url}, discard); !errors.Is(err, ErrServerTooOld) {
		t.Fatalf("Attach against 2.8.4: %v", err)
	}
}

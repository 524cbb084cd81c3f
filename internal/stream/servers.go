package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// MinServerVersion is the oldest nats-server capstan runs on: the nats.go
// jetstream client capstan uses needs 2.9.0 or later. Open and Attach refuse
// an older external server with ErrServerTooOld.
const MinServerVersion = "2.9.0"

// AtomicBatchVersion is the first nats-server with JetStream atomic batch
// publish. On older servers (2.9 to 2.11) capstan falls back to publishing
// each event on its own, which is slower but as durable.
const AtomicBatchVersion = "2.12.0"

// ErrServerTooOld means the external NATS server is older than
// MinServerVersion. It is not transient: start-up does not retry it.
var ErrServerTooOld = errors.New("NATS server too old")

// ServerNode is one NATS server as its monitoring endpoint (/varz) reports it.
type ServerNode struct {
	// MonitorURL is the endpoint that was read.
	MonitorURL string
	// Name, Version and Cluster as the server reports them.
	Name, Version, Cluster string
	// SyncAlways is true when the server fsyncs every write before
	// acknowledging it (jetstream.sync_interval: always).
	SyncAlways bool
	// SyncInterval is the background fsync interval otherwise (0 when the
	// server reports none).
	SyncInterval time.Duration
	// Err is why the endpoint could not be read ("" when it was).
	Err string
}

// ServerReport is what CheckServers learnt about an external cluster.
type ServerReport struct {
	// Version, Name and Cluster of the server the connection is on, from the
	// client protocol.
	Version, Name, Cluster string
	// Domain is the JetStream domain ("" for none); APILevel the JetStream
	// API level (0 before 2.11).
	Domain   string
	APILevel int
	// ClusterSize is the JetStream meta group's size as monitoring reports
	// it (0 when unknown).
	ClusterSize int
	// Nodes are the servers read through engine.monitor_url.
	Nodes []ServerNode
	// AtomicBatches is true when every known server has atomic batch
	// publish.
	AtomicBatches bool
	// Warnings are the problems found, as logged.
	Warnings []string
}

// checkVersion refuses a server older than MinServerVersion.
func checkVersion(version, where string) error {
	if !versionAtLeast(version, MinServerVersion) {
		return fmt.Errorf("%w: the NATS server at %s is version %s; capstan needs nats-server %s or later (the nats.go jetstream client it uses does not work with older servers): upgrade the cluster", ErrServerTooOld, where, version, MinServerVersion)
	}
	return nil
}

// versionAtLeast reports whether version ("v2.12.1", "2.9.10",
// "2.12.0-RC.1") is at least min ("2.12.0"). An unreadable version is not.
func versionAtLeast(version, min string) bool {
	v, ok1 := parseVersion(version)
	m, ok2 := parseVersion(min)
	if !ok1 || !ok2 {
		return false
	}
	for i := range v {
		if v[i] != m[i] {
			return v[i] > m[i]
		}
	}
	return true
}

func parseVersion(s string) ([3]int, bool) {
	var v [3]int
	s = strings.TrimPrefix(strings.TrimSpace(s), "v")
	if i := strings.IndexAny(s, "-+"); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return v, false
	}
	for i, p := range parts {
		if _, err := fmt.Sscanf(p, "%d", &v[i]); err != nil {
			return v, false
		}
	}
	return v, true
}

// varz is the part of a server's /varz that CheckServers reads.
type varz struct {
	Name    string `json:"server_name"`
	Version string `json:"version"`
	Cluster struct {
		Name string `json:"name"`
	} `json:"cluster"`
	JetStream struct {
		Config *struct {
			SyncInterval time.Duration `json:"sync_interval"`
			SyncAlways   bool          `json:"sync_always"`
			Domain       string        `json:"domain"`
		} `json:"config"`
		Meta *struct {
			ClusterSize int `json:"cluster_size"`
		} `json:"meta"`
	} `json:"jetstream"`
}

// CheckServers reads what an external cluster is (the connected server's
// version, name and cluster, the JetStream domain and API level, and,
// through monitorURLs, each server's version and jetstream.sync_interval),
// logs it at start and warns about what endangers acknowledged events: a
// server that does not sync always (acknowledged writes can be lost on
// power failure, the Jepsen finding for NATS 2.12.1), a server without
// atomic batch publish (capstan then writes events one by one), mixed
// versions, servers not checked. The sync setting is not part of the client
// protocol; without monitorURLs it cannot be checked and a warning says so.
// A monitoring endpoint that does not answer is a warning, not an error.
// Call it before the Writer is made: the lowest version it finds decides
// whether the Appender uses atomic batches. It does nothing for the
// embedded engine.
func (e *Engine) CheckServers(ctx context.Context, monitorURLs []string) ServerReport {
	var r ServerReport
	if e.ns != nil || e.attached {
		r.AtomicBatches = true
		return r
	}
	r.Version, r.Name, r.Cluster = e.nc.ConnectedServerVersion(), e.nc.ConnectedServerName(), e.nc.ConnectedClusterName()
	warn := func(msg string, args ...any) {
		r.Warnings = append(r.Warnings, msg)
		e.log.Warn(msg, args...)
	}
	if info, err := e.js.AccountInfo(ctx); err != nil {
		warn("cannot read the JetStream account information", "error", err)
	} else {
		r.Domain, r.APILevel = info.Domain, info.API.Level
	}
	lowest := r.Version
	versions := map[string]bool{r.Version: true}
	hc := &http.Client{Timeout: 5 * time.Second}
	checked := 0
	for _, raw := range monitorURLs {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		n := ServerNode{MonitorURL: raw}
		v, err := readVarz(ctx, hc, raw)
		if err != nil {
			n.Err = err.Error()
			r.Nodes = append(r.Nodes, n)
			warn("cannot read a NATS server's monitoring endpoint: its sync_interval is not checked", "monitor_url", raw, "error", err)
			continue
		}
		n.Name, n.Version, n.Cluster = v.Name, v.Version, v.Cluster.Name
		if c := v.JetStream.Config; c != nil {
			n.SyncAlways, n.SyncInterval = c.SyncAlways, c.SyncInterval
		}
		if m := v.JetStream.Meta; m != nil && m.ClusterSize > r.ClusterSize {
			r.ClusterSize = m.ClusterSize
		}
		r.Nodes = append(r.Nodes, n)
		checked++
		versions[n.Version] = true
		if !versionAtLeast(n.Version, lowest) {
			lowest = n.Version
		}
		sync := "always"
		if !n.SyncAlways {
			sync = n.SyncInterval.String()
		}
		e.log.Info("NATS server", "monitor_url", raw, "server", n.Name, "version", n.Version, "cluster", n.Cluster, "sync_interval", sync)
		switch {
		case v.JetStream.Config == nil:
			warn("a NATS server runs without JetStream", "server", n.Name, "monitor_url", raw)
		case !n.SyncAlways:
			warn("a NATS server does not sync always: events it acknowledged can be lost on power failure (the Jepsen finding for NATS 2.12.1); set jetstream { sync_interval: always } on every node", "server", n.Name, "version", n.Version, "sync_interval", n.SyncInterval.String())
		}
	}
	r.AtomicBatches = versionAtLeast(lowest, AtomicBatchVersion)
	e.minVersion = lowest
	e.log.Info("external NATS cluster", "server", r.Name, "version", r.Version, "cluster", r.Cluster, "jetstream_domain", r.Domain, "jetstream_api_level", r.APILevel,
		"servers_checked", checked, "cluster_size", r.ClusterSize, "atomic_batches", r.AtomicBatches, "replicas", e.cfg.Replicas)
	if len(versions) > 1 {
		warn("the NATS servers run different versions: capstan uses only what the oldest supports", "oldest", lowest)
	}
	if !r.AtomicBatches {
		warn("the NATS servers have no atomic batch publish (it needs nats-server "+AtomicBatchVersion+" or later): capstan falls back to writing events one by one, which is as durable but slower", "oldest_version", lowest)
	}
	if len(monitorURLs) == 0 {
		warn("cannot check the NATS servers' jetstream.sync_interval (the client protocol does not expose it): unless every node sets sync_interval: always, events they acknowledged can be lost on power failure (the Jepsen finding for NATS 2.12.1); set engine.monitor_url to the servers' monitoring endpoints to have it checked")
	} else if r.ClusterSize > checked {
		warn("fewer NATS servers were checked than the JetStream cluster has: the others' sync_interval is not known", "checked", checked, "cluster_size", r.ClusterSize)
	}
	return r
}

func readVarz(ctx context.Context, hc *http.Client, base string) (*varz, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	u = u.JoinPath("varz")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u.Redacted(), resp.Status)
	}
	var v varz
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&v); err != nil {
		return nil, fmt.Errorf("GET %s: not a NATS /varz answer: %w", u.Redacted(), err)
	}
	if v.Version == "" {
		return nil, fmt.Errorf("GET %s: not a NATS /varz answer (no version)", u.Redacted())
	}
	return &v, nil
}

package stream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Names that are part of capstan's contract, so operators can inspect them
// with the nats CLI.
const (
	EventsStream  = "EVENTS"
	EventsSubject = "events" // events.<source>.<type>
	DLQStream     = "DLQ"
	DLQSubject    = "dlq" // dlq.<destination>.<reason>
	IdentityKV    = "identity"
	StateKV       = "state"
	AuditStream   = "AUDIT"
	AuditSubject  = "audit" // audit.<action>
	SuppressionKV = "suppression"
	// EventIDsKV holds the eventId collision guard's claims (7-day TTL);
	// AcceptedKV the accepted counts per rule and day (reconciliation).
	EventIDsKV = "eventids"
	AcceptedKV = "accepted"
	// The delivery statistics (internal/stats): one bucket per window.
	StatsMinutesKV  = "stats_minutes"
	StatsQuartersKV = "stats_quarters"
	StatsHoursKV    = "stats_hours"
)

// SegmentDupWindow is the duplicate window of the EVENTS stream: it drops a
// segment stored again (a whole request retried, its Nats-Msg-Id the same)
// within it. Per-event de-duplication over engine.dedup.window is the
// index's (dedup.go), so this window only covers client retries and JetStream
// keeps few ids in memory.
const SegmentDupWindow = 2 * time.Minute

// Config configures the engine. The zero value of a field means its default.
type Config struct {
	// URL of an external NATS cluster; "" starts an embedded server.
	URL string
	// Credentials is a .creds file for the external cluster.
	Credentials string
	// DataDir holds the embedded server's store, lock and control file.
	DataDir string
	// Listen is the embedded server's loopback client address; "" or "none"
	// means no listening port (in-process connections only).
	Listen string
	// SyncInterval is 0 for fsync before every acknowledgement (default), or
	// the embedded server's flush interval.
	SyncInterval time.Duration
	// Replicas of streams and buckets. Default 1.
	Replicas int
	// Retention (max age) of the EVENTS stream. Default 7 days.
	Retention time.Duration
	// MaxBytes of the EVENTS stream; 0 means unlimited.
	MaxBytes int64
	// PlainSegments makes the segments this engine's writers store (and
	// privacy rewrites) plain frames (version 1), which releases before
	// compression read, instead of S2-compressed ones (version 2): for a
	// cluster whose replicas are upgraded one by one (engine.compression:
	// none). Readers take both either way.
	PlainSegments bool
	// DLQRetention is how long dead letters are kept. Default 30 days.
	DLQRetention time.Duration
	// DLQMaxBytes caps the DLQ stream's size. Default 1 GiB; negative
	// means unlimited. Beyond either DLQ limit the oldest dead letters are
	// dropped (DLQCollector counts them).
	DLQMaxBytes int64
}

// Engine is a connection to JetStream with capstan's streams in place.
// It is safe for concurrent use.
type Engine struct {
	cfg  Config
	log  *slog.Logger
	ns   *server.Server // nil with an external cluster or a remote embedded one
	nc   *nats.Conn
	js   jetstream.JetStream
	lock *os.File
	// ctlFile is data_dir/engine.json, written while a listening embedded
	// server runs.
	ctlFile string
	// attached is true for a tool connected to the embedded engine of a
	// running capstan: Sync asks that process to sync (see sync.go).
	attached bool
	// minVersion is the oldest server version CheckServers found ("":
	// the connected server's).
	minVersion string

	syncMu  sync.Mutex
	syncers map[string]*blockSyncer // by stream, embedded engine only

	// dedup is the process's de-duplication index (OpenDedup), which
	// Consumer gives its consumers.
	dedup atomic.Pointer[Dedup]

	// afterSnapshot, when set (by tests), is called by Backup after each
	// stream's snapshot, with the stream's name.
	afterSnapshot func(stream string)
}

// syncSubject is where the process that runs the embedded engine takes Sync
// requests from tools attached to it. The data is the stream's name; an
// empty reply means done, anything else is the error.
const syncSubject = "capstan.engine.sync"

// ErrBusy means the data directory belongs to another running capstan whose
// embedded engine does not accept local clients (engine.listen: none).
var ErrBusy = errors.New("the data directory is in use by a running capstan whose engine does not listen (engine.listen: none)")

// control is the content of data_dir/engine.json.
type control struct {
	URL   string `json:"url"`
	Token string `json:"token"`
	PID   int    `json:"pid"`
}

// Open starts the embedded server (or connects to the cluster) and makes sure
// the EVENTS stream exists with cfg's settings. It is what `capstan serve`
// uses: with an embedded engine it takes the data directory's lock and fails
// if another process holds it.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Engine, error) {
	e, err := open(cfg, log, false)
	if err != nil {
		return nil, err
	}
	if err := e.ensureStreams(ctx); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// Attach is for command-line tools (events tail, dlq, identity): it connects
// to the external cluster, or to the embedded engine of a running capstan
// through data_dir/engine.json, or, when no capstan runs on the data
// directory, opens the store itself. It does not change stream settings.
func Attach(ctx context.Context, cfg Config, log *slog.Logger) (*Engine, error) {
	e, err := open(cfg, log, true)
	if err != nil {
		return nil, err
	}
	if e.ns != nil { // we opened the store: make sure it is initialised
		if err := e.ensureStreams(ctx); err != nil {
			e.Close()
			return nil, err
		}
	}
	return e, nil
}

func (c *Config) defaults() {
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Retention == 0 {
		c.Retention = 7 * 24 * time.Hour
	}
	if c.Listen == "" {
		c.Listen = "none"
	}
	if c.DLQRetention == 0 {
		c.DLQRetention = 30 * 24 * time.Hour
	}
	if c.DLQMaxBytes == 0 {
		c.DLQMaxBytes = 1 << 30
	}
}

func open(cfg Config, log *slog.Logger, attach bool) (*Engine, error) {
	cfg.defaults()
	e := &Engine{cfg: cfg, log: log.With("component", "stream")}
	if cfg.URL != "" {
		opts := []nats.Option{nats.Name("capstan"), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second)}
		if cfg.Credentials != "" {
			opts = append(opts, nats.UserCredentials(cfg.Credentials))
		}
		nc, err := nats.Connect(cfg.URL, opts...)
		if err != nil {
			return nil, fmt.Errorf("connect to NATS at %s: %w", redactURL(cfg.URL), err)
		}
		if err := checkVersion(nc.ConnectedServerVersion(), nc.ConnectedUrlRedacted()); err != nil {
			nc.Close()
			return nil, err
		}
		return e, e.setConn(nc)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	lock, err := lockDir(cfg.DataDir)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		if !attach {
			return nil, fmt.Errorf("data directory %s is in use by another capstan process", cfg.DataDir)
		}
		return e, e.attachRunning()
	}
	if err != nil {
		return nil, err
	}
	e.lock = lock
	if attach {
		cfg.Listen = "none" // a tool's private server never listens
	}
	if err := e.startEmbedded(cfg); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "capstan.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (e *Engine) attachRunning() error {
	b, err := os.ReadFile(filepath.Join(e.cfg.DataDir, "engine.json"))
	if errors.Is(err, os.ErrNotExist) {
		return ErrBusy
	}
	if err != nil {
		return fmt.Errorf("read engine control file: %w", err)
	}
	var ctl control
	if err := json.Unmarshal(b, &ctl); err != nil {
		return fmt.Errorf("read engine control file: %w", err)
	}
	nc, err := nats.Connect(ctl.URL, nats.Token(ctl.Token), nats.Name("capstan-cli"))
	if err != nil {
		return fmt.Errorf("connect to the running capstan's engine: %w", err)
	}
	e.attached = true
	return e.setConn(nc)
}

func (e *Engine) startEmbedded(cfg Config) error {
	opts := &server.Options{
		ServerName:         "capstan",
		JetStream:          true,
		StoreDir:           filepath.Join(cfg.DataDir, "jetstream"),
		NoSigs:             true,
		NoLog:              true,
		DontListen:         true,
		JetStreamMaxMemory: 256 << 20,
		// Never sync "always": with engine.sync always, capstan fsyncs
		// the stream itself after each group of writes (Sync, sync.go).
		SyncInterval: cfg.SyncInterval,
	}
	// Atomic batches of up to 1000 events; allow enough in flight for group
	// commit with several writers.
	opts.JetStreamLimits.MaxBatchInflightPerStream = 64
	var token string
	if cfg.Listen != "none" {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return fmt.Errorf("engine listen address %q: %w", cfg.Listen, err)
		}
		opts.DontListen = false
		opts.Host = host
		opts.Port, _ = strconv.Atoi(port)
		if opts.Port == 0 {
			opts.Port = server.RANDOM_PORT
		}
		token = randomToken()
		opts.Authorization = token
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("start embedded NATS: %w", err)
	}
	ns.Start()
	e.ns = ns
	if !ns.ReadyForConnections(30 * time.Second) {
		return errors.New("start embedded NATS: not ready after 30s")
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.Token(token), nats.Name("capstan"))
	if err != nil {
		return fmt.Errorf("connect to embedded NATS: %w", err)
	}
	if err := e.setConn(nc); err != nil {
		return err
	}
	if token != "" {
		if err := e.serveSync(); err != nil {
			return err
		}
		addr := ns.Addr().(*net.TCPAddr)
		ctl := control{URL: fmt.Sprintf("nats://%s", net.JoinHostPort(addr.IP.String(), strconv.Itoa(addr.Port))), Token: token, PID: os.Getpid()}
		b, _ := json.Marshal(ctl)
		e.ctlFile = filepath.Join(cfg.DataDir, "engine.json")
		tmp := e.ctlFile + ".tmp"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			return fmt.Errorf("write engine control file: %w", err)
		}
		if err := os.Rename(tmp, e.ctlFile); err != nil {
			return fmt.Errorf("write engine control file: %w", err)
		}
		e.log.Info("embedded engine accepts local clients", "addr", ctl.URL)
	}
	return nil
}

func (e *Engine) setConn(nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return fmt.Errorf("jetstream: %w", err)
	}
	e.nc, e.js = nc, js
	return nil
}

func randomToken() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// redactURL drops user information from NATS URLs before logging them.
func redactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, raw := range parts {
		if u, err := url.Parse(strings.TrimSpace(raw)); err == nil && u.User != nil {
			u.User = url.User("REDACTED")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

// ensureStreams creates or updates the EVENTS and DLQ streams.
func (e *Engine) ensureStreams(ctx context.Context) error {
	maxBytes := e.cfg.MaxBytes
	if maxBytes == 0 {
		maxBytes = -1
	}
	_, err := e.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:               EventsStream,
		Description:        "Accepted Segment events (capstan)",
		Subjects:           []string{EventsSubject + ".>"},
		Storage:            jetstream.FileStorage,
		Retention:          jetstream.LimitsPolicy,
		MaxAge:             e.cfg.Retention,
		MaxBytes:           maxBytes,
		Discard:            jetstream.DiscardNew, // full: refuse (503), never drop accepted events
		Duplicates:         SegmentDupWindow,
		Replicas:           e.cfg.Replicas,
		AllowAtomicPublish: true,
		AllowDirect:        true,
	})
	if err != nil {
		return fmt.Errorf("create stream %s: %w", EventsStream, err)
	}
	_, err = e.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        DLQStream,
		Description: "Conversions LinkedIn refused or that expired, with the reason and the original event (capstan)",
		Subjects:    []string{DLQSubject + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      e.cfg.DLQRetention,
		MaxBytes:    e.cfg.DLQMaxBytes,
		Discard:     jetstream.DiscardOld, // full: drop the oldest dead letters, never refuse a new one
		Duplicates:  2 * time.Minute,
		Replicas:    e.cfg.Replicas,
		AllowDirect: true,
	})
	if err != nil {
		return fmt.Errorf("create stream %s: %w", DLQStream, err)
	}
	return nil
}

// KV returns the key-value bucket name, creating it when missing with the
// engine's replicas and the given TTL (0: keep forever). Its writes are
// durable when they return (with SyncsLocally, each is followed by Sync).
//
// The creation is waited for even when ctx ends first, for at most
// createTimeout: the server carries out a request its client stopped waiting
// for, and a bucket it creates while the embedded server shuts down keeps
// its store's goroutines running after Shutdown returns (seen as a leaked
// filestore flush loop in a test that stopped a runner at once).
func (e *Engine) KV(ctx context.Context, bucket string, ttl time.Duration) (jetstream.KeyValue, error) {
	cctx, cancel := createContext(ctx)
	defer cancel()
	kv, err := e.js.CreateOrUpdateKeyValue(cctx, jetstream.KeyValueConfig{
		Bucket:   bucket,
		TTL:      ttl,
		Storage:  jetstream.FileStorage,
		Replicas: e.cfg.Replicas,
		History:  1,
	})
	if err != nil {
		return nil, fmt.Errorf("key-value bucket %s: %w", bucket, err)
	}
	if e.SyncsLocally() {
		return &syncedKV{KeyValue: kv, eng: e, stream: "KV_" + bucket}, nil
	}
	return kv, nil
}

// createTimeout bounds the wait for a stream or bucket creation whose
// caller's context ended without a deadline (see KV).
const createTimeout = 10 * time.Second

// createContext returns the context a creation request waits with: ctx's
// deadline if it has one, else createTimeout, and not ended by ctx's
// cancellation.
func createContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok {
		return context.WithDeadline(context.WithoutCancel(ctx), d)
	}
	return context.WithTimeout(context.WithoutCancel(ctx), createTimeout)
}

// Conn returns the NATS connection.
func (e *Engine) Conn() *nats.Conn { return e.nc }

// JetStream returns the JetStream context.
func (e *Engine) JetStream() jetstream.JetStream { return e.js }

// AtomicBatches reports whether the server supports JetStream atomic batch
// publish (nats-server 2.12 and later; after CheckServers, every server it
// found). Older servers ignore the batch headers and store each message on
// its own, so the Appender must not use them there.
func (e *Engine) AtomicBatches() bool {
	if e.ns != nil {
		return true
	}
	v := e.minVersion
	if v == "" {
		v = e.nc.ConnectedServerVersion()
	}
	return versionAtLeast(v, AtomicBatchVersion)
}

// SyncsLocally reports whether capstan makes writes durable itself with
// Sync: true for the embedded engine with engine.sync always, and for a
// tool attached to a running capstan's embedded engine. Then writes are
// published without JetStream's atomic batches and followed by Sync.
func (e *Engine) SyncsLocally() bool { return e.attached || e.ns != nil && e.cfg.SyncInterval == 0 }

// Sync makes durable every message that stream acknowledged before the
// call, when capstan is the one to do it (SyncsLocally): it fsyncs the
// stream's block files, or asks the running capstan that owns the embedded
// engine to. Otherwise it does nothing: the embedded engine runs with an
// engine.sync interval, or an external cluster follows its own
// sync_interval.
func (e *Engine) Sync(ctx context.Context, stream string) error {
	if e.attached {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
		}
		resp, err := e.nc.RequestWithContext(ctx, syncSubject, []byte(stream))
		if err != nil {
			return fmt.Errorf("sync stream %s: %w", stream, err)
		}
		if len(resp.Data) > 0 {
			return fmt.Errorf("sync stream %s: %s", stream, resp.Data)
		}
		return nil
	}
	if !e.SyncsLocally() {
		return nil
	}
	s, err := e.syncer(stream)
	if err != nil {
		return err
	}
	return s.Sync()
}

func (e *Engine) syncer(stream string) (*blockSyncer, error) {
	if stream == "" || strings.ContainsAny(stream, "/\\.") {
		return nil, fmt.Errorf("sync stream %q: not a stream name", stream)
	}
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	if s := e.syncers[stream]; s != nil {
		return s, nil
	}
	dir := filepath.Join(e.ns.JetStreamConfig().StoreDir, server.DEFAULT_GLOBAL_ACCOUNT, "streams", stream, "msgs")
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("sync stream %s: %w", stream, err)
	}
	if e.syncers == nil {
		e.syncers = make(map[string]*blockSyncer)
	}
	s := newBlockSyncer(dir, e.cfg.DataDir)
	e.syncers[stream] = s
	return s, nil
}

// serveSync answers the Sync requests of attached tools.
func (e *Engine) serveSync() error {
	_, err := e.nc.Subscribe(syncSubject, func(m *nats.Msg) {
		var reply []byte
		if err := e.Sync(context.Background(), string(m.Data)); err != nil {
			reply = []byte(err.Error())
		}
		_ = m.Respond(reply)
	})
	if err != nil {
		return fmt.Errorf("engine sync service: %w", err)
	}
	return nil
}

// Embedded reports whether this process runs the engine's server.
func (e *Engine) Embedded() bool { return e.ns != nil }

// Attached reports whether this is a tool connected to the embedded engine
// of a running capstan (Attach): that capstan owns the data directory's
// local state (de-duplication index, identity store), which the tool
// reaches through it.
func (e *Engine) Attached() bool { return e.attached }

// Ready reports whether the engine can take writes now.
func (e *Engine) Ready(ctx context.Context) error {
	if e.nc == nil || !e.nc.IsConnected() {
		return errors.New("not connected to NATS")
	}
	if _, err := e.js.Stream(ctx, EventsStream); err != nil {
		return fmt.Errorf("stream %s: %w", EventsStream, err)
	}
	return nil
}

// Close flushes and closes the connection and stops the embedded server,
// which syncs its store to disk.
func (e *Engine) Close() {
	if e.nc != nil {
		_ = e.nc.Flush()
		e.nc.Close()
	}
	if e.ctlFile != "" {
		_ = os.Remove(e.ctlFile)
	}
	if e.ns != nil {
		e.ns.Shutdown()
		e.ns.WaitForShutdown()
	}
	e.syncMu.Lock()
	for _, s := range e.syncers {
		s.Close()
	}
	e.syncMu.Unlock()
	if e.lock != nil {
		_ = e.lock.Close()
	}
}

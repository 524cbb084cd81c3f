package identity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/capstan-gw/capstan/internal/stream"
)

// Defaults of Config.
const (
	DefaultTTL      = 90 * 24 * time.Hour // LinkedIn's look-back window
	DefaultMaxLinks = 100
	defaultRefresh  = 24 * time.Hour
	defaultMemoTTL  = 5 * time.Second
	maxAttempts     = 10    // compare-and-set attempts per key before giving up
	maxDeleteKeys   = 10000 // bound on the keys one Delete may remove
)

// Key prefixes: a profile's key is its prefix and the lower-case hex SHA-256
// of the id (see doc.go).
const (
	userPrefix = "u."
	anonPrefix = "a."
)

// ErrNotFound means the graph holds nothing for the id asked about.
var ErrNotFound = errors.New("no identity profile for this id")

// ErrConflict means a profile kept changing under concurrent writers and the
// bounded compare-and-set loop gave up.
var ErrConflict = errors.New("identity profile updated concurrently too often")

// Config configures the graph. The zero value of a field means its default.
type Config struct {
	// Bucket is the KV bucket's name. Default stream.IdentityKV ("identity");
	// tests against a shared server set their own.
	Bucket string
	// TTL is how long a profile lives after it was last written; activity
	// rewrites a profile at most once per Refresh, which restarts its TTL.
	// Default 90 days. Minimum 1 minute.
	TTL time.Duration
	// Refresh is how old a profile may get before an event that changes
	// nothing rewrites it anyway to restart its TTL. Default 24h, at most
	// TTL/2. It also bounds how stale the time of a re-captured, unchanged
	// li_fat_id or email may be.
	Refresh time.Duration
	// Replicas of the bucket. Default 1.
	Replicas int
	// MaxLinks caps the ids linked to one profile (anonymous ids and aliases
	// of a user, users of an anonymous id). Default 100. A user at the cap
	// takes no new links (dead ones are pruned first); an anonymous id at the
	// cap forgets its oldest user.
	MaxLinks int
	// HashEmail returns the normalised SHA-256 (lower-case hex) of an email,
	// false when there is none. Required (cmd wires linkedin.HashEmail).
	HashEmail func(string) (string, bool)
	// Async creates the bucket with JetStream's asynchronous persistence
	// (a single-replica file store written in the background, not fsynced
	// per write). cmd sets it for the embedded engine, where every graph
	// write would otherwise wait for its own fsync (~0.5 ms here; a new
	// visitor costs one or two writes): the graph is derived data, rebuilt
	// from events as they come, and what a power loss could take is the
	// last moments of graph updates, never an event. On a cluster
	// (replicas > 1) it is ignored: replication is the durability there.
	// It applies when the bucket is created.
	Async bool
	// MemoTTL is how long a profile this process just read or wrote may
	// serve Enrich, and Observe of an event that brings nothing new, without
	// another read (see memo): how long this process may miss another
	// process's write to a profile it holds (not a deletion: those are
	// forgotten at once everywhere). Default 5s; negative turns the memo off.
	MemoTTL time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Store, when set, holds the profiles instead of the KV bucket: the
	// local store of the embedded engine (OpenLocal), or the running
	// capstan's for a tool attached to it (Remote). Bucket, Replicas and
	// Async then do not apply. The caller closes it after the Graph's use.
	Store Store
}

// Graph is the identity graph on a Store: a JetStream KV bucket, or the
// local store. It is safe for concurrent use, by any number of processes
// sharing the bucket.
type Graph struct {
	cfg    Config
	store  Store
	log    *slog.Logger
	lim    limiter
	memo   memo
	seen   *seen
	nc     *nats.Conn
	forget string // subject of deletion notices (forgetSubject)
	// compact: profiles are written in the compact encoding (recordbin.go),
	// on the local store; JSON on the bucket and through Remote.
	compact bool
}

// Open creates the bucket, or binds it and updates its TTL and replicas
// when they differ from cfg. It works unchanged on an external cluster.
// With cfg.Store it uses that store instead, and js, when not nil, only to
// tell other processes about deletions (forgetKeys).
func Open(ctx context.Context, js jetstream.JetStream, cfg Config, log *slog.Logger) (*Graph, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = stream.IdentityKV
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Refresh == 0 {
		cfg.Refresh = defaultRefresh
	}
	cfg.Refresh = min(cfg.Refresh, cfg.TTL/2)
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.MaxLinks == 0 {
		cfg.MaxLinks = DefaultMaxLinks
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MemoTTL == 0 {
		cfg.MemoTTL = defaultMemoTTL
	}
	var errs []error
	if cfg.TTL < time.Minute {
		errs = append(errs, fmt.Errorf("identity ttl: must be at least 1m, got %s", cfg.TTL))
	}
	if cfg.Refresh <= 0 {
		errs = append(errs, fmt.Errorf("identity refresh: must be positive, got %s", cfg.Refresh))
	}
	if cfg.Replicas < 1 || cfg.Replicas > 5 {
		errs = append(errs, fmt.Errorf("identity replicas: must be 1 to 5, got %d", cfg.Replicas))
	}
	if cfg.MaxLinks < 1 {
		errs = append(errs, fmt.Errorf("identity max links: must be positive, got %d", cfg.MaxLinks))
	}
	if cfg.HashEmail == nil {
		errs = append(errs, errors.New("identity: HashEmail is required"))
	}
	if js == nil && cfg.Store == nil {
		errs = append(errs, errors.New("identity: no JetStream"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "identity")
	st := cfg.Store
	if st == nil {
		var err error
		if st, err = openBucket(ctx, js, cfg); err != nil {
			return nil, err
		}
	}
	l, compact := st.(*Local)
	if compact {
		l.bind(cfg.TTL, cfg.Now)
	}
	g := &Graph{
		cfg:     cfg,
		store:   st,
		log:     log,
		lim:     limiter{logger: log, every: time.Minute},
		memo:    memo{ttl: cfg.MemoTTL},
		seen:    newSeen(seenGeneration),
		forget:  forgetSubject(cfg.Bucket),
		compact: compact,
	}
	if js == nil {
		return g, nil
	}
	// Deletions by other processes (the CLI, other replicas) reach the
	// memo at once. The subscription lives as long as the connection.
	g.nc = js.Conn()
	if _, err := g.nc.Subscribe(g.forget, func(m *nats.Msg) {
		g.memo.drop(strings.Fields(string(m.Data)))
	}); err != nil {
		return nil, fmt.Errorf("subscribe to identity deletions: %w", err)
	}
	return g, nil
}

// openBucket binds or creates the KV bucket (bindBucket) as a Store.
func openBucket(ctx context.Context, js jetstream.JetStream, cfg Config) (*jsStore, error) {
	kv, err := bindBucket(ctx, js, cfg)
	if err != nil {
		return nil, err
	}
	st, err := js.Stream(ctx, "KV_"+cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("bind stream of KV bucket %s: %w", cfg.Bucket, err)
	}
	return &jsStore{js: js, kv: kv, st: st, subPre: "$KV." + cfg.Bucket + "."}, nil
}

// forgetSubject is the core NATS subject on which Delete names the keys it
// removed, one per line, so that every process sharing the bucket drops
// them from its memo. Keys are hashes: no id travels in clear.
func forgetSubject(bucket string) string { return "capstan.identity." + bucket + ".forget" }

// bindBucket binds an existing bucket, updating it only when its TTL or
// replicas differ (so that tools attaching to a running gateway change
// nothing), or creates it.
func bindBucket(ctx context.Context, js jetstream.JetStream, cfg Config) (jetstream.KeyValue, error) {
	kvc := jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "capstan identity graph: li_fat_id, email SHA-256 and id links",
		History:     1,
		TTL:         cfg.TTL,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	}
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound) && cfg.Async && cfg.Replicas == 1:
		return createAsyncBucket(ctx, js, kvc)
	case errors.Is(err, jetstream.ErrBucketNotFound):
		kv, err = js.CreateKeyValue(ctx, kvc)
		if errors.Is(err, jetstream.ErrBucketExists) { // another replica won the race
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
		if err != nil {
			return nil, fmt.Errorf("create KV bucket %s: %w", cfg.Bucket, err)
		}
		return kv, nil
	case err != nil:
		return nil, fmt.Errorf("bind KV bucket %s: %w", cfg.Bucket, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("status of KV bucket %s: %w", cfg.Bucket, err)
	}
	have := st.Config()
	if have.TTL == cfg.TTL && have.Replicas == cfg.Replicas {
		return kv, nil
	}
	if info, err := js.Stream(ctx, "KV_"+cfg.Bucket); err == nil && info.CachedInfo().Config.PersistMode == jetstream.AsyncPersistMode {
		// nats.go's UpdateKeyValue would reset the persist mode, which
		// JetStream refuses: change the stream's limits in place.
		sc := info.CachedInfo().Config
		sc.MaxAge, sc.Duplicates, sc.Replicas = kvc.TTL, min(2*time.Minute, kvc.TTL), kvc.Replicas
		if _, err := js.UpdateStream(ctx, sc); err != nil {
			return nil, fmt.Errorf("update KV bucket %s (ttl %s, replicas %d): %w", cfg.Bucket, cfg.TTL, cfg.Replicas, err)
		}
		return js.KeyValue(ctx, cfg.Bucket)
	}
	kv, err = js.UpdateKeyValue(ctx, kvc)
	if err != nil {
		return nil, fmt.Errorf("update KV bucket %s (ttl %s, replicas %d): %w", cfg.Bucket, cfg.TTL, cfg.Replicas, err)
	}
	return kv, nil
}

// createAsyncBucket creates the bucket's stream as nats.go's
// CreateKeyValue would (same subjects, limits and flags, so that the nats
// CLI and nats.go see an ordinary bucket), with asynchronous persistence
// (Config.Async), then binds it.
func createAsyncBucket(ctx context.Context, js jetstream.JetStream, kvc jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:              "KV_" + kvc.Bucket,
		Description:       kvc.Description,
		Subjects:          []string{"$KV." + kvc.Bucket + ".>"},
		MaxMsgsPerSubject: int64(max(kvc.History, 1)),
		MaxBytes:          -1,
		MaxAge:            kvc.TTL,
		MaxMsgSize:        -1,
		MaxMsgs:           -1,
		MaxConsumers:      -1,
		Storage:           jetstream.FileStorage,
		Replicas:          1,
		AllowRollup:       true,
		DenyDelete:        true,
		AllowDirect:       true,
		Duplicates:        min(2*time.Minute, kvc.TTL),
		Discard:           jetstream.DiscardNew,
		PersistMode:       jetstream.AsyncPersistMode,
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // another process won the race
		return nil, fmt.Errorf("create KV bucket %s: %w", kvc.Bucket, err)
	}
	kv, err := js.KeyValue(ctx, kvc.Bucket)
	if err != nil {
		return nil, fmt.Errorf("bind KV bucket %s: %w", kvc.Bucket, err)
	}
	return kv, nil
}

// Bucket returns the KV bucket's name (with Config.Store, the name it
// would have).
func (g *Graph) Bucket() string { return g.cfg.Bucket }

// TTL returns the time a profile lives after its last write.
func (g *Graph) TTL() time.Duration { return g.cfg.TTL }

// UserKey and AnonymousKey return the KV key of a user id's or an anonymous
// id's profile: "u." or "a." and the lower-case hex SHA-256 of the id.
func UserKey(userID string) string { return profileKeyOf(userPrefix, userID) }

// AnonymousKey returns the KV key of an anonymous id's profile.
func AnonymousKey(anonymousID string) string { return profileKeyOf(anonPrefix, anonymousID) }

// profileKeyOf returns prefix and the hex SHA-256 of id in one allocation:
// delivery computes two keys per event, twice (observe, enrich), and the
// obvious prefix + hex.EncodeToString costs three.
func profileKeyOf(prefix, id string) string {
	sum := sha256.Sum256([]byte(id))
	var b [2 + 2*sha256.Size]byte
	copy(b[:], prefix)
	hex.Encode(b[len(prefix):], sum[:])
	return string(b[:len(prefix)+2*sha256.Size])
}

func isUser(key string) bool { return len(key) > 2 && key[:2] == userPrefix }
func isAnon(key string) bool { return len(key) > 2 && key[:2] == anonPrefix }

// record is a profile as stored: JSON (the json tags), or compact on the
// local store (recordbin.go). Times are Unix milliseconds.
type record struct {
	// LiFatID is the newest captured li_fat_id, LiFatAt its event time.
	LiFatID string `json:"lfi,omitempty"`
	LiFatAt int64  `json:"lfiAt,omitempty"`
	// Email is the normalised SHA-256 of the newest email, EmailAt its
	// event time. Never the address itself.
	Email   string `json:"emailSha256,omitempty"`
	EmailAt int64  `json:"emailAt,omitempty"`
	// Links are keys of linked profiles, oldest first: for a user, its
	// anonymous ids ("a.…") and the user ids aliased into it ("u.…"); for an
	// anonymous id, its users ("u.…"), the last one current.
	Links []string `json:"links,omitempty"`
	// AliasOf is, for a user id that alias made a previous id, the key of
	// the user it became.
	AliasOf string `json:"aliasOf,omitempty"`
	// Groups are the groupIds of group calls, oldest first.
	Groups []string `json:"groups,omitempty"`
	// First is when the profile was created (wall clock); 0 in a part of
	// Scoped.
	First int64 `json:"first,omitempty"`
	// Scoped holds, per browser source (by name), what that source's
	// unverified events taught the profile (trust.go): the same fields,
	// used only for that source's own conversions. The fields above are
	// the trusted part, which serves every source.
	Scoped map[string]*record `json:"scoped,omitempty"`
}

func (r *record) clone() record {
	c := *r
	c.Links = slices.Clone(r.Links)
	c.Groups = slices.Clone(r.Groups)
	if r.Scoped != nil {
		c.Scoped = make(map[string]*record, len(r.Scoped))
		for src, p := range r.Scoped {
			pc := p.clone()
			c.Scoped[src] = &pc
		}
	}
	return c
}

// user returns an anonymous profile's current user key, or "".
func (r *record) user() string {
	for _, l := range slices.Backward(r.Links) {
		if isUser(l) {
			return l
		}
	}
	return ""
}

// encode returns r as the graph's store keeps it: compact on the local
// store, JSON elsewhere.
func (g *Graph) encode(r *record) []byte {
	if g.compact {
		return r.encodeBinary()
	}
	return r.marshal()
}

// entry is a loaded profile with what the compare-and-set needs.
type entry struct {
	rec    record
	rev    uint64    // expected revision for the next write; 0: no message
	at     time.Time // time of the last write
	exists bool
}

// load reads the profile at key from the bucket (and leaves it in the memo).
func (g *Graph) load(ctx context.Context, key string) (entry, error) {
	out, err := g.read(ctx, key)
	if err == nil {
		g.memo.put(key, out)
		if out.rev != 0 {
			g.seen.add(key)
		}
	}
	return out, err
}

func (g *Graph) read(ctx context.Context, key string) (entry, error) {
	s, err := g.store.get(ctx, key)
	if err != nil {
		return entry{}, fmt.Errorf("read profile: %w", err)
	}
	if !s.exists {
		return entry{rev: s.rev}, nil
	}
	out := entry{rev: s.rev, at: s.at, exists: true}
	if err := decodeRecord(s.data, &out.rec); err != nil {
		// An unreadable value is overwritten by the next change rather
		// than blocking the profile for ever.
		g.lim.warn("corrupt", "unreadable identity profile replaced", err)
		out.rec = record{}
	}
	return out, nil
}

// known returns what this process knows of the profile at key without a
// read when it can: the memo's recent copy (if it is stale, a
// compare-and-set on it fails and the profile is read again; if nothing
// changes, nothing is written either way), or met false for a key this
// process never met (seen: most likely new, so the caller creates it
// without a read); otherwise it reads the profile.
func (g *Graph) known(ctx context.Context, key string) (e entry, met bool, err error) {
	if e, ok := g.memo.get(key); ok {
		return e, true, nil
	}
	if !g.seen.maybe(key) {
		return entry{}, false, nil
	}
	e, err = g.load(ctx, key)
	return e, err == nil, err
}

// recent returns the profile at key from the memo, or reads it.
func (g *Graph) recent(ctx context.Context, key string) (entry, error) {
	if e, ok := g.memo.get(key); ok {
		return e, nil
	}
	return g.load(ctx, key)
}

// update applies fn to the profile at key and writes the result when fn
// reports a change, or when the profile exists and is older than Refresh
// (restarting its TTL). A profile that does not exist is created only when
// fn changes something. start, when not nil, is a fresh load of key that
// saves the first read. A key this process has never met (seen) is assumed
// new and created without a read; if it exists after all, the create fails
// and the profile is read. On a revision conflict it reloads and re-applies
// fn, at most maxAttempts times. It returns the profile as stored afterwards
// and whether it wrote.
func (g *Graph) update(ctx context.Context, key string, start *entry, fn func(r *record) bool) (record, bool, error) {
	var e entry
	guessed := false
	if start != nil {
		e = *start
	} else {
		var met bool
		var err error
		if e, met, err = g.known(ctx, key); err != nil {
			return record{}, false, err
		}
		guessed = !met // e is the empty, absent profile
	}
	for attempt := 1; ; attempt++ {
		r := e.rec.clone()
		changed := fn(&r)
		now := g.cfg.Now()
		if !changed && guessed {
			// Nothing to create; what is stored may still need its TTL
			// restarted, so look.
			guessed, attempt = false, attempt-1
			var err error
			if e, err = g.load(ctx, key); err != nil {
				return record{}, false, err
			}
			continue
		}
		if !changed && (!e.exists || now.Sub(e.at) < g.cfg.Refresh) {
			return r, false, nil
		}
		if !e.exists {
			r.First = now.UnixMilli()
		}
		rev, err := g.store.put(ctx, key, g.encode(&r), e.rev, now)
		if err == nil {
			g.memo.put(key, entry{rec: r, rev: rev, at: now, exists: true})
			g.seen.add(key)
			return r, true, nil
		}
		if !casConflict(err) {
			return record{}, false, fmt.Errorf("write profile: %w", err)
		}
		if guessed {
			// The key existed after all: read it and apply fn again, with
			// no back-off (nobody is contending).
			guessed, attempt = false, attempt-1
			if e, err = g.load(ctx, key); err != nil {
				return record{}, false, err
			}
			continue
		}
		if attempt == maxAttempts {
			return record{}, false, ErrConflict
		}
		if err := backoff(ctx, attempt); err != nil {
			return record{}, false, err
		}
		if e, err = g.load(ctx, key); err != nil {
			return record{}, false, err
		}
	}
}

// writeTimeout bounds the wait for one write's acknowledgement.
const writeTimeout = 10 * time.Second

// errNoAck means a write was not acknowledged within writeTimeout: the
// engine did not answer (Unavailable).
var errNoAck = fmt.Errorf("no acknowledgement within %s", writeTimeout)

// casConflict reports whether err is a failed compare-and-set: JetStream
// answers "wrong last sequence" with code 10071 on a single-replica stream
// and 10164 on a replicated one (an external cluster with engine.replicas
// 3), which jetstream.ErrKeyExists does not match (issue 23: on a
// three-node cluster, every write to a profile not in the memo failed).
func casConflict(err error) bool {
	if errors.Is(err, errRevision) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Unavailable reports whether err, from Observe, ObserveAll or
// EnrichChecked, means the engine did not answer: disconnected, a timeout,
// no responders while a node restarts or a stream leader is elected, a
// write not acknowledged in time, JetStream answering 503. Such an error
// is transient: the same call succeeds once the engine answers again, so
// delivery holds the event rather than sending it without the graph. A
// compare-and-set conflict is not one (update retries those; ErrConflict
// after maxAttempts is not transient either), nor the caller's own
// cancelled context.
func Unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, ErrConflict) || casConflict(err) {
		return false
	}
	for _, e := range []error{errNoAck, context.DeadlineExceeded, nats.ErrTimeout, nats.ErrNoResponders, nats.ErrDisconnected,
		nats.ErrConnectionClosed, nats.ErrConnectionReconnecting, nats.ErrConnectionDraining, jetstream.ErrNoStreamResponse,
		jetstream.ErrServerShutdown, jetstream.ErrAsyncPublishTimeout, jetstream.ErrTooManyStalledMsgs, jetstream.ErrJetStreamNotEnabled} {
		if errors.Is(err, e) {
			return true
		}
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.Code == 503
}

// backoff waits before compare-and-set attempt n+1: full jitter over
// 100µs·2ⁿ⁻¹, at most 10ms, so that writers contending for one profile
// spread out.
func backoff(ctx context.Context, n int) error {
	ceil := min(100*time.Microsecond<<(n-1), 10*time.Millisecond)
	t := time.NewTimer(time.Duration(rand.Int64N(int64(ceil) + 1)))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// limiter logs a repeated warning at most once per period per kind, with
// the number suppressed meanwhile. Messages never carry ids or values.
type limiter struct {
	logger *slog.Logger
	every  time.Duration

	mu   sync.Mutex
	last map[string]time.Time
	skip map[string]int
}

func (l *limiter) warn(kind, msg string, err error) {
	now := time.Now()
	l.mu.Lock()
	if l.last == nil {
		l.last, l.skip = map[string]time.Time{}, map[string]int{}
	}
	if now.Sub(l.last[kind]) < l.every {
		l.skip[kind]++
		l.mu.Unlock()
		return
	}
	suppressed := l.skip[kind]
	l.last[kind], l.skip[kind] = now, 0
	l.mu.Unlock()
	l.logger.Warn(msg, "error", err, "suppressed", suppressed)
}

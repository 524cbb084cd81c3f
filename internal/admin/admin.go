package admin

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/delivery"
	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/stream"
)

// Config configures the admin API and the console.
type Config struct {
	// Token is the operator's bearer token (server.admin_token). Token or
	// Users is required.
	Token config.Secret
	// Users are the console's users (server.admin_users), who sign in with
	// a password.
	Users []User
	// SecureCookies marks the session cookie Secure on every request, not
	// only on those that arrive over TLS: set it when the listener serves
	// HTTPS (server.tls) or sits behind a proxy that terminates TLS.
	SecureCookies bool
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is
	// believed when counting failed sign-ins by client address.
	TrustedProxies []netip.Prefix
	// ImportDir is where the console's uploads are kept while they are
	// imported (each file is removed when its import ends). Default: the
	// system's temporary directory.
	ImportDir string
	// ImportMaxBytes is the largest file the console's Import page takes.
	// Default DefaultImportMaxBytes (256 MiB).
	ImportMaxBytes int64
}

// Destination is one configured destination as the admin API sees it.
// Implementations must be safe for concurrent use.
type Destination interface {
	// Name is the destination's configured name.
	Name() string
	// Status is its health, as /readyz reports it.
	Status() delivery.Status
	// Info is what the console shows besides: its conversion rules and
	// its token's rate-limit use.
	Info(ctx context.Context) DestinationInfo
	// InstallToken makes accessToken (expiring at expiresAt; zero: unknown)
	// the destination's token, keeps it across restarts and resumes a
	// paused delivery. An error wrapping ErrTokenNotSaved means the token
	// is in use but was not saved; any other error means it is not in use.
	InstallToken(ctx context.Context, accessToken string, expiresAt time.Time) error
}

// ErrTokenNotSaved is wrapped by a Destination's InstallToken error when the
// new token is in use but could not be saved.
var ErrTokenNotSaved = errors.New("the token is in use but could not be saved; it will be lost on restart")

// Identity is the identity graph's privacy operations; *identity.Graph is
// one. Errors wrapping identity.ErrNotFound and identity.ErrBadKey are the
// caller's; others are the engine's.
type Identity interface {
	Show(ctx context.Context, k identity.Key) (identity.Profile, error)
	Delete(ctx context.Context, k identity.Key) ([]string, error)
}

// DeadLetters is the dead-letter queue: delivery.ListDeadLetters and
// delivery.ReplayDeadLetters on the engine.
type DeadLetters interface {
	// List calls fn for each selected dead letter, oldest first, and stops
	// at fn's first error, which it returns (wrapped or not). With f.Seq set
	// and no such dead letter, it returns an error wrapping ErrNotFound.
	List(ctx context.Context, f delivery.DLQFilter, fn func(*delivery.DeadLetter) error) error
	// Replay puts the selected dead letters' events back for their
	// destination and returns how many it replayed, also on error.
	Replay(ctx context.Context, f delivery.DLQFilter) (int, error)
}

// ErrNotFound is wrapped by a dependency's error when the thing asked for
// does not exist.
var ErrNotFound = errors.New("not found")

// EventQuery selects stored events. Zero fields select everything.
type EventQuery struct {
	// Source keeps only the events of this source.
	Source string
	// Since starts at events stored at or after this time.
	Since time.Time
	// After keeps only events whose position is above it (stream.Pos;
	// 0: every event).
	After stream.Pos
	// Follow keeps reading the events stored later, until the context
	// ends (Live events); otherwise the read ends once caught up.
	Follow bool
}

// StoredEvent is one event as stored in the EVENTS stream.
type StoredEvent struct {
	// Seq is the stream sequence of the message holding the event, Index
	// the event's index in it, and Pos both, "seq:index" (stream.Pos): the
	// event's identity.
	Seq   uint64 `json:"seq"`
	Index int    `json:"index"`
	Pos   string `json:"pos"`
	// Source is the name of the source that sent it.
	Source string `json:"source"`
	// Type is the event's type (track, page, …).
	Type string `json:"type"`
	// StoredAt is when the stream stored it.
	StoredAt time.Time `json:"storedAt"`
	// Event is the stored document, exactly as kept.
	Event json.RawMessage `json:"event"`
	// DuplicateOf is, in cluster mode, the position of the earlier copy of
	// this event (same source and messageId) that delivery delivers
	// instead of this one; "" otherwise (stream.Stored.DuplicateOf).
	DuplicateOf string `json:"duplicateOf,omitempty"`
}

// pos returns the event's position.
func (se *StoredEvent) pos() stream.Pos { return stream.MakePos(se.Seq, se.Index) }

// EventReader reads the stored events.
type EventReader interface {
	// ReadEvents calls fn for each event q selects, oldest first, until it
	// has caught up with the stream; it stops at fn's first error, which it
	// returns (wrapped or not).
	ReadEvents(ctx context.Context, q EventQuery, fn func(StoredEvent) error) error
}

// Previewer runs the dry run of `capstan preview --config`.
type Previewer interface {
	// Preview maps events (one JSON event or an array of them), sent by
	// source ("" for any), through the mappings of destination ("" for
	// every destination), sending nothing. It returns a JSON-encodable
	// result and whether any event was invalid; an error means the events
	// could not be read, and its message is shown to the caller.
	Preview(ctx context.Context, events json.RawMessage, source, destination string) (result any, invalid bool, err error)
}

// PreviewFunc adapts a function to Previewer.
type PreviewFunc func(ctx context.Context, events json.RawMessage, source, destination string) (any, bool, error)

// Preview calls f.
func (f PreviewFunc) Preview(ctx context.Context, events json.RawMessage, source, destination string) (any, bool, error) {
	return f(ctx, events, source, destination)
}

// Deps are the admin API's dependencies. Destinations may be empty; the
// others are required.
type Deps struct {
	Destinations []Destination
	Identity     Identity
	DeadLetters  DeadLetters
	Events       EventReader
	Preview      Previewer
	// Privacy and Audit are optional: without them their routes answer
	// 503 unavailable.
	Privacy Privacy
	Audit   AuditLog
	// Explain is optional too: without it the event detail answers 503.
	Explain Explainer
	// Stats is optional: without it GET /admin/api/stats answers 503.
	Stats Stats
	// Import is optional: without it the import routes answer 503.
	Import Importer
}

// Server is the admin API: an http.Handler for every path under /admin/.
// It is safe for concurrent use. The one goroutine it starts is the shared
// reader of Live events, while a stream is open (Shutdown ends them).
type Server struct {
	token    [sha256.Size]byte
	hasToken bool
	users    map[string]User
	dests    []Destination // configuration order
	byName   map[string]Destination
	identity Identity
	dlq      DeadLetters
	events   EventReader
	preview  Previewer
	privacy  Privacy
	audit    AuditLog
	explain  Explainer
	live     *liveHub
	stats    Stats
	imports  *imports
	log      *slog.Logger

	mux   *http.ServeMux
	roles map[string]Role // by route pattern

	sessions       *sessions
	throttle       *throttle
	secureCookies  bool
	trustedProxies []netip.Prefix
	clock          func() time.Time // nil: time.Now; tests move it
	dummyOnce      sync.Once
	dummy          []byte // a bcrypt hash no password matches, for unknown users

	connects connects // LinkedIn connections waiting for their callback
}

// New builds the admin API. It reports every problem of cfg and deps at
// once. log may be nil (no logs).
func New(cfg Config, deps Deps, log *slog.Logger) (*Server, error) {
	var errs []error
	if cfg.Token.Value() == "" && len(cfg.Users) == 0 {
		errs = append(errs, errors.New("admin: the admin token is empty and there are no admin users"))
	}
	users := make(map[string]User, len(cfg.Users))
	for i, u := range cfg.Users {
		switch {
		case u.Name == "":
			errs = append(errs, fmt.Errorf("admin: user %d has no name", i))
		case users[u.Name].Name != "":
			errs = append(errs, fmt.Errorf("admin: user %q given twice", u.Name))
		case u.Role != RoleViewer && u.Role != RoleOperator:
			errs = append(errs, fmt.Errorf("admin: user %q has no role", u.Name))
		}
		if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			errs = append(errs, fmt.Errorf("admin: user %q: the password hash is not a bcrypt hash: %w", u.Name, err))
		}
		users[u.Name] = u
	}
	if deps.Identity == nil {
		errs = append(errs, errors.New("admin: no identity graph"))
	}
	if deps.DeadLetters == nil {
		errs = append(errs, errors.New("admin: no dead-letter queue"))
	}
	if deps.Events == nil {
		errs = append(errs, errors.New("admin: no event reader"))
	}
	if deps.Preview == nil {
		errs = append(errs, errors.New("admin: no previewer"))
	}
	byName := make(map[string]Destination, len(deps.Destinations))
	for i, d := range deps.Destinations {
		switch {
		case d == nil:
			errs = append(errs, fmt.Errorf("admin: destination %d is nil", i))
		case byName[d.Name()] != nil:
			errs = append(errs, fmt.Errorf("admin: destination %q given twice", d.Name()))
		default:
			byName[d.Name()] = d
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		token:    sha256.Sum256([]byte(cfg.Token.Value())),
		hasToken: cfg.Token.Value() != "",
		users:    users,
		dests:    deps.Destinations,
		byName:   byName,
		identity: deps.Identity,
		dlq:      deps.DeadLetters,
		events:   deps.Events,
		preview:  deps.Preview,
		privacy:  deps.Privacy,
		audit:    deps.Audit,
		explain:  deps.Explain,
		stats:    deps.Stats,
		imports:  newImports(deps.Import, cfg.ImportDir, cfg.ImportMaxBytes),
		log:      log.With("component", "admin"),
		mux:      http.NewServeMux(),
		roles:    map[string]Role{},

		sessions:       newSessions(),
		throttle:       newThrottle(),
		secureCookies:  cfg.SecureCookies,
		trustedProxies: cfg.TrustedProxies,
	}
	s.live = newLiveHub(s.events, s.log)
	s.routes()
	return s, nil
}

// routes registers every route with the role it needs.
func (s *Server) routes() {
	s.route("GET /admin/api/destinations", RoleViewer, s.listDestinations)
	s.route("GET /admin/api/destinations/{name}", RoleViewer, s.showDestination)
	s.route("PUT /admin/api/destinations/{name}/token", RoleOperator, s.installToken)
	s.route("POST /admin/api/destinations/{name}/connect", RoleOperator, s.startConnect)
	s.route("GET /admin/api/identity", RoleViewer, s.showIdentity)
	s.route("DELETE /admin/api/identity", RoleOperator, s.deleteIdentity)
	s.route("GET /admin/api/dlq", RoleViewer, s.listDeadLetters)
	s.route("GET /admin/api/dlq/{id}", RoleViewer, s.showDeadLetter)
	s.route("POST /admin/api/dlq/replay", RoleOperator, s.replayDeadLetters)
	s.route("GET /admin/api/events", RoleViewer, s.listEvents)
	s.route("POST /admin/api/preview", RoleViewer, s.runPreview)
	s.route("POST /admin/api/privacy/delete", RoleOperator, s.deletePerson)
	s.route("GET /admin/api/audit", RoleViewer, s.listAudit)
	s.route("GET /admin/api/stats", RoleViewer, s.showStats)
	s.route("GET /admin/api/dlq/count", RoleViewer, s.countDeadLetters)
	s.route("GET /admin/api/people", RoleViewer, s.listPeople)
	s.route("GET /admin/api/session", RoleViewer, s.showSession)
	s.route("DELETE /admin/api/session", RoleViewer, s.signOut)
	s.route("POST /admin/api/destinations/{name}/test-event", RoleOperator, s.testEvent)
	s.route("GET /admin/api/destinations/{name}/rules", RoleViewer, s.listRules)
	s.route("GET /admin/api/reconcile", RoleViewer, s.listReconciliations)
	s.route("POST /admin/api/reconcile", RoleOperator, s.runReconciliation)
	s.route("GET /admin/api/live", RoleViewer, s.liveEvents)
	s.route("GET /admin/api/events/{seq}/explain", RoleViewer, s.explainEvent)
	s.route("GET /admin/api/mappings", RoleViewer, s.listMappings)
	s.route("GET /admin/api/imports", RoleViewer, s.listImports)
	s.route("POST /admin/api/imports", RoleOperator, s.createImport)
	s.route("GET /admin/api/imports/{id}", RoleViewer, s.showImport)
	s.route("POST /admin/api/imports/{id}/cancel", RoleOperator, s.cancelImport)

	// The paths of earlier releases.
	s.route("PUT /admin/destinations/{name}/token", RoleOperator, s.installToken)
	s.route("GET /admin/identity", RoleViewer, s.showIdentity)
	s.route("DELETE /admin/identity", RoleOperator, s.deleteIdentity)
}

// handlerFunc is a route's handler: it writes the answer, or returns the
// error that fail renders.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (s *Server) route(pattern string, need Role, h handlerFunc) {
	s.roles[pattern] = need
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.fail(w, r, err)
		}
	})
}

// ServeHTTP serves the console's pages and files, the sign-in, and else
// authenticates the request, checks its CSRF token (with a session),
// routes it and checks the route's role.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	switch {
	case r.URL.Path == "/admin" || r.URL.Path == "/admin/":
		s.serveConsole(w, r)
		return
	case strings.HasPrefix(r.URL.Path, uiPrefix):
		s.serveUI(w, r)
		return
	}
	h.Set("Cache-Control", "no-store")
	if r.URL.Path == CallbackPath { // the state is its credential
		s.oauthCallback(w, r)
		return
	}
	if r.URL.Path == ChoosePath { // the choice's id is its credential
		s.oauthChoose(w, r)
		return
	}
	if r.URL.Path == "/admin/api/session" && r.Method == http.MethodPost {
		if err := s.signIn(w, r); err != nil {
			s.fail(w, r, err)
		}
		return
	}
	p, ok := s.authenticate(r)
	if !ok {
		h.Set("WWW-Authenticate", `Bearer realm="capstan admin"`)
		s.fail(w, r, &apiError{http.StatusUnauthorized, codeUnauthorized,
			"a valid admin token (Authorization: Bearer <server.admin_token>) or a console session is required"})
		return
	}
	if p.sessionID != "" && !safeMethod(r.Method) && !p.session.csrfOK(r.Header.Get(csrfHeader)) {
		s.fail(w, r, &apiError{http.StatusForbidden, codeCSRF,
			"this request needs the session's CSRF token in the " + csrfHeader + " header (from GET /admin/api/session)"})
		return
	}
	s.serve(w, r, p)
}

// safeMethod reports whether a request with method changes nothing.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// dummyHash returns a bcrypt hash that no password matches.
func (s *Server) dummyHash() []byte {
	s.dummyOnce.Do(func() {
		s.dummy, _ = bcrypt.GenerateFromPassword([]byte(randomToken()[:32]), bcrypt.DefaultCost)
	})
	return s.dummy
}

// serve routes a request of p.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, p principal) {
	_, pattern := s.mux.Handler(r)
	if pattern == "" {
		s.fail(w, r, s.noRoute(w, r))
		return
	}
	if need := s.roles[pattern]; p.role < need {
		s.fail(w, r, &apiError{http.StatusForbidden, codeForbidden,
			fmt.Sprintf("%s may not do this: it needs the %s role", p.name, need)})
		return
	}
	s.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
}

// noRoute tells a path that no route serves (404) from one served for
// other methods (405, with Allow).
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) error {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		return &apiError{http.StatusNotFound, codeNotFound, fmt.Sprintf("no admin endpoint %s", r.URL.Path)}
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	return &apiError{http.StatusMethodNotAllowed, codeMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s: use %s", r.Method, r.URL.Path, strings.Join(allow, " or "))}
}

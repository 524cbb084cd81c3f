package sandbox

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is the LinkedIn API simulator. Create it with New; serve its
// Handler yourself or call Serve / Run. All methods are safe for concurrent
// use.
type Server struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex // guards everything below up to faults
	st     *state
	convs  *conversionStore
	rng    *rand.Rand
	faults []*faultRule
	nextFt int
	rep    Reporting // reporting switches (spec §21.10)

	offset   atomic.Int64 // clock offset in ns, set by /_sandbox/clock
	counters counterSet
	reqlog   requestLog

	dirty    chan struct{} // one slot: state changed since the last save
	stop     chan struct{} // closed by Close: releases hung requests
	stopOnce sync.Once
	saveMu   sync.Mutex // serialises state file writes

	handler http.Handler

	// genericOnly makes conversionEvents skip its fast path. A test knob:
	// tests check that both paths answer alike.
	genericOnly bool
}

// New returns a Server for cfg with the seed state, the tokens of
// cfg.Tokens and, when cfg.StateFile exists, the state saved there. It
// validates cfg and returns every problem found; it starts no goroutine.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("sandbox config: %w", err)
	}
	rep, err := cfg.Reporting.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("sandbox config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:   cfg,
		rep:   rep,
		log:   log.With("component", "sandbox"),
		dirty: make(chan struct{}, 1),
		stop:  make(chan struct{}),
	}
	s.reqlog.max = cfg.MaxRequestLog
	s.reset()
	if cfg.StateFile != "" {
		if err := s.load(); err != nil {
			return nil, err
		}
	}
	s.handler = s.routes()
	return s, nil
}

// reset restores the seed state. It takes the lock itself.
func (s *Server) reset() {
	s.offset.Store(0)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st = seedState(s.cfg, now)
	for _, ts := range s.cfg.Tokens {
		s.st.addToken(s.cfg, ts, now)
	}
	s.convs = newConversionStore(s.cfg.MaxConversions, s.cfg.MaxDedupKeys, s.cfg.DedupWindow)
	s.rng = rand.New(rand.NewPCG(s.cfg.Seed, 0x5a4e_d80c))
	s.faults = nil
	s.counters.reset()
	s.reqlog.reset()
}

// Reset restores the seed state: seeded accounts, campaigns and rules, the
// tokens of Config.Tokens, no conversions, zero counters and rate windows,
// no faults, no request log, no clock offset, a re-seeded id generator.
// Tokens, accounts and campaigns added after New are dropped.
func (s *Server) Reset() {
	s.reset()
	s.markDirty()
}

// now is the sandbox clock: Config.Now plus the admin offset.
func (s *Server) now() time.Time {
	return s.cfg.Now().Add(time.Duration(s.offset.Load())).UTC()
}

// Now returns the sandbox clock (Config.Now plus any offset set through
// /_sandbox/clock).
func (s *Server) Now() time.Time { return s.now() }

// Handler returns the HTTP handler serving /rest/, /oauth/v2/ and
// /_sandbox/. It is the same handler on every call.
func (s *Server) Handler() http.Handler { return s.handler }

// Close releases requests held by hang faults. Call it before closing a
// test server that may hold hung requests; Serve calls it on shutdown.
func (s *Server) Close() { s.stopOnce.Do(func() { close(s.stop) }) }

// Run listens on addr and serves until ctx is done, as Serve.
func (s *Server) Run(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("sandbox listen %s: %w", addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves the Handler on ln until ctx is done, then shuts down with a
// five-second grace period, releases hung requests and saves the state file.
// It also writes the state file, throttled, whenever the state changes. It
// returns nil after a shutdown caused by ctx.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      s.cfg.MaxHang + time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	if s.cfg.StateFile != "" {
		wg.Go(func() { s.persistLoop(ctx) })
	}
	errc := make(chan error, 1)
	wg.Go(func() { errc <- hs.Serve(ln) })
	s.log.Info("sandbox serving", "addr", ln.Addr().String())
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		cancel()
	}
	s.Close()
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer scancel()
	if serr := hs.Shutdown(sctx); serr != nil && err == nil {
		err = fmt.Errorf("sandbox shutdown: %w", serr)
	}
	wg.Wait()
	if err == nil || errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if s.cfg.StateFile != "" {
		if serr := s.Save(); serr != nil {
			err = errors.Join(err, serr)
		}
	}
	return err
}

func (s *Server) markDirty() {
	select {
	case s.dirty <- struct{}{}:
	default:
	}
}

// persistLoop writes the state file after changes, at most once per
// StateInterval, until ctx is done.
func (s *Server) persistLoop(ctx context.Context) {
	t := time.NewTimer(s.cfg.StateInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.dirty:
		}
		if err := s.Save(); err != nil {
			s.log.Error("sandbox state save failed", "file", s.cfg.StateFile, "error", err)
		}
		t.Reset(s.cfg.StateInterval)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Save writes the state file now (atomically: temporary file, fsync,
// rename). It does nothing without Config.StateFile.
func (s *Server) Save() error {
	if s.cfg.StateFile == "" {
		return nil
	}
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.mu.Lock()
	p := persisted{Format: 1, State: s.st, Conversions: s.convs.selectConv(ConversionFilter{Duplicates: true}), NextSeq: s.convs.nextSeq}
	b, err := json.Marshal(p)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("encode sandbox state: %w", err)
	}
	tmp := s.cfg.StateFile + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("write sandbox state: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.cfg.StateFile)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write sandbox state %s: %w", s.cfg.StateFile, err)
	}
	return nil
}

// load replaces the seed state with the state file when it exists; the
// tokens of Config.Tokens are registered again on top of it.
func (s *Server) load() error {
	b, err := os.ReadFile(s.cfg.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read sandbox state: %w", err)
	}
	p, err := decodePersisted(b)
	if err != nil {
		return fmt.Errorf("read sandbox state %s: %w", s.cfg.StateFile, err)
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st = p.State
	for _, ts := range s.cfg.Tokens {
		if _, ok := s.st.Tokens[ts.Token]; !ok {
			s.st.addToken(s.cfg, ts, now)
		}
	}
	s.convs.restore(p.Conversions, p.NextSeq)
	return nil
}

// newUUID returns an X-LI-UUID value from the seeded generator.
func (s *Server) newUUID() string {
	var b [16]byte
	s.mu.Lock()
	for i := 0; i < 16; i += 8 {
		v := s.rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	s.mu.Unlock()
	return base64.StdEncoding.EncodeToString(b[:])
}

// randomToken returns a LinkedIn-looking token; the caller holds s.mu.
func (s *Server) randomToken(prefix string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	b := []byte(prefix)
	for range 40 {
		b = append(b, alphabet[s.rng.IntN(len(alphabet))])
	}
	return string(b)
}

// RandomToken returns a LinkedIn-looking random token (crypto/rand) that
// starts with prefix, e.g. "AQV" for access and "AQW" for refresh tokens.
func RandomToken(prefix string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var raw [40]byte
	_, _ = crand.Read(raw[:]) // never fails (crypto/rand documents it)
	b := []byte(prefix)
	for _, r := range raw {
		b = append(b, alphabet[int(r)%len(alphabet)])
	}
	return string(b)
}

// AddToken registers an access token (and optionally a refresh token) in
// the live state. It is dropped by Reset unless it is in Config.Tokens.
func (s *Server) AddToken(spec TokenSpec) error {
	if err := spec.check(); err != nil {
		return fmt.Errorf("add token: %w", err)
	}
	now := s.now()
	s.mu.Lock()
	s.st.addToken(s.cfg, spec, now)
	s.mu.Unlock()
	s.markDirty()
	return nil
}

// ExpireToken makes an access or refresh token expire now. It reports
// whether the token was known.
func (s *Server) ExpireToken(token string) bool {
	return s.changeToken(token, func(exp *time.Time, _ *bool, now time.Time) { *exp = now })
}

// RevokeToken revokes an access or refresh token. It reports whether the
// token was known.
func (s *Server) RevokeToken(token string) bool {
	return s.changeToken(token, func(_ *time.Time, rev *bool, _ time.Time) { *rev = true })
}

func (s *Server) changeToken(token string, f func(exp *time.Time, rev *bool, now time.Time)) bool {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	found := false
	if t, ok := s.st.Tokens[token]; ok {
		f(&t.ExpiresAt, &t.Revoked, now)
		found = true
	}
	if t, ok := s.st.Refresh[token]; ok {
		f(&t.ExpiresAt, &t.Revoked, now)
		found = true
	}
	if found {
		s.markDirty()
	}
	return found
}

// Account is an ad account to add with AddAccount.
type Account struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	Currency string `json:"currency,omitempty"` // default USD
	Status   string `json:"status,omitempty"`   // default ACTIVE
	// Role, when set, gives the member Member this role on the account.
	Role   string `json:"role,omitempty"`
	Member string `json:"member,omitempty"` // default "Xy12AbCd"
}

// AddAccount adds or replaces an ad account in the live state.
func (s *Server) AddAccount(a Account) error {
	if a.ID <= 0 {
		return fmt.Errorf("add account: id %d must be positive", a.ID)
	}
	if a.Role != "" && !validRoles[a.Role] {
		return fmt.Errorf("add account: role %q unknown", a.Role)
	}
	if a.Status != "" && !accountStatuses[a.Status] {
		return fmt.Errorf("add account: status %q unknown", a.Status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Accounts[a.ID] = &account{ID: a.ID, Name: orDefault(a.Name, "Ad account "+strconv.FormatInt(a.ID, 10)),
		Currency: orDefault(a.Currency, "USD"), Status: orDefault(a.Status, "ACTIVE"), Type: "BUSINESS", Reference: "urn:li:organization:1"}
	if a.Role != "" {
		id := orDefault(a.Member, DefaultMember)
		m, ok := s.st.Members[id]
		if !ok {
			m = &member{ID: id, FirstName: "Sandbox", LastName: "Member", Roles: map[int64]string{}}
			s.st.Members[id] = m
		}
		m.Roles[a.ID] = a.Role
	}
	s.markDirty()
	return nil
}

// Campaign is a campaign to add with AddCampaign.
type Campaign struct {
	ID      int64  `json:"id"`
	Account int64  `json:"account"` // default Config.AdAccount
	Name    string `json:"name"`
	Status  string `json:"status,omitempty"` // default ACTIVE
}

// AddCampaign adds or replaces a campaign of an existing account in the
// live state.
func (s *Server) AddCampaign(c Campaign) error {
	if c.ID <= 0 {
		return fmt.Errorf("add campaign: id %d must be positive", c.ID)
	}
	if c.Account == 0 {
		c.Account = s.cfg.AdAccount
	}
	if c.Status != "" && !campaignStatuses[c.Status] {
		return fmt.Errorf("add campaign: status %q unknown", c.Status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.st.Accounts[c.Account]
	if !ok {
		return fmt.Errorf("add campaign: account %d unknown", c.Account)
	}
	s.st.Campaigns[c.ID] = &campaign{ID: c.ID, Account: c.Account, CampaignGroup: 600000 + c.Account%100000,
		Name: orDefault(c.Name, "Campaign "+strconv.FormatInt(c.ID, 10)), Status: orDefault(c.Status, "ACTIVE"),
		Type: "SPONSORED_UPDATES", CostType: "CPM", DailyBudget: money{CurrencyCode: a.Currency, Amount: "50"}}
	s.markDirty()
	return nil
}

// SunsetVersion marks an API version as sunset from now on.
func (s *Server) SunsetVersion(v string) {
	s.mu.Lock()
	s.st.Sunset[v] = true
	s.mu.Unlock()
	s.markDirty()
}

// Conversions returns copies of the accepted conversions matching f, oldest
// first.
func (s *Server) Conversions(f ConversionFilter) []Conversion {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.convs.selectConv(f)
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// ---- HTTP plumbing ----

// bufWriter buffers a handler's answer so that faults can act after the
// handler ran and the request log can record it.
type bufWriter struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (b *bufWriter) Header() http.Header { return b.h }
func (b *bufWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}
func (b *bufWriter) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

// call is one request to a LinkedIn endpoint.
type call struct {
	s        *Server
	w        *bufWriter
	r        *http.Request
	body     []byte
	endpoint string   // e.g. "conversionEvents", "oauth.accessToken"
	params   []string // path parameters, escaped
	now      time.Time
	token    string // bearer token, once authenticated
	tok      accessToken
	version  string
	reason   string // rejection reason for the counters
}

// marshal encodes v without HTML escaping, so messages keep the client's
// characters.
func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("sandbox: encode %T: %v", v, err)) // programmer error: fixed types only
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func (c *call) json(status int, v any) {
	c.w.Header().Set("Content-Type", "application/json")
	c.w.WriteHeader(status)
	_, _ = c.w.Write(marshal(v))
}

func (c *call) empty(status int) { c.w.WriteHeader(status) }

// fail answers an error and records the rejection reason.
func (c *call) fail(reason string, status int, v any) {
	c.reason = reason
	c.json(status, v)
}

// apiError is the Rest.li gateway error body (spec §5), keys in the spec's
// order.
type apiError struct {
	Status           int    `json:"status"`
	ServiceErrorCode int    `json:"serviceErrorCode,omitempty"`
	Code             string `json:"code,omitempty"`
	Message          string `json:"message"`
}

// msgError is the validation body whose keys LinkedIn sends message first.
type msgError struct {
	Message string `json:"message"`
	Status  int    `json:"status"`
}

// emptyTokenError is LinkedIn's documented empty-token body.
type emptyTokenError struct {
	Message          string `json:"message"`
	ServiceErrorCode int    `json:"serviceErrorCode"`
	Status           int    `json:"status"`
}

func (c *call) badRequest(msg string) {
	c.fail(reasonBadRequest, http.StatusBadRequest, apiError{Status: 400, Message: msg})
}

func (c *call) notFound(msg string) {
	c.fail(reasonNotFound, http.StatusNotFound, apiError{Status: 404, Message: msg})
}

// forbidden answers 403 ACCESS_DENIED for resource.METHOD (spec §7).
func (c *call) forbidden(resource, method string) {
	c.fail(reasonPermission, http.StatusForbidden, apiError{Status: 403, ServiceErrorCode: 100, Code: "ACCESS_DENIED",
		Message: "Not enough permissions to access: " + resource + "." + method + "." + c.version + "01"})
}

// gateway runs the authentication and version checks of spec §7 (steps 2
// and 3). It reports false when it has answered.
func (c *call) gateway() bool {
	h := c.r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(h, "bearer ")
	}
	tok = strings.TrimSpace(tok)
	if !ok || tok == "" {
		c.fail(reasonAuth, http.StatusUnauthorized, emptyTokenError{Message: "Empty oauth2_access_token", ServiceErrorCode: 401, Status: 401})
		return false
	}
	c.s.mu.Lock()
	t, known := c.s.st.Tokens[tok]
	if known {
		c.tok = *t
	}
	c.s.mu.Unlock()
	switch {
	case !known:
		c.fail(reasonAuth, http.StatusUnauthorized, apiError{Status: 401, ServiceErrorCode: 65600, Code: "INVALID_ACCESS_TOKEN", Message: "Invalid access token"})
		return false
	case c.tok.Revoked:
		c.fail(reasonAuth, http.StatusUnauthorized, apiError{Status: 401, ServiceErrorCode: 65601, Code: "REVOKED_ACCESS_TOKEN", Message: "The token used in the request has been revoked by the user"})
		return false
	case !c.now.Before(c.tok.ExpiresAt):
		c.fail(reasonAuth, http.StatusUnauthorized, apiError{Status: 401, ServiceErrorCode: 65602, Code: "EXPIRED_ACCESS_TOKEN", Message: "The token used in the request has expired"})
		return false
	}
	c.token = tok
	v := strings.TrimSpace(c.r.Header.Get("LinkedIn-Version"))
	if v == "" {
		c.fail(reasonVersion, http.StatusBadRequest, apiError{Status: 400, Code: "VERSION_MISSING",
			Message: "A version must be present. Please specify a version by adding the LinkedIn-Version header."})
		return false
	}
	if !c.s.versionActive(v, c.now) {
		shown := v
		if len(v) == 6 && isDigits(v) {
			shown = v + "01"
		}
		c.fail(reasonVersion, http.StatusUpgradeRequired, apiError{Status: 426, Code: "NONEXISTENT_VERSION",
			Message: "Requested version " + shown + " is not active"})
		return false
	}
	c.version = v
	return true
}

// versionActive applies the version rules documented on
// Config.LatestVersion.
func (s *Server) versionActive(v string, now time.Time) bool {
	if !versionRE.MatchString(v) {
		return false
	}
	latest := max(s.cfg.LatestVersion, now.Format("200601"))
	if v > latest {
		return false
	}
	y, _ := strconv.Atoi(v[:4])
	m, _ := strconv.Atoi(v[4:])
	sunset := time.Date(y+1, time.Month(m), 15, 0, 0, 0, 0, time.UTC)
	if !now.Before(sunset) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.st.Sunset[v]
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// hasScope reports whether the authenticated token carries scope.
func (c *call) hasScope(scope string) bool {
	for _, sc := range c.tok.Scopes {
		if sc == scope {
			return true
		}
	}
	return false
}

// rateLimit applies spec §11 for the authenticated token and reports false
// when it answered 429.
func (c *call) rateLimit(conv bool) bool {
	c.s.mu.Lock()
	v := c.s.st.take(c.s.cfg, c.token, conv, c.now)
	c.s.mu.Unlock()
	if !v.limited {
		return true
	}
	c.s.counters.rateLimited.Add(1)
	c.tooMany(v.day, v.retryAfter, c.s.cfg.SendRetryAfter)
	return false
}

func (c *call) tooMany(day bool, retryAfter int, sendRetryAfter bool) {
	msg := "Resource level throttle limit for calls to this resource is reached."
	if day {
		msg = "Resource level throttle APPLICATION_AND_MEMBER DAY limit for calls to this resource is reached."
	}
	if sendRetryAfter && retryAfter > 0 {
		c.w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	}
	c.fail(reasonRateLimit, http.StatusTooManyRequests, apiError{Status: 429, ServiceErrorCode: 101, Code: "TOO_MANY_REQUESTS", Message: msg})
}

// jsonContent checks the Content-Type of a JSON endpoint (spec §3.1) and
// reports false when it answered 415.
func (c *call) jsonContent() bool {
	ct := c.r.Header.Get("Content-Type")
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && mt == "application/json" {
		return true
	}
	c.fail(reasonRoute, http.StatusUnsupportedMediaType, apiError{Status: 415, Message: "Unsupported Media Type"})
	return false
}

// restliMethod returns the X-RestLi-Method header, upper-cased.
func (c *call) restliMethod() string {
	return strings.ToUpper(strings.TrimSpace(c.r.Header.Get("X-RestLi-Method")))
}

// decodeObject parses the body as a JSON object keeping numbers exact. It
// answers 400 and returns nil when the body is not a JSON object.
func (c *call) decodeObject() map[string]any {
	v, err := decodeJSON(c.body)
	m, ok := v.(map[string]any)
	if err != nil || !ok {
		c.badRequest("Unable to parse request body as JSON")
		return nil
	}
	return m
}

// decodeJSON decodes one JSON value with json.Number numbers and refuses
// trailing data.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after JSON value")
	}
	return v, nil
}

// decodeInto decodes b into v, keeping numbers exact in interfaces.
func decodeInto(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

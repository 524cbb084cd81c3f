package ingest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/stream"
)

// Appender stores events durably; *stream.Writer implements it. Once
// Append returns, whatever it returns, it must read nothing of evs: the
// handler then releases the request's body, whose pages the documents are
// in, for later requests to build theirs in (event.Body.Release).
type Appender interface {
	Append(ctx context.Context, evs []stream.Event) ([]stream.Result, error)
}

// Handler serves the tracking API under /v1/. It is safe for concurrent use.
type Handler struct {
	store   Appender
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics

	keys      atomic.Pointer[map[string]*source] // write key -> source; swapped by SetSources
	consent   []string                           // categories some destination requires
	publicURL *url.URL
	proxies   []netip.Prefix
	budget    *budget // request body bytes held at once; nil: no limit
}

type source struct {
	cfg     config.Source
	origins map[string]bool // nil: any origin
	limiter *rate.Limiter   // nil: no limit
	secret  []byte          // identity_verification.secret; nil: none (trust.go)
}

// Options are a Handler's dependencies.
type Options struct {
	Store Appender
	Log   *slog.Logger
	// Registry receives the ingest metrics; nil registers none.
	Registry prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// New returns a Handler for cfg's sources. cfg must have passed config.Load.
func New(cfg *config.Config, opt Options) (*Handler, error) {
	if opt.Store == nil {
		return nil, errors.New("ingest: no store")
	}
	h := &Handler{store: opt.Store, log: opt.Log, now: opt.Now}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.log = h.log.With("component", "ingest")
	if h.now == nil {
		h.now = time.Now
	}
	if cfg.Server.PublicURL != "" {
		u, err := url.Parse(cfg.Server.PublicURL)
		if err != nil {
			return nil, fmt.Errorf("ingest: public_url: %w", err)
		}
		h.publicURL = u
	}
	for _, p := range cfg.Server.TrustedProxies {
		if pr, err := netip.ParsePrefix(p); err == nil {
			h.proxies = append(h.proxies, pr)
		} else if a, err := netip.ParseAddr(p); err == nil {
			h.proxies = append(h.proxies, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	if err := h.SetSources(cfg); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, d := range cfg.Destinations {
		for _, c := range d.ConsentCategories {
			if !seen[c] {
				seen[c] = true
				h.consent = append(h.consent, c)
			}
		}
	}
	if len(cfg.Destinations) == 0 {
		h.consent = config.DefaultConsentCategories
	}
	h.budget = newBudget(cfg.Server.MaxInflightBodyBytes)
	h.metrics = newMetrics(opt.Registry, h.budget)
	return h, nil
}

// SetSources replaces the source table (write keys, origins, rate limits,
// identity verification, every setting of config.Source) with cfg's, at
// once: a request already past the write key lookup finishes with the old
// table. cfg must have passed config.Load. A source keeps its rate
// limiter's state when its name and rate_limit are unchanged. It is safe
// for concurrent use with ServeHTTP.
func (h *Handler) SetSources(cfg *config.Config) error {
	prev := map[string]*source{} // by name
	if old := h.keys.Load(); old != nil {
		for _, s := range *old {
			prev[s.cfg.Name] = s
		}
	}
	keys := map[string]*source{}
	for _, sc := range cfg.Sources {
		s := &source{cfg: sc}
		if len(sc.AllowedOrigins) > 0 {
			s.origins = map[string]bool{}
			for _, o := range sc.AllowedOrigins {
				s.origins[normalOrigin(o)] = true
			}
			if s.origins["*"] {
				s.origins = nil
			}
		}
		if iv := sc.IdentityVerification; iv != nil && iv.Secret != "" {
			s.secret = []byte(iv.Secret.Value())
		}
		if p := prev[sc.Name]; p != nil && p.cfg.RateLimit == sc.RateLimit {
			s.limiter = p.limiter
		} else if rl := sc.RateLimit; !rl.Disabled && rl.RequestsPerSecond > 0 {
			s.limiter = rate.NewLimiter(rate.Limit(rl.RequestsPerSecond), rl.Burst)
		}
		for _, k := range sc.Keys() {
			keys[k.Value()] = s
		}
	}
	h.keys.Store(&keys)
	return nil
}

// source returns the source of write key key, or nil.
func (h *Handler) source(key string) *source { return (*h.keys.Load())[key] }

// Root sends every /v1 path, RudderStack's /sourceConfig and every
// /beacon path to tracking and everything else to mux. http.ServeMux
// redirects unclean paths ("/v1//track" → 301), and a tracking path must
// never be answered with a redirect (§1.2).
func Root(tracking, mux http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isTrackingPath(r.URL.Path) {
			tracking.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// isTrackingPath reports whether path belongs to the tracking API: /v1 and
// below, /sourceConfig (with or without a final slash) and /beacon and below.
func isTrackingPath(path string) bool {
	for _, p := range []string{"/v1", "/beacon"} {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return path == sourceConfigPath || path == sourceConfigPath+"/"
}

// route is what a tracking path does.
type route struct {
	kind string     // "single", "batch", "metrics"
	typ  event.Type // for single
	name string     // endpoint label for metrics
}

// queryKey reports whether the route also takes the write key from the
// query's writeKey: RudderStack's beacon transport, which cannot set
// headers, puts it there.
func (rt route) queryKey() bool { return rt.name == "beacon" }

var routes = map[string]route{
	"/v1/track":    {"single", event.Track, "track"},
	"/v1/page":     {"single", event.Page, "page"},
	"/v1/identify": {"single", event.Identify, "identify"},
	"/v1/group":    {"single", event.Group, "group"},
	"/v1/alias":    {"single", event.Alias, "alias"},
	"/v1/screen":   {"single", event.Screen, "screen"},
	"/v1/t":        {"single", event.Track, "track"},
	"/v1/p":        {"single", event.Page, "page"},
	"/v1/i":        {"single", event.Identify, "identify"},
	"/v1/g":        {"single", event.Group, "group"},
	"/v1/a":        {"single", event.Alias, "alias"},
	"/v1/s":        {"single", event.Screen, "screen"},
	"/v1/batch":    {"batch", "", "batch"},
	"/v1/import":   {"batch", "", "batch"},
	"/v1/b":        {"batch", "", "batch"},
	"/v1/m":        {"metrics", "", "metrics"},
	// RudderStack's beacon transport (useBeacon: true): navigator.sendBeacon
	// posts {batch, sentAt} as text/plain with the key in the query.
	"/beacon/v1/batch": {"batch", "", "beacon"},
}

// ServeHTTP routes tracking requests: /v1/, RudderStack's /sourceConfig
// and /beacon/v1/batch. Paths are matched with and without a trailing
// slash; the query string is ignored, but for the write key of
// /sourceConfig and /beacon/v1/batch; no redirect is ever sent.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(r.URL.Path, "/")
	if key, ok := settingsKey(path); ok {
		h.settings(w, r, key)
		return
	}
	if path == sourceConfigPath || path == "/v1"+sourceConfigPath {
		h.sourceConfig(w, r)
		return
	}
	rt, ok := routes[path]
	cors(w, r)
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no tracking endpoint at %s", r.URL.Path))
		return
	}
	switch r.Method {
	case http.MethodOptions:
		preflight(w, r)
	case http.MethodPost:
		if rt.kind == "metrics" {
			h.discardMetrics(w, r)
			return
		}
		h.track(w, r, rt)
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("%s is not allowed on %s; use POST", r.Method, r.URL.Path))
	}
}

func settingsKey(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "/v1/projects/")
	if !ok {
		return "", false
	}
	key, ok := strings.CutSuffix(rest, "/settings")
	return key, ok && key != "" && !strings.Contains(key, "/")
}

// cors sets the headers every non-preflight response carries (§1.9).
func cors(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	if o := r.Header.Get("Origin"); o != "" {
		hd.Set("Access-Control-Allow-Origin", o)
		hd.Set("Access-Control-Allow-Credentials", "true")
	} else {
		hd.Set("Access-Control-Allow-Origin", "*")
	}
	hd.Set("Access-Control-Expose-Headers", "Retry-After, X-RateLimit-Reset")
	hd.Set("Vary", "Origin")
}

var fixedAllowHeaders = []string{"Authorization", "Content-Type", "Content-Encoding", "X-Retry-Count"}

// preflight answers a CORS preflight: never authenticated, always 204.
func preflight(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	allow := append([]string(nil), fixedAllowHeaders...)
	seen := map[string]bool{}
	for _, a := range allow {
		seen[strings.ToLower(a)] = true
	}
	for _, v := range r.Header.Values("Access-Control-Request-Headers") {
		for _, name := range strings.Split(v, ",") {
			name = strings.TrimSpace(name)
			if name != "" && validToken(name) && !seen[strings.ToLower(name)] {
				seen[strings.ToLower(name)] = true
				allow = append(allow, name)
			}
		}
	}
	hd.Set("Access-Control-Allow-Headers", strings.Join(allow, ", "))
	hd.Set("Access-Control-Max-Age", "7200")
	hd.Set("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
	w.WriteHeader(http.StatusNoContent)
}

func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// successBody is json.Marshal(okBody{Success: true}), the answer to nearly
// every tracking request.
const successBody = `{"success":true}`

// writeJSON writes v with the headers of §1.10.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var b []byte
	if ob, _ := v.(okBody); ob.Success && ob.Accepted == nil && ob.Duplicates == 0 && ob.Dropped == 0 && len(ob.Errors) == 0 {
		b = append(make([]byte, 0, len(successBody)+1), successBody...)
	} else {
		var err error
		if b, err = json.Marshal(v); err != nil {
			status, b = http.StatusInternalServerError, []byte(`{"success":false,"code":"internal_error","message":"cannot encode response"}`)
		}
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json; charset=utf-8")
	if hd.Get("Cache-Control") == "" {
		hd.Set("Cache-Control", "no-store")
	}
	hd.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

type errorBody struct {
	Success bool   `json:"success"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{Code: code, Message: msg})
}

// okBody is the 200 answer; counters appear only when something was not
// simply accepted (§1.5).
type okBody struct {
	Success    bool        `json:"success"`
	Accepted   *int        `json:"accepted,omitempty"`
	Duplicates int         `json:"duplicates,omitempty"`
	Dropped    int         `json:"dropped,omitempty"`
	Errors     []dropEntry `json:"errors,omitempty"`
}

type dropEntry struct {
	Index     int    `json:"index"`
	MessageID string `json:"messageId,omitempty"`
	Code      string `json:"code"`
	Message   string `json:"message"`
}

func (h *Handler) discardMetrics(w http.ResponseWriter, r *http.Request) {
	buf := bodyPool.Get().(*bytes.Buffer)
	var held int64
	defer func() { h.budget.give(held); putBody(buf) }()
	if _, rerr := h.readBody(w, r, event.MaxMetricsBytes, buf, &held); rerr != nil {
		writeError(w, rerr.status, rerr.code, rerr.msg)
		return
	}
	h.metrics.requests.WithLabelValues("", "metrics", "200").Inc()
	writeJSON(w, http.StatusOK, okBody{Success: true})
}

// writeKey resolves the write key (§1.4): Basic username, else bodyKey
// (the body's, or the query's where a route takes it from there).
func writeKey(r *http.Request, bodyKey string) string {
	if auth := r.Header.Get("Authorization"); len(auth) > 6 && strings.EqualFold(auth[:6], "basic ") {
		enc := strings.TrimSpace(auth[6:])
		dec, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			dec, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(enc, "="))
		}
		if err == nil {
			key, _, _ := strings.Cut(string(dec), ":")
			if key != "" {
				return key
			}
		}
	}
	return bodyKey
}

// track handles the single-event and batch endpoints.
func (h *Handler) track(w http.ResponseWriter, r *http.Request, rt route) {
	received := h.now()
	start := time.Now()
	src := ""
	status := http.StatusOK
	defer func() {
		h.metrics.requests.WithLabelValues(src, rt.name, strconv.Itoa(status)).Inc()
		h.metrics.duration.WithLabelValues(rt.name).Observe(time.Since(start).Seconds())
	}()
	fail := func(st int, code, msg string) {
		status = st
		writeError(w, st, code, msg)
	}

	buf := bodyPool.Get().(*bytes.Buffer)
	var held int64
	defer func() { h.budget.give(held); putBody(buf) }()
	raw, herr := h.readBody(w, r, event.MaxRequestBytes, buf, &held)
	if herr != nil {
		fail(herr.status, herr.code, herr.msg)
		return
	}
	var body *event.Body
	var rerr *event.RequestError
	if rt.kind == "single" {
		body, rerr = event.ParseSingle(raw)
	} else {
		body, rerr = event.ParseBatch(raw)
	}
	if rerr != nil {
		fail(http.StatusBadRequest, rerr.Code, rerr.Message)
		return
	}
	defer body.Release()

	bodyKey := body.WriteKey
	if rt.queryKey() {
		if q := r.URL.Query().Get("writeKey"); q != "" {
			bodyKey = q
		}
	}
	s, aerr := h.authenticate(r, writeKey(r, bodyKey))
	if s != nil {
		src = s.cfg.Name
	}
	if aerr != nil {
		fail(aerr.status, aerr.code, aerr.msg)
		return
	}
	if res := s.reserve(received); res != nil && res.DelayFrom(received) > 0 {
		// Over the limit: give the token back and say when to retry.
		wait := int(max(1, min(300, res.DelayFrom(received).Seconds()+0.999)))
		res.CancelAt(received)
		w.Header().Set("Retry-After", strconv.Itoa(wait))
		w.Header().Set("X-RateLimit-Reset", strconv.Itoa(wait))
		fail(http.StatusTooManyRequests, "rate_limited", fmt.Sprintf("source %s is over its rate limit; retry in %d s", s.cfg.Name, wait))
		return
	}

	req := &event.Request{ReceivedAt: received, ClientIP: h.clientIP(r), Envelope: body.Envelope}
	// The facts of the request, stored with each of its events.
	requestID := event.NewID()
	ua := r.Header.Get("User-Agent")
	var lfi string
	if c, err := r.Cookie(CookieName); err == nil && validLiFatID(c.Value) {
		lfi = c.Value
	}
	hasOrigin := r.Header.Get("Origin") != ""
	browser := s.browserTrust(hasOrigin)
	cookieSet := false
	resp := okBody{Success: true}
	re := getRequestEvents(len(body.Items))
	evs, ids := re.evs, re.ids // the events, and the item index of each
	defer func() { re.release(len(evs)) }()
	for i, item := range body.Items {
		if rt.kind == "batch" && len(item) > event.MaxEventBytes {
			resp.Errors = append(resp.Errors, dropEntry{Index: i, Code: event.CodeEventTooLarge,
				Message: fmt.Sprintf("event is %d bytes; the limit is %d", len(item), event.MaxEventBytes)})
			continue
		}
		derr := body.DepthError(i)
		var ev *event.Event
		if derr == nil {
			ev, derr = body.Normalize(i, rt.typ, req)
		}
		if derr != nil {
			resp.Errors = append(resp.Errors, dropEntry{Index: i, MessageID: peekMessageID(item), Code: derr.Code, Message: derr.Message})
			continue
		}
		switch {
		case lfi != "" && bytes.Contains(ev.JSON, []byte("categoryPreferences")) && h.denied(ev.JSON):
			// Consent withdrawn: forget the click id, for every event of
			// the request and in the browser.
			lfi = ""
			h.clearCookie(w, s)
			cookieSet = true
		case !cookieSet && hasOrigin && bytes.Contains(ev.JSON, []byte("li_fat_id")):
			cookieSet = h.setCookie(w, s, ev.JSON)
		}
		hash, doc, hashed := eventUserHash(ev)
		trust := s.trust(browser, ev.Type, ev.UserID, hash)
		if hashed && browser {
			result := "failed"
			if trust == stream.TrustVerified {
				result = "verified"
			}
			h.metrics.verifications.WithLabelValues(src, result).Inc()
		}
		evs = append(evs, stream.Event{
			Source: s.cfg.Name, Type: string(ev.Type), MessageID: ev.MessageID, Doc: doc,
			RequestID: requestID, UserAgent: ua, Trust: trust,
		})
		ids = append(ids, i)
	}
	if lfi != "" {
		for i := range evs {
			evs[i].LiFatID = lfi
		}
	}
	for _, e := range resp.Errors {
		h.metrics.events.WithLabelValues(src, "dropped").Inc()
		h.metrics.drops.WithLabelValues(src, e.Code).Inc()
		h.log.Debug("event dropped", "source", src, "index", e.Index, "message_id", e.MessageID, "code", e.Code)
	}

	appendStart := time.Now()
	results, err := h.store.Append(r.Context(), evs)
	if len(evs) > 0 {
		h.metrics.storeWait.WithLabelValues(rt.name).Observe(time.Since(appendStart).Seconds())
	}
	if err != nil {
		h.unavailable(w, src, err, &status)
		return
	}
	accepted := 0
	for i, res := range results {
		switch {
		case res.Err != nil:
			h.log.Warn("event not stored", "source", src, "index", ids[i], "error", res.Err)
			h.unavailable(w, src, res.Err, &status)
			return
		case res.Duplicate:
			resp.Duplicates++
		default:
			accepted++
		}
	}
	h.metrics.events.WithLabelValues(src, "accepted").Add(float64(accepted))
	h.metrics.events.WithLabelValues(src, "duplicate").Add(float64(resp.Duplicates))
	if resp.Duplicates > 0 || len(resp.Errors) > 0 {
		resp.Accepted = &accepted
		resp.Dropped = len(resp.Errors)
	}
	writeJSON(w, http.StatusOK, resp)
}

// requestEvents holds the events a request hands to the store and the
// item index of each, reused by later requests (requestEventsPool): the
// Appender reads nothing of them once Append returns, and a new slice of
// 100 events (16.8 KB, holding pointers) was a third of the bytes a batch
// request allocated.
type requestEvents struct {
	evs []stream.Event
	ids []int
}

var requestEventsPool sync.Pool

// maxPooledEvents is the most events a pooled requestEvents keeps room
// for: a rare large batch does not keep its slices in the pool.
const maxPooledEvents = 1000

// getRequestEvents returns empty slices with room for n events.
func getRequestEvents(n int) *requestEvents {
	re, _ := requestEventsPool.Get().(*requestEvents)
	if re == nil {
		re = &requestEvents{}
	}
	if cap(re.evs) < n {
		re.evs, re.ids = make([]stream.Event, 0, n), make([]int, 0, n)
	}
	return re
}

// release gives re back to the pool once the caller, which filled n
// events of it, is done with them: they are cleared, so that the pool
// keeps no request's strings and documents alive. The caller must not use
// the slices it got from re afterwards.
func (re *requestEvents) release(n int) {
	if cap(re.evs) > maxPooledEvents {
		return
	}
	clear(re.evs[:min(n, cap(re.evs))]) // n is at most its capacity: an event per item
	requestEventsPool.Put(re)
}

// authenticate finds the source of write key key and checks that it may
// send from r's Origin (§1.4). It returns the source whenever the key is
// known, and an error for a missing or unknown key, a disabled source or an
// origin not on the source's allow-list.
func (h *Handler) authenticate(r *http.Request, key string) (*source, *httpError) {
	s := h.source(key)
	switch {
	case key == "":
		return nil, &httpError{http.StatusUnauthorized, "missing_write_key", "no write key: send it as the HTTP Basic user name or as writeKey in the body"}
	case s == nil:
		return nil, &httpError{http.StatusUnauthorized, "invalid_write_key", "the write key is not known"}
	case s.cfg.Disabled:
		return s, &httpError{http.StatusForbidden, "source_disabled", fmt.Sprintf("source %s is disabled", s.cfg.Name)}
	}
	if o := r.Header.Get("Origin"); o != "" && !s.allowsOrigin(o) {
		return s, &httpError{http.StatusForbidden, "origin_not_allowed", fmt.Sprintf("origin %s is not allowed for source %s", o, s.cfg.Name)}
	}
	return s, nil
}

// allowsOrigin reports whether the source accepts requests from browser
// origin o.
func (s *source) allowsOrigin(o string) bool { return s.origins == nil || s.origins[normalOrigin(o)] }

func (h *Handler) unavailable(w http.ResponseWriter, src string, err error, status *int) {
	*status = http.StatusServiceUnavailable
	retry := "5"
	if errors.Is(err, context.Canceled) {
		retry = "1"
	}
	h.log.Warn("store unavailable", "source", src, "error", err)
	w.Header().Set("Retry-After", retry)
	writeError(w, http.StatusServiceUnavailable, "unavailable", "the event store is unavailable or overloaded; retry later")
}

// normalOrigin lower-cases an origin and drops a default port and a final
// slash, so "HTTPS://Www.Example.com:443/" matches the browser's
// "https://www.example.com".
func normalOrigin(o string) string {
	o = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(o), "/"))
	switch {
	case strings.HasPrefix(o, "https://"):
		o = strings.TrimSuffix(o, ":443")
	case strings.HasPrefix(o, "http://"):
		o = strings.TrimSuffix(o, ":80")
	}
	return o
}

// peekMessageID returns the messageId string of a raw event, for error reports.
func peekMessageID(raw []byte) string {
	var v struct {
		MessageID any `json:"messageId"`
	}
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	if s, ok := v.MessageID.(string); ok && len(s) <= event.MaxMessageIDLen {
		return s
	}
	return ""
}

// clientIP is the TCP peer, or the left-most untrusted X-Forwarded-For hop
// when the peer is a trusted proxy (§2.8).
func (h *Handler) clientIP(r *http.Request) string {
	peer := h.peer(r)
	if !peer.IsValid() {
		return ""
	}
	if !h.trusted(peer) {
		return peer.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		a = a.Unmap()
		if !h.trusted(a) {
			return a.String()
		}
		peer = a
	}
	return peer.String()
}

// peer returns the TCP peer address of r.
func (h *Handler) peer(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// reserve takes a token from the source's limiter (nil without a limit).
func (s *source) reserve(now time.Time) *rate.Reservation {
	if s.limiter == nil {
		return nil
	}
	return s.limiter.ReserveN(now, 1)
}

func (h *Handler) trusted(a netip.Addr) bool {
	for _, p := range h.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

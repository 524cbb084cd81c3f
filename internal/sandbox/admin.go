package sandbox

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Rejection reasons counted in Counters.Rejected.
const (
	reasonRoute      = "route"
	reasonAuth       = "auth"
	reasonVersion    = "version"
	reasonPermission = "permission"
	reasonRateLimit  = "rate_limit"
	reasonBadRequest = "bad_request"
	reasonSchema     = "schema"
	reasonBusiness   = "business"
	reasonNotFound   = "not_found"
	reasonFault      = "fault"
)

var reasons = []string{reasonRoute, reasonAuth, reasonVersion, reasonPermission, reasonBadRequest, reasonSchema, reasonBusiness, reasonNotFound, reasonFault}

// Counters are the sandbox's counters since the last Reset, served by
// GET /_sandbox/counters with these stable keys.
type Counters struct {
	// Requests counts every request to a LinkedIn endpoint (/rest/,
	// /oauth/v2/); ConversionRequests those to /rest/conversionEvents.
	Requests           int64 `json:"requests"`
	ConversionRequests int64 `json:"conversion_requests"`
	// Batches counts accepted BATCH_CREATE requests.
	Batches int64 `json:"batches"`
	// Accepted counts stored conversion events, not counting duplicates.
	Accepted int64 `json:"accepted"`
	// Deduplicated counts events answered 201 but counted once because
	// their rule and eventId were seen before (spec §16).
	Deduplicated int64 `json:"deduplicated"`
	// Evicted counts accepted events dropped from read-back by retention.
	Evicted int64 `json:"evicted"`
	// RejectedEvents counts events in rejected requests or rejected
	// elements of partial batches.
	RejectedEvents int64 `json:"rejected_events"`
	// RateLimited counts requests refused with 429 by the rate limits (not
	// by injected faults).
	RateLimited int64 `json:"rate_limited"`
	// FaultsInjected counts fault-rule firings.
	FaultsInjected int64 `json:"faults_injected"`
	// Rejected counts requests answered with an error, by reason.
	Rejected RejectedCounters `json:"rejected"`
}

// RejectedCounters counts error answers by reason.
type RejectedCounters struct {
	Route      int64 `json:"route"`       // 404, 405, 415
	Auth       int64 `json:"auth"`        // 401 (and OAuth invalid_client)
	Version    int64 `json:"version"`     // 400 VERSION_MISSING, 426
	Permission int64 `json:"permission"`  // 403
	BadRequest int64 `json:"bad_request"` // other 400s, 413
	Schema     int64 `json:"schema"`      // 422
	Business   int64 `json:"business"`    // 400 business rules of conversion events
	NotFound   int64 `json:"not_found"`   // 404 of entities
	Fault      int64 `json:"fault"`       // answered by an injected fault
}

type counterSet struct {
	requests, conversionRequests, batches, accepted, deduplicated, evicted atomic.Int64
	rejectedEvents, rateLimited, faults                                    atomic.Int64
	rejected                                                               [9]atomic.Int64 // indexed like reasons
}

func (cs *counterSet) reset() {
	for _, c := range []*atomic.Int64{&cs.requests, &cs.conversionRequests, &cs.batches, &cs.accepted, &cs.deduplicated,
		&cs.evicted, &cs.rejectedEvents, &cs.rateLimited, &cs.faults} {
		c.Store(0)
	}
	for i := range cs.rejected {
		cs.rejected[i].Store(0)
	}
}

func (cs *counterSet) reject(reason string) {
	if i := slices.Index(reasons, reason); i >= 0 {
		cs.rejected[i].Add(1)
	}
}

// Counters returns a snapshot of the counters.
func (s *Server) Counters() Counters {
	cs := &s.counters
	r := func(reason string) int64 { return cs.rejected[slices.Index(reasons, reason)].Load() }
	return Counters{
		Requests: cs.requests.Load(), ConversionRequests: cs.conversionRequests.Load(), Batches: cs.batches.Load(),
		Accepted: cs.accepted.Load(), Deduplicated: cs.deduplicated.Load(), Evicted: cs.evicted.Load(),
		RejectedEvents: cs.rejectedEvents.Load(), RateLimited: cs.rateLimited.Load(), FaultsInjected: cs.faults.Load(),
		Rejected: RejectedCounters{Route: r(reasonRoute), Auth: r(reasonAuth), Version: r(reasonVersion), Permission: r(reasonPermission),
			BadRequest: r(reasonBadRequest), Schema: r(reasonSchema), Business: r(reasonBusiness), NotFound: r(reasonNotFound), Fault: r(reasonFault)},
	}
}

// RequestRecord is one request to a LinkedIn endpoint, as logged for
// GET /_sandbox/requests.
type RequestRecord struct {
	Seq      int64       `json:"seq"`
	Time     int64       `json:"time"` // sandbox clock, ms
	Method   string      `json:"method"`
	Path     string      `json:"path"`
	Query    string      `json:"query,omitempty"`
	Endpoint string      `json:"endpoint,omitempty"`
	Headers  http.Header `json:"headers"`
	Body     string      `json:"body,omitempty"`
	// Status is 0 when no answer was sent (connection reset or hang).
	Status       int    `json:"status"`
	ResponseBody string `json:"response_body,omitempty"`
	// Truncated is set when Body or ResponseBody was cut to
	// Config.MaxRequestLogBody bytes.
	Truncated  bool    `json:"truncated,omitempty"`
	Fault      string  `json:"fault,omitempty"`
	DurationMS float64 `json:"duration_ms"`
}

type requestLog struct {
	mu    sync.Mutex
	max   int
	seq   int64
	items []RequestRecord
}

func (l *requestLog) reset() {
	l.mu.Lock()
	l.seq, l.items = 0, nil
	l.mu.Unlock()
}

func (s *Server) logRequest(c *call, start time.Time, fault string) {
	if s.cfg.MaxRequestLog < 0 {
		return
	}
	cut := func(b []byte) (string, bool) {
		if len(b) > s.cfg.MaxRequestLogBody {
			return string(b[:s.cfg.MaxRequestLogBody]), true
		}
		return string(b), false
	}
	body, t1 := cut(c.body)
	resp, t2 := cut(c.w.body.Bytes())
	status := c.w.status
	if status < 0 {
		status, resp = 0, ""
	} else if status == 0 {
		status = http.StatusOK
	}
	rec := RequestRecord{Time: c.now.UnixMilli(), Method: c.r.Method, Path: c.r.URL.Path, Query: c.r.URL.RawQuery,
		Endpoint: c.endpoint, Headers: c.r.Header.Clone(), Body: body, Status: status, ResponseBody: resp,
		Truncated: t1 || t2, Fault: fault, DurationMS: float64(time.Since(start).Microseconds()) / 1000}
	l := &s.reqlog
	l.mu.Lock()
	l.seq++
	rec.Seq = l.seq
	l.items = append(l.items, rec)
	if len(l.items) > l.max {
		l.items = slices.Delete(l.items, 0, len(l.items)-l.max)
	}
	l.mu.Unlock()
}

// Requests returns the logged requests, oldest first.
func (s *Server) Requests() []RequestRecord {
	s.reqlog.mu.Lock()
	defer s.reqlog.mu.Unlock()
	return slices.Clone(s.reqlog.items)
}

// AdvanceClock moves the sandbox clock by d (negative goes back).
func (s *Server) AdvanceClock(d time.Duration) {
	s.offset.Add(int64(d))
}

// ---- /_sandbox/ HTTP API ----

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(marshal(v), '\n'))
}

func adminErr(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// readAdmin decodes a small JSON request body into v; an empty body
// leaves v as is.
func readAdmin(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := readAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err == nil && len(bytes.TrimSpace(b)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		err = dec.Decode(v)
	}
	if err != nil {
		adminErr(w, http.StatusBadRequest, "invalid request body: "+err.Error())
		return false
	}
	return true
}

func readAll(r interface{ Read([]byte) (int, error) }) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

// adminEndpoints documents the inspection API; GET /_sandbox/ serves it.
var adminEndpoints = []string{
	"GET /_sandbox/conversions?rule=&account=&event_id=&since=&duplicates=true",
	"GET /_sandbox/records?rule=&account=&event_id=&since=",
	"GET /_sandbox/counters",
	"GET /_sandbox/requests?endpoint=&limit=",
	"GET /_sandbox/state",
	"POST /_sandbox/reset",
	"GET /_sandbox/tokens",
	"POST /_sandbox/tokens",
	"POST /_sandbox/tokens/{token}/expire",
	"POST /_sandbox/tokens/{token}/revoke",
	"GET /_sandbox/faults",
	"POST /_sandbox/faults",
	"DELETE /_sandbox/faults",
	"DELETE /_sandbox/faults/{id}",
	"GET /_sandbox/clock",
	"POST /_sandbox/clock",
	"GET /_sandbox/reporting",
	"POST /_sandbox/reporting",
	"POST /_sandbox/versions/{version}/sunset",
	"POST /_sandbox/accounts",
	"POST /_sandbox/campaigns",
}

func (s *Server) adminRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /_sandbox/{$}", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"endpoints": adminEndpoints})
	})
	mux.HandleFunc("GET /_sandbox/conversions", s.adminConversions(false))
	mux.HandleFunc("GET /_sandbox/records", s.adminConversions(true))
	mux.HandleFunc("GET /_sandbox/counters", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Counters())
	})
	mux.HandleFunc("GET /_sandbox/requests", s.adminRequests)
	mux.HandleFunc("GET /_sandbox/state", s.adminState)
	mux.HandleFunc("POST /_sandbox/reset", func(w http.ResponseWriter, _ *http.Request) {
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_sandbox/tokens", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"elements": s.tokenViews()})
	})
	mux.HandleFunc("POST /_sandbox/tokens", s.adminNewToken)
	mux.HandleFunc("POST /_sandbox/tokens/{token}/{op}", func(w http.ResponseWriter, r *http.Request) {
		var ok bool
		switch r.PathValue("op") {
		case "expire":
			ok = s.ExpireToken(r.PathValue("token"))
		case "revoke":
			ok = s.RevokeToken(r.PathValue("token"))
		default:
			adminErr(w, http.StatusNotFound, "unknown token operation "+r.PathValue("op"))
			return
		}
		if !ok {
			adminErr(w, http.StatusNotFound, "unknown token")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_sandbox/faults", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"elements": s.Faults()})
	})
	mux.HandleFunc("POST /_sandbox/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Fault
		if !readAdmin(w, r, &f) {
			return
		}
		id, err := s.AddFault(f)
		if err != nil {
			adminErr(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusCreated, map[string]string{"id": id})
	})
	mux.HandleFunc("DELETE /_sandbox/faults", func(w http.ResponseWriter, _ *http.Request) {
		s.RemoveFault("")
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /_sandbox/faults/{id}", func(w http.ResponseWriter, r *http.Request) {
		if !s.RemoveFault(r.PathValue("id")) {
			adminErr(w, http.StatusNotFound, "unknown fault")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_sandbox/clock", s.adminClock)
	mux.HandleFunc("POST /_sandbox/clock", s.adminClock)
	mux.HandleFunc("GET /_sandbox/reporting", s.adminReporting)
	mux.HandleFunc("POST /_sandbox/reporting", s.adminReporting)
	mux.HandleFunc("POST /_sandbox/versions/{version}/sunset", func(w http.ResponseWriter, r *http.Request) {
		v := r.PathValue("version")
		if !versionRE.MatchString(v) {
			adminErr(w, http.StatusBadRequest, "version must be YYYYMM")
			return
		}
		s.SunsetVersion(v)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_sandbox/accounts", func(w http.ResponseWriter, r *http.Request) {
		var a Account
		if !readAdmin(w, r, &a) {
			return
		}
		if err := s.AddAccount(a); err != nil {
			adminErr(w, http.StatusBadRequest, err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_sandbox/campaigns", func(w http.ResponseWriter, r *http.Request) {
		var c Campaign
		if !readAdmin(w, r, &c) {
			return
		}
		if err := s.AddCampaign(c); err != nil {
			adminErr(w, http.StatusBadRequest, err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// parseFilter reads the conversion filters of the query.
func parseFilter(r *http.Request) (ConversionFilter, error) {
	q := r.URL.Query()
	var f ConversionFilter
	var err error
	if v := q.Get("rule"); v != "" {
		if f.Rule, err = strconv.ParseInt(v, 10, 64); err != nil {
			if id, ok := parseURN(v, "urn:lla:llaPartnerConversion:"); ok {
				f.Rule, err = id, nil
			} else {
				return f, errors.New("rule: want a rule id")
			}
		}
	}
	if v := q.Get("account"); v != "" {
		if f.Account, err = strconv.ParseInt(v, 10, 64); err != nil {
			return f, errors.New("account: want an account id")
		}
	}
	f.EventID = q.Get("event_id")
	if v := q.Get("since"); v != "" {
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
			f.Since = time.UnixMilli(ms)
		} else if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			f.Since = t
		} else {
			return f, errors.New("since: want epoch ms or RFC 3339")
		}
	}
	f.Duplicates = q.Get("duplicates") == "true"
	return f, nil
}

// adminConversions serves /_sandbox/conversions (bodies exactly as
// received) and /_sandbox/records (with metadata, duplicates included).
func (s *Server) adminConversions(records bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := parseFilter(r)
		if err != nil {
			adminErr(w, http.StatusBadRequest, err.Error())
			return
		}
		if records {
			f.Duplicates = true
		}
		convs := s.Conversions(f)
		w.Header().Set("Content-Type", "application/json")
		var buf bytes.Buffer
		buf.WriteString(`{"elements":[`)
		for i := range convs {
			if i > 0 {
				buf.WriteByte(',')
			}
			if records {
				buf.Write(marshal(convs[i]))
			} else {
				buf.Write(convs[i].Body) // verbatim: valid JSON as received
			}
		}
		buf.WriteString("]}\n")
		_, _ = w.Write(buf.Bytes())
	}
}

func (s *Server) adminRequests(w http.ResponseWriter, r *http.Request) {
	reqs := s.Requests()
	q := r.URL.Query()
	if ep := q.Get("endpoint"); ep != "" {
		reqs = slices.DeleteFunc(reqs, func(rr RequestRecord) bool { return rr.Endpoint != ep })
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			adminErr(w, http.StatusBadRequest, "limit: want a non-negative integer")
			return
		}
		if len(reqs) > n {
			reqs = reqs[len(reqs)-n:]
		}
	}
	if reqs == nil {
		reqs = []RequestRecord{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"elements": reqs})
}

// tokenView is a token as shown by /_sandbox/tokens and /_sandbox/state.
type tokenView struct {
	Token     string   `json:"token"`
	Kind      string   `json:"kind"` // access or refresh
	Member    string   `json:"member"`
	Scopes    []string `json:"scopes"`
	IssuedAt  int64    `json:"issued_at"` // ms
	ExpiresAt int64    `json:"expires_at"`
	Status    string   `json:"status"` // active, expired or revoked
}

func (s *Server) tokenViews() []tokenView {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []tokenView{}
	for _, t := range s.st.Tokens {
		out = append(out, tokenView{Token: t.Token, Kind: "access", Member: t.Member, Scopes: t.Scopes, IssuedAt: t.IssuedAt.UnixMilli(),
			ExpiresAt: t.ExpiresAt.UnixMilli(), Status: tokenStatus(t.Revoked, t.ExpiresAt, now)})
	}
	for _, t := range s.st.Refresh {
		out = append(out, tokenView{Token: t.Token, Kind: "refresh", Member: t.Member, Scopes: t.Scopes, IssuedAt: t.AuthorizedAt.UnixMilli(),
			ExpiresAt: t.ExpiresAt.UnixMilli(), Status: tokenStatus(t.Revoked, t.ExpiresAt, now)})
	}
	slices.SortFunc(out, func(a, b tokenView) int {
		if a.Kind != b.Kind {
			return cmp.Compare(a.Kind, b.Kind)
		}
		return cmp.Compare(a.Token, b.Token)
	})
	return out
}

// newTokenRequest is the body of POST /_sandbox/tokens.
type newTokenRequest struct {
	Token     string   `json:"token"`      // default: generated
	AdAccount int64    `json:"ad_account"` // default Config.AdAccount
	Member    string   `json:"member"`
	Role      string   `json:"role"`
	Scopes    []string `json:"scopes"`
	ExpiresIn int64    `json:"expires_in"` // seconds, default 60 days
	// RefreshToken registers this refresh token; Refresh generates one.
	RefreshToken string `json:"refresh_token"`
	Refresh      bool   `json:"refresh"`
}

func (s *Server) adminNewToken(w http.ResponseWriter, r *http.Request) {
	var req newTokenRequest
	if !readAdmin(w, r, &req) {
		return
	}
	if req.ExpiresIn < 0 {
		adminErr(w, http.StatusBadRequest, "expires_in must be non-negative")
		return
	}
	spec := TokenSpec{Token: req.Token, AdAccount: req.AdAccount, Member: req.Member, Role: req.Role, Scopes: req.Scopes,
		TTL: time.Duration(req.ExpiresIn) * time.Second, RefreshToken: req.RefreshToken}
	s.mu.Lock()
	if spec.Token == "" {
		spec.Token = s.randomToken("AQV")
	}
	if spec.RefreshToken == "" && req.Refresh {
		spec.RefreshToken = s.randomToken("AQW")
	}
	s.mu.Unlock()
	if err := s.AddToken(spec); err != nil {
		adminErr(w, http.StatusBadRequest, err.Error())
		return
	}
	now := s.now()
	ttl := spec.TTL
	if ttl == 0 {
		ttl = AccessTokenTTL
	}
	writeJSON(w, http.StatusCreated, map[string]any{"access_token": spec.Token, "expires_at": now.Add(ttl).UnixMilli(),
		"refresh_token": spec.RefreshToken})
}

func (s *Server) adminClock(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		var req struct {
			Now     *int64   `json:"now"` // ms
			Advance Duration `json:"advance"`
		}
		if !readAdmin(w, r, &req) {
			return
		}
		if req.Now != nil {
			s.offset.Store(int64(time.UnixMilli(*req.Now).Sub(s.cfg.Now())))
		}
		s.AdvanceClock(time.Duration(req.Advance))
	}
	writeJSON(w, http.StatusOK, map[string]int64{"now": s.now().UnixMilli(), "offset_ms": time.Duration(s.offset.Load()).Milliseconds()})
}

func (s *Server) adminState(w http.ResponseWriter, _ *http.Request) {
	now := s.now()
	tokens := s.tokenViews()
	s.mu.Lock()
	accts := make([]*account, 0, len(s.st.Accounts))
	for _, a := range s.st.Accounts {
		accts = append(accts, a)
	}
	slices.SortFunc(accts, func(a, b *account) int { return cmp.Compare(a.ID, b.ID) })
	camps := make([]*campaign, 0, len(s.st.Campaigns))
	for _, c := range s.st.Campaigns {
		camps = append(camps, c)
	}
	slices.SortFunc(camps, func(a, b *campaign) int { return cmp.Compare(a.ID, b.ID) })
	rules := []ruleView{}
	for _, id := range s.st.RuleOrder {
		if r := s.st.Rules[id]; r != nil {
			rules = append(rules, s.settledView(r, now))
		}
	}
	members := make([]*member, 0, len(s.st.Members))
	for _, m := range s.st.Members {
		members = append(members, m)
	}
	slices.SortFunc(members, func(a, b *member) int { return cmp.Compare(a.ID, b.ID) })
	rate := map[string]rateWindows{}
	for t, rw := range s.st.rate {
		rate[t] = *rw
	}
	sunset := []string{}
	for v := range s.st.Sunset {
		sunset = append(sunset, v)
	}
	slices.Sort(sunset)
	body := marshal(map[string]any{"now": now.UnixMilli(), "accounts": accts, "campaigns": camps, "members": members,
		"rules": rules, "tokens": tokens, "rate_limits": rate, "sunset_versions": sunset, "conversions": s.convs.len()})
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(body, '\n'))
}

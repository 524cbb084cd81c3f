package sandbox

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
)

// route is one LinkedIn resource path. Segments equal to "*" match any one
// path segment, passed to the handler as a parameter.
type route struct {
	segs     []string
	endpoint string
	methods  map[string]func(*call)
}

func (s *Server) apiRoutes() []route {
	return []route{
		{segs: []string{"rest", "conversionEvents"}, endpoint: "conversionEvents", methods: map[string]func(*call){http.MethodPost: s.conversionEvents}},
		{segs: []string{"rest", "conversions"}, endpoint: "conversions", methods: map[string]func(*call){http.MethodPost: s.createRule, http.MethodGet: s.listRules}},
		{segs: []string{"rest", "conversions", "*"}, endpoint: "conversions", methods: map[string]func(*call){http.MethodGet: s.getRule, http.MethodPost: s.updateRule}},
		{segs: []string{"rest", "campaignConversions"}, endpoint: "campaignConversions", methods: map[string]func(*call){http.MethodPut: s.associateBatch}},
		{segs: []string{"rest", "campaignConversions", "*"}, endpoint: "campaignConversions", methods: map[string]func(*call){http.MethodPut: s.associateOne}},
		{segs: []string{"rest", "adAccountUsers"}, endpoint: "adAccountUsers", methods: map[string]func(*call){http.MethodGet: s.accountUsers}},
		{segs: []string{"rest", "adAccounts"}, endpoint: "adAccounts", methods: map[string]func(*call){http.MethodGet: s.searchAccounts}},
		{segs: []string{"rest", "adAccounts", "*", "adCampaigns"}, endpoint: "adCampaigns", methods: map[string]func(*call){http.MethodGet: s.searchCampaigns}},
		{segs: []string{"rest", "me"}, endpoint: "me", methods: map[string]func(*call){http.MethodGet: s.me}},
		{segs: []string{"rest", "adAnalytics"}, endpoint: "adAnalytics", methods: map[string]func(*call){http.MethodGet: s.adAnalytics}},
		{segs: []string{"oauth", "v2", "authorization"}, endpoint: "oauth.authorization", methods: map[string]func(*call){http.MethodGet: s.authorize}},
		{segs: []string{"oauth", "v2", "accessToken"}, endpoint: "oauth.accessToken", methods: map[string]func(*call){http.MethodPost: s.accessToken}},
		{segs: []string{"oauth", "v2", "introspectToken"}, endpoint: "oauth.introspectToken", methods: map[string]func(*call){http.MethodPost: s.introspect}},
	}
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	api := &apiHandler{s: s, routes: s.apiRoutes()}
	mux.Handle("/rest/", api)
	mux.Handle("/oauth/v2/", api)
	s.adminRoutes(mux)
	return mux
}

// apiHandler serves LinkedIn's endpoints: routing with LinkedIn's 404/405
// bodies, fault injection, the handler, then the request log.
type apiHandler struct {
	s      *Server
	routes []route
}

func (h *apiHandler) match(path string) (*route, []string) {
	p := strings.TrimSuffix(strings.TrimPrefix(path, "/"), "/")
	segs := strings.Split(p, "/")
outer:
	for i := range h.routes {
		rt := &h.routes[i]
		if len(rt.segs) != len(segs) {
			continue
		}
		var params []string
		for j, seg := range rt.segs {
			switch {
			case seg == "*" && segs[j] != "":
				params = append(params, segs[j])
			case seg != segs[j]:
				continue outer
			}
		}
		return rt, params
	}
	return nil, nil
}

func (h *apiHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := h.s
	start := time.Now()
	s.counters.requests.Add(1)
	rest := strings.HasPrefix(r.URL.Path, "/rest/")
	c := &call{s: s, w: &bufWriter{h: http.Header{}}, r: r, now: s.now()}
	c.w.Header().Set("X-LI-UUID", s.newUUID())
	if rest {
		c.w.Header().Set("X-Restli-Protocol-Version", "2.0.0")
	}
	body, berr := readBody(http.MaxBytesReader(nil, r.Body, s.cfg.MaxBodyBytes), min(r.ContentLength, s.cfg.MaxBodyBytes))
	c.body = body
	rt, params := h.match(r.URL.EscapedPath())
	var after *faultRule
	var faultName string
	switch {
	case rt == nil:
		c.fail(reasonRoute, http.StatusNotFound, apiError{Status: 404, Message: "No resource found for path " + r.URL.Path})
	case rt.methods[r.Method] == nil:
		c.fail(reasonRoute, http.StatusMethodNotAllowed, apiError{Status: 405, Message: "Method not allowed"})
	case berr != nil:
		if _, ok := errors.AsType[*http.MaxBytesError](berr); ok {
			c.fail(reasonBadRequest, http.StatusRequestEntityTooLarge, apiError{Status: 413, Message: "Request entity too large"})
		} else {
			c.badRequest("Unable to read request body")
		}
	default:
		c.endpoint, c.params = rt.endpoint, params
		if rt.endpoint == "conversionEvents" {
			s.counters.conversionRequests.Add(1)
		}
		var done bool
		after, faultName, done = s.applyFaults(c)
		if !done {
			rt.methods[r.Method](c)
		}
	}
	if after != nil {
		s.applyAfter(c, after)
	}
	s.counters.reject(c.reason)
	s.logRequest(c, start, faultName)
	if c.w.status == -1 {
		resetConn(w)
		return
	}
	for k, v := range c.w.Header() {
		w.Header()[k] = v
	}
	status := c.w.status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(c.w.body.Bytes())
	s.log.Debug("sandbox request", "method", r.Method, "endpoint", c.endpoint, "status", status)
}

// readBody is io.ReadAll, but for a known size (the Content-Length; -1 when
// unknown) it reads into one buffer of size+1 bytes, so that a body of the
// announced size needs no regrowing. The bytes and the error are io.ReadAll's.
func readBody(r io.Reader, size int64) ([]byte, error) {
	if size < 0 {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, size+1)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

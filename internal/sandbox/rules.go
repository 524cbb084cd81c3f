package sandbox

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ruleView is a conversion rule as LinkedIn renders it (spec §12.1).
type ruleView struct {
	ID                               int64            `json:"id"`
	Name                             string           `json:"name"`
	Account                          string           `json:"account"`
	ConversionMethod                 string           `json:"conversionMethod"`
	Type                             string           `json:"type"`
	Enabled                          bool             `json:"enabled"`
	AttributionType                  string           `json:"attributionType,omitempty"`
	PostClickAttributionWindowSize   int              `json:"postClickAttributionWindowSize,omitempty"`
	ViewThroughAttributionWindowSize int              `json:"viewThroughAttributionWindowSize,omitempty"`
	ValueType                        string           `json:"valueType,omitempty"`
	Value                            *money           `json:"value,omitempty"`
	AssociatedCampaigns              []associatedView `json:"associatedCampaigns"`
	Campaigns                        []string         `json:"campaigns"`
	URLRules                         []any            `json:"urlRules"`
	URLMatchRuleExpression           []any            `json:"urlMatchRuleExpression,omitempty"`
	ImagePixelTag                    string           `json:"imagePixelTag,omitempty"`
	Created                          int64            `json:"created"`
	LastModified                     int64            `json:"lastModified"`
	// Omitted until the rule's first accepted event (spec §22.2).
	LastCallbackAt             int64 `json:"lastCallbackAt,omitempty"`
	LatestFirstPartyCallbackAt int64 `json:"latestFirstPartyCallbackAt,omitempty"`
}

type associatedView struct {
	Campaign     string `json:"campaign"`
	Conversion   string `json:"conversion"`
	AssociatedAt int64  `json:"associatedAt"`
}

func (r *rule) view() ruleView {
	v := ruleView{ID: r.ID, Name: r.Name, Account: accountURN(r.Account), ConversionMethod: r.ConversionMethod, Type: r.Type,
		Enabled: r.Enabled, AttributionType: r.AttributionType, PostClickAttributionWindowSize: r.PostClick,
		ViewThroughAttributionWindowSize: r.ViewThrough, ValueType: r.ValueType, Value: r.Value,
		AssociatedCampaigns: []associatedView{}, Campaigns: []string{}, URLRules: []any{},
		ImagePixelTag: r.PixelTag, Created: r.Created, LastModified: r.LastModified,
		LastCallbackAt: r.LastCallback, LatestFirstPartyCallbackAt: r.FirstParty}
	if r.URLMatch != "" { // an Insight Tag URL rule (spec §22.1)
		m := map[string]string{"type": "STARTS_WITH", "matchValue": r.URLMatch}
		v.URLRules = []any{m}
		v.URLMatchRuleExpression = []any{[]any{m}}
	}
	for _, a := range r.Associations {
		v.AssociatedCampaigns = append(v.AssociatedCampaigns, associatedView{Campaign: campaignURN(a.Campaign), Conversion: ruleURN(r.ID), AssociatedAt: a.AssociatedAt})
		v.Campaigns = append(v.Campaigns, campaignURN(a.Campaign))
	}
	return v
}

// signal records an accepted event for r at ms (spec §22.4): visible at
// once, or after Config.RuleStatusDelay (settle). The caller holds s.mu.
func (s *Server) signal(r *rule, ms int64) {
	if s.cfg.RuleStatusDelay <= 0 {
		s.applySignal(r, ms)
		return
	}
	// One pending time per second is enough: coalesce into the newest,
	// and bound the list (a later time only delays visibility a little).
	if n := len(r.Pending); n > 0 && (ms-r.Pending[n-1] < 1000 || n >= maxPendingSignals) {
		r.Pending[n-1] = max(r.Pending[n-1], ms)
		return
	}
	r.Pending = append(r.Pending, ms)
}

// maxPendingSignals bounds a rule's pending signal times.
const maxPendingSignals = 4096

// applySignal makes ms r's newest signal in the fields that
// Config.RuleStatusUpdates names.
func (s *Server) applySignal(r *rule, ms int64) {
	switch s.cfg.RuleStatusUpdates {
	case RuleStatusBoth:
		r.LastCallback, r.FirstParty = max(r.LastCallback, ms), max(r.FirstParty, ms)
	case RuleStatusLastCallbackOnly:
		r.LastCallback = max(r.LastCallback, ms)
	case RuleStatusFirstPartyOnly:
		r.FirstParty = max(r.FirstParty, ms)
	}
}

// settledView returns r's view at now, its pending signals older than
// Config.RuleStatusDelay made visible first. The caller holds s.mu.
func (s *Server) settledView(r *rule, now time.Time) ruleView {
	cut := now.Add(-s.cfg.RuleStatusDelay).UnixMilli()
	i := 0
	for i < len(r.Pending) && r.Pending[i] <= cut {
		s.applySignal(r, r.Pending[i])
		i++
	}
	if i > 0 {
		r.Pending = append(r.Pending[:0], r.Pending[i:]...)
	}
	return r.view()
}

// ruleFields validates the settable fields of a rule body (create or
// $set), appending 422 lines to v and applying valid values to r. It
// returns the 400 message of the first window error, if any.
func ruleFields(v *validator, m map[string]any, r *rule) {
	if s, ok := v.str(m, "", "name", false, 0); ok {
		r.Name = s
	}
	if s, ok := v.str(m, "", "type", false, 0); ok {
		if ruleTypes[s] {
			r.Type = s
		} else {
			v.add("/type", render(s)+" is not an enum symbol")
		}
	}
	if x, ok := m["enabled"]; ok {
		if b, ok := x.(bool); ok {
			r.Enabled = b
		} else {
			v.add("/enabled", render(x)+" is not backed by a Boolean")
		}
	}
	if s, ok := v.str(m, "", "attributionType", false, 0); ok {
		if attributionTypes[s] {
			r.AttributionType = s
		} else {
			v.add("/attributionType", render(s)+" is not an enum symbol")
		}
	}
	for _, f := range []struct {
		key string
		dst *int
	}{{"postClickAttributionWindowSize", &r.PostClick}, {"viewThroughAttributionWindowSize", &r.ViewThrough}} {
		x, ok := m[f.key]
		if !ok {
			continue
		}
		n, ok := asLong(x)
		if !ok || n < -1<<31 || n >= 1<<31 {
			v.add("/"+f.key, render(x)+" cannot be coerced to Integer")
			continue
		}
		*f.dst = int(n)
	}
	if s, ok := v.str(m, "", "valueType", false, 0); ok {
		if valueTypes[s] {
			r.ValueType = s
		} else {
			v.add("/valueType", render(s)+" is not an enum symbol")
		}
	}
	if val, ok := v.obj(m, "", "value", false); ok {
		cur, ok1 := v.str(val, "/value", "currencyCode", true, 0)
		amt, ok2 := v.str(val, "/value", "amount", true, 0)
		if ok1 && ok2 {
			r.Value = &money{CurrencyCode: cur, Amount: amt}
		}
	}
}

// windowError checks the attribution windows against the rule type.
func windowError(r *rule) string {
	for _, w := range []struct {
		name string
		n    int
	}{{"postClickAttributionWindowSize", r.PostClick}, {"viewThroughAttributionWindowSize", r.ViewThrough}} {
		switch {
		case w.n == 1 || w.n == 7 || w.n == 30 || w.n == 90:
		case w.n == 365 && longWindowTypes[r.Type]:
		default:
			return fmt.Sprintf("Invalid %s %d for conversion type %s", w.name, w.n, r.Type)
		}
	}
	if r.Value != nil && (!currencyCodes[r.Value.CurrencyCode] || !isAmount(r.Value.Amount)) {
		return "Invalid value, must have an ISO 4217 currencyCode and a non-negative decimal amount"
	}
	return ""
}

// restGate runs the gateway, scope and rate-limit checks shared by the
// endpoints other than conversionEvents (spec §7 order: auth, version,
// permission by scope, rate limit).
func (c *call) restGate(scope, resource, method string) bool {
	if !c.gateway() {
		return false
	}
	if scope != "" && !c.hasScope(scope) {
		c.forbidden(resource, method)
		return false
	}
	return c.rateLimit(false)
}

// accountParam reads the required account query parameter.
func (c *call) accountParam() (int64, bool) {
	q := c.r.URL.Query()
	a := q.Get("account")
	if a == "" {
		c.badRequest("Missing required query parameter: account")
		return 0, false
	}
	id, ok := parseURN(a, "urn:li:sponsoredAccount:")
	if !ok {
		c.badRequest("Invalid value for query parameter account: " + a)
		return 0, false
	}
	return id, true
}

// canWrite reports whether the member has a qualifying role on acct.
func (c *call) canWrite(acct int64) bool {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return qualifyingRole(c.s.st.role(c.tok.Member, acct))
}

// newRuleID draws an unused rule id; the caller holds s.mu.
func (s *Server) newRuleID() int64 {
	for {
		id := 10_000_000 + s.rng.Int64N(90_000_000)
		if _, ok := s.st.Rules[id]; !ok {
			return id
		}
	}
}

// createRule serves POST /rest/conversions (spec §12.1).
func (s *Server) createRule(c *call) {
	if !c.restGate("rw_conversions", "conversions", "CREATE") || !c.jsonContent() {
		return
	}
	auto := c.r.URL.Query().Get("autoAssociationType")
	if auto != "" && auto != "ALL_CAMPAIGNS" {
		c.badRequest("Invalid value for query parameter autoAssociationType: " + auto)
		return
	}
	m := c.decodeObject()
	if m == nil {
		return
	}
	v := &validator{}
	r := &rule{Enabled: true, AttributionType: "LAST_TOUCH_BY_CAMPAIGN", PostClick: 30, ViewThrough: 7, Associations: []association{}}
	acctURN, _ := v.str(m, "", "account", true, 0)
	v.str(m, "", "name", true, 0)
	method, hasMethod := v.str(m, "", "conversionMethod", true, 0)
	if hasMethod && !conversionMethods[method] {
		v.add("/conversionMethod", render(method)+" is not an enum symbol")
	}
	v.str(m, "", "type", true, 0)
	ruleFields(v, m, r)
	if len(v.lines) > 0 {
		c.fail(reasonSchema, http.StatusUnprocessableEntity, msgError{Message: strings.Join(v.lines, ""), Status: 422})
		return
	}
	if method != "CONVERSIONS_API" {
		c.badRequest("Only CONVERSIONS_API conversion rules can be created through this API")
		return
	}
	acct, ok := parseURN(acctURN, "urn:li:sponsoredAccount:")
	if !ok {
		c.fail(reasonSchema, http.StatusUnprocessableEntity, msgError{Message: "ERROR :: /account :: " + render(acctURN) + " is not a valid sponsoredAccount Urn\n", Status: 422})
		return
	}
	s.mu.Lock()
	_, known := s.st.Accounts[acct]
	s.mu.Unlock()
	if !known || !c.canWrite(acct) {
		c.forbidden("conversions", "CREATE")
		return
	}
	if msg := windowError(r); msg != "" {
		c.badRequest(msg)
		return
	}
	r.Account, r.ConversionMethod = acct, method
	ms := c.now.UnixMilli()
	r.Created, r.LastModified = ms, ms
	s.mu.Lock()
	r.ID = s.newRuleID()
	if auto == "ALL_CAMPAIGNS" {
		ids := s.campaignIDs(acct)
		for _, id := range ids {
			r.Associations = append(r.Associations, association{Campaign: id, AssociatedAt: ms})
		}
	}
	s.st.Rules[r.ID] = r
	s.st.RuleOrder = append(s.st.RuleOrder, r.ID)
	view := r.view()
	s.mu.Unlock()
	s.markDirty()
	id := strconv.FormatInt(r.ID, 10)
	c.w.Header().Set("Location", "/conversions/"+id)
	c.w.Header().Set("x-restli-id", id)
	c.json(http.StatusCreated, view)
}

// campaignIDs lists an account's campaign ids in ascending order; the
// caller holds s.mu.
func (s *Server) campaignIDs(acct int64) []int64 {
	var ids []int64
	for id, cp := range s.st.Campaigns {
		if cp.Account == acct {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// lookupRule finds rule id of account acct for the entity endpoints and
// answers 403/404 itself.
func (c *call) lookupRule(method string) (*rule, int64, bool) {
	acct, ok := c.accountParam()
	if !ok {
		return nil, 0, false
	}
	if !c.canWrite(acct) {
		c.forbidden("conversions", method)
		return nil, 0, false
	}
	raw, _ := url.PathUnescape(c.params[0])
	id, err := strconv.ParseInt(raw, 10, 64)
	c.s.mu.Lock()
	r := c.s.st.Rules[id]
	c.s.mu.Unlock()
	if err != nil || r == nil || r.Account != acct {
		c.notFound("Conversion " + raw + " not found")
		return nil, 0, false
	}
	return r, acct, true
}

// getRule serves GET /rest/conversions/{id}?account= (spec §12.2).
func (s *Server) getRule(c *call) {
	if !c.restGate("rw_conversions", "conversions", "GET") {
		return
	}
	r, _, ok := c.lookupRule("GET")
	if !ok {
		return
	}
	s.mu.Lock()
	view := s.settledView(r, c.now)
	s.mu.Unlock()
	c.json(http.StatusOK, view)
}

// updateRule serves POST /rest/conversions/{id}?account= with
// PARTIAL_UPDATE (spec §12.4).
func (s *Server) updateRule(c *call) {
	if !c.restGate("rw_conversions", "conversions", "PARTIAL_UPDATE") {
		return
	}
	if c.restliMethod() != "PARTIAL_UPDATE" {
		c.badRequest("POST on an entity requires X-RestLi-Method: PARTIAL_UPDATE")
		return
	}
	if !c.jsonContent() {
		return
	}
	r, _, ok := c.lookupRule("PARTIAL_UPDATE")
	if !ok {
		return
	}
	m := c.decodeObject()
	if m == nil {
		return
	}
	patch, _ := m["patch"].(map[string]any)
	set, okSet := patch["$set"].(map[string]any)
	if patch == nil || (!okSet && patch["$set"] != nil) {
		c.badRequest(`PARTIAL_UPDATE requires a body of the form {"patch":{"$set":{...}}}`)
		return
	}
	for k := range patch {
		if k != "$set" {
			c.badRequest("Unsupported patch operation " + k)
			return
		}
	}
	settable := []string{"name", "type", "enabled", "attributionType", "postClickAttributionWindowSize", "viewThroughAttributionWindowSize", "valueType", "value"}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(settable, k) {
			c.badRequest("Field " + k + " cannot be updated")
			return
		}
	}
	s.mu.Lock()
	next := *r
	s.mu.Unlock()
	v := &validator{}
	ruleFields(v, set, &next)
	if len(v.lines) > 0 {
		c.fail(reasonSchema, http.StatusUnprocessableEntity, msgError{Message: strings.Join(v.lines, ""), Status: 422})
		return
	}
	if msg := windowError(&next); msg != "" {
		c.badRequest(msg)
		return
	}
	if len(set) > 0 {
		s.mu.Lock()
		cur := s.st.Rules[r.ID]
		next.Associations = cur.Associations // associations and signals may have changed meanwhile
		next.LastCallback, next.FirstParty, next.Pending = cur.LastCallback, cur.FirstParty, cur.Pending
		next.LastModified = c.now.UnixMilli()
		s.st.Rules[r.ID] = &next
		s.mu.Unlock()
		s.markDirty()
	}
	c.empty(http.StatusNoContent)
}

// paging reads start and count; it answers 400 on bad values.
func (c *call) paging(defCount, maxCount int) (start, count int, ok bool) {
	q := c.r.URL.Query()
	start, count = 0, defCount
	for _, p := range []struct {
		key string
		dst *int
	}{{"start", &start}, {"count", &count}} {
		if s := q.Get(p.key); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				c.badRequest("Invalid value for query parameter " + p.key + ": " + s)
				return 0, 0, false
			}
			*p.dst = n
		}
	}
	return start, min(count, maxCount), true
}

type pageLink struct {
	Type string `json:"type"`
	Rel  string `json:"rel"`
	Href string `json:"href"`
}

type paging struct {
	Start int        `json:"start"`
	Count int        `json:"count"`
	Links []pageLink `json:"links"`
	Total int        `json:"total"`
}

type page struct {
	Paging   paging `json:"paging"`
	Elements []any  `json:"elements"`
}

// project keeps only the fields listed in the fields query parameter.
func project(v any, fields string) any {
	if fields == "" {
		return v
	}
	var m map[string]any
	if err := decodeInto(marshal(v), &m); err != nil {
		return v
	}
	out := map[string]any{}
	for _, f := range strings.Split(fields, ",") {
		if x, ok := m[strings.TrimSpace(f)]; ok {
			out[strings.TrimSpace(f)] = x
		}
	}
	return out
}

// listRules serves GET /rest/conversions?q=account&account= (spec §12.3).
func (s *Server) listRules(c *call) {
	if !c.restGate("rw_conversions", "conversions", "FINDER") {
		return
	}
	q := c.r.URL.Query()
	if fq := q.Get("q"); fq != "account" {
		if fq == "" {
			c.badRequest("Missing required query parameter: q")
		} else {
			c.badRequest("Unsupported finder " + fq)
		}
		return
	}
	acct, ok := c.accountParam()
	if !ok {
		return
	}
	if !c.canWrite(acct) {
		c.forbidden("conversions", "FINDER")
		return
	}
	start, count, ok := c.paging(10, 100)
	if !ok {
		return
	}
	s.mu.Lock()
	var all []ruleView
	for _, id := range s.st.RuleOrder {
		if r := s.st.Rules[id]; r != nil && r.Account == acct {
			all = append(all, s.settledView(r, c.now))
		}
	}
	s.mu.Unlock()
	fields := q.Get("fields")
	p := page{Paging: paging{Start: start, Count: count, Links: []pageLink{}, Total: -1}, Elements: []any{}}
	for i := start; i < len(all) && i < start+count; i++ {
		p.Elements = append(p.Elements, project(all[i], fields))
	}
	if start+count < len(all) {
		href := fmt.Sprintf("/rest/conversions?q=account&account=%s&start=%d&count=%d", url.QueryEscape(accountURN(acct)), start+count, count)
		if fields != "" {
			href += "&fields=" + fields
		}
		p.Paging.Links = append(p.Paging.Links, pageLink{Type: "application/json", Rel: "next", Href: href})
	}
	c.json(http.StatusOK, p)
}

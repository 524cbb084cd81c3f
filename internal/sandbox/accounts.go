package sandbox

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// ---- campaignConversions (spec §13) ----

// assocKey is a decoded (campaign, conversion) compound key.
type assocKey struct {
	campaign, rule int64
}

// parseCompoundKey parses "(campaign:URN,conversion:URN)" with the URNs
// percent-encoded or not, keys in any order.
func parseCompoundKey(s string) (assocKey, bool) {
	inner, ok := strings.CutPrefix(s, "(")
	if !ok {
		return assocKey{}, false
	}
	inner, ok = strings.CutSuffix(inner, ")")
	if !ok {
		return assocKey{}, false
	}
	var k assocKey
	var seenC, seenR bool
	for _, part := range strings.Split(inner, ",") {
		name, val, ok := strings.Cut(part, ":")
		if !ok {
			return assocKey{}, false
		}
		dec, err := url.PathUnescape(val)
		if err != nil {
			return assocKey{}, false
		}
		switch name {
		case "campaign":
			k.campaign, seenC = parseURN(dec, "urn:li:sponsoredCampaign:")
		case "conversion":
			k.rule, seenR = parseURN(dec, "urn:lla:llaPartnerConversion:")
		default:
			return assocKey{}, false
		}
	}
	return k, seenC && seenR
}

// splitKeys splits "(a),(b)" at top-level commas.
func splitKeys(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

type assocBody struct {
	Campaign   string `json:"campaign"`
	Conversion string `json:"conversion"`
}

func (b assocBody) key() (assocKey, bool) {
	c, ok1 := parseURN(b.Campaign, "urn:li:sponsoredCampaign:")
	r, ok2 := parseURN(b.Conversion, "urn:lla:llaPartnerConversion:")
	return assocKey{c, r}, ok1 && ok2
}

// associate adds one association and returns the error status and body,
// or 0 on success. The caller holds s.mu.
func (s *Server) associate(c *call, k assocKey, method string) (int, apiError) {
	cp := s.st.Campaigns[k.campaign]
	if cp == nil {
		return 404, apiError{Status: 404, Message: "Campaign " + strconv.FormatInt(k.campaign, 10) + " not found"}
	}
	r := s.st.Rules[k.rule]
	if r == nil {
		return 404, apiError{Status: 404, Message: "Conversion " + strconv.FormatInt(k.rule, 10) + " not found"}
	}
	if !qualifyingRole(s.st.role(c.tok.Member, cp.Account)) || !qualifyingRole(s.st.role(c.tok.Member, r.Account)) {
		return 403, apiError{Status: 403, ServiceErrorCode: 100, Code: "ACCESS_DENIED",
			Message: "Not enough permissions to access: campaignConversions." + method + "." + c.version + "01"}
	}
	if cp.Account != r.Account {
		return 400, apiError{Status: 400, Message: "Campaign and conversion must belong to the same ad account"}
	}
	if !slices.ContainsFunc(r.Associations, func(a association) bool { return a.Campaign == k.campaign }) {
		r.Associations = append(r.Associations, association{Campaign: k.campaign, AssociatedAt: c.now.UnixMilli()})
		r.LastModified = c.now.UnixMilli()
	}
	return 0, apiError{}
}

func (c *call) requireRestli2() bool {
	if strings.TrimSpace(c.r.Header.Get("X-Restli-Protocol-Version")) != "2.0.0" {
		c.badRequest("Invalid key format: compound keys require X-Restli-Protocol-Version 2.0.0")
		return false
	}
	return true
}

func reasonFor(status int) string {
	switch status {
	case 403:
		return reasonPermission
	case 404:
		return reasonNotFound
	default:
		return reasonBadRequest
	}
}

// associateOne serves PUT /rest/campaignConversions/(campaign:…,conversion:…).
func (s *Server) associateOne(c *call) {
	if !c.restGate("rw_conversions", "campaignConversions", "UPDATE") || !c.requireRestli2() || !c.jsonContent() {
		return
	}
	k, ok := parseCompoundKey(c.params[0])
	if !ok {
		c.badRequest("Invalid key format: " + c.params[0])
		return
	}
	var b assocBody
	if err := decodeInto(c.body, &b); err != nil {
		c.badRequest("Unable to parse request body as JSON")
		return
	}
	if bk, ok := b.key(); !ok || bk != k {
		c.badRequest("Key fields do not match entity fields")
		return
	}
	s.mu.Lock()
	status, e := s.associate(c, k, "UPDATE")
	s.mu.Unlock()
	if status != 0 {
		c.fail(reasonFor(status), status, e)
		return
	}
	s.markDirty()
	c.empty(http.StatusNoContent)
}

// associateBatch serves PUT /rest/campaignConversions?ids=List(…).
func (s *Server) associateBatch(c *call) {
	if !c.restGate("rw_conversions", "campaignConversions", "BATCH_UPDATE") || !c.requireRestli2() || !c.jsonContent() {
		return
	}
	ids := c.r.URL.Query().Get("ids")
	inner, ok := strings.CutPrefix(ids, "List(")
	inner, ok2 := strings.CutSuffix(inner, ")")
	if !ok || !ok2 || inner == "" {
		c.badRequest("Missing or invalid query parameter ids: want ids=List((campaign:…,conversion:…),…)")
		return
	}
	want := map[assocKey]bool{}
	for _, ks := range splitKeys(inner) {
		k, ok := parseCompoundKey(ks)
		if !ok {
			c.badRequest("Invalid key format: " + ks)
			return
		}
		want[k] = true
	}
	var b struct {
		Entities map[string]assocBody `json:"entities"`
	}
	if err := decodeInto(c.body, &b); err != nil || b.Entities == nil {
		c.badRequest(`BATCH_UPDATE requires a body of the form {"entities":{...}}`)
		return
	}
	got := map[assocKey]bool{}
	names := make([]string, 0, len(b.Entities))
	keys := map[string]assocKey{}
	for name, ent := range b.Entities {
		k, ok := parseCompoundKey(name)
		if !ok {
			c.badRequest("Batch request mismatch: ids in URL and entities in body differ")
			return
		}
		if ek, ok := ent.key(); !ok || ek != k {
			c.badRequest("Key fields do not match entity fields")
			return
		}
		got[k] = true
		keys[name] = k
		names = append(names, name)
	}
	if len(got) != len(want) {
		c.badRequest("Batch request mismatch: ids in URL and entities in body differ")
		return
	}
	for k := range got {
		if !want[k] {
			c.badRequest("Batch request mismatch: ids in URL and entities in body differ")
			return
		}
	}
	slices.Sort(names)
	type status struct {
		Status int `json:"status"`
	}
	out := struct {
		Results map[string]status   `json:"results"`
		Errors  map[string]apiError `json:"errors"`
	}{map[string]status{}, map[string]apiError{}}
	s.mu.Lock()
	for _, name := range names {
		if st, e := s.associate(c, keys[name], "BATCH_UPDATE"); st != 0 {
			out.Errors[name] = e
		} else {
			out.Results[name] = status{Status: 204}
		}
	}
	s.mu.Unlock()
	if len(out.Results) > 0 {
		s.markDirty()
	}
	c.json(http.StatusOK, out)
}

// ---- ad accounts and campaigns (spec §14) ----

// accountUsers serves GET /rest/adAccountUsers?q=authenticatedUser.
func (s *Server) accountUsers(c *call) {
	if !c.restGate("r_ads", "adAccountUsers", "FINDER") {
		return
	}
	if q := c.r.URL.Query().Get("q"); q != "authenticatedUser" {
		c.finderError(q)
		return
	}
	type user struct {
		User    string `json:"user"`
		Account string `json:"account"`
		Role    string `json:"role"`
	}
	s.mu.Lock()
	m := s.st.Members[c.tok.Member]
	var accts []int64
	if m != nil {
		for id := range m.Roles {
			if _, ok := s.st.Accounts[id]; ok {
				accts = append(accts, id)
			}
		}
	}
	slices.Sort(accts)
	p := page{Paging: paging{Start: 0, Count: 2147483647, Links: []pageLink{}, Total: len(accts)}, Elements: []any{}}
	for _, id := range accts {
		p.Elements = append(p.Elements, user{User: "urn:li:person:" + m.ID, Account: accountURN(id), Role: m.Roles[id]})
	}
	s.mu.Unlock()
	c.json(http.StatusOK, p)
}

func (c *call) finderError(q string) {
	if q == "" {
		c.badRequest("Missing required query parameter: q")
	} else {
		c.badRequest("Unsupported finder " + q)
	}
}

// parseStatusSearch reads search=(status:(values:List(A,B))); an empty
// search selects every status. It returns the message of a 400 on error.
func parseStatusSearch(search string, allowed map[string]bool) (map[string]bool, string) {
	if search == "" {
		return nil, ""
	}
	inner, ok := strings.CutPrefix(search, "(status:(values:List(")
	inner, ok2 := strings.CutSuffix(inner, ")))")
	if !ok || !ok2 {
		return nil, "Invalid value for query parameter search: " + search
	}
	set := map[string]bool{}
	for _, v := range strings.Split(inner, ",") {
		v = strings.TrimSpace(v)
		if !allowed[v] {
			return nil, "Invalid status value " + v
		}
		set[v] = true
	}
	return set, ""
}

var searchAccountStatuses = setOf(`ACTIVE DRAFT CANCELED PAUSED`)

type accountView struct {
	ID        int64             `json:"id"`
	Name      string            `json:"name"`
	Currency  string            `json:"currency"`
	Status    string            `json:"status"`
	Type      string            `json:"type"`
	Reference string            `json:"reference"`
	Test      bool              `json:"test"`
	Version   map[string]string `json:"version"`
}

// searchAccounts serves GET /rest/adAccounts?q=search.
func (s *Server) searchAccounts(c *call) {
	if !c.restGate("r_ads", "adAccounts", "FINDER") {
		return
	}
	q := c.r.URL.Query()
	if fq := q.Get("q"); fq != "search" {
		c.finderError(fq)
		return
	}
	statuses, msg := parseStatusSearch(q.Get("search"), searchAccountStatuses)
	if msg != "" {
		c.badRequest(msg)
		return
	}
	start, count, ok := c.paging(1000, 1000)
	if !ok {
		return
	}
	s.mu.Lock()
	var all []accountView
	if m := s.st.Members[c.tok.Member]; m != nil {
		for id := range m.Roles {
			a := s.st.Accounts[id]
			if a != nil && (statuses == nil || statuses[a.Status]) {
				all = append(all, accountView{ID: a.ID, Name: a.Name, Currency: a.Currency, Status: a.Status, Type: a.Type,
					Reference: a.Reference, Test: a.Test, Version: map[string]string{"versionTag": "6"}})
			}
		}
	}
	s.mu.Unlock()
	slices.SortFunc(all, func(a, b accountView) int { return cmp.Compare(a.ID, b.ID) })
	p := page{Paging: paging{Start: start, Count: count, Links: []pageLink{}, Total: len(all)}, Elements: []any{}}
	for i := start; i < len(all) && i < start+count; i++ {
		p.Elements = append(p.Elements, all[i])
	}
	c.json(http.StatusOK, p)
}

type campaignView struct {
	ID            int64  `json:"id"`
	Name          string `json:"name"`
	Account       string `json:"account"`
	CampaignGroup string `json:"campaignGroup"`
	Status        string `json:"status"`
	Type          string `json:"type"`
	CostType      string `json:"costType"`
	DailyBudget   money  `json:"dailyBudget"`
}

// searchCampaigns serves GET /rest/adAccounts/{id}/adCampaigns?q=search.
func (s *Server) searchCampaigns(c *call) {
	if !c.restGate("r_ads", "adCampaigns", "FINDER") {
		return
	}
	acct, err := strconv.ParseInt(c.params[0], 10, 64)
	s.mu.Lock()
	_, known := s.st.Accounts[acct]
	role := s.st.role(c.tok.Member, acct)
	s.mu.Unlock()
	if err != nil || !known {
		c.notFound("Ad account " + c.params[0] + " not found")
		return
	}
	if role == "" {
		c.forbidden("adCampaigns", "FINDER")
		return
	}
	q := c.r.URL.Query()
	if fq := q.Get("q"); fq != "search" {
		c.finderError(fq)
		return
	}
	statuses, msg := parseStatusSearch(q.Get("search"), campaignStatuses)
	if msg != "" {
		c.badRequest(msg)
		return
	}
	start, count, ok := c.paging(10, 1000)
	if !ok {
		return
	}
	s.mu.Lock()
	var all []campaignView
	for _, id := range s.campaignIDs(acct) {
		cp := s.st.Campaigns[id]
		if statuses == nil || statuses[cp.Status] {
			all = append(all, campaignView{ID: cp.ID, Name: cp.Name, Account: accountURN(acct),
				CampaignGroup: "urn:li:sponsoredCampaignGroup:" + strconv.FormatInt(cp.CampaignGroup, 10),
				Status:        cp.Status, Type: cp.Type, CostType: cp.CostType, DailyBudget: cp.DailyBudget})
		}
	}
	s.mu.Unlock()
	fields := q.Get("fields")
	p := page{Paging: paging{Start: start, Count: count, Links: []pageLink{}, Total: len(all)}, Elements: []any{}}
	for i := start; i < len(all) && i < start+count; i++ {
		p.Elements = append(p.Elements, project(all[i], fields))
	}
	if start+count < len(all) {
		href := fmt.Sprintf("/rest/adAccounts/%d/adCampaigns?q=search", acct)
		if sr := q.Get("search"); sr != "" {
			href += "&search=" + sr
		}
		href += fmt.Sprintf("&start=%d&count=%d", start+count, count)
		if fields != "" {
			href += "&fields=" + fields
		}
		p.Paging.Links = append(p.Paging.Links, pageLink{Type: "application/json", Rel: "next", Href: href})
	}
	c.json(http.StatusOK, p)
}

// me serves GET /rest/me (spec §14.4) for any valid token.
func (s *Server) me(c *call) {
	if !c.restGate("", "me", "GET") {
		return
	}
	s.mu.Lock()
	m := s.st.Members[c.tok.Member]
	out := struct {
		ID        string `json:"id"`
		FirstName string `json:"localizedFirstName"`
		LastName  string `json:"localizedLastName"`
	}{ID: c.tok.Member}
	if m != nil {
		out.FirstName, out.LastName = m.FirstName, m.LastName
	}
	s.mu.Unlock()
	c.json(http.StatusOK, out)
}

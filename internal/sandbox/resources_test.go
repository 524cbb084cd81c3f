package sandbox

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

const acctQ = "account=urn%3Ali%3AsponsoredAccount%3A508747394"

func TestRouting(t *testing.T) {
	h := newHarness(t, Config{})
	tests := []struct {
		name, method, path string
		status             int
		want               string
	}{
		{"unknown path", "GET", "/rest/foo", 404, `{"status":404,"message":"No resource found for path /rest/foo"}`},
		{"wrong method", "GET", "/rest/conversionEvents", 405, `{"status":405,"message":"Method not allowed"}`},
		{"no delete on rules", "DELETE", "/rest/conversions/22833300?" + acctQ, 405, `{"status":405,"message":"Method not allowed"}`},
		{"trailing slash", "POST", "/rest/conversionEvents/", 201, ""},
		{"me", "GET", "/rest/me", 200, `{"id":"Xy12AbCd","localizedFirstName":"Sam","localizedLastName":"Admin"}`},
		{"unknown oauth path", "POST", "/oauth/v2/nope", 404, `{"status":404,"message":"No resource found for path /oauth/v2/nope"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(tc.method, tc.path, restHeaders(tok), ev(""))
			wantStatus(t, r, tc.status)
			wantBody(t, r, tc.want)
		})
	}
}

func TestRules(t *testing.T) {
	create := `{"name":"CAPI Purchase","account":"urn:li:sponsoredAccount:508747394","conversionMethod":"CONVERSIONS_API",
	  "postClickAttributionWindowSize":30,"viewThroughAttributionWindowSize":7,"attributionType":"LAST_TOUCH_BY_CAMPAIGN","type":"PURCHASE"}`
	tests := []struct {
		name    string
		token   string
		method  string
		path    string
		headers map[string]string
		body    string
		status  int
		want    string
		frag    string
	}{
		{name: "create missing name", method: "POST", path: "/rest/conversions",
			body:   `{"account":"urn:li:sponsoredAccount:508747394","conversionMethod":"CONVERSIONS_API","type":"PURCHASE"}`,
			status: 422, want: `{"message":"ERROR :: /name :: field is required but not found and has no default value\n","status":422}`},
		{name: "create bad type", method: "POST", path: "/rest/conversions", body: strings.Replace(create, `"PURCHASE"`, `"SIGNUP"`, 1),
			status: 422, want: `{"message":"ERROR :: /type :: \"SIGNUP\" is not an enum symbol\n","status":422}`},
		{name: "create 365 on sign up", method: "POST", path: "/rest/conversions",
			body:   strings.Replace(strings.Replace(create, `"PURCHASE"`, `"SIGN_UP"`, 1), `:30`, `:365`, 1),
			status: 400, want: `{"status":400,"message":"Invalid postClickAttributionWindowSize 365 for conversion type SIGN_UP"}`},
		{name: "create 365 on purchase", method: "POST", path: "/rest/conversions", body: strings.Replace(create, `:30`, `:365`, 1), status: 201},
		{name: "create window 14", method: "POST", path: "/rest/conversions", body: strings.Replace(create, `:7`, `:14`, 1),
			status: 400, want: `{"status":400,"message":"Invalid viewThroughAttributionWindowSize 14 for conversion type PURCHASE"}`},
		{name: "create insight tag rule", method: "POST", path: "/rest/conversions", body: strings.Replace(create, `"CONVERSIONS_API"`, `"INSIGHT_TAG_URL_MATCH_RULES"`, 1),
			status: 400, want: `{"status":400,"message":"Only CONVERSIONS_API conversion rules can be created through this API"}`},
		{name: "create unknown account", method: "POST", path: "/rest/conversions", body: strings.Replace(create, "508747394", "1", 1),
			status: 403, want: `{"status":403,"serviceErrorCode":100,"code":"ACCESS_DENIED","message":"Not enough permissions to access: conversions.CREATE.20260901"}`},
		{name: "create viewer account", method: "POST", path: "/rest/conversions", body: strings.Replace(create, "508747394", "508700001", 1), status: 403, frag: "conversions.CREATE"},
		{name: "create without scope", token: noScopeTok, method: "POST", path: "/rest/conversions", body: create, status: 403, frag: "conversions.CREATE"},
		{name: "create bad auto association", method: "POST", path: "/rest/conversions?autoAssociationType=SOME", body: create, status: 400, frag: "autoAssociationType"},
		{name: "get", method: "GET", path: "/rest/conversions/22833300?" + acctQ, status: 200, frag: `"id":22833300,"name":"CAPI-Page-View"`},
		{name: "get unencoded account", method: "GET", path: "/rest/conversions/22833300?account=urn:li:sponsoredAccount:508747394", status: 200},
		{name: "get missing account", method: "GET", path: "/rest/conversions/22833300", status: 400,
			want: `{"status":400,"message":"Missing required query parameter: account"}`},
		{name: "get unknown", method: "GET", path: "/rest/conversions/14488340?" + acctQ, status: 404, want: `{"status":404,"message":"Conversion 14488340 not found"}`},
		{name: "get rule of another account", method: "GET", path: "/rest/conversions/22800001?" + acctQ, status: 404, want: `{"status":404,"message":"Conversion 22800001 not found"}`},
		{name: "get in account without role", method: "GET", path: "/rest/conversions/22800001?account=urn%3Ali%3AsponsoredAccount%3A508700002", status: 403, frag: "conversions.GET.20260901"},
		{name: "update", method: "POST", path: "/rest/conversions/22833300?" + acctQ, headers: map[string]string{"X-RestLi-Method": "PARTIAL_UPDATE"},
			body: `{"patch":{"$set":{"name":"CAPI Purchase (EU)","postClickAttributionWindowSize":90,"enabled":true}}}`, status: 204},
		{name: "update empty set", method: "POST", path: "/rest/conversions/22833300?" + acctQ, headers: map[string]string{"X-RestLi-Method": "PARTIAL_UPDATE"},
			body: `{"patch":{"$set":{}}}`, status: 204},
		{name: "update without method header", method: "POST", path: "/rest/conversions/22833300?" + acctQ, body: `{"patch":{"$set":{}}}`,
			status: 400, want: `{"status":400,"message":"POST on an entity requires X-RestLi-Method: PARTIAL_UPDATE"}`},
		{name: "update account", method: "POST", path: "/rest/conversions/22833300?" + acctQ, headers: map[string]string{"X-RestLi-Method": "PARTIAL_UPDATE"},
			body: `{"patch":{"$set":{"account":"urn:li:sponsoredAccount:1"}}}`, status: 400, want: `{"status":400,"message":"Field account cannot be updated"}`},
		{name: "update 365 on key page view", method: "POST", path: "/rest/conversions/22833300?" + acctQ, headers: map[string]string{"X-RestLi-Method": "PARTIAL_UPDATE"},
			body: `{"patch":{"$set":{"viewThroughAttributionWindowSize":365}}}`, status: 400, frag: "Invalid viewThroughAttributionWindowSize 365 for conversion type KEY_PAGE_VIEW"},
		{name: "update bad enum", method: "POST", path: "/rest/conversions/22833300?" + acctQ, headers: map[string]string{"X-RestLi-Method": "PARTIAL_UPDATE"},
			body: `{"patch":{"$set":{"attributionType":"FIRST_TOUCH"}}}`, status: 422, frag: `/attributionType :: \"FIRST_TOUCH\" is not an enum symbol`},
		{name: "update unknown rule", method: "POST", path: "/rest/conversions/1?" + acctQ, headers: map[string]string{"X-RestLi-Method": "PARTIAL_UPDATE"},
			body: `{"patch":{"$set":{}}}`, status: 404},
		{name: "list bad finder", method: "GET", path: "/rest/conversions?q=name&" + acctQ, status: 400},
		{name: "list needs account", method: "GET", path: "/rest/conversions?q=account", status: 400, want: `{"status":400,"message":"Missing required query parameter: account"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			token := tc.token
			if token == "" {
				token = tok
			}
			r := h.do(tc.method, tc.path, merge(restHeaders(token), tc.headers), tc.body)
			wantStatus(t, r, tc.status)
			if tc.want != "" {
				wantBody(t, r, tc.want)
			}
			if tc.frag != "" && !strings.Contains(r.body, tc.frag) {
				t.Fatalf("body %s lacks %q", r.body, tc.frag)
			}
		})
	}
}

func TestRuleLifecycle(t *testing.T) {
	h := newHarness(t, Config{})
	body := `{"name":"CAPI Purchase","account":"urn:li:sponsoredAccount:508747394","conversionMethod":"CONVERSIONS_API",
	  "postClickAttributionWindowSize":30,"viewThroughAttributionWindowSize":7,"attributionType":"LAST_TOUCH_BY_CAMPAIGN","type":"PURCHASE"}`
	r := h.do("POST", "/rest/conversions", restHeaders(tok), body)
	wantStatus(t, r, 201)
	id := r.header.Get("x-restli-id")
	if id == "" || r.header.Get("Location") != "/conversions/"+id {
		t.Fatalf("headers %v", r.header)
	}
	want := `{"id":` + id + `,"name":"CAPI Purchase","account":"urn:li:sponsoredAccount:508747394","conversionMethod":"CONVERSIONS_API","type":"PURCHASE","enabled":true,"attributionType":"LAST_TOUCH_BY_CAMPAIGN","postClickAttributionWindowSize":30,"viewThroughAttributionWindowSize":7,"associatedCampaigns":[],"campaigns":[],"urlRules":[],"created":1767225600000,"lastModified":1767225600000}`
	wantBody(t, r, want)
	// Deterministic ids: the same seed gives the same id.
	h2 := newHarness(t, Config{})
	if r2 := h2.do("POST", "/rest/conversions", restHeaders(tok), body); r2.header.Get("x-restli-id") != id {
		t.Errorf("rule ids not deterministic: %s vs %s", r2.header.Get("x-restli-id"), id)
	}
	// Events for the new rule are accepted.
	wantStatus(t, h.sendEvent(tok, strings.Replace(ev("p1"), "22833300", id, 1)), 201)
	// Update, then read back.
	h.clock.Advance(60_000_000_000)
	r = h.do("POST", "/rest/conversions/"+id+"?"+acctQ, merge(restHeaders(tok), map[string]string{"X-RestLi-Method": "PARTIAL_UPDATE"}),
		`{"patch":{"$set":{"name":"CAPI Purchase (EU)","valueType":"FIXED","value":{"currencyCode":"EUR","amount":"10"}}}}`)
	wantStatus(t, r, 204)
	r = h.do("GET", "/rest/conversions/"+id+"?"+acctQ, restHeaders(tok), "")
	wantStatus(t, r, 200)
	for _, frag := range []string{`"name":"CAPI Purchase (EU)"`, `"valueType":"FIXED"`, `"value":{"currencyCode":"EUR","amount":"10"}`, `"lastModified":1767225660000`, `"created":1767225600000`} {
		if !strings.Contains(r.body, frag) {
			t.Errorf("get %s lacks %s", r.body, frag)
		}
	}
	// Auto association with every campaign of the account.
	r = h.do("POST", "/rest/conversions?autoAssociationType=ALL_CAMPAIGNS", restHeaders(tok), body)
	wantStatus(t, r, 201)
	if !strings.Contains(r.body, `"campaigns":["urn:li:sponsoredCampaign:435901","urn:li:sponsoredCampaign:435902","urn:li:sponsoredCampaign:435903","urn:li:sponsoredCampaign:435904"]`) {
		t.Errorf("auto association: %s", r.body)
	}
}

func TestListRulesPaging(t *testing.T) {
	h := newHarness(t, Config{})
	body := `{"name":"R","account":"urn:li:sponsoredAccount:508747394","conversionMethod":"CONVERSIONS_API","type":"LEAD"}`
	for range 3 {
		wantStatus(t, h.do("POST", "/rest/conversions", restHeaders(tok), body), 201)
	}
	// 2 seeded rules + 3 new ones, pages of 2.
	var ids []float64
	path := "/rest/conversions?q=account&" + acctQ + "&count=2&fields=id,name"
	for pages := 0; path != ""; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		r := h.do("GET", path, restHeaders(tok), "")
		wantStatus(t, r, 200)
		var p struct {
			Paging struct {
				Start, Count, Total int
				Links               []struct{ Rel, Href string }
			}
			Elements []map[string]any
		}
		if err := json.Unmarshal([]byte(r.body), &p); err != nil {
			t.Fatal(err)
		}
		if p.Paging.Total != -1 || p.Paging.Count != 2 {
			t.Errorf("paging %+v", p.Paging)
		}
		for _, e := range p.Elements {
			if len(e) != 2 {
				t.Errorf("projection kept %v", e)
			}
			ids = append(ids, e["id"].(float64))
		}
		path = ""
		if len(p.Paging.Links) > 0 {
			path = p.Paging.Links[0].Href
			if !strings.Contains(path, "fields=id,name") || !strings.Contains(path, "account=urn%3Ali%3AsponsoredAccount%3A508747394") {
				t.Errorf("next link %s", path)
			}
		}
	}
	if len(ids) != 5 || ids[0] != 22833300 || ids[1] != 1403456 {
		t.Errorf("listed ids %v", ids)
	}
}

func TestCampaignConversions(t *testing.T) {
	key := func(c, r string) string {
		return "(campaign:" + url.QueryEscape("urn:li:sponsoredCampaign:"+c) + ",conversion:" + url.QueryEscape("urn:lla:llaPartnerConversion:"+r) + ")"
	}
	k := "(campaign:urn%3Ali%3AsponsoredCampaign%3A435902,conversion:urn%3Alla%3AllaPartnerConversion%3A22833300)"
	entity := func(c, r string) string {
		return `{"campaign":"urn:li:sponsoredCampaign:` + c + `","conversion":"urn:lla:llaPartnerConversion:` + r + `"}`
	}
	tests := []struct {
		name    string
		token   string
		path    string
		headers map[string]string
		body    string
		status  int
		want    string
	}{
		{name: "associate", path: "/rest/campaignConversions/" + k, body: entity("435902", "22833300"), status: 204},
		{name: "associate unencoded", path: "/rest/campaignConversions/(campaign:urn:li:sponsoredCampaign:435902,conversion:urn:lla:llaPartnerConversion:22833300)",
			body: entity("435902", "22833300"), status: 204},
		{name: "idempotent", path: "/rest/campaignConversions/" + key("435901", "22833300"), body: entity("435901", "22833300"), status: 204},
		{name: "needs restli 2.0", path: "/rest/campaignConversions/" + k, headers: map[string]string{"X-Restli-Protocol-Version": "-"},
			body: entity("435902", "22833300"), status: 400, want: `{"status":400,"message":"Invalid key format: compound keys require X-Restli-Protocol-Version 2.0.0"}`},
		{name: "key and body differ", path: "/rest/campaignConversions/" + k, body: entity("435901", "22833300"), status: 400,
			want: `{"status":400,"message":"Key fields do not match entity fields"}`},
		{name: "unknown campaign", path: "/rest/campaignConversions/" + key("435999", "22833300"), body: entity("435999", "22833300"), status: 404,
			want: `{"status":404,"message":"Campaign 435999 not found"}`},
		{name: "unknown rule", path: "/rest/campaignConversions/" + key("435902", "999"), body: entity("435902", "999"), status: 404,
			want: `{"status":404,"message":"Conversion 999 not found"}`},
		{name: "campaign of an account without role", path: "/rest/campaignConversions/" + key("436001", "22833300"), body: entity("436001", "22833300"), status: 403,
			want: `{"status":403,"serviceErrorCode":100,"code":"ACCESS_DENIED","message":"Not enough permissions to access: campaignConversions.UPDATE.20260901"}`},
		{name: "different accounts", token: "multi", path: "/rest/campaignConversions/" + key("436001", "22833300"), body: entity("436001", "22833300"), status: 400,
			want: `{"status":400,"message":"Campaign and conversion must belong to the same ad account"}`},
		{name: "batch", path: "/rest/campaignConversions?ids=List(" + k + "," + key("435903", "22833300") + ")",
			body: `{"entities":{"` + k + `":` + entity("435902", "22833300") + `,"` + key("435903", "22833300") + `":` + entity("435903", "22833300") + `}}`, status: 200,
			want: `{"results":{"(campaign:urn%3Ali%3AsponsoredCampaign%3A435902,conversion:urn%3Alla%3AllaPartnerConversion%3A22833300)":{"status":204},"(campaign:urn%3Ali%3AsponsoredCampaign%3A435903,conversion:urn%3Alla%3AllaPartnerConversion%3A22833300)":{"status":204}},"errors":{}}`},
		{name: "batch with a failing key", path: "/rest/campaignConversions?ids=List(" + k + "," + key("435999", "22833300") + ")",
			body: `{"entities":{"` + k + `":` + entity("435902", "22833300") + `,"` + key("435999", "22833300") + `":` + entity("435999", "22833300") + `}}`, status: 200,
			want: `{"results":{"(campaign:urn%3Ali%3AsponsoredCampaign%3A435902,conversion:urn%3Alla%3AllaPartnerConversion%3A22833300)":{"status":204}},"errors":{"(campaign:urn%3Ali%3AsponsoredCampaign%3A435999,conversion:urn%3Alla%3AllaPartnerConversion%3A22833300)":{"status":404,"message":"Campaign 435999 not found"}}}`},
		{name: "batch mismatch", path: "/rest/campaignConversions?ids=List(" + k + ")",
			body: `{"entities":{"` + key("435903", "22833300") + `":` + entity("435903", "22833300") + `}}`, status: 400,
			want: `{"status":400,"message":"Batch request mismatch: ids in URL and entities in body differ"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			if err := h.srv.AddToken(TokenSpec{Token: "multi", Member: "M2"}); err != nil {
				t.Fatal(err)
			}
			if err := h.srv.AddToken(TokenSpec{Token: "multi-2", Member: "M2", AdAccount: otherAccountID}); err != nil {
				t.Fatal(err)
			}
			token := tc.token
			if token == "" {
				token = tok
			}
			r := h.do("PUT", tc.path, merge(restHeaders(token), tc.headers), tc.body)
			wantStatus(t, r, tc.status)
			if tc.want != "" {
				wantBody(t, r, tc.want)
			}
			if tc.status == 204 {
				g := h.do("GET", "/rest/conversions/22833300?"+acctQ, restHeaders(tok), "")
				if strings.Count(g.body, `"campaign":"urn:li:sponsoredCampaign:435901"`) != 1 || !strings.Contains(g.body, `"campaigns":["urn:li:sponsoredCampaign:435901"`) {
					t.Errorf("associations after %s: %s", tc.name, g.body)
				}
			}
		})
	}
}

func TestAccountsAndCampaigns(t *testing.T) {
	tests := []struct {
		name, token, path string
		status            int
		want, frag        string
	}{
		{name: "account users", path: "/rest/adAccountUsers?q=authenticatedUser", status: 200,
			want: `{"paging":{"start":0,"count":2147483647,"links":[],"total":2},"elements":[{"user":"urn:li:person:Xy12AbCd","account":"urn:li:sponsoredAccount:508700001","role":"VIEWER"},{"user":"urn:li:person:Xy12AbCd","account":"urn:li:sponsoredAccount:508747394","role":"ACCOUNT_MANAGER"}]}`},
		{name: "account users without r_ads", token: "rw-only", path: "/rest/adAccountUsers?q=authenticatedUser", status: 403, frag: "adAccountUsers.FINDER.20260901"},
		{name: "account users bad finder", path: "/rest/adAccountUsers", status: 400, want: `{"status":400,"message":"Missing required query parameter: q"}`},
		{name: "search accounts", path: "/rest/adAccounts?q=search&search=(status:(values:List(ACTIVE)))", status: 200,
			frag: `{"id":508747394,"name":"Acme EMEA","currency":"EUR","status":"ACTIVE","type":"BUSINESS","reference":"urn:li:organization:1122334","test":false,"version":{"versionTag":"6"}}`},
		{name: "search accounts paused", path: "/rest/adAccounts?q=search&search=(status:(values:List(PAUSED)))", status: 200,
			want: `{"paging":{"start":0,"count":1000,"links":[],"total":0},"elements":[]}`},
		{name: "search accounts bad status", path: "/rest/adAccounts?q=search&search=(status:(values:List(NOPE)))", status: 400, frag: "Invalid status value NOPE"},
		{name: "campaigns", path: "/rest/adAccounts/508747394/adCampaigns?q=search&search=(status:(values:List(ACTIVE,DRAFT)))&fields=id,name", status: 200,
			want: `{"paging":{"start":0,"count":10,"links":[],"total":3},"elements":[{"id":435901,"name":"Retargeting - Q1"},{"id":435902,"name":"Lead gen - DACH"},{"id":435904,"name":"Webinar launch"}]}`},
		{name: "campaigns paged", path: "/rest/adAccounts/508747394/adCampaigns?q=search&search=(status:(values:List(ACTIVE,DRAFT)))&fields=id,name&count=2", status: 200,
			frag: `"links":[{"type":"application/json","rel":"next","href":"/rest/adAccounts/508747394/adCampaigns?q=search&search=(status:(values:List(ACTIVE,DRAFT)))&start=2&count=2&fields=id,name"}],"total":3}`},
		{name: "campaign full entity", path: "/rest/adAccounts/508747394/adCampaigns?q=search&count=1", status: 200,
			frag: `{"id":435901,"name":"Retargeting - Q1","account":"urn:li:sponsoredAccount:508747394","campaignGroup":"urn:li:sponsoredCampaignGroup:647394","status":"ACTIVE","type":"SPONSORED_UPDATES","costType":"CPM","dailyBudget":{"currencyCode":"EUR","amount":"50"}}`},
		{name: "campaigns of viewer account", path: "/rest/adAccounts/508700001/adCampaigns?q=search", status: 200, frag: `"total":1`},
		{name: "campaigns unknown account", path: "/rest/adAccounts/1/adCampaigns?q=search", status: 404, want: `{"status":404,"message":"Ad account 1 not found"}`},
		{name: "campaigns without role", path: "/rest/adAccounts/508700002/adCampaigns?q=search", status: 403, frag: "adCampaigns.FINDER.20260901"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			if err := h.srv.AddToken(TokenSpec{Token: "rw-only", Scopes: []string{"rw_conversions"}}); err != nil {
				t.Fatal(err)
			}
			token := tc.token
			if token == "" {
				token = tok
			}
			r := h.do("GET", tc.path, restHeaders(token), "")
			wantStatus(t, r, tc.status)
			if tc.want != "" {
				wantBody(t, r, tc.want)
			}
			if tc.frag != "" && !strings.Contains(r.body, tc.frag) {
				t.Fatalf("body %s lacks %q", r.body, tc.frag)
			}
		})
	}
}

func TestCustomAdAccountAndCampaign(t *testing.T) {
	h := newHarness(t, Config{AdAccount: 512345678})
	if err := h.srv.AddCampaign(Campaign{ID: 777, Name: "Mine"}); err != nil {
		t.Fatal(err)
	}
	r := h.do("GET", "/rest/adAccounts/512345678/adCampaigns?q=search&fields=id", restHeaders(tok), "")
	wantStatus(t, r, 200)
	if !strings.Contains(r.body, `{"id":777}`) || !strings.Contains(r.body, `{"id":435901}`) {
		t.Errorf("campaigns %s", r.body)
	}
	ev := strings.Replace(ev("x"), "22833300", "22833300", 1)
	wantStatus(t, h.sendEvent(tok, ev), 201)
	if c := h.srv.Conversions(ConversionFilter{Account: 512345678}); len(c) != 1 {
		t.Errorf("conversions of the custom account: %d", len(c))
	}
}

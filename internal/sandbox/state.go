package sandbox

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// Seeded entities besides the main account (Config.AdAccount). They are part
// of the documented seed (docs/sandbox.md) and of tests.
const (
	viewerAccountID int64 = 508700001 // the seeded member is only VIEWER here
	otherAccountID  int64 = 508700002 // the seeded member has no role here

	seedRuleID        int64 = 22833300 // CAPI rule of the main account
	seedTagRuleID     int64 = 1403456  // Insight Tag rule of the main account
	seedOtherRuleID   int64 = 22800001 // CAPI rule of the other account
	seedViewerRuleID  int64 = 22800002 // CAPI rule of the viewer account
	seedOtherCampaign int64 = 436001
)

type money struct {
	CurrencyCode string `json:"currencyCode"`
	Amount       string `json:"amount"`
}

type account struct {
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	Currency  string `json:"currency"`
	Status    string `json:"status"`
	Type      string `json:"type"`
	Reference string `json:"reference"`
	Test      bool   `json:"test"`
}

type campaign struct {
	ID            int64  `json:"id"`
	Account       int64  `json:"account"`
	CampaignGroup int64  `json:"campaign_group"`
	Name          string `json:"name"`
	Status        string `json:"status"`
	Type          string `json:"type"`
	CostType      string `json:"cost_type"`
	DailyBudget   money  `json:"daily_budget"`
}

type member struct {
	ID        string           `json:"id"`
	FirstName string           `json:"first_name"`
	LastName  string           `json:"last_name"`
	Roles     map[int64]string `json:"roles"`
}

type accessToken struct {
	Token     string    `json:"token"`
	Member    string    `json:"member"`
	Scopes    []string  `json:"scopes"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// AuthorizedAt is when the member authorised the app (refreshes keep it).
	AuthorizedAt time.Time `json:"authorized_at"`
	Revoked      bool      `json:"revoked"`
}

type refreshToken struct {
	Token        string    `json:"token"`
	Member       string    `json:"member"`
	Scopes       []string  `json:"scopes"`
	AuthorizedAt time.Time `json:"authorized_at"`
	ExpiresAt    time.Time `json:"expires_at"`
	Revoked      bool      `json:"revoked"`
}

type authCode struct {
	Member      string
	Scopes      []string
	RedirectURI string
	ExpiresAt   time.Time
}

type association struct {
	Campaign     int64 `json:"campaign"`
	AssociatedAt int64 `json:"associated_at"`
}

type rule struct {
	ID               int64         `json:"id"`
	Account          int64         `json:"account"`
	Name             string        `json:"name"`
	ConversionMethod string        `json:"conversion_method"`
	Type             string        `json:"type"`
	Enabled          bool          `json:"enabled"`
	AttributionType  string        `json:"attribution_type,omitempty"`
	PostClick        int           `json:"post_click,omitempty"`
	ViewThrough      int           `json:"view_through,omitempty"`
	ValueType        string        `json:"value_type,omitempty"`
	Value            *money        `json:"value,omitempty"`
	Associations     []association `json:"associations"`
	Created          int64         `json:"created"`
	LastModified     int64         `json:"last_modified"`
	// Signal times of spec §22.4, epoch ms (0: none yet): LastCallback is
	// lastCallbackAt, FirstParty latestFirstPartyCallbackAt. Pending holds
	// receive times of accepted events not yet visible
	// (Config.RuleStatusDelay), oldest first.
	LastCallback int64   `json:"last_callback,omitempty"`
	FirstParty   int64   `json:"first_party_callback,omitempty"`
	Pending      []int64 `json:"pending_signals,omitempty"`
	// PixelTag is the imagePixelTag and URLMatch the URL prefix of an
	// Insight Tag rule.
	PixelTag string `json:"image_pixel_tag,omitempty"`
	URLMatch string `json:"url_match,omitempty"`
}

// state is the sandbox's world: everything Reset restores and the state
// file holds. It is guarded by Server.mu.
type state struct {
	Accounts  map[int64]*account       `json:"accounts"`
	Campaigns map[int64]*campaign      `json:"campaigns"`
	Members   map[string]*member       `json:"members"`
	Tokens    map[string]*accessToken  `json:"tokens"`
	Refresh   map[string]*refreshToken `json:"refresh_tokens"`
	Rules     map[int64]*rule          `json:"rules"`
	RuleOrder []int64                  `json:"rule_order"`
	Sunset    map[string]bool          `json:"sunset_versions"`
	codes     map[string]*authCode     // authorisation codes, not persisted
	rate      map[string]*rateWindows  // per access token
}

func newState() *state {
	return &state{
		Accounts:  map[int64]*account{},
		Campaigns: map[int64]*campaign{},
		Members:   map[string]*member{},
		Tokens:    map[string]*accessToken{},
		Refresh:   map[string]*refreshToken{},
		Rules:     map[int64]*rule{},
		Sunset:    map[string]bool{},
		codes:     map[string]*authCode{},
		rate:      map[string]*rateWindows{},
	}
}

// fillMaps makes the maps of a state decoded from a file non-nil.
func (st *state) fillMaps() {
	if st.Accounts == nil {
		st.Accounts = map[int64]*account{}
	}
	if st.Campaigns == nil {
		st.Campaigns = map[int64]*campaign{}
	}
	if st.Members == nil {
		st.Members = map[string]*member{}
	}
	if st.Tokens == nil {
		st.Tokens = map[string]*accessToken{}
	}
	if st.Refresh == nil {
		st.Refresh = map[string]*refreshToken{}
	}
	if st.Rules == nil {
		st.Rules = map[int64]*rule{}
	}
	if st.Sunset == nil {
		st.Sunset = map[string]bool{}
	}
	st.codes = map[string]*authCode{}
	st.rate = map[string]*rateWindows{}
	for _, m := range st.Members {
		if m.Roles == nil {
			m.Roles = map[int64]string{}
		}
	}
}

// seed fills st with the documented seed world.
func seedState(cfg Config, now time.Time) *state {
	st := newState()
	ms := now.UnixMilli()
	main := cfg.AdAccount
	st.Accounts[main] = &account{ID: main, Name: "Acme EMEA", Currency: "EUR", Status: "ACTIVE", Type: "BUSINESS", Reference: "urn:li:organization:1122334"}
	st.Accounts[viewerAccountID] = &account{ID: viewerAccountID, Name: "Acme Americas", Currency: "USD", Status: "ACTIVE", Type: "BUSINESS", Reference: "urn:li:organization:1122334"}
	st.Accounts[otherAccountID] = &account{ID: otherAccountID, Name: "Globex", Currency: "USD", Status: "ACTIVE", Type: "BUSINESS", Reference: "urn:li:organization:5566778"}
	st.Members[DefaultMember] = &member{ID: DefaultMember, FirstName: "Sam", LastName: "Admin",
		Roles: map[int64]string{main: "ACCOUNT_MANAGER", viewerAccountID: "VIEWER"}}
	addCampaign := func(id, acct int64, name, status string) {
		st.Campaigns[id] = &campaign{ID: id, Account: acct, CampaignGroup: 600000 + acct%100000, Name: name, Status: status,
			Type: "SPONSORED_UPDATES", CostType: "CPM", DailyBudget: money{CurrencyCode: st.Accounts[acct].Currency, Amount: "50"}}
	}
	addCampaign(435901, main, "Retargeting - Q1", "ACTIVE")
	addCampaign(435902, main, "Lead gen - DACH", "ACTIVE")
	addCampaign(435903, main, "Brand awareness - Q4", "PAUSED")
	addCampaign(435904, main, "Webinar launch", "DRAFT")
	addCampaign(435950, viewerAccountID, "Americas prospecting", "ACTIVE")
	addCampaign(seedOtherCampaign, otherAccountID, "Globex retargeting", "ACTIVE")
	addRule := func(r *rule) {
		r.Created, r.LastModified = ms, ms
		st.Rules[r.ID] = r
		st.RuleOrder = append(st.RuleOrder, r.ID)
	}
	addRule(&rule{ID: seedRuleID, Account: main, Name: "CAPI-Page-View", ConversionMethod: "CONVERSIONS_API", Type: "KEY_PAGE_VIEW",
		Enabled: true, AttributionType: "LAST_TOUCH_BY_CAMPAIGN", PostClick: 90, ViewThrough: 90,
		Associations: []association{{Campaign: 435901, AssociatedAt: ms}}})
	addRule(&rule{ID: seedTagRuleID, Account: main, Name: "Thank-you page", ConversionMethod: "INSIGHT_TAG_URL_MATCH_RULES", Type: "LEAD",
		Enabled: true, Associations: []association{}, URLMatch: "https://www.example.com/thank-you",
		PixelTag: fmt.Sprintf(`<img height="1" width="1" style="display:none;" alt="" src="https://px.ads.linkedin.com/collect/?pid=%d&conversionId=%d&fmt=gif" />`, main, seedTagRuleID)})
	addRule(&rule{ID: seedOtherRuleID, Account: otherAccountID, Name: "Globex purchase", ConversionMethod: "CONVERSIONS_API", Type: "PURCHASE",
		Enabled: true, AttributionType: "LAST_TOUCH_BY_CAMPAIGN", PostClick: 30, ViewThrough: 7, Associations: []association{}})
	addRule(&rule{ID: seedViewerRuleID, Account: viewerAccountID, Name: "Americas sign up", ConversionMethod: "CONVERSIONS_API", Type: "SIGN_UP",
		Enabled: true, AttributionType: "LAST_TOUCH_BY_CAMPAIGN", PostClick: 30, ViewThrough: 7, Associations: []association{}})
	for _, v := range cfg.SunsetVersions {
		st.Sunset[v] = true
	}
	return st
}

// addToken registers ts in st. The caller holds the lock and has checked ts.
func (st *state) addToken(cfg Config, ts TokenSpec, now time.Time) {
	if ts.AdAccount == 0 {
		ts.AdAccount = cfg.AdAccount
	}
	if ts.Member == "" {
		ts.Member = DefaultMember
	}
	if ts.Role == "" {
		ts.Role = "ACCOUNT_MANAGER"
	}
	if ts.Scopes == nil {
		ts.Scopes = []string{"r_ads", "rw_conversions"}
	}
	if ts.IssuedAt.IsZero() {
		ts.IssuedAt = now
	}
	if ts.TTL == 0 {
		ts.TTL = AccessTokenTTL
	}
	if ts.RefreshTTL == 0 {
		ts.RefreshTTL = RefreshTokenTTL
	}
	if _, ok := st.Accounts[ts.AdAccount]; !ok {
		st.Accounts[ts.AdAccount] = &account{ID: ts.AdAccount, Name: "Ad account " + strconv.FormatInt(ts.AdAccount, 10),
			Currency: "USD", Status: "ACTIVE", Type: "BUSINESS", Reference: "urn:li:organization:1"}
	}
	m, ok := st.Members[ts.Member]
	if !ok {
		m = &member{ID: ts.Member, FirstName: "Sandbox", LastName: "Member", Roles: map[int64]string{}}
		st.Members[ts.Member] = m
	}
	m.Roles[ts.AdAccount] = ts.Role
	st.Tokens[ts.Token] = &accessToken{Token: ts.Token, Member: ts.Member, Scopes: slices.Clone(ts.Scopes),
		IssuedAt: ts.IssuedAt, ExpiresAt: ts.IssuedAt.Add(ts.TTL), AuthorizedAt: ts.IssuedAt}
	if ts.RefreshToken != "" {
		st.Refresh[ts.RefreshToken] = &refreshToken{Token: ts.RefreshToken, Member: ts.Member, Scopes: slices.Clone(ts.Scopes),
			AuthorizedAt: ts.IssuedAt, ExpiresAt: ts.IssuedAt.Add(ts.RefreshTTL)}
	}
	delete(st.rate, ts.Token)
}

// role returns the member's role on acct, or "".
func (st *state) role(memberID string, acct int64) string {
	if m, ok := st.Members[memberID]; ok {
		return m.Roles[acct]
	}
	return ""
}

// tokenState names the state of an access or refresh token.
func tokenStatus(revoked bool, expires, now time.Time) string {
	switch {
	case revoked:
		return "revoked"
	case !now.Before(expires):
		return "expired"
	default:
		return "active"
	}
}

func accountURN(id int64) string  { return "urn:li:sponsoredAccount:" + strconv.FormatInt(id, 10) }
func campaignURN(id int64) string { return "urn:li:sponsoredCampaign:" + strconv.FormatInt(id, 10) }
func ruleURN(id int64) string     { return "urn:lla:llaPartnerConversion:" + strconv.FormatInt(id, 10) }

// parseURN returns the numeric id of urn if it has the given prefix.
func parseURN(urn, prefix string) (int64, bool) {
	if len(urn) <= len(prefix) || urn[:len(prefix)] != prefix {
		return 0, false
	}
	s := urn[len(prefix):]
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil && id > 0
}

// persisted is the shape of the state file.
type persisted struct {
	Format      int          `json:"format"`
	State       *state       `json:"state"`
	Conversions []Conversion `json:"conversions"`
	NextSeq     int64        `json:"next_seq"`
}

func decodePersisted(b []byte) (*persisted, error) {
	var p persisted
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	if p.Format != 1 || p.State == nil {
		return nil, fmt.Errorf("unsupported state format %d", p.Format)
	}
	p.State.fillMaps()
	return &p, nil
}

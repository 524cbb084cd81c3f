package sandbox

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Reporting configures the simulation of LinkedIn's conversion reporting,
// GET /rest/adAnalytics (spec §21.10). Shares are probabilities in [0, 1];
// a zero field takes its default, a negative share means 0.
type Reporting struct {
	// MatchedShare is the share of eligible events LinkedIn matches to a
	// member when they carry neither a li_fat_id nor an email hash
	// (userInfo, externalIds, Acxiom or Oracle ids). Default 0.6.
	MatchedShare float64 `json:"matched_share,omitempty"`
	// EmailMatchShare is the share matched of events whose best identifier
	// is SHA256_EMAIL. Default MatchedShare. Events carrying a
	// LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID always match: it names the
	// member who clicked.
	EmailMatchShare float64 `json:"email_match_share,omitempty"`
	// MatchedShareByRule overrides both shares for a rule id.
	MatchedShareByRule map[int64]float64 `json:"matched_share_by_rule,omitempty"`
	// PostViewShare is the share of matched events attributed to a view
	// rather than a click. Default 0.1.
	PostViewShare float64 `json:"post_view_share,omitempty"`
	// Delay is how long after it was received an event appears in reports
	// (LinkedIn: up to 72 h). Default 0.
	Delay Duration `json:"delay,omitempty"`
	// DelayJitter adds to Delay a deterministic per-event extra in
	// [0, DelayJitter). Default 0.
	DelayJitter Duration `json:"delay_jitter,omitempty"`
	// DedupEventIDWindow, when positive, turns on LinkedIn-side eventId
	// de-duplication in reports: an event is not counted when an earlier
	// counted event of the same rule with the same eventId was received
	// less than this long before it (the first one keeps its value and
	// time). Default 0: off, two events with one eventId count twice
	// (spec §21.10 item 4, §23.2). Tests of de-duplication set e.g. 48h.
	DedupEventIDWindow Duration `json:"dedup_event_id_window,omitempty"`
	// InsightTagEventIDs are, per ad account, eventIds the Insight Tag
	// reported: an API event with one of them is deducted (spec §23.1).
	InsightTagEventIDs map[int64][]string `json:"insight_tag_event_ids,omitempty"`
	// MaxElements truncates an answer silently. Default 15000.
	MaxElements int `json:"max_elements,omitempty"`
	// NoRequireScope turns off require_scope: adAnalytics then answers
	// tokens without r_ads_reporting. Default false (the scope is needed).
	NoRequireScope bool `json:"no_require_scope,omitempty"`
}

// Reporting defaults (spec §21.10).
const (
	DefaultMatchedShare      = 0.6
	DefaultPostViewShare     = 0.1
	DefaultReportMaxElements = 15000
	reportMaxFields          = 20
	reportingScope           = "r_ads_reporting"
	firstPartyTrackingIDType = "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID"
	emailIDType              = "SHA256_EMAIL"
)

func share(v, def float64) float64 {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return min(v, 1)
}

// withDefaults returns r with its defaults applied and its problems.
func (r Reporting) withDefaults() (Reporting, error) {
	r.MatchedShare = share(r.MatchedShare, DefaultMatchedShare)
	r.EmailMatchShare = share(r.EmailMatchShare, r.MatchedShare)
	r.PostViewShare = share(r.PostViewShare, DefaultPostViewShare)
	if r.MaxElements <= 0 {
		r.MaxElements = DefaultReportMaxElements
	}
	if r.Delay < 0 || r.DelayJitter < 0 {
		return r, fmt.Errorf("reporting delay %s, jitter %s: must not be negative", time.Duration(r.Delay), time.Duration(r.DelayJitter))
	}
	if r.DedupEventIDWindow < 0 {
		return r, fmt.Errorf("reporting dedup_event_id_window %s: must not be negative (0 turns it off)", time.Duration(r.DedupEventIDWindow))
	}
	for id, v := range r.MatchedShareByRule {
		if v < 0 || v > 1 {
			return r, fmt.Errorf("reporting matched share of rule %d: %g is not in [0, 1]", id, v)
		}
	}
	return r, nil
}

// SetReporting replaces the reporting switches (defaults applied).
func (s *Server) SetReporting(r Reporting) error {
	r, err := r.withDefaults()
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.rep = r
	s.mu.Unlock()
	return nil
}

// ReportingConfig returns the reporting switches in use.
func (s *Server) ReportingConfig() Reporting {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rep
}

// hashUnit maps (seed, rule, key, salt) to [0, 1) deterministically.
func hashUnit(seed uint64, rule int64, key, salt string) float64 {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], seed)
	binary.BigEndian.PutUint64(b[8:], uint64(rule))
	h := sha256.New()
	h.Write(b[:])
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write([]byte(salt))
	sum := h.Sum(nil)
	return float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53)
}

// ReportedEvent is one accepted event as the reporting model sees it
// (GET /_sandbox/reporting): the flags of spec §21.10's model.
type ReportedEvent struct {
	Seq     int64  `json:"seq"`
	Rule    int64  `json:"rule"`
	Account int64  `json:"account"`
	EventID string `json:"event_id,omitempty"`
	// Day is the UTC day of conversionHappenedAt (YYYY-MM-DD).
	Day string `json:"day"`
	// Identifier is what the match was decided on: li_fat_id, email or other.
	Identifier string `json:"identifier"`
	Eligible   bool   `json:"eligible"`
	Matched    bool   `json:"matched"`
	PostView   bool   `json:"post_view"`
	// TagDeduplicated: deducted for an Insight Tag event with its eventId.
	TagDeduplicated bool `json:"tag_deduplicated,omitempty"`
	// DuplicateOf is the Seq of the earlier counted event of the same rule
	// and eventId that this one is de-duplicated against, when
	// Reporting.DedupEventIDWindow is on; 0 otherwise.
	DuplicateOf int64 `json:"duplicate_of,omitempty"`
	// VisibleAt is when it appears in reports (ms); Visible says whether it
	// does now.
	VisibleAt int64 `json:"visible_at"`
	Visible   bool  `json:"visible"`
	// Counted is Matched, not deduplicated (TagDeduplicated, DuplicateOf)
	// and Visible.
	Counted bool `json:"counted"`

	campaigns []int64 // associated at receive time (for the CAMPAIGN pivot)
	at        time.Time
	amount    float64
}

type reportBody struct {
	HappenedAt int64 `json:"conversionHappenedAt"`
	Value      *struct {
		Amount string `json:"amount"`
	} `json:"conversionValue"`
	User struct {
		UserIDs []struct {
			IDType string `json:"idType"`
		} `json:"userIds"`
	} `json:"user"`
}

// reportModel evaluates every accepted event, repeats of an eventId
// included (the store's duplicate_of marking, Config.DedupWindow, is for
// inspection only; reports de-duplicate only when
// Reporting.DedupEventIDWindow is on). The caller holds s.mu.
func (s *Server) reportModel(now time.Time) []ReportedEvent {
	rep := s.rep
	tags := map[int64]map[string]bool{}
	for acct, ids := range rep.InsightTagEventIDs {
		tags[acct] = map[string]bool{}
		for _, id := range ids {
			tags[acct][id] = true
		}
	}
	convs := s.convs.selectConv(ConversionFilter{Duplicates: true})
	out := make([]ReportedEvent, 0, len(convs))
	// first counted event per rule and eventId, for DedupEventIDWindow
	type firstCounted struct {
		seq int64
		at  int64
	}
	firsts := map[dedupKey]firstCounted{}
	for _, c := range convs {
		var b reportBody
		_ = json.Unmarshal(c.Body, &b)
		at := time.UnixMilli(b.HappenedAt).UTC()
		e := ReportedEvent{Seq: c.Seq, Rule: c.Rule, Account: c.Account, EventID: c.EventID, Day: at.Format(time.DateOnly), at: at,
			Eligible: !c.Ineligible, Identifier: "other"}
		if b.Value != nil {
			e.amount, _ = strconv.ParseFloat(b.Value.Amount, 64)
		}
		for _, id := range b.User.UserIDs {
			switch {
			case id.IDType == firstPartyTrackingIDType:
				e.Identifier = "li_fat_id"
			case id.IDType == emailIDType && e.Identifier == "other":
				e.Identifier = "email"
			}
		}
		key := c.EventID
		if key == "" {
			sum := sha256.Sum256(c.Body)
			key = string(sum[:])
		}
		if e.Eligible {
			p := rep.MatchedShare
			if e.Identifier == "email" {
				p = rep.EmailMatchShare
			}
			if v, ok := rep.MatchedShareByRule[c.Rule]; ok {
				p = v
			}
			e.Matched = e.Identifier == "li_fat_id" || hashUnit(s.cfg.Seed, c.Rule, key, "match") < p
		}
		e.PostView = e.Matched && hashUnit(s.cfg.Seed, c.Rule, key, "view") < rep.PostViewShare
		e.TagDeduplicated = c.EventID != "" && tags[c.Account][c.EventID]
		if w := time.Duration(rep.DedupEventIDWindow); w > 0 && c.EventID != "" && e.Matched && !e.TagDeduplicated {
			k := dedupKey{c.Rule, c.EventID}
			if f, ok := firsts[k]; ok && time.Duration(c.ReceivedAt-f.at)*time.Millisecond < w {
				e.DuplicateOf = f.seq
			} else {
				firsts[k] = firstCounted{c.Seq, c.ReceivedAt}
			}
		}
		visible := time.UnixMilli(c.ReceivedAt).Add(time.Duration(rep.Delay))
		if rep.DelayJitter > 0 {
			visible = visible.Add(time.Duration(hashUnit(s.cfg.Seed, c.Rule, key, "delay") * float64(rep.DelayJitter)))
		}
		e.VisibleAt = visible.UnixMilli()
		e.Visible = !now.Before(visible)
		e.Counted = e.Matched && !e.TagDeduplicated && e.DuplicateOf == 0 && e.Visible
		if r := s.st.Rules[c.Rule]; r != nil {
			for _, a := range r.Associations {
				if a.AssociatedAt <= c.ReceivedAt {
					e.campaigns = append(e.campaigns, a.Campaign)
				}
			}
		}
		out = append(out, e)
	}
	return out
}

var (
	reportDateRE = regexp.MustCompile(`^\(start:\(year:(\d{4}),month:(\d{1,2}),day:(\d{1,2})\)(?:,end:\(year:(\d{4}),month:(\d{1,2}),day:(\d{1,2})\))?\)$`)
	reportListRE = regexp.MustCompile(`^List\((.*)\)$`)
	reportEnumRE = regexp.MustCompile(`^\(value:([A-Z_]+)\)$`)

	reportMetrics = []string{"externalWebsiteConversions", "externalWebsitePostClickConversions", "externalWebsitePostViewConversions",
		"conversionValueInLocalCurrency", "viralExternalWebsiteConversions", "viralExternalWebsitePostClickConversions",
		"viralExternalWebsitePostViewConversions", "impressions", "clicks"}
	reportFieldSet = func() map[string]bool {
		m := map[string]bool{"pivotValues": true, "dateRange": true}
		for _, f := range reportMetrics {
			m[f] = true
		}
		return m
	}()
)

// enumParam reads a plain (CONVERSION) or record ((value:CONVERSION)) enum.
func enumParam(v string) string {
	if m := reportEnumRE.FindStringSubmatch(v); m != nil {
		return m[1]
	}
	return v
}

func parseReportDate(y, m, d string) (time.Time, bool) {
	yy, _ := strconv.Atoi(y)
	mm, _ := strconv.Atoi(m)
	dd, _ := strconv.Atoi(d)
	t := time.Date(yy, time.Month(mm), dd, 0, 0, 0, 0, time.UTC)
	return t, t.Year() == yy && int(t.Month()) == mm && t.Day() == dd
}

// reportDate is the dateRange form of a day.
func reportDate(t time.Time) map[string]int {
	return map[string]int{"year": t.Year(), "month": int(t.Month()), "day": t.Day()}
}

// adAnalytics serves GET /rest/adAnalytics (spec §21.10).
func (s *Server) adAnalytics(c *call) {
	s.mu.Lock()
	requireScope := !s.rep.NoRequireScope
	s.mu.Unlock()
	scope := ""
	if requireScope {
		scope = reportingScope
	}
	if !c.restGate(scope, "adAnalytics", "FINDER") {
		return
	}
	invalid := func(name string) { c.badRequest("Parameter '" + name + "' is invalid") }
	q, err := url.ParseQuery(c.r.URL.RawQuery)
	if err != nil {
		invalid("q")
		return
	}
	var pivots []string
	switch q.Get("q") {
	case "analytics":
		p := enumParam(q.Get("pivot"))
		if p != "CONVERSION" && p != "CAMPAIGN" && p != "ACCOUNT" {
			invalid("pivot")
			return
		}
		pivots = []string{p}
	case "statistics":
		m := reportListRE.FindStringSubmatch(q.Get("pivots"))
		if m == nil || m[1] == "" {
			invalid("pivots")
			return
		}
		for _, p := range strings.Split(m[1], ",") {
			p = enumParam(p)
			if (p != "CONVERSION" && p != "CAMPAIGN") || slices.Contains(pivots, p) {
				invalid("pivots")
				return
			}
			pivots = append(pivots, p)
		}
	default:
		invalid("q")
		return
	}
	gran := enumParam(q.Get("timeGranularity"))
	if gran != "DAILY" && gran != "MONTHLY" && gran != "YEARLY" && gran != "ALL" {
		invalid("timeGranularity")
		return
	}
	dm := reportDateRE.FindStringSubmatch(q.Get("dateRange"))
	if dm == nil {
		invalid("dateRange")
		return
	}
	start, ok := parseReportDate(dm[1], dm[2], dm[3])
	if !ok {
		invalid("dateRange")
		return
	}
	end := time.Date(c.now.UTC().Year(), c.now.UTC().Month(), c.now.UTC().Day(), 0, 0, 0, 0, time.UTC)
	if dm[4] != "" {
		if end, ok = parseReportDate(dm[4], dm[5], dm[6]); !ok || end.Before(start) {
			invalid("dateRange")
			return
		}
	}
	var accounts, campaigns map[int64]bool
	for name := range q {
		switch name {
		case "q", "pivot", "pivots", "timeGranularity", "dateRange", "fields", "projection", "campaignType", "objectiveType", "sortBy":
		case "accounts", "campaigns":
			m := reportListRE.FindStringSubmatch(q.Get(name))
			if m == nil || m[1] == "" {
				invalid(name)
				return
			}
			set := map[int64]bool{}
			prefix := map[string]string{"accounts": "urn:li:sponsoredAccount:", "campaigns": "urn:li:sponsoredCampaign:"}[name]
			for _, u := range strings.Split(m[1], ",") {
				if d, err := url.PathUnescape(u); err == nil {
					u = d
				}
				id, ok := parseURN(u, prefix)
				if !ok {
					invalid(name)
					return
				}
				set[id] = true
			}
			if name == "accounts" {
				accounts = set
			} else {
				campaigns = set
			}
		default:
			invalid(name)
			return
		}
	}
	if accounts == nil && campaigns == nil {
		invalid("accounts")
		return
	}
	fields := []string{"impressions", "clicks", "pivotValues", "dateRange"}
	if f := q.Get("fields"); f != "" {
		fields = strings.Split(f, ",")
		if len(fields) > reportMaxFields {
			invalid("fields")
			return
		}
		for _, f := range fields {
			if !reportFieldSet[f] {
				invalid("fields")
				return
			}
		}
	}

	type rowKey struct {
		pivots string
		from   time.Time
	}
	type row struct {
		pivotValues        []string
		from, to           time.Time
		count, click, view int64
		amount             float64
	}
	rows := map[rowKey]*row{}
	s.mu.Lock()
	model := s.reportModel(c.now)
	readable := func(acct int64) bool { return s.st.role(c.tok.Member, acct) != "" }
	campaignAccount := func(id int64) int64 {
		if cp := s.st.Campaigns[id]; cp != nil {
			return cp.Account
		}
		return 0
	}
	for _, e := range model {
		if !e.Counted || !readable(e.Account) {
			continue
		}
		day := time.Date(e.at.Year(), e.at.Month(), e.at.Day(), 0, 0, 0, 0, time.UTC)
		if day.Before(start) || day.After(end) {
			continue
		}
		if accounts != nil && !accounts[e.Account] {
			continue
		}
		// The CAMPAIGN pivot credits one of the rule's campaigns, by hash.
		var credited int64
		if len(e.campaigns) > 0 {
			credited = e.campaigns[int(hashUnit(s.cfg.Seed, e.Rule, strconv.FormatInt(e.Seq, 10), "campaign")*float64(len(e.campaigns)))]
		}
		if campaigns != nil && (!campaigns[credited] || !readable(campaignAccount(credited))) {
			continue
		}
		var pv []string
		for _, p := range pivots {
			switch p {
			case "CONVERSION":
				pv = append(pv, "urn:lla:llaPartnerConversion:"+strconv.FormatInt(e.Rule, 10))
			case "CAMPAIGN":
				pv = append(pv, "urn:li:sponsoredCampaign:"+strconv.FormatInt(credited, 10))
			case "ACCOUNT":
				pv = append(pv, "urn:li:sponsoredAccount:"+strconv.FormatInt(e.Account, 10))
			}
		}
		from, to := day, day
		switch gran {
		case "MONTHLY":
			from = time.Date(day.Year(), day.Month(), 1, 0, 0, 0, 0, time.UTC)
			to = from.AddDate(0, 1, -1)
		case "YEARLY":
			from = time.Date(day.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
			to = from.AddDate(1, 0, -1)
		case "ALL":
			from, to = start, end
		}
		from, to = maxTime(from, start), minTime(to, end)
		k := rowKey{strings.Join(pv, "\x00"), from}
		r := rows[k]
		if r == nil {
			r = &row{pivotValues: pv, from: from, to: to}
			rows[k] = r
		}
		r.count++
		if e.PostView {
			r.view++
		} else {
			r.click++
		}
		r.amount += e.amount
	}
	maxElems := s.rep.MaxElements
	s.mu.Unlock()

	keys := make([]rowKey, 0, len(rows))
	for k := range rows {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b rowKey) int {
		if c := cmp.Compare(a.pivots, b.pivots); c != 0 {
			return c
		}
		return a.from.Compare(b.from)
	})
	if len(keys) > maxElems {
		keys = keys[:maxElems]
	}
	elems := make([]map[string]any, 0, len(keys))
	for _, k := range keys {
		r := rows[k]
		el := map[string]any{}
		for _, f := range fields {
			switch f {
			case "pivotValues":
				el[f] = r.pivotValues
			case "dateRange":
				el[f] = map[string]any{"start": reportDate(r.from), "end": reportDate(r.to)}
			case "externalWebsiteConversions":
				el[f] = r.count
			case "externalWebsitePostClickConversions":
				el[f] = r.click
			case "externalWebsitePostViewConversions":
				el[f] = r.view
			case "conversionValueInLocalCurrency":
				el[f] = strconv.FormatFloat(math.Round(r.amount*100)/100, 'f', 2, 64)
			default: // viral conversions, impressions, clicks: not simulated
				el[f] = 0
			}
		}
		elems = append(elems, el)
	}
	c.json(http.StatusOK, map[string]any{"paging": map[string]any{"start": 0, "count": 10, "links": []any{}}, "elements": elems})
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// adminReporting serves GET /_sandbox/reporting (the model's flags per
// event and the switches) and POST /_sandbox/reporting (new switches).
func (s *Server) adminReporting(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		var rep Reporting
		if !readAdmin(w, r, &rep) {
			return
		}
		if err := s.SetReporting(rep); err != nil {
			adminErr(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	now := s.now()
	s.mu.Lock()
	model := s.reportModel(now)
	rep := s.rep
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"switches": rep, "elements": model})
}

package linkedin

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Conversion rule constants (§12).
const (
	// ConversionsPath is the conversion rules resource.
	ConversionsPath = "/rest/conversions"
	// MethodConversionsAPI is the conversionMethod of rules capstan creates
	// and the only one that accepts API events (§12.1, §10.2 B1).
	MethodConversionsAPI = "CONVERSIONS_API"
	// MethodPartialUpdate is the X-RestLi-Method of a rule update (§12.4).
	MethodPartialUpdate = "PARTIAL_UPDATE"
	// Default attribution windows of a new rule, in days (§12.1, §20.1).
	DefaultPostClickWindowDays   = 30
	DefaultViewThroughWindowDays = 7
	// maxListPages bounds paging loops against a server that never ends.
	maxListPages = 1000
)

// Rule is a conversion rule as LinkedIn returns it (§12.1).
type Rule struct {
	// ID is the decimal rule id ("14488340"); events name the rule as
	// urn:lla:llaPartnerConversion:{ID}.
	ID string
	// Account is the ad account id, parsed from the account URN (0 when
	// LinkedIn sent something else).
	Account          int64
	Name             string
	ConversionMethod string
	Type             string
	Enabled          bool
	AttributionType  string
	// Attribution windows in days.
	PostClickWindowDays   int
	ViewThroughWindowDays int
	ValueType             string
	Value                 *ConversionValue
	// Campaigns are the ids of the associated campaigns.
	Campaigns []int64
	// Created and LastModified are zero when LinkedIn left them out.
	Created      time.Time
	LastModified time.Time
	// Status fields (§22.1), read only: LastCallbackAt and
	// LatestFirstPartyCallbackAt are zero until LinkedIn received a
	// conversion signal for the rule; Associations are the associated
	// campaigns with their association time (zero when not sent).
	LastCallbackAt             time.Time
	LatestFirstPartyCallbackAt time.Time
	Associations               []Association
}

// Association is a campaign associated with a rule (§22.1
// associatedCampaigns).
type Association struct {
	Campaign     int64
	AssociatedAt time.Time
}

// URN returns urn:lla:llaPartnerConversion:{ID}.
func (r Rule) URN() string { return ruleURNPrefix + r.ID }

// ruleJSON is the wire form of a rule, decoded leniently.
type ruleJSON struct {
	ID                               json.RawMessage  `json:"id"`
	Name                             string           `json:"name"`
	Account                          string           `json:"account"`
	ConversionMethod                 string           `json:"conversionMethod"`
	Type                             string           `json:"type"`
	Enabled                          *bool            `json:"enabled"`
	AttributionType                  string           `json:"attributionType"`
	PostClickAttributionWindowSize   int              `json:"postClickAttributionWindowSize"`
	ViewThroughAttributionWindowSize int              `json:"viewThroughAttributionWindowSize"`
	ValueType                        string           `json:"valueType"`
	Value                            *ConversionValue `json:"value"`
	Campaigns                        []string         `json:"campaigns"`
	Created                          int64            `json:"created"`
	LastModified                     int64            `json:"lastModified"`
	LastCallbackAt                   *int64           `json:"lastCallbackAt"`
	LatestFirstPartyCallbackAt       *int64           `json:"latestFirstPartyCallbackAt"`
	AssociatedCampaigns              []struct {
		Campaign     string `json:"campaign"`
		AssociatedAt int64  `json:"associatedAt"`
	} `json:"associatedCampaigns"`
}

func (j *ruleJSON) rule() Rule {
	r := Rule{
		ID:                    rawID(j.ID),
		Name:                  j.Name,
		ConversionMethod:      j.ConversionMethod,
		Type:                  j.Type,
		Enabled:               j.Enabled == nil || *j.Enabled, // LinkedIn's default is true
		AttributionType:       j.AttributionType,
		PostClickWindowDays:   j.PostClickAttributionWindowSize,
		ViewThroughWindowDays: j.ViewThroughAttributionWindowSize,
		ValueType:             j.ValueType,
		Value:                 j.Value,
	}
	r.Account, _ = urnID(j.Account, accountURNPrefix)
	for _, c := range j.Campaigns {
		if id, ok := urnID(c, campaignURNPrefix); ok {
			r.Campaigns = append(r.Campaigns, id)
		}
	}
	if j.Created > 0 {
		r.Created = time.UnixMilli(j.Created).UTC()
	}
	if j.LastModified > 0 {
		r.LastModified = time.UnixMilli(j.LastModified).UTC()
	}
	r.LastCallbackAt, r.LatestFirstPartyCallbackAt = msTime(j.LastCallbackAt), msTime(j.LatestFirstPartyCallbackAt)
	for _, a := range j.AssociatedCampaigns {
		if id, ok := urnID(a.Campaign, campaignURNPrefix); ok {
			as := Association{Campaign: id}
			if a.AssociatedAt > 0 {
				as.AssociatedAt = time.UnixMilli(a.AssociatedAt).UTC()
			}
			r.Associations = append(r.Associations, as)
			if !slices.Contains(r.Campaigns, id) {
				r.Campaigns = append(r.Campaigns, id)
			}
		}
	}
	return r
}

// msTime reads an optional epoch-milliseconds field (absent or null:
// zero).
func msTime(ms *int64) time.Time {
	if ms == nil || *ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(*ms).UTC()
}

// rawID reads an id sent as a JSON number or string.
func rawID(raw json.RawMessage) string {
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return ""
}

// URN prefixes (§2.2).
const (
	accountURNPrefix  = "urn:li:sponsoredAccount:"
	campaignURNPrefix = "urn:li:sponsoredCampaign:"
)

// AccountURN returns urn:li:sponsoredAccount:{id}.
func AccountURN(id int64) string { return accountURNPrefix + strconv.FormatInt(id, 10) }

// CampaignURN returns urn:li:sponsoredCampaign:{id}.
func CampaignURN(id int64) string { return campaignURNPrefix + strconv.FormatInt(id, 10) }

func urnID(urn, prefix string) (int64, bool) {
	s, ok := strings.CutPrefix(urn, prefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n > 0
}

// ruleID returns the decimal id of a rule given as an id or a URN.
func ruleID(id string) (string, error) {
	urn, err := RuleURN(id)
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(urn, ruleURNPrefix), nil
}

// RuleSpec describes a rule to create, or the wanted state of an existing
// one (§12.1, §20.1 hook inputs). For creation Name, Type and
// AttributionType are required and a zero window means the default
// (30 / 7 days); for EnsureRule on an existing rule a zero field means
// "leave as it is".
type RuleSpec struct {
	// Name is the display name in Campaign Manager.
	Name string
	// Type is a conversion type of §12.5 (PURCHASE, SIGN_UP, …).
	Type string
	// AttributionType is LAST_TOUCH_BY_CAMPAIGN or LAST_TOUCH_BY_CONVERSION.
	AttributionType string
	// PostClickWindowDays and ViewThroughWindowDays are 1, 7, 30 or 90
	// (365 for some types).
	PostClickWindowDays   int
	ViewThroughWindowDays int
	// Enabled nil means true on creation and unchanged on update.
	Enabled *bool
	// ValueType (DYNAMIC, FIXED, NO_VALUE) and Value (for FIXED) are sent
	// when set.
	ValueType string
	Value     *ConversionValue
	// AutoAssociateAllCampaigns creates the rule with
	// autoAssociationType=ALL_CAMPAIGNS (§12.1). Creation only.
	AutoAssociateAllCampaigns bool
}

// createRuleBody is the body of §12.1 in the spec's key order.
type createRuleBody struct {
	Name                             string           `json:"name"`
	Account                          string           `json:"account"`
	ConversionMethod                 string           `json:"conversionMethod"`
	PostClickAttributionWindowSize   int              `json:"postClickAttributionWindowSize"`
	ViewThroughAttributionWindowSize int              `json:"viewThroughAttributionWindowSize"`
	AttributionType                  string           `json:"attributionType,omitempty"`
	Type                             string           `json:"type"`
	Enabled                          *bool            `json:"enabled,omitempty"`
	ValueType                        string           `json:"valueType,omitempty"`
	Value                            *ConversionValue `json:"value,omitempty"`
}

// CreateRule creates a CONVERSIONS_API rule on account (§12.1) and returns
// it. The id comes from the x-restli-id header, or the body's id. Errors
// are *APIError.
func (c *Client) CreateRule(ctx context.Context, account int64, spec RuleSpec) (Rule, error) {
	const op = "create conversion rule"
	body := createRuleBody{
		Name:                             spec.Name,
		Account:                          AccountURN(account),
		ConversionMethod:                 MethodConversionsAPI,
		PostClickAttributionWindowSize:   cmp.Or(spec.PostClickWindowDays, DefaultPostClickWindowDays),
		ViewThroughAttributionWindowSize: cmp.Or(spec.ViewThroughWindowDays, DefaultViewThroughWindowDays),
		AttributionType:                  spec.AttributionType,
		Type:                             spec.Type,
		Enabled:                          spec.Enabled,
		ValueType:                        spec.ValueType,
		Value:                            spec.Value,
	}
	b, err := json.Marshal(body)
	if err != nil {
		return Rule{}, fmt.Errorf("%s: %w", op, err)
	}
	m := message{op: op, method: http.MethodPost, path: ConversionsPath, body: b, header: restHeader("")}
	if spec.AutoAssociateAllCampaigns {
		m.query = "autoAssociationType=ALL_CAMPAIGNS"
	}
	resp, err := c.call(ctx, m)
	if err != nil {
		return Rule{}, err
	}
	var j ruleJSON
	_ = json.Unmarshal(resp.Body, &j) // the body is a courtesy; the header has the id
	r := j.rule()
	if id := strings.TrimSpace(resp.Header.Get(headerRestliID)); id != "" {
		r.ID = id
	}
	if r.ID == "" {
		return Rule{}, &APIError{Op: op, Outcome: Outcome{Class: ClassDeadLetter, Status: resp.Status},
			Err: errors.New("answer has neither x-restli-id nor an id")}
	}
	if r.Account == 0 { // an empty body: fill in what was sent
		r.Account, r.Name, r.ConversionMethod, r.Type = account, body.Name, body.ConversionMethod, body.Type
		r.AttributionType = cmp.Or(body.AttributionType, "LAST_TOUCH_BY_CAMPAIGN")
		r.PostClickWindowDays, r.ViewThroughWindowDays = body.PostClickAttributionWindowSize, body.ViewThroughAttributionWindowSize
		r.Enabled = spec.Enabled == nil || *spec.Enabled
		r.ValueType, r.Value = body.ValueType, body.Value
	}
	c.log.Info("conversion rule created", "rule", r.ID, "account", account, "type", r.Type)
	return r, nil
}

// GetRule returns rule id (a decimal id or a rule URN) of account
// (§12.2). A rule that does not exist or belongs to another account is an
// *APIError matching ErrNotFound.
func (c *Client) GetRule(ctx context.Context, account int64, id string) (Rule, error) {
	const op = "get conversion rule"
	rid, err := ruleID(id)
	if err != nil {
		return Rule{}, fmt.Errorf("%s: %w", op, err)
	}
	resp, err := c.call(ctx, message{op: op, method: http.MethodGet, path: ConversionsPath + "/" + rid,
		query: "account=" + url.QueryEscape(AccountURN(account))})
	if err != nil {
		return Rule{}, err
	}
	var j ruleJSON
	if err := json.Unmarshal(resp.Body, &j); err != nil {
		return Rule{}, &APIError{Op: op, Outcome: Outcome{Class: ClassRetry, Status: resp.Status},
			Err: fmt.Errorf("decode rule: %w", err)}
	}
	r := j.rule()
	if r.ID == "" {
		r.ID = rid
	}
	return r, nil
}

// page is a Rest.li collection answer (§12.3, §14).
type page[T any] struct {
	Paging struct {
		Start int `json:"start"`
		Count int `json:"count"`
	} `json:"paging"`
	Elements []T `json:"elements"`
}

// list follows start/count paging from start 0 until a page has fewer
// elements than its count (§12.3), and returns every element.
func list[T any](ctx context.Context, c *Client, op, path, query string) ([]T, error) {
	var all []T
	start := 0
	for range maxListPages {
		q := query + "&start=" + strconv.Itoa(start) + "&count=" + strconv.Itoa(c.pageSize)
		resp, err := c.call(ctx, message{op: op, method: http.MethodGet, path: path, query: q})
		if err != nil {
			return nil, err
		}
		var p page[T]
		if err := json.Unmarshal(resp.Body, &p); err != nil {
			return nil, &APIError{Op: op, Outcome: Outcome{Class: ClassRetry, Status: resp.Status},
				Err: fmt.Errorf("decode page at start %d: %w", start, err)}
		}
		all = append(all, p.Elements...)
		count := c.pageSize
		if p.Paging.Count > 0 {
			count = min(count, p.Paging.Count) // the server may cap count
		}
		if len(p.Elements) == 0 || len(p.Elements) < count {
			return all, nil
		}
		start += len(p.Elements)
	}
	return nil, fmt.Errorf("%s: more than %d pages", op, maxListPages)
}

// ListRules returns every rule of account, Insight Tag rules included,
// following paging (§12.3). Callers wanting API rules keep those with
// ConversionMethod == MethodConversionsAPI and Enabled.
func (c *Client) ListRules(ctx context.Context, account int64) ([]Rule, error) {
	js, err := list[ruleJSON](ctx, c, "list conversion rules", ConversionsPath,
		"q=account&account="+url.QueryEscape(AccountURN(account)))
	if err != nil {
		return nil, err
	}
	rules := make([]Rule, len(js))
	for i := range js {
		rules[i] = js[i].rule()
	}
	return rules, nil
}

// RulePatch lists the fields to change in UpdateRule; nil fields are left
// alone (§12.4). account and conversionMethod are immutable.
type RulePatch struct {
	Name                  *string          `json:"name,omitempty"`
	Type                  *string          `json:"type,omitempty"`
	Enabled               *bool            `json:"enabled,omitempty"`
	AttributionType       *string          `json:"attributionType,omitempty"`
	PostClickWindowDays   *int             `json:"postClickAttributionWindowSize,omitempty"`
	ViewThroughWindowDays *int             `json:"viewThroughAttributionWindowSize,omitempty"`
	ValueType             *string          `json:"valueType,omitempty"`
	Value                 *ConversionValue `json:"value,omitempty"`
}

// fieldNames lists the LinkedIn names of the fields the patch sets.
func (p RulePatch) fieldNames() []string {
	var m map[string]json.RawMessage
	b, _ := json.Marshal(p)
	_ = json.Unmarshal(b, &m)
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// IsEmpty reports whether the patch changes nothing.
func (p RulePatch) IsEmpty() bool { return p == RulePatch{} }

// apply returns r with the patch applied.
func (p RulePatch) apply(r Rule) Rule {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&r.Name, p.Name)
	set(&r.Type, p.Type)
	set(&r.AttributionType, p.AttributionType)
	set(&r.ValueType, p.ValueType)
	if p.Enabled != nil {
		r.Enabled = *p.Enabled
	}
	if p.PostClickWindowDays != nil {
		r.PostClickWindowDays = *p.PostClickWindowDays
	}
	if p.ViewThroughWindowDays != nil {
		r.ViewThroughWindowDays = *p.ViewThroughWindowDays
	}
	if p.Value != nil {
		v := *p.Value
		r.Value = &v
	}
	return r
}

// UpdateRule changes the fields set in patch on rule id of account with a
// PARTIAL_UPDATE (§12.4): POST {"patch":{"$set":{…}}}. An empty patch is
// sent too (LinkedIn answers 204). Errors are *APIError.
func (c *Client) UpdateRule(ctx context.Context, account int64, id string, patch RulePatch) error {
	const op = "update conversion rule"
	rid, err := ruleID(id)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	b, err := json.Marshal(struct {
		Patch struct {
			Set RulePatch `json:"$set"`
		} `json:"patch"`
	}{Patch: struct {
		Set RulePatch `json:"$set"`
	}{Set: patch}})
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	_, err = c.call(ctx, message{op: op, method: http.MethodPost, path: ConversionsPath + "/" + rid,
		query: "account=" + url.QueryEscape(AccountURN(account)), body: b, header: restHeader(MethodPartialUpdate)})
	if err == nil {
		c.log.Info("conversion rule updated", "rule", rid, "account", account, "fields", patch.fieldNames())
	}
	return err
}

// diff returns the patch that makes r match the non-zero fields of spec.
func (spec RuleSpec) diff(r Rule) RulePatch {
	var p RulePatch
	str := func(want, have string) *string {
		if want != "" && want != have {
			return &want
		}
		return nil
	}
	num := func(want, have int) *int {
		if want != 0 && want != have {
			return &want
		}
		return nil
	}
	p.Name = str(spec.Name, r.Name)
	p.Type = str(spec.Type, r.Type)
	p.AttributionType = str(spec.AttributionType, r.AttributionType)
	p.PostClickWindowDays = num(spec.PostClickWindowDays, r.PostClickWindowDays)
	p.ViewThroughWindowDays = num(spec.ViewThroughWindowDays, r.ViewThroughWindowDays)
	p.ValueType = str(spec.ValueType, r.ValueType)
	if spec.Enabled != nil && *spec.Enabled != r.Enabled {
		e := *spec.Enabled
		p.Enabled = &e
	}
	if spec.Value != nil && (r.Value == nil || *r.Value != *spec.Value) {
		v := *spec.Value
		p.Value = &v
	}
	return p
}

// missingForCreate returns the hook's message for the fields a creation
// lacks, or "" (§20.3: Name, Conversion Type, Attribution Type, in that
// order, only the missing ones).
func (spec RuleSpec) missingForCreate() string {
	var missing []string
	if strings.TrimSpace(spec.Name) == "" {
		missing = append(missing, "Name")
	}
	if strings.TrimSpace(spec.Type) == "" {
		missing = append(missing, "Conversion Type")
	}
	if strings.TrimSpace(spec.AttributionType) == "" {
		missing = append(missing, "Attribution Type")
	}
	if len(missing) == 0 {
		return ""
	}
	return hookMissingFieldsPrefix + strings.Join(missing, ", ")
}

// EnsureRule is the onMappingSave hook of §20.1: it makes sure a
// CONVERSIONS_API rule of account matches spec and returns it.
//
//   - With knownID (the id saved from an earlier call): GET the rule and
//     verify that it exists, belongs to account and is a CONVERSIONS_API
//     rule; then PARTIAL_UPDATE the fields of spec that differ from the
//     live rule (none: no update). Comparing with the live rule rather
//     than with saved hook outputs, as Segment does, also repairs edits
//     made in Campaign Manager.
//   - Without knownID: adopt an existing enabled CONVERSIONS_API rule of
//     account whose name equals spec.Name exactly (the newest if several),
//     updated as above; otherwise create one (windows default 30 / 7).
//     Adopting by name is capstan's choice: it makes the hook idempotent
//     when the saved id was lost (a crash between creation and saving it),
//     where Segment would create a duplicate rule.
//
// Calling it again with the returned id creates nothing and, when nothing
// changed, sends only the GET. Errors are *HookError with the codes and
// messages of §20.3 (CONVERSION_RULE_VERIFICATION_FAILURE,
// CONVERSION_RULE_UPDATE_FAILURE, CONVERSION_RULE_CREATION_FAILURE,
// MISSING_REQUIRED_FIELD), wrapping the *APIError.
func (c *Client) EnsureRule(ctx context.Context, account int64, spec RuleSpec, knownID string) (Rule, error) {
	if knownID = strings.TrimSpace(knownID); knownID != "" {
		r, err := c.GetRule(ctx, account, knownID)
		if err != nil {
			return Rule{}, hookError(CodeRuleVerificationFailure, hookVerifyPrefix, err)
		}
		if err := verifyRule(r, account); err != nil {
			return Rule{}, &HookError{Code: CodeRuleVerificationFailure, Message: hookVerifyPrefix + err.Error(), Err: err}
		}
		return c.updateToSpec(ctx, account, r, spec)
	}
	if msg := spec.missingForCreate(); msg != "" {
		return Rule{}, &HookError{Code: CodeMissingRequiredField, Message: msg, Status: http.StatusBadRequest,
			Err: errors.New(strings.ToLower(msg[:1]) + msg[1:])}
	}
	rules, err := c.ListRules(ctx, account)
	if err != nil {
		return Rule{}, hookError(CodeRuleCreationFailure, hookCreatePrefix, err)
	}
	var found *Rule
	for i := range rules {
		r := &rules[i]
		if r.ConversionMethod == MethodConversionsAPI && r.Enabled && r.Name == spec.Name &&
			(r.Account == account || r.Account == 0) && (found == nil || r.Created.After(found.Created)) {
			found = r
		}
	}
	if found != nil {
		c.log.Info("adopting existing conversion rule with the same name", "rule", found.ID, "account", account)
		found.Account = account
		return c.updateToSpec(ctx, account, *found, spec)
	}
	r, err := c.CreateRule(ctx, account, spec)
	if err != nil {
		return Rule{}, hookError(CodeRuleCreationFailure, hookCreatePrefix, err)
	}
	return r, nil
}

// errRuleMismatch explains why a rule cannot serve as the mapping's rule.
var errRuleMismatch = errors.New("rule mismatch")

func verifyRule(r Rule, account int64) error {
	switch {
	case r.Account != account:
		return fmt.Errorf("%w: rule %s belongs to ad account %d, not %d", errRuleMismatch, r.ID, r.Account, account)
	case r.ConversionMethod != MethodConversionsAPI:
		return fmt.Errorf("%w: rule %s uses conversion method %s, not %s", errRuleMismatch, r.ID, r.ConversionMethod, MethodConversionsAPI)
	}
	return nil
}

func (c *Client) updateToSpec(ctx context.Context, account int64, r Rule, spec RuleSpec) (Rule, error) {
	p := spec.diff(r)
	if p.IsEmpty() {
		return r, nil
	}
	if err := c.UpdateRule(ctx, account, r.ID, p); err != nil {
		return Rule{}, hookError(CodeRuleUpdateFailure, hookUpdatePrefix, err)
	}
	return p.apply(r), nil
}

// call runs m and turns anything but a success into an *APIError.
func (c *Client) call(ctx context.Context, m message) (Response, error) {
	resp, out, err := c.exchange(ctx, m)
	if err != nil || out.Class != ClassSuccess {
		return resp, &APIError{Op: m.op, Outcome: out, Err: err}
	}
	return resp, nil
}

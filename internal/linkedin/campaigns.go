package linkedin

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Campaign association constants (§13).
const (
	// CampaignConversionsPath is the campaign association resource.
	CampaignConversionsPath = "/rest/campaignConversions"
	// maxAssociationBatch bounds the keys of one batch PUT: each key is
	// about 110 characters of URL, so 50 keep the URL near 6 KB, under
	// common 8 KB proxy limits.
	maxAssociationBatch = 50
)

// restliEscape percent-encodes s for use inside a Rest.li 2.0 key (§2.3):
// everything but unreserved characters, so ':' becomes %3A while the
// key's own parentheses, names, colons and commas stay literal.
func restliEscape(s string) string {
	var b strings.Builder
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' ||
			ch == '-' || ch == '.' || ch == '_' || ch == '~' {
			b.WriteByte(ch)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[ch>>4])
		b.WriteByte(hex[ch&15])
	}
	return b.String()
}

// associationKey is the compound key of §13:
// (campaign:urn%3Ali%3AsponsoredCampaign%3A1,conversion:urn%3Alla%3AllaPartnerConversion%3A2).
func associationKey(campaignURN, ruleURN string) string {
	return "(campaign:" + restliEscape(campaignURN) + ",conversion:" + restliEscape(ruleURN) + ")"
}

// canonicalKey decodes a compound key for comparison, so that keys echoed
// in a batch answer match whatever encoding LinkedIn chose.
func canonicalKey(k string) string {
	if d, err := url.PathUnescape(k); err == nil {
		return d
	}
	return k
}

// association is the entity body of §13.
type association struct {
	Campaign   string `json:"campaign"`
	Conversion string `json:"conversion"`
}

// AssociationError lists the campaigns a batch association refused, each
// with LinkedIn's per-key error.
type AssociationError struct {
	// Failed maps campaign ids to their error.
	Failed map[int64]*APIError
}

func (e *AssociationError) campaigns() []int64 {
	ids := make([]int64, 0, len(e.Failed))
	for id := range e.Failed {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (e *AssociationError) Error() string {
	var b strings.Builder
	b.WriteString("associate campaigns: ")
	for i, id := range e.campaigns() {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "campaign %d: %s", id, e.Failed[id].reason())
	}
	return b.String()
}

// Unwrap returns the per-campaign errors in campaign order.
func (e *AssociationError) Unwrap() []error {
	out := make([]error, 0, len(e.Failed))
	for _, id := range e.campaigns() {
		out = append(out, e.Failed[id])
	}
	return out
}

func (e *AssociationError) reason() string {
	parts := make([]string, 0, len(e.Failed))
	for _, id := range e.campaigns() {
		parts = append(parts, e.Failed[id].reason())
	}
	return strings.Join(parts, "; ")
}

// status returns the per-key status when all failures agree, else 0.
func (e *AssociationError) status() int {
	s := -1
	for _, ae := range e.Failed {
		switch {
		case s == -1:
			s = ae.Status
		case s != ae.Status:
			return 0
		}
	}
	return max(s, 0)
}

// AssociateCampaigns associates campaigns with rule ruleID (a decimal id or
// a rule URN) (§13): one campaign with a single PUT, several with batch
// PUTs of up to 50 keys in Rest.li 2.0 encoding. Associating is idempotent
// and only adds (capstan never removes associations); duplicate ids are
// sent once, and no campaigns means no call.
//
// Errors are *HookError with code ASSOCIATE_CAMPAIGN_TO_CONVERSION_ERROR
// and §20.3's message, wrapping the *APIError of the failed call or, when
// a batch refused some keys while accepting others, an *AssociationError
// naming them. Keys the batch answer does not mention are taken as done.
func (c *Client) AssociateCampaigns(ctx context.Context, ruleID string, campaigns []int64) error {
	rule, err := RuleURN(ruleID)
	if err != nil {
		return hookError(CodeAssociateCampaignsFailure, hookAssociatePrefix, err)
	}
	ids := slices.Clone(campaigns)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	for _, id := range ids {
		if id <= 0 {
			return hookError(CodeAssociateCampaignsFailure, hookAssociatePrefix,
				fmt.Errorf("campaign id %d: must be positive", id))
		}
	}
	switch len(ids) {
	case 0:
		return nil
	case 1:
		err = c.associateOne(ctx, rule, ids[0])
	default:
		for chunk := range slices.Chunk(ids, maxAssociationBatch) {
			if err = c.associateBatch(ctx, rule, chunk); err != nil {
				break
			}
		}
	}
	if err != nil {
		return hookError(CodeAssociateCampaignsFailure, hookAssociatePrefix, err)
	}
	c.log.Info("campaigns associated", "rule", strings.TrimPrefix(rule, ruleURNPrefix), "campaigns", len(ids))
	return nil
}

func (c *Client) associateOne(ctx context.Context, rule string, campaign int64) error {
	cu := CampaignURN(campaign)
	b, err := json.Marshal(association{Campaign: cu, Conversion: rule})
	if err != nil {
		return err
	}
	_, err = c.call(ctx, message{op: "associate campaign", method: http.MethodPut,
		path: CampaignConversionsPath + "/" + associationKey(cu, rule), body: b, header: restHeader("")})
	return err
}

func (c *Client) associateBatch(ctx context.Context, rule string, campaigns []int64) error {
	const op = "associate campaigns"
	keys := make([]string, len(campaigns))
	byKey := make(map[string]int64, len(campaigns))
	entities := make(map[string]association, len(campaigns))
	for i, id := range campaigns {
		cu := CampaignURN(id)
		keys[i] = associationKey(cu, rule)
		byKey[canonicalKey(keys[i])] = id
		entities[keys[i]] = association{Campaign: cu, Conversion: rule}
	}
	b, err := json.Marshal(struct {
		Entities map[string]association `json:"entities"`
	}{entities})
	if err != nil {
		return err
	}
	resp, err := c.call(ctx, message{op: op, method: http.MethodPut, path: CampaignConversionsPath,
		query: "ids=List(" + strings.Join(keys, ",") + ")", body: b, header: restHeader("")})
	if err != nil {
		return err
	}
	var ans struct {
		Results map[string]struct {
			Status int `json:"status"`
		} `json:"results"`
		Errors map[string]errorBody `json:"errors"`
	}
	if len(resp.Body) > 0 {
		if err := json.Unmarshal(resp.Body, &ans); err != nil {
			return &APIError{Op: op, Outcome: Outcome{Class: ClassRetry, Status: resp.Status},
				Err: fmt.Errorf("decode batch answer: %w", err)}
		}
	}
	failed := map[int64]*APIError{}
	for k, eb := range ans.Errors {
		id, ok := byKey[canonicalKey(k)]
		if !ok {
			continue
		}
		st := cmp.Or(eb.Status, http.StatusBadRequest)
		failed[id] = &APIError{Op: "associate campaign " + strconv.FormatInt(id, 10),
			Outcome: Classify(Response{Status: st, Body: mustJSON(eb)}, 0, c.now())}
	}
	for k, r := range ans.Results {
		if id, ok := byKey[canonicalKey(k)]; ok && r.Status >= 400 && failed[id] == nil {
			failed[id] = &APIError{Op: "associate campaign " + strconv.FormatInt(id, 10),
				Outcome: Outcome{Class: ClassDeadLetter, Status: r.Status}}
		}
	}
	if len(failed) > 0 {
		return &AssociationError{Failed: failed}
	}
	return nil
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// Campaign is an ad campaign (§14.3).
type Campaign struct {
	ID int64
	// Account is the ad account id.
	Account int64
	Name    string
	// Status is ACTIVE, DRAFT, PAUSED, ARCHIVED, …
	Status string
	// Type is the campaign type (SPONSORED_UPDATES, TEXT_AD, …).
	Type string
}

// ListCampaigns returns the campaigns of account, following paging
// (§14.3), optionally only those with one of statuses (ACTIVE, DRAFT,
// PAUSED, …; none means every status). Errors are *APIError.
func (c *Client) ListCampaigns(ctx context.Context, account int64, statuses ...string) ([]Campaign, error) {
	q := "q=search"
	if len(statuses) > 0 {
		vals := make([]string, len(statuses))
		for i, s := range statuses {
			vals[i] = url.QueryEscape(strings.TrimSpace(s))
		}
		q += "&search=(status:(values:List(" + strings.Join(vals, ",") + ")))"
	}
	type campaignJSON struct {
		ID      json.RawMessage `json:"id"`
		Name    string          `json:"name"`
		Account string          `json:"account"`
		Status  string          `json:"status"`
		Type    string          `json:"type"`
	}
	js, err := list[campaignJSON](ctx, c, "list campaigns",
		"/rest/adAccounts/"+strconv.FormatInt(account, 10)+"/adCampaigns", q)
	if err != nil {
		return nil, err
	}
	out := make([]Campaign, 0, len(js))
	for _, j := range js {
		id, _ := strconv.ParseInt(rawID(j.ID), 10, 64)
		cp := Campaign{ID: id, Name: j.Name, Status: j.Status, Type: j.Type}
		if cp.Account, _ = urnID(j.Account, accountURNPrefix); cp.Account == 0 {
			cp.Account = account
		}
		out = append(out, cp)
	}
	return out, nil
}

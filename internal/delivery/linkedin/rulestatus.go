package linkedin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/delivery"
	capi "github.com/capstan-gw/capstan/internal/linkedin"
)

// Statuses of a RuleReport besides the derived ones of capi (§22.3).
const (
	// RuleNotCreated: the mapping's rule is to be created and no id is
	// saved yet (serve creates it before delivering).
	RuleNotCreated = "not_created"
	// RuleUnknown: LinkedIn could not be asked (Error says why).
	RuleUnknown = "unknown"
)

// RuleReport is one configured mapping's conversion rule as LinkedIn has
// it: the status fields of §22 read with GET /rest/conversions/{id}, the
// derived status of §22.3, what differs from the configuration, and a
// verdict for a person. It is the JSON of `capstan rules list --json` and
// of GET /admin/api/destinations/{name}/rules.
type RuleReport struct {
	Destination string `json:"destination"`
	Mapping     string `json:"mapping"`
	// RuleID is the rule's id; "" when not created yet.
	RuleID string `json:"ruleId,omitempty"`
	// Status is capi's derived status (receiving, stale, unverified,
	// disabled, not_capi) or RuleNotCreated / RuleUnknown.
	Status string `json:"status"`
	// NoCampaigns warns that no campaign is associated (§22.3).
	NoCampaigns bool `json:"noCampaigns"`
	// Verdict says in a sentence what the status means.
	Verdict string `json:"verdict"`
	// Differs lists the configured rule options the live rule does not
	// have ("enabled: configured false, LinkedIn has true").
	Differs []string `json:"differs,omitempty"`
	// Error is why LinkedIn could not be asked.
	Error string `json:"error,omitempty"`
	// Rule is the rule as LinkedIn returned it; nil without an answer.
	Rule *RuleFields `json:"rule,omitempty"`
}

// RuleFields are a rule's fields as LinkedIn returned them (§12.1, §22.1);
// times are RFC 3339, absent when LinkedIn sent none.
type RuleFields struct {
	ID                         string                `json:"id"`
	Name                       string                `json:"name"`
	Account                    int64                 `json:"account"`
	ConversionMethod           string                `json:"conversionMethod"`
	Type                       string                `json:"type"`
	Enabled                    bool                  `json:"enabled"`
	AttributionType            string                `json:"attributionType,omitempty"`
	PostClickWindowDays        int                   `json:"postClickAttributionWindowSize,omitempty"`
	ViewThroughWindowDays      int                   `json:"viewThroughAttributionWindowSize,omitempty"`
	ValueType                  string                `json:"valueType,omitempty"`
	Value                      *capi.ConversionValue `json:"value,omitempty"`
	Campaigns                  []int64               `json:"campaigns"`
	AssociatedCampaigns        []AssociatedCampaign  `json:"associatedCampaigns"`
	Created                    *time.Time            `json:"created,omitempty"`
	LastModified               *time.Time            `json:"lastModified,omitempty"`
	LastCallbackAt             *time.Time            `json:"lastCallbackAt,omitempty"`
	LatestFirstPartyCallbackAt *time.Time            `json:"latestFirstPartyCallbackAt,omitempty"`
}

// AssociatedCampaign is one associatedCampaigns entry.
type AssociatedCampaign struct {
	Campaign     int64      `json:"campaign"`
	AssociatedAt *time.Time `json:"associatedAt,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func ruleFields(r capi.Rule) *RuleFields {
	f := &RuleFields{ID: r.ID, Name: r.Name, Account: r.Account, ConversionMethod: r.ConversionMethod, Type: r.Type,
		Enabled: r.Enabled, AttributionType: r.AttributionType, PostClickWindowDays: r.PostClickWindowDays,
		ViewThroughWindowDays: r.ViewThroughWindowDays, ValueType: r.ValueType, Value: r.Value,
		Campaigns: slices.Clone(r.Campaigns), AssociatedCampaigns: []AssociatedCampaign{},
		Created: timePtr(r.Created), LastModified: timePtr(r.LastModified),
		LastCallbackAt: timePtr(r.LastCallbackAt), LatestFirstPartyCallbackAt: timePtr(r.LatestFirstPartyCallbackAt)}
	if f.Campaigns == nil {
		f.Campaigns = []int64{}
	}
	for _, a := range r.Associations {
		f.AssociatedCampaigns = append(f.AssociatedCampaigns, AssociatedCampaign{Campaign: a.Campaign, AssociatedAt: timePtr(a.AssociatedAt)})
	}
	return f
}

// RuleReports reads, for each mapping of plan, its conversion rule from
// LinkedIn (GET /rest/conversions/{id}; a rule shared by mappings is read
// once) and reports its status at now. The id is the route's (Prepare
// set it, or the configuration's), else the one saved in the state bucket.
// A failed read is reported in that mapping's report; ctx's end stops it.
func (d *Destination) RuleReports(ctx context.Context, plan *delivery.Plan, now time.Time) []RuleReport {
	type got struct {
		rule capi.Rule
		err  error
	}
	cache := map[string]got{}
	out := make([]RuleReport, 0, len(plan.Routes))
	for _, r := range plan.Routes {
		rep := RuleReport{Destination: plan.Name, Mapping: r.Name, RuleID: r.Rule}
		if rep.RuleID == "" {
			rep.RuleID = savedRuleID(ctx, d.state, plan.Name, r)
		}
		if rep.RuleID == "" {
			rep.Status = RuleNotCreated
			rep.Verdict = "not created yet: capstan serve creates it before it delivers"
			out = append(out, rep)
			continue
		}
		g, ok := cache[rep.RuleID]
		if !ok && ctx.Err() == nil {
			g.rule, g.err = d.client.GetRule(ctx, d.account, rep.RuleID)
			cache[rep.RuleID] = g
		} else if !ok {
			g.err = context.Cause(ctx)
		}
		if g.err != nil {
			rep.Status, rep.Error = RuleUnknown, g.err.Error()
			rep.Verdict = "LinkedIn could not be asked: " + g.err.Error()
			if errors.Is(g.err, capi.ErrNotFound) {
				rep.Verdict = fmt.Sprintf("rule %s does not exist in ad account %d (deleted, or another account's)", rep.RuleID, d.account)
			}
			out = append(out, rep)
			continue
		}
		st := g.rule.DeriveStatus(now)
		rep.Status, rep.NoCampaigns, rep.Rule = st.Status, st.NoCampaigns, ruleFields(g.rule)
		if r.Config != nil && r.Config.ConversionRule.Create != nil {
			rep.Differs = differs(r.Config.ConversionRule.Create, g.rule)
		}
		rep.Verdict = verdict(st, g.rule, now, rep.Differs)
		out = append(out, rep)
	}
	return out
}

// savedRuleID is the id Prepare saved for a route's rule to create, or "".
func savedRuleID(ctx context.Context, state jetstream.KeyValue, dest string, r *delivery.Route) string {
	if r.Config == nil || r.Config.ConversionRule.Create == nil {
		return ""
	}
	if e, err := state.Get(ctx, RuleKey(dest, r.Name)); err == nil {
		return string(e.Value())
	}
	return ""
}

// differs compares a rule's configured options with the live rule.
func differs(c *config.RuleCreate, r capi.Rule) []string {
	var out []string
	str := func(key, want, have string) {
		if want != "" && want != have {
			out = append(out, fmt.Sprintf("%s: configured %s, LinkedIn has %s", key, want, orNone(have)))
		}
	}
	num := func(key string, want, have int) {
		if want != 0 && want != have {
			out = append(out, fmt.Sprintf("%s: configured %d, LinkedIn has %d", key, want, have))
		}
	}
	str("name", c.Name, r.Name)
	str("type", c.Type, r.Type)
	str("attribution_type", c.AttributionType, r.AttributionType)
	num("post_click_window_days", c.PostClickWindowDays, r.PostClickWindowDays)
	num("view_through_window_days", c.ViewThroughWindowDays, r.ViewThroughWindowDays)
	str("value_type", c.ValueType, r.ValueType)
	if c.Value != nil && (r.Value == nil || r.Value.CurrencyCode != c.Value.CurrencyCode || r.Value.Amount != c.Value.Amount) {
		have := "none"
		if r.Value != nil {
			have = r.Value.Amount + " " + r.Value.CurrencyCode
		}
		out = append(out, fmt.Sprintf("value: configured %s %s, LinkedIn has %s", c.Value.Amount, c.Value.CurrencyCode, have))
	}
	if c.Enabled != nil && *c.Enabled != r.Enabled {
		out = append(out, fmt.Sprintf("enabled: configured %v, LinkedIn has %v", *c.Enabled, r.Enabled))
	}
	if c.AutoAssociationType == config.AutoAssociateAllCampaigns && len(r.Campaigns) == 0 && len(r.Associations) == 0 {
		out = append(out, "auto_association_type: configured ALL_CAMPAIGNS, LinkedIn has no campaign associated (it applies only when capstan creates the rule)")
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// verdict is a rule's status in a sentence.
func verdict(st capi.RuleStatus, r capi.Rule, now time.Time, diff []string) string {
	var parts []string
	switch st.Status {
	case capi.RuleDisabled:
		parts = append(parts, "disabled: LinkedIn counts no conversions for it")
	case capi.RuleNotCAPI:
		parts = append(parts, fmt.Sprintf("not a Conversions API rule (%s): LinkedIn refuses API events for it", r.ConversionMethod))
	case capi.RuleUnverified:
		parts = append(parts, "no conversion seen by LinkedIn yet")
	case capi.RuleStale:
		parts = append(parts, fmt.Sprintf("last conversion seen %s (%s ago): none in the last 7 days", st.Signal.UTC().Format(time.RFC3339), ago(now.Sub(st.Signal))))
	case capi.RuleReceiving:
		parts = append(parts, fmt.Sprintf("receiving: last conversion seen %s (%s ago)", st.Signal.UTC().Format(time.RFC3339), ago(now.Sub(st.Signal))))
	}
	if st.NoCampaigns {
		parts = append(parts, "no campaigns associated: LinkedIn accepts its conversions but attributes and reports none")
	} else {
		parts = append(parts, strconv.Itoa(max(len(r.Campaigns), len(r.Associations)))+" campaign(s) associated")
	}
	if len(diff) > 0 {
		parts = append(parts, "differs from the configuration ("+strings.Join(diff, "; ")+"); capstan serve updates what LinkedIn allows (PARTIAL_UPDATE) when it starts")
	}
	return strings.Join(parts, "; ")
}

// ago renders a duration for people: 3h, 2d5h, 45m, 20s.
func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	}
	days := int(d / (24 * time.Hour))
	return strconv.Itoa(days) + "d" + strconv.Itoa(int((d-time.Duration(days)*24*time.Hour)/time.Hour)) + "h"
}

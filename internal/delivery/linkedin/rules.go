package linkedin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/capstan-gw/capstan/internal/config"
	"github.com/capstan-gw/capstan/internal/delivery"
	capi "github.com/capstan-gw/capstan/internal/linkedin"
)

// RuleKey is the state-bucket key holding the id of the rule created for
// mapping of destination dest.
func RuleKey(dest, mapping string) string { return stateKey("rule", dest, mapping) }

// stateKey names a destination's entry in the state bucket.
func stateKey(kind, dest, name string) string {
	sum := sha256.Sum256([]byte(name))
	return kind + "." + dest + "." + hex.EncodeToString(sum[:8])
}

// Prepare gives every route of plan its conversion rule: rules to create
// are created once — their ids are kept in the state bucket, so restarts
// and other replicas reuse them, and EnsureRule adopts a rule of the same
// name if the id was lost — and the configured campaigns are associated
// (again only when the list changed). It runs before the plan is used
// concurrently (delivery.Runner.Serve).
func (d *Destination) Prepare(ctx context.Context, plan *delivery.Plan) error {
	if err := prepareRules(ctx, d.client, d.state, d.account, plan, d.log); err != nil {
		return fmt.Errorf("conversion rules: %w", err)
	}
	return nil
}

// ruleSpec is the rule a mapping's conversion_rule.create asks for: sent on
// creation, and made true of an existing rule with a PARTIAL_UPDATE of the
// fields that differ (§12.4 allows each; UpdateRule logs them), except the
// automatic association, which exists only at creation.
func ruleSpec(c *config.RuleCreate) capi.RuleSpec {
	spec := capi.RuleSpec{
		Name: c.Name, Type: c.Type, AttributionType: c.AttributionType,
		PostClickWindowDays: c.PostClickWindowDays, ViewThroughWindowDays: c.ViewThroughWindowDays,
		Enabled: c.Enabled, ValueType: c.ValueType,
		AutoAssociateAllCampaigns: c.AutoAssociationType == config.AutoAssociateAllCampaigns,
	}
	if c.Value != nil {
		spec.Value = &capi.ConversionValue{CurrencyCode: c.Value.CurrencyCode, Amount: c.Value.Amount}
	}
	return spec
}

func prepareRules(ctx context.Context, rc *capi.Client, state jetstream.KeyValue, account int64, p *delivery.Plan, log *slog.Logger) error {
	for _, r := range p.Routes {
		if r.Config == nil {
			continue
		}
		create, campaigns := r.Config.ConversionRule.Create, r.Config.Campaigns
		if create != nil && r.Rule == "" {
			key := RuleKey(p.Name, r.Name)
			known := ""
			if e, err := state.Get(ctx, key); err == nil {
				known = string(e.Value())
			} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
				return fmt.Errorf("read rule id of mapping %q: %w", r.Name, err)
			}
			spec := ruleSpec(create)
			rule, err := rc.EnsureRule(ctx, account, spec, known)
			if err != nil {
				return fmt.Errorf("conversion rule of mapping %q: %w", r.Name, err)
			}
			if spec.AutoAssociateAllCampaigns && len(rule.Campaigns) == 0 && len(rule.Associations) == 0 {
				log.Warn("conversion rule has no campaigns associated: auto_association_type ALL_CAMPAIGNS applies only when capstan creates the rule, "+
					"and LinkedIn accepts its conversions but reports none; associate campaigns with the mapping's campaigns: or in Campaign Manager",
					"mapping", r.Name, "rule", rule.ID)
			}
			if rule.ID != known {
				if _, err := state.Put(ctx, key, []byte(rule.ID)); err != nil {
					return fmt.Errorf("save rule id of mapping %q: %w", r.Name, err)
				}
			}
			r.Rule = rule.ID
		}
		if len(campaigns) == 0 || r.Rule == "" {
			continue
		}
		camps := slices.Clone(campaigns)
		slices.Sort(camps)
		parts := make([]string, len(camps))
		for i, c := range camps {
			parts[i] = strconv.FormatInt(c, 10)
		}
		want := strings.Join(parts, ",")
		key := stateKey("campaigns", p.Name, r.Rule)
		if e, err := state.Get(ctx, key); err == nil && string(e.Value()) == want {
			continue
		}
		if err := rc.AssociateCampaigns(ctx, r.Rule, camps); err != nil {
			return fmt.Errorf("associate campaigns of mapping %q: %w", r.Name, err)
		}
		if _, err := state.Put(ctx, key, []byte(want)); err != nil {
			return fmt.Errorf("save campaigns of mapping %q: %w", r.Name, err)
		}
	}
	return nil
}

// LoadRuleIDs gives routes of plan whose rule is to be created the id an
// earlier Prepare saved, when there is one (for preview, which creates
// nothing).
func LoadRuleIDs(ctx context.Context, state jetstream.KeyValue, p *delivery.Plan) {
	for _, r := range p.Routes {
		if r.Config == nil || r.Config.ConversionRule.Create == nil || r.Rule != "" {
			continue
		}
		if e, err := state.Get(ctx, RuleKey(p.Name, r.Name)); err == nil {
			r.Rule = string(e.Value())
		}
	}
}

// RuleState is a mapping's conversion rule as capstan knows it, for the
// console.
type RuleState struct {
	// Mapping is the mapping's name.
	Mapping string
	// RuleID is the rule's LinkedIn id: configured (conversion_rule.id)
	// or created (conversion_rule.create; "" until created).
	RuleID string
	// Created says capstan creates the rule; Name and Type are then the
	// rule's name and conversion type.
	Created    bool
	Name, Type string
	// Campaigns are the campaign ids configured for the rule;
	// CampaignsAssociated says they were associated with it.
	Campaigns           []int64
	CampaignsAssociated bool
}

// Rules returns the conversion rules of plan's mappings, reading the ids
// of created rules and the campaigns associated from the state bucket
// (never from the plan's routes, which Prepare writes while delivery runs).
func (d *Destination) Rules(ctx context.Context, plan *delivery.Plan) []RuleState {
	var out []RuleState
	for _, r := range plan.Routes {
		if r.Config == nil {
			continue
		}
		st := RuleState{Mapping: r.Name, Campaigns: slices.Clone(r.Config.Campaigns)}
		if c := r.Config.ConversionRule.Create; c != nil {
			st.Created, st.Name, st.Type = true, c.Name, c.Type
			if e, err := d.state.Get(ctx, RuleKey(plan.Name, r.Name)); err == nil {
				st.RuleID = string(e.Value())
			}
		} else if id := r.Config.ConversionRule.ID; id != 0 {
			st.RuleID = strconv.FormatInt(id, 10)
		}
		if len(st.Campaigns) > 0 && st.RuleID != "" {
			camps := slices.Clone(st.Campaigns)
			slices.Sort(camps)
			parts := make([]string, len(camps))
			for i, c := range camps {
				parts[i] = strconv.FormatInt(c, 10)
			}
			if e, err := d.state.Get(ctx, stateKey("campaigns", plan.Name, st.RuleID)); err == nil && string(e.Value()) == strings.Join(parts, ",") {
				st.CampaignsAssociated = true
			}
		}
		out = append(out, st)
	}
	return out
}

// AdAccount returns the destination's ad account id.
func (d *Destination) AdAccount() int64 { return d.account }

package delivery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/capstan-gw/capstan/internal/linkedin"
)

// RuleClient creates or verifies conversion rules and associates campaigns;
// *linkedin.Client implements it.
type RuleClient interface {
	EnsureRule(ctx context.Context, account int64, spec linkedin.RuleSpec, knownID string) (linkedin.Rule, error)
	AssociateCampaigns(ctx context.Context, ruleID string, campaigns []int64) error
}

// RuleKey is the state-bucket key holding the id of the rule created for
// mapping of destination dest.
func RuleKey(dest, mapping string) string { return stateKey("rule", dest, mapping) }

// stateKey names a destination's entry in the state bucket.
func stateKey(kind, dest, name string) string {
	sum := sha256.Sum256([]byte(name))
	return kind + "." + dest + "." + hex.EncodeToString(sum[:8])
}

// PrepareRules gives every route its conversion rule: rules to create are
// created once — their ids are kept in the state bucket, so restarts and
// other replicas reuse them, and linkedin.EnsureRule adopts a rule of the
// same name if the id was lost — and the configured campaigns are associated
// (again only when the list changed). It must run before the plan is used
// concurrently.
func (p *Plan) PrepareRules(ctx context.Context, rc RuleClient, state jetstream.KeyValue, account int64) error {
	for _, r := range p.Routes {
		if r.Create != nil && r.Rule == "" {
			key := RuleKey(p.Name, r.Name)
			known := ""
			if e, err := state.Get(ctx, key); err == nil {
				known = string(e.Value())
			} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
				return fmt.Errorf("read rule id of mapping %q: %w", r.Name, err)
			}
			spec := linkedin.RuleSpec{
				Name: r.Create.Name, Type: r.Create.Type, AttributionType: r.Create.AttributionType,
				PostClickWindowDays: r.Create.PostClickWindowDays, ViewThroughWindowDays: r.Create.ViewThroughWindowDays,
			}
			rule, err := rc.EnsureRule(ctx, account, spec, known)
			if err != nil {
				return fmt.Errorf("conversion rule of mapping %q: %w", r.Name, err)
			}
			if rule.ID != known {
				if _, err := state.Put(ctx, key, []byte(rule.ID)); err != nil {
					return fmt.Errorf("save rule id of mapping %q: %w", r.Name, err)
				}
			}
			r.Rule = rule.ID
		}
		if len(r.Campaigns) == 0 || r.Rule == "" {
			continue
		}
		camps := slices.Clone(r.Campaigns)
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

// LoadRuleIDs gives routes whose rule is to be created the id an earlier
// PrepareRules saved, when there is one (for preview, which creates nothing).
func (p *Plan) LoadRuleIDs(ctx context.Context, state jetstream.KeyValue) {
	for _, r := range p.Routes {
		if r.Create == nil || r.Rule != "" {
			continue
		}
		if e, err := state.Get(ctx, RuleKey(p.Name, r.Name)); err == nil {
			r.Rule = string(e.Value())
		}
	}
}

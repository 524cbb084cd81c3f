package config

import (
	"strings"
	"testing"
)

const ruleDest = minimal + `destinations:
  - name: li
    ad_account: 512345678
    auth: {access_token: t}
    mappings:
      - name: m
        conversion_rule:
          create:
            name: Purchase
            type: PURCHASE
`

// TestRuleOptions: value_type, value, enabled and auto_association_type of
// a rule to create are read as written and default to "not sent".
func TestRuleOptions(t *testing.T) {
	cfg, err := Parse("c.yaml", []byte(ruleDest+`            value_type: FIXED
            value: {currency_code: EUR, amount: "49.90"}
            enabled: false
            auto_association_type: ALL_CAMPAIGNS
`), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	rc := cfg.Destinations[0].Mappings[0].ConversionRule.Create
	if rc.ValueType != "FIXED" || rc.Value == nil || *rc.Value != (RuleValue{CurrencyCode: "EUR", Amount: "49.90"}) ||
		rc.Enabled == nil || *rc.Enabled || rc.AutoAssociationType != AutoAssociateAllCampaigns {
		t.Errorf("rule options: got %+v (value %+v)", rc, rc.Value)
	}
	cfg, err = Parse("c.yaml", []byte(ruleDest), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	rc = cfg.Destinations[0].Mappings[0].ConversionRule.Create
	if rc.ValueType != "" || rc.Value != nil || rc.Enabled != nil || rc.AutoAssociationType != "" {
		t.Errorf("defaults: got %+v", rc)
	}
}

func TestRuleOptionErrors(t *testing.T) {
	p := "destinations[0].mappings[0].conversion_rule.create."
	tests := []struct {
		name, text string
		want       []string
	}{
		{"unknown value type", "            value_type: PER_EVENT\n",
			[]string{`c.yaml:15:25: ` + p + `value_type: must be DYNAMIC, FIXED or NO_VALUE, got "PER_EVENT"`}},
		{"fixed without value", "            value_type: FIXED\n",
			[]string{p + `value: required with value_type FIXED: {currency_code: USD, amount: "49.90"}`}},
		{"value without fixed", "            value: {currency_code: USD, amount: \"1\"}\n",
			[]string{p + `value: only allowed with value_type FIXED (value_type is "")`}},
		{"bad value", "            value_type: FIXED\n            value: {currency_code: usd, amount: \"-1\"}\n",
			[]string{p + `value.currency_code: must be a three-letter upper-case ISO 4217 code such as USD, got "usd"`,
				p + `value.amount: must be a non-negative decimal such as "49.90", got "-1"`}},
		{"auto association", "            auto_association_type: SOME\n",
			[]string{p + `auto_association_type: must be ALL_CAMPAIGNS (the only value LinkedIn documents) or left out, got "SOME"`}},
		{"enabled not a boolean", "            enabled: sometimes\n", []string{p + "enabled:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(ruleDest+tt.text), env(nil))
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, w := range tt.want {
				i := strings.Index(msg, w)
				if i < 0 {
					t.Fatalf("error does not contain %q:\n%s", w, msg)
				}
				msg = msg[i+len(w):]
			}
		})
	}
}

// TestEnrichSwitch: a mapping's enrich overrides its destination's, which
// defaults to true (linkedin-capi.md §15.2).
func TestEnrichSwitch(t *testing.T) {
	text := minimal + `destinations:
  - name: a
    auth: {access_token: t}
    mappings:
      - {name: default, conversion_rule: {id: 1}}
      - {name: strict, conversion_rule: {id: 1}, enrich: false}
  - name: b
    enrich: false
    auth: {access_token: t}
    mappings:
      - {name: inherited, conversion_rule: {id: 1}}
      - {name: back-on, conversion_rule: {id: 1}, enrich: true}
`
	cfg, err := Parse("c.yaml", []byte(text), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"default": true, "strict": false, "inherited": false, "back-on": true}
	for _, d := range cfg.Destinations {
		for _, m := range d.Mappings {
			if got := m.Enriches(d); got != want[m.Name] {
				t.Errorf("%s/%s: Enriches = %v, want %v", d.Name, m.Name, got, want[m.Name])
			}
		}
	}
	_, err = Parse("c.yaml", []byte(strings.Replace(text, "enrich: false}", "enrich: no-thanks}", 1)), env(nil))
	if err == nil || !strings.Contains(err.Error(), "destinations[0].mappings[1].enrich:") {
		t.Errorf("bad enrich: got %v", err)
	}
}

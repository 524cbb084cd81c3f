package linkedin

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// Capstan's derived rule statuses (linkedin-capi.md §22.3). LinkedIn's API
// has no status field; these are computed from the rule's read-only fields.
const (
	// RuleDisabled: enabled is false; the rule counts nothing.
	RuleDisabled = "disabled"
	// RuleNotCAPI: not a CONVERSIONS_API rule (shown, never written to).
	RuleNotCAPI = "not_capi"
	// RuleUnverified: LinkedIn never received a signal for the rule.
	RuleUnverified = "unverified"
	// RuleStale: the last signal is older than RuleStaleAfter.
	RuleStale = "stale"
	// RuleReceiving: a signal within RuleStaleAfter.
	RuleReceiving = "receiving"
)

// RuleStaleAfter is how old a rule's last signal may be before the rule
// is stale (§22.3).
const RuleStaleAfter = 7 * 24 * time.Hour

// RuleStatus is a rule's derived status (§22.3). It is informational: it
// never blocks delivery.
type RuleStatus struct {
	// Status is one of the Rule* status constants.
	Status string
	// Signal is max(lastCallbackAt, latestFirstPartyCallbackAt); zero when
	// LinkedIn sent neither.
	Signal time.Time
	// NoCampaigns warns that no campaign is associated with the rule: its
	// conversions are accepted but never reported (§21.1).
	NoCampaigns bool
}

// Signal returns max(LastCallbackAt, LatestFirstPartyCallbackAt), zero
// when neither is known.
func (r Rule) Signal() time.Time {
	if r.LatestFirstPartyCallbackAt.After(r.LastCallbackAt) {
		return r.LatestFirstPartyCallbackAt
	}
	return r.LastCallbackAt
}

// DeriveStatus returns r's status at now (§22.3; first match wins:
// disabled, not_capi, unverified, stale, receiving) and the no-campaigns
// warning.
func (r Rule) DeriveStatus(now time.Time) RuleStatus {
	st := RuleStatus{Signal: r.Signal(), NoCampaigns: len(r.Campaigns) == 0 && len(r.Associations) == 0}
	switch {
	case !r.Enabled:
		st.Status = RuleDisabled
	case r.ConversionMethod != MethodConversionsAPI:
		st.Status = RuleNotCAPI
	case st.Signal.IsZero():
		st.Status = RuleUnverified
	case st.Signal.Before(now.Add(-RuleStaleAfter)):
		st.Status = RuleStale
	default:
		st.Status = RuleReceiving
	}
	return st
}

// SendResponse sends one conversion request like Send (the same auth
// recovery) and also returns LinkedIn's last answer as received: status,
// headers and body (at most ClientConfig.MaxResponseBytes). It is for a
// test event, whose caller shows the answer to a person; the answer's
// Status is 0 when LinkedIn never answered.
func (c *Client) SendResponse(ctx context.Context, req Request) (Response, Outcome, error) {
	m := message{op: "send test conversion", method: req.Method, path: req.Path, body: req.Body, header: req.Header}
	if req.Batch {
		m.batchLen = len(req.Indices)
	}
	if m.method == "" {
		m.method = http.MethodPost
	}
	resp, out, err := c.exchange(ctx, m)
	if err != nil {
		return resp, out, fmt.Errorf("send test conversion: %w", err)
	}
	return resp, out, nil
}

package linkedin

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"time"
)

// AccountUsersPath is the account users resource; capstan's token check
// (§14.1).
const AccountUsersPath = "/rest/adAccountUsers"

// writeRoles are the roles that may create rules and send conversions
// (§6.1); VIEWER may not.
var writeRoles = []string{"ACCOUNT_BILLING_ADMIN", "ACCOUNT_MANAGER", "CAMPAIGN_MANAGER", "CREATIVE_MANAGER"}

// AccountAccess is the member's role on one ad account.
type AccountAccess struct {
	Account int64
	Role    string
}

// CanWrite reports whether Role may create rules and send conversions.
func (a AccountAccess) CanWrite() bool { return slices.Contains(writeRoles, a.Role) }

// TokenInfo is what CheckToken learns about the access token.
type TokenInfo struct {
	// Member is the authorising member's URN (urn:li:person:…).
	Member string
	// Accounts are the ad accounts the member has a role on, in LinkedIn's
	// order.
	Accounts []AccountAccess
	// ExpiresAt is the token's expiry as the client knows it; zero when
	// unknown.
	ExpiresAt time.Time
}

// CanWrite reports whether the member may create rules and send
// conversions on account.
func (ti TokenInfo) CanWrite(account int64) bool {
	for _, a := range ti.Accounts {
		if a.Account == account && a.CanWrite() {
			return true
		}
	}
	return false
}

// CheckToken checks the current access token with GET
// /rest/adAccountUsers?q=authenticatedUser (§14.1), refreshing it first
// if needed, as every call does. A working token gives the member and its
// accounts; a dead one an *APIError matching ErrReauthRequired, a token
// without r_ads one matching ErrForbidden.
func (c *Client) CheckToken(ctx context.Context) (TokenInfo, error) {
	const op = "check access token"
	resp, err := c.call(ctx, message{op: op, method: http.MethodGet, path: AccountUsersPath, query: "q=authenticatedUser"})
	if err != nil {
		return TokenInfo{}, err
	}
	var p struct {
		Elements []struct {
			User    string `json:"user"`
			Account string `json:"account"`
			Role    string `json:"role"`
		} `json:"elements"`
	}
	if err := json.Unmarshal(resp.Body, &p); err != nil {
		return TokenInfo{}, &APIError{Op: op, Outcome: Outcome{Class: ClassRetry, Status: resp.Status}, Err: err}
	}
	ti := TokenInfo{ExpiresAt: c.Token().ExpiresAt}
	for _, e := range p.Elements {
		if ti.Member == "" {
			ti.Member = e.User
		}
		id, ok := urnID(e.Account, accountURNPrefix)
		if !ok {
			continue
		}
		ti.Accounts = append(ti.Accounts, AccountAccess{Account: id, Role: e.Role})
	}
	return ti, nil
}

package linkedin

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/sandbox"
)

func TestAssociationKey(t *testing.T) {
	// The spec's example (§13.1), byte for byte.
	got := associationKey(CampaignURN(435901), ruleURNPrefix+sbRule)
	want := "(campaign:urn%3Ali%3AsponsoredCampaign%3A435901,conversion:urn%3Alla%3AllaPartnerConversion%3A22833300)"
	if got != want {
		t.Errorf("associationKey = %s\nwant %s", got, want)
	}
}

func TestAssociateCampaigns(t *testing.T) {
	tests := []struct {
		name      string
		campaigns []int64
		method    string // of the association request; "" for none
		batch     bool
	}{
		{"none", nil, "", false},
		{"one", []int64{435902}, http.MethodPut, false},
		{"one twice in the list", []int64{435902, 435902}, http.MethodPut, false},
		{"several", []int64{435904, 435902, 435901}, http.MethodPut, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			c := e.client(t, e.config())
			for round := range 2 { // idempotent
				if err := c.AssociateCampaigns(t.Context(), sbRule, tt.campaigns); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
			}
			reqs := e.requests("campaignConversions")
			if tt.method == "" {
				if len(reqs) != 0 {
					t.Fatalf("%d requests for no campaigns", len(reqs))
				}
				return
			}
			if len(reqs) != 2 {
				t.Fatalf("%d requests, want 2", len(reqs))
			}
			r := reqs[0]
			if r.Method != tt.method || r.Status >= 300 || r.Headers.Get("X-Restli-Protocol-Version") != "2.0.0" {
				t.Errorf("request %s %s?%s answered %d %s", r.Method, r.Path, r.Query, r.Status, r.ResponseBody)
			}
			if tt.batch != strings.HasPrefix(r.Query, "ids=List((campaign:urn%3Ali%3AsponsoredCampaign%3A") {
				t.Errorf("batch %t but query %q", tt.batch, r.Query)
			}
			rule, err := c.GetRule(t.Context(), sbAccount, sbRule)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range tt.campaigns {
				if !slices.Contains(rule.Campaigns, id) {
					t.Errorf("rule campaigns %v lack %d", rule.Campaigns, id)
				}
			}
		})
	}
}

func TestAssociateCampaignsErrors(t *testing.T) {
	tests := []struct {
		name      string
		rule      string
		campaigns []int64
		fault     *sandbox.Fault
		message   string
		status    int
		failed    []int64 // campaigns named by an *AssociationError
		is        error
	}{
		{name: "unknown campaign", rule: sbRule, campaigns: []int64{435999}, status: 404, is: ErrNotFound,
			message: "Failed to associate campaigns to conversion rule, please try again: Campaign 435999 not found"},
		{name: "unknown rule", rule: "999", campaigns: []int64{435901}, status: 404,
			message: "Failed to associate campaigns to conversion rule, please try again: Conversion 999 not found"},
		{name: "batch with one bad key", rule: sbRule, campaigns: []int64{435902, 435999, 435950}, failed: []int64{435950, 435999},
			message: "Failed to associate campaigns to conversion rule, please try again: " +
				"Not enough permissions to access: campaignConversions.BATCH_UPDATE.20260901; Campaign 435999 not found"},
		{name: "rate limited", rule: sbRule, campaigns: []int64{435901, 435902}, status: 429, is: ErrRateLimited,
			fault:   &sandbox.Fault{Endpoint: "campaignConversions", Action: sandbox.FaultRateLimit, RetryAfter: 5},
			message: "Failed to associate campaigns to conversion rule, please try again: Resource level throttle"},
		{name: "bad rule id", rule: "x", campaigns: []int64{435901},
			message: "Failed to associate campaigns to conversion rule, please try again: Conversion Rule ID"},
		{name: "bad campaign id", rule: sbRule, campaigns: []int64{0},
			message: "Failed to associate campaigns to conversion rule, please try again: campaign id 0: must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			c := e.client(t, e.config())
			if tt.fault != nil {
				e.addFault(t, *tt.fault)
			}
			err := c.AssociateCampaigns(t.Context(), tt.rule, tt.campaigns)
			var he *HookError
			if !errors.As(err, &he) {
				t.Fatalf("err = %v (%T), want *HookError", err, err)
			}
			if he.Code != CodeAssociateCampaignsFailure || he.Status != tt.status || !strings.HasPrefix(he.Message, tt.message) {
				t.Errorf("HookError{%s %d %q}, want {%s %d %q…}", he.Code, he.Status, he.Message,
					CodeAssociateCampaignsFailure, tt.status, tt.message)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("%v does not match %v", err, tt.is)
			}
			var ae *AssociationError
			if got := errors.As(err, &ae); got != (tt.failed != nil) {
				t.Fatalf("*AssociationError present %t, want %t", got, tt.failed != nil)
			}
			if ae != nil {
				if got := ae.campaigns(); !slices.Equal(got, tt.failed) {
					t.Errorf("failed campaigns %v, want %v", got, tt.failed)
				}
				rule, err := c.GetRule(t.Context(), sbAccount, tt.rule)
				if err != nil || !slices.Contains(rule.Campaigns, 435902) {
					t.Errorf("the good key of the batch was not associated: %v, %v", rule.Campaigns, err)
				}
			}
		})
	}
}

func TestListCampaigns(t *testing.T) {
	tests := []struct {
		name     string
		statuses []string
		want     []int64
	}{
		{"active and draft", []string{"ACTIVE", "DRAFT"}, []int64{435901, 435902, 435904}},
		{"every status", nil, []int64{435901, 435902, 435903, 435904}},
		{"paused", []string{"PAUSED"}, []int64{435903}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			c := e.client(t, e.config())
			c.pageSize = 2
			cs, err := c.ListCampaigns(t.Context(), sbAccount, tt.statuses...)
			if err != nil {
				t.Fatal(err)
			}
			var ids []int64
			for _, cp := range cs {
				ids = append(ids, cp.ID)
				if cp.Account != sbAccount || cp.Name == "" || cp.Status == "" {
					t.Errorf("campaign %+v", cp)
				}
			}
			if !slices.Equal(ids, tt.want) {
				t.Errorf("campaigns %v, want %v", ids, tt.want)
			}
		})
	}
	t.Run("account without role", func(t *testing.T) {
		e := newEnv(t, nil)
		c := e.client(t, e.config())
		if _, err := c.ListCampaigns(t.Context(), 508700002); !errors.Is(err, ErrForbidden) {
			t.Errorf("err = %v, want ErrForbidden", err)
		}
	})
}

func TestCheckToken(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client(t, e.config())
	ti, err := c.CheckToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if ti.Member != "urn:li:person:"+sandbox.DefaultMember {
		t.Errorf("member %q", ti.Member)
	}
	if !ti.CanWrite(sbAccount) || ti.CanWrite(sbViewerAcct) || ti.CanWrite(508700002) {
		t.Errorf("CanWrite wrong for %+v", ti.Accounts)
	}
	if r := e.requests("adAccountUsers"); len(r) != 1 || r[0].Query != "q=authenticatedUser" {
		t.Errorf("token check requests %+v", r)
	}

	t.Run("dead token", func(t *testing.T) {
		e := newEnv(t, nil)
		cfg := e.config()
		cfg.Credentials = Credentials{AccessToken: sbToken}
		c := e.client(t, cfg)
		e.srv.ExpireToken(sbToken)
		_, err := c.CheckToken(t.Context())
		if !errors.Is(err, ErrReauthRequired) || !errors.Is(err, ErrNoRefreshToken) {
			t.Errorf("err = %v, want ErrReauthRequired and ErrNoRefreshToken", err)
		}
	})
	t.Run("expired token refreshed", func(t *testing.T) {
		e := newEnv(t, nil)
		c := e.client(t, e.config())
		e.srv.ExpireToken(sbToken)
		if _, err := c.CheckToken(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := len(e.requests("oauth.accessToken")); n != 1 {
			t.Errorf("%d refreshes, want 1", n)
		}
	})
}

func TestAPIVersionSunset(t *testing.T) {
	tests := []struct{ v, want string }{
		{"202609", "2027-09-15"},
		{"202510", "2026-10-15"},
		{"202601", "2027-01-15"},
		{"2026-1", ""},
		{"202613", ""},
	}
	for _, tt := range tests {
		got, err := APIVersionSunset(tt.v)
		if tt.want == "" {
			if err == nil {
				t.Errorf("APIVersionSunset(%q) = %v, want error", tt.v, got)
			}
			continue
		}
		if err != nil || got.Format(time.DateOnly) != tt.want {
			t.Errorf("APIVersionSunset(%q) = %v, %v; want %s", tt.v, got, err, tt.want)
		}
	}
}

func FuzzRestliEscape(f *testing.F) {
	for _, s := range []string{"urn:li:sponsoredCampaign:435901", "(a,b)", "ü %2F", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := restliEscape(s)
		if strings.ContainsAny(e, "(),:%'") && strings.ContainsAny(strings.ReplaceAll(e, "%", ""), "(),:'") {
			t.Fatalf("restliEscape(%q) = %q keeps a reserved character", s, e)
		}
		if d, err := url.PathUnescape(e); err != nil || d != s {
			t.Fatalf("restliEscape(%q) = %q does not round-trip: %q, %v", s, e, d, err)
		}
	})
}

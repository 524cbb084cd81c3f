package admin

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/capstan-gw/capstan/internal/event"
	"github.com/capstan-gw/capstan/internal/identity"
	"github.com/capstan-gw/capstan/internal/linkedin"
)

const (
	anonA   = "3f0b0c3e-9c1d-4f1e-a1e7-6f2f9b1d2c44"
	userU   = "user_12345"
	pageA   = `{"type":"page","name":"Home","anonymousId":"` + anonA + `","userId":null,"timestamp":"2026-09-01T10:00:00.000Z","context":{"page":{"url":"https://www.example.com/?li_fat_id=123456","search":"?li_fat_id=123456"}}}`
	identAU = `{"type":"identify","anonymousId":"` + anonA + `","userId":"` + userU + `","timestamp":"2026-09-01T10:05:00.000Z","traits":{"email":"John.Doe@Example.com"}}`
)

// observe teaches the graph one event, as delivery does.
func observe(t testing.TB, g *identity.Graph, s string) {
	t.Helper()
	ev, err := event.ParseString(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Observe(context.Background(), ev, identity.Capture(ev)); err != nil {
		t.Fatal(err)
	}
}

// TestIdentity is the identity admin handler's test of earlier releases,
// on both paths: the same statuses and codes, and the same answers.
func TestIdentity(t *testing.T) {
	for _, base := range []string{"/admin/api/identity", "/admin/identity"} {
		t.Run(base, func(t *testing.T) {
			e := newEnv(t)
			observe(t, e.graph, pageA)
			observe(t, e.graph, identAU)
			emailHash, _ := linkedin.HashEmail("john.doe@example.com")

			type answerBody struct {
				Success bool              `json:"success"`
				Profile *identity.Profile `json:"profile"`
				Removed []string          `json:"removed"`
			}
			tests := []struct {
				name, method, query, auth string
				status                    int
				code, fragment            string
			}{
				{"no token", "GET", "?userId=" + userU, "", 401, "unauthorized", "admin token"},
				{"wrong token", "GET", "?userId=" + userU, "Bearer nope", 401, "unauthorized", "admin token"},
				{"token prefix", "GET", "?userId=" + userU, "Bearer s3cre", 401, "unauthorized", "admin token"},
				{"basic auth", "GET", "?userId=" + userU, "Basic czNjcmV0", 401, "unauthorized", "admin token"},
				{"unauthorized delete", "DELETE", "?userId=" + userU, "Bearer nope", 401, "unauthorized", "admin token"},
				{"no id", "GET", "", operator, 400, "bad_request", "exactly one of the query parameters userId and anonymousId"},
				{"blank id", "GET", "?userId=%20", operator, 400, "bad_request", "exactly one"},
				{"both ids", "GET", "?userId=u&anonymousId=a", operator, 400, "bad_request", "exactly one"},
				{"id twice", "GET", "?userId=u&userId=v", operator, 400, "bad_request", `"userId" is given 2 times`},
				{"unknown parameter", "GET", "?user_id=u", operator, 400, "bad_request", `unknown query parameter "user_id": use userId, anonymousId`},
				{"delete without id", "DELETE", "", operator, 400, "bad_request", "exactly one"},
				{"unknown user", "GET", "?userId=nobody", operator, 404, "not_found", "holds nothing for this id"},
				{"delete unknown", "DELETE", "?anonymousId=nobody", operator, 404, "not_found", "holds nothing for this id"},
				{"method", "POST", "?userId=" + userU, operator, 405, "method_not_allowed", "use GET or DELETE"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					a := do(t, e.s, tt.method, base+tt.query, tt.auth, "")
					wantError(t, a, tt.status, tt.code, tt.fragment)
					if strings.Contains(string(a.body), "success") {
						t.Errorf("error with a success field: %s", a.body)
					}
				})
			}

			var got answerBody
			decodeAnswer(t, e.do(t, "GET", base+"?userId="+userU, ""), &got)
			if !got.Success || got.Profile == nil || got.Profile.LiFatID != "123456" || got.Profile.EmailSHA256 != emailHash || len(got.Profile.Linked) != 1 {
				t.Fatalf("show: %+v", got)
			}
			got = answerBody{}
			decodeAnswer(t, e.do(t, "GET", base+"?anonymousId="+anonA, ""), &got)
			if got.Profile == nil || got.Profile.Kind != identity.KindAnonymous {
				t.Fatalf("show anonymous: %+v", got)
			}
			got = answerBody{}
			a := e.do(t, "DELETE", base+"?anonymousId="+anonA, "")
			decodeAnswer(t, a, &got)
			slices.Sort(got.Removed)
			if !got.Success || !slices.Equal(got.Removed, []string{identity.AnonymousKey(anonA), identity.UserKey(userU)}) {
				t.Fatalf("delete: %s", a.body)
			}
			if strings.Contains(string(a.body), userU) || strings.Contains(string(a.body), anonA) {
				t.Errorf("the answer holds an id in clear: %s", a.body)
			}
			wantError(t, e.do(t, "GET", base+"?userId="+userU, ""), 404, "not_found", "holds nothing")

			// Every field of a profile answer is the profile's.
			var raw map[string]json.RawMessage
			observe(t, e.graph, identAU)
			decodeAnswer(t, e.do(t, "GET", base+"?userId="+userU, ""), &raw)
			if len(raw) != 2 || raw["success"] == nil || raw["profile"] == nil {
				t.Errorf("show answers %v", raw)
			}
		})
	}
}

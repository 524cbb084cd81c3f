package identity

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestAdminHandler(t *testing.T) {
	g := newGraph(t)
	observe(t, g, pageA)
	observe(t, g, identAU)
	h := AdminHandler(g, "s3cret")

	type answer struct {
		Success bool     `json:"success"`
		Code    string   `json:"code"`
		Message string   `json:"message"`
		Profile *Profile `json:"profile"`
		Removed []string `json:"removed"`
	}
	do := func(method, target, auth string) (int, answer) {
		t.Helper()
		req := httptest.NewRequest(method, target, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s %s: Content-Type %q", method, target, ct)
		}
		var a answer
		if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
			t.Fatalf("%s %s: body %q: %v", method, target, rec.Body, err)
		}
		return rec.Code, a
	}
	const ok = "Bearer s3cret"
	tests := []struct {
		name, method, target, auth string
		status                     int
		code                       string
	}{
		{"no token", "GET", "/admin/identity?userId=" + userU, "", 401, "unauthorized"},
		{"wrong token", "GET", "/admin/identity?userId=" + userU, "Bearer nope", 401, "unauthorized"},
		{"token prefix", "GET", "/admin/identity?userId=" + userU, "Bearer s3cre", 401, "unauthorized"},
		{"basic auth", "GET", "/admin/identity?userId=" + userU, "Basic czNjcmV0", 401, "unauthorized"},
		{"unauthorized delete", "DELETE", "/admin/identity?userId=" + userU, "Bearer nope", 401, "unauthorized"},
		{"no id", "GET", "/admin/identity", ok, 400, "bad_request"},
		{"both ids", "GET", "/admin/identity?userId=u&anonymousId=a", ok, 400, "bad_request"},
		{"delete without id", "DELETE", "/admin/identity", ok, 400, "bad_request"},
		{"unknown user", "GET", "/admin/identity?userId=nobody", ok, 404, "not_found"},
		{"delete unknown", "DELETE", "/admin/identity?anonymousId=nobody", ok, 404, "not_found"},
		{"method", "POST", "/admin/identity?userId=" + userU, ok, 405, "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, a := do(tt.method, tt.target, tt.auth)
			if status != tt.status || a.Code != tt.code || a.Success || a.Message == "" {
				t.Errorf("got %d %+v, want %d %s", status, a, tt.status, tt.code)
			}
		})
	}

	status, a := do("GET", "/admin/identity?userId="+userU, ok)
	if status != 200 || !a.Success || a.Profile == nil || a.Profile.LiFatID != "123456" || a.Profile.EmailSHA256 != emailHash || len(a.Profile.Linked) != 1 {
		t.Fatalf("show: %d %+v", status, a)
	}
	status, a = do("GET", "/admin/identity?anonymousId="+anonA, ok)
	if status != 200 || a.Profile.Kind != KindAnonymous {
		t.Fatalf("show anonymous: %d %+v", status, a)
	}
	status, a = do("DELETE", "/admin/identity?anonymousId="+anonA, ok)
	slices.Sort(a.Removed)
	if status != 200 || !a.Success || !slices.Equal(a.Removed, []string{AnonymousKey(anonA), UserKey(userU)}) {
		t.Fatalf("delete: %d %+v", status, a)
	}
	if status, _ := do("GET", "/admin/identity?userId="+userU, ok); status != 404 {
		t.Errorf("after delete: %d", status)
	}
	if ks := keys(t, g); len(ks) != 0 {
		t.Errorf("keys left: %v", ks)
	}

	// An empty token refuses everything.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/admin/identity?userId=x", nil)
	req.Header.Set("Authorization", "Bearer ")
	AdminHandler(g, "").ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("empty token: %d", rec.Code)
	}
}

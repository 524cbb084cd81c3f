package admin

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/delivery"
)

func TestDestinations(t *testing.T) {
	e := newEnv(t)
	var list struct{ Destinations []delivery.Status }
	decodeAnswer(t, e.do(t, "GET", "/admin/api/destinations", ""), &list)
	var names []string
	for _, st := range list.Destinations {
		names = append(names, st.Destination)
		if st.State != "paused" || st.Reason == "" {
			t.Errorf("%s: %+v", st.Destination, st)
		}
	}
	if want := []string{"linkedin", "unsaved", "broken"}; !slices.Equal(names, want) {
		t.Errorf("destinations %v, want %v (configuration order)", names, want)
	}

	var st delivery.Status
	decodeAnswer(t, e.do(t, "GET", "/admin/api/destinations/linkedin", ""), &st)
	if st.Destination != "linkedin" || st.State != "paused" {
		t.Errorf("show: %+v", st)
	}

	wantError(t, e.do(t, "GET", "/admin/api/destinations/facebook", ""), 404, "not_found", `no such destination "facebook"`)
	wantError(t, e.do(t, "GET", "/admin/api/destinations?state=paused", ""), 400, "bad_request", `unknown query parameter "state"`)
	wantError(t, e.do(t, "GET", "/admin/api/destinations/linkedin?x=1", ""), 400, "bad_request", `unknown query parameter "x"`)
}

func TestInstallToken(t *testing.T) {
	for _, base := range []string{"/admin/api/destinations/", "/admin/destinations/"} {
		t.Run(base, func(t *testing.T) {
			e := newEnv(t)
			refused := []struct {
				name, dest, body string
				status           int
				code, fragment   string
			}{
				// The fragments e2e/delivery_token_test.go looks for.
				{"unknown destination", "facebook", `{"access_token":"tok-b"}`, 404, "not_found", "no such destination"},
				{"no access_token", "linkedin", `{"token":"tok-b"}`, 400, "bad_request", "access_token"},
				{"empty access_token", "linkedin", `{"access_token":""}`, 400, "bad_request", "access_token is required"},
				{"not JSON", "linkedin", `access_token=tok-b`, 400, "bad_request", "access_token"},
				{"empty body", "linkedin", ``, 400, "bad_request", "the request body is empty"},
				{"two values", "linkedin", `{"access_token":"a"} {}`, 400, "bad_request", "more than one JSON value"},
				{"wrong type", "linkedin", `{"access_token":5}`, 400, "bad_request", "access_token"},
				{"bad expires_at", "linkedin", `{"access_token":"tok-b","expires_at":"tomorrow"}`, 400, "bad_request", "RFC 3339"},
				{"too large", "linkedin", `{"access_token":"` + strings.Repeat("x", maxBody) + `"}`, 413, "too_large", "larger than 65536 bytes"},
			}
			for _, tt := range refused {
				t.Run(tt.name, func(t *testing.T) {
					wantError(t, e.do(t, "PUT", base+tt.dest+"/token", tt.body), tt.status, tt.code, tt.fragment)
				})
			}
			if got := e.dests["linkedin"].installed(); len(got) != 0 {
				t.Fatalf("refused calls installed %v", got)
			}

			exp := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
			var st delivery.Status
			decodeAnswer(t, e.do(t, "PUT", base+"linkedin/token", `{"access_token":"tok-b","expires_at":"2027-03-01T00:00:00Z"}`), &st)
			if st.Destination != "linkedin" || st.State != "delivering" || st.TokenExpiresAt == nil || !st.TokenExpiresAt.Equal(exp) {
				t.Errorf("answer: %+v, want linkedin delivering with the new expiry", st)
			}
			if got := e.dests["linkedin"].installed(); !slices.Equal(got, []string{"tok-b"}) {
				t.Errorf("installed %v", got)
			}
			// expires_at is optional.
			st = delivery.Status{}
			decodeAnswer(t, e.do(t, "PUT", base+"linkedin/token", `{"access_token":"tok-c"}`), &st)
			if st.TokenExpiresAt != nil {
				t.Errorf("without expires_at: %+v", st)
			}

			// Installed but not saved: 503 with the message of earlier releases.
			wantError(t, e.do(t, "PUT", base+"unsaved/token", `{"access_token":"tok-u"}`), 503, "token_not_saved",
				"the token is in use but could not be saved; it will be lost on restart")
			if got := e.dests["unsaved"].installed(); !slices.Equal(got, []string{"tok-u"}) {
				t.Errorf("unsaved: installed %v", got)
			}
			// Not installed: 503 without the details.
			a := e.do(t, "PUT", base+"broken/token", `{"access_token":"tok-x"}`)
			wantError(t, a, 503, "unavailable", "could not install the token")
			if strings.Contains(string(a.body), "client closed") {
				t.Errorf("the answer shows the internal error: %s", a.body)
			}
		})
	}
}

// TestDestinationView: the console's view of a destination: its rules and
// rate-limit use as the destination tells them, and its health with the
// problems that make it degraded.
func TestDestinationView(t *testing.T) {
	e := newEnv(t)
	exp := time.Now().Add(3*24*time.Hour + time.Hour)
	if a := e.do(t, "PUT", "/admin/api/destinations/linkedin/token", `{"access_token":"tok-v","expires_at":"`+exp.UTC().Format(time.RFC3339)+`"}`); a.status != 200 {
		t.Fatalf("install: %d %s", a.status, a.body)
	}
	var v struct {
		Destination, State, Health string
		Problems                   []string
		TokenDaysLeft              *int
		Rules                      []Rule
		RateLimit                  delivery.RateUsage
		Retrying                   *delivery.Retrying
	}
	decodeAnswer(t, e.do(t, "GET", "/admin/api/destinations/linkedin", ""), &v)
	if v.State != "delivering" || v.Health != "degraded" || v.TokenDaysLeft == nil || *v.TokenDaysLeft != 3 {
		t.Errorf("view %+v", v)
	}
	want := []string{"requests are being retried since", "last: HTTP 503", "the access token expires in 3 days", "this minute's request limit is used up"}
	if len(v.Problems) != 3 {
		t.Errorf("problems %q", v.Problems)
	}
	all := strings.Join(v.Problems, " | ")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("problems %q lack %q", all, w)
		}
	}
	if len(v.Rules) != 1 || v.Rules[0].RuleID != "22833300" || v.RateLimit.Day != 12 || v.Retrying == nil || v.Retrying.Message != "busy" {
		t.Errorf("rules %+v, rate %+v, retrying %+v", v.Rules, v.RateLimit, v.Retrying)
	}
	// Paused: the state says so, whatever else.
	decodeAnswer(t, e.do(t, "GET", "/admin/api/destinations/unsaved", ""), &v)
	if v.State != "paused" || v.Health != "paused" {
		t.Errorf("paused view %+v", v)
	}
}

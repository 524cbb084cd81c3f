package linkedin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/sandbox"
)

func TestSendAccepted(t *testing.T) {
	tests := []struct {
		name  string
		n     int
		batch bool
	}{
		{"single", 1, false},
		{"batch of one", 1, true},
		{"batch of three", 3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			c := e.client(t, e.config())
			cs := conversions(t, tt.n)
			var req Request
			if tt.batch {
				req = batchRequest(t, cs)
			} else {
				req = singleRequest(t, cs[0])
			}
			out, err := c.Send(t.Context(), req)
			if err != nil || out.Class != ClassSuccess {
				t.Fatalf("Send = %+v, %v; want success", out, err)
			}
			want := map[int]int{1: http.StatusCreated}[tt.n]
			if tt.batch {
				want = http.StatusOK
			}
			if out.Status != want {
				t.Errorf("status %d, want %d", out.Status, want)
			}
			got := e.srv.Conversions(sandbox.ConversionFilter{})
			if len(got) != tt.n {
				t.Fatalf("sandbox stored %d conversions, want %d", len(got), tt.n)
			}
			for i, g := range got {
				wantBody := cs[i].AppendJSON(nil)
				if !bytes.Equal(g.Body, wantBody) {
					t.Errorf("conversion %d stored as\n%s\nwant\n%s", i, g.Body, wantBody)
				}
				if g.Token != sbToken || g.Version != DefaultAPIVersion {
					t.Errorf("conversion %d: token/version %q/%q", i, g.Token, g.Version)
				}
			}
		})
	}
}

func TestSendHeaders(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.config()
	cfg.APIVersion = "202601"
	c := e.client(t, cfg)
	req := singleRequest(t, conversion(t, sbRule, 0))
	req.Header.Set("Authorization", "Bearer stale-token-from-preview") // the client owns it
	if out, err := c.Send(t.Context(), req); err != nil || out.Class != ClassSuccess {
		t.Fatalf("Send = %+v, %v", out, err)
	}
	if _, err := c.GetRule(t.Context(), sbAccount, sbRule); err != nil {
		t.Fatal(err)
	}
	for _, r := range e.srv.Requests() {
		for k, want := range map[string]string{
			"Authorization":             "Bearer " + sbToken,
			"Linkedin-Version":          "202601",
			"X-Restli-Protocol-Version": "2.0.0",
		} {
			if got := r.Headers.Get(k); got != want {
				t.Errorf("%s %s: %s = %q, want %q", r.Method, r.Path, k, got, want)
			}
		}
	}
}

func TestSendSplit(t *testing.T) {
	phone := UserID{IDType: "SHA256_PHONE", IDValue: "x"}
	tests := []struct {
		name    string
		corrupt func(cs []Conversion)
		status  int
		indices []int
	}{
		{"422 schema", func(cs []Conversion) {
			cs[1].User.UserIDs = []UserID{phone}
			cs[3].User.UserIDs = []UserID{phone}
		}, http.StatusUnprocessableEntity, []int{1, 3}},
		{"400 business rule", func(cs []Conversion) {
			cs[0].ConversionHappenedAt = specNow.Add(-100 * 24 * time.Hour).UnixMilli()
			cs[2].ConversionHappenedAt = specNow.Add(-100 * 24 * time.Hour).UnixMilli()
		}, http.StatusBadRequest, []int{0, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			c := e.client(t, e.config())
			cs := conversions(t, 4)
			tt.corrupt(cs)
			out, err := c.Send(t.Context(), batchRequest(t, cs))
			if err != nil {
				t.Fatal(err)
			}
			if out.Class != ClassSplit || out.Status != tt.status {
				t.Fatalf("outcome %v %d, want split %d (%+v)", out.Class, out.Status, tt.status, out)
			}
			var got []int
			for _, f := range out.Failures {
				got = append(got, f.Index)
			}
			if !equalInts(got, tt.indices) {
				t.Errorf("failed indices %v, want %v", got, tt.indices)
			}
			if n := len(e.srv.Conversions(sandbox.ConversionFilter{})); n != 0 {
				t.Errorf("sandbox stored %d conversions of a refused batch", n)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSendTransient(t *testing.T) {
	tests := []struct {
		name       string
		fault      sandbox.Fault
		timeout    time.Duration
		wantErr    bool
		retryAfter time.Duration
		daily      bool
		status     int
	}{
		{name: "429 minute with Retry-After", fault: sandbox.Fault{Action: sandbox.FaultRateLimit, RetryAfter: 30},
			retryAfter: 30 * time.Second, status: 429},
		{name: "429 day", fault: sandbox.Fault{Action: sandbox.FaultRateLimit, Day: true},
			retryAfter: 24 * time.Hour, daily: true, status: 429}, // spec clock is midnight
		{name: "500 json", fault: sandbox.Fault{Action: sandbox.FaultStatus, Status: 500}, status: 500},
		{name: "502 html", fault: sandbox.Fault{Action: sandbox.FaultStatus, Status: 502, Body: "html"}, status: 502},
		{name: "503 empty with Retry-After", fault: sandbox.Fault{Action: sandbox.FaultStatus, Status: 503, Body: "empty", RetryAfter: 2},
			retryAfter: 2 * time.Second, status: 503},
		{name: "504", fault: sandbox.Fault{Action: sandbox.FaultStatus, Status: 504}, status: 504},
		{name: "connection reset", fault: sandbox.Fault{Action: sandbox.FaultReset}, wantErr: true},
		{name: "hang", fault: sandbox.Fault{Action: sandbox.FaultHang}, timeout: 300 * time.Millisecond, wantErr: true},
		{name: "accept then hang", fault: sandbox.Fault{Action: sandbox.FaultAcceptHang}, timeout: 300 * time.Millisecond, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			cfg := e.config()
			if tt.timeout > 0 {
				cfg.Timeout = tt.timeout
			}
			c := e.client(t, cfg)
			tt.fault.Endpoint, tt.fault.Next = "conversionEvents", 1
			e.addFault(t, tt.fault)
			start := time.Now()
			out, err := c.Send(t.Context(), batchRequest(t, conversions(t, 2)))
			if elapsed := time.Since(start); elapsed > cfg.Timeout+2*time.Second {
				t.Errorf("Send took %s with timeout %s", elapsed, cfg.Timeout)
			}
			if out.Class != ClassRetry {
				t.Fatalf("class %v, want retry (%+v, %v)", out.Class, out, err)
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %t", err, tt.wantErr)
			}
			if out.Status != tt.status || out.RetryAfter != tt.retryAfter || out.DailyLimit != tt.daily {
				t.Errorf("outcome status %d retry after %s daily %t, want %d %s %t",
					out.Status, out.RetryAfter, out.DailyLimit, tt.status, tt.retryAfter, tt.daily)
			}
			// The fault fired once: the same request now goes through.
			if out, err := c.Send(t.Context(), batchRequest(t, conversions(t, 2))); err != nil || out.Class != ClassSuccess {
				t.Errorf("second Send = %v, %v", out.Class, err)
			}
		})
	}
}

func TestSendCancelled(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client(t, e.config())
	e.addFault(t, sandbox.Fault{Endpoint: "conversionEvents", Action: sandbox.FaultHang})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	out, err := c.Send(ctx, singleRequest(t, conversion(t, sbRule, 0)))
	if out.Class != ClassRetry || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send = %v, %v; want retry and deadline exceeded", out.Class, err)
	}
}

func TestSendTerminal(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, e *env, cfg *ClientConfig)
		class Class
		err   error // errors.Is target, nil for none
	}{
		{"426 sunset version", func(t *testing.T, e *env, cfg *ClientConfig) {
			cfg.APIVersion = "202401"
		}, ClassVersion, nil},
		{"426 version sunset now", func(t *testing.T, e *env, cfg *ClientConfig) {
			e.srv.SunsetVersion(DefaultAPIVersion)
		}, ClassVersion, nil},
		{"revoked token", func(t *testing.T, e *env, cfg *ClientConfig) {
			e.srv.RevokeToken(sbToken)
		}, ClassAuthRevoked, nil},
		{"expired token without refresh token", func(t *testing.T, e *env, cfg *ClientConfig) {
			e.srv.ExpireToken(sbToken)
			cfg.Credentials.RefreshToken, cfg.Credentials.ClientID, cfg.Credentials.ClientSecret = "", "", ""
		}, ClassAuthExpired, ErrNoRefreshToken},
		{"expired token, refresh token revoked", func(t *testing.T, e *env, cfg *ClientConfig) {
			e.srv.ExpireToken(sbToken)
			e.srv.RevokeToken(sbRefresh)
		}, ClassAuthExpired, ErrRefreshRevoked},
		{"expired token, wrong client secret", func(t *testing.T, e *env, cfg *ClientConfig) {
			e.srv.ExpireToken(sbToken)
			cfg.Credentials.ClientSecret = "wrong"
		}, ClassAuthExpired, ErrRefreshRevoked},
		{"403 viewer account", func(t *testing.T, e *env, cfg *ClientConfig) {
			if err := e.srv.AddToken(sandbox.TokenSpec{Token: "viewer", Role: "VIEWER"}); err != nil {
				t.Fatal(err)
			}
			cfg.Credentials.AccessToken = "viewer"
		}, ClassForbidden, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			cfg := e.config()
			tt.setup(t, e, &cfg)
			c := e.client(t, cfg)
			for attempt := range 2 { // the second call must not loop either
				out, err := c.Send(t.Context(), singleRequest(t, conversion(t, sbRule, 0)))
				if out.Class != tt.class {
					t.Fatalf("attempt %d: class %v, want %v (%+v, %v)", attempt, out.Class, tt.class, out, err)
				}
				if tt.err == nil && err != nil || tt.err != nil && !errors.Is(err, tt.err) {
					t.Fatalf("attempt %d: err = %v, want %v", attempt, err, tt.err)
				}
				if tt.err != nil && !errors.Is(err, ErrReauthRequired) {
					t.Errorf("attempt %d: %v does not match ErrReauthRequired", attempt, err)
				}
			}
			if n := len(e.requests("conversionEvents")); n != 2 {
				t.Errorf("%d conversion requests for 2 sends, want 2 (no retry loop)", n)
			}
			if n := len(e.requests("oauth.accessToken")); n > 1 {
				t.Errorf("%d refresh requests, want at most 1 (a refused refresh is remembered)", n)
			}
		})
	}
}

func TestRefreshSingleFlight(t *testing.T) {
	for _, rotate := range []bool{false, true} {
		name := map[bool]string{false: "same refresh token", true: "rotated refresh token"}[rotate]
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, func(c *sandbox.Config) { c.RotateRefreshToken = rotate })
			cfg := e.config()
			var mu sync.Mutex
			var refreshed []Token
			cfg.OnRefresh = func(tok Token) {
				mu.Lock()
				refreshed = append(refreshed, tok)
				mu.Unlock()
			}
			c := e.client(t, cfg)
			e.srv.ExpireToken(sbToken)
			// A slow token endpoint makes every sender hit the 401 while the
			// refresh is in flight.
			e.addFault(t, sandbox.Fault{Endpoint: "oauth.accessToken", Action: sandbox.FaultDelay,
				Delay: sandbox.Duration(100 * time.Millisecond)})

			const senders = 20
			var wg sync.WaitGroup
			outs := make([]Outcome, senders)
			errs := make([]error, senders)
			for i := range senders {
				wg.Go(func() {
					outs[i], errs[i] = c.Send(t.Context(), singleRequest(t, conversion(t, sbRule, i)))
				})
			}
			wg.Wait()
			for i := range senders {
				if errs[i] != nil || outs[i].Class != ClassSuccess {
					t.Errorf("sender %d: %v, %v", i, outs[i].Class, errs[i])
				}
			}
			if n := len(e.requests("oauth.accessToken")); n != 1 {
				t.Errorf("%d refresh requests, want 1", n)
			}
			if len(refreshed) != 1 {
				t.Fatalf("OnRefresh called %d times, want 1", len(refreshed))
			}
			tok := c.Token()
			if tok.AccessToken == sbToken || tok.AccessToken != refreshed[0].AccessToken {
				t.Errorf("token not replaced by the refreshed one")
			}
			if got, want := tok.ExpiresIn(e.clock.Now()), sandbox.AccessTokenTTL; got != want {
				t.Errorf("ExpiresIn = %s, want %s", got, want)
			}
			if rotate == (tok.RefreshToken == sbRefresh) {
				t.Errorf("refresh token rotated = %t, want %t", tok.RefreshToken != sbRefresh, rotate)
			}
			if tok.RefreshTokenExpiresAt.IsZero() || tok.Scope == "" {
				t.Errorf("refresh token expiry or scope not kept: %v %q", tok.RefreshTokenExpiresAt, tok.Scope)
			}
			got := e.srv.Conversions(sandbox.ConversionFilter{})
			if len(got) != senders {
				t.Fatalf("sandbox stored %d conversions, want %d", len(got), senders)
			}
			for _, cv := range got {
				if cv.Token != tok.AccessToken {
					t.Errorf("conversion %s sent with an old token", cv.EventID)
				}
			}
			// A 401 from before the refresh does not refresh again.
			if n := len(e.requests("conversionEvents")); n > 2*senders {
				t.Errorf("%d conversion requests, want at most %d", n, 2*senders)
			}
		})
	}
}

func TestRefreshTransientFailure(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client(t, e.config())
	e.srv.ExpireToken(sbToken)
	e.addFault(t, sandbox.Fault{Endpoint: "oauth.accessToken", Next: 1, Action: sandbox.FaultStatus, Status: 503, RetryAfter: 3})

	out, err := c.Send(t.Context(), singleRequest(t, conversion(t, sbRule, 0)))
	var re *RefreshError
	if out.Class != ClassRetry || !errors.As(err, &re) || re.Terminal() || errors.Is(err, ErrReauthRequired) {
		t.Fatalf("Send = %v, %v; want retry with a transient *RefreshError", out.Class, err)
	}
	if out.RetryAfter != 3*time.Second || re.Status != 503 {
		t.Errorf("retry after %s status %d, want 3s 503", out.RetryAfter, re.Status)
	}
	out, err = c.Send(t.Context(), singleRequest(t, conversion(t, sbRule, 0)))
	if err != nil || out.Class != ClassSuccess {
		t.Fatalf("second Send = %v, %v; want success after a refresh", out.Class, err)
	}
}

func TestProactiveRefresh(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.config()
	cfg.Credentials.ExpiresAt = e.clock.Now().Add(time.Hour) // within RefreshBefore (24 h)
	var calls int
	cfg.OnRefresh = func(Token) { calls++ }
	c := e.client(t, cfg)
	for i := range 3 {
		if out, err := c.Send(t.Context(), singleRequest(t, conversion(t, sbRule, i))); err != nil || out.Class != ClassSuccess {
			t.Fatalf("Send = %v, %v", out.Class, err)
		}
	}
	if calls != 1 || len(e.requests("oauth.accessToken")) != 1 {
		t.Errorf("refreshes: OnRefresh %d, requests %d; want 1", calls, len(e.requests("oauth.accessToken")))
	}
	for _, r := range e.requests("conversionEvents") {
		if r.Status != http.StatusCreated || r.Headers.Get("Authorization") == "Bearer "+sbToken {
			t.Errorf("conversion request %d: status %d with the old token %t", r.Seq, r.Status,
				r.Headers.Get("Authorization") == "Bearer "+sbToken)
		}
	}
}

func TestRefreshOnlyCredentials(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.config()
	cfg.Credentials.AccessToken = "" // the first call refreshes
	c := e.client(t, cfg)
	if _, err := c.CheckToken(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := len(e.requests("oauth.accessToken")); n != 1 {
		t.Errorf("%d refreshes, want 1", n)
	}
}

func TestSetAccessToken(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.config()
	cfg.Credentials.RefreshToken, cfg.Credentials.ClientID, cfg.Credentials.ClientSecret = "", "", ""
	c := e.client(t, cfg)
	e.srv.RevokeToken(sbToken)
	if out, _ := c.Send(t.Context(), singleRequest(t, conversion(t, sbRule, 0))); out.Class != ClassAuthRevoked {
		t.Fatalf("class %v, want auth_revoked", out.Class)
	}
	if err := e.srv.AddToken(sandbox.TokenSpec{Token: "operator-token"}); err != nil {
		t.Fatal(err)
	}
	exp := e.clock.Now().Add(60 * 24 * time.Hour)
	c.SetAccessToken("operator-token", exp)
	if out, err := c.Send(t.Context(), singleRequest(t, conversion(t, sbRule, 0))); err != nil || out.Class != ClassSuccess {
		t.Fatalf("Send with the new token = %v, %v", out.Class, err)
	}
	if tok := c.Token(); tok.AccessToken != "operator-token" || !tok.ExpiresAt.Equal(exp) || tok.IssuedAt.IsZero() {
		t.Errorf("Token() = %v issued %v", tok, tok.IssuedAt)
	}
}

func TestRevokedFreshTokenRetriedOnce(t *testing.T) {
	tests := []struct {
		name   string
		faults int
		class  Class
		sends  int
	}{
		{"propagation delay", 1, ClassSuccess, 2},
		{"really revoked", 2, ClassAuthRevoked, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			cfg := e.config()
			cfg.RevokedRetryDelay = 10 * time.Millisecond
			c := e.client(t, cfg)
			c.SetAccessToken(sbToken, time.Time{}) // minted "now"
			e.addFault(t, sandbox.Fault{Endpoint: "conversionEvents", Next: tt.faults, Action: sandbox.FaultAuth, ServiceErrorCode: 65601})
			out, err := c.Send(t.Context(), singleRequest(t, conversion(t, sbRule, 0)))
			if out.Class != tt.class || err != nil {
				t.Fatalf("Send = %v, %v; want %v", out.Class, err, tt.class)
			}
			if n := len(e.requests("conversionEvents")); n != tt.sends {
				t.Errorf("%d conversion requests, want %d", n, tt.sends)
			}
		})
	}
}

func TestNewClientErrors(t *testing.T) {
	ok := Credentials{AccessToken: "t"}
	tests := []struct {
		name string
		cfg  ClientConfig
		want []string // fragments, all reported together
	}{
		{"defaults", ClientConfig{Credentials: ok}, nil},
		{"no token", ClientConfig{}, []string{"access token required"}},
		{"partial refresh", ClientConfig{Credentials: Credentials{AccessToken: "t", RefreshToken: "r"}},
			[]string{"go together"}},
		{"everything wrong", ClientConfig{APIBase: "api.linkedin.com", APIVersion: "2026-01", OAuthTokenURL: "ftp://x",
			Timeout: -1, MaxResponseBytes: -1, Credentials: ok},
			[]string{"api base", `api version "2026-01"`, "oauth token url", "timeout -1ns", "max response bytes -1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClient(tt.cfg, nil, nil)
			if len(tt.want) == 0 {
				if err != nil || c == nil {
					t.Fatalf("NewClient = %v", err)
				}
				if c.APIVersion() != DefaultAPIVersion || c.cfg.APIBase != DefaultAPIBase || c.cfg.OAuthTokenURL != DefaultOAuthTokenURL {
					t.Errorf("defaults not applied: %+v", c.cfg)
				}
				return
			}
			if err == nil {
				t.Fatal("NewClient succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestSecretsNeverLogged(t *testing.T) {
	e := newEnv(t, func(c *sandbox.Config) { c.RotateRefreshToken = true })
	cfg := e.config()
	c := e.client(t, cfg)
	e.srv.ExpireToken(sbToken)
	if out, err := c.Send(t.Context(), singleRequest(t, conversion(t, sbRule, 0))); err != nil || out.Class != ClassSuccess {
		t.Fatalf("Send = %v, %v", out.Class, err)
	}
	c.SetAccessToken("operator-token", time.Time{})
	tok := c.Token()
	var sb strings.Builder
	sb.WriteString(e.logs.String())
	for _, v := range []any{tok, cfg.Credentials, cfg} {
		sb.WriteString(sprintAll(v))
	}
	out := sb.String()
	if !strings.Contains(out, "access token refreshed") {
		t.Fatalf("expected refresh log line, got:\n%s", out)
	}
	for _, secret := range []string{sbToken, sbRefresh, sbClientSecret, sbClientID, "operator-token", tok.RefreshToken,
		"fat-0"} {
		if strings.Contains(out, secret) {
			t.Errorf("secret %q appears in logs or printed values:\n%s", secret, out)
		}
	}
}

// sprintAll renders v every way it could reach a log: fmt verbs and slog.
func sprintAll(v any) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v %+v %#v %s\n", v, v, v, v)
	slog.New(slog.NewTextHandler(&b, nil)).Info("value", "v", v)
	slog.New(slog.NewJSONHandler(&b, nil)).Info("value", "v", v)
	return b.String()
}

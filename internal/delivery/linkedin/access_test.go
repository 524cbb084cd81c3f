package linkedin

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/delivery"
	capi "github.com/capstan-gw/capstan/internal/linkedin"
	"github.com/capstan-gw/capstan/internal/sandbox"
)

// oauthClient are the sandbox app's credentials: with them the access
// check introspects the token and knows its scopes.
var oauthClient = capi.Credentials{AccessToken: "tok", ClientID: sandbox.DefaultClientID, ClientSecret: sandbox.DefaultClientSecret}

// A token without rw_conversions pauses the destination at start with a
// message naming the scope and the command; nothing is sent or
// dead-lettered. A proper token saved by `capstan auth linkedin` (the state
// bucket, seen by WatchToken) resumes delivery.
func TestMissingScopePausesUntilConnected(t *testing.T) {
	h := newHarness(t, opts{serve: true, creds: oauthClient, runner: delivery.RunnerConfig{PauseRetry: time.Hour},
		sandbox: sandbox.Config{Tokens: []sandbox.TokenSpec{{Token: "tok", AdAccount: account, Scopes: []string{"r_ads", "r_ads_reporting"}}}}})
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan error, 1)
	go func() { watched <- h.dest.WatchToken(ctx, h.runner.Resume) }()
	t.Cleanup(func() { cancel(); <-watched })

	h.send(signUpEvent(0, ""), signUpEvent(1, ""))
	eventually(t, 10*time.Second, "pause", func() bool { return h.runner.Paused() != "" })
	why := h.runner.Status().Reason
	for _, want := range []string{"lacks the rw_conversions scope", "scopes are r_ads,r_ads_reporting",
		"`capstan auth linkedin --config FILE --destination li`"} {
		if !strings.Contains(why, want) {
			t.Errorf("pause reason %q lacks %q", why, want)
		}
	}
	if n := len(h.sb.Conversions(sandbox.ConversionFilter{})); n != 0 {
		t.Fatalf("%d conversions sent while paused", n)
	}

	if err := h.sb.AddToken(sandbox.TokenSpec{Token: "tok-connected", AdAccount: account,
		Scopes: []string{"r_ads", "r_ads_reporting", "rw_conversions"}, RefreshToken: "ref-connected"}); err != nil {
		t.Fatal(err)
	}
	tok := capi.Token{AccessToken: "tok-connected", ExpiresAt: h.clock.Now().Add(60 * 24 * time.Hour), RefreshToken: "ref-connected",
		RefreshTokenExpiresAt: h.clock.Now().Add(365 * 24 * time.Hour), Scope: "r_ads,r_ads_reporting,rw_conversions"}
	if err := SaveConnectedToken(context.Background(), h.state, nil, h.dc, tok); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "token installed", func() bool { return h.client.Token().AccessToken == "tok-connected" })
	h.waitDelivered(2, nil)
	eventually(t, 10*time.Second, "unpause", func() bool { return h.runner.Paused() == "" })
	if got := h.client.Token().AccessToken; got != "tok-connected" {
		t.Errorf("token in use is not the connected one (%d characters)", len(got))
	}
	if dls := h.deadLetters(""); len(dls) != 0 {
		t.Errorf("%d dead letters", len(dls))
	}
}

// A member who is only VIEWER on the ad account pauses the destination
// with the roles that would do.
func TestViewerRolePauses(t *testing.T) {
	h := newHarness(t, opts{serve: true, creds: oauthClient, runner: delivery.RunnerConfig{PauseRetry: time.Hour},
		sandbox: sandbox.Config{Tokens: []sandbox.TokenSpec{{Token: "tok", AdAccount: account, Member: "V9", Role: "VIEWER"}}}})
	eventually(t, 10*time.Second, "pause", func() bool { return h.runner.Paused() != "" })
	why := h.runner.Status().Reason
	for _, want := range []string{"may not write to ad account 512345678", "the member is only VIEWER", "ACCOUNT_MANAGER", "VIEWER is not enough"} {
		if !strings.Contains(why, want) {
			t.Errorf("pause reason %q lacks %q", why, want)
		}
	}
}

// The periodic check notices a revoked token while nothing is sent,
// pauses, and resumes once a new token is connected.
func TestPeriodicAccessCheck(t *testing.T) {
	h := newHarness(t, opts{serve: true, creds: oauthClient,
		runner: delivery.RunnerConfig{AccessCheck: 50 * time.Millisecond, PauseRetry: time.Hour}})
	h.send(signUpEvent(0, ""))
	h.waitDelivered(1, nil)
	h.sb.RevokeToken("tok")
	eventually(t, 10*time.Second, "pause", func() bool { return h.runner.Paused() != "" })
	if why := h.runner.Status().Reason; !strings.Contains(why, "not usable") || !strings.Contains(why, "capstan auth linkedin") {
		t.Errorf("pause reason %q", why)
	}
	h.send(signUpEvent(1, ""))
	if err := h.sb.AddToken(sandbox.TokenSpec{Token: "tok2", AdAccount: account}); err != nil {
		t.Fatal(err)
	}
	if err := h.dest.InstallConnected(context.Background(), capi.Token{AccessToken: "tok2", Scope: "r_ads,rw_conversions"}); err != nil {
		t.Fatal(err)
	}
	h.runner.Resume()
	eventually(t, 10*time.Second, "unpause", func() bool { return h.runner.Paused() == "" })
	h.waitDelivered(2, nil)
}

// A token an operator installs (PUT …/token) replaces one whose scopes
// lacked rw_conversions: its own scopes count, not the old ones.
func TestInstalledTokenScopesNotInherited(t *testing.T) {
	h := newHarness(t, opts{serve: true, creds: capi.Credentials{AccessToken: "tok"}, runner: delivery.RunnerConfig{PauseRetry: time.Hour},
		sandbox: sandbox.Config{Tokens: []sandbox.TokenSpec{{Token: "tok", AdAccount: account, Scopes: []string{"r_ads"}}}}})
	h.client.SetToken(capi.Token{AccessToken: "tok", Scope: "r_ads"})
	h.runner.Resume()
	eventually(t, 10*time.Second, "pause", func() bool { return strings.Contains(h.runner.Paused(), "rw_conversions") })
	if err := h.sb.AddToken(sandbox.TokenSpec{Token: "tok2", AdAccount: account}); err != nil {
		t.Fatal(err)
	}
	if err := h.dest.InstallToken(context.Background(), "tok2", time.Time{}); err != nil {
		t.Fatal(err)
	}
	h.runner.Resume()
	h.send(signUpEvent(0, ""))
	h.waitDelivered(1, nil)
}

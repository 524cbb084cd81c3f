package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// deliverRun is what e2e/node/deliver.mjs prints.
type deliverRun struct {
	Version string `json:"version"`
	Events  []struct {
		Type      string `json:"type"`
		Event     string `json:"event"`
		MessageID string `json:"messageId"`
		UserID    string `json:"userId"`
		Traits    struct {
			Email string `json:"email"`
		} `json:"traits"`
		Properties struct {
			LiFatID string `json:"li_fat_id"`
		} `json:"properties"`
		Context struct {
			Traits struct {
				Email string `json:"email"`
			} `json:"traits"`
			Page struct {
				URL string `json:"url"`
			} `json:"page"`
		} `json:"context"`
	} `json:"events"`
	Responses []struct {
		Status int `json:"status"`
	} `json:"responses"`
}

// TestDeliveryAnalyticsNode sends track, identify and page calls with the
// real @segment/analytics-node to `capstan serve`, which delivers the "Sign
// Up" events to `capstan sandbox`: each arrives exactly once, with the
// event's messageId as eventId, the SHA-256 of the normalised email and the
// li_fat_id (from the properties or the page URL), in batches; nothing else
// arrives.
func TestDeliveryAnalyticsNode(t *testing.T) {
	requireNodeModules(t)
	sb := startSandbox(t, "--token", "node-token")
	dir := t.TempDir()
	cfg := writeDeliveryConfig(t, dir, "capstan.yaml", filepath.Join(dir, "data"), "", linkedInDest{sandbox: sb, accessToken: "node-token"})
	srv := startServer(t, cfg)
	hc := newHTTPClient(t)
	run := "dn" + time.Now().UTC().Format("150405.000")

	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join("node", "deliver.mjs"),
		"--host", srv.URL, "--write-key", testWriteKey, "--run", run, "--tracks", "200")
	cmd.Dir = e2eDir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run node deliver.mjs: %v", err)
		}
		t.Fatalf("node deliver.mjs failed (%v):\nstderr: %s\nstdout: %.2000s", err, stderr.String(), stdout.String())
	}
	var nr deliverRun
	if err := json.Unmarshal(stdout.Bytes(), &nr); err != nil {
		t.Fatalf("deliver.mjs output is not JSON (%v): %.2000s", err, stdout.String())
	}

	// What LinkedIn must receive, worked out from what the library sent.
	// graphEmail is what the identity graph may add: the hash of the email
	// an identify gave the same userId. Delivery converts events
	// concurrently, so an identify sent just after a Sign Up may already be
	// in the graph when the Sign Up is converted; that enrichment is right.
	type want struct{ email, liFatID, graphEmail string }
	wants := map[string]want{}
	types := map[string]int{}
	identified := map[string]string{}
	for _, ev := range nr.Events {
		if ev.Type == "identify" && ev.Traits.Email != "" {
			identified[ev.UserID] = emailHash(ev.Traits.Email)
		}
	}
	for _, ev := range nr.Events {
		types[ev.Type]++
		if ev.Type != "track" || ev.Event != "Sign Up" {
			continue
		}
		w := want{liFatID: ev.Properties.LiFatID, graphEmail: identified[ev.UserID]}
		if w.liFatID == "" && ev.Context.Page.URL != "" {
			u, err := url.Parse(ev.Context.Page.URL)
			if err != nil {
				t.Fatalf("deliver.mjs sent a bad page URL %q", ev.Context.Page.URL)
			}
			w.liFatID = u.Query().Get("li_fat_id")
		}
		if e := ev.Context.Traits.Email; e != "" {
			w.email = emailHash(e)
		}
		if w.email == "" && w.liFatID == "" {
			t.Fatalf("deliver.mjs sent a Sign Up without identifiers: %+v", ev)
		}
		wants[ev.MessageID] = w
	}
	t.Logf("@segment/analytics-node %s sent %d events in %d requests (%v); %d are Sign Ups",
		nr.Version, len(nr.Events), len(nr.Responses), types, len(wants))
	if len(nr.Events) != 240 || len(wants) != 120 {
		t.Fatalf("deliver.mjs sent %d events with %d Sign Ups, want 240 and 120", len(nr.Events), len(wants))
	}

	// Every event is processed: Sign Ups delivered, the rest matched nothing.
	waitProcessed(t, hc, srv.URL, len(nr.Events), len(wants), 0, 30*time.Second)
	elapsed := time.Since(begin)
	convs := sb.waitConversions(len(wants), 5*time.Second, "after capstan reported every conversion delivered")

	got := byEventID(t, convs)
	if len(convs) != len(wants) {
		t.Errorf("the sandbox holds %d conversions, want %d", len(convs), len(wants))
	}
	rule := ""
	for id, c := range got {
		w, ok := wants[id]
		if !ok {
			t.Errorf("conversion with eventId %q arrived but no Sign Up had that messageId: %+v", id, c)
			continue
		}
		if rule == "" {
			rule = c.Conversion
		}
		if c.Conversion != rule || !strings.HasPrefix(rule, "urn:lla:llaPartnerConversion:") {
			t.Errorf("eventId %s: conversion %q, want the same llaPartnerConversion URN for all (first: %q)", id, c.Conversion, rule)
		}
		email, nEmail := c.userID("SHA256_EMAIL")
		lfi, nLfi := c.userID("LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID")
		if (email != w.email && (w.email != "" || email != w.graphEmail)) || nEmail > 1 {
			t.Errorf("eventId %s: SHA256_EMAIL %q (%d ids), want %q", id, email, nEmail, w.email)
		}
		if lfi != w.liFatID || nLfi > 1 {
			t.Errorf("eventId %s: LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID %q (%d ids), want %q", id, lfi, nLfi, w.liFatID)
		}
		if at := time.UnixMilli(c.ConversionHappenedAt); at.Before(begin.Add(-time.Minute)) || at.After(time.Now()) {
			t.Errorf("eventId %s: conversionHappenedAt %s is not within the test's run (from %s)", id, at.UTC(), begin.UTC())
		}
	}
	for id := range wants {
		if _, ok := got[id]; !ok {
			t.Errorf("Sign Up %s did not arrive", id)
		}
	}

	// The rule capstan created is the one the conversions name.
	var state struct {
		Rules []struct {
			ID   int64  `json:"id"`
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"rules"`
	}
	sb.control(http.MethodGet, "/_sandbox/state", "", &state)
	found := false
	for _, r := range state.Rules {
		if r.Name == "Sign Up (capstan)" {
			found = true
			if wantURN := "urn:lla:llaPartnerConversion:" + strconv.FormatInt(r.ID, 10); rule != wantURN || r.Type != "SIGN_UP" {
				t.Errorf("rule %q: id %d type %s, conversions name %q", r.Name, r.ID, r.Type, rule)
			}
		}
	}
	if !found {
		t.Errorf("no rule \"Sign Up (capstan)\" in the sandbox: %+v", state.Rules)
	}

	// Batched: fewer requests than conversions, and BATCH_CREATE was used.
	c := sb.counters()
	t.Logf("delivered %d conversions in %s after the first event; sandbox counters %+v", len(convs), elapsed.Round(time.Millisecond), c)
	if c.Batches == 0 || c.ConversionRequests >= int64(len(wants)) {
		t.Errorf("conversions were not batched: %d conversion requests (%d batches) for %d conversions", c.ConversionRequests, c.Batches, len(wants))
	}
	if c.Accepted != int64(len(wants)) || c.RejectedEvents != 0 {
		t.Errorf("sandbox accepted %d and rejected %d events, want %d and 0", c.Accepted, c.RejectedEvents, len(wants))
	}
	if out := runDLQ(t, cfg, "list"); !strings.Contains(out, "no dead letters") {
		t.Errorf("capstan dlq list:\n%s\nwant no dead letters", out)
	}
}

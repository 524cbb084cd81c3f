package admin

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/capstan-gw/capstan/internal/config"
)

// reconcilingDest is a destination that reconciles: Reconcile returns a
// fixed document (or fails) and becomes the latest.
type reconcilingDest struct {
	*fakeDest
	latest any
	fail   error
	runs   int
}

func (d *reconcilingDest) Reconciliation() (any, string, bool) { return d.latest, "", true }

func (d *reconcilingDest) Reconcile(context.Context) (any, error) {
	d.runs++
	if d.fail != nil {
		return nil, d.fail
	}
	d.latest = map[string]any{"destination": d.name, "flagged": 1, "rules": []any{}}
	return d.latest, nil
}

func TestReconcileRoutes(t *testing.T) {
	e := newEnv(t)
	rd := &reconcilingDest{fakeDest: &fakeDest{name: "linkedin"}}
	broken := &reconcilingDest{fakeDest: &fakeDest{name: "broken"}, fail: errors.New("linkedin status 500")}
	plain := &fakeDest{name: "other"}
	s, err := New(Config{Token: config.Secret(testToken)}, Deps{
		Destinations: []Destination{rd, broken, plain},
		Identity:     e.s.identity, DeadLetters: e.s.dlq, Events: e.s.events, Preview: e.s.preview,
	}, discard)
	if err != nil {
		t.Fatal(err)
	}
	type view struct {
		Destination string          `json:"destination"`
		Supported   bool            `json:"supported"`
		Enabled     bool            `json:"enabled"`
		Latest      json.RawMessage `json:"latest"`
	}
	var list struct{ Destinations []view }
	decodeAnswer(t, do(t, s, "GET", "/admin/api/reconcile", operator, ""), &list)
	if len(list.Destinations) != 3 || !list.Destinations[0].Supported || string(list.Destinations[0].Latest) != "null" || list.Destinations[2].Supported {
		t.Errorf("before: %+v", list)
	}
	var res map[string]any
	decodeAnswer(t, do(t, s, "POST", "/admin/api/reconcile?destination=linkedin", operator, ""), &res)
	if res["destination"] != "linkedin" || rd.runs != 1 {
		t.Errorf("run: %v (%d runs)", res, rd.runs)
	}
	decodeAnswer(t, do(t, s, "GET", "/admin/api/reconcile?destination=linkedin", operator, ""), &list)
	if len(list.Destinations) != 1 || !json.Valid(list.Destinations[0].Latest) || string(list.Destinations[0].Latest) == "null" {
		t.Errorf("after: %+v", list)
	}
	wantError(t, do(t, s, "POST", "/admin/api/reconcile?destination=broken", operator, ""), 502, "unavailable", "reconciliation failed: linkedin status 500")
	wantError(t, do(t, s, "POST", "/admin/api/reconcile?destination=other", operator, ""), 400, "bad_request", `destination "other" cannot reconcile`)
	wantError(t, do(t, s, "POST", "/admin/api/reconcile", operator, ""), 400, "bad_request", "destination is required")
	wantError(t, do(t, s, "GET", "/admin/api/reconcile?destination=nope", operator, ""), 404, "not_found", `no such destination "nope"`)
	wantError(t, do(t, s, "GET", "/admin/api/reconcile?rule=1", operator, ""), 400, "bad_request", `unknown query parameter "rule"`)
}

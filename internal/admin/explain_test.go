package admin

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/capstan-gw/capstan/internal/delivery"
)

// TestExplainRoute: GET /admin/api/events/{seq}/explain answers the
// stored event's delivery.Explanation (its content is tested with real
// destinations in internal/delivery/linkedin), 404 for a sequence EVENTS
// does not hold, 400 for one that is not a sequence, 503 without an
// explainer.
func TestExplainRoute(t *testing.T) {
	e := newEnv(t)
	seq := addEvent(t, e.w, "web", "m-1")
	wantError(t, e.do(t, http.MethodGet, fmt.Sprintf("/admin/api/events/%d/explain", seq), ""), http.StatusServiceUnavailable, codeUnavailable, "not available")

	wantError(t, e.do(t, http.MethodGet, "/admin/api/mappings", ""), http.StatusServiceUnavailable, codeUnavailable, "not available")
	e.s.explain = EngineExplainer{Engine: e.eng}
	var m struct{ Destinations []delivery.DestinationInfo }
	if decodeAnswer(t, e.do(t, http.MethodGet, "/admin/api/mappings", ""), &m); m.Destinations == nil || len(m.Destinations) != 0 {
		t.Errorf("mappings %+v", m)
	}
	var x delivery.Explanation
	decodeAnswer(t, e.do(t, http.MethodGet, fmt.Sprintf("/admin/api/events/%d/explain", seq), ""), &x)
	if x.Seq != seq || x.Source != "web" || x.Type != "track" || x.StoredAt.IsZero() || len(x.Destinations) != 0 ||
		string(x.Event) != `{"type":"track","event":"Sign Up","messageId":"m-1","properties":{"note":"a<b&c"}}` {
		t.Errorf("explanation %+v (event %s)", x, x.Event)
	}
	wantError(t, e.do(t, http.MethodGet, "/admin/api/events/99/explain", ""), http.StatusNotFound, codeNotFound, "no stored event 99")
	wantError(t, e.do(t, http.MethodGet, "/admin/api/events/x/explain", ""), http.StatusBadRequest, codeBadRequest, `event seq "x"`)
	wantError(t, e.do(t, http.MethodGet, "/admin/api/events/1/explain?full=1", ""), http.StatusBadRequest, codeBadRequest, `unknown query parameter "full"`)
	wantError(t, do(t, e.s, http.MethodGet, "/admin/api/events/1/explain", "", ""), http.StatusUnauthorized, codeUnauthorized, "admin token")
}

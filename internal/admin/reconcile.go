package admin

import (
	"context"
	"net/http"
)

// Reconciling is implemented by destinations whose remote reports what it
// counted (LinkedIn: adAnalytics): the console shows, per rule and day, the
// conversions the remote accepted beside those it reports.
type Reconciling interface {
	// Reconciliation returns the latest reconciliation (JSON-encodable; nil
	// before the first), the latest attempt's error ("" when it
	// succeeded), and whether periodic reconciliation is enabled.
	Reconciliation() (latest any, lastError string, enabled bool)
	// Reconcile reconciles now and returns the result (JSON-encodable).
	Reconcile(ctx context.Context) (any, error)
}

// reconcileView is one destination's entry of GET /admin/api/reconcile.
type reconcileView struct {
	Destination string `json:"destination"`
	// Supported is false for destinations that cannot reconcile.
	Supported bool `json:"supported"`
	// Enabled is false with reconcile.disabled.
	Enabled bool   `json:"enabled"`
	Latest  any    `json:"latest"`
	Error   string `json:"error,omitempty"`
}

// listReconciliations: GET /admin/api/reconcile[?destination=NAME], the
// latest reconciliation of each (or one) destination.
func (s *Server) listReconciliations(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := checkQuery(q, "destination"); err != nil {
		return err
	}
	name := q.Get("destination")
	if name != "" && s.byName[name] == nil {
		return notFound("no such destination %q", name)
	}
	out := struct {
		Destinations []reconcileView `json:"destinations"`
	}{Destinations: []reconcileView{}}
	for _, d := range s.dests {
		if name != "" && d.Name() != name {
			continue
		}
		v := reconcileView{Destination: d.Name()}
		if rc, ok := d.(Reconciling); ok {
			v.Supported = true
			v.Latest, v.Error, v.Enabled = rc.Reconciliation()
		}
		out.Destinations = append(out.Destinations, v)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// runReconciliation: POST /admin/api/reconcile?destination=NAME reconciles
// one destination now and returns the result.
func (s *Server) runReconciliation(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := checkQuery(q, "destination"); err != nil {
		return err
	}
	name := q.Get("destination")
	if name == "" {
		return badRequest("destination is required")
	}
	d := s.byName[name]
	if d == nil {
		return notFound("no such destination %q", name)
	}
	rc, ok := d.(Reconciling)
	if !ok {
		return badRequest("destination %q cannot reconcile", name)
	}
	res, err := rc.Reconcile(r.Context())
	if err != nil {
		s.log.Warn("reconciliation failed", "destination", name, "error", err)
		return &apiError{http.StatusBadGateway, codeUnavailable, "reconciliation failed: " + err.Error()}
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

package ingest

import (
	"net/http"
)

// sourceConfigPath is where RudderStack's browser SDK
// (@rudderstack/analytics-js v3) asks its control plane for the source's
// configuration: {configUrl}/sourceConfig/?...&writeKey=KEY. capstan serves
// it at the root and under /v1, with and without the final slash.
const sourceConfigPath = "/sourceConfig"

// workspaceID is the workspaceId of every source configuration capstan
// serves: capstan has no workspaces, and the SDK only reports the value.
const workspaceID = "capstan"

// rudderSourceConfig is the answer of /sourceConfig: the fields the SDK
// checks (source.id, an object config, a destinations array) and reads
// (name, workspaceId, enabled), nothing more. config stays empty, so that
// neither error reporting nor metrics (config.statsCollection) send
// anything to endpoints capstan does not serve, and destinations stays
// empty, so that no device-mode integration is loaded from RudderStack's
// CDN.
type rudderSourceConfig struct {
	Source rudderSource `json:"source"`
}

type rudderSource struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	WorkspaceID  string   `json:"workspaceId"`
	Enabled      bool     `json:"enabled"`
	Config       struct{} `json:"config"`
	Destinations []any    `json:"destinations"`
}

// sourceConfig serves RudderStack's source configuration, so that
// @rudderstack/analytics-js loaded with configUrl pointing at capstan
// starts sending. The write key comes from HTTP Basic (the SDK sends
// "KEY:") or the query's writeKey. A known source gets 200 with enabled
// true, or false when it is disabled (the SDK then stays idle); a missing or
// unknown key and an origin off the source's allow-list get the tracking
// API's 401 and 403 answers. Preflights are answered like every other
// tracking path's (Authorization allowed), and every answer carries CORS.
func (h *Handler) sourceConfig(w http.ResponseWriter, r *http.Request) {
	cors(w, r)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		preflight(w, r)
		return
	default:
		w.Header().Set("Allow", "GET, OPTIONS")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed on "+r.URL.Path+"; use GET")
		return
	}
	s, aerr := h.authenticate(r, writeKey(r, r.URL.Query().Get("writeKey")))
	switch {
	case aerr != nil && aerr.code == "missing_write_key":
		aerr.msg = "no write key: send it as the HTTP Basic user name or as the writeKey query parameter"
		fallthrough
	case aerr != nil && aerr.code != "source_disabled":
		writeError(w, aerr.status, aerr.code, aerr.msg)
		return
	}
	doc := rudderSourceConfig{Source: rudderSource{
		ID: s.cfg.Name, Name: s.cfg.Name, WorkspaceID: workspaceID,
		Enabled: !s.cfg.Disabled, Destinations: []any{},
	}}
	// writeJSON sets Cache-Control: no-store: the answer follows the
	// configuration, which a reload (SIGHUP) changes at once.
	writeJSON(w, http.StatusOK, doc)
}

package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
)

// previewBody describes runPreview's body in messages.
const previewBody = `{"events": event or [events], "source": "…", "destination": "…"}`

// runPreview: POST /admin/api/preview is the dry run of `capstan preview
// --config`: the LinkedIn requests the events would produce and what became
// of each, sending nothing. It answers {"invalid": bool, "preview": {…}}.
func (s *Server) runPreview(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	var body struct {
		Events      json.RawMessage `json:"events"`
		Source      string          `json:"source"`
		Destination string          `json:"destination"`
	}
	if err := decodeBody(w, r, maxPreviewBody, &body, previewBody); err != nil {
		return err
	}
	if ev := bytes.TrimSpace(body.Events); len(ev) == 0 || bytes.Equal(ev, []byte("null")) {
		return badRequest("events is required: the body must be %s", previewBody)
	}
	if body.Destination != "" && s.byName[body.Destination] == nil {
		return notFound("no such destination %q", body.Destination)
	}
	res, invalid, err := s.preview.Preview(r.Context(), body.Events, body.Source, body.Destination)
	if err != nil {
		return badRequest("events: %v", err)
	}
	writeJSON(w, http.StatusOK, struct {
		Invalid bool `json:"invalid"`
		Preview any  `json:"preview"`
	}{invalid, res})
	return nil
}

package ingest

import (
	"net/http"
	"strings"
)

// settings serves the analytics-next settings document (§1.8) so that a
// browser loaded with cdnURL pointing at capstan sends its events here.
func (h *Handler) settings(w http.ResponseWriter, r *http.Request, key string) {
	hd := w.Header()
	hd.Set("Access-Control-Allow-Origin", "*")
	hd.Set("Access-Control-Expose-Headers", "Retry-After, X-RateLimit-Reset")
	hd.Set("Vary", "Origin")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		preflight(w, r)
		return
	default:
		hd.Set("Allow", "GET, OPTIONS")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed on the settings endpoint; use GET")
		return
	}
	s := h.source(key)
	if s == nil || s.cfg.Disabled {
		hd.Set("Cache-Control", "no-store")
		writeError(w, http.StatusNotFound, "invalid_write_key", "no enabled source has this write key")
		return
	}
	host, proto := h.publicHost(r)
	segment := map[string]any{
		"apiKey":                key,
		"apiHost":               host + "/v1",
		"protocol":              proto,
		"addBundledMetadata":    true,
		"unbundledIntegrations": []string{},
		"maybeBundledConfigIds": map[string]any{},
	}
	if b := s.cfg.BrowserBatching; b != nil {
		segment["deliveryStrategy"] = map[string]any{
			"strategy": "batching",
			"config":   map[string]any{"size": b.Size, "timeout": b.Timeout.D().Milliseconds()},
		}
	}
	doc := map[string]any{
		"integrations":              map[string]any{"Segment.io": segment},
		"plan":                      map[string]any{},
		"metrics":                   map[string]any{"sampleRate": 0, "host": host + "/v1"},
		"middlewareSettings":        map[string]any{},
		"enabledMiddleware":         map[string]any{},
		"legacyVideoPluginsEnabled": false,
		"remotePlugins":             []any{},
	}
	if h.publicURL != nil {
		// The document depends on the write key and the configuration
		// only: browsers and CDNs may keep it for a minute (analytics-next
		// fetches it on every page load).
		hd.Set("Cache-Control", "public, max-age=60")
	} else {
		// Built from the Host header (or X-Forwarded-Host): a shared cache
		// that keys on another host, or a forged header, must not hand one
		// request's apiHost to other browsers, which would then send their
		// events to it.
		hd.Set("Cache-Control", "private, no-store")
		hd.Set("Vary", "Origin, Host, X-Forwarded-Host, X-Forwarded-Proto")
	}
	writeJSON(w, http.StatusOK, doc)
}

// publicHost returns capstan's public host[:port] (with public_url's path)
// and scheme: from server.public_url, else from the request (X-Forwarded-*
// only from trusted proxies). analytics-next sends to
// protocol + "://" + apiHost + "/t", so apiHost is host + path + "/v1".
func (h *Handler) publicHost(r *http.Request) (host, proto string) {
	if h.publicURL != nil {
		return h.publicURL.Host + strings.TrimSuffix(h.publicURL.Path, "/"), h.publicURL.Scheme
	}
	host, proto = r.Host, "http"
	if r.TLS != nil {
		proto = "https"
	}
	if ip := h.peer(r); ip.IsValid() && h.trusted(ip) {
		if fh := r.Header.Get("X-Forwarded-Host"); fh != "" {
			host = strings.TrimSpace(strings.Split(fh, ",")[0])
		}
		if fp := r.Header.Get("X-Forwarded-Proto"); fp == "https" || fp == "http" {
			proto = fp
		}
	}
	return host, proto
}

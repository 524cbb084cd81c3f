// Package demo is the page of `capstan demo`: LinkedIn's "Online CAPI Demo"
// form (shared/seeds/000) wired to capstan.js, with a live panel showing each
// conversion as the LinkedIn sandbox accepted it. Plain HTML, CSS and JS,
// embedded; no build step.
package demo

import (
	"embed"
	"encoding/json"
	"net/http"
)

//go:embed index.html demo.js demo.css
var files embed.FS

// Info is what the page needs to know about the running demo.
type Info struct {
	// WriteKey of the demo's website source.
	WriteKey string `json:"writeKey"`
	// Rules maps conversion rule names to their ids in the sandbox.
	Rules map[string]string `json:"rules"`
	// SignUpRule is the id used as the Insight Tag conversion id of the form.
	SignUpRule string `json:"signUpRule"`
	// SandboxURL is the LinkedIn sandbox's base URL.
	SandboxURL string `json:"sandboxUrl"`
}

// Handler serves the page under /demo/ (and at /demo): info and
// conversions are called per request and must be safe for concurrent use.
func Handler(info func(*http.Request) Info, conversions func(*http.Request) any) http.Handler {
	mux := http.NewServeMux()
	page := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		http.ServeFileFS(w, r, files, "index.html")
	}
	mux.HandleFunc("GET /demo", page)
	mux.HandleFunc("GET /demo/{$}", page)
	mux.HandleFunc("GET /demo/demo.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, files, "demo.js")
	})
	mux.HandleFunc("GET /demo/demo.css", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, files, "demo.css")
	})
	mux.HandleFunc("GET /demo/api/info", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, info(r))
	})
	mux.HandleFunc("GET /demo/api/conversions", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, conversions(r))
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

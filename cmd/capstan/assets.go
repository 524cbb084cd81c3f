package main

import (
	"net/http"

	"github.com/capstan-gw/capstan/web"
)

// mountAssets adds capstan's browser assets to mux: GET /capstan.js, with a
// strong ETag, Cache-Control and gzip (web.Handler). serve mounts them, so
// `capstan serve` and `capstan demo` serve the same script the same way.
func mountAssets(mux *http.ServeMux) {
	mux.Handle("GET "+web.ScriptPath, web.Handler())
}

// Package web serves capstan's browser assets, embedded in the binary:
// capstan.js (the Segment-compatible browser client) now, the demo page
// (web/demo/) and the admin UI later.
//
// Assets are compressed once, when the handler is built, and served with a
// strong ETag, a short public cache lifetime and gzip for clients that accept
// it.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

//go:embed capstan.js
var files embed.FS

// CacheControl is the Cache-Control of every asset: browsers and CDNs may
// keep a copy for five minutes, then revalidate it with If-None-Match.
const CacheControl = "public, max-age=300"

// ScriptPath is where Handler serves capstan.js.
const ScriptPath = "/capstan.js"

// asset is one embedded file, ready to serve.
type asset struct {
	name   string
	ctype  string
	plain  []byte
	gz     []byte
	etag   string // of plain
	gzETag string // of gz: another representation needs another strong ETag
}

func newAsset(name, ctype string) (*asset, error) {
	b, err := files.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("read embedded %s: %w", name, err)
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, fmt.Errorf("gzip %s: %w", name, err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip %s: %w", name, err)
	}
	sum := sha256.Sum256(b)
	tag := base64.RawURLEncoding.EncodeToString(sum[:12])
	return &asset{
		name:   name,
		ctype:  ctype,
		plain:  b,
		gz:     buf.Bytes(),
		etag:   `"` + tag + `"`,
		gzETag: `"` + tag + `-gzip"`,
	}, nil
}

// ServeHTTP serves the asset for GET and HEAD, with 304 on a matching
// If-None-Match (http.ServeContent does the conditional and range logic).
func (a *asset) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Type", a.ctype)
	hd.Set("Cache-Control", CacheControl)
	hd.Set("Vary", "Accept-Encoding")
	hd.Set("X-Content-Type-Options", "nosniff")
	// Loadable with <script crossorigin> (for Subresource Integrity).
	hd.Set("Access-Control-Allow-Origin", "*")
	body, tag := a.plain, a.etag
	if acceptsGzip(r.Header.Values("Accept-Encoding")) {
		body, tag = a.gz, a.gzETag
		hd.Set("Content-Encoding", "gzip")
	}
	hd.Set("ETag", tag)
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(body))
}

// acceptsGzip reports whether Accept-Encoding lists gzip (or *) with a
// non-zero quality.
func acceptsGzip(values []string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			if coding != "gzip" && coding != "x-gzip" && coding != "*" {
				continue
			}
			if quality(params) > 0 {
				return true
			}
		}
	}
	return false
}

// quality returns the q parameter of an Accept-Encoding element (1 when absent).
func quality(params string) float64 {
	for p := range strings.SplitSeq(params, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
			q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0
			}
			return q
		}
	}
	return 1
}

// Handler returns the handler of capstan's browser assets. It serves
// GET/HEAD /capstan.js and answers 404 for other paths, so the caller can
// mount it on "/capstan.js" alone or on a prefix shared with the later demo
// and admin pages.
func Handler() http.Handler {
	js, err := newAsset("capstan.js", "text/javascript; charset=utf-8")
	if err != nil {
		// The file is embedded at compile time; reading it cannot fail.
		panic("web: " + err.Error())
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+ScriptPath, js)
	return mux
}

// Script returns the embedded capstan.js, for tests and tools.
func Script() []byte {
	b, _ := files.ReadFile("capstan.js")
	return b
}

package admin

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

// The console: plain HTML, CSS and JavaScript, embedded, no build step.
//
//go:embed ui
var uiFiles embed.FS

// uiPrefix is where the console's files are served: they are not secret
// (no data in them), so they need no credential.
const uiPrefix = "/admin/ui/"

// uiFile is one embedded file with its ETag.
type uiFile struct {
	body []byte
	etag string
}

var (
	uiFS      = mustSub(uiFiles, "ui")
	uiByPath  = loadUI(uiFS)
	signInTpl = template.Must(template.ParseFS(uiFS, "signin.html"))
)

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

// loadUI reads every embedded file and its content hash.
func loadUI(f fs.FS) map[string]uiFile {
	m := map[string]uiFile{}
	err := fs.WalkDir(f, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(f, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		m[p] = uiFile{body: b, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		panic(err)
	}
	return m
}

// consolePolicy is the console's Content-Security-Policy: nothing but its
// own files and API; no inline script, no frames.
const consolePolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// serveConsole: GET /admin/ serves the console's shell to a signed-in
// session (or the admin token), else the sign-in page.
func (s *Server) serveConsole(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		s.fail(w, r, &apiError{http.StatusMethodNotAllowed, codeMethodNotAllowed,
			r.Method + " is not allowed on " + r.URL.Path + ": use GET"})
		return
	}
	if r.URL.Path == "/admin" {
		http.Redirect(w, r, "/admin/", http.StatusMovedPermanently)
		return
	}
	h.Set("Content-Security-Policy", consolePolicy)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Type", "text/html; charset=utf-8")
	if _, ok := s.authenticate(r); ok {
		body := uiByPath["index.html"].body
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
		return
	}
	var buf bytes.Buffer
	err := signInTpl.Execute(&buf, struct {
		Users bool
		Token bool
	}{len(s.users) > 0, s.hasToken})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// serveUI: GET /admin/ui/{file} serves the console's files, revalidated
// by ETag (their content hash) on every use.
func (s *Server) serveUI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	name := path.Clean(strings.TrimPrefix(r.URL.Path, uiPrefix))
	f, ok := uiByPath[name]
	if !ok || name == "signin.html" || name == "index.html" {
		h.Set("Cache-Control", "no-store")
		s.fail(w, r, notFound("no console file %s", r.URL.Path))
		return
	}
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
}

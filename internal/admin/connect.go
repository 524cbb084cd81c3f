package admin

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/capstan-gw/capstan/internal/audit"
)

// Connector is implemented by destinations that an operator can connect to
// their remote account from the console (LinkedIn: the authorization-code
// flow, spec linkedin-capi.md §6.3 and §24.2).
type Connector interface {
	// ConnectRedirectURI is the configured redirect URL registered on the
	// remote app ("" when none is configured).
	ConnectRedirectURI() string
	// StartConnect returns the authorization URL to send the operator's
	// browser to, and the state it carries; redirectURI is where the
	// remote sends the browser back.
	StartConnect(redirectURI string) (authURL, state string, err error)
	// FinishConnect checks the callback's query against state, exchanges
	// the code with redirectURI, checks what the new token may do, and
	// installs it (in use at once, kept across restarts, delivery
	// resumed). It returns a summary without secrets for the audit log
	// and the operator, and warnings (what works but should be fixed).
	// Its error's message is shown to the operator.
	FinishConnect(ctx context.Context, q url.Values, state, redirectURI string) (summary string, warnings []string, err error)
}

// AccountChoice is one of the member's ad accounts, offered after consent
// when the destination has no ad account configured.
type AccountChoice struct {
	Account int64
	Role    string
	// Writable: the member may send conversions for it; else Reason says
	// why not.
	Writable bool
	Reason   string
}

// ChooseAccountError is what Connector.FinishConnect returns for a
// destination without an ad account, instead of installing the token: the
// member's accounts to choose from, and Choose, which checks the chosen one
// and finishes the connection as FinishConnect would (summary, warnings),
// also returning the configuration to add for it.
type ChooseAccountError struct {
	Accounts []AccountChoice
	Choose   func(ctx context.Context, account int64) (summary, config string, warnings []string, err error)
}

func (e *ChooseAccountError) Error() string { return "the destination has no ad account: choose one" }

// ChoosePath receives the operator's choice of ad account (a form on the
// callback's page).
const ChoosePath = "/admin/oauth/choose"

// CallbackPath is the console's OAuth callback: register
// https://<capstan's public address>/admin/oauth/callback on the LinkedIn
// app and set it as the destination's auth.redirect_uri.
const CallbackPath = "/admin/oauth/callback"

// connectTTL is how long a connection's state is accepted (single use).
const connectTTL = 10 * time.Minute

// pendingConnect is a connection started by an operator and not yet
// back from the remote.
type pendingConnect struct {
	dest     string
	redirect string
	by       string
	expires  time.Time
}

// pendingChoice is a connection waiting for the operator's choice of ad
// account.
type pendingChoice struct {
	pendingConnect
	choose *ChooseAccountError
}

// connects holds the pending connections by state, and those waiting for
// an ad account by choice id.
type connects struct {
	mu      sync.Mutex
	pending map[string]pendingConnect
	choices map[string]pendingChoice
}

// addChoice keeps p under a new random id, which it returns, dropping
// expired ones.
func (c *connects) addChoice(p pendingChoice, now time.Time) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.choices == nil {
		c.choices = map[string]pendingChoice{}
	}
	for k, v := range c.choices {
		if now.After(v.expires) {
			delete(c.choices, k)
		}
	}
	id := randomToken()
	c.choices[id] = p
	return id
}

// takeChoice removes and returns the choice id, if pending and not
// expired: a choice works once.
func (c *connects) takeChoice(id string, now time.Time) (pendingChoice, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.choices[id]
	delete(c.choices, id)
	return p, ok && !now.After(p.expires)
}

// add keeps p under state, dropping expired ones.
func (c *connects) add(state string, p pendingConnect, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil {
		c.pending = map[string]pendingConnect{}
	}
	for k, v := range c.pending {
		if now.After(v.expires) {
			delete(c.pending, k)
		}
	}
	c.pending[state] = p
}

// take removes and returns the connection of state, if it is pending and
// not expired: a state works once.
func (c *connects) take(state string, now time.Time) (pendingConnect, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pending[state]
	delete(c.pending, state)
	return p, ok && !now.After(p.expires)
}

// startConnect: POST /admin/api/destinations/{name}/connect answers
// {"url": authorization URL, "redirectUri", "expiresAt"}; the console sends
// the browser to url.
func (s *Server) startConnect(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	d, err := s.destination(r)
	if err != nil {
		return err
	}
	c, ok := d.(Connector)
	if !ok {
		return badRequest("destination %q cannot be connected from the console", d.Name())
	}
	redirect := c.ConnectRedirectURI()
	want := requestOrigin(r) + CallbackPath
	if redirect == "" {
		return badRequest("destination %s has no auth.redirect_uri: register %s as an Authorized redirect URL on the LinkedIn app (developer portal, Auth tab), "+
			"set it as destinations[%s].auth.redirect_uri and reload the configuration", d.Name(), want, d.Name())
	}
	if u, err := url.Parse(redirect); err != nil || u.Path != CallbackPath {
		return badRequest("destinations[%s].auth.redirect_uri %q does not lead to the console's callback: it must end in %s (here: %s)",
			d.Name(), redirect, CallbackPath, want)
	}
	authURL, state, err := c.StartConnect(redirect)
	if err != nil {
		return badRequest("%s", err.Error())
	}
	now := time.Now()
	p := principalOf(r)
	s.connects.add(state, pendingConnect{dest: d.Name(), redirect: redirect, by: p.name, expires: now.Add(connectTTL)}, now)
	s.log.Info("LinkedIn connection started", "destination", d.Name(), "principal", p.name)
	writeJSON(w, http.StatusOK, map[string]any{"url": authURL, "redirectUri": redirect, "expiresAt": now.Add(connectTTL).UTC()})
	return nil
}

// requestOrigin is the origin the request was sent to, as the browser
// sees it (X-Forwarded-Proto behind a proxy).
func requestOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// oauthCallback: GET /admin/oauth/callback, where the remote sends the
// operator's browser back. It needs no admin credential: the state, made
// for one operator's request and valid once for 10 minutes, is the
// credential (the session cookie is SameSite=Strict and is not sent on a
// navigation coming from LinkedIn). It exchanges the code, checks and
// installs the token, writes the audit record and shows a page that sends
// the browser on to the console's Destinations page.
func (s *Server) oauthCallback(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer") // the URL holds the code
	if r.Method != http.MethodGet {
		h.Set("Allow", http.MethodGet)
		http.Error(w, "use GET", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	p, ok := s.connects.take(q.Get("state"), time.Now())
	if !ok {
		s.log.Warn("LinkedIn callback with an unknown, used or expired state refused")
		s.connectPage(w, http.StatusBadRequest, "", false,
			"This LinkedIn answer does not belong to a connection in progress (unknown, already used or older than 10 minutes). Start again with Connect LinkedIn.", nil)
		return
	}
	var c Connector
	if d := s.byName[p.dest]; d != nil {
		c, _ = d.(Connector)
	}
	if c == nil {
		s.connectPage(w, http.StatusNotFound, p.dest, false, "The destination "+p.dest+" no longer exists.", nil)
		return
	}
	summary, warnings, err := c.FinishConnect(r.Context(), q, q.Get("state"), p.redirect)
	if ce, ok := errors.AsType[*ChooseAccountError](err); ok {
		now := time.Now()
		p.expires = now.Add(connectTTL)
		id := s.connects.addChoice(pendingChoice{pendingConnect: p, choose: ce}, now)
		s.log.Info("LinkedIn consent given; waiting for the choice of ad account", "destination", p.dest, "principal", p.by, "accounts", len(ce.Accounts))
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = chooseTmpl.Execute(w, chooseView{Destination: p.dest, Choice: id, Action: ChoosePath, Accounts: ce.Accounts})
		return
	}
	if s.connectDone(w, r, p, summary, err) {
		s.connectPage(w, http.StatusOK, p.dest, true, "Destination "+p.dest+" is connected: "+summary+".", warnings)
	}
}

// connectDone audits the end of p's connection and logs it; when it failed
// (err), it also answers with the failure page and returns false.
func (s *Server) connectDone(w http.ResponseWriter, r *http.Request, p pendingConnect, summary string, err error) bool {
	rec := audit.Record{By: p.by, Action: audit.ActionLinkedInConnect, Target: p.dest, Detail: summary}
	if err != nil {
		rec.Error = err.Error()
	}
	s.record(r, rec)
	if err != nil {
		s.log.Warn("LinkedIn connection failed", "destination", p.dest, "principal", p.by, "error", err)
		s.connectPage(w, http.StatusOK, p.dest, false, "Destination "+p.dest+" was not connected: "+err.Error(), nil)
		return false
	}
	s.log.Info("LinkedIn connected", "destination", p.dest, "principal", p.by, "detail", summary)
	return true
}

// oauthChoose: POST /admin/oauth/choose, the operator's choice of ad
// account on the callback's page (form fields choice and account). Like
// the callback it needs no admin credential: the choice id, made for the
// operator who started the connection and valid once for 10 minutes, is
// the credential.
func (s *Server) oauthChoose(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodPost {
		h.Set("Allow", http.MethodPost)
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	p, ok := s.connects.takeChoice(r.PostForm.Get("choice"), time.Now())
	if !ok {
		s.log.Warn("LinkedIn ad account choice with an unknown, used or expired id refused")
		s.connectPage(w, http.StatusBadRequest, "", false,
			"This choice of ad account does not belong to a connection in progress (unknown, already used or older than 10 minutes). Start again with Connect LinkedIn.", nil)
		return
	}
	account, err := strconv.ParseInt(r.PostForm.Get("account"), 10, 64)
	if err != nil || account <= 0 {
		s.connectPage(w, http.StatusBadRequest, p.dest, false, "No ad account was chosen. Start again with Connect LinkedIn.", nil)
		return
	}
	summary, config, warnings, err := p.choose.Choose(r.Context(), account)
	if s.connectDone(w, r, p.pendingConnect, summary, err) {
		s.connectPageConfig(w, p.dest, "Destination "+p.dest+" is connected: "+summary+".", config, warnings)
	}
}

type chooseView struct {
	Destination, Choice, Action string
	Accounts                    []AccountChoice
}

// connectStyle is the look of the pages of Connect LinkedIn (served
// outside the console, so without its style sheet).
const connectStyle = `{{define "style"}}<style>body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#1d2430}
ul{list-style:none;padding:0}li{display:flex;align-items:center;gap:1rem;padding:.6rem .8rem;border:1px solid #d6dbe3;border-radius:6px;margin:.5rem 0}
li.read-only{color:#7a8494;background:#f4f6f9}button{font:inherit;padding:.35rem .9rem;border-radius:5px;border:1px solid #0a66c2;background:#0a66c2;color:#fff;cursor:pointer}
button:disabled{background:#e3e7ed;border-color:#cfd5de;color:#7a8494;cursor:not-allowed}.reason{font-size:.9em}pre{background:#f4f6f9;border:1px solid #d6dbe3;border-radius:6px;padding:.8rem 1rem}</style>{{end}}`

var chooseTmpl = template.Must(template.Must(template.New("choose").Parse(connectStyle)).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>capstan: Connect LinkedIn</title>
{{template "style"}}</head>
<body><main>
<h1>Connect LinkedIn</h1>
<p role="status">LinkedIn consent given for destination {{.Destination}}. It has no ad account configured: choose the one capstan sends conversions for.</p>
<section aria-labelledby="writable"><h2 id="writable">Ad accounts the member may write to</h2>
<ul>{{range .Accounts}}{{if .Writable}}<li><form method="post" action="{{$.Action}}"><input type="hidden" name="choice" value="{{$.Choice}}"><input type="hidden" name="account" value="{{.Account}}"><button type="submit">Use ad account {{.Account}}</button></form><span>{{.Role}}</span></li>{{end}}{{else}}<li>none</li>{{end}}</ul></section>
<section aria-labelledby="read-only"><h2 id="read-only">Ad accounts the member can only read</h2>
<ul>{{range .Accounts}}{{if not .Writable}}<li class="read-only"><button type="button" disabled aria-describedby="why-{{.Account}}">Use ad account {{.Account}}</button><span class="reason" id="why-{{.Account}}">{{.Reason}}</span></li>{{end}}{{end}}</ul></section>
<p><a href="/admin/#/destinations">Cancel</a></p>
</main></body></html>
`))

type connectView struct {
	Destination, Message, Next string
	OK                         bool
	Warnings                   []string
	Config                     string
}

// connectPage shows the outcome and sends the browser on to the console's
// Destinations page (a same-origin navigation, so the session cookie goes
// with it).
func (s *Server) connectPage(w http.ResponseWriter, status int, dest string, ok bool, msg string, warnings []string) {
	v := url.Values{}
	if dest != "" {
		v.Set("destination", dest)
	}
	if ok {
		v.Set("connected", "1")
	} else {
		v.Set("connect_error", msg)
	}
	next := "/admin/#/destinations?" + v.Encode()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = connectTmpl.Execute(w, connectView{Destination: dest, Message: msg, Next: next, OK: ok, Warnings: warnings})
}

// connectPageConfig shows a connection made with a chosen ad account and
// the configuration to add for it; it stays until the operator goes on.
func (s *Server) connectPageConfig(w http.ResponseWriter, dest, msg, config string, warnings []string) {
	v := url.Values{"destination": {dest}, "connected": {"1"}}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = connectTmpl.Execute(w, connectView{Destination: dest, Message: msg, Next: "/admin/#/destinations?" + v.Encode(), OK: true, Warnings: warnings, Config: config})
}

var connectTmpl = template.Must(template.Must(template.New("connect").Parse(connectStyle)).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>capstan: Connect LinkedIn</title>{{template "style"}}
{{if and .OK (not .Warnings) (not .Config)}}<meta http-equiv="refresh" content="2;url={{.Next}}">{{end}}</head>
<body><main>
<h1>Connect LinkedIn</h1>
<p role="{{if .OK}}status{{else}}alert{{end}}">{{.Message}}</p>
{{if .Warnings}}<ul aria-label="Warnings">{{range .Warnings}}<li>{{.}}</li>{{end}}</ul>{{end}}
{{if .Config}}<p>Add the chosen ad account to the configuration and reload it (the destination needs it to create rules, associate campaigns and reconcile):</p>
<pre aria-label="Configuration to add">{{.Config}}</pre>{{end}}
<p><a href="{{.Next}}">Back to Destinations</a></p>
</main></body></html>
`))

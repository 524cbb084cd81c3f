package admin

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/capstan-gw/capstan/internal/config"
)

func TestNew(t *testing.T) {
	e := newEnv(t)
	full := Deps{Identity: e.s.identity, DeadLetters: e.s.dlq, Events: e.s.events, Preview: e.s.preview}
	tests := []struct {
		name  string
		token string
		deps  func(Deps) Deps
		want  []string // fragments of the error; none: no error
	}{
		{"complete", testToken, func(d Deps) Deps { return d }, nil},
		{"everything missing", "", func(Deps) Deps { return Deps{} },
			[]string{"admin token is empty", "no identity graph", "no dead-letter queue", "no event reader", "no previewer"}},
		{"nil destination", testToken, func(d Deps) Deps { d.Destinations = []Destination{nil}; return d }, []string{"destination 0 is nil"}},
		{"twice the same name", testToken, func(d Deps) Deps {
			d.Destinations = []Destination{&fakeDest{name: "li"}, &fakeDest{name: "li"}}
			return d
		}, []string{`destination "li" given twice`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Config{Token: config.Secret(tt.token)}, tt.deps(full), nil)
			if len(tt.want) == 0 {
				if err != nil || s == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("New accepted it")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	routes := []struct{ method, target, body string }{
		{"GET", "/admin/api/destinations", ""},
		{"PUT", "/admin/api/destinations/linkedin/token", `{"access_token":"tok"}`},
		{"PUT", "/admin/destinations/linkedin/token", `{"access_token":"tok"}`},
		{"GET", "/admin/identity?userId=u", ""},
		{"DELETE", "/admin/api/identity?userId=u", ""},
		{"POST", "/admin/api/dlq/replay", `{"all":true}`},
		{"GET", "/admin/api/events", ""},
		{"POST", "/admin/api/preview", `{"events":{}}`},
		{"GET", "/admin/api/nothing-here", ""}, // routes are not revealed
	}
	for _, auth := range []struct{ name, header string }{
		{"no credential", ""},
		{"wrong token", "Bearer nope"},
		{"token prefix", "Bearer s3cre"},
		{"token and more", "Bearer s3cret2"},
		{"no scheme", testToken},
		{"basic auth", "Basic czNjcmV0"},
		{"empty bearer", "Bearer "},
	} {
		for _, rt := range routes {
			t.Run(auth.name+"/"+rt.method+" "+rt.target, func(t *testing.T) {
				a := do(t, e.s, rt.method, rt.target, auth.header, rt.body)
				wantError(t, a, http.StatusUnauthorized, "unauthorized", "admin token")
				if got := a.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Errorf("WWW-Authenticate %q", got)
				}
			})
		}
	}
	if got := e.dests["linkedin"].installed(); len(got) != 0 {
		t.Errorf("refused calls installed tokens %v", got)
	}

	// The right token, with the scheme in any case.
	for _, header := range []string{operator, "bearer " + testToken, "BEARER  " + testToken + " "} {
		if a := do(t, e.s, "GET", "/admin/api/destinations", header, ""); a.status != http.StatusOK {
			t.Errorf("%q: %d %s", header, a.status, a.body)
		}
	}
}

// TestAuthConstantTime checks that the credential is compared with
// crypto/subtle and with nothing else.
func TestAuthConstantTime(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "auth.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var fn *ast.FuncDecl
	for _, d := range f.Decls {
		if d, ok := d.(*ast.FuncDecl); ok && d.Name.Name == "authenticate" {
			fn = d
		}
	}
	if fn == nil {
		t.Fatal("auth.go has no authenticate")
	}
	subtle := false
	ast.Inspect(fn, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if x, ok := n.X.(*ast.Ident); ok && x.Name == "subtle" && n.Sel.Name == "ConstantTimeCompare" {
				subtle = true
			}
		case *ast.BinaryExpr:
			if (n.Op == token.EQL || n.Op == token.NEQ) && !isSubtleCompare(n.X) && !isSubtleCompare(n.Y) &&
				(mentions(n, "token") || mentions(n, "tok") || mentions(n, "got")) {
				t.Errorf("authenticate compares the credential with %s", n.Op)
			}
		case *ast.CallExpr:
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && (x.Name == "bytes" || x.Name == "strings") &&
					(sel.Sel.Name == "Equal" || sel.Sel.Name == "Compare" || sel.Sel.Name == "EqualFold") {
					for _, arg := range n.Args {
						if mentions(arg, "token") || mentions(arg, "tok") || mentions(arg, "got") {
							t.Errorf("authenticate compares the credential with %s.%s", x.Name, sel.Sel.Name)
						}
					}
				}
			}
		}
		return true
	})
	if !subtle {
		t.Error("authenticate does not use subtle.ConstantTimeCompare")
	}
}

// isSubtleCompare reports whether e is a call of subtle.ConstantTimeCompare.
func isSubtleCompare(e ast.Expr) bool {
	call, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	x, ok := sel.X.(*ast.Ident)
	return ok && x.Name == "subtle" && sel.Sel.Name == "ConstantTimeCompare"
}

// mentions reports whether n uses an identifier or field named name.
func mentions(n ast.Node, name string) bool {
	found := false
	ast.Inspect(n, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok && id.Name == name {
			found = true
		}
		return !found
	})
	return found
}

// TestRoles: reads need a viewer, changes an operator; a viewer is refused
// a change with 403.
func TestRoles(t *testing.T) {
	e := newEnv(t)
	for pattern, role := range e.s.roles {
		method, _, _ := strings.Cut(pattern, " ")
		want := RoleViewer
		// Anyone signed in may sign out.
		if method != "GET" && !strings.HasSuffix(pattern, "/preview") && pattern != "DELETE /admin/api/session" {
			want = RoleOperator
		}
		if role != want {
			t.Errorf("%s needs %s, want %s", pattern, role, want)
		}
	}

	viewer := principal{name: "a viewer", role: RoleViewer}
	as := func(method, target, body string) answer {
		rec := httptest.NewRecorder()
		e.s.serve(rec, httptest.NewRequest(method, target, strings.NewReader(body)), viewer)
		return answer{rec.Code, rec.Header(), rec.Body.Bytes()}
	}
	for _, rt := range []struct{ method, target, body string }{
		{"PUT", "/admin/api/destinations/linkedin/token", `{"access_token":"tok"}`},
		{"PUT", "/admin/destinations/linkedin/token", `{"access_token":"tok"}`},
		{"DELETE", "/admin/api/identity?userId=u", ""},
		{"DELETE", "/admin/identity?userId=u", ""},
		{"POST", "/admin/api/dlq/replay", `{"all":true}`},
	} {
		wantError(t, as(rt.method, rt.target, rt.body), http.StatusForbidden, "forbidden", "operator")
	}
	if got := e.dests["linkedin"].installed(); len(got) != 0 {
		t.Errorf("a viewer installed tokens %v", got)
	}
	if a := as("GET", "/admin/api/destinations/linkedin", ""); a.status != http.StatusOK {
		t.Errorf("a viewer reading: %d %s", a.status, a.body)
	}
}

// TestRouting: unknown paths are 404, other methods 405 with Allow, in the
// one error format.
func TestRouting(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, method, target string
		status               int
		code, fragment       string
		allow                string
	}{
		{"unknown api route", "GET", "/admin/api/nothing", 404, "not_found", "no admin endpoint /admin/api/nothing", ""},
		{"api root", "GET", "/admin/api/", 404, "not_found", "no admin endpoint", ""},
		{"trailing slash", "GET", "/admin/api/destinations/", 404, "not_found", "no admin endpoint", ""},
		{"token below", "GET", "/admin/api/destinations/linkedin/token/x", 404, "not_found", "no admin endpoint", ""},
		{"post destinations", "POST", "/admin/api/destinations", 405, "method_not_allowed", "use GET", "GET"},
		{"get token", "GET", "/admin/api/destinations/linkedin/token", 405, "method_not_allowed", "use PUT", "PUT"},
		{"legacy get token", "GET", "/admin/destinations/linkedin/token", 405, "method_not_allowed", "use PUT", "PUT"},
		{"post identity", "POST", "/admin/api/identity?userId=u", 405, "method_not_allowed", "use GET or DELETE", "GET, DELETE"},
		{"legacy post identity", "POST", "/admin/identity?userId=u", 405, "method_not_allowed", "use GET or DELETE", "GET, DELETE"},
		{"delete dlq", "DELETE", "/admin/api/dlq", 405, "method_not_allowed", "use GET", "GET"},
		{"get preview", "GET", "/admin/api/preview", 405, "method_not_allowed", "use POST", "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.do(t, tt.method, tt.target, "")
			wantError(t, a, tt.status, tt.code, tt.fragment)
			if got := a.header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
		})
	}
}

package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// graph is a module's package graph: every package of the module and every
// package they depend on, with its direct imports and its transitive
// dependencies, as `go list -deps` reports them.
type graph struct {
	module string           // the module path
	pkgs   map[string]*node // by import path, the module's and its dependencies'
	local  []string         // the module's own packages, sorted
}

type node struct {
	imports []string // direct imports (go list's Imports)
	deps    []string // transitive dependencies (go list's Deps), sorted
}

// listed is the part of `go list -json` output the graph uses.
type listed struct {
	ImportPath string
	Imports    []string
	Deps       []string
	Module     *struct {
		Path string
		Main bool
	}
}

// loadGraph runs `go list -deps -json ./...` at the root of the module the
// test runs in. The graph is of non-test code only (tests may import anything:
// linkedin's tests run against the sandbox) and of the host's GOOS/GOARCH,
// which is every import capstan has today: the non-test files with a build
// constraint (cmd/capstan's offheap_*.go, internal/cputime's) import no
// capstan package, and the same one in every variant.
func loadGraph(t testing.TB) *graph {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	mod := strings.TrimSpace(string(gomod))
	if mod == "" || mod == "/dev/null" || mod == "NUL" {
		t.Fatal("go env GOMOD: not inside a module")
	}
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Imports,Deps,Module", "./...")
	cmd.Dir = filepath.Dir(mod)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./... in %s: %v\n%s", cmd.Dir, err, stderr.Bytes())
	}
	g, err := parseGraph(out)
	if err != nil {
		t.Fatalf("go list -deps ./...: %v", err)
	}
	return g
}

// parseGraph reads the stream of JSON objects `go list -json` prints.
func parseGraph(out []byte) (*graph, error) {
	var pkgs []listed
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listed
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("decode: %w", err)
		}
		pkgs = append(pkgs, p)
	}
	module := ""
	for _, p := range pkgs {
		if p.Module != nil && p.Module.Main {
			module = p.Module.Path
			break
		}
	}
	if module == "" {
		return nil, errors.New("no package of the main module")
	}
	return newGraph(module, pkgs), nil
}

func newGraph(module string, pkgs []listed) *graph {
	g := &graph{module: module, pkgs: map[string]*node{}}
	for _, p := range pkgs {
		deps := slices.Clone(p.Deps)
		slices.Sort(deps)
		g.pkgs[p.ImportPath] = &node{imports: p.Imports, deps: deps}
		if g.isLocal(p.ImportPath) {
			g.local = append(g.local, p.ImportPath)
		}
	}
	slices.Sort(g.local)
	return g
}

// isLocal reports whether path is a package of the module.
func (g *graph) isLocal(path string) bool {
	return path == g.module || strings.HasPrefix(path, g.module+"/")
}

// rel is path without the module prefix, for messages and patterns.
func (g *graph) rel(path string) string {
	if path == g.module {
		return "."
	}
	return strings.TrimPrefix(path, g.module+"/")
}

// dependsOn reports whether package from depends on package to (directly or
// transitively).
func (g *graph) dependsOn(from, to string) bool {
	n := g.pkgs[from]
	if n == nil {
		return false
	}
	_, ok := slices.BinarySearch(n.deps, to)
	return ok
}

// chain returns a shortest import chain from one package to another, both
// included, or nil. Packages for which stop returns true are not crossed, so
// that a chain ends at the first package a rule forbids.
func (g *graph) chain(from, to string, stop func(string) bool) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == to {
			var c []string
			for ; p != ""; p = prev[p] {
				c = append(c, p)
			}
			slices.Reverse(c)
			return c
		}
		if p != from && stop(p) {
			continue
		}
		if n := g.pkgs[p]; n != nil {
			for _, q := range n.imports {
				if _, seen := prev[q]; !seen {
					prev[q] = p
					queue = append(queue, q)
				}
			}
		}
	}
	return nil
}

// pattern selects packages of a graph.
type pattern struct {
	desc string
	// local: the pattern names packages of the module, and a rule using it
	// is void if it matches none (a renamed package).
	local bool
	match func(g *graph, path string) bool
}

// pkg is the module's package rel (relative to the module path), exactly.
func pkg(rel string) pattern {
	return pattern{desc: rel, local: true, match: func(g *graph, path string) bool {
		return g.isLocal(path) && g.rel(path) == rel
	}}
}

// tree is the module's package rel and every package under it.
func tree(rel string) pattern {
	return pattern{desc: rel + "/...", local: true, match: func(g *graph, path string) bool {
		r := g.rel(path)
		return g.isLocal(path) && (r == rel || strings.HasPrefix(r, rel+"/"))
	}}
}

// anyPkg is every package of the module.
func anyPkg() pattern {
	return pattern{desc: "any capstan package", match: func(g *graph, path string) bool {
		return g.isLocal(path)
	}}
}

// ext is a package outside the module (standard library or dependency),
// by its full import path, exactly.
func ext(path string) pattern {
	return pattern{desc: path, match: func(g *graph, p string) bool {
		return !g.isLocal(p) && p == path
	}}
}

// extTree is a package outside the module whose path is prefix or under it.
func extTree(prefix string) pattern {
	return pattern{desc: prefix + "/...", match: func(g *graph, p string) bool {
		return !g.isLocal(p) && (p == prefix || strings.HasPrefix(p, prefix+"/"))
	}}
}

// reach is every package of the module that matches p or that a package
// matching p depends on.
func reach(p pattern) pattern {
	return pattern{desc: p.desc + " or a capstan package it depends on", match: func(g *graph, path string) bool {
		if !g.isLocal(path) {
			return false
		}
		for _, q := range g.local {
			if p.match(g, q) && (q == path || g.dependsOn(q, path)) {
				return true
			}
		}
		return false
	}}
}

func matchAny(g *graph, ps []pattern, path string) bool {
	return slices.ContainsFunc(ps, func(p pattern) bool { return p.match(g, path) })
}

// rule forbids some packages of the module to depend on others.
type rule struct {
	name   string    // the rule, as ARCHITECTURE.md words it
	from   []pattern // the packages it constrains
	except []pattern // of those, the ones it does not constrain
	not    []pattern // what they must not import
	// direct: only direct imports count. By default a rule is about
	// layering and counts every transitive dependency (go list's Deps):
	// "never imports" means "not through another package either".
	direct bool
}

// void returns, for each pattern of r that names packages of the module,
// an error if it matches none of g's packages: the rule would then hold
// whatever the code does.
func (r rule) void(g *graph) []string {
	var errs []string
	for _, p := range slices.Concat(r.from, r.except, r.not) {
		if p.local && !slices.ContainsFunc(g.local, func(q string) bool { return p.match(g, q) }) {
			errs = append(errs, fmt.Sprintf("rule %q: pattern %s matches no package of %s", r.name, p.desc, g.module))
		}
	}
	return errs
}

// check returns one message per forbidden arrow of g, sorted. A transitive
// violation is reported once per direct import it goes through, with its
// chain, so that the message shows every edge that has to go; a chain stops
// at the first forbidden package.
func (r rule) check(g *graph) []string {
	forbidden := func(p string) bool { return matchAny(g, r.not, p) }
	var out []string
	for _, p := range g.local {
		if !matchAny(g, r.from, p) || matchAny(g, r.except, p) {
			continue
		}
		n := g.pkgs[p]
		if r.direct {
			for _, imp := range n.imports {
				if forbidden(imp) {
					out = append(out, fmt.Sprintf("%s imports %s, breaking %q", g.rel(p), g.rel(imp), r.name))
				}
			}
			continue
		}
		for _, dep := range n.deps {
			if !forbidden(dep) {
				continue
			}
			for _, imp := range n.imports {
				if imp != dep && !(g.dependsOn(imp, dep) && !forbidden(imp)) {
					continue
				}
				c := g.chain(imp, dep, forbidden)
				if c == nil {
					continue // every path from imp to dep crosses another forbidden package
				}
				if len(c) == 1 {
					out = append(out, fmt.Sprintf("%s imports %s, breaking %q", g.rel(p), g.rel(dep), r.name))
					continue
				}
				via := make([]string, len(c)+1)
				via[0] = g.rel(p)
				for i, q := range c {
					via[i+1] = g.rel(q)
				}
				out = append(out, fmt.Sprintf("%s imports %s (%s), breaking %q", g.rel(p), g.rel(dep), strings.Join(via, " -> "), r.name))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// synthetic builds a graph of the module example.com/m from direct imports,
// computing each package's transitive dependencies as go list does. Paths
// starting with internal/, cmd/, web or e2e are the module's, relative to its
// path; the others ("os", "github.com/nats-io/nats.go") are taken as they are.
func synthetic(imports map[string][]string) *graph {
	const module = "example.com/m"
	abs := func(p string) string {
		first, _, _ := strings.Cut(p, "/")
		if slices.Contains([]string{"internal", "cmd", "web", "e2e"}, first) {
			return module + "/" + p
		}
		return p
	}
	direct := map[string][]string{}
	for p, imps := range imports {
		for _, q := range imps {
			direct[abs(p)] = append(direct[abs(p)], abs(q))
		}
	}
	var pkgs []listed
	for p := range imports {
		seen := map[string]bool{}
		var visit func(string)
		visit = func(q string) {
			for _, r := range direct[q] {
				if !seen[r] {
					seen[r] = true
					visit(r)
				}
			}
		}
		visit(abs(p))
		var deps []string
		for d := range seen {
			deps = append(deps, d)
		}
		pkgs = append(pkgs, listed{ImportPath: abs(p), Imports: direct[abs(p)], Deps: deps})
	}
	return newGraph(module, pkgs)
}

// TestCheck tests the checker on a small synthetic graph with forbidden
// arrows, direct and transitive.
func TestCheck(t *testing.T) {
	g := synthetic(map[string][]string{
		"cmd/capstan":                {"internal/ingest", "internal/delivery/linkedin", "internal/sandbox", "web", "fmt"},
		"internal/event":             {"fmt"},
		"internal/mapping":           {"internal/event", "os"},
		"internal/identity":          {"internal/mapping", "github.com/nats-io/nats.go"},
		"internal/ingest":            {"internal/identity", "internal/mapping", "internal/event"},
		"internal/delivery":          {"internal/helper"},
		"internal/helper":            {"internal/linkedin"},
		"internal/delivery/linkedin": {"internal/delivery", "internal/linkedin"},
		"internal/linkedin":          {"internal/util"},
		"internal/sandbox":           {"internal/util"},
		"internal/util":              {"strings"},
		"internal/stray":             {"internal/sandbox", "web/demo"},
		"web":                        {"web/demo"},
		"fmt":                        {"os", "strings"},
		"github.com/nats-io/nats.go": {"net"},
		"os":                         nil,
		"strings":                    nil,
		"net":                        nil,
	})
	tests := []struct {
		name string
		rule rule
		want []string
	}{
		{
			name: "exact package, transitive through a helper",
			rule: rule{name: "delivery never imports linkedin", from: []pattern{pkg("internal/delivery")}, not: []pattern{tree("internal/linkedin")}},
			want: []string{`internal/delivery imports internal/linkedin (internal/delivery -> internal/helper -> internal/linkedin), breaking "delivery never imports linkedin"`},
		},
		{
			name: "a sub-package is not the package",
			rule: rule{name: "r", from: []pattern{pkg("internal/delivery/linkedin")}, not: []pattern{pkg("internal/sandbox")}},
		},
		{
			name: "direct and transitive arrows are both named",
			rule: rule{name: "ingest imports no mapping", from: []pattern{tree("internal/ingest")}, not: []pattern{tree("internal/mapping")}},
			want: []string{
				`internal/ingest imports internal/mapping (internal/ingest -> internal/identity -> internal/mapping), breaking "ingest imports no mapping"`,
				`internal/ingest imports internal/mapping, breaking "ingest imports no mapping"`,
			},
		},
		{
			name: "a chain stops at the first forbidden package",
			rule: rule{name: "r", from: []pattern{tree("internal/ingest")}, not: []pattern{tree("internal/identity"), tree("internal/mapping")}},
			want: []string{
				`internal/ingest imports internal/identity, breaking "r"`,
				`internal/ingest imports internal/mapping, breaking "r"`,
			},
		},
		{
			name: "leaf",
			rule: rule{name: "leaf", from: []pattern{pkg("internal/event")}, not: []pattern{anyPkg()}},
		},
		{
			name: "not a leaf",
			rule: rule{name: "leaf", from: []pattern{pkg("internal/mapping")}, not: []pattern{anyPkg()}},
			want: []string{`internal/mapping imports internal/event, breaking "leaf"`},
		},
		{
			name: "direct only: os through fmt does not count",
			rule: rule{name: "no I/O", from: []pattern{pkg("internal/event")}, not: []pattern{ext("os")}, direct: true},
		},
		{
			name: "direct only: os itself does",
			rule: rule{name: "no I/O", from: []pattern{pkg("internal/mapping")}, not: []pattern{ext("os")}, direct: true},
			want: []string{`internal/mapping imports os, breaking "no I/O"`},
		},
		{
			name: "external tree, transitive",
			rule: rule{name: "no NATS", from: []pattern{pkg("internal/ingest")}, not: []pattern{extTree("github.com/nats-io")}},
			want: []string{`internal/ingest imports github.com/nats-io/nats.go (internal/ingest -> internal/identity -> github.com/nats-io/nats.go), breaking "no NATS"`},
		},
		{
			name: "importers with exceptions",
			rule: rule{name: "only cmd", from: []pattern{anyPkg()}, except: []pattern{pkg("cmd/capstan"), tree("web")}, not: []pattern{tree("internal/sandbox"), tree("web")}, direct: true},
			want: []string{
				`internal/stray imports internal/sandbox, breaking "only cmd"`,
				`internal/stray imports web/demo, breaking "only cmd"`,
			},
		},
		{
			name: "shared dependency",
			rule: rule{name: "share nothing", from: []pattern{tree("internal/sandbox")}, not: []pattern{reach(tree("internal/linkedin"))}},
			want: []string{`internal/sandbox imports internal/util, breaking "share nothing"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.rule.check(g)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tc.want, "\n\t"))
			}
		})
	}
}

func TestVoid(t *testing.T) {
	g := synthetic(map[string][]string{"internal/event": nil})
	r := rule{name: "r", from: []pattern{pkg("internal/evnet")}, not: []pattern{anyPkg(), tree("internal/event")}}
	want := []string{`rule "r": pattern internal/evnet matches no package of example.com/m`}
	if got := r.void(g); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

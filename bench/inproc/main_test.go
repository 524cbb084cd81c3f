package inproc

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"runtime/debug"
	"strconv"
	"testing"
)

// serveGCPercent is the GC target `capstan serve` runs with unless GOGC is
// set: gcPercent in cmd/capstan/memlimit.go (tuneGC). It is copied, not
// imported (a main package cannot be), and TestServeGCPercent fails when
// the two differ.
const serveGCPercent = 400

// TestMain runs the benchmarks at serve's GC target, so that their CPU per
// event includes the garbage collection capstan really pays (at Go's
// default of 100 the collector runs about four times as often). GOGC in the
// environment wins, as it does for serve: GOGC=100 measures at Go's default.
func TestMain(m *testing.M) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(serveGCPercent)
	}
	os.Exit(m.Run())
}

// TestServeGCPercent checks that the benchmarks run at serve's GC target:
// the value of gcPercent in cmd/capstan/memlimit.go, read from its source.
func TestServeGCPercent(t *testing.T) {
	if os.Getenv("GOGC") != "" {
		t.Skip("GOGC is set: the benchmarks run at the operator's value, as serve would")
	}
	want := gcPercentOfServe(t)
	if serveGCPercent != want {
		t.Errorf("serveGCPercent = %d, cmd/capstan's gcPercent = %d: update serveGCPercent", serveGCPercent, want)
	}
	got := debug.SetGCPercent(want)
	debug.SetGCPercent(got)
	if got != want {
		t.Errorf("the benchmarks run at GOGC %d, capstan serve at %d", got, want)
	}
}

// gcPercentOfServe parses cmd/capstan/memlimit.go and returns the value of
// its constant gcPercent.
func gcPercentOfServe(t testing.TB) int {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../../cmd/capstan/memlimit.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, s := range gd.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if n.Name != "gcPercent" || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.INT {
					t.Fatalf("cmd/capstan/memlimit.go: gcPercent is not an integer literal")
				}
				v, err := strconv.Atoi(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
	}
	t.Fatal("cmd/capstan/memlimit.go: no constant gcPercent")
	return 0
}

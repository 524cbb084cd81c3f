package config

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/config.md")

const referencePath = "../../docs/config.md"

// TestReferenceUpToDate regenerates the configuration reference from the
// schema's field comments and fails when docs/config.md differs.
func TestReferenceUpToDate(t *testing.T) {
	got := reference(t)
	if *update {
		if err := os.WriteFile(referencePath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(referencePath)
	if err != nil || string(want) != got {
		t.Fatalf("docs/config.md is stale: run go test ./internal/config -run Reference -update")
	}
}

// reference renders every field of Config, depth first, with its comment.
func reference(t *testing.T) string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "config.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]map[string]string{} // type -> field -> comment
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok {
			continue
		}
		for _, spec := range gd.Specs {
			ts, ok := spec.(*ast.TypeSpec)
			if !ok {
				continue
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				continue
			}
			m := map[string]string{}
			for _, fld := range st.Fields.List {
				text := strings.Join(strings.Fields(fld.Doc.Text()), " ")
				for _, n := range fld.Names {
					m[n.Name] = text
				}
			}
			docs[ts.Name.Name] = m
		}
	}
	var b strings.Builder
	b.WriteString("# capstan.yaml reference\n\nGenerated from `internal/config/config.go` by `go test ./internal/config -run Reference -update`; do not edit.\n")
	b.WriteString("Strings may use `${NAME}` or `${NAME:-default}` for environment variables. Durations are Go durations (`500ms`, `24h`) or whole days (`90d`).\n")
	cell := strings.NewReplacer("|", "\\|")
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, rt reflect.Type) {
		if rt.Kind() == reflect.Pointer {
			rt = rt.Elem()
		}
		var nested []func()
		title := "top level"
		if prefix != "" {
			title = "`" + strings.TrimPrefix(prefix, ".") + "`"
		}
		fmt.Fprintf(&b, "\n## %s\n\n| key | type | meaning |\n|---|---|---|\n", title)
		for i := range rt.NumField() {
			fld := rt.Field(i)
			tag, _, _ := strings.Cut(fld.Tag.Get("yaml"), ",")
			if tag == "" || tag == "-" {
				continue
			}
			ft := fld.Type
			kind := typeName(ft)
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", tag, kind, cell.Replace(docs[rt.Name()][fld.Name]))
			elem := ft
			for elem.Kind() == reflect.Pointer || elem.Kind() == reflect.Slice {
				elem = elem.Elem()
			}
			if elem.Kind() == reflect.Struct && docs[elem.Name()] != nil && elem.Name() != "SyncPolicy" {
				p := prefix + "." + tag
				if ft.Kind() == reflect.Slice {
					p += "[]"
				}
				nested = append(nested, func() { walk(p, elem) })
			}
		}
		for _, n := range nested {
			n()
		}
	}
	walk("", reflect.TypeFor[Config]())
	return b.String()
}

func typeName(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[Secret]():
		return "secret"
	case reflect.TypeFor[Duration]():
		return "duration"
	case reflect.TypeFor[SyncPolicy]():
		return "`always` or duration"
	case reflect.TypeFor[RawJSON]():
		return "mapping-kit fields"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return typeName(t.Elem())
	case reflect.Slice:
		return "list of " + typeName(t.Elem())
	case reflect.Struct:
		return "mapping"
	case reflect.Int, reflect.Int64:
		return "integer"
	case reflect.Float64:
		return "number"
	}
	return t.Kind().String()
}

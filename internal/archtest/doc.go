// Package archtest holds no code: its tests check the module's import graph
// against the package rules of ARCHITECTURE.md ("Package layout"). The rules
// are a table in imports_test.go, one row per rule; TestImportRules fails on
// every arrow a rule forbids, naming the importing package, the imported one,
// the import chain between them and the rule.
//
//	go test ./internal/archtest
//
// The rules are about the whole module, not one package, so they live in a
// package of their own that nothing imports: no package's tests carry another
// package's rules, and the rules run with `go test ./...` like every test.
package archtest

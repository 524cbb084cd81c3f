package archtest

import "testing"

// rules are the package rules of ARCHITECTURE.md ("Package layout") and
// STYLE.md §1, one row each. A rule counts transitive dependencies unless it
// says direct: "never imports" is about layering, so it holds only if no
// chain of imports leads there either. Only non-test code counts: tests may
// import anything (linkedin's tests run against the real sandbox; e2e and
// bench drive the whole binary).
var rules = []rule{
	{
		name: "sandbox never imports linkedin",
		from: []pattern{tree("internal/sandbox")},
		not:  []pattern{tree("internal/linkedin")},
	},
	{
		name: "linkedin never imports sandbox",
		from: []pattern{tree("internal/linkedin")},
		not:  []pattern{tree("internal/sandbox")},
	},
	{
		// The sandbox is the independent referee the client is tested
		// against, so the two share no validation code. Which code
		// validates cannot be checked; that they share no capstan package
		// at all can, and holds today: neither imports any.
		name: "sandbox and linkedin share no code",
		from: []pattern{tree("internal/sandbox")},
		not:  []pattern{reach(tree("internal/linkedin"))},
	},
	{
		name: "linkedin never imports delivery",
		from: []pattern{tree("internal/linkedin")},
		not:  []pattern{tree("internal/delivery")},
	},
	{
		// Exactly internal/delivery: its adapter internal/delivery/linkedin
		// is where delivery meets linkedin.
		name: "delivery itself never imports linkedin",
		from: []pattern{pkg("internal/delivery")},
		not:  []pattern{tree("internal/linkedin")},
	},
	{
		// Delivery counts its funnel through delivery.Funnel; the
		// statistics and the console that reads them sit above it.
		name: "delivery imports neither stats nor admin",
		from: []pattern{tree("internal/delivery")},
		not:  []pattern{tree("internal/stats"), tree("internal/admin")},
	},
	{
		name: "stats imports neither admin nor linkedin",
		from: []pattern{tree("internal/stats")},
		not:  []pattern{tree("internal/admin"), tree("internal/linkedin")},
	},
	{
		name: "ingest imports neither delivery, linkedin nor mapping",
		from: []pattern{tree("internal/ingest")},
		not:  []pattern{tree("internal/delivery"), tree("internal/linkedin"), tree("internal/mapping")},
	},
	{
		// Imported rows take ingest's path into the stream, nothing else.
		name: "importer imports neither delivery, linkedin, mapping nor sandbox",
		from: []pattern{tree("internal/importer")},
		not:  []pattern{tree("internal/delivery"), tree("internal/linkedin"), tree("internal/mapping"), tree("internal/sandbox")},
	},
	{
		name: "mapping never imports stream (nor NATS)",
		from: []pattern{tree("internal/mapping")},
		not:  []pattern{tree("internal/stream"), extTree("github.com/nats-io")},
	},
	{
		// Direct only: fmt imports os, so every package depends on it.
		name:   "mapping does no I/O (no os, os/exec, net, net/http)",
		from:   []pattern{tree("internal/mapping")},
		not:    []pattern{ext("os"), ext("os/exec"), ext("net"), ext("net/http")},
		direct: true,
	},
	{
		// migrate translates bytes to bytes: the command reads and writes
		// the files, and nothing of the engine or of delivery is involved.
		name: "migrate touches neither the engine, delivery, ingest nor the sandbox",
		from: []pattern{tree("internal/migrate")},
		not:  []pattern{tree("internal/stream"), tree("internal/delivery"), tree("internal/ingest"), tree("internal/sandbox"), extTree("github.com/nats-io")},
	},
	{
		// Direct only, as for mapping.
		name:   "migrate does no I/O (no os, os/exec, net, net/http)",
		from:   []pattern{tree("internal/migrate")},
		not:    []pattern{ext("os"), ext("os/exec"), ext("net"), ext("net/http")},
		direct: true,
	},
	{
		name: "event is a leaf",
		from: []pattern{pkg("internal/event")},
		not:  []pattern{anyPkg()},
	},
	{
		// STYLE.md §1.
		name: "config is a leaf",
		from: []pattern{pkg("internal/config")},
		not:  []pattern{anyPkg()},
	},
	{
		// What the local pebble stores share (opening, lock, log
		// syncer); their key layouts stay with their packages.
		name: "localdb is a leaf",
		from: []pattern{pkg("internal/localdb")},
		not:  []pattern{anyPkg()},
	},
	{
		// Direct: the package that imports it is the one at fault, not
		// every package above it.
		name:   "only cmd/capstan imports sandbox",
		from:   []pattern{anyPkg()},
		except: []pattern{pkg("cmd/capstan"), tree("internal/sandbox"), tree("e2e")},
		not:    []pattern{tree("internal/sandbox")},
		direct: true,
	},
	{
		name:   "only cmd/capstan imports web",
		from:   []pattern{anyPkg()},
		except: []pattern{pkg("cmd/capstan"), tree("web"), tree("e2e")},
		not:    []pattern{tree("web")},
		direct: true,
	},
	{
		// The de-duplication index is the event store's own: nothing else
		// sees how events are de-duplicated, only stream's answers.
		// bench/dedup measures it alone. Direct, as for sandbox: a package
		// that imports stream uses the index through it.
		name:   "only stream imports stream/dedup",
		from:   []pattern{anyPkg()},
		except: []pattern{pkg("internal/stream"), tree("internal/stream/dedup"), pkg("bench/dedup")},
		not:    []pattern{tree("internal/stream/dedup")},
		direct: true,
	},
	{
		// The benchmarks' CPU and I/O readings; non-test code never.
		name:   "only tests import cputime",
		from:   []pattern{anyPkg()},
		except: []pattern{tree("internal/cputime")},
		not:    []pattern{tree("internal/cputime")},
		direct: true,
	},
	{
		// Every package's main_test.go imports it; non-test code never.
		name:   "only tests import leakcheck",
		from:   []pattern{anyPkg()},
		except: []pattern{tree("internal/leakcheck")},
		not:    []pattern{tree("internal/leakcheck")},
		direct: true,
	},
}

// TestImportRules fails on every arrow of the module's import graph that a
// rule forbids, and on a rule that names a package that does not exist.
func TestImportRules(t *testing.T) {
	g := loadGraph(t)
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			for _, msg := range r.void(g) {
				t.Error(msg)
			}
			for _, msg := range r.check(g) {
				t.Error(msg)
			}
		})
	}
}

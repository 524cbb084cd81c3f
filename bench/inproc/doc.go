// Package inproc holds in-process benchmarks of capstan's ingest path, for
// profiling it without the network and without the load generator on the
// same CPUs: the ingest handler driven through httptest (with a store that
// stores nothing, and with the real group-commit appender on an embedded
// JetStream in a temporary directory), and the appender alone.
//
//	go test ./bench/inproc -run '^$' -bench . -benchtime 5s -cpuprofile cpu.out
//	go tool pprof -top -nodecount 40 bench/inproc/inproc.test cpu.out
//
// The benchmarks run at the GC target of `capstan serve`, GOGC 400
// (gcPercent in cmd/capstan/memlimit.go; TestMain sets it and
// TestServeGCPercent keeps the two equal), unless GOGC is set in the
// environment: GOGC=100 measures at Go's default. serve's soft memory
// limit is not applied.
//
// It has no non-test code: it exists for `go test -bench`, never as a
// dependency. The request bodies come from bench/internal/segmentgen, the
// same generator bench/loadgen uses.
package inproc

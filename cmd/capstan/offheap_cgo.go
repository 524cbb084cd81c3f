//go:build cgo

package main

// storesOffHeap reports whether the local pebble stores' caches and
// memtables are allocated outside the Go heap: with cgo, pebble takes them
// from C's malloc (its internal/manual package), which the Go soft memory
// limit neither sees nor bounds, so tuneGC leaves room for them.
const storesOffHeap = true

//go:build !cgo

package main

// storesOffHeap reports whether the local pebble stores' caches and
// memtables are allocated outside the Go heap: without cgo (the release
// binaries and the container image are built with CGO_ENABLED=0) pebble
// makes them Go slices, which the Go soft memory limit already counts, so
// tuneGC must not subtract them a second time.
const storesOffHeap = false

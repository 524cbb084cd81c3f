//go:build !linux

package dedup

import "unsafe"

// adviseHuge does nothing here: transparent huge pages are Linux's.
func adviseHuge(unsafe.Pointer, uintptr) {}

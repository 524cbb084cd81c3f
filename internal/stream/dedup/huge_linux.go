package dedup

import (
	"syscall"
	"unsafe"
)

// adviseHuge asks the kernel to back the 2 MiB-aligned pages inside the n
// bytes at p with transparent huge pages (madvise MADV_HUGEPAGE; the
// machine's default, "madvise", gives them only to memory that asks).
// The filters (M/8 each) and the write buffers' tables (M/bufferShare) are read and
// written at random keys: with 4 KiB pages nearly every access also misses
// the TLB, which holds a few MiB of 4 KiB pages. It is advice: an error
// (a kernel without huge pages) changes nothing but the speed. The memory
// is the Go heap's, live as long as the caller keeps it; the advice stays
// on the range after it is freed, which does not matter to the runtime.
func adviseHuge(p unsafe.Pointer, n uintptr) {
	const huge = 2 << 20
	off := (huge - uintptr(p)%huge) % huge
	if n < off+huge {
		return
	}
	size := (n - off) &^ (huge - 1)
	_ = syscall.Madvise(unsafe.Slice((*byte)(unsafe.Add(p, off)), size), syscall.MADV_HUGEPAGE)
}

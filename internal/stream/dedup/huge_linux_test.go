package dedup

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// TestHugePagesAdvised: a filter's words and a buffer table's slots are in
// memory advised for huge pages (VmFlags "hg" in /proc/self/smaps), past
// the first 2 MiB boundary of each.
func TestHugePagesAdvised(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/mm/transparent_hugepage/enabled"); err != nil {
		t.Skipf("this kernel has no transparent huge pages (%v): the advice is refused, and nothing changes but the speed", err)
	}
	f := newFilter(8 << 20)
	tb := newTable(200_000)
	for _, c := range []struct {
		name string
		p    unsafe.Pointer
	}{
		{"filter", unsafe.Pointer(&f.words[len(f.words)/2])},
		{"table", unsafe.Pointer(&tb.slots[len(tb.slots)/2])},
	} {
		flags, ok := vmFlags(t, uintptr(c.p))
		if !ok {
			t.Fatalf("%s: no mapping holds %#x", c.name, uintptr(c.p))
		}
		if !strings.Contains(" "+flags+" ", " hg ") {
			t.Errorf("%s: the mapping holding its middle has VmFlags %q, no hg", c.name, flags)
		}
	}
}

// vmFlags returns the VmFlags of the mapping of this process that holds
// address a.
func vmFlags(t *testing.T, a uintptr) (string, bool) {
	t.Helper()
	fh, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no smaps: %v", err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	in := false
	for sc.Scan() {
		line := sc.Text()
		if r, _, ok := strings.Cut(line, " "); ok && strings.Contains(r, "-") && !strings.HasSuffix(r, ":") {
			lo, hi, _ := strings.Cut(r, "-")
			l, err1 := strconv.ParseUint(lo, 16, 64)
			h, err2 := strconv.ParseUint(hi, 16, 64)
			in = err1 == nil && err2 == nil && uint64(a) >= l && uint64(a) < h
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmFlags:")), true
		}
	}
	return "", false
}

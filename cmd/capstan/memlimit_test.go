package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestAvailableMemory(t *testing.T) {
	const gib = int64(1) << 30
	for _, tc := range []struct {
		name  string
		files map[string]string // under the cgroup root
		total int64
		want  int64
	}{
		{"no cgroup files: the machine's RAM", nil, 8 * gib, 8 * gib},
		{"cgroup v2 limit", map[string]string{"memory.max": "2147483648\n"}, 8 * gib, 2 * gib},
		{"cgroup v2 without a limit", map[string]string{"memory.max": "max\n"}, 8 * gib, 8 * gib},
		{"cgroup v1 limit", map[string]string{"memory/memory.limit_in_bytes": "1073741824\n"}, 8 * gib, gib},
		{"cgroup v1 without a limit", map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}, 8 * gib, 8 * gib},
		{"a limit above the machine's RAM", map[string]string{"memory.max": "17179869184"}, 8 * gib, 8 * gib},
		{"garbage", map[string]string{"memory.max": "lots"}, 8 * gib, 8 * gib},
		{"nothing known", nil, 0, 0},
		{"a limit when the RAM is unknown", map[string]string{"memory.max": "1073741824"}, 0, gib},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for name, data := range tc.files {
				p := filepath.Join(root, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := availableMemory(root, tc.total); got != tc.want {
				t.Errorf("availableMemory = %d, want %d", got, tc.want)
			}
		})
	}
}

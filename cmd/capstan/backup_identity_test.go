package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBackupIdentityLocal: a backup holds the identity graph's local store
// (a checkpoint written by the running capstan that holds it, or by the
// tool when none runs), and restore puts it back in the data directory.
func TestBackupIdentityLocal(t *testing.T) {
	cfgPath, _, stop := seedIdentity(t)
	dir := t.TempDir()
	backups := map[string]string{"running": filepath.Join(dir, "b-running"), "stopped": filepath.Join(dir, "b-stopped")}
	for _, when := range []string{"running", "stopped"} {
		if when == "stopped" {
			stop()
		}
		out, errs, code := identityCLI(t, "backup", "--config", cfgPath, "--out", backups[when])
		if code != 0 || !strings.Contains(out, "identity ") {
			t.Fatalf("backup (capstan %s): exit %d: %s%s", when, code, out, errs)
		}
	}
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	for when, from := range backups {
		data := filepath.Join(dir, "restored-"+when)
		restored := filepath.Join(dir, "restored-"+when+".yaml")
		text := strings.Replace(string(b), filepath.Join(filepath.Dir(cfgPath), "data"), data, 1)
		if err := os.WriteFile(restored, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, errs, code := identityCLI(t, "restore", "--config", restored, "--from", from); code != 0 {
			t.Fatalf("restore (backup of a %s capstan): exit %d: %s%s", when, code, out, errs)
		}
		out, errs, code := identityCLI(t, "identity", "show", "--config", restored, "--user-id", "user-1")
		if code != 0 || !strings.Contains(out, "li_fat_id     123456") {
			t.Errorf("show after restoring the backup of a %s capstan: exit %d: %s%s", when, code, out, errs)
		}
	}
}

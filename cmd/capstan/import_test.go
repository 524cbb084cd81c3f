package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capstan-gw/capstan/internal/importer"
)

// importConfig writes a configuration with the given sources into a
// temporary directory and returns its path.
func importConfig(t *testing.T, sources ...string) string {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("server:\n  data_dir: " + filepath.Join(dir, "data") + "\nsources:\n")
	for _, s := range sources {
		b.WriteString("  - name: " + s + "\n    write_key: wk_" + s + "\n")
	}
	p := filepath.Join(dir, "capstan.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImportDryRun(t *testing.T) {
	cfg := importConfig(t, "crm")
	csv := filepath.Join(filepath.Dir(cfg), "deals.csv")
	day := time.Now().UTC().Format(time.DateOnly)
	text := "Contact,Amount,Closed\nu1,10,%s\nu2,ten,%s\n"
	if err := os.WriteFile(csv, []byte(strings.ReplaceAll(text, "%s", day)), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := capstan(t, "import", "--config", cfg, "--event", "Deal Won", "--map", "contact=userId",
		"--map", "amount=revenue", "--map", "closed=timestamp", "--dry-run", csv)
	if code != exitInvalid {
		t.Fatalf("exit %d, want 3:\n%s", code, stderr)
	}
	var ev struct {
		Event, UserID, Timestamp string
		Properties               struct{ Revenue float64 }
	}
	if err := json.Unmarshal([]byte(stdout), &ev); err != nil || ev.Event != "Deal Won" || ev.UserID != "u1" || ev.Properties.Revenue != 10 || !strings.HasPrefix(ev.Timestamp, day) {
		t.Errorf("dry run printed %q (%v)", stdout, err)
	}
	for _, want := range []string{csv + `:3: Amount: "ten": not a number`, "deals.csv: 2 rows read, 1 would be stored (dry run), 1 invalid (1 unparseable number)"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(cfg), "data")); !os.IsNotExist(err) {
		t.Errorf("a dry run opened the data directory: %v", err)
	}
}

func TestImportSource(t *testing.T) {
	one := importConfig(t, "crm")
	two := importConfig(t, "web", "crm")
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"several sources", []string{"--config", two}, exitUsage, "--source is required: the configuration has several sources (web, crm)"},
		{"unknown source", []string{"--config", one, "--source", "web"}, exitUsage, `--source "web" is not a configured source (sources: crm)`},
		{"--map with JSONL", []string{"--config", one, "--map", "a=email", "--format", "jsonl"}, exitUsage, "--map and --event apply to CSV files"},
		{"bad --format", []string{"--config", one, "--format", "xml"}, exitUsage, `--format "xml": want csv or jsonl`},
		{"no config", []string{}, exitUsage, "--config is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := capstan(t, append(append([]string{"import"}, tt.args...), "-")...)
			if code != tt.code || !strings.Contains(stderr, tt.msg) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.msg)
			}
		})
	}
}

func TestSummaryLine(t *testing.T) {
	s := importer.Summary{
		Progress: importer.Progress{Rows: 10, Stored: 5, Duplicates: 1, Resumed: 1, Invalid: 3},
		ByReason: map[string]int{importer.ReasonTimestamp: 1, importer.ReasonTooOld: 2},
	}
	want := "f.csv: 10 rows read, 5 stored, 1 duplicates, 1 already imported by an earlier run, 3 invalid (2 older than 90 days, 1 unparseable timestamp)"
	if got := summaryLine("f.csv", s); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

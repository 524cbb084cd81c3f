package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// unsetVar is an environment variable the config tests refer to and make
// sure is not set.
const unsetVar = "CAPSTAN_E2E_SURELY_UNSET"

// TestConfigErrors runs `capstan serve` on broken configuration files: it
// must exit 2 without serving and print every problem as
// file:line:col: field: reason (STYLE.md §3, §6).
func TestConfigErrors(t *testing.T) {
	t.Parallel()
	const good = `server:
  addr: "127.0.0.1:0"
  data_dir: ./data
engine:
  sync: always
sources:
  - name: web
    write_key: wk_web
`
	tests := []struct {
		name string
		// file is the config text; "" means no --config flag at all.
		file string
		args []string
		// want are lines expected in stderr (after "capstan: " on the
		// first); when the file is given, no other "bad.yaml:" line may
		// appear.
		want []string
	}{
		{
			name: "unknown key",
			file: strings.Replace(good, "  addr:", "  adr:", 1),
			want: []string{`bad.yaml:2:3: server.adr: unknown field (did you mean "addr"?)`},
		},
		{
			name: "unknown top-level section",
			file: good + "destinaton: []\n",
			want: []string{`bad.yaml:9:1: destinaton: unknown field`},
		},
		{
			name: "number expected",
			file: strings.Replace(good, "  sync: always\n", "  sync: always\n  replicas: three\n", 1),
			want: []string{`bad.yaml:6:13: engine.replicas: must be a whole number, got "three"`},
		},
		{
			name: "boolean expected",
			file: good + "    disabled: maybe\n",
			want: []string{`bad.yaml:9:15: sources[0].disabled: must be true or false, got "maybe"`},
		},
		{
			name: "list expected",
			file: good + "    allowed_origins: https://www.example.com\n",
			want: []string{`bad.yaml:9:22: sources[0].allowed_origins: must be a list`},
		},
		{
			name: "bad sync policy",
			file: strings.Replace(good, "sync: always", "sync: sometimes", 1),
			want: []string{`bad.yaml:5:9: engine.sync: must be "always" or a positive interval`},
		},
		{
			name: "unset environment variable",
			file: strings.Replace(good, "write_key: wk_web", "write_key: ${"+unsetVar+"}", 1),
			want: []string{`bad.yaml:8:16: sources[0].write_key: environment variable ` + unsetVar + ` is not set`},
		},
		{
			name: "every error at once, in file order",
			file: `server:
  adr: "127.0.0.1:0"
engine:
  replicas: three
sources:
  - name: web
    write_key: ${` + unsetVar + `}
`,
			want: []string{
				`bad.yaml:2:3: server.adr: unknown field`,
				`bad.yaml:4:13: engine.replicas: must be a whole number, got "three"`,
				`bad.yaml:7:16: sources[0].write_key: environment variable ` + unsetVar + ` is not set`,
			},
		},
		{
			name: "missing --config",
			want: []string{"--config is required"},
		},
		{
			name: "config file does not exist",
			args: []string{"--config", "absent.yaml"},
			want: []string{"absent.yaml"},
		},
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, unsetVar+"=") })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			args := append([]string{"serve"}, tt.args...)
			if tt.file != "" {
				if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", "bad.yaml")
			}
			code, stdout, stderr := runCapstan(t, dir, env, 20*time.Second, args...)
			if code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
			if strings.Contains(stdout+stderr, "capstan listening") {
				t.Errorf("capstan started serving")
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) > 0 {
				lines[0] = strings.TrimPrefix(lines[0], "capstan: ")
			}
			for _, w := range tt.want {
				if !hasLine(lines, w) {
					t.Errorf("stderr lacks a line starting %q:\n%s", w, stderr)
				}
			}
			if tt.file != "" {
				var errLines []string
				for _, l := range lines {
					if strings.HasPrefix(l, "bad.yaml:") {
						errLines = append(errLines, l)
					}
				}
				if len(errLines) != len(tt.want) {
					t.Errorf("%d error lines, want %d:\n%s", len(errLines), len(tt.want), stderr)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
				t.Errorf("the data directory was created although the configuration is invalid")
			}
		})
	}
}

// hasLine reports whether a line starts with want, or, for messages that are
// not about a place in bad.yaml, contains it.
func hasLine(lines []string, want string) bool {
	return slices.ContainsFunc(lines, func(l string) bool {
		return strings.HasPrefix(l, want) || !strings.HasPrefix(want, "bad.yaml") && strings.Contains(l, want)
	})
}

package main

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/capstan-gw/capstan/internal/config"
)

// hashPassword runs `capstan admin hash-password args…` with stdin.
func hashPassword(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"admin", "hash-password"}, args...))
	err := root.Execute()
	return out.String(), err
}

// TestHashPassword: the hash printed matches the password read from
// standard input and is accepted by server.admin_users; bad input is a
// usage error.
func TestHashPassword(t *testing.T) {
	const pw = "correct horse battery staple"
	out, err := hashPassword(t, pw+"\n")
	if err != nil {
		t.Fatalf("hash-password: %v", err)
	}
	h := strings.TrimSpace(out)
	if err := bcrypt.CompareHashAndPassword([]byte(h), []byte(pw)); err != nil {
		t.Fatalf("hash %q does not match the password: %v", h, err)
	}
	if c, _ := bcrypt.Cost([]byte(h)); c != bcrypt.DefaultCost {
		t.Errorf("cost %d, want %d", c, bcrypt.DefaultCost)
	}
	text := "server:\n  admin_users:\n    - {name: ana, role: operator, password_hash: '" + h + "'}\nsources:\n  - {name: web, write_key: wk}\n"
	if _, err := config.Parse("c.yaml", []byte(text), func(string) (string, bool) { return "", false }); err != nil {
		t.Errorf("the configuration refuses the hash: %v", err)
	}
	if out, err := hashPassword(t, pw, "--cost", "11"); err != nil {
		t.Errorf("no final newline: %v", err)
	} else if c, _ := bcrypt.Cost([]byte(strings.TrimSpace(out))); c != 11 {
		t.Errorf("--cost 11 made cost %d", c)
	}
	for _, tt := range []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"too short", "short\n", nil, "the password is 5 bytes: use 12 to 72"},
		{"too long", strings.Repeat("x", 73) + "\n", nil, "73 bytes"},
		{"nothing", "", nil, "no password on standard input"},
		{"cost", pw + "\n", []string{"--cost", "4"}, "--cost 4: use 10 to 14"},
		{"argument", pw + "\n", []string{pw}, "unknown command"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := hashPassword(t, tt.stdin, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) || out != "" {
				t.Errorf("err %v, out %q; want an error with %q", err, out, tt.want)
			}
			if err != nil && !isUsage(err) {
				t.Errorf("%v is not a usage error (exit 2)", err)
			}
		})
	}
}

package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"testing"
)

func TestVersion(t *testing.T) {
	// capstan <version>, then commit, built, go and platform, in that order.
	shape := regexp.MustCompile(`^capstan \S+\ncommit: (unknown|[0-9a-f]{7,}( \(modified\))?)\nbuilt: \S+\ngo: go\S+\nplatform: \S+/\S+\n$`)
	for _, args := range [][]string{{"version"}, {"--version"}} {
		t.Run(args[0], func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(args, &out, &errb); code != exitOK {
				t.Fatalf("exit %d, stderr %q", code, errb.String())
			}
			got := out.String()
			if !shape.MatchString(got) {
				t.Errorf("output %q does not match %s", got, shape)
			}
			if want := "platform: " + runtime.GOOS + "/" + runtime.GOARCH + "\n"; !bytes.HasSuffix(out.Bytes(), []byte(want)) {
				t.Errorf("output %q does not end with %q", got, want)
			}
		})
	}
}

func TestBuildInfoString(t *testing.T) {
	tests := []struct {
		name string
		bi   buildInfo
		want string
	}{
		{"release", buildInfo{Version: "v1.2.3", Commit: "abc1234", Time: "2026-12-05T17:00:00Z", Go: "go1.26.8", Platform: "linux/amd64"},
			"capstan v1.2.3\ncommit: abc1234\nbuilt: 2026-12-05T17:00:00Z\ngo: go1.26.8\nplatform: linux/amd64\n"},
		{"modified", buildInfo{Version: "(devel)", Commit: "abc1234", Modified: true, Go: "go1.26.8", Platform: "darwin/arm64"},
			"capstan (devel)\ncommit: abc1234 (modified)\nbuilt: unknown\ngo: go1.26.8\nplatform: darwin/arm64\n"},
		{"no vcs", buildInfo{Version: "(devel)", Go: "go1.26.8", Platform: "linux/arm64"},
			"capstan (devel)\ncommit: unknown\nbuilt: unknown\ngo: go1.26.8\nplatform: linux/arm64\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.bi.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHealthcheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.Error(w, "down", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	tests := []struct {
		name string
		url  string
		want int
	}{
		{"ok", srv.URL + "/healthz", exitOK},
		{"503", srv.URL + "/other", exitRuntime},
		{"refused", "http://127.0.0.1:1/healthz", exitRuntime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if got := run([]string{"healthcheck", "--url", tt.url}, &out, &errb); got != tt.want {
				t.Errorf("exit %d, want %d (stderr %q)", got, tt.want, errb.String())
			}
		})
	}
}

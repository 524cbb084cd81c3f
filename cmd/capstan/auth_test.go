package main

import (
	"strings"
	"testing"

	"github.com/capstan-gw/capstan/internal/config"
)

func TestLoopbackRedirect(t *testing.T) {
	dc := config.Destination{}
	for _, tc := range []struct {
		flag, configured, want, err string
	}{
		{want: DefaultCLIRedirectURI},
		{configured: "http://127.0.0.1:9000/cb", want: "http://127.0.0.1:9000/cb"},
		{configured: "https://capstan.example/admin/oauth/callback", want: DefaultCLIRedirectURI},
		{flag: "http://localhost:0/x", configured: "http://127.0.0.1:9000/cb", want: "http://localhost:0/x"},
		{flag: "http://[::1]:7000", want: "http://[::1]:7000/"},
		{flag: "https://capstan.example/cb", err: "must be http://127.0.0.1:PORT"},
		{flag: "http://127.0.0.1/cb", err: "must be http://127.0.0.1:PORT"},
		{flag: "http://127.0.0.1:1/cb#x", err: "fragment"},
	} {
		dc.Auth.RedirectURI = tc.configured
		u, err := loopbackRedirect(tc.flag, dc)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want %q", tc.flag, err, tc.err)
			}
		case err != nil || u.String() != tc.want:
			t.Errorf("%q/%q: %v %v, want %s", tc.flag, tc.configured, u, err, tc.want)
		}
	}
}

func TestAuthLinkedInUsage(t *testing.T) {
	var out, errb strings.Builder
	if code := run([]string{"auth", "linkedin", "--config", "x.yaml"}, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "--destination is required") {
		t.Errorf("no destination: %d %s", code, errb.String())
	}
}

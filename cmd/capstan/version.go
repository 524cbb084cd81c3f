package main

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"
)

// Release builds (scripts/release.sh) may set these with
// -ldflags "-X main.buildVersion=v1.2.3 -X main.buildCommit=... -X main.buildTime=...":
// a build from a checkout has module version "(devel)", and the toolchain
// embeds no VCS information when -buildvcs is off or git is unusable.
// Embedded VCS information wins over buildCommit and buildTime.
var buildVersion, buildCommit, buildTime string

// buildInfo is what capstan knows about its own build.
type buildInfo struct {
	Version  string // module version, "(devel)" for a build from a checkout
	Commit   string // VCS revision, "" when the build had no VCS information
	Modified bool   // the working tree had uncommitted changes
	Time     string // commit time (vcs.time, RFC 3339), "" when unknown
	Go       string // Go version
	Platform string // GOOS/GOARCH
}

// readBuildInfo reads the build information the Go toolchain embedded.
func readBuildInfo() buildInfo {
	bi := buildInfo{Version: "(devel)", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if info, ok := debug.ReadBuildInfo(); ok {
		if v := info.Main.Version; v != "" {
			bi.Version = v
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				bi.Commit = s.Value
			case "vcs.time":
				bi.Time = s.Value
			case "vcs.modified":
				bi.Modified = s.Value == "true"
			}
		}
	}
	if buildVersion != "" {
		bi.Version = buildVersion
	}
	if bi.Commit == "" {
		bi.Commit = buildCommit
	}
	if bi.Time == "" {
		bi.Time = buildTime
	}
	return bi
}

// String renders the build information, one "key: value" per line.
func (bi buildInfo) String() string {
	commit := bi.Commit
	if commit == "" {
		commit = "unknown"
	} else if bi.Modified {
		commit += " (modified)"
	}
	t := bi.Time
	if t == "" {
		t = "unknown"
	}
	return fmt.Sprintf("capstan %s\ncommit: %s\nbuilt: %s\ngo: %s\nplatform: %s\n",
		bi.Version, commit, t, bi.Go, bi.Platform)
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, build time, Go version and platform",
		Long: `Print what capstan knows about its build: the module version, the VCS commit
it was built from (with "(modified)" when the working tree had uncommitted
changes), the commit time, the Go version and the platform. The same as
capstan --version.`,
		Example: `  capstan version
  capstan --version`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := io.WriteString(cmd.OutOrStdout(), readBuildInfo().String())
			return err
		},
	}
}

func newHealthcheckCmd() *cobra.Command {
	var (
		url     string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 when a URL answers 200 (for container health checks)",
		Long: `GET the URL and exit 0 when it answers 200 OK, 1 otherwise. Meant for the
HEALTHCHECK of a container image without curl or wget (FROM scratch).`,
		Example: `  capstan healthcheck --url http://127.0.0.1:8080/healthz`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			hc := &http.Client{Timeout: timeout}
			resp, err := hc.Get(url)
			if err != nil {
				return fmt.Errorf("healthcheck: %w", err)
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("healthcheck %s: status %d", url, resp.StatusCode)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "url", "http://127.0.0.1:8080/healthz", "URL to GET")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "give up after this long")
	return cmd
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestImage builds the container image with make image, with Docker when a
// daemon answers, else with Podman (daemonless; scripts/setup-e2e.sh
// installs it). It checks the image's configuration (non-root user, VOLUME
// /data, the HEALTHCHECK), starts it with a named volume on /data, reads
// /healthz over loopback, runs the health check, and checks that the volume
// keeps capstan's data: an event sent again to a second container on the
// same volume is answered as a duplicate. Without a working engine it skips
// and says why.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("image test: skipped in -short mode")
	}
	eng := findEngine(t)
	t.Logf("container engine: %s %s", eng.name, strings.Join(eng.runFlags, " "))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)

	// A tag and a volume of this run only; both are removed at the end
	// (the build cache stays).
	suffix := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	image := "capstan:image-test-" + suffix
	build := exec.CommandContext(ctx, "make", "--no-print-directory", "-C", "../..", "image", "IMAGE="+image, "CONTAINER_ENGINE="+eng.name)
	killGroupOnCancel(build)
	out, err := build.CombinedOutput()
	t.Cleanup(func() { _ = exec.Command(eng.name, "rmi", "-f", image).Run() })
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (the test's 10 min limit)", err)
		}
		t.Fatalf("make image: %v\n%s", err, out)
	}
	t.Log(lastLine(string(out)))
	checkImageConfig(t, eng, image)

	volume := "capstan-image-test-" + suffix
	eng.cmd(t, ctx, "volume", "create", volume)
	t.Cleanup(func() { _ = exec.Command(eng.name, "volume", "rm", "-f", volume).Run() })

	// The first container accepts an event and stops; the second, on the
	// same volume, must know it.
	body := fmt.Sprintf(`{"type":"track","event":"Image Test","userId":"u-image","messageId":"image-test-%s"}`, suffix)
	first := eng.start(t, ctx, image, volume)
	if got := track(t, first.url, body); got.Duplicates != 0 {
		t.Fatalf("first container: a new event was answered as a duplicate: %+v", got)
	}
	eng.cmd(t, ctx, "stop", first.id)
	eng.cmd(t, ctx, "rm", "-f", "-v", first.id)

	second := eng.start(t, ctx, image, volume)
	if got := track(t, second.url, body); got.Duplicates != 1 {
		t.Fatalf("second container on the same /data volume: the event the first one accepted was not a duplicate (%+v): the volume did not keep the data", got)
	}
	fresh := strings.Replace(body, "image-test-", "image-test-fresh-", 1)
	if got := track(t, second.url, fresh); got.Duplicates != 0 {
		t.Fatalf("second container: a new event was answered as a duplicate: %+v", got)
	}
}

// engine is the container engine the test drives, with the flags that
// `run` needs on this host.
type engine struct {
	name     string // docker or podman
	runFlags []string
}

// findEngine returns Docker when its daemon answers, else Podman when
// `podman info` works; otherwise it skips the test, saying what failed.
func findEngine(t *testing.T) engine {
	t.Helper()
	var why []string
	if _, err := exec.LookPath("docker"); err != nil {
		why = append(why, "no docker client on PATH")
	} else if out, err := exec.Command("docker", "info").CombinedOutput(); err != nil {
		why = append(why, fmt.Sprintf("docker info failed, so no Docker daemon answers (%v: %s)", err, lastLine(string(out))))
	} else {
		return engine{name: "docker"}
	}
	if _, err := exec.LookPath("podman"); err != nil {
		why = append(why, "no podman on PATH (scripts/setup-e2e.sh installs Debian's podman)")
	} else if out, err := exec.Command("podman", "info").CombinedOutput(); err != nil {
		why = append(why, fmt.Sprintf("podman info failed (%v: %s)", err, lastLine(string(out))))
	} else {
		return podmanEngine(t)
	}
	t.Skipf("image test: skipped, no container engine works here: %s", strings.Join(why, "; "))
	return engine{}
}

// podmanEngine returns Podman with the run flags this host needs.
func podmanEngine(t *testing.T) engine {
	t.Helper()
	// Podman schedules HEALTHCHECKs with systemd timers, which fail where
	// systemd does not run; the test runs the check itself (podman
	// healthcheck run), so no timer is set up.
	e := engine{name: "podman", runFlags: []string{"--health-interval=disable"}}
	// As root, Podman asks the runtime for nofile=1048576 and a high nproc,
	// which the runtime cannot set without CAP_SYS_RESOURCE (sandboxes, CI
	// runners) when the limits Podman itself runs with are lower (nproc
	// 32768 for Podman 4.3 here). Ask for our own nofile and for nproc
	// 4096, far more than capstan's threads.
	e.runFlags = append(e.runFlags, "--ulimit=nproc=4096:4096")
	if hard := hardLimit("Max open files"); hard != "" {
		e.runFlags = append(e.runFlags, fmt.Sprintf("--ulimit=nofile=%s:%s", hard, hard))
	}
	// crun, Podman's usual runtime, refuses hybrid cgroup hierarchies
	// (cgroup v1 with controllers left in the v2 one: "cgroups in hybrid
	// mode not supported, drop all controllers from cgroupv2"); runc
	// handles them.
	if b, err := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers"); err == nil && len(bytes.TrimSpace(b)) > 0 {
		out, err := exec.Command("podman", "info", "--format", "{{.Host.OCIRuntime.Name}}").Output()
		if err != nil {
			t.Fatalf("podman info: %v", err)
		}
		if strings.TrimSpace(string(out)) == "crun" {
			if _, err := exec.LookPath("runc"); err != nil {
				t.Skip("image test: skipped, podman's runtime crun refuses this host's hybrid cgroups and runc is not installed (apt-get install runc, or run scripts/setup-e2e.sh)")
			}
			e.runFlags = append(e.runFlags, "--runtime=runc")
		}
	}
	return e
}

// hardLimit returns this process's hard limit called name in
// /proc/self/limits, or "" when it is unlimited or unknown.
func hardLimit(name string) string {
	b, err := os.ReadFile("/proc/self/limits")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			if f := strings.Fields(rest); len(f) >= 2 && f[1] != "unlimited" {
				return f[1]
			}
		}
	}
	return ""
}

// killGroupOnCancel makes cmd, once its context ends, kill its whole
// process group and stop waiting for its output 10 s later: a killed make
// leaves the engine's build (its grandchildren) holding the output pipe,
// and Wait would otherwise wait for them (CI on a saturated machine: the
// test ran on for 9 minutes past its limit until the package's timeout).
func killGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
}

// cmd runs the engine with args and returns its standard output.
func (e engine) cmd(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	var stderr bytes.Buffer
	c := exec.CommandContext(ctx, e.name, args...)
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", e.name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out))
}

type container struct {
	id  string
	url string // http://127.0.0.1:PORT
}

// start runs image with volume on /data and port 8080 published on a free
// loopback port, waits until /healthz answers 200 and the HEALTHCHECK
// reports healthy, and removes the container at the end of the test.
func (e engine) start(t *testing.T, ctx context.Context, image, volume string) container {
	t.Helper()
	args := append([]string{"run", "-d", "-p", "127.0.0.1::8080", "-v", volume + ":/data"}, e.runFlags...)
	id := e.cmd(t, ctx, append(args, image)...)
	t.Cleanup(func() { _ = exec.Command(e.name, "rm", "-f", "-v", id).Run() })
	addr := firstLine(e.cmd(t, ctx, "port", id, "8080/tcp")) // 127.0.0.1:PORT
	c := container{id: id, url: "http://" + addr}
	e.waitHealthz(t, ctx, c)
	e.waitHealthy(t, ctx, c)
	return c
}

func (e engine) waitHealthz(t *testing.T, ctx context.Context, c container) {
	t.Helper()
	url := c.url + "/healthz"
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			logs, _ := exec.Command(e.name, "logs", c.id).CombinedOutput()
			t.Fatalf("GET %s: no 200 within 90s (last: %v)\n%s", url, err, logs)
		}
		sleep(t, ctx, 200*time.Millisecond)
	}
}

// waitHealthy runs the image's HEALTHCHECK: Podman on demand, Docker on
// its own schedule (every 10 s), until it reports healthy.
func (e engine) waitHealthy(t *testing.T, ctx context.Context, c container) {
	t.Helper()
	if e.name == "podman" {
		// podman healthcheck run exits 0 when the check passed, 1 when it
		// failed, 125 when the container has no health check.
		if out, err := exec.CommandContext(ctx, "podman", "healthcheck", "run", c.id).CombinedOutput(); err != nil {
			t.Fatalf("podman healthcheck run: %v\n%s", err, out)
		}
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		status := e.cmd(t, ctx, "inspect", "--format", "{{.State.Health.Status}}", c.id)
		if status == "healthy" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container's health check reports %q, not healthy, after 90s", status)
		}
		sleep(t, ctx, time.Second)
	}
}

// checkImageConfig checks what the Dockerfile promises: a non-root user,
// the data directory as a volume, and a HEALTHCHECK by capstan itself.
func checkImageConfig(t *testing.T, e engine, image string) {
	t.Helper()
	type healthcheck struct {
		Test []string
	}
	var inspect []struct {
		Config struct {
			User        string
			Volumes     map[string]struct{}
			Entrypoint  []string
			Healthcheck *healthcheck
		}
		HealthCheck *healthcheck // podman reports it here
	}
	out := e.cmd(t, context.Background(), "image", "inspect", image)
	if err := json.Unmarshal([]byte(out), &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("%s image inspect %s: %v\n%s", e.name, image, err, out)
	}
	cfg := inspect[0].Config
	if cfg.User == "" || strings.HasPrefix(cfg.User, "0:") || cfg.User == "0" || cfg.User == "root" {
		t.Errorf("image user = %q, want a non-root user", cfg.User)
	}
	if _, ok := cfg.Volumes["/data"]; !ok {
		t.Errorf("image volumes = %v, want /data", cfg.Volumes)
	}
	if want := "/capstan serve --config /etc/capstan/capstan.yaml"; strings.Join(cfg.Entrypoint, " ") != want {
		t.Errorf("image entrypoint = %q, want %q", cfg.Entrypoint, want)
	}
	hc := cfg.Healthcheck
	if hc == nil {
		hc = inspect[0].HealthCheck
	}
	if hc == nil || !strings.Contains(strings.Join(hc.Test, " "), "/capstan healthcheck") {
		t.Errorf("image health check = %+v, want /capstan healthcheck", hc)
	}
}

type trackAnswer struct {
	Success    bool
	Duplicates int
}

// track sends one event to the container's backend source (the image's
// default configuration) and returns the answer.
func track(t *testing.T, base, body string) trackAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/v1/track", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("wk_demo_backend", "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s/v1/track: %v", base, err)
	}
	defer resp.Body.Close()
	var got trackAnswer
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK || !got.Success {
		t.Fatalf("POST %s/v1/track: %s, %+v (%v)", base, resp.Status, got, err)
	}
	return got
}

func sleep(t *testing.T, ctx context.Context, d time.Duration) {
	t.Helper()
	select {
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	case <-time.After(d):
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

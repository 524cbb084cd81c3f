package main

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestImage builds the container image with make image, starts it and reads
// /healthz. It needs a Docker daemon and skips without one.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("image test: skipped in -short mode")
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("image test: no docker client on PATH; install Docker to build and run the image")
	}
	if out, err := exec.Command("docker", "info").CombinedOutput(); err != nil {
		t.Skipf("image test: docker info failed, so no Docker daemon answers; skipping the build and run of the image (%v: %s)",
			err, lastLine(string(out)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	const image = "capstan:image-test"
	if out, err := exec.CommandContext(ctx, "make", "-C", "../..", "image", "IMAGE="+image).CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	// Each run re-tags the image: remove it, so that repeated runs leave
	// no untagged images behind (the build cache stays).
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", image).Run() })
	out, err := exec.CommandContext(ctx, "docker", "run", "-d", "--rm", "-p", "127.0.0.1::8080", image).Output()
	if err != nil {
		t.Fatalf("docker run: %v", err)
	}
	id := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", id).Run() })
	out, err = exec.CommandContext(ctx, "docker", "port", id, "8080/tcp").Output()
	if err != nil {
		t.Fatalf("docker port: %v", err)
	}
	addr := firstLine(strings.TrimSpace(string(out)))
	url := fmt.Sprintf("http://%s/healthz", addr)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			logs, _ := exec.Command("docker", "logs", id).CombinedOutput()
			t.Fatalf("GET %s: no 200 within 60s (last error %v)\n%s", url, err, logs)
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
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

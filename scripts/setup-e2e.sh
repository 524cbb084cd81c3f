#!/usr/bin/env bash
# setup-e2e.sh installs what the end-to-end tests (go test ./e2e/) need
# beyond Go: the pinned npm packages of e2e/package-lock.json (the real
# Segment clients and playwright-core) and Debian's chromium for the browser
# tests, Debian's prometheus package for promtool (the alert rules
# test), and Debian's podman and runc for the container image test
# (TestImage) unless a Docker daemon answers. It is idempotent and quick
# when everything is in place, so `make test` runs it every time.
#
# Requirements: node >= 20 and npm on PATH; for chromium, Debian's apt-get
# (as root, or with sudo). Browsers come only from Debian's packages: never
# from `npx playwright install` or any other download.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
e2e="$root/e2e"
chromium=/usr/bin/chromium

log() { printf 'setup-e2e: %s\n' "$*"; }
die() { printf 'setup-e2e: error: %s\n' "$*" >&2; exit 1; }

# --- node and npm -----------------------------------------------------------
command -v node >/dev/null 2>&1 || die "node is not installed (install Node.js 20 or later, e.g. apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || die "npm is not installed (e.g. apt-get install npm)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "node $(node --version) is too old: @segment/analytics-node 3.x needs node 20 or later"

# --- npm packages -------------------------------------------------------------
# npm writes node_modules/.package-lock.json at the end of a successful
# install: it is missing after an interrupted one, and older than
# package-lock.json when the pins changed since.
marker="$e2e/node_modules/.package-lock.json"
if [ -L "$e2e/node_modules" ]; then
	# A link to another checkout's packages (git worktrees sharing one
	# install): npm ci would empty the link's target, under the other
	# checkout, so it is never run through the link.
	target="$(readlink -f "$e2e/node_modules")"
	if [ -f "$target/.package-lock.json" ] && cmp -s "$e2e/package-lock.json" "$(dirname "$target")/package-lock.json"; then
		log "e2e/node_modules links to $target, installed from the same package-lock.json: not reinstalling through the link"
	else
		die "e2e/node_modules links to $target, which is not installed from this e2e/package-lock.json, and npm ci here would empty it: install there, or replace the link with a directory (rm e2e/node_modules)"
	fi
elif [ ! -f "$marker" ] || [ "$e2e/package-lock.json" -nt "$marker" ] || [ "$e2e/package.json" -nt "$marker" ]; then
	log "installing the pinned npm packages: npm ci in e2e/ (node $(node --version), npm $(npm --version 2>/dev/null))"
	(cd "$e2e" && npm ci --no-audit --no-fund)
	touch "$marker"
else
	log "e2e/node_modules is up to date with e2e/package-lock.json"
fi

# apt_prepare WHAT PACKAGE: make ready to apt-get install PACKAGE, which
# provides WHAT: sets sudo (empty as root), fails clearly without root or
# apt-get, and runs apt-get update when apt does not know PACKAGE yet.
apt_prepare() {
	local what=$1 pkg=$2
	sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null 2>&1 || die "$what is missing and installing it needs root: run this script as root, or apt-get install $pkg"
		sudo=(sudo)
	fi
	command -v apt-get >/dev/null 2>&1 || die "$what is missing and there is no apt-get: install Debian's $pkg package by hand"
	export DEBIAN_FRONTEND=noninteractive
	local policy
	policy="$(apt-cache policy "$pkg" 2>/dev/null || true)"
	if ! grep -q 'Candidate: [^(]' <<<"$policy"; then
		log "apt does not know the $pkg package yet: apt-get update"
		"${sudo[@]}" apt-get update -q
	fi
}

# --- chromium (Debian's package only) -----------------------------------------
if [ -x "$chromium" ]; then
	log "chromium is installed: $chromium"
else
	apt_prepare "$chromium" chromium
	log "installing Debian's chromium (apt-get install chromium fonts-liberation)"
	"${sudo[@]}" apt-get install -y -q --no-install-recommends chromium fonts-liberation
	[ -x "$chromium" ] || die "apt-get installed chromium but $chromium is still missing"
	log "chromium installed: $("$chromium" --version 2>/dev/null || echo "$chromium")"
fi

# apt_install_no_start PACKAGE...: apt-get install PACKAGEs (no recommends)
# with services kept from starting during the installation: a policy-rc.d
# that forbids it, ours only if none was there, removed afterwards.
apt_install_no_start() {
	local rcd=/usr/sbin/policy-rc.d own_rcd= status=0
	if [ ! -e "$rcd" ]; then
		printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$rcd" >/dev/null
		"${sudo[@]}" chmod 755 "$rcd"
		own_rcd=1
	fi
	"${sudo[@]}" apt-get install -y -q --no-install-recommends "$@" || status=$?
	[ -z "$own_rcd" ] || "${sudo[@]}" rm -f "$rcd"
	[ "$status" -eq 0 ] || die "apt-get install $* failed (exit $status)"
}

# --- promtool (Debian's prometheus package) -----------------------------------
# Only promtool is wanted: policy-rc.d forbids starting the packaged
# Prometheus server during the installation, and the service is stopped and
# disabled afterwards in case the system starts it anyway.
if command -v promtool >/dev/null 2>&1; then
	log "promtool is installed: $(command -v promtool)"
else
	apt_prepare promtool prometheus
	log "installing Debian's prometheus for promtool (apt-get install prometheus; the server is not started)"
	apt_install_no_start prometheus
	if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
		"${sudo[@]}" systemctl disable --now prometheus.service >/dev/null 2>&1 || true
	fi
	command -v promtool >/dev/null 2>&1 || die "apt-get installed prometheus but promtool is not on PATH"
	log "promtool installed: $(promtool --version 2>&1 | head -n 1)"
fi

# --- podman and runc (Debian's packages), for the image test -------------------
# TestImage (cmd/capstan) builds and runs the image with Docker when a daemon
# answers, else with Podman, which needs no daemon. runc too: Podman's crun
# refuses hybrid cgroup hierarchies (cgroup v1 with a v2 mount that has
# controllers), where the test runs Podman with --runtime=runc. The packages'
# services (the Podman API socket) are not started.
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
	log "a Docker daemon answers: the image test uses it, podman is not needed"
elif command -v podman >/dev/null 2>&1 && command -v runc >/dev/null 2>&1; then
	log "podman and runc are installed: $(podman --version), $(runc --version | head -n 1)"
else
	apt_prepare podman podman
	log "installing Debian's podman and runc (apt-get install podman runc; no service is started)"
	apt_install_no_start podman runc
	command -v podman >/dev/null 2>&1 || die "apt-get installed podman but it is not on PATH"
	log "podman installed: $(podman --version)"
fi

log "done"

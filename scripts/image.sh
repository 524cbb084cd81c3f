#!/usr/bin/env bash
# image.sh — build the container image of the Dockerfile (make image).
#
#   bash scripts/image.sh                   # capstan:dev
#   IMAGE=registry.example.com/capstan:1 bash scripts/image.sh
#   CONTAINER_ENGINE=podman bash scripts/image.sh
#
# A static capstan is built on the host first (CGO_ENABLED=0, into
# .image/capstan), so the Dockerfile is FROM scratch and no base image is
# pulled. The engine is Docker when a Docker daemon answers (docker info),
# else Podman, which needs no daemon; CONTAINER_ENGINE=docker|podman chooses.
# Podman builds with --format docker: the OCI image format has no
# HEALTHCHECK, and Podman would drop the Dockerfile's.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
IMAGE=${IMAGE:-capstan:dev}

die() { printf 'make image: %s\n' "$*" >&2; exit 1; }

engine=${CONTAINER_ENGINE:-}
if [[ -z $engine ]]; then
	if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
		engine=docker
	elif command -v podman >/dev/null 2>&1; then
		engine=podman
	else
		die "no container engine: no Docker daemon answers (docker info failed or no docker client) and podman is not installed (apt-get install podman, or run scripts/setup-e2e.sh). Nothing built."
	fi
fi
case $engine in
docker) build=(docker build) ;;
podman) build=(podman build --format docker) ;;
*) die "CONTAINER_ENGINE=$engine: want docker or podman" ;;
esac
command -v "$engine" >/dev/null 2>&1 || die "CONTAINER_ENGINE=$engine, but $engine is not on PATH"

echo "make image: a static capstan into .image/capstan, then ${build[*]} -t $IMAGE ."
rm -rf .image
mkdir -p .image/data
CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w $(bash scripts/release.sh --ldflags)" -o .image/capstan ./cmd/capstan
"${build[@]}" -t "$IMAGE" .
size=$("$engine" image inspect --format '{{.Size}}' "$IMAGE")
echo "make image: built $IMAGE with $engine, $((size / 1000000)) MB ($size bytes)"

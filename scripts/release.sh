#!/usr/bin/env bash
# release.sh — static capstan archives for linux and darwin × amd64 and arm64.
#
#   bash scripts/release.sh            # dist/capstan_<version>_<os>_<arch>.tar.gz and dist/SHA256SUMS
#   bash scripts/release.sh --ldflags  # print the -X flags carrying the version (used by make image)
#
# VERSION overrides the version (default: git describe --tags --always --dirty).
# Offline (only the module cache) and idempotent: dist/ is rebuilt from
# scratch, archive entries get the commit time, owner 0 and sorted names, and
# gzip stores no timestamp, so the same commit gives the same archives.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
epoch=$(git log -1 --format=%ct 2>/dev/null || echo 0)
built=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
ldflags="-X main.buildVersion=$version -X main.buildCommit=$commit -X main.buildTime=$built"

if [[ ${1:-} == --ldflags ]]; then
	echo "$ldflags"
	exit 0
fi

rm -rf dist
mkdir -p dist
for os in linux darwin; do
	for arch in amd64 arm64; do
		name="capstan_${version}_${os}_${arch}"
		stage="dist/.stage/$name"
		mkdir -p "$stage"
		CGO_ENABLED=0 GOOS=$os GOARCH=$arch GOFLAGS=-mod=readonly GOPROXY=off \
			"$GO" build -trimpath -ldflags "-s -w $ldflags" -o "$stage/capstan" ./cmd/capstan
		cp LICENSE README.md CHANGELOG.md "$stage/"
		cp -r examples "$stage/examples"
		cp -r deploy "$stage/deploy" # service unit, compose files, dashboard, alert rules
		tar --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner \
			-C dist/.stage -cf - "$name" | gzip -n -9 >"dist/$name.tar.gz"
		echo "dist/$name.tar.gz $(du -h "dist/$name.tar.gz" | cut -f1)"
	done
done
rm -rf dist/.stage
(cd dist && sha256sum -- *.tar.gz >SHA256SUMS)
echo "dist/SHA256SUMS"

#!/usr/bin/env bash
# bench/dedup.sh — the on-disk de-duplication index's memory benchmark (see
# bench/README.md, "De-duplication index benchmark").
#
# Builds bench/dedup and runs it: N events (default 50,000,000) hashed,
# looked up and added in groups of 100 at increasing positions inside a
# 24 h window, sampling resident memory (VmRSS, RssAnon, RssFile), the Go
# heap, disk usage and CPU time every million. Writes
# bench/results/dedup-<date>.md. The goal (issue 22): resident memory under
# 1 GB after 50 million events inside a 24 h window.
#
# Knobs (environment): BENCH_DEDUP_N (50000000), BENCH_DEDUP_MEMORY (bytes,
# 0: the index's default), BENCH_OUT (results file), BENCH_WORK, BENCH_KEEP=1.
# Extra arguments go to the program (go run ./bench/dedup -h).
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
abspaths
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${BENCH_DEDUP_N:-50000000}
DATE=$(date -u +%Y-%m-%d)
OUT=${BENCH_OUT:-bench/results/dedup-$DATE.md}
WORK=$(workdir capstan-dedup-bench)

# As the release binary is built (Makefile: CGO_ENABLED=0): without cgo,
# pebble allocates its cache and memtables on the Go heap.
CGO_ENABLED=0 go build -o "$WORK/dedup" ./bench/dedup
LABEL=$(git describe --always --dirty 2>/dev/null || echo unknown)
"$WORK/dedup" -n "$N" -memory "${BENCH_DEDUP_MEMORY:-0}" -dir "$WORK/index" \
	-label "$LABEL" -out "$OUT" "$@"

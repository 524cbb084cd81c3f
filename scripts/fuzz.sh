#!/usr/bin/env bash
# fuzz.sh runs every native fuzz target of the module (each `func FuzzXxx`
# in a _test.go file, found anew on each run) for FUZZTIME each, one after
# the other, and fails if any of them fails. `make fuzz` runs it.
#
#   FUZZTIME=10s scripts/fuzz.sh          # every target
#   scripts/fuzz.sh --list                # the targets, one "package name" a line
#
# Each target runs as `go test -run '^$' -fuzz '^Name$' ./pkg/`: anchored,
# because -fuzz takes a regular expression and FuzzParse would also match
# FuzzParseObject (go test refuses to fuzz more than one target at a time).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
GO="${GO:-go}"
FUZZTIME="${FUZZTIME:-30s}"

# targets prints "package-dir FuzzName" for every fuzz target, sorted.
targets() {
	local files
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		files=$(git ls-files '*_test.go')
	else
		files=$(find . -name '*_test.go' -not -path '*/node_modules/*' | sed 's|^\./||')
	fi
	# shellcheck disable=SC2086 # one file name a word
	grep -H -o '^func Fuzz[A-Za-z0-9_]*(' $files |
		sed -E 's|^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\($|./\1 \2|' |
		sort -u
}

if [[ "${1:-}" == "--list" ]]; then
	targets
	exit 0
fi

list=$(targets)
total=$(printf '%s\n' "$list" | grep -c .)
printf 'fuzz: %d targets, %s each\n' "$total" "$FUZZTIME"
failed=()
while read -r pkg name; do
	printf '\nfuzz: %s %s\n' "$pkg" "$name"
	if ! "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg/" </dev/null; then
		failed+=("$pkg $name")
	fi
done <<<"$list"

printf '\nfuzz: %d of %d targets passed\n' "$((total - ${#failed[@]}))" "$total"
if ((${#failed[@]} > 0)); then
	printf 'fuzz: FAILED: %s\n' "${failed[@]}"
	exit 1
fi

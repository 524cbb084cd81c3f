#!/usr/bin/env bash
# bench/ab.sh — an old and a new capstan measured in the same run, on the
# same machine, alternately (see bench/README.md, "Old vs new").
#
# Usage: bench/ab.sh OLD_REV [NEW_REV]
#
# Builds capstan at OLD_REV (in a temporary `git worktree add --detach`,
# removed once built) and at NEW_REV (likewise; without NEW_REV, the working
# tree as it is, uncommitted changes included). Then BENCH_ROUNDS rounds,
# old then new in odd rounds and new then old in even ones (so that a
# machine getting slower or faster during the run does not favour either):
#   bench/ingest.sh with BENCH_TARGETS="null always" (batch and track
#   scenarios, the null server first: each run gives capstan's batch rate
#   and the null server's measured in the same run, and their ratio),
#   bench/delivery.sh with BENCH_CASES="a c",
# each run with BENCH_CAPSTAN set to that side's binary and its own work
# directory. loadgen, nullserver and the scripts are the working tree's in
# every run, and so is the LinkedIn sandbox of delivery.sh: the new binary's
# `capstan sandbox` for both sides (BENCH_SANDBOX overrides it), so that only
# `capstan serve` differs. The figures are read from the JSON loadgen writes
# (results.jsonl, drain.jsonl); the report, with per-run values, medians and
# the new/old ratio of the medians, is printed and written to
# bench/results/ab-<date>.md.
#
# Knobs (environment): BENCH_ROUNDS (2), BENCH_OUT (the report's path),
# BENCH_KEEP=1 keeps the work directory (binaries, each run's report, logs
# and JSON; the runs' data directories are removed as soon as a run ends,
# to save disk), BENCH_WORK (the work directory instead of a fresh
# mktemp -d; created if missing, must be empty), BENCH_SANDBOX (see above).
# Every other BENCH_* knob of ingest.sh and delivery.sh (BENCH_DURATION,
# BENCH_WARMUP, BENCH_BACKLOG, BENCH_PEOPLE, ...) is passed on to them.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
abspaths
cd "$(dirname "$0")/.."
ROOT=$PWD

usage() {
	echo "usage: bench/ab.sh OLD_REV [NEW_REV]   (default NEW_REV: the working tree)" >&2
	exit 2
}
(($# == 1 || $# == 2)) || usage
# Knobs ab.sh sets itself for each run; what the caller set has no effect.
unset BENCH_CAPSTAN BENCH_LABEL BENCH_TARGETS BENCH_CASES
ROUNDS=${BENCH_ROUNDS:-2}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_ROUNDS must be a positive integer, got $ROUNDS" >&2; exit 2; }
DATE=$(date -u +%Y-%m-%d)
OUT=${BENCH_OUT:-bench/results/ab-$DATE.md}

# rev REV: the commit REV names, or exit.
rev() {
	git -C "$ROOT" rev-parse --verify --quiet "$1^{commit}" || { echo "not a commit: $1" >&2; exit 2; }
}
OLD_REV=$1
OLD_SHA=$(rev "$OLD_REV")
OLD_LABEL="old: $OLD_REV = $(git -C "$ROOT" describe --always "$OLD_SHA")"
if (($# == 2)); then
	NEW_REV=$2
	NEW_SHA=$(rev "$NEW_REV")
	NEW_LABEL="new: $NEW_REV = $(git -C "$ROOT" describe --always "$NEW_SHA")"
else
	NEW_REV=
	NEW_SHA=
	NEW_DESC=$(git -C "$ROOT" describe --always --dirty)
	NEW_LABEL="new: working tree = $NEW_DESC"
fi

WORK=$(workdir capstan-ab)
COMMANDS=$WORK/commands.txt
RUNS=$WORK/runs.jsonl
: >"$COMMANDS"
: >"$RUNS"
mkdir -p "$WORK/runs"

# Temporary worktrees are removed on exit too, should a build fail.
WORKTREES=()
ab_cleanup() {
	local w
	for w in "${WORKTREES[@]}"; do
		if [[ -d $w ]]; then
			git -C "$ROOT" worktree remove --force "$w" 2>/dev/null || true
		fi
	done
	git -C "$ROOT" worktree prune 2>/dev/null || true
	cleanup
}
trap ab_cleanup EXIT

# build SIDE SHA: WORK/capstan-SIDE, built at SHA in a temporary worktree,
# or from the working tree when SHA is empty.
build() {
	local side=$1 sha=$2 src=$ROOT
	log "build capstan $side (${sha:-working tree})"
	if [[ -n $sha ]]; then
		src=$WORK/src-$side
		WORKTREES+=("$src")
		cmd git -C "$ROOT" worktree add --quiet --detach "$src" "$sha"
	fi
	cmd go -C "$src" build -o "$WORK/capstan-$side" ./cmd/capstan
	if [[ -n $sha ]]; then
		cmd git -C "$ROOT" worktree remove --force "$src"
	fi
}
build old "$OLD_SHA"
build new "$NEW_SHA"
SANDBOX=${BENCH_SANDBOX:-$WORK/capstan-new}

UPTIME_BEFORE=$(uptime)
START=$(date +%s)
log "machine load before: $UPTIME_BEFORE"

# figures BENCH DIR: one JSON object, the run's figures (null where the run
# has none) and checks, from the JSON files loadgen wrote.
figures() {
	local bench=$1 dir=$2
	if [[ $bench == ingest ]]; then
		jq -s --arg t "capstan sync=always" --arg store "$(awk -F'|' '{gsub(/ /, "", $7); print $7}' "$dir/checks.md" 2>/dev/null)" '
			def known: if . == null or . < 0 then null else . end;
			def row(p): [.[] | select(.target == $t and (.scenario | startswith(p)))][0];
			{
				ingest_batch_eps: row("batch").events_per_s,
				ingest_null_eps: ([.[] | select(.target == "null" and (.scenario | startswith("batch")))][0].events_per_s),
				ingest_batch_vs_null: ([.[] | select(.target == "null" and (.scenario | startswith("batch")))][0].events_per_s as $n
					| if $n == null or $n == 0 or row("batch").events_per_s == null then null else row("batch").events_per_s / $n end),
				ingest_batch_us: (row("batch").server_cpu_us_per_event | known),
				ingest_track_p50: row("track").p50_ms,
				ingest_track_p99: row("track").p99_ms,
				ingest_track_us: (row("track").server_cpu_us_per_event | known),
				load: (.[0].loadavg_start // "" | split(" ")[0]),
				checks: "errors \([.[] | select(.target == $t) | .errors] | add), store check \(if $store == "" then "missing" else $store end)"
			}' "$dir/results.jsonl"
	else
		jq -n --slurpfile r "$dir/results.jsonl" --slurpfile d "$dir/drain.jsonl" '
			def known: if . == null or . < 0 then null else . end;
			def show: if . == null then "missing" else tostring end;
			([$r[] | select(.target == "max")][0]) as $a | $d[0] as $c |
			{
				deliv_a_eps: (if $a.delivery.all_delivered then $a.delivery.delivered_per_s else null end),
				deliv_a_us: (if $a.delivery.all_delivered then $a.delivery.capstan_cpu_us_per_event | known else null end),
				deliv_c_eps: (if $c.all_delivered then $c.events_per_s_first_to_last else null end),
				deliv_c_us: (if $c.all_delivered then $c.server_cpu_us_per_event | known else null end),
				load: ($a.loadavg_start // "" | split(" ")[0]),
				checks: "(a) all delivered: \($a.delivery.all_delivered | show), exactly once: \($a.delivery.exactly_once | show); (c) backlog of \($c.events | show) events, all delivered: \($c.all_delivered | show)"
			}'
	fi
}

# run ROUND BENCH SIDE: one run of bench/BENCH.sh with SIDE's binary; appends
# its figures to RUNS.
FAILED=0
run() {
	local round=$1 bench=$2 side=$3 name="r$1-$2-$3" label rc=0 t0 fig
	local dir=$WORK/runs/$name
	local -a knobs=("BENCH_TARGETS=null always")
	[[ $bench == delivery ]] && knobs=("BENCH_CASES=a c" "BENCH_SANDBOX=$SANDBOX")
	label=$OLD_LABEL
	[[ $side == new ]] && label=$NEW_LABEL
	log "round $round of $ROUNDS: $bench, $label"
	t0=$(date +%s)
	cmd env BENCH_CAPSTAN="$WORK/capstan-$side" BENCH_LABEL="$label" "${knobs[@]}" \
		BENCH_WORK="$dir" BENCH_KEEP=1 BENCH_OUT="$dir/report.md" "bench/$bench.sh" >/dev/null || rc=$?
	if ((rc == 0)); then
		fig=$(figures "$bench" "$dir") || fig='{"checks": "no figures"}'
		rm -rf "${dir:?}/bin" "$dir"/*/data
	else
		FAILED=1
		fig="{\"checks\": \"bench/$bench.sh failed (exit $rc); its work dir is kept\"}"
	fi
	jq -c --arg name "$name" --argjson round "$round" --arg bench "$bench" --arg side "$side" \
		--arg started "$(date -u -d "@$t0" +%H:%M:%S)" --argjson seconds $(($(date +%s) - t0)) \
		'. + {name: $name, round: $round, bench: $bench, side: $side, started: $started, seconds: $seconds}' <<<"$fig" >>"$RUNS"
}

for ((r = 1; r <= ROUNDS; r++)); do
	order=(old new)
	((r % 2)) || order=(new old)
	for bench in ingest delivery; do
		for side in "${order[@]}"; do
			run "$r" "$bench" "$side"
		done
	done
done

UPTIME_AFTER=$(uptime)
ELAPSED=$(($(date +%s) - START))

# --- report ----------------------------------------------------------------
log "report: $OUT"
# The tables, from RUNS: one per benchmark and case, a row per figure and
# side with the value of each round, the median, and new/old of the medians;
# a summary first.
TABLES=$(jq -rs --argjson rounds "$ROUNDS" '
	def figs: [
		{k: "ingest_batch_eps", b: "ingest", g: "batch", f: "events/s", d: 0, hi: true},
		{k: "ingest_null_eps", b: "ingest", g: "batch", f: "null server events/s, same run", d: 0, hi: true},
		{k: "ingest_batch_vs_null", b: "ingest", g: "batch", f: "capstan / null server, same run (goal ≥ 0.25)", d: 3, hi: true},
		{k: "ingest_batch_us", b: "ingest", g: "batch", f: "server CPU µs/event", d: 1, hi: false},
		{k: "ingest_track_p50", b: "ingest", g: "track", f: "p50 ms", d: 2, hi: false},
		{k: "ingest_track_p99", b: "ingest", g: "track", f: "p99 ms", d: 2, hi: false},
		{k: "ingest_track_us", b: "ingest", g: "track", f: "server CPU µs/event", d: 1, hi: false},
		{k: "deliv_a_eps", b: "delivery", g: "a", f: "sustained events/s end to end", d: 0, hi: true},
		{k: "deliv_a_us", b: "delivery", g: "a", f: "capstan CPU µs/event (ingest + delivery)", d: 1, hi: false},
		{k: "deliv_c_eps", b: "delivery", g: "c", f: "drain events/s (first to last accepted)", d: 0, hi: true},
		{k: "deliv_c_us", b: "delivery", g: "c", f: "capstan CPU µs/event (delivery only)", d: 1, hi: false}
	];
	def groups: [
		{g: "batch", t: "Ingest, batch: `/v1/batch`, 100 events per request, closed loop, engine.sync: always"},
		{g: "track", t: "Ingest, track: `/v1/track`, one event per request, open loop, engine.sync: always"},
		{g: "a", t: "Delivery (a): ingest at maximum rate and delivery to the sandbox together"},
		{g: "c", t: "Delivery (c): delivery alone, a stored backlog"}
	];
	def fixed($d):
		if . == null then "—"
		else (. * pow(10; $d) | round) as $n
			| if $d == 0 then ($n | tostring)
			else ($n | fabs | tostring) as $s
				| (if ($s | length) <= $d then ("0" * ($d + 1 - ($s | length))) + $s else $s end) as $p
				| (if $n < 0 then "-" else "" end) + $p[0:-$d] + "." + $p[-$d:]
			end
		end;
	def median: map(select(. != null)) | sort
		| if length == 0 then null
		elif length % 2 == 1 then .[length / 2 | floor]
		else (.[length / 2 - 1] + .[length / 2]) / 2 end;
	def vals($runs; $side; $f): [range(1; $rounds + 1) as $r
		| ($runs[] | select(.round == $r and .side == $side and .bench == $f.b) | .[$f.k])];
	def range($lo; $hi; $d): if $lo == null then "—" else "\($lo | fixed($d))–\($hi | fixed($d))" end;
	def ratio($o; $n): if $o == null or $n == null or $o == 0 then null else $n / $o end;
	. as $runs
	| [figs[] | . as $f
		| vals($runs; "old"; $f) as $o | vals($runs; "new"; $f) as $n
		| ($o | map(select(. != null))) as $ok | ($n | map(select(. != null))) as $nk
		| $f + {old: $o, new: $n, om: ($o | median), nm: ($n | median),
			omin: ($ok | min), omax: ($ok | max), nmin: ($nk | min), nmax: ($nk | max)}
		| . + {ratio: ratio(.om; .nm),
			verdict: (if .om == null or .nm == null then "no figures"
				elif ($ok | length) < 2 or ($nk | length) < 2 then "fewer than 2 runs on a side: no spread to judge by"
				elif .nmin <= .omax and .omin <= .nmax then "within the spread of the runs: noise"
				elif (.nm > .om) == .hi then "new better, outside the spread"
				else "new worse, outside the spread" end)}
	] as $rows
	| "## Summary",
	"",
	"Medians of \($rounds) run(s) per side; new/old is the ratio of the medians (above 1: new is higher, which is better for events/s and worse for µs and ms). Min–max is the spread of the runs.",
	"",
	"| figure | old median | new median | new/old | old min–max | new min–max | verdict |",
	"|---|--:|--:|--:|--:|--:|---|",
	($rows[] | . as $x
		| "| \({batch: "ingest batch", track: "ingest track", a: "delivery (a)", c: "delivery (c)"}[$x.g]): \(.f) | \(.om | fixed($x.d)) | \(.nm | fixed($x.d)) | \(.ratio | fixed(3)) | \(range($x.omin; $x.omax; $x.d)) | \(range($x.nmin; $x.nmax; $x.d)) | \(.verdict) |"),
	"",
	"## Per run",
	(groups[] | . as $g
		| "",
		"### \($g.t)",
		"",
		"| figure | binary | \([range(1; $rounds + 1) | "round \(.) (\(if . % 2 == 1 then "old first" else "new first" end))"] | join(" | ")) | median | new/old |",
		"|---|---|\([range(1; $rounds + 1) | "--:"] | join("|"))|--:|--:|",
		($rows[] | select(.g == $g.g) | . as $x
			| "| \(.f) | old | \(.old | map(fixed($x.d)) | join(" | ")) | \(.om | fixed($x.d)) | |",
			"| \(.f) | new | \(.new | map(fixed($x.d)) | join(" | ")) | \(.nm | fixed($x.d)) | \(.ratio | fixed(3)) |"))
' "$RUNS")
RUNLIST=$(jq -r '"| \(.name) | \(.started) | \(.seconds) | \(.load // "?") | \(.checks) |"' "$RUNS")

mkdir -p "$(dirname "$OUT")"
{
	echo "# capstan old vs new, $DATE"
	echo
	echo "Produced by \`bench/ab.sh\` (see bench/README.md, \"Old vs new\"). $ROUNDS round(s), each running"
	echo "\`bench/ingest.sh\` (the null server, then capstan with engine.sync: always: batch and track scenarios; the"
	echo "null server's batch rate and capstan's over it are of the same run) then"
	echo "\`bench/delivery.sh\` (cases a and c) once per binary, old first in odd rounds and new first in even ones."
	echo "Each run starts a fresh capstan on a fresh data directory. The load generator and the scripts are the working"
	if [[ -n ${BENCH_SANDBOX:-} ]]; then
		echo "tree's in every run; the delivery runs' sandbox is \`$SANDBOX sandbox\` (BENCH_SANDBOX) for both sides."
	else
		echo "tree's in every run; the delivery runs' sandbox is the new binary's \`capstan sandbox\` for both sides,"
		echo "so that only \`capstan serve\` differs."
	fi
	echo
	echo "- **old**: \`$OLD_REV\` = $OLD_SHA, binary sha256 $(sha256sum "$WORK/capstan-old" | cut -c1-12)"
	if [[ -n $NEW_REV ]]; then
		echo "- **new**: \`$NEW_REV\` = $NEW_SHA, binary sha256 $(sha256sum "$WORK/capstan-new" | cut -c1-12)"
	else
		echo "- **new**: the working tree ($NEW_DESC), binary sha256 $(sha256sum "$WORK/capstan-new" | cut -c1-12)"
	fi
	echo
	echo "Per run: warm-up ${BENCH_WARMUP:-3s}, measured ${BENCH_DURATION:-20s}; delivery (c) backlog ${BENCH_BACKLOG:-500000} events;"
	echo "people: ${BENCH_PEOPLE:-new}. Figures are loadgen's JSON (results.jsonl, drain.jsonl) as bench/ingest.sh and"
	echo "bench/delivery.sh report them; a delivery figure is left out (—) when not every event was delivered."
	echo
	echo "$TABLES"
	echo
	echo "## Runs"
	echo
	echo "| run | started (UTC) | seconds | load (1 min) at start | checks |"
	echo "|---|---|--:|--:|---|"
	echo "$RUNLIST"
	echo
	echo "Whole run: $((ELAPSED / 60)) min $((ELAPSED % 60)) s after the builds."
	echo
	echo "## Machine"
	echo
	machine
	echo
	echo "Load (the machine is shared with other engineers' builds and tests):"
	echo
	echo "- before: \`$UPTIME_BEFORE\`"
	echo "- after: \`$UPTIME_AFTER\`"
	echo "- per run: the \"load\" column above"
	echo
	echo "## Commands"
	echo
	echo "Run from the repository root as \`$(invocation "bench/ab.sh $*")\`; it ran:"
	echo
	echo '```sh'
	sed "s|$WORK|\$WORK|g" "$COMMANDS"
	echo '```'
	echo
	echo "where \`\$WORK\` was $(workdesc). Every run of a script ran the same commands with its own binary and"
	echo "directory; those of the first run of each were:"
	for b in ingest delivery; do
		f=$WORK/runs/r1-$b-old/commands.txt
		[[ -f $f ]] || continue
		echo
		echo '```sh'
		echo "# bench/$b.sh, round 1, old"
		sed "s|$WORK|\$WORK|g" "$f"
		echo '```'
	done
} >"$OUT"
cat "$OUT"
if ((FAILED)); then
	echo "some runs failed; keeping $WORK" >&2
	BENCH_KEEP=1
	exit 1
fi

#!/usr/bin/env bash
# bench/ingest.sh — capstan's ingest benchmark (see bench/README.md).
#
# Builds capstan, bench/loadgen and bench/nullserver; starts the null server
# and capstan (embedded engine, temporary data dir, loopback port) as separate
# processes; measures
#   (a) /v1/batch, 100 events per request, closed loop at a fixed concurrency;
#   (b) /v1/track, one event per request, open loop at a fixed arrival rate;
# against the null server, capstan with engine.sync: always, and capstan with
# engine.sync: 1s; checks that each capstan's EVENTS stream holds exactly the
# events that were acknowledged; writes bench/results/ingest-<date>.md.
#
# Knobs (environment): BENCH_DURATION (20s), BENCH_WARMUP (3s),
# BENCH_CONCURRENCY (32), BENCH_BATCH (100), BENCH_RATE (2000),
# BENCH_OPEN_CONCURRENCY (256), BENCH_OUT (results file), BENCH_KEEP=1 keeps
# the temporary directory (logs, data, raw JSON results),
# BENCH_TARGETS (space-separated subset of "null always 1s", the default: all
# three, always run in that order),
# BENCH_CAPSTAN (path of a prebuilt capstan to run instead of building
# ./cmd/capstan; loadgen and nullserver are still built from the tree),
# BENCH_LABEL (how the report names that binary, e.g. `git describe` output),
# BENCH_WORK (the directory to work in instead of a fresh mktemp -d; created
# if missing, must be empty, removed at the end unless BENCH_KEEP=1),
# BENCH_PROFILE (seconds: for each capstan target, a CPU profile of capstan
# that long during the batch scenario, taken through serve's /debug/pprof/
# (server.pprof with a random admin token) BENCH_PROFILE_DELAY (5) seconds
# after the batch load starts, written to BENCH_PROFILE_DIR (default: the
# work directory) as cpu-<always|1s>.pprof; the profile costs capstan some
# CPU while it runs, so the run's figures are not comparable with others),
# BENCH_COMPRESSION (capstan's engine.compression: s2, the default, or none).
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
abspaths
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${BENCH_DURATION:-20s}
WARMUP=${BENCH_WARMUP:-3s}
CONC=${BENCH_CONCURRENCY:-32}
BATCH=${BENCH_BATCH:-100}
RATE=${BENCH_RATE:-2000}
OPEN_CONC=${BENCH_OPEN_CONCURRENCY:-256}
PROFILE=${BENCH_PROFILE:-}
COMPRESSION=${BENCH_COMPRESSION:-s2}
PROFILE_DELAY=${BENCH_PROFILE_DELAY:-5}
ADMIN_TOKEN=
[[ -n $PROFILE ]] && ADMIN_TOKEN=$(head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n')
DATE=$(date -u +%Y-%m-%d)
OUT=${BENCH_OUT:-bench/results/ingest-$DATE.md}
read -ra TLIST <<<"${BENCH_TARGETS:-null always 1s}"
((${#TLIST[@]} > 0)) || { echo "BENCH_TARGETS names no target" >&2; exit 2; }
for t in "${TLIST[@]}"; do
	case $t in
	null | always | 1s) ;;
	*) echo "BENCH_TARGETS: unknown target $t (null, always, 1s)" >&2; exit 2 ;;
	esac
done
TARGETS="${TLIST[*]}"
# wants TARGET: whether BENCH_TARGETS includes it.
wants() { [[ " $TARGETS " == *" $1 "* ]]; }
WORK=$(workdir capstan-bench)
BIN=$WORK/bin
RESULTS=$WORK/results.jsonl
COMMANDS=$WORK/commands.txt
CHECKS=$WORK/checks.md
for f in "$RESULTS" "$COMMANDS" "$CHECKS"; do : >"$f"; done

log "build"
mkdir -p "$BIN"
capstan_binary
cmd go build -o "$BIN/loadgen" ./bench/loadgen
cmd go build -o "$BIN/nullserver" ./bench/nullserver

UPTIME_BEFORE=$(uptime)
log "machine load before: $UPTIME_BEFORE"

# load NAME URL PID [PROFILE_NAME]: both scenarios against one target;
# with PROFILE_NAME and BENCH_PROFILE, a CPU profile during the batch one.
load() {
	local target=$1 url=$2 pid=$3 prof=${4:-}
	log "batch: $target"
	if [[ -n $PROFILE && -n $prof ]]; then
		(sleep "$PROFILE_DELAY" && curl -sf -H "Authorization: Bearer $ADMIN_TOKEN" \
			-o "${BENCH_PROFILE_DIR:-$WORK}/cpu-$prof.pprof" "$url/debug/pprof/profile?seconds=$PROFILE") &
	fi
	cmd "$BIN/loadgen" run -url "$url" -endpoint /v1/batch -batch "$BATCH" -concurrency "$CONC" \
		-warmup "$WARMUP" -duration "$DURATION" -server-pid "$pid" \
		-scenario "batch ${BATCH}/req, c=$CONC" -target "$target" -out "$RESULTS"
	settle "$pid"
	log "track: $target"
	cmd "$BIN/loadgen" run -url "$url" -endpoint /v1/track -rate "$RATE" -concurrency "$OPEN_CONC" \
		-warmup "$WARMUP" -duration "$DURATION" -server-pid "$pid" \
		-scenario "track ${RATE} req/s open loop" -target "$target" -out "$RESULTS"
	settle "$pid"
}

# --- null server -----------------------------------------------------------
if wants null; then
	log "null server"
	"$BIN/nullserver" -addr 127.0.0.1:0 2>"$WORK/nullserver.log" &
	NULL_PID=$!
	PIDS+=("$NULL_PID")
	printf '%s\n' "$BIN/nullserver -addr 127.0.0.1:0 &" >>"$COMMANDS"
	NULL_URL=$(wait_url "$WORK/nullserver.log" 'msg="nullserver listening" addr=' "$NULL_PID")
	load null "$NULL_URL" "$NULL_PID"
	kill -TERM "$NULL_PID"
	wait "$NULL_PID" || true
fi

# --- capstan ---------------------------------------------------------------
# run_capstan NAME SYNC: start capstan, load it, check its stream, stop it.
run_capstan() {
	local name=$1 sync=$2 dir=$WORK/$1
	mkdir -p "$dir"
	cat >"$dir/capstan.yaml" <<EOF
server:
  addr: "127.0.0.1:0"
  data_dir: $dir/data
${ADMIN_TOKEN:+  admin_token: $ADMIN_TOKEN
  pprof: true
}engine:
  sync: $sync
  compression: $COMPRESSION
sources:
  - name: bench
    write_key: wk_bench
    rate_limit: {disabled: true}   # measure capacity, not the per-source limit
EOF
	log "capstan $name (engine.sync: $sync, engine.compression: $COMPRESSION)"
	"$CAPSTAN" serve --config "$dir/capstan.yaml" 2>"$dir/capstan.log" &
	local pid=$!
	PIDS+=("$pid")
	printf '%s\n' "$CAPSTAN serve --config $dir/capstan.yaml &   # engine.sync: $sync" >>"$COMMANDS"
	local url
	url=$(wait_url "$dir/capstan.log" 'msg="capstan listening" addr=' "$pid")
	load "capstan sync=$sync" "$url" "$pid" "$name"

	log "durability check: $name"
	local acked stream tail metric verdict
	acked=$(jq -s --arg t "capstan sync=$sync" '[.[] | select(.target == $t) | .acked_events] | add' "$RESULTS")
	stream=$(cmd "$BIN/loadgen" stream -engine "$dir/data/engine.json" | jq .events) || stream="error"
	metric=$(curl -fsS "$url/metrics" | awk '/^capstan_ingest_events_total\{result="accepted"/ {print $2}') || metric="error"
	tail=$(cmd timeout 600 "$CAPSTAN" events tail --config "$dir/capstan.yaml" --json | wc -l) || tail="error"
	verdict=FAIL
	if [[ $stream == "$acked" && $tail == "$acked" ]]; then verdict=OK; fi
	printf '| capstan sync=%s | %s | %s | %s | %s | %s |\n' "$sync" "$acked" "$stream" "$tail" "$metric" "$verdict" >>"$CHECKS"
	echo "acked $acked, stream $stream, events tail $tail, metric $metric: $verdict" >&2
	grep -E 'level=(WARN|ERROR)' "$dir/capstan.log" | sort | uniq -c | sed 's/^/    /' >"$dir/warnings.txt" || true

	kill -TERM "$pid"
	wait "$pid" || true
}

if wants always; then run_capstan always always; fi
if wants 1s; then run_capstan 1s 1s; fi

UPTIME_AFTER=$(uptime)

# --- report ----------------------------------------------------------------
log "report: $OUT"
TABLE=$("$BIN/loadgen" table "$RESULTS")
goal() { # goal TARGET SCENARIO_PREFIX jq-expression
	jq -rs --arg t "$1" --arg s "$2" "[.[] | select(.target == \$t and (.scenario | startswith(\$s)))][0] | $3" "$RESULTS"
}
if wants always; then
	EPS=$(goal "capstan sync=always" "batch" '.events_per_s | floor')
	P99=$(goal "capstan sync=always" "track" '.p99_ms * 100 | round / 100')
	GA=$(awk -v v="$EPS" 'BEGIN { print (v >= 50000 ? "met" : "NOT met") }')
	GB=$(awk -v v="$P99" 'BEGIN { print (v < 5 ? "met" : "NOT met") }')
	GA_TEXT="**$GA** — measured $EPS events/s."
	GB_TEXT="**$GB** — measured p99 $P99 ms."
else
	GA_TEXT="**not measured** (BENCH_TARGETS=\"$TARGETS\" has no always)."
	GB_TEXT=$GA_TEXT
fi

# (c) capstan's batch rate over the null server's, both of this run.
NULL_EPS=
if wants null; then NULL_EPS=$(goal "null" "batch" '.events_per_s | floor'); fi
GC_TEXT=""
for t in always 1s; do
	wants "$t" || continue
	CEPS=$(goal "capstan sync=$t" "batch" '.events_per_s | floor')
	if [[ -n $NULL_EPS && $NULL_EPS != null && $NULL_EPS -gt 0 && $CEPS != null ]]; then
		R=$(awk -v c="$CEPS" -v n="$NULL_EPS" 'BEGIN { printf "%.3f", c / n }')
		V=$(awk -v r="$R" 'BEGIN { print (r >= 0.25 ? "met" : "NOT met") }')
		GC_TEXT+="  - engine.sync: $t: **$V** — $CEPS / $NULL_EPS events/s = **$R×** the null server"$'\n'
	fi
done
[[ -n $GC_TEXT ]] || GC_TEXT="  - **not measured** (BENCH_TARGETS=\"$TARGETS\" needs null and a capstan target)."$'\n'

mkdir -p "$(dirname "$OUT")"
{
	echo "# capstan ingest benchmark, $DATE"
	echo
	echo "Produced by \`bench/ingest.sh\` (see bench/README.md for what each figure means)."
	echo
	echo "## Goals"
	echo
	echo "- (a) ≥ 50,000 events/s with every event fsynced before its 200 (\`/v1/batch\`, engine.sync: always): $GA_TEXT"
	echo "- (b) p99 < 5 ms at $RATE req/s on \`/v1/track\` (engine.sync: always): $GB_TEXT"
	echo "- (c) \`/v1/batch\` of $BATCH at ≥ 0.25× the null server's events/s, both measured in this run (issue 22):"
	printf '%s' "$GC_TEXT"
	echo
	echo "## Results"
	echo
	echo "Warm-up $WARMUP, measured $DURATION per row. Batch rows: closed loop, $CONC keep-alive connections, $BATCH events per request."
	echo "Track rows: open loop, $RATE requests/s on a fixed schedule (up to $OPEN_CONC connections), latency from the scheduled send time."
	echo "Each row starts once the server is idle (under 2% of a core for one second, \`settle\` in bench/lib.sh), so that it does not measure the previous row's aftermath."
	echo "Latencies are client-side (loadgen), in milliseconds. \"errors\" counts non-200 answers and transport errors in the measured window."
	echo "CPU columns are CPU-seconds per second of the measured window (2.00 = both cores of this machine)."
	echo
	echo "$TABLE"
	echo
	echo "Average request size: $(jq -rs '[.[] | "\(.endpoint) \(.bytes_per_event | floor) B/event"] | unique | join(", ")' "$RESULTS")."
	echo
	echo "## Durability check"
	echo
	echo "Every event acknowledged with 200 (warm-up and drain included) must be in the EVENTS stream, exactly once."
	echo
	echo "| instance | acknowledged events | EVENTS events (loadgen stream: the read path; a message is a segment of events) | \`capstan events tail --json \| wc -l\` | capstan_ingest_events_total{result=\"accepted\"} | verdict |"
	echo "|---|--:|--:|--:|--:|---|"
	cat "$CHECKS"
	echo
	for n in always 1s; do
		if [[ -s $WORK/$n/warnings.txt ]]; then
			echo "capstan sync=$n logged warnings/errors (count, line):"
			echo
			echo '```'
			cat "$WORK/$n/warnings.txt"
			echo '```'
			echo
		fi
	done
	echo "## Machine"
	echo
	machine
	echo
	echo "Load (the machine is shared with other engineers' builds and tests):"
	echo
	echo "- before: \`$UPTIME_BEFORE\`"
	echo "- after: \`$UPTIME_AFTER\`"
	echo "- per row: the \"load\" column (1-minute load average when the row started)"
	echo
	echo "## Commands"
	echo
	echo "Run from the repository root as \`$(invocation bench/ingest.sh)\`; it ran:"
	echo
	echo '```sh'
	sed "s|$WORK|\$WORK|g" "$COMMANDS"
	echo '```'
	echo
	if wants always || wants 1s; then
		yaml=always
		wants always || yaml=1s
		echo "where \`\$WORK\` was $(workdesc); the generated capstan.yaml was:"
		echo
		echo '```yaml'
		sed -e "s|$WORK|\$WORK|g" -e "s|^  admin_token: .*|  admin_token: REDACTED   # random, for BENCH_PROFILE|" "$WORK/$yaml/capstan.yaml"
		echo '```'
		if wants always && wants 1s; then
			echo
			echo "(with \`sync: 1s\` for the sync=1s instance)."
		fi
	else
		echo "where \`\$WORK\` was $(workdesc)."
	fi
} >"$OUT"
cat "$OUT"

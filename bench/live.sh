#!/usr/bin/env bash
# bench/live.sh — what consoles open on Live events cost ingest (see
# bench/README.md, "Live events benchmark").
#
# Builds capstan, bench/loadgen and bench/liveclients; starts one capstan
# (embedded engine, engine.sync: always, admin token, no destination) and
# measures, in the same run and alternating, ingest with 0 and with
# BENCH_CONSOLES (20) Live events streams open:
#   (a) open loop at BENCH_EVENTS_RATE (20,000) events/s on /v1/batch
#       (BENCH_BATCH events per request): throughput, latency and capstan's
#       CPU per event;
#   (b) closed loop on /v1/batch at BENCH_CONCURRENCY: the most events/s.
# The goal: 20 consoles cost ingest at most 5% (CPU per event in (a), and
# events/s in (b)). Writes bench/results/live-<date>.md.
#
# Knobs (environment): BENCH_DURATION (15s), BENCH_WARMUP (3s),
# BENCH_ROUNDS (2: each phase runs this many times, alternating),
# BENCH_CONSOLES (20), BENCH_EVENTS_RATE (20000), BENCH_BATCH (100),
# BENCH_CONCURRENCY (32), BENCH_OUT, BENCH_KEEP=1, BENCH_CAPSTAN,
# BENCH_LABEL, BENCH_WORK (as in ingest.sh), BENCH_PROFILE (a directory:
# capstan runs with server.pprof and a CPU profile of each open-loop phase's
# measured window is written there as cpu-<consoles>-round<r>.pprof).
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
abspaths
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${BENCH_DURATION:-15s}
WARMUP=${BENCH_WARMUP:-3s}
ROUNDS=${BENCH_ROUNDS:-2}
CONSOLES=${BENCH_CONSOLES:-20}
EVENTS_RATE=${BENCH_EVENTS_RATE:-20000}
BATCH=${BENCH_BATCH:-100}
CONC=${BENCH_CONCURRENCY:-32}
REQ_RATE=$((EVENTS_RATE / BATCH))
DATE=$(date -u +%Y-%m-%d)
OUT=${BENCH_OUT:-bench/results/live-$DATE.md}
TOKEN=bench-admin-token
PROFILE=${BENCH_PROFILE:-}
if [[ -n $PROFILE ]]; then
	mkdir -p "$PROFILE"
	PROFILE=$(cd "$PROFILE" && pwd)
fi
WORK=$(workdir capstan-live)
BIN=$WORK/bin
RESULTS=$WORK/results.jsonl
CLIENTS=$WORK/clients.jsonl
COMMANDS=$WORK/commands.txt
for f in "$RESULTS" "$CLIENTS" "$COMMANDS"; do : >"$f"; done

log "build"
mkdir -p "$BIN"
capstan_binary
cmd go build -o "$BIN/loadgen" ./bench/loadgen
cmd go build -o "$BIN/liveclients" ./bench/liveclients
UPTIME_BEFORE=$(uptime)
log "machine load before: $UPTIME_BEFORE"

dir=$WORK/capstan
mkdir -p "$dir"
cat >"$dir/capstan.yaml" <<YAML
server:
  addr: "127.0.0.1:0"
  data_dir: $dir/data
  admin_token: $TOKEN$([[ -n $PROFILE ]] && printf '\n  pprof: true')
engine:
  sync: always
sources:
  - name: bench
    write_key: wk_bench
    rate_limit: {disabled: true}   # measure capacity, not the per-source limit
YAML
"$CAPSTAN" serve --config "$dir/capstan.yaml" 2>"$dir/capstan.log" &
PID=$!
PIDS+=("$PID")
printf '%s\n' "$CAPSTAN serve --config $dir/capstan.yaml &" >>"$COMMANDS"
URL=$(wait_url "$dir/capstan.log" 'msg="capstan listening" addr=' "$PID")

# secs DURATION: a Go duration in whole seconds (s or m only).
secs() { local d=$1; [[ $d == *m ]] && echo $((${d%m} * 60)) || echo "${d%s}"; }
HOLD=$(($(secs "$WARMUP") + $(secs "$DURATION") + 60))

# wait_profile: waits for the profile being fetched, if any (the only
# background job besides the servers and clients, whose pids are known).
wait_profile() {
	local j
	for j in $(jobs -p); do
		[[ " ${PIDS[*]} " == *" $j "* ]] || wait "$j" || true
	done
}

# phase CONSOLES MODE ROUND: one measured load with CONSOLES streams open.
phase() {
	local n=$1 mode=$2 round=$3 cpid= ready=$WORK/ready-$1-$2-$3
	if ((n > 0)); then
		log "$n consoles open"
		# Started directly (not through cmd, a subshell) so that $! is its pid.
		printf '%s\n' "$BIN/liveclients -url $URL -token $TOKEN -n $n -duration ${HOLD}s -ready $ready &" >>"$COMMANDS"
		"$BIN/liveclients" -url "$URL" -token "$TOKEN" -n "$n" -duration "${HOLD}s" -ready "$ready" \
			>>"$CLIENTS" 2>>"$WORK/liveclients.log" &
		cpid=$!
		PIDS+=("$cpid")
		for _ in $(seq 1 300); do [[ -f $ready ]] && break; sleep 0.1; done
		[[ -f $ready ]] || { echo "the $n streams were not ready after 30s" >&2; exit 1; }
	fi
	local target="$n consoles" scenario
	if [[ $mode == open ]]; then
		scenario="batch ${BATCH}/req, $EVENTS_RATE events/s open loop, round $round"
		log "$scenario: $target"
		if [[ -n $PROFILE ]]; then
			# The measured window's profile: started after the warmup.
			(sleep "$(secs "$WARMUP")" && curl -fsS -H "Authorization: Bearer $TOKEN" \
				-o "$PROFILE/cpu-$n-round$round.pprof" "$URL/debug/pprof/profile?seconds=$(secs "$DURATION")") &
		fi
		cmd "$BIN/loadgen" run -url "$URL" -endpoint /v1/batch -batch "$BATCH" -rate "$REQ_RATE" -concurrency "$CONC" \
			-warmup "$WARMUP" -duration "$DURATION" -server-pid "$PID" -write-key wk_bench \
			-scenario "$scenario" -target "$target" -out "$RESULTS"
	else
		scenario="batch ${BATCH}/req, closed loop c=$CONC, round $round"
		log "$scenario: $target"
		cmd "$BIN/loadgen" run -url "$URL" -endpoint /v1/batch -batch "$BATCH" -concurrency "$CONC" \
			-warmup "$WARMUP" -duration "$DURATION" -server-pid "$PID" -write-key wk_bench \
			-scenario "$scenario" -target "$target" -out "$RESULTS"
	fi
	wait_profile
	if [[ -n $cpid ]]; then
		kill -TERM "$cpid"
		wait "$cpid" || true
		# Tag the clients' line with the phase it belongs to.
		tail -1 "$CLIENTS" | jq -c --arg s "$scenario" '. + {scenario: $s}' >>"$CLIENTS.tagged"
	fi
	settle "$PID"
}

# ABBA: odd rounds measure 0 consoles first, even rounds the consoles
# first, so that what drifts during a run (the de-duplication index and
# the stream growing, the page cache) weighs on both sides alike.
for r in $(seq 1 "$ROUNDS"); do
	for mode in open closed; do
		if [ $((r % 2)) -eq 1 ]; then
			phase 0 "$mode" "$r"
			phase "$CONSOLES" "$mode" "$r"
		else
			phase "$CONSOLES" "$mode" "$r"
			phase 0 "$mode" "$r"
		fi
	done
done
UPTIME_AFTER=$(uptime)
kill -TERM "$PID"
wait "$PID" || true

log "report"
# avg MODE N FIELD: the mean of FIELD over MODE's phases with N consoles.
avg() {
	jq -s --arg m "$1" --arg t "$2 consoles" --arg f "$3" \
		'[.[] | select(.target == $t and .mode == $m) | .[$f]] | add / length' "$RESULTS"
}
# LIVE_FUNCS: the functions of Live events' work, as a pprof -focus regexp.
LIVE_FUNCS='signalConsumers|liveHub|\(\*Server\)\.liveEvents|getDirectRequest|processDirectGetRequest|jsStreamInfoRequest|jsConsumerCreateRequest|jsConsumerDeleteRequest|jsConsumerInfoRequest|ReadEventRange|LastEventSeq|\(\*Engine\)\.read$|orderedConsumer'
# seconds: a pprof duration on stdin (1.5s, 40ms) in seconds; 0 for none.
seconds() { awk '/ms$/ { v = $0 + 0; s = v / 1000 } /[0-9]s$/ { s = $0 + 0 } END { print s + 0 }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f%%", (b - a) / a * 100 }'; }
CPU0=$(avg open 0 server_cpu_us_per_event)
CPU20=$(avg open "$CONSOLES" server_cpu_us_per_event)
EPS0=$(avg closed 0 events_per_s)
EPS20=$(avg closed "$CONSOLES" events_per_s)
OPEN0=$(avg open 0 events_per_s)
OPEN20=$(avg open "$CONSOLES" events_per_s)
CPU_COST=$(pct "$CPU0" "$CPU20")
EPS_COST=$(pct "$EPS0" "$EPS20")
mkdir -p "$(dirname "$OUT")"
{
	echo "# Live events benchmark, $DATE"
	echo
	echo "What $CONSOLES consoles open on Live events cost ingest: one capstan, engine.sync: always,"
	echo "measured with 0 and with $CONSOLES \`GET /admin/api/live\` streams open, alternating, $ROUNDS round(s)."
	echo
	echo "## Goal: $CONSOLES consoles cost ingest at most 5% at $EVENTS_RATE events/s"
	echo
	echo "| | 0 consoles | $CONSOLES consoles | change |"
	echo "|---|---:|---:|---:|"
	printf '| open loop %s events/s: achieved events/s | %.0f | %.0f | %s |\n' "$EVENTS_RATE" "$OPEN0" "$OPEN20" "$(pct "$OPEN0" "$OPEN20")"
	printf '| open loop: capstan CPU µs per event | %.1f | %.1f | %s |\n' "$CPU0" "$CPU20" "$CPU_COST"
	printf '| closed loop c=%s: events/s | %.0f | %.0f | %s |\n' "$CONC" "$EPS0" "$EPS20" "$EPS_COST"
	echo
	echo "## Every phase"
	echo
	echo "| scenario | consoles | events/s | p50 ms | p99 ms | capstan cores | capstan µs/event | errors |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|"
	jq -r '"| \(.scenario) | \(.target) | \(.events_per_s | floor) | \(.p50_ms * 100 | round / 100) | \(.p99_ms * 100 | round / 100) | \(.server_cpu_cores * 100 | round / 100) | \(.server_cpu_us_per_event * 10 | round / 10) | \(.errors) |"' "$RESULTS"
	echo
	echo "## The consoles"
	echo
	echo "What the $CONSOLES streams received while the load ran (each is sent at most 50 events/s; the"
	echo "rest is sampled away, counted and reported to it as skipped):"
	echo
	echo "| scenario | streams ready | events received | skipped (sampled) | errors |"
	echo "|---|---:|---:|---:|---:|"
	if [[ -f $CLIENTS.tagged ]]; then
		jq -r '"| \(.scenario) | \(.connected)/\(.clients) | \(.received) | \(.skipped) | \(.errors) |"' "$CLIENTS.tagged"
	fi
	echo
	if [[ -n $PROFILE ]]; then
		echo "## Live events' share of capstan's CPU (profiles)"
		echo
		echo "The CPU samples of each open-loop phase's profile in Live events' work (the shared reader, the"
		echo "streams, the server's answers to its requests, and the signals to the consumers reads leave),"
		echo "which other load on the machine disturbs far less than CPU per event:"
		echo
		echo "| profile | capstan CPU s | Live events CPU s | share |"
		echo "|---|---:|---:|---:|"
		for f in "$PROFILE"/cpu-*.pprof; do
			total=$(go tool pprof -top "$f" 2>/dev/null | sed -n 's/.*Total samples = \([0-9.]*m\?s\).*/\1/p' | seconds)
			live=$(go tool pprof -top -focus "$LIVE_FUNCS" "$f" 2>/dev/null | sed -n 's/^Showing nodes accounting for \([0-9.]*m\?s\).*/\1/p' | seconds)
			awk -v f="$(basename "$f" .pprof)" -v t="${total:-0}" -v l="${live:-0}" \
				'BEGIN { printf "| %s | %.2f | %.2f | %.1f%% |\n", f, t, l, (t > 0 ? l / t * 100 : 0) }'
		done
		echo
	fi
	echo "## Machine"
	echo
	machine
	echo "- Load before: \`$UPTIME_BEFORE\`"
	echo "- Load after: \`$UPTIME_AFTER\`"
	echo
	echo "## Commands"
	echo
	echo '```sh'
	invocation bench/live.sh
	cat "$COMMANDS"
	echo '```'
} >"$OUT"
log "wrote $OUT"
cat "$OUT"

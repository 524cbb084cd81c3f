#!/usr/bin/env bash
# bench/latency.sh — single-event latency (issue 22; see bench/README.md).
#
# One event per request (POST /v1/track), open loop at a fixed rate (2,000
# requests/s): request i is due at start + i/rate whatever the server does,
# and its latency is taken from that due time, so queueing anywhere (server,
# network, loadgen itself) shows in full (no coordinated omission). Each round
# loads the null server (the floor of the machine), then capstan
# (engine.sync: always, fresh data dir), and optionally a second capstan
# variant B (another binary or another engine config), A and B in alternating
# order, so that both see the same machine. Per run it reports p50, p95, p99,
# p99.9 and max, loadgen's own send lag, CPU per event, and capstan's own view
# from /metrics (requests and store commits under 5 ms, events per commit).
# Writes bench/results/latency-<date>.md.
#
# Knobs (environment): BENCH_RATE (2000), BENCH_DURATION (20s), BENCH_WARMUP
# (3s), BENCH_ROUNDS (3), BENCH_OPEN_CONCURRENCY (256), BENCH_NULL (1; 0 skips
# the null server), BENCH_DISK (1; 0 skips the disk's floor: bench/fsyncfloor,
# records of a single-event segment's size appended and fsynced at the same
# rate in the work directory, one sync at a time, nothing else of capstan;
# its latency is from each record's due time to the end of its fsync), BENCH_CLIENT (loadgen's HTTP client: raw, the default, or
# std, net/http's Transport as ingest.sh uses it; also the null server's), BENCH_CAPSTAN / BENCH_LABEL (variant A's prebuilt binary
# and its name; default: built from the tree), BENCH_ENGINE (YAML lines added
# under variant A's `engine:`, e.g. "group_commit: {inflight: 2}"),
# BENCH_CAPSTAN_B / BENCH_LABEL_B / BENCH_ENGINE_B / BENCH_CLIENT_B (variant
# B: it runs when any of them is set; binary, engine lines and client default
# to A's),
# BENCH_OUT, BENCH_KEEP, BENCH_WORK as for ingest.sh.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
abspaths
if [[ -n ${BENCH_CAPSTAN_B:-} ]]; then BENCH_CAPSTAN_B=$(realpath -m -- "$BENCH_CAPSTAN_B"); fi
cd "$(dirname "$0")/.."
ROOT=$PWD
RATE=${BENCH_RATE:-2000}
DURATION=${BENCH_DURATION:-20s}
WARMUP=${BENCH_WARMUP:-3s}
ROUNDS=${BENCH_ROUNDS:-3}
OPEN_CONC=${BENCH_OPEN_CONCURRENCY:-256}
WITH_NULL=${BENCH_NULL:-1}
WITH_DISK=${BENCH_DISK:-1}
CLIENT=${BENCH_CLIENT:-raw}
CLIENT_A=$CLIENT
CLIENT_B=${BENCH_CLIENT_B:-$CLIENT}
for c in "$CLIENT_A" "$CLIENT_B"; do
	[[ $c == raw || $c == std ]] || { echo "BENCH_CLIENT and BENCH_CLIENT_B must be raw or std" >&2; exit 2; }
done
DATE=$(date -u +%Y-%m-%d)
OUT=${BENCH_OUT:-bench/results/latency-$DATE.md}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_ROUNDS must be a positive integer" >&2; exit 2; }
WORK=$(workdir capstan-latency)
BIN=$WORK/bin
RESULTS=$WORK/results.jsonl
COMMANDS=$WORK/commands.txt
for f in "$RESULTS" "$COMMANDS"; do : >"$f"; done

log "build"
mkdir -p "$BIN"
capstan_binary
CAPSTAN_A=$CAPSTAN
LABEL_A=${BENCH_LABEL:-tree}
[[ -n ${BENCH_CAPSTAN:-} ]] || LABEL_A="tree ($(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
VARIANTS=(A)
if [[ -n ${BENCH_CAPSTAN_B:-} || -n ${BENCH_ENGINE_B:-} || -n ${BENCH_CLIENT_B:-} ]]; then
	CAPSTAN_B=${BENCH_CAPSTAN_B:-$CAPSTAN_A}
	[[ -f $CAPSTAN_B && -x $CAPSTAN_B ]] || { echo "BENCH_CAPSTAN_B=$CAPSTAN_B is not an executable file" >&2; exit 2; }
	LABEL_B=${BENCH_LABEL_B:-${BENCH_CAPSTAN_B:+$(basename "$CAPSTAN_B")}}
	LABEL_B=${LABEL_B:-$LABEL_A}
	VARIANTS=(A B)
	if [[ -n ${BENCH_CAPSTAN_B:-} ]]; then
		printf '# variant B: the prebuilt %s (%s), from BENCH_CAPSTAN_B\n' "$CAPSTAN_B" "$(binary_label "$CAPSTAN_B" "$LABEL_B")" >>"$COMMANDS"
	fi
fi
cmd go build -o "$BIN/loadgen" ./bench/loadgen
cmd go build -o "$BIN/nullserver" ./bench/nullserver
cmd go build -o "$BIN/fsyncfloor" ./bench/fsyncfloor

# name V: how the report names variant V (its label and engine lines).
name() {
	local bin=CAPSTAN_$1 lab=LABEL_$1 eng=BENCH_ENGINE
	[[ $1 == A ]] || eng=BENCH_ENGINE_B
	local s="$1: ${!lab}"
	[[ -z ${!eng:-} ]] || s+=", engine: ${!eng//$'\n'/; }"
	local cl=CLIENT_$1
	s+=", loadgen -client ${!cl}"
	printf '%s' "$s"
}

UPTIME_BEFORE=$(uptime)
log "machine load before: $UPTIME_BEFORE"

# track TARGET URL PID CLIENT: one open-loop run.
track() {
	cmd "$BIN/loadgen" run -url "$2" -endpoint /v1/track -rate "$RATE" -concurrency "$OPEN_CONC" \
		-warmup "$WARMUP" -duration "$DURATION" -server-pid "$3" -client "$4" \
		-scenario "track $RATE req/s" -target "$1" -out "$RESULTS"
}

# scrape URL FILE: capstan's /metrics into FILE (whole run, warm-up
# included; empty when it cannot be read).
scrape() {
	curl -fsS "$1/metrics" >"$2" || : >"$2"
}
view() { # view METRICS_FILE: capstan's own figures, as table cells
	awk '
		function frac(a, n) { return n ? sprintf("%.2f%%", 100 * a / n) : "?" }
		function mean(s, n) { return n ? sprintf("%.2f", 1000 * s / n) : "?" }
		/^capstan_ingest_request_duration_seconds_bucket\{endpoint="track",le="0.005"\}/ { r5 = $2 }
		/^capstan_ingest_request_duration_seconds_sum\{endpoint="track"\}/ { rs = $2 }
		/^capstan_ingest_request_duration_seconds_count\{endpoint="track"\}/ { rn = $2 }
		/^capstan_ingest_store_wait_seconds_bucket\{endpoint="track",le="0.005"\}/ { w5 = $2 }
		/^capstan_ingest_store_wait_seconds_sum\{endpoint="track"\}/ { ws = $2 }
		/^capstan_ingest_store_wait_seconds_count\{endpoint="track"\}/ { wn = $2 }
		/^capstan_store_commit_duration_seconds_bucket\{le="0.005"\}/ { c5 = $2 }
		/^capstan_store_commit_duration_seconds_sum / { cs = $2 }
		/^capstan_store_commit_duration_seconds_count / { cn = $2 }
		/^capstan_store_sync_duration_seconds_bucket\{le="0.005"\}/ { y5 = $2 }
		/^capstan_store_sync_duration_seconds_sum / { ys = $2 }
		/^capstan_store_sync_duration_seconds_count / { yn = $2 }
		/^capstan_store_queue_wait_seconds_bucket\{le="0.005"\}/ { q5 = $2 }
		/^capstan_store_queue_wait_seconds_sum / { qs = $2 }
		/^capstan_store_queue_wait_seconds_count / { qn = $2 }
		/^capstan_store_commit_records_sum / { es = $2 }
		/^capstan_store_commit_records_count / { ec = $2 }
		END {
			printf "%s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s", frac(r5, rn), frac(w5, wn), frac(q5, qn), frac(c5, cn), frac(y5, yn),
				mean(rs, rn), mean(ws, wn), mean(qs, qn), mean(cs, cn), mean(ys, yn), (ec ? sprintf("%.2f", es / ec) : "?"), (wn ? sprintf("%.2f", wn / cn) : "?")
		}' "$1"
}

# run_capstan V ROUND: start variant V on a fresh data dir, load it, stop it.
VIEWS=$WORK/views.txt
: >"$VIEWS"
run_capstan() {
	local v=$1 round=$2 dir=$WORK/$1-$2 bin=CAPSTAN_$1 eng=BENCH_ENGINE
	[[ $v == A ]] || eng=BENCH_ENGINE_B
	mkdir -p "$dir"
	{
		printf 'server:\n  addr: "127.0.0.1:0"\n  data_dir: %s/data\nengine:\n  sync: always\n' "$dir"
		if [[ -n ${!eng:-} ]]; then printf '%s\n' "${!eng}" | sed 's/^/  /'; fi
		printf 'sources:\n  - name: bench\n    write_key: wk_bench\n    rate_limit: {disabled: true}\n'
	} >"$dir/capstan.yaml"
	log "round $round: capstan $(name "$v")"
	"${!bin}" serve --config "$dir/capstan.yaml" 2>"$dir/capstan.log" &
	local pid=$!
	PIDS+=("$pid")
	printf '%s\n' "${!bin} serve --config $dir/capstan.yaml &" >>"$COMMANDS"
	local url
	url=$(wait_url "$dir/capstan.log" 'msg="capstan listening" addr=' "$pid")
	settle "$pid"
	local cl=CLIENT_$v
	track "capstan $v" "$url" "$pid" "${!cl}"
	scrape "$url" "$dir/metrics.txt"
	printf '%s\t%s\t%s\n' "$v" "$round" "$(view "$dir/metrics.txt")" >>"$VIEWS"
	kill -TERM "$pid"
	wait "$pid" || true
	rm -rf "$dir/data"
}

for round in $(seq 1 "$ROUNDS"); do
	if [[ $WITH_NULL == 1 ]]; then
		log "round $round: null server"
		"$BIN/nullserver" -addr 127.0.0.1:0 2>"$WORK/nullserver-$round.log" &
		NULL_PID=$!
		PIDS+=("$NULL_PID")
		printf '%s\n' "$BIN/nullserver -addr 127.0.0.1:0 &" >>"$COMMANDS"
		NULL_URL=$(wait_url "$WORK/nullserver-$round.log" 'msg="nullserver listening" addr=' "$NULL_PID")
		track null "$NULL_URL" "$NULL_PID" "$CLIENT_A"
		kill -TERM "$NULL_PID"
		wait "$NULL_PID" || true
	fi
	if [[ $WITH_DISK == 1 ]]; then
		log "round $round: the disk's floor (fsync)"
		mkdir -p "$WORK/disk"
		cmd "$BIN/fsyncfloor" -dir "$WORK/disk" -rate "$RATE" -duration "$DURATION" -size 1080 -target disk -out "$RESULTS"
	fi
	order=("${VARIANTS[@]}")
	if ((${#VARIANTS[@]} == 2 && round % 2 == 0)); then order=(B A); fi
	for v in "${order[@]}"; do run_capstan "$v" "$round"; done
done

UPTIME_AFTER=$(uptime)

# --- report ----------------------------------------------------------------
log "report: $OUT"
mkdir -p "$(dirname "$OUT")"
# Rows in run order, with round numbers and capstan's own view joined on.
ROWS=$(jq -rs --rawfile views "$VIEWS" '
	($views | split("\n") | map(select(. != "") | split("\t")) | map({key: (.[0] + "/" + .[1]), value: .[2]}) | from_entries) as $v
	| reduce .[] as $r ({rows: [], n: {}};
		.n[$r.target] = ((.n[$r.target] // 0) + 1)
		| .rows += [$r + {round: .n[$r.target]}])
	| .rows[]
	| . as $r
	| ($r.target | ltrimstr("capstan ")) as $t
	| [$t, ($r.round | tostring),
	   ($r.p50_ms, $r.p95_ms, $r.p99_ms, $r.p999_ms, $r.max_ms | . * 100 | round / 100 | tostring),
	   ($r.send_lag_p99_ms * 100 | round / 100 | tostring),
	   ($r.requests_per_s | round | tostring), ($r.errors | tostring),
	   (if $r.server_cpu_us_per_event < 0 then "?" else ($r.server_cpu_us_per_event * 10 | round / 10 | tostring) end),
	   ($r.loadgen_cpu_cores * 100 | round / 100 | tostring),
	   (if ($r.server_runq_per_cpu // -1) < 0 then "?" else ($r.server_runq_per_cpu * 100 | round / 100 | tostring) end),
	   ($r.mean_ms * 100 | round / 100 | tostring),
	   ($v[$t + "/" + ($r.round | tostring)] // "— | — | — | — | — | — | — | — | — | — | — | —"),
	   ($r.loadavg_start | split(" ")[0])]
	| "| " + join(" | ") + " |"' "$RESULTS")
SUMMARY=$(jq -rs '
	def median: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
	def r2: . * 100 | round / 100;
	group_by(.target)[]
	| {t: (.[0].target | ltrimstr("capstan ")), p50: (map(.p50_ms) | median | r2), p95: (map(.p95_ms) | median | r2),
	   p99: (map(.p99_ms) | median | r2), p99min: (map(.p99_ms) | min | r2), p99max: (map(.p99_ms) | max | r2),
	   p999: (map(.p999_ms) | median | r2), cpu: (map(.server_cpu_us_per_event) | median * 10 | round / 10),
	   under5: (map(select(.p99_ms < 5)) | length), n: length}
	| "| \(.t) | \(.p50) | \(.p95) | \(.p99) | \(.p99min)–\(.p99max) | \(.p999) | \(.cpu) | \(.under5) of \(.n) |"' "$RESULTS")
{
	echo "# capstan single-event latency, $DATE"
	echo
	echo "Produced by \`bench/latency.sh\` (see bench/README.md, \"Single-event latency\")."
	echo "Goal (issue 22): p99 under 5 ms for single events (\`POST /v1/track\`, one event each) at $RATE requests/s, engine.sync: always."
	echo
	echo "Variants:"
	echo
	for v in "${VARIANTS[@]}"; do echo "- $(name "$v")"; done
	echo
	echo "## Summary"
	echo
	echo "Median over the rounds (ms; µs/event is capstan's or the null server's CPU per event)."
	echo "Compare variants of this report only: the machine is shared, and its load (below) moves every figure."
	echo
	echo "| target | p50 | p95 | p99 | p99 min–max | p99.9 | CPU µs/event | runs with p99 < 5 ms |"
	echo "|---|--:|--:|--:|--:|--:|--:|--:|"
	echo "$SUMMARY"
	echo
	echo "## Runs"
	echo
	echo "Open loop: $RATE requests/s on a fixed schedule (up to $OPEN_CONC connections; the null server with loadgen's \`-client $CLIENT_A\`), $WARMUP of warm-up, then $DURATION measured; latency from the scheduled send time to the full response."
	echo "\"disk\" (BENCH_DISK=1) is no server: \`bench/fsyncfloor\` appends 1,080-byte records (a single-event segment as stored in EVENTS) at the same rate to a file in the work directory, on the data directories' disk, and fsyncs them one sync at a time, each sync covering every record due by its start, in its own window of the round: the disk's state in that round; its latency is from a record's due time to the end of the fsync that covered it (its sync calls alone: \`sync_p99_ms\` in \`results.jsonl\`; \`over_5ms_bound_pct\`: the share of the time more than 5 ms before a sync's end, a lower bound of the requests over 5 ms under any commit policy)."
	echo "\"send lag p99\" is loadgen's own delay from a request's due time to handing it to its HTTP client, part of every latency."
	echo "\"server's wait for a CPU\" is the seconds the server's threads were runnable but waiting for a processor per CPU second they ran in the window (their /proc schedstat; \"?\" for the disk row and an old loadgen): near 0 on a quiet machine; above ~0.5 the machine's other load, not the server, makes the tail (session 13 measured 3-4 at load 20 on 2 CPUs)."
	echo "Then capstan's own figures, from /metrics over the whole run (warm-up included): the share of requests whose handler time (\`capstan_ingest_request_duration_seconds\`), store wait (\`capstan_ingest_store_wait_seconds\`: encoding, group-commit queue, publish, acknowledgement, fsync) and queue wait (\`capstan_store_queue_wait_seconds\`: until their commit starts, i.e. a free commit loop) were under 5 ms, the same for commits (\`capstan_store_commit_duration_seconds\`: one group's publish, acknowledgement and sync) and their sync alone (\`capstan_store_sync_duration_seconds\`: its fsync and the one running when it asked), the mean of each, events per commit and requests per commit (queue wait and sync: \"?\" for a binary without them)."
	echo "Where the time goes, from the means: client mean − handler mean = outside the handler (loadgen, loopback TCP, the HTTP server reading and writing, scheduling); handler − store wait = the handler's own work; store wait − queue wait − commit ≈ the handler's wake-up after its commit; commit − sync = publish and acknowledgement; sync − the disk's own fsync time = waiting for the fsync another commit was running."
	echo
	echo "| target | round | p50 | p95 | p99 | p99.9 | max | send lag p99 | req/s | errors | server CPU µs/event | loadgen CPU (cores) | server's wait for a CPU (s per CPU-s) | client mean | handler < 5 ms | store wait < 5 ms | queue wait < 5 ms | commit < 5 ms | sync < 5 ms | handler mean | store wait mean | queue wait mean | commit mean | sync mean | events/commit | requests/commit | load (1 min) |"
	echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
	echo "$ROWS"
	echo
	echo "## Machine"
	echo
	machine
	echo
	echo "Load (the machine is shared with other engineers' builds and tests):"
	echo
	echo "- before: \`$UPTIME_BEFORE\`"
	echo "- after: \`$UPTIME_AFTER\`"
	echo
	echo "## Commands"
	echo
	echo "Run from the repository root as \`$(invocation bench/latency.sh)\`; it ran:"
	echo
	echo '```sh'
	sed "s|$WORK|\$WORK|g" "$COMMANDS" | awk '!seen[$0]++'
	echo '```'
	echo
	echo "where \`\$WORK\` was $(workdesc); each capstan ran on a fresh data directory with this capstan.yaml (variant A, round 1):"
	echo
	echo '```yaml'
	sed "s|$WORK|\$WORK|g" "$WORK/A-1/capstan.yaml"
	echo '```'
} >"$OUT"
cat "$OUT"

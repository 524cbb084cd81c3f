#!/usr/bin/env bash
# bench/memory.sh — whole-process memory of a real `capstan serve` under
# many new visitors (see bench/README.md, "Whole-process memory").
#
# The goal (issue 22): resident memory under 1 GB after 50 million events
# inside a 24 h window. bench/dedup.sh measures the de-duplication index
# alone; this drives the whole process: HTTP ingest, segments in the
# embedded engine (engine.sync: always, the default), the on-disk index,
# the identity graph and, by default, delivery to a LinkedIn destination on
# the sandbox (`capstan sandbox`), with its sent-conversion record.
#
# It builds capstan and bench/loadgen, starts the sandbox and capstan
# (default config but a loopback port, a temporary data directory and no
# per-source rate limit), then sends /v1/batch requests of 100 events, every
# event convertible (li_fat_id or email) and from a person never seen
# before (loadgen -new-people: new anonymousId and userId), in chunks of
# BENCH_MEM_EVERY events (one `loadgen run -max-requests` each, closed loop).
# After each chunk it samples capstan's VmRSS, VmHWM and RssAnon
# (/proc/PID/status), the data directory's size and the disk's free space,
# and, with the destination, the conversions the sandbox accepted. Once
# every event is sent it waits for delivery to catch up (sampling every 30
# s), counts the events in EVENTS through the read path (`loadgen stream`,
# capstan still running) and compares with the acknowledged ones.
# Writes bench/results/memory-<date>.md.
#
# Why the destination by default: a stored convertible event costs delivery
# memory too (the identity graph's profiles, the sent-conversion record of
# seven days, the consumer's state); without it the figure would leave out
# what a real install pays. BENCH_DESTINATION=none measures ingest and the
# index alone (faster: no sandbox or delivery competes for the two cores).
#
# Disk: the data directory took 1.7 kB per event of this load with the
# destination and 1.05 kB without (bench/results/memory-2026-12-06-check-*.md):
# about 86 GB, or 53 GB, for 50 million events. The run stops early
# (reported) when the disk's free space falls under BENCH_MEM_MIN_FREE_GB.
#
# Knobs (environment): BENCH_MEM_EVENTS (50000000), BENCH_MEM_EVERY
# (1000000: events per chunk and sample), BENCH_DESTINATION (sandbox or
# none; default sandbox), BENCH_CONCURRENCY (32), BENCH_MEM_MIN_FREE_GB (5),
# BENCH_DRAIN_TIMEOUT (seconds to wait for delivery after the load, 3600),
# BENCH_MEM_STREAM_TIMEOUT (seconds the store check, `loadgen stream
# -timeout`, may take to count EVENTS; default one second per 20,000
# events, at least 300: 2500 s for 50 million; the read took more than
# loadgen's default 5 minutes for 50 M events on a loaded machine),
# BENCH_GOMEMLIMIT (GOMEMLIMIT for capstan, e.g. 900MiB; default unset:
# capstan's own GC setting, GOGC 400 with a soft limit of 3/4 of the RAM,
# which lets the heap grow to five times what is live),
# BENCH_MEM_CGROUP (a memory limit in bytes, e.g. 1073741824: capstan runs
# in a memory cgroup of that limit created for the run, v2 or v1, as in a
# container; GOMEMLIMIT is then left unset, so capstan sets its own soft
# limit from the cgroup's; the report gives that limit, the cgroup's peak
# usage, which counts the page cache too, and its OOM kills; needs a
# writable /sys/fs/cgroup, as root),
# BENCH_IDENTITY_MEMORY (identity.memory_bytes in the generated config,
# e.g. 67108864: the local identity store's memory; default unset: the
# config's default),
# BENCH_GUARD_MEMORY (engine.guard_memory_bytes likewise: the local
# eventId guard's memory; default unset),
# BENCH_OUT (results file), BENCH_KEEP=1 keeps the work directory,
# BENCH_WORK, BENCH_CAPSTAN, BENCH_LABEL (as in bench/ingest.sh).
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
abspaths
cd "$(dirname "$0")/.."
ROOT=$PWD
TOTAL=${BENCH_MEM_EVENTS:-50000000}
EVERY=${BENCH_MEM_EVERY:-1000000}
DEST=${BENCH_DESTINATION:-sandbox}
CONC=${BENCH_CONCURRENCY:-32}
MIN_FREE_GB=${BENCH_MEM_MIN_FREE_GB:-5}
DRAIN_TIMEOUT=${BENCH_DRAIN_TIMEOUT:-3600}
STREAM_TIMEOUT=${BENCH_MEM_STREAM_TIMEOUT:-}
ID_MEM=${BENCH_IDENTITY_MEMORY:-}
GUARD_MEM=${BENCH_GUARD_MEMORY:-}
PER_REQ=100
DATE=$(date -u +%Y-%m-%d)
OUT=${BENCH_OUT:-bench/results/memory-$DATE.md}
[[ $TOTAL =~ ^[1-9][0-9]*$ && $EVERY =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_MEM_EVENTS and BENCH_MEM_EVERY must be positive integers" >&2; exit 2; }
if [[ -z $STREAM_TIMEOUT ]]; then
	STREAM_TIMEOUT=$((TOTAL / 20000 > 300 ? TOTAL / 20000 : 300))
fi
[[ $STREAM_TIMEOUT =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_MEM_STREAM_TIMEOUT must be a positive number of seconds" >&2; exit 2; }
[[ -z $ID_MEM || $ID_MEM =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_IDENTITY_MEMORY must be a size in bytes, got $ID_MEM" >&2; exit 2; }
[[ -z $GUARD_MEM || $GUARD_MEM =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_GUARD_MEMORY must be a size in bytes, got $GUARD_MEM" >&2; exit 2; }
((EVERY % PER_REQ == 0)) || { echo "BENCH_MEM_EVERY must be a multiple of $PER_REQ" >&2; exit 2; }
case $DEST in sandbox | none) ;; *) echo "BENCH_DESTINATION must be sandbox or none, got $DEST" >&2; exit 2 ;; esac
WORK=$(workdir capstan-mem-bench)
BIN=$WORK/bin
DIR=$WORK/run
RESULTS=$WORK/results.jsonl
SAMPLES=$WORK/samples.md
COMMANDS=$WORK/commands.txt
mkdir -p "$BIN" "$DIR"
for f in "$RESULTS" "$SAMPLES" "$COMMANDS"; do : >"$f"; done

log "build"
capstan_binary
cmd go build -o "$BIN/loadgen" ./bench/loadgen

UPTIME_BEFORE=$(uptime)
log "machine load before: $UPTIME_BEFORE; disk: $(df -h --output=avail "$WORK" | tail -1 | tr -d ' ') free"

SB=
SBURL=
if [[ $DEST == sandbox ]]; then
	"$CAPSTAN" sandbox --addr 127.0.0.1:0 --token bench-token --ad-account 512345678 \
		--rate-per-minute -1 --rate-per-day -1 --log-level warn \
		>"$DIR/sandbox.out" 2>"$DIR/sandbox.log" &
	SB=$!
	PIDS+=("$SB")
	printf '%s\n' "$CAPSTAN sandbox --addr 127.0.0.1:0 --token bench-token --ad-account 512345678 --rate-per-minute -1 --rate-per-day -1 --log-level warn &" >>"$COMMANDS"
	SBURL=$(wait_url "$DIR/sandbox.out" 'LinkedIn API at ' "$SB")
fi

ADMIN_TOKEN=$(head -c24 /dev/urandom | base64 | tr -d '/+=')
cat >"$DIR/capstan.yaml" <<EOF
server:
  addr: "127.0.0.1:0"
  data_dir: $DIR/data
  secret_key: $(head -c32 /dev/urandom | base64)
  admin_token: $ADMIN_TOKEN   # for the heap profile at the end
  pprof: true
sources:
  - name: bench
    write_key: wk_bench
    rate_limit: {disabled: true}   # measure memory at capacity, not the per-source limit
EOF
if [[ -n $ID_MEM ]]; then
	cat >>"$DIR/capstan.yaml" <<EOF
identity:
  memory_bytes: $ID_MEM   # BENCH_IDENTITY_MEMORY
EOF
fi
if [[ -n $GUARD_MEM ]]; then
	cat >>"$DIR/capstan.yaml" <<EOF
engine:
  guard_memory_bytes: $GUARD_MEM   # BENCH_GUARD_MEMORY
EOF
fi
if [[ $DEST == sandbox ]]; then
	cat >>"$DIR/capstan.yaml" <<EOF
destinations:
  - name: linkedin
    api_base: $SBURL
    ad_account: 512345678
    rate_limit: {per_minute: 100000, per_day: 100000000}
    auth: {access_token: bench-token, token_url: "$SBURL/oauth/v2/accessToken"}
    mappings:
      - name: Sign Up
        trigger: 'type = "track"'
        conversion_rule: {create: {name: "Bench (capstan)", type: SIGN_UP}}
EOF
fi

# A memory cgroup for capstan (BENCH_MEM_CGROUP): CG is its directory,
# CGV its version; cg_file NAME reads one of its files.
CG_LIMIT=${BENCH_MEM_CGROUP:-}
CG="" CGV=""
if [[ -n $CG_LIMIT ]]; then
	[[ $CG_LIMIT =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_MEM_CGROUP must be a limit in bytes, got $CG_LIMIT" >&2; exit 2; }
	[[ -z ${BENCH_GOMEMLIMIT:-} ]] || { echo "BENCH_MEM_CGROUP and BENCH_GOMEMLIMIT exclude each other: in a cgroup capstan sets its own limit" >&2; exit 2; }
	name=capstan-mem-bench-$$
	if grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
		CG=/sys/fs/cgroup/$name CGV=2
	else
		CG=/sys/fs/cgroup/memory/$name CGV=1
	fi
	mkdir "$CG" || { echo "cannot create the memory cgroup $CG (BENCH_MEM_CGROUP needs a writable /sys/fs/cgroup)" >&2; exit 2; }
	if ((CGV == 2)); then echo "$CG_LIMIT" >"$CG/memory.max"; else echo "$CG_LIMIT" >"$CG/memory.limit_in_bytes"; fi
	# Removed at exit, once capstan has left it.
	trap 'cleanup; rmdir "$CG" 2>/dev/null || true' EXIT
fi
cg_file() { cat "$CG/$1" 2>/dev/null || echo "?"; }
# cg_ooms: the OOM kills in capstan's cgroup.
cg_ooms() {
	if ((CGV == 2)); then awk '$1 == "oom_kill" { print $2 }' "$CG/memory.events"; else awk '$1 == "oom_kill" { print $2 }' "$CG/memory.oom_control"; fi
}

log "capstan serve"
GOMEM=${BENCH_GOMEMLIMIT:-}
# run_capstan runs capstan in place of the (background) shell that calls
# it, so that $! is capstan's pid; in the cgroup: a shell joins it, then
# becomes capstan.
run_capstan() {
	if [[ -n $CG ]]; then
		exec sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$CG" "$@"
	else
		exec "$@"
	fi
}
if [[ -n $GOMEM ]]; then
	GOMEMLIMIT=$GOMEM run_capstan "$CAPSTAN" serve --config "$DIR/capstan.yaml" 2>"$DIR/capstan.log" &
else
	run_capstan "$CAPSTAN" serve --config "$DIR/capstan.yaml" 2>"$DIR/capstan.log" &
fi
CP=$!
PIDS+=("$CP")
if [[ -n $CG ]]; then
	printf '%s\n' "mkdir $CG; echo $CG_LIMIT >$CG/$( ((CGV == 2)) && echo memory.max || echo memory.limit_in_bytes)   # cgroup v$CGV" >>"$COMMANDS"
	printf '%s\n' "sh -c 'echo \$\$ >$CG/cgroup.procs && exec $CAPSTAN serve --config $DIR/capstan.yaml' &" >>"$COMMANDS"
else
	printf '%s\n' "${GOMEM:+GOMEMLIMIT=$GOMEM }$CAPSTAN serve --config $DIR/capstan.yaml &" >>"$COMMANDS"
fi
URL=$(wait_url "$DIR/capstan.log" 'msg="capstan listening" addr=' "$CP")
# The Go soft memory limit capstan runs with (its own, or GOMEMLIMIT).
GOLIMIT=$(curl -fsS -m 10 "$URL/metrics" 2>/dev/null | awk '$1 == "go_gc_gomemlimit_bytes" { printf "%.0f MiB", $2 / 1048576 }')

# status FIELD: capstan's /proc status field in MB.
status() { awk -v f="$1:" '$1 == f { printf "%.0f", $2 / 1024 }' "/proc/$CP/status"; }
# accepted: conversions the sandbox accepted ("-" without it).
accepted() {
	[[ -n $SBURL ]] || { echo -; return; }
	curl -fsS "$SBURL/_sandbox/counters" | jq -r '.accepted // "?"' 2>/dev/null || echo "?"
}
START=$(date +%s)
ACKED=0
# heap: the Go heap allocated (live and not yet collected), MB.
heap() {
	curl -fsS -m 10 "$URL/metrics" 2>/dev/null | awk '$1 == "go_memstats_heap_alloc_bytes" { printf "%.0f", $2 / 1048576 }' || echo "?"
}
# sample WHAT: one row of the samples table.
sample() {
	local du free cpu
	# du exits 1 when a file it listed is gone when it stats it (the
	# stores' compactions delete files all along) but still prints the
	# total: under pipefail and set -e that used to end the run silently.
	du=$(du -sm "$DIR/data" 2>/dev/null | cut -f1) || true
	free=$(df -BG --output=avail "$WORK" | tail -1 | tr -dc 0-9)
	cpu=$(awk '{ printf "%.0f", ($14 + $15) / 100 }' "/proc/$CP/stat")
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$(($(date +%s) - START))" "$ACKED" "$(accepted)" \
		"$(status VmRSS)" "$(status VmHWM)" "$(status RssAnon)" "$(heap)" "$du" "$free" "$cpu" | tee -a "$SAMPLES" >&2
}
sample start

STOPPED=""
chunk=0
while ((ACKED < TOTAL)); do
	chunk=$((chunk + 1))
	want=$((TOTAL - ACKED < EVERY ? TOTAL - ACKED : EVERY))
	reqs=$(((want + PER_REQ - 1) / PER_REQ))
	"$BIN/loadgen" run -url "$URL" -endpoint /v1/batch -batch "$PER_REQ" -convertible -new-people \
		-concurrency "$CONC" -warmup 0s -duration 10m -max-requests "$reqs" -server-pid "$CP" \
		-scenario "chunk $chunk" -target capstan -out "$RESULTS" 2>>"$WORK/loadgen.log"
	((chunk == 1)) && printf '%s\n' "$BIN/loadgen run -url \$URL -endpoint /v1/batch -batch $PER_REQ -convertible -new-people -concurrency $CONC -warmup 0s -duration 10m -max-requests $reqs -server-pid \$CAPSTAN_PID -out results.jsonl   # repeated until $TOTAL events" >>"$COMMANDS"
	ACKED=$(jq -s '[.[].acked_events] | add' "$RESULTS")
	sample "chunk $chunk"
	if (($(df -BG --output=avail "$WORK" | tail -1 | tr -dc 0-9) < MIN_FREE_GB)); then
		STOPPED="stopped after $ACKED events: under $MIN_FREE_GB GB free on the disk"
		log "$STOPPED"
		break
	fi
	if ! kill -0 "$CP" 2>/dev/null; then
		STOPPED="capstan exited after $ACKED events (see capstan.log)"
		log "$STOPPED"
		break
	fi
done
LOAD_END=$(($(date +%s) - START))

DRAINED="-"
if [[ -n $SBURL && -z $STOPPED ]]; then
	log "waiting for delivery (up to ${DRAIN_TIMEOUT}s)"
	DRAINED="no (timeout)"
	t0=$(date +%s) last=0
	while (($(date +%s) - t0 < DRAIN_TIMEOUT)); do
		a=$(accepted)
		if [[ $a =~ ^[0-9]+$ ]] && ((a >= ACKED)); then
			DRAINED="yes, after $(($(date +%s) - t0)) s"
			break
		fi
		sleep 5
		if (($(date +%s) - last >= 30)); then
			sample delivery
			last=$(date +%s)
		fi
	done
	sample delivered
fi

log "store check (up to ${STREAM_TIMEOUT}s)"
STORED=$(cmd "$BIN/loadgen" stream -engine "$DIR/data/engine.json" -timeout "${STREAM_TIMEOUT}s" | jq .events) || STORED=error
sample end
VERDICT=FAIL
[[ $STORED == "$ACKED" ]] && VERDICT=OK
ERRORS=$(jq -s '[.[].errors] | add' "$RESULTS")
RATE=$(awk -v n="$ACKED" -v s="$LOAD_END" 'BEGIN { if (s > 0) printf "%.0f", n / s; else print "?" }')
HWM=$(status VmHWM)
RSS=$(status VmRSS)
DU=$(du -sb "$DIR/data" 2>/dev/null | cut -f1) || true # see sample
BPE=$(awk -v b="$DU" -v n="$ACKED" 'BEGIN { if (n > 0) printf "%.0f", b / n; else print "?" }')
# Where the memory is: the Go heap at the end (the embedded NATS server
# runs in the process, so its memory is in it too).
HEAPTOP=$(curl -fsS -H "Authorization: Bearer $ADMIN_TOKEN" -o "$WORK/heap.pb.gz" "$URL/debug/pprof/heap" &&
	go tool pprof -top -inuse_space -nodecount 25 "$WORK/heap.pb.gz" 2>/dev/null | sed -n '1,35p') || HEAPTOP="(no heap profile)"
grep -E 'level=(WARN|ERROR)' "$DIR/capstan.log" | sed -E 's/^time=[^ ]+ //; s/ (event_pos|seq|covered|first|held_events|after|pending|message_id|attempt|wait)=[^ ]+//g' | sort | uniq -c | sort -rn | head -20 | sed 's/^/    /' >"$WORK/warnings.txt" || true
CG_PEAK="-" CG_OOMS="-"
if [[ -n $CG ]]; then
	CG_PEAK=$(cg_file "$( ((CGV == 2)) && echo memory.peak || echo memory.max_usage_in_bytes)")
	[[ $CG_PEAK =~ ^[0-9]+$ ]] && CG_PEAK=$((CG_PEAK / 1048576))
	CG_OOMS=$(cg_ooms || echo "?")
	CG_OOMS=${CG_OOMS:-0}
fi
kill -TERM "$CP" ${SB:+"$SB"}
wait "$CP" || true
[[ -n $SB ]] && { wait "$SB" || true; }
UPTIME_AFTER=$(uptime)

GOAL=$(awk -v h="$HWM" -v n="$ACKED" -v t="$TOTAL" 'BEGIN {
	if (n < 50000000) { print "**not measured** (" n " of the goal'"'"'s 50,000,000 events" (n < t ? ", the run stopped early" : "") "); VmHWM " h " MB at the end"; exit }
	print (h < 1024 ? "**met**" : "**NOT met**") " — VmHWM " h " MB after " n " events" }')

log "report: $OUT"
mkdir -p "$(dirname "$OUT")"
{
	echo "# capstan whole-process memory, $DATE"
	echo
	echo "Produced by \`bench/memory.sh\` (bench/README.md, \"Whole-process memory\"). capstan: $(binary_label "$CAPSTAN" "${BENCH_LABEL:-$(git describe --always --dirty 2>/dev/null)}")."
	echo
	echo "- Goal (issue 22): resident memory under 1 GB after 50 million events inside a 24 h window: $GOAL."
	echo "- Events acknowledged: $ACKED of $TOTAL (${STOPPED:-all sent}); request errors: $ERRORS; $RATE events/s over the load ($LOAD_END s)."
	echo "- Destination: $([[ $DEST == sandbox ]] && echo "LinkedIn on the sandbox (every event convertible, one Sign Up conversion per track event); delivery caught up: $DRAINED" || echo "none (ingest and the de-duplication index: nothing reads the stream)")."
	echo "- Store check: EVENTS holds $STORED events through the read path (\`loadgen stream\`), acknowledged $ACKED: **$VERDICT**."
	echo "- At the end: VmRSS $RSS MB, VmHWM $HWM MB; data directory $((DU / 1024 / 1024)) MB, **$BPE bytes per event** (EVENTS, the index and the KV buckets: identity graph, sent-conversion record)."
	echo
	echo "## Samples"
	echo
	echo "After each chunk of $EVERY events (closed loop, $CONC connections, $PER_REQ events per request, every event from a new person). MB are MiB; CPU is capstan's user+sys seconds so far."
	echo
	if [[ -n $CG ]]; then
		echo "capstan ran in a memory cgroup (v$CGV) limited to $((CG_LIMIT / 1048576)) MiB, as in a container; GOMEMLIMIT not set: capstan's own soft limit from the cgroup was ${GOLIMIT:-unknown}."
		echo "The cgroup's peak usage (it counts the page cache of the data directory's writes too, which the kernel reclaims at the limit): $CG_PEAK MiB; OOM kills in it: $CG_OOMS."
	elif [[ -n $GOMEM ]]; then
		echo "GOMEMLIMIT: $GOMEM."
	else
		echo "GOMEMLIMIT: not set (capstan's default: GOGC 400, soft limit 3/4 of the RAM; VmRSS then follows the GC's trade of memory for CPU more than what is live: see the heap profile's total)."
	fi
	echo "Go heap MB is go_memstats_heap_alloc_bytes: live objects and garbage not yet collected."
	echo
	echo "| when | s | acknowledged | accepted by the sandbox | VmRSS MB | VmHWM MB | RssAnon MB | Go heap MB | data dir MB | disk free GB | capstan CPU s |"
	echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
	cat "$SAMPLES"
	echo
	echo "## Go heap at the end"
	echo
	echo "\`go tool pprof -top -inuse_space\` of /debug/pprof/heap (server.pprof: true), taken before capstan stopped; its total is what was live at the last collection:"
	echo
	echo '```'
	echo "$HEAPTOP"
	echo '```'
	echo
	if [[ -s $WORK/warnings.txt ]]; then
		echo "capstan logged warnings/errors (count, line):"
		echo
		echo '```'
		cat "$WORK/warnings.txt"
		echo '```'
		echo
	fi
	echo "## Machine"
	echo
	machine
	echo
	echo "- before: \`$UPTIME_BEFORE\`"
	echo "- after: \`$UPTIME_AFTER\`"
	echo
	echo "## Commands"
	echo
	echo "Run from the repository root as \`$(invocation bench/memory.sh)\`; it ran:"
	echo
	echo '```sh'
	sed "s|$WORK|\$WORK|g" "$COMMANDS"
	echo '```'
	echo
	echo "where \`\$WORK\` was $(workdesc); the generated capstan.yaml was (secrets elided):"
	echo
	echo '```yaml'
	sed "s|$WORK|\$WORK|g; s|secret_key: .*|secret_key: (random)|; s|admin_token: [^ ]*|admin_token: (random)|" "$DIR/capstan.yaml"
	echo '```'
} >"$OUT"
cat "$OUT"
[[ $VERDICT == OK ]]

#!/usr/bin/env bash
# bench/cluster.sh — capstan's ingest and end-to-end throughput on a local
# three-node NATS JetStream cluster against one embedded node, in the same
# run (issue 23).
#
# Builds capstan, bench/loadgen and nats-server (from the module capstan
# embeds, github.com/nats-io/nats-server/v2 in go.mod: no download); starts
# three nats-server processes clustered on loopback (JetStream, each its own
# store, sync_interval: always), the LinkedIn sandbox (`capstan sandbox`,
# rate limits off) and BENCH_REPLICAS `capstan serve` replicas with
# engine.nats_url naming every node, engine.replicas: 3 and one LinkedIn
# destination pointing at the sandbox (the lease holder delivers); loads
# every replica at once with /v1/batch (100 convertible events a request,
# closed loop); then waits until the sandbox has accepted every acknowledged
# event. Then the same against one capstan on its embedded engine
# (engine.sync: always) and a fresh sandbox.
#
# Figures: ingest (events acknowledged per second, the loadgen table) and
# end-to-end throughput: events acknowledged ÷ seconds from the load's start
# until the sandbox accepted the last of them (delivery's sustained rate,
# the tail after the load included), with the tail's length.
#
# Knobs (environment): BENCH_DURATION (20s), BENCH_WARMUP (3s),
# BENCH_CONCURRENCY (32, split over the replicas), BENCH_REPLICAS (3),
# BENCH_PEOPLE (new or returning, as in delivery.sh; default new),
# BENCH_BATCH_SIZE (5000), BENCH_LINGER (200ms), BENCH_DELIVER_TIMEOUT (10m),
# BENCH_PORT_BASE (14222: the nodes use BASE+0..8), BENCH_KEEP=1 keeps the
# temporary directory (logs, stores, raw results), BENCH_WORK, BENCH_CAPSTAN,
# BENCH_LABEL (as in ingest.sh).
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
abspaths
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${BENCH_DURATION:-20s}
WARMUP=${BENCH_WARMUP:-3s}
CONC=${BENCH_CONCURRENCY:-32}
REPLICAS=${BENCH_REPLICAS:-3}
BASE=${BENCH_PORT_BASE:-14222}
BATCH_SIZE=${BENCH_BATCH_SIZE:-5000}
LINGER=${BENCH_LINGER:-200ms}
DELIVER_TIMEOUT=${BENCH_DELIVER_TIMEOUT:-10m}
PEOPLE=${BENCH_PEOPLE:-new}
case $PEOPLE in
new) PEOPLE_FLAG=-new-people ;;
returning) PEOPLE_FLAG= ;;
*) echo "BENCH_PEOPLE must be new or returning, got $PEOPLE" >&2; exit 2 ;;
esac
DATE=$(date -u +%Y-%m-%d)
OUT=${BENCH_OUT:-bench/results/cluster-$DATE.md}
((REPLICAS >= 1 && REPLICAS <= 8)) || { echo "BENCH_REPLICAS must be 1 to 8" >&2; exit 2; }
WORK=$(workdir capstan-cluster-bench)
BIN=$WORK/bin
RESULTS=$WORK/results.jsonl
COMMANDS=$WORK/commands.txt
for f in "$RESULTS" "$COMMANDS"; do : >"$f"; done

log "build"
mkdir -p "$BIN"
capstan_binary
cmd go build -o "$BIN/loadgen" ./bench/loadgen
cmd go build -o "$BIN/nats-server" github.com/nats-io/nats-server/v2
UPTIME_BEFORE=$(uptime)
log "machine load before: $UPTIME_BEFORE"

# --- the NATS cluster ---------------------------------------------------
ROUTES=""
URLS=""
MONITOR=""
for i in 0 1 2; do
	ROUTES+="${ROUTES:+, }nats-route://127.0.0.1:$((BASE + 3 + i))"
	URLS+="${URLS:+,}nats://127.0.0.1:$((BASE + i))"
	MONITOR+="${MONITOR:+,}http://127.0.0.1:$((BASE + 6 + i))"
done
for i in 0 1 2; do
	d=$WORK/n$i
	mkdir -p "$d"
	cat >"$d/nats.conf" <<EOF
server_name: n$i
listen: "127.0.0.1:$((BASE + i))"
http: "127.0.0.1:$((BASE + 6 + i))"
jetstream {
  store_dir: "$d/store"
  sync_interval: always
}
cluster {
  name: capstan-bench
  listen: "127.0.0.1:$((BASE + 3 + i))"
  routes: [$ROUTES]
}
EOF
	"$BIN/nats-server" -c "$d/nats.conf" 2>"$d/nats.log" &
	PIDS+=("$!")
	printf '%s\n' "$BIN/nats-server -c $d/nats.conf &" >>"$COMMANDS"
done
log "waiting for the cluster"
for i in 0 1 2; do
	for _ in $(seq 1 600); do
		curl -fsS "http://127.0.0.1:$((BASE + 6 + i))/healthz" >/dev/null 2>&1 && break
		sleep 0.1
	done
done

# start_sandbox NAME: a fresh sandbox (rate limits off); sets SB (its pid)
# and SBURL.
start_sandbox() {
	local dir=$WORK/$1
	mkdir -p "$dir"
	"$CAPSTAN" sandbox --addr 127.0.0.1:0 --token bench-token --ad-account 512345678 \
		--max-conversions 5000000 --rate-per-minute -1 --rate-per-day -1 --log-level warn \
		>"$dir/sandbox.out" 2>"$dir/sandbox.log" &
	SB=$!
	PIDS+=("$SB")
	printf '%s\n' "$CAPSTAN sandbox --addr 127.0.0.1:0 --token bench-token --ad-account 512345678 --max-conversions 5000000 --rate-per-minute -1 --rate-per-day -1 --log-level warn &   # $1" >>"$COMMANDS"
	SBURL=$(wait_url "$dir/sandbox.out" 'LinkedIn API at ' "$SB")
}

# start_capstan NAME ENGINE-YAML: start one capstan delivering to SBURL;
# sets START_PID and START_URL once it listens and its conversion rule
# exists.
SECRET=$(head -c32 /dev/urandom | base64)
start_capstan() {
	local name=$1 engine=$2 dir=$WORK/$1
	mkdir -p "$dir"
	cat >"$dir/capstan.yaml" <<EOF
server:
  addr: "127.0.0.1:0"
  data_dir: $dir/data
  secret_key: $SECRET
engine:
$engine
sources:
  - name: bench
    write_key: wk_bench
    rate_limit: {disabled: true}   # measure capacity, not the per-source limit
destinations:
  - name: linkedin
    api_base: $SBURL
    ad_account: 512345678
    batch_size: $BATCH_SIZE
    linger: $LINGER
    rate_limit: {per_minute: 100000, per_day: 100000000}
    auth: {access_token: bench-token, token_url: "$SBURL/oauth/v2/accessToken"}
    mappings:
      - name: Sign Up
        trigger: 'type = "track"'
        conversion_rule: {create: {name: "Bench (capstan)", type: SIGN_UP}}
EOF
	"$CAPSTAN" serve --config "$dir/capstan.yaml" 2>"$dir/capstan.log" &
	local pid=$!
	PIDS+=("$pid")
	printf '%s\n' "$CAPSTAN serve --config $dir/capstan.yaml &   # $name" >>"$COMMANDS"
	START_PID=$pid
	START_URL=$(wait_url "$dir/capstan.log" 'msg="capstan listening" addr=' "$pid")
	for _ in $(seq 1 300); do
		grep -q 'conversion rule' "$dir/capstan.log" && break
		sleep 0.1
	done
}

# now: seconds since the epoch, with nanoseconds.
now() { date +%s.%N; }

# deliver_all NAME T0 PID: waits until the sandbox (SBURL) accepted every
# event the loads of NAME acknowledged (the sum of acked_events in
# $WORK/NAME-*.jsonl); appends "NAME EVENTS SECONDS TAIL" (seconds from T0,
# the load's start, and the tail after the load's end) to $WORK/e2e.txt.
deliver_all() {
	local name=$1 t0=$2 pid=$3 total t1 loadend
	loadend=$(now)
	total=$(cat "$WORK/$name"-*.jsonl | jq -s 'map(.acked_events) | add')
	cmd "$BIN/loadgen" drain -sandbox "$SBURL" -sandbox-pid "$SB" -server-pid "$pid" -expect "$total" \
		-timeout "$DELIVER_TIMEOUT" -scenario "$name: rest of the delivery" -target "$name" -out "$WORK/drain-$name.jsonl" || true
	t1=$(now)
	echo "$name $total $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') $(awk -v a="$loadend" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')" >>"$WORK/e2e.txt"
}

# --- capstan replicas on the cluster --------------------------------------
start_sandbox sandbox-cluster
REPLICA_PIDS=()
REPLICA_URLS=()
for r in $(seq 1 "$REPLICAS"); do
	start_capstan "replica$r" "  nats_url: \"$URLS\"
  monitor_url: \"$MONITOR\"
  replicas: 3
  startup_timeout: 2m"
	REPLICA_PIDS+=("$START_PID")
	REPLICA_URLS+=("$START_URL")
	log "replica $r: $START_URL"
done
PER=$(((CONC + REPLICAS - 1) / REPLICAS))
log "batch load on $REPLICAS replicas at once (concurrency $PER each)"
LOADS=()
T0=$(now)
for r in $(seq 0 $((REPLICAS - 1))); do
	# shellcheck disable=SC2086 # PEOPLE_FLAG is one flag or none
	cmd "$BIN/loadgen" run -url "${REPLICA_URLS[$r]}" -endpoint /v1/batch -batch 100 -convertible $PEOPLE_FLAG -concurrency "$PER" \
		-warmup "$WARMUP" -duration "$DURATION" -server-pid "${REPLICA_PIDS[$r]}" \
		-scenario "batch 100/req, c=$PER per replica" -target "cluster replica $((r + 1))/$REPLICAS" -out "$WORK/cluster-$r.jsonl" &
	LOADS+=("$!")
done
for p in "${LOADS[@]}"; do wait "$p"; done
cat "$WORK"/cluster-*.jsonl >>"$RESULTS"
CLUSTER_TOTAL=$(cat "$WORK"/cluster-*.jsonl | jq -s 'map(.events_per_s) | add | floor')
# The lease holder delivers: its CPU is the one the drain reports.
HOLDER=0
for r in $(seq 0 $((REPLICAS - 1))); do
	if curl -fsS "${REPLICA_URLS[$r]}/readyz" 2>/dev/null | grep -q '"state":"delivering"'; then HOLDER=${REPLICA_PIDS[$r]}; fi
done
deliver_all cluster "$T0" "$HOLDER"
for pid in "${REPLICA_PIDS[@]}"; do kill -TERM "$pid"; wait "$pid" || true; done
kill -TERM "$SB"
wait "$SB" || true

# --- one capstan on its embedded engine -----------------------------------
start_sandbox sandbox-embedded
start_capstan embedded "  sync: always"
EPID=$START_PID
EURL=$START_URL
log "batch load on the embedded engine (concurrency $CONC)"
T0=$(now)
# shellcheck disable=SC2086 # PEOPLE_FLAG is one flag or none
cmd "$BIN/loadgen" run -url "$EURL" -endpoint /v1/batch -batch 100 -convertible $PEOPLE_FLAG -concurrency "$CONC" \
	-warmup "$WARMUP" -duration "$DURATION" -server-pid "$EPID" \
	-scenario "batch 100/req, c=$CONC" -target "embedded (sync always)" -out "$WORK/embedded-0.jsonl"
cat "$WORK/embedded-0.jsonl" >>"$RESULTS"
deliver_all embedded "$T0" "$EPID"
kill -TERM "$EPID" "$SB"
wait "$EPID" || true
wait "$SB" || true
EMBEDDED_INGEST=$(jq -s 'map(.events_per_s) | add | floor' "$WORK/embedded-0.jsonl")
# e2e NAME FIELD: rate, events, seconds or tail, from $WORK/e2e.txt.
e2e() { awk -v n="$1" -v f="$2" '$1 == n { if (f == "rate") printf "%d", $2 / $3; else if (f == "events") print $2; else if (f == "seconds") print $3; else print $4 }' "$WORK/e2e.txt"; }
DELIVERED_OK=$(cat "$WORK"/drain-*.jsonl | jq -s 'length == 2 and (map(.all_delivered) | all)')

TABLE=$("$BIN/loadgen" table "$RESULTS")
mkdir -p "$(dirname "$OUT")"
{
	echo "# capstan on a three-node NATS cluster vs one embedded node ($DATE)"
	echo
	echo "$REPLICAS capstan replicas on three nats-server $("$BIN/nats-server" --version | sed 's/^nats-server: //') nodes"
	echo "(loopback, sync_interval: always, streams with 3 replicas), loaded at once;"
	echo "then one capstan on its embedded engine (engine.sync: always), same run."
	echo
	echo "| | ingest (events/s acknowledged) | end-to-end (events/s delivered) | events | seconds from the load's start to the last accept | tail after the load |"
	echo "|---|--:|--:|--:|--:|--:|"
	echo "| cluster, $REPLICAS replicas | $CLUSTER_TOTAL (sum of the replicas) | $(e2e cluster rate) | $(e2e cluster events) | $(e2e cluster seconds) | $(e2e cluster tail) s |"
	echo "| embedded | $EMBEDDED_INGEST | $(e2e embedded rate) | $(e2e embedded events) | $(e2e embedded seconds) | $(e2e embedded tail) s |"
	echo
	echo "Every event convertible (one LinkedIn Sign Up each, people: $PEOPLE), delivered to \`capstan sandbox\` with its"
	echo "rate limits off and capstan's raised (batch_size $BATCH_SIZE, linger $LINGER); on the cluster only the lease"
	echo "holder delivers. End-to-end = events acknowledged (warm-up included) ÷ seconds from the load's start until the"
	echo "sandbox had accepted the last of them. Every acknowledged event delivered: $DELIVERED_OK."
	echo
	echo "$TABLE"
	echo
	echo "## Machine"
	echo
	machine
	echo "- Load before: $UPTIME_BEFORE"
	echo "- Load after: $(uptime)"
	echo
	echo "## Commands"
	echo
	echo '```'
	cat "$COMMANDS"
	echo '```'
} >"$OUT"
log "cluster: ingest $CLUSTER_TOTAL events/s, end-to-end $(e2e cluster rate) events/s; embedded: ingest $EMBEDDED_INGEST, end-to-end $(e2e embedded rate); report: $OUT"
echo "$TABLE"

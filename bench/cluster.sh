#!/usr/bin/env bash
# bench/cluster.sh — capstan's ingest throughput on a local three-node NATS
# JetStream cluster against one embedded node, in the same run (issue 23).
#
# Builds capstan, bench/loadgen and nats-server (from the module capstan
# embeds, github.com/nats-io/nats-server/v2 in go.mod: no download); starts
# three nats-server processes clustered on loopback (JetStream, each its own
# store, sync_interval: always) and BENCH_REPLICAS `capstan serve` replicas
# with engine.nats_url naming every node and engine.replicas: 3; loads every
# replica at once with /v1/batch (100 events a request, closed loop); then
# the same load against one capstan on its embedded engine (engine.sync:
# always). Prints the loadgen table and the cluster's total, and writes them
# to BENCH_OUT (default bench/results/cluster-<date>.md).
#
# Knobs (environment): BENCH_DURATION (20s), BENCH_WARMUP (3s),
# BENCH_CONCURRENCY (32, split over the replicas), BENCH_REPLICAS (3),
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

# start_capstan NAME ENGINE-YAML: start one capstan; sets START_PID and
# START_URL.
start_capstan() {
	local name=$1 engine=$2 dir=$WORK/$1
	mkdir -p "$dir"
	cat >"$dir/capstan.yaml" <<EOF
server:
  addr: "127.0.0.1:0"
  data_dir: $dir/data
engine:
$engine
sources:
  - name: bench
    write_key: wk_bench
    rate_limit: {disabled: true}   # measure capacity, not the per-source limit
EOF
	"$CAPSTAN" serve --config "$dir/capstan.yaml" 2>"$dir/capstan.log" &
	local pid=$!
	PIDS+=("$pid")
	printf '%s\n' "$CAPSTAN serve --config $dir/capstan.yaml &   # $name" >>"$COMMANDS"
	START_PID=$pid
	START_URL=$(wait_url "$dir/capstan.log" 'msg="capstan listening" addr=' "$pid")
}

# --- capstan replicas on the cluster --------------------------------------
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
for r in $(seq 0 $((REPLICAS - 1))); do
	cmd "$BIN/loadgen" run -url "${REPLICA_URLS[$r]}" -endpoint /v1/batch -batch 100 -concurrency "$PER" \
		-warmup "$WARMUP" -duration "$DURATION" -server-pid "${REPLICA_PIDS[$r]}" \
		-scenario "batch 100/req, c=$PER per replica" -target "cluster replica $((r + 1))/$REPLICAS" -out "$WORK/replica$r.jsonl" &
	LOADS+=("$!")
done
for p in "${LOADS[@]}"; do wait "$p"; done
cat "$WORK"/replica*.jsonl >>"$RESULTS"
CLUSTER_TOTAL=$(cat "$WORK"/replica*.jsonl | jq -s 'map(.events_per_s) | add | floor')
for pid in "${REPLICA_PIDS[@]}"; do kill -TERM "$pid"; wait "$pid" || true; done

# --- one capstan on its embedded engine -----------------------------------
start_capstan embedded "  sync: always"
EPID=$START_PID
EURL=$START_URL
log "batch load on the embedded engine (concurrency $CONC)"
cmd "$BIN/loadgen" run -url "$EURL" -endpoint /v1/batch -batch 100 -concurrency "$CONC" \
	-warmup "$WARMUP" -duration "$DURATION" -server-pid "$EPID" \
	-scenario "batch 100/req, c=$CONC" -target "embedded (sync always)" -out "$RESULTS"
kill -TERM "$EPID"
wait "$EPID" || true

TABLE=$("$BIN/loadgen" table "$RESULTS")
mkdir -p "$(dirname "$OUT")"
{
	echo "# capstan on a three-node NATS cluster vs one embedded node ($DATE)"
	echo
	echo "$REPLICAS capstan replicas on three nats-server $("$BIN/nats-server" --version | sed 's/^nats-server: //') nodes"
	echo "(loopback, sync_interval: always, streams with 3 replicas), loaded at once;"
	echo "then one capstan on its embedded engine (engine.sync: always), same run."
	echo
	echo "**Cluster total: $CLUSTER_TOTAL events/s** acknowledged (sum of the replicas)."
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
log "cluster total: $CLUSTER_TOTAL events/s; report: $OUT"
echo "$TABLE"

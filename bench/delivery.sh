#!/usr/bin/env bash
# bench/delivery.sh — capstan's end-to-end delivery benchmark (see bench/README.md).
#
# Builds capstan and bench/loadgen; for each case starts the LinkedIn sandbox
# (`capstan sandbox`) and `capstan serve` (embedded engine, engine.sync:
# always, temporary data dir, one LinkedIn destination pointing at the
# sandbox) as separate processes on loopback ports, then sends /v1/batch
# requests of 100 convertible events
#   (a) closed loop at maximum rate for BENCH_DURATION;
#   (b) open loop at BENCH_DELIVERY_RATE events/s for BENCH_DURATION;
# and waits until the sandbox has accepted every acknowledged event. Per case
# it reports ingest and delivery rates, the backlog's drain time, the exact
# end-to-end latency of every conversion (sandbox receive time − capstan
# receivedAt), the batch sizes LinkedIn saw and an exactly-once check; writes
# bench/results/delivery-<date>.md.
#
# The sandbox's and capstan's LinkedIn rate limits are raised far above
# LinkedIn's real ones (600 requests/min, 300,000/day): this measures
# throughput, not rate limiting.
#
# Knobs (environment): BENCH_DURATION (20s), BENCH_WARMUP (3s),
# BENCH_CONCURRENCY (32), BENCH_DELIVERY_RATE (5000 events/s),
# BENCH_LINGER (200ms), BENCH_BATCH_SIZE (5000, LinkedIn's maximum),
# BENCH_DELIVER_TIMEOUT (10m), BENCH_OUT (results file), BENCH_KEEP=1 keeps
# the temporary directory (logs, data dirs, raw results.jsonl),
# BENCH_PEOPLE (new: every event from a person never seen, the identity
# graph's worst case, one or two profile creates per event; returning: ids
# fixed per template, a few thousand people coming back).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${BENCH_DURATION:-20s}
WARMUP=${BENCH_WARMUP:-3s}
CONC=${BENCH_CONCURRENCY:-32}
EV_RATE=${BENCH_DELIVERY_RATE:-5000}
LINGER=${BENCH_LINGER:-200ms}
BATCH_SIZE=${BENCH_BATCH_SIZE:-5000}
DELIVER_TIMEOUT=${BENCH_DELIVER_TIMEOUT:-10m}
PER_REQ=100
PEOPLE=${BENCH_PEOPLE:-new}
case $PEOPLE in
new) PEOPLE_FLAG=-new-people ;;
returning) PEOPLE_FLAG= ;;
*) echo "BENCH_PEOPLE must be new or returning, got $PEOPLE" >&2; exit 2 ;;
esac
REQ_RATE=$((EV_RATE / PER_REQ))
DATE=$(date -u +%Y-%m-%d)
OUT=${BENCH_OUT:-bench/results/delivery-$DATE.md}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/capstan-dbench.XXXXXX")
BIN=$WORK/bin
RESULTS=$WORK/results.jsonl
COMMANDS=$WORK/commands.txt
: >"$RESULTS" >"$COMMANDS"

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

log "build"
mkdir -p "$BIN"
cmd go build -o "$BIN/capstan" ./cmd/capstan
cmd go build -o "$BIN/loadgen" ./bench/loadgen

UPTIME_BEFORE=$(uptime)
log "machine load before: $UPTIME_BEFORE"

# run_case NAME SCENARIO LOADGEN-ARGS...: a fresh sandbox and capstan, one
# load, the wait for delivery, then both stopped.
run_case() {
	local name=$1 scenario=$2 dir=$WORK/$1
	shift 2
	mkdir -p "$dir"
	log "case $name: $scenario"

	"$BIN/capstan" sandbox --addr 127.0.0.1:0 --token bench-token --ad-account 512345678 \
		--max-conversions 5000000 --rate-per-minute -1 --rate-per-day -1 --log-level warn \
		>"$dir/sandbox.out" 2>"$dir/sandbox.log" &
	local sb=$!
	PIDS+=("$sb")
	printf '%s\n' "$BIN/capstan sandbox --addr 127.0.0.1:0 --token bench-token --ad-account 512345678 --max-conversions 5000000 --rate-per-minute -1 --rate-per-day -1 --log-level warn &" >>"$COMMANDS"
	local sburl
	sburl=$(wait_url "$dir/sandbox.out" 'LinkedIn API at ' "$sb")

	cat >"$dir/capstan.yaml" <<EOF
server:
  addr: "127.0.0.1:0"
  data_dir: $dir/data
engine:
  sync: always
sources:
  - name: bench
    write_key: wk_bench
destinations:
  - name: linkedin
    api_base: $sburl
    ad_account: 512345678
    batch_size: $BATCH_SIZE
    linger: $LINGER
    rate_limit: {per_minute: 100000, per_day: 100000000}
    auth: {access_token: bench-token, token_url: "$sburl/oauth/v2/accessToken"}
    mappings:
      - name: Sign Up
        trigger: 'type = "track"'
        conversion_rule: {create: {name: "Bench (capstan)", type: SIGN_UP}}
EOF
	"$BIN/capstan" serve --config "$dir/capstan.yaml" 2>"$dir/capstan.log" &
	local cp=$!
	PIDS+=("$cp")
	printf '%s\n' "$BIN/capstan serve --config $dir/capstan.yaml &" >>"$COMMANDS"
	local url
	url=$(wait_url "$dir/capstan.log" 'msg="capstan listening" addr=' "$cp")
	# Delivery starts once the conversion rule exists.
	for _ in $(seq 1 100); do
		grep -q 'conversion rule created\|conversion rule' "$dir/capstan.log" && break
		sleep 0.1
	done

	cmd "$BIN/loadgen" run -url "$url" -endpoint /v1/batch -batch "$PER_REQ" -convertible $PEOPLE_FLAG \
		-warmup "$WARMUP" -duration "$DURATION" -server-pid "$cp" \
		-sandbox "$sburl" -sandbox-pid "$sb" -engine "$dir/data/engine.json" -metrics "$url" \
		-deliver-timeout "$DELIVER_TIMEOUT" -deliver-stall 60s \
		-scenario "$scenario" -target "$name" -out "$RESULTS" "$@"

	grep -E 'level=(WARN|ERROR)' "$dir/capstan.log" | sed -E 's/^time=[^ ]+ //; s/(message_id|event_seq|attempt|wait)=[^ ]+//g' |
		sort | uniq -c | sort -rn | head -20 | sed 's/^/    /' >"$dir/warnings.txt" || true
	kill -TERM "$cp" "$sb"
	wait "$cp" || true
	wait "$sb" || true
}

run_case max "(a) max rate, c=$CONC closed loop" -concurrency "$CONC"
sleep 2
run_case rate "(b) $EV_RATE events/s open loop" -rate "$REQ_RATE" -concurrency 64

UPTIME_AFTER=$(uptime)

# --- report ----------------------------------------------------------------
log "report: $OUT"
TABLES=$("$BIN/loadgen" table -delivery "$RESULTS")
q() { jq -r --arg t "$1" "select(.target == \$t) | $2" "$RESULTS"; }
SUSTAINED=$(q max '.delivery.delivered_per_s | floor')
INGEST_A=$(q max '.events_per_s | floor')
P95_B=$(q rate '.delivery.latency_window.p95_ms // "n/a"')
ALL_A=$(q max '.delivery.all_delivered')
ALL_B=$(q rate '.delivery.all_delivered')
GA=$(awk -v v="$SUSTAINED" -v i="$INGEST_A" -v ok="$ALL_A" 'BEGIN { print (ok == "true" && v >= 50000 ? "met" : "NOT met") }')
KEEPS=$(awk -v v="$SUSTAINED" -v i="$INGEST_A" 'BEGIN { print (v >= 0.95 * i ? "keeps up with" : "does NOT keep up with") }')
GB=$(awk -v v="$P95_B" -v ok="$ALL_B" 'BEGIN { print (ok == "true" && v != "n/a" && v < 2000 ? "met" : "NOT met") }')

mkdir -p "$(dirname "$OUT")"
{
	echo "# capstan delivery benchmark, $DATE"
	echo
	echo "Produced by \`bench/delivery.sh\` (see bench/README.md for what each figure means)."
	echo "Segment events in with \`/v1/batch\` (100 events per request, every event convertible: properties.li_fat_id"
	echo "on half, traits.email on the other half), fsynced in JetStream (\`engine.sync: always\`), delivered as"
	echo "LinkedIn conversions to \`capstan sandbox\` running as a separate process. People: **$PEOPLE** ($(
		[ "$PEOPLE" = new ] && echo "every event from a visitor never seen before, a third of them with a new userId: the identity graph creates one or two profiles per event" ||
			echo "identifiers fixed per request template: a few thousand people coming back"))."
	echo
	echo "**Rate limits raised for this run:** the sandbox runs with \`--rate-per-minute -1 --rate-per-day -1\` and"
	echo "capstan with \`rate_limit: {per_minute: 100000, per_day: 100000000}\`. With LinkedIn's real limits"
	echo "(600 requests per minute per token, 5000 conversions per request) delivery could not exceed"
	echo "50,000 conversions/s anyway (600 × 5000 / 60), and 300,000 requests per day; this run measures capstan's pipeline."
	echo
	echo "## Goals"
	echo
	echo "- Delivery keeps up with ingest, ≥ 50,000 events/s sustained: **$GA** — case (a) ingested $INGEST_A events/s"
	echo "  in the measured window; the sustained end-to-end rate (all acknowledged events ÷ time from the first request"
	echo "  until the sandbox had accepted the last) was **$SUSTAINED events/s**, so delivery $KEEPS ingest at maximum rate."
	echo "- p95 end-to-end latency < 2 s when healthy (case b, $EV_RATE events/s): **$GB** — measured p95 $P95_B ms"
	echo "  (exact, per conversion, events received in the measured window)."
	echo
	echo "## Results"
	echo
	echo "Warm-up $WARMUP then $DURATION measured per case; the delivery wait continues after the load until the sandbox"
	echo "accepted every acknowledged event (at most $DELIVER_TIMEOUT). Destination: batch_size $BATCH_SIZE, linger $LINGER."
	echo
	echo "$TABLES"
	echo
	for n in max rate; do
		if [[ -s $WORK/$n/warnings.txt ]]; then
			echo "capstan ($n) logged warnings/errors (count, line):"
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
	echo "Load (the machine is shared with other engineers' builds and tests; capstan, the sandbox and loadgen share its CPUs):"
	echo
	echo "- before: \`$UPTIME_BEFORE\`"
	echo "- after: \`$UPTIME_AFTER\`"
	echo "- per case: the \"load\" column (1-minute load average when the case started)"
	echo
	echo "## Commands"
	echo
	echo "Run from the repository root as \`bench/delivery.sh\`; it ran:"
	echo
	echo '```sh'
	sed "s|$WORK|\$WORK|g" "$COMMANDS"
	echo '```'
	echo
	echo "where \`\$WORK\` was a fresh \`mktemp -d\` directory; the generated capstan.yaml of case (a) was:"
	echo
	echo '```yaml'
	sed "s|$WORK|\$WORK|g" "$WORK/max/capstan.yaml"
	echo '```'
} >"$OUT"
cat "$OUT"

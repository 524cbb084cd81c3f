#!/usr/bin/env bash
# bench/import.sh — capstan import's benchmark (see bench/README.md, "Import
# benchmark").
#
# Builds capstan, writes a CSV of BENCH_IMPORT_ROWS rows (a CRM export:
# userId, email, names, company, revenue, currency, a Unix timestamp within
# the last 80 days, an order id), and imports it end to end into the EVENTS
# stream (engine.sync: always, fsync before each group is acknowledged)
# twice, each time into a fresh data directory:
#   (a) capstan stopped: the import opens the data directory itself, so the
#       embedded engine runs in the import's process;
#   (b) capstan serve running: the import writes through the engine's local
#       port, and serve makes the groups durable.
# Each run is measured with /usr/bin/time -v (wall time, max RSS, CPU); (b)
# also reports serve's peak RSS (VmHWM). The stream is then checked to hold
# exactly BENCH_IMPORT_ROWS events. Writes bench/results/import-<date>.md.
#
# Knobs (environment): BENCH_IMPORT_ROWS (1000000), BENCH_TARGETS (a subset
# of "stopped running", default both), BENCH_OUT (results file),
# BENCH_CAPSTAN (a prebuilt capstan), BENCH_LABEL, BENCH_WORK, BENCH_KEEP=1.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
abspaths
cd "$(dirname "$0")/.."
ROOT=$PWD
ROWS=${BENCH_IMPORT_ROWS:-1000000}
DATE=$(date -u +%Y-%m-%d)
OUT=${BENCH_OUT:-bench/results/import-$DATE.md}
read -ra TLIST <<<"${BENCH_TARGETS:-stopped running}"
for t in "${TLIST[@]}"; do
	case $t in
	stopped | running) ;;
	*) echo "BENCH_TARGETS: unknown target $t (stopped, running)" >&2; exit 2 ;;
	esac
done
WORK=$(workdir capstan-import-bench)
BIN=$WORK/bin
COMMANDS=$WORK/commands.txt
TABLE=$WORK/table.md
: >"$COMMANDS"
: >"$TABLE"

log "build"
mkdir -p "$BIN"
capstan_binary

log "write $ROWS rows"
CSV=$WORK/crm.csv
NOW=$(date +%s)
cmd awk -v rows="$ROWS" -v now="$NOW" 'BEGIN {
	print "userId,email,first_name,last_name,company,revenue,currency,timestamp,order_id"
	for (i = 0; i < rows; i++)
		printf "user-%07d,user%07d@example.com,Ann,Lee,Acme Corp,%d.%02d,USD,%d,order-%07d\n", i, i, i % 5000, i % 100, now - (i % 6912000), i
}' >"$CSV"
CSV_BYTES=$(stat -c %s "$CSV")

# config DIR: a configuration with a fresh data directory in DIR.
config() {
	mkdir -p "$1"
	cat >"$1/capstan.yaml" <<EOF
server:
  addr: "127.0.0.1:0"
  data_dir: "$1/data"
engine:
  sync: always
sources:
  - name: crm
    write_key: wk_bench_import
EOF
	printf '%s\n' "$1/capstan.yaml"
}

# field NAME FILE: a value of /usr/bin/time -v's report.
field() { grep -F "$1" "$2" | head -1 | sed 's/.*: //'; }

# seconds H:MM:SS.ss or M:SS.ss -> seconds
seconds() { awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }' <<<"$1"; }

# measure TARGET CONFIG [SERVE_PID]: imports the CSV, checks the stream,
# appends a table row.
measure() {
	local target=$1 cfg=$2 spid=${3:-} tv=$WORK/$1.time log=$WORK/$1.log
	log "import ($target)"
	cmd /usr/bin/time -v -o "$tv" "$CAPSTAN" import --config "$cfg" --event "Order Completed" "$CSV" 2>"$log" || {
		cat "$log" >&2
		return 1
	}
	tail -1 "$log" >&2
	local wall rss cpu secs rate serve_rss=- stored cpus
	wall=$(field "Elapsed (wall clock)" "$tv")
	rss=$(field "Maximum resident set size" "$tv")
	cpu=$(field "Percent of CPU this job got" "$tv")
	cpus=$(awk -v u="$(field "User time" "$tv")" -v s="$(field "System time" "$tv")" -v r="$ROWS" 'BEGIN { printf "%.1f s (%.0f µs/row)", u + s, (u + s) * 1e6 / r }')
	secs=$(seconds "$wall")
	rate=$(awk -v r="$ROWS" -v s="$secs" 'BEGIN { printf "%.0f", r / s }')
	if [[ -n $spid ]]; then
		serve_rss=$(awk '/VmHWM/ { printf "%.0f MB", $2 / 1024 }' "/proc/$spid/status")
	fi
	stored=$("$CAPSTAN" events tail --config "$cfg" | wc -l)
	printf '| %s | %s | %s | %s s | **%s** | %s, %s | **%.0f MB** | %s | %s |\n' \
		"$target" "$ROWS" "$stored" "$secs" "$rate" "$cpu" "$cpus" "$((rss / 1024))" "$serve_rss" "$(tail -1 "$log" | sed "s|^.*/||")" >>"$TABLE"
	[[ $stored == "$ROWS" ]] || { echo "the stream holds $stored events, want $ROWS" >&2; return 1; }
}

for t in "${TLIST[@]}"; do
	dir=$WORK/$t
	cfg=$(config "$dir")
	if [[ $t == stopped ]]; then
		measure stopped "$cfg"
		continue
	fi
	"$CAPSTAN" serve --config "$cfg" >"$dir/serve.log" 2>&1 &
	spid=$!
	PIDS+=("$spid")
	url=$(wait_url "$dir/serve.log" 'msg="capstan listening" addr=' "$spid")
	for _ in $(seq 1 100); do
		curl -fsS "$url/readyz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	measure running "$cfg" "$spid"
	kill -TERM "$spid"
	wait "$spid" || true
done

log "report $OUT"
mkdir -p "$(dirname "$OUT")"
{
	echo "# capstan import benchmark, $DATE"
	echo
	echo "Goal: 1,000,000 CSV rows end to end into the EVENTS stream (engine.sync: always)"
	echo "at ≥ 20,000 rows/s, the import's memory (max RSS) under 300 MB."
	echo
	echo "Input: $ROWS rows, $CSV_BYTES bytes. Each run imports into a fresh data directory."
	echo "\"stopped\": the import opens the data directory (the engine runs in its process);"
	echo "\"running\": capstan serve runs and the import writes through its engine's local port."
	echo
	echo "| capstan | rows | stored | wall | rows/s | import CPU (share, user+sys) | import max RSS | serve peak RSS | summary |"
	echo "|---|---|---|---|---|---|---|---|---|"
	cat "$TABLE"
	echo
	echo "## Machine"
	echo
	echo "- $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'); $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM"
	echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- $(go version)"
	echo "- work directory: $(workdesc), on $(df -h --output=source,fstype "$WORK" | tail -1)"
	echo
	echo "## Commands"
	echo
	echo '```'
	invocation bench/import.sh
	cat "$COMMANDS"
	echo '```'
} >"$OUT"
cat "$TABLE"

# shellcheck shell=bash
# bench/lib.sh — what bench/ingest.sh and bench/delivery.sh share. Source it
# after setting ROOT (the repository), WORK (the run's temporary directory)
# and COMMANDS (the file that records every command for the report).

# PIDS are the processes the script started; they are stopped on exit, and
# WORK is removed unless BENCH_KEEP=1.
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		if kill -0 "$p" 2>/dev/null; then
			kill -TERM "$p" 2>/dev/null || true
			wait "$p" 2>/dev/null || true
		fi
	done
	if [[ ${BENCH_KEEP:-0} == 1 ]]; then
		echo "kept $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

log() { printf '\n== %s\n' "$*" >&2; }

# cmd records a command line for the results file, then runs it.
cmd() {
	printf '%q ' "$@" | sed 's/ $//' >>"$COMMANDS"
	echo >>"$COMMANDS"
	"$@"
}

# wait_url FILE PATTERN PID: the first http://HOST:PORT after PATTERN in FILE.
wait_url() {
	local f=$1 pat=$2 pid=$3 i u
	for i in $(seq 1 300); do
		u=$(grep -o "${pat}[^ ]*http://[^ ]*" "$f" 2>/dev/null | head -1 | grep -o 'http://[^ ]*' || true)
		if [[ -n $u ]]; then
			printf '%s\n' "$u"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || { cat "$f" >&2; echo "process $pid exited" >&2; return 1; }
		sleep 0.1
	done
	echo "no listening address after 30s in $f" >&2
	return 1
}

# settle PID: wait until the process is idle (under 2% of a core over one
# second, at most 30 s), so that a scenario does not measure the previous
# one's aftermath (a burst leaves garbage to collect and caches to drop).
settle() {
	local pid=$1 hz prev cur i
	hz=$(getconf CLK_TCK)
	prev=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || return 0
	for i in $(seq 1 30); do
		sleep 1
		cur=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || return 0
		if (((cur - prev) * 100 < 2 * hz)); then
			echo "settled: process $pid idle after ${i}s" >&2
			return 0
		fi
		prev=$cur
	done
	echo "settle: process $pid still busy after 30s" >&2
}

# machine prints the report's description of the machine and the tree.
machine() {
	echo "- CPU: $(nproc) logical CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "- Memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "- Kernel: $(uname -srm)"
	echo "- Go: $(go version | sed 's/^go version //')"
	echo "- Disk of the data dir: $(df -hT "$WORK" | awk 'NR==2 {print $1, $2}')"
	echo "- Virtualisation: $(systemd-detect-virt 2>/dev/null || echo unknown)"
	echo "- capstan tree: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'no commit yet') plus the uncommitted working tree as found ($(git -C "$ROOT" status --porcelain 2>/dev/null | grep -vc '^?? bench/\|^ M bench/' || true) changed files outside bench/)"
}

# shellcheck shell=bash
# bench/lib.sh — what bench/ingest.sh, bench/delivery.sh and bench/ab.sh
# share. Source it after setting ROOT (the repository); then set WORK (the
# run's temporary directory, see workdir) and COMMANDS (the file that records
# every command for the report).

# PIDS are the processes the script started; they are stopped on exit, and
# WORK (once set) is removed unless BENCH_KEEP=1.
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		if kill -0 "$p" 2>/dev/null; then
			kill -TERM "$p" 2>/dev/null || true
			wait "$p" 2>/dev/null || true
		fi
	done
	[[ -n ${WORK:-} ]] || return 0
	if [[ ${BENCH_KEEP:-0} == 1 ]]; then
		echo "kept $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

# abspaths: BENCH_CAPSTAN, BENCH_SANDBOX and BENCH_WORK made absolute,
# relative to the directory the script was started from. Call it before
# changing directory.
abspaths() {
	local v
	for v in BENCH_CAPSTAN BENCH_SANDBOX BENCH_WORK; do
		if [[ -n ${!v:-} ]]; then
			printf -v "$v" '%s' "$(realpath -m -- "${!v}")"
		fi
	done
}

# workdir PREFIX: prints the run's directory: BENCH_WORK if set (created if
# missing; it must be empty, since it is removed at the end unless
# BENCH_KEEP=1), else a fresh mktemp -d directory named PREFIX.XXXXXX.
workdir() {
	if [[ -z ${BENCH_WORK:-} ]]; then
		mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX"
		return
	fi
	mkdir -p -- "$BENCH_WORK"
	if [[ -n $(ls -A -- "$BENCH_WORK") ]]; then
		echo "BENCH_WORK=$BENCH_WORK is not empty" >&2
		return 1
	fi
	printf '%s\n' "$BENCH_WORK"
}

# workdesc: how the report names WORK.
workdesc() {
	if [[ -n ${BENCH_WORK:-} ]]; then
		echo "the directory BENCH_WORK named (empty when the run started)"
	else
		echo "a fresh \`mktemp -d\` directory"
	fi
}

# invocation SCRIPT: the command line the script was run with, as the
# report shows it: the BENCH_* variables that were set, then SCRIPT.
invocation() {
	local v out=
	for v in $(compgen -v BENCH_); do
		out+="$v=$(printf '%q' "${!v}") "
	done
	printf '%s%s\n' "$out" "$1"
}

# binary_label PATH LABEL: how the report names a prebuilt binary: LABEL
# (BENCH_LABEL, e.g. git describe's output) and the start of its sha256.
binary_label() {
	printf '%s, sha256 %s' "${2:-no BENCH_LABEL}" "$(sha256sum -- "$1" | cut -c1-12)"
}

# capstan_binary: sets CAPSTAN, the capstan the run uses: built from the tree
# into BIN (the default), or BENCH_CAPSTAN, a prebuilt binary (the command
# list says which).
capstan_binary() {
	if [[ -z ${BENCH_CAPSTAN:-} ]]; then
		CAPSTAN=$BIN/capstan
		cmd go build -o "$CAPSTAN" ./cmd/capstan
		return
	fi
	if [[ ! -f $BENCH_CAPSTAN || ! -x $BENCH_CAPSTAN ]]; then
		echo "BENCH_CAPSTAN=$BENCH_CAPSTAN is not an executable file" >&2
		return 1
	fi
	CAPSTAN=$BENCH_CAPSTAN
	printf '# capstan not built: the prebuilt %s (%s), from BENCH_CAPSTAN\n' \
		"$CAPSTAN" "$(binary_label "$CAPSTAN" "${BENCH_LABEL:-}")" >>"$COMMANDS"
}

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
	echo "- Virtualisation: $(systemd-detect-virt 2>/dev/null || echo unknown), $(uptime -p)"
	local pr=/sys/module/page_reporting/parameters
	if [[ -r $pr/page_reporting_order ]]; then
		# Memory freed in blocks of this order goes back to the host, and
		# its next first touch costs ~11 µs a page of the toucher's CPU
		# (bench/results/kwrite-2026-12-07-s19.md).
		echo "- Free page reporting to the host: on (order $(cat $pr/page_reporting_order), $(($(cat $pr/reported_kib) >> 20)) GiB reported since boot): page cache and heap a run grows into cost more CPU than once used"
	fi
	echo "- capstan tree: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'no commit yet') plus the uncommitted working tree as found ($(git -C "$ROOT" status --porcelain 2>/dev/null | grep -vc '^?? bench/\|^ M bench/' || true) changed files outside bench/)"
	if [[ -n ${BENCH_CAPSTAN:-} ]]; then
		echo "- capstan binary: \`$BENCH_CAPSTAN\` ($(binary_label "$BENCH_CAPSTAN" "${BENCH_LABEL:-}")), prebuilt (BENCH_CAPSTAN); the tree above built only the bench tools"
	fi
}

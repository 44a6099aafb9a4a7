# bench/lib.sh — helpers shared by the bench/*.sh scripts (sourced, not run).
#
# Process bookkeeping: every long-running process is started with bl_spawn,
# which records its PID; bl_stop_all (installed on EXIT by bl_init) stops them
# by PID, TERM first, KILL after a grace period. Nothing is ever stopped by name.
# shellcheck shell=bash

export LC_ALL=C
BL_PY=/usr/bin/python3
[[ -x $BL_PY ]] || BL_PY=python3
BL_HZ=$(getconf CLK_TCK)
declare -A BL_PID=()    # name -> pid of spawned processes still running
BL_CLEANUP_HOOKS=()     # extra commands run by bl_stop_all (after the processes)

bl_say() { printf '%s\n' "$*" >&2; }
bl_die() { bl_say "error: $*"; exit 1; }

# The usual argument handling of a bench script: `bl_args "$@"` prints the
# script's header comment for -h/--help and refuses arguments (settings are
# environment variables); `bl_help "$@"` only does the first.
bl_help() {
	if [[ ${1:-} == -h || ${1:-} == --help ]]; then
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
	fi
}
bl_args() {
	bl_help "$@"
	[[ $# -eq 0 ]] || bl_die "no arguments expected (settings are env variables; see --help)"
}

bl_need() { # tools...
	local t
	for t in "$@"; do command -v "$t" >/dev/null 2>&1 || bl_die "missing tool: $t (make deps-bench installs the peers)"; done
}

# The text corpus of the compression benchmarks (bench/compress.sh,
# bench/br-levels.sh) into directory $1: jquery.js, bootstrap.css and d3.js
# from Debian's packages (when installed), asset64k.js (jquery's first 64 KiB),
# a generated ~64 KiB data.json and an HTML page (fixed seed: same bytes each run).
bl_web_corpus() {
	local d=$1 f
	mkdir -p "$d"
	cp /usr/share/javascript/jquery/jquery.js "$d/jquery.js"
	for f in /usr/share/javascript/bootstrap/css/bootstrap.css /usr/share/javascript/d3/d3.js; do
		[[ -f $f ]] && cp "$f" "$d/"
	done
	head -c 65536 "$d/jquery.js" >"$d/asset64k.js"
	"$BL_PY" - "$d" <<'PY'
import json, random, sys
d = sys.argv[1]
random.seed(7)
rows, s = [], ""
while len(s) < 65536:
    rows.append({"id": len(rows), "name": f"user{random.randint(0, 99999)}", "email": f"u{random.randint(0, 9999)}@example.com",
                 "active": random.random() < 0.5, "score": round(random.random() * 100, 2), "tags": random.sample(["a", "b", "c", "d", "e"], 2)})
    s = json.dumps(rows)
open(f"{d}/data.json", "w").write(s)
open(f"{d}/page.html", "w").write("<!doctype html><html><head><title>t</title></head><body>" +
    "".join(f"<div class=\"row\"><a href=\"/item/{i}\">item {i}</a> <span>{random.randint(0, 1 << 30)}</span></div>\n" for i in range(800)) + "</body></html>")
PY
}

# A throw-away TLS setup in directory $1: a local CA (ECDSA P-256) signs one
# ECDSA P-256 server certificate for localhost and 127.0.0.1. Leaves ca.crt,
# leaf.crt, leaf.key and combined.pem (certificate + key, HAProxy's `crt`).
bl_certs() {
	local d=$1
	mkdir -p "$d"
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >"$d/leaf.ext"
	{
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/ca.key" &&
			openssl req -x509 -new -key "$d/ca.key" -sha256 -days 7 -subj "/CN=tapwork bench CA" \
				-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign -out "$d/ca.crt" &&
			openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/leaf.key" &&
			openssl req -new -key "$d/leaf.key" -subj /CN=localhost -out "$d/leaf.csr" &&
			openssl x509 -req -in "$d/leaf.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -set_serial 2 \
				-days 7 -sha256 -extfile "$d/leaf.ext" -out "$d/leaf.crt"
	} >"$d/openssl.log" 2>&1 || bl_die "could not make the test certificates: $(tail -n 3 "$d/openssl.log")"
	cat "$d/leaf.crt" "$d/leaf.key" >"$d/combined.pem"
	chmod 644 "$d"/*
}

bl_stamp() { date -u +%Y%m%d-%H%M%S; }

# Run a command pinned to CPU $1 (PIN=1; "-" = not pinned) and reniced by
# $NICE (NICE!=0). nice and taskset exec their argument.
bl_prefix() { # sets BL_PRE for CPU $1
	BL_PRE=()
	[[ ${NICE:-0} != 0 ]] && BL_PRE+=(nice -n "$NICE")
	[[ ${PIN:-1} == 1 && $1 != - ]] && BL_PRE+=(taskset -c "$1")
	return 0
}
bl_pin() {
	bl_prefix "$1"
	shift
	"${BL_PRE[@]}" "$@"
}

# A TCP port on 127.0.0.1 that is free right now (the kernel picks it).
bl_free_port() {
	"$BL_PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

bl_listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# Wait until PID $1 listens on port $2; give up after $3 seconds or when the process dies.
bl_wait_listen() {
	local pid=$1 port=$2 secs=${3:-5} i
	for ((i = 0; i < secs * 20; i++)); do
		kill -0 "$pid" 2>/dev/null || return 1
		bl_listening "$port" && return 0
		sleep 0.05
	done
	return 1
}

# bl_spawn NAME LOGFILE CPU CMD... : start CMD in the background (pinned to CPU,
# "-" for none), remember its PID. The command is exec'ed by the forked shell,
# so the PID is the program's own (not a wrapper's).
bl_spawn() {
	local name=$1 log=$2
	bl_prefix "$3"
	shift 3
	"${BL_PRE[@]}" "$@" >"$log" 2>&1 &
	BL_PID[$name]=$!
}

# Stop one spawned process by its recorded PID (TERM, then KILL after 3 s).
bl_stop() {
	local name=$1 pid i
	pid=${BL_PID[$name]:-}
	[[ -n $pid ]] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 60; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
	wait "$pid" 2>/dev/null || true
	unset "BL_PID[$name]"
}

bl_stop_all() {
	local n h
	for n in "${!BL_PID[@]}"; do bl_stop "$n"; done
	for h in "${BL_CLEANUP_HOOKS[@]}"; do eval "$h" || true; done
}

bl_on_exit() {
	local rc=$?
	trap - EXIT
	bl_stop_all
	exit "$rc"
}
bl_init() { # install the exit trap
	trap bl_on_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# PID $1 and all its descendants.
bl_tree() {
	local p=$1 c
	echo "$p"
	for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do bl_tree "$c"; done
}

# User and system clock ticks (utime, stime) summed over the given PIDs: "U S".
bl_cpu_ticks_us() {
	local u=0 k=0 p s rest
	local -a f
	for p in "$@"; do
		s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		rest=${s##*) } # after the command name: field 3 (state) onwards
		read -r -a f <<<"$rest"
		u=$((u + f[11])) # field 14 (utime)
		k=$((k + f[12])) # field 15 (stime)
	done
	echo "$u $k"
}

# Sum of utime+stime (clock ticks) of the given PIDs.
bl_cpu_ticks() {
	local u k
	read -r u k <<<"$(bl_cpu_ticks_us "$@")"
	echo $((u + k))
}

# Sum of a /proc/PID/status field (kB) over the given PIDs: bl_status_kb VmRSS PIDS...
bl_status_kb() {
	local key=$1 t=0 p v
	shift
	for p in "$@"; do
		v=$(awk -v k="$key:" '$1==k{print $2}' "/proc/$p/status" 2>/dev/null)
		t=$((t + ${v:-0}))
	done
	echo "$t"
}

# Sum of proportional set size (kB) over the given PIDs (shared pages split between sharers).
bl_pss_kb() {
	local t=0 p v
	for p in "$@"; do
		v=$(awk '$1=="Pss:"{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null)
		t=$((t + ${v:-0}))
	done
	echo "$t"
}

# Busy clock ticks of the whole machine (user+nice+system+irq+softirq, all CPUs).
bl_busy_ticks() { awk -v c="cpu${1:-}" '$1==c{print $2+$3+$4+$7+$8}' /proc/stat; } # [CPU]: that one CPU only

# A few lines describing the machine and its load, for the result files.
bl_env_header() {
	local a b
	echo "# host: $(uname -srm), $(nproc) CPUs: $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)"
	echo "# memory: $(awk '/^MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo), loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
	a=$(bl_busy_ticks)
	sleep 1
	b=$(bl_busy_ticks)
	echo "# machine busy before start: $(((b - a) * 100 / BL_HZ))% of $(($(nproc) * 100))%"
}

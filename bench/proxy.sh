#!/usr/bin/env bash
# bench/proxy.sh — tapwork, HAProxy and nginx side by side in front of one upstream.
#
# usage: bench/proxy.sh [--help]          (all settings are environment variables)
#
# Everything listens on 127.0.0.1 on ports picked free at start:
#   upstream   nginx, 1 worker: GET /small (100-byte body), GET /static/64k.bin
#   tapwork    tapwork run -c GENERATED.yaml: the README's config as a user writes it
#              (listen, one site with a certificate, one backend; workers: 1, access
#              log off) and every other default: no pool or buffer tuning
#   tapwork-base   (only when named in CONTENDERS) the same config run by another
#              binary, TAPWORK_BASE_BIN: an A/B of two builds in one run
#   tapwork-tuned  (only when named in CONTENDERS) the same plus TAPWORK_TUNING, a
#              separate, labelled column
#   haproxy    nbthread 1, http-reuse always, keep-alive to the upstream
#   nginx      1 worker, upstream keepalive pool
# Each contender listens for HTTP and, when a TLS test is selected, for HTTPS
# (ALPN h2,http/1.1) with the same ECDSA P-256 certificate, made at start by a
# throw-away local CA. The upstream is plain HTTP/1.1 for everyone.
# Every contender is pinned to PROXY_CPU, the load generator and the upstream to LOAD_CPU.
# A contender that does not start, or starts but does not proxy correctly, is
# skipped with a message (the others still run); one that fails only a TLS or
# HTTP/2 check is skipped for those tests alone ("SKIP NAME TEST: reason").
#
# Tests (TESTS, run in this order; contenders alternate, the order rotates every rep):
#   small          keep-alive GET /small: requests/s, p50/p99, requests per proxy CPU-second
#   64k            keep-alive GET /static/64k.bin: MB/s (response bytes incl. headers)
#   newconn        GET /small with "Connection: close": new connections/s
#   https_small    small over TLS (wrk, CONNS keep-alive connections)
#   https_64k      64k over TLS: MB/s
#   https_newconn  one full TLS handshake per request (no session resumption):
#                  NEWCONN_CLIENTS parallel "openssl s_time -new" loops, each doing
#                  connect, handshake, GET /small with "Connection: close", close:
#                  connections/s and connections per proxy CPU-second
#   https_newconn_wrk  wrk, CONNS connections, GET /small with "Connection: close" over
#                  TLS: a new connection per request as browsers and HTTP libraries
#                  make them (wrk resumes its TLS session: abbreviated handshakes)
#   h2_small       HTTP/2 over TLS: h2load -cH2_CLIENTS -mH2_STREAMS GET /small: requests/s
#   idle           each contender restarted fresh, IDLE_CONNS idle keep-alive client
#                  connections opened (each served one request): RSS growth per connection
#
# Env knobs (defaults):
#   DUR=10 seconds per measured run     REPS=3 repetitions      CONNS=64 wrk connections
#   WARMUP=2 seconds unrecorded before each run
#   TESTS="small 64k newconn https_small https_64k https_newconn https_newconn_wrk h2_small idle"
#   CONTENDERS="tapwork haproxy nginx"  IDLE_CONNS=10000        NICE=0 (e.g. -10, needs root)
#   NEWCONN_CLIENTS=8 s_time loops      H2_CLIENTS=32 H2_STREAMS=10 (h2load -c/-m)
#   PIN=1 LOAD_CPU=0 PROXY_CPU=1        TAPWORK_BIN=build/release/tapwork
#   OUT=bench/results/<stamp>/proxy     KEEP_WORK=0 (1 keeps the scratch dir with configs/logs)
#   CPU_CAP=0  equal-CPU-cap mode: N = every contender (not the load generator or
#              the upstream) is capped to N % of one core by a cgroup (v1 cpu.cfs_quota_us,
#              or v2 cpu.max where only cgroup v2 is mounted), so that the load side is
#              never the bottleneck and requests/s compare the proxies (e.g. CPU_CAP=20);
#              CPU_CAP_<test>=N sets another cap for one test (e.g. CPU_CAP_https_newconn_wrk=12,
#              where the TLS client costs the load core most). The summary says per run whether
#              the cap bound and whether the load core had spare capacity.
#   TAPWORK_TUNING="max_idle: POOL"  backend keys of the tapwork-tuned contender
#   TAPWORK_BASE_BIN=  the binary of the tapwork-base contender (e.g. a build of main)
#   RESTART_EACH=0  1 = every contender is stopped and started fresh before each of its
#              runs (an experiment: does anything that accumulates in a long-lived
#              process change the result?); by default each starts once for all tests
# Proxy-core speed: a probe pinned to PROXY_CPU at nice 19 times a fixed piece of
#   work once a second in its own CPU time (< 1 % of the core); each run records
#   the median (core_ns: CPU ns per 1000 iterations of a Python loop, lower = faster). On a virtual machine the same guest
#   core can run the same work at half speed for seconds at a time without any
#   guest-visible load (steal 0): runs whose core_ns differs are not comparable.
#   The reading is clean under CPU_CAP (the core is mostly idle); uncapped, the probe
#   shares a busy core with the proxy and reads higher.
# Output: $OUT/runs.tsv (one row per run), $OUT/coreprobe.tsv, $OUT/state.tsv (per run: the contender's
#   RSS, open fds, and TCP connections to the upstream before and after it), $OUT/idle.tsv, $OUT/summary.txt, $OUT/env.txt, $OUT/raw/
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=lib.sh
source "$HERE/lib.sh"

bl_args "$@"

DUR=${DUR:-10}
REPS=${REPS:-3}
CONNS=${CONNS:-64}
WARMUP=${WARMUP:-2}
TESTS=${TESTS:-"small 64k newconn https_small https_64k https_newconn https_newconn_wrk h2_small idle"}
CONTENDERS=${CONTENDERS:-"tapwork haproxy nginx"}
IDLE_CONNS=${IDLE_CONNS:-10000}
NEWCONN_CLIENTS=${NEWCONN_CLIENTS:-8}
H2_CLIENTS=${H2_CLIENTS:-32}
H2_STREAMS=${H2_STREAMS:-10}
PIN=${PIN:-1}
NICE=${NICE:-0}
LOAD_CPU=${LOAD_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
TAPWORK_BIN=${TAPWORK_BIN:-$ROOT/build/release/tapwork}
OUT=${OUT:-$HERE/results/$(bl_stamp)/proxy}
KEEP_WORK=${KEEP_WORK:-0}
CPU_CAP=${CPU_CAP:-0}
RESTART_EACH=${RESTART_EACH:-0}
export PIN NICE

LOAD_TESTS=() DO_IDLE=0 NEED_TLS=0
for t in $TESTS; do
	case $t in
	small | 64k | newconn) LOAD_TESTS+=("$t") ;;
	https_small | https_64k | https_newconn | https_newconn_wrk | h2_small) LOAD_TESTS+=("$t") NEED_TLS=1 ;;
	idle) DO_IDLE=1 ;;
	*) bl_die "unknown test $t (known: small 64k newconn https_small https_64k https_newconn https_newconn_wrk h2_small idle)" ;;
	esac
done
TLS_TESTS=()
for t in "${LOAD_TESTS[@]}"; do [[ $t == https_* || $t == h2_* ]] && TLS_TESTS+=("$t"); done

bl_need wrk haproxy nginx curl taskset ss sha256sum /usr/bin/time timeout
((NEED_TLS == 0)) || bl_need openssl
mkdir -p "$OUT/raw"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tapwork-bench-proxy.XXXXXX")
chmod 755 "$WORK" # nginx workers run as nobody and read $WORK/www
[[ $KEEP_WORK == 1 ]] || BL_CLEANUP_HOOKS+=("rm -rf '$WORK'")
bl_init

# ------------------------------------------------------------------ file descriptors
# The idle test holds IDLE_CONNS sockets in the client and as many in the proxy
# (plus its upstream side); every process we start inherits this limit.
need_fd=$((IDLE_CONNS * 2 + 1024))
if (($(ulimit -n) < need_fd)); then
	ulimit -n "$need_fd" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi
if (($(ulimit -n) < IDLE_CONNS + 256)); then
	IDLE_CONNS=$(($(ulimit -n) - 256))
	bl_say "note: open-file limit is $(ulimit -n); idle test reduced to $IDLE_CONNS connections"
fi
MAXCONN=$((IDLE_CONNS + 1000))
# HAProxy sizes its fd limit as 2 per maxconn and fails when it cannot raise it
# (e.g. a container without CAP_SYS_RESOURCE); "no strict-limits" lets it start
# anyway: idle client connections need one fd each.

# ------------------------------------------------------------------ fixtures
BODY='tapwork bench: a small response of exactly one hundred bytes, padded with dots......................'
((${#BODY} == 100)) || bl_die "small body is ${#BODY} bytes"
mkdir -p "$WORK/www/static" "$WORK/logs" "$WORK/tmp"
"$BL_PY" -c 'import random,sys; sys.stdout.buffer.write(random.Random(64).randbytes(65536))' >"$WORK/www/static/64k.bin"
chmod -R a+rX "$WORK/www"
SUM64K=$(sha256sum <"$WORK/www/static/64k.bin" | cut -d' ' -f1)

report_lua='function done(s, lat, req)
  local e = s.errors
  io.write(string.format("WRK_RESULT requests=%d duration_us=%d bytes=%d errors=%d non2xx=%d p50_us=%d p99_us=%d mean_us=%d max_us=%d\n",
    s.requests, s.duration, s.bytes, e.connect + e.read + e.write + e.timeout, e.status,
    lat:percentile(50), lat:percentile(99), lat.mean, lat.max))
end'
printf '%s\n' "$report_lua" >"$WORK/keepalive.lua"
printf 'wrk.headers["Connection"] = "close"\n%s\n' "$report_lua" >"$WORK/close.lua"

# TLS: a throw-away local CA (P-256) signs one ECDSA P-256 server certificate for
# localhost and 127.0.0.1; all three proxies serve it (leaf only, no chain).
TLS=$WORK/tls
# The https_newconn request, sent by "openssl s_time -www PATH" as "GET PATH HTTP/1.0\r\n\r\n":
# the PATH below turns it into an HTTP/1.1 request like the one wrk sends in newconn
# (Host, Connection: close), ending with a harmless "X-Bench: HTTP/1.0" header.
NC_WWW=$'/small HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Bench:'
# NEWCONN_CLIENTS parallel s_time loops; every loop makes a fresh SSL object per
# connection (-new), so no session is ever offered for resumption. The client
# loads no trust store: by default s_time would scan /etc/ssl/certs for the
# issuer on every handshake, which costs the load core more than the handshake
# (the certificates were verified against the bench CA by curl before).
cat >"$WORK/stime.sh" <<'EOF_STIME'
# stime.sh CLIENTS SECS PORT OUTPREFIX WWW
n=$1 secs=$2 port=$3 out=$4 www=$5
for ((i = 0; i < n; i++)); do
	timeout $((secs + 30)) openssl s_time -connect "127.0.0.1:$port" -new -time "$secs" -www "$www" \
		-no-CAfile -no-CApath -no-CAstore >"$out.$i" 2>&1 &
done
wait
EOF_STIME
((NEED_TLS == 0)) || bl_certs "$TLS"

declare -A PORT=() TPORT=()
UP_PORT=$(bl_free_port)
for c in $CONTENDERS; do
	PORT[$c]=$(bl_free_port)
	((NEED_TLS == 0)) || TPORT[$c]=$(bl_free_port)
done

nginx_head() { # $1 = instance name
	cat <<EOF
worker_processes 1;
daemon off;
pid $WORK/logs/$1.pid;
error_log $WORK/logs/$1.error.log warn;
worker_rlimit_nofile $(ulimit -n);
events { worker_connections $((MAXCONN + 100)); }
http {
  access_log off;
  default_type application/octet-stream;
  sendfile on; tcp_nodelay on;
  keepalive_timeout 300s; keepalive_requests 1000000000;
  client_body_temp_path $WORK/tmp/$1.body; proxy_temp_path $WORK/tmp/$1.proxy;
  fastcgi_temp_path $WORK/tmp/$1.fcgi; uwsgi_temp_path $WORK/tmp/$1.uwsgi; scgi_temp_path $WORK/tmp/$1.scgi;
EOF
}

# nginx keeps at most this many idle upstream connections (as ../shared/peers/proxy-bench.sh
# configures it): enough for every request in flight (h2_small has H2_CLIENTS x
# H2_STREAMS), else it would open and close upstream connections under load.
# tapwork runs with its defaults (its pool sizes itself); tapwork-tuned gets
# TAPWORK_TUNING, by default a fixed pool of this size.
UP_POOL=$((CONNS > 64 ? CONNS : 64))
((H2_CLIENTS * H2_STREAMS <= UP_POOL)) || UP_POOL=$((H2_CLIENTS * H2_STREAMS))
TAPWORK_TUNING=${TAPWORK_TUNING:-"max_idle: $UP_POOL"}
# tapwork's config as the README shows it: listen, one site (with the
# certificate), one backend; workers: 1 and the access log off as for the peers.
tapwork_yaml() { # name extra-backend-keys
	local n=$1 extra=$2 listen="" tls="" site=""
	if ((NEED_TLS == 1)); then
		listen=", https: 127.0.0.1:${TPORT[$n]:-0}"
		tls="state_dir: $WORK/state-$n
tls: {redirect_http: false}
"
		site="
    tls: {cert: $TLS/leaf.crt, key: $TLS/leaf.key}"
		mkdir -p "$WORK/state-$n"
	fi
	echo "listen: {http: 127.0.0.1:${PORT[$n]:-0}$listen}"
	echo "workers: 1"
	echo "log: {access: \"off\", level: warn}"
	printf '%s' "$tls"
	echo "sites:"
	echo "  - hosts: [\"*\"]"
	echo "    routes: [{path: /, backend: up}]$site"
	echo "backends:"
	echo "  up:"
	echo "    servers: [127.0.0.1:$UP_PORT]"
	[[ -z $extra ]] || printf '%s\n' "$extra" | sed 's/^/    /'
}
write_configs() {
	local ng_tls="" ha_tls=""
	if ((NEED_TLS == 1)); then
		ng_tls="
    listen 127.0.0.1:${TPORT[nginx]:-0} ssl http2 backlog=4096;
    ssl_certificate $TLS/leaf.crt; ssl_certificate_key $TLS/leaf.key;
    ssl_protocols TLSv1.2 TLSv1.3;"
		ha_tls="
  bind 127.0.0.1:${TPORT[haproxy]:-0} ssl crt $TLS/combined.pem alpn h2,http/1.1 backlog 4096"
	fi
	{
		nginx_head upstream
		cat <<EOF
  server {
    listen 127.0.0.1:$UP_PORT backlog=4096;
    location = /small { default_type text/plain; return 200 "$BODY"; }
    location /static/ { root $WORK/www; }
  }
}
EOF
	} >"$WORK/upstream.conf"
	{
		nginx_head nginx
		cat <<EOF
  upstream up {
    server 127.0.0.1:$UP_PORT;
    keepalive $UP_POOL; keepalive_requests 1000000000; keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:${PORT[nginx]:-0} backlog=4096;$ng_tls
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffers 8 16k; proxy_buffer_size 16k; proxy_max_temp_file_size 0;
    }
  }
}
EOF
	} >"$WORK/nginx.conf"
	cat >"$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn $MAXCONN
  no strict-limits
defaults
  mode http
  maxconn $MAXCONN
  option http-keep-alive
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
frontend front
  bind 127.0.0.1:${PORT[haproxy]:-0} backlog 4096$ha_tls
  default_backend up
backend up
  http-reuse always
  server up1 127.0.0.1:$UP_PORT
EOF
	tapwork_yaml tapwork "" >"$WORK/tapwork.yaml"
	tapwork_yaml tapwork-tuned "$TAPWORK_TUNING" >"$WORK/tapwork-tuned.yaml"
	tapwork_yaml tapwork-base "" >"$WORK/tapwork-base.yaml"
}

# ------------------------------------------------------------------ equal CPU caps
# CPU_CAP=N: each contender runs in its own cgroup limited to N % of one core
# (cgroup v1: cpu.cfs_quota_us over a 100 ms cpu.cfs_period_us; cgroup v2 only:
# cpu.max). The process enters its cgroup before it execs (CAP_WRAP), so its
# threads and worker processes are all inside. Removed at exit.
CAP_WRAP=() CAP_KIND=none CAP_ROOT=""
if ((CPU_CAP > 0)); then
	((CPU_CAP <= 100)) || bl_die "CPU_CAP is a percentage of one core (1..100)"
	if [[ -w /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]]; then
		CAP_KIND=v1 CAP_ROOT=/sys/fs/cgroup/cpu/tapwork-bench.$$
	elif [[ -f /sys/fs/cgroup/cgroup.controllers ]] && grep -qw cpu /sys/fs/cgroup/cgroup.controllers; then
		CAP_KIND=v2 CAP_ROOT=/sys/fs/cgroup/tapwork-bench.$$
	else
		bl_die "CPU_CAP needs the cgroup cpu controller (v1 /sys/fs/cgroup/cpu or v2 with cpu), writable (root)"
	fi
	mkdir "$CAP_ROOT" || bl_die "cannot create $CAP_ROOT"
	BL_CLEANUP_HOOKS+=("cap_cleanup")
	if [[ $CAP_KIND == v2 ]]; then
		echo +cpu >"$CAP_ROOT/cgroup.subtree_control" 2>/dev/null || true
	fi
fi
cap_cleanup() {
	local d
	for d in "$CAP_ROOT"/*/; do [[ -d $d ]] && rmdir "$d" 2>/dev/null; done
	rmdir "$CAP_ROOT" 2>/dev/null || true
}
cap_of() { # test: its cap in % of a core (CPU_CAP_<test> overrides CPU_CAP; 0 without caps)
	local v=CPU_CAP_$1
	[[ $CAP_KIND != none ]] || { echo 0; return 0; }
	echo "${!v:-$CPU_CAP}"
}
cap_set() { # contender percent: set its cgroup's quota
	local d=$CAP_ROOT/$1
	((${2} >= 1 && ${2} <= 100)) || bl_die "a CPU cap is a percentage of one core (1..100), got '$2'"
	if [[ $CAP_KIND == v1 ]]; then
		echo 100000 >"$d/cpu.cfs_period_us" && echo $(($2 * 1000)) >"$d/cpu.cfs_quota_us" ||
			bl_die "cannot set the CPU quota of $d"
	else
		echo "$(($2 * 1000)) 100000" >"$d/cpu.max" || bl_die "cannot set $d/cpu.max"
	fi
}
cap_wrap() { # contender: sets CAP_WRAP (a prefix that enters its cgroup, then execs)
	CAP_WRAP=()
	[[ $CAP_KIND != none ]] || return 0
	local d=$CAP_ROOT/$1
	mkdir -p "$d"
	cap_set "$1" "$CPU_CAP"
	CAP_WRAP=(sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$d")
}
cap_stat() { # contender: "periods throttled" so far (enforcement periods, and those the quota ran out in; "0 0" without caps)
	[[ $CAP_KIND != none ]] || { echo "0 0"; return 0; }
	awk '$1=="nr_periods"{p=$2} $1=="nr_throttled"{t=$2} END{print p+0, t+0}' "$CAP_ROOT/$1/cpu.stat" 2>/dev/null || echo "0 0"
}

declare -A SKIPPED=()
skip() { # contender reason
	SKIPPED[$1]=$2
	bl_say "SKIP $1: $2"
	printf '%s\t%s\n' "$1" "$2" >>"$OUT/skipped.tsv"
}
declare -A TSKIP=() NC_LEN=()
skip_test() { # test contender reason: this contender sits out this test only
	[[ -z ${TSKIP[$1:$2]:-} ]] || return 0
	TSKIP[$1:$2]=$3
	bl_say "SKIP $2 $1: $3"
	printf '%s %s\t%s\n' "$2" "$1" "$3" >>"$OUT/skipped.tsv"
}
skip_tls_tests() { # contender reason
	local t
	for t in "${TLS_TESTS[@]}"; do skip_test "$t" "$1" "$2"; done
}

# The HTTPS side of a started contender: both paths over TLS (certificate
# verified against the bench CA), the https_newconn request through
# openssl s_client, and HTTP/2 negotiated by ALPN.
tls_checks() {
	local n=$1 base="https://127.0.0.1:${TPORT[$1]}" got ver resp
	((${#TLS_TESTS[@]} > 0)) || return 0
	if ! bl_wait_listen "${BL_PID[$n]}" "${TPORT[$n]}" 5; then
		skip_tls_tests "$n" "no HTTPS listener on 127.0.0.1:${TPORT[$n]}"
		return 0
	fi
	got=$(curl -s -m 5 --http1.1 --cacert "$TLS/ca.crt" "$base/small" 2>&1 || true)
	if [[ $got != "$BODY" ]]; then
		skip_tls_tests "$n" "GET $base/small did not return the upstream's body (got: '${got:0:80}')"
		return 0
	fi
	got=$(curl -s -m 5 --http1.1 --cacert "$TLS/ca.crt" "$base/static/64k.bin" | sha256sum | cut -d' ' -f1)
	if [[ $got != "$SUM64K" ]]; then
		skip_tls_tests "$n" "GET $base/static/64k.bin returned different bytes"
		return 0
	fi
	tls_info "$n"
	# https_newconn: the exact request s_time sends; its answer's length lets
	# the run count responses that were not this one.
	resp=$(printf 'GET %s HTTP/1.0\r\n\r\n' "$NC_WWW" |
		timeout 10 openssl s_client -quiet -connect "127.0.0.1:${TPORT[$n]}" 2>/dev/null || true)
	if [[ $resp != "HTTP/1.1 200 "* || $resp != *"$BODY" ]]; then
		skip_test https_newconn "$n" "the s_time request did not get a 200 with the upstream's body (got: '${resp:0:40}')"
	else
		NC_LEN[$n]=${#resp}
	fi
	if [[ " ${TLS_TESTS[*]} " == *" h2_small "* ]]; then
		if ! command -v h2load >/dev/null 2>&1; then
			skip_test h2_small "$n" "h2load is not installed (Debian: nghttp2-client)"
			return 0
		fi
		ver=$(curl -s -m 5 --http2 --cacert "$TLS/ca.crt" -o "$WORK/h2.body" -w '%{http_version}' "$base/small" || true)
		if [[ $ver != 2 ]]; then
			skip_test h2_small "$n" "HTTP/2 not negotiated over ALPN (curl --http2 got HTTP/${ver:-none}); h2 runs skipped"
		elif [[ $(cat "$WORK/h2.body") != "$BODY" ]]; then
			skip_test h2_small "$n" "GET /small over HTTP/2 did not return the upstream's body"
		fi
	fi
	return 0
}

# One line per contender in env.txt: what the handshake negotiates.
declare -A TLS_INFO_DONE=()
tls_info() {
	[[ -z ${TLS_INFO_DONE[$1]:-} ]] || return 0
	TLS_INFO_DONE[$1]=1
	local info
	info=$(timeout 10 openssl s_client -alpn h2,http/1.1 -connect "127.0.0.1:${TPORT[$1]}" </dev/null 2>&1 |
		awk '/^New, /{sub(/,$/, "", $2); v=$2; c=$NF} /^Server Temp Key: /{sub(/,$/, "", $4); g=$4} /^Peer signature type: /{sig=$4}
			/^ALPN protocol: /{alpn=$3} /^No ALPN/{alpn="none"}
			END{if (v != "") printf "%s %s, group %s, signature %s, ALPN %s", v, c, g, sig, alpn}')
	echo "# tls $1: ${info:-handshake failed}" | tee -a "$OUT/env.txt"
}

# Start one contender (pinned to PROXY_CPU) and check that it proxies both
# test paths correctly. Returns 1, with a message, when it cannot be used.
start_contender() {
	local n=$1 log=$WORK/logs/$1.out got
	cap_wrap "$n"
	case $n in
	tapwork | tapwork-tuned | tapwork-base)
		local bin=$TAPWORK_BIN
		[[ $n != tapwork-base ]] || bin=${TAPWORK_BASE_BIN:-}
		if [[ ! -x $bin ]]; then
			skip "$n" "no executable at '$bin' (build it with make, or set TAPWORK_BIN / TAPWORK_BASE_BIN)"
			return 1
		fi
		bl_spawn "$n" "$log" "$PROXY_CPU" "${CAP_WRAP[@]}" "$bin" run -c "$WORK/$n.yaml"
		;;
	haproxy) bl_spawn "$n" "$log" "$PROXY_CPU" "${CAP_WRAP[@]}" haproxy -db -f "$WORK/haproxy.cfg" ;;
	nginx) bl_spawn "$n" "$log" "$PROXY_CPU" "${CAP_WRAP[@]}" nginx -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/logs/nginx.error.log" ;;
	*) bl_die "unknown contender $n (known: tapwork tapwork-base tapwork-tuned haproxy nginx)" ;;
	esac
	if ! bl_wait_listen "${BL_PID[$n]}" "${PORT[$n]}" 5; then
		if kill -0 "${BL_PID[$n]}" 2>/dev/null; then
			skip "$n" "it did not listen on 127.0.0.1:${PORT[$n]} within 5 s"
		else
			wait "${BL_PID[$n]}" && got=0 || got=$?
			skip "$n" "it exited with status $got instead of listening"
		fi
		bl_say "    last lines of its output ($log):"
		grep -v '^[[:space:]]*$' "$log" | tail -n 4 | sed 's/^/      /' >&2
		bl_stop "$n"
		return 1
	fi
	got=$(curl -s -m 5 "http://127.0.0.1:${PORT[$n]}/small" || true)
	if [[ $got != "$BODY" ]]; then
		skip "$n" "GET /small did not return the upstream's body (got: '${got:0:80}')"
		bl_stop "$n"
		return 1
	fi
	got=$(curl -s -m 5 "http://127.0.0.1:${PORT[$n]}/static/64k.bin" | sha256sum | cut -d' ' -f1)
	if [[ $got != "$SUM64K" ]]; then
		skip "$n" "GET /static/64k.bin returned different bytes"
		bl_stop "$n"
		return 1
	fi
	((NEED_TLS == 0)) || tls_checks "$n"
	return 0
}

# ------------------------------------------------------------------ one measured run
tcp_active_opens() { awk '$1=="Tcp:"{n++; if (n==2) print $6}' /proc/net/snmp; }

# LOADCMD = the load generator of test $1 against contender $2 for $3 seconds,
# writing to files named $4.*
load_cmd() {
	local t=$1 n=$2 secs=$3 raw=$4 path=/small lua=keepalive.lua scheme=http port=${PORT[$2]}
	case $t in
	64k | https_64k) path=/static/64k.bin ;;
	newconn | https_newconn_wrk) lua=close.lua ;;
	esac
	[[ $t == https_* || $t == h2_* ]] && scheme=https port=${TPORT[$n]}
	case $t in
	# s_time runs until the wall clock second passes start+SECS: SECS-1 started
	# just after a second boundary lasts ~SECS (see newconn_align).
	https_newconn) LOADCMD=(bash "$WORK/stime.sh" "$NEWCONN_CLIENTS" $((secs > 1 ? secs - 1 : 1)) "$port" "$raw.stime" "$NC_WWW") ;;
	h2_small) LOADCMD=(h2load -t1 -c"$H2_CLIENTS" -m"$H2_STREAMS" -D "$secs" --log-file "$WORK/h2load.log" "https://127.0.0.1:$port$path") ;;
	*) LOADCMD=(wrk -t1 -c"$CONNS" -d"${secs}s" --latency -s "$WORK/$lua" "$scheme://127.0.0.1:$port$path") ;;
	esac
}
# s_time checks the time in whole seconds: start all clients just after a
# second boundary so that they stop together.
newconn_align() { sleep "$(date +%N | awk '{printf "%.3f", 1.02 - $1 / 1e9}')"; }

# The contender's state: RSS (KiB), open fds, and its TCP connections to the
# upstream (established, and in any other state), all its processes summed.
proc_state() { # pids...
	local p fds=0 est=0 other=0 pat
	for p in "$@"; do fds=$((fds + $(find "/proc/$p/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l))); done
	pat=$(printf 'pid=%s,|' "$@")
	pat=${pat%|}
	est=$(ss -Htnp state established "( dport = :$UP_PORT )" 2>/dev/null | grep -Ec "$pat" || true)
	other=$(ss -Htnp state all "( dport = :$UP_PORT )" 2>/dev/null | grep -Ev '^ESTAB' | grep -Ec "$pat" || true)
	printf '%s\t%s\t%s\t%s' "$(bl_status_kb VmRSS "$@")" "$fds" "$est" "$other"
}

run_one() { # test contender rep
	local t=$1 n=$2 rep=$3 raw=$OUT/raw/$1.$2.$3 pids upids st0
	if [[ -n ${TSKIP[$t:$n]:-} ]]; then
		printf '  %-13s %-8s rep %s: skipped (%s)\n' "$t" "$n" "$rep" "${TSKIP[$t:$n]}"
		return 0
	fi
	if ((RESTART_EACH == 1)) && [[ -z ${SKIPPED[$n]:-} ]]; then
		bl_stop "$n"
		start_contender "$n" >/dev/null || return 0
	fi
	if ! kill -0 "${BL_PID[$n]:-0}" 2>/dev/null; then
		[[ -n ${SKIPPED[$n]:-} ]] || skip "$n" "the process died during the load tests (see its output in the scratch dir, KEEP_WORK=1)"
		return 0
	fi
	mapfile -t pids < <(bl_tree "${BL_PID[$n]}")
	mapfile -t upids < <(bl_tree "${BL_PID[upstream]}")
	[[ $CAP_KIND == none ]] || cap_set "$n" "$(cap_of "$t")"
	st0=$(proc_state "${pids[@]}")
	if ((WARMUP > 0)); then
		load_cmd "$t" "$n" "$WARMUP" "$WORK/warmup"
		[[ $t != https_newconn ]] || newconn_align
		bl_pin "$LOAD_CPU" timeout $((WARMUP + 30)) "${LOADCMD[@]}" >/dev/null 2>&1 || true
	fi
	load_cmd "$t" "$n" "$DUR" "$raw"
	rm -f "$WORK/h2load.log"
	[[ $t != https_newconn ]] || newconn_align
	local c0 u0 b0 o0 t0 c1 u1 b1 o1 t1 k0 k1 np0 nt0 np1 nt1 lc0 lc1 cap
	cap=$(cap_of "$t")
	((cap == 0)) || cap_set "$n" "$cap" # before the warm-up too
	read -r np0 nt0 <<<"$(cap_stat "$n")"
	lc0=$(bl_busy_ticks "$LOAD_CPU")
	read -r c0 k0 <<<"$(bl_cpu_ticks_us "${pids[@]}")"
	c0=$((c0 + k0))
	u0=$(bl_cpu_ticks "${upids[@]}")
	b0=$(bl_busy_ticks)
	o0=$(tcp_active_opens)
	t0=$(date +%s.%N)
	# RSS under load: the contender's resident memory sampled every second
	# of the run (all its processes summed); the run reports the highest.
	(
		for ((i = 0; i < DUR; i++)); do
			sleep 1
			bl_status_kb VmRSS "${pids[@]}"
		done >"$raw.rss"
	) &
	local rss_pid=$!
	bl_pin "$LOAD_CPU" /usr/bin/time -f '%U %S' -o "$raw.time" \
		timeout $((DUR + 30)) "${LOADCMD[@]}" >"$raw.out" 2>&1 ||
		echo "load generator exit status $?" >>"$raw.out"
	t1=$(date +%s.%N)
	read -r c1 k1 <<<"$(bl_cpu_ticks_us "${pids[@]}")"
	c1=$((c1 + k1))
	u1=$(bl_cpu_ticks "${upids[@]}")
	b1=$(bl_busy_ticks)
	o1=$(tcp_active_opens)
	read -r np1 nt1 <<<"$(cap_stat "$n")"
	lc1=$(bl_busy_ticks "$LOAD_CPU")
	wait "$rss_pid" 2>/dev/null || true
	local rss_peak
	rss_peak=$(sort -n "$raw.rss" 2>/dev/null | tail -n 1)
	"$BL_PY" - "$t" "$n" "$rep" "$raw" "$BL_HZ" "$t0" "$t1" "$c0" "$c1" "$u0" "$u1" "$b0" "$b1" "$o0" "$o1" \
		"${rss_peak:-$(bl_status_kb VmRSS "${pids[@]}")}" "${NC_LEN[$n]:-0}" "$WORK/h2load.log" "$k0" "$k1" "$((np1 - np0))" "$((nt1 - nt0))" "$cap" "$lc0" "$lc1" "$OUT/coreprobe.tsv" >>"$OUT/runs.tsv" <<'PY'
import glob, re, sys
(t, n, rep, raw, hz, t0, t1, c0, c1, u0, u1, b0, b1, o0, o1, rss, nclen, h2log, k0, k1, nper, nthr, cap, lc0, lc1, probe) = sys.argv[1:]
try:  # the proxy core's speed during the run: median probe sample
    ps = sorted(int(l.split("\t")[1]) for l in open(probe) if l.count("\t") == 1 and float(t0) <= float(l.split("\t")[0]) <= float(t1))
except (OSError, ValueError):
    ps = []
core_ns = "%d" % ps[len(ps) // 2] if ps else "nan"
hz = float(hz); wall = float(t1) - float(t0)
proxy = (int(c1) - int(c0)) / hz; kern = (int(k1) - int(k0)) / hz; up = (int(u1) - int(u0)) / hz; busy = (int(b1) - int(b0)) / hz
try:
    lu, ls = open(raw + ".time").read().split()[-2:]; load = float(lu) + float(ls)
except Exception:
    load = 0.0
foreign = max(0.0, busy - proxy - up - load)  # CPU other tenants of the machine used meanwhile
out = open(raw + ".out", errors="replace").read()
nan = float("nan")
reqs = value = p50 = p99 = per_cpu = nan; errors = -1
if t == "https_newconn":
    # Per s_time client: one mark per connection ('*' full handshake, 'r' resumed),
    # then "N connections in Xs; ... bytes read B". A correct run reads N times
    # the probe's response length; anything else counts as wrong responses.
    L = int(nclen); conns = 0; ok_conns = 0; nbytes = 0; failed = 0; resumed = 0
    for fn in sorted(glob.glob(raw + ".stime.*")):
        txt = open(fn, errors="replace").read()
        mk = re.search(r"seconds\n([^\n]*)", txt)
        marks = mk.group(1) if mk else ""
        resumed += marks.count("r")
        m = re.search(r"(\d+) connections in [\d.]+s; [\d.]+ connections/user sec, bytes read (\d+)", txt)
        if m:
            conns += int(m.group(1)); ok_conns += int(m.group(1)); nbytes += int(m.group(2))
        else:
            failed += 1; conns += len(marks)
    if conns > 0 and L > 0:
        reqs = value = conns / wall
        per_cpu = conns / proxy if proxy > 0 else nan
        errors = failed + resumed + -(-abs(nbytes - ok_conns * L) // L)
elif t == "h2_small":
    fin = re.search(r"finished in ([\d.]+)s", out)
    rq = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", out)
    sc = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    proto = re.search(r"Application protocol: (\S+)", out)
    if fin and rq and sc and proto and proto.group(1) == "h2" and float(fin.group(1)) > 0:
        ok = int(sc.group(1))
        reqs = value = ok / float(fin.group(1))
        per_cpu = ok / proxy if proxy > 0 else nan
        errors = sum(int(rq.group(i)) for i in (5, 6, 7)) + sum(int(sc.group(i)) for i in (2, 3, 4))
        try:  # --log-file: start time, status, microseconds to the end of the response
            lat = sorted(int(l.split("\t")[2]) for l in open(h2log) if l.count("\t") >= 2)
        except OSError:
            lat = []
        if lat:
            p50 = lat[len(lat) // 2] / 1000; p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1000
else:
    m = re.search(r"WRK_RESULT (.*)", out)
    if m:
        d = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
        secs = d["duration_us"] / 1e6
        reqs = d["requests"] / secs
        value = d["bytes"] / secs / 1e6 if t.endswith("64k") else reqs
        p50, p99 = d["p50_us"] / 1000, d["p99_us"] / 1000
        errors = d["errors"] + d["non2xx"]
        per_cpu = d["requests"] / proxy if proxy > 0 else nan
unit = {"small": "req/s", "64k": "MB/s", "newconn": "conn/s", "https_small": "req/s", "https_64k": "MB/s",
        "https_newconn": "conn/s", "https_newconn_wrk": "conn/s", "h2_small": "req/s"}[t]
g = lambda x: "nan" if x != x else "%.3f" % x
print("\t".join([t, n, rep, g(value), unit, g(reqs), g(p50), g(p99), str(errors), g(per_cpu),
                 "%.1f" % (100 * proxy / wall), "%.1f" % (100 * up / wall), "%.1f" % (100 * load / wall),
                 "%.1f" % (100 * foreign / wall), "%.0f" % ((int(o1) - int(o0)) / wall), "%.1f" % (int(rss) / 1024),
                 "%.2f" % wall, "%.1f" % (100 * kern / proxy if proxy > 0 else float("nan")),
                 "%.1f" % (100 * (up + load) / wall),
                 "%.1f" % (100 * int(nthr) / int(nper)) if int(nper) > 0 else "nan", cap,
                 "%.1f" % (100 * (int(lc1) - int(lc0)) / hz / wall), core_ns]))
PY
	rm -f "$WORK/h2load.log"
	printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$n" "$rep" "$st0" "$(proc_state "${pids[@]}")" >>"$OUT/state.tsv"
	tail -n 1 "$OUT/runs.tsv" | awk -F'\t' '{lat = $7 == "nan" ? "" : sprintf("p50 %s ms  p99 %s ms  ", $7, $8)
		cap = $20 == "nan" ? "" : sprintf("  throttled %s%% of periods", $20)
		printf "  %-13s %-8s rep %s: %12.1f %-6s %serrors %s  %9.0f req/CPU-s  proxy CPU %s%%  load side (upstream+load) %s%%  foreign %s%%%s  core %s ns\n", $1, $2, $3, $4, $5, lat, $9, $10, $11, $19, $14, cap, $23}'
}

# ------------------------------------------------------------------ idle connection memory
idle_one() { # contender
	local n=$1 pids ready=$WORK/idle.$1.ready r0 p0 r1 p1 est i status
	if [[ -n ${SKIPPED[$n]:-} ]]; then
		echo "  $n: skipped (${SKIPPED[$n]})"
		return 0
	fi
	start_contender "$n" || return 0
	curl -s -m 5 -o /dev/null "http://127.0.0.1:${PORT[$n]}/small" || true
	sleep 0.5
	mapfile -t pids < <(bl_tree "${BL_PID[$n]}")
	r0=$(bl_status_kb VmRSS "${pids[@]}")
	p0=$(bl_pss_kb "${pids[@]}")
	rm -f "$ready"
	bl_spawn idle "$WORK/logs/idle.$n.out" "$LOAD_CPU" "$BL_PY" "$HERE/idle_conns.py" \
		127.0.0.1 "${PORT[$n]}" "$IDLE_CONNS" "$ready" --hold 180
	for ((i = 0; i < 1800; i++)); do # at most 180 s
		[[ -f $ready ]] && break
		kill -0 "${BL_PID[idle]}" 2>/dev/null || break
		sleep 0.1
	done
	if [[ ! -f $ready ]]; then
		bl_say "idle $n: the client did not finish opening connections; see $WORK/logs/idle.$n.out"
		tail -n 3 "$WORK/logs/idle.$n.out" >&2 || true
		bl_stop idle
		bl_stop "$n"
		return 0
	fi
	sleep 1
	mapfile -t pids < <(bl_tree "${BL_PID[$n]}")
	r1=$(bl_status_kb VmRSS "${pids[@]}")
	p1=$(bl_pss_kb "${pids[@]}")
	est=$(ss -Htn state established "( sport = :${PORT[$n]} )" | wc -l)
	status=$(cat "$ready")
	bl_stop idle
	bl_stop "$n"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "${status//[^0-9 ]/}" "$est" "$r0" "$r1" "$p0" "$p1" "$IDLE_CONNS" |
		awk -F'\t' 'BEGIN{OFS="\t"} {split($2,s," "); n=$8; print $1, s[1], s[2], $3, $4, $5, $6, $7, sprintf("%.0f", ($5-$4)*1024/n), sprintf("%.0f", ($7-$6)*1024/n)}' >>"$OUT/idle.tsv"
	tail -n 1 "$OUT/idle.tsv" | awk -F'\t' '{printf "  %-8s %s idle connections open (%s failed, %s established at the proxy): RSS %d -> %d KiB = %s B/conn (PSS %s B/conn)\n", $1, $2, $3, $4, $5, $6, $9, $10}'
}

# ------------------------------------------------------------------ summary
summarize() {
	CPU_CAP=$CPU_CAP "$BL_PY" - "$OUT/runs.tsv" "$OUT/idle.tsv" "$OUT/skipped.tsv" <<'PY'
import csv, os, statistics as st, sys
skipped = dict(l.rstrip("\n").split("\t", 1) for l in open(sys.argv[3])) if os.path.exists(sys.argv[3]) else {}
runs = list(csv.DictReader(open(sys.argv[1]), delimiter="\t")) if os.path.exists(sys.argv[1]) else []
idle = list(csv.DictReader(open(sys.argv[2]), delimiter="\t")) if os.path.exists(sys.argv[2]) else []
nan = float("nan")
def num(x):
    try: return float(x)
    except ValueError: return nan
def med(rows, k):
    v = [num(r[k]) for r in rows if num(r[k]) == num(r[k])]
    return st.median(v) if v else nan
def f(x, d=0):
    return "-" if x != x else ("%.*f" % (d, x))
def ratio(a, b):
    return "-" if a != a or b != b or b == 0 else "%.2f" % (a / b)
tests = list(dict.fromkeys(r["test"] for r in runs))
names = list(dict.fromkeys(r["contender"] for r in runs))
out = []
hdr = ["test", "contender", "value", "unit", "min..max", "p50_ms", "p99_ms", "req/CPU-s", "proxyCPU%",
       "kernel%", "foreign%", "errors", "x_haproxy", "x_nginx", "eff_x_haproxy", "p99_x_haproxy", "RSS_MB", "rss_x_haproxy"]
table = []
M = {}
for t in tests:
    for n in names:
        rs = [r for r in runs if r["test"] == t and r["contender"] == n]
        if not rs: continue
        vals = [num(r["value"]) for r in rs]
        m = {k: med(rs, k) for k in ("value", "p50_ms", "p99_ms", "req_per_cpu_s", "proxy_cpu_pct", "foreign_cpu_pct",
                                   "proxy_kernel_pct", "rss_mb", "load_side_pct", "throttled_pct", "cap_pct",
                                   "load_core_busy_pct")}
        m["errors"] = sum(int(r["errors"]) for r in rs); m["unit"] = rs[0]["unit"]; m["n"] = len(rs)
        dec = 1 if t.endswith("64k") else 0
        m["range"] = "%s..%s" % (f(min(vals), dec), f(max(vals), dec))
        M[t, n] = m
    for n in names:
        if (t, n) not in M: continue
        m = M[t, n]; ha = M.get((t, "haproxy"), {}); ng = M.get((t, "nginx"), {})
        table.append([t, n, f(m["value"], 1 if t.endswith("64k") else 0), m["unit"], m["range"], f(m["p50_ms"], 3), f(m["p99_ms"], 3),
                      f(m["req_per_cpu_s"]), f(m["proxy_cpu_pct"]), f(m["proxy_kernel_pct"]), f(m["foreign_cpu_pct"]), str(m["errors"]),
                      ratio(m["value"], ha.get("value", nan)), ratio(m["value"], ng.get("value", nan)),
                      ratio(m["req_per_cpu_s"], ha.get("req_per_cpu_s", nan)), ratio(m["p99_ms"], ha.get("p99_ms", nan)),
                      f(m["rss_mb"], 1), ratio(m["rss_mb"], ha.get("rss_mb", nan))])
def show(hdr, rows):
    w = [max(len(str(x)) for x in col) for col in zip(hdr, *rows)]
    for row in [hdr] + rows:
        out.append("  ".join(str(x).rjust(w[i]) if i > 1 else str(x).ljust(w[i]) for i, x in enumerate(row)))
if table:
    out.append("Load tests: medians over %d rep(s); x_haproxy/x_nginx = value ratio, eff_x_haproxy = req/CPU-s ratio," % max(m["n"] for m in M.values()))
    out.append("p99_x_haproxy = p99 ratio (lower is better). kernel% = share of the proxy's CPU spent in the kernel")
    out.append("(system time). foreign% = CPU used by other tenants during the run. RSS_MB = the proxy's peak resident")
    out.append("memory under load (sampled every second of the run, all its processes; median over the reps).")
    show(hdr, table)
cores = [num(r.get("core_ns", "nan")) for r in runs]
cores = [c for c in cores if c == c]
if cores:
    lo, hi = min(cores), max(cores)
    out.append("proxy core speed (core_ns per run, lower = faster): %.0f..%.0f ns, slowest run %.2fx the fastest%s" %
               (lo, hi, hi / lo, "; runs on a slower core are not comparable: see runs.tsv" if hi / lo > 1.15 else ""))
I = {r["contender"]: r for r in idle}
if idle:
    out.append("")
    out.append("Idle keep-alive connections: RSS growth of the proxy divided by the connections held.")
    rows = []
    for n, r in I.items():
        ha = I.get("haproxy")
        rows.append([n, r["ok"], r["failed"], r["established"], r["rss0_kb"], r["rss1_kb"], r["rss_b_per_conn"], r["pss_b_per_conn"],
                     ratio(num(r["rss_b_per_conn"]), num(ha["rss_b_per_conn"])) if ha else "-"])
    show(["contender", "held", "failed", "established", "RSS0_KiB", "RSS1_KiB", "B/conn", "PSS_B/conn", "x_haproxy"], rows)
def tgt(label, a, b, want, le=False):
    if a != a or b != b or b == 0:
        out.append("  %-52s  n/a" % label); return
    r = a / b; ok = r <= want if le else r >= want
    out.append("  %-52s  %.2f  %s" % (label, r, "met" if ok else "NOT met"))
s = lambda t, n, k: M.get((t, n), {}).get(k, nan)
def best(t, k):  # the better of HAProxy and nginx
    v = [x for x in (s(t, "haproxy", k), s(t, "nginx", k)) if x == x]
    return max(v) if v else nan
def ceiling(t):
    # The kernel time per request is what is left if tapwork's user-space work cost
    # nothing: HAProxy's CPU per request over that is the best req/CPU-s ratio any
    # user-space change can reach with the same system calls.
    e, h, k = s(t, "tapwork", "req_per_cpu_s"), s(t, "haproxy", "req_per_cpu_s"), s(t, "tapwork", "proxy_kernel_pct")
    if e == e and h == h and k == k and k > 0 and h > 0:
        out.append("  %-52s  %.2f  (tapwork's kernel time alone; user time %.0f%%)" %
                   ("%s: req/CPU-s ceiling vs HAProxy at zero user time" % t, (e / h) / (k / 100), 100 - k))
ran = set(tests) | ({"idle"} if idle else set())
if any(n == "tapwork" for n in names) or "tapwork" in I:
    if ran & {"small", "64k", "idle"}:
        out.append("")
        out.append("tapwork targets (issue 2):")
    if "small" in ran:
        tgt("small: req/CPU-s >= 1.3x HAProxy", s("small", "tapwork", "req_per_cpu_s"), s("small", "haproxy", "req_per_cpu_s"), 1.3)
        ceiling("small")
        tgt("small: req/s >= 1.3x HAProxy", s("small", "tapwork", "value"), s("small", "haproxy", "value"), 1.3)
        tgt("small: p99 <= HAProxy's", s("small", "tapwork", "p99_ms"), s("small", "haproxy", "p99_ms"), 1.0, le=True)
    if "64k" in ran:
        tgt("64k: MB/s >= nginx's", s("64k", "tapwork", "value"), s("64k", "nginx", "value"), 1.0)
    if "idle" in ran:
        b = num(I["tapwork"]["rss_b_per_conn"]) if "tapwork" in I else nan
        tgt("idle: bytes per connection <= 1024 (B/conn/1024)", b, 1024.0, 1.0, le=True)
    if ran & {"https_small", "https_newconn", "h2_small", "https_64k"}:
        out.append("")
        out.append("tapwork targets (issue 3):")
    if "https_small" in ran:
        tgt("https_small: req/s >= 1.2x HAProxy", s("https_small", "tapwork", "value"), s("https_small", "haproxy", "value"), 1.2)
        tgt("https_small: req/CPU-s >= 1.2x HAProxy", s("https_small", "tapwork", "req_per_cpu_s"), s("https_small", "haproxy", "req_per_cpu_s"), 1.2)
        ceiling("https_small")
    if "https_newconn" in ran:
        tgt("https_newconn: conn/s >= 1.1x max(HAProxy, nginx)", s("https_newconn", "tapwork", "value"), best("https_newconn", "value"), 1.1)
        tgt("https_newconn: conn/CPU-s >= 1.1x max(HAProxy, nginx)", s("https_newconn", "tapwork", "req_per_cpu_s"), best("https_newconn", "req_per_cpu_s"), 1.1)
    if "h2_small" in ran:
        tgt("h2_small: req/s >= 1.2x HAProxy", s("h2_small", "tapwork", "value"), s("h2_small", "haproxy", "value"), 1.2)
    if "https_64k" in ran:
        tgt("https_64k: MB/s >= nginx's", s("https_64k", "tapwork", "value"), s("https_64k", "nginx", "value"), 1.0)
if any(n == "tapwork" for n in names):
    out.append("")
    out.append("tapwork targets (issue 13: README defaults, per proxy CPU-second):")
    if "h2_small" in ran:
        tgt("h2_small: req/CPU-s >= 1.0x HAProxy", s("h2_small", "tapwork", "req_per_cpu_s"), s("h2_small", "haproxy", "req_per_cpu_s"), 1.0)
    for t in ("https_newconn", "https_newconn_wrk"):
        if t in ran:
            tgt("%s: conn/CPU-s >= 1.0x max(HAProxy, nginx)" % t, s(t, "tapwork", "req_per_cpu_s"), best(t, "req_per_cpu_s"), 1.0)
    if "https_newconn_wrk" in ran:
        tgt("https_newconn_wrk: p99 <= HAProxy's", s("https_newconn_wrk", "tapwork", "p99_ms"), s("https_newconn_wrk", "haproxy", "p99_ms"), 1.0, le=True)
    for t in ("small", "https_small", "newconn", "64k", "https_64k"):
        if t in ran:
            tgt("%s: req/CPU-s >= 1.15x HAProxy" % t, s(t, "tapwork", "req_per_cpu_s"), s(t, "haproxy", "req_per_cpu_s"), 1.15)
cap = int(os.environ.get("CPU_CAP", "0") or 0)
def cap_bound(t, n):
    # Held by its cap: it used (nearly) all of its quota, and ran out of it in most
    # 100 ms enforcement periods.
    c, th, q = s(t, n, "proxy_cpu_pct"), s(t, n, "throttled_pct"), s(t, n, "cap_pct")
    return c == c and th == th and q == q and c >= 0.9 * q and th >= 50
reniced = int(os.environ.get("NICE", "0") or 0) < 0
def load_spare(t, n):
    # The load generator and the upstream kept spare capacity on their core: they
    # used < 90 % of it, and either the core was not full (others' work included)
    # or they ran reniced (NICE < 0) ahead of the other tenants' work.
    v, b = s(t, n, "load_side_pct"), s(t, n, "load_core_busy_pct")
    return v == v and v < 90 and (reniced or (b == b and b < 95))
if cap > 0 and table:
    out.append("")
    out.append("Equal CPU caps (cap%% of one core per contender, CPU_CAP=%d unless CPU_CAP_<test> set): is each run bound by its cap?" % cap)
    out.append("cap-bound = proxy CPU >= 90% of the cap and the quota ran out in >= 50% of the 100 ms periods;")
    out.append("loadside% = CPU of the load generator + upstream (of one core), loadcore% = how busy their core was (anyone's")
    out.append("work); load spare = loadside% < 90 and (loadcore% < 95 or NICE < 0). Medians over the reps.")
    rows = []
    for t in tests:
        for n in names:
            if (t, n) not in M: continue
            rows.append([t, n, f(s(t, n, "cap_pct")), f(s(t, n, "proxy_cpu_pct"), 1), f(s(t, n, "throttled_pct"), 0),
                         "yes" if cap_bound(t, n) else "NO", f(s(t, n, "load_side_pct"), 1), f(s(t, n, "load_core_busy_pct"), 1),
                         "yes" if load_spare(t, n) else "NO", f(s(t, n, "foreign_cpu_pct"), 1)])
    show(["test", "contender", "cap%", "proxyCPU%", "throttled%", "cap-bound", "loadside%", "loadcore%", "load spare", "foreign%"], rows)
if any(n == "tapwork" for n in names):
    if cap > 0:
        out.append("")
        out.append("tapwork targets under equal CPU caps (the cap% above; requests/s; shown only where")
        out.append("tapwork and HAProxy were both cap-bound and the load side had spare capacity):")
        for t, want in (("small", 1.2), ("https_small", 1.2), ("h2_small", 1.0), ("https_newconn", 1.0), ("https_newconn_wrk", 1.0)):
            if t not in ran: continue
            label = "%s: req/s >= %.1fx HAProxy" % (t, want)
            why = [("%s not cap-bound" % n) for n in ("tapwork", "haproxy") if (t, n) in M and not cap_bound(t, n)]
            why += [("load side saturated under %s" % n) for n in ("tapwork", "haproxy") if (t, n) in M and not load_spare(t, n)]
            if why:
                out.append("  %-52s  %s  not shown (%s)" % (label, ratio(s(t, "tapwork", "value"), s(t, "haproxy", "value")), "; ".join(why)))
            else:
                tgt(label, s(t, "tapwork", "value"), s(t, "haproxy", "value"), want)
for n, why in skipped.items():
    out.append("SKIPPED %s: %s" % (n, why))
print("\n".join(out))
PY
}

# ------------------------------------------------------------------ main
write_configs
{
	echo "# proxy bench $(date -u +%FT%TZ)"
	bl_env_header
	echo "# $(haproxy -v | head -n 1)"
	echo "# $(nginx -v 2>&1)"
	echo "# $(wrk -v 2>&1 | head -n 1)"
	if ((NEED_TLS == 1)); then
		echo "# $(openssl version); $(h2load --version 2>/dev/null | head -n 1 || echo 'h2load: not installed')"
		echo "# certificate: $(openssl x509 -in "$TLS/leaf.crt" -noout -subject -ext subjectAltName 2>/dev/null | tr -s ' \n' ' ')($(openssl pkey -in "$TLS/leaf.key" -noout -text 2>/dev/null | awk '/NIST CURVE|ASN1 OID/{print $NF; exit}'))"
		echo "# NEWCONN_CLIENTS=$NEWCONN_CLIENTS H2_CLIENTS=$H2_CLIENTS H2_STREAMS=$H2_STREAMS ports(https): $(for c in $CONTENDERS; do printf '%s=%s ' "$c" "${TPORT[$c]}"; done)"
	fi
	echo "# tapwork: $TAPWORK_BIN ($("$TAPWORK_BIN" version 2>/dev/null | head -n 1 || echo not available))"
	echo "# DUR=$DUR REPS=$REPS CONNS=$CONNS WARMUP=$WARMUP TESTS='$TESTS' CONTENDERS='$CONTENDERS' IDLE_CONNS=$IDLE_CONNS"
	echo "# PIN=$PIN LOAD_CPU=$LOAD_CPU PROXY_CPU=$PROXY_CPU NICE=$NICE ulimit-n=$(ulimit -n)"
	if ((CPU_CAP > 0)); then
		echo "# CPU_CAP=$CPU_CAP: every contender capped to $CPU_CAP% of one core (cgroup $CAP_KIND: $([[ $CAP_KIND == v1 ]] && echo "cpu.cfs_quota_us=$((CPU_CAP * 1000)) cpu.cfs_period_us=100000" || echo "cpu.max=$((CPU_CAP * 1000)) 100000"))"
	fi
	echo "# tapwork config: README defaults (no pool/buffer keys); tapwork-tuned (when run) adds: ${TAPWORK_TUNING//$'\n'/; }"
	echo "# ports: upstream=$UP_PORT $(for c in $CONTENDERS; do printf '%s=%s ' "$c" "${PORT[$c]}"; done)"
} | tee "$OUT/env.txt"

bl_spawn upstream "$WORK/logs/upstream.out" "$LOAD_CPU" nginx -p "$WORK" -c "$WORK/upstream.conf" -e "$WORK/logs/upstream.error.log"
bl_wait_listen "${BL_PID[upstream]}" "$UP_PORT" 5 || bl_die "the upstream nginx did not start: $(tail -n 3 "$WORK/logs/upstream.out" "$WORK/logs/upstream.error.log" 2>/dev/null)"
[[ $(curl -s -m 5 "http://127.0.0.1:$UP_PORT/small") == "$BODY" ]] || bl_die "the upstream does not serve /small"

# the proxy-core speed probe (see the header): epoch seconds, CPU ns per work unit
taskset -c "$PROXY_CPU" nice -n 19 "$BL_PY" -u -c '
import sys, time
while True:
    c0 = time.thread_time_ns(); x = 0
    for i in range(20000): x += i * i
    print("%.3f\t%d" % (time.time(), (time.thread_time_ns() - c0) // 20), flush=True)
    time.sleep(1)' >"$OUT/coreprobe.tsv" 2>/dev/null &
BL_PID[coreprobe]=$!

printf 'test\tcontender\trep\tvalue\tunit\treq_s\tp50_ms\tp99_ms\terrors\treq_per_cpu_s\tproxy_cpu_pct\tupstream_cpu_pct\tload_cpu_pct\tforeign_cpu_pct\tnew_tcp_per_s\trss_mb\twall_s\tproxy_kernel_pct\tload_side_pct\tthrottled_pct\tcap_pct\tload_core_busy_pct\tcore_ns\n' >"$OUT/runs.tsv"
printf 'test\tcontender\trep\trss0_kb\tfds0\tup_est0\tup_other0\trss1_kb\tfds1\tup_est1\tup_other1\n' >"$OUT/state.tsv"
printf 'contender\tok\tfailed\testablished\trss0_kb\trss1_kb\tpss0_kb\tpss1_kb\trss_b_per_conn\tpss_b_per_conn\n' >"$OUT/idle.tsv"

RUNNING=()
if ((${#LOAD_TESTS[@]} > 0)); then
	for c in $CONTENDERS; do
		if start_contender "$c"; then RUNNING+=("$c"); fi
	done
	((${#RUNNING[@]} > 0)) || bl_die "no contender could be started"
	echo "contenders: ${RUNNING[*]}"
	for t in "${LOAD_TESTS[@]}"; do
		case $t in
		https_newconn) shape="$NEWCONN_CLIENTS s_time clients, a full TLS handshake per request" ;;
		https_newconn_wrk) shape="wrk, $CONNS connections, Connection: close over TLS (resumed sessions)" ;;
		h2_small) shape="h2load, $H2_CLIENTS connections x $H2_STREAMS streams" ;;
		*) shape="wrk, $CONNS connections" ;;
		esac
		echo "== $t (${DUR}s per run, $shape)"
		for ((rep = 1; rep <= REPS; rep++)); do
			k=$(((rep - 1) % ${#RUNNING[@]}))
			for c in "${RUNNING[@]:k}" "${RUNNING[@]:0:k}"; do run_one "$t" "$c" "$rep"; done
		done
	done
	for c in "${RUNNING[@]}"; do bl_stop "$c"; done
fi
if ((DO_IDLE == 1 && IDLE_CONNS > 0)); then
	echo "== idle: $IDLE_CONNS idle keep-alive connections per contender (fresh processes)"
	for c in $CONTENDERS; do idle_one "$c"; done
fi

summarize | tee "$OUT/summary.txt"
echo "results: $OUT"

#!/usr/bin/env bash
# bench/proxy.sh — tapwork, HAProxy and nginx side by side in front of one upstream.
#
# usage: bench/proxy.sh [--help]          (all settings are environment variables)
#
# Everything listens on 127.0.0.1 on ports picked free at start:
#   upstream   nginx, 1 worker: GET /small (100-byte body), GET /static/64k.bin
#   tapwork    tapwork run -c GENERATED.yaml (workers: 1, access log off)
#   haproxy    nbthread 1, http-reuse always, keep-alive to the upstream
#   nginx      1 worker, upstream keepalive pool
# Every contender is pinned to PROXY_CPU, wrk (-t1) and the upstream to LOAD_CPU.
# A contender that does not start, or starts but does not proxy correctly, is
# skipped with a message (the others still run).
#
# Tests (TESTS, run in this order; contenders alternate, the order rotates every rep):
#   small    keep-alive GET /small: requests/s, p50/p99, requests per proxy CPU-second
#   64k      keep-alive GET /static/64k.bin: MB/s (response bytes incl. headers)
#   newconn  GET /small with "Connection: close": new connections/s
#   idle     each contender restarted fresh, IDLE_CONNS idle keep-alive client
#            connections opened (each served one request): RSS growth per connection
#
# Env knobs (defaults):
#   DUR=10 seconds per measured run     REPS=3 repetitions      CONNS=64 wrk connections
#   WARMUP=2 seconds unrecorded before each run                 TESTS="small 64k newconn idle"
#   CONTENDERS="tapwork haproxy nginx"  IDLE_CONNS=10000        NICE=0 (e.g. -10, needs root)
#   PIN=1 LOAD_CPU=0 PROXY_CPU=1        TAPWORK_BIN=build/release/tapwork
#   OUT=bench/results/<stamp>/proxy     KEEP_WORK=0 (1 keeps the scratch dir with configs/logs)
# Output: $OUT/runs.tsv (one row per run), $OUT/idle.tsv, $OUT/summary.txt, $OUT/env.txt, $OUT/raw/
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=lib.sh
source "$HERE/lib.sh"

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	exit 0
fi
[[ $# -eq 0 ]] || bl_die "no arguments expected (settings are env variables; see --help)"

DUR=${DUR:-10}
REPS=${REPS:-3}
CONNS=${CONNS:-64}
WARMUP=${WARMUP:-2}
TESTS=${TESTS:-"small 64k newconn idle"}
CONTENDERS=${CONTENDERS:-"tapwork haproxy nginx"}
IDLE_CONNS=${IDLE_CONNS:-10000}
PIN=${PIN:-1}
NICE=${NICE:-0}
LOAD_CPU=${LOAD_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
TAPWORK_BIN=${TAPWORK_BIN:-$ROOT/build/release/tapwork}
OUT=${OUT:-$HERE/results/$(bl_stamp)/proxy}
KEEP_WORK=${KEEP_WORK:-0}
export PIN NICE

bl_need wrk haproxy nginx curl taskset ss sha256sum /usr/bin/time timeout
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

declare -A PORT=()
UP_PORT=$(bl_free_port)
for c in $CONTENDERS; do PORT[$c]=$(bl_free_port); done

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

write_configs() {
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
    keepalive 64; keepalive_requests 1000000000; keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:${PORT[nginx]:-0} backlog=4096;
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
  bind 127.0.0.1:${PORT[haproxy]:-0} backlog 4096
  default_backend up
backend up
  http-reuse always
  server up1 127.0.0.1:$UP_PORT
EOF
	cat >"$WORK/tapwork.yaml" <<EOF
listen: {http: 127.0.0.1:${PORT[tapwork]:-0}}
workers: 1
log: {access: "off", level: warn}
sites:
  - hosts: ["*"]
    routes: [{path: /, backend: up}]
backends:
  up:
    servers: [127.0.0.1:$UP_PORT]
EOF
}

declare -A SKIPPED=()
skip() { # contender reason
	SKIPPED[$1]=$2
	bl_say "SKIP $1: $2"
	printf '%s\t%s\n' "$1" "$2" >>"$OUT/skipped.tsv"
}

# Start one contender (pinned to PROXY_CPU) and check that it proxies both
# test paths correctly. Returns 1, with a message, when it cannot be used.
start_contender() {
	local n=$1 log=$WORK/logs/$1.out got
	case $n in
	tapwork)
		if [[ ! -x $TAPWORK_BIN ]]; then
			skip tapwork "no executable at $TAPWORK_BIN (build it with make, or set TAPWORK_BIN)"
			return 1
		fi
		bl_spawn "$n" "$log" "$PROXY_CPU" "$TAPWORK_BIN" run -c "$WORK/tapwork.yaml"
		;;
	haproxy) bl_spawn "$n" "$log" "$PROXY_CPU" haproxy -db -f "$WORK/haproxy.cfg" ;;
	nginx) bl_spawn "$n" "$log" "$PROXY_CPU" nginx -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/logs/nginx.error.log" ;;
	*) bl_die "unknown contender $n (known: tapwork haproxy nginx)" ;;
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
	return 0
}

# ------------------------------------------------------------------ one measured run
tcp_active_opens() { awk '$1=="Tcp:"{n++; if (n==2) print $6}' /proc/net/snmp; }

run_one() { # test contender rep
	local t=$1 n=$2 rep=$3 raw=$OUT/raw/$1.$2.$3 url lua pids upids
	case $t in
	small) url=/small lua=keepalive.lua ;;
	64k) url=/static/64k.bin lua=keepalive.lua ;;
	newconn) url=/small lua=close.lua ;;
	esac
	url="http://127.0.0.1:${PORT[$n]}$url"
	if ! kill -0 "${BL_PID[$n]:-0}" 2>/dev/null; then
		[[ -n ${SKIPPED[$n]:-} ]] || skip "$n" "the process died during the load tests (see its output in the scratch dir, KEEP_WORK=1)"
		return 0
	fi
	mapfile -t pids < <(bl_tree "${BL_PID[$n]}")
	mapfile -t upids < <(bl_tree "${BL_PID[upstream]}")
	if ((WARMUP > 0)); then
		bl_pin "$LOAD_CPU" timeout $((WARMUP + 30)) wrk -t1 -c"$CONNS" -d"${WARMUP}s" -s "$WORK/$lua" "$url" >/dev/null 2>&1 || true
	fi
	local c0 u0 b0 o0 t0 c1 u1 b1 o1 t1
	c0=$(bl_cpu_ticks "${pids[@]}")
	u0=$(bl_cpu_ticks "${upids[@]}")
	b0=$(bl_busy_ticks)
	o0=$(tcp_active_opens)
	t0=$(date +%s.%N)
	bl_pin "$LOAD_CPU" /usr/bin/time -f '%U %S' -o "$raw.time" \
		timeout $((DUR + 30)) wrk -t1 -c"$CONNS" -d"${DUR}s" --latency -s "$WORK/$lua" "$url" >"$raw.wrk" 2>&1 ||
		echo "wrk exit status $?" >>"$raw.wrk"
	t1=$(date +%s.%N)
	c1=$(bl_cpu_ticks "${pids[@]}")
	u1=$(bl_cpu_ticks "${upids[@]}")
	b1=$(bl_busy_ticks)
	o1=$(tcp_active_opens)
	"$BL_PY" - "$t" "$n" "$rep" "$raw" "$BL_HZ" "$t0" "$t1" "$c0" "$c1" "$u0" "$u1" "$b0" "$b1" "$o0" "$o1" \
		"$(bl_status_kb VmRSS "${pids[@]}")" >>"$OUT/runs.tsv" <<'PY'
import re, sys
(t, n, rep, raw, hz, t0, t1, c0, c1, u0, u1, b0, b1, o0, o1, rss) = sys.argv[1:]
hz = float(hz); wall = float(t1) - float(t0)
proxy = (int(c1) - int(c0)) / hz; up = (int(u1) - int(u0)) / hz; busy = (int(b1) - int(b0)) / hz
try:
    lu, ls = open(raw + ".time").read().split()[-2:]; load = float(lu) + float(ls)
except Exception:
    load = 0.0
foreign = max(0.0, busy - proxy - up - load)  # CPU other tenants of the machine used meanwhile
m = re.search(r"WRK_RESULT (.*)", open(raw + ".wrk", errors="replace").read())
nan = float("nan")
if m:
    d = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    secs = d["duration_us"] / 1e6
    reqs = d["requests"] / secs
    value = d["bytes"] / secs / 1e6 if t == "64k" else reqs
    p50, p99 = d["p50_us"] / 1000, d["p99_us"] / 1000
    errors = d["errors"] + d["non2xx"]
    per_cpu = d["requests"] / proxy if proxy > 0 else nan
else:
    reqs = value = p50 = p99 = per_cpu = nan; errors = -1
unit = {"small": "req/s", "64k": "MB/s", "newconn": "conn/s"}[t]
g = lambda x: "nan" if x != x else "%.3f" % x
print("\t".join([t, n, rep, g(value), unit, g(reqs), g(p50), g(p99), str(errors), g(per_cpu),
                 "%.1f" % (100 * proxy / wall), "%.1f" % (100 * up / wall), "%.1f" % (100 * load / wall),
                 "%.1f" % (100 * foreign / wall), "%.0f" % ((int(o1) - int(o0)) / wall), "%.0f" % (int(rss) / 1024),
                 "%.2f" % wall]))
PY
	tail -n 1 "$OUT/runs.tsv" | awk -F'\t' '{printf "  %-8s %-8s rep %s: %12.1f %-6s p50 %.3f ms  p99 %.3f ms  errors %s  %9.0f req/CPU-s  proxy CPU %s%%  foreign %s%%\n", $1, $2, $3, $4, $5, $7, $8, $9, $10, $11, $14}'
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
	"$BL_PY" - "$OUT/runs.tsv" "$OUT/idle.tsv" "$OUT/skipped.tsv" <<'PY'
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
       "foreign%", "errors", "x_haproxy", "x_nginx", "eff_x_haproxy", "p99_x_haproxy"]
table = []
M = {}
for t in tests:
    for n in names:
        rs = [r for r in runs if r["test"] == t and r["contender"] == n]
        if not rs: continue
        vals = [num(r["value"]) for r in rs]
        m = {k: med(rs, k) for k in ("value", "p50_ms", "p99_ms", "req_per_cpu_s", "proxy_cpu_pct", "foreign_cpu_pct")}
        m["errors"] = sum(int(r["errors"]) for r in rs); m["unit"] = rs[0]["unit"]; m["n"] = len(rs)
        m["range"] = "%s..%s" % (f(min(vals), 1 if t == "64k" else 0), f(max(vals), 1 if t == "64k" else 0))
        M[t, n] = m
    for n in names:
        if (t, n) not in M: continue
        m = M[t, n]; ha = M.get((t, "haproxy"), {}); ng = M.get((t, "nginx"), {})
        table.append([t, n, f(m["value"], 1 if t == "64k" else 0), m["unit"], m["range"], f(m["p50_ms"], 3), f(m["p99_ms"], 3),
                      f(m["req_per_cpu_s"]), f(m["proxy_cpu_pct"]), f(m["foreign_cpu_pct"]), str(m["errors"]),
                      ratio(m["value"], ha.get("value", nan)), ratio(m["value"], ng.get("value", nan)),
                      ratio(m["req_per_cpu_s"], ha.get("req_per_cpu_s", nan)), ratio(m["p99_ms"], ha.get("p99_ms", nan))])
def show(hdr, rows):
    w = [max(len(str(x)) for x in col) for col in zip(hdr, *rows)]
    for row in [hdr] + rows:
        out.append("  ".join(str(x).rjust(w[i]) if i > 1 else str(x).ljust(w[i]) for i, x in enumerate(row)))
if table:
    out.append("Load tests: medians over %d rep(s); x_haproxy/x_nginx = value ratio, eff_x_haproxy = req/CPU-s ratio," % max(m["n"] for m in M.values()))
    out.append("p99_x_haproxy = p99 ratio (lower is better). foreign% = CPU used by other tenants during the run.")
    show(hdr, table)
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
if any(n == "tapwork" for n in names) or "tapwork" in I:
    out.append("")
    out.append("tapwork targets (issue 2):")
    def tgt(label, a, b, want, le=False):
        if a != a or b != b or b == 0:
            out.append("  %-44s  n/a" % label); return
        r = a / b; ok = r <= want if le else r >= want
        out.append("  %-44s  %.2f  %s" % (label, r, "met" if ok else "NOT met"))
    s = lambda t, n, k: M.get((t, n), {}).get(k, nan)
    tgt("small: req/CPU-s >= 1.3x HAProxy", s("small", "tapwork", "req_per_cpu_s"), s("small", "haproxy", "req_per_cpu_s"), 1.3)
    tgt("small: req/s >= 1.3x HAProxy", s("small", "tapwork", "value"), s("small", "haproxy", "value"), 1.3)
    tgt("small: p99 <= HAProxy's", s("small", "tapwork", "p99_ms"), s("small", "haproxy", "p99_ms"), 1.0, le=True)
    tgt("64k: MB/s >= nginx's", s("64k", "tapwork", "value"), s("64k", "nginx", "value"), 1.0)
    b = num(I["tapwork"]["rss_b_per_conn"]) if "tapwork" in I else nan
    tgt("idle: bytes per connection <= 1024 (B/conn/1024)", b, 1024.0, 1.0, le=True)
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
	echo "# tapwork: $TAPWORK_BIN ($("$TAPWORK_BIN" version 2>/dev/null | head -n 1 || echo not available))"
	echo "# DUR=$DUR REPS=$REPS CONNS=$CONNS WARMUP=$WARMUP TESTS='$TESTS' CONTENDERS='$CONTENDERS' IDLE_CONNS=$IDLE_CONNS"
	echo "# PIN=$PIN LOAD_CPU=$LOAD_CPU PROXY_CPU=$PROXY_CPU NICE=$NICE ulimit-n=$(ulimit -n)"
	echo "# ports: upstream=$UP_PORT $(for c in $CONTENDERS; do printf '%s=%s ' "$c" "${PORT[$c]}"; done)"
} | tee "$OUT/env.txt"

bl_spawn upstream "$WORK/logs/upstream.out" "$LOAD_CPU" nginx -p "$WORK" -c "$WORK/upstream.conf" -e "$WORK/logs/upstream.error.log"
bl_wait_listen "${BL_PID[upstream]}" "$UP_PORT" 5 || bl_die "the upstream nginx did not start: $(tail -n 3 "$WORK/logs/upstream.out" "$WORK/logs/upstream.error.log" 2>/dev/null)"
[[ $(curl -s -m 5 "http://127.0.0.1:$UP_PORT/small") == "$BODY" ]] || bl_die "the upstream does not serve /small"

LOAD_TESTS=() DO_IDLE=0
for t in $TESTS; do
	case $t in
	small | 64k | newconn) LOAD_TESTS+=("$t") ;;
	idle) DO_IDLE=1 ;;
	*) bl_die "unknown test $t (known: small 64k newconn idle)" ;;
	esac
done

printf 'test\tcontender\trep\tvalue\tunit\treq_s\tp50_ms\tp99_ms\terrors\treq_per_cpu_s\tproxy_cpu_pct\tupstream_cpu_pct\tload_cpu_pct\tforeign_cpu_pct\tnew_tcp_per_s\trss_mb\twall_s\n' >"$OUT/runs.tsv"
printf 'contender\tok\tfailed\testablished\trss0_kb\trss1_kb\tpss0_kb\tpss1_kb\trss_b_per_conn\tpss_b_per_conn\n' >"$OUT/idle.tsv"

RUNNING=()
if ((${#LOAD_TESTS[@]} > 0)); then
	for c in $CONTENDERS; do
		if start_contender "$c"; then RUNNING+=("$c"); fi
	done
	((${#RUNNING[@]} > 0)) || bl_die "no contender could be started"
	echo "contenders: ${RUNNING[*]}"
	for t in "${LOAD_TESTS[@]}"; do
		echo "== $t (${DUR}s per run, $CONNS connections)"
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

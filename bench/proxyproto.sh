#!/usr/bin/env bash
# bench/proxyproto.sh — issue 14, side by side in one run (medians of REPS):
#   tls_newconn  new TLS connections per proxy CPU-second, HAProxy (mode tcp) in
#                front of each contender: tapwork with proxy_protocol (HAProxy sends
#                send-proxy-v2), tapwork without it (HAProxy sends nothing), nginx
#                `listen ... ssl proxy_protocol` (send-proxy-v2). Load: NEWCONN_CLIENTS
#                `openssl s_time -new` loops through HAProxy. Only the proxy's CPU counts.
#   ratelimit    requests per proxy CPU-second on a rate-limited route (a policy that
#                never limits: the cost of the check) vs the same route unlimited, and
#                nginx with limit_req on the same route (wrk, keep-alive, CONNS).
#   ppwait       RSS of tapwork holding WAIT_CONNS connections that have not sent
#                their PROXY header yet (bench/idle_conns.py --no-request).
#
# Knobs: DUR=8 REPS=3 CONNS=64 NEWCONN_CLIENTS=8 WAIT_CONNS=10000 PROXY_CPU=1 LOAD_CPU=0
#        PIN=1 TESTS="tls_newconn ratelimit ppwait" TAPWORK_BIN=build/release/tapwork
# Everything on 127.0.0.1, free ports, stopped by PID; every load run is bounded by DUR.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
if [[ ${1:-} == --help ]]; then sed -n '2,17p' "$0"; exit 0; fi

DUR=${DUR:-8} REPS=${REPS:-3} CONNS=${CONNS:-64} NEWCONN_CLIENTS=${NEWCONN_CLIENTS:-8}
WAIT_CONNS=${WAIT_CONNS:-10000} PROXY_CPU=${PROXY_CPU:-1} LOAD_CPU=${LOAD_CPU:-0}
TESTS=${TESTS:-"tls_newconn ratelimit ppwait"}
TW=${TAPWORK_BIN:-build/release/tapwork}
bl_need wrk haproxy nginx openssl curl taskset ss timeout
OUT=${OUT:-bench/results/$(bl_stamp)/proxyproto}
mkdir -p "$OUT/raw"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tapwork-bench-pp.XXXXXX")
chmod 755 "$WORK"
BL_CLEANUP_HOOKS+=("rm -rf '$WORK'")
bl_init
need_fd=$((WAIT_CONNS * 2 + 1024))
(($(ulimit -n) >= need_fd)) || ulimit -n "$need_fd" 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# ---- certificates (ECDSA P-256, bl_certs)
TLS=$WORK/tls
mkdir -p "$TLS" "$WORK/logs" "$WORK/tmp" "$WORK/state"
bl_certs "$TLS"

P() { bl_free_port; }
UP=$(P) TW_PP_TLS=$(P) TW_PP_HTTP=$(P) TW_PLAIN_TLS=$(P) TW_PLAIN_HTTP=$(P) NG_TLS=$(P) NG_HTTP=$(P)
HA_TWPP=$(P) HA_TWPLAIN=$(P) HA_NG=$(P) ADMIN=$(P)
BODY='tapwork bench: a small response of exactly one hundred bytes, padded with dots......................'

ngx_head() {
	cat <<EOF
worker_processes 1;
daemon off;
pid $WORK/logs/$1.pid;
error_log $WORK/logs/$1.error.log warn;
worker_rlimit_nofile $(ulimit -n);
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_timeout 300s; keepalive_requests 1000000000;
  client_body_temp_path $WORK/tmp/$1.b; proxy_temp_path $WORK/tmp/$1.p;
  fastcgi_temp_path $WORK/tmp/$1.f; uwsgi_temp_path $WORK/tmp/$1.u; scgi_temp_path $WORK/tmp/$1.s;
EOF
}
{ ngx_head upstream; cat <<EOF
  server { listen 127.0.0.1:$UP backlog=4096; location / { default_type text/plain; return 200 "$BODY"; } }
}
EOF
} >"$WORK/upstream.conf"
{ ngx_head nginx; cat <<EOF
  upstream up { server 127.0.0.1:$UP; keepalive 128; }
  limit_req_zone \$binary_remote_addr zone=z:16m rate=100000000r/s;
  server {
    listen 127.0.0.1:$NG_TLS ssl proxy_protocol backlog=4096;
    ssl_certificate $TLS/leaf.crt; ssl_certificate_key $TLS/leaf.key; ssl_protocols TLSv1.2 TLSv1.3;
    set_real_ip_from 127.0.0.1; real_ip_header proxy_protocol;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  server {
    listen 127.0.0.1:$NG_HTTP backlog=4096;
    location /rl { limit_req zone=z burst=1000 nodelay; proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF
} >"$WORK/nginx.conf"
tw_conf() { # name tls_port http_port pp(0/1)
	cat <<EOF
listen: {http: 127.0.0.1:$3, https: 127.0.0.1:$2}
workers: 1
state_dir: $WORK/state
log: {access: "off", level: warn}
tls: {redirect_http: false}
$( (($4)) && printf 'proxy_protocol: {from: [127.0.0.1], listeners: [https], timeout: 60s}\n')
rate_limits:
  rl: {rate: 100000000/s, burst: 1000}
sites:
  - hosts: ["*"]
    tls: {cert: $TLS/leaf.crt, key: $TLS/leaf.key}
    routes: [{path: /rl, backend: up, rate_limit: rl}, {path: /, backend: up}]
backends:
  up: {servers: [127.0.0.1:$UP], max_idle: 128}
EOF
}
tw_conf tw_pp "$TW_PP_TLS" "$TW_PP_HTTP" 1 >"$WORK/tw_pp.yaml"
tw_conf tw_plain "$TW_PLAIN_TLS" "$TW_PLAIN_HTTP" 0 >"$WORK/tw_plain.yaml"
cat >"$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 20000
  no strict-limits
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
listen twpp
  bind 127.0.0.1:$HA_TWPP backlog 4096
  server s 127.0.0.1:$TW_PP_TLS send-proxy-v2
listen twplain
  bind 127.0.0.1:$HA_TWPLAIN backlog 4096
  server s 127.0.0.1:$TW_PLAIN_TLS
listen ng
  bind 127.0.0.1:$HA_NG backlog 4096
  server s 127.0.0.1:$NG_TLS send-proxy-v2
EOF

bl_spawn upstream "$WORK/logs/upstream.out" "$LOAD_CPU" nginx -p "$WORK" -c "$WORK/upstream.conf"
bl_spawn nginx "$WORK/logs/nginx.out" "$PROXY_CPU" nginx -p "$WORK" -c "$WORK/nginx.conf"
bl_spawn tw_pp "$WORK/logs/tw_pp.out" "$PROXY_CPU" "$TW" run -c "$WORK/tw_pp.yaml"
bl_spawn tw_plain "$WORK/logs/tw_plain.out" "$PROXY_CPU" "$TW" run -c "$WORK/tw_plain.yaml"
bl_spawn haproxy "$WORK/logs/haproxy.out" "$LOAD_CPU" haproxy -db -f "$WORK/haproxy.cfg"
for pp in "upstream $UP" "nginx $NG_TLS" "tw_pp $TW_PP_TLS" "tw_plain $TW_PLAIN_TLS" "haproxy $HA_NG"; do
	set -- $pp
	bl_wait_listen "${BL_PID[$1]}" "$2" 10 || bl_die "$1 did not start: $(tail -n 5 "$WORK/logs/$1.out")"
done
# correctness first: every path answers the upstream's body
for port in $HA_TWPP $HA_TWPLAIN $HA_NG; do
	got=$(curl -sS --noproxy '*' --cacert "$TLS/ca.crt" "https://localhost:$port/x" --resolve "localhost:$port:127.0.0.1") || true
	[[ $got == "$BODY" ]] || bl_die "https via HAProxy :$port answered '${got:0:60}'"
done
for url in "http://127.0.0.1:$TW_PP_HTTP/rl" "http://127.0.0.1:$NG_HTTP/rl"; do
	[[ $(curl -sS --noproxy '*' "$url") == "$BODY" ]] || bl_die "$url does not answer the body"
done

procs_of() { # contender -> PIDs whose CPU counts
	case $1 in
	nginx) bl_tree "${BL_PID[nginx]}" ;;
	tw_pp | tw_plain) echo "${BL_PID[$1]}" ;;
	esac
}
{
	bl_env_header
	echo "# tapwork: $("$TW" version 2>/dev/null | head -1); $(haproxy -v | head -1); $(nginx -v 2>&1)"
	echo "# DUR=$DUR REPS=$REPS CONNS=$CONNS NEWCONN_CLIENTS=$NEWCONN_CLIENTS WAIT_CONNS=$WAIT_CONNS PROXY_CPU=$PROXY_CPU LOAD_CPU=$LOAD_CPU"
} >"$OUT/env.txt"
printf 'test\tcontender\trep\tcount\tcpu_s\tper_cpu_s\n' >"$OUT/runs.tsv"

measure() { # test contender rep pids-contender -- cmd... ; prints count per CPU-second
	local t=$1 c=$2 rep=$3 who=$4
	shift 5
	local pids a b count
	pids=$(procs_of "$who")
	a=$(bl_cpu_ticks $pids)
	"$@" >"$OUT/raw/$t.$c.$rep" 2>&1 || true
	b=$(bl_cpu_ticks $pids)
	case $t in
	tls_newconn) count=$(awk '/connections in [0-9.]+ real seconds/{n+=$1} END{print n+0}' "$OUT/raw/$t.$c.$rep".* 2>/dev/null) ;;
	*) count=$(awk -F'requests=' '/WRK_RESULT/{split($2,a," "); print a[1]}' "$OUT/raw/$t.$c.$rep") ;;
	esac
	"$BL_PY" -c "import sys; n,t=$count,($b-$a)/$BL_HZ; print(f'$t\t$c\t$rep\t{n}\t{t:.2f}\t{(n/t if t else 0):.1f}')" | tee -a "$OUT/runs.tsv" >&2
}
stime() { # port outprefix
	local i pids=()
	for ((i = 0; i < NEWCONN_CLIENTS; i++)); do
		bl_pin "$LOAD_CPU" timeout $((DUR + 30)) openssl s_time -connect "127.0.0.1:$1" -new -time "$DUR" -www /x \
			-no-CAfile -no-CApath -no-CAstore >"$2.$i" 2>&1 &
		pids+=($!)
	done
	wait "${pids[@]}" # only these: the proxies are children of this shell too
}
printf 'function done(s, lat, req) io.write(string.format("WRK_RESULT requests=%%d errors=%%d non2xx=%%d\\n", s.requests, s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout, s.errors.status)) end\n' >"$WORK/report.lua"
wrk_run() { bl_pin "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DUR}s" -s "$WORK/report.lua" "$1"; }

for ((rep = 1; rep <= REPS; rep++)); do
	for t in $TESTS; do
		case $t in
		tls_newconn)
			# rotate the order every repetition
			order=(tw_pp tw_plain nginx)
			for ((k = 0; k < rep - 1; k++)); do order=("${order[@]:1}" "${order[0]}"); done
			for c in "${order[@]}"; do
				case $c in tw_pp) port=$HA_TWPP ;; tw_plain) port=$HA_TWPLAIN ;; nginx) port=$HA_NG ;; esac
				measure tls_newconn "$c" "$rep" "$c" -- stime "$port" "$OUT/raw/tls_newconn.$c.$rep"
			done
			;;
		ratelimit)
			order=(tw_limited tw_unlimited nginx_limit_req)
			for ((k = 0; k < rep - 1; k++)); do order=("${order[@]:1}" "${order[0]}"); done
			for c in "${order[@]}"; do
				case $c in
				tw_limited) measure ratelimit "$c" "$rep" tw_pp -- wrk_run "http://127.0.0.1:$TW_PP_HTTP/rl" ;;
				tw_unlimited) measure ratelimit "$c" "$rep" tw_pp -- wrk_run "http://127.0.0.1:$TW_PP_HTTP/free" ;;
				nginx_limit_req) measure ratelimit "$c" "$rep" nginx -- wrk_run "http://127.0.0.1:$NG_HTTP/rl" ;;
				esac
			done
			;;
		esac
	done
done

if [[ " $TESTS " == *" ppwait "* ]] && ((WAIT_CONNS > 0)); then
	pid=${BL_PID[tw_pp]}
	before=$(bl_status_kb VmRSS "$pid")
	ready=$WORK/idle.ready
	bl_spawn idle "$WORK/logs/idle.out" "$LOAD_CPU" "$BL_PY" bench/idle_conns.py 127.0.0.1 "$TW_PP_TLS" "$WAIT_CONNS" "$ready" --no-request --hold 60
	for ((i = 0; i < 600; i++)); do
		[[ -s $ready ]] && break
		sleep 0.1
	done
	sleep 1
	after=$(bl_status_kb VmRSS "$pid")
	printf 'ppwait\ttw_pp\t1\t%s\t-\t%s\n' "$(cat "$ready" 2>/dev/null)" "$((after - before))" >>"$OUT/runs.tsv"
	echo "ppwait: $(cat "$ready" 2>/dev/null) connections waiting for their PROXY header: RSS $before -> $after KiB (+$(((after - before))) KiB, $(((after - before) * 1024 / (WAIT_CONNS > 0 ? WAIT_CONNS : 1))) B each)" | tee "$OUT/ppwait.txt" >&2
	bl_stop idle
fi

"$BL_PY" - "$OUT/runs.tsv" >"$OUT/summary.txt" <<'EOF_PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
med = {}
for t, c, rep, n, cpu, per in rows:
    if t == "ppwait":
        continue
    med.setdefault((t, c), []).append(float(per))
m = {k: statistics.median(v) for k, v in med.items()}
print("median per proxy CPU-second (runs.tsv has every run)")
for (t, c), v in sorted(m.items()):
    print(f"  {t:12s} {c:16s} {v:10.1f}")
def ratio(t, a, b):
    if (t, a) in m and (t, b) in m and m[(t, b)]:
        print(f"  {t}: {a} / {b} = {m[(t, a)] / m[(t, b)]:.3f}")
print("ratios")
ratio("tls_newconn", "tw_pp", "nginx")
ratio("tls_newconn", "tw_pp", "tw_plain")
ratio("ratelimit", "tw_limited", "tw_unlimited")
ratio("ratelimit", "tw_limited", "nginx_limit_req")
EOF_PY
cat "$OUT/summary.txt" >&2
[[ ! -f $OUT/ppwait.txt ]] || cat "$OUT/ppwait.txt" >&2

#!/usr/bin/env bash
# bench/reqbuf.sh — what request buffering (issue 17) costs: the same tapwork
# binary twice side by side, `request_buffering: on` (the default) and `off`,
# in front of one nginx upstream.
#
#   post1k   keep-alive POSTs with a 1 KiB body (wrk -t1 -cCONNS, a Lua script):
#            requests per CPU-second of the tapwork process (and req/s)
#   upload   UPLOAD_MIB MiB POSTed by curl (one connection, Content-Length):
#            MB/s end to end, per contender
#
# Runs alternate (on, off, off, on, ...), REPS each; medians and the ratio
# on/off are printed. Tapwork is pinned to CPU $TW_CPU (0), wrk/curl and nginx
# to $LOAD_CPU (1). All on 127.0.0.1, stopped by PID on exit.
#
#   DUR=10 REPS=3 CONNS=64 UPLOAD_MIB=512 bench/reqbuf.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$HERE/lib.sh"
bl_init
bl_need wrk nginx curl taskset
DUR=${DUR:-10}
REPS=${REPS:-3}
CONNS=${CONNS:-64}
UPLOAD_MIB=${UPLOAD_MIB:-512}
TW_CPU=${TW_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
TW=${TAPWORK_BIN:-$HERE/../build/release/tapwork}
[[ -x $TW ]] || bl_die "no tapwork binary at $TW (make release)"
STAMP=$(bl_stamp)
OUT=$HERE/results/$STAMP/reqbuf
WORK=$(mktemp -d /tmp/tw-reqbuf.XXXXXX)
BL_CLEANUP_HOOKS+=("rm -rf '$WORK'")
mkdir -p "$OUT/raw" "$WORK/logs" "$WORK/tmp"

UP_PORT=$(bl_free_port)
cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/logs/nginx.pid;
error_log $WORK/logs/nginx.error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_timeout 300s; keepalive_requests 1000000000;
  client_max_body_size 0; client_body_buffer_size 1m;
  client_body_temp_path $WORK/tmp/body; proxy_temp_path $WORK/tmp/proxy;
  fastcgi_temp_path $WORK/tmp/fcgi; uwsgi_temp_path $WORK/tmp/uwsgi; scgi_temp_path $WORK/tmp/scgi;
  server {
    listen 127.0.0.1:$UP_PORT backlog=4096;
    location / { default_type text/plain; return 200 "ok\n"; }
  }
}
EOF
bl_spawn nginx "$WORK/logs/nginx.out" "$LOAD_CPU" nginx -c "$WORK/nginx.conf" -e "$WORK/logs/nginx.error.log"
bl_wait_listen "${BL_PID[nginx]}" "$UP_PORT" 5 || bl_die "nginx did not start"

declare -A PORT=()
for mode in on off; do
	PORT[$mode]=$(bl_free_port)
	adm=$(bl_free_port)
	cat >"$WORK/tw-$mode.yaml" <<EOF
listen: {http: 127.0.0.1:${PORT[$mode]}}
workers: 1
admin: {listen: 127.0.0.1:$adm}
log: {access: "off", level: warn}
sites:
  - hosts: ["*"]
    routes: [{path: /, backend: up, request_buffering: $mode}]
backends:
  up: {servers: [127.0.0.1:$UP_PORT], max_idle: 256}
EOF
	bl_spawn "tw-$mode" "$WORK/logs/tw-$mode.log" "$TW_CPU" "$TW" run -c "$WORK/tw-$mode.yaml"
	bl_wait_listen "${BL_PID[tw-$mode]}" "${PORT[$mode]}" 5 || bl_die "tapwork ($mode) did not start"
done

head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 >"$WORK/body1k"
cat >"$WORK/post.lua" <<EOF
local f = io.open("$WORK/body1k", "rb"); local b = f:read("*a"); f:close()
wrk.method = "POST"; wrk.body = b; wrk.headers["Content-Type"] = "application/octet-stream"
EOF
head -c $((UPLOAD_MIB * 1048576)) /dev/zero >"$WORK/upload.bin"

{
	echo "date: $(date -u +%FT%TZ)  host: $(hostname)  nproc: $(nproc)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "tapwork: $("$TW" version 2>/dev/null | head -1)  nginx: $(nginx -v 2>&1)  wrk: $(wrk -v 2>&1 | head -1)"
	echo "DUR=$DUR REPS=$REPS CONNS=$CONNS UPLOAD_MIB=$UPLOAD_MIB TW_CPU=$TW_CPU LOAD_CPU=$LOAD_CPU"
} >"$OUT/env.txt"
printf 'test\tmode\trep\treq_s\tcpu_s\treq_per_cpu_s\tmb_s\n' >"$OUT/runs.tsv"

run_post() { # mode rep
	local mode=$1 rep=$2 pid=${BL_PID[tw-$1]} t0 t1 raw=$OUT/raw/post1k-$1-$2.txt
	bl_pin "$LOAD_CPU" wrk -t1 -c"$CONNS" -d2s -s "$WORK/post.lua" "http://127.0.0.1:${PORT[$mode]}/p" >/dev/null
	t0=$(bl_cpu_ticks "$pid")
	bl_pin "$LOAD_CPU" timeout $((DUR + 30)) wrk -t1 -c"$CONNS" -d"${DUR}s" -s "$WORK/post.lua" \
		"http://127.0.0.1:${PORT[$mode]}/p" >"$raw"
	t1=$(bl_cpu_ticks "$pid")
	local rps errs cpu
	rps=$(awk '/^Requests\/sec:/{print $2}' "$raw")
	errs=$(awk '/Non-2xx|Socket errors/{print}' "$raw")
	[[ -z $errs ]] || bl_say "post1k $mode: $errs"
	cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$BL_HZ" 'BEGIN{printf "%.3f", (b-a)/hz}')
	awk -v m="$mode" -v r="$rep" -v rps="$rps" -v c="$cpu" -v d="$DUR" \
		'BEGIN{printf "post1k\t%s\t%s\t%.0f\t%s\t%.0f\t-\n", m, r, rps, c, rps*d/c}' >>"$OUT/runs.tsv"
}

run_upload() { # mode rep
	local mode=$1 rep=$2 t
	t=$(bl_pin "$LOAD_CPU" timeout 120 curl -sS -o /dev/null -w '%{speed_upload}' -H 'Expect:' \
		--data-binary "@$WORK/upload.bin" "http://127.0.0.1:${PORT[$mode]}/u")
	awk -v m="$mode" -v r="$rep" -v s="$t" 'BEGIN{printf "upload\t%s\t%s\t-\t-\t-\t%.1f\n", m, r, s/1e6}' >>"$OUT/runs.tsv"
}

for ((rep = 1; rep <= REPS; rep++)); do
	if ((rep % 2)); then order="on off"; else order="off on"; fi
	for mode in $order; do run_post "$mode" "$rep"; done
	for mode in $order; do run_upload "$mode" "$rep"; done
done

median() { sort -g | awk '{a[NR]=$1} END{print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
col() { awk -F'\t' -v t="$1" -v m="$2" -v c="$3" '$1==t && $2==m {print $c}' "$OUT/runs.tsv" | median; }
{
	echo "request buffering, same binary: on (default) vs off; medians of $REPS"
	for m in on off; do
		printf 'post1k %-3s  %8.0f req/s  %8.0f req/CPU-s\n' "$m" "$(col post1k "$m" 4)" "$(col post1k "$m" 6)"
	done
	awk -v a="$(col post1k on 6)" -v b="$(col post1k off 6)" 'BEGIN{printf "post1k req/CPU-s on/off = %.3f\n", a/b}'
	for m in on off; do printf 'upload %-3s  %8.1f MB/s (%s MiB, one connection)\n' "$m" "$(col upload "$m" 7)" "$UPLOAD_MIB"; done
	awk -v a="$(col upload on 7)" -v b="$(col upload off 7)" 'BEGIN{printf "upload MB/s on/off = %.3f\n", a/b}'
} | tee "$OUT/summary.txt"
ln -sfn "$STAMP" "$HERE/results/latest"

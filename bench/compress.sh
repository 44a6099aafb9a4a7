#!/usr/bin/env bash
# bench/compress.sh — response compression and static files: tapwork vs nginx 1.22 (issue 15).
#
# One run, side by side, same corpus (jquery, bootstrap.css and d3 from Debian's libjs-*
# packages, a generated 64 KiB JSON, an HTML page, a JPEG that must pass untouched).
# An nginx without gzip is the origin; the contenders (one worker each, pinned to CPU
# $PROXY_CPU) proxy it and compress, or serve the files themselves:
#   compression: tapwork gzip-1 / zstd-3 / br (default quality 5) vs nginx gzip_comp_level 1 and 6
#                figure: input MB per contender CPU-second, and output bytes per file
#   latency:     tapwork zstd-3 vs tapwork without compression, one connection: p99 added
#   static:      tapwork handler: static vs nginx root, a 64 KiB file: requests per CPU-second,
#                over HTTP/1.1 and over HTTPS (TLS 1.3, the same ECDSA P-256 certificate)
#   precompressed: tapwork precompressed: [gzip] vs nginx gzip_static, same file
# Every decoded answer is checked against the file (a contender that answers wrongly is
# reported, not measured). Knobs: DUR (5 s per run), REPS (3, medians), CONNS (8),
# PROXY_CPU (0), LOAD_CPU (1), TAPWORK_BIN, TESTS ("comp latency static": a subset runs
# only those load runs).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bl_init
[[ ${1:-} == --help ]] && { sed -n '2,18p' "$0"; exit 0; }
DUR=${DUR:-5} REPS=${REPS:-3} CONNS=${CONNS:-8} PROXY_CPU=${PROXY_CPU:-0} LOAD_CPU=${LOAD_CPU:-1}
TESTS=${TESTS:-"comp latency static"}
TW=${TAPWORK_BIN:-$HERE/../build/release/tapwork}
bl_need nginx wrk curl gzip zstd brotli taskset openssl
[[ -x $TW ]] || bl_die "no tapwork binary at $TW (make release)"
OUT=$HERE/results/$(bl_stamp)/compress
mkdir -p "$OUT/raw"
W=$(mktemp -d)
chmod 755 "$W" # nginx's workers run as www-data
BL_CLEANUP_HOOKS+=("rm -rf $W")
{ bl_env_header; echo "# DUR=$DUR REPS=$REPS CONNS=$CONNS TESTS=$TESTS"; } >"$OUT/env.txt"
has() { [[ " $TESTS " == *" $1 "* ]]; }

# ---- TLS for the static runs: a throw-away CA signs one ECDSA P-256 certificate (bl_certs)
TLS=$W/tls
bl_certs "$TLS"

# ---- corpus
bl_web_corpus "$W/www"
JPEG=$(find /usr/share -name '*.jpg' -size +20k 2>/dev/null | head -1 || true)
[[ -n $JPEG ]] && cp "$JPEG" "$W/www/photo.jpg"
gzip -6 -k "$W/www/asset64k.js"
chmod -R a+rX "$W/www"
FILES=$(cd "$W/www" && ls | grep -v '\.gz$')

# ---- origin: nginx, plain
OPORT=$(bl_free_port)
cat >"$W/origin.conf" <<EOC
worker_processes 1; daemon off; pid $W/origin.pid; error_log $W/origin.err;
events { worker_connections 1024; }
http { access_log off; include /etc/nginx/mime.types; types { application/json json; }
  server { listen 127.0.0.1:$OPORT; root $W/www; } }
EOC
bl_spawn origin "$W/origin.log" "$LOAD_CPU" nginx -c "$W/origin.conf" -p "$W"
bl_wait_listen "${BL_PID[origin]}" "$OPORT" 5 || bl_die "origin did not start"

TYPES="text/css application/javascript text/javascript application/json image/svg+xml"
start_nginx() { # NAME BODY(server block contents) [tls]
	local name=$1 body=$2 port tls=""
	port=$(bl_free_port)
	if [[ ${3:-} == tls ]]; then
		TPORT[$name]=$(bl_free_port)
		tls="listen 127.0.0.1:${TPORT[$name]} ssl; ssl_certificate $TLS/leaf.crt; ssl_certificate_key $TLS/leaf.key; ssl_protocols TLSv1.2 TLSv1.3;"
	fi
	mkdir -p "$W/$name"
	cat >"$W/$name/nginx.conf" <<EOC
worker_processes 1; daemon off; pid $W/$name/pid; error_log $W/$name/err;
events { worker_connections 4096; }
http { access_log off; include /etc/nginx/mime.types; types { application/json json; } sendfile on; tcp_nopush on;
  upstream o { server 127.0.0.1:$OPORT; keepalive 64; }
  server { listen 127.0.0.1:$port; $tls $body } }
EOC
	bl_spawn "$name" "$W/$name/log" "$PROXY_CPU" nginx -c "$W/$name/nginx.conf" -p "$W/$name"
	bl_wait_listen "${BL_PID[$name]}" "$port" 5 || bl_die "$name did not start"
	PORT[$name]=$port
}
start_tapwork() { # NAME YAML-FRAGMENT(top level keys besides listen/sites) ROUTE [tls]
	local name=$1 top=$2 route=$3 port listen site=""
	port=$(bl_free_port)
	listen="http: 127.0.0.1:$port"
	mkdir -p "$W/$name"
	if [[ ${4:-} == tls ]]; then
		TPORT[$name]=$(bl_free_port)
		listen="$listen, https: 127.0.0.1:${TPORT[$name]}"
		top="$top
state_dir: $W/$name/state
tls: {redirect_http: false}"
		site="
    tls: {cert: $TLS/leaf.crt, key: $TLS/leaf.key}"
		mkdir -p "$W/$name/state"
	fi
	cat >"$W/$name/t.yaml" <<EOC
listen: {$listen}
workers: 1
log: {access: "off", level: warn}
$top
sites:
  - hosts: ["*"]
    routes: [$route]$site
backends:
  o: {servers: [127.0.0.1:$OPORT]}
EOC
	bl_spawn "$name" "$W/$name/log" "$PROXY_CPU" "$TW" run -c "$W/$name/t.yaml"
	bl_wait_listen "${BL_PID[$name]}" "$port" 5 || bl_die "$name did not start: $(tail -3 "$W/$name/log")"
	PORT[$name]=$port
}
declare -A PORT=() TPORT=()
PROXY='{path: /, backend: o}'
start_tapwork tw-gzip1 "compression: {encodings: [gzip], levels: {gzip: 1}}" "$PROXY"
start_tapwork tw-zstd3 "compression: {encodings: [zstd], levels: {zstd: 3}}" "$PROXY"
start_tapwork tw-br "compression: {encodings: [br]}" "$PROXY" # the default quality
start_tapwork tw-plain "" "$PROXY"
start_tapwork tw-static "" "{path: /, handler: static, root: $W/www, precompressed: [gzip]}" tls
GZ="gzip on; gzip_types $TYPES; gzip_min_length 512; gzip_proxied any; gzip_vary on;"
start_nginx ng-gzip1 "$GZ gzip_comp_level 1; location / { proxy_pass http://o; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Accept-Encoding \"\"; }"
start_nginx ng-gzip6 "$GZ gzip_comp_level 6; location / { proxy_pass http://o; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Accept-Encoding \"\"; }"
start_nginx ng-static "root $W/www; gzip_static on;" tls

# ---- correctness and sizes: every file through every compressor, decoded
decode() { case $1 in gzip) gzip -dc ;; zstd) zstd -dcq ;; br) brotli -dc ;; *) cat ;; esac; }
printf 'file\tsize\tcontender\tcoding\tout_bytes\n' >"$OUT/sizes.tsv"
for f in $FILES; do
	sz=$(stat -c %s "$W/www/$f")
	for c in tw-gzip1:gzip ng-gzip1:gzip ng-gzip6:gzip tw-zstd3:zstd tw-br:br; do
		name=${c%%:*} coding=${c#*:}
		curl -s -H "Accept-Encoding: $coding" -D "$W/h" -o "$W/b" "http://127.0.0.1:${PORT[$name]}/$f"
		got=$(awk -F': ' 'tolower($1)=="content-encoding"{print $2}' "$W/h" | tr -d '\r')
		if ! decode "${got:-identity}" <"$W/b" | cmp -s - "$W/www/$f"; then
			echo "MISMATCH $name $f ($got)" | tee -a "$OUT/summary.txt"
		fi
		printf '%s\t%s\t%s\t%s\t%s\n' "$f" "$sz" "$name" "${got:-identity}" "$(stat -c %s "$W/b")" >>"$OUT/sizes.tsv"
	done
done

# ---- load runs
printf 'test\tcontender\trep\treqs\tcpu_s\tp99_ms\n' >"$OUT/runs.tsv"
run() { # TEST CONTENDER PATH AE CONNS REP [https]
	local t=$1 name=$2 path=$3 ae=$4 conns=$5 rep=$6 pid a b reqs p99 url="http://127.0.0.1:${PORT[$2]}$3"
	[[ ${7:-} == https ]] && url="https://127.0.0.1:${TPORT[$name]}$path"
	pid=$(bl_tree "${BL_PID[$name]}") # nginx: the master and its worker
	# shellcheck disable=SC2086
	a=$(bl_cpu_ticks $pid)
	bl_pin "$LOAD_CPU" wrk -t1 -c"$conns" -d"${DUR}s" --latency ${ae:+-H "Accept-Encoding: $ae"} \
		"$url" >"$OUT/raw/$t-$name-$rep.txt" 2>&1 || true
	# shellcheck disable=SC2086
	b=$(bl_cpu_ticks $pid)
	reqs=$(awk '/requests in/{print $1}' "$OUT/raw/$t-$name-$rep.txt")
	p99=$(awk '$1=="99%"{v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) sub(/ms/,"",v); else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$OUT/raw/$t-$name-$rep.txt")
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$name" "$rep" "${reqs:-0}" "$(awk -v d=$((b - a)) -v hz="$BL_HZ" 'BEGIN{printf "%.3f", d/hz}')" "${p99:-0}" >>"$OUT/runs.tsv"
}
# the HTTPS side of the static contenders: the same bytes, certificate verified
for name in tw-static ng-static; do
	curl -s --cacert "$TLS/ca.crt" "https://localhost:${TPORT[$name]}/asset64k.js" --resolve "localhost:${TPORT[$name]}:127.0.0.1" |
		cmp -s - "$W/www/asset64k.js" || echo "MISMATCH $name https asset64k.js" | tee -a "$OUT/summary.txt"
done

for rep in $(seq 1 "$REPS"); do
	if has comp; then
		for f in jquery.js data.json; do
			for c in tw-gzip1:gzip ng-gzip1:gzip tw-zstd3:zstd ng-gzip6:gzip tw-br:br; do
				run "comp-$f" "${c%%:*}" "/$f" "${c#*:}" "$CONNS" "$rep"
			done
		done
	fi
	if has latency; then
		run latency tw-plain /data.json "" 1 "$rep"
		run latency tw-zstd3 /data.json zstd 1 "$rep"
	fi
	if has static; then
		run static tw-static /asset64k.js "" "$CONNS" "$rep"
		run static ng-static /asset64k.js "" "$CONNS" "$rep"
		run static-https tw-static /asset64k.js "" "$CONNS" "$rep" https
		run static-https ng-static /asset64k.js "" "$CONNS" "$rep" https
		run precompressed tw-static /asset64k.js gzip "$CONNS" "$rep"
		run precompressed ng-static /asset64k.js gzip "$CONNS" "$rep"
		run precompressed-https tw-static /asset64k.js gzip "$CONNS" "$rep" https
		run precompressed-https ng-static /asset64k.js gzip "$CONNS" "$rep" https
	fi
done

# ---- summary: medians; input MB per CPU-second for compression, req per CPU-second otherwise
"$BL_PY" - "$OUT" "$W/www" <<'PY' | tee -a "$OUT/summary.txt"
import csv, os, statistics, sys
out, www = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(f"{out}/runs.tsv"), delimiter="\t"))
sizes = list(csv.DictReader(open(f"{out}/sizes.tsv"), delimiter="\t"))
def med(test, name, key):
    v = [float(r[key]) for r in rows if r["test"] == test and r["contender"] == name]
    return statistics.median(v) if v else 0.0
def per_cpu(test, name):
    v = [float(r["reqs"]) / float(r["cpu_s"]) for r in rows if r["test"] == test and r["contender"] == name and float(r["cpu_s"]) > 0]
    return statistics.median(v) if v else 0.0
print("== compression: input MB per contender CPU-second (median of runs), output bytes")
for f in ("jquery.js", "data.json"):
    size = os.path.getsize(f"{www}/{f}")
    mb = {n: per_cpu(f"comp-{f}", n) * size / 1e6 for n in ("tw-gzip1", "ng-gzip1", "tw-zstd3", "ng-gzip6", "tw-br")}
    ob = {s["contender"]: int(s["out_bytes"]) for s in sizes if s["file"] == f}
    print(f"{f} ({size} B): " + ", ".join(f"{n} {mb[n]:.1f} MB/cpu-s {ob.get(n)} B" for n in mb))
    if mb["ng-gzip1"]:
        print(f"  gzip-1: tapwork/nginx CPU ratio {mb['tw-gzip1'] / mb['ng-gzip1']:.2f}x, size {ob['tw-gzip1'] / ob['ng-gzip1']:.3f}x")
        print(f"  zstd-3 vs nginx gzip-1: {mb['tw-zstd3'] / mb['ng-gzip1']:.2f}x per CPU-s, size {ob['tw-zstd3'] / ob['ng-gzip1']:.3f}x")
    if mb["ng-gzip6"]:
        print(f"  br (default quality) vs nginx gzip-6: CPU per byte {mb['ng-gzip6'] / mb['tw-br']:.2f}x, size {ob['tw-br'] / ob['ng-gzip6']:.3f}x")
print("== all files, output bytes (decoded bytes equal the file for every line without MISMATCH):")
for f in sorted({s["file"] for s in sizes}):
    print("  " + f + ": " + ", ".join(f"{s['contender']}={s['out_bytes']}({s['coding']})" for s in sizes if s["file"] == f))
lp, lz = med("latency", "tw-plain", "p99_ms"), med("latency", "tw-zstd3", "p99_ms")
print(f"== latency, 64 KiB JSON, 1 connection: p99 without {lp:.3f} ms, with zstd-3 {lz:.3f} ms: added {lz - lp:.3f} ms")
for t in ("static", "static-https", "precompressed", "precompressed-https"):
    a, b = per_cpu(t, "tw-static"), per_cpu(t, "ng-static")
    if a or b:
        over = "HTTPS" if t.endswith("https") else "HTTP/1.1"
        print(f"== {t} 64 KiB over {over}: tapwork {a:.0f} req/cpu-s, nginx {b:.0f} req/cpu-s: {a / b if b else 0:.2f}x")
PY
bl_say "results in $OUT"

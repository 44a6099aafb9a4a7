#!/usr/bin/env bash
# bench/br-levels.sh — brotli qualities and windows against gzip -6 on the compression corpus
# (issue 15: "br output <= gzip-6's size at CPU per byte within 1.2x of gzip-6's").
#
# Builds bench/tools/zlevels.c against Debian's libbrotlienc and zlib and encodes each
# file of bench/compress.sh's corpus (jquery, bootstrap.css, d3, the first 64 KiB of
# jquery, a generated 64 KiB JSON, an HTML page) in one shot: gzip -6 (nginx's
# gzip_comp_level 6 with its default 32 KiB window) and brotli at each QUALITY,LGWIN
# of LEVELS (LGWIN 0: sized to the file, as tapwork does for a known length). Prints
# output bytes and CPU nanoseconds per input byte (thread CPU time, best of REPS), and
# per brotli setting the largest size ratio and CPU ratio to gzip-6 over the corpus.
# Knobs: LEVELS ("4,0 5,0 5,18 5,22 6,0"), REPS (3), CPU (0: pinned there).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bl_init
[[ ${1:-} == --help ]] && { sed -n '2,13p' "$0"; exit 0; }
LEVELS=${LEVELS:-"4,0 5,0 5,18 5,22 6,0"} REPS=${REPS:-3} CPU=${CPU:-0}
bl_need cc taskset
OUT=$HERE/results/$(bl_stamp)/br-levels
mkdir -p "$OUT"
W=$(mktemp -d)
BL_CLEANUP_HOOKS+=("rm -rf $W")
cc -O2 -Wall -Wextra -o "$W/zlevels" "$HERE/tools/zlevels.c" -lbrotlienc -lz || bl_die "cannot build zlevels (libbrotli-dev, zlib1g-dev)"
bl_web_corpus "$W/c"
{ bl_env_header; echo "# LEVELS=$LEVELS REPS=$REPS"; } >"$OUT/env.txt"
REPS=$REPS bl_pin "$CPU" "$W/zlevels" "$(echo "$LEVELS" | tr ' ' ',')" "$W"/c/* >"$OUT/levels.tsv"
"$BL_PY" - "$OUT/levels.tsv" <<'PY' | tee "$OUT/summary.txt"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
gz = {r["file"]: r for r in rows if r["coder"] == "gzip-6"}
print("file\tcoder\tbytes\tsize/gzip-6\tns/B\tcpu/gzip-6")
worst = {}
for r in rows:
    g = gz[r["file"]]
    size = int(r["out_bytes"]) / int(g["out_bytes"])
    cpu = float(r["ns_per_byte"]) / float(g["ns_per_byte"])
    print(f"{r['file']}\t{r['coder']}\t{r['out_bytes']}\t{size:.3f}\t{r['ns_per_byte']}\t{cpu:.2f}")
    if r["coder"] != "gzip-6":
        w = worst.setdefault(r["coder"].split("/")[0], [0, 0])
        w[0], w[1] = max(w[0], size), max(w[1], cpu)
print("== per brotli quality, worst over the corpus: size / gzip-6, CPU per byte / gzip-6")
for k, (s, c) in sorted(worst.items()):
    print(f"{k}: size <= {s:.3f}x, CPU <= {c:.2f}x")
PY
bl_say "results in $OUT"

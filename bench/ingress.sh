#!/usr/bin/env bash
# bench/ingress.sh — the Ingress controller's figures (bench/ingress.py; --help there).
# OUT (set by run.sh) gets the console output and summary.txt.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${OUT:-$HERE/results/ingress-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
/usr/bin/python3 "$HERE/ingress.py" "$@" | tee "$OUT/ingress.txt"
grep -E '^(sync|latency|reqpath):? ' "$OUT/ingress.txt" | grep -v ' rep ' >"$OUT/summary.txt" || true

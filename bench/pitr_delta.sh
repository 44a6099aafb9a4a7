#!/usr/bin/env bash
# bench/pitr_delta.sh — A/B of tapwork builds on what page deltas change: the
# physical incremental's repository growth, wall and CPU time, and the
# restore of that incremental snapshot (the work is bench/pitr_delta.py).
#
# usage: DELTA_BINS="new=build/release/tapwork base=/path/to/old/tapwork" bench/pitr_delta.sh
#
# Per repetition: a fresh PostgreSQL 15 cluster (initdb -k, autovacuum off)
# whose archive_command pushes every WAL file into one repository per build;
# pgbench -i -s PITR_SCALE; a full backup by each build into its repository;
# pgbench -c 2 -j 2 -t PITR_TX; an incremental by each build (each after an
# untimed CHECKPOINT with the archiver caught up; the builds alternate who
# goes first between repetitions); the server stopped; then each build
# restores its incremental snapshot as files (--target, page cache dropped
# first). Wall, CPU-seconds (user+sys) under /usr/bin/time; growth = bytes
# added to the repository without wal/. Medians of REPS.
#
# Env knobs (defaults): PITR_SCALE=10  PITR_TX=10000 (per client)  REPS=3
#   BENCH_CACHE=/var/tmp/tapwork-bench  KEEP_WORK=0  OUT=bench/results/<stamp>/pitr_delta
# Output: $OUT/summary.txt, $OUT/raw/ (tool logs, reps.json)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$HERE/lib.sh"
bl_help "$@"
export LC_ALL=C
export OUT=${OUT:-$HERE/results/$(date -u +%Y%m%d-%H%M%S)/pitr_delta}
[[ $(id -u) == 0 ]] || { echo "pitr_delta bench: run as root" >&2; exit 1; }
[[ -n ${DELTA_BINS:-} ]] || { echo "pitr_delta bench: set DELTA_BINS (see --help)" >&2; exit 1; }
mkdir -p "$OUT"
exec /usr/bin/python3 "$HERE/pitr_delta.py"

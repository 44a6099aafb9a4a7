#!/usr/bin/env bash
# bench/pitr_replay.sh — PITR restore + replay only (phase 6 of bench/pitr.sh),
# repeated on one setup: tapwork with WAL prefetch (default), tapwork with
# --pg-wal-prefetch 0, pgBackRest restore --type=time; alternating order,
# medians of REPS. The setup (untimed): initdb -k, pgbench -i -s PITR_SCALE,
# full backups of both tools, pgbench -c 2 -j 2 -t PITR_TX with both
# archiving; the target time is taken halfway. The source server is stopped
# before the timed restores. Each restored server must hold exactly the
# pgbench_history rows of the target.
#
# usage: bench/pitr_replay.sh [--help]   (environment as bench/pitr.sh:
#   PITR_SCALE=10 PITR_TX=10000 REPS=3 PG_BIN BENCH_CACHE KEEP_WORK TAPWORK_BIN OUT;
#   TAPWORK_BASE_BIN adds that binary as a fourth contender, for an A/B)
# Output: $OUT/replay-summary.txt, $OUT/raw/replay.json
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=lib.sh
source "$HERE/lib.sh"
bl_help "$@"
export LC_ALL=C
export OUT=${OUT:-$HERE/results/$(date -u +%Y%m%d-%H%M%S)/pitr}
export TAPWORK_BIN=${TAPWORK_BIN:-$ROOT/build/release/tapwork}
[[ $(id -u) == 0 ]] || { echo "pitr replay bench: run as root" >&2; exit 1; }
mkdir -p "$OUT"
exec /usr/bin/python3 "$HERE/pitr_replay.py"

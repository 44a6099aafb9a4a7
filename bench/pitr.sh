#!/usr/bin/env bash
# bench/pitr.sh — PostgreSQL point-in-time recovery: tapwork vs pgBackRest 2.45,
# the protocol of issue 12, side by side in one run (the work is bench/pitr.py).
#
# usage: bench/pitr.sh [--help]       (all settings are environment variables)
#
# Per repetition (REPS, medians reported), a fresh PostgreSQL 15 cluster
# (initdb -k: page checksums; fsync off; run as postgres) whose archive_command
# pushes every WAL file into both repositories (tapwork: `pg archive-push`;
# pgBackRest: zst level 3, process-max=2, repo1-bundle=y, aes-256-cbc):
#   1. pgbench -i -s PITR_SCALE (untimed), CHECKPOINT
#   2. full backup: tapwork backup --pg-data / pgbackrest backup --type=full
#   3. pgbench -c 2 -j 2 -t PITR_TX with archiving on, in two halves; the PITR
#      target time is taken between them (with pgbench_history's row count)
#   4. incremental: tapwork backup --pg-data / pgbackrest --type=incr
#   5. UPDATE of PITR_CHANGE_ROWS rows spread over pgbench_accounts; incremental
#   6. PITR restore of the full backup to the target, replay included: restore
#      command, then postgres started on it until it accepts connections out of
#      recovery (page cache dropped first); the restored pgbench_history must
#      have exactly the rows it had at the target
#   7. pgbench -T TPS_SECS with archive_command = /bin/true, tapwork only,
#      pgBackRest only (TPS_ROUNDS rounds, orders rotating; page cache warmed
#      first; each run starts right after a CHECKPOINT with the archiver
#      caught up)
#   8. archive-push latency: PUSH_N real segments (copied aside by the
#      archiver), each pushed by one process of each tool
#   9. the logical path on the same database: pg_dump | restic backup --stdin
#      (second run, after another PITR_CHANGE_ROWS changed rows) vs tapwork's
#      physical incremental of that change
# Each tool runs under /usr/bin/time: wall, CPU-seconds (user+sys of its
# process tree), peak RSS; repository growth per phase (tapwork without wal/,
# pgBackRest backup/), WAL stored (tapwork wal/, pgBackRest archive/), the
# .ready backlog in pg_wal/archive_status at the end of each phase. Before each
# backup of either tool: an untimed CHECKPOINT and the archiver caught up, so
# both start from the same state. The tools alternate which goes first
# between repetitions (PITR_FIRST=br: pgBackRest first in odd ones).
#
# Env knobs (defaults):
#   PITR_SCALE=10 (issue: 100, ~1.5 GiB)  PITR_TX=10000 (per client)
#   PITR_CHANGE_ROWS=100  REPS=3  PUSH_N=16  TPS_SECS=20  PITR_FIRST=tw
#   TPS_ROUNDS=2 (6 with PITR_ONLY=tps)  TPS_MODES="true tw br" (+ twn: tapwork
#   under nice -n TPS_NICE=10)
#   PITR_ONLY=tps: setup + phase 7 only (bench/README.md)
#   PITR_ONLY=logical: setup + the logical-path comparison only, LOGICAL_ROUNDS (3) rounds
#   PG_BIN=/usr/lib/postgresql/15/bin  BENCH_CACHE=/var/tmp/tapwork-bench  KEEP_WORK=0
#   TAPWORK_BIN=build/release/tapwork  OUT=bench/results/<stamp>/pitr
#   TAPWORK_BASE_BIN=PATH: TPS mode twb (that binary archiving into a
#   repository of its own; in the default TPS_MODES when set): an A/B of
#   archive-push builds in one run, with the archiver's CPU ms per segment
# Quick try: PITR_SCALE=2 PITR_TX=1000 REPS=1 PUSH_N=4 TPS_SECS=5 bench/pitr.sh
# Output: $OUT/summary.txt, $OUT/env.txt, $OUT/raw/ (tool logs, reps.json)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=lib.sh
source "$HERE/lib.sh"
bl_help "$@"
export LC_ALL=C
export OUT=${OUT:-$HERE/results/$(date -u +%Y%m%d-%H%M%S)/pitr}
export TAPWORK_BIN=${TAPWORK_BIN:-$ROOT/build/release/tapwork}
[[ $(id -u) == 0 ]] || { echo "pitr bench: run as root (tools run as postgres through setpriv)" >&2; exit 1; }
id postgres >/dev/null 2>&1 || { echo "pitr bench: no user postgres" >&2; exit 1; }
mkdir -p "$OUT"
exec /usr/bin/python3 "$HERE/pitr.py"

#!/bin/sh
# walcall.sh — the per-call cost of `tapwork pg archive-push` and
# `pg archive-get` on one real 16 MiB pgbench WAL segment (issue 12: the
# archiver's cost is what pgbench loses with archiving on).
#
# A throwaway PostgreSQL 15 cluster (initdb -k, run as postgres on a Unix
# socket) runs pgbench with archive_command = cp; a segment written by the
# pgbench transactions is then pushed and fetched RUNS times per contender,
# contenders alternating within each round, each call under `perf stat`
# (task-clock = CPU ms, page faults, wall ms). Before each push the object is
# deleted, so every push is a first push (what PostgreSQL runs); each get
# fetches into a fresh path. The key cache (kernel keyring) is warmed first,
# as it is on a running archiver.
#
#   TAPWORK_BIN=build/release/tapwork   the candidate ("tw")
#   TAPWORK_BASE_BIN=PATH               another build as a second contender ("base")
#   MORE="name=PATH ..."                more contenders (builds of experiments)
#   RUNS=15                             rounds (medians are printed)
#   OUT=/tmp/walcall                    work directory (removed at the end unless KEEP=1)
# Run under the shared lock: flock /work/notes/bench.lock bench/walcall.sh
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TW=$(realpath "${TAPWORK_BIN:-$ROOT/build/release/tapwork}")
BASE=${TAPWORK_BASE_BIN:-}
RUNS=${RUNS:-15}
OUT=${OUT:-/tmp/walcall}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
for t in perf runuser "$PGBIN/pgbench"; do
  command -v "$t" >/dev/null 2>&1 || { echo "walcall.sh: $t is missing" >&2; exit 2; }
done
rm -rf "$OUT"
mkdir -p "$OUT/segs"
chown -R postgres: "$OUT"
PGPID=
cleanup() {
  # the postmaster itself (runuser does not pass SIGINT on): fast shutdown
  pm=$(head -1 "$OUT/pgdata/postmaster.pid" 2>/dev/null || true)
  [ -n "$pm" ] && kill -INT "$pm" 2>/dev/null || true
  [ -n "$PGPID" ] && wait "$PGPID" 2>/dev/null || true
  [ "${KEEP:-0}" = 1 ] || rm -rf "$OUT"
}
trap cleanup EXIT INT TERM
runuser -u postgres -- "$PGBIN/initdb" -A trust -U postgres --no-sync -k -D "$OUT/pgdata" >/dev/null
runuser -u postgres -- "$PGBIN/postgres" -D "$OUT/pgdata" -k "$OUT" -c listen_addresses= \
  -c archive_mode=on -c wal_level=replica -c "archive_command=cp %p $OUT/segs/%f" \
  >"$OUT/pg.log" 2>&1 &
PGPID=$!
for _ in $(seq 100); do
  runuser -u postgres -- "$PGBIN/pg_isready" -q -h "$OUT" >/dev/null 2>&1 && break; sleep 0.1
done
runuser -u postgres -- "$PGBIN/pgbench" -q -h "$OUT" -i -s 10 postgres >/dev/null 2>&1
runuser -u postgres -- "$PGBIN/pgbench" -h "$OUT" -c 2 -j 2 -t 5000 postgres >/dev/null 2>&1
runuser -u postgres -- "$PGBIN/psql" -qAt -h "$OUT" -c "SELECT pg_switch_wal()" postgres >/dev/null
for _ in $(seq 100); do
  [ "$(ls "$OUT/segs" | wc -l)" -ge 4 ] && break; sleep 0.1
done
SEG=$(ls "$OUT/segs" | sort | tail -2 | head -1) # written by the pgbench run, not the switch
cp "$OUT/segs/$SEG" "$OUT/$SEG"
echo "segment $SEG ($(stat -c %s "$OUT/$SEG") bytes); $RUNS rounds"
export TAPWORK_PASSWORD=walcall
set -- tw "$TW"
[ -n "$BASE" ] && set -- "$@" base "$(realpath "$BASE")"
for m in ${MORE:-}; do set -- "$@" "${m%%=*}" "$(realpath "${m#*=}")"; done
names=""
while [ $# -gt 0 ]; do
  n=$1 bin=$2; shift 2
  names="$names $n"
  eval "BIN_$n=\$bin"
  "$bin" repo init -r "$OUT/repo-$n" >/dev/null
  "$bin" pg archive-push -q -r "$OUT/repo-$n" --pg-data "$OUT/pgdata" "$OUT/$SEG"   # warm
done
# one measured call: "task-clock-ms page-faults wall-ms"
measure() {
  perf stat -x, -e task-clock,page-faults -o "$OUT/perf" -- "$@" >/dev/null
  tc=$(awk -F, '$3=="task-clock"{print $1}' "$OUT/perf")
  pf=$(awk -F, '$3=="page-faults"{print $1}' "$OUT/perf")
  echo "$tc $pf"
}
for i in $(seq "$RUNS"); do
  for n in $names; do
    eval "bin=\$BIN_$n"
    rm -f "$OUT/repo-$n/wal/"*"-$SEG" "$OUT/got"
    s=$(date +%s%N); r=$(measure "$bin" pg archive-push -q -r "$OUT/repo-$n" --pg-data "$OUT/pgdata" "$OUT/$SEG"); e=$(date +%s%N)
    echo "$n push $r $(( (e - s) / 1000 ))" >>"$OUT/raw"
    s=$(date +%s%N); r=$(measure "$bin" pg archive-get --prefetch 0 -r "$OUT/repo-$n" --pg-data "$OUT/pgdata" "$SEG" "$OUT/got"); e=$(date +%s%N)
    echo "$n get $r $(( (e - s) / 1000 ))" >>"$OUT/raw"
    cmp -s "$OUT/got" "$OUT/$SEG" || { echo "walcall.sh: $n: archive-get returned other bytes" >&2; exit 1; }
  done
done
for n in $names; do
  echo "$n stored bytes: $(stat -c %s "$OUT/repo-$n/wal/"*"-$SEG")"
done
python3 - "$OUT/raw" <<'PY'
import statistics as st, sys
rows = {}
for line in open(sys.argv[1]):
    n, op, tc, pf, wall = line.split()
    rows.setdefault((n, op), []).append((float(tc), float(pf), float(wall) / 1000))
print(f"{'contender':<10} {'call':<6} {'CPU ms p50':>10} {'min':>7} {'max':>7} {'faults':>7} {'wall ms p50':>11}")
for (n, op), v in rows.items():
    c = [x[0] for x in v]
    print(f"{n:<10} {op:<6} {st.median(c):>10.1f} {min(c):>7.1f} {max(c):>7.1f} "
          f"{st.median(x[1] for x in v):>7.0f} {st.median(x[2] for x in v):>11.1f}")
PY

#!/usr/bin/env bash
# bench/backup-pg.sh — a PostgreSQL database backed up by tapwork vs pg_dump | restic.
#
# usage: bench/backup-pg.sh [--help]       (all settings are environment variables)
#
# Steps (one repetition):
#   1. a throw-away PostgreSQL 15 cluster: initdb into the scratch dir (owned by user
#      postgres, trust authentication on loopback, fsync off to make the setup quick),
#      the postmaster started under setpriv as postgres (setpriv execs, so the PID we
#      record is the postmaster's) on a free 127.0.0.1 port; stopped by PID (SIGINT,
#      fast shutdown; SIGKILL after 30 s) on exit
#   2. createdb bench; pgbench -i -s PG_SCALE (untimed), VACUUM ANALYZE
#   3. reference: pg_dump -Fc -Z0 of the database to /dev/null (the floor both pay)
#   4. init + first backup of every contender (local-directory repositories):
#        tapwork  tapwork backup -r REPO --postgres postgresql://postgres@127.0.0.1:PORT/bench
#        restic   pg_dump -Fc -Z0 ... bench | restic backup --stdin --stdin-filename bench.dump
#                 (--compression auto, repository version 2)
#   5. the data changed (PG_CHANGE):
#        update   UPDATE of 1% of pgbench_accounts' rows, a contiguous aid range (default)
#        pgbench  pgbench -t PG_TX -c 4 -j 2 (random single-row updates + inserts all over)
#   6. incremental backup of every contender
#   7. restore of the latest snapshot (untimed check: the restored dump's size matches
#      what pg_dump produced and pg_restore -l can read its table of contents)
# Each phase: wall time, user+sys CPU (children included: pg_dump counts for both
# sides) and peak RSS from /usr/bin/time; repository size (du -sb) after each backup.
#
# Env knobs (defaults):
#   PG_SCALE=50 (pgbench scale; 50 ~ 750 MiB of tables, e.g. 10 for a quick run)
#   PG_CHANGE=update  PG_TX=2000  PG_BIN=/usr/lib/postgresql/15/bin
#   CONTENDERS="tapwork restic"  PHASE_TIMEOUT=1800  NICE=0
#   BENCH_CACHE=/var/tmp/tapwork-bench (scratch space)  KEEP_WORK=0
#   TAPWORK_BIN=build/release/tapwork  OUT=bench/results/<stamp>/backup-pg
# Output: $OUT/runs.tsv, $OUT/summary.txt, $OUT/env.txt, $OUT/raw/
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=lib.sh
source "$HERE/lib.sh"

bl_args "$@"

PG_SCALE=${PG_SCALE:-50}
PG_CHANGE=${PG_CHANGE:-update}
PG_TX=${PG_TX:-2000}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
CONTENDERS=${CONTENDERS:-"tapwork restic"}
PHASE_TIMEOUT=${PHASE_TIMEOUT:-1800}
NICE=${NICE:-0}
BENCH_CACHE=${BENCH_CACHE:-/var/tmp/tapwork-bench}
KEEP_WORK=${KEEP_WORK:-0}
TAPWORK_BIN=${TAPWORK_BIN:-$ROOT/build/release/tapwork}
OUT=${OUT:-$HERE/results/$(bl_stamp)/backup-pg}
export NICE
[[ $PG_CHANGE == update || $PG_CHANGE == pgbench ]] || bl_die "PG_CHANGE must be update or pgbench"
[[ $PG_SCALE =~ ^[0-9]+$ && $PG_SCALE -ge 1 ]] || bl_die "PG_SCALE must be a positive integer"

bl_need restic du /usr/bin/time timeout setpriv
for t in initdb postgres pg_dump pg_restore pgbench psql createdb pg_isready; do
	[[ -x $PG_BIN/$t ]] || bl_die "missing $PG_BIN/$t (apt-get install postgresql-15)"
done
id postgres >/dev/null 2>&1 || bl_die "no user postgres"
mkdir -p "$OUT/raw" "$BENCH_CACHE"
WORK=$(mktemp -d "$BENCH_CACHE/pgrun.XXXXXX")
chmod 755 "$WORK"
bl_init
PG_PID=
pg_stop() {
	[[ -n $PG_PID ]] || return 0
	local i
	kill -INT "$PG_PID" 2>/dev/null || true
	for ((i = 0; i < 300; i++)); do
		kill -0 "$PG_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$PG_PID" 2>/dev/null; then kill -KILL "$PG_PID" 2>/dev/null || true; fi
	wait "$PG_PID" 2>/dev/null || true
	PG_PID=
}
cleanup_work() { [[ $KEEP_WORK == 1 ]] || rm -rf "$WORK"; }
BL_CLEANUP_HOOKS+=(pg_stop cleanup_work)

export TAPWORK_PASSWORD=bench-password RESTIC_PASSWORD=bench-password RESTIC_CACHE_DIR=$WORK/restic-cache
unset PGPASSWORD PGSERVICE PGDATABASE PGUSER PGHOST PGPORT
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups env HOME="$WORK/pg" "$@"; }

# ------------------------------------------------------------------ the cluster
mkdir -p "$WORK/pg/sock"
chown -R postgres: "$WORK/pg"
PORT=$(bl_free_port)
URL=postgresql://postgres@127.0.0.1:$PORT/bench
as_pg "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres -A trust -E UTF8 --no-sync >"$OUT/raw/initdb.log" 2>&1 ||
	bl_die "initdb failed (see $OUT/raw/initdb.log)"
bl_prefix -
"${BL_PRE[@]}" setpriv --reuid=postgres --regid=postgres --init-groups "$PG_BIN/postgres" -D "$WORK/pg/data" \
	-p "$PORT" -c listen_addresses=127.0.0.1 -c unix_socket_directories="$WORK/pg/sock" \
	-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_wal_size=4GB \
	>"$OUT/raw/postgres.log" 2>&1 &
PG_PID=$!
bl_wait_listen "$PG_PID" "$PORT" 60 || bl_die "postgres did not start (see $OUT/raw/postgres.log)"
for ((i = 0; i < 100; i++)); do
	"$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U postgres && break
	sleep 0.2
done
PSQL=("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres)
"$PG_BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres bench

{
	echo "# backup-pg bench $(date -u +%FT%TZ)"
	bl_env_header
	echo "# $(restic version)"
	echo "# tapwork: $TAPWORK_BIN ($("$TAPWORK_BIN" version 2>/dev/null | head -n 1 || echo not available))"
	echo "# $("$PG_BIN/postgres" --version), port $PORT, data $WORK/pg/data (fsync=off)"
	echo "# PG_SCALE=$PG_SCALE PG_CHANGE=$PG_CHANGE PG_TX=$PG_TX NICE=$NICE CONTENDERS='$CONTENDERS' PHASE_TIMEOUT=$PHASE_TIMEOUT"
} | tee "$OUT/env.txt"

echo "== pgbench -i -s $PG_SCALE (untimed setup)"
t0=$(date +%s)
timeout "$PHASE_TIMEOUT" "$PG_BIN/pgbench" -i -q -s "$PG_SCALE" -h 127.0.0.1 -p "$PORT" -U postgres bench >"$OUT/raw/pgbench-init.log" 2>&1 ||
	bl_die "pgbench -i failed (see $OUT/raw/pgbench-init.log)"
"${PSQL[@]}" -d bench -c 'VACUUM ANALYZE'
DB_BYTES=$("${PSQL[@]}" -d bench -Atc "select pg_database_size('bench')")
echo "  done in $(($(date +%s) - t0)) s; database size $((DB_BYTES >> 20)) MiB" | tee -a "$OUT/env.txt"

# ------------------------------------------------------------------ contenders
declare -A BROKEN=()
DUMP_ARGS=(-Fc -Z0 --no-password -h 127.0.0.1 -p "$PORT" -U postgres bench)
# shellcheck disable=SC2016 # the single-quoted scripts are expanded by the inner bash
cmd_for() { # PHASE CONTENDER REPO [DEST]: sets CMD
	local ph=$1 c=$2 r=$3 d=${4:-}
	case $c:$ph in
	pg_dump:full | pg_dump:incr) CMD=(bash -c 'set -o pipefail; "$@" | wc -c >"$DUMPSIZE"' _ "$PG_BIN/pg_dump" "${DUMP_ARGS[@]}") ;;
	tapwork:init) CMD=("$TAPWORK_BIN" repo init -r "$r") ;;
	tapwork:full | tapwork:incr) CMD=("$TAPWORK_BIN" backup -r "$r" --pg-bin "$PG_BIN" --postgres "$URL") ;;
	tapwork:restore) CMD=("$TAPWORK_BIN" restore -r "$r" latest --target "$d") ;;
	restic:init) CMD=(restic init --repository-version 2 -q -r "$r") ;;
	restic:full | restic:incr)
		CMD=(bash -c 'set -o pipefail; "$1" "${@:3}" | restic -r "$2" backup -q --compression auto --stdin --stdin-filename bench.dump' \
			_ "$PG_BIN/pg_dump" "$r" "${DUMP_ARGS[@]}") ;;
	restic:restore) CMD=(restic -r "$r" restore latest -q --target "$d") ;;
	*) bl_die "unknown contender/phase $c $ph" ;;
	esac
}

printf 'contender\tphase\tstatus\twall_s\tuser_s\tsys_s\tmaxrss_kb\trepo_bytes\tadded_bytes\tdump_bytes\tforeign_cpu_pct\tverify\n' >"$OUT/runs.tsv"
export DUMPSIZE=$WORK/dumpsize
measure() { # CONTENDER PHASE [DEST]
	local c=$1 ph=$2 d=${3:-} r=$WORK/repos/$1 raw=$OUT/raw/$1.$2 before=0 after=0 b0 b1 st=ok dump=0
	cmd_for "$ph" "$c" "$r" "$d"
	printf '%q ' "${CMD[@]}" >"$raw.cmd"
	[[ -e $r ]] && before=$(du -sb "$r" | cut -f1)
	b0=$(bl_busy_ticks)
	bl_prefix -
	if ! "${BL_PRE[@]}" /usr/bin/time -f '%e %U %S %M' -o "$raw.time" timeout "$PHASE_TIMEOUT" "${CMD[@]}" >"$raw.out" 2>&1; then
		st=failed
		BROKEN[$c]=1
		bl_say "  $c $ph FAILED; last output lines ($raw.out):"
		grep -v '^[[:space:]]*$' "$raw.out" | tail -n 4 | sed 's/^/      /' >&2
	fi
	b1=$(bl_busy_ticks)
	[[ -e $r ]] && after=$(du -sb "$r" | cut -f1)
	[[ $c == pg_dump && -f $DUMPSIZE ]] && dump=$(tr -d ' \n' <"$DUMPSIZE")
	local t w u s m
	t=$(grep -E '^[0-9.]+ [0-9.]+ [0-9.]+ [0-9]+$' "$raw.time" | tail -n 1)
	[[ -n $t ]] || t="nan nan nan 0"
	read -r w u s m <<<"$t"
	awk -v c="$c" -v ph="$ph" -v st="$st" -v w="$w" -v u="$u" -v s="$s" -v m="$m" -v dump="$dump" \
		-v after="$after" -v before="$before" -v busy="$((b1 - b0))" -v hz="$BL_HZ" 'BEGIN {
		f = (w > 0) ? (busy / hz - u - s) * 100 / w : 0; if (f < 0) f = 0
		printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%.0f\t-\n", c, ph, st, w, u, s, m, after, after - before, dump, f
	}' >>"$OUT/runs.tsv"
	awk -F'\t' 'END { printf "  %-8s %-8s %-6s %8.2f s  cpu %7.2f s  peak RSS %6.0f MiB  repo %8.1f MiB  foreign %s%%\n", $1, $2, $3, $4, $5 + $6, $7 / 1024, $8 / 1048576, $11 }' "$OUT/runs.tsv"
}
set_verify() { # contender result
	"$BL_PY" - "$OUT/runs.tsv" "$1" "$2" <<'PY'
import sys
path, c, v = sys.argv[1:]
rows = open(path).read().splitlines()
for i in range(len(rows) - 1, 0, -1):
    f = rows[i].split("\t")
    if f[0] == c and f[1] == "restore":
        f[-1] = v; rows[i] = "\t".join(f); break
open(path, "w").write("\n".join(rows) + "\n")
PY
}
verify_dump() { # DEST EXPECTED_BYTES: the restored dump's size and its table of contents
	local f n
	f=$(find "$1" -type f -name '*.dump' -print -quit)
	[[ -n $f ]] || { echo "MISSING(no .dump restored)"; return; }
	n=$(stat -c %s "$f")
	if ! "$PG_BIN/pg_restore" -l "$f" >"$WORK/toc" 2>&1; then echo "BROKEN(pg_restore -l failed)"; return; fi
	if ! grep -q 'TABLE DATA public pgbench_accounts' "$WORK/toc"; then echo "BROKEN(no pgbench_accounts data)"; return; fi
	if [[ $n != "$2" ]]; then echo "SIZE($n, pg_dump gave $2)"; return; fi
	echo "ok(${n}B)"
}

ACTIVE=()
for c in $CONTENDERS; do
	case $c in
	tapwork)
		if [[ ! -x $TAPWORK_BIN ]] || ! "$TAPWORK_BIN" repo init -r "$WORK/probe-repo" >"$WORK/probe.out" 2>&1; then
			bl_say "SKIP tapwork: no working binary at $TAPWORK_BIN"
			printf 'tapwork\tno working binary\n' >>"$OUT/skipped.tsv"
			continue
		fi
		rm -rf "$WORK/probe-repo"
		;;
	restic) ;;
	*) bl_die "unknown contender $c (known: tapwork restic)" ;;
	esac
	ACTIVE+=("$c")
done
((${#ACTIVE[@]} > 0)) || bl_die "no contender left"
mkdir -p "$WORK/repos" "$WORK/restore"

echo "== reference and first backups"
measure pg_dump full
FULL_DUMP=$(tr -d ' \n' <"$DUMPSIZE")
for c in "${ACTIVE[@]}"; do
	measure "$c" init
	if [[ -z ${BROKEN[$c]:-} ]]; then measure "$c" full; fi
done

echo "== change ($PG_CHANGE)"
if [[ $PG_CHANGE == update ]]; then
	n=$((PG_SCALE * 100000 / 100))
	start=$((PG_SCALE * 100000 / 3))
	"${PSQL[@]}" -d bench -c "UPDATE pgbench_accounts SET abalance = abalance + 7, filler = 'changed' WHERE aid > $start AND aid <= $((start + n))" | tee -a "$OUT/env.txt"
	echo "  updated $n of $((PG_SCALE * 100000)) pgbench_accounts rows (aid $((start + 1))..$((start + n)))" | tee -a "$OUT/env.txt"
else
	timeout "$PHASE_TIMEOUT" "$PG_BIN/pgbench" -n -t "$PG_TX" -c 4 -j 2 -h 127.0.0.1 -p "$PORT" -U postgres bench >"$OUT/raw/pgbench-change.log" 2>&1 ||
		bl_die "pgbench failed (see $OUT/raw/pgbench-change.log)"
	echo "  pgbench -t $PG_TX -c 4: $(grep -E '^number of transactions actually processed' "$OUT/raw/pgbench-change.log")" | tee -a "$OUT/env.txt"
fi
"${PSQL[@]}" -d bench -c 'CHECKPOINT'

echo "== incremental backups"
measure pg_dump incr
INCR_DUMP=$(tr -d ' \n' <"$DUMPSIZE")
for c in "${ACTIVE[@]}"; do
	if [[ -z ${BROKEN[$c]:-} ]]; then measure "$c" incr; fi
done

echo "== restores"
for c in "${ACTIVE[@]}"; do
	[[ -n ${BROKEN[$c]:-} ]] && continue
	d=$WORK/restore/$c
	mkdir -p "$d"
	measure "$c" restore "$d"
	v=$(verify_dump "$d" "$INCR_DUMP")
	echo "           restore verified: $v"
	set_verify "$c" "$v"
	rm -rf "$d"
done

"$BL_PY" - "$OUT/runs.tsv" "$FULL_DUMP" "$INCR_DUMP" <<'PY' | tee "$OUT/summary.txt"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
full_dump, incr_dump = int(sys.argv[2]), int(sys.argv[3])
nan = float("nan")
def get(c, ph, k):
    for r in rows:
        if r["contender"] == c and r["phase"] == ph and r["status"] == "ok" and r["wall_s"] != "nan":
            return r[k]
    return None
def num(c, ph, k, f=float):
    v = get(c, ph, k); return f(v) if v is not None else nan
cpu = lambda c, ph: num(c, ph, "user_s") + num(c, ph, "sys_s")
fmt = lambda x, d=1: "-" if x != x else "%.*f" % (d, x)
names = list(dict.fromkeys(r["contender"] for r in rows))
out = ["pg_dump -Fc -Z0 output: %.1f MiB first, %.1f MiB after the change. Times in seconds, cpu = user+sys"
       " seconds (pg_dump included), RSS = peak MiB of the largest process." % (full_dump / 1048576, incr_dump / 1048576)]
hdr = ["contender", "full_s", "MB/s", "cpu", "rss", "incr_s", "cpu", "added_MiB", "restore_s", "cpu", "rss", "repo_MiB", "verify"]
tab = []
for c in names:
    f = num(c, "full", "wall_s")
    tab.append([c, fmt(num(c, "full", "wall_s"), 2), fmt(full_dump / f / 1e6, 0) if f == f and f > 0 else "-",
                fmt(cpu(c, "full")), fmt(num(c, "full", "maxrss_kb") / 1024, 0),
                fmt(num(c, "incr", "wall_s"), 2), fmt(cpu(c, "incr")), fmt(num(c, "incr", "added_bytes") / 1048576, 2),
                fmt(num(c, "restore", "wall_s"), 2), fmt(cpu(c, "restore")), fmt(num(c, "restore", "maxrss_kb") / 1024, 0),
                fmt(num(c, "incr", "repo_bytes") / 1048576), get(c, "restore", "verify") or "-"])
w = [max(len(str(x)) for x in col) for col in zip(hdr, *tab)]
for row in [hdr] + tab:
    out.append("  ".join(str(x).ljust(w[i]) if i == 0 else str(x).rjust(w[i]) for i, x in enumerate(row)))
out.append("(pg_dump = the dump alone to /dev/null: the floor under both contenders)")
for c in names:
    bad = sorted(set(r["phase"] for r in rows if r["contender"] == c and r["status"] != "ok"))
    if bad: out.append("FAILED %s: phases %s (see raw/*.out)" % (c, ", ".join(bad)))
if "tapwork" in names and "restic" in names:
    def ratio(a, b): return a / b if a == a and b == b and b > 0 else nan
    tf, rf = num("tapwork", "full", "wall_s"), num("restic", "full", "wall_s")
    ti, ri = num("tapwork", "incr", "wall_s"), num("restic", "incr", "wall_s")
    tr, rr = num("tapwork", "restore", "wall_s"), num("restic", "restore", "wall_s")
    out.append("")
    out.append("Ratios (restic time / tapwork time, higher is better; repo tapwork / restic, lower is better):")
    out.append("  first %s   incremental %s   restore %s   repo %s   added %s" % (
        fmt(ratio(rf, tf), 2), fmt(ratio(ri, ti), 2), fmt(ratio(rr, tr), 2),
        fmt(ratio(num("tapwork", "incr", "repo_bytes"), num("restic", "incr", "repo_bytes")), 3),
        fmt(ratio(num("tapwork", "incr", "added_bytes"), num("restic", "incr", "added_bytes")), 3)))
    out.append("")
    out.append("tapwork targets (issue 6):")
    for label, a, b, want in (("first backup >= 2x faster than restic", rf, tf, 2),
                              ("incremental >= 3x faster than restic", ri, ti, 3)):
        r = ratio(a, b)
        out.append("  %-42s  %s" % (label, "n/a" if r != r else "%.3f  %s" % (r, "met" if r >= want else "NOT met")))
    pd = num("pg_dump", "incr", "wall_s")
    if pd == pd and ri == ri:
        out.append("  (ceiling: restic incr / pg_dump alone = %.2f; no tool can beat the dump)" % (ri / pd))
    v = get("tapwork", "restore", "verify") or "-"
    if not v.startswith("ok"):
        out.append("  restore verification: %s — the figures above do not count" % v)
print("\n".join(out))
PY
echo "results: $OUT"

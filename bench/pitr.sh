#!/usr/bin/env bash
# bench/pitr.sh — PostgreSQL physical backups and WAL archiving: tapwork vs pgBackRest 2.45.
#
# usage: bench/pitr.sh [--help]       (all settings are environment variables)
#
# One PostgreSQL 15 cluster (initdb into the scratch dir, run as postgres, fsync off)
# archives every WAL segment into both repositories (archive_command runs
# `tapwork pg archive-push` then `pgbackrest archive-push`). Both tools run as
# postgres, both encrypt (tapwork: AES-256-GCM, always; pgBackRest:
# repo1-cipher-type=aes-256-cbc) and both compress with zstd level 3; pgBackRest
# gets process-max=2 (tapwork uses one worker per CPU; the machine's CPU count is
# in env.txt). Steps:
#   1. pgbench -i -s PG_SCALE, VACUUM (FREEZE, ANALYZE) (untimed), data read once
#      so both tools start from a warm page cache
#   2. full backup: tapwork backup --pg-data, pgbackrest backup --type=full
#   3. a small change: UPDATE of PG_CHANGE_PCT % of pgbench_accounts (contiguous), CHECKPOINT
#   4. second backup: tapwork backup --pg-data (dedup makes it incremental),
#      pgbackrest backup --type=incr (2.45 copies every changed file whole)
#   5. restore of the second backup into an empty directory (page cache dropped
#      first when allowed): tapwork restore --pg-data, pgbackrest restore
#   6. WAL push: WAL_SEGS segments written while archive_command only copied them
#      aside, then pushed one process per segment by each tool (as PostgreSQL does)
# Reported: wall time of each backup; repository bytes (du -sb) after each backup,
# WAL excluded; WAL push MiB/s and the bytes the pushed segments take.
#
# Env knobs (defaults):
#   PG_SCALE=30 (~450 MiB)  PG_CHANGE_PCT=1  WAL_SEGS=32  PG_BIN=/usr/lib/postgresql/15/bin
#   BENCH_CACHE=/var/tmp/tapwork-bench  KEEP_WORK=0
#   TAPWORK_BIN=build/release/tapwork  OUT=bench/results/<stamp>/pitr
# Output: $OUT/summary.txt, $OUT/env.txt, $OUT/raw/
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
if [[ ${1:-} == -h || ${1:-} == --help ]]; then
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	exit 0
fi
export LC_ALL=C
PG_SCALE=${PG_SCALE:-30}
PG_CHANGE_PCT=${PG_CHANGE_PCT:-1}
WAL_SEGS=${WAL_SEGS:-32}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
BENCH_CACHE=${BENCH_CACHE:-/var/tmp/tapwork-bench}
KEEP_WORK=${KEEP_WORK:-0}
TAPWORK_BIN=$(realpath "${TAPWORK_BIN:-$ROOT/build/release/tapwork}")
OUT=${OUT:-$HERE/results/$(date -u +%Y%m%d-%H%M%S)/pitr}
die() { echo "pitr bench: $*" >&2; exit 1; }
for t in pgbackrest setpriv du python3; do command -v "$t" >/dev/null || die "missing $t (scripts/deps.sh --bench)"; done
[[ -x $TAPWORK_BIN ]] || die "no $TAPWORK_BIN (make release)"
id postgres >/dev/null 2>&1 || die "no user postgres"

mkdir -p "$OUT/raw" "$BENCH_CACHE"
WORK=$(mktemp -d "$BENCH_CACHE/pitr.XXXXXX")
chmod 755 "$WORK"
PGDATA=$WORK/data TW_REPO=$WORK/tw-repo BR_REPO=$WORK/br-repo CONF=$WORK/pgbackrest.conf PW=$WORK/password
mkdir -p "$WORK/sock" "$WORK/walcopy" "$WORK/br-log" "$WORK/br-lock" "$WORK/br-spool"
echo "bench-password" >"$PW"
chmod 600 "$PW"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$CONF" <<CONF
[global]
repo1-path=$BR_REPO
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=bench-cipher-pass
compress-type=zst
compress-level=3
process-max=2
start-fast=y
log-level-console=warn
log-level-file=info
log-path=$WORK/br-log
lock-path=$WORK/br-lock
spool-path=$WORK/br-spool

[bench]
pg1-path=$PGDATA
pg1-port=$PORT
pg1-socket-path=$WORK/sock
CONF
chown -R postgres: "$WORK"
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups env HOME="$WORK" "$@"; }
PG_PID=
cleanup() {
	if [[ -n $PG_PID ]]; then
		kill -INT "$PG_PID" 2>/dev/null || true
		for ((i = 0; i < 300; i++)); do kill -0 "$PG_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$PG_PID" 2>/dev/null || true
	fi
	[[ $KEEP_WORK == 1 ]] || rm -rf "$WORK"
}
trap cleanup EXIT
TW=("$TAPWORK_BIN")
BR=(pgbackrest "--config=$CONF" --stanza=bench)
ARCHIVE="$TAPWORK_BIN pg archive-push -q -r $TW_REPO --password-file $PW %p && pgbackrest --config=$CONF --stanza=bench archive-push %p"

as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres -A trust --no-sync >"$OUT/raw/initdb.log" 2>&1 || die "initdb failed"
# in postgresql.conf, not -c: the WAL phase changes archive_command with ALTER SYSTEM
printf "archive_mode = on\nwal_level = replica\narchive_command = '%s'\n" "$ARCHIVE" >>"$PGDATA/postgresql.conf"
setpriv --reuid=postgres --regid=postgres --init-groups "$PG_BIN/postgres" -D "$PGDATA" -p "$PORT" \
	-c listen_addresses=127.0.0.1 -c unix_socket_directories="$WORK/sock" -c fsync=off \
	-c synchronous_commit=off -c max_wal_size=4GB >"$OUT/raw/postgres.log" 2>&1 &
PG_PID=$!
PSQL=("$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres)
for ((i = 0; i < 150; i++)); do "${PSQL[@]}" -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
as_pg "${TW[@]}" repo init -q -r "$TW_REPO" --password-file "$PW"
as_pg "${BR[@]}" stanza-create >"$OUT/raw/stanza.log" 2>&1 || die "stanza-create failed (see $OUT/raw/stanza.log)"
{
	echo "# pitr bench $(date -u +%FT%TZ) on $(uname -srm), $(nproc) CPUs, $(free -m | awk '/Mem:/{print $2}') MiB RAM"
	echo "# $("$TAPWORK_BIN" version 2>/dev/null | head -n 1); $(pgbackrest version); $("$PG_BIN/postgres" --version)"
	echo "# PG_SCALE=$PG_SCALE PG_CHANGE_PCT=$PG_CHANGE_PCT WAL_SEGS=$WAL_SEGS"
} | tee "$OUT/env.txt"

echo "== pgbench -i -s $PG_SCALE (untimed)"
"$PG_BIN/pgbench" -i -q -s "$PG_SCALE" -h 127.0.0.1 -p "$PORT" -U postgres postgres >"$OUT/raw/pgbench-init.log" 2>&1
"${PSQL[@]}" -c 'VACUUM (FREEZE, ANALYZE)' -c CHECKPOINT
DB=$("${PSQL[@]}" -c "SELECT pg_database_size('postgres')")
echo "database: $((DB >> 20)) MiB" | tee -a "$OUT/env.txt"

now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }
tw_size() { du -sb --exclude=wal "$TW_REPO" | cut -f1; }
br_size() { du -sb "$BR_REPO/backup" | cut -f1; }
warm() { find "$PGDATA" -type f -exec cat {} + >/dev/null 2>&1 || true; }

# wait until the archiver has caught up (pg_backup_stop waits for it: a
# backlog would be charged to whoever backs up first)
wait_archived() {
	local seg i
	seg=$("${PSQL[@]}" -c 'SELECT pg_walfile_name(pg_switch_wal())')
	for ((i = 0; i < 1500; i++)); do
		[[ $("${PSQL[@]}" -c 'SELECT coalesce(last_archived_wal, $$$$) FROM pg_stat_archiver') > "$seg" ||
			$("${PSQL[@]}" -c 'SELECT coalesce(last_archived_wal, $$$$) FROM pg_stat_archiver') == "$seg" ]] && return 0
		sleep 0.2
	done
	die "WAL archiving does not keep up (see $OUT/raw/postgres.log)"
}
declare -A R
backup_round() { # NAME BR-TYPE
	wait_archived
	warm
	local t0 t1
	t0=$(now)
	as_pg "${TW[@]}" backup -q -r "$TW_REPO" --password-file "$PW" --pg-data "$PGDATA" \
		--postgres "postgresql://postgres@127.0.0.1:$PORT/postgres" >"$OUT/raw/tw-$1.log" 2>&1 || die "tapwork backup failed (see $OUT/raw/tw-$1.log)"
	t1=$(now)
	R[tw_$1_s]=$(secs "$t0" "$t1")
	R[tw_$1_bytes]=$(tw_size)
	wait_archived
	warm
	t0=$(now)
	as_pg "${BR[@]}" backup --type="$2" >"$OUT/raw/br-$1.log" 2>&1 || die "pgbackrest backup failed (see $OUT/raw/br-$1.log)"
	t1=$(now)
	R[br_$1_s]=$(secs "$t0" "$t1")
	R[br_$1_bytes]=$(br_size)
	echo "  $1: tapwork ${R[tw_$1_s]} s, repo $((R[tw_$1_bytes] >> 20)) MiB; pgbackrest ${R[br_$1_s]} s, repo $((R[br_$1_bytes] >> 20)) MiB"
}
echo "== full backups"
backup_round full full
echo "== change $PG_CHANGE_PCT % of pgbench_accounts, then second backups"
"${PSQL[@]}" -c "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= $((PG_SCALE * 100000 * PG_CHANGE_PCT / 100))" -c CHECKPOINT
backup_round second incr

echo "== restore of the second backup (data files and recovery settings; no replay)"
mkdir -p "$WORK/r-br"
chown postgres: "$WORK/r-br"
sync
echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
t0=$(now)
as_pg "${TW[@]}" restore -q -r "$TW_REPO" --password-file "$PW" --pg-data "$WORK/r-tw" >"$OUT/raw/tw-restore.log" 2>&1 || die "tapwork restore failed (see $OUT/raw/tw-restore.log)"
t1=$(now)
R[tw_restore_s]=$(secs "$t0" "$t1")
sync
echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
t0=$(now)
as_pg "${BR[@]}" --pg1-path="$WORK/r-br" restore >"$OUT/raw/br-restore.log" 2>&1 || die "pgbackrest restore failed (see $OUT/raw/br-restore.log)"
t1=$(now)
R[br_restore_s]=$(secs "$t0" "$t1")
echo "  tapwork ${R[tw_restore_s]} s, pgbackrest ${R[br_restore_s]} s"
rm -rf "$WORK/r-tw" "$WORK/r-br"

echo "== WAL push: $WAL_SEGS segments, one process per segment"
"${PSQL[@]}" -c "ALTER SYSTEM SET archive_command = 'cp %p $WORK/walcopy/%f'" -c 'SELECT pg_reload_conf()' >/dev/null
sleep 1
start_lsn=$("${PSQL[@]}" -c 'SELECT pg_current_wal_lsn()')
while :; do
	"${PSQL[@]}" -c "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 7 = 0" >/dev/null
	done_bytes=$("${PSQL[@]}" -c "SELECT pg_current_wal_lsn() - '$start_lsn'")
	((done_bytes > (WAL_SEGS + 2) * 16777216)) && break
done
"${PSQL[@]}" -c 'SELECT pg_switch_wal()' >/dev/null
for ((i = 0; i < 600; i++)); do
	(($(find "$WORK/walcopy" -name '0*' -type f | wc -l) >= WAL_SEGS)) && break
	sleep 0.2
done
"${PSQL[@]}" -c 'ALTER SYSTEM RESET archive_command' -c 'SELECT pg_reload_conf()' >/dev/null
mapfile -t SEGS < <(find "$WORK/walcopy" -name '0*' -type f | sort | head -n "$WAL_SEGS")
tw_wal0=$(du -sb "$TW_REPO/wal" | cut -f1)
br_wal0=$(du -sb "$BR_REPO/archive" | cut -f1)
t0=$(now)
for s in "${SEGS[@]}"; do as_pg "${TW[@]}" pg archive-push -q -r "$TW_REPO" --password-file "$PW" --pg-data "$PGDATA" "$s"; done
t1=$(now)
R[tw_wal_s]=$(secs "$t0" "$t1")
t0=$(now)
for s in "${SEGS[@]}"; do as_pg "${BR[@]}" archive-push "$s" >>"$OUT/raw/br-push.log" 2>&1; done
t1=$(now)
R[br_wal_s]=$(secs "$t0" "$t1")
R[tw_wal_bytes]=$(($(du -sb "$TW_REPO/wal" | cut -f1) - tw_wal0))
R[br_wal_bytes]=$(($(du -sb "$BR_REPO/archive" | cut -f1) - br_wal0))
MIB=$((${#SEGS[@]} * 16))

ratio() { python3 -c "print(f'{$1 / $2:.2f}' if $2 else '-')"; }
mib() { python3 -c "print(f'{$1 / 1048576:.1f}')"; }
{
	echo "# tapwork vs pgBackRest 2.45, database $((DB >> 20)) MiB, $(nproc) CPUs (ratio = pgBackRest / tapwork; > 1: tapwork better)"
	printf '%-34s %12s %12s %8s\n' metric tapwork pgbackrest ratio
	printf '%-34s %12s %12s %8s\n' "full backup, s" "${R[tw_full_s]}" "${R[br_full_s]}" "$(ratio "${R[br_full_s]}" "${R[tw_full_s]}")"
	printf '%-34s %12s %12s %8s\n' "repository after full, MiB" "$(mib "${R[tw_full_bytes]}")" "$(mib "${R[br_full_bytes]}")" "$(ratio "${R[br_full_bytes]}" "${R[tw_full_bytes]}")"
	printf '%-34s %12s %12s %8s\n' "second backup ($PG_CHANGE_PCT % changed), s" "${R[tw_second_s]}" "${R[br_second_s]}" "$(ratio "${R[br_second_s]}" "${R[tw_second_s]}")"
	tw_add=$((R[tw_second_bytes] - R[tw_full_bytes])) br_add=$((R[br_second_bytes] - R[br_full_bytes]))
	printf '%-34s %12s %12s %8s\n' "second backup added, MiB" "$(mib $tw_add)" "$(mib $br_add)" "$(ratio $br_add $tw_add)"
	printf '%-34s %12s %12s %8s\n' "restore of the second backup, s" "${R[tw_restore_s]}" "${R[br_restore_s]}" "$(ratio "${R[br_restore_s]}" "${R[tw_restore_s]}")"
	printf '%-34s %12s %12s %8s\n' "WAL push ($MIB MiB), MiB/s" "$(python3 -c "print(f'{$MIB / ${R[tw_wal_s]}:.1f}')")" "$(python3 -c "print(f'{$MIB / ${R[br_wal_s]}:.1f}')")" "$(ratio "${R[br_wal_s]}" "${R[tw_wal_s]}")"
	printf '%-34s %12s %12s %8s\n' "WAL stored ($MIB MiB), MiB" "$(mib "${R[tw_wal_bytes]}")" "$(mib "${R[br_wal_bytes]}")" "$(ratio "${R[br_wal_bytes]}" "${R[tw_wal_bytes]}")"
	echo "# command: PG_SCALE=$PG_SCALE PG_CHANGE_PCT=$PG_CHANGE_PCT WAL_SEGS=$WAL_SEGS bench/pitr.sh"
} | tee "$OUT/summary.txt"

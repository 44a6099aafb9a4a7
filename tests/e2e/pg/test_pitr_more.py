"""PostgreSQL point-in-time recovery, the engine's safety nets: archive-push
refuses WAL of another cluster or another PostgreSQL version than the
repository registered; page checksums are verified during a physical backup
of an `initdb -k` cluster; restore refuses a non-empty directory and writes
global/pg_control last; tablespaces are backed up and restored (remapped).

One checksummed PostgreSQL 15 server per module archives into one local
repository; restores start a second server on the restored directory.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "backup"))
from bkhelp import PASSWORD, json_lines  # noqa: E402
from conftest import BIN, free_port, wait_for  # noqa: E402
import pgutil  # noqa: E402
from pgutil import chown_postgres, wait_promoted  # noqa: E402
from pitrsite import ArchiveSite, module_site  # noqa: E402

pytestmark = pytest.mark.skipif(pgutil.missing() is not None, reason=str(pgutil.missing()))

PG = pgutil.PGBIN



def sysid(datadir):
    with open(os.path.join(datadir, "global", "pg_control"), "rb") as f:
        return struct.unpack("<Q", f.read(8))[0]


class Site(ArchiveSite):
    """A repository, and a server with data checksums archiving into it."""

    def __init__(self):
        super().__init__(checksums=True)

    def backup(self, check=0):
        try:
            r = self.tw("backup", "--json", "--pg-data", self.pg.dir, "--postgres",
                        self.pg.url("postgres"), "--archive-timeout", "60", check=check,
                        timeout=120)
        except (AssertionError, subprocess.TimeoutExpired) as x:
            raise AssertionError(f"{x}\nserver log:\n{self.log_tail()}")
        r.summary = json_lines(r.out)[-1] if json_lines(r.out) else None
        return r


site = module_site(Site)


def archived_segment(site, tmp):
    """A real segment of the site's cluster, fetched back from the archive."""
    site.switch()
    # pg check returns once the segment is in the repository; the archiver
    # reports it to pg_stat_archiver a moment later
    seg = wait_for(lambda: site.pg.psql("postgres", "SELECT last_archived_wal FROM pg_stat_archiver"
                                        ).stdout.strip(), 30, "pg_stat_archiver's last segment", 0.1)
    dest = os.path.join(tmp, "got")
    site.tw("pg", "archive-get", "--pg-data", site.pg.dir, seg, dest, check=0)
    with open(dest, "rb") as f:
        return seg, f.read()


def test_archive_push_checks_the_segment_header(site, tmp_path):
    tmp = pgutil.make_tmp()
    try:
        seg, data = archived_segment(site, tmp)
        magic, info = struct.unpack_from("<HH", data, 0)
        assert magic == 0xD110 and info & 2, hex(magic)  # PostgreSQL 15, long header
        me = sysid(site.pg.dir)
        assert struct.unpack_from("<Q", data, 24)[0] == me
        # the first push registered the cluster in the WAL namespace
        assert os.path.exists(os.path.join(site.repo, "wal", "%016X-cluster" % me))
        name = "0000000100000000000000F0"
        # a segment of another cluster, pushed for this data directory
        other = os.path.join(tmp, "other")
        pgutil.initdb(other, fresh=True)
        theirs = sysid(other)
        path = os.path.join(tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        r = site.tw("pg", "archive-push", "--pg-data", other, path, check=1)
        assert f"database system {me}" in r.err and f"database system {theirs}" in r.err, r.err
        assert not os.path.exists(os.path.join(site.repo, "wal", "%016X-%s" % (theirs, name)))
        # another PostgreSQL version (XLOG_PAGE_MAGIC of 16) for this cluster
        with open(path, "wb") as f:
            f.write(struct.pack("<H", 0xD113) + data[2:])
        r = site.tw("pg", "archive-push", "--pg-data", site.pg.dir, path, check=1)
        assert "PostgreSQL 16" in r.err and "PostgreSQL 15" in r.err and str(me) in r.err, r.err
        assert "new repository" in r.err
        # not WAL at all
        with open(path, "wb") as f:
            f.write(os.urandom(1 << 16))
        r = site.tw("pg", "archive-push", "--pg-data", site.pg.dir, path, check=1)
        assert "is not a WAL segment" in r.err, r.err
        assert not os.path.exists(os.path.join(site.repo, "wal", "%016X-%s" % (me, name)))
        # a damaged registration is an error, not a silent re-registration
        # (and the genuine segment still goes in once it is intact)
        reg = os.path.join(site.repo, "wal", "%016X-cluster" % me)
        saved = open(reg, "rb").read()
        with open(reg, "r+b") as f:
            f.seek(40)
            f.write(bytes([saved[40] ^ 1]))
        with open(path, "wb") as f:
            f.write(data)
        r = site.tw("pg", "archive-push", "--pg-data", site.pg.dir, path, check=1)
        with open(reg, "wb") as f:
            f.write(saved)
        site.tw("pg", "archive-push", "--pg-data", site.pg.dir, path, check=0)
        assert os.path.exists(os.path.join(site.repo, "wal", "%016X-%s" % (me, name)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_page_checksums_are_verified(site):
    """A page of a table damaged on disk (server stopped): the backup of the
    `initdb -k` cluster warns with file and block and the snapshot records
    it; every other page of the cluster verifies."""
    pg = site.pg
    pg.psql("postgres", "CREATE TABLE ck(id int, pad text);"
                        "INSERT INTO ck SELECT g, repeat('p', 200) FROM generate_series(1, 200) g;"
                        "CHECKPOINT")
    rel = pg.psql("postgres", "SELECT pg_relation_filepath('ck')").stdout.strip()
    first = site.backup()
    assert first.summary["data_checksums"] is True and first.summary["damaged_pages"] == 0, \
        first.err
    pg.stop()
    with open(os.path.join(site.data, rel), "r+b") as f:
        f.seek(8192 + 5000)  # block 1, inside the tuple data
        b = f.read(1)
        f.seek(8192 + 5000)
        f.write(bytes([b[0] ^ 0x55]))
    site.pg = pg = pgutil.Postgres(free_port(), conf=site.conf, datadir=site.data)
    try:
        r = site.backup()
        assert f"page checksum mismatch in {rel} block 1 " in r.err, r.err
        assert r.err.count("page checksum mismatch in ") == 1, r.err
        assert r.summary["damaged_pages"] == 1
        snap = [s for s in json.loads(site.tw("snapshots", "--json", check=0).out)
                if s["id"] == r.summary["snapshot_id"]][0]
        assert snap["pg"]["data_checksums"] is True
        assert snap["pg"]["damaged_pages"] == [{"file": rel, "block": 1}]
        assert snap["pg"]["damaged_pages_total"] == 1
        text = site.tw("snapshots", check=0).out
        line = [l for l in text.splitlines() if l.startswith(r.summary["snapshot_id"][:8])][0]
        assert "1 damaged pages" in line, text
        # PostgreSQL agrees: reading the table fails on that block
        q = pg.psql("postgres", "SELECT count(*) FROM ck", check=False)
        assert q.returncode != 0 and "checksum" in q.stderr, q.stderr
    finally:
        pg.psql("postgres", "DROP TABLE ck")


def restore_args(site, *extra):
    return ("restore", "--pg-password-file", site.pwfile, "--pg-target", "immediate",
            "--pg-target-action", "promote", *extra)


def test_restore_into_a_non_empty_directory(site):
    pg = site.pg
    pg.psql("postgres", "CREATE TABLE kept AS SELECT g FROM generate_series(1, 1000) g")
    site.backup()
    tmp = pgutil.make_tmp()
    try:
        d = os.path.join(tmp, "pgdata")
        pgutil.initdb(d, fresh=True)  # an old cluster in the way
        old_id = sysid(d)
        marker = os.path.join(d, "old-marker")
        open(marker, "w").close()
        r = site.tw(*restore_args(site, "--pg-data", d), check=1)
        assert "holds a PostgreSQL data directory" in r.err and "--force" in r.err, r.err
        assert os.path.exists(marker) and sysid(d) == old_id
        # a directory of other files: named too
        other = os.path.join(tmp, "other")
        os.makedirs(other)
        open(os.path.join(other, "notes.txt"), "w").close()
        r = site.tw(*restore_args(site, "--pg-data", other), check=1)
        assert "not empty" in r.err and "notes.txt" in r.err, r.err
        # never over a running server, even with --force
        r = site.tw(*restore_args(site, "--pg-data", pg.dir, "--force"), check=1)
        assert "running PostgreSQL" in r.err, r.err
        assert pg.psql("postgres", "SELECT count(*) FROM kept").stdout.strip() == "1000"
        # --force replaces the old cluster
        site.tw(*restore_args(site, "--pg-data", d, "--force"), check=0, timeout=300)
        assert not os.path.exists(marker) and sysid(d) == sysid(pg.dir)
        assert [n for n in os.listdir(tmp) if "tapwork-restore" in n] == []
        p = site.start(d, tmp)
        wait_promoted(p)
        assert p.psql("postgres", "SELECT count(*) FROM kept").stdout.strip() == "1000"
        p.stop()
        site.restored.remove(p)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_interrupted_restore_cannot_start(site):
    """SIGKILL while the data is written: the target does not exist, and the
    staging copy has no global/pg_control (written last), so PostgreSQL
    refuses to start on it."""
    site.pg.psql("postgres", "CREATE TABLE fill AS SELECT g, md5(g::text) AS h "
                             "FROM generate_series(1, 600000) g")
    site.backup()
    tmp = pgutil.make_tmp()
    try:
        d = os.path.join(tmp, "pgdata")
        env = dict(os.environ, TAPWORK_REPOSITORY=site.repo, TAPWORK_PASSWORD=PASSWORD)
        env.pop("TAPWORK_PASSWORD_FILE", None)
        proc = subprocess.Popen([BIN, *restore_args(site, "--pg-data", d, "--threads", "1")],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stage = os.path.join(tmp, f"pgdata.tapwork-restore-{proc.pid}",
                             os.path.basename(site.pg.dir))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            # the small files are in: the table's data is still being written
            if os.path.exists(os.path.join(stage, "postgresql.conf")) and \
                    os.path.exists(os.path.join(stage, "PG_VERSION")):
                break
        proc.kill()
        proc.wait(30)
        assert proc.returncode == -9, "the restore ended before it was killed"
        assert not os.path.exists(d)
        assert os.path.isdir(stage)
        assert not os.path.exists(os.path.join(stage, "global", "pg_control"))
        chown_postgres(tmp)
        r = subprocess.run(["runuser", "-u", "postgres", "--", os.path.join(PG, "postgres"),
                            "-D", stage, "-p", str(free_port()), "-k", tmp,
                            "-c", "listen_addresses="],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and ("global/pg_control" in r.stderr or
                                      "postgresql.conf" in r.stderr), r.stderr
        # the next restore into the same target is not disturbed by the leftover
        site.tw(*restore_args(site, "--pg-data", d), check=0, timeout=300)
        assert os.path.exists(os.path.join(d, "global", "pg_control"))
        assert os.path.exists(os.path.join(d, "backup_label"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        site.pg.psql("postgres", "DROP TABLE fill")


def test_restore_onto_a_full_file_system_fails_clearly(site):
    """The target's file system fills up part way (a small tmpfs): restore
    names the failure, exits non-zero, and leaves nothing PostgreSQL could
    start on; the same restore succeeds once there is room."""
    site.backup()
    tmp = pgutil.make_tmp()
    mnt = os.path.join(tmp, "small")
    os.makedirs(mnt)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt],
                      capture_output=True).returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        d = os.path.join(mnt, "pgdata")
        r = site.tw(*restore_args(site, "--pg-data", d), timeout=300)
        assert r.returncode != 0, "restore reported success on a full file system"
        assert "file system is full" in r.err and "No space left on device" in r.err, r.err
        assert "make room and run it again" in r.err, r.err
        # one line for the first failed write, not one per file
        assert r.err.count("No space left on device") <= 4, r.err[-3000:]
        assert not os.path.exists(os.path.join(d, "global", "pg_control"))
        left = [n for n in os.listdir(mnt) if n != "pgdata"]
        for n in left:  # a staging copy may stay, but never a startable one
            assert not os.path.exists(os.path.join(mnt, n, os.path.basename(site.pg.dir),
                                                   "global", "pg_control")), n
        subprocess.run(["mount", "-o", "remount,size=512m", mnt], check=True)
        for n in os.listdir(mnt):
            shutil.rmtree(os.path.join(mnt, n), ignore_errors=True)
        site.tw(*restore_args(site, "--pg-data", d), check=0, timeout=300)
        assert os.path.exists(os.path.join(d, "global", "pg_control"))
    finally:
        subprocess.run(["umount", "-l", mnt], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def test_tablespaces_backed_up_and_restored_remapped(site):
    pg = site.pg
    loc = os.path.join(site.tmp, "ts_fast")
    os.makedirs(loc)
    chown_postgres(loc)
    pg.psql("postgres", f"CREATE TABLESPACE fast LOCATION '{loc}'")
    try:
        pg.psql("postgres", "CREATE TABLE spaced(id int, v text) TABLESPACE fast;"
                            "INSERT INTO spaced SELECT g, md5(g::text) FROM generate_series(1, 5000) g;"
                            "CREATE UNLOGGED TABLE spaced_u(id int) TABLESPACE fast;"
                            "INSERT INTO spaced_u SELECT generate_series(1, 10)")
        oid = pg.psql("postgres", "SELECT oid FROM pg_tablespace WHERE spcname = 'fast'"
                      ).stdout.strip()
        r = site.backup()
        assert r.summary["damaged_pages"] == 0, r.err  # its pages were verified too
        snap = [s for s in json.loads(site.tw("snapshots", "--json", check=0).out)
                if s["id"] == r.summary["snapshot_id"]][0]
        assert snap["pg"]["tablespaces"] == [{"oid": int(oid), "name": "fast", "path": loc}]
        assert sorted(snap["paths"]) == sorted([site.data, loc])
        pg.psql("postgres", "INSERT INTO spaced VALUES (-1, 'after the backup')")
        site.switch()
        want = pg.psql("postgres", "SELECT count(*), sum(id), md5(string_agg(v, ',' ORDER BY id)) "
                                   "FROM spaced").stdout.strip()
        tmp = pgutil.make_tmp()
        d = os.path.join(tmp, "pgdata")
        # its original location is in use: refused, and the remap is suggested
        res = site.tw("restore", "--pg-password-file", site.pwfile, "--pg-data", d, check=1)
        assert f"{loc}, which is not empty" in res.err and "--pg-tablespace fast=DIR" in res.err
        assert not os.path.exists(d)
        res = site.tw("restore", "--pg-password-file", site.pwfile, "--pg-data", d,
                      "--pg-tablespace", "nope=/x", check=1)
        assert "no tablespace nope" in res.err
        moved = os.path.join(tmp, "ts_moved")
        site.tw("restore", "--pg-password-file", site.pwfile, "--pg-data", d,
                "--pg-tablespace", f"fast={moved}", "--pg-target-action", "promote",
                check=0, timeout=300)
        assert os.readlink(os.path.join(d, "pg_tblspc", oid)) == moved
        with open(os.path.join(d, "tablespace_map")) as f:
            assert f.read() == f"{oid} {moved}\n"
        assert os.listdir(moved) and [n for n in os.listdir(tmp) if "tapwork-restore" in n] == []
        p = site.start(d, tmp)
        wait_promoted(p)
        assert p.psql("postgres", "SELECT count(*), sum(id), md5(string_agg(v, ',' ORDER BY id)) "
                                  "FROM spaced").stdout.strip() == want
        assert p.psql("postgres", "SELECT pg_tablespace_location(oid) FROM pg_tablespace "
                                  "WHERE spcname = 'fast'").stdout.strip() == moved
        assert p.psql("postgres", "SELECT count(*) FROM spaced_u").stdout.strip() == "0"
        # the original is untouched
        assert pg.psql("postgres", "SELECT count(*) FROM spaced").stdout.strip() == "5001"
    finally:
        pg.psql("postgres", "DROP TABLE IF EXISTS spaced; DROP TABLE IF EXISTS spaced_u")
        pg.psql("postgres", "DROP TABLESPACE IF EXISTS fast")  # not in a transaction block


def test_pgbench_during_backup_then_pitr_is_consistent(site):
    """pgbench writes while the backup runs; a restore to a moment inside the
    workload is consistent: pg_amcheck finds nothing, and pgbench's balance
    invariant holds (every committed transaction moved the same delta
    through an account, a teller, a branch and the history)."""
    pg = site.pg
    pg.psql("postgres", "CREATE DATABASE bench")
    r = subprocess.run([os.path.join(PG, "pgbench"), "-i", "-s", "2", "-q", pg.url("bench")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    # bounded by -T; stopped (SIGTERM) once the target moment is behind us
    bench = subprocess.Popen([os.path.join(PG, "pgbench"), "-c", "2", "-j", "2", "-T", "120",
                              pg.url("bench")], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        snap = site.backup().summary
        time.sleep(0.5)
        assert bench.poll() is None, bench.stderr.read()
        target = pg.psql("postgres", "SELECT clock_timestamp()").stdout.strip()
        time.sleep(1.0)
    finally:
        bench.terminate()
        bench.communicate(timeout=60)
    site.switch()
    total = int(pg.psql("bench", "SELECT count(*) FROM pgbench_history").stdout)
    tmp = pgutil.make_tmp()
    d = os.path.join(tmp, "pgdata")
    site.tw("restore", "--pg-password-file", site.pwfile, "--pg-data", d,
            "--pg-target-time", target, "--pg-target-action", "promote", check=0, timeout=300)
    p = site.start(d, tmp)
    wait_promoted(p)
    r = subprocess.run([os.path.join(PG, "pg_amcheck"), "-h", "127.0.0.1", "-p", str(p.port),
                        "-U", "postgres", "--install-missing", "--heapallindexed",
                        "-d", "bench", "-d", "postgres"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "", r.stdout + r.stderr
    sums = p.psql("bench", "SELECT (SELECT sum(abalance) FROM pgbench_accounts),"
                           "(SELECT sum(tbalance) FROM pgbench_tellers),"
                           "(SELECT sum(bbalance) FROM pgbench_branches),"
                           "(SELECT sum(delta) FROM pgbench_history),"
                           "(SELECT count(*) FROM pgbench_history)").stdout.strip().split("|")
    a, t, b, h, n = (int(x) for x in sums)
    assert a == t == b == h, sums
    # a moment inside the workload: some of it, not all of it, and more
    # than what the snapshot alone held
    assert 0 < n < total, (n, total, snap)
    p.stop()
    site.restored.remove(p)
    shutil.rmtree(tmp, ignore_errors=True)

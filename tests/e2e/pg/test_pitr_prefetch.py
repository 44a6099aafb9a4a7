"""PostgreSQL point-in-time recovery with archive-get's WAL prefetch (the
default): recovery reaches exactly the same rows as without prefetch; the
spool holds the next segments (byte-identical to the archive's) while
recovery is paused and is gone after promotion; a damaged WAL object that
the prefetcher could not fetch still stops recovery (exit >= 126, the server
never comes up); recovery that switches timelines never takes a prefetched
segment of the old timeline.

One PostgreSQL 15 server archives into one local repository; twelve single-row
commits each end a WAL segment, so recovery asks for one segment per row.
"""
import os
import re
import shutil
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "backup"))
from conftest import free_port  # noqa: E402
import pgutil  # noqa: E402
from pitrsite import module_site  # noqa: E402
from test_pitr import Site, chown_postgres, rows, wait_paused, wait_promoted  # noqa: E402

pytestmark = pytest.mark.skipif(pgutil.missing() is not None, reason=str(pgutil.missing()))

SPOOL = os.path.join("pg_wal", "tapwork-spool")


site = module_site(Site)


@pytest.fixture(scope="module")
def work(site):
    """A snapshot, then rows 1..12, each committed with ~1 MiB of other
    writes and followed by a segment switch; the LSN just after row 8."""
    pg = site.pg
    pg.psql("postgres", "CREATE TABLE t(id int PRIMARY KEY); CREATE TABLE load(pad text)")
    snap = site.backup()
    lsn8 = None
    for i in range(1, 13):
        pg.psql("postgres", f"INSERT INTO t VALUES ({i});"
                            "INSERT INTO load SELECT md5(g::text) || repeat('p', 400) "
                            "FROM generate_series(1, 2000) g")
        if i == 8:
            lsn8 = pg.psql("postgres", "SELECT pg_current_wal_insert_lsn()").stdout.strip()
        pg.psql("postgres", "SELECT pg_switch_wal()")
    site.tw("pg", "check", "--pg-data", pg.dir, "--postgres", pg.url("postgres"), check=0,
            timeout=120)
    return {"snap": snap, "lsn8": lsn8}


def segments(d):
    return sorted(n for n in os.listdir(d) if re.fullmatch(r"[0-9A-F]{24}", n))


def no_prefetch(target):
    """Rewrite the restored restore_command to fetch without prefetch."""
    path = os.path.join(target, "postgresql.auto.conf")
    with open(path) as f:
        conf = f.read()
    assert "pg archive-get -q " in conf
    with open(path, "w") as f:
        f.write(conf.replace("pg archive-get -q ", "pg archive-get --prefetch 0 -q "))


def test_prefetch_gives_the_same_rows_and_the_spool_goes(site, work):
    # without prefetch: the reference
    target = site.restore("--pg-target-lsn", work["lsn8"], "--pg-target-action", "promote",
                          start=False)
    no_prefetch(target)
    p = pgutil.Postgres(free_port(), conf=site.conf, datadir=target)
    p.restore_tmp = os.path.dirname(target)
    site.restored.append(p)
    wait_promoted(p)
    ref = rows(p)
    assert ref == list(range(1, 9))
    assert not os.path.exists(os.path.join(target, SPOOL))
    p.stop()

    # with prefetch, paused at the target: the spool holds the segments after
    # the one being replayed, each identical to what a direct fetch returns
    q = site.restore("--pg-target-lsn", work["lsn8"], "--pg-target-action", "pause")
    wait_paused(q)
    assert rows(q) == ref
    spool = os.path.join(q.dir, SPOOL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the last prefetcher may still be writing
        if not any(n.startswith(".want-") for n in os.listdir(spool)):
            break
        time.sleep(0.1)
    got = segments(spool)
    assert len(got) >= 3, os.listdir(spool)
    assert len(got) <= 8, got  # bounded: the window ahead of the last served segment
    assert not [n for n in os.listdir(spool) if n.startswith(".tmp-")]
    for name in got:
        direct = os.path.join(site.tmp, "direct")
        site.tw("pg", "archive-get", "--prefetch", "0", "--pg-data", q.dir, name, direct,
                check=0)
        with open(direct, "rb") as a, open(os.path.join(spool, name), "rb") as b:
            assert a.read() == b.read(), name
        os.unlink(direct)
    # promotion ends recovery: recovery_end_command removes the spool
    q.psql("postgres", "SELECT pg_wal_replay_resume()")
    wait_promoted(q)
    deadline = time.monotonic() + 30
    while os.path.exists(spool) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(spool)
    assert rows(q) == ref
    q.stop()


def test_timeline_switch_never_uses_a_prefetched_segment_of_the_old_timeline(site, work):
    """Recover to row 5 and promote: timeline 2 forks there and gets row 100.
    A second restore of the same snapshot follows timeline 2 (latest) to its
    end: while it replays timeline 1 the prefetcher fetches timeline 1's
    segments past the fork (they hold rows 6..12); recovery must switch to
    timeline 2's segments all the same."""
    pg = site.pg
    r = pg.psql("postgres", "SELECT xmin::text FROM t WHERE id = 5")
    a = site.restore("--pg-target-xid", r.stdout.strip(), "--pg-target-action", "promote")
    wait_promoted(a)
    assert rows(a) == [1, 2, 3, 4, 5]
    a.psql("postgres", "INSERT INTO t VALUES (100)")
    a.psql("postgres", "SELECT pg_switch_wal()")
    site.tw("pg", "check", "--pg-data", a.dir, "--postgres", a.url("postgres"), check=0,
            timeout=120)
    a.stop()
    b = site.restore()
    wait_promoted(b)
    assert rows(b) == [1, 2, 3, 4, 5, 100]
    assert not os.path.exists(os.path.join(b.dir, SPOOL))
    b.stop()


def test_damaged_object_the_prefetcher_met_still_stops_recovery(site, work):
    """Runs last. In a copy of the repository, the third segment after the
    snapshot's start is damaged: the prefetcher (started by the first
    segments) cannot fetch it, archive-get then fetches it directly and
    exits 126, and the server stops instead of coming up promoted."""
    copy = os.path.join(site.tmp, "repo-damaged")
    shutil.copytree(site.repo, copy)
    chown_postgres(copy)
    wal = os.path.join(copy, "wal")
    start = work["snap"]["start_wal"]
    segs = sorted(n for n in os.listdir(wal) if len(n) == 41 and n[17:25] == "00000001"
                  and n[17:] > start)
    bad = segs[2]
    with open(os.path.join(wal, bad), "r+b") as f:
        f.seek(200)
        b = f.read(1)
        f.seek(200)
        f.write(bytes([b[0] ^ 0x40]))
    tmp = pgutil.make_tmp()
    target = os.path.join(tmp, "pgdata")
    from bkhelp import tw  # noqa: E402
    tw(copy, "restore", "--pg-data", target, "--pg-password-file", site.pwfile,
       "--pg-target-action", "promote", check=0, timeout=300)
    p = None
    try:
        try:
            # hot standby may accept connections before replay reaches it
            p = pgutil.Postgres(free_port(), conf=site.conf, datadir=target)
            p.proc.wait(timeout=120)
            p.log.flush()
            with open(os.path.join(p.tmp, "postgres.log"), errors="replace") as f:
                msg = f.read()
        except AssertionError as ex:
            msg = str(ex)
        # exit status 126 is what PostgreSQL calls "command not executable": fatal
        assert bad[17:] in msg and "command not executable" in msg, msg
        assert "authentication failed" in msg, msg
        # it never promoted: still in recovery, no new timeline
        assert os.path.exists(os.path.join(target, "recovery.signal"))
        newest = max(int(n[17:25], 16) for n in os.listdir(wal) if n.endswith(".history"))
        assert not os.path.exists(os.path.join(target, "pg_wal", "%08X.history" % (newest + 1)))
    finally:
        if p is not None:
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)

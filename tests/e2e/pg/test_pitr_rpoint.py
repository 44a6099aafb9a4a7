"""restore --pg-target-name without SNAPSHOT: tapwork finds the restore
point in the archived WAL and restores the newest snapshot that ended
before it (not the oldest, which would replay every segment since).

One PostgreSQL 15 server archives into a local repository:
row 1, [snapshot A], row 2, points 'between' and 'twice', row 3,
[snapshot B], row 4, point 'after', row 5, point 'twice' again, row 6. Each restore starts a server
on the restored directory and reads the table.
"""
import os
import shutil
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "backup"))
from conftest import free_port  # noqa: E402
import pgutil  # noqa: E402
from test_pitr import Site, rows, wait_paused  # noqa: E402

pytestmark = pytest.mark.skipif(pgutil.missing() is not None, reason=str(pgutil.missing()))


@pytest.fixture(scope="module")
def site():
    s = Site()
    pg = s.pg
    pg.psql("postgres", "CREATE TABLE t(id int PRIMARY KEY); INSERT INTO t VALUES (1)")
    a = s.backup()
    pg.psql("postgres", "INSERT INTO t VALUES (2)")
    pg.psql("postgres", "SELECT pg_create_restore_point('between')")
    pg.psql("postgres", "SELECT pg_create_restore_point('twice')")
    pg.psql("postgres", "INSERT INTO t VALUES (3)")
    b = s.backup()
    pg.psql("postgres", "INSERT INTO t VALUES (4)")
    pg.psql("postgres", "SELECT pg_create_restore_point('after')")
    pg.psql("postgres", "INSERT INTO t VALUES (5)")
    # a name used again: recovery from B stops at the second one
    pg.psql("postgres", "SELECT pg_create_restore_point('twice')")
    pg.psql("postgres", "INSERT INTO t VALUES (6)")
    s.tw("pg", "check", "--pg-data", pg.dir, "--postgres", pg.url("postgres"), check=0,
         timeout=120)
    s.snaps = (a["snapshot_id"], b["snapshot_id"])
    yield s
    s.close()


def restore(site, name):
    """Restore to point `name`, start a server there, wait for recovery to
    pause at the point (no new timeline: each restore sees the same archive);
    return (server, tapwork's output)."""
    tmp = pgutil.make_tmp()
    target = os.path.join(tmp, "pgdata")
    r = site.tw("restore", "--pg-data", target, "--pg-password-file", site.pwfile,
                "--pg-target-name", name, check=0,
                timeout=300)
    p = pgutil.Postgres(free_port(), conf=site.conf, datadir=target)
    p.restore_tmp = tmp
    site.restored.append(p)
    wait_paused(p)
    return p, r.out + r.err


def test_point_after_the_newest_snapshot_picks_it(site):
    p, out = restore(site, "after")
    assert f"restored snapshot {site.snaps[1][:8]}" in out, out
    assert "restore point 'after' is at LSN" in out
    assert rows(p) == [1, 2, 3, 4]


def test_point_between_the_snapshots_picks_the_older(site):
    p, out = restore(site, "between")
    assert f"restored snapshot {site.snaps[0][:8]}" in out, out
    assert rows(p) == [1, 2]


def test_name_used_twice_takes_the_newest_snapshot_before_one(site):
    p, out = restore(site, "twice")
    assert f"restored snapshot {site.snaps[1][:8]}" in out, out
    assert rows(p) == [1, 2, 3, 4, 5]


def test_missing_point_is_a_clear_error(site):
    tmp = pgutil.make_tmp()
    try:
        r = site.tw("restore", "--pg-data", os.path.join(tmp, "d"), "--pg-target-name", "nope",
                    check=1)
        assert "restore point 'nope' is not in the WAL archive" in r.err, r.err
        assert not os.path.exists(os.path.join(tmp, "d"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

"""PostgreSQL point-in-time recovery after repeated promoted restores into
one archive: without --pg-target-timeline, restore picks the newest timeline
whose history passes through the snapshot, whatever newer timeline forked
off elsewhere.

Timelines: 1 (the source server, snapshot S1), 2 (S1 restored and promoted;
snapshot S2 taken there), 3 (S2 restored and promoted: a child of 2),
4 (S1 restored again with --pg-target immediate and promoted: recovery went
along timeline 3 but stopped on timeline 1, so PostgreSQL writes 4's history
as 3's plus "3 <a point on timeline 1>": timeline 4 shadows 2 and 3). A
restore of S2 must follow timeline 3, the newest one holding S2; the newest
(4) makes PostgreSQL refuse to start ("requested timeline 4 is not a child of
this server's history"), and S2's own timeline 2 would lose what 3 committed.
"""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "backup"))
from bkhelp import json_lines  # noqa: E402
from conftest import free_port  # noqa: E402
import pgutil  # noqa: E402
from pitrsite import module_site  # noqa: E402
from test_pitr import Site, rows, wait_promoted  # noqa: E402

pytestmark = pytest.mark.skipif(pgutil.missing() is not None, reason=str(pgutil.missing()))


def timeline(p):
    return int(p.psql("postgres", "SELECT timeline_id FROM pg_control_checkpoint()").stdout)


def check(site, p):
    site.tw("pg", "check", "--pg-data", p.dir, "--postgres", p.url("postgres"), check=0,
            timeout=120)


def backup(site, p):
    r = site.tw("backup", "--json", "--pg-data", p.dir, "--postgres", p.url("postgres"),
                check=0, timeout=300)
    return json_lines(r.out)[-1]["snapshot_id"]


def promoted(site, *args):
    p = site.restore(*args, "--pg-target-action", "promote")
    wait_promoted(p)
    p.psql("postgres", "CHECKPOINT")
    return p


site = module_site(Site)


def test_restore_follows_the_newest_timeline_holding_the_snapshot(site):
    pg = site.pg
    pg.psql("postgres", "CREATE TABLE t(id int PRIMARY KEY); INSERT INTO t VALUES (1)")
    s1 = backup(site, pg)
    pg.psql("postgres", "INSERT INTO t VALUES (2)")
    check(site, pg)

    p2 = promoted(site, s1)  # replays all of timeline 1
    assert rows(p2) == [1, 2] and timeline(p2) == 2
    p2.psql("postgres", "INSERT INTO t VALUES (20)")
    s2 = backup(site, p2)
    p2.psql("postgres", "INSERT INTO t VALUES (21)")
    check(site, p2)

    p3 = promoted(site, s2)  # timeline 2 is the newest: replays all of it
    assert rows(p3) == [1, 2, 20, 21] and timeline(p3) == 3
    p3.psql("postgres", "INSERT INTO t VALUES (30)")
    check(site, p3)

    p4 = promoted(site, s1, "--pg-target", "immediate")  # forks off timeline 1
    assert rows(p4) == [1] and timeline(p4) == 4
    p4.psql("postgres", "INSERT INTO t VALUES (40)")
    check(site, p4)
    for p in (p2, p3, p4):
        p.stop()

    # S2 lies on timeline 2: timeline 4 (the newest) does not pass through
    # it, timeline 3 does
    tmp = pgutil.make_tmp()
    target = os.path.join(tmp, "pgdata")
    r = site.tw("restore", s2, "--pg-data", target, "--pg-password-file", site.pwfile,
                "--pg-target-action", "promote", check=0, timeout=300)
    with open(os.path.join(target, "postgresql.auto.conf")) as f:
        auto = f.read()
    assert "recovering along timeline 3" in r.err, (r.err, auto)
    assert "recovery_target_timeline = '3'" in auto, auto
    q = pgutil.Postgres(free_port(), conf=site.conf, datadir=target)
    q.restore_tmp = tmp
    site.restored.append(q)
    wait_promoted(q)
    assert rows(q) == [1, 2, 20, 21, 30]
    assert timeline(q) == 5

    # S1 lies on timeline 1, which every later timeline's history holds:
    # restore leaves PostgreSQL's default, the newest (5, q's)
    q.psql("postgres", "INSERT INTO t VALUES (50)")
    check(site, q)
    q1 = promoted(site, s1)
    assert rows(q1) == [1, 2, 20, 21, 30, 50] and timeline(q1) == 6

"""The physical backup's wait for its stop segment: pg_backup_stop returns
at once and tapwork itself waits until the segment is in the repository.
With an archive_command that keeps failing, the backup gives up after
--archive-timeout with a message that says so (before: PostgreSQL's own
wait, cut by a statement timeout), writes no snapshot, and leaves the
server out of backup mode; once archiving works the next backup succeeds.
"""
import os
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "backup"))
from bkhelp import json_lines, tw  # noqa: E402
from conftest import BIN  # noqa: E402
import pgutil  # noqa: E402
from pitrsite import module_site  # noqa: E402
from test_pitr import Site  # noqa: E402

pytestmark = pytest.mark.skipif(pgutil.missing() is not None, reason=str(pgutil.missing()))


site = module_site(Site)


def test_stop_segment_wait_times_out_then_succeeds(site):
    pg = site.pg
    pg.psql("postgres", "CREATE TABLE t(id int); INSERT INTO t VALUES (1)")
    site.tw("pg", "check", "--pg-data", pg.dir, "--postgres", pg.url("postgres"), check=0,
            timeout=120)
    # archiving breaks: the repository's WAL directory is read-only to the
    # archiver (postgres), so every push fails from now on
    wal = os.path.join(site.repo, "wal")
    mode = os.stat(wal).st_mode
    os.chmod(wal, 0o555)
    t0 = time.monotonic()
    r = tw(site.repo, "backup", "--pg-data", pg.dir, "--postgres", pg.url("postgres"),
           "--archive-timeout", "3", timeout=120)
    took = time.monotonic() - t0
    assert r.returncode != 0, r.out
    assert "was not archived within 3 s" in r.err, r.err
    assert took < 60, took
    assert json_lines(site.tw("snapshots", "--json", check=0).out) in ([], [[]]), "no snapshot"
    # the session's end aborted the backup on the server
    assert pg.psql("postgres", "SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                               "'client backend' AND query ILIKE '%pg_backup_st%' "
                               "AND pid <> pg_backend_pid()"
                   ).stdout.strip() == "0"
    # archiving works again: the next backup waits for the segment and succeeds
    os.chmod(wal, mode)
    snap = site.backup()
    assert snap["snapshot_id"]
    snaps = site.tw("snapshots", "--json", check=0).out
    assert snap["snapshot_id"] in snaps
    assert BIN

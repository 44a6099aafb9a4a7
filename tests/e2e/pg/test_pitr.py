"""PostgreSQL point-in-time recovery: WAL archived by archive_command into the
repository (tapwork pg archive-push), online physical snapshots (tapwork
backup --pg-data), restores to a time, a restore point, an LSN, an xid,
'immediate', and along a new timeline after a promotion.

One PostgreSQL 15 server per module archives into one local repository; each
restore starts a second server on the restored data directory and reads what
recovery left.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "backup"))
from bkhelp import PASSWORD, json_lines, tw  # noqa: E402
from conftest import BIN, free_port  # noqa: E402
import pgutil  # noqa: E402
from pgutil import chown_postgres, wait_paused, wait_promoted  # noqa: E402,F401
from pitrsite import ArchiveSite, module_site  # noqa: E402

pytestmark = pytest.mark.skipif(pgutil.missing() is not None, reason=str(pgutil.missing()))



class Site(ArchiveSite):
    def backup(self):
        r = self.tw("backup", "--json", "--pg-data", self.pg.dir, "--postgres",
                    self.pg.url("postgres"), check=0, timeout=300)
        return json_lines(r.out)[-1]


def rows(p):
    return [int(x) for x in p.psql("postgres", "SELECT id FROM t ORDER BY id").stdout.split()]


site = module_site(Site)


@pytest.fixture(scope="module")
def history(site):
    """Rows 1..4 around one snapshot taken under write load:
    row 1, [snapshot], row 2, time T, row 3 (xid X, then LSN L), restore
    point 'rp', row 4."""
    pg = site.pg
    pg.psql("postgres", "CREATE UNLOGGED TABLE scratch AS SELECT g FROM generate_series(1, 1000) g")
    pg.psql("postgres", "CREATE TABLE t(id int PRIMARY KEY);"
                        "CREATE TABLE load(id serial, pad text);"
                        "INSERT INTO load(pad) SELECT repeat('x', 500) FROM generate_series(1, 50000);"
                        "INSERT INTO t VALUES (1)")
    stop = threading.Event()

    def writer():
        while not stop.is_set():
            pg.psql("postgres", "INSERT INTO load(pad) SELECT repeat('y', 500) "
                                "FROM generate_series(1, 2000)", check=False)

    th = threading.Thread(target=writer)
    th.start()
    try:
        snap = site.backup()
    finally:
        stop.set()
        th.join()
    pg.psql("postgres", "INSERT INTO t VALUES (2)")
    time.sleep(1.1)
    t_between = pg.psql("postgres", "SELECT clock_timestamp()").stdout.strip()
    time.sleep(1.1)
    out = pg.psql("postgres", "BEGIN; INSERT INTO t VALUES (3); SELECT txid_current(); COMMIT;"
                              "SELECT pg_current_wal_insert_lsn()").stdout.split()
    xid, lsn = out[0], out[1]
    pg.psql("postgres", "SELECT pg_create_restore_point('rp')")
    pg.psql("postgres", "INSERT INTO t VALUES (4)")
    site.tw("pg", "check", "--pg-data", pg.dir, "--postgres", pg.url("postgres"), check=0,
            timeout=120)
    return {"snap": snap, "time": t_between, "xid": xid, "lsn": lsn}


def test_snapshot_records_the_backup(site, history):
    snap = history["snap"]
    assert snap["postgres"] == "physical" and snap["timeline"] == 1, snap
    assert snap["start_wal"] <= snap["stop_wal"]
    r = site.tw("snapshots", "--json", check=0)
    v = [s for s in json.loads(r.out) if s["id"] == snap["snapshot_id"]]
    assert v and v[0]["pg"]["stop_lsn"] == snap["stop_lsn"], r.out
    # the skipped parts of PGDATA are not in the snapshot, their directories are
    r = site.tw("ls", snap["snapshot_id"], check=0)
    assert "/pg_wal" in r.out and "/postmaster.pid" not in r.out
    assert "/pg_wal/0000" not in r.out
    # an unlogged table: only its init fork is copied; restored, it is empty
    node = site.pg.psql("postgres", "SELECT pg_relation_filepath('scratch')").stdout.strip()
    assert f"/{node}_init" in r.out and f"/{node}\n" not in r.out + "\n", node


def test_restore_to_time(site, history):
    p = site.restore("--pg-target-time", history["time"], "--pg-target-action", "promote")
    wait_promoted(p)
    assert rows(p) == [1, 2]
    # the unlogged table was restored from its init fork: empty
    assert p.psql("postgres", "SELECT count(*) FROM scratch").stdout.strip() == "0"


def test_restore_to_named_point(site, history):
    p = site.restore("--pg-target-name", "rp", "--pg-target-action", "promote")
    wait_promoted(p)
    assert rows(p) == [1, 2, 3]


def test_restore_to_xid_inclusive_and_exclusive(site, history):
    p = site.restore("--pg-target-xid", history["xid"], "--pg-target-action", "promote")
    wait_promoted(p)
    assert rows(p) == [1, 2, 3]
    p = site.restore("--pg-target-xid", history["xid"], "--pg-target-exclusive",
                     "--pg-target-action", "promote")
    wait_promoted(p)
    assert rows(p) == [1, 2]


def test_restore_to_lsn(site, history):
    p = site.restore("--pg-target-lsn", history["lsn"], "--pg-target-action", "promote")
    wait_promoted(p)
    assert rows(p) == [1, 2, 3]


def test_restore_immediate_pauses(site, history):
    p = site.restore(history["snap"]["snapshot_id"], "--pg-target", "immediate")
    wait_paused(p)  # PostgreSQL's default action: pause, readable
    assert rows(p) == [1]


def test_target_before_every_snapshot_is_an_error(site, history):
    tmp = pgutil.make_tmp()
    try:
        r = site.tw("restore", "--pg-data", os.path.join(tmp, "d"),
                    "--pg-target-time", "2001-01-01 00:00:00+00", check=1)
        assert "before the end of every PostgreSQL snapshot" in r.err
        assert not os.path.exists(os.path.join(tmp, "d"))
        # a target inside the snapshot's own backup window is refused too
        r = site.tw("restore", history["snap"]["snapshot_id"], "--pg-data",
                    os.path.join(tmp, "d"), "--pg-target-lsn", "0/1", check=1)
        assert "ends after the target" in r.err
        # a non-empty target directory is refused
        os.makedirs(os.path.join(tmp, "full"))
        open(os.path.join(tmp, "full", "x"), "w").close()
        r = site.tw("restore", "--pg-data", os.path.join(tmp, "full"), check=1)
        assert "not empty" in r.err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_promotion_then_timeline_latest(site, history):
    """Restore to T and promote: timeline 2 archives 00000002.history into the
    same repository. A restore of the same timeline-1 snapshot with
    --pg-target-timeline latest follows the history file onto timeline 2."""
    p = site.restore("--pg-target-time", history["time"], "--pg-target-action", "promote")
    wait_promoted(p)
    # every promoted restore of this module took a new timeline (PostgreSQL
    # asks archive-get for NNNNNNNN.history to find a free one)
    p.psql("postgres", "INSERT INTO t VALUES (20)")
    tl = int(p.psql("postgres", "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)")
             .stdout, 16)
    assert tl >= 2
    site.tw("pg", "check", "--pg-data", p.dir, "--postgres", p.url("postgres"), check=0,
            timeout=120)
    assert os.path.exists(os.path.join(site.repo, "wal", "%016X-%08X.history" % (
        int(p.psql("postgres", "SELECT system_identifier FROM pg_control_system()").stdout), tl)))
    # the newest timeline in the archive is ours: replay follows its history
    q = site.restore(history["snap"]["snapshot_id"], "--pg-target-timeline", "latest",
                     "--pg-target-action", "promote")
    wait_promoted(q)
    assert rows(q) == [1, 2, 20]
    # and the current timeline (1) of the snapshot still has rows 3 and 4
    q = site.restore(history["snap"]["snapshot_id"], "--pg-target-timeline", "current",
                     "--pg-target-action", "promote")
    wait_promoted(q)
    assert rows(q) == [1, 2, 3, 4]
    r = site.tw("pg", "verify", "--read-data", check=0)
    assert "no errors" in r.out


def test_archive_push_twice_and_get_missing(site, history):
    tmp = pgutil.make_tmp()
    try:
        # a real segment of this cluster (archive-push reads its page header)
        last = site.pg.psql("postgres", "SELECT last_archived_wal FROM pg_stat_archiver"
                            ).stdout.strip()
        got = os.path.join(tmp, "last")
        site.tw("pg", "archive-get", "--pg-data", site.pg.dir, last, got, check=0)
        with open(got, "rb") as f:
            data = f.read()
        seg = os.path.join(tmp, "00000009000000000000000A")
        with open(seg, "wb") as f:
            f.write(data)
        args = ("pg", "archive-push", "--pg-data", site.pg.dir, seg)
        site.tw(*args, check=0)
        site.tw(*args, check=0)  # the same content again: fine
        with open(seg, "wb") as f:
            f.write(data[:8192] + b"other" + data[8197:])
        r = site.tw(*args, check=1)
        assert "different content" in r.err
        dest = os.path.join(tmp, "got")
        site.tw("pg", "archive-get", "--pg-data", site.pg.dir, "00000009000000000000000A", dest,
                check=0)
        with open(dest, "rb") as f:
            assert f.read() == data  # the first one was kept
        missing = os.path.join(tmp, "missing")
        r = site.tw("pg", "archive-get", "--pg-data", site.pg.dir, "0000000900000000000000FF",
                    missing, check=1)
        assert not os.path.exists(missing) and not os.path.exists(missing + ".tapwork-tmp")
        # any other failure must stop PostgreSQL, not end its recovery: > 125
        r = site.tw("pg", "archive-get", "--pg-data", site.pg.dir, "00000009000000000000000A",
                    missing, password="wrong", check=126)
        assert "wrong password" in r.err and not os.path.exists(missing)
        r = site.tw("pg", "archive-push", "--pg-data", site.pg.dir,
                    os.path.join(tmp, "not-a-wal-name"), check=2)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_interrupted_backup_leaves_the_repository_consistent(site, history):
    """SIGKILL in the middle of a backup: no snapshot, the server's backup
    ends with the session, the repository checks clean, the next backup works."""
    pg = site.pg
    pg.psql("postgres", "CREATE TABLE IF NOT EXISTS big AS SELECT g AS id, md5(g::text) AS h "
                        "FROM generate_series(1, 1500000) g")
    # hint bits set now, not by the first scan after a backup (that would
    # rewrite every page of the table)
    pg.psql("postgres", "VACUUM (FREEZE) big")
    before = {s["id"] for s in json.loads(site.tw("snapshots", "--json", check=0).out)}
    proc = subprocess.Popen([BIN, "backup", "-q", "--threads", "1", "--pg-data", pg.dir,
                             "--postgres", pg.url("postgres")],
                            env=dict(os.environ, TAPWORK_REPOSITORY=site.repo,
                                     TAPWORK_PASSWORD=PASSWORD),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # kill once the server is in backup mode
        r = pg.psql("postgres", "SELECT count(*) FROM pg_stat_activity WHERE "
                                "backend_type = 'client backend' AND query LIKE '%pg_backup_start%'",
                    check=False)
        if r.stdout.strip() not in ("", "0") or proc.poll() is not None:
            break
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    after = {s["id"] for s in json.loads(site.tw("snapshots", "--json", check=0).out)}
    assert proc.returncode == -signal.SIGKILL, "the backup ended before it was killed"
    assert after == before
    site.tw("check", check=0, timeout=300)
    snap = site.backup()  # the server is not stuck "in backup"
    assert snap["postgres"] == "physical"


def test_second_backup_stores_only_changed_pages(site, history):
    first = site.backup()
    site.pg.psql("postgres", "UPDATE big SET h = 'changed' WHERE id % 100000 = 0")
    second = site.backup()
    assert second["bytes"] > 100 << 20, second
    # 15 rows changed in a >100 MiB database (plus its catalogs, the
    # visibility/free-space maps, SLRUs): a few MiB of 64 KiB runs
    assert second["new_bytes"] < second["bytes"] * 0.1, (first, second)
    # files not written since 2 s before the previous backup began are not
    # read again. The big table was written by the second backup's
    # checkpoint: the third reads it again, the fourth does not.
    # On a loaded machine a late write (the checkpoint spreading its writes,
    # hint bits) can make one more backup read a file again: a later backup
    # of the next two must then reuse it.
    time.sleep(2.1)
    site.backup()
    for attempt in range(3):
        third = site.backup()
        if third["bytes_read"] < third["bytes"] // 2 or attempt == 2:
            break
        time.sleep(2.1)
    assert third["files_unchanged"] > third["files"] // 2, third
    assert third["bytes_read"] < third["bytes"] // 2, third
    # and what the cache reused restores like the rest
    p = site.restore(third["snapshot_id"], "--pg-target", "immediate",
                     "--pg-target-action", "promote")
    wait_promoted(p)
    assert p.psql("postgres", "SELECT count(*) FROM big WHERE h = 'changed'").stdout.strip() \
        == "15"
    assert p.psql("postgres", "SELECT count(*) FROM big").stdout.strip() == "1500000"


def test_forget_and_prune_keep_the_wal_of_kept_snapshots(site, history):
    snaps = json.loads(site.tw("snapshots", "--json", check=0).out)
    pgsnaps = [s for s in snaps if "pg" in s]
    assert len(pgsnaps) >= 3
    newest = pgsnaps[-1]
    wal_dir = os.path.join(site.repo, "wal")
    before = sorted(os.listdir(wal_dir))
    # --dry-run names the WAL that would go, as if the snapshots were forgotten
    r = site.tw("forget", "--keep-last", "1", "--prune", "--dry-run", check=0, timeout=300)
    listed = [l.split()[3] for l in r.out.splitlines() if l.startswith("would delete WAL ")]
    assert listed and sorted(os.listdir(wal_dir)) == before, r.out[-2000:]
    site.tw("forget", "--keep-last", "1", "--prune", check=0, timeout=300)
    after = sorted(os.listdir(wal_dir))
    assert sorted(set(before) - set(after)) == listed
    start = newest["pg"]["start_wal"]
    assert len(after) < len(before)
    segs = [n[17:] for n in after if len(n) == 41]
    assert segs and min(s[8:] for s in segs) >= start[8:], (start, segs[:5])
    assert all(n in after for n in before if n.endswith(".history"))
    r = site.tw("pg", "verify", check=0)
    assert "no errors" in r.out
    p = site.restore("--pg-target", "immediate", "--pg-target-action", "promote")
    wait_promoted(p)
    assert rows(p) == [1, 2, 3, 4]


def test_wal_commands_take_a_backup_job(site, history, tmp_path):
    """-c CONFIG --job NAME: the job's repository and password file."""
    import yaml
    cfg = {"listen": {"http": f"127.0.0.1:{free_port()}"},
           "state_dir": str(tmp_path / "state"),
           "sites": [{"hosts": ["*"], "routes": [{"path": "/", "handler": "welcome"}]}],
           "backup": {"jobs": {"pitr": {"repository": site.repo, "password_file": site.pwfile,
                                        "sources": [{"path": site.pg.dir}]}}}}
    conf = tmp_path / "tapwork.yaml"
    conf.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ)
    for k in ("TAPWORK_REPOSITORY", "TAPWORK_PASSWORD", "TAPWORK_PASSWORD_FILE"):
        env.pop(k, None)
    snaps = [x for x in json.loads(site.tw("snapshots", "--json", check=0).out) if "pg" in x]
    seg = snaps[-1]["pg"]["start_wal"]  # archived, and kept by prune
    dest = tmp_path / "seg"
    r = subprocess.run([BIN, "pg", "archive-get", "-c", str(conf), "--job", "pitr",
                        "--pg-data", site.pg.dir, seg, str(dest)], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert dest.stat().st_size == 16 << 20
    r = subprocess.run([BIN, "pg", "verify", "-c", str(conf), "--job", "pitr"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "no errors" in r.stdout, r.stdout + r.stderr
    # an unknown job: archive-get must make PostgreSQL stop (> 125)
    r = subprocess.run([BIN, "pg", "archive-get", "-c", str(conf), "--job", "nope",
                        "--pg-data", site.pg.dir, seg, str(dest)], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 126 and "no job" in r.stderr


def test_backup_refused_when_wal_goes_elsewhere(site, history, tmp_path):
    """archive_command pushes into site.repo: a physical backup into another
    repository could never be restored, so no snapshot is written there."""
    other = tmp_path / "other"
    tw(other, "repo", "init", check=0)
    r = tw(other, "backup", "--pg-data", site.pg.dir, "--postgres", site.pg.url("postgres"),
           check=1, timeout=300)
    assert "is not in this repository" in r.err, r.err
    assert json.loads(tw(other, "snapshots", "--json", check=0).out) == []


def test_verify_reports_a_gap_and_damage(site, history):
    """Runs last: it damages the archive. A missing segment inside the kept
    range and a corrupted one are both reported (exit 1)."""
    wal = os.path.join(site.repo, "wal")
    for _ in range(2):  # two more segments after the newest snapshot
        site.pg.psql("postgres", "INSERT INTO load(pad) SELECT 'z' FROM generate_series(1, 100)")
        site.tw("pg", "check", "--pg-data", site.pg.dir, "--postgres", site.pg.url("postgres"),
                check=0, timeout=120)
    r = site.tw("pg", "verify", "--json", check=0)
    assert json_lines(r.out)[-1]["errors"] == 0
    snaps = [x for x in json.loads(site.tw("snapshots", "--json", check=0).out) if "pg" in x]
    start = snaps[0]["pg"]["start_wal"]  # the oldest kept snapshot's
    segs = sorted(n for n in os.listdir(wal) if len(n) == 41 and n[17:25] == "00000001"
                  and n[17:] > start)
    assert len(segs) >= 2, (start, segs)
    gone, bad = segs[0], segs[-1]  # a hole below the newest segment
    os.unlink(os.path.join(wal, gone))
    r = site.tw("pg", "verify", check=1)
    assert f"WAL segment {gone[17:]} is missing" in r.err, r.err
    with open(os.path.join(wal, bad), "r+b") as f:
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 1]))
    r = site.tw("pg", "verify", check=1)  # without --read-data the damage is not seen
    assert bad[17:] not in r.err
    r = site.tw("pg", "verify", "--read-data", check=1)
    assert bad[17:] in r.err and "authentication failed" in r.err, r.err
    # archive-get of the damaged one: PostgreSQL must stop (> 125), no file left
    r = site.tw("pg", "archive-get", "--pg-data", site.pg.dir, bad[17:],
                os.path.join(site.tmp, "x"), check=126)
    assert not os.path.exists(os.path.join(site.tmp, "x"))

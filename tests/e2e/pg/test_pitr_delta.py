"""Page deltas (docs/repository-format.md "Delta blobs"): after pgbench
changes a few pages of many 64 KiB relation units, the incremental physical
backup stores those units as the pages that differ from the parent
snapshot's units. Every reader rebuilds them: a restore is byte-exact and
PostgreSQL starts on it with pgbench's balance invariant intact; `check
--read-data` rebuilds and verifies each and names the deltas a damaged base
breaks; `repair index` rebuilds an index with deltas from the pack headers;
forgetting the parent snapshot and pruning keeps the bases the child needs.

One PostgreSQL 15 server (checksums on, autovacuum off so that nothing
writes relation files between the second backup and the comparison)
archives into one local repository; damage and repair work on copies.
"""
import filecmp
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "backup"))
from bkhelp import json_lines, tw  # noqa: E402
import pgutil  # noqa: E402
from pgutil import wait_promoted  # noqa: E402
from pitrsite import ArchiveSite  # noqa: E402

pytestmark = pytest.mark.skipif(pgutil.missing() is not None, reason=str(pgutil.missing()))
PG = pgutil.PGBIN


def packs(repo):
    out = {}
    for root, _, files in os.walk(os.path.join(repo, "data")):
        for f in files:
            if len(f) == 64:
                out[f] = os.path.join(root, f)
    return out


def tree_diff(a, b):
    """Files of directory a that are missing from b or differ (by bytes);
    pg_internal.init is left out of backups (a relcache file PostgreSQL
    rebuilds)."""
    bad = []
    for root, _, files in os.walk(a):
        for f in files:
            if f == "pg_internal.init":
                continue
            p = os.path.join(root, f)
            q = os.path.join(b, os.path.relpath(p, a))
            if not os.path.exists(q) or not filecmp.cmp(p, q, shallow=False):
                bad.append(os.path.relpath(p, a))
    return bad


class Delta:
    pass


@pytest.fixture(scope="module")
def st():
    s = ArchiveSite(checksums=True)
    d = Delta()
    d.site = s
    d.tmp = pgutil.make_tmp()
    try:
        pg = s.pg
        pg.psql("postgres", "ALTER SYSTEM SET autovacuum = off")
        pg.psql("postgres", "SELECT pg_reload_conf()")
        pg.psql("postgres", "CREATE DATABASE bench")
        r = subprocess.run([os.path.join(PG, "pgbench"), "-i", "-s", "3", "-q", pg.url("bench")],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        d.first = backup(s)
        d.first_packs = set(packs(s.repo))
        r = subprocess.run([os.path.join(PG, "pgbench"), "-c", "2", "-j", "2", "-t", "300",
                            pg.url("bench")], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        pg.psql("postgres", "CHECKPOINT")
        d.second = backup(s)
        # the reference: the relation files as the second backup read them
        # (nothing writes them after its checkpoint: autovacuum is off and
        # no query runs until the copy is made)
        d.ref = os.path.join(d.tmp, "ref-base")
        shutil.copytree(os.path.join(pg.dir, "base"), d.ref)
        d.sums = balances(pg)
        yield d
    finally:
        shutil.rmtree(d.tmp, ignore_errors=True)
        s.close()


def backup(site):
    r = site.tw("backup", "--json", "--pg-data", site.pg.dir, "--postgres",
                site.pg.url("postgres"), check=0, timeout=300)
    return json_lines(r.out)[-1]


def balances(p):
    return p.psql("bench", "SELECT (SELECT sum(abalance) FROM pgbench_accounts),"
                           "(SELECT sum(tbalance) FROM pgbench_tellers),"
                           "(SELECT sum(bbalance) FROM pgbench_branches),"
                           "(SELECT sum(delta) FROM pgbench_history),"
                           "(SELECT count(*) FROM pgbench_history)").stdout.strip().split("|")


def restored_base(repo, snap, tmp, name):
    out = os.path.join(tmp, name)
    tw(repo, "restore", snap, "--target", out, check=0, timeout=300)
    return os.path.join(out, "pgdata", "base")


def test_incremental_is_stored_as_deltas_and_restores_byte_exact(st):
    first, second = st.first, st.second
    # 600 transactions touch a page or two of many pgbench_accounts units
    assert second["delta_blobs"] > 20, second
    assert first.get("delta_blobs", 0) == 0, first
    # most of what changed is stored as the changed pages only
    assert second["stored_bytes"] < second["new_bytes"] * 0.12, second
    print("first", first, "second", second)
    base = restored_base(st.site.repo, second["snapshot_id"], st.tmp, "files")
    assert tree_diff(st.ref, base) == []
    assert tree_diff(base, st.ref) == []
    # and PostgreSQL runs on it: recovery to the end of the backup, promoted
    p = st.site.restore(second["snapshot_id"], "--pg-target", "immediate",
                        "--pg-target-action", "promote")
    wait_promoted(p)
    a, t, b, h, n = (int(x) for x in balances(p))
    assert a == t == b == h, (a, t, b, h)
    assert n == 600, n
    assert [a, t, b, h, n] == [int(x) for x in st.sums]


def test_check_read_data_rebuilds_every_delta(st):
    r = st.site.tw("check", "--read-data", check=0, timeout=300)
    assert "error" not in r.err.lower(), r.err


def test_repair_index_rebuilds_deltas_from_pack_headers(st):
    repo = os.path.join(st.tmp, "repo-repair")
    shutil.copytree(st.site.repo, repo)
    for f in os.listdir(os.path.join(repo, "index")):
        os.unlink(os.path.join(repo, "index", f))
    r = tw(repo, "repair", "index", check=0, timeout=300)
    base = restored_base(repo, st.second["snapshot_id"], st.tmp, "repaired")
    assert tree_diff(st.ref, base) == [], r.out + r.err
    tw(repo, "check", "--read-data", check=0, timeout=300)


def test_check_names_the_deltas_a_damaged_base_breaks(st):
    repo = os.path.join(st.tmp, "repo-damaged")
    shutil.copytree(st.site.repo, repo)
    # damage the blobs of the first backup's data packs (every 8 KiB of
    # their first half: the headers at the end stay readable)
    hit = 0
    for name, path in packs(repo).items():
        size = os.path.getsize(path)
        if name not in st.first_packs or size < (1 << 20):
            continue
        with open(path, "r+b") as f:
            for off in range(4096, size // 2, 8192):
                f.seek(off)
                b = f.read(1)
                f.seek(off)
                f.write(bytes([b[0] ^ 0x55]))
        hit += 1
    assert hit > 0
    r = tw(repo, "check", "--read-data", check=1, timeout=300)
    out = r.out + r.err
    # the deltas of the second snapshot say which base broke them ...
    assert "of this delta" in out or "cannot be rebuilt: its base" in out, out[-3000:]
    # ... and the files of the second snapshot that need them are named
    snap2 = st.second["snapshot_id"][:8]
    assert snap2 in out, out[-3000:]
    assert "base/" in out, out[-3000:]


def test_forget_parent_prune_then_restore_child(st):
    s = st.site
    s.tw("forget", "--keep-last", "1", "--prune", check=0, timeout=300)
    snaps = json_lines(s.tw("snapshots", "--json", check=0).out)
    ids = [x.get("id") for x in snaps if "id" in x]
    if not ids and snaps and isinstance(snaps[0], list):
        ids = [x["id"] for x in snaps[0]]
    assert st.first["snapshot_id"] not in ids
    base = restored_base(s.repo, st.second["snapshot_id"], st.tmp, "after-prune")
    assert tree_diff(st.ref, base) == []
    s.tw("check", "--read-data", check=0, timeout=300)

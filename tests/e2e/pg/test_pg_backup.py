"""PostgreSQL sources: pg_dump streamed into snapshots, restored through
pg_restore, failures that must leave no snapshot, --all.

One PostgreSQL 15 server per module (pgutil.py), local repositories.
"""
import json
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "backup"))
from bkhelp import json_lines, tw  # noqa: E402
from conftest import free_port  # noqa: E402
import pgutil  # noqa: E402

pytestmark = pytest.mark.skipif(pgutil.missing() is not None, reason=str(pgutil.missing()))


@pytest.fixture(scope="module")
def pg():
    p = pgutil.Postgres(free_port())
    yield p
    p.stop()


def make_db(pg, db):
    pg.psql("postgres", f"CREATE DATABASE {db}")
    pg.psql(db, """
        CREATE SCHEMA sales; CREATE SCHEMA audit;
        CREATE TABLE sales.orders(id int PRIMARY KEY, customer text, amount numeric, note text);
        INSERT INTO sales.orders SELECT g, 'cust' || (g % 97), g * 1.5,
               md5(g::text) || repeat(md5((g*7)::text), 3) FROM generate_series(1, 100000) g;
        CREATE INDEX ON sales.orders(customer);
        CREATE TABLE audit.log(at timestamptz DEFAULT '2026-01-01', what text);
        INSERT INTO audit.log(what) SELECT 'event ' || g FROM generate_series(1, 500) g;
        CREATE VIEW sales.big AS SELECT * FROM sales.orders WHERE amount > 1000;
        SELECT lo_from_bytea(424242, decode(repeat('00ff', 300000), 'hex'));
        SELECT lo_from_bytea(424243, convert_to(repeat('large object text ', 5000), 'UTF8'));
    """)


def checksums(pg, db):
    return pg.psql(db, """
        SELECT count(*), md5(string_agg(id || customer || amount || note, ',' ORDER BY id))
          FROM sales.orders;
        SELECT count(*), md5(string_agg(what, ',' ORDER BY what)) FROM audit.log;
        SELECT md5(lo_get(424242)), md5(lo_get(424243));
    """).stdout


def test_backup_change_backup_drop_restore(pg, tmp_path):
    repo = tmp_path / "repo"
    tw(repo, "repo", "init", check=0)
    make_db(pg, "shop")
    url = pg.url("shop")
    r = tw(repo, "backup", "--json", "--postgres", url, check=0)
    first = json_lines(r.out)[-1]
    assert first["files"] == 1 and first["bytes"] > 12 << 20, first
    assert first["new_bytes"] == first["bytes"]
    # a local change (a small table rewritten, a new table): the second dump
    # dedups against the first except around the changes. (Rows inserted into
    # a big table land in free space all over its heap and would touch many
    # ~1 MiB chunks: dedup works at chunk granularity.)
    pg.psql("shop", "UPDATE audit.log SET what = what || '!' WHERE what LIKE 'event 1%';"
                    "INSERT INTO audit.log(what) VALUES ('after first backup');"
                    "CREATE TABLE sales.returns AS SELECT g AS id FROM generate_series(1, 1000) g")
    r = tw(repo, "backup", "--json", "--postgres", url, check=0)
    second = json_lines(r.out)[-1]
    assert second["bytes"] > 12 << 20
    assert second["new_bytes"] < second["bytes"] * 0.35, (first, second)
    assert second["parent"] == first["snapshot_id"]
    before = checksums(pg, "shop")
    plain_before = pg.plain_dump("shop")
    r = tw(repo, "ls", "latest", check=0)
    assert "/postgres/shop.dump" in r.out
    r = tw(repo, "restore", "latest", "--list", check=0)
    assert "TABLE sales orders" in r.out and "BLOB" in r.out, r.out[:2000]
    # into an existing empty database
    pg.psql("postgres", "CREATE DATABASE shop_copy")
    tw(repo, "restore", "latest", "--postgres", pg.url("shop_copy"), "--dump", "shop.dump",
       check=0)
    assert checksums(pg, "shop_copy") == before
    # drop the original and recreate it from the dump
    pg.psql("postgres", "DROP DATABASE shop")
    tw(repo, "restore", "latest", "--postgres", pg.url("postgres"), "--create", check=0)
    assert checksums(pg, "shop") == before
    assert pg.plain_dump("shop") == plain_before
    # the first snapshot still restores the first state
    pg.psql("postgres", "CREATE DATABASE shop_v1")
    r = tw(repo, "snapshots", "--json", check=0)
    snaps = json.loads(r.out)
    tw(repo, "restore", snaps[0]["id"][:8], "--postgres", pg.url("shop_v1"), "--dump",
       "shop.dump", check=0)
    assert pg.psql("shop_v1", "SELECT count(*) FROM audit.log").stdout.strip() == "500"
    tw(repo, "check", "--read-data", check=0)


def test_failing_pg_dump_leaves_no_snapshot(pg, tmp_path):
    repo = tmp_path / "repo"
    tw(repo, "repo", "init", check=0)
    r = tw(repo, "backup", "--postgres", pg.url("no_such_db"), check=1)
    assert "pg_dump exited with status 1" in r.err and "no_such_db" in r.err, r.err
    # a pg_dump that streams some data, then dies by a signal mid-dump
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "pg_dump").write_text("#!/bin/sh\nhead -c 3000000 /dev/urandom\n"
                                  "echo 'dying mid-dump' >&2\nkill -KILL $$\n")
    (fake / "pg_dump").chmod(0o755)
    r = tw(repo, "backup", "--pg-bin", str(fake), "--postgres", pg.url("postgres"), check=1)
    assert "killed by signal 9" in r.err and "dying mid-dump" in r.err, r.err
    # and one that exits non-zero after a full-looking stream
    (fake / "pg_dump").write_text("#!/bin/sh\nhead -c 100000 /dev/zero\nexit 3\n")
    r = tw(repo, "backup", "--pg-bin", str(fake), "--postgres", pg.url("postgres"), check=1)
    assert "exited with status 3" in r.err, r.err
    r = tw(repo, "snapshots", "--json", check=0)
    assert json.loads(r.out) == []


def test_all_databases_and_globals(pg, tmp_path):
    repo = tmp_path / "repo"
    tw(repo, "repo", "init", check=0)
    pg.psql("postgres", "CREATE ROLE reporter LOGIN")
    for db in ("alpha", "beta"):
        pg.psql("postgres", f"CREATE DATABASE {db} OWNER reporter")
        pg.psql(db, "CREATE TABLE t(x int); INSERT INTO t SELECT generate_series(1, 100)")
    src = tmp_path / "files"
    src.mkdir()
    (src / "a.txt").write_text("a file next to the dumps\n")
    r = tw(repo, "backup", "--json", "--postgres", pg.url("postgres"), "--all", str(src), check=0)
    s = json_lines(r.out)[-1]
    r = tw(repo, "ls", "latest", check=0)
    names = set(r.out.split())
    for want in ("/postgres/globals.sql", "/postgres/alpha.dump", "/postgres/beta.dump",
                 "/postgres/postgres.dump", "/files/a.txt"):
        assert want in names, r.out
    assert "/postgres/template0.dump" not in names
    out = tmp_path / "out"
    tw(repo, "restore", "latest", "--target", str(out), "--include", "/postgres/globals.sql",
       check=0)
    assert "CREATE ROLE reporter" in (out / "postgres" / "globals.sql").read_text()
    # several dumps: restore needs to know which
    pg.psql("postgres", "DROP DATABASE beta")
    r = tw(repo, "restore", "latest", "--postgres", pg.url("postgres"), "--create", check=1)
    assert "--dump" in r.err
    tw(repo, "restore", "latest", "--postgres", pg.url("postgres"), "--create", "--dump",
       "beta.dump", check=0)
    assert pg.psql("beta", "SELECT sum(x) FROM t").stdout.strip() == "5050"
    assert s["files"] >= 5

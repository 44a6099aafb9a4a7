"""Today's logical path (pg_dump snapshots): `restore --postgres URL` into a
database that does not exist says to pass --create with a maintenance
database URL, instead of passing pg_restore's error through; and doing that
works."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "backup"))
from bkhelp import tw  # noqa: E402
from conftest import free_port  # noqa: E402
import pgutil  # noqa: E402

pytestmark = pytest.mark.skipif(pgutil.missing() is not None, reason=str(pgutil.missing()))


def test_restore_into_a_missing_database_names_create(tmp_path):
    pg = pgutil.Postgres(free_port())
    try:
        repo = tmp_path / "repo"
        tw(repo, "repo", "init", check=0)
        pg.psql("postgres", "CREATE DATABASE shop")
        pg.psql("shop", "CREATE TABLE t AS SELECT g FROM generate_series(1, 100) g")
        tw(repo, "backup", "--postgres", pg.url("shop"), check=0)
        pg.psql("postgres", "DROP DATABASE shop")
        r = tw(repo, "restore", "latest", "--postgres", pg.url("shop"), check=1)
        assert 'database "shop" does not exist' in r.err, r.err
        assert "--create" in r.err and "maintenance database" in r.err, r.err
        assert "pg_restore" not in r.err, r.err  # pg_restore did not even start
        # what the message says works
        tw(repo, "restore", "latest", "--postgres", pg.url("postgres"), "--create", check=0)
        assert pg.psql("shop", "SELECT count(*) FROM t").stdout.strip() == "100"
        # an existing database still restores without --create
        pg.psql("postgres", "CREATE DATABASE shop2")
        tw(repo, "restore", "latest", "--postgres", pg.url("shop2"), "--dump", "shop.dump",
           check=0)
        assert pg.psql("shop2", "SELECT count(*) FROM t").stdout.strip() == "100"
    finally:
        pg.stop()

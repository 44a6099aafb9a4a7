"""Point-in-time recovery with the repository on S3 (a real moto_server):
WAL archived by archive_command and fetched by restore_command through the
S3 driver (credentials in the server's environment, never on a command line).
"""
import os
import shutil
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "backup"))
sys.path.insert(0, os.path.join(HERE, "..", "s3"))
from conftest import BIN, free_port  # noqa: E402
import pgutil  # noqa: E402
from test_pitr import rows, wait_promoted  # noqa: E402

MOTO = shutil.which("moto_server")
pytestmark = [pytest.mark.skipif(pgutil.missing() is not None, reason=str(pgutil.missing())),
              pytest.mark.skipif(MOTO is None, reason="moto_server not on PATH")]
PASSWORD = "pitr on s3"


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    from test_s3_repo import Moto
    m = Moto(str(tmp_path_factory.mktemp("moto")))
    yield m
    m.stop()


def test_pitr_on_s3(moto):
    tmp = pgutil.make_tmp()
    pwfile = os.path.join(tmp, "password")
    with open(pwfile, "w") as f:
        f.write(PASSWORD)
    os.chmod(pwfile, 0o600)
    os.chown(pwfile, *pgutil_ids())
    repo = f"s3:http://127.0.0.1:{moto.port}/pitr/cluster1"
    env = dict(os.environ)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "TAPWORK_PASSWORD", "TAPWORK_REPOSITORY"):
        env.pop(k, None)
    env.update(AWS_ACCESS_KEY_ID=moto.key, AWS_SECRET_ACCESS_KEY=moto.secret,
               AWS_REGION="us-east-1", TAPWORK_S3_RETRY_BASE_MS="20")

    def tw(*args, check=0):
        r = subprocess.run([BIN] + list(args) + ["-r", repo, "--password-file", pwfile],
                           capture_output=True, text=True, env=env, timeout=300)
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            assert marker not in r.stderr, r.stderr[-4000:]
        if check is not None:
            assert r.returncode == check, (args, r.stdout[-2000:], r.stderr[-3000:])
        return r

    tw("repo", "init")
    conf = ["archive_mode=on", "wal_level=replica",
            f"archive_command={BIN} pg archive-push -q -r {repo} --password-file {pwfile} %p"]
    pg = pgutil.Postgres(free_port(), conf=conf, env=env)
    restored = None
    try:
        pg.psql("postgres", "CREATE TABLE t(id int); INSERT INTO t VALUES (1)")
        tw("backup", "--pg-data", pg.dir, "--postgres", pg.url("postgres"))
        pg.psql("postgres", "INSERT INTO t VALUES (2)")
        time.sleep(1.1)
        when = pg.psql("postgres", "SELECT clock_timestamp()").stdout.strip()
        time.sleep(1.1)
        pg.psql("postgres", "INSERT INTO t VALUES (3)")
        tw("pg", "check", "--pg-data", pg.dir, "--postgres", pg.url("postgres"))
        # the same segment pushed again: S3's conditional put says it exists,
        # the content matches, success
        seg = pg.psql("postgres", "SELECT pg_walfile_name(pg_current_wal_lsn() - 16777216)"
                      ).stdout.strip()
        got = os.path.join(tmp, "seg")
        tw("pg", "archive-get", "--pg-data", pg.dir, seg, got)
        dup = os.path.join(tmp, seg)
        shutil.copy(got, dup)
        tw("pg", "archive-push", "--pg-data", pg.dir, dup)
        r = tw("pg", "verify", "--read-data")
        assert "no errors" in r.stdout
        rtmp = pgutil.make_tmp()
        target = os.path.join(rtmp, "pgdata")
        tw("restore", "--pg-data", target, "--pg-target-time", when,
           "--pg-target-action", "promote")
        with open(os.path.join(target, "postgresql.auto.conf")) as f:
            auto = f.read()
        assert "s3:http://" in auto and moto.secret not in auto and PASSWORD not in auto
        restored = pgutil.Postgres(free_port(), conf=conf, datadir=target, env=env)
        restored.restore_tmp = rtmp
        wait_promoted(restored)
        assert rows(restored) == [1, 2]
    finally:
        if restored is not None:
            restored.stop()
            shutil.rmtree(restored.restore_tmp, ignore_errors=True)
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def pgutil_ids():
    import pwd
    pw = pwd.getpwnam("postgres")
    return pw.pw_uid, pw.pw_gid

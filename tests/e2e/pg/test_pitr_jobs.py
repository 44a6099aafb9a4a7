"""Backup jobs with a `pg_data` source: PostgreSQL archives its WAL through
`tapwork pg archive-push -c CONFIG --job db` (the job's repository and
password), `tapwork backup --job db` and the scheduler of `tapwork run` take
online physical snapshots, the job's retention forgets snapshots and expires
the WAL no kept snapshot needs, and a restore to a time reaches exactly the
rows committed before it. `tapwork validate` names file:line:col for the
wrong shapes of such a job.
"""
import json
import os
import subprocess
import sys
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "backup"))
from bkhelp import json_lines  # noqa: E402
from conftest import BIN, VARIANT, free_port  # noqa: E402
import pgutil  # noqa: E402
from pitrsite import ArchiveSite, module_site  # noqa: E402
from test_pitr import rows, wait_promoted  # noqa: E402

SLACK = 3 if VARIANT == "asan" else 1


def write_config(path, jobs):
    cfg = {"listen": {"http": f"127.0.0.1:{free_port()}"},
           "sites": [{"hosts": ["*"], "routes": [{"path": "/", "handler": "welcome"}]}],
           "backup": {"jobs": jobs}}
    with open(path, "w") as f:
        f.write(yaml.safe_dump(cfg, sort_keys=False))


def validate(path):
    r = subprocess.run([BIN, "validate", "-c", str(path)], capture_output=True, text=True,
                       timeout=30)
    return r.returncode, r.stdout + r.stderr


def test_validate_names_the_place_of_a_bad_pg_data_job(tmp_path):
    p = tmp_path / "t.yaml"
    # a pg_data source beside another source
    write_config(p, {"db": {"repository": "/tmp/r", "sources": [
        {"path": "/etc"}, {"pg_data": {"dir": "/var/lib/postgresql/15/main"}}]}})
    rc, out = validate(p)
    line = next(i for i, l in enumerate(p.read_text().splitlines(), 1) if "pg_data" in l)
    # the pg_data value (a block mapping starts on the next line)
    assert rc == 1 and (f"t.yaml:{line}:" in out or f"t.yaml:{line + 1}:" in out), out
    assert "sources[1].pg_data: a pg_data: source must be the job's only source" in out, out
    # a relative data directory
    write_config(p, {"db": {"repository": "/tmp/r", "sources": [
        {"pg_data": {"dir": "var/lib/postgresql/15/main"}}]}})
    rc, out = validate(p)
    line = next(i for i, l in enumerate(p.read_text().splitlines(), 1) if "dir:" in l)
    assert rc == 1 and f"t.yaml:{line}:" in out and "pg_data.dir: must be an absolute path" \
        in out, out
    # logical and physical in one source
    write_config(p, {"db": {"repository": "/tmp/r", "sources": [
        {"pg_data": {"dir": "/d"}, "postgres": "postgresql://postgres@127.0.0.1/app"}]}})
    rc, out = validate(p)
    assert rc == 1 and "give exactly one of path:, postgres: or pg_data:" in out, out
    # pg_data without its directory; an unknown key inside it
    write_config(p, {"db": {"repository": "/tmp/r", "sources": [
        {"pg_data": {"postgres": "host=/tmp"}}]}})
    rc, out = validate(p)
    assert rc == 1 and 'missing required key "dir"' in out, out
    write_config(p, {"db": {"repository": "/tmp/r", "sources": [
        {"pg_data": {"dir": "/d", "archive_timout": "1m"}}]}})
    rc, out = validate(p)
    assert rc == 1 and "unknown key (did you mean archive_timeout?)" in out, out
    # and the good shape, with hooks, retention and a schedule
    write_config(p, {"db": {"repository": "/tmp/r", "schedule": "daily 03:00",
                            "retention": {"keep_daily": 7}, "sources": [
                                {"pg_data": {"dir": "/var/lib/postgresql/15/main",
                                             "postgres": "host=/var/run/postgresql user=postgres",
                                             "archive_timeout": "5m"},
                                 "pre": "true", "post": "true"}]}})
    rc, out = validate(p)
    assert rc == 0, out


class Site(ArchiveSite):
    """A cluster whose archive_command reaches the repository through the
    job's config entry, and the config itself (readable by postgres)."""

    def __init__(self):
        env = dict(os.environ)
        for k in ("TAPWORK_PASSWORD", "TAPWORK_PASSWORD_FILE", "TAPWORK_REPOSITORY"):
            env.pop(k, None)
        super().__init__(checksums=True, env=env)

    def setup(self):
        self.cfg = os.path.join(self.tmp, "tapwork.yaml")
        self.job = {"repository": self.repo, "password_file": self.pwfile,
                    "retention": {"keep_last": 2},
                    "sources": [{"pg_data": {
                        "dir": self.data,
                        "postgres": f"postgresql://postgres@127.0.0.1:{self.port}/postgres",
                        "archive_timeout": "60s"}}]}
        write_config(self.cfg, {"db": self.job})

    def archive_command(self):
        return f"{BIN} pg archive-push -q -c {self.cfg} --job db %p"

    def snapshots(self):
        return json.loads(self.tw("snapshots", "--json", check=0).out)

    def wal_objects(self):
        return sorted(os.listdir(os.path.join(self.repo, "wal")))


site = module_site(Site)


def test_job_backup_then_scheduled_runs_then_restore_to_time(site, procs):
    pg = site.pg
    pg.psql("postgres", "CREATE TABLE t(id int PRIMARY KEY);"
                        "CREATE TABLE pad AS SELECT g, md5(g::text) m FROM generate_series(1, 50000) g")
    # 1. on demand: one physical snapshot tagged job:db
    r = site.tw("backup", "--job", "db", "-c", site.cfg, "--json", check=0, timeout=120 * SLACK)
    out = json_lines(r.out)[-1]
    assert out["ok"] is True and out["job"] == "db" and out["postgres"] == "physical", out
    assert "PostgreSQL physical backup, LSN" in r.err, r.err
    snaps = site.snapshots()
    assert [s["id"] for s in snaps] == [out["snapshot_id"]]
    assert "job:db" in snaps[0]["tags"] and snaps[0]["pg"]["start_wal"], snaps
    first_start = "%016X-%s" % (int(pg.psql("postgres", "SELECT system_identifier FROM "
                                                        "pg_control_system()").stdout),
                                snaps[0]["pg"]["start_wal"])
    assert first_start in site.wal_objects()
    # pg check through the job: its data directory and connection
    r = site.tw("pg", "check", "-c", site.cfg, "--job", "db", check=0, timeout=120)

    # 2. the scheduler of `tapwork run`: every 2 s, keep_last 2 (WAL expired too)
    job = dict(site.job, schedule="every 2s")
    write_config(site.cfg, {"db": job})
    env = dict(os.environ)
    env.pop("TAPWORK_PASSWORD", None)
    p = procs.start([BIN, "run", "-c", site.cfg], name="run", env=env)
    deadline = time.monotonic() + 60 * SLACK
    while time.monotonic() < deadline:
        log = procs.log_of(p)
        if log.count("backup job db: snapshot") >= 3:
            break
        assert p.poll() is None, log[-3000:]
        time.sleep(0.3)
    log = procs.log_of(p)
    procs.stop(p)
    assert log.count("backup job db: snapshot") >= 3, log[-3000:]
    assert "WAL files no kept snapshot needs deleted" in log, log[-3000:]
    snaps = site.snapshots()
    assert len(snaps) <= 2 and all("job:db" in s["tags"] for s in snaps), snaps
    assert out["snapshot_id"] not in [s["id"] for s in snaps]
    # the forgotten snapshot's WAL went with it; what the kept ones need is there
    assert first_start not in site.wal_objects()
    r = site.tw("pg", "verify", check=0, timeout=120)
    assert "no errors" in r.out, r.out

    # 3. writes after the last snapshot; restore to a time between them
    pg.psql("postgres", "INSERT INTO t VALUES (1)")
    time.sleep(1.1)
    t_between = pg.psql("postgres", "SELECT clock_timestamp()").stdout.strip()
    time.sleep(1.1)
    pg.psql("postgres", "INSERT INTO t VALUES (2)")
    site.tw("pg", "check", "-c", site.cfg, "--job", "db", check=0, timeout=120)
    tmp = pgutil.make_tmp()
    target = os.path.join(tmp, "pgdata")
    site.tw("restore", "--pg-data", target, "--pg-password-file", site.pwfile,
            "--pg-target-time", t_between, "--pg-target-action", "promote", check=0,
            timeout=300)
    q = pgutil.Postgres(free_port(), conf=site.conf, datadir=target)
    q.restore_tmp = tmp
    site.restored.append(q)
    wait_promoted(q)
    assert rows(q) == [1]
    assert q.psql("postgres", "SELECT count(*) FROM pad").stdout.strip() == "50000"

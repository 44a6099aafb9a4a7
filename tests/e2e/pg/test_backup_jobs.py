"""Backup jobs from the config file: hooks, `backup --job`, and the
scheduler inside `tapwork run` (a PostgreSQL database and a directory to a
moto_server S3 repository every 2 s, retention, metrics on the admin
listener)."""
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "backup"))
sys.path.insert(0, os.path.join(HERE, "..", "s3"))
from bkhelp import PASSWORD, tw  # noqa: E402
from conftest import BIN, VARIANT, free_port, wait_port  # noqa: E402
import pgutil  # noqa: E402

SLACK = 3 if VARIANT == "asan" else 1


def write_config(tmp_path, jobs, admin_port=None):
    pwf = tmp_path / "repo-password"
    pwf.write_text(PASSWORD + "\n")
    for j in jobs.values():
        j.setdefault("password_file", str(pwf))
    cfg = {"listen": {"http": f"127.0.0.1:{free_port()}"},
           "state_dir": str(tmp_path / "state"),
           "sites": [{"hosts": ["*"], "routes": [{"path": "/", "handler": "welcome"}]}],
           "backup": {"jobs": jobs}}
    if admin_port:
        cfg["admin"] = {"listen": f"127.0.0.1:{admin_port}"}
    p = tmp_path / "tapwork.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_hook_failure_aborts_and_post_hooks_run(tmp_path):
    repo = tmp_path / "repo"
    tw(repo, "repo", "init", check=0)
    a, b = tmp_path / "vol-a", tmp_path / "vol-b"
    a.mkdir()
    b.mkdir()
    (a / "data").write_text("a\n")
    (b / "data").write_text("b\n")
    m = tmp_path / "marks"
    m.mkdir()
    cfg = write_config(tmp_path, {
        "broken": {"repository": str(repo), "sources": [
            {"path": str(a), "pre": f"touch {m}/pre-a", "post": f"touch {m}/post-a"},
            {"path": str(b), "pre": "echo 'cannot quiesce the app' >&2; exit 7",
             "post": f"touch {m}/post-b"}]},
        "good": {"repository": str(repo), "tags": ["volumes"], "sources": [
            {"path": str(a), "pre": f"echo quiescing; touch {m}/good-pre",
             "post": f"echo resuming; touch {m}/good-post"},
            {"path": str(b)}]},
    })
    r = tw(repo, "backup", "--job", "broken", "-c", str(cfg), check=1)
    assert "source 2 pre hook exited with status 7: cannot quiesce the app" in r.err, r.err
    assert (m / "pre-a").exists() and (m / "post-a").exists()
    assert not (m / "post-b").exists()  # its pre failed: nothing to undo
    r = tw(repo, "snapshots", "--json", check=0)
    assert json.loads(r.out) == []
    # the same with --json: machine-readable failure
    r = tw(repo, "backup", "--job", "broken", "-c", str(cfg), "--json", check=1)
    out = json.loads(r.out.strip().splitlines()[-1])
    assert out["ok"] is False and "status 7" in out["error"]
    # a good job: --json summary, tagged snapshot, hooks ran
    r = tw(repo, "backup", "--job", "good", "-c", str(cfg), "--json", check=0)
    assert len(r.out.strip().splitlines()) == 1, r.out  # hook output kept off stdout
    assert "quiescing" in r.err and "resuming" in r.err
    out = json.loads(r.out)
    assert out["ok"] is True and out["job"] == "good" and out["files"] == 2, out
    assert (m / "good-pre").exists() and (m / "good-post").exists()
    snaps = json.loads(tw(repo, "snapshots", "--json", check=0).out)
    assert len(snaps) == 1 and snaps[0]["id"] == out["snapshot_id"]
    assert set(snaps[0]["tags"]) == {"job:good", "volumes"}
    r = tw(repo, "backup", "--job", "nope", "-c", str(cfg))
    assert r.returncode == 2 and 'no job "nope"' in r.err


def test_config_rejects_bad_jobs(tmp_path):
    cfg = write_config(tmp_path, {"x": {"repository": "/tmp/r", "schedule": "every tuesday",
                                        "sources": [{"path": "/tmp"}]}})
    r = subprocess.run([BIN, "validate", "-c", str(cfg)], capture_output=True, text=True)
    assert r.returncode != 0 and "bad schedule" in r.stderr + r.stdout
    cfg = write_config(tmp_path, {"x": {"repository": "/tmp/r",
                                        "sources": [{"path": "/tmp", "postgres": "postgresql://a@b/c"}]}})
    r = subprocess.run([BIN, "validate", "-c", str(cfg)], capture_output=True, text=True)
    assert r.returncode != 0 and "exactly one of path: or postgres:" in r.stderr + r.stdout


MOTO = shutil.which("moto_server")


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as f:
        text = f.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("tapwork_backup_") and 'job="db"' in line:
            name, val = line.rsplit(" ", 1)
            out[name.split("{")[0]] = float(val)
    return out


@pytest.mark.skipif(pgutil.missing() is not None, reason=str(pgutil.missing()))
@pytest.mark.skipif(MOTO is None, reason="moto_server not on PATH")
def test_scheduled_job_to_s3_with_metrics_and_retention(procs, tmp_path):
    from test_s3_repo import Moto  # noqa: E402  (moto with a SigV4-checked IAM user)
    moto = Moto(str(tmp_path))
    pg = pgutil.Postgres(free_port())
    try:
        pg.psql("postgres", "CREATE DATABASE app")
        pg.psql("app", "CREATE TABLE t AS SELECT g, md5(g::text) m FROM generate_series(1, 150000) g")
        vol = tmp_path / "uploads"
        vol.mkdir()
        (vol / "photo.jpg").write_bytes(os.urandom(200000))
        repo = f"s3:http://127.0.0.1:{moto.port}/backups/tapwork"
        env = dict(os.environ, AWS_ACCESS_KEY_ID=moto.key, AWS_SECRET_ACCESS_KEY=moto.secret,
                   AWS_REGION="us-east-1", TAPWORK_PASSWORD=PASSWORD, TAPWORK_REPOSITORY=repo)
        env.pop("TAPWORK_PASSWORD_FILE", None)
        r = subprocess.run([BIN, "repo", "init"], env=env, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        admin = free_port()
        cfg = write_config(tmp_path, {"db": {
            "repository": repo, "schedule": "every 2s", "prune": "every 3s",
            "retention": {"keep_last": 2},
            "check": {"schedule": "every 3s", "read_data_subset": "50%"},
            "sources": [{"postgres": pg.url("app")}, {"path": str(vol)}]}}, admin)
        p = procs.start([BIN, "run", "-c", str(cfg)], name="run", env=env)
        wait_port(admin, timeout=20 * SLACK)
        deadline = time.monotonic() + 40 * SLACK
        m = {}
        while time.monotonic() < deadline:
            m = metrics(admin)
            if m.get("tapwork_backup_runs_total", 0) >= 3 and m.get("tapwork_backup_running") == 0:
                break
            assert p.poll() is None, procs.log_of(p)
            time.sleep(0.3)
        log = procs.log_of(p)
        assert m.get("tapwork_backup_runs_total", 0) >= 3, (m, log[-3000:])
        assert m["tapwork_backup_failures_total"] == 0, log[-3000:]
        assert abs(m["tapwork_backup_last_success_timestamp_seconds"] - time.time()) < 30
        assert m["tapwork_backup_last_size_bytes"] > 200000
        # later runs dedup: the added bytes are a fraction of the size
        assert m["tapwork_backup_last_added_bytes"] < m["tapwork_backup_last_size_bytes"] / 2
        assert "backup job db: snapshot" in log and "pruned" in log and "checked" in log, log[-3000:]
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=5) as f:
            assert f.status == 200
        procs.stop(p)
        # retention keep_last 2 (a run may have been cut by the stop: no snapshot then)
        r = subprocess.run([BIN, "snapshots", "--json"], env=env, capture_output=True,
                           text=True, timeout=60)
        snaps = json.loads(r.stdout)
        assert 1 <= len(snaps) <= 2, snaps
        assert all("job:db" in s["tags"] for s in snaps)
        assert any("stream:postgres/app.dump" in s["paths"] for s in snaps)
        r = subprocess.run([BIN, "check"], env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        # restart: the last success comes back from the repository, and the
        # slots missed while tapwork was down (several, with "every 1s") give
        # one catch-up run right away
        time.sleep(1.5)
        cfg = write_config(tmp_path, {"db": {
            "repository": repo, "schedule": "every 1s", "retention": {"keep_last": 2},
            "sources": [{"path": str(vol)}]}}, admin)
        p = procs.start([BIN, "run", "-c", str(cfg)], name="run2", env=env)
        wait_port(admin, timeout=20 * SLACK)
        deadline = time.monotonic() + 20 * SLACK
        while time.monotonic() < deadline:
            if "a scheduled run was missed: running now" in procs.log_of(p):
                break
            time.sleep(0.2)
        assert "a scheduled run was missed: running now" in procs.log_of(p), procs.log_of(p)
        m = metrics(admin)
        assert m.get("tapwork_backup_last_success_timestamp_seconds", 0) > 0, m
        procs.stop(p)
        assert procs.log_of(p).count("a scheduled run was missed") == 1
    finally:
        pg.stop()
        moto.stop()

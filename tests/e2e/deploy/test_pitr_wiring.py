"""PostgreSQL point-in-time recovery in the deployment files, without
containers: the Helm chart's backup.pitr values render a ConfigMap with the
postgresql.conf lines and a tapwork.yaml whose pg_data job tapwork accepts,
and the Compose override (deploy/compose/pitr.yaml) gives the postgres
service an archive_command that calls tapwork with a job of the config it
mounts. The rendered archive_command is run for real (against a local
repository): its flags must be ones tapwork accepts and its job must exist."""
import json
import os
import shlex
import subprocess
import sys

import pytest

from conftest import BIN, ROOT
from helmutil import CHART, by_kind, render, renderer, validator

yaml = pytest.importorskip("yaml", reason="python3-yaml not installed")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "backup"))
from bkhelp import PASSWORD, tw  # noqa: E402

PREFIX, RENDERER = renderer()
COMPOSE_DIR = os.path.join(ROOT, "deploy", "compose")


def pitr_values(tmp_path, **pitr):
    f = tmp_path / "values.yaml"
    f.write_text(yaml.safe_dump({"backup": {"repository": "s3:https://s3.example.test/backups/db",
                                            "pitr": dict({"enabled": True}, **pitr)}}))
    return f


def pitr_configmap(docs):
    found = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-pitr")]
    assert len(found) == 1, found
    return found[0]


def conf_lines(text):
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def run_archive_command(tmp_path, cmd, config_text, config_path, job):
    """Run archive_command (PostgreSQL's %p = a file that is not there) with
    tapwork's binary and a copy of the config that points at a local repository."""
    repo = tmp_path / "repo"
    if not repo.exists():
        tw(repo, "repo", "init", check=0)
    pw = tmp_path / "password"
    pw.write_text(PASSWORD + "\n")
    cfg = yaml.safe_load(config_text)
    cfg["backup"]["jobs"][job]["repository"] = str(repo)
    cfg["backup"]["jobs"][job]["password_file"] = str(pw)
    cfg["backup"].pop("repository", None)
    local = tmp_path / "tapwork.yaml"
    local.write_text(yaml.safe_dump(cfg))
    argv = shlex.split(cmd)
    argv = [BIN if a.endswith("/tapwork") else str(local) if a == config_path else
            str(tmp_path / "pg_wal" / "000000010000000000000001") if a == "%p" else a
            for a in argv]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPWORK_")}
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env,
                          cwd=str(tmp_path))


def archive_command_runs(r):
    """Outside a data directory archive-push gets as far as reading the
    cluster's pg_control (exit 1): the config loaded, the job was found. A
    usage error or an unknown job exits 2, a config error names the file."""
    assert r.returncode == 1 and "global/pg_control" in r.stderr, r.stderr


def test_archive_command_check_can_fail(tmp_path):
    r = run_archive_command(tmp_path, "/usr/local/bin/tapwork pg archive-push -q -c /c.yaml "
                            "--job other %p", "listen: {http: 127.0.0.1:18080}\nsites: [{hosts: ['*'], routes: [{path: /, handler: welcome}]}]\n"
                            "backup: {jobs: {db: {sources: [{path: /tmp}]}}}", "/c.yaml",
                            "db")
    assert r.returncode == 2 and 'no job "other"' in r.stderr, r.stderr


@pytest.mark.skipif(PREFIX is None, reason=str(RENDERER))
def test_helm_pitr_off_by_default_and_needs_a_repository(tmp_path):
    docs, _ = render(PREFIX)
    assert not [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-pitr")]
    f = tmp_path / "v.yaml"
    f.write_text(yaml.safe_dump({"backup": {"pitr": {"enabled": True}}}))
    r = render(PREFIX, "-f", str(f), check=False)
    assert r.returncode != 0 and "backup.pitr.enabled needs backup.repository" in r.stderr


@pytest.mark.skipif(PREFIX is None, reason=str(RENDERER))
def test_helm_pitr_configmap(tmp_path):
    docs, text = render(PREFIX, "-f", str(pitr_values(
        tmp_path, job="main-db", dataDir="/pgdata/15", configPath="/etc/tw",
        postgres="host=/run/pg user=backup dbname=postgres", archiveTimeoutSeconds=120,
        retention={"keep_last": 3})))
    cm = pitr_configmap(docs)
    assert cm["metadata"]["labels"]["app.kubernetes.io/component"] == "pitr"
    conf = conf_lines(cm["data"]["postgresql.conf"])
    assert conf["wal_level"] == "replica" and conf["archive_mode"] == "on"
    assert conf["archive_timeout"] == "120"
    cmd = conf["archive_command"]
    assert cmd.startswith("'") and cmd.endswith("'")
    cmd = cmd[1:-1]
    assert cmd == ("/usr/local/bin/tapwork pg archive-push -q -c /etc/tw/tapwork.yaml "
                   "--job main-db %p"), cmd
    # the tapwork.yaml beside it: tapwork accepts it, and its job is the physical one
    cfg_text = cm["data"]["tapwork.yaml"]
    f = tmp_path / "pitr.yaml"
    f.write_text(cfg_text)
    r = subprocess.run([BIN, "validate", "-c", str(f)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    job = yaml.safe_load(cfg_text)["backup"]["jobs"]["main-db"]
    assert job["sources"] == [{"pg_data": {"dir": "/pgdata/15",
                                           "postgres": "host=/run/pg user=backup dbname=postgres"}}]
    assert job["repository"] == "s3:https://s3.example.test/backups/db"
    # (values maps merge, as in Helm: the chart's keep_daily/keep_weekly stay)
    assert job["retention"] == {"keep_last": 3, "keep_daily": 7, "keep_weekly": 4}
    assert job["schedule"] == "daily 01:00"
    assert job["password_file"] == "/var/run/secrets/tapwork/repository/password"
    # the archive_command as PostgreSQL would run it: flags and job accepted,
    # it fails only for want of a data directory
    r = run_archive_command(tmp_path, cmd, cfg_text, "/etc/tw/tapwork.yaml", "main-db")
    archive_command_runs(r)
    v = validator()
    if v:
        m = tmp_path / "cm.yaml"
        m.write_text(yaml.safe_dump(cm))
        r = subprocess.run([v, str(m)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "0 failed" in r.stdout, r.stdout + r.stderr


def test_helm_pitr_values_schema():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.load(open(os.path.join(CHART, "values.schema.json")))
    values = yaml.safe_load(open(os.path.join(CHART, "values.yaml")))
    jsonschema.validate(values, schema)
    pitr = values["backup"]["pitr"]
    assert pitr["enabled"] is False
    good = dict(values, backup=dict(values["backup"], pitr=dict(pitr, enabled=True)))
    jsonschema.validate(good, schema)
    for bad in ({"dataDir": "pgdata"}, {"configPath": "/etc/a b"}, {"job": "a job"},
                {"retention": {"keep_dayly": 1}}, {"archiveTimeoutSeconds": -1}, {"unknown": 1}):
        v = dict(values, backup=dict(values["backup"], pitr=dict(pitr, **bad)))
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(v, schema)


def test_compose_pitr_override(tmp_path):
    compose = yaml.safe_load(open(os.path.join(ROOT, "compose.yaml")))
    over = yaml.safe_load(open(os.path.join(COMPOSE_DIR, "pitr.yaml")))
    assert list(over["services"]) == ["postgres"]   # only the postgres service changes
    pg = over["services"]["postgres"]
    assert pg["build"]["context"] == "deploy/compose/postgres"
    dockerfile = open(os.path.join(COMPOSE_DIR, "postgres", pg["build"]["dockerfile"])).read()
    assert "COPY --from=tapwork /usr/local/bin/tapwork /usr/local/bin/tapwork" in dockerfile
    assert "postgresql-15" in dockerfile and "USER postgres" in dockerfile
    # every runtime library of the tapwork image is installed beside PostgreSQL
    runtime = open(os.path.join(ROOT, "deploy", "docker", "Dockerfile")).read() \
        .split("# ---- runtime stage", 1)[1]
    for lib in ("libssl3", "libyaml-0-2", "libzstd1", "libjansson4", "libnghttp2-14", "libcurl4",
                "libpq5"):
        assert lib in runtime and lib in dockerfile, lib
    # -c NAME=VALUE pairs as the entrypoint passes them to postgres
    args = pg["command"]
    settings = dict(args[i + 1].split("=", 1) for i in range(0, len(args), 2)
                    if args[i] == "-c")
    assert settings["archive_mode"] == "on" and settings["wal_level"] == "replica"
    mount = [v for v in pg["volumes"] if v.endswith(":ro")]
    assert mount == ["./deploy/compose/tapwork-pitr.yaml:/etc/tapwork/tapwork.yaml:ro"]
    argv = shlex.split(settings["archive_command"])
    assert argv[:4] == ["/usr/local/bin/tapwork", "pg", "archive-push", "-q"], argv
    job = argv[argv.index("--job") + 1]
    assert argv[argv.index("-c") + 1] == "/etc/tapwork/tapwork.yaml" and argv[-1] == "%p"
    text = open(os.path.join(COMPOSE_DIR, "tapwork-pitr.yaml")).read()
    r = subprocess.run([BIN, "validate", "-c", os.path.join(COMPOSE_DIR, "tapwork-pitr.yaml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    cfg = yaml.safe_load(text)
    # the job backs up the data directory of that very service, into the stack's repository
    src = cfg["backup"]["jobs"][job]["sources"]
    pgdata = [v.split(":")[1] for v in compose["services"]["postgres"]["volumes"]
              if v.startswith("pgdata:")][0]
    assert src == [{"pg_data": dict(src[0]["pg_data"], dir=pgdata)}]
    main = yaml.safe_load(open(os.path.join(COMPOSE_DIR, "tapwork.yaml")))
    assert cfg["backup"]["repository"] == main["backup"]["repository"]
    # the password and S3 keys archive_command inherits are the tapwork service's
    env, twenv = pg["environment"], compose["services"]["tapwork"]["environment"]
    for k in ("TAPWORK_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[k] == twenv[k], k
    r = run_archive_command(tmp_path, settings["archive_command"], text,
                            "/etc/tapwork/tapwork.yaml", job)
    archive_command_runs(r)

"""The Compose stack's tapwork configs, without containers (fast): the
registry and offline variants differ only in the backup repository, tapwork
accepts both, and compose.yaml gives the tapwork service what the job needs."""
import os
import subprocess

import pytest

from conftest import BIN, ROOT

yaml = pytest.importorskip("yaml", reason="python3-yaml not installed")

MAIN = os.path.join(ROOT, "deploy", "compose", "tapwork.yaml")
OFFLINE = os.path.join(ROOT, "deploy", "compose", "tapwork-offline.yaml")


def load(path):
    return yaml.safe_load(open(path))


def test_variants_differ_only_in_the_repository():
    main, offline = load(MAIN), load(OFFLINE)
    assert main["backup"]["repository"].startswith("s3:http://s3:9000/")
    assert offline["backup"]["repository"].startswith("/var/backups/tapwork/")
    main["backup"].pop("repository")
    offline["backup"].pop("repository")
    assert main == offline


def test_https_and_the_nightly_job():
    c = load(MAIN)
    assert c["listen"]["https"] == ":8443" and c["listen"]["http"] == ":8080"
    app = [s for s in c["sites"] if "app.localhost" in s["hosts"]]
    assert app and app[0]["tls"] == "internal"
    job = c["backup"]["jobs"]["nightly"]
    kinds = sorted(next(iter(k for k in s if k in ("path", "postgres"))) for s in job["sources"])
    assert kinds == ["path", "postgres"]


def test_compose_wires_the_job():
    compose = load(os.path.join(ROOT, "compose.yaml"))
    tw = compose["services"]["tapwork"]
    env = tw["environment"]
    minio = compose["services"]["s3"]["environment"]
    assert env["AWS_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"]
    assert env["AWS_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]
    assert env["TAPWORK_PASSWORD"] and env["PGPASSWORD"]
    mounts = {v.split(":")[1] for v in tw["volumes"]}
    job = load(MAIN)["backup"]["jobs"]["nightly"]
    for s in job["sources"]:
        if "path" in s:
            assert s["path"] in mounts, s
    offline = load(os.path.join(ROOT, "deploy", "compose", "offline.yaml"))
    swapped = [v for v in offline["services"]["tapwork"]["volumes"]
               if v.split(":")[1] == "/etc/tapwork/tapwork.yaml"]
    assert swapped and swapped[0].split(":")[0].endswith("tapwork-offline.yaml")


@pytest.mark.parametrize("path", [MAIN, OFFLINE])
def test_tapwork_accepts_the_config(path):
    # Backend names (app:3000) only resolve inside the Compose network: the
    # only complaint allowed.
    r = subprocess.run([BIN, "validate", "-c", path], capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0 or ("cannot resolve \"app\"" in out and out.count("\n") == 1), out

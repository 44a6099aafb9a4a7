"""The Compose stack's files, without containers (fast): the offline override
swaps MinIO for moto and changes nothing else about the S3 store (same service,
port, bucket, tapwork config), tapwork accepts its config, and compose.yaml
gives the tapwork service what the job needs."""
import os
import subprocess

import pytest

from conftest import BIN, ROOT

yaml = pytest.importorskip("yaml", reason="python3-yaml not installed")

MAIN = os.path.join(ROOT, "deploy", "compose", "tapwork.yaml")


def load(path):
    return yaml.safe_load(open(path))


def test_offline_override_swaps_only_the_s3_server():
    compose = load(os.path.join(ROOT, "compose.yaml"))
    offline = load(os.path.join(ROOT, "deploy", "compose", "offline.yaml"))
    # tapwork keeps its config (the s3:http://s3:9000/ repository) and its keys.
    assert "tapwork" not in offline["services"]
    assert load(MAIN)["backup"]["repository"] == "s3:http://s3:9000/backups/tapwork"
    minio, moto = compose["services"]["s3"], offline["services"]["s3"]
    assert minio["image"].startswith("${MINIO_IMAGE:-minio/minio:")
    assert "build" not in minio
    assert moto["build"]["context"] == "deploy/compose/s3" and "moto" in moto["image"]
    # moto listens where MinIO does, inside the Compose network.
    assert moto["command"] == ["-H", "0.0.0.0", "-p", "9000"]
    assert any(p.endswith(":9000") and p.startswith("127.0.0.1:") for p in minio["ports"])
    assert "ports" not in moto    # published (on loopback) by compose.yaml only
    mounts = [v.rsplit(":", 2) for v in moto["volumes"]]
    assert [(t, m) for _, t, m in mounts] == [("/opt/moto-python", "ro")]
    assert mounts[0][0].startswith("${MOTO_PYTHON_PREFIX:-/")
    dockerfile = open(os.path.join(ROOT, "deploy", "compose", "s3", "Dockerfile")).read()
    assert "MOTO_PYTHON=/opt/moto-python" in dockerfile
    assert "ARG DEBIAN_SLIM_IMAGE=debian:bookworm-slim" in dockerfile


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


def test_tapwork_accepts_the_config():
    # Backend names (app:3000) only resolve inside the Compose network: the
    # only complaint allowed.
    r = subprocess.run([BIN, "validate", "-c", MAIN], capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0 or ("cannot resolve \"app\"" in out and out.count("\n") == 1), out

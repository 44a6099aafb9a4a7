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


PUBLIC = os.path.join(ROOT, "examples", "app", "public")


def test_tapwork_accepts_the_config(tmp_path):
    # Backend names (app:3000) only resolve inside the Compose network: the
    # only complaint allowed. The public files are where compose.yaml mounts
    # them (/srv/app/public) only in the container: here, the repository's.
    cfg = tmp_path / "tapwork.yaml"
    cfg.write_text(open(MAIN).read().replace("/srv/app/public", PUBLIC))
    r = subprocess.run([BIN, "validate", "-c", str(cfg)], capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0 or ("cannot resolve \"app\"" in out and out.count("\n") == 1), out


def test_public_assets_served_by_tapwork():
    """The app's public files are mounted into tapwork's container where the
    static routes look for them, and every precompressed variant decodes to
    its file (a stale variant would serve old bytes)."""
    import gzip

    import brotli
    import zstandard
    compose = load(os.path.join(ROOT, "compose.yaml"))
    mounts = {v.rsplit(":", 2)[1]: v.rsplit(":", 2)[0] for v in compose["services"]["tapwork"]["volumes"]}
    assert mounts.get("/srv/app/public") == "./examples/app/public"
    c = load(MAIN)
    routes = [s for s in c["sites"] if "app.localhost" in s["hosts"]][0]["routes"]
    static = [r for r in routes if r.get("handler") == "static"]
    assert static and static[0]["root"].startswith("/srv/app/public")
    assert [r for r in routes if r.get("fallback_static") == "/srv/app/public"]
    assets = os.path.join(PUBLIC, "assets")
    for name in ("app.js", "app.css"):
        src = open(os.path.join(assets, name), "rb").read()
        assert gzip.decompress(open(os.path.join(assets, name + ".gz"), "rb").read()) == src, name
        assert brotli.decompress(open(os.path.join(assets, name + ".br"), "rb").read()) == src, name
        z = zstandard.ZstdDecompressor().decompressobj().decompress(open(os.path.join(assets, name + ".zst"), "rb").read())
        assert z == src, name
    page = open(os.path.join(ROOT, "examples", "app", "server.js")).read()
    assert 'href="/assets/app.css"' in page and 'src="/assets/app.js"' in page

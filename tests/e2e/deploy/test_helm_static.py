"""The Helm chart's staticAssets (docs/deploy.md, "Static files"): off by
default; on, an init container copies the app image's public files into a
volume tapwork mounts read-only where the static routes of config.sites
look; the production example serves the example app's assets that way and
compresses the app's answers, and tapwork accepts the rendered config."""
import os
import subprocess

import pytest

from conftest import BIN, ROOT
from helmutil import EXAMPLES, one, render, renderer

yaml = pytest.importorskip("yaml", reason="python3-yaml not installed")

PREFIX, RENDERER = renderer()
PROD = os.path.join(EXAMPLES, "values-production.yaml")
PUBLIC = os.path.join(ROOT, "examples", "app", "public")


@pytest.fixture(scope="module", autouse=True)
def need_renderer():
    if PREFIX is None:
        pytest.skip("no Helm renderer")


def pod(docs):
    return one(docs, "Deployment")["spec"]["template"]["spec"]


def test_off_by_default():
    docs, _ = render(PREFIX)
    spec = pod(docs)
    assert "initContainers" not in spec
    assert "static-assets" not in {v["name"] for v in spec["volumes"]}


def test_production_example_serves_the_apps_public_files(tmp_path):
    docs, _ = render(PREFIX, "-f", PROD)
    spec = pod(docs)
    init = [c for c in spec["initContainers"] if c["name"] == "static-assets"]
    assert len(init) == 1
    assert init[0]["image"] == "registry.example.com/app:1.4.2"
    assert init[0]["command"] == ["cp", "-R", "/app/public/.", "/static/"]
    assert init[0]["volumeMounts"] == [{"name": "static-assets", "mountPath": "/static"}]
    tw = [c for c in spec["containers"] if c["name"] == "tapwork"][0]
    mounts = {m["mountPath"]: m for m in tw["volumeMounts"]}
    assert mounts["/srv/app/public"]["name"] == "static-assets" and mounts["/srv/app/public"]["readOnly"] is True
    vol = {v["name"]: v for v in spec["volumes"]}["static-assets"]
    assert vol["emptyDir"]["sizeLimit"] == "256Mi"
    text = one(docs, "ConfigMap")["data"]["tapwork.yaml"]
    cfg = yaml.safe_load(text)
    assert cfg["compression"] == {"encodings": ["zstd", "br", "gzip"]}
    routes = cfg["sites"][0]["routes"]
    assert routes[0] == {"path": "/assets/", "handler": "static", "root": "/srv/app/public/assets",
                         "precompressed": ["zstd", "br", "gzip"], "immutable": True}
    assert routes[1]["fallback_static"] == "/srv/app/public"
    # tapwork accepts it (the roots: the example app's public files here);
    # backend names resolve only in the cluster: the only complaint allowed
    f = tmp_path / "tapwork.yaml"
    f.write_text(text.replace("/srv/app/public", PUBLIC))
    r = subprocess.run([BIN, "validate", "-c", str(f)], capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0 or ("cannot resolve" in out and out.count("\n") == 1), out


def test_image_required_when_enabled():
    r = render(PREFIX, "--set", "staticAssets.enabled=true", check=False)
    assert r.returncode != 0 and "staticAssets.image" in r.stderr, r.stderr

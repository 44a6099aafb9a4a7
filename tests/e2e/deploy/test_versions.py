"""deploy/versions.env is the one place for versions: every file that names a
version or an image agrees with it."""
import os
import re

import pytest

from conftest import ROOT, run

yaml = pytest.importorskip("yaml", reason="python3-yaml not installed")


def pins():
    out = {}
    for n, line in enumerate(open(os.path.join(ROOT, "deploy", "versions.env")), 1):
        line = line.rstrip("\n")
        if not line.strip() or line.startswith("#"):
            continue
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*=[^\s\"']+", line), f"versions.env:{n}: {line!r}"
        k, v = line.split("=", 1)
        assert k not in out, f"versions.env:{n}: {k} twice"
        out[k] = v
    return out


def read(*path):
    return open(os.path.join(ROOT, *path)).read()


def test_images_are_pinned():
    p = pins()
    images = {k: v for k, v in p.items() if k.endswith("_IMAGE")}
    assert len(images) >= 6
    for k, v in images.items():
        assert ":" in v and not v.endswith(":latest"), (k, v)


def test_compose_defaults_match():
    p = pins()
    for f in ("compose.yaml", "deploy/compose/offline.yaml"):
        text = read(f)
        used = re.findall(r"\$\{([A-Z_]+_IMAGE):-([^}]+)\}", text)
        assert used, f
        for var, default in used:
            assert p[var] == default, f"{f}: ${{{var}}} defaults to {default}, versions.env says {p[var]}"
        for img in re.findall(r"^\s*image:\s*(\S+)", text, re.M):
            assert not img.endswith(":latest") and (":" in img or img.startswith("${")), (f, img)


def test_dockerfile_defaults_match():
    p = pins()
    for f, arg, key in (("deploy/docker/Dockerfile", "DEBIAN_IMAGE", "DEBIAN_IMAGE"),
                        ("deploy/docker/Dockerfile", "DEBIAN_SLIM_IMAGE", "DEBIAN_SLIM_IMAGE"),
                        ("deploy/compose/postgres/Dockerfile", "DEBIAN_SLIM_IMAGE", "DEBIAN_SLIM_IMAGE"),
                        ("deploy/compose/s3/Dockerfile", "DEBIAN_SLIM_IMAGE", "DEBIAN_SLIM_IMAGE"),
                        ("examples/app/Dockerfile", "NODE_BASE", "NODE_IMAGE")):
        m = re.search(rf"^ARG {arg}=(\S+)$", read(f), re.M)
        assert m and m.group(1) == p[key], (f, arg, m and m.group(1), p[key])
    assert p["NODE_IMAGE"].split(":")[1].startswith(p["NODE_VERSION"] + ".")
    assert p["POSTGRES_IMAGE"].split(":")[1].startswith("15.")


def test_tapwork_version_everywhere():
    p = pins()
    version = run(["version"]).stdout.split()[1]
    chart = yaml.safe_load(read("deploy/helm/tapwork/Chart.yaml"))
    assert chart["appVersion"] == version
    assert p["TAPWORK_IMAGE"] == f"tapwork:{version}"
    assert re.search(r"^ARG VERSION=(\S+)$", read("deploy/docker/Dockerfile"), re.M).group(1) == version
    values = yaml.safe_load(read("deploy/helm/examples/values-production.yaml"))
    assert values["image"]["tag"] == version

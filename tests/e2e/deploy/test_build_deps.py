"""Every library the Makefile links is installed by both build paths: by
scripts/deps.sh (make test, make run) and by the image's build stage
(deploy/docker/Dockerfile) — and its runtime package by the image's runtime
stage. A library added to LIBS without them otherwise fails only minutes into
`make test-containers` (it did, for libpq)."""
import os
import re

from conftest import ROOT

# -lNAME -> (Debian -dev package, runtime package); None = part of libc
PACKAGES = {
    "ssl": ("libssl-dev", "libssl3"), "crypto": ("libssl-dev", "libssl3"),
    "yaml": ("libyaml-dev", "libyaml-0-2"), "zstd": ("libzstd-dev", "libzstd1"),
    "jansson": ("libjansson-dev", "libjansson4"), "nghttp2": ("libnghttp2-dev", "libnghttp2-14"),
    "curl": ("libcurl4-openssl-dev", "libcurl4"), "pq": ("libpq-dev", "libpq5"),
    "brotlienc": ("libbrotli-dev", "libbrotli1"), "brotlidec": ("libbrotli-dev", "libbrotli1"),
    "z": ("zlib1g-dev", "zlib1g"),
    "pthread": None, "m": None,
}


def read(*p):
    return open(os.path.join(ROOT, *p)).read()


def linked():
    m = re.search(r"^LIBS\s*:=(.*)$", read("Makefile"), re.M)
    assert m, "no LIBS := line in the Makefile"
    return re.findall(r"-l(\S+)", m.group(1))


def test_every_linked_library_is_installed_by_deps_and_the_image():
    deps = read("scripts", "deps.sh")
    docker = read("deploy", "docker", "Dockerfile")
    build_stage, runtime_stage = docker.split("# ---- runtime stage", 1)
    missing = []
    for lib in linked():
        assert lib in PACKAGES, f"-l{lib}: add its Debian packages to PACKAGES here, to scripts/deps.sh and the Dockerfile"
        if PACKAGES[lib] is None:
            continue
        dev, rt = PACKAGES[lib]
        if not re.search(rf"(?<![\w.-]){re.escape(dev)}(?![\w.-])", deps):
            missing.append(f"scripts/deps.sh lacks {dev} (-l{lib})")
        if not re.search(rf"(?<![\w.-]){re.escape(dev)}(?![\w.-])", build_stage):
            missing.append(f"Dockerfile build stage lacks {dev} (-l{lib})")
        if not re.search(rf"(?<![\w.-]){re.escape(rt)}(?![\w.-])", runtime_stage):
            missing.append(f"Dockerfile runtime stage lacks {rt} (-l{lib})")
    assert missing == []

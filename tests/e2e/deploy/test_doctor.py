"""`tapwork doctor` against deploy/versions.env, with stand-in tools on PATH."""
import http.server
import os
import re
import stat
import threading

import pytest

from conftest import ROOT, free_port, run

VERSIONS = os.path.join(ROOT, "deploy", "versions.env")

# What each stand-in prints for --version (the real tools' formats).
FORMATS = {
    "gcc": "{v}.0",
    "podman": "podman version {v}.1",
    "docker": "Docker version {v}.2.2, build e6534b4",
    "docker-compose": "docker-compose version {v}.2, build unknown",
    "podman-compose": "podman-compose version: {v}.3\nusing podman version: 4.3.1",
    "node": "v{v}.20.2",
    "kubectl": "Client Version: v{v}.4\nKustomize Version: v5.5.0",
    "helm": "v{v}.2+g13654a5",
    "pg_dump": "pg_dump (PostgreSQL) {v}.10 (Debian {v}.10-0+deb12u1)",
    "pg_restore": "pg_restore (PostgreSQL) {v}.10 (Debian {v}.10-0+deb12u1)",
}
KEYS = {"gcc": "GCC_VERSION", "podman": "PODMAN_VERSION", "docker": "DOCKER_VERSION",
        "docker-compose": "DOCKER_COMPOSE_VERSION", "podman-compose": "PODMAN_COMPOSE_VERSION",
        "node": "NODE_VERSION", "kubectl": "KUBECTL_VERSION", "helm": "HELM_VERSION",
        "pg_dump": "POSTGRES_CLIENT_VERSION", "pg_restore": "POSTGRES_CLIENT_VERSION"}


def pins(path=VERSIONS):
    out = {}
    for line in open(path):
        line = line.strip()
        if line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out[k] = v
    return out


def fake_tools(tmp_path, versions=None, skip=()):
    """A PATH directory with stand-ins printing the pinned (or given) versions."""
    d = tmp_path / "bin"
    d.mkdir(exist_ok=True)
    p = pins()
    for tool, fmt in FORMATS.items():
        if tool in skip:
            continue
        v = (versions or {}).get(tool, p[KEYS[tool]])
        text = fmt.format(v=v)
        f = d / tool
        lines = " ".join("'%s'" % t for t in text.split("\n"))
        f.write_text(f"#!/bin/sh\nprintf '%s\\n' {lines}\n")  # builtins only: PATH is just d
        f.chmod(f.stat().st_mode | stat.S_IXUSR)
    return str(d)


def doctor(tmp_path, *args, env_path, versions=VERSIONS):
    env = dict(os.environ, PATH=env_path)
    env.pop("TAPWORK_VERSIONS", None)
    return run(["doctor", "--versions", versions, *args], env=env, cwd=str(tmp_path))


def line(out, name):
    m = re.search(rf"^  (OK|MISSING|WRONG VERSION)\s+{re.escape(name)}\s.*$", out, re.M)
    assert m, f"no line for {name} in:\n{out}"
    return m


def test_help():
    r = run(["doctor", "--help"])
    assert r.returncode == 0 and r.stdout.startswith("usage: tapwork doctor")


def test_all_pinned_tools_ok(tmp_path):
    r = doctor(tmp_path, env_path=fake_tools(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    for name in list(FORMATS) + ["openssl", "libyaml", "zstd", "nghttp2", "curl", "jansson"]:
        assert line(r.stdout, name).group(1) == "OK", r.stdout
    assert "MISSING" not in r.stdout and "WRONG" not in r.stdout


def test_wrong_version_fails(tmp_path):
    r = doctor(tmp_path, env_path=fake_tools(tmp_path, versions={"node": "18"}))
    assert r.returncode == 1
    m = line(r.stdout, "node")
    assert m.group(1) == "WRONG VERSION"
    assert "18.20.2 (pinned %s)" % pins()["NODE_VERSION"] in m.group(0)
    assert "doctor: 1 problem" in r.stdout


def test_prefix_match_is_on_dot_boundaries(tmp_path):
    # docker pinned "28": "280.1.2" must not match.
    r = doctor(tmp_path, env_path=fake_tools(tmp_path, versions={"docker": "280"}))
    assert line(r.stdout, "docker").group(1) == "WRONG VERSION"
    assert r.returncode == 0  # podman is the alternative and it is OK


def test_missing_engine_fails(tmp_path):
    r = doctor(tmp_path, env_path=fake_tools(tmp_path, skip=("podman", "docker")))
    assert r.returncode == 1
    assert line(r.stdout, "podman").group(1) == "MISSING"
    assert line(r.stdout, "docker").group(1) == "MISSING"


def test_only_podman_is_fine(tmp_path):
    r = doctor(tmp_path, env_path=fake_tools(tmp_path, skip=("docker", "podman-compose")))
    assert r.returncode == 0, r.stdout
    assert "[not needed: an alternative is OK]" in line(r.stdout, "docker").group(0)


def test_kubernetes_optional_unless_asked(tmp_path):
    path = fake_tools(tmp_path, skip=("helm", "kubectl"))
    r = doctor(tmp_path, env_path=path)
    assert r.returncode == 0, r.stdout
    assert "[optional]" in line(r.stdout, "helm").group(0)
    r = doctor(tmp_path, "kubernetes", env_path=path)
    assert r.returncode == 1
    assert "build (" not in r.stdout  # only the named group
    assert "doctor: 2 problems" in r.stdout  # helm and kubectl
    assert line(r.stdout, "kubectl").group(1) == "MISSING"


def test_backup_tools_optional_unless_asked(tmp_path):
    # A pg_dump of another major version: PATH comes first, as for backup jobs
    # (a real one in /usr/lib/postgresql/15/bin is only the fallback).
    path = fake_tools(tmp_path, versions={"pg_dump": "14"})
    r = doctor(tmp_path, env_path=path)
    assert r.returncode == 0, r.stdout
    m = line(r.stdout, "pg_dump")
    assert m.group(1) == "WRONG VERSION" and "[optional]" in m.group(0)
    assert line(r.stdout, "pg_restore").group(1) == "OK"
    r = doctor(tmp_path, "backup", env_path=path)
    assert r.returncode == 1 and "doctor: 1 problem" in r.stdout
    assert "build (" not in r.stdout
    r = doctor(tmp_path, "backup", env_path=fake_tools(tmp_path))
    assert r.returncode == 0, r.stdout


def test_library_pins_checked(tmp_path):
    p = pins()
    p["OPENSSL_VERSION"] = "9.9"
    f = tmp_path / "versions.env"
    f.write_text("".join(f"{k}={v}\n" for k, v in p.items()))
    r = doctor(tmp_path, "libraries", env_path=fake_tools(tmp_path), versions=str(f))
    assert "gcc" not in r.stdout
    assert r.returncode == 1
    assert line(r.stdout, "openssl").group(1) == "WRONG VERSION"
    assert "(pinned 9.9)" in line(r.stdout, "openssl").group(0)


def test_finds_versions_file_from_a_subdirectory(tmp_path):
    env = dict(os.environ, PATH=fake_tools(tmp_path))
    env.pop("TAPWORK_VERSIONS", None)
    r = run(["doctor", "app"], env=env, cwd=os.path.join(ROOT, "src", "cli"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert VERSIONS in r.stdout.splitlines()[0]


def test_versions_file_errors(tmp_path):
    env = dict(os.environ, PATH=fake_tools(tmp_path))
    env.pop("TAPWORK_VERSIONS", None)
    r = run(["doctor"], env=env, cwd="/")
    if not os.path.exists("/usr/share/tapwork/versions.env"):
        assert r.returncode == 2 and "no versions file" in r.stderr
    bad = tmp_path / "bad.env"
    bad.write_text("# ok\nNODE_VERSION 20\n")
    r = run(["doctor", "--versions", str(bad)], env=env)
    assert r.returncode == 2 and "bad.env:2: expected KEY=VALUE" in r.stderr
    assert run(["doctor", "nonsense"], env=env).returncode == 2


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if self.path == "/healthz" else 503
        self.send_response(code)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *a):
        pass


@pytest.fixture
def http_server():
    srv = http.server.HTTPServer(("127.0.0.1", free_port()), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def test_health(http_server):
    base = f"http://127.0.0.1:{http_server}"
    r = run(["doctor", "--health", base + "/healthz"], timeout=20)
    assert r.returncode == 0 and "HTTP 200" in r.stdout
    r = run(["doctor", "--health", base + "/down"], timeout=20)
    assert r.returncode == 1 and "HTTP 503" in r.stderr
    r = run(["doctor", "--health", f"http://127.0.0.1:{free_port()}/healthz"], timeout=20)
    assert r.returncode == 1 and "unhealthy" in r.stderr
    r = run(["doctor", "--health", "file:///etc/passwd"], timeout=20)
    assert r.returncode == 1

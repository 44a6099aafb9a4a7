"""The Compose dev stack, for real: build the images offline with podman,
start tapwork + app + PostgreSQL, check http://app.localhost/ answers through
tapwork from the app (and writes/reads the database), tear everything down.

Skipped unless TAPWORK_E2E_CONTAINERS=1 (it takes minutes; `make
test-containers` sets it), and when podman, docker-compose (or
podman-compose), npm or the Debian base images are missing
(deploy/scripts/base-image.sh makes those)."""
import http.client
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import ROOT, free_port

pytestmark = pytest.mark.skipif(
    os.environ.get("TAPWORK_E2E_CONTAINERS") != "1",
    reason="container test: set TAPWORK_E2E_CONTAINERS=1 (or run `make test-containers`)")

PODMAN_CONF = """[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "netavark"
"""
DEADLINE = 300  # seconds for the whole test, builds included


def versions():
    out = {}
    for line in open(os.path.join(ROOT, "deploy", "versions.env")):
        line = line.strip()
        if line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out[k] = v
    return out


def get(port, path, host="app.localhost", method="GET", body=None, timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Host": host}
        if body is not None:
            headers["Content-Type"] = "application/json"
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode("utf-8", "replace")
    finally:
        c.close()


@pytest.fixture
def stack(tmp_path):
    start = time.monotonic()
    podman = shutil.which("podman")
    if not podman:
        pytest.skip("podman not found (apt-get install podman runc)")
    compose = shutil.which("docker-compose")
    if not compose:
        pytest.skip("docker-compose not found (apt-get install docker-compose)")
    if not shutil.which("npm") and not os.path.isdir(os.path.join(ROOT, "examples/app/node_modules")):
        pytest.skip("npm not found and examples/app/node_modules missing")
    env = dict(os.environ)
    if shutil.which("runc") and not env.get("CONTAINERS_CONF"):
        conf = tmp_path / "containers.conf"
        conf.write_text(PODMAN_CONF)
        env["CONTAINERS_CONF"] = str(conf)
    v = versions()
    for img in (v["DEBIAN_IMAGE"], v["DEBIAN_SLIM_IMAGE"]):
        if subprocess.run([podman, "image", "exists", "docker.io/library/" + img], env=env).returncode:
            pytest.skip(f"base image {img} missing: run deploy/scripts/base-image.sh")
    if not os.path.isdir(os.path.join(ROOT, "examples/app/node_modules")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=os.path.join(ROOT, "examples/app"),
                       check=True, timeout=180, capture_output=True)

    sock = tmp_path / "podman.sock"
    service_log = open(tmp_path / "podman-service.log", "wb")
    service = subprocess.Popen([podman, "system", "service", "--time=0", f"unix://{sock}"],
                               env=env, stdout=service_log, stderr=subprocess.STDOUT)
    for _ in range(100):
        if sock.exists():
            break
        time.sleep(0.1)
    ports = {"TAPWORK_HTTP_PORT": free_port(), "TAPWORK_HTTPS_PORT": free_port(),
             "TAPWORK_ADMIN_PORT": free_port()}
    env.update({k: str(p) for k, p in ports.items()})
    env["DOCKER_HOST"] = f"unix://{sock}"
    env["COMPOSE_DOCKER_CLI_BUILD"] = "0"
    project = f"twe2e{os.getpid()}"
    base = [compose, "-p", project, "-f", os.path.join(ROOT, "compose.yaml"),
            "-f", os.path.join(ROOT, "deploy/compose/offline.yaml")]

    def dc(*args, timeout=120, check=True):
        left = DEADLINE - (time.monotonic() - start)
        r = subprocess.run(base + list(args), env=env, cwd=ROOT, capture_output=True, text=True,
                           timeout=max(10, min(timeout, left)))
        if check:
            assert r.returncode == 0, f"{' '.join(args)}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        return r

    try:
        dc("build", "tapwork", "app", "postgres", timeout=240)
        dc("up", "-d", "tapwork")
        yield {"dc": dc, "ports": ports, "start": start}
    finally:
        logs = dc("logs", "--no-color", check=False, timeout=60)
        (tmp_path / "compose.log").write_text(logs.stdout + logs.stderr)
        dc("down", "-v", "--remove-orphans", check=False, timeout=120)
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(15)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait(5)
        service_log.close()


def test_app_answers_through_tapwork(stack):
    port = stack["ports"]["TAPWORK_HTTP_PORT"]
    deadline = time.monotonic() + 120
    last = None
    while time.monotonic() < deadline:
        try:
            status, headers, body = get(port, "/")
            last = (status, body[:200])
            if status == 200 and "Database: ok" in body:
                break
        except OSError as e:
            last = repr(e)
        time.sleep(1)
    else:
        pytest.fail(f"app.localhost never answered 200 with the database up: {last}")
    assert "tapwork example app" in body          # the app answered ...
    assert headers.get("Via", "").endswith("tapwork")  # ... through tapwork
    assert "request id: -" not in body             # tapwork set X-Request-Id

    # write and read PostgreSQL through the proxy
    note = f"hello from the e2e test {os.getpid()}"
    status, _, created = get(port, "/api/notes", method="POST", body=json.dumps({"body": note}))
    assert status == 201, created
    status, _, listed = get(port, "/api/notes")
    assert status == 200 and note in [n["body"] for n in json.loads(listed)]
    assert note in get(port, "/")[2]

    # another host gets tapwork's own welcome page, not the app
    status, _, other = get(port, "/", host="other.localhost")
    assert status == 200 and "tapwork example app" not in other

    # the admin endpoint and the image's health check command
    admin = stack["ports"]["TAPWORK_ADMIN_PORT"]
    assert get(admin, "/healthz", host="localhost")[0] == 200
    assert get(admin, "/readyz", host="localhost")[0] == 200
    r = stack["dc"]("exec", "-T", "tapwork", "tapwork", "doctor", "--health",
                    "http://127.0.0.1:9090/healthz")
    assert "healthy" in r.stdout
    r = stack["dc"]("exec", "-T", "tapwork", "id", "-u")
    assert r.stdout.strip() == "10001"
    assert time.monotonic() - stack["start"] < 300

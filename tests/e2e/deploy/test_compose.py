"""The Compose dev stack, for real: build the images offline with podman,
start tapwork + app + PostgreSQL + the S3 store (moto on the offline path),
check http://app.localhost/ answers through tapwork from the app (and
writes/reads the database), check https://app.localhost/ with the local CA's
root copied out of the container, run the backup job `nightly` (database +
upload volume) into the S3 bucket, list the bucket's objects from here (moto's
port, published on 127.0.0.1), restore the upload volume and the database
dump from S3, tear everything down. One stack for the whole module.

Skipped unless TAPWORK_E2E_CONTAINERS=1 (it takes minutes; `make
test-containers` sets it), and when podman, docker-compose, npm, the Debian
base images (deploy/scripts/base-image.sh makes those) or a Python with moto
(MOTO_PYTHON_PREFIX, default the pyenv Python 3.11) are missing."""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.parse
import xml.etree.ElementTree as ET

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
DEADLINE = 480  # seconds for the whole module, builds included
# deploy/compose/offline.yaml mounts this prefix into the s3 service.
MOTO_PREFIX = os.environ.get("MOTO_PYTHON_PREFIX") or "/root/.pyenv/versions/3.11.7"


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


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("compose")
    start = time.monotonic()
    podman = shutil.which("podman")
    if not podman:
        pytest.skip("podman not found (apt-get install podman runc)")
    compose = shutil.which("docker-compose")
    if not compose:
        pytest.skip("docker-compose not found (apt-get install docker-compose)")
    if not shutil.which("npm") and not os.path.isdir(os.path.join(ROOT, "examples/app/node_modules")):
        pytest.skip("npm not found and examples/app/node_modules missing")
    moto_py = os.path.join(MOTO_PREFIX, "bin", "python3")
    if not os.access(moto_py, os.X_OK) or subprocess.run(
            [moto_py, "-c", "import moto.server"], capture_output=True, timeout=60).returncode:
        pytest.skip(f"no Python with moto[server] at MOTO_PYTHON_PREFIX={MOTO_PREFIX}")
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
             "TAPWORK_ADMIN_PORT": free_port(), "S3_PORT": free_port()}
    env.update({k: str(p) for k, p in ports.items()})
    env["DOCKER_HOST"] = f"unix://{sock}"
    env["COMPOSE_DOCKER_CLI_BUILD"] = "0"
    env["MOTO_PYTHON_PREFIX"] = MOTO_PREFIX
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
        dc("build", "tapwork", "app", "postgres", "s3", timeout=240)
        # Offline every service is built here, so a bare `up` starts them all.
        dc("up", "-d")
        yield {"dc": dc, "ports": ports, "start": start, "tmp": tmp_path}
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


def wait_app(port):
    """Wait (bounded) until app.localhost answers through tapwork with the database up."""
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
    return status, headers, body


def test_app_answers_through_tapwork(stack):
    port = stack["ports"]["TAPWORK_HTTP_PORT"]
    status, headers, body = wait_app(port)
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
    assert time.monotonic() - stack["start"] < DEADLINE


def https_get(port, ctx, path="/", host="app.localhost", timeout=5):
    """GET over TLS to 127.0.0.1:port with SNI and certificate check for `host`."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            cert = tls.getpeercert()
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while len(data) < 1 << 20:
                chunk = tls.recv(65536)
                if not chunk:
                    break
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, head.decode("latin-1"), body.decode("utf-8", "replace"), cert


def test_https_with_the_local_ca(stack):
    wait_app(stack["ports"]["TAPWORK_HTTP_PORT"])
    port = stack["ports"]["TAPWORK_HTTPS_PORT"]
    # The root tapwork created in its state_dir volume, copied out as a user would.
    root = stack["dc"]("exec", "-T", "tapwork", "cat", "/var/lib/tapwork/ca/root.crt").stdout
    assert "BEGIN CERTIFICATE" in root
    cafile = stack["tmp"] / "tapwork-root.crt"
    cafile.write_text(root)
    ctx = ssl.create_default_context(cafile=str(cafile))
    deadline = time.monotonic() + 60
    while True:
        try:
            status, head, body, cert = https_get(port, ctx)
            if status == 200 and "Database: ok" in body:
                break
        except (OSError, ValueError, IndexError) as e:
            if time.monotonic() > deadline:
                pytest.fail(f"https://app.localhost never answered: {e!r}")
        if time.monotonic() > deadline:
            pytest.fail(f"https://app.localhost answered {status}")
        time.sleep(1)
    assert "tapwork example app" in body
    assert "via: " in head.lower() and "tapwork" in head.lower()
    sans = [v for k, v in cert.get("subjectAltName", ()) if k == "DNS"]
    assert "app.localhost" in sans
    # The certificate chains to that root only: the system trust store rejects it.
    with pytest.raises(ssl.SSLCertVerificationError):
        https_get(port, ssl.create_default_context())


def config_repository():
    """The repository the stack's config names (the same for both paths)."""
    text = open(os.path.join(ROOT, "deploy", "compose", "tapwork.yaml")).read()
    return re.search(r"^  repository: (\S+)$", text, re.M).group(1)


def wait_s3(port):
    """Wait (bounded) until the S3 store answers on its published loopback port."""
    deadline = time.monotonic() + 60
    last = None
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                c.request("GET", "/")
                r = c.getresponse()
                r.read()
                if r.status == 200:
                    return
                last = r.status
            finally:
                c.close()
        except OSError as e:
            last = repr(e)
        time.sleep(0.5)
    pytest.fail(f"the S3 store never answered on 127.0.0.1:{port}: {last}")


def s3_list(port, bucket, prefix):
    """ListObjectsV2 of bucket/prefix through the published port: {key: size}.
    moto does not check signatures, so the request is unsigned."""
    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    out, token = {}, None
    for _ in range(100):   # 1000 keys a page: far more than one small backup
        q = {"list-type": "2", "prefix": prefix}
        if token:
            q["continuation-token"] = token
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            c.request("GET", f"/{bucket}?{urllib.parse.urlencode(q)}")
            r = c.getresponse()
            body = r.read()
        finally:
            c.close()
        assert r.status == 200, body[:500]
        root = ET.fromstring(body)
        for item in root.findall(ns + "Contents"):
            out[item.find(ns + "Key").text] = int(item.find(ns + "Size").text)
        if root.findtext(ns + "IsTruncated") != "true":
            return out
        token = root.findtext(ns + "NextContinuationToken")
    pytest.fail("bucket listing did not end after 100 pages")


def test_backup_job_and_restore(stack):
    dc = stack["dc"]
    port = stack["ports"]["TAPWORK_HTTP_PORT"]
    wait_app(port)
    # Something in each source: an upload (the app's volume) and a note (PostgreSQL).
    payload = f"upload written by the e2e test {os.getpid()}\n" * 50
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("PUT", "/api/uploads/e2e.txt", body=payload.encode(), headers={"Host": "app.localhost"})
    r = c.getresponse()
    r.read()
    c.close()
    assert r.status in (200, 201), r.status
    note = f"note before the backup {os.getpid()}"
    assert get(port, "/api/notes", method="POST", body=json.dumps({"body": note}))[0] == 201

    # The image carries the PostgreSQL client tools at the pinned version.
    r = dc("exec", "-T", "tapwork", "tapwork", "doctor", "libraries", "backup")
    assert "OK             pg_dump" in r.stdout, r.stdout

    repo = config_repository()
    m = re.fullmatch(r"s3:http://s3:9000/([a-z0-9.-]+)/(\S+)", repo)
    assert m, repo   # the job writes to the stack's S3 store
    bucket, prefix = m.group(1), m.group(2) + "/"
    s3_port = stack["ports"]["S3_PORT"]
    wait_s3(s3_port)
    # repo init creates the bucket (AWS_* keys: compose.yaml's dev values).
    dc("exec", "-T", "tapwork", "tapwork", "repo", "init", "-r", repo)
    r = dc("exec", "-T", "tapwork", "tapwork", "backup", "--job", "nightly",
           "-c", "/etc/tapwork/tapwork.yaml", "--json", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["ok"] is True and summary["snapshot_id"], summary
    assert summary["files"] >= 2, summary   # the upload + the dump at least

    snaps = json.loads(dc("exec", "-T", "tapwork", "tapwork", "snapshots", "-r", repo, "--json").stdout)
    assert len(snaps) == 1 and "job:nightly" in snaps[0].get("tags", []), snaps

    # The objects are in the bucket, laid out as docs/repository-format.md says.
    objs = s3_list(s3_port, bucket, prefix)
    names = [k[len(prefix):] for k in objs]
    assert "config" in names, names
    snap_objs = [n for n in names if n.startswith("snapshots/")]
    assert len(snap_objs) == 1, names
    assert snap_objs[0].split("/")[1].startswith(summary["snapshot_id"]), (snap_objs, summary)
    for kind in ("keys/", "index/", "data/"):
        assert any(n.startswith(kind) for n in names), (kind, names)
    packs = sum(size for k, size in objs.items() if k[len(prefix):].startswith("data/"))
    assert packs > 0, objs

    # Restore the upload volume next to the live one and compare.
    dc("exec", "-T", "tapwork", "tapwork", "restore", "-r", repo, "latest",
       "--target", "/var/backups/tapwork/restored")
    got = dc("exec", "-T", "tapwork", "cat", "/var/backups/tapwork/restored/uploads/e2e.txt").stdout
    assert got == payload

    # The PostgreSQL dump: its table of contents, then a real restore into a new database.
    toc = dc("exec", "-T", "tapwork", "tapwork", "restore", "-r", repo, "latest", "--list").stdout
    assert "TABLE public notes" in toc or "TABLE DATA public notes" in toc, toc[-2000:]
    psql = "/usr/lib/postgresql/15/bin/psql"
    dc("exec", "-T", "tapwork", psql, "-v", "ON_ERROR_STOP=1", "postgresql://app@postgres/app",
       "-c", "CREATE DATABASE restored")
    dc("exec", "-T", "tapwork", "tapwork", "restore", "-r", repo, "latest",
       "--postgres", "postgresql://app@postgres/restored", "--dump", "app.dump")
    out = dc("exec", "-T", "tapwork", psql, "-At", "postgresql://app@postgres/restored",
             "-c", "SELECT body FROM notes").stdout
    assert note in out.splitlines()
    assert time.monotonic() - stack["start"] < DEADLINE

"""A backup repository on S3: tapwork against a real moto_server.

moto_server is started per test module on a free loopback port with
INITIAL_NO_AUTH_ACTION_COUNT=3: the three IAM calls that create a user, its
allow-all policy and its access key go unauthenticated, every later request
must carry a valid SigV4 signature. The IAM calls are signed by the curl
command-line tool (moto picks the service from the signature's scope).
A small fault-injecting proxy (a thread in this process) sits in front of
moto for the retry test.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "backup"))
from bkhelp import compare_trees, json_lines, make_tree, make_writable  # noqa: E402
from conftest import BIN, free_port, wait_port  # noqa: E402

PASSWORD = "s3 test password"
MOTO = shutil.which("moto_server")
pytestmark = pytest.mark.skipif(MOTO is None, reason="moto_server not on PATH")


class Moto:
    def __init__(self, tmp):
        self.port = free_port()
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
        self.log = open(os.path.join(tmp, "moto.log"), "wb")
        self.proc = subprocess.Popen([MOTO, "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        wait_port(self.port, timeout=30)
        self.iam("Action=CreateUser&UserName=tw")
        self.iam("Action=PutUserPolicy&UserName=tw&PolicyName=all&PolicyDocument="
                 "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22"
                 "%3A%22Allow%22%2C%22Action%22%3A%22*%22%2C%22Resource%22%3A%22*%22%7D%5D%7D")
        out = self.iam("Action=CreateAccessKey&UserName=tw")
        self.key = re.search(r"<AccessKeyId>([^<]+)<", out).group(1)
        self.secret = re.search(r"<SecretAccessKey>([^<]+)<", out).group(1)

    def iam(self, form):
        r = subprocess.run(["curl", "-sS", "--fail", "--max-time", "20",
                            "--aws-sigv4", "aws:amz:us-east-1:iam", "--user", "AKIASETUP:setup",
                            "--data", form + "&Version=2010-05-08",
                            f"http://127.0.0.1:{self.port}/"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    m = Moto(str(tmp_path_factory.mktemp("moto")))
    yield m
    m.stop()


def tw(moto, repo, *args, secret=None, extra_env=None, timeout=120, check=None):
    env = dict(os.environ)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "TAPWORK_PASSWORD_FILE"):
        env.pop(k, None)
    env.update(AWS_ACCESS_KEY_ID=moto.key, AWS_SECRET_ACCESS_KEY=secret or moto.secret,
               AWS_REGION="us-east-1", TAPWORK_REPOSITORY=repo, TAPWORK_PASSWORD=PASSWORD,
               TAPWORK_S3_RETRY_BASE_MS="20")
    env.update(extra_env or {})
    r = subprocess.run([BIN] + list(args), capture_output=True, env=env, timeout=timeout)
    r.out = r.stdout.decode("utf-8", "replace")
    r.err = r.stderr.decode("utf-8", "replace")
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        assert marker not in r.err, r.err[-4000:]
    if check is not None:
        assert r.returncode == check, (args, r.returncode, r.out[-2000:], r.err[-3000:])
    return r


def test_init_backup_restore_roundtrip(moto, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    make_tree(src)
    repo = f"s3:http://127.0.0.1:{moto.port}/roundtrip/team/repo1"
    # no bucket yet: a clear error, then init creates it
    r = tw(moto, repo, "snapshots")
    assert r.returncode != 0 and "does not exist" in r.err, r.err
    tw(moto, repo, "repo", "init", check=0)
    r = tw(moto, repo, "repo", "init")
    assert r.returncode != 0 and "exists" in r.err
    r = tw(moto, repo, "backup", "--json", str(src), check=0)
    first = [o for o in json_lines(r.out) if o.get("type") == "summary"][0]
    assert first["errors"] == 0 and first["files"] > 40
    # second backup: nothing new to upload
    r = tw(moto, repo, "backup", "--json", str(src), check=0)
    second = [o for o in json_lines(r.out) if o.get("type") == "summary"][0]
    assert second["new_bytes"] < first["new_bytes"] / 10
    out = tmp_path / "out"
    tw(moto, repo, "restore", "latest", "--target", str(out), check=0)
    compare_trees(src, out / "src")
    make_writable(out)
    r = tw(moto, repo, "check", "--read-data", "--json", check=0)
    assert json_lines(r.out)[-1]["ok"] is True
    # the objects sit under the prefix with the repository layout
    r = subprocess.run(["curl", "-sS", "--aws-sigv4", "aws:amz:us-east-1:s3",
                        "--user", f"{moto.key}:{moto.secret}", "-H", "x-amz-content-sha256: "
                        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                        f"http://127.0.0.1:{moto.port}/roundtrip?list-type=2"],
                       capture_output=True, text=True, timeout=30)
    keys = re.findall(r"<Key>([^<]+)</Key>", r.stdout)
    assert "team/repo1/config" in keys
    assert any(re.fullmatch(r"team/repo1/data/([0-9a-f]{2})/\1[0-9a-f]{62}", k) for k in keys)
    assert any(k.startswith("team/repo1/snapshots/") for k in keys)
    assert any(k.startswith("team/repo1/index/") for k in keys)
    assert any(k.startswith("team/repo1/keys/") for k in keys)


def test_wrong_secret_fails_clearly(moto, tmp_path):
    repo = f"s3:http://127.0.0.1:{moto.port}/secretbucket/r"
    tw(moto, repo, "repo", "init", check=0)
    r = tw(moto, repo, "snapshots", secret="not-the-secret")
    assert r.returncode != 0
    assert "S3 403 SignatureDoesNotMatch" in r.err, r.err
    assert "not-the-secret" not in r.err + r.out


# ---- fault injection ---------------------------------------------------------

class FaultProxy:
    """Forwards one request per connection to moto; the first matching rule
    (method, substring of the target, action, times) can answer 500/503,
    cut the connection, or forward and then drop the reply."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.rules = []
        self.log = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def rule(self, method, sub, action, times):
        with self.lock:
            self.rules.append([method, sub, action, times])

    def count(self, method, sub):
        with self.lock:
            return sum(1 for m, t in self.log if m == method and sub in t)

    def serve(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            threading.Thread(target=self.handle, args=(c,), daemon=True).start()

    def read_request(self, c):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = c.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
        need = int(m.group(1)) if m else 0
        while len(body) < need:
            chunk = c.recv(1 << 20)
            if not chunk:
                return None
            body += chunk
        return head, body

    def handle(self, c):
        c.settimeout(30)
        try:
            req = self.read_request(c)
            if req is None:
                return
            head, body = req
            method, target = head.split(b" ", 2)[:2]
            method, target = method.decode(), target.decode()
            action = "forward"
            with self.lock:
                self.log.append((method, target))
                for r in self.rules:
                    if r[3] > 0 and r[0] == method and r[1] in target:
                        r[3] -= 1
                        action = r[2]
                        break
            if action in ("500", "503"):
                c.sendall(b"HTTP/1.1 %s Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                          % action.encode())
                return
            if action == "cut":
                return
            up = socket.create_connection(("127.0.0.1", self.upstream), timeout=30)
            up.sendall(head + b"\r\n\r\n" + body)
            while True:
                chunk = up.recv(1 << 20)
                if not chunk:
                    break
                if action == "forward":
                    c.sendall(chunk)
            up.close()
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


def test_backup_survives_server_errors_and_cut_connections(moto, tmp_path):
    px = FaultProxy(moto.port)
    try:
        repo = f"s3:http://127.0.0.1:{px.port}/faulty/r"
        # the key file is written with a conditional put (If-None-Match: *);
        # it lands but its reply is lost: never sent twice, HEAD instead
        px.rule("PUT", "/keys/", "fwdcut", 1)
        tw(moto, repo, "repo", "init", check=0)
        assert px.count("PUT", "/keys/") == 1
        assert px.count("HEAD", "/keys/") == 1
        src = tmp_path / "src"
        src.mkdir()
        make_tree(src, seed=5)
        # packs: the first two uploads fail (503, then a cut connection);
        # plain puts of content-addressed objects are simply sent again
        px.rule("PUT", "/data/", "503", 1)
        px.rule("PUT", "/data/", "cut", 1)
        px.rule("PUT", "/snapshots/", "500", 1)
        px.rule("GET", "/keys/", "500", 1)
        tw(moto, repo, "backup", "-q", str(src), check=0)
        assert px.count("PUT", "/snapshots/") == 2
        r = tw(moto, repo, "snapshots", "--json", check=0)
        import json
        assert len(json.loads(r.out)) == 1
        px.rule("GET", "/data/", "503", 2)
        out = tmp_path / "out"
        tw(moto, repo, "restore", "latest", "--target", str(out), check=0)
        compare_trees(src, out / "src")
        make_writable(out)
        # a store that keeps failing: a clear error, bounded retries
        px.rule("GET", "/keys/", "503", 1000)
        t0 = time.monotonic()
        r = tw(moto, repo, "snapshots")
        assert r.returncode != 0 and "503" in r.err, r.err
        assert time.monotonic() - t0 < 20
    finally:
        px.stop()

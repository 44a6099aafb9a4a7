"""`tapwork run` with `tls: acme` against a real pebble: the site is served
with a temporary local-CA certificate at once, the edge answers pebble's
HTTP-01 challenge on its HTTP listener, and the issued certificate replaces
the temporary one without a restart (connections keep working)."""
import json
import os
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "edge"))
from acmeutil import NO_NONCE_REJECT, PEBBLE, Pebble  # noqa: E402
from conftest import BIN, wait_port  # noqa: E402
from edgeutil import start_upstream  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists(PEBBLE), reason="pebble is not installed")


def issuer_of(port, name):
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name],
                       input="", capture_output=True, text=True, timeout=20)
    for line in r.stdout.splitlines():
        if line.startswith("issuer="):
            return line
    return ""


def test_acme_site_gets_certificate_from_pebble(procs, tmp_path):
    pb = Pebble(procs, tmp_path / "pebble", env=NO_NONCE_REJECT)
    up = start_upstream(procs, "web")
    state = tmp_path / "state"
    cfg = {
        "listen": {"http": f"127.0.0.1:{pb.http_port}", "https": f"127.0.0.1:{pb.tls_port}"},
        "workers": 2,
        "state_dir": str(state),
        "log": {"access": str(tmp_path / "access.log")},
        "acme": {"email": "ops@example.com", "directory": pb.url, "ca_roots": [pb.ca_roots],
                 "challenges": ["http-01"]},
        "sites": [{"hosts": ["acme.example.com"], "tls": "acme",
                   "routes": [{"path": "/", "backend": "web"}]}],
        "backends": {"web": {"servers": [up.addr]}},
    }
    path = tmp_path / "tapwork.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    p = procs.start([BIN, "run", "-c", str(path)], name="tapwork")
    wait_port(pb.tls_port)
    # Until the certificate arrives the site answers with a local-CA one.
    first = issuer_of(pb.tls_port, "acme.example.com")
    assert first, procs.log_of(p)
    deadline = time.monotonic() + 60
    issued = ""
    while time.monotonic() < deadline:
        issued = issuer_of(pb.tls_port, "acme.example.com")
        if "Pebble" in issued or "pebble" in issued:
            break
        time.sleep(0.3)
    log = procs.log_of(p)
    assert "ebble" in issued, f"{issued}\n{log[-3000:]}"
    assert "config reloaded" in log and "installed" in log, log[-3000:]
    # curl trusts it through pebble's root and reaches the upstream.
    root = pb.root(0)
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", root,
                        "--resolve", f"acme.example.com:{pb.tls_port}:127.0.0.1",
                        f"https://acme.example.com:{pb.tls_port}/echo"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and r.stdout == "200", r.stderr
    # The HTTP listener redirects normal requests but answered the challenge before that.
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                        "-H", "Host: acme.example.com", f"http://127.0.0.1:{pb.http_port}/x"],
                       capture_output=True, text=True, timeout=20)
    assert r.stdout == "308"
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                        "-H", "Host: acme.example.com",
                        f"http://127.0.0.1:{pb.http_port}/.well-known/acme-challenge/nope"],
                       capture_output=True, text=True, timeout=20)
    assert r.stdout == "404"
    # A restart installs the stored certificate without asking the CA again.
    procs.stop(p)
    p2 = procs.start([BIN, "run", "-c", str(path)], name="tapwork2")
    wait_port(pb.tls_port)
    assert "ebble" in issuer_of(pb.tls_port, "acme.example.com"), procs.log_of(p2)


def wait_issuer(port, name, needle, timeout=60):
    deadline = time.monotonic() + timeout
    got = ""
    while time.monotonic() < deadline:
        got = issuer_of(port, name)
        if needle in got:
            return got
        time.sleep(0.3)
    return got


def test_acme_tls_alpn01_through_run(procs, tmp_path):
    """Only tls-alpn-01 allowed and no HTTP listener at all: pebble validates
    on tapwork's HTTPS port with ALPN acme-tls/1, the edge presents the
    RFC 8737 certificate for that SNI name, and the site gets its certificate."""
    pb = Pebble(procs, tmp_path / "pebble", env=NO_NONCE_REJECT)
    up = start_upstream(procs, "web")
    cfg = {
        "listen": {"https": f"127.0.0.1:{pb.tls_port}"},
        "workers": 2,
        "state_dir": str(tmp_path / "state"),
        "acme": {"email": "ops@example.com", "directory": pb.url, "ca_roots": [pb.ca_roots],
                 "challenges": ["tls-alpn-01"], "retry_min": "1s"},
        "sites": [{"hosts": ["alpn.example.com", "alpn2.example.com"], "tls": "acme",
                   "routes": [{"path": "/", "backend": "web"}]}],
        "backends": {"web": {"servers": [up.addr]}},
    }
    path = tmp_path / "tapwork.yaml"
    path.write_text(json.dumps(cfg))
    p = procs.start([BIN, "run", "-c", str(path)], name="tapwork")
    wait_port(pb.tls_port)
    # An acme-tls/1 handshake for a name with no pending validation fails.
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{pb.tls_port}",
                        "-servername", "other.example.com", "-alpn", "acme-tls/1"],
                       input="", capture_output=True, text=True, timeout=20)
    assert "BEGIN CERTIFICATE" not in r.stdout
    issued = wait_issuer(pb.tls_port, "alpn.example.com", "ebble")
    log = procs.log_of(p)
    assert "ebble" in issued, f"{issued}\n{log[-3000:]}"
    assert "ebble" in issuer_of(pb.tls_port, "alpn2.example.com")
    root = pb.root(0)
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", root,
                        "--resolve", f"alpn2.example.com:{pb.tls_port}:127.0.0.1",
                        f"https://alpn2.example.com:{pb.tls_port}/echo"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and r.stdout == "200", r.stderr
    # After validation the pending certificates are gone: acme-tls/1 is refused again.
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{pb.tls_port}",
                        "-servername", "alpn.example.com", "-alpn", "acme-tls/1"],
                       input="", capture_output=True, text=True, timeout=20)
    assert "BEGIN CERTIFICATE" not in r.stdout, r.stdout

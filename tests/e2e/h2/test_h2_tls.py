"""HTTP/2 over TLS (ALPN h2): waits for the TLS front (an `https` listener)."""
import json
import os
import subprocess

import pytest

from conftest import BIN
from h2util import https_supported, start_edge, start_upstream, simple_config
from edgeutil import wait_for
from conftest import free_port

pytestmark = pytest.mark.skipif(not https_supported(BIN), reason="TLS not integrated yet")


def test_h2_over_tls_with_local_ca(procs, tmp_path):
    up = start_upstream(procs, "web")
    port = free_port()
    cfg = simple_config([up], hosts=["app.localhost"])
    cfg["listen"] = {"https": f"127.0.0.1:{port}"}
    cfg["sites"][0]["tls"] = "internal"
    cfg["state_dir"] = str(tmp_path / "state")
    e = start_edge(procs, tmp_path, cfg)
    root = wait_for(lambda: next((os.path.join(d, f) for d, _, fs in os.walk(tmp_path / "state")
                                  for f in fs if f.endswith(".crt") and "root" in f), None), 10, what="root cert")
    r = subprocess.run(["curl", "-sS", "--http2", "--cacert", root, "--resolve", f"app.localhost:{port}:127.0.0.1",
                        "-w", "\n%{http_version}", f"https://app.localhost:{port}/echo"],
                       capture_output=True, timeout=30)
    body, _, ver = r.stdout.rpartition(b"\n")
    assert ver == b"2", r.stderr
    j = json.loads(body)
    assert j["upstream"] == "web"
    assert ["X-Forwarded-Proto", "https"] in j["headers"]
    assert e.alive()

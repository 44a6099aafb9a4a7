"""testssl.sh (Debian package) against tapwork's HTTPS listener: no HIGH or
CRITICAL finding. `make test` runs a focused subset (protocols, cipher
categories, vulnerabilities) on the release build; `make test-tls` runs the
full scan (TAPWORK_TESTSSL_FULL=1), which takes several minutes."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import tlsutil  # noqa: E402,F401  (puts tests/e2e/edge on sys.path)
from conftest import BIN, VARIANT, free_port, wait_port  # noqa: E402
from edgeutil import start_upstream  # noqa: E402

TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")
FULL = os.environ.get("TAPWORK_TESTSSL_FULL") == "1"

pytestmark = [
    pytest.mark.skipif(TESTSSL is None, reason="testssl.sh is not installed"),
    pytest.mark.skipif(VARIANT == "asan" and not FULL,
                       reason="TLS configuration scan: run once, on the release build"),
]


def test_testssl_no_high_or_critical(procs, tmp_path):
    up = start_upstream(procs, "app")
    https = free_port()
    cfg = tmp_path / "tapwork.yaml"
    cfg.write_text(f"""listen: {{https: "127.0.0.1:{https}"}}
workers: 1
state_dir: "{tmp_path / 'state'}"
log: {{access: "off"}}
sites:
  - hosts: [app.test]
    tls: internal
    routes: [{{path: /, backend: app}}]
backends:
  app: {{servers: ["{up.addr}"]}}
""")
    procs.start([BIN, "run", "-c", str(cfg)], name="tapwork")
    wait_port(https)
    out = tmp_path / "testssl.json"
    args = [TESTSSL, "--quiet", "--color", "0", "--warnings", "off", "--severity", "HIGH",
            "--jsonfile", str(out), "--ip", "127.0.0.1"]
    if not FULL:
        args += ["-p", "-f", "-U"]
    args.append(f"https://app.test:{https}")
    r = subprocess.run(args, capture_output=True, text=True, timeout=1200 if FULL else 300)
    findings = json.loads(out.read_text())
    bad = [(f["id"], f["severity"], f["finding"]) for f in findings if f["severity"] in ("HIGH", "CRITICAL")]
    assert bad == [], bad
    proto = {}
    for ln in r.stdout.splitlines():
        m = re.match(r"^\s*(SSLv2|SSLv3|TLS 1\.[0-3]|TLS 1)\s+(.*)$", ln)
        if m:
            proto[m.group(1)] = m.group(2)
    for old in ("SSLv2", "SSLv3", "TLS 1", "TLS 1.1"):
        assert proto.get(old, "").startswith("not offered"), (old, proto)
    for new in ("TLS 1.2", "TLS 1.3"):
        assert proto.get(new, "").startswith("offered"), (new, proto)

"""Two `tapwork run` replicas share one ACME store on S3 (moto_server):
the certificate is ordered once (one dns-01 validation, one order in
pebble's log), both replicas serve the same certificate, and the lease
lock object is gone afterwards."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "edge"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "s3"))
from acmeutil import Pebble, needs_pebble  # noqa: E402
from conftest import BIN, free_port, wait_port  # noqa: E402
from edgeutil import start_upstream  # noqa: E402
from test_run_acme_more import served_cert, wait_pebble_cert  # noqa: E402

MOTO = shutil.which("moto_server")
pytestmark = [needs_pebble, pytest.mark.skipif(MOTO is None, reason="moto_server not on PATH")]


def test_two_replicas_share_s3_store(procs, tmp_path):
    from test_s3_repo import Moto
    moto = Moto(str(tmp_path))
    try:
        # The test counts orders, so pebble must not fail one at random: with its
        # default 5 % nonce rejection two rejections in a row (tapwork retries
        # once, as specified) end an issuance now and then, and the retry is a
        # second order (CI saw one). Nonce retries have their own test.
        pb = Pebble(procs, tmp_path / "pebble", env={"PEBBLE_WFE_NONCEREJECT": "0"})
        hook = pb.hook(str(tmp_path / "hook.sh"))
        up = start_upstream(procs, "web")
        store = f"s3:http://127.0.0.1:{moto.port}/acme-bucket/shared"
        env = {"AWS_ACCESS_KEY_ID": moto.key, "AWS_SECRET_ACCESS_KEY": moto.secret,
               "AWS_REGION": "us-east-1"}
        ports, ps = [], []
        for i in range(2):
            port = free_port()
            cfg = {
                "listen": {"https": f"127.0.0.1:{port}"},
                "workers": 1,
                "state_dir": str(tmp_path / f"state{i}"),
                "acme": {"email": "ops@example.com", "directory": pb.url,
                         "ca_roots": [pb.ca_roots], "challenges": ["dns-01"], "dns_hook": hook,
                         "store": store, "retry_min": "1s"},
                "sites": [{"hosts": ["shared.example.com"], "tls": "acme",
                           "routes": [{"path": "/", "backend": "web"}]}],
                "backends": {"web": {"servers": [up.addr]}},
            }
            path = tmp_path / f"tapwork{i}.yaml"
            path.write_text(json.dumps(cfg))
            ps.append(procs.start([BIN, "run", "-c", str(path)], name=f"tapwork{i}", env=env))
            ports.append(port)
        for port in ports:
            wait_port(port)
        certs = [wait_pebble_cert(port, "shared.example.com", timeout=60) for port in ports]
        logs = "\n".join(procs.log_of(p) for p in ps)
        assert certs[0] and certs[1], logs[-4000:]
        assert certs[0] == certs[1]
        # One order: one dns-01 validation, one finalized order at pebble.
        sets = [c for c in open(hook + ".calls").read().split("\n") if c.startswith("set ")]
        assert len(sets) == 1, sets
        plog = procs.log_of(pb.proc)
        assert plog.count("Issued certificate serial") == 1, plog[-3000:]
        # Both replicas got it from the store; no lock object is left behind.
        r = subprocess.run(["curl", "-sS", "--aws-sigv4", "aws:amz:us-east-1:s3",
                            "--user", f"{moto.key}:{moto.secret}", "-H",
                            "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                            f"http://127.0.0.1:{moto.port}/acme-bucket?list-type=2&prefix=shared/"],
                           capture_output=True, text=True, timeout=20)
        assert "shared/keys/certs_sshared.example.com_schain.pem" in r.stdout, r.stdout
        assert "shared/locks/" not in r.stdout, r.stdout
        # A restarted replica with an empty state_dir serves the shared certificate.
        procs.stop(ps[1])
        shutil.rmtree(tmp_path / "state1")
        p = procs.start([BIN, "run", "-c", str(tmp_path / "tapwork1.yaml")], name="tapwork1b",
                        env=env)
        wait_port(ports[1])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and served_cert(ports[1], "shared.example.com") != certs[0]:
            time.sleep(0.3)
        assert served_cert(ports[1], "shared.example.com") == certs[0], procs.log_of(p)[-3000:]
        assert procs.log_of(pb.proc).count("Issued certificate serial") == 1
    finally:
        moto.stop()

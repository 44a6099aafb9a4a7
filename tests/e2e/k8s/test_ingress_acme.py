"""Automatic HTTPS from an Ingress (issue 11): a TLS host listed without
secretName gets its certificate from tapwork's own ACME client, here against
a real pebble (Let's Encrypt's test CA) answering HTTP-01 on tapwork's HTTP
listener: nothing else installed in the cluster (no cert-manager)."""
import os
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "acme"))
from acmeutil import NO_NONCE_REJECT, PEBBLE, Pebble  # noqa: E402
from ingressutil import publish_service, start_ingress_edge, start_pods, wait_for  # noqa: E402,F401
from k8sutil import apiserver, ingress, path, rule, tls  # noqa: E402,F401

pytestmark = pytest.mark.skipif(not os.path.exists(PEBBLE), reason="pebble is not installed")


def issuer_of(port, name):
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name],
                       input="", capture_output=True, text=True, timeout=20)
    return next((ln for ln in r.stdout.splitlines() if ln.startswith("issuer=")), "")


def test_tls_host_without_secret_gets_acme_certificate(procs, tmp_path, apiserver):
    api = apiserver
    pb = Pebble(procs, tmp_path / "pebble", env=NO_NONCE_REJECT)
    pods = start_pods(procs, "web", ["127.0.0.2"])
    publish_service(api, "shop", "web", pods)
    api.create(ingress("shop", "site", tls=[tls(["acme.example.com"], None)],
                       rules=[rule("acme.example.com", [path("/", "web", "http")])]))
    cfg = {"listen": {"http": f"127.0.0.1:{pb.http_port}", "https": f"127.0.0.1:{pb.tls_port}"},
           "state_dir": str(tmp_path / "state"),
           "acme": {"email": "ops@example.com", "directory": pb.url, "ca_roots": [pb.ca_roots],
                    "challenges": ["http-01"]}}
    edge = start_ingress_edge(procs, tmp_path, api, cfg=cfg)
    assert edge.port == pb.http_port
    issued = wait_for(lambda: (lambda i: i if "ebble" in i else None)(issuer_of(pb.tls_port, "acme.example.com")),
                      90, what="certificate from pebble served")
    assert "ebble" in issued
    out = subprocess.run(["curl", "-sS", "-k", "--resolve", f"acme.example.com:{pb.tls_port}:127.0.0.1",
                          f"https://acme.example.com:{pb.tls_port}/echo", "-o", "/dev/null", "-w", "%{http_code}"],
                         capture_output=True, text=True, timeout=20)
    assert out.stdout == "200", out.stderr

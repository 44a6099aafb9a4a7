"""Pebble (Let's Encrypt's test CA) and pebble-challtestsrv on loopback for
the ACME end-to-end tests.

Debian's pebble ships no certificates and reads a relative config path, so
each instance gets its own directory with a fresh CA, a certificate for
pebble's HTTPS listener and a config whose httpPort is the port where
tapwork's HTTP-01 responder will listen. challtestsrv is pebble's DNS
server (every name resolves to 127.0.0.1) with its own challenge
listeners turned off; its management API takes dns-01 TXT records.
"""
import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.request

import pytest

from conftest import free_port, wait_port

PEBBLE = shutil.which("pebble")
# For tests of the daemon: pebble rejects 5 % of good nonces by default, and a
# request rejected twice in a row (p = 0.25 %, the client retries once) waits
# for the manager's 60 s backoff — longer than those tests wait. The retry
# itself is tested in test_acme.py with pebble's default.
NO_NONCE_REJECT = {"PEBBLE_WFE_NONCEREJECT": "0"}
CHALLTESTSRV = shutil.which("pebble-challtestsrv")

needs_pebble = pytest.mark.skipif(
    PEBBLE is None or CHALLTESTSRV is None,
    reason="pebble / pebble-challtestsrv not installed (apt-get install pebble)")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_tls(d):
    """A CA (ca.pem) and a localhost/127.0.0.1 certificate (cert.pem, key.pem) in d."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=tapwork test CA",
            cwd=d)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "key.pem", "-out", "srv.csr", "-subj", "/CN=localhost", cwd=d)
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "cert.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)


class Pebble:
    def __init__(self, procs, d, eab_keys=None, env=None, validity_s=None):
        os.makedirs(d, exist_ok=True)
        self.dir = str(d)
        make_tls(self.dir)
        self.port, self.mgmt, self.http_port, self.tls_port = (free_port() for _ in range(4))
        self.dns_port, self.cts_mgmt = free_port(), free_port()
        cfg = {"listenAddress": f"127.0.0.1:{self.port}",
               "managementListenAddress": f"127.0.0.1:{self.mgmt}",
               "certificate": "cert.pem", "privateKey": "key.pem",
               "httpPort": self.http_port, "tlsPort": self.tls_port,
               "ocspResponderURL": "",
               "externalAccountBindingRequired": bool(eab_keys)}
        if eab_keys:
            cfg["externalAccountMACKeys"] = eab_keys
        if validity_s:
            cfg["certificateValidityPeriod"] = validity_s
        with open(os.path.join(self.dir, "pebble.json"), "w") as f:
            json.dump({"pebble": cfg}, f)
        self.cts = procs.start([CHALLTESTSRV, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
                                "-http01", "", "-https01", "", "-tlsalpn01", "",
                                "-dns01", f"127.0.0.1:{self.dns_port}",
                                "-management", f"127.0.0.1:{self.cts_mgmt}"],
                               name="challtestsrv", cwd=self.dir)
        self._procs = procs
        self._env = {"PEBBLE_VA_NOSLEEP": "1"}
        self._env.update(env or {})
        self.start()
        wait_port(self.cts_mgmt)
        self.ca_roots = os.path.join(self.dir, "ca.pem")
        self.url = f"https://127.0.0.1:{self.port}/dir"
        self._ctx = ssl.create_default_context(cafile=self.ca_roots)

    def start(self):
        self.proc = self._procs.start([PEBBLE, "-config", "pebble.json",
                                       "-dnsserver", f"127.0.0.1:{self.dns_port}"],
                                      name="pebble", env=self._env, cwd=self.dir)
        wait_port(self.port)
        wait_port(self.mgmt)

    def restart(self):
        """A new pebble on the same ports: new CA, no accounts, no orders."""
        self._procs.stop(self.proc)
        self.start()

    def get(self, url):
        with urllib.request.urlopen(url, context=self._ctx, timeout=10) as r:
            return r.read()

    def directory(self):
        return json.loads(self.get(self.url))

    def root(self, i=0):
        """Write pebble's issuing root i (PEM) to a file; returns its path."""
        path = os.path.join(self.dir, f"root{i}.pem")
        deadline = time.monotonic() + 10
        while True:
            try:
                pem = self.get(f"https://127.0.0.1:{self.mgmt}/roots/{i}")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with open(path, "wb") as f:
            f.write(pem)
        return path

    def hook(self, path):
        """A dns-01 hook script that publishes TXT records in challtestsrv."""
        with open(path, "w") as f:
            f.write(f"""#!/bin/sh
# tapwork dns-01 hook for pebble-challtestsrv: HOOK set|clear RECORD VALUE
echo "$@" >> {path}.calls
case "$1" in
set) exec curl -sf -d "{{\\"host\\":\\"$2.\\",\\"value\\":\\"$3\\"}}" http://127.0.0.1:{self.cts_mgmt}/set-txt ;;
clear) exec curl -sf -d "{{\\"host\\":\\"$2.\\"}}" http://127.0.0.1:{self.cts_mgmt}/clear-txt ;;
esac
exit 2
""")
        os.chmod(path, 0o755)
        return path

    def args(self, state_dir):
        return ["--directory", self.url, "--ca-roots", self.ca_roots, "--state-dir", str(state_dir)]


def cert_text(path):
    return subprocess.run(["openssl", "x509", "-in", path, "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout


def verify(root, chain):
    """openssl verify of the leaf of chain against root, intermediates from chain."""
    return subprocess.run(["openssl", "verify", "-CAfile", root, "-untrusted", chain, chain],
                          capture_output=True, text=True)

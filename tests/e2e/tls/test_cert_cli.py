"""`tapwork cert list|trust` and `tapwork validate` on TLS configs (tests/e2e/tls).

These run today: they need no TLS serving, only the TLS layer and config."""
import os
import re
import stat
import subprocess
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from tlsutil import OPENSSL, make_cert  # noqa: E402
from conftest import run  # noqa: E402

ROUTE = [{"path": "/", "handler": "welcome"}]


def write(tmp_path, cfg, name="t.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(p)


def base_cfg(tmp_path, sites, https=True):
    listen = {"http": "127.0.0.1:18080"}
    if https:
        listen["https"] = "127.0.0.1:18443"
    return {"listen": listen, "state_dir": str(tmp_path / "state"), "sites": sites}


def blocks(out):
    """`cert list` output -> list of dicts (site + fields)."""
    res = []
    for chunk in out.strip().split("\n\n"):
        lines = chunk.splitlines()
        d = {"site": lines[0]}
        for ln in lines[1:]:
            k, _, v = ln.strip().partition(":")
            d[k] = v.strip()
        res.append(d)
    return res


def test_help():
    r = run(["cert", "--help"])
    assert r.returncode == 0
    assert r.stdout.startswith("usage: tapwork cert")
    assert "list" in r.stdout and "trust" in r.stdout


def test_bad_usage(tmp_path):
    assert run(["cert"]).returncode == 2
    assert run(["cert", "frobnicate"]).returncode == 2
    assert run(["cert", "list", "--bogus"]).returncode == 2


def test_list_every_source(tmp_path):
    crt, key = make_cert(tmp_path, "secure.example.com", ["secure.example.com"])
    rcrt, rkey = make_cert(tmp_path, "rsa.example.com", ["secure.example.com"], key="rsa")
    cfg = base_cfg(tmp_path, [
        {"hosts": ["app.test", "*.app.test", "127.0.0.1"], "routes": ROUTE},
        {"hosts": ["secure.example.com"], "tls": [{"cert": crt, "key": key}, {"cert": rcrt, "key": rkey}],
         "routes": ROUTE},
        {"hosts": ["www.example.org"], "routes": ROUTE},
        {"hosts": ["plain.test"], "tls": "off", "routes": ROUTE},
    ])
    path = write(tmp_path, cfg)
    r = run(["cert", "list", "-c", path])
    assert r.returncode == 0, r.stderr
    got = blocks(r.stdout)
    by = {}
    for b in got:
        by.setdefault(b["site"], []).append(b)
    assert sorted(by) == ["app.test", "secure.example.com", "www.example.org"]  # not plain.test

    app = by["app.test"][0]
    assert app["source"] == "internal"
    assert app["names"] == "app.test, *.app.test, 127.0.0.1"
    assert "tapwork local CA" in app["issuer"]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \((6|7) days left\)$", app["expires"]), app
    assert app["key"] == "ECDSA P-256"
    state = tmp_path / "state"
    assert app["path"] == str(state / "certs" / "app.test.crt")

    files = sorted(by["secure.example.com"], key=lambda b: b["key"])
    assert [b["source"] for b in files] == ["file", "file"]
    assert files[0]["key"] == "ECDSA P-256" and files[0]["path"] == crt
    assert files[1]["key"] == "RSA 2048" and files[1]["path"] == rcrt
    assert files[0]["issuer"] == "CN=secure.example.com"

    pub = by["www.example.org"][0]
    assert pub["source"] == "acme-temporary"
    assert "tapwork local CA" in pub["issuer"]
    assert "ACME" in r.stderr and "www.example.org" in r.stderr  # the warning line

    # permissions of what was created
    assert stat.S_IMODE(os.stat(state / "ca").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(state / "certs").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(state / "ca" / "root.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(state / "certs" / "app.test.key").st_mode) == 0o600

    # the leaf verifies against the root, for its names
    v = subprocess.run([OPENSSL, "verify", "-CAfile", str(state / "ca" / "root.crt"),
                        "-verify_hostname", "x.app.test", app["path"]],
                       capture_output=True, text=True, timeout=30)
    assert v.returncode == 0, v.stdout + v.stderr

    # a second run reuses the CA and the leaves
    before = (state / "ca" / "root.crt").read_bytes(), (state / "certs" / "app.test.crt").read_bytes()
    r2 = run(["cert", "list", "-c", path])
    assert r2.returncode == 0
    after = (state / "ca" / "root.crt").read_bytes(), (state / "certs" / "app.test.crt").read_bytes()
    assert before == after
    assert "issued" not in r2.stderr

    # names changed -> re-issued with the new names
    cfg["sites"][0]["hosts"] = ["app.test", "more.test"]
    write(tmp_path, cfg)
    r3 = run(["cert", "list", "-c", path])
    assert r3.returncode == 0, r3.stderr
    app3 = blocks(r3.stdout)[0]
    assert app3["names"] == "app.test, more.test"
    assert (state / "ca" / "root.crt").read_bytes() == before[0]


def test_list_without_https(tmp_path):
    path = write(tmp_path, base_cfg(tmp_path, [{"hosts": ["app.test"], "routes": ROUTE}], https=False))
    r = run(["cert", "list", "-c", path])
    assert r.returncode == 0, r.stderr
    assert "no site has TLS" in r.stdout
    assert not (tmp_path / "state").exists()


def test_list_broken_file_names_it(tmp_path):
    crt, key = make_cert(tmp_path, "secure.example.com", ["secure.example.com"])
    with open(crt, "w") as f:
        f.write("not a certificate\n")
    cfg = base_cfg(tmp_path, [{"hosts": ["secure.example.com"], "tls": {"cert": crt, "key": key},
                               "routes": ROUTE}])
    path = write(tmp_path, cfg)
    for cmd in (["cert", "list", "-c", path], ["validate", "-c", path]):
        r = run(cmd)
        assert r.returncode != 0
        assert re.search(re.escape(path) + r":\d+:\d+: sites\[0\]\.tls\.cert: " + re.escape(crt)
                         + r": no PEM certificate found", r.stderr), r.stderr
    os.remove(key)
    r = run(["validate", "-c", path])
    assert "sites[0].tls" in r.stderr and r.returncode != 0


def test_trust(tmp_path):
    path = write(tmp_path, base_cfg(tmp_path, [{"hosts": ["app.test"], "routes": ROUTE}]))
    r = run(["cert", "trust", "-c", path])
    assert r.returncode == 0, r.stderr
    root = str(tmp_path / "state" / "ca" / "root.crt")
    assert r.stdout.splitlines()[0] == root
    assert os.path.exists(root)
    assert "/usr/local/share/ca-certificates/tapwork.crt" in r.stdout
    assert "update-ca-certificates" in r.stdout
    assert f"--cacert {root}" in r.stdout
    x = subprocess.run([OPENSSL, "x509", "-in", root, "-noout", "-subject", "-ext", "basicConstraints"],
                       capture_output=True, text=True, timeout=30)
    assert x.returncode == 0 and "tapwork local CA" in x.stdout and "CA:TRUE" in x.stdout
    # the same root afterwards
    first = open(root, "rb").read()
    assert run(["cert", "trust", "-c", path]).returncode == 0
    assert open(root, "rb").read() == first


def test_validate_accepts_tls_config(tmp_path):
    crt, key = make_cert(tmp_path, "secure.example.com", ["secure.example.com"])
    cfg = base_cfg(tmp_path, [{"hosts": ["secure.example.com"], "tls": {"cert": crt, "key": key},
                               "routes": ROUTE}])
    cfg["tls"] = {"profile": "modern", "hsts": {"max_age": "1y", "preload": True}}
    r = run(["validate", "-c", write(tmp_path, cfg)])
    assert r.returncode == 0, r.stderr

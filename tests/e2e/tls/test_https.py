"""HTTPS at the edge (issue 3), end to end: written from the issue ahead of
the integration of TLS into `tapwork run`. The whole module is skipped while
the HTTPS listener does not complete a TLS handshake ("TLS serving not
integrated yet"); once it does, every test here must pass.

Behaviour these tests pin down (beyond the issue's words):
- HTTP -> HTTPS redirect: 308, `Location: https://HOST:HTTPS_PORT/path?query`
  (the port is left out only when it is 443); sites with `tls: off` are served
  on HTTP as before.
- HSTS: `Strict-Transport-Security: max-age=31536000` (the defaults) on HTTPS
  answers of sites with a public name; never on internal names by default,
  never on plain HTTP.
- A certificate file replaced on disk is picked up by SIGHUP (`config
  reloaded`) and by the watcher without a signal; a broken replacement is
  refused with a log line naming the file, the old certificate keeps serving.
"""
import json
import os
import socket
import ssl
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from tlsutil import (TLSEdge, make_cert, s_client, tls_serving_supported,  # noqa: E402
                     wait_for)
from edgeutil import start_upstream  # noqa: E402

pytestmark = pytest.mark.skipif(not tls_serving_supported(), reason="TLS serving not integrated yet")


def sites_cfg(up, extra_sites=(), **top):
    cfg = {
        "sites": [
            {"hosts": ["app.test", "*.app.test"], "routes": [{"path": "/", "backend": "web"}]},
            {"hosts": ["api.test"], "routes": [{"path": "/", "backend": "web"}]},
            *extra_sites,
            {"hosts": ["*"], "routes": [{"path": "/", "backend": "web"}]},
        ],
        "backends": {"web": {"servers": [up.addr]}},
    }
    cfg.update(top)
    return cfg


def header(echo, name):
    return [v for k, v in echo["headers"] if k.lower() == name.lower()]


def test_curl_reaches_upstream_with_x_forwarded_proto(procs, tmp_path):
    up = start_upstream(procs, "a")
    edge = TLSEdge(procs, tmp_path, sites_cfg(up))
    status, headers, body = edge.curl("app.test", "/echo?x=1", extra=["--http1.1"])
    assert status == 200, body
    echo = json.loads(body)
    assert echo["path"] == "/echo"
    assert header(echo, "x-forwarded-proto") == ["https"]
    assert headers["x-upstream"] == ["a"]
    # curl verified the certificate against the local root; a wildcard name too
    status, _, _ = edge.curl("x.app.test", "/echo")
    assert status == 200


def test_sni_picks_the_site_certificate(procs, tmp_path):
    up = start_upstream(procs, "a")
    edge = TLSEdge(procs, tmp_path, sites_cfg(up))
    app = edge.peer_cert("app.test")
    api = edge.peer_cert("api.test")
    assert "app.test" in app["sans"] and "*.app.test" in app["sans"]
    assert "api.test" not in app["sans"]
    assert api["sans"] == ["api.test"]
    assert "CN = api.test" in api["text"] or "CN=api.test" in api["text"]
    sub = edge.peer_cert("deep.app.test")
    assert "*.app.test" in sub["sans"]


def test_no_sni_and_unknown_names_get_the_default(procs, tmp_path):
    up = start_upstream(procs, "a")
    edge = TLSEdge(procs, tmp_path, sites_cfg(up))
    none = edge.peer_cert(None)
    assert "localhost" in none["sans"]  # the "*" site's local-CA certificate
    unknown = edge.peer_cert("nobody.example.net")
    assert unknown["serial"] == none["serial"]


def test_default_host_option(procs, tmp_path):
    up = start_upstream(procs, "a")
    edge = TLSEdge(procs, tmp_path, sites_cfg(up, tls={"default_host": "api.test"}))
    assert edge.peer_cert(None)["sans"] == ["api.test"]
    assert edge.peer_cert("nobody.example.net")["sans"] == ["api.test"]


def test_http_listener_redirects_with_308(procs, tmp_path):
    up = start_upstream(procs, "a")
    cfg = sites_cfg(up, extra_sites=[{"hosts": ["plain.test"], "tls": "off",
                                      "routes": [{"path": "/", "backend": "web"}]}])
    edge = TLSEdge(procs, tmp_path, cfg)
    r = edge.http("/some/path?q=1&r=2", "app.test")
    assert r.status_code == 308
    assert r.headers["Location"] == f"https://app.test:{edge.https_port}/some/path?q=1&r=2"
    before = up.count()  # a redirect never reaches the upstream
    assert edge.http("/x", "app.test").status_code == 308
    assert up.count() == before
    # a site with tls: off is proxied on HTTP as before, no HSTS on HTTP
    r = edge.http("/echo", "plain.test")
    assert r.status_code == 200
    assert "Strict-Transport-Security" not in r.headers
    # redirect_http: false turns the redirect off
    edge2 = TLSEdge(procs, _subdir(tmp_path, "b"), sites_cfg(up, tls={"redirect_http": False}), name="t2")
    assert edge2.http("/echo", "app.test").status_code == 200


def test_hsts_public_names_only(procs, tmp_path):
    up = start_upstream(procs, "a")
    crt, key = make_cert(tmp_path, "secure.example.com", ["secure.example.com"])
    cfg = sites_cfg(up, extra_sites=[{"hosts": ["secure.example.com"], "tls": {"cert": crt, "key": key},
                                      "routes": [{"path": "/", "backend": "web"}]}])
    edge = TLSEdge(procs, tmp_path, cfg)
    status, headers, _ = edge.curl("secure.example.com", "/echo", cafile=crt)
    assert status == 200
    assert headers.get("strict-transport-security") == ["max-age=31536000"]
    status, headers, _ = edge.curl("app.test", "/echo")
    assert status == 200
    assert "strict-transport-security" not in headers


def test_certificate_swap_keeps_connections(procs, tmp_path):
    up = start_upstream(procs, "a")
    crt, key = make_cert(tmp_path, "secure.example.com", ["secure.example.com"], serial=1001)
    cfg = sites_cfg(up, extra_sites=[{"hosts": ["secure.example.com"], "tls": {"cert": crt, "key": key},
                                      "routes": [{"path": "/", "backend": "web"}]}])
    edge = TLSEdge(procs, tmp_path, cfg)
    assert edge.peer_cert("secure.example.com")["serial"] == 1001
    # a keep-alive connection in flight
    c = edge.tls_conn("secure.example.com", cafile=crt)
    req = b"GET /echo HTTP/1.1\r\nHost: secure.example.com\r\n\r\n"
    c.send(req)
    assert c.read_response().status == 200
    # replace the files (atomically, as a deploy tool would) and SIGHUP
    ncrt, nkey = make_cert(tmp_path, "secure.example.com", ["secure.example.com"], serial=1002)
    os.replace(nkey, key)
    os.replace(ncrt, crt)
    edge.sighup_and_wait(ok=True)
    assert edge.peer_cert("secure.example.com")["serial"] == 1002
    # the old connection still works
    c.send(req)
    assert c.read_response().status == 200
    assert c.peer_serial() == 1001
    c.close()
    # and the watcher alone (no signal) picks up the next replacement
    ncrt, nkey = make_cert(tmp_path, "secure.example.com", ["secure.example.com"], serial=1003)
    os.replace(nkey, key)
    os.replace(ncrt, crt)
    wait_for(lambda: edge.peer_cert("secure.example.com")["serial"] == 1003, 10, interval=0.3,
             what="watcher installs the new certificate")


def test_broken_replacement_keeps_the_old_certificate(procs, tmp_path):
    up = start_upstream(procs, "a")
    crt, key = make_cert(tmp_path, "secure.example.com", ["secure.example.com"], serial=2001)
    cfg = sites_cfg(up, extra_sites=[{"hosts": ["secure.example.com"], "tls": {"cert": crt, "key": key},
                                      "routes": [{"path": "/", "backend": "web"}]}])
    edge = TLSEdge(procs, tmp_path, cfg)
    good = open(crt).read()
    with open(crt, "w") as f:
        f.write(good[:len(good) // 2])  # truncated PEM
    line = edge.sighup_and_wait(ok=False)
    assert crt in line, line
    assert edge.peer_cert("secure.example.com")["serial"] == 2001
    status, _, _ = edge.curl("secure.example.com", "/echo", cafile=_ca_copy(tmp_path, good))
    assert status == 200
    assert edge.proc.poll() is None


def _ca_copy(tmp_path, pem):
    p = tmp_path / "trusted.pem"
    p.write_text(pem)
    return str(p)


def test_old_protocols_refused(procs, tmp_path):
    up = start_upstream(procs, "a")
    edge = TLSEdge(procs, tmp_path, sites_cfg(up))
    weak = ["-cipher", "DEFAULT:@SECLEVEL=0"]
    for flag in ("-tls1", "-tls1_1"):
        r = s_client(edge.https_port, "app.test", [flag, *weak])
        assert r.returncode != 0, r.stdout[-1500:]
        assert "BEGIN CERTIFICATE" not in r.stdout
    for flag, want in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        r = s_client(edge.https_port, "app.test", [flag])
        assert r.returncode == 0, r.stdout[-1500:] + r.stderr[-1500:]
        assert f"Protocol  : {want}" in r.stdout or f"New, {want}" in r.stdout
    # no CBC / static-RSA suites for TLS 1.2
    r = s_client(edge.https_port, "app.test", ["-tls1_2", "-cipher", "AES128-SHA:ECDHE-ECDSA-AES128-SHA"])
    assert r.returncode != 0
    # the modern profile refuses 1.2
    edge2 = TLSEdge(procs, _subdir(tmp_path, "m"), sites_cfg(up, tls={"profile": "modern"}), name="m")
    r = s_client(edge2.https_port, "app.test", ["-tls1_2"])
    assert r.returncode != 0


def _subdir(tmp_path, name):
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    return d


def test_alpn_http11(procs, tmp_path):
    up = start_upstream(procs, "a")
    edge = TLSEdge(procs, tmp_path, sites_cfg(up))
    r = s_client(edge.https_port, "app.test", ["-alpn", "http/1.1"])
    assert "ALPN protocol: http/1.1" in r.stdout, r.stdout[-2000:]
    c = edge.tls_conn("app.test", alpn=["http/1.1"])
    assert c.sock.selected_alpn_protocol() == "http/1.1"
    c.send(b"GET /echo HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert c.read_response().status == 200
    c.close()
    status, _, _ = edge.curl("app.test", "/echo", extra=["--http1.1"])
    assert status == 200


def test_tickets_resume(procs, tmp_path):
    up = start_upstream(procs, "a")
    edge = TLSEdge(procs, tmp_path, sites_cfg(up))
    for ver in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        assert resumes(edge.https_port, "app.test", edge.root, ver), ver


def resumes(port, name, cafile, version):
    """Full handshake + one request, then a second connection offering the
    session: True when the server resumed it."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ctx.maximum_version = version
    req = f"GET /echo HTTP/1.1\r\nHost: {name}\r\n\r\n".encode()
    sess = None
    for i in range(2):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=name, session=sess) as s:
                s.sendall(req)
                data = s.recv(65536)  # the response (and TLS 1.3 tickets before it)
                assert data.startswith(b"HTTP/1.1 200"), data[:200]
                if i == 1:
                    return s.session_reused
                sess = s.session
    return False

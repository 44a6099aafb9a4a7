"""PROXY protocol in front of tapwork's listeners: raw-socket cases (v1, v2,
split, trickle, IPv6, LOCAL, untrusted, oversize, garbage, timeout), the
client address in X-Forwarded-For/Forwarded, the access log, trusted_proxies
and balance: hash; `tapwork validate`; HAProxy send-proxy/-v2 in front of
HTTP, HTTPS and h2; curl --haproxy-protocol."""
import json
import os
import re
import subprocess
import time

from pputil import (OUTSIDER, PEER, PEER2, closed_silently, conn_from, read_response, start_haproxy, tlv, v1, v2,
                    wait_metric)
from edgeutil import backend, hdr, start_edge, start_upstream, wait_for
from conftest import BIN, free_port

M = "tapwork_proxy_protocol_total"
REQ = b"GET /echo HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"


def make(procs, tmp_path, pp=None, extra=None, servers=1):
    ups = [start_upstream(procs, f"u{i}") for i in range(servers)]
    cfg = {"sites": [{"hosts": ["*"], "routes": [{"path": "/", "backend": "web"}]}],
           "backends": {"web": backend(ups)},
           "proxy_protocol": pp or {"from": [f"{PEER}/32", PEER2], "timeout": "1s"},
           "log": {"access": str(tmp_path / "access.log"), "format": "json", "level": "info"}}
    cfg.update(extra or {})
    e = start_edge(procs, tmp_path, cfg)
    e.ups = ups
    e.access = tmp_path / "access.log"
    return e


def echo_via(edge, header, source=PEER, req=REQ, pieces=None, delay=0.0):
    s = conn_from(edge.port, source)
    try:
        data = header + req
        if pieces:
            for p in pieces(data):
                s.sendall(p)
                time.sleep(delay)
        else:
            s.sendall(data)
        st, h, body = read_response(s)
    finally:
        s.close()
    assert st == 200, (st, body[:300])
    return json.loads(body)


def xff(echo):
    return hdr(echo, "X-Forwarded-For")


def access_client(edge, rid_or_n):
    def find():
        if not edge.access.exists():
            return None
        lines = [json.loads(ln) for ln in edge.access.read_text().splitlines() if ln.strip()]
        return [ln["client"] for ln in lines] if len(lines) >= rid_or_n else None
    return wait_for(find, 5, what="access log lines")


def test_header_sets_client_address(procs, tmp_path):
    e = make(procs, tmp_path)
    m0 = e.metrics()
    # v1, IPv4
    j = echo_via(e, v1("203.0.113.9", "10.0.0.1", 40000, 80))
    assert xff(j) == ["203.0.113.9"]
    assert hdr(j, "Forwarded")[0].startswith("for=203.0.113.9;")
    # v2, IPv6 client, with TLVs (ALPN, AWS VPC endpoint id, a CRC32C we do not check)
    t = tlv(0x01, b"http/1.1") + tlv(0xEA, b"\x01vpce-0123456789abcdef0") + tlv(0x03, b"\0\0\0\0")
    j = echo_via(e, v2("2001:db8::7", "2001:db8::1", 5555, 443, t), source=PEER2)
    assert xff(j) == ["2001:db8::7"]
    assert hdr(j, "Forwarded")[0].startswith('for="[2001:db8::7]";')
    # split in two with a pause, and a one-byte trickle
    h = v2("198.51.100.20", "10.0.0.1", 1234, 80)
    j = echo_via(e, h, pieces=lambda d: [d[:7], d[7:]], delay=0.05)
    assert xff(j) == ["198.51.100.20"]
    hv1 = v1("198.51.100.21", "10.0.0.1", 1234, 80)
    j = echo_via(e, hv1, pieces=lambda d: [d[i:i + 1] for i in range(len(hv1))] + [d[len(hv1):]], delay=0.002)
    assert xff(j) == ["198.51.100.21"]
    # header and request in one segment: the request right after the header is served
    j = echo_via(e, v1("198.51.100.22", "10.0.0.1", 1, 80))
    assert xff(j) == ["198.51.100.22"]
    # LOCAL (a health check of the balancer) and v1 UNKNOWN keep the socket address
    j = echo_via(e, v2("0.0.0.0", "0.0.0.0", 0, 0, cmd=0))
    assert xff(j) == [PEER]
    j = echo_via(e, b"PROXY UNKNOWN\r\n")
    assert xff(j) == [PEER]
    # the access log names the header's client
    clients = access_client(e, 7)
    assert clients[:7] == ["203.0.113.9", "2001:db8::7", "198.51.100.20", "198.51.100.21", "198.51.100.22",
                           PEER, PEER]
    m = e.metrics()
    assert m.get(M, result="ok") - m0.get(M, result="ok") == 5
    assert m.get(M, result="local") - m0.get(M, result="local") == 2
    assert "vpce=vpce-0123456789abcdef0" in e.log()


def test_bad_headers_close_without_answer(procs, tmp_path):
    e = make(procs, tmp_path)
    m0 = e.metrics()
    cases = [
        REQ,                                                       # no header from a `from` peer
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 40,  # a TLS ClientHello instead
        b"PROXY TCP4 203.0.113.9 10.0.0.1 40000\r\n" + REQ,        # missing port
        b"PROXY TCP4 203.0.113.9 10.0.0.1 40000 80\n" + REQ,       # bare LF
        b"PROXY UNKNOWN " + b"x" * 120 + b"\r\n",                  # longer than 107 bytes
        v2("203.0.113.9", "10.0.0.1", 1, 2, length=0xFFFF) + REQ,  # oversize v2 length
        v2("203.0.113.9", "10.0.0.1", 1, 2, fam=0x12) + REQ,       # UDP
        os.urandom(64).replace(b"P", b"Q").replace(b"\r", b"\n"),  # garbage
    ]
    for i, data in enumerate(cases):
        s = conn_from(e.port, PEER)
        s.sendall(data)
        assert closed_silently(s, 3), f"case {i} not closed"
        s.close()
    assert wait_metric(e, M, m0.get(M, result="malformed") + len(cases), result="malformed") == \
        m0.get(M, result="malformed") + len(cases)
    # timeout: half a header, then nothing
    t0 = time.monotonic()
    s = conn_from(e.port, PEER)
    s.sendall(v1("203.0.113.9", "10.0.0.1", 40000, 80)[:20])
    assert closed_silently(s, 5)
    took = time.monotonic() - t0
    assert 0.8 <= took < 3.5, took
    s.close()
    assert wait_metric(e, M, m0.get(M, result="timeout") + 1, result="timeout") == m0.get(M, result="timeout") + 1
    # a peer outside `from` is served plain: a PROXY line is then HTTP payload -> 400
    s = conn_from(e.port, OUTSIDER)
    s.sendall(v1("203.0.113.9", "10.0.0.1", 40000, 80) + REQ)
    st, _, _ = read_response(s)
    assert st == 400
    s.close()
    j = echo_via(e, b"", source=OUTSIDER)
    assert xff(j) == [OUTSIDER]
    # and a PROXY header after a request on a kept-alive connection is payload too
    s = conn_from(e.port, PEER)
    s.sendall(v1("203.0.113.9", "10.0.0.1", 1, 80) + b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
    st, _, body = read_response(s)
    assert st == 200 and xff(json.loads(body)) == ["203.0.113.9"]
    s.sendall(v1("192.0.2.1", "10.0.0.1", 1, 80) + REQ)
    st, _, _ = read_response(s)
    assert st == 400
    s.close()
    assert e.metrics().get(M, result="untrusted") > m0.get(M, result="untrusted")
    assert e.alive()


def test_others_reject_and_https_only(procs, tmp_path):
    e = make(procs, tmp_path, pp={"from": [PEER], "others": "reject"})
    s = conn_from(e.port, OUTSIDER)
    s.sendall(REQ)
    assert closed_silently(s, 3)
    s.close()
    j = echo_via(e, v1("203.0.113.50", "10.0.0.1", 1, 80))
    assert xff(j) == ["203.0.113.50"]
    # listeners: [https] leaves the HTTP listener alone
    e.reload({"sites": e.cfg["sites"], "backends": e.cfg["backends"], "log": e.cfg["log"],
              "proxy_protocol": {"from": [PEER], "listeners": ["https"]}})
    j = echo_via(e, b"", source=PEER)
    assert xff(j) == [PEER]


def test_trusted_proxies_and_hash_see_header_client(procs, tmp_path):
    e = make(procs, tmp_path, servers=3,
             extra={"trusted_proxies": ["198.51.100.0/24"]})
    e.cfg["backends"]["web"]["balance"] = "hash"
    e.cfg["backends"]["web"]["hash_key"] = "client_ip"
    e.reload({k: v for k, v in e.cfg.items() if k not in ("listen", "admin", "workers", "timeouts")})
    req = b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 192.0.2.99\r\nConnection: close\r\n\r\n"
    # the header's client is a trusted proxy: its X-Forwarded-For is kept
    j = echo_via(e, v1("198.51.100.7", "10.0.0.1", 1, 80), req=req)
    assert xff(j) == ["192.0.2.99, 198.51.100.7"]
    # the socket peer (the balancer) is not what trust is decided on
    j = echo_via(e, v1("203.0.113.7", "10.0.0.1", 1, 80), req=req)
    assert xff(j) == ["203.0.113.7"]
    # hash on client_ip: one header client always lands on one server, many spread
    seen = {}
    for i in range(40):
        ip = f"203.0.113.{i % 20}"
        j = echo_via(e, v1(ip, "10.0.0.1", 1000 + i, 80))
        seen.setdefault(ip, set()).add(j["upstream"])
    assert all(len(v) == 1 for v in seen.values()), seen
    assert len(set().union(*seen.values())) == 3, seen


def test_validate(tmp_path):
    base = "listen: {http: 127.0.0.1:8080}\nsites: [{hosts: ['*'], routes: [{path: /, handler: welcome}]}]\n"
    p = tmp_path / "t.yaml"
    p.write_text(base + "proxy_protocol:\n  from: []\n")
    r = subprocess.run([BIN, "validate", "-c", str(p)], capture_output=True, text=True)
    assert r.returncode == 1 and re.search(r"t\.yaml:4:9: proxy_protocol\.from: must have at least 1 item", r.stderr), \
        r.stderr
    p.write_text(base + "proxy_protocol: {timeout: 2s}\n")
    r = subprocess.run([BIN, "validate", "-c", str(p)], capture_output=True, text=True)
    assert r.returncode == 1 and "from" in r.stderr, r.stderr
    p.write_text(base + "proxy_protocol:\n  from: [10.0.0.0/8, 0.0.0.0/0]\n  others: sometimes\n")
    r = subprocess.run([BIN, "validate", "-c", str(p)], capture_output=True, text=True)
    assert r.returncode == 1 and "t.yaml:5:11: proxy_protocol.others" in r.stderr, r.stderr
    p.write_text(base + "proxy_protocol:\n  from: [10.0.0.0/8, 0.0.0.0/0]\n")
    r = subprocess.run([BIN, "validate", "-c", str(p)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert re.search(r"warning: .*t\.yaml:4:22: proxy_protocol\.from\[1\]: every peer may claim", r.stderr), r.stderr
    p.write_text(base + "backends: {a: {servers: [{address: '127.0.0.1:1', send_proxy: v3}]}}\n")
    r = subprocess.run([BIN, "validate", "-c", str(p)], capture_output=True, text=True)
    assert r.returncode == 1 and "send_proxy" in r.stderr, r.stderr


# ------------------------------------------------------------ real senders

HAPROXY = """global
    maxconn 200
defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend v1
    bind 127.0.0.1:{p1}
    default_backend v1
backend v1
    server t 127.0.0.1:{http} source {peer} send-proxy
frontend v2
    bind 127.0.0.1:{p2}
    default_backend v2
backend v2
    server t 127.0.0.1:{http} source {peer} send-proxy-v2 proxy-v2-options unique-id
frontend tls
    bind 127.0.0.1:{p3}
    default_backend tls
backend tls
    server t 127.0.0.1:{https} source {peer} send-proxy-v2
"""


def curl(*args):
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "-m", "20", *args], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_haproxy_and_curl_senders(procs, tmp_path):
    up = start_upstream(procs, "web")
    https = free_port()
    cfg = {"listen": {"https": f"127.0.0.1:{https}"},
           "sites": [{"hosts": ["app.localhost"], "tls": "internal",
                      "routes": [{"path": "/", "backend": "web"}]}],
           "backends": {"web": backend([up])},
           "state_dir": str(tmp_path / "state"),
           "tls": {"redirect_http": False},
           "proxy_protocol": {"from": [PEER]}}
    e = start_edge(procs, tmp_path, cfg)
    p1, p2, p3 = free_port(), free_port(), free_port()
    start_haproxy(procs, tmp_path, HAPROXY.format(p1=p1, p2=p2, p3=p3, http=e.port, https=https, peer=PEER),
                  [p1, p2, p3])
    # start_haproxy's port probes went through HAProxy: one header each
    assert wait_metric(e, M, 3, result="ok") == 3
    m0 = e.metrics()
    for port in (p1, p2):
        j = json.loads(curl("--interface", "127.0.0.77", "-H", "Host: app.localhost", f"http://127.0.0.1:{port}/echo"))
        assert xff(j) == ["127.0.0.77"], j
    root = wait_for(lambda: next((os.path.join(d, f) for d, _, fs in os.walk(tmp_path / "state")
                                  for f in fs if f.endswith(".crt") and "root" in f), None), 10, what="root cert")
    for ver, flag in (("1.1", "--http1.1"), ("2", "--http2")):
        out = curl(flag, "--interface", "127.0.0.78", "--cacert", root,
                   "--resolve", f"app.localhost:{p3}:127.0.0.1", "-w", "\n%{http_version}",
                   f"https://app.localhost:{p3}/echo")
        body, _, got = out.rpartition(b"\n")
        assert got.decode() == ver
        j = json.loads(body)
        assert xff(j) == ["127.0.0.78"], j
        assert hdr(j, "X-Forwarded-Proto") == ["https"]
    # curl's own PROXY v1 (its socket addresses), straight to tapwork
    j = json.loads(curl("--haproxy-protocol", "--interface", PEER, "-H", "Host: app.localhost",
                        f"http://127.0.0.1:{e.port}/echo"))
    assert xff(j) == [PEER]
    # without it, the same peer gets nothing
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "-m", "5", "--interface", PEER,
                        f"http://127.0.0.1:{e.port}/echo"], capture_output=True)
    assert r.returncode != 0
    m = e.metrics()
    assert m.get(M, result="ok") - m0.get(M, result="ok") == 5
    assert m.get(M, result="malformed") - m0.get(M, result="malformed") == 1

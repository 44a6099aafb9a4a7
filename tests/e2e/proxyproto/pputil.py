"""Helpers for the PROXY protocol end-to-end tests.

    v1("203.0.113.9", "127.0.0.1", 40000, 80)      -> b"PROXY TCP4 ...\\r\\n"
    v2(src, dst, sport, dport, tlvs=b"", cmd=1)    -> the binary header
    tlv(0xEA, b"\\x01vpce-...")                    -> one TLV
    conn_from(port, "127.0.0.5")                   -> a socket bound to that source
    start_haproxy(procs, tmp_path, text)           -> haproxy -db -f FILE, waits for its ports
"""
import ipaddress
import os
import socket
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "edge"))

from edgeutil import port_open, wait_for  # noqa: E402

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
PEER = "127.0.0.5"       # the "load balancer": in proxy_protocol.from
PEER2 = "127.0.0.6"      # also in from
OUTSIDER = "127.0.0.1"   # not in from


def v1(src, dst, sport, dport):
    fam = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def tlv(t, value):
    return struct.pack(">BH", t, len(value)) + value


def v2(src, dst, sport, dport, tlvs=b"", cmd=1, fam=None, length=None):
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if fam is None:
        fam = 0x11 if s.version == 4 else 0x21
    body = s.packed + d.packed + struct.pack(">HH", sport, dport) + tlvs
    if fam == 0x00:
        body = tlvs
    n = len(body) if length is None else length
    return SIG + bytes([0x20 | cmd, fam]) + struct.pack(">H", n) + body


def conn_from(port, source, timeout=10.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def closed_silently(s, timeout):
    """True when the peer closes without sending a byte within timeout."""
    s.settimeout(timeout)
    try:
        data = s.recv(65536)
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    if data:
        raise AssertionError(f"unexpected answer: {data[:200]!r}")
    return True


def read_response(s, timeout=10.0):
    """One HTTP/1.1 response with Content-Length (what tapwork sends here)."""
    s.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise EOFError(f"closed after {buf!r}")
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    n = int(hdrs.get("content-length", "0"))
    while len(rest) < n:
        d = s.recv(65536)
        if not d:
            break
        rest += d
    return status, hdrs, rest[:n]


def start_haproxy(procs, tmp_path, text, ports, name="haproxy"):
    path = tmp_path / f"{name}.cfg"
    path.write_text(text)
    p = procs.start(["haproxy", "-db", "-f", str(path)], name=name)
    wait_for(lambda: all(port_open(pt) for pt in ports) or p.poll() is not None, 10, what="haproxy listening")
    assert p.poll() is None, procs.log_of(p)
    return p


def wait_metric(edge, name, want, timeout=5, **labels):
    """Polls /metrics until metric `name` (labels) reaches want; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        v = edge.metrics().get(name, **labels)
        if v >= want or time.monotonic() > deadline:
            return v
        time.sleep(0.05)


NGINX = """daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format pp '$proxy_protocol_addr $proxy_protocol_port $remote_addr "$request"';
    access_log {dir}/nginx-access.log pp;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} proxy_protocol;
        location / {{ return 200 "pp=$proxy_protocol_addr xff=$http_x_forwarded_for\\n"; }}
    }}
}}
"""


def start_nginx_pp(procs, tmp_path, port, name="nginx"):
    """nginx listening with `proxy_protocol` on port; answers "pp=ADDR xff=..."."""
    d = tmp_path / name
    d.mkdir()
    (d / "nginx.conf").write_text(NGINX.format(dir=d, port=port))
    p = procs.start(["nginx", "-p", str(d), "-c", str(d / "nginx.conf")], name=name)
    wait_for(lambda: port_open(port) or p.poll() is not None, 10, what="nginx listening")
    assert p.poll() is None, procs.log_of(p)
    return d

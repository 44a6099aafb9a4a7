"""10,000 connections from a `from` peer that have not sent their PROXY
header yet cost tapwork at most 10 MiB (issue 14), and each still gets
served once its header comes."""
import os
import socket
import time

from pputil import PEER, read_response, v1
from edgeutil import backend, start_edge, start_upstream, wait_for

# the sanitizer build accepts slowly (a minute for 10,000): fewer there, same bound per connection
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
N = 10000


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_ten_thousand_waiting_connections(procs, tmp_path):
    up = start_upstream(procs, "web")
    e = start_edge(procs, tmp_path, {
        "sites": [{"hosts": ["*"], "routes": [{"path": "/", "backend": "web"}]}],
        "backends": {"web": backend([up])},
        "proxy_protocol": {"from": [f"{PEER}/32"], "timeout": "60s"}})
    socks = []
    try:
        # warm up (first connection's allocations), then measure
        s = socket.create_connection(("127.0.0.1", e.port), source_address=(PEER, 0))
        s.sendall(v1("203.0.113.7", "10.0.0.1", 1, 80) + b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert read_response(s)[0] == 200
        s.close()
        time.sleep(0.2)
        before = rss_kb(e.proc.pid)
        for _ in range(N):
            c = socket.socket()
            # the port is picked at connect (by the 4-tuple), not at bind: bind-time
            # picking scans every port in use from PEER, quadratic over 10,000
            c.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            c.bind((PEER, 0))
            c.connect(("127.0.0.1", e.port))
            socks.append(c)
        # every one accepted (an fd in tapwork), not just queued in the backlog
        wait_for(lambda: len(os.listdir(f"/proc/{e.proc.pid}/fd")) >= N, 20, what=f"{N} connections accepted")
        time.sleep(0.5)
        grown = rss_kb(e.proc.pid) - before
        assert grown <= 10 * 1024, f"{N} waiting connections grew RSS by {grown} KiB"
        # they are connections all the same: the last one's header and request are served
        last = socks.pop()
        last.sendall(v1("203.0.113.8", "10.0.0.1", 1, 80) + b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert read_response(last)[0] == 200
        last.close()
    finally:
        for c in socks:
            c.close()

"""send_proxy: tapwork opens each upstream connection with a PROXY header
(v1, v2) carrying the client's address, to an nginx that `listen ...
proxy_protocol` and reports $proxy_protocol_addr; such connections are never
shared between clients; health checks send LOCAL/UNKNOWN."""
import re
import subprocess

from pputil import PEER, conn_from, read_response, start_nginx_pp, v1, v2
from edgeutil import start_edge, wait_for
from conftest import free_port


def ask(edge, header=b"", source="127.0.0.1", n=1):
    s = conn_from(edge.port, source)
    out = []
    try:
        s.sendall(header)
        for i in range(n):
            s.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
            st, _, body = read_response(s)
            assert st == 200, (st, body)
            out.append(body.decode().strip())
    finally:
        s.close()
    return out


def test_send_proxy_to_nginx(procs, tmp_path):
    p1, p2 = free_port(), free_port()
    d1 = start_nginx_pp(procs, tmp_path, p1, "nginx1")
    start_nginx_pp(procs, tmp_path, p2, "nginx2")
    # nginx refuses what lacks the header: the test can tell
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "-m", "5", f"http://127.0.0.1:{p1}/"], capture_output=True)
    assert b"pp=" not in r.stdout
    cfg = {"sites": [{"hosts": ["*"], "routes": [{"path": "/", "backend": "v1"}, {"path": "/x", "backend": "v2"}]}],
           "backends": {"v1": {"servers": [{"address": f"127.0.0.1:{p1}", "send_proxy": "v1"}],
                               "health": {"path": "/", "interval": "200ms"}},
                        "v2": {"servers": [{"address": f"127.0.0.1:{p2}", "send_proxy": "v2"}]}},
           "proxy_protocol": {"from": [PEER]}}
    e = start_edge(procs, tmp_path, cfg)
    # a plain client: its socket address; keep-alive requests on one connection
    assert ask(e, n=3) == ["pp=127.0.0.1 xff=127.0.0.1"] * 3
    # a client announced by a PROXY header (v1 in, v2 out; v2 in, v2 out)
    assert ask(e, v1("203.0.113.9", "10.0.0.1", 1, 80), PEER, n=2) == ["pp=203.0.113.9 xff=203.0.113.9"] * 2
    assert ask(e, v2("2001:db8::9", "2001:db8::1", 1, 80), PEER) == ["pp=2001:db8::9 xff=2001:db8::9"]
    # clients in turn never get each other's upstream connection
    for i in range(10):
        ip = f"198.51.100.{i + 1}"
        assert ask(e, v1(ip, "10.0.0.1", 1, 80), PEER) == [f"pp={ip} xff={ip}"]
    # v1 on the other server, via curl (HTTP/1.1) and an h2c stream
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "-m", "10", f"http://127.0.0.1:{e.port}/"],
                       capture_output=True, text=True)
    assert r.stdout.strip() == "pp=127.0.0.1 xff=127.0.0.1", r
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "-m", "10", "--http2-prior-knowledge",
                        f"http://127.0.0.1:{e.port}/"], capture_output=True, text=True)
    assert r.stdout.strip() == "pp=127.0.0.1 xff=127.0.0.1", r
    # the health checks (PROXY UNKNOWN + GET /) pass: nginx logged them, the server stays up
    # (nginx logs an empty $proxy_protocol_addr as "-": the UNKNOWN header)
    def checks():
        text = (d1 / "nginx-access.log").read_text()
        return len(re.findall(r'^- - 127\.0\.0\.1 "GET / HTTP/1\.1"$', text, re.M)) >= 3 and text
    log = wait_for(checks, 5, what="health checks in nginx's log")
    assert re.search(r'^127\.0\.0\.1 \d+ 127\.0\.0\.1 "GET / HTTP/1\.1"$', log, re.M), log
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "-m", "10", f"http://127.0.0.1:{e.port}/"],
                       capture_output=True, text=True)
    assert r.stdout.startswith("pp=127.0.0.1"), r
    assert "is down" not in e.log()

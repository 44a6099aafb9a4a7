"""Rate limits end to end: exact admissions per client address (127.0.0.N),
Retry-After and the RateLimit headers, header/cookie keys, IPv6 /64 groups
(through PROXY headers), exempt ranges, HTTP/2 per request, state kept across
a reload, the metrics; a differential run against nginx limit_req; three
tapworks behind HAProxy (roundrobin, send-proxy-v2) with cluster: divide."""
import json
import subprocess
import time

from pputil import PEER, conn_from, read_response, start_haproxy, v1
from edgeutil import backend, start_edge, start_upstream, wait_for, port_open
from conftest import free_port

M = "tapwork_ratelimit_total"


def req(port, source="127.0.0.1", path="/api/x", headers=b"", header=b""):
    s = conn_from(port, source)
    try:
        s.sendall(header + b"GET " + path.encode() + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n" + headers +
                  b"\r\n")
        return read_response(s)
    finally:
        s.close()


def make(procs, tmp_path, policies, routes=None, extra=None):
    up = start_upstream(procs, "web")
    cfg = {"sites": [{"hosts": ["*"], "routes": routes or [
        {"path": "/api", "backend": "web", "rate_limit": "api"},
        {"path": "/", "backend": "web"}]}],
           "backends": {"web": backend([up])},
           "rate_limits": policies}
    cfg.update(extra or {})
    e = start_edge(procs, tmp_path, cfg)
    e.up = up
    return e


def test_exact_admissions_and_headers(procs, tmp_path):
    e = make(procs, tmp_path, {"api": {"rate": "60/m", "burst": 5}})
    # five clients, eight requests each at once: exactly the burst of each passes
    for n in range(10, 15):
        got = [req(e.port, f"127.0.0.{n}")[0] for _ in range(8)]
        assert got == [200] * 5 + [429] * 3, (n, got)
    st, h, body = req(e.port, "127.0.0.10")
    assert st == 429 and body == b"429 Too Many Requests\n"
    assert h["retry-after"] == "1"  # one per second: the next slot is at most 1 s away
    assert h["ratelimit-policy"] == '"api";q=60;w=60'
    assert h["ratelimit"] == '"api";r=0;t=1'
    # the unlimited route is not counted
    assert req(e.port, "127.0.0.10", path="/other")[0] == 200
    # after Retry-After one more passes, not two
    time.sleep(1.05)
    assert [req(e.port, "127.0.0.10")[0] for _ in range(2)] == [200, 429]
    m = e.metrics()
    assert m.get(M, policy="api", result="pass") == 26
    assert m.get(M, policy="api", result="limited") == 5 * 3 + 2


def test_rate_over_time(procs, tmp_path):
    e = make(procs, tmp_path, {"api": {"rate": "10/s", "burst": 3}})
    ok, t_first, t_last = 0, None, None
    t_end = time.monotonic() + 2.0
    for _ in range(400):  # bounded: ~100 requests/s for 2 s
        if time.monotonic() > t_end:
            break
        t = time.monotonic()
        if req(e.port, "127.0.0.20")[0] == 200:
            ok += 1
            t_first = t_first or t
            t_last = t
        time.sleep(0.01)
    want = 3 + 10 * (t_last - t_first)
    assert abs(ok - want) <= 1.5, (ok, want)


def test_keys_exempt_ipv6_h2(procs, tmp_path):
    pol = {"api": {"key": "header:X-Api-Key", "rate": "1/m", "burst": 2, "missing": "deny"},
           "ck": {"key": "cookie:sid", "rate": "1/m", "burst": 1},
           "ip": {"rate": "1/m", "burst": 1, "exempt": ["127.0.0.9"]}}
    routes = [{"path": "/api", "backend": "web", "rate_limit": "api"},
              {"path": "/ck", "backend": "web", "rate_limit": "ck"},
              {"path": "/ip", "backend": "web", "rate_limit": "ip"},
              {"path": "/w", "handler": "welcome", "rate_limit": "ck"}]
    e = make(procs, tmp_path, pol, routes, extra={"proxy_protocol": {"from": [PEER]}})
    k = lambda v: b"X-Api-Key: " + v + b"\r\n"  # noqa: E731
    # one key from many addresses counts as one; another key apart
    assert [req(e.port, f"127.0.0.{30 + i}", headers=k(b"a"))[0] for i in range(3)] == [200, 200, 429]
    assert req(e.port, "127.0.0.40", headers=k(b"b"))[0] == 200
    st, h, _ = req(e.port, "127.0.0.41")  # missing: deny
    assert st == 429 and "ratelimit-policy" in h
    # cookie key
    c = lambda v: b"Cookie: theme=dark; sid=" + v + b"\r\n"  # noqa: E731
    assert [req(e.port, path="/ck", headers=c(b"s1"))[0] for _ in range(2)] == [200, 429]
    assert req(e.port, path="/ck", headers=c(b"s2"))[0] == 200
    # a built-in handler's route is limited too (ck without the cookie: by client_ip)
    assert [req(e.port, "127.0.0.90", path="/w")[0] for _ in range(2)] == [200, 429]
    # exempt range: never limited
    assert [req(e.port, "127.0.0.9", path="/ip")[0] for _ in range(4)] == [200] * 4
    # IPv6 clients (from PROXY headers): one /64 counts as one
    h6 = lambda a: v1(a, "2001:db8::ffff", 1, 80)  # noqa: E731
    assert req(e.port, PEER, path="/ip", header=h6("2001:db8:0:1::1"))[0] == 200
    assert req(e.port, PEER, path="/ip", header=h6("2001:db8:0:1::2"))[0] == 429
    assert req(e.port, PEER, path="/ip", header=h6("2001:db8:0:2::1"))[0] == 200
    # and IPv4 header clients are their own keys, not the balancer's
    assert req(e.port, PEER, path="/ip", header=v1("203.0.113.1", "10.0.0.1", 1, 80))[0] == 200
    assert req(e.port, PEER, path="/ip", header=v1("203.0.113.2", "10.0.0.1", 1, 80))[0] == 200
    # HTTP/2: per request, not per connection (three streams on one connection)
    url = f"http://127.0.0.1:{e.port}/ip"
    r = subprocess.run(["nghttp", "-nv", url + "?1", url + "?2", url + "?3"], capture_output=True, text=True, timeout=30)
    st = [ln.split(":status: ")[1] for ln in r.stdout.splitlines() if ":status: " in ln]
    assert sorted(st) == ["200", "429", "429"], r.stdout[-2000:]
    assert "retry-after: 60" in r.stdout


def test_headers_on_admitted_answers(procs, tmp_path):
    """headers: always puts RateLimit-Policy/RateLimit on admitted proxied
    answers too (HTTP/1.1 and HTTP/2), counting down; the default keeps
    admitted answers unchanged."""
    e = make(procs, tmp_path, {"api": {"rate": "60/m", "burst": 3, "headers": "always"},
                               "quiet": {"rate": "60/m", "burst": 3}},
             routes=[{"path": "/api", "backend": "web", "rate_limit": "api"},
                     {"path": "/q", "backend": "web", "rate_limit": "quiet"}])
    got = [req(e.port, "127.0.0.70") for _ in range(4)]
    assert [g[0] for g in got] == [200, 200, 200, 429]
    assert [g[1]["ratelimit"] for g in got[:3]] == ['"api";r=2;t=1', '"api";r=1;t=2', '"api";r=0;t=3']
    assert all(g[1]["ratelimit-policy"] == '"api";q=60;w=60' for g in got)
    assert got[3][1]["ratelimit"] == '"api";r=0;t=1'
    st, h, _ = req(e.port, "127.0.0.70", path="/q")
    assert st == 200 and "ratelimit" not in h and "ratelimit-policy" not in h
    url = f"http://127.0.0.1:{e.port}/api"
    r = subprocess.run(["nghttp", "-nv", url], capture_output=True, text=True, timeout=30,
                       env={"PATH": "/usr/bin:/bin"})
    assert ":status: 200" in r.stdout and 'ratelimit: "api";r=2;t=1' in r.stdout, r.stdout[-2000:]
    assert 'ratelimit-policy: "api";q=60;w=60' in r.stdout


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pipelined(port, keys, batch=500):
    """One keep-alive connection, requests with X-Key = each of keys sent in
    batches; returns the status of every answer."""
    out = []
    s = conn_from(port, "127.0.0.1", timeout=30)
    buf = b""
    try:
        for i in range(0, len(keys), batch):
            chunk = keys[i:i + batch]
            s.sendall(b"".join(b"GET /api/x HTTP/1.1\r\nHost: a\r\nX-Key: %d\r\n\r\n" % k for k in chunk))
            want = len(out) + len(chunk)
            while len(out) < want:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    data = s.recv(1 << 20)
                    assert data, "connection closed mid-flood"
                    buf += data
                    continue
                head = buf[:end].decode("latin-1").split("\r\n")
                cl = next((int(h.split(":", 1)[1]) for h in head[1:] if h.lower().startswith("content-length:")), 0)
                while len(buf) < end + 4 + cl:
                    data = s.recv(1 << 20)
                    assert data, "connection closed mid-body"
                    buf += data
                out.append(int(head[0].split()[1]))
                buf = buf[end + 4 + cl:]
    finally:
        s.close()
    return out


def test_flood_of_keys_bounded(procs, tmp_path):
    """100,000 distinct keys through the daemon into a table of 4,096 (64
    KiB): exactly the table's capacity is admitted and counted, every other
    new key finds it full (on_full: deny), RSS does not grow with the keys."""
    e = make(procs, tmp_path, {"api": {"key": "header:X-Key", "rate": "1/h", "burst": 1, "memory": "64KiB",
                                       "on_full": "deny"}})
    assert req(e.port, headers=b"X-Key: warm\r\n")[0] == 200
    before = rss_kb(e.proc.pid)
    got = pipelined(e.port, list(range(100000)))
    after = rss_kb(e.proc.pid)
    ok = got.count(200)
    assert len(got) == 100000 and ok + got.count(429) == 100000
    assert ok == 4095, ok  # 4,096 slots, the warm-up key holds one; ~195 keys a bucket fill every slot
    m = e.metrics()
    assert m.get(M, policy="api", result="full") == 100000 - ok
    assert m.get(M, policy="api", result="pass") == ok + 1
    assert after - before < 8192, (before, after)


def test_reload_keeps_state(procs, tmp_path):
    e = make(procs, tmp_path, {"api": {"rate": "1/m", "burst": 2}})
    assert [req(e.port, "127.0.0.60")[0] for _ in range(3)] == [200, 200, 429]
    cfg = {k: v for k, v in e.cfg.items() if k not in ("listen", "admin", "workers", "timeouts")}
    cfg["sites"][0]["routes"].append({"path": "/new", "backend": "web"})
    e.reload(cfg)
    assert req(e.port, "127.0.0.60")[0] == 429  # unchanged policy: state kept
    cfg["rate_limits"]["api"]["burst"] = 3
    e.reload(cfg)
    assert [req(e.port, "127.0.0.60")[0] for _ in range(4)] == [200, 200, 200, 429]  # changed: new table


NGINX_LR = """daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/b; proxy_temp_path {d}/p; fastcgi_temp_path {d}/f; uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;
    limit_req_zone $binary_remote_addr zone=z:1m rate=10r/s;
    server {{
        listen 127.0.0.1:{port};
        root {d}/www;
        location / {{ limit_req zone=z burst={burst} nodelay; limit_req_status 429; }}
    }}
}}
"""


def test_differential_nginx_limit_req(procs, tmp_path):
    """Same rate, same burst, the same request script to both, side by side:
    nginx's `burst` is the excess over one, tapwork's the requests at once."""
    e = make(procs, tmp_path, {"api": {"rate": "10/s", "burst": 4}})
    port = free_port()
    d = tmp_path / "nginx"
    d.mkdir()
    (d / "www").mkdir()
    (d / "www" / "api").write_text("ok\n")  # (`return` would answer before limit_req runs)
    (d / "nginx.conf").write_text(NGINX_LR.format(d=d, port=port, burst=3))
    p = procs.start(["nginx", "-p", str(d), "-c", str(d / "nginx.conf")], name="nginx")
    wait_for(lambda: port_open(port) or p.poll() is not None, 10, what="nginx")
    time.sleep(0.3)  # the readiness probe was a request too: let nginx's bucket refill
    got = {"tw": 0, "ng": 0}
    script = [0.0] * 8 + [0.03] * 30 + [0.12] * 10  # a burst, faster than the rate, slower than it
    for gap in script:
        time.sleep(gap)
        got["tw"] += req(e.port, "127.0.0.70")[0] == 200
        got["ng"] += req(port, "127.0.0.70", path="/api")[0] == 200
    assert abs(got["tw"] - got["ng"]) <= 2, got
    assert 10 < got["tw"] < len(script), got


HAPROXY_RR = """global
    maxconn 500
defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend fe
    bind 127.0.0.1:{fe}
    default_backend tw
backend tw
    balance roundrobin
{servers}
"""


def test_three_replicas_divide(procs, tmp_path):
    rate, burst, secs = 30, 6, 2.0
    edges = []
    for i in range(3):
        sub = tmp_path / f"r{i}"
        sub.mkdir()
        edges.append(make(procs, sub, {"api": {"rate": f"{rate}/s", "burst": burst, "cluster": "divide",
                                                 "replicas": 3}},
                          extra={"proxy_protocol": {"from": [PEER]}}))
    fe = free_port()
    servers = "\n".join(f"    server t{i} 127.0.0.1:{x.port} source {PEER} send-proxy-v2"
                        for i, x in enumerate(edges))
    start_haproxy(procs, tmp_path, HAPROXY_RR.format(fe=fe, servers=servers), [fe])
    time.sleep(0.2)
    ok = sent = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < secs and sent < 1000:
        ok += req(fe, "127.0.0.80")[0] == 200
        sent += 1
        time.sleep(0.004)
    elapsed = time.monotonic() - t0
    allowed = burst + rate * elapsed
    assert sent > 2 * allowed, (sent, allowed)  # the client really asked for more
    assert ok <= 1.1 * allowed, (ok, allowed)
    assert ok >= 0.8 * allowed, (ok, allowed)
    # each replica took its share, keyed on the client from the header
    for x in edges:
        assert x.metrics().get(M, policy="api", result="pass") > 0


def test_validate_errors(tmp_path):
    from conftest import BIN
    base = ("listen: {http: 127.0.0.1:8080}\nbackends: {app: {servers: [127.0.0.1:1]}}\n"
            "sites: [{hosts: ['*'], routes: [{path: /, backend: app, rate_limit: %s}]}]\n")
    cases = [
        ("login", "rate_limits: {login: {rate: 10/x}}\n", r"t\.yaml:4:29: rate_limits\.login\.rate: \"10/x\" is not"),
        ("nope", "rate_limits: {login: {rate: 10/m}}\n", r"t\.yaml:3:69: sites\[0\]\.routes\[0\]\.rate_limit: unknown rate limit policy \"nope\""),
        ("login", "rate_limits: {login: {rate: 1/s, key: \"header:\"}}\n", r"rate_limits\.login\.key"),
        ("login", "rate_limits: {login: {rate: 1/s, on_full: maybe}}\n", r"rate_limits\.login\.on_full"),
        ("login", "rate_limits: {login: {rate: 1/s, replicas: 3}}\n", r"rate_limits\.login\.replicas: only with cluster: divide"),
        ("login", "rate_limits: {login: {rate: 1/s, memory: 1k}}\n", r"rate_limits\.login\.memory: at least 8 KiB"),
    ]
    import re as _re
    for pol, rl, want in cases:
        p = tmp_path / "t.yaml"
        p.write_text(base % pol + rl)
        r = subprocess.run([BIN, "validate", "-c", str(p)], capture_output=True, text=True)
        assert r.returncode == 1 and _re.search(want, r.stderr), (rl, r.stderr)
    p.write_text(base % "login" + "rate_limits: {login: {rate: 100/10s, burst: 7, cluster: divide, replicas: 3}}\n")
    r = subprocess.run([BIN, "validate", "-c", str(p)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

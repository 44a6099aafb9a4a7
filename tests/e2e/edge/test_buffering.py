"""Request buffering (issue 17): a request body is read before an upstream
connection is taken, so clients that trickle their bodies hold no upstream
connection; limits.min_body_rate closes the slowest; `request_buffering: off`
streams (and then the same attack does reach the upstream)."""
import asyncio
import concurrent.futures
import hashlib
import json
import os
import subprocess
import time

from edgeutil import PYTHON, SLACK, new_session, start_edge, wait_for
from conftest import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
CAPPED = os.path.join(HERE, "capped_upstream.py")


def start_capped(procs, cap):
    port = free_port()
    p = procs.start([PYTHON, CAPPED, "--port", str(port), "--cap", str(cap)], name="capped")
    wait_for(lambda: "ready" in procs.log_of(p) or p.poll() is not None, 10, what="capped upstream ready")
    assert p.poll() is None, procs.log_of(p)
    return f"127.0.0.1:{port}"


def config(upstream, buffering=None, **top):
    route = {"path": "/", "backend": "web"}
    if buffering is not None:
        route["request_buffering"] = buffering
    cfg = {"sites": [{"hosts": ["*"], "routes": [route]}], "backends": {"web": {"servers": [upstream]}}}
    cfg.update(top)
    return cfg


async def slow_attack(port, nslow, seconds, legit_fn):
    """nslow clients send a POST head announcing 4000 body bytes, then one
    byte a second; meanwhile legit_fn runs in a thread. Returns (legit
    result, connections still open at the end)."""
    conns = []

    async def open_one():
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
        except (OSError, asyncio.TimeoutError):
            return
        w.write(b"POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4000\r\n\r\nx")
        conns.append((r, w))

    sem = asyncio.Semaphore(200)

    async def bounded():
        async with sem:
            await open_one()

    await asyncio.gather(*(bounded() for _ in range(nslow)))
    loop = asyncio.get_running_loop()
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        fut = loop.run_in_executor(ex, legit_fn)
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            await asyncio.sleep(1.0)
            for _, w in conns:
                if not w.is_closing():
                    w.write(b"x")
        result = await asyncio.wait_for(fut, 60)
    still = sum(1 for r, w in conns if not w.is_closing() and not r.at_eof())
    for _, w in conns:
        w.close()
    return result, still


def legit_requests(edge, n=100):
    s = new_session()
    body = os.urandom(1024)
    out = []
    deadline = time.monotonic() + 40
    for i in range(n):
        if time.monotonic() > deadline:
            out.append("deadline")
            break
        try:
            r = s.post(edge.url("/submit"), data=body, headers={"Host": "app.test"}, timeout=10)
            out.append(r.status_code if r.text == "1024\n" or r.status_code != 200 else "bad body")
        except Exception as e:  # noqa: BLE001 - a failure to count
            out.append(repr(e)[:80])
    return out


def stats(upstream):
    return new_session().get(f"http://{upstream}/stats", timeout=10).json()


def test_slow_uploaders_do_not_take_upstream_connections(procs, tmp_path):
    """1,000 slow uploaders against an upstream that accepts 512 connections:
    with the defaults every legitimate request succeeds and the upstream never
    sees the slow ones; memory stays bounded."""
    up = start_capped(procs, 512)
    edge = start_edge(procs, tmp_path, config(up))
    rss0 = edge.rss_kib()
    seen = {}

    def legit():
        res = legit_requests(edge)
        seen["conns"] = edge.metrics().get("tapwork_connections_active")
        seen["rss"] = edge.rss_kib()
        return res

    res, still = asyncio.run(slow_attack(edge.port, 1000, 5, legit))
    assert res == [200] * 100, [x for x in res if x != 200][:5]
    assert seen["conns"] >= 1000, seen          # the slow uploads really were held open
    assert still >= 990, still                   # and not closed (grace: 20 s)
    st = stats(up)
    assert st["rejected"] == 0 and st["max_active"] <= 8, st
    # bounded memory: each waiting upload holds a few pages (docs/config.md, limits.body_buffer)
    assert seen["rss"] - rss0 < 64 * 1024, (rss0, seen["rss"])


def test_request_buffering_off_streams(procs, tmp_path):
    """`request_buffering: off` connects upstream as soon as the head arrives:
    the same attack then fills the capped upstream and legitimate requests
    fail — the failure that buffering by default prevents."""
    up = start_capped(procs, 512)
    edge = start_edge(procs, tmp_path, config(up, buffering="off"))
    res, _ = asyncio.run(slow_attack(edge.port, 1000, 3, lambda: legit_requests(edge, 30)))
    assert stats(up)["rejected"] > 0 or any(x != 200 for x in res)
    assert any(x != 200 for x in res), res


def test_min_body_rate_closes_slow_client(procs, tmp_path):
    up = start_capped(procs, 512)
    cfg = config(up, limits={"min_body_rate": 1000}, timeouts={"body_rate_grace": "1s"})
    edge = start_edge(procs, tmp_path, cfg)
    c = edge.raw(timeout=10)
    c.send(b"POST /slow HTTP/1.1\r\nHost: app.test\r\nContent-Length: 100000\r\n\r\n")
    t0 = time.monotonic()
    got = b""
    c.sock.settimeout(0.2)
    while time.monotonic() - t0 < 8:
        try:
            data = c.sock.recv(65536)
            if not data:
                break
            got += data
        except TimeoutError:
            try:
                c.sock.sendall(b"y" * 20)  # 100 bytes/s, below 1000
            except OSError:
                break
        except ConnectionResetError:
            break
    elapsed = time.monotonic() - t0
    assert got.startswith(b"HTTP/1.1 408 "), got[:200]
    assert 1.0 <= elapsed < 1.5 + 2 * SLACK, elapsed
    assert edge.metrics().get("tapwork_slow_bodies_total") == 1
    edge.wait_log(r"status=408 .*request body too slow: \d+ bytes in \d+ ms")
    # a client above the rate is not disturbed, even past the grace
    c2 = edge.raw(timeout=10)
    c2.send(b"POST /ok HTTP/1.1\r\nHost: app.test\r\nContent-Length: 60000\r\n\r\n")
    for _ in range(20):
        c2.send(b"z" * 3000)  # 3000 bytes per 0.1 s
        time.sleep(0.1)
    r = c2.read_final("POST")
    assert r.status == 200 and r.body == b"60000\n", r
    assert edge.metrics().get("tapwork_slow_bodies_total") == 1


def test_buffered_bodies_arrive_whole(procs, tmp_path):
    """Bodies below, at and above limits.body_buffer, Content-Length and
    chunked, HTTP/1.1 and HTTP/2 (curl), reach the upstream byte for byte."""
    up = start_capped(procs, 512)
    edge = start_edge(procs, tmp_path, config(up, limits={"body_buffer": "16KiB"}))
    s = new_session()
    for n in (1, 1000, 16384, 16385, 200000):
        body = os.urandom(n)
        r = s.post(edge.url("/p"), data=body, headers={"Host": "app.test"}, timeout=10)
        assert r.status_code == 200 and r.text == f"{n}\n", (n, r.status_code, r.text)
        r = s.post(edge.url("/p"), data=iter([x for x in (body[: n // 2], body[n // 2:]) if x]), headers={"Host": "app.test"},
                   timeout=10)
        assert r.status_code == 200 and r.text == f"{n}\n", (n, "chunked", r.status_code, r.text)
    f = tmp_path / "body.bin"
    f.write_bytes(os.urandom(100000))
    for extra in ([], ["-H", "Transfer-Encoding: chunked"]):
        out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--data-binary", f"@{f}", *extra,
                              "-H", "Host: app.test", edge.url("/h2")], capture_output=True, timeout=20)
        assert out.returncode == 0 and out.stdout == b"100000\n", (extra, out)
    # Expect: 100-continue is answered by tapwork while it buffers
    out = subprocess.run(["curl", "-sS", "-H", "Expect: 100-continue", "--data-binary", f"@{f}",
                          "-H", "Host: app.test", "-w", "%{time_total}", "-o", "/dev/null",
                          edge.url("/e")], capture_output=True, timeout=20)
    assert out.returncode == 0 and float(out.stdout) < 0.9, out

"""Bodies streamed both ways (100 MiB, bounded memory), chunked responses,
Expect: 100-continue, pipelining, WebSocket tunnelling."""
import base64
import hashlib
import json
import os
import struct
import subprocess
import threading
import time

import pytest

from edgeutil import ASAN, SLACK, simple_config, start_edge, start_upstream
from upstream import WS_GUID, pattern_bytes, pattern_sha256

BIG = 100 * 1024 * 1024
RSS_BUDGET_KIB = 64 * 1024
PIECE = 65536


@pytest.fixture
def edge(procs, tmp_path):
    up = start_upstream(procs, "web")
    e = start_edge(procs, tmp_path, simple_config([up], hosts=["app.test"]))
    e.upstream = up
    return e


@pytest.fixture(scope="module")
def big_sha():
    return pattern_sha256(BIG)


class RssWatch:
    """Samples tapwork's VmRSS while a transfer runs."""

    def __init__(self, edge):
        self.edge = edge
        self.max = 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            try:
                self.max = max(self.max, self.edge.rss_kib())
            except (OSError, AssertionError):
                return
            time.sleep(0.02)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        self.t.join(5)


def idle_rss(edge):
    # warm up: one small proxied request so pools/buffers exist
    assert edge.get("/echo", host="app.test").status_code == 200
    time.sleep(0.2)
    return edge.rss_kib()


def check_rss(base, watch):
    if ASAN:
        return  # ASan's allocator and shadow memory make RSS meaningless
    assert watch.max - base < RSS_BUDGET_KIB, f"RSS grew by {(watch.max - base) // 1024} MiB"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_upload_100mib_streamed(edge, big_sha, framing):
    base = idle_rss(edge)
    c = edge.raw(timeout=120)
    if framing == "chunked":
        c.send(b"POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n")
    else:
        c.send(b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n\r\n" % BIG)
    with RssWatch(edge) as w:
        off = 0
        while off < BIG:
            piece = pattern_bytes(off, min(PIECE, BIG - off))
            if framing == "chunked":
                c.send(b"%x\r\n" % len(piece) + piece + b"\r\n")
            else:
                c.send(piece)
            off += len(piece)
        if framing == "chunked":
            c.send(b"0\r\n\r\n")
        r = c.read_final()
    c.close()
    assert r.status == 200, r
    e = r.json()
    assert e["body_len"] == BIG
    assert e["body_sha256"] == big_sha
    check_rss(base, w)


def test_download_100mib_streamed(edge, big_sha):
    base = idle_rss(edge)
    h = hashlib.sha256()
    n = [0]

    def sink(b):
        h.update(b)
        n[0] += len(b)
    c = edge.raw(timeout=120)
    c.send(b"GET /big?bytes=%d HTTP/1.1\r\nHost: app.test\r\n\r\n" % BIG)
    with RssWatch(edge) as w:
        r = c.read_response(body_sink=sink)
    c.close()
    assert r.status == 200
    assert n[0] == BIG
    assert h.hexdigest() == big_sha
    check_rss(base, w)


def test_chunked_response_passes_through(edge):
    c = edge.raw()
    c.send(b"GET /chunked?n=50&size=1000 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    r = c.read_final()
    assert r.status == 200
    assert r.body == pattern_bytes(0, 50000)
    # the connection stays usable after a chunked response
    c.send(b"GET /chunked?n=3&size=7 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    r = c.read_final()
    assert r.status == 200 and r.body == pattern_bytes(0, 21)
    c.close()
    # and through an ordinary client
    r = edge.get("/chunked?n=20&size=4096", host="app.test")
    assert r.status_code == 200 and r.content == pattern_bytes(0, 20 * 4096)


def test_expect_continue_curl(edge, tmp_path):
    body = os.urandom(200 * 1024)
    f = tmp_path / "body.bin"
    f.write_bytes(body)
    t0 = time.monotonic()
    p = subprocess.run(["curl", "-sS", "--noproxy", "*", "--expect100-timeout", "10",
                        "-H", "Expect: 100-continue", "-H", "Host: app.test",
                        "--data-binary", f"@{f}", edge.url("/expect")],
                       capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    e = json.loads(p.stdout)
    assert e["body_len"] == len(body)
    assert e["body_sha256"] == hashlib.sha256(body).hexdigest()
    # curl waits up to 10 s for the 100 Continue; it must have come at once
    assert elapsed < 2 + SLACK, elapsed


def test_expect_continue_raw(edge):
    c = edge.raw(timeout=5)
    c.send(b"POST /expect HTTP/1.1\r\nHost: app.test\r\nExpect: 100-continue\r\n"
           b"Content-Length: 11\r\n\r\n")
    first = c.read_response()  # times out (fails) if no 100 comes before the body
    assert (first.version, first.status) == ("HTTP/1.1", 100), first
    c.send(b"hello world")
    r = c.read_final()
    assert r.status == 200
    assert r.json()["body_len"] == 11
    assert r.json()["body_sha256"] == hashlib.sha256(b"hello world").hexdigest()
    c.close()


def test_pipelining_in_order(edge):
    c = edge.raw()
    c.send(b"GET /slow?ms=300 HTTP/1.1\r\nHost: app.test\r\n\r\n"
           b"POST /echo?i=2 HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\n\r\nabc"
           b"GET /echo?i=3 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    r1 = c.read_final()
    r2 = c.read_final()
    r3 = c.read_final()
    assert (r1.status, r1.body) == (200, b"slow\n")
    assert r2.status == 200 and r2.json()["query"] == "i=2" and r2.json()["body_len"] == 3
    assert r3.status == 200 and r3.json()["query"] == "i=3" and r3.json()["method"] == "GET"
    ids = {r.header("X-Request-Id") for r in (r1, r2, r3)}
    assert len(ids) == 3
    c.close()


def ws_send(c, opcode, payload):
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        hdr = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        hdr = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    c.send(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def ws_recv(c):
    b1, b2 = c._exact(2)
    assert not b2 & 0x80, "server frames must not be masked"
    n = b2 & 0x7F
    if n == 126:
        n = struct.unpack("!H", c._exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", c._exact(8))[0]
    return b1 & 0x0F, c._exact(n)


def test_websocket_echo(edge):
    key = base64.b64encode(os.urandom(16)).decode()
    c = edge.raw(timeout=10)
    c.send(("GET /ws HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    version, status, _, headers = c.read_head()
    h = {k.lower(): v for k, v in headers}
    assert status == 101, headers
    assert h.get("upgrade", "").lower() == "websocket"
    assert "upgrade" in h.get("connection", "").lower()
    want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
    assert h.get("sec-websocket-accept") == want
    ws_send(c, 0x1, b"hello through tapwork")
    assert ws_recv(c) == (0x1, b"hello through tapwork")
    blob = os.urandom(1000)
    ws_send(c, 0x2, blob)
    assert ws_recv(c) == (0x2, blob)
    blob = os.urandom(70000)
    ws_send(c, 0x2, blob)
    assert ws_recv(c) == (0x2, blob)
    ws_send(c, 0x8, struct.pack("!H", 1000))
    assert ws_recv(c) == (0x8, struct.pack("!H", 1000))
    c.close()


def test_bodiless_responses_keep_connection_in_sync(edge):
    c = edge.raw()
    c.send(b"HEAD /big?bytes=5000 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    r = c.read_response(method="HEAD")
    assert r.status == 200 and r.header("Content-Length") == "5000" and r.body == b""
    for code in (204, 304):
        c.send(b"GET /status/%d HTTP/1.1\r\nHost: app.test\r\n\r\n" % code)
        r = c.read_response()
        assert r.status == code and r.body == b""
    c.send(b"GET /echo?after=1 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    r = c.read_final()
    assert r.status == 200 and r.json()["query"] == "after=1"
    c.close()


def test_close_delimited_upstream_response(edge):
    """An upstream body delimited by closing is re-framed (or the client
    connection is closed after it): the client gets every byte."""
    c = edge.raw()
    c.send(b"GET /eof?bytes=100000 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    r = c.read_final()
    assert r.status == 200
    assert r.body == pattern_bytes(0, 100000)
    c.close()


def test_upstream_connections_pooled(edge):
    up = edge.upstream
    before = up.count()
    conns0 = up.get("/count").json()["conns"]
    for i in range(20):  # each on its own client connection
        c = edge.raw()
        c.send(b"GET /echo HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
        assert c.read_final().status == 200
        c.close()
    d = up.get("/count").json()
    assert d["count"] - before == 20
    # 2 workers, sequential requests: a couple of pooled connections, not 20
    assert d["conns"] - conns0 <= 4, d


def test_upstream_response_head_capped_at_64kib(edge):
    # the proxy's buffers are 128 KiB, the response head limit stays 64 KiB
    r = edge.get("/bighead?bytes=60000", host="app.test")
    assert r.status_code == 200 and len(r.headers["X-Pad"]) == 60000 and r.text == "big\n"
    r = edge.get("/bighead?bytes=70000", host="app.test")
    assert r.status_code == 502, r.status_code
    assert "X-Pad" not in r.headers
    # the edge is still serving
    assert edge.get("/echo", host="app.test").status_code == 200


def test_upstream_connections_kept_under_parallel_large_responses(edge):
    """Pooled upstream connections stay pooled when write-space edges of the last request
    arrive after the connection went idle (large responses, many clients at once)."""
    up = edge.upstream
    conns0 = up.get("/count").json()["conns"]
    clients, rounds = 12, 25
    errors = []

    def client():
        try:
            c = edge.raw()
            for _ in range(rounds):
                c.send(b"GET /big?bytes=262144 HTTP/1.1\r\nHost: app.test\r\n\r\n")
                r = c.read_final()
                assert r.status == 200 and len(r.body) == 262144
            c.close()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    ts = [threading.Thread(target=client) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, errors
    opened = up.get("/count").json()["conns"] - conns0
    # at most one upstream connection per concurrent client (plus the /count probes);
    # a pool that drops idle connections on spurious events opens one per request
    assert opened <= clients + 4, opened


def test_http10_clients_go_up_as_http11_on_pooled_connections(procs, tmp_path):
    """An HTTP/1.0 request goes up as HTTP/1.1 (RFC 9110 section 6.2: an
    intermediary sends its own version), with a Host when the client sent none,
    so the upstream connection stays pooled; Via still names the client's 1.0."""
    up = start_upstream(procs, "web")
    edge = start_edge(procs, tmp_path, simple_config([up]))
    conns0 = up.get("/count").json()["conns"]
    for i in range(12):
        r = edge.raw_request(b"GET /echo HTTP/1.0\r\n\r\n")
        assert r.status == 200, r
        doc = r.json()
        assert doc["version"] == "HTTP/1.1", doc
        hdrs = {k.lower(): v for k, v in doc["headers"]}
        assert hdrs["host"] == "web" and hdrs["via"] == "1.0 tapwork", hdrs
        assert "connection" not in hdrs, hdrs
    r = edge.raw_request(b"GET /echo HTTP/1.0\r\nHost: app.test\r\n\r\n")
    assert {k.lower(): v for k, v in r.json()["headers"]}["host"] == "app.test"
    # one upstream connection per worker at most, not one per request
    assert up.get("/count").json()["conns"] - conns0 <= 4


def test_http10_client_gets_a_chunked_answer_decoded(edge):
    """HTTP/1.0 has no chunked coding: the payload alone, then the connection closes."""
    n, size = 40, 3000
    c = edge.raw()
    c.send(f"GET /chunked?n={n}&size={size} HTTP/1.0\r\nHost: app.test\r\n\r\n".encode())
    r = c.read_final()
    assert r.status == 200
    assert r.header("Transfer-Encoding") is None and r.header("Content-Length") is None, r.headers
    assert (r.header("Connection") or "").lower() == "close"
    assert r.body == pattern_bytes(0, n * size)
    c.close()
    # many tiny chunks: more framing than payload, removed in place across buffer refills
    c = edge.raw()
    c.send(b"GET /chunked?n=1000&size=7 HTTP/1.0\r\nHost: app.test\r\n\r\n")
    r = c.read_final()
    assert r.status == 200 and r.body == pattern_bytes(0, 1000 * 7)
    c.close()
    # a keep-alive HTTP/1.0 client too: the end of the connection is the only delimiter left
    c = edge.raw()
    c.send(b"GET /chunked?n=3&size=100 HTTP/1.0\r\nHost: app.test\r\nConnection: keep-alive\r\n\r\n")
    r = c.read_final()
    assert r.status == 200 and r.body == pattern_bytes(0, 300) and r.header("Transfer-Encoding") is None
    c.close()
    # an invalid chunk-size right after good data (one upstream write): the client gets
    # at most the good payload, then the connection closes; the edge keeps serving
    c = edge.raw()
    c.send(b"GET /chunked?n=2&size=50&bad=1 HTTP/1.0\r\nHost: app.test\r\n\r\n")
    r = c.read_final()
    assert r.status == 200 and pattern_bytes(0, 100).startswith(r.body), r.body
    c.close()
    assert edge.get("/echo", host="app.test").status_code == 200
    # HTTP/1.1 clients still get the chunks as they come
    c = edge.raw()
    c.send(b"GET /chunked?n=3&size=100 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    r = c.read_final()
    assert r.header("Transfer-Encoding") == "chunked" and r.body == pattern_bytes(0, 300)
    c.close()

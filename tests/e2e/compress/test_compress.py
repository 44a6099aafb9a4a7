"""Response compression (docs/compression.md) against real clients: curl over
HTTP/1.1 and HTTP/2 (h2c), decoded by python3-zstandard, python3-brotli and
zlib; the bytes decoded equal the origin's; the never/always rules of the
head; If-None-Match coming back; the config's off switches; metrics."""
import gzip
import os
import subprocess
import sys
import threading
import time
import zlib

import brotli
import pytest
import zstandard

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "edge"))
sys.path.insert(0, HERE)

from conftest import Procs, free_port  # noqa: E402
from edgeutil import PYTHON, check_sanitizers, start_edge, wait_for  # noqa: E402
from origin import body_of  # noqa: E402

ORIGIN_PY = os.path.join(HERE, "origin.py")


def start_origin(ps):
    port = free_port()
    p = ps.start([PYTHON, ORIGIN_PY, "--port", str(port)], name="origin")
    wait_for(lambda: "ready" in ps.log_of(p) or p.poll() is not None, 10, what="origin ready")
    assert p.poll() is None, ps.log_of(p)
    return f"127.0.0.1:{port}"


def config(origin):
    return {
        "compression": {"encodings": ["zstd", "br", "gzip"], "min_size": 512},
        "sites": [{"hosts": ["*"], "routes": [
            {"path": "/", "backend": "web"},
            {"path": "/off", "backend": "web", "compression": "off"},
            {"path": "/gz", "backend": "web", "compression": {"encodings": ["gzip"], "levels": {"gzip": 6}}},
            {"path": "/private", "backend": "web", "compression": {"skip_private": True}},
        ]}],
        "backends": {"web": {"servers": [origin]}},
    }


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("compress")
    ps = Procs(tmp_path)
    try:
        origin = start_origin(ps)
        e = start_edge(ps, tmp_path, config(origin))
        yield e
    finally:
        ps.stop_all()
    check_sanitizers(ps)


class Got:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def h(self, name):
        v = [val for k, val in self.headers if k == name.lower()]
        return ", ".join(v) if v else None


def curl(edge, path, ae=None, h2=False, head=False, extra=()):
    """The raw answer (not decoded) as curl got it."""
    args = ["curl", "-s", "-S", "--max-time", "20", "-D", "-", "-o", "/dev/stdout"]
    args += ["--http2-prior-knowledge"] if h2 else ["--http1.1"]
    if head:
        args += ["-I"]
    if ae is not None:
        args += ["-H", f"Accept-Encoding: {ae}"]
    args += list(extra)
    args.append(edge.url(path))
    out = subprocess.run(args, capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    raw = out.stdout
    sep = raw.index(b"\r\n\r\n")
    head_text, body = raw[:sep].decode(), raw[sep + 4:]
    lines = head_text.split("\r\n")
    status = int(lines[0].split()[1])
    headers = []
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers.append((k.strip().lower(), v.strip()))
    return Got(status, headers, body)


def decode(coding, data):
    if coding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    if coding == "br":
        return brotli.decompress(data)
    if coding == "gzip":
        return gzip.decompress(data)
    assert coding is None, coding
    return data


@pytest.mark.parametrize("h2", [False, True], ids=["h1", "h2"])
@pytest.mark.parametrize("coding", ["zstd", "br", "gzip"])
@pytest.mark.parametrize("shape", ["length", "chunked", "close", "big"])
def test_decoded_bytes_equal_the_origins(edge, coding, h2, shape):
    size = 65536 if shape != "big" else 3_000_000
    q = {"length": "", "chunked": "&chunked=1000", "close": "&close=1", "big": "&chunked=100000"}[shape]
    g = curl(edge, f"/r?size={size}&etag=1{q}", ae=f"{coding}, identity;q=0.5", h2=h2)
    assert g.status == 200
    assert g.h("content-encoding") == coding, g.headers
    assert "accept-encoding" in (g.h("vary") or "").lower()
    assert g.h("content-length") is None or int(g.h("content-length")) == len(g.body)
    assert g.h("accept-ranges") is None
    assert g.h("etag") == 'W/"v1"'
    assert len(g.body) < size // 2
    assert decode(coding, g.body) == body_of(size)


def test_preference_and_qvalues(edge):
    assert curl(edge, "/r?size=4000", ae="gzip, deflate, br, zstd").h("content-encoding") == "zstd"
    assert curl(edge, "/r?size=4000", ae="gzip, br").h("content-encoding") == "br"
    assert curl(edge, "/r?size=4000", ae="zstd;q=0.2, gzip;q=0.9").h("content-encoding") == "gzip"
    assert curl(edge, "/r?size=4000", ae="*;q=0.5, zstd;q=0").h("content-encoding") == "br"
    g = curl(edge, "/r?size=4000", ae="deflate")
    assert g.h("content-encoding") is None and g.body == body_of(4000)
    assert "accept-encoding" in g.h("vary").lower()  # could have been compressed: Vary all the same
    assert g.h("content-length") == "4000"
    g = curl(edge, "/r?size=4000")  # no Accept-Encoding at all
    assert g.h("content-encoding") is None and g.body == body_of(4000)
    # the route's own block: gzip alone, at level 6
    g = curl(edge, "/gz?size=40000", ae="zstd, br, gzip")
    assert g.h("content-encoding") == "gzip" and decode("gzip", g.body) == body_of(40000)


@pytest.mark.parametrize("h2", [False, True], ids=["h1", "h2"])
def test_never_compressed(edge, h2):
    ae = "zstd, br, gzip"
    cases = {
        "small": "/r?size=100",
        "small_chunked": "/r?size=300&chunked=100",
        "no_transform": "/r?size=5000&cc=no-transform",
        "encoded": "/r?size=5000&ce=x-custom",
        "jpeg": "/r?size=5000&type=image/jpeg",
        "grpc": "/r?size=5000&type=application/grpc",
        "partial": "/r?size=5000&status=206",
        "off": "/off?size=5000",
        "private": "/private?size=5000&cookie=1",
        "private_cc": "/private?size=5000&cc=private",
    }
    for name, path in cases.items():
        g = curl(edge, path, ae=ae, h2=h2)
        assert g.h("content-encoding") in (None, "x-custom"), (name, g.headers)
        assert g.body == body_of(int(path.split("size=")[1].split("&")[0])), name
        if name in ("small", "small_chunked", "partial"):
            assert "accept-encoding" in (g.h("vary") or "").lower(), (name, g.headers)
        else:
            assert g.h("vary") is None, (name, g.headers)
        if name in ("small", "jpeg", "off", "no_transform"):
            assert g.h("accept-ranges") == "bytes", (name, g.headers)
    # a request with Range: never compressed
    g = curl(edge, "/r?size=5000", ae=ae, h2=h2, extra=["-H", "Range: bytes=0-99"])
    assert g.h("content-encoding") is None and g.body == body_of(5000)
    # HEAD: no body, no Content-Encoding, Vary all the same
    g = curl(edge, "/r?size=5000&etag=1", ae=ae, h2=h2, head=True)
    assert g.status == 200 and g.h("content-encoding") is None
    assert "accept-encoding" in g.h("vary").lower()
    # 204
    g = curl(edge, "/r?size=0&status=204", ae=ae, h2=h2)
    assert g.status == 204 and g.h("content-encoding") is None


def test_vary_is_merged(edge):
    g = curl(edge, "/r?size=5000&vary=Origin", ae="gzip")
    assert g.h("content-encoding") == "gzip"
    assert g.h("vary") == "Origin, Accept-Encoding"
    g = curl(edge, "/r?size=5000&vary=Accept-Encoding", ae="gzip")
    assert g.h("vary") == "Accept-Encoding"


@pytest.mark.parametrize("h2", [False, True], ids=["h1", "h2"])
def test_if_none_match_comes_back(edge, h2):
    g = curl(edge, "/r?size=5000&etag=1", ae="zstd", h2=h2)
    assert g.h("etag") == 'W/"v1"'
    # the client revalidates with the tag it got: the naive origin compares
    # strictly, tapwork adds the strong form so that it still matches
    g2 = curl(edge, "/r?size=5000&etag=1", ae="zstd", h2=h2, extra=["-H", 'If-None-Match: W/"v1"'])
    assert g2.status == 304, g2.headers
    assert g2.h("etag") == 'W/"v1"'
    assert g2.h("x-inm") == 'W/"v1", "v1"'
    # without a coding the tag stays strong both ways
    g3 = curl(edge, "/r?size=5000&etag=1", h2=h2)
    assert g3.h("etag") == '"v1"'


def test_streaming_answers_are_not_held_back(edge):
    """Each server-sent event reaches the client while the origin still waits
    for the next one: the encoder is flushed whenever the origin pauses."""
    args = ["curl", "-s", "-N", "--http1.1", "--max-time", "10", "-H", "Accept-Encoding: zstd", "-D", "-", edge.url("/sse")]
    p = subprocess.Popen(args, stdout=subprocess.PIPE)
    t0 = time.monotonic()
    buf = b""
    first_at = None
    d = zstandard.ZstdDecompressor().decompressobj()
    plain = b""
    while True:
        chunk = os.read(p.stdout.fileno(), 65536)
        if not chunk:
            break
        buf += chunk
        if b"\r\n\r\n" in buf:
            head, _, rest = buf.partition(b"\r\n\r\n")
            assert b"content-encoding: zstd" in head.lower(), head
            plain += d.decompress(rest)
            buf = head + b"\r\n\r\n"
            if b"event 0" in plain and first_at is None:
                first_at = time.monotonic() - t0
    p.wait(10)
    assert first_at is not None and first_at < 0.35, first_at  # the origin sends the next one 400 ms later
    assert plain.count(b"data: event") == 3


def test_metrics(edge):
    before = edge.metrics().get("tapwork_compress_total", coding="br", result="ok")
    curl(edge, "/r?size=65536", ae="br")
    m = edge.metrics()
    assert m.get("tapwork_compress_total", coding="br", result="ok") == before + 1
    assert m.get("tapwork_compress_in_bytes_total", coding="br") >= 65536
    assert 0 < m.get("tapwork_compress_out_bytes_total", coding="br") < m.get("tapwork_compress_in_bytes_total", coding="br")


def test_max_streams_caps_compressing_answers(procs, tmp_path):
    """One worker, max_streams 1: while a stream compresses, the next answer
    goes out as it is, Vary all the same, and is counted as busy."""
    origin = start_origin(procs)
    cfg = config(origin)
    cfg["workers"] = 1
    cfg["compression"]["max_streams"] = 1
    e = start_edge(procs, tmp_path, cfg)
    sse = subprocess.Popen(["curl", "-s", "-N", "--http1.1", "--max-time", "10", "-H", "Accept-Encoding: gzip",
                            "-o", "/dev/null", e.url("/sse")])
    try:
        time.sleep(0.3)  # the stream is compressing (the origin sends for 1.2 s)
        g = curl(e, "/r?size=5000", ae="gzip")
        assert g.h("content-encoding") is None and g.body == body_of(5000)
        assert "accept-encoding" in g.h("vary").lower()
        assert e.metrics().get("tapwork_compress_total", coding="gzip", result="busy") == 1
    finally:
        sse.wait(10)
    g = curl(e, "/r?size=5000", ae="gzip")  # the slot is free again
    assert g.h("content-encoding") == "gzip"
    m = e.metrics()
    assert m.get("tapwork_compress_total", coding="gzip", result="ok") == 2

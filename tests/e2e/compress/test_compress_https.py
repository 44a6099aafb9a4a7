"""Compression and static files over HTTPS (TLS: files are read into the
connection's buffer, not sendfile'd), HTTP/1.1 and HTTP/2 by ALPN."""
import hashlib
import os
import subprocess
import sys

import pytest
import zstandard

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tls"))
sys.path.insert(0, HERE)

from origin import body_of  # noqa: E402
from test_compress import start_origin  # noqa: E402
from test_static import make_root  # noqa: E402
from tlsutil import TLSEdge  # noqa: E402


def fetch(edge, path, h2, ae=None):
    args = ["curl", "-sS", "--max-time", "20", "--cacert", edge.root,
            "--resolve", f"app.test:{edge.https_port}:127.0.0.1", "-D", str(edge.tmp_path / "h"),
            "-o", str(edge.tmp_path / "b"), "--http2" if h2 else "--http1.1"]
    if ae:
        args += ["-H", f"Accept-Encoding: {ae}"]
    r = subprocess.run(args + [f"https://app.test:{edge.https_port}{path}"], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    head = (edge.tmp_path / "h").read_text().lower()
    return head, (edge.tmp_path / "b").read_bytes()


@pytest.mark.parametrize("h2", [False, True], ids=["h1", "h2"])
def test_static_and_compression_over_tls(procs, tmp_path, h2):
    root = make_root(tmp_path)
    origin = start_origin(procs)
    e = TLSEdge(procs, tmp_path, {
        "compression": {"encodings": ["zstd"]},
        "sites": [{"hosts": ["app.test"], "routes": [
            {"path": "/files/", "handler": "static", "root": str(root / "assets"), "precompressed": ["br"]},
            {"path": "/", "backend": "web"}]}],
        "backends": {"web": {"servers": [origin]}}})
    head, body = fetch(e, "/files/big.bin", h2)
    assert ("http/2 200" if h2 else "http/1.1 200") in head
    assert hashlib.sha256(body).digest() == hashlib.sha256((root / "assets" / "big.bin").read_bytes()).digest()
    head, body = fetch(e, "/files/app.3f9a.js", h2, ae="br")
    assert "content-encoding: br" in head and body == (root / "assets" / "app.3f9a.js.br").read_bytes()
    head, body = fetch(e, "/r?size=200000&chunked=7000", h2, ae="zstd")
    assert "content-encoding: zstd" in head
    assert zstandard.ZstdDecompressor().decompressobj().decompress(body) == body_of(200000)

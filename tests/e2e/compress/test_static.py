"""handler: static (docs/static.md) with real clients: curl over HTTP/1.1 and
HTTP/2, raw requests for the traversal corpus. Files, precompressed variants,
conditional requests, ranges, HEAD, index files, the refusals."""
import email.utils
import gzip
import hashlib
import os
import subprocess
import sys

import brotli
import pytest
import zstandard

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "edge"))
sys.path.insert(0, HERE)

from conftest import Procs  # noqa: E402
from edgeutil import check_sanitizers, start_edge  # noqa: E402
from origin import body_of  # noqa: E402
from test_compress import curl  # noqa: E402

SECRET = b"top secret outside the root\n"


def make_root(base):
    root = base / "public"
    (root / "assets").mkdir(parents=True)
    (root / "sub").mkdir()
    js = body_of(65536)
    (root / "assets" / "app.3f9a.js").write_bytes(js)
    (root / "assets" / "app.3f9a.js.zst").write_bytes(zstandard.ZstdCompressor(level=19).compress(js))
    (root / "assets" / "app.3f9a.js.br").write_bytes(brotli.compress(js))
    (root / "assets" / "app.3f9a.js.gz").write_bytes(gzip.compress(js))
    (root / "assets" / "only-gz.css").write_bytes(b"body{}" * 100)
    (root / "assets" / "only-gz.css.gz").write_bytes(gzip.compress(b"body{}" * 100))
    (root / "assets" / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (root / "index.html").write_bytes(b"<h1>home</h1>\n")
    (root / "sub" / "index.html").write_bytes(b"<h1>sub</h1>\n")
    (root / ".env").write_bytes(SECRET)
    (base / "secret.txt").write_bytes(SECRET)
    os.symlink(base / "secret.txt", root / "abs-link")
    os.symlink("../secret.txt", root / "rel-link")
    os.symlink("assets/app.3f9a.js", root / "inside-link")
    return root


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("static")
    root = make_root(base)
    ps = Procs(base)
    cfg = {"sites": [{"hosts": ["*"], "routes": [
        {"path": "/assets/", "handler": "static", "root": str(root / "assets"),
         "precompressed": ["zstd", "br", "gzip"], "immutable": True},
        {"path": "/", "handler": "static", "root": str(root)},
    ]}]}
    try:
        e = start_edge(ps, base, cfg)
        e.root = root
        yield e
    finally:
        ps.stop_all()
    check_sanitizers(ps)


@pytest.mark.parametrize("h2", [False, True], ids=["h1", "h2"])
def test_file_and_its_headers(site, h2):
    g = curl(site, "/assets/app.3f9a.js", h2=h2)
    assert g.status == 200 and g.body == body_of(65536)
    assert g.h("content-type") == "text/javascript; charset=utf-8"
    assert g.h("content-length") == "65536"
    assert g.h("accept-ranges") == "bytes"
    assert g.h("cache-control") == "public, max-age=31536000, immutable"
    assert g.h("vary") == "Accept-Encoding"
    assert g.h("etag").startswith('"') and g.h("content-encoding") is None
    st = os.stat(site.root / "assets" / "app.3f9a.js")
    assert email.utils.parsedate_to_datetime(g.h("last-modified")).timestamp() == int(st.st_mtime)
    big = curl(site, "/assets/big.bin", h2=h2)  # sendfile on plain TCP, reads otherwise
    assert hashlib.sha256(big.body).digest() == hashlib.sha256((site.root / "assets" / "big.bin").read_bytes()).digest()
    assert big.h("content-type") == "application/octet-stream"


@pytest.mark.parametrize("h2", [False, True], ids=["h1", "h2"])
@pytest.mark.parametrize("coding,suffix", [("zstd", ".zst"), ("br", ".br"), ("gzip", ".gz")])
def test_precompressed_variants(site, h2, coding, suffix):
    g = curl(site, "/assets/app.3f9a.js", ae=f"{coding}", h2=h2)
    assert g.h("content-encoding") == coding
    assert g.body == (site.root / "assets" / ("app.3f9a.js" + suffix)).read_bytes()
    assert g.h("vary") == "Accept-Encoding" and g.h("accept-ranges") is None
    plain = curl(site, "/assets/app.3f9a.js", h2=h2)
    assert g.h("etag") != plain.h("etag")  # another representation, another tag
    # revalidation of the variant
    g2 = curl(site, "/assets/app.3f9a.js", ae=coding, h2=h2, extra=["-H", f"If-None-Match: {g.h('etag')}"])
    assert g2.status == 304 and g2.body == b""


def test_variant_choice(site):
    assert curl(site, "/assets/app.3f9a.js", ae="gzip, br, zstd").h("content-encoding") == "zstd"
    assert curl(site, "/assets/app.3f9a.js", ae="gzip;q=1, br;q=0.5").h("content-encoding") == "gzip"
    g = curl(site, "/assets/only-gz.css", ae="zstd, br, gzip")  # the variants that exist
    assert g.h("content-encoding") == "gzip" and gzip.decompress(g.body) == b"body{}" * 100
    g = curl(site, "/assets/app.3f9a.js", ae="deflate")
    assert g.h("content-encoding") is None and g.body == body_of(65536)
    g = curl(site, "/index.html", ae="gzip")  # a route without precompressed: no Vary
    assert g.h("vary") is None and g.body == b"<h1>home</h1>\n"


def test_conditional_requests(site):
    g = curl(site, "/assets/app.3f9a.js")
    etag, lm = g.h("etag"), g.h("last-modified")
    assert curl(site, "/assets/app.3f9a.js", extra=["-H", f"If-None-Match: {etag}"]).status == 304
    assert curl(site, "/assets/app.3f9a.js", extra=["-H", f'If-None-Match: "x", W/{etag}']).status == 304
    assert curl(site, "/assets/app.3f9a.js", extra=["-H", "If-None-Match: *"]).status == 304
    assert curl(site, "/assets/app.3f9a.js", extra=["-H", 'If-None-Match: "other"']).status == 200
    r304 = curl(site, "/assets/app.3f9a.js", extra=["-H", f"If-Modified-Since: {lm}"])
    assert r304.status == 304 and r304.h("etag") == etag and r304.h("content-length") is None
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert curl(site, "/assets/app.3f9a.js", extra=["-H", f"If-Modified-Since: {old}"]).status == 200
    # If-None-Match wins over If-Modified-Since
    assert curl(site, "/assets/app.3f9a.js", extra=["-H", 'If-None-Match: "other"', "-H", f"If-Modified-Since: {lm}"]).status == 200


@pytest.mark.parametrize("h2", [False, True], ids=["h1", "h2"])
def test_ranges(site, h2):
    body = body_of(65536)
    n = len(body)

    def rng(spec, **kw):
        return curl(site, "/assets/app.3f9a.js", h2=h2, extra=["-H", f"Range: {spec}"], **kw)
    g = rng("bytes=0-99")
    assert g.status == 206 and g.body == body[:100] and g.h("content-range") == f"bytes 0-99/{n}"
    g = rng("bytes=-100")
    assert g.status == 206 and g.body == body[-100:] and g.h("content-range") == f"bytes {n - 100}-{n - 1}/{n}"
    g = rng("bytes=65000-")
    assert g.status == 206 and g.body == body[65000:]
    g = rng("bytes=65000-999999")
    assert g.status == 206 and g.body == body[65000:]
    g = rng(f"bytes={n}-")
    assert g.status == 416 and g.h("content-range") == f"bytes */{n}"
    g = rng("bytes=0-1,5-6")  # several ranges: the whole file (documented)
    assert g.status == 200 and g.body == body
    g = rng("bytes=0-99", ae="zstd")  # a range is of the identity bytes
    assert g.status == 206 and g.h("content-encoding") is None and g.body == body[:100]
    stale = curl(site, "/assets/app.3f9a.js", h2=h2, extra=["-H", "Range: bytes=0-99", "-H", 'If-Range: "stale"'])
    assert stale.status == 200 and stale.body == body


@pytest.mark.parametrize("h2", [False, True], ids=["h1", "h2"])
def test_head_index_and_methods(site, h2):
    g = curl(site, "/assets/app.3f9a.js", h2=h2, head=True)
    assert g.status == 200 and g.h("content-length") == "65536"
    with site.raw() as c:  # no body after the head, and the connection goes on
        c.send(b"HEAD /assets/app.3f9a.js HTTP/1.1\r\nHost: a\r\n\r\nGET /index.html HTTP/1.1\r\nHost: a\r\n\r\n")
        assert c.read_response(method="HEAD").body == b""
        assert c.read_response().body == b"<h1>home</h1>\n"
    assert curl(site, "/", h2=h2).body == b"<h1>home</h1>\n"
    assert curl(site, "/sub/", h2=h2).body == b"<h1>sub</h1>\n"
    g = curl(site, "/sub", h2=h2)
    assert g.status == 301 and g.h("location") == "/sub/"
    assert curl(site, "/inside-link", h2=h2).body == body_of(65536)  # a link inside the root is fine
    assert curl(site, "/nope.txt", h2=h2).status == 404
    assert curl(site, "/assets/app.3f9a.js", h2=h2, extra=["-X", "POST", "-d", "x"]).status == 405


TRAVERSAL = [
    b"/../secret.txt", b"/assets/../../secret.txt", b"/%2e%2e/secret.txt", b"/%2E%2E/secret.txt",
    b"/.%2e/secret.txt", b"/%252e%252e/secret.txt", b"/%c0%ae%c0%ae/secret.txt", b"/%c0%af..%c0%afsecret.txt",
    b"/..%2fsecret.txt", b"/..%5csecret.txt", b"/..\\secret.txt", b"/assets/..%2f..%2fsecret.txt",
    b"/abs-link", b"/rel-link", b"/.env", b"/%2eenv", b"/sub/../.env", b"/secret.txt%00.html",
    b"//../secret.txt", b"/./.env", b"/assets/%2e%2e/%2e%2e/secret.txt", b"/%00",
]


def test_traversal_corpus_is_refused(site):
    for path in TRAVERSAL:
        r = site.raw_request(b"GET " + path + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        assert r.status in (400, 404), (path, r)
        assert SECRET not in r.body, path
    # absolute-form with a path that climbs
    r = site.raw_request(b"GET http://a/../secret.txt HTTP/1.1\r\nHost: a\r\n\r\n")
    assert r.status in (400, 404) and SECRET not in r.body
    assert site.alive()


def test_a_file_changing_while_sent_cuts_the_answer(site):
    """Never mixed bytes under one ETag: the client gets fewer bytes than
    Content-Length (the connection closes) once the file changes."""
    path = site.root / "assets" / "changing.bin"
    size = 48 * 1024 * 1024
    path.write_bytes(b"a" * size)
    import socket
    s = socket.create_connection(("127.0.0.1", site.port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(b"GET /assets/changing.bin HTTP/1.1\r\nHost: a\r\n\r\n")
    got = b""
    while b"\r\n\r\n" not in got:
        got += s.recv(65536)
    head, _, body = got.partition(b"\r\n\r\n")
    assert b"Content-Length: %d" % size in head
    with open(path, "r+b") as f:  # changed in place, same size: new bytes, new time
        f.seek(size // 2)
        f.write(b"b" * (size // 2))
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    n = len(body)
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        n += len(d)
    s.close()
    assert n < size, n  # cut: never the whole length with two files' bytes in it
    path.unlink()


def test_fallback_static_tries_files_before_the_backend(procs, tmp_path):
    from test_compress import start_origin
    root = make_root(tmp_path)
    origin = start_origin(procs)
    e = start_edge(procs, tmp_path, {
        "sites": [{"hosts": ["*"], "routes": [
            {"path": "/", "backend": "web", "fallback_static": str(root), "precompressed": ["gzip"]}]}],
        "backends": {"web": {"servers": [origin]}}})
    g = curl(e, "/index.html")
    assert g.status == 200 and g.body == b"<h1>home</h1>\n" and g.h("etag")
    assert curl(e, "/").body == b"<h1>home</h1>\n"  # the directory's index file
    g = curl(e, "/assets/app.3f9a.js", ae="gzip")
    assert g.h("content-encoding") == "gzip" and gzip.decompress(g.body) == body_of(65536)
    g = curl(e, "/r?size=123")  # no such file: the backend answers
    assert g.status == 200 and g.body == body_of(123)
    assert curl(e, "/.env").body != SECRET  # hidden: never from the directory
    assert curl(e, "/rel-link").body != SECRET
    g = curl(e, "/index.html", extra=["-X", "POST", "-d", "x"])  # not GET/HEAD: the backend
    assert g.status == 501 or g.body != b"<h1>home</h1>\n"

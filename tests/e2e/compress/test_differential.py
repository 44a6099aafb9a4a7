"""tapwork side by side with nginx 1.22 (`gzip`, `gzip_static`) and Caddy 2.6
(`encode zstd gzip`, `file_server` with `precompressed`), all three in front
of one plain nginx origin and serving one directory: the decoded bytes equal
the origin's for every coding each peer offers, and the header behaviour for
HEAD, 304, Range, no-transform, ETag and Vary is tabulated side by side
(printed, and written to the test's directory); where the three differ the
table says so and the assertions hold tapwork to its documented rules
(docs/compression.md, docs/static.md)."""
import gzip
import os
import shutil
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "edge"))
sys.path.insert(0, HERE)

from conftest import Procs, free_port  # noqa: E402
from edgeutil import check_sanitizers, start_edge, wait_for  # noqa: E402
from origin import body_of  # noqa: E402
from test_compress import curl, decode  # noqa: E402

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CADDY = shutil.which("caddy")
TYPES = "text/css application/javascript text/javascript application/json image/svg+xml"


class Peer:
    def __init__(self, name, port):
        self.name, self.port = name, port

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"


def listening(port):
    import socket
    s = socket.socket()
    try:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0
    finally:
        s.close()


def start_nginx(ps, base, name, server):
    port = free_port()
    d = base / name
    d.mkdir()
    (d / "nginx.conf").write_text(f"""
user root; worker_processes 1; daemon off; pid {d}/pid; error_log {d}/err;
events {{ worker_connections 256; }}
http {{ access_log off; include /etc/nginx/mime.types; types {{ application/json json; }} sendfile on;
  client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};
  server {{ listen 127.0.0.1:{port}; {server} }} }}
""")
    p = ps.start([NGINX, "-c", str(d / "nginx.conf"), "-p", str(d)], name=name)
    wait_for(lambda: listening(port) or p.poll() is not None, 10, what=f"{name} listening")
    assert p.poll() is None, ps.log_of(p)
    return Peer(name, port)


def start_caddy(ps, base, origin_port, www):
    port = free_port()
    d = base / "caddy"
    d.mkdir()
    (d / "Caddyfile").write_text(f"""{{
	admin off
	auto_https off
	storage file_system {d}/data
}}
http://127.0.0.1:{port} {{
	bind 127.0.0.1
	handle_path /s/* {{
		root * {www}
		file_server {{
			precompressed gzip
		}}
	}}
	handle {{
		encode zstd gzip
		reverse_proxy 127.0.0.1:{origin_port}
	}}
}}
""")
    env = {"HOME": str(d), "XDG_DATA_HOME": str(d / "data"), "XDG_CONFIG_HOME": str(d / "config")}
    p = ps.start([CADDY, "run", "--config", str(d / "Caddyfile"), "--adapter", "caddyfile"], name="caddy", env=env)
    wait_for(lambda: listening(port) or p.poll() is not None, 15, what="caddy listening")
    assert p.poll() is None, ps.log_of(p)
    return Peer("caddy", port)


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    if CADDY is None:
        pytest.skip("caddy is not installed (scripts/deps.sh installs Debian's)")
    base = tmp_path_factory.mktemp("diff")
    www = base / "www"
    www.mkdir()
    js = body_of(65536)
    (www / "app.js").write_bytes(js)
    (www / "app.js.gz").write_bytes(gzip.compress(js, 9))
    (www / "data.json").write_bytes(b'{"rows": [' + b",".join(b'{"id": %d, "name": "user%d"}' % (i, i * 7) for i in range(3000)) + b"]}")
    (www / "notx.json").write_bytes((www / "data.json").read_bytes())
    os.chmod(base, 0o755)
    for f in www.iterdir():
        os.chmod(f, 0o644)
    os.chmod(www, 0o755)
    ps = Procs(base)
    try:
        origin = start_nginx(ps, base, "origin", f"root {www}; location = /notx.json {{ add_header Cache-Control no-transform; }}")
        ng = start_nginx(ps, base, "nginx", f"""
  location /s/ {{ alias {www}/; gzip_static on; }}
  location / {{ gzip on; gzip_types {TYPES}; gzip_min_length 512; gzip_proxied any; gzip_vary on;
    proxy_pass http://127.0.0.1:{origin.port}; proxy_http_version 1.1; proxy_set_header Accept-Encoding ""; }}""")
        cd = start_caddy(ps, base, origin.port, www)
        tw = start_edge(ps, base, {
            "compression": {"encodings": ["zstd", "br", "gzip"], "min_size": 512},
            "sites": [{"hosts": ["*"], "routes": [
                {"path": "/s/", "handler": "static", "root": str(www), "precompressed": ["gzip"]},
                {"path": "/", "backend": "o"}]}],
            "backends": {"o": {"servers": [f"127.0.0.1:{origin.port}"]}}})
        yield {"origin": origin, "tapwork": tw, "nginx": ng, "caddy": cd, "www": www}
    finally:
        ps.stop_all()
    check_sanitizers(ps)


CODINGS = {"tapwork": ["zstd", "br", "gzip"], "nginx": ["gzip"], "caddy": ["zstd", "gzip"]}


@pytest.mark.parametrize("path", ["/app.js", "/data.json", "/s/app.js", "/s/data.json"])
def test_decoded_bytes_equal_the_origins(peers, path):
    want = (peers["www"] / path.rsplit("/", 1)[1]).read_bytes()
    for name in ("tapwork", "nginx", "caddy"):
        for coding in CODINGS[name]:
            g = curl(peers[name], path, ae=coding)
            assert g.status == 200, (name, coding, g.status)
            got = g.h("content-encoding")
            assert got in (coding, None), (name, coding, got)
            if not path.startswith("/s/") or path == "/s/app.js" and coding == "gzip":
                # compressed answers of the proxies; the precompressed .gz of the file servers
                assert got == coding, (name, path, coding, g.headers)
            assert decode(got, g.body) == want, (name, path, coding)


def row(peer, path, ae="gzip", extra=(), head=False):
    g = curl(peer, path, ae=ae, head=head, extra=list(extra))
    if head:  # curl -I writes the head to the output too: what follows it is the body
        assert g.body.startswith(b"HTTP/1.1 ") and b"\r\n\r\n" in g.body, g.body
        g.body = g.body.split(b"\r\n\r\n", 1)[1]
    return g


def describe(g, head=False):
    ce = g.h("content-encoding") or "-"
    return (f"{g.status} CE={ce} Vary={g.h('vary') or '-'} ETag={'W/' if (g.h('etag') or '').startswith('W/') else ''}"
            f"{'strong' if g.h('etag') and not g.h('etag').startswith('W/') else ('' if g.h('etag') else '-')} "
            f"CL={'y' if g.h('content-length') else '-'} AR={g.h('accept-ranges') or '-'} body={len(g.body)}")


def test_header_behaviour_table(peers, tmp_path):
    names = ("tapwork", "nginx", "caddy")
    cases = {}
    for n in names:
        p = peers[n]
        c = {}
        c["GET gzip"] = full = row(p, "/app.js")
        c["HEAD gzip"] = row(p, "/app.js", head=True)
        etag = full.h("etag")
        c["If-None-Match (its ETag)"] = row(p, "/app.js", extra=["-H", f"If-None-Match: {etag}"]) if etag else None
        c["Range bytes=0-99"] = row(p, "/app.js", extra=["-H", "Range: bytes=0-99"])
        c["no-transform"] = row(p, "/notx.json")
        c["identity"] = row(p, "/app.js", ae="identity")
        c["static GET gzip"] = row(p, "/s/app.js")
        c["static Range"] = row(p, "/s/app.js", extra=["-H", "Range: bytes=0-99"])
        sfull = c["static GET gzip"]
        c["static If-None-Match"] = row(p, "/s/app.js", extra=["-H", f"If-None-Match: {sfull.h('etag')}"])
        cases[n] = c
    lines = [f"{'case':28} | " + " | ".join(f"{n:58}" for n in names)]
    for case in cases["tapwork"]:
        lines.append(f"{case:28} | " + " | ".join(f"{describe(cases[n][case]) if cases[n][case] else 'n/a':58}" for n in names))
    table = "\n".join(lines)
    (tmp_path / "header-table.txt").write_text(table + "\n")
    print("\n" + table)

    t = cases["tapwork"]
    # the rules every peer follows here, and tapwork with them
    for n in names:
        c = cases[n]
        assert c["GET gzip"].h("content-encoding") == "gzip", n
        assert "accept-encoding" in (c["GET gzip"].h("vary") or "").lower(), n
        assert c["HEAD gzip"].body == b"", n
        assert c["identity"].h("content-encoding") is None, n
        assert c["static GET gzip"].h("content-encoding") == "gzip", n
        assert c["static If-None-Match"].status == 304 and c["static If-None-Match"].body == b"", n
    # tapwork's documented rules (nginx and caddy differ on some, shown in the table)
    assert t["GET gzip"].h("etag").startswith("W/")              # a strong ETag made weak
    assert t["GET gzip"].h("accept-ranges") is None and t["GET gzip"].h("content-length") is None
    assert t["If-None-Match (its ETag)"].status == 304          # the weak tag still matches on the way back
    r = t["Range bytes=0-99"]
    assert r.status == 206 and r.h("content-encoding") is None and len(r.body) == 100
    assert t["no-transform"].h("content-encoding") is None
    assert t["static Range"].status == 206 and t["static Range"].h("content-encoding") is None
    assert t["static GET gzip"].h("etag") != t["static Range"].h("etag")  # another representation
    # and nobody compresses a range or what says no-transform
    for n in names:
        assert cases[n]["Range bytes=0-99"].h("content-encoding") is None or cases[n]["Range bytes=0-99"].status == 200, n

"""Routing (Ingress semantics), the 404 answer, and the welcome page."""
import socket

import pytest

from conftest import BIN
from edgeutil import RID_RE, new_session, start_edge, start_upstream, backend, wait_for, port_open


@pytest.fixture
def routed(procs, tmp_path):
    names = ["web", "api", "apiv2", "exact", "other"]
    ups = {n: start_upstream(procs, n) for n in names}
    cfg = {
        "sites": [
            {"hosts": ["app.test", "*.wild.test"],
             "routes": [
                 {"path": "/api", "match": "prefix", "backend": "api"},
                 {"path": "/api/v2", "match": "prefix", "backend": "apiv2"},
                 {"path": "/exact", "match": "exact", "backend": "exact"},
                 {"path": "/", "backend": "web"},
             ]},
            {"hosts": ["*"], "routes": [{"path": "/", "backend": "other"}]},
        ],
        "backends": {n: backend([ups[n]]) for n in names},
    }
    return start_edge(procs, tmp_path, cfg)


CASES = [
    # host, path, upstream expected
    ("app.test", "/", "web"),
    ("app.test", "/anything/else", "web"),
    ("app.test", "/api", "api"),
    ("app.test", "/api/", "api"),
    ("app.test", "/api/x/y?q=1", "api"),
    ("app.test", "/apix", "web"),             # prefix matches whole segments only
    ("app.test", "/api/v2", "apiv2"),         # longest match wins
    ("app.test", "/api/v2/users", "apiv2"),
    ("app.test", "/api/v2x", "api"),
    ("app.test", "/exact", "exact"),
    ("app.test", "/exact/", "web"),           # exact is exact
    ("app.test", "/exact/more", "web"),
    ("APP.Test", "/api", "api"),              # host compared case-insensitively
    ("app.test:8080", "/api", "api"),         # port ignored
    ("app.test.", "/api", "api"),             # trailing dot ignored
    ("a.wild.test", "/api", "api"),           # wildcard, one label
    ("b.wild.test", "/", "web"),
    ("wild.test", "/api", "other"),           # the bare suffix is not covered
    ("a.b.wild.test", "/api", "other"),       # nor two labels
    ("unknown.test", "/api", "other"),        # default site
]


def test_routes(routed):
    for host, path, want in CASES:
        r = routed.get(path, host=host)
        assert r.status_code == 200, (host, path, r.status_code, r.text[:200])
        assert r.headers.get("X-Upstream") == want, (host, path, r.headers.get("X-Upstream"))


def test_host_passed_unchanged(routed):
    r = routed.get("/echo", host="APP.Test:8080")
    assert r.headers["X-Upstream"] == "web"
    got = [v for k, v in r.json()["headers"] if k.lower() == "host"]
    assert got == ["APP.Test:8080"]


def test_404_without_default_site(procs, tmp_path):
    up = start_upstream(procs, "api")
    cfg = {"sites": [{"hosts": ["app.test"], "routes": [{"path": "/api", "backend": "api"}]}],
           "backends": {"api": backend([up])}}
    edge = start_edge(procs, tmp_path, cfg)
    assert edge.get("/api/x", host="app.test").status_code == 200
    for host, path in [("other.test", "/api"), ("app.test", "/"), ("app.test", "/apix")]:
        r = edge.get(path, host=host)
        assert r.status_code == 404, (host, path)
        assert r.text == "404 Not Found\n"
        assert r.headers["Content-Type"].startswith("text/plain")
        assert RID_RE.match(r.headers.get("X-Request-Id", "")), r.headers
        assert "X-Upstream" not in r.headers
    assert up.count() == 1


def _port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def test_welcome_page_without_config(procs, tmp_path):
    if not _port_free(8080) or port_open(8080):
        pytest.skip("127.0.0.1:8080 is busy")
    p = procs.start([BIN, "run"], name="welcome", cwd=str(tmp_path))

    def up():
        assert p.poll() is None, procs.log_of(p)
        return port_open(8080)
    wait_for(up, 15, what="welcome listener")
    r = new_session().get("http://127.0.0.1:8080/", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "tapwork" in r.text
    assert procs.stop(p) == 0

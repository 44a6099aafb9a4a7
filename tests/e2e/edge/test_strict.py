"""Limits (431/414/413) and the strict parser: every malformed request gets a
400, the connection is closed, one error-log line names the request id, and
tapwork keeps serving."""
import pytest

from conftest import Procs
from edgeutil import RID_RE, check_sanitizers, simple_config, start_edge, start_upstream


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    """One tapwork for the whole module (many small cases)."""
    tmp_path = tmp_path_factory.mktemp("strict")
    ps = Procs(tmp_path)
    try:
        up = start_upstream(ps, "web")
        cfg = simple_config([up], hosts=["app.test"])
        cfg["limits"] = {"max_header_bytes": "8k", "max_headers": 50, "max_uri": "2k", "max_body": "1m"}
        # every malformed request's line is checked: no rate limit on them (test_logflood.py)
        cfg["log"] = {"access": str(tmp_path / "access.log"), "level": "info", "rate": 0}
        e = start_edge(ps, tmp_path, cfg)
        e.upstream = up
        yield e
    finally:
        ps.stop_all()
    check_sanitizers(ps)


def still_serving(edge):
    r = edge.get("/echo", host="app.test")
    assert r.status_code == 200, r.text
    assert edge.alive()


def rejected(edge, data, status, must_close):
    c = edge.raw(timeout=10)
    c.send(data)
    r = c.read_final()
    assert r.status == status, (data[:120], r)
    assert (r.header("Content-Type") or "").startswith("text/plain"), r
    assert r.body.startswith(b"%d " % status) and r.body.endswith(b"\n"), r.body
    rid = r.header("X-Request-Id")
    assert rid and RID_RE.match(rid), r
    if must_close:
        assert c.closed_within(5), "connection not closed after the error"
    c.close()
    edge.wait_log(rf"\b{status}\b.*rid={rid}|rid={rid}.*\b{status}\b")
    return r


LIMITS = [
    ("header bytes", b"GET /echo HTTP/1.1\r\nHost: app.test\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
    ("header count", b"GET /echo HTTP/1.1\r\nHost: app.test\r\n"
     + b"".join(b"X-H%d: v\r\n" % i for i in range(60)) + b"\r\n", 431),
    ("uri", b"GET /echo?" + b"q" * 3000 + b" HTTP/1.1\r\nHost: app.test\r\n\r\n", 414),
    ("body", b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 2000000\r\n\r\n", 413),
]


@pytest.mark.parametrize("what,data,status", LIMITS, ids=[x[0] for x in LIMITS])
def test_limits(edge, what, data, status):
    edge.upstream.count(reset=True)
    rejected(edge, data, status, must_close=False)
    still_serving(edge)
    assert edge.upstream.count() == 1  # only still_serving's request got through


def test_limits_allow_just_under(edge):
    ok = (b"GET /echo?" + b"q" * 1500 + b" HTTP/1.1\r\nHost: app.test\r\n"
          + b"".join(b"X-H%d: v\r\n" % i for i in range(40)) + b"X-Big: " + b"a" * 4000 + b"\r\n\r\n")
    assert edge.raw_request(ok).status == 200
    body = b"y" * 900000
    r = edge.raw_request(b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    assert r.status == 200 and r.json()["body_len"] == len(body)


H = b"Host: app.test\r\n"
MALFORMED = [
    ("cl+te", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("te+cl", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"),
    ("duplicate cl", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
    ("invalid cl", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5x\r\n\r\nhello"),
    ("negative cl", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: -5\r\n\r\nhello"),
    ("te gzip chunked", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
    ("te identity", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\n\r\n"),
    ("bare lf", b"GET /echo HTTP/1.1\r\nHost: app.test\nX-A: b\r\n\r\n"),
    ("bare lf only", b"GET /echo HTTP/1.1\nHost: app.test\n\n"),
    ("bare cr", b"GET /echo HTTP/1.1\r\nHost: app.test\rX-A: b\r\n\r\n"),
    ("obs-fold", b"GET /echo HTTP/1.1\r\n" + H + b"X-A: b\r\n  c\r\n\r\n"),
    ("space before colon", b"GET /echo HTTP/1.1\r\n" + H + b"X-A : b\r\n\r\n"),
    ("invalid header name", b"GET /echo HTTP/1.1\r\n" + H + b"X[A]: b\r\n\r\n"),
    ("empty header name", b"GET /echo HTTP/1.1\r\n" + H + b": b\r\n\r\n"),
    ("control char in value", b"GET /echo HTTP/1.1\r\n" + H + b"X-A: a\x01b\r\n\r\n"),
    ("nul in value", b"GET /echo HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n"),
    ("invalid chunk size", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
    ("chunk size overflow", b"POST /echo HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\nhello\r\n0\r\n\r\n"),
    ("absolute-form mismatch", b"GET http://other.test/echo HTTP/1.1\r\n" + H + b"\r\n"),
    ("missing host 1.1", b"GET /echo HTTP/1.1\r\nUser-Agent: t\r\n\r\n"),
    ("two hosts", b"GET /echo HTTP/1.1\r\n" + H + H + b"\r\n"),
    ("bad version", b"GET /echo HTTP/2.7\r\n" + H + b"\r\n"),
    ("space in target", b"GET /ec ho HTTP/1.1\r\n" + H + b"\r\n"),
]


@pytest.mark.parametrize("what,data", MALFORMED, ids=[x[0] for x in MALFORMED])
def test_malformed_rejected(edge, what, data):
    rejected(edge, data, 400, must_close=True)
    still_serving(edge)


def test_absolute_form_matching_host_accepted(edge):
    r = edge.raw_request(b"GET http://app.test/echo?x=1 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert r.status == 200, r
    assert r.json()["path"] == "/echo"


def test_http10_without_host_routes_to_default(procs, tmp_path):
    up = start_upstream(procs, "web")
    edge = start_edge(procs, tmp_path, simple_config([up]))
    r = edge.raw_request(b"GET /echo HTTP/1.0\r\n\r\n")
    assert r.status == 200 and r.header("X-Upstream") == "web", r

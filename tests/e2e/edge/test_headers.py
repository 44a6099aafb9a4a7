"""Request/response header rules: X-Forwarded-*, Forwarded, Via, X-Request-Id,
hop-by-hop stripping."""
import pytest

from edgeutil import RID_RE, echo_of, hdr, simple_config, start_edge, start_upstream


def edge_with_trust(procs, tmp_path, trusted):
    up = start_upstream(procs, "web")
    cfg = simple_config([up], hosts=["app.test"])
    cfg["trusted_proxies"] = trusted
    return start_edge(procs, tmp_path, cfg)


@pytest.fixture
def untrusted(procs, tmp_path):
    return edge_with_trust(procs, tmp_path, ["10.0.0.0/8"])


@pytest.fixture
def trusted(procs, tmp_path):
    return edge_with_trust(procs, tmp_path, ["127.0.0.0/8"])


def test_forwarding_headers_fresh(untrusted):
    r = untrusted.get("/echo", host="app.test")
    e = echo_of(r)
    assert hdr(e, "X-Forwarded-For") == ["127.0.0.1"]
    assert hdr(e, "X-Forwarded-Proto") == ["http"]
    assert hdr(e, "X-Forwarded-Host") == ["app.test"]
    assert hdr(e, "Forwarded") == ["for=127.0.0.1;host=app.test;proto=http"]
    assert hdr(e, "Via") == ["1.1 tapwork"]
    rid = hdr(e, "X-Request-Id")
    assert len(rid) == 1 and RID_RE.match(rid[0]), rid
    assert r.headers["X-Request-Id"] == rid[0]
    assert "1.1 tapwork" in r.headers.get("Via", "")
    # a new id per request
    r2 = untrusted.get("/echo", host="app.test")
    assert RID_RE.match(r2.headers["X-Request-Id"])
    assert r2.headers["X-Request-Id"] != rid[0]


SPOOF = {"X-Forwarded-For": "1.2.3.4", "Forwarded": "for=1.2.3.4", "X-Request-Id": "client-chosen-id-42",
         "Via": "1.0 front", "X-Forwarded-Host": "evil.test", "X-Forwarded-Proto": "https"}


def test_untrusted_peer_values_replaced(untrusted):
    r = untrusted.get("/echo", host="app.test", headers=SPOOF)
    e = echo_of(r)
    assert hdr(e, "X-Forwarded-For") == ["127.0.0.1"]
    assert hdr(e, "Forwarded") == ["for=127.0.0.1;host=app.test;proto=http"]
    assert hdr(e, "X-Forwarded-Host") == ["app.test"]
    assert hdr(e, "X-Forwarded-Proto") == ["http"]
    rid = hdr(e, "X-Request-Id")
    assert len(rid) == 1 and RID_RE.match(rid[0]) and rid[0] != "client-chosen-id-42", rid
    assert r.headers["X-Request-Id"] == rid[0]
    # Via is appended to whatever came in (it is not a trust matter)
    assert hdr(e, "Via") == ["1.0 front, 1.1 tapwork"]


def test_trusted_peer_values_appended(trusted):
    r = trusted.get("/echo", host="app.test", headers=SPOOF)
    e = echo_of(r)
    assert hdr(e, "X-Forwarded-For") == ["1.2.3.4, 127.0.0.1"]
    fwd = hdr(e, "Forwarded")
    assert len(fwd) == 1, fwd
    assert fwd[0].replace(" ", "") == "for=1.2.3.4,for=127.0.0.1;host=app.test;proto=http", fwd
    assert hdr(e, "X-Request-Id") == ["client-chosen-id-42"]
    assert r.headers["X-Request-Id"] == "client-chosen-id-42"
    assert hdr(e, "Via") == ["1.0 front, 1.1 tapwork"]


def test_request_id_generated_when_absent_even_if_trusted(trusted):
    r = trusted.get("/echo", host="app.test")
    rid = hdr(echo_of(r), "X-Request-Id")
    assert len(rid) == 1 and RID_RE.match(rid[0])
    assert r.headers["X-Request-Id"] == rid[0]


def test_hop_by_hop_request_headers_stripped(untrusted):
    c = untrusted.raw()
    c.send(b"GET /echo HTTP/1.1\r\nHost: app.test\r\n"
           b"Connection: keep-alive, X-Secret\r\nX-Secret: s3cret\r\nKeep-Alive: timeout=5\r\n"
           b"Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-Trail\r\n"
           b"X-End-To-End: yes\r\n\r\n")
    r = c.read_final()
    assert r.status == 200, r
    e = r.json()
    for name in ("X-Secret", "Keep-Alive", "Proxy-Connection", "TE", "Trailer"):
        assert hdr(e, name) == [], (name, e["headers"])
    for v in hdr(e, "Connection"):
        assert "x-secret" not in v.lower()
    assert hdr(e, "X-End-To-End") == ["yes"]
    # the client connection stays usable (keep-alive)
    c.send(b"GET /echo HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert c.read_final().status == 200
    c.close()


def test_hop_by_hop_response_headers_stripped(untrusted):
    c = untrusted.raw()
    c.send(b"GET /hop HTTP/1.1\r\nHost: app.test\r\n\r\n")
    r = c.read_final()
    assert r.status == 200 and r.body == b"hop\n", r
    for name in ("X-Up-Secret", "Keep-Alive", "Proxy-Connection", "Trailer", "Upgrade"):
        assert r.header(name) is None, (name, r.headers)
    for v in r.header_all("Connection"):
        assert "x-up-secret" not in v.lower()
    assert r.header("X-End-To-End") == "kept"
    assert r.header("X-Upstream") == "web"
    assert "1.1 tapwork" in (r.header("Via") or "")
    assert RID_RE.match(r.header("X-Request-Id") or "")
    c.close()


def test_non_websocket_upgrade_not_forwarded(untrusted):
    c = untrusted.raw()
    c.send(b"GET /echo HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
           b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
    r = c.read_final()
    assert r.status == 200, r
    e = r.json()
    assert hdr(e, "Upgrade") == [] and hdr(e, "HTTP2-Settings") == [], e["headers"]
    # still plain HTTP/1.1 on this connection
    c.send(b"GET /echo HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert c.read_final().status == 200
    c.close()


def test_response_via_joins_the_upstreams_and_ours(untrusted):
    r = untrusted.raw_request(b"GET /bighead?via=1.1+a&via=1.0+b HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert r.status == 200
    assert [v for k, v in r.headers if k.lower() == "via"] == ["1.1 a, 1.0 b, 1.1 tapwork"]
    # too long to join on one line (over 1 KiB): the upstream's line passes, ours follows it
    long = "1.1 " + "x" * 1500
    r = untrusted.raw_request(f"GET /bighead?via={long.replace(' ', '+')} HTTP/1.1\r\nHost: app.test\r\n\r\n".encode())
    assert r.status == 200
    assert [v for k, v in r.headers if k.lower() == "via"] == [long, "1.1 tapwork"]

"""Client and upstream timeouts: 408 (slow headers/body), idle keep-alive
close, 504 (upstream too slow)."""
import socket
import time

import pytest

from edgeutil import SLACK, simple_config, start_edge, start_upstream

CLIENT_HEADER = 1.0


@pytest.fixture
def edge(procs, tmp_path):
    up = start_upstream(procs, "web")
    cfg = simple_config([up], hosts=["app.test"], response_timeout="500ms")
    cfg["timeouts"] = {"client_header": "1s", "client_body": "1s", "keepalive": "1s"}
    return start_edge(procs, tmp_path, cfg)


def outcome(c, trickle, limit):
    """Trickles bytes (if given) until the peer answers or closes; returns
    (elapsed, bytes received)."""
    t0 = time.monotonic()
    got = b""
    c.sock.settimeout(0.25)
    while time.monotonic() - t0 < limit:
        try:
            data = c.sock.recv(65536)
        except socket.timeout:
            if trickle:
                try:
                    c.sock.sendall(trickle)
                except OSError:
                    break
            continue
        except ConnectionResetError:
            break
        if not data:
            break
        got += data
    return time.monotonic() - t0, got


def assert_408_or_closed(got):
    if got:
        assert got.startswith(b"HTTP/1.1 408 "), got[:200]


def test_slowloris_headers_never_finished(edge):
    c = edge.raw()
    c.send(b"GET /echo HTTP/1.1\r\nHost: app.test\r\n")
    elapsed, got = outcome(c, b"X-Slow: 1\r\n", CLIENT_HEADER + SLACK + 3)
    assert elapsed < CLIENT_HEADER + SLACK, (elapsed, got[:100])
    assert_408_or_closed(got)
    c.close()
    assert edge.get("/echo", host="app.test").status_code == 200


def test_partial_request_line_times_out(edge):
    c = edge.raw()
    c.send(b"GET /ec")
    elapsed, got = outcome(c, None, CLIENT_HEADER + SLACK + 3)
    assert elapsed < CLIENT_HEADER + SLACK, elapsed
    assert_408_or_closed(got)
    c.close()


def test_slow_body_times_out(edge):
    c = edge.raw()
    c.send(b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 100\r\n\r\nabc")
    elapsed, got = outcome(c, None, 1.0 + SLACK + 3)
    assert elapsed < 1.0 + SLACK, elapsed
    assert_408_or_closed(got)
    c.close()


def test_idle_keepalive_closed(edge):
    c = edge.raw()
    c.send(b"GET /echo HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert c.read_final().status == 200
    t0 = time.monotonic()
    assert c.closed_within(1.0 + SLACK + 2)
    elapsed = time.monotonic() - t0
    assert 0.5 <= elapsed < 1.0 + SLACK, elapsed
    c.close()


def test_upstream_too_slow_504(edge):
    t0 = time.monotonic()
    r = edge.get("/slow?ms=3000", host="app.test")
    elapsed = time.monotonic() - t0
    assert r.status_code == 504, r.text
    assert r.text == "504 Gateway Timeout\n"
    assert elapsed < 0.5 + SLACK, elapsed
    edge.wait_log(r"504.*rid=" + r.headers["X-Request-Id"])
    # a fast request right after is fine
    assert edge.get("/slow?ms=10", host="app.test").status_code == 200

"""Listeners accept a connection once its first bytes are there
(TCP_DEFER_ACCEPT, 1 s): a connection that sends nothing waits in the
kernel's SYN queue, is accepted after about a second anyway, and then meets
timeouts.client_header like any other."""
import socket
import subprocess
import time

import pytest

from edgeutil import SLACK, simple_config, start_edge, start_upstream

CLIENT_HEADER = 1.0
DEFER = 1.0  # DEFER_ACCEPT_S in src/edge/worker.c; the kernel's first SYN-ACK retransmission


@pytest.fixture
def edge(procs, tmp_path):
    up = start_upstream(procs, "web")
    cfg = simple_config([up], hosts=["app.test"])
    cfg["timeouts"] = {"client_header": "1s"}
    return start_edge(procs, tmp_path, cfg)


def server_side(port, state):
    """Sockets on the listener's port in this TCP state, as the kernel lists them."""
    out = subprocess.run(["ss", "-Htn", "state", state, f"( sport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout
    return len(out.splitlines())


def connect_seen_unaccepted(port):
    """A connection that sends nothing, and whether the kernel was seen
    holding it as a request socket (SYN-RECV, no file descriptor in
    tapwork) while still inside the deferral. On a loaded machine the look
    can come too late (after DEFER the kernel hands it over): such a look
    proves nothing, so a fresh connection is tried, up to 5 times."""
    for _ in range(5):
        t0 = time.monotonic()
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        time.sleep(0.2)
        syn_recv = server_side(port, "syn-recv")
        established = server_side(port, "established")
        if time.monotonic() - t0 < DEFER * 0.8:
            assert (syn_recv, established) == (1, 0), (syn_recv, established)
            return s, t0
        s.close()
        time.sleep(DEFER + 0.5)  # the closed one leaves the queue
    pytest.skip("the machine is too loaded to look inside the deferral")


def test_silent_connection_waits_in_kernel_then_meets_header_timeout(edge):
    s, t0 = connect_seen_unaccepted(edge.port)
    try:
        # Accepted after the deferral, then closed by the header timeout:
        # not held forever, not closed before the timeout ran.
        s.settimeout(DEFER + CLIENT_HEADER + SLACK + 5)
        try:
            got = s.recv(4096)
        except ConnectionResetError:
            got = b""
        elapsed = time.monotonic() - t0
        assert got == b"" or got.startswith(b"HTTP/1.1 408 "), got[:200]
        assert CLIENT_HEADER <= elapsed < DEFER + CLIENT_HEADER + SLACK + 1.5, elapsed
    finally:
        s.close()
    assert edge.get("/echo", host="app.test").status_code == 200


def read_all(s):
    """Everything the server sends until it closes."""
    got = b""
    while True:
        d = s.recv(65536)
        if not d:
            return got
        got += d


def test_request_sent_after_connect_is_served_at_once(edge):
    s = socket.create_connection(("127.0.0.1", edge.port), timeout=10)
    try:
        time.sleep(0.5)  # well inside the deferral
        t0 = time.monotonic()
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
        got = read_all(s)
        # The first bytes end the deferral: no wait for the retransmission.
        assert time.monotonic() - t0 < 0.5 * SLACK + 0.3
        assert got.startswith(b"HTTP/1.1 200 "), got[:200]
    finally:
        s.close()


def test_many_connections_each_sending_late(edge):
    """Connections whose requests come at different times within the
    deferral are all served (none is lost in the SYN queue)."""
    socks = [socket.create_connection(("127.0.0.1", edge.port), timeout=10) for _ in range(20)]
    try:
        for i, s in enumerate(socks):
            if i % 4 == 0:
                time.sleep(0.05)
            s.sendall(b"GET /echo HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
        for s in socks:
            got = read_all(s)
            assert got.startswith(b"HTTP/1.1 200 "), got[:200]
    finally:
        for s in socks:
            s.close()

"""The new-TLS-connection path (issue 13): a client that opens one connection
per request and resumes its TLS session each time (wrk, browsers, HTTP
libraries with Connection: close) must be able to resume every time, not every
second time: each resumed TLS 1.3 handshake hands out a fresh ticket for the
next (tickets are meant for one use, RFC 8446 C.4). Driven with openssl
s_client, which saves a session file only when the server sends a ticket."""
import os
import socket
import ssl
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from conftest import wait_for  # noqa: E402
from tlsutil import TLSEdge, tls_serving_supported  # noqa: E402
from edgeutil import start_upstream  # noqa: E402

pytestmark = pytest.mark.skipif(not tls_serving_supported(), reason="TLS serving not integrated yet")


def cfg(up):
    return {"sites": [{"hosts": ["app.test"], "routes": [{"path": "/", "backend": "web"}]}],
            "backends": {"web": {"servers": [up.addr]}}}


def one(edge, sess_in, sess_out):
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{edge.https_port}", "-servername", "app.test",
            "-tls1_3", "-CAfile", edge.root, "-ign_eof", "-sess_out", str(sess_out)]
    if sess_in:
        args += ["-sess_in", str(sess_in)]
    r = subprocess.run(args, input=b"GET /echo HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
                       capture_output=True, timeout=20)
    out = r.stdout.decode("latin-1")
    assert "HTTP/1.1 200" in out, out[-2000:]
    return "Reused, TLSv1.3" in out


def test_every_resumed_tls13_connection_gets_a_ticket_for_the_next(procs, tmp_path):
    up = start_upstream(procs, "a")
    edge = TLSEdge(procs, tmp_path, cfg(up))
    prev = None
    for i in range(5):
        out = tmp_path / f"sess{i}.pem"
        reused = one(edge, prev, out)
        assert reused == (i > 0), f"connection {i}: reused={reused}"
        # s_client writes the session file when a NewSessionTicket arrives
        assert out.exists(), f"connection {i} (resumed={reused}) got no session ticket"
        prev = out


def active_conns(edge):
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{edge.admin_port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("tapwork_connections_active "):
                return float(line.split()[1])
    raise AssertionError("no tapwork_connections_active")


def test_connection_close_over_tls_sends_close_notify_and_does_not_wait_for_the_client(procs, tmp_path):
    up = start_upstream(procs, "a")
    edge = TLSEdge(procs, tmp_path, cfg(up))
    ctx = ssl.create_default_context(cafile=edge.root)
    raw = socket.create_connection(("127.0.0.1", edge.https_port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname="app.test")
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
    data = b""
    while True:  # a clean end: recv() returns b"" only after the server's close_notify
        piece = s.recv(65536)
        if not piece:
            break
        data += piece
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    # the client holds its end open and sends no close_notify: the edge
    # closes (close_notify then FIN) without lingering for the client. The
    # gauge drops just after the close, so it may lag the client's read by
    # a moment; a lingering edge would hold the connection until the client
    # closed or timeouts.client_header (10 s) ran out.
    wait_for(lambda: active_conns(edge) == 0, timeout=2, what="the edge's close")
    s.close()


def segs_in(sock):
    """TCP segments this socket received so far (struct tcp_info's
    tcpi_segs_in, Linux >= 4.2)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
    return int.from_bytes(info[140:144], "little")


def tls13_context(edge):
    ctx = ssl.create_default_context(cafile=edge.root)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def request_with_finished(edge, ctx, request, session=None):
    """A TLS 1.3 connection whose client Finished and request leave in one
    send (as a client with its request ready writes them: wrk, browsers).
    Returns what a user sees: the plaintext, whether it ended with
    close_notify, whether the socket ended with a reset, the segments that
    came back after the request, and the TLS session."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="app.test", session=session)
    sock = socket.create_connection(("127.0.0.1", edge.https_port), timeout=10)
    try:
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                if out.pending:
                    sock.sendall(out.read())
                data = sock.recv(65536)
                assert data, "closed during the handshake"
                inc.write(data)
        obj.write(request)
        segs0 = segs_in(sock)
        sock.sendall(out.read())  # Finished + request
        raw, reset = b"", False
        while True:
            try:
                d = sock.recv(65536)
            except ConnectionResetError:
                reset = True
                break
            if not d:
                break
            raw += d
        segs = segs_in(sock) - segs0
        inc.write(raw)
        plain, clean = b"", False
        while True:
            try:
                d = obj.read(65536)
            except ssl.SSLZeroReturnError:
                clean = True
                break
            except ssl.SSLWantReadError:
                break
            if not d:  # SSLObject.read: b"" once close_notify was read
                clean = True
                break
            plain += d
        return plain, clean, reset, segs, obj.session, obj.session_reused
    finally:
        sock.close()


def test_ticket_answer_close_notify_and_fin_arrive_together(procs, tmp_path):
    """The ticket, the answer, close_notify and the FIN of a Connection: close
    request over TLS 1.3 come as one segment (before: four), with no reset;
    the ticket resumes the next connection. A larger answer is not held and
    still arrives whole, ticket first."""
    up = start_upstream(procs, "a")
    edge = TLSEdge(procs, tmp_path, cfg(up))
    req = b"GET /echo HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"
    ctx = tls13_context(edge)
    session, seen = None, []
    for i in range(4):
        plain, clean, reset, segs, session_out, reused = request_with_finished(edge, ctx, req, session)
        assert plain.startswith(b"HTTP/1.1 200"), plain[:200]
        assert b'"path": "/echo"' in plain or b"/echo" in plain
        assert clean, "no close_notify before the end"
        assert not reset, "the connection was reset"
        assert reused == (i > 0), f"connection {i}: resumed={reused}"
        assert session_out is not None and session_out.has_ticket, f"connection {i}: no ticket"
        seen.append(segs)
        session = session_out
    # one data segment, plus at most the kernel's immediate ACK of the
    # request (quick-ack at a connection's start); the old order was ticket,
    # answer, close_notify, FIN: four or more
    assert max(seen) <= 2, f"segments after the request: {seen}"
    big = b"GET /big?bytes=100000 HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"
    plain, clean, reset, segs, session_out, reused = request_with_finished(edge, ctx, big, session)
    assert plain.startswith(b"HTTP/1.1 200"), plain[:200]
    head, _, body = plain.partition(b"\r\n\r\n")
    assert len(body) == 100000, len(body)
    assert clean and not reset and reused and session_out.has_ticket

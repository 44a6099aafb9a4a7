#!/usr/bin/python3
"""A small HTTP/1.1 upstream server for tapwork's edge tests (stdlib only).

    /usr/bin/python3 upstream.py --port P --name NAME [--delay-ms N] [--host 127.0.0.X]

Prints "ready" on stdout once listening. One thread per connection,
keep-alive, request bodies (Content-Length or chunked) are read in pieces,
counted and hashed, never held whole in memory. Every response carries
`X-Upstream: NAME`.

Endpoints
  /echo            JSON: method, path, query, version, headers [[name, value]...],
                   body_len, body_sha256, upstream  (delayed by --delay-ms)
  /status/N        answers status N, body "N\\n" (none for 1xx/204/304)
  /slow?ms=N       sleeps N ms, then 200 "slow\\n"
  /big?bytes=N     N bytes of pattern_bytes() with Content-Length
  /chunked?n=K&size=S  K chunks of S pattern bytes, Transfer-Encoding: chunked
                   (&bad=1: an invalid chunk-size line sent with the last chunk, then close)
  /healthz         200 "ok", or 503 after /health/down (back with /health/up)
  /close           reads the request, then resets the connection (RST, no byte sent)
  /ws              WebSocket handshake (RFC 6455), echoes text/binary frames
  /count           JSON {"count": N, "conns": C}: requests served except /healthz,
                   /health/*, /count; TCP connections accepted; ?reset=1 zeroes count
  /expect          like /echo, plus "expect": the Expect header value or null
  /eof?bytes=N     N pattern bytes, no Content-Length: delimited by closing
  /hop             200 carrying hop-by-hop response headers the proxy must strip
  /bighead?bytes=N 200 "big\\n" whose head carries an X-Pad field of N bytes
                   (&via=V, repeatable: a Via field per V)
Leading path segments are ignored when finding the endpoint ("/api/slow" is
/slow) and unknown paths are /echo, so any routed path gets an answer.
The module is importable: tests use pattern_bytes()/pattern_sha256().
"""
import argparse
import base64
import hashlib
import json
import socket
import struct
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_BLOCK = bytes((i * 7 + 3) & 0xFF for i in range(65536))


def pattern_bytes(offset, n):
    """n bytes of the deterministic pattern starting at offset."""
    out = bytearray()
    while n > 0:
        o = offset % len(_BLOCK)
        take = min(n, len(_BLOCK) - o)
        out += _BLOCK[o:o + take]
        offset += take
        n -= take
    return bytes(out)


def pattern_sha256(n):
    h = hashlib.sha256()
    off = 0
    while off < n:
        take = min(len(_BLOCK), n - off)
        h.update(pattern_bytes(off, take))
        off += take
    return h.hexdigest()


class BadRequest(Exception):
    pass


class Conn:
    """Buffered reader over one client socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        data = self.sock.recv(262144)
        if not data:
            raise EOFError
        self.buf += data

    def read_line(self, limit=65536):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            if len(self.buf) > limit:
                raise BadRequest("line too long")
            self.fill()

    def read_some(self, maxn):
        if not self.buf:
            self.fill()
        take = self.buf[:maxn]
        self.buf = self.buf[len(take):]
        return take

    def read_exact(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


class State:
    def __init__(self, name, delay_ms):
        self.name = name
        self.delay_ms = delay_ms
        self.healthy = True
        self.count = 0
        self.conns = 0  # TCP connections accepted
        self.lock = threading.Lock()


ENDPOINTS = ("/echo", "/expect", "/slow", "/big", "/chunked", "/eof", "/healthz", "/close",
             "/ws", "/count", "/hop", "/bighead", "/health/down", "/health/up")


def endpoint_of(path):
    """The endpoint a path names, ignoring leading segments ("/api/v2/slow" ->
    "/slow") so routes with prefixes reach it; anything unknown is /echo."""
    segs = path.split("/")[1:]
    for i in range(len(segs)):
        cand = "/" + "/".join(segs[i:])
        if cand in ENDPOINTS or (cand.startswith("/status/") and cand[8:].isdigit()):
            return cand
    return "/echo"


def read_head(c):
    line = c.read_line()
    while line == b"":  # tolerate stray CRLF between requests
        line = c.read_line()
    parts = line.decode("latin-1").split(" ")
    if len(parts) != 3:
        raise BadRequest("request line")
    headers = []
    while True:
        h = c.read_line()
        if h == b"":
            break
        name, sep, value = h.decode("latin-1").partition(":")
        if not sep:
            raise BadRequest("header")
        headers.append([name, value.strip(" \t")])
        if len(headers) > 1000:
            raise BadRequest("too many headers")
    return parts[0], parts[1], parts[2], headers


def hget(headers, name):
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def read_body(c, headers, on_before=None):
    """Consumes the request body; returns (length, sha256 hex)."""
    h = hashlib.sha256()
    total = 0
    te = hget(headers, "transfer-encoding")
    cl = hget(headers, "content-length")
    if te is not None and "chunked" in te.lower():
        if on_before:
            on_before()
        while True:
            line = c.read_line().decode("latin-1")
            size = int(line.split(";", 1)[0].strip(), 16)
            if size == 0:
                while c.read_line() != b"":  # trailers
                    pass
                break
            left = size
            while left:
                piece = c.read_some(min(left, 262144))
                h.update(piece)
                left -= len(piece)
            total += size
            if c.read_exact(2) != b"\r\n":
                raise BadRequest("chunk end")
    elif cl is not None:
        left = int(cl)
        if left and on_before:
            on_before()
        while left:
            piece = c.read_some(min(left, 262144))
            h.update(piece)
            total += len(piece)
            left -= len(piece)
    return total, h.hexdigest()


def send_response(sock, st, status, headers=(), body=b"", keep=True, reason=None, head=False):
    reasons = {101: "Switching Protocols", 200: "OK", 204: "No Content", 304: "Not Modified",
               404: "Not Found", 500: "Internal Server Error", 502: "Bad Gateway",
               503: "Service Unavailable"}
    out = [f"HTTP/1.1 {status} {reason or reasons.get(status, 'Status')}",
           f"X-Upstream: {st.name}"]
    out += [f"{k}: {v}" for k, v in headers]
    if status >= 200 and status not in (204, 304):
        out.append(f"Content-Length: {len(body)}")
    if not keep:
        out.append("Connection: close")
    sock.sendall(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + (b"" if head else body))


def ws_loop(c, sock):
    """Echo frames until a close frame or EOF."""
    while True:
        b1, b2 = c.read_exact(2)
        opcode = b1 & 0x0F
        masked = b2 & 0x80
        n = b2 & 0x7F
        if n == 126:
            n = struct.unpack("!H", c.read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", c.read_exact(8))[0]
        mask = c.read_exact(4) if masked else b"\0\0\0\0"
        data = bytearray(c.read_exact(n))
        for i in range(len(data)):
            data[i] ^= mask[i % 4]
        if opcode == 0x8:  # close: answer with the same payload and stop
            sock.sendall(ws_frame(0x8, bytes(data)))
            return
        if opcode == 0x9:
            sock.sendall(ws_frame(0xA, bytes(data)))
        elif opcode in (0x1, 0x2):
            sock.sendall(ws_frame(opcode, bytes(data)))


def ws_frame(opcode, payload):
    n = len(payload)
    if n < 126:
        hdr = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        hdr = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        hdr = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return hdr + payload


def handle_one(c, sock, st):
    """Serves one request. Returns False when the connection must end."""
    method, target, version, headers = read_head(c)
    u = urlsplit(target)
    path = endpoint_of(u.path)
    q = parse_qs(u.query)
    conn_tokens = [t.strip().lower() for t in (hget(headers, "connection") or "").split(",")]
    keep = version == "HTTP/1.1" and "close" not in conn_tokens
    if version == "HTTP/1.0" and "keep-alive" in conn_tokens:
        keep = True
    counted = not (path == "/healthz" or path.startswith("/health/") or path == "/count")
    if counted:
        with st.lock:
            st.count += 1

    expect = hget(headers, "expect")

    def send_continue():
        if expect is not None and expect.lower() == "100-continue":
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

    if path == "/ws":
        key = hget(headers, "sec-websocket-key")
        if key is None or (hget(headers, "upgrade") or "").lower() != "websocket":
            send_response(sock, st, 400, body=b"not a websocket request\n", keep=False)
            return False
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        send_response(sock, st, 101, [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                      ("Sec-WebSocket-Accept", accept)])
        ws_loop(c, sock)
        return False

    blen, bsha = read_body(c, headers, send_continue)

    head = method == "HEAD"

    def respond(status, headers=(), body=b""):
        send_response(sock, st, status, headers, body, keep, head=head)

    if path == "/close":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return False
    if path in ("/echo", "/expect"):
        if st.delay_ms:
            time.sleep(st.delay_ms / 1000.0)
        doc = {"method": method, "path": u.path, "query": u.query, "target": target,
               "version": version, "headers": headers, "body_len": blen,
               "body_sha256": bsha, "upstream": st.name}
        if path == "/expect":
            doc["expect"] = expect
        body = json.dumps(doc).encode()
        respond(200, [("Content-Type", "application/json")], body)
    elif path.startswith("/status/"):
        code = int(path[len("/status/"):])
        body = b"" if code < 200 or code in (204, 304) else f"{code}\n".encode()
        respond(code, [("Content-Type", "text/plain")], body)
    elif path == "/slow":
        time.sleep(int(q.get("ms", ["1000"])[0]) / 1000.0)
        respond(200, [("Content-Type", "text/plain")], b"slow\n")
    elif path == "/big":
        n = int(q.get("bytes", ["0"])[0])
        hdr = (f"HTTP/1.1 200 OK\r\nX-Upstream: {st.name}\r\nContent-Type: application/octet-stream"
               f"\r\nContent-Length: {n}\r\n" + ("" if keep else "Connection: close\r\n") + "\r\n")
        sock.sendall(hdr.encode())
        off = 0
        if method != "HEAD":
            while off < n:
                take = min(len(_BLOCK), n - off)
                sock.sendall(pattern_bytes(off, take))
                off += take
    elif path == "/bighead":
        n = int(q.get("bytes", ["0"])[0])
        respond(200, [("Content-Type", "text/plain"), ("X-Pad", "p" * n)] + [("Via", v) for v in q.get("via", [])],
                b"big\n")
    elif path == "/chunked":
        n = int(q.get("n", ["3"])[0])
        size = int(q.get("size", ["100"])[0])
        hdr = (f"HTTP/1.1 200 OK\r\nX-Upstream: {st.name}\r\nContent-Type: application/octet-stream"
               "\r\nTransfer-Encoding: chunked\r\n" + ("" if keep else "Connection: close\r\n") + "\r\n")
        sock.sendall(hdr.encode())
        off = 0
        bad = bool(q.get("bad"))
        for i in range(n):
            last = bad and i == n - 1  # data and the broken line in one write
            sock.sendall(f"{size:x}\r\n".encode() + pattern_bytes(off, size) + b"\r\n" + (b"zz\r\n" if last else b""))
            off += size
            time.sleep(0.001)
        if bad:
            return False
        sock.sendall(b"0\r\n\r\n")
    elif path == "/eof":
        n = int(q.get("bytes", ["0"])[0])
        sock.sendall(f"HTTP/1.1 200 OK\r\nX-Upstream: {st.name}\r\nContent-Type: application/octet-stream"
                     "\r\nConnection: close\r\n\r\n".encode() + pattern_bytes(0, n))
        return False
    elif path == "/healthz":
        if st.healthy:
            respond(200, [("Content-Type", "text/plain")], b"ok\n")
        else:
            respond(503, [("Content-Type", "text/plain")], b"down\n")
    elif path in ("/health/down", "/health/up"):
        st.healthy = path == "/health/up"
        respond(200, [("Content-Type", "text/plain")], b"done\n")
    elif path == "/count":
        with st.lock:
            n = st.count
            if q.get("reset"):
                st.count = 0
        body = json.dumps({"count": n, "conns": st.conns, "upstream": st.name}).encode()
        respond(200, [("Content-Type", "application/json")], body)
    elif path == "/hop":
        respond(200, [("Connection", "keep-alive, X-Up-Secret"), ("X-Up-Secret", "1"),
                                      ("Keep-Alive", "timeout=5"), ("Proxy-Connection", "keep-alive"),
                                      ("Trailer", "X-Trail"), ("Upgrade", "h2c"),
                                      ("X-End-To-End", "kept")],
                      b"hop\n")
    else:
        respond(404, [("Content-Type", "text/plain")], b"404 upstream\n")
    return keep


def serve_conn(sock, st):
    c = Conn(sock)
    try:
        while handle_one(c, sock, st):
            pass
    except (EOFError, ConnectionError, BadRequest, ValueError, OSError):
        pass
    finally:
        try:
            sock.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--delay-ms", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (a pod IP in k8s tests)")
    a = ap.parse_args()
    st = State(a.name, a.delay_ms)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.host, a.port))
    ls.listen(512)
    print("ready", flush=True)
    while True:
        try:
            s, _ = ls.accept()
        except InterruptedError:
            continue
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with st.lock:
            st.conns += 1
        threading.Thread(target=serve_conn, args=(s, st), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)

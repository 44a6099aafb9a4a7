"""An origin for the compression tests: what it answers is chosen by the query.

    /r?size=N            a text-like body of N bytes (deterministic), Content-Length
       &type=T           Content-Type (default application/json)
       &chunked=P        chunked, in pieces of P bytes (no Content-Length)
       &close=1          no framing at all: the body ends with the connection
       &etag=1           ETag "v1" (strong), answered 304 when If-None-Match names it
                         (compared as strings, as a naive origin does)
       &cc=V             Cache-Control: V
       &ce=V             Content-Encoding: V (the body is sent as it is)
       &cookie=1         Set-Cookie: a=b
       &status=N         that status (206 adds Content-Range)
       &vary=V           Vary: V
    /sse                 text/event-stream: 3 events, 400 ms apart, chunked
    /body?size=N         the body alone, for comparison (as /r would send it)
Prints "ready" once listening."""
import argparse
import socketserver
import sys
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

WORDS = [b"function ", b"return ", b"var ", b"this.", b"value", b" = ", b'{"id": ', b"null, ",
         b"document", b"();\n", b"if (", b"length", b"0x1f", b"window."]


def body_of(n):
    out = bytearray()
    x = 12345
    while len(out) < n:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        out += WORDS[(x >> 16) % len(WORDS)]
    return bytes(out[:n])


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_HEAD(self):
        self.do_GET(head=True)

    def do_GET(self, head=False):
        u = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        if u.path == "/sse":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(3):
                ev = f"data: event {i} {'x' * 40}\n\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(ev), ev))
                self.wfile.flush()
                time.sleep(0.4)
            self.wfile.write(b"0\r\n\r\n")
            return
        size = int(q.get("size", "0"))
        body = body_of(size)
        status = int(q.get("status", "200"))
        etag = '"v1"' if q.get("etag") else None
        if etag and self.headers.get("If-None-Match"):
            tags = [t.strip() for t in self.headers["If-None-Match"].split(",")]
            if etag in tags:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("X-Inm", self.headers["If-None-Match"])
                self.end_headers()
                return
        self.send_response(status)
        self.send_header("Content-Type", q.get("type", "application/json"))
        self.send_header("Accept-Ranges", "bytes")
        if etag:
            self.send_header("ETag", etag)
        for k, h in (("cc", "Cache-Control"), ("ce", "Content-Encoding"), ("vary", "Vary")):
            if k in q:
                self.send_header(h, q[k])
        if q.get("cookie"):
            self.send_header("Set-Cookie", "a=b")
        if status == 206:
            self.send_header("Content-Range", f"bytes 0-{size - 1}/{size * 2}")
        if status in (204, 304):
            self.end_headers()
            return
        if "chunked" in q:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if head:
                return
            p = int(q["chunked"])
            for i in range(0, len(body), p):
                piece = body[i:i + p]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            return
        if q.get("close"):
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            if not head:
                self.wfile.write(body)
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    a = ap.parse_args()
    srv = Server(("127.0.0.1", a.port), H)
    print("ready", flush=True)
    sys.stdout.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()

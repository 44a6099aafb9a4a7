"""Helpers for the HTTP/2 end-to-end tests: a frame-level client that sends
exactly what a test writes (hpack from python3-h2's dependency encodes the
header blocks) and records what the server answers, plus curl/nghttp wrappers.

    c = H2Client(edge.port)                          # preface + empty SETTINGS
    c.request(1, [(":method", "GET"), ...], end_stream=True)
    ev = c.run(lambda ev: ev.done(1), timeout=5)     # reads frames until pred or EOF
    ev.status[1], ev.body[1], ev.rst[1], ev.goaway, ev.closed
"""
import os
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "edge"))

import hpack  # noqa: E402

from edgeutil import ASAN, SLACK, simple_config, start_edge, start_upstream  # noqa: E402,F401

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM = 0, 1, 2, 7, 8, 0xB


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid & 0x7FFFFFFF) + payload


class Events:
    def __init__(self):
        self.status = {}       # stream -> int
        self.headers = {}      # stream -> [(name, value)]
        self.body = {}         # stream -> bytes
        self.ended = set()     # streams with END_STREAM from the server
        self.rst = {}          # stream -> error code
        self.goaway = None     # (last_stream, error code)
        self.settings = {}     # server SETTINGS
        self.closed = False
        self.frames = 0

    def done(self, sid):
        return sid in self.ended or sid in self.rst or self.closed

    def header(self, sid, name):
        for k, v in self.headers.get(sid, []):
            if k == name:
                return v
        return None


class H2Client:
    def __init__(self, port, timeout=10.0, settings=b""):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.dec.max_header_list_size = 1 << 24
        self.buf = b""
        self.ev = Events()
        self.hblock = {}
        self.send(PREFACE + frame(SETTINGS, 0, 0, settings))

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self.ev.closed = True

    def block(self, headers):
        return self.enc.encode(headers)

    def request(self, sid, headers, end_stream=True, body=None):
        flags = END_HEADERS | (END_STREAM if end_stream and body is None else 0)
        out = frame(HEADERS, flags, sid, self.block(headers))
        if body is not None:
            out += frame(DATA, END_STREAM if end_stream else 0, sid, body)
        self.send(out)

    def get(self, sid, path="/echo", authority="app.test", extra=()):
        hs = [(":method", "GET"), (":scheme", "http"), (":authority", authority), (":path", path)] + list(extra)
        self.request(sid, hs)

    def _frames(self):
        while len(self.buf) >= 9:
            n = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + n:
                return
            ftype, flags = self.buf[3], self.buf[4]
            sid = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            payload = self.buf[9:9 + n]
            self.buf = self.buf[9 + n:]
            self._on_frame(ftype, flags, sid, payload)

    def _on_frame(self, ftype, flags, sid, p):
        ev = self.ev
        ev.frames += 1
        if ftype == SETTINGS and not flags & ACK:
            for i in range(0, len(p) - 5, 6):
                k, v = struct.unpack(">HI", p[i:i + 6])
                ev.settings[k] = v
            self.send(frame(SETTINGS, ACK, 0))
        elif ftype in (HEADERS, CONTINUATION):
            if ftype == HEADERS:
                pad = 0
                if flags & 0x8:
                    pad = p[0]
                    p = p[1:]
                if flags & 0x20:
                    p = p[5:]
                if pad:
                    p = p[:-pad]
                self.hblock[sid] = [p, flags & END_STREAM]
            else:
                self.hblock[sid][0] += p
            if flags & END_HEADERS:
                blk, es = self.hblock.pop(sid)
                hs = [(k if isinstance(k, str) else k.decode(), v if isinstance(v, str) else v.decode())
                      for k, v in self.dec.decode(blk)]
                for k, v in hs:
                    if k == ":status":
                        ev.status[sid] = int(v)
                ev.headers.setdefault(sid, []).extend(hs)
                if es:
                    ev.ended.add(sid)
        elif ftype == DATA:
            if flags & 0x8:
                p = p[1:len(p) - p[0]]
            ev.body[sid] = ev.body.get(sid, b"") + p
            if len(p):
                # give the window back so big answers flow
                self.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", len(p))) +
                          frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", len(p))))
            if flags & END_STREAM:
                ev.ended.add(sid)
        elif ftype == RST_STREAM:
            ev.rst[sid] = struct.unpack(">I", p[:4])[0]
        elif ftype == GOAWAY:
            last, code = struct.unpack(">II", p[:8])
            ev.goaway = (last & 0x7FFFFFFF, code)

    def run(self, pred=None, timeout=5.0):
        """Reads frames until pred(events) is true, the server closes, or timeout."""
        deadline = time.monotonic() + timeout
        while not (pred and pred(self.ev)) and not self.ev.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(min(left, 1.0))
            try:
                data = self.sock.recv(262144)
            except socket.timeout:
                continue
            except (ConnectionResetError, OSError):
                self.ev.closed = True
                break
            if not data:
                self.ev.closed = True
                break
            self.buf += data
            self._frames()
        return self.ev


def curl(edge, path, *args, host="app.test", timeout=60):
    """curl with HTTP/2 prior knowledge; returns CompletedProcess (stdout bytes)."""
    cmd = ["curl", "-sS", "--http2-prior-knowledge", "--max-time", str(timeout), "-H", f"Host: {host}",
           *args, f"http://127.0.0.1:{edge.port}{path}"]
    return subprocess.run(cmd, capture_output=True, timeout=timeout + 10)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def https_supported(bin_path):
    """Does this tapwork accept an `https` listener (the TLS front)?"""
    out = subprocess.run([bin_path, "config-docs"], capture_output=True, text=True, timeout=20).stdout
    return "| `https` |" in out

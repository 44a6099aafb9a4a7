#!/usr/bin/python3
"""Hold many idle HTTP/1.1 keep-alive client connections open to one proxy.

usage: idle_conns.py HOST PORT COUNT READY_FILE [--path /small] [--hold 60] [--no-request]

Opens COUNT connections (in waves, so the listen backlog never overflows), sends
one keep-alive GET on each and reads its whole response (so every connection has
served a request and sits idle in the proxy's keep-alive state), then writes
"ok=N failed=M" to READY_FILE and waits. It exits after --hold seconds or on
SIGTERM, closing every socket with a reset (SO_LINGER 0) so no TIME_WAIT is left
behind. With --no-request the connections stay fresh (accepted, nothing sent).
"""
import argparse
import os
import resource
import selectors
import signal
import socket
import struct
import sys
import time

WAVE = 500           # connections in flight at once while opening
STEP_TIMEOUT = 10.0  # seconds allowed for one wave


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def response_complete(buf):
    """True once buf holds a whole response with a Content-Length body (or no body)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    length = 0
    for line in buf[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return len(buf) >= end + 4 + length


def open_wave(host, port, n, request):
    """Open n connections; return (open sockets, failures)."""
    sel = selectors.DefaultSelector()
    socks, failed = [], 0
    state = {}
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.setblocking(False)
        s.connect_ex((host, port))
        state[s] = b""
        sel.register(s, selectors.EVENT_WRITE)
    deadline = time.monotonic() + STEP_TIMEOUT
    pending = len(state)
    while pending and time.monotonic() < deadline:
        for key, ev in sel.select(timeout=0.5):
            s = key.fileobj
            try:
                if ev & selectors.EVENT_WRITE:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, "connect")
                    if not request:
                        sel.unregister(s)
                        socks.append(s)
                        pending -= 1
                        continue
                    s.send(request)
                    sel.modify(s, selectors.EVENT_READ)
                else:
                    chunk = s.recv(65536)
                    if not chunk:
                        raise OSError("closed by peer")
                    state[s] += chunk
                    if response_complete(state[s]):
                        sel.unregister(s)
                        socks.append(s)
                        pending -= 1
            except OSError:
                sel.unregister(s)
                s.close()
                failed += 1
                pending -= 1
    for key in list(sel.get_map().values()):
        key.fileobj.close()
        failed += 1
    sel.close()
    return socks, failed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("count", type=int)
    ap.add_argument("ready_file")
    ap.add_argument("--path", default="/small")
    ap.add_argument("--hold", type=float, default=60.0)
    ap.add_argument("--no-request", action="store_true")
    a = ap.parse_args()

    limit = raise_nofile(a.count + 64)
    if limit < a.count + 16:
        sys.exit("RLIMIT_NOFILE is %d, need %d" % (limit, a.count + 16))
    request = None
    if not a.no_request:
        request = ("GET %s HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: idle-conns\r\n\r\n" % a.path).encode()

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    held, failed = [], 0
    while len(held) + failed < a.count and not stop:
        n = min(WAVE, a.count - len(held) - failed)
        socks, bad = open_wave(a.host, a.port, n, request)
        held += socks
        failed += bad
    with open(a.ready_file + ".tmp", "w") as f:
        f.write("ok=%d failed=%d\n" % (len(held), failed))
    os.rename(a.ready_file + ".tmp", a.ready_file)
    deadline = time.monotonic() + a.hold
    while not stop and time.monotonic() < deadline:
        time.sleep(0.1)
    for s in held:
        s.close()


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""An HTTP/1.1 upstream that accepts at most --cap connections at a time, as a
Node.js app behind `server.maxConnections` does: a connection beyond the cap
is reset at once. stdlib asyncio only.

    /usr/bin/python3 capped_upstream.py --port P --cap N

Prints "ready" once listening. Every request (Content-Length or chunked body)
is answered 200 with the body "<bytes of body>\\n"; keep-alive. GET /stats
answers JSON {"active", "max_active", "rejected", "requests"} (it needs a
connection slot like any other request).
"""
import argparse
import asyncio
import json
import sys

STATS = {"active": 0, "max_active": 0, "rejected": 0, "requests": 0}


async def read_body(reader, headers):
    te = headers.get("transfer-encoding", "").lower()
    if "chunked" in te:
        n = 0
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return n
            await reader.readexactly(size + 2)
            n += size
    cl = int(headers.get("content-length", "0") or 0)
    left = cl
    while left > 0:
        chunk = await reader.read(min(left, 65536))
        if not chunk:
            raise EOFError
        left -= len(chunk)
    return cl


async def handle(reader, writer, cap):
    if STATS["active"] >= cap:
        STATS["rejected"] += 1
        sock = writer.get_extra_info("socket")
        try:
            import socket
            import struct
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        writer.close()
        return
    STATS["active"] += 1
    STATS["max_active"] = max(STATS["max_active"], STATS["active"])
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for ln in lines[1:]:
                if ":" in ln:
                    k, v = ln.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            n = await read_body(reader, headers)
            STATS["requests"] += 1
            body = (json.dumps(STATS) if path == "/stats" else f"{n}").encode() + b"\n"
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: text/plain\r\n\r\n" % len(body)
                         + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, EOFError, ConnectionError, ValueError, asyncio.LimitOverrunError):
        pass
    finally:
        STATS["active"] -= 1
        writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cap", type=int, default=512)
    a = ap.parse_args()
    server = await asyncio.start_server(lambda r, w: handle(r, w, a.cap), "127.0.0.1", a.port, backlog=4096)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)

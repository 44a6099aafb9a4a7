"""handler: static under load and while files change (docs/static.md):
10,000 concurrent slow readers of one file with tapwork's RSS bounded, and
the open-file cache's promises (a change in place seen at once, a file
replaced by rename seen within its 1 s, never new bytes under an old ETag)."""
import hashlib
import os
import resource
import select
import socket
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "edge"))
sys.path.insert(0, HERE)

from edgeutil import ASAN, start_edge  # noqa: E402
from test_compress import curl  # noqa: E402

READERS = 10000
FILE_SIZE = 256 * 1024
# tapwork's RSS growth with 10,000 answers in flight: the connection and
# request objects (~5 KiB each, measured), not the file nor I/O buffers
# (sendfile: the bytes stay in the page cache and the socket buffers, which
# are the kernel's; the input and output buffers go back to the pool once
# the head is out). Before that: 96 MiB.
RSS_BUDGET_KIB = 64 * 1024


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def test_10k_slow_readers_rss_bounded(procs, tmp_path):
    if raise_nofile(READERS + 512) < READERS + 512:
        pytest.skip("RLIMIT_NOFILE hard limit below 10,000 connections")
    root = tmp_path / "www"
    root.mkdir()
    data = os.urandom(FILE_SIZE)
    (root / "big.bin").write_bytes(data)
    # tapwork inherits the raised limit from this process
    e = start_edge(procs, tmp_path, {"workers": 1, "sites": [{"hosts": ["*"], "routes": [
        {"path": "/", "handler": "static", "root": str(root)}]}]})
    assert curl(e, "/big.bin").body == data
    base = e.rss_kib()
    req = b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n"
    socks = []
    deadline = time.monotonic() + 60
    peak = base
    try:
        for i in range(READERS):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow reader: a small window
            s.settimeout(10)
            s.connect(("127.0.0.1", e.port))
            s.sendall(req)
            s.setblocking(False)
            socks.append(s)
            if i % 1000 == 999:
                peak = max(peak, e.rss_kib())
            assert time.monotonic() < deadline, f"only {i} connections in 60 s"
        # every reader gets its head and the start of the body, slowly: a
        # few KiB from each per round, while tapwork holds 10,000 answers open
        got = {}
        rounds_deadline = time.monotonic() + 40
        while True:
            for k, s in enumerate(socks):
                if len(got.get(k, b"")) >= 4096:
                    continue
                try:
                    b = s.recv(2048)
                except BlockingIOError:
                    b = b""
                got[k] = got.get(k, b"") + b
            peak = max(peak, e.rss_kib())
            started = sum(1 for v in got.values() if v.startswith(b"HTTP/1.1 200 "))
            if started == READERS or time.monotonic() > rounds_deadline:
                break
            time.sleep(0.2)
        assert started == READERS, f"only {started} of {READERS} answers started in 40 s"
        grew = peak - base
        if not ASAN:  # ASan's allocator and shadow memory make RSS meaningless
            assert grew < RSS_BUDGET_KIB, f"RSS grew by {grew} KiB with {READERS} slow readers"
        print(f"\n10,000 slow readers: RSS {base} KiB -> peak {peak} KiB (+{grew} KiB, {grew * 1024 // READERS} B each)")
        # a few of them read to the end: every byte is the file's
        for s in socks[:20]:
            s.setblocking(True)
            s.settimeout(20)
            buf = b""
            k = socks.index(s)
            buf = got[k]
            while True:
                head_end = buf.find(b"\r\n\r\n")
                if head_end >= 0 and len(buf) - head_end - 4 >= FILE_SIZE:
                    break
                b = s.recv(65536)
                assert b, "closed early"
                buf += b
            assert hashlib.sha256(buf[head_end + 4:head_end + 4 + FILE_SIZE]).digest() == hashlib.sha256(data).digest()
        # and the server still answers others at once
        t0 = time.monotonic()
        assert curl(e, "/big.bin").body == data
        assert time.monotonic() - t0 < 5
    finally:
        for s in socks:
            s.close()
    # the connections close: the server lets them go
    for _ in range(100):
        if e.rss_kib() <= peak and e.alive():
            break
        time.sleep(0.05)
    assert e.alive()


def test_file_cache_sees_changes(procs, tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    f = root / "a.txt"
    f.write_bytes(b"one\n")
    e = start_edge(procs, tmp_path, {"sites": [{"hosts": ["*"], "routes": [
        {"path": "/", "handler": "static", "root": str(root)}]}]})
    # several requests: the second worker's cache too
    first = [curl(e, "/a.txt") for _ in range(4)]
    assert all(g.body == b"one\n" for g in first)
    etag1 = first[0].h("etag")
    # a change in place (same inode, another size and mtime): seen at once
    with open(f, "r+b") as w:
        w.write(b"two, longer\n")
    for _ in range(4):
        g = curl(e, "/a.txt")
        assert g.body == b"two, longer\n" and g.h("etag") != etag1
    etag2 = g.h("etag")
    # replaced by rename: within about 1 s the new file; before, the old
    # file's bytes under the old file's ETag, never a mix
    tmp = root / "a.txt.new"
    tmp.write_bytes(b"three\n")
    os.utime(tmp, (1_000_000_000, 1_000_000_000))
    os.rename(tmp, f)
    t0 = time.monotonic()
    seen_new = False
    while time.monotonic() - t0 < 3:
        g = curl(e, "/a.txt")
        assert (g.body, g.h("etag")) in ((b"two, longer\n", etag2), (b"three\n", g.h("etag")))
        if g.body == b"three\n":
            assert g.h("etag") not in (etag1, etag2)
            seen_new = True
            if time.monotonic() - t0 > 1.3:
                break
        else:
            assert time.monotonic() - t0 < 1.3, "the renamed file was not seen after the cache's 1 s"
    assert seen_new
    # removed: 404 within about 1 s; created again: served within about 1 s
    os.unlink(f)
    t0 = time.monotonic()
    while curl(e, "/a.txt").status != 404:
        assert time.monotonic() - t0 < 1.5
        time.sleep(0.05)
    f.write_bytes(b"four\n")
    t0 = time.monotonic()
    while curl(e, "/a.txt").body != b"four\n":
        assert time.monotonic() - t0 < 1.5
        time.sleep(0.05)

"""PITR restore writes the large files of a data directory with O_DIRECT
(src/backup/restore.c, opts.direct from src/pg/restore.c): the bytes are
the same as written through the page cache, files that are not aligned
(an odd size, stored uncompressed) still come back whole, and the large
relation files are not left in the page cache after the restore."""
import ctypes
import hashlib
import mmap
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "backup"))
from bkhelp import json_lines  # noqa: E402
import pgutil  # noqa: E402
from pitrsite import ArchiveSite, module_site  # noqa: E402

pytestmark = pytest.mark.skipif(pgutil.missing() is not None, reason=str(pgutil.missing()))

TMPFS_MAGIC = 0x01021994
ODD = 3 * 1024 * 1024 + 1234  # incompressible, not a multiple of any block size


class Site(ArchiveSite):
    def backup(self):
        r = self.tw("backup", "--json", "--pg-data", self.pg.dir, "--postgres",
                    self.pg.url("postgres"), check=0, timeout=300)
        return json_lines(r.out)[-1]


site = module_site(Site)


def resident(path):
    """Pages of path in the page cache (mincore over a read-only mapping)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert addr not in (None, ctypes.c_void_p(-1).value), ctypes.get_errno()
        pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        vec = ctypes.create_string_buffer(pages)
        rc = libc.mincore(ctypes.c_void_p(addr), size, vec)
        libc.munmap(ctypes.c_void_p(addr), size)
        assert rc == 0, ctypes.get_errno()
        return sum(b & 1 for b in vec.raw), pages
    finally:
        os.close(fd)


def on_tmpfs(path):
    class StatFs(ctypes.Structure):
        _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_long * 15)]
    st = StatFs()
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.statfs(path.encode(), ctypes.byref(st)) == 0
    return st.f_type == TMPFS_MAGIC


def test_direct_restore_of_large_and_odd_files(site):
    pg = site.pg
    # a relation of a few MiB (written directly) and a file of an odd size
    # with random bytes (stored uncompressed: a misaligned plaintext, an
    # unaligned tail: the bounce buffer, then the page cache)
    pg.psql("postgres", "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS h "
                        "FROM generate_series(1, 100000) g; CHECKPOINT")
    odd = os.urandom(ODD)
    with open(os.path.join(pg.dir, "odd.bin"), "wb") as f:
        f.write(odd)
    rel = pg.psql("postgres", "SELECT pg_relation_filepath('big')").stdout.strip()
    assert os.path.getsize(os.path.join(pg.dir, rel)) >= 4 << 20
    want = pg.psql("postgres", "SELECT count(*), md5(string_agg(h, ',' ORDER BY id)) FROM big"
                   ).stdout.strip()
    site.backup()
    site.switch()
    target = site.restore("--pg-target", "immediate", "--pg-target-action", "promote",
                          start=False)
    with open(os.path.join(target, "odd.bin"), "rb") as f:
        assert hashlib.sha256(f.read()).digest() == hashlib.sha256(odd).digest()
    if not on_tmpfs(target):
        # written past the page cache: (nearly) nothing of it is resident
        # (buffered writes leave every page of it there)
        got, pages = resident(os.path.join(target, rel))
        assert got <= pages // 10, f"{got} of {pages} pages of {rel} in the page cache"
    p = site.start(target, os.path.dirname(target))
    pgutil.wait_promoted(p)
    assert p.psql("postgres", "SELECT count(*), md5(string_agg(h, ',' ORDER BY id)) FROM big"
                  ).stdout.strip() == want
    r = p.psql("postgres", "SELECT 1", check=False)
    assert r.returncode == 0

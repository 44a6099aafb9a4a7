"""Synthetic WAL files for tests that need no server: a 16 MiB segment whose
first page carries a valid long page header (XLogLongPageHeaderData of
PostgreSQL 15) for a given system identifier, 4 KiB of deterministic
pseudo-random bytes after it and zeros to the end; a pg_control whose first
8 bytes are the system identifier (all archive-push and archive-get read of it)."""
import hashlib
import os
import struct

SEG_SIZE = 16 << 20
PG15_MAGIC = 0xD110
SYSID = 7449960134312345678


def segment(segno, sysid=SYSID, tli=1, seed=b"tapwork walsynth"):
    hdr = struct.pack("<HHIQI4xQII", PG15_MAGIC, 0x0002, tli, segno * SEG_SIZE, 0, sysid,
                      SEG_SIZE, 8192)
    body = b"".join(hashlib.sha256(seed + struct.pack("<QI", segno, i)).digest()
                    for i in range(128))
    data = hdr + body
    return data + bytes(SEG_SIZE - len(data))


def seg_name(segno, tli=1):
    return "%08X%08X%08X" % (tli, segno >> 8, segno & 0xFF)


def pgdata(path, sysid=SYSID):
    os.makedirs(os.path.join(path, "global"), exist_ok=True)
    with open(os.path.join(path, "global", "pg_control"), "wb") as f:
        f.write(struct.pack("<Q", sysid) + bytes(8184))

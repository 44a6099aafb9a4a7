#!/usr/bin/env python3
"""bench/tools/pgdelta.py — what page deltas would save in a physical incremental.

usage: bench/tools/pgdelta.py PARENT_PGDATA CHILD_PGDATA

Both data directories are copies of one cluster taken with the server
stopped (the parent before a workload, the child after it). For every 64 KiB
unit of a relation file in the child's base/ that differs from the parent's
unit at the same offset (what an incremental stores new), it prints the
stored bytes two ways, with libzstd (ctypes):
  whole — the unit compressed on its own (level 6 stands in for the
          index-page profile: same size), plus 152 B of per-blob metadata
          (AEAD 28, pack-header entry 46, index entry 46, tree ID 32);
  delta — only the 8 KiB pages that differ from the parent's unit,
          compressed together, plus a 1-byte page bitmap, the base unit's
          ID in the blob (32) and in its pack-header and index entries
          (2 x 32), plus the same 152 B; the smaller of the two is taken.
Relation units only: add the tree blobs and other files of a real run (its
growth minus the "whole" column) to either figure.
"""
import ctypes
import os
import sys

PAGE, UNIT, META, BASE_REF = 8192, 65536, 152, 1 + 32 + 2 * 32

z = ctypes.CDLL("libzstd.so.1")
z.ZSTD_compress.restype = ctypes.c_size_t
z.ZSTD_compress.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                            ctypes.c_size_t, ctypes.c_int]
z.ZSTD_isError.argtypes = [ctypes.c_size_t]
_buf = ctypes.create_string_buffer(2 * UNIT)


def zlen(b, level):
    n = z.ZSTD_compress(_buf, len(_buf), b, len(b), level)
    if z.ZSTD_isError(n):
        sys.exit("zstd failed")
    return n


def is_index(u):
    """The rule of src/pg/pgdata.c tw_pgdata_zprofile."""
    valid = special = 0
    for o in range(0, len(u) - PAGE + 1, PAGE):
        h = u[o:o + 20]
        sv, lo, up, sp = (h[18] | h[19] << 8, h[12] | h[13] << 8, h[14] | h[15] << 8,
                          h[16] | h[17] << 8)
        if sv != (PAGE | 4) or lo < 24 or lo > up or up > sp or sp > PAGE:
            continue
        valid += 1
        special += sp < PAGE
    return special * 2 > valid


def rel_files(root):
    for d, _, files in os.walk(os.path.join(root, "base")):
        for f in sorted(files):
            if f[0].isdigit():
                yield os.path.relpath(os.path.join(d, f), root)


def main():
    if len(sys.argv) != 3 or sys.argv[1] in ("-h", "--help"):
        sys.exit(__doc__)
    parent, child = sys.argv[1], sys.argv[2]
    whole = delta = units = deltas = 0
    by_pages = [0] * (UNIT // PAGE + 1)
    for rel in rel_files(child):
        with open(os.path.join(child, rel), "rb") as f:
            cb = f.read()
        try:
            with open(os.path.join(parent, rel), "rb") as f:
                pb = f.read()
        except FileNotFoundError:
            pb = b""
        for off in range(0, len(cb), UNIT):
            u, base = cb[off:off + UNIT], pb[off:off + UNIT]
            if u == base:
                continue
            w = zlen(u, 6 if is_index(u) else 3) + META
            units += 1
            whole += w
            if len(base) != len(u) or len(u) % PAGE:
                delta += w
                continue
            changed = [i for i in range(0, len(u), PAGE) if u[i:i + PAGE] != base[i:i + PAGE]]
            by_pages[len(changed)] += 1
            d = zlen(b"".join(u[i:i + PAGE] for i in changed), 6 if is_index(u) else 3)
            d += BASE_REF + META
            if d < w:
                delta += d
                deltas += 1
            else:
                delta += w
    mib = 1048576
    print(f"changed 64 KiB units: {units}")
    print(f"stored whole:       {whole / mib:.2f} MiB")
    print(f"with page deltas:   {delta / mib:.2f} MiB ({deltas} deltas)")
    print("units by changed pages (0..8): " + " ".join(map(str, by_pages)))


if __name__ == "__main__":
    main()

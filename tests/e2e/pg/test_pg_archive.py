"""The WAL object format of src/pg/archive.c, through the real binary:
archive-push writes version 2 (16-byte header, one zstd frame with its
content checksum, or the raw bytes), archive-get and a repeated push still
read version 1 objects (a repository written by the last binary that wrote
them, tests/e2e/pg/fixtures/walobj-v1), and a damaged object of either kind
stops recovery (archive-get exit 126, nothing at DEST).

No server is needed: the segments are synthetic (walsynth.py) with a valid
long page header, and the objects are opened and re-sealed here with the
repository's key (docs/repository-format.md "Keys", "WAL archive") to make
damage that the AEAD tag alone would not catch.
"""
import hashlib
import json
import os
import shutil
import struct
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "backup"))
from bkhelp import PASSWORD, tw  # noqa: E402
import walsynth  # noqa: E402

AESGCM = pytest.importorskip("cryptography.hazmat.primitives.ciphers.aead").AESGCM

FIXTURE = os.path.join(HERE, "fixtures", "walobj-v1")
HISTORY = b"1\t0/3000000\tno recovery target specified\n"
SYSHEX = "%016X" % walsynth.SYSID
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def enc_key(repo, password=PASSWORD):
    """The repository's AES-256-GCM key: the first 32 of the master keys
    that its key file wraps for password."""
    kdir = os.path.join(repo, "keys")
    with open(os.path.join(kdir, sorted(os.listdir(kdir))[0])) as f:
        k = json.load(f)
    kek = hashlib.scrypt(password.encode(), salt=bytes.fromhex(k["salt"]), n=k["N"], r=k["r"],
                         p=k["p"], maxmem=1 << 28, dklen=32)
    d = bytes.fromhex(k["data"])
    return AESGCM(kek).decrypt(d[:12], d[12:], b"tapwork/v1/key")[:32]


def obj_path(repo, wal):
    return os.path.join(repo, "wal", f"{SYSHEX}-{wal}")


def unseal(key, repo, wal):
    with open(obj_path(repo, wal), "rb") as f:
        b = f.read()
    return AESGCM(key).decrypt(b[:12], b[12:], f"tapwork/v1/wal/{SYSHEX}-{wal}".encode())


def reseal(key, repo, wal, pt):
    nonce = os.urandom(12)
    ct = AESGCM(key).encrypt(nonce, pt, f"tapwork/v1/wal/{SYSHEX}-{wal}".encode())
    with open(obj_path(repo, wal), "wb") as f:
        f.write(nonce + ct)


@pytest.fixture
def site(tmp_path):
    s = type("S", (), {})()
    s.dir = str(tmp_path)
    s.pgdata = os.path.join(s.dir, "pgdata")
    walsynth.pgdata(s.pgdata)
    return s


def new_repo(site):
    repo = os.path.join(site.dir, "repo")
    tw(repo, "repo", "init", check=0)
    return repo


def push(site, repo, wal, data, check=0):
    path = os.path.join(site.dir, "in", wal)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return tw(repo, "pg", "archive-push", "--pg-data", site.pgdata, path, check=check)


def get(site, repo, wal, check=0):
    dest = os.path.join(site.dir, "dest")
    for p in (dest, dest + ".tapwork-tmp"):
        if os.path.exists(p):
            os.unlink(p)
    r = tw(repo, "pg", "archive-get", "--prefetch", "0", "--pg-data", site.pgdata, wal, dest,
           check=check)
    if check != 0:  # PostgreSQL must find nothing at %p, and nothing is left behind
        assert not os.path.exists(dest) and not os.path.exists(dest + ".tapwork-tmp")
        return r, None
    with open(dest, "rb") as f:
        return r, f.read()


def test_push_writes_version_2(site):
    repo = new_repo(site)
    key = enc_key(repo)
    seg, name = walsynth.segment(5), walsynth.seg_name(5)
    push(site, repo, name, seg)
    pt = unseal(key, repo, name)
    version, codec, raw = pt[0], pt[1], struct.unpack_from("<Q", pt, 8)[0]
    assert (version, codec, pt[2:8], raw) == (2, 1, bytes(6), len(seg)), pt[:16]
    frame = pt[16:]
    assert frame[:4] == ZSTD_MAGIC and frame[4] & 0x04, frame[:8]  # content checksum on
    assert get(site, repo, name)[1] == seg
    # a small file zstd cannot shrink is stored raw
    push(site, repo, "00000002.history", HISTORY)
    pt = unseal(key, repo, "00000002.history")
    assert pt[:2] == b"\x02\x00" and pt[16:] == HISTORY
    assert get(site, repo, "00000002.history")[1] == HISTORY
    # the contract of a repeated push, now by comparing the whole content
    r = push(site, repo, name, seg)
    assert "archived already (same content)" in r.err
    other = seg[:9000] + b"X" + seg[9001:]
    r = push(site, repo, name, other, check=1)
    assert "different content" in r.err
    r = push(site, repo, "00000002.history", HISTORY + b"2\t0/4000000\tx\n", check=1)
    assert "different content" in r.err
    assert get(site, repo, name)[1] == seg
    assert get(site, repo, "00000002.history")[1] == HISTORY


def test_version_1_objects_are_still_read(site):
    repo = os.path.join(site.dir, "repo")
    shutil.copytree(FIXTURE, repo, ignore=shutil.ignore_patterns("README.md"))
    for d in ("data", "index", "locks", "snapshots"):
        os.makedirs(os.path.join(repo, d), exist_ok=True)
    key = enc_key(repo)
    seg, name = walsynth.segment(3), walsynth.seg_name(3)
    pt = unseal(key, repo, name)
    assert pt[:2] == b"\x01\x01" and pt[16:48] == hashlib.sha256(seg).digest()  # really v1
    assert unseal(key, repo, "00000002.history")[:2] == b"\x01\x00"
    assert unseal(key, repo, "cluster")[0] == 1
    assert get(site, repo, name)[1] == seg
    assert get(site, repo, "00000002.history")[1] == HISTORY
    # a repeated push compares with the v1 object; the v1 registration is read
    r = push(site, repo, name, seg)
    assert "archived already (same content)" in r.err
    r = push(site, repo, name, seg[:-1] + b"\x01", check=1)
    assert "different content" in r.err
    push(site, repo, walsynth.seg_name(4), walsynth.segment(4))
    assert unseal(key, repo, walsynth.seg_name(4))[0] == 2
    assert get(site, repo, walsynth.seg_name(4))[1] == walsynth.segment(4)
    # a damaged v1 object: its SHA-256 no longer matches what decompresses
    reseal(key, repo, "00000002.history", b"\x01\x00" + bytes(6) +
           struct.pack("<Q", len(HISTORY)) + hashlib.sha256(HISTORY).digest() +
           HISTORY[:-1] + b"?")
    r, _ = get(site, repo, "00000002.history", check=126)
    assert "does not match its hash" in r.err, r.err


def test_damaged_version_2_objects_stop_recovery(site):
    repo = new_repo(site)
    key = enc_key(repo)
    seg, name = walsynth.segment(6), walsynth.seg_name(6)
    push(site, repo, name, seg)
    path = obj_path(repo, name)
    with open(path, "rb") as f:
        stored = f.read()
    pt = unseal(key, repo, name)

    # one flipped bit of ciphertext: the AEAD tag fails
    with open(path, "wb") as f:
        f.write(stored[:200] + bytes([stored[200] ^ 0x10]) + stored[201:])
    r, _ = get(site, repo, name, check=126)
    assert "authentication failed" in r.err, r.err
    # ... and a retried push of the genuine file does not overwrite it
    r = push(site, repo, name, seg, check=1)
    assert "authentication failed" in r.err, r.err

    # authentic, but the frame's content checksum (its last 4 bytes) is off:
    # what the decompressor returns is refused
    reseal(key, repo, name, pt[:-1] + bytes([pt[-1] ^ 0xFF]))
    r, _ = get(site, repo, name, check=126)
    assert "does not decompress" in r.err and "checksum" in r.err, r.err

    # authentic, a valid frame without its checksum: version 2 requires it
    frame = bytearray(pt[16:-4])
    frame[4] &= ~0x04
    reseal(key, repo, name, pt[:16] + bytes(frame))
    r, _ = get(site, repo, name, check=126)
    assert "bad header" in r.err, r.err

    # authentic, a raw length that is not the frame's, an unknown version,
    # bytes after the frame, a raw object one byte short
    hdr = bytearray(pt[:16])
    hdr[8:16] = struct.pack("<Q", len(seg) - 1)
    for bad in (bytes(hdr) + pt[16:], b"\x03" + pt[1:], pt + b"\x00",
                b"\x02\x00" + bytes(6) + struct.pack("<Q", 10) + b"123456789"):
        reseal(key, repo, name, bad)
        r, _ = get(site, repo, name, check=126)
        assert "bad header" in r.err, r.err

    # the genuine object again: served
    with open(path, "wb") as f:
        f.write(stored)
    assert get(site, repo, name)[1] == seg

"""Helpers for the backup e2e tests: a generated source tree and a
bit-for-bit + metadata comparison of two trees (paths are bytes)."""
import json
import os
import random
import stat
import subprocess

from conftest import BIN

PASSWORD = "correct horse battery staple"


def env_for(repo, password=PASSWORD):
    e = dict(os.environ)
    e["TAPWORK_REPOSITORY"] = str(repo)
    e["TAPWORK_PASSWORD"] = password
    e.pop("TAPWORK_PASSWORD_FILE", None)
    return e


def tw(repo, *args, password=PASSWORD, timeout=120, check=None):
    """Run tapwork against repo; check=N asserts the exit code."""
    r = subprocess.run([BIN] + list(args), capture_output=True, env=env_for(repo, password),
                       timeout=timeout)
    r.out = r.stdout.decode("utf-8", "replace")
    r.err = r.stderr.decode("utf-8", "replace")
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        assert marker not in r.err, r.err[-4000:]
    if check is not None:
        assert r.returncode == check, (args, r.returncode, r.out[-2000:], r.err[-3000:])
    return r


def json_lines(text):
    return [json.loads(l) for l in text.splitlines() if l.startswith("{")]


def make_tree(root, seed=1, scale=1):
    """A tree with every kind of entry the engine must handle."""
    rnd = random.Random(seed)
    root = os.fsencode(str(root))
    j = lambda *p: os.path.join(root, *p)
    os.makedirs(j(b"text"), exist_ok=True)
    for i in range(20):
        with open(j(b"text", b"f%02d.txt" % i), "wb") as f:
            f.write(("line %d of file %d seed %d\n" % (i, i, seed)).encode() * (200 * (i + 1)))
    os.makedirs(j(b"bin"), exist_ok=True)
    rand = rnd.randbytes(1536 * 1024 * scale)
    with open(j(b"bin", b"random.bin"), "wb") as f:
        f.write(rand)
    with open(j(b"bin", b"random-dup.bin"), "wb") as f:
        f.write(rand)  # duplicate content
    with open(j(b"bin", b"mixed.bin"), "wb") as f:
        f.write(bytes(range(256)) * 4096 + rnd.randbytes(300000))
    for i in range(3):
        open(j(b"bin", b"empty%d" % i), "wb").close()
    # symlinks: relative, absolute, dangling
    os.symlink(b"../text/f01.txt", j(b"bin", b"link-rel"))
    os.symlink(b"/etc/hostname", j(b"bin", b"link-abs"))
    os.symlink(b"does/not/exist", j(b"bin", b"link-dangling"))
    # hard links
    os.link(j(b"text", b"f02.txt"), j(b"bin", b"hardlink-to-f02"))
    os.link(j(b"text", b"f02.txt"), j(b"hard-f02-again"))
    # sparse file: data, a big hole, data
    with open(j(b"sparse.img"), "wb") as f:
        f.write(b"head" * 1000)
        f.seek(12 * 1024 * 1024)
        f.write(b"tail" * 1000)
    # odd names: newline, non-UTF-8 bytes, spaces, a leading dash, unicode
    odd = j(b"odd")
    os.makedirs(odd, exist_ok=True)
    for name in (b"new\nline", b"\xff\xfe-latin1-\xe9", b"with space", b"-dash", "ünïcødé".encode()):
        with open(os.path.join(odd, name), "wb") as f:
            f.write(name * 10)
    # deep nesting
    d = j(b"deep")
    for i in range(40):
        d = os.path.join(d, b"level%02d" % i)
    os.makedirs(d)
    with open(os.path.join(d, b"bottom.txt"), "wb") as f:
        f.write(b"bottom of the tree\n")
    # permissions
    perm = j(b"perm")
    os.makedirs(perm)
    for mode in (0o600, 0o644, 0o755, 0o400, 0o4755, 0o1777 & 0o777):
        p = os.path.join(perm, b"mode%o" % mode)
        with open(p, "wb") as f:
            f.write(b"x" * mode)
        os.chmod(p, mode)
    os.makedirs(os.path.join(perm, b"ro-dir"))
    with open(os.path.join(perm, b"ro-dir", b"inside"), "wb") as f:
        f.write(b"inside a read-only directory")
    os.chmod(os.path.join(perm, b"ro-dir"), 0o555)
    os.mkfifo(j(b"fifo"))
    # extended attributes (when the file system has them)
    try:
        os.setxattr(j(b"text", b"f07.txt"), "user.origin", b"generated\x00binary")
        os.setxattr(j(b"text"), "user.dirattr", b"d")
    except OSError:
        pass
    # fixed mtimes with nanoseconds
    for i, name in enumerate((b"text/f00.txt", b"bin/random.bin", b"sparse.img")):
        os.utime(j(name), ns=(1600000000123456789 + i, 1500000000987654321 + i))
    return root


def walk(root):
    """{relative path: (lstat, content or link target)} for every entry."""
    root = os.fsencode(str(root))
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    data = f.read()
            elif stat.S_ISLNK(st.st_mode):
                data = os.readlink(p)
            else:
                data = None
            out[rel] = (st, data)
    return out


def compare_trees(src, dst, check_links=True):
    a, b = walk(src), walk(dst)
    assert sorted(a) == sorted(b), (set(a) ^ set(b))
    inodes_a, inodes_b = {}, {}
    for rel, (sa, da) in a.items():
        sb, db = b[rel]
        assert stat.S_IFMT(sa.st_mode) == stat.S_IFMT(sb.st_mode), rel
        assert da == db, rel
        if not stat.S_ISLNK(sa.st_mode):
            assert stat.S_IMODE(sa.st_mode) == stat.S_IMODE(sb.st_mode), (rel, oct(sa.st_mode), oct(sb.st_mode))
        assert sa.st_uid == sb.st_uid and sa.st_gid == sb.st_gid, rel
        if not stat.S_ISDIR(sa.st_mode):
            assert sa.st_mtime_ns == sb.st_mtime_ns, (rel, sa.st_mtime_ns, sb.st_mtime_ns)
        if stat.S_ISREG(sa.st_mode) or stat.S_ISDIR(sa.st_mode):
            p_a = os.path.join(os.fsencode(str(src)), rel)
            p_b = os.path.join(os.fsencode(str(dst)), rel)
            xa = {k: os.getxattr(p_a, k) for k in os.listxattr(p_a) if k.startswith("user.")}
            xb = {k: os.getxattr(p_b, k) for k in os.listxattr(p_b) if k.startswith("user.")}
            assert xa == xb, (rel, xa, xb)
        if stat.S_ISREG(sa.st_mode) and sa.st_nlink > 1 and check_links:
            inodes_a.setdefault(sa.st_ino, set()).add(rel)
            inodes_b.setdefault(sb.st_ino, set()).add(rel)
    if check_links:
        assert sorted(map(sorted, inodes_a.values())) == sorted(map(sorted, inodes_b.values()))
    # directory mtimes are restored last
    for rel, (sa, _) in a.items():
        if stat.S_ISDIR(sa.st_mode):
            assert sa.st_mtime_ns == b[rel][0].st_mtime_ns, rel


def make_writable(root):
    for dirpath, dirnames, _ in os.walk(os.fsencode(str(root))):
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                os.chmod(p, 0o755)

"""Damage and interruption: flipped bytes are detected, kill -9 at random
points during backup and prune leaves a repository that checks clean."""
import glob
import os
import random
import signal
import subprocess
import time

from bkhelp import BIN, compare_trees, env_for, json_lines, make_tree, make_writable, tw


def packs(repo):
    return sorted(glob.glob(os.path.join(str(repo), "data", "*", "*")))


def test_flipped_byte_detected_by_check_and_restore(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    make_tree(src, seed=4)
    repo = tmp_path / "repo"
    tw(repo, "repo", "init", check=0)
    tw(repo, "backup", "-q", str(src), check=0)
    tw(repo, "check", "--read-data", check=0)
    # flip one byte inside the first blob of the biggest pack (file data)
    big = max(packs(repo), key=os.path.getsize)
    with open(big, "r+b") as f:
        f.seek(1000)
        b = f.read(1)
        f.seek(1000)
        f.write(bytes([b[0] ^ 0x40]))
    r = tw(repo, "check", "--read-data", check=1)
    assert "damaged" in r.err
    # the report names the affected snapshot and file(s)
    assert "snapshot " in r.err and "file /src/" in r.err, r.err
    r = tw(repo, "restore", "latest", "--target", str(tmp_path / "out"), check=1)
    assert "damaged" in r.err
    make_writable(tmp_path / "out")
    make_writable(src)


def test_read_data_subset(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        (src / ("f%d" % i)).write_bytes(os.urandom(700000))
    repo = tmp_path / "repo"
    tw(repo, "repo", "init", check=0)
    tw(repo, "backup", "-q", str(src), check=0)
    r = json_lines(tw(repo, "check", "--read-data-subset", "100%", "--json", check=0).out)[-1]
    assert r["packs_read"] == r["packs"] and r["blobs_checked"] >= 6
    r = json_lines(tw(repo, "check", "--read-data-subset", "0%", "--json", check=0).out)[-1]
    assert r["packs_read"] == 0
    tw(repo, "check", "--read-data-subset", "101%", check=2)


def test_truncated_and_missing_pack_detected(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(os.urandom(300000))
    repo = tmp_path / "repo"
    tw(repo, "repo", "init", check=0)
    tw(repo, "backup", "-q", str(src), check=0)
    big = max(packs(repo), key=os.path.getsize)
    os.truncate(big, os.path.getsize(big) - 10)
    r = tw(repo, "check", check=1)  # the header is gone: structure check sees it
    assert "pack" in r.err
    os.unlink(big)
    r = tw(repo, "check", check=1)
    assert "missing" in r.err and "file /src/a" in r.err


def run_and_kill(args, repo, delay):
    p = subprocess.Popen([BIN] + args, env=env_for(repo), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    time.sleep(delay)
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
    p.wait(30)
    err = p.stderr.read().decode("utf-8", "replace")
    p.stderr.close()
    for marker in ("ERROR: AddressSanitizer", "runtime error:"):
        assert marker not in err, err[-3000:]
    return p.returncode


def test_kill9_during_backup_then_prune(tmp_path):
    rnd = random.Random(1234)
    src = tmp_path / "src"
    src.mkdir()
    make_tree(src, seed=5, scale=2)
    for i in range(30):
        (src / ("blob%02d" % i)).write_bytes(rnd.randbytes(150000 + i * 1000))
    repo = tmp_path / "repo"
    tw(repo, "repo", "init", check=0)
    # measure one run, then kill at random points inside that window
    t0 = time.monotonic()
    tw(repo, "backup", "-q", "--force", str(src), check=0)
    span = max(time.monotonic() - t0, 0.05)
    completed = 1
    for _ in range(5):
        (src / "changing").write_bytes(rnd.randbytes(400000))
        rc = run_and_kill(["backup", "-q", "--force", str(src)], repo, rnd.uniform(0.0, span))
        completed += rc == 0
    r = tw(repo, "check", "--read-data", check=0)
    snaps = [l.split()[0] for l in tw(repo, "snapshots", check=0).out.splitlines()[1:-1]]
    # a run killed after its snapshot became durable (e.g. while exiting) counts too
    assert completed <= len(snaps) <= 6
    # every completed snapshot restores; the last one equals the source
    for i, sid in enumerate(snaps):
        out = tmp_path / ("out%d" % i)
        tw(repo, "restore", sid, "--target", str(out), check=0)
        make_writable(out)
    tw(repo, "backup", "-q", str(src), check=0)
    out = tmp_path / "final"
    tw(repo, "restore", "latest", "--target", str(out), check=0)
    compare_trees(src, out / "src")
    make_writable(out)

    # now prune, interrupted at random points
    tw(repo, "forget", "--keep-last", "1", check=0)
    t0 = time.monotonic()
    tw(repo, "prune", "--dry-run", check=0)
    pspan = max(time.monotonic() - t0, 0.05) * 2
    for _ in range(4):
        run_and_kill(["prune", "-q", "--max-unused", "0"], repo, rnd.uniform(0.0, pspan))
        tw(repo, "check", "--read-data", check=0)
    r = tw(repo, "prune", "--json", check=0)
    s = json_lines(r.out)[-1]
    assert s["dry_run"] is False and s["packs"] >= 1
    tw(repo, "check", "--read-data", check=0)
    out = tmp_path / "after-prune"
    tw(repo, "restore", "latest", "--target", str(out), check=0)
    compare_trees(src, out / "src")
    make_writable(out)
    make_writable(src)
    # nothing unreferenced is left
    r = tw(repo, "check", "--json", check=0)
    assert json_lines(r.out)[-1]["unreferenced_packs"] == 0


def test_prune_frees_space_and_keeps_data(tmp_path):
    rnd = random.Random(99)
    src = tmp_path / "src"
    src.mkdir()
    repo = tmp_path / "repo"
    tw(repo, "repo", "init", check=0)
    for gen in range(3):
        for i in range(5):
            (src / ("g%d-%d" % (gen, i))).write_bytes(rnd.randbytes(200000))
        if gen:
            for i in range(5):
                os.unlink(src / ("g%d-%d" % (gen - 1, i)))
        tw(repo, "backup", "-q", str(src), check=0)
    size_before = sum(os.path.getsize(p) for p in packs(repo))
    r = tw(repo, "forget", "--keep-last", "1", "--prune", check=0)
    assert "removed 2 snapshots" in r.out
    size_after = sum(os.path.getsize(p) for p in packs(repo))
    assert size_after < size_before * 0.6, (size_before, size_after)
    tw(repo, "check", "--read-data", check=0)
    out = tmp_path / "out"
    tw(repo, "restore", "latest", "--target", str(out), check=0)
    compare_trees(src, out / "src")


def test_many_packs_and_index_objects(tmp_path):
    """Small packs: index objects are written during the run (every 32
    packs), prune rewrites across many packs, everything still verifies."""
    rnd = random.Random(7)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(8):  # 64 MiB: ~50 packs of >= 1 MiB whatever the chunk sizes
        (src / ("r%d" % i)).write_bytes(rnd.randbytes(8 * 1024 * 1024))
    repo = tmp_path / "repo"
    tw(repo, "repo", "init", "--pack-size", "1", check=0)
    tw(repo, "backup", "-q", str(src), check=0)
    before = len(packs(repo))
    assert before > 32  # so an index object was written mid-run
    assert len(os.listdir(os.path.join(str(repo), "index"))) >= 2
    tw(repo, "check", "--read-data", check=0)
    # drop two files, keep only the new snapshot: about 40% of packs are garbage
    for i in range(3):
        os.unlink(src / ("r%d" % i))
    tw(repo, "backup", "-q", str(src), check=0)
    import json
    out = tw(repo, "forget", "--keep-last", "1", "--prune", "--json", check=0).out
    decisions = json.loads(out.splitlines()[0])
    assert [d["keep"] for d in decisions] == [True, False]
    tw(repo, "check", "--read-data", check=0)
    assert len(packs(repo)) < before
    assert len(os.listdir(os.path.join(str(repo), "index"))) == 1
    out = tmp_path / "out"
    tw(repo, "restore", "latest", "--target", str(out), check=0)
    compare_trees(src, out / "src")

"""Temporary objects of interrupted runs (issue 17): backups killed while
writing packs leave data/.tmp-w-* behind; `check` lists them (not an error),
`prune` deletes those not written for the lock lease (5 min) and keeps
younger ones (a backup may still be writing them)."""
import glob
import os
import signal
import subprocess
import time

from bkhelp import BIN, compare_trees, env_for, json_lines, tw


def tmp_files(repo):
    return sorted(glob.glob(os.path.join(str(repo), "**", ".tmp-*"), recursive=True))


def age(path, seconds):
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_killed_backups_leave_nothing_after_prune(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(8):
        (src / ("big%d" % i)).write_bytes(os.urandom(6 * 1024 * 1024))
    repo = tmp_path / "repo"
    tw(repo, "repo", "init", check=0)
    # kill backups while they write packs, until some .tmp-* objects are left
    for attempt in range(12):
        p = subprocess.Popen([BIN, "backup", "-q", str(src)], env=env_for(repo),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not tmp_files(repo) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        if len(tmp_files(repo)) >= 2:
            break
    left = tmp_files(repo)
    assert left, "no kill left a temporary object"
    # a put's leftover beside the packs, and one just written (a live backup's)
    d = os.path.join(str(repo), "data", "ab")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, ".tmp-" + "ab" * 32 + "-999-1"), "wb") as f:
        f.write(b"x" * 1000)
    fresh = os.path.join(str(repo), "data", ".tmp-w-999999-7")
    with open(fresh, "wb") as f:
        f.write(b"y" * 5000)
    old = [p for p in tmp_files(repo) if p != fresh]
    for p in old:
        age(p, 6 * 60)

    r = tw(repo, "check", check=0)
    rel = sorted(os.path.relpath(p, str(repo)) for p in tmp_files(repo))
    for x in rel:
        assert f"temporary object {x}: " in r.out, (x, r.out)
    assert f"{len(rel)} temporary objects" in r.out and "no errors were found" in r.out, r.out
    j = json_lines(tw(repo, "check", "--json", check=0).out)
    assert sorted(x["id"] for x in j if x["type"] == "temporary_object") == rel
    summ = [x for x in j if x["type"] == "summary"][0]
    assert summ["tmp_objects"] == len(rel) and summ["ok"] is True

    r = tw(repo, "prune", "--dry-run", check=0)
    assert len(tmp_files(repo)) == len(rel)
    j = json_lines(tw(repo, "prune", "--json", check=0).out)
    summ = [x for x in j if x["type"] == "summary"][0]
    assert summ["tmp_deleted"] == len(old) and summ["tmp_kept"] == 1, summ
    assert tmp_files(repo) == [fresh]
    age(fresh, 6 * 60)
    r = tw(repo, "prune", check=0)
    assert "1 temporary objects of interrupted runs deleted" in r.out, r.out
    assert tmp_files(repo) == []
    # the repository is whole: a new backup, check --read-data, an identical restore
    tw(repo, "backup", "-q", str(src), check=0)
    r = tw(repo, "check", "--read-data", check=0)
    assert "temporary object" not in r.out
    out = tmp_path / "out"
    tw(repo, "restore", "latest", "--target", str(out), check=0)
    compare_trees(src, out / "src")

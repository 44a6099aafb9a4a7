"""Locks: prune waits for no one but refuses while a backup holds a lock;
locks of dead processes do not block; many files do not exhaust fds."""
import os
import resource
import signal
import subprocess
import time

from bkhelp import BIN, compare_trees, env_for, tw


def locks(repo):
    d = os.path.join(str(repo), "locks")
    return [n for n in os.listdir(d) if not n.startswith(".")]


def test_exclusive_lock_refused_while_backup_runs(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(48):  # ~60 MB: the backup runs long enough to be caught
        (src / ("f%02d" % i)).write_bytes(os.urandom(1250000))
    repo = tmp_path / "repo"
    tw(repo, "repo", "init", check=0)
    p = subprocess.Popen([BIN, "backup", "-q", str(src)], env=env_for(repo),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stopped = False
    try:
        deadline = time.monotonic() + 20
        while not locks(repo) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        if p.poll() is None:
            p.send_signal(signal.SIGSTOP)  # freeze it while it holds its lock
            stopped = True
            assert locks(repo)
            r = tw(repo, "prune", check=1)
            assert "locked" in r.err
            r = tw(repo, "forget", "--keep-last", "1", check=1)
            assert "locked" in r.err
            # shared locks coexist: another backup and a check may run
            tw(repo, "check", check=0)
            p.send_signal(signal.SIGCONT)
        assert p.wait(60) == 0
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)
            p.kill()
            p.wait(10)
        p.stderr.close()
    assert stopped, "the backup finished before its lock was seen"
    assert locks(repo) == []
    tw(repo, "prune", check=0)


def test_lock_of_killed_process_is_stale(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(40):
        (src / ("f%02d" % i)).write_bytes(os.urandom(200000))
    repo = tmp_path / "repo"
    tw(repo, "repo", "init", check=0)
    p = subprocess.Popen([BIN, "backup", "-q", str(src)], env=env_for(repo),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not locks(repo) and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    p.send_signal(signal.SIGSTOP)
    left = bool(locks(repo))
    p.kill()
    p.wait(10)
    if left:
        assert locks(repo)  # the dead process's lock is still there ...
    tw(repo, "prune", check=0)  # ... but does not block an exclusive lock
    assert locks(repo) == []


def test_many_files_with_few_descriptors(tmp_path):
    src = tmp_path / "many"
    src.mkdir()
    for i in range(1500):
        (src / ("n%04d" % i)).write_bytes(b"file %d\n" % i)
    repo = tmp_path / "repo"
    tw(repo, "repo", "init", check=0)

    def low_fds():
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))

    r = subprocess.run([BIN, "backup", "-q", str(src)], env=env_for(repo), capture_output=True,
                       preexec_fn=low_fds, timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    out = tmp_path / "out"
    r = subprocess.run([BIN, "restore", "-q", "latest", "--target", str(out)], env=env_for(repo),
                       capture_output=True, preexec_fn=low_fds, timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    compare_trees(src, out / "many")

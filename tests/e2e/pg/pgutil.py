"""A throwaway PostgreSQL 15 for the backup e2e tests.

initdb into a temp directory owned by the postgres user (tests run as
root), then `postgres -D DIR -p PORT -k SOCKDIR -c listen_addresses=127.0.0.1`
run as postgres through runuser; stopped by PID (SIGINT = fast shutdown).
Tests skip with a reason when the binaries or the postgres user are absent.
"""
import atexit
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from conftest import wait_for  # noqa: E402

PGBIN = "/usr/lib/postgresql/15/bin"


def missing():
    if not os.path.exists(os.path.join(PGBIN, "postgres")):
        return f"PostgreSQL 15 binaries not in {PGBIN}"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no 'postgres' user to run the server as"
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        return "needs root and runuser to start postgres as the postgres user"
    return None


def make_tmp():
    """A temp directory owned by postgres (pytest's are 0700 root)."""
    tmp = tempfile.mkdtemp(prefix="tapwork-pg-")
    pw = pwd.getpwnam("postgres")
    os.chown(tmp, pw.pw_uid, pw.pw_gid)
    return tmp


_templates = {}


def initdb(path, *args, fresh=False):
    """A new data directory at path (initdb -A trust -U postgres ARGS).
    Copies of one initdb per ARGS and test process (cp -a: 0.1 s instead of
    ~2 s); the copies share a system identifier, so a test that needs a
    second, different cluster passes fresh=True."""
    cmd = ["runuser", "-u", "postgres", "--", os.path.join(PGBIN, "initdb"),
           "-A", "trust", "-U", "postgres", "--no-sync", *args, "-D"]
    if fresh:
        r = subprocess.run(cmd + [path], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return
    t = _templates.get(args)
    if t is None:
        base = make_tmp()
        atexit.register(shutil.rmtree, base, True)
        t = os.path.join(base, "pgdata")
        r = subprocess.run(cmd + [t], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        _templates[args] = t
    subprocess.run(["cp", "-a", t, path], check=True)


class Postgres:
    """conf: extra -c NAME=VALUE settings; datadir: start on an existing data
    directory (e.g. a restored one) instead of a fresh initdb; env: the
    server's environment (what archive_command/restore_command inherit)."""

    def __init__(self, port, conf=(), datadir=None, env=None):
        # pytest's temp dirs are 0700 root: postgres needs its own
        tmp = self.tmp = tempfile.mkdtemp(prefix="tapwork-pg-")
        self.port = port
        self.dir = os.path.join(tmp, "pgdata")
        self.sock = os.path.join(tmp, "pgsock")
        os.makedirs(self.sock)
        pw = pwd.getpwnam("postgres")
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
        os.chown(self.sock, pw.pw_uid, pw.pw_gid)
        if datadir is not None:
            self.dir = datadir
        else:
            initdb(self.dir)
        self.log = open(os.path.join(tmp, "postgres.log"), "wb")
        self.proc = subprocess.Popen(
            ["runuser", "-u", "postgres", "--", os.path.join(PGBIN, "postgres"), "-D", self.dir,
             "-p", str(port), "-k", self.sock, "-c", "listen_addresses=127.0.0.1",
             "-c", "fsync=off", "-c", "full_page_writes=off"]
            + [a for c in conf for a in ("-c", c)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.psql("postgres", "SELECT 1", check=False).returncode == 0:
                return
            if self.proc.poll() is not None:
                self.log.flush()
                with open(os.path.join(tmp, "postgres.log"), errors="replace") as f:
                    raise AssertionError("postgres exited:\n" + f.read()[-3000:])
            time.sleep(0.1)
        raise TimeoutError("postgres did not start")

    def url(self, db):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def psql(self, db, sql, check=True):
        r = subprocess.run([os.path.join(PGBIN, "psql"), "-X", "-q", "-A", "-t",
                            "-v", "ON_ERROR_STOP=1", "-d", self.url(db), "-c", sql],
                           capture_output=True, text=True, timeout=120)
        if check:
            assert r.returncode == 0, r.stderr
        return r

    def plain_dump(self, db):
        """A plain-format dump, normalized (no comments/version lines)."""
        r = subprocess.run([os.path.join(PGBIN, "pg_dump"), "--format=plain", "-d", self.url(db)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return "\n".join(l for l in r.stdout.splitlines()
                         if l and not l.startswith("--") and "restrict" not in l)

    def stop(self):
        # the postmaster's own PID (runuser is its parent); SIGINT = fast shutdown
        if self.proc.poll() is None:
            try:
                with open(os.path.join(self.dir, "postmaster.pid")) as f:
                    os.kill(int(f.readline()), signal.SIGINT)
            except (OSError, ValueError):
                self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def chown_postgres(path):
    pw = pwd.getpwnam("postgres")
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for f in dirs + files:
            os.lchown(os.path.join(root, f), pw.pw_uid, pw.pw_gid)


def wait_query(p, sql, want, what, timeout=60):
    """Poll `sql` on p's postgres database until it returns `want`."""
    def done():
        r = p.psql("postgres", sql, check=False)
        return r.returncode == 0 and r.stdout.strip() == want
    wait_for(done, timeout, what, 0.2)


def wait_promoted(p, timeout=60):
    wait_query(p, "SELECT pg_is_in_recovery()", "f", "recovery did not end", timeout)


def wait_paused(p, timeout=60):
    wait_query(p, "SELECT pg_get_wal_replay_pause_state()", "paused", "recovery did not pause", timeout)

#!/usr/bin/python3
"""bench/pglib.py — what bench/pitr.py and bench/pitr_replay.py share: the
settings from the environment (bench/pitr.sh describes them), timing under
/usr/bin/time, a PostgreSQL 15 cluster run as postgres, and one bench site:
a work directory with the password file, a tapwork repository and a
pgBackRest 2.45 stanza configured as issue 12 says (zst level 3,
process-max=2, bundling, aes-256-cbc), both initialized."""
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import tempfile
import time

E = os.environ
SCALE = int(E.get("PITR_SCALE", "10"))
CLIENT_TX = int(E.get("PITR_TX", "10000"))          # pgbench -t per client (2 clients)
REPS = int(E.get("REPS", "3"))
PG_BIN = E.get("PG_BIN", "/usr/lib/postgresql/15/bin")
CACHE = E.get("BENCH_CACHE", "/var/tmp/tapwork-bench")
KEEP = E.get("KEEP_WORK", "0") == "1"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TW = os.path.realpath(E.get("TAPWORK_BIN", os.path.join(ROOT, "build/release/tapwork")))
OUT = E["OUT"]
RAW = os.path.join(OUT, "raw")
PG = pwd.getpwnam("postgres")
TIME = "/usr/bin/time"
PW_TEXT = "bench-password"


def log(*a):
    print(*a, flush=True)


def die(msg):
    log("pitr bench: " + msg)
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_pg(argv):
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] + argv


def chown(path):
    for root, dirs, files in os.walk(path):
        os.chown(root, PG.pw_uid, PG.pw_gid)
        for f in files:
            os.chown(os.path.join(root, f), PG.pw_uid, PG.pw_gid)


def du(path, exclude=None):
    total = 0
    for root, dirs, files in os.walk(path):
        if exclude:
            dirs[:] = [d for d in dirs if os.path.join(root, d) != exclude]
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def drop_caches():
    subprocess.run(["sync"])
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass


def timed(argv, logname, env=None, check=True, stdin=None, shell=False):
    """Run argv under /usr/bin/time: wall, user+sys CPU and peak RSS of the
    process tree (children waited for included)."""
    tf = tempfile.NamedTemporaryFile(delete=False, dir=CACHE)
    tf.close()
    with open(os.path.join(RAW, logname), "ab") as lf:
        t0 = time.monotonic()
        if shell:
            cmd = [TIME, "-f", "%e %U %S %M", "-o", tf.name, "sh", "-c", argv]
        else:
            cmd = [TIME, "-f", "%e %U %S %M", "-o", tf.name] + argv
        r = subprocess.run(cmd, stdout=lf, stderr=lf, env=env, stdin=stdin)
        wall = time.monotonic() - t0
    with open(tf.name) as f:
        fields = f.read().split()
    os.unlink(tf.name)
    if check and r.returncode != 0:
        die(f"{' '.join(argv) if not shell else argv} failed ({r.returncode}); see raw/{logname}")
    # the last line holds the figures (time may print "Command exited..." first)
    e, u, s, m = fields[-4:]
    return {"wall": wall, "cpu": float(u) + float(s), "rss_mib": int(m) / 1024, "rc": r.returncode}


class Cluster:
    def __init__(self, work, port, datadir, conf=(), initdb=True):
        self.work, self.port, self.dir = work, port, datadir
        self.sock = os.path.join(work, "sock")
        os.makedirs(self.sock, exist_ok=True)
        os.chown(self.sock, PG.pw_uid, PG.pw_gid)
        if initdb:
            r = subprocess.run(as_pg([os.path.join(PG_BIN, "initdb"), "-D", datadir, "-U",
                                      "postgres", "-A", "trust", "--no-sync", "-k"]),
                               capture_output=True, text=True)
            if r.returncode != 0:
                die("initdb: " + r.stderr)
        self.logf = open(os.path.join(RAW, f"postgres-{port}.log"), "ab")
        self.proc = subprocess.Popen(
            as_pg([os.path.join(PG_BIN, "postgres"), "-D", datadir, "-p", str(port),
                   "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.sock}",
                   "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "max_wal_size=4GB"]
                  + [a for c in conf for a in ("-c", c)]),
            stdout=self.logf, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout=3600):
        """Until the server accepts connections and is out of recovery."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.psql("SELECT pg_is_in_recovery()", check=False)
            if r.returncode == 0 and r.stdout.strip() == "f":
                return
            if self.proc.poll() is not None:
                die(f"postgres on port {self.port} exited; see raw/postgres-{self.port}.log")
            time.sleep(0.05)
        die("postgres did not come up")

    def psql(self, sql, check=True):
        r = subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-v",
                            "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port), "-U",
                            "postgres", "-d", "postgres", "-c", sql],
                           capture_output=True, text=True, timeout=3600)
        if check and r.returncode != 0:
            die(f"psql {sql[:60]}: {r.stderr}")
        return r

    def q(self, sql):
        return self.psql(sql).stdout.strip()

    def ready_backlog(self):
        d = os.path.join(self.dir, "pg_wal", "archive_status")
        return sum(1 for f in os.listdir(d) if f.endswith(".ready"))

    def backlog(self, key, res, timeout=600):
        """The .ready files left at the end of a phase (res["ready_KEY"]) and
        the seconds until the archiver has none (res["drain_KEY"])."""
        res[f"ready_{key}"] = self.ready_backlog()
        t0 = time.monotonic()
        while self.ready_backlog() and time.monotonic() - t0 < timeout:
            time.sleep(0.05)
        res[f"drain_{key}"] = time.monotonic() - t0

    def wait_archived(self, timeout=1800):
        """Switch WAL, then wait until nothing is left to archive."""
        self.psql("SELECT pg_switch_wal()")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready_backlog() == 0:
                return
            time.sleep(0.1)
        die("the archiver does not keep up; see the postgres log")

    def stop(self):
        if self.proc.poll() is None:
            try:
                with open(os.path.join(self.dir, "postmaster.pid")) as f:
                    os.kill(int(f.readline()), signal.SIGINT)
            except (OSError, ValueError):
                self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.logf.close()


def pgbench(c, args, logname, with_count=False):
    """Run pgbench on c; its TPS, or with with_count (TPS, transactions
    processed)."""
    r = subprocess.run([os.path.join(PG_BIN, "pgbench"), "-h", "127.0.0.1", "-p", str(c.port),
                        "-U", "postgres"] + args + ["postgres"], capture_output=True, text=True,
                       timeout=7200)
    with open(os.path.join(RAW, logname), "a") as f:
        f.write(r.stdout + r.stderr)
    if r.returncode != 0:
        die(f"pgbench {args}: see raw/{logname}")
    tps, n = 0.0, 0
    for line in r.stdout.splitlines():
        if line.startswith("tps = "):
            tps = float(line.split()[2])
        elif line.startswith("number of transactions actually processed: "):
            n = int(line.split(":")[1].split("/")[0])
    return (tps, n) if with_count else tps


class Site:
    """A work directory under CACHE (prefix): password file `pw`, tapwork
    repository `tw_repo`, pgBackRest config `conf` (stanza "bench") for the
    cluster at `data` on `port`. archive_script(body) writes the
    archive_command script (its name contains "pgbackrest": pgBackRest's
    backup insists on that). init() (after the cluster runs) creates both
    repositories. env_tw: the environment for tapwork commands."""

    def __init__(self, prefix):
        self.work = tempfile.mkdtemp(prefix=prefix, dir=CACHE)
        os.chmod(self.work, 0o755)
        self.data, self.tw_repo, self.br_repo = self.j("data"), self.j("tw-repo"), self.j("br-repo")
        self.pw, self.conf = self.j("password"), self.j("pgbackrest.conf")
        for d in ("br-log", "br-lock", "br-spool"):
            os.makedirs(self.j(d))
        with open(self.pw, "w") as f:
            f.write(PW_TEXT + "\n")
        os.chmod(self.pw, 0o600)
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with open(self.conf, "w") as f:
            f.write(f"""[global]
repo1-path={self.br_repo}
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=bench-cipher-pass
repo1-bundle=y
compress-type=zst
compress-level=3
process-max=2
start-fast=y
archive-check=y
log-level-console=warn
log-level-file=info
log-path={self.j("br-log")}
lock-path={self.j("br-lock")}
spool-path={self.j("br-spool")}

[bench]
pg1-path={self.data}
pg1-port={self.port}
pg1-socket-path={self.j("sock")}
""")
        self.tw_push = f"{TW} pg archive-push -q -r {self.tw_repo} --password-file {self.pw}"
        self.br = ["pgbackrest", f"--config={self.conf}", "--stanza=bench"]
        self.br_push = " ".join(self.br) + " archive-push"
        self.env_tw = dict(E, TAPWORK_PASSWORD_FILE=self.pw)
        self.env_tw.pop("TAPWORK_PASSWORD", None)

    def j(self, *p):
        return os.path.join(self.work, *p)

    def archive_script(self, body):
        path = self.j("archive-pgbackrest.sh")
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + body)
        os.chmod(path, 0o755)
        return path

    def start(self, conf):
        """initdb -k and start the cluster (chowns the work directory first)."""
        chown(self.work)
        c = Cluster(self.work, self.port, self.data, conf=conf)
        deadline = time.monotonic() + 60
        while c.psql("SELECT 1", check=False).returncode != 0:
            if time.monotonic() > deadline:
                die("postgres did not start")
            time.sleep(0.2)
        return c

    def init(self):
        if subprocess.run(as_pg([TW, "repo", "init", "-q", "-r", self.tw_repo, "--password-file",
                                 self.pw]), capture_output=True).returncode != 0:
            die("tapwork repo init failed")
        r = subprocess.run(as_pg(self.br + ["stanza-create"]), capture_output=True, text=True)
        if r.returncode != 0:
            die("stanza-create: " + r.stderr)

    def tw_backup(self):
        return as_pg([TW, "backup", "-q", "-r", self.tw_repo, "--password-file", self.pw,
                      "--pg-data", self.data, "--postgres", self.url])

    def tw_newest(self):
        return json.loads(subprocess.run(as_pg([TW, "snapshots", "--json", "-r", self.tw_repo,
                                                "--password-file", self.pw]),
                                         capture_output=True, text=True).stdout)[-1]["id"]

    def br_newest(self):
        return json.loads(subprocess.run(as_pg(self.br + ["info", "--output=json"]),
                                         capture_output=True, text=True).stdout)[0]["backup"][-1]["label"]

"""The self-sizing upstream pool (src/edge/upstream.c): with the config a user
writes (no max_idle), h2load's 320 concurrent streams reuse upstream
connections instead of opening one per few requests; after the burst the pool
gives them back gradually; max_idle still fixes the size; a server's
Keep-Alive: timeout= bounds how long a connection stays pooled.

The upstream is nginx (a real peer that answers as fast as the proxy asks),
one worker, loopback only."""
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import free_port
from edgeutil import ASAN, SLACK, simple_config, start_edge, wait_for

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None or shutil.which("h2load") is None,
                                reason="needs nginx and h2load (scripts/deps.sh)")


class Nginx:
    def __init__(self, procs, tmp_path, ka_header_s=None):
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        d = tmp_path / "nginx"
        (d / "tmp").mkdir(parents=True, exist_ok=True)
        ka = "keepalive_timeout 300s%s;" % (f" {ka_header_s}" if ka_header_s else "")
        (d / "nginx.conf").write_text(f"""
worker_processes 1;
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  {ka} keepalive_requests 1000000;
  client_body_temp_path {d}/tmp/body; proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fcgi; uwsgi_temp_path {d}/tmp/uwsgi; scgi_temp_path {d}/tmp/scgi;
  server {{
    listen 127.0.0.1:{self.port} backlog=4096;
    location / {{ default_type text/plain; return 200 "pooled\\n"; }}
  }}
}}
""")
        self.proc = procs.start(["nginx", "-p", str(d), "-c", str(d / "nginx.conf"), "-e", str(d / "error.log")],
                                name="nginx-upstream")
        wait_for(lambda: subprocess.run(["ss", "-Hltn", f"sport = :{self.port}"], capture_output=True,
                                        text=True).stdout.strip() or self.proc.poll() is not None,
                 10, what="nginx listening")
        assert self.proc.poll() is None, procs.log_of(self.proc)

    def conns(self):
        """Established connections to the upstream (only tapwork connects to it)."""
        out = subprocess.run(["ss", "-Htn", "state", "established", f"( dport = :{self.port} )"],
                             capture_output=True, text=True).stdout
        return len([ln for ln in out.splitlines() if ln.strip()])


def h2load(edge, n, c, m):
    r = subprocess.run(["h2load", "-n", str(n), "-c", str(c), "-m", str(m), f"http://127.0.0.1:{edge.port}/"],
                       capture_output=True, text=True, timeout=120)
    assert f"{n} succeeded, 0 failed, 0 errored" in r.stdout, r.stdout[-2000:]
    assert re.search(rf"status codes: {n} 2xx", r.stdout), r.stdout[-2000:]


def pool_counts(edge):
    m = edge.metrics()
    return (m.get("tapwork_upstream_connections_total", how="opened"),
            m.get("tapwork_upstream_connections_total", how="reused"))


def test_pool_sizes_itself_to_concurrency_and_gives_back_gradually(procs, tmp_path):
    up = Nginx(procs, tmp_path)
    edge = start_edge(procs, tmp_path, simple_config([up.addr]))  # the defaults: no max_idle
    n = 12000 if ASAN else 30000
    h2load(edge, n, 32, 10)  # 320 streams in flight
    opened, reused = pool_counts(edge)
    assert opened + reused >= n
    # 320 concurrent requests need about 320 connections, opened once; a fixed
    # pool of 64 per worker opened one per ~7 requests here
    assert opened <= 0.05 * n, (opened, reused)
    held = up.conns()
    assert held >= 200, f"only {held} upstream connections kept after a 320-stream load"
    # a second run at the same concurrency opens (almost) nothing
    h2load(edge, n // 3, 32, 10)
    opened2, _ = pool_counts(edge)
    assert opened2 - opened <= 0.02 * (n // 3), (opened, opened2)
    # after the burst: given back gradually (1/8 a second), not all at once
    t0 = time.monotonic()
    n0 = up.conns()
    time.sleep(4.5 * SLACK)
    n1 = up.conns()
    assert n1 < 0.85 * n0, f"{n0} -> {n1} upstream connections after {time.monotonic() - t0:.1f}s idle"
    assert n1 > 0.15 * n0, f"{n0} -> {n1}: the pool was dropped at once"
    # and the edge still serves, on a pooled connection
    r = edge.get("/")
    assert r.status_code == 200 and r.text == "pooled\n"


def test_max_idle_fixes_the_pool_size(procs, tmp_path):
    up = Nginx(procs, tmp_path)
    edge = start_edge(procs, tmp_path, simple_config([up.addr], max_idle=4))
    n = 3000
    h2load(edge, n, 8, 10)
    opened, reused = pool_counts(edge)
    # 80 streams in flight, at most 4 idle per worker kept: the rest open anew
    assert opened > 0.1 * n, (opened, reused)
    wait_for(lambda: up.conns() <= 8, 3 * SLACK, what="at most max_idle x 2 workers pooled")


def test_server_keepalive_timeout_bounds_pooling(procs, tmp_path):
    # nginx: keepalive_timeout 300s 2 -> "Keep-Alive: timeout=2" in every answer
    up = Nginx(procs, tmp_path, ka_header_s=2)
    edge = start_edge(procs, tmp_path, simple_config([up.addr]))
    r = edge.get("/")
    assert r.status_code == 200
    assert up.conns() == 1
    t0 = time.monotonic()
    # pooled for (2 - 1) s, the server's timeout less a second; nginx itself waits 300 s
    wait_for(lambda: up.conns() == 0, 4 * SLACK, what="the pooled connection closed by tapwork")
    assert time.monotonic() - t0 >= 0.5
    assert edge.get("/").status_code == 200
    # A reused connection keeps its idle timer armed while it serves (upstream.c):
    # the second answer pushes the deadline later, the first deadline passes
    # without closing it, and it still closes a second after its last answer.
    time.sleep(0.6)
    assert edge.get("/").status_code == 200
    assert up.conns() == 1
    t0 = time.monotonic()
    time.sleep(0.6)  # past the first request's deadline
    assert up.conns() == 1
    wait_for(lambda: up.conns() == 0, 4 * SLACK, what="the reused connection closed after its idle time")
    assert time.monotonic() - t0 >= 0.9
    opened, reused = pool_counts(edge)
    assert (opened, reused) == (2, 1), (opened, reused)


CPU_CGROUP = "/sys/fs/cgroup/cpu"


@pytest.mark.skipif(not os.access(os.path.join(CPU_CGROUP, "cpu.cfs_quota_us"), os.W_OK),
                    reason="needs a writable cgroup v1 cpu controller (root)")
def test_pool_does_not_churn_under_a_cpu_cap(procs, tmp_path):
    """bench/proxy.sh CPU_CAP: tapwork in a cgroup with 20 % of one core runs
    ~20 ms of every 100 ms period and is frozen the rest. The number of
    requests holding an upstream connection at any instant then swings from
    0 to all 320 streams within a period (the streams' answers are read in
    one burst, the next requests in another), so a pool sized to the busy
    count seen at its once-a-second tick would close and reopen connections
    all along; it is sized to the largest busy count of the whole second."""
    up = Nginx(procs, tmp_path)
    edge = start_edge(procs, tmp_path, simple_config([up.addr]))
    cg = os.path.join(CPU_CGROUP, f"tapwork-test-pool.{os.getpid()}")
    os.makedirs(cg, exist_ok=True)
    try:
        with open(os.path.join(cg, "cpu.cfs_period_us"), "w") as f:
            f.write("100000")
        with open(os.path.join(cg, "cpu.cfs_quota_us"), "w") as f:
            f.write("20000")
        with open(os.path.join(cg, "cgroup.procs"), "w") as f:
            f.write(str(edge.proc.pid))
        h2load(edge, 4000 if ASAN else 10000, 32, 10)  # fills the pool
        # the same load again, steady for several pool ticks: no connection is
        # opened between its second and its sixth second
        load = subprocess.Popen(["h2load", "-D", "7", "-c", "32", "-m", "10", f"http://127.0.0.1:{edge.port}/"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            time.sleep(2)
            opened0, reused0 = pool_counts(edge)
            time.sleep(4)
            opened1, reused1 = pool_counts(edge)
            held = up.conns()
            out, _ = load.communicate(timeout=60)
        finally:
            if load.poll() is None:
                load.kill()
                load.wait()
        assert re.search(r"requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, 0 failed, 0 errored", out), out[-2000:]
        with open(os.path.join(cg, "cpu.stat")) as f:
            stat = dict(line.split() for line in f)
        assert int(stat["nr_throttled"]) >= 20, stat  # the cap did bind
        assert reused1 - reused0 >= (1000 if ASAN else 5000), (reused0, reused1)
        assert opened1 - opened0 <= 4, (opened0, opened1, reused1 - reused0)
        assert held >= 200, f"only {held} upstream connections under a 320-stream load"
    finally:
        with open(os.path.join(CPU_CGROUP, "cgroup.procs"), "w") as f:
            if edge.alive():
                f.write(str(edge.proc.pid))
        os.rmdir(cg)

"""Shared helpers for tapwork's end-to-end tests.

Every test drives the real binary ($TAPWORK_BIN) against real peers on
loopback. Ports are picked free by binding port 0; every process a test
starts is stopped by PID when the test ends.
"""
import os
import signal
import socket
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("TAPWORK_BIN", os.path.join(ROOT, "build", "release", "tapwork"))
VARIANT = os.environ.get("TAPWORK_VARIANT", "release")


def free_port():
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=10.0, what="condition", interval=0.02):
    """Polls pred() until truthy (returns its value) or raises after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not reached after {timeout}s")
        time.sleep(interval)


def wait_port(port, host="127.0.0.1", timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


class Procs:
    """Processes started by one test; all stopped by PID at teardown."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.procs = []

    def start(self, args, name="proc", env=None, **kw):
        log = open(self.tmp_path / f"{name}-{len(self.procs)}.log", "wb")
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=full_env, **kw)
        p.log_path = log.name
        p.log_file = log
        self.procs.append(p)
        return p

    @staticmethod
    def log_of(p):
        if not p.log_file.closed:
            p.log_file.flush()
        with open(p.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, p, sig=signal.SIGTERM, timeout=10):
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        return p.returncode

    def stop_all(self):
        for p in reversed(self.procs):
            self.stop(p)
            p.log_file.close()


@pytest.fixture
def procs(tmp_path):
    ps = Procs(tmp_path)
    yield ps
    ps.stop_all()
    # A sanitizer report in any tapwork log fails the test that produced it.
    for p in ps.procs:
        text = Procs.log_of(p)
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            assert marker not in text, f"sanitizer report in {p.args[0]} log:\n{text[-4000:]}"


def run(args, **kw):
    """Run tapwork to completion; returns CompletedProcess with text output."""
    kw.setdefault("timeout", 120)
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, **kw)

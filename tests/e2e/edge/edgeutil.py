"""Helpers for the edge (tapwork run) end-to-end tests.

    up = start_upstream(procs, "a")                      # tests/e2e/edge/upstream.py
    edge = start_edge(procs, tmp_path, simple_config([up]))
    r = edge.get("/echo", host="app.test")              # requests, no env proxies
    c = edge.raw(); c.send(b"GET / HTTP/1.1\\r\\n..."); resp = c.read_response()
    m = edge.metrics(); m.get("tapwork_requests_total", code="2xx")
    edge.reload(new_config_dict)                         # SIGHUP + wait for the log line

Configs are plain dicts dumped as YAML; durations/sizes are strings ("200ms").
"""
import hashlib
import json
import os
import re
import signal
import socket
import sys

import requests
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from conftest import BIN, VARIANT, free_port, wait_for  # noqa: E402,F401

UPSTREAM_PY = os.path.join(HERE, "upstream.py")
PYTHON = "/usr/bin/python3"
ASAN = VARIANT == "asan"
# Under ASan everything is slower; timing assertions get this much extra slack.
SLACK = 2.0 if ASAN else 1.0

RID_RE = re.compile(r"^[0-9a-f]{32}$")


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def new_session():
    s = requests.Session()
    s.trust_env = False  # never go through an environment proxy
    return s


# ---------------------------------------------------------------- upstreams

class Upstream:
    def __init__(self, procs, proc, name, port, host="127.0.0.1"):
        self.procs = procs
        self.proc = proc
        self.name = name
        self.port = port
        self.host = host
        self.addr = f"{host}:{port}"
        self.session = new_session()

    def get(self, path):
        return self.session.get(f"http://{self.addr}{path}", timeout=10)

    def count(self, reset=False):
        return self.get("/count?reset=1" if reset else "/count").json()["count"]

    def down(self):
        assert self.get("/health/down").status_code == 200

    def up(self):
        assert self.get("/health/up").status_code == 200

    def kill(self):
        self.procs.stop(self.proc, sig=signal.SIGKILL)


def start_upstream(procs, name, delay_ms=0, port=None, host="127.0.0.1"):
    port = port or free_port()
    args = [PYTHON, UPSTREAM_PY, "--port", str(port), "--name", name, "--host", host]
    if delay_ms:
        args += ["--delay-ms", str(delay_ms)]
    p = procs.start(args, name=f"upstream-{name}")
    wait_for(lambda: "ready" in procs.log_of(p) or p.poll() is not None, 10, what=f"upstream {name} ready")
    assert p.poll() is None, procs.log_of(p)
    return Upstream(procs, p, name, port, host)


def dead_port():
    """A loopback port nothing listens on (connect is refused)."""
    return free_port()


# ------------------------------------------------------------------ configs

def backend(servers, **opts):
    """servers: Upstream objects, "host:port" strings or {address, weight, ...} dicts."""
    out = []
    for s in servers:
        out.append(s.addr if isinstance(s, Upstream) else s)
    d = {"servers": out}
    d.update(opts)
    return d


def simple_config(servers, hosts=("*",), **backend_opts):
    """One site (default "*"), route / -> backend "web"."""
    return {
        "sites": [{"hosts": list(hosts), "routes": [{"path": "/", "backend": "web"}]}],
        "backends": {"web": backend(servers, **backend_opts)},
    }


def full_config(cfg, http_port, admin_port):
    """Adds listeners and test-friendly defaults to a partial config dict."""
    listen = {"http": f"127.0.0.1:{http_port}"}
    listen.update({k: v for k, v in cfg.get("listen", {}).items() if k != "http"})  # e.g. https
    # (listen.http in cfg is honoured by Edge, which passes its port as http_port)
    out = {"listen": listen, "workers": 2,
           "admin": {"listen": f"127.0.0.1:{admin_port}"}}
    out.update({k: v for k, v in cfg.items() if k not in ("listen", "admin")})
    t = {"drain": "5s"}
    t.update(cfg.get("timeouts", {}))
    out["timeouts"] = t
    return out


def write_config(path, cfg):
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False, default_flow_style=False)
    os.replace(tmp, path)


# --------------------------------------------------------------- raw client

class Resp:
    def __init__(self, version, status, reason, headers, body):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) as received
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Resp {self.status} {self.headers} {self.body[:200]!r}>"


class RawConn:
    """One TCP connection; send exact bytes, parse responses (keeps leftovers)."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.timeout = timeout

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(262144)
        if not data:
            raise EOFError("connection closed by peer")
        self.buf += data

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        version, status, *reason = lines[0].split(" ", 2)
        headers = []
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            headers.append((k, v.strip()))
        return version, int(status), (reason[0] if reason else ""), headers

    def read_response(self, method="GET", body_sink=None):
        """Reads one response (a 1xx is returned on its own). body_sink(bytes)
        receives the body instead of storing it (for big bodies)."""
        version, status, reason, headers = self.read_head()
        r = Resp(version, status, reason, headers, b"")
        if status < 200 or status in (204, 304) or method == "HEAD":
            return r
        parts = []
        sink = body_sink or parts.append
        te = (r.header("transfer-encoding") or "").lower()
        cl = r.header("content-length")
        if "chunked" in te:
            while True:
                size = int(self._line().split(b";")[0].strip(), 16)
                if size == 0:
                    while self._line() != b"":
                        pass
                    break
                left = size
                while left:
                    if not self.buf:
                        self._fill()
                    piece = self.buf[:left]
                    self.buf = self.buf[len(piece):]
                    sink(piece)
                    left -= len(piece)
                assert self._exact(2) == b"\r\n", "bad chunk terminator"
        elif cl is not None:
            left = int(cl)
            while left:
                if not self.buf:
                    self._fill()
                piece = self.buf[:left]
                self.buf = self.buf[len(piece):]
                sink(piece)
                left -= len(piece)
        else:  # delimited by close
            sink(self.buf)
            self.buf = b""
            while True:
                try:
                    data = self.sock.recv(262144)
                except ConnectionResetError:
                    break
                if not data:
                    break
                sink(data)
        r.body = b"".join(parts)
        return r

    def read_final(self, method="GET"):
        """Reads responses until a non-1xx one."""
        while True:
            r = self.read_response(method)
            if r.status >= 200:
                return r

    def closed_within(self, timeout):
        """True when the peer closes (EOF or reset) within timeout with no
        further bytes; False on timeout. Unexpected bytes raise."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(self.timeout)
        if data:
            raise AssertionError(f"unexpected bytes after the response: {data[:200]!r}")
        return True


# -------------------------------------------------------------------- metrics

_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Metrics:
    def __init__(self, text):
        self.text = text
        self.samples = []  # (name, labels dict, value)
        self.types = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, typ = line.split(None, 3)
                self.types[name] = typ
                continue
            if not line.strip() or line.startswith("#"):
                continue
            m = _SAMPLE_RE.match(line)
            assert m, f"unparsable metrics line: {line!r}"
            labels = dict(_LABEL_RE.findall(m.group(3) or ""))
            self.samples.append((m.group(1), labels, float(m.group(4))))

    def find(self, name, **labels):
        return [(lab, v) for n, lab, v in self.samples
                if n == name and all(lab.get(k) == v2 for k, v2 in labels.items())]

    def get(self, name, **labels):
        """Sum of the samples of `name` whose labels include `labels` (0 if none)."""
        return sum(v for _, v in self.find(name, **labels))

    def has(self, name, **labels):
        return bool(self.find(name, **labels))


# ------------------------------------------------------------------- the edge

class Edge:
    def __init__(self, procs, tmp_path, cfg, name="tapwork", cwd=None, env=None):
        self.procs = procs
        self.tmp_path = tmp_path
        given = cfg.get("listen", {}).get("http")  # a fixed port (an ACME HTTP-01 port)
        self.port = int(given.rsplit(":", 1)[1]) if given else free_port()
        self.admin_port = free_port()
        while self.admin_port == self.port:
            self.admin_port = free_port()
        self.cfg_path = tmp_path / f"{name}.yaml"
        self.access_path = tmp_path / f"{name}-access.log"
        if "log" not in cfg:
            # keep the process log (stderr + stdout) for the error log only, so
            # "status ... rid=" checks cannot be satisfied by an access-log line
            cfg = dict(cfg, log={"access": str(self.access_path), "level": "info"})
        self.cfg = full_config(cfg, self.port, self.admin_port)
        write_config(self.cfg_path, self.cfg)
        self.proc = procs.start([BIN, "run", "-c", str(self.cfg_path)], name=name, cwd=cwd or str(tmp_path), env=env)
        self.session = new_session()
        self.wait_ready()

    # -- process
    def wait_ready(self, timeout=15):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"tapwork exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            return port_open(self.port) and port_open(self.admin_port)
        wait_for(ready, timeout, what="tapwork listening")

    def log(self):
        return self.procs.log_of(self.proc)

    def wait_log(self, pattern, count=1, timeout=10):
        """Waits until regex `pattern` matches at least `count` times in the log."""
        rx = re.compile(pattern, re.M)
        try:
            return wait_for(lambda: len(rx.findall(self.log())) >= count and rx.findall(self.log()),
                            timeout, what=f"log {pattern!r} x{count}")
        except TimeoutError:
            raise AssertionError(f"log never showed {pattern!r} x{count}:\n{self.log()[-3000:]}")

    def alive(self):
        return self.proc.poll() is None

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self, new_cfg=None, ok=True, timeout=10):
        """Writes new_cfg (partial dict, listeners added) if given, sends SIGHUP
        and waits for "config reloaded" (ok) or "reload refused" (not ok)."""
        if new_cfg is not None:
            if "log" not in new_cfg:
                new_cfg = dict(new_cfg, log=self.cfg["log"])
            self.cfg = full_config(new_cfg, self.port, self.admin_port)
            write_config(self.cfg_path, self.cfg)
        return self.sighup_and_wait(ok, timeout)

    def sighup_and_wait(self, ok=True, timeout=10):
        pat = r"config reloaded" if ok else r"reload refused"
        n = len(re.findall(pat, self.log()))
        self.signal(signal.SIGHUP)
        self.wait_log(pat, n + 1, timeout)
        lines = [ln for ln in self.log().splitlines() if re.search(pat, ln)]
        return lines[-1]

    # -- clients
    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def request(self, method, path, host=None, headers=None, **kw):
        h = dict(headers or {})
        if host is not None:
            h["Host"] = host
        kw.setdefault("timeout", 30)
        return self.session.request(method, self.url(path), headers=h, **kw)

    def get(self, path, host=None, **kw):
        return self.request("GET", path, host=host, **kw)

    def raw(self, timeout=10.0):
        return RawConn(self.port, timeout=timeout)

    def raw_request(self, data, method="GET", timeout=10.0):
        with self.raw(timeout) as c:
            c.send(data)
            return c.read_final(method)

    def admin(self, path, **kw):
        kw.setdefault("timeout", 10)
        return new_session().get(f"http://127.0.0.1:{self.admin_port}{path}", **kw)

    def metrics(self):
        r = self.admin("/metrics")
        assert r.status_code == 200, r.text
        return Metrics(r.text)


def start_edge(procs, tmp_path, cfg, name="tapwork", env=None):
    return Edge(procs, tmp_path, cfg, name=name, env=env)


def echo_of(resp):
    """The upstream's view of a request from an /echo response."""
    assert resp.status_code == 200, (resp.status_code, resp.text[:300])
    return resp.json()


def hdr(echo, name):
    """Values of header `name` as the upstream received it (list)."""
    return [v for k, v in echo["headers"] if k.lower() == name.lower()]


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def check_sanitizers(procs):
    """The same check as the `procs` fixture, for module-scoped Procs."""
    for p in procs.procs:
        text = procs.log_of(p)
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            assert marker not in text, f"sanitizer report in {p.args[0]} log:\n{text[-4000:]}"

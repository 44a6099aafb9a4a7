"""Helpers for the TLS end-to-end tests (tests/e2e/tls).

    certs = make_cert(tmp_path, "secure.example.com", ["secure.example.com"])  # openssl CLI
    edge = TLSEdge(procs, tmp_path, {"sites": [...], "backends": {...}})
    edge.curl("app.test", "/echo")                 # curl --cacert <root> --resolve ...
    info = edge.peer_cert("api.test")               # openssl s_client, then x509 fields
    c = edge.tls_conn("app.test"); c.send(...); c.read_response()   # keep-alive over TLS

The edge gets `listen.http`, `listen.https`, `admin.listen` on free ports,
`state_dir` in tmp_path, `workers: 2` and an access log file.
"""
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "edge"))
from conftest import BIN, free_port  # noqa: E402
from edgeutil import RawConn, new_session, port_open, wait_for, write_config  # noqa: E402

OPENSSL = "/usr/bin/openssl"
CURL = "/usr/bin/curl"


def make_cert(dirpath, name, sans, key="ec", serial=None, days=30):
    """A self-signed certificate (and key) for sans, written as
    dirpath/NAME[-serial].crt/.key with the openssl CLI. Returns (crt, key)."""
    base = os.path.join(str(dirpath), name.replace("*", "_") + (f"-{serial}" if serial else ""))
    crt, keyf = base + ".crt", base + ".key"
    if key == "ec":
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    else:
        newkey = ["-newkey", "rsa:2048"]
    args = [OPENSSL, "req", "-x509", *newkey, "-nodes", "-keyout", keyf, "-out", crt,
            "-days", str(days), "-subj", f"/CN={name}",
            "-addext", "subjectAltName=" + ",".join(f"DNS:{s}" for s in sans)]
    if serial:
        args += ["-set_serial", str(serial)]
    subprocess.run(args, check=True, capture_output=True, timeout=60)
    return crt, keyf


def cert_fields(pem):
    """serial / subject / SAN text of a PEM certificate (openssl x509)."""
    r = subprocess.run([OPENSSL, "x509", "-noout", "-serial", "-subject", "-ext", "subjectAltName"],
                       input=pem, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    out = {"text": r.stdout}
    m = re.search(r"serial=([0-9A-F]+)", r.stdout)
    out["serial"] = int(m.group(1), 16) if m else None
    out["sans"] = re.findall(r"(?:DNS|IP Address):([^,\s]+)", r.stdout)
    return out


def s_client(port, servername=None, extra=(), timeout=20):
    """openssl s_client against 127.0.0.1:port; returns CompletedProcess (text)."""
    args = [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}"]
    args += ["-servername", servername] if servername else ["-noservername"]
    args += list(extra)
    return subprocess.run(args, input="", capture_output=True, text=True, timeout=timeout)


def pem_of(text):
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)
    return m.group(0) + "\n" if m else None


def tls_handshake_ok(port, timeout=2.0):
    """True when something on port completes a TLS handshake (any certificate)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            with ctx.wrap_socket(s, server_hostname="localhost"):
                return True
    except (OSError, ssl.SSLError):
        return False


class TLSConn(RawConn):
    """RawConn over TLS (keep-alive tests)."""

    def __init__(self, port, servername, cafile, timeout=10.0, alpn=None):
        ctx = ssl.create_default_context(cafile=cafile)
        if alpn:
            ctx.set_alpn_protocols(alpn)
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname=servername)
        self.buf = b""
        self.timeout = timeout

    def peer_serial(self):
        der = self.sock.getpeercert(binary_form=True)
        pem = ssl.DER_cert_to_PEM_cert(der)
        return cert_fields(pem)["serial"]


class TLSEdge:
    def __init__(self, procs, tmp_path, cfg, name="tapwork", wait=True):
        self.procs = procs
        self.tmp_path = tmp_path
        ports = set()
        while len(ports) < 3:
            ports.add(free_port())
        self.port, self.https_port, self.admin_port = sorted(ports)
        self.state_dir = str(tmp_path / "state")
        self.root = os.path.join(self.state_dir, "ca", "root.crt")
        self.cfg_path = tmp_path / f"{name}.yaml"
        self.access_path = tmp_path / f"{name}-access.log"
        self.cfg = self.full(cfg)
        write_config(self.cfg_path, self.cfg)
        self.proc = procs.start([BIN, "run", "-c", str(self.cfg_path)], name=name, cwd=str(tmp_path))
        if wait:
            self.wait_ready()

    def full(self, cfg):
        out = {"listen": {"http": f"127.0.0.1:{self.port}", "https": f"127.0.0.1:{self.https_port}"},
               "workers": 2, "admin": {"listen": f"127.0.0.1:{self.admin_port}"},
               "state_dir": self.state_dir,
               "log": {"access": str(self.access_path), "level": "info"},
               "timeouts": {"drain": "5s"}}
        out.update({k: v for k, v in cfg.items() if k not in ("listen", "admin")})
        return out

    def wait_ready(self, timeout=20):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"tapwork exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            return port_open(self.port) and port_open(self.https_port) and port_open(self.admin_port)
        wait_for(ready, timeout, what="tapwork listening")

    def log(self):
        return self.procs.log_of(self.proc)

    def wait_log(self, pattern, count=1, timeout=10):
        rx = re.compile(pattern, re.M)
        try:
            return wait_for(lambda: len(rx.findall(self.log())) >= count, timeout,
                            what=f"log {pattern!r} x{count}")
        except TimeoutError:
            raise AssertionError(f"log never showed {pattern!r} x{count}:\n{self.log()[-3000:]}")

    def sighup_and_wait(self, ok=True, timeout=15):
        pat = r"config reloaded" if ok else r"reload refused"
        n = len(re.findall(pat, self.log()))
        self.proc.send_signal(signal.SIGHUP)
        self.wait_log(pat, n + 1, timeout)
        return [ln for ln in self.log().splitlines() if re.search(pat, ln)][-1]

    def curl(self, host, path="/", extra=(), cafile=None, timeout=30):
        """curl over HTTPS with --resolve; returns (status, headers dict lower-case, body)."""
        args = [CURL, "-sS", "--noproxy", "*", "--max-time", str(timeout), "-D", "-",
                "--cacert", cafile or self.root,
                "--resolve", f"{host}:{self.https_port}:127.0.0.1",
                *extra, f"https://{host}:{self.https_port}{path}"]
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout + 10)
        assert r.returncode == 0, f"curl failed ({r.returncode}): {r.stderr}\n{self.log()[-2000:]}"
        # text mode turned CRLF into LF (universal newlines)
        out = r.stdout.replace("\r\n", "\n")
        head, _, body = out.partition("\n\n")
        lines = head.split("\n")
        status = int(lines[0].split()[1])
        headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            headers.setdefault(k.strip().lower(), []).append(v.strip())
        return status, headers, body

    def peer_cert(self, servername=None, extra=()):
        r = s_client(self.https_port, servername, extra)
        pem = pem_of(r.stdout)
        assert pem, f"no certificate from s_client ({r.returncode}):\n{r.stdout[-1500:]}\n{r.stderr[-1500:]}"
        return cert_fields(pem)

    def tls_conn(self, servername, cafile=None, timeout=10.0, alpn=None):
        return TLSConn(self.https_port, servername, cafile or self.root, timeout, alpn)

    def http(self, path, host):
        return new_session().get(f"http://127.0.0.1:{self.port}{path}", headers={"Host": host},
                                 allow_redirects=False, timeout=10)


_SUPPORTED = None


def tls_serving_supported(tmp_root="/tmp"):
    """Starts tapwork with listen.https once and checks that the port completes
    a TLS handshake. False while `tapwork run` has no HTTPS listener."""
    global _SUPPORTED
    if _SUPPORTED is not None:
        return _SUPPORTED
    import tempfile
    d = tempfile.mkdtemp(prefix="tw-tls-probe-", dir=tmp_root)
    http_port, https_port = free_port(), free_port()
    while https_port == http_port:
        https_port = free_port()
    cfg = {"listen": {"http": f"127.0.0.1:{http_port}", "https": f"127.0.0.1:{https_port}"},
           "workers": 1, "state_dir": os.path.join(d, "state"), "log": {"access": "off"},
           "sites": [{"hosts": ["*"], "routes": [{"path": "/", "handler": "welcome"}]}]}
    path = os.path.join(d, "probe.yaml")
    write_config(path, cfg)
    log = open(os.path.join(d, "probe.log"), "wb")
    p = subprocess.Popen([BIN, "run", "-c", path], stdout=log, stderr=subprocess.STDOUT, cwd=d)
    ok = False
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and p.poll() is None:
            if port_open(http_port):
                break
            time.sleep(0.05)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and p.poll() is None and not ok:
            ok = tls_handshake_ok(https_port, timeout=1.0)
            if not ok:
                time.sleep(0.1)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        log.close()
        import shutil
        shutil.rmtree(d, ignore_errors=True)
    _SUPPORTED = ok
    return ok

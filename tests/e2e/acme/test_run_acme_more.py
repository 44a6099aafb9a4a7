"""More `tapwork run` + ACME end to end against a real pebble: dns-01 for a
wildcard site through the hook and challtestsrv, renewal of short-lived
certificates under load with zero failed requests, and EAB."""
import hashlib
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "edge"))
from acmeutil import NO_NONCE_REJECT, Pebble, needs_pebble  # noqa: E402
from conftest import BIN, wait_port  # noqa: E402
from edgeutil import start_upstream  # noqa: E402

pytestmark = needs_pebble


def served_cert(port, name, timeout=10):
    """The DER leaf served for SNI name (not verified)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        with ctx.wrap_socket(s, server_hostname=name) as t:
            return t.getpeercert(binary_form=True)


def issuer_cn(der):
    r = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-issuer", "-serial"],
                       input=der, capture_output=True, timeout=10)
    return r.stdout.decode()


def wait_pebble_cert(port, name, timeout=60, not_in=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            der = served_cert(port, name)
            if "ebble" in issuer_cn(der) and der not in not_in:
                return der
        except OSError:
            pass
        time.sleep(0.3)
    return None


def run_tapwork(procs, tmp_path, pb, acme, hosts, name="tapwork", http=True, extra=None):
    up = start_upstream(procs, "web")
    listen = {"https": f"127.0.0.1:{pb.tls_port}"}
    if http:
        listen["http"] = f"127.0.0.1:{pb.http_port}"
    # A failed attempt (pebble rejects 5 % of nonces at random) is retried in a second.
    acme = {"email": "ops@example.com", "directory": pb.url, "ca_roots": [pb.ca_roots],
            "retry_min": "1s", **acme}
    cfg = {
        "listen": listen,
        "workers": 2,
        "state_dir": str(tmp_path / "state"),
        "acme": acme,
        "sites": [{"hosts": hosts, "tls": "acme", "routes": [{"path": "/", "backend": "web"}]}],
        "backends": {"web": {"servers": [up.addr]}},
    }
    cfg.update(extra or {})
    path = tmp_path / "tapwork.yaml"
    path.write_text(json.dumps(cfg))
    p = procs.start([BIN, "run", "-c", str(path)], name=name)
    wait_port(pb.tls_port)
    return p


def test_dns01_wildcard_through_hook(procs, tmp_path):
    pb = Pebble(procs, tmp_path / "pebble", env=NO_NONCE_REJECT)
    hook = pb.hook(str(tmp_path / "hook.sh"))
    p = run_tapwork(procs, tmp_path, pb, {"challenges": ["dns-01"], "dns_hook": hook},
                    ["*.wild.example.com", "wild.example.com"], http=False)
    der = wait_pebble_cert(pb.tls_port, "a.wild.example.com")
    assert der, procs.log_of(p)[-3000:]
    text = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-text"], input=der,
                          capture_output=True, timeout=10).stdout.decode()
    assert "DNS:*.wild.example.com" in text and "DNS:wild.example.com" in text, text
    # The same certificate serves the apex and another label.
    assert served_cert(pb.tls_port, "wild.example.com") == der
    assert served_cert(pb.tls_port, "b.wild.example.com") == der
    # The wildcard and the apex each publish a TXT record (a retried
    # authorization, e.g. after pebble's random nonce rejection, adds one)
    # and every record published is cleared again.
    def hook_calls():
        calls = open(hook + ".calls").read().split("\n")
        sets = [c.split()[-1] for c in calls if c.startswith("set _acme-challenge.wild.example.com ")]
        clears = [c.split()[-1] for c in calls if c.startswith("clear _acme-challenge.wild.example.com ")]
        return sets, clears

    deadline = time.monotonic() + 15
    sets, clears = hook_calls()
    while sorted(sets) != sorted(clears) and time.monotonic() < deadline:
        time.sleep(0.2)
        sets, clears = hook_calls()
    assert len(sets) >= 2 and sorted(sets) == sorted(clears), (sets, clears)


def test_renewal_under_load(procs, tmp_path):
    """20-second certificates: the manager renews them (half the lifetime,
    short certificates) while 3 client threads make fresh TLS connections
    for 15 s; no request fails and the served certificate changes."""
    pb = Pebble(procs, tmp_path / "pebble", env=NO_NONCE_REJECT, validity_s=20)
    p = run_tapwork(procs, tmp_path, pb, {"challenges": ["http-01"]}, ["renew.example.com"])
    first = wait_pebble_cert(pb.tls_port, "renew.example.com")
    assert first, procs.log_of(p)[-3000:]
    ctx = ssl.create_default_context(cafile=pb.root(0))
    seen, lat, errors = set(), [], []
    lock = threading.Lock()
    stop_at = time.monotonic() + 15

    def client():
        n = 0
        while time.monotonic() < stop_at and n < 5000:
            n += 1
            t0 = time.monotonic()
            try:
                c = http.client.HTTPSConnection("renew.example.com", pb.tls_port, context=ctx,
                                                timeout=10)
                c.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", pb.tls_port),
                                                                  timeout=10),
                                         server_hostname="renew.example.com")
                der = c.sock.getpeercert(binary_form=True)
                c.request("GET", "/echo")
                r = c.getresponse()
                r.read()
                c.close()
                ok = r.status == 200
            except (OSError, http.client.HTTPException) as ex:
                ok, der = False, None
                with lock:
                    errors.append(repr(ex))
            with lock:
                lat.append(time.monotonic() - t0)
                if der:
                    seen.add(hashlib.sha256(der).hexdigest())
                if not ok and der:
                    errors.append(f"status {r.status}")

    ts = [threading.Thread(target=client) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=60)
    log = procs.log_of(p)
    assert not errors, f"{errors[:5]}\n{log[-2000:]}"
    assert len(seen) >= 2, f"{len(seen)} certificates seen\n{log[-3000:]}"
    last = served_cert(pb.tls_port, "renew.example.com")
    assert issuer_cn(last).split("serial=")[1] != issuer_cn(first).split("serial=")[1]
    lat.sort()
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    print(f"\nrenewal under load: {len(lat)} requests, 0 failed, {len(seen)} certificates, "
          f"p50 {lat[len(lat) // 2] * 1000:.1f} ms p99 {p99 * 1000:.1f} ms")


def wait_log(procs, p, needle, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in procs.log_of(p):
            return True
        time.sleep(0.2)
    return False


def test_eab_required(procs, tmp_path):
    key = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
    pb = Pebble(procs, tmp_path / "pebble", env=NO_NONCE_REJECT, eab_keys={"kid-1": key})
    # Without EAB the account is refused: the temporary certificate stays.
    p = run_tapwork(procs, tmp_path, pb, {"challenges": ["http-01"]}, ["eab.example.com"])
    assert wait_log(procs, p, "requires External Account Binding"), procs.log_of(p)[-3000:]
    assert "ebble" not in issuer_cn(served_cert(pb.tls_port, "eab.example.com"))
    procs.stop(p)
    p = run_tapwork(procs, tmp_path, pb,
                    {"challenges": ["http-01"], "eab": {"kid": "kid-1", "hmac_key": key}},
                    ["eab.example.com"], name="tapwork-eab")
    der = wait_pebble_cert(pb.tls_port, "eab.example.com")
    log = procs.log_of(p)
    assert der, log[-3000:]
    assert key not in log


def test_ca_outage_keeps_serving_and_resumes(procs, tmp_path):
    """pebble stops while the certificate is due for renewal: the renewal
    fails (retry_min: 1s), the site keeps serving its current certificate,
    and the next retry after pebble is back installs a new one."""
    pb = Pebble(procs, tmp_path / "pebble", env=NO_NONCE_REJECT, validity_s=24)
    p = run_tapwork(procs, tmp_path, pb, {"challenges": ["http-01"], "retry_min": "1s"},
                    ["outage.example.com"])
    first = wait_pebble_cert(pb.tls_port, "outage.example.com")
    assert first, procs.log_of(p)[-3000:]
    procs.stop(pb.proc)
    assert wait_log(procs, p, "next attempt in 1s"), procs.log_of(p)[-3000:]
    assert served_cert(pb.tls_port, "outage.example.com") == first
    pb.start()
    second = wait_pebble_cert(pb.tls_port, "outage.example.com", timeout=30, not_in=(first,))
    assert second, procs.log_of(p)[-3000:]


def test_cert_list_renew_and_metrics(procs, tmp_path):
    """`tapwork cert list` shows the ACME certificate from the store,
    `tapwork cert renew NAME` makes the running process renew it (a new
    serial is served), and the admin listener exports its expiry."""
    from conftest import free_port
    import urllib.request
    pb = Pebble(procs, tmp_path / "pebble", env=NO_NONCE_REJECT)
    admin = free_port()
    p = run_tapwork(procs, tmp_path, pb, {"challenges": ["http-01"]}, ["list.example.com"],
                    extra={"admin": {"listen": f"127.0.0.1:{admin}"}})
    cfgpath = str(tmp_path / "tapwork.yaml")

    def cert(*args):
        return subprocess.run([BIN, "cert", *args, "-c", cfgpath], capture_output=True,
                              text=True, timeout=30)

    r = cert("list")
    assert r.returncode == 0 and "source:  acme-temporary" in r.stdout, r.stdout + r.stderr
    first = wait_pebble_cert(pb.tls_port, "list.example.com")
    assert first, procs.log_of(p)[-3000:]
    r = cert("list")
    assert "source:  acme\n" in r.stdout and f"by {pb.url}" in r.stdout, r.stdout
    assert "renewal: requested" not in r.stdout
    m = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=10).read().decode()
    line = [x for x in m.splitlines()
            if x.startswith('tapwork_cert_expiry_seconds{name="list.example.com"}')]
    assert line, m
    left = int(line[0].split()[-1])
    end = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-enddate"], input=first,
                         capture_output=True, timeout=10).stdout.decode().strip().split("=", 1)[1]
    want = ssl.cert_time_to_seconds(end) - time.time()
    assert abs(left - want) < 60, (line, end)  # the served certificate's notAfter
    assert 'tapwork_acme_issuance_total{result="success"} 1' in m, m
    r = cert("renew", "nope.example.com")
    assert r.returncode == 1 and "no site" in r.stderr
    r = cert("renew", "list.example.com")
    assert r.returncode == 0, r.stderr
    # the request shows in `cert list` until the running process takes it
    # (it looks every few seconds; on a loaded machine it may already have)
    listed = cert("list").stdout
    assert "renewal: requested" in listed or "renewal requested" in procs.log_of(p), listed
    second = wait_pebble_cert(pb.tls_port, "list.example.com", timeout=30, not_in=(first,))
    assert second, procs.log_of(p)[-3000:]
    assert "renewal requested" in procs.log_of(p)
    assert "renewal: requested" not in cert("list").stdout
    m = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=10).read().decode()
    assert 'tapwork_acme_issuance_total{result="success"} 2' in m, m

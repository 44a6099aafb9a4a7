"""`tapwork proxy` (the one-liner) and certificate hot swap under load."""
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import tlsutil  # noqa: E402,F401  (puts tests/e2e/edge on sys.path)
from conftest import BIN, free_port, wait_port  # noqa: E402
from edgeutil import start_upstream, wait_for  # noqa: E402
from tlsutil import CURL, cert_fields, make_cert, pem_of, s_client  # noqa: E402


def test_proxy_one_liner_serves_https_with_redirect(procs, tmp_path):
    up = start_upstream(procs, "app")
    http, https = free_port(), free_port()
    state = tmp_path / "state"
    p = procs.start([BIN, "proxy", "--from", "app.localhost", "--to", up.addr, "--http", f"127.0.0.1:{http}",
                     "--https", f"127.0.0.1:{https}", "--state-dir", str(state)], name="proxy")
    wait_port(https)
    root = str(state / "ca" / "root.crt")
    r = subprocess.run([CURL, "-sS", "--cacert", root, "--resolve", f"app.localhost:{https}:127.0.0.1",
                        "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                        f"https://app.localhost:{https}/echo"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and r.stdout == "200 2", (r.stdout, r.stderr, procs.log_of(p)[-2000:])
    r = subprocess.run([CURL, "-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                        "-H", "Host: app.localhost", f"http://127.0.0.1:{http}/x?y=1"],
                       capture_output=True, text=True, timeout=20)
    assert r.stdout == f"308 https://app.localhost:{https}/x?y=1", r.stdout
    # the one-liner's config is a real config: it validates
    cfg = subprocess.run([BIN, "proxy", "--from", "a.test,b.test", "--to", "127.0.0.1:1", "--print-config"],
                         capture_output=True, text=True, timeout=20)
    v = subprocess.run([BIN, "validate", "-c", "-"], input=cfg.stdout, capture_output=True, text=True,
                       timeout=20)
    assert v.returncode == 0, v.stderr
    assert subprocess.run([BIN, "proxy", "--to", "x"], capture_output=True, timeout=20).returncode == 2


def serial_of(port, name):
    return cert_fields(pem_of(s_client(port, name).stdout))["serial"]


def test_certificate_hot_swap_under_load(procs, tmp_path):
    """Replacing the certificate files while clients hammer the listener
    (new TLS connections and keep-alive ones) loses no request; new
    handshakes see the new certificate."""
    up = start_upstream(procs, "app")
    http, https = free_port(), free_port()
    live_crt, live_key = tmp_path / "live.crt", tmp_path / "live.key"
    crt1, key1 = make_cert(tmp_path, "swap.test", ["swap.test"], serial=1001)
    shutil.copy(crt1, live_crt)
    shutil.copy(key1, live_key)
    cfg = tmp_path / "tapwork.yaml"
    cfg.write_text(f"""listen: {{http: "127.0.0.1:{http}", https: "127.0.0.1:{https}"}}
workers: 2
state_dir: "{tmp_path / 'state'}"
log: {{access: "off"}}
sites:
  - hosts: [swap.test]
    tls: {{cert: "{live_crt}", key: "{live_key}"}}
    routes: [{{path: /, backend: app}}]
backends:
  app: {{servers: ["{up.addr}"]}}
""")
    p = procs.start([BIN, "run", "-c", str(cfg)], name="tapwork")
    wait_port(https)
    assert serial_of(https, "swap.test") == 1001
    stop = time.monotonic() + 12
    results = {"ok": 0, "fail": []}
    lock = threading.Lock()

    def client(keepalive):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        import http.client
        conn = None
        n = 0
        while time.monotonic() < stop and n < 3000:
            n += 1
            try:
                if conn is None or not keepalive:
                    if conn is not None:
                        conn.close()
                    conn = http.client.HTTPSConnection("127.0.0.1", https, context=ctx, timeout=10)
                conn.request("GET", "/echo", headers={"Host": "swap.test"})
                resp = conn.getresponse()
                resp.read()
                with lock:
                    if resp.status == 200:
                        results["ok"] += 1
                    else:
                        results["fail"].append(resp.status)
            except Exception as e:  # noqa: BLE001 - any failure counts
                with lock:
                    results["fail"].append(repr(e))
                conn = None
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in (True, True, False, False)]
    for t in threads:
        t.start()
    serials = []
    for i, serial in enumerate((2002, 3003, 4004)):
        time.sleep(2)
        crt, key = make_cert(tmp_path, "swap.test", ["swap.test"], serial=serial)
        # atomic replacement of both files, as a deploy tool would do
        shutil.copy(crt, str(live_crt) + ".new")
        shutil.copy(key, str(live_key) + ".new")
        os.replace(str(live_key) + ".new", live_key)
        os.replace(str(live_crt) + ".new", live_crt)
        wait_for(lambda: serial_of(https, "swap.test") == serial, 10, what=f"certificate {serial} served")
        serials.append(serial)
    for t in threads:
        t.join(30)
    assert results["fail"] == [], results["fail"][:10]
    assert results["ok"] > 200, results
    assert serials == [2002, 3003, 4004]
    assert p.poll() is None

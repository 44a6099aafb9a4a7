#!/usr/bin/python3
"""bench/ingress.py — the Ingress controller's figures (issue 11, Performance).

    bench/ingress.py [--sync-ingresses 10000 --sync-endpoints 50000]
                     [--lat-ingresses 1000 --lat-endpoints 5000 --samples 200]
                     [--dur 10 --reps 3] [--only sync,latency,reqpath]

No Kubernetes API server can run on this machine: the API is the test server
of tests/e2e/k8s/apiserver.py (HTTPS, list paging, watch streams), run in
this process. tapwork is build/release/tapwork (TAPWORK_BIN overrides),
pinned to CPU 0 (the load and the API server get CPU 1) with the config a
user writes (no tuning keys).

1. sync     the initial sync of N Ingresses (one Service, one EndpointSlice each,
            endpoints spread over the Services): time from start to /readyz 200,
            tapwork's CPU-seconds (utime+stime from /proc) and peak RSS (VmHWM).
            Goal: <= 2 CPU-s, <= 200 MiB for 10,000 Ingresses + 50,000 endpoints.
2. latency  event -> served, with 1,000 Ingresses and 5,000 endpoints cached:
            t0 just before the API server is told of a change (it writes the
            watch event at once), t1 when a request through tapwork (polled
            every ~1 ms) first sees the new state. An EndpointSlice change moves
            a Service from one pod to another; an Ingress change adds a
            rule for a new host, then removes it (404 <-> 200). p50/p99 of SAMPLES each. Goal: p99 <= 100 ms
            (endpoints), <= 250 ms (Ingress).
3. reqpath  requests per tapwork CPU-second through Ingress-derived routes vs the
            same routes written in the config file, two tapwork processes in one
            run, alternating, wrk -t1 -c64 for DUR s, REPS times; the ratio is the median
            of each repetition's pair. Goal >= 0.98.
Everything binds to 127.0.0.x; every process started here is stopped by PID.
"""
import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e", "k8s"))
from apiserver import ApiServer  # noqa: E402
import k8sutil as K  # noqa: E402

BIN = os.environ.get("TAPWORK_BIN", os.path.join(ROOT, "build", "release", "tapwork"))
UPSTREAM = os.path.join(ROOT, "tests", "e2e", "edge", "upstream.py")
TICK = os.sysconf("SC_CLK_TCK")
PROCS = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(args, log, cpu=None):
    if cpu is not None:
        args = ["taskset", "-c", str(cpu)] + args
    p = subprocess.Popen(args, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    PROCS.append(p)
    return p


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / TICK


def hwm_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def wait_port(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(port)


def http_get(port, path, host, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    finally:
        s.close()
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    status = int(head.split(" ", 2)[1])
    m = re.search(r"(?im)^x-upstream:\s*(\S+)", head)
    return status, (m.group(1) if m else None)


def readyz(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return r.status == 200
    except Exception:  # noqa: BLE001
        return False


def start_upstream(name, host, port, work):
    p = spawn(["/usr/bin/python3", UPSTREAM, "--port", str(port), "--name", name, "--host", host],
              os.path.join(work, f"up-{name}.log"), cpu=1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return p
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"upstream {name} did not start")


def start_tapwork(work, api, name, extra=""):
    http, admin = free_port(), free_port()
    cfg = os.path.join(work, f"{name}.yaml")
    k8s = ""
    if api is not None:
        kc = os.path.join(work, "kubeconfig")
        api.write_kubeconfig(kc)
        k8s = f"kubernetes:\n  api: {{kubeconfig: {kc}}}\n  ingress: {{class: tapwork}}\n"
    with open(cfg, "w") as f:
        f.write(f"listen: {{http: 127.0.0.1:{http}}}\nworkers: 1\nadmin: {{listen: 127.0.0.1:{admin}}}\n"
                f"log: {{access: off}}\nstate_dir: {work}/state-{name}\n{k8s}{extra}")
    t0 = time.monotonic()
    p = spawn([BIN, "run", "-c", cfg], os.path.join(work, f"{name}.log"), cpu=0)
    wait_port(admin)
    return p, http, admin, t0


def populate(api, n_ing, n_eps, ns="bench", pod_host=None, pod_port=None):
    """n_ing Ingresses host i.bench.test -> Service svc-i; n_eps endpoints spread over the Services
    (addresses in 127.64.0.0/10 where nothing listens: the routes measured point at real pods, and no
    traffic ever leaves loopback)."""
    api.create(K.ingressclass("tapwork"))
    per = max(1, n_eps // n_ing)
    k = 0
    for i in range(n_ing):
        api.create(K.service(ns, f"svc-{i}", ports=[("http", 80, 8080)]))
        eps = []
        for _ in range(per):
            eps.append((f"127.{64 + ((k >> 16) & 63)}.{(k >> 8) & 255}.{k & 255}", 8080, {"ready": True}))
            k += 1
        api.create(K.endpointslice(ns, f"svc-{i}", eps, port_name="http", name=f"svc-{i}-s", port=8080))
        api.create(K.ingress(ns, f"ing-{i}", rules=[K.rule(f"h{i}.bench.test", [K.path("/", f"svc-{i}", "http")])]))
    return k


def bench_sync(args, work):
    api = ApiServer(tokens=[K.TOKEN], workdir=work)
    api.start()
    try:
        t = time.monotonic()
        n = populate(api, args.sync_ingresses, args.sync_endpoints)
        print(f"sync: API server holds {args.sync_ingresses} Ingresses, {args.sync_ingresses} Services, "
              f"{args.sync_ingresses} EndpointSlices, {n} endpoints (filled in {time.monotonic() - t:.1f} s)")
        p, http, admin, t0 = start_tapwork(work, api, "sync")
        deadline = t0 + 300
        while not readyz(admin):
            if time.monotonic() > deadline or p.poll() is not None:
                raise RuntimeError("tapwork never became ready; see " + os.path.join(work, "sync.log"))
            time.sleep(0.01)
        ready_s = time.monotonic() - t0
        c, rss = cpu_s(p.pid), hwm_mib(p.pid)
        st, _ = http_get(http, "/", f"h{args.sync_ingresses - 1}.bench.test")
        stop(p)
        print(f"sync: ready after {ready_s:.2f} s wall, {c:.2f} CPU-s, peak RSS {rss:.0f} MiB "
              f"(last Ingress answers {st}; goal <= 2 CPU-s, <= 200 MiB)")
        return {"ready_s": ready_s, "cpu_s": c, "rss_mib": rss}
    finally:
        api.stop()


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def bench_latency(args, work):
    api = ApiServer(tokens=[K.TOKEN], workdir=work)
    api.start()
    port = free_port()
    ups = [start_upstream("pod-a", "127.0.0.2", port, work), start_upstream("pod-b", "127.0.0.3", port, work)]
    try:
        populate(api, args.lat_ingresses, args.lat_endpoints)
        api.create(K.service("bench", "measured", ports=[("http", 80, port)]))
        api.create(K.endpointslice("bench", "measured", [("127.0.0.2", port, {"ready": True})], port_name="http",
                                   name="measured-s", port=port))
        api.create(K.ingress("bench", "measured", rules=[K.rule("m.bench.test", [K.path("/", "measured", "http")])]))
        p, http, admin, t0 = start_tapwork(work, api, "latency")
        while not readyz(admin):
            if p.poll() is not None or time.monotonic() - t0 > 120:
                raise RuntimeError("tapwork never became ready")
            time.sleep(0.02)
        while http_get(http, "/", "m.bench.test")[1] != "pod-a":
            time.sleep(0.01)
        res = {}
        # endpoints: move the Service between the two pods
        lat = []
        for i in range(args.samples):
            want_host, want = ("127.0.0.3", "pod-b") if i % 2 == 0 else ("127.0.0.2", "pod-a")
            sl = api.get("endpointslices", "measured-s", "bench")
            sl["endpoints"] = [{"addresses": [want_host], "conditions": {"ready": True, "serving": True,
                                                                         "terminating": False}}]
            t = time.monotonic()
            api.update(sl)
            while http_get(http, "/", "m.bench.test")[1] != want:
                if time.monotonic() - t > 10:
                    raise RuntimeError("endpoint change never served")
                time.sleep(0.0005)
            lat.append((time.monotonic() - t) * 1000)
        res["endpoints"] = lat
        # Ingress: add a rule for a new host, then remove it (404 <-> 200)
        lat = []
        for i in range(args.samples):
            ing = api.get("ingresses", "measured", "bench")
            add = i % 2 == 0
            if add:
                ing["spec"]["rules"].append(K.rule("n.bench.test", [K.path("/", "measured", "http")]))
            else:
                del ing["spec"]["rules"][1:]
            t = time.monotonic()
            api.update(ing)
            while (http_get(http, "/", "n.bench.test")[0] == 200) != add:
                if time.monotonic() - t > 10:
                    raise RuntimeError("Ingress change never served")
                time.sleep(0.0005)
            lat.append((time.monotonic() - t) * 1000)
        res["ingress"] = lat
        cpu = cpu_s(p.pid)
        stop(p)
        for k, goal in (("endpoints", 100), ("ingress", 250)):
            xs = res[k]
            print(f"latency {k}: event -> served p50 {statistics.median(xs):.1f} ms, p99 {pct(xs, 99):.1f} ms, "
                  f"max {max(xs):.1f} ms over {len(xs)} changes with {args.lat_ingresses} Ingresses / "
                  f"{args.lat_endpoints} endpoints cached (goal p99 <= {goal} ms)")
        print(f"latency: tapwork used {cpu:.2f} CPU-s in all")
        return {k: {"p50": statistics.median(v), "p99": pct(v, 99)} for k, v in res.items()}
    finally:
        for u in ups:
            stop(u)
        api.stop()


def wrk(port, host, dur, log):
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{dur}s", "-H", f"Host: {host}",
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=dur + 30)
    with open(log, "a") as f:
        f.write(out.stdout)
    m = re.search(r"^\s*(\d+) requests in", out.stdout, re.M)
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
    return int(m.group(1)) if m else 0, int(errs.group(1)) if errs else 0


def bench_reqpath(args, work):
    if subprocess.run(["which", "wrk"], capture_output=True).returncode != 0:
        print("reqpath: SKIP (wrk not installed: make deps-bench)")
        return None
    api = ApiServer(tokens=[K.TOKEN], workdir=work)
    api.start()
    port = free_port()
    ups = [start_upstream("pod-a", "127.0.0.2", port, work)]
    try:
        api.create(K.ingressclass("tapwork"))
        api.create(K.service("bench", "app", ports=[("http", 80, port)]))
        api.create(K.endpointslice("bench", "app", [("127.0.0.2", port, {"ready": True})], port_name="http",
                                   name="app-s", port=port))
        api.create(K.ingress("bench", "app", rules=[K.rule("app.bench.test", [K.path("/", "app", "http")])]))
        ing, ih, ia, _ = start_tapwork(work, api, "reqpath-ingress")
        fil, fh, fa, _ = start_tapwork(work, None, "reqpath-file", extra=(
            "sites:\n  - hosts: [app.bench.test]\n    routes:\n      - {path: /, backend: app}\n"
            f"backends:\n  app: {{servers: [127.0.0.2:{port}]}}\n"))
        while not (readyz(ia) and readyz(fa)):
            time.sleep(0.02)
        while http_get(ih, "/", "app.bench.test")[0] != 200:
            time.sleep(0.02)
        rows = {"ingress": [], "file": []}
        order = [("ingress", ing, ih), ("file", fil, fh)]
        for r in range(args.reps):
            for name, p, hp in (order if r % 2 == 0 else order[::-1]):
                c0 = cpu_s(p.pid)
                n, bad = wrk(hp, "app.bench.test", args.dur, os.path.join(work, "wrk.log"))
                c = cpu_s(p.pid) - c0
                rows[name].append(n / c if c > 0 else 0)
                print(f"reqpath rep {r + 1} {name}: {n} requests ({bad} non-2xx), {c:.2f} CPU-s, "
                      f"{n / c if c else 0:.0f} req/CPU-s")
        stop(ing)
        stop(fil)
        a, b = statistics.median(rows["ingress"]), statistics.median(rows["file"])
        # each repetition ran both back to back: its ratio is the least disturbed
        # by this machine's drift (CPU speed changes from minute to minute)
        pairs = [x / y for x, y in zip(rows["ingress"], rows["file"]) if y > 0]
        pr = statistics.median(pairs) if pairs else 0
        print(f"reqpath: Ingress-derived routes {a:.0f} req/CPU-s, file routes {b:.0f} req/CPU-s (medians); "
              f"per-repetition ratios {' '.join(f'{x:.2f}' for x in pairs)}, median {pr:.3f} (goal >= 0.98)")
        return {"ingress": a, "file": b, "ratio": pr, "pair_ratios": pairs}
    finally:
        for u in ups:
            stop(u)
        api.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sync-ingresses", type=int, default=10000)
    ap.add_argument("--sync-endpoints", type=int, default=50000)
    ap.add_argument("--lat-ingresses", type=int, default=1000)
    ap.add_argument("--lat-endpoints", type=int, default=5000)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--dur", type=int, default=int(os.environ.get("DUR", 10)))
    ap.add_argument("--reps", type=int, default=int(os.environ.get("REPS", 3)))
    ap.add_argument("--only", default="sync,latency,reqpath")
    args = ap.parse_args()
    out = {}
    try:
        for part in args.only.split(","):
            with tempfile.TemporaryDirectory(prefix=f"tapwork-bench-{part}-") as work:
                out[part] = {"sync": bench_sync, "latency": bench_latency, "reqpath": bench_reqpath}[part](args, work)
    finally:
        for p in PROCS:
            stop(p)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""bench/gateway.py — the Gateway API controller's figures (issue 16, Performance).

    bench/gateway.py [--routes 1000 --samples 200] [--dur 10 --reps 3] [--only latency,reqpath]

The API server is tests/e2e/k8s/apiserver.py with the Gateway API kinds, in
this process; tapwork (build/release/tapwork, TAPWORK_BIN overrides) is
pinned to CPU 0, the load and the API server to CPU 1 (helpers shared with
bench/ingress.py).

1. latency  event -> served with ROUTES HTTPRoutes (one Service and one
            EndpointSlice each) attached to one Gateway: t0 just before the
            API server is told of the change, t1 when a request through
            tapwork (polled every ~0.5 ms) first sees it. The change adds a
            hostname to a route, then removes it (404 <-> 200). p50/p99 of
            SAMPLES. Goal: p99 <= 250 ms.
2. reqpath  requests per tapwork CPU-second through an HTTPRoute rule with two
            header matches and two filters (RequestHeaderModifier +
            ResponseHeaderModifier) vs a plain path rule, in the same tapwork
            process, alternating, wrk -t1 -c64 for DUR s (the same request
            headers both ways), REPS times; the ratio is the median of each
            repetition's pair. Goal >= 0.95.
Everything binds to 127.0.0.x; every process started here is stopped by PID.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ingress as B  # noqa: E402  (bench/ingress.py: spawn, stop, cpu_s, http_get, ...)
from ingress import K, ApiServer  # noqa: E402

CTL = "tapwork.dev/gateway-controller"
GW = "gateway.networking.k8s.io/v1"


def gateway_objects(api, port):
    api.create({"apiVersion": GW, "kind": "GatewayClass", "metadata": {"name": "tapwork"},
                "spec": {"controllerName": CTL}})
    api.create({"apiVersion": GW, "kind": "Gateway", "metadata": {"namespace": "bench", "name": "gw"},
                "spec": {"gatewayClassName": "tapwork",
                         "listeners": [{"name": "http", "port": port, "protocol": "HTTP"}]}})


def route(name, hosts, rules):
    return {"apiVersion": GW, "kind": "HTTPRoute", "metadata": {"namespace": "bench", "name": name},
            "spec": {"parentRefs": [{"name": "gw"}], "hostnames": hosts, "rules": rules}}


def wait_ready(p, admin, http, host, want=200, timeout=300):
    t0 = time.monotonic()
    while not B.readyz(admin) or B.http_get(http, "/", host)[0] != want:
        if p.poll() is not None or time.monotonic() - t0 > timeout:
            raise RuntimeError("tapwork never served " + host)
        time.sleep(0.02)


def bench_latency(args, work):
    api = ApiServer(tokens=[K.TOKEN], workdir=work, gateway_api=True)
    api.start()
    port = B.free_port()
    ups = [B.start_upstream("pod-a", "127.0.0.2", port, work)]
    try:
        http_port = B.free_port()
        # routes -> Services with endpoints where nothing listens (never used)
        for i in range(args.routes):
            api.create(K.service("bench", f"svc-{i}", ports=[("http", 80, 8080)]))
            api.create(K.endpointslice("bench", f"svc-{i}", [(f"127.64.{i >> 8 & 255}.{i & 255}", 8080,
                                                              {"ready": True})],
                                       port_name="http", name=f"svc-{i}-s", port=8080))
        api.create(K.service("bench", "measured", ports=[("http", 80, port)]))
        api.create(K.endpointslice("bench", "measured", [("127.0.0.2", port, {"ready": True})], port_name="http",
                                   name="measured-s", port=port))
        # the Gateway's listener port must be tapwork's: start tapwork first on a known port
        kc = os.path.join(work, "kubeconfig")
        api.write_kubeconfig(kc)
        admin = B.free_port()
        cfg = os.path.join(work, "latency.yaml")
        with open(cfg, "w") as f:
            f.write(f"listen: {{http: 127.0.0.1:{http_port}}}\nworkers: 1\nadmin: {{listen: 127.0.0.1:{admin}}}\n"
                    f"log: {{access: off}}\nstate_dir: {work}/state-latency\n"
                    f"kubernetes:\n  api: {{kubeconfig: {kc}}}\n  ingress: {{class: tapwork}}\n"
                    f"  gateway: {{controller_name: {CTL}}}\n")
        gateway_objects(api, http_port)
        for i in range(args.routes):
            api.create(route(f"r-{i}", [f"h{i}.bench.test"],
                             [{"matches": [{"path": {"type": "PathPrefix", "value": "/"},
                                            "headers": [{"name": "X-Bench", "value": str(i)}]}],
                               "backendRefs": [{"name": f"svc-{i}", "port": 80}]}]))
        api.create(route("measured", ["m.bench.test"], [{"backendRefs": [{"name": "measured", "port": 80}]}]))
        t0 = time.monotonic()
        p = B.spawn([B.BIN, "run", "-c", cfg], os.path.join(work, "latency.log"), cpu=0)
        B.wait_port(admin)
        http = http_port
        wait_ready(p, admin, http, "m.bench.test")
        print(f"latency: {args.routes + 1} HTTPRoutes served {time.monotonic() - t0:.2f} s after start")
        lat = []
        for i in range(args.samples):
            rt = api.get("httproutes", "measured", "bench")
            add = i % 2 == 0
            rt["spec"]["hostnames"] = ["m.bench.test", "n.bench.test"] if add else ["m.bench.test"]
            t = time.monotonic()
            api.update(rt)
            while (B.http_get(http, "/", "n.bench.test")[0] == 200) != add:
                if time.monotonic() - t > 10:
                    raise RuntimeError("HTTPRoute change never served")
                time.sleep(0.0005)
            lat.append((time.monotonic() - t) * 1000)
        cpu = B.cpu_s(p.pid)
        B.stop(p)
        print(f"latency httproute: event -> served p50 {statistics.median(lat):.1f} ms, p99 {B.pct(lat, 99):.1f} ms, "
              f"max {max(lat):.1f} ms over {len(lat)} changes with {args.routes + 1} HTTPRoutes cached "
              f"(goal p99 <= 250 ms); tapwork used {cpu:.2f} CPU-s in all")
        return {"p50": statistics.median(lat), "p99": B.pct(lat, 99)}
    finally:
        for u in ups:
            B.stop(u)
        api.stop()


def wrk(port, host, dur, log):
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{dur}s", "-H", f"Host: {host}",
                          "-H", "X-Env: canary", "-H", "X-Team: web", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, timeout=dur + 30)
    with open(log, "a") as f:
        f.write(out.stdout)
    m = re.search(r"^\s*(\d+) requests in", out.stdout, re.M)
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
    return int(m.group(1)) if m else 0, int(errs.group(1)) if errs else 0


def bench_reqpath(args, work):
    if subprocess.run(["which", "wrk"], capture_output=True).returncode != 0:
        print("reqpath: SKIP (wrk not installed: make deps-bench)")
        return None
    api = ApiServer(tokens=[K.TOKEN], workdir=work, gateway_api=True)
    api.start()
    port = B.free_port()
    ups = [B.start_upstream("pod-a", "127.0.0.2", port, work)]
    try:
        http_port, admin = B.free_port(), B.free_port()
        kc = os.path.join(work, "kubeconfig")
        api.write_kubeconfig(kc)
        cfg = os.path.join(work, "reqpath.yaml")
        with open(cfg, "w") as f:
            f.write(f"listen: {{http: 127.0.0.1:{http_port}}}\nworkers: 1\nadmin: {{listen: 127.0.0.1:{admin}}}\n"
                    f"log: {{access: off}}\nstate_dir: {work}/state-reqpath\n"
                    f"kubernetes:\n  api: {{kubeconfig: {kc}}}\n  ingress: {{class: tapwork}}\n"
                    f"  gateway: {{controller_name: {CTL}}}\n")
        gateway_objects(api, http_port)
        api.create(K.service("bench", "app", ports=[("http", 80, port)]))
        api.create(K.endpointslice("bench", "app", [("127.0.0.2", port, {"ready": True})], port_name="http",
                                   name="app-s", port=port))
        be = [{"name": "app", "port": 80}]
        api.create(route("plain", ["plain.bench.test"], [{"backendRefs": be}]))
        api.create(route("match", ["match.bench.test"], [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/"},
                          "headers": [{"name": "X-Env", "value": "canary"}, {"name": "X-Team", "value": "web"}]}],
             "filters": [{"type": "RequestHeaderModifier",
                          "requestHeaderModifier": {"set": [{"name": "X-Route", "value": "canary"}]}},
                         {"type": "ResponseHeaderModifier",
                          "responseHeaderModifier": {"add": [{"name": "X-Served-By", "value": "canary"}]}}],
             "backendRefs": be},
            {"backendRefs": be}]))
        p = B.spawn([B.BIN, "run", "-c", cfg], os.path.join(work, "reqpath.log"), cpu=0)
        B.wait_port(admin)
        wait_ready(p, admin, http_port, "plain.bench.test")
        wait_ready(p, admin, http_port, "match.bench.test")
        rows = {"match": [], "plain": []}
        order = [("match", "match.bench.test"), ("plain", "plain.bench.test")]
        for r in range(args.reps):
            for name, host in (order if r % 2 == 0 else order[::-1]):
                c0 = B.cpu_s(p.pid)
                n, bad = wrk(http_port, host, args.dur, os.path.join(work, "wrk.log"))
                c = B.cpu_s(p.pid) - c0
                rows[name].append(n / c if c > 0 else 0)
                print(f"reqpath rep {r + 1} {name}: {n} requests ({bad} non-2xx), {c:.2f} CPU-s, "
                      f"{n / c if c else 0:.0f} req/CPU-s")
        B.stop(p)
        a, b = statistics.median(rows["match"]), statistics.median(rows["plain"])
        pairs = [x / y for x, y in zip(rows["match"], rows["plain"]) if y > 0]
        pr = statistics.median(pairs) if pairs else 0
        print(f"reqpath: header matches + 2 filters {a:.0f} req/CPU-s, plain path rule {b:.0f} req/CPU-s (medians); "
              f"per-repetition ratios {' '.join(f'{x:.2f}' for x in pairs)}, median {pr:.3f} (goal >= 0.95)")
        return {"match": a, "plain": b, "ratio": pr, "pair_ratios": pairs}
    finally:
        for u in ups:
            B.stop(u)
        api.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--routes", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--dur", type=int, default=int(os.environ.get("DUR", 10)))
    ap.add_argument("--reps", type=int, default=int(os.environ.get("REPS", 3)))
    ap.add_argument("--only", default="latency,reqpath")
    args = ap.parse_args()
    out = {}
    try:
        for part in args.only.split(","):
            with tempfile.TemporaryDirectory(prefix=f"tapwork-bench-gw-{part}-") as work:
                out[part] = {"latency": bench_latency, "reqpath": bench_reqpath}[part](args, work)
    finally:
        for p in B.PROCS:
            B.stop(p)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Rate limits with `cluster: divide` taking N from Kubernetes (issue 14):
`kubernetes.replicas_from` follows the EndpointSlices of tapwork's own
Service on the test API server; N = its ready endpoints, applied without a
reload and without losing the keys' state; `replicas` before the first
EndpointSlice; the last N kept while the API server is unreachable.

The policy is 30/h with burst 30 so that nothing refills during the test:
each client address (127.0.0.N) gets exactly burst/N requests at once, and
Retry-After shows the divided rate (one request every 120 s x N)."""
import http.client
import subprocess
import time

from conftest import BIN
from ingressutil import start_ingress_edge, start_upstream, wait_for
from k8sutil import apiserver, endpointslice, service  # noqa: F401

M = "tapwork_ratelimit_total"
G = "tapwork_k8s_service_ready_endpoints"


def get(port, source):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        c.request("GET", "/api/x", headers={"Host": "a.test"})
        r = c.getresponse()
        r.read()
        return r.status, r.getheader("Retry-After")
    finally:
        c.close()


def burst_of(port, source, n=40):
    """Requests from one client at once: (admitted, Retry-After of the first 429)."""
    got = [get(port, source) for _ in range(n)]
    ok = sum(1 for st, _ in got if st == 200)
    assert all(st in (200, 429) for st, _ in got), got
    assert [st for st, _ in got] == [200] * ok + [429] * (n - ok), got  # passes first, then only 429s
    return ok, next((int(ra) for st, ra in got if st == 429), None)


def own_slices(api, ready, not_ready=(), name="tapwork-abc"):
    eps = [(ip, 8443) for ip in ready] + [(ip, 8443, {"ready": False, "terminating": True}) for ip in not_ready]
    return endpointslice("prod", "tapwork", eps, port_name="https", name=name, port=8443)


def wait_ready_endpoints(edge, n):
    wait_for(lambda: edge.metrics().get(G, service="prod/tapwork") == n if edge.metrics().has(G) else False,
             10, what=f"{G} == {n}")


def test_divide_follows_ready_endpoints(procs, tmp_path, apiserver):
    api = apiserver
    up = start_upstream(procs, "web")
    cfg = {"sites": [{"hosts": ["a.test"], "routes": [
        {"path": "/api", "backend": "web", "rate_limit": "login"}]}],
        "backends": {"web": {"servers": [f"127.0.0.1:{up.port}"]}},
        "rate_limits": {"login": {"rate": "30/h", "burst": 30, "cluster": "divide", "replicas": 2}}}
    edge = start_ingress_edge(procs, tmp_path, api, cfg=cfg,
                              k8s_extra={"replicas_from": {"service": "tapwork", "namespace": "prod"}})
    # no EndpointSlice yet: the configured replicas (2)
    assert burst_of(edge.port, "127.0.0.10") == (15, 240)
    assert edge.metrics().get(G, service="prod/tapwork") == 0

    # 3 ready endpoints (one listed twice across slices), one terminating: N = 3
    api.create(service("prod", "tapwork", ports=[("https", 443, 8443)]))
    api.create(own_slices(api, ["10.0.0.1", "10.0.0.2", "10.0.0.3"], not_ready=["10.0.0.4"]))
    api.create(own_slices(api, ["10.0.0.3"], name="tapwork-def"))
    # another Service's slices in the same namespace do not count
    api.create(endpointslice("prod", "other", [("10.0.1.1", 80), ("10.0.1.2", 80)], name="other-abc"))
    wait_ready_endpoints(edge, 3)
    assert burst_of(edge.port, "127.0.0.11") == (10, 360)

    # down to 1 ready: rate/1, at once, no reload; the table (and each key's state) is kept
    api.apply(own_slices(api, ["10.0.0.1"], not_ready=["10.0.0.2", "10.0.0.3"]))
    api.delete("endpointslices", "tapwork-def", namespace="prod")
    wait_ready_endpoints(edge, 1)
    assert burst_of(edge.port, "127.0.0.12") == (30, 120)
    st, ra = get(edge.port, "127.0.0.11")  # used 10 x 360 s: still over 30 x 120 s - 120 s
    assert st == 429 and 100 <= int(ra) <= 120, (st, ra)
    m = edge.metrics()
    assert m.get(M, policy="login", result="pass") == 15 + 10 + 30
    log = edge.log()
    assert "Service prod/tapwork: 3 ready endpoints" in log and "Service prod/tapwork: 1 ready endpoints" in log
    assert "reload" not in log.lower()

    # the API server goes away: the last N stays
    api.go_down()
    time.sleep(0.5)
    assert burst_of(edge.port, "127.0.0.13") == (30, 120)
    assert edge.metrics().get(G, service="prod/tapwork") == 1


def run_tapwork(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=30)


def test_replicas_from_validation(tmp_path):
    """A bad Service name is a config error with file:line:col."""
    p = tmp_path / "t.yaml"
    p.write_text("kubernetes:\n  replicas_from:\n    service: Tap_work\n")
    r = run_tapwork("validate", "-c", str(p))
    assert r.returncode != 0
    assert f"{p}:3:14" in r.stderr + r.stdout and "Service name" in r.stderr + r.stdout
    p.write_text("kubernetes:\n  replicas_from:\n    namespace: prod\n")
    r = run_tapwork("validate", "-c", str(p))
    assert r.returncode != 0 and "missing required key \"service\"" in r.stderr + r.stdout

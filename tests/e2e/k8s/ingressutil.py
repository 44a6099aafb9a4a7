"""Helpers for the Ingress-controller end-to-end tests: tapwork run with a
`kubernetes:` section against the test API server (apiserver.py), with real
upstream servers standing in for pods on 127.0.0.x.

    api = apiserver                                   # k8sutil fixture
    pods = start_pods(procs, "web", ["127.0.0.2", "127.0.0.3"])
    publish_service(api, "web", "svc", pods)          # Service + EndpointSlice
    api.create(ingress("web", "site", rules=[rule("a.test", [path("/", "svc", "http")])]))
    edge = start_ingress_edge(procs, tmp_path, api)   # waits for /readyz
    wait_routed(edge, "a.test", "/", {"web-0", "web-1"})
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "edge"))
sys.path.insert(0, HERE)

from conftest import free_port  # noqa: E402
from edgeutil import start_edge, start_upstream, wait_for  # noqa: E402,F401
from k8sutil import endpointslice, ingressclass, service  # noqa: E402


def start_pods(procs, name, hosts, port=None):
    """One upstream per host, all on the same port (like the pods of a Deployment)."""
    port = port or free_port()
    return [start_upstream(procs, f"{name}-{i}", port=port, host=h) for i, h in enumerate(hosts)]


def publish_service(api, ns, svc, pods, port_name="http", svc_port=80, conditions=None, slice_name=None):
    """A Service (port svc_port named port_name, targetPort = the pods' port)
    and one EndpointSlice with the pods' addresses."""
    target = pods[0].port if pods else 8080
    api.create(service(ns, svc, ports=[(port_name, svc_port, target)]))
    eps = [(p.host, p.port, dict(conditions or {"ready": True})) for p in pods]
    api.create(endpointslice(ns, svc, eps, port_name=port_name, name=slice_name or f"{svc}-abc",
                             port=target))


def k8s_config(api, **ingress_opts):
    ing = {"class": "tapwork"}
    ing.update(ingress_opts)
    return {"api": {"kubeconfig": str(api.kubeconfig)}, "ingress": ing}


def start_ingress_edge(procs, tmp_path, api, cfg=None, ingress_opts=None, k8s_extra=None, name="tapwork",
                       ensure_class=True, ready_timeout=20, env=None):
    """tapwork run with a kubernetes: section; returns once /readyz says ready."""
    if ensure_class and api.get("ingressclasses", "tapwork") is None:
        api.create(ingressclass("tapwork"))
    cfg = dict(cfg or {})
    k = k8s_config(api, **(ingress_opts or {}))
    k.update(k8s_extra or {})
    if not k.get("api"):
        del k["api"]  # in-cluster
    cfg["kubernetes"] = k
    cfg.setdefault("sites", [])
    cfg.setdefault("backends", {})
    edge = start_edge(procs, tmp_path, cfg, name=name, env=env)
    wait_for(lambda: edge.admin("/readyz").status_code == 200, ready_timeout, what="/readyz after first sync")
    return edge


def upstream_of(edge, host, path, **kw):
    r = edge.get(path, host=host, **kw)
    return r.status_code, r.headers.get("X-Upstream")


def wait_routed(edge, host, path, names, timeout=10, tries=8):
    """Waits until requests for host+path reach exactly the upstreams `names`
    (a set; empty set = answered without an upstream) — returns the status seen."""
    names = set(names)

    def ok():
        seen, st = set(), None
        for _ in range(tries if names else 1):
            st, up = upstream_of(edge, host, path)
            if up:
                seen.add(up)
        return st if seen == names else None
    return wait_for(ok, timeout, what=f"{host}{path} -> {sorted(names)}")


def wait_status(edge, host, path, status, timeout=10):
    return wait_for(lambda: edge.get(path, host=host).status_code == status, timeout,
                    what=f"{host}{path} answers {status}")

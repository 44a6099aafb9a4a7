"""The Ingress controller end to end (issue 11): tapwork run with a
`kubernetes:` section against the test API server (apiserver.py, proven
against kubectl and python3-kubernetes in test_apiserver*.py), real upstream
servers on 127.0.0.x standing in for pods.

Routing semantics (hosts, wildcards, path types, precedence, class
selection, endpoints) as networking.k8s.io/v1 defines them; every change is
applied while serving, without a reload of the file."""
import copy

import pytest

from ingressutil import (publish_service, start_ingress_edge, start_pods, upstream_of, wait_for,  # noqa: F401
                         wait_routed, wait_status)
from k8sutil import apiserver, endpointslice, ingress, ingressclass, path, rule, service  # noqa: F401


def test_hosts_paths_and_precedence(procs, tmp_path, apiserver):
    api = apiserver
    a = start_pods(procs, "a", ["127.0.0.2"])
    b = start_pods(procs, "b", ["127.0.0.3"])
    c = start_pods(procs, "c", ["127.0.0.4"])
    publish_service(api, "web", "svc-a", a)
    publish_service(api, "web", "svc-b", b)
    publish_service(api, "web", "svc-c", c)
    api.create(ingress("web", "site", rules=[
        rule("app.test", [path("/foo", "svc-a", "http", "Prefix"),
                          path("/foo", "svc-b", "http", "Exact"),
                          path("/foo/bar/", "svc-c", 80, "Prefix"),
                          path("/impl", "svc-c", "http", "ImplementationSpecific")]),
        rule("*.wild.test", [path("/", "svc-b", "http")]),
        rule(None, [path("/any", "svc-c", "http", "Exact")]),
    ]))
    edge = start_ingress_edge(procs, tmp_path, api)
    # Exact before Prefix on the same path; the longest path first
    assert upstream_of(edge, "app.test", "/foo") == (200, "b-0")
    assert upstream_of(edge, "app.test", "/foo/") == (200, "a-0")
    assert upstream_of(edge, "app.test", "/foo/x") == (200, "a-0")
    assert upstream_of(edge, "app.test", "/foo/bar") == (200, "c-0")  # trailing slash ignored
    assert upstream_of(edge, "app.test", "/foo/bar/baz") == (200, "c-0")
    # element-wise prefix: /foo does not match /foobar
    assert edge.get("/foobar", host="app.test").status_code == 404
    assert upstream_of(edge, "app.test", "/impl/x") == (200, "c-0")
    # one-label wildcard
    assert upstream_of(edge, "x.wild.test", "/") == (200, "b-0")
    assert edge.get("/", host="a.b.wild.test").status_code == 404
    assert edge.get("/", host="wild.test").status_code == 404
    # a rule without host serves every host
    assert upstream_of(edge, "whatever.test", "/any") == (200, "c-0")
    assert edge.get("/any/x", host="whatever.test").status_code == 404
    # hosts match case-insensitively, the port in Host is not part of the name
    assert upstream_of(edge, "APP.test:8080", "/foo/x") == (200, "a-0")


def test_class_selection(procs, tmp_path, apiserver):
    api = apiserver
    a = start_pods(procs, "a", ["127.0.0.2"])
    publish_service(api, "ns1", "svc", a)
    api.create(ingressclass("other", controller="example.com/other"))
    api.create(ingress("ns1", "ours", rules=[rule("ours.test", [path("/", "svc", "http")])]))
    api.create(ingress("ns1", "theirs", cls="other", rules=[rule("theirs.test", [path("/", "svc", "http")])]))
    api.create(ingress("ns1", "ghost", cls="no-such-class", rules=[rule("ghost.test", [path("/", "svc", "http")])]))
    api.create(ingress("ns1", "legacy", cls=None, annotations={"kubernetes.io/ingress.class": "tapwork"},
                       rules=[rule("legacy.test", [path("/", "svc", "http")])]))
    api.create(ingress("ns1", "classless", cls=None, rules=[rule("classless.test", [path("/", "svc", "http")])]))
    edge = start_ingress_edge(procs, tmp_path, api)
    assert upstream_of(edge, "ours.test", "/") == (200, "a-0")
    assert upstream_of(edge, "legacy.test", "/") == (200, "a-0")
    for h in ("theirs.test", "ghost.test", "classless.test"):
        assert edge.get("/", host=h).status_code == 404, h
    # our IngressClass becomes the default: classless Ingresses are ours now
    ic = api.get("ingressclasses", "tapwork")
    ic["metadata"].setdefault("annotations", {})["ingressclass.kubernetes.io/is-default-class"] = "true"
    api.update(ic)
    wait_routed(edge, "classless.test", "/", {"a-0"})
    # the class named by ghost appears, with our controller: ghost is served
    api.create(ingressclass("no-such-class"))
    wait_routed(edge, "ghost.test", "/", {"a-0"})
    # no status for Ingresses that are not ours
    assert not (api.get("ingresses", "theirs", "ns1").get("status") or {}).get("loadBalancer", {}).get("ingress")


def test_watch_without_class_and_namespaces(procs, tmp_path, apiserver):
    api = apiserver
    a = start_pods(procs, "a", ["127.0.0.2"])
    publish_service(api, "in", "svc", a)
    publish_service(api, "out", "svc", a)
    api.create(ingress("in", "i", cls=None, rules=[rule("in.test", [path("/", "svc", "http")])]))
    api.create(ingress("out", "o", cls=None, rules=[rule("out.test", [path("/", "svc", "http")])]))
    edge = start_ingress_edge(procs, tmp_path, api, ingress_opts={"watch_without_class": True,
                                                                   "namespaces": ["in"]})
    assert upstream_of(edge, "in.test", "/") == (200, "a-0")
    assert edge.get("/", host="out.test").status_code == 404


def test_endpoints_follow_slices(procs, tmp_path, apiserver):
    api = apiserver
    pods = start_pods(procs, "web", ["127.0.0.2", "127.0.0.3", "127.0.0.4"])
    port = pods[0].port
    api.create(service("web", "svc", ports=[("http", 80, "web-port")]))   # named targetPort
    api.create(endpointslice("web", "svc", [(pods[0].host, port, {"ready": True})], port_name="http",
                             name="svc-1", port=port))
    api.create(ingress("web", "site", rules=[rule("app.test", [path("/", "svc", "http")])]))
    edge = start_ingress_edge(procs, tmp_path, api)
    m0 = edge.metrics()
    gen0 = m0.get("tapwork_config_reloads_total", result="ok")
    wait_routed(edge, "app.test", "/", {"web-0"})
    # a second slice for the same Service, one endpoint listed in both (deduplicated)
    api.create(endpointslice("web", "svc", [(pods[0].host, port, {"ready": True}),
                                            (pods[1].host, port, {"ready": True})],
                             port_name="http", name="svc-2", port=port))
    wait_routed(edge, "app.test", "/", {"web-0", "web-1"})
    # web-0 terminating (not ready, still serving): ready ones only
    s1 = api.get("endpointslices", "svc-1", "web")
    s1["endpoints"][0]["conditions"] = {"ready": False, "serving": True, "terminating": True}
    api.update(s1)
    s2 = api.get("endpointslices", "svc-2", "web")
    s2["endpoints"] = [e for e in s2["endpoints"] if e["addresses"][0] != pods[0].host]
    api.update(s2)
    wait_routed(edge, "app.test", "/", {"web-1"})
    # no ready endpoint left: the serving-but-terminating ones take the traffic
    s2 = api.get("endpointslices", "svc-2", "web")
    s2["endpoints"][0]["conditions"] = {"ready": False, "serving": True, "terminating": True}
    api.update(s2)
    wait_routed(edge, "app.test", "/", {"web-0", "web-1"})
    # nothing at all: 503
    api.delete("endpointslices", "svc-1", "web")
    api.delete("endpointslices", "svc-2", "web")
    wait_status(edge, "app.test", "/", 503)
    # and back
    api.create(endpointslice("web", "svc", [(pods[2].host, port, {"ready": True})], port_name="http",
                             name="svc-3", port=port))
    wait_routed(edge, "app.test", "/", {"web-2"})
    # all of that without a file reload, and without rebuilding the routing table
    m1 = edge.metrics()
    assert m1.get("tapwork_config_reloads_total", result="ok") == gen0
    assert m1.get("tapwork_k8s_generations_total", result="ok") > m0.get("tapwork_k8s_generations_total", result="ok")
    assert m1.get("tapwork_router_builds_total") == m0.get("tapwork_router_builds_total")


def test_named_and_numbered_ports(procs, tmp_path, apiserver):
    api = apiserver
    a = start_pods(procs, "a", ["127.0.0.2"])
    b = start_pods(procs, "b", ["127.0.0.3"])
    api.create(service("web", "svc", ports=[("http", 80, a[0].port), ("admin", 9000, b[0].port)]))
    api.create(endpointslice("web", "svc", [(a[0].host, a[0].port)], port_name="http", name="svc-http",
                             port=a[0].port))
    api.create(endpointslice("web", "svc", [(b[0].host, b[0].port)], port_name="admin", name="svc-admin",
                             port=b[0].port))
    api.create(ingress("web", "site", rules=[rule("app.test", [path("/", "svc", 80),
                                                               path("/admin", "svc", "admin")])]))
    edge = start_ingress_edge(procs, tmp_path, api)
    assert upstream_of(edge, "app.test", "/x") == (200, "a-0")
    assert upstream_of(edge, "app.test", "/admin/x") == (200, "b-0")


def test_missing_service_resource_backend_and_external_name(procs, tmp_path, apiserver):
    api = apiserver
    a = start_pods(procs, "a", ["127.0.0.2"])
    publish_service(api, "web", "svc", a)
    api.create(service("web", "ext", type="ExternalName", ports=[("http", 80, 80)]))
    ext = api.get("services", "ext", "web")
    ext["spec"]["externalName"] = "127.0.0.2"
    api.update(ext)
    res_backend = {"resource": {"apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "assets"}}
    ing = ingress("web", "site", rules=[rule("app.test", [path("/", "svc", "http"),
                                                          path("/nosvc", "missing", "http"),
                                                          path("/ext", "ext", "http")])])
    ing["spec"]["rules"][0]["http"]["paths"].append({"path": "/bucket", "pathType": "Prefix", "backend": res_backend})
    api.create(ing)
    edge = start_ingress_edge(procs, tmp_path, api)
    assert upstream_of(edge, "app.test", "/") == (200, "a-0")
    assert edge.get("/nosvc", host="app.test").status_code == 503
    assert edge.get("/bucket", host="app.test").status_code == 503
    assert edge.get("/ext", host="app.test").status_code == 503   # ExternalName off by default


def test_merge_and_conflicts_oldest_wins(procs, tmp_path, apiserver):
    api = apiserver
    a = start_pods(procs, "a", ["127.0.0.2"])
    b = start_pods(procs, "b", ["127.0.0.3"])
    publish_service(api, "n1", "svc", a)
    publish_service(api, "n2", "svc", b)
    old = ingress("n2", "old", rules=[rule("app.test", [path("/", "svc", "http")])])
    old["metadata"]["creationTimestamp"] = "2024-01-01T00:00:00Z"
    new = ingress("n1", "new", rules=[rule("app.test", [path("/", "svc", "http"), path("/only-new", "svc", "http")])])
    new["metadata"]["creationTimestamp"] = "2025-01-01T00:00:00Z"
    api.create(new)
    api.create(old)
    edge = start_ingress_edge(procs, tmp_path, api)
    # same host + path: the older Ingress wins although its namespace sorts after
    for _ in range(5):
        assert upstream_of(edge, "app.test", "/") == (200, "b-0")
    # the paths that do not conflict merge into the host
    assert upstream_of(edge, "app.test", "/only-new") == (200, "a-0")
    # the winner goes away: the other takes over
    api.delete("ingresses", "old", "n2")
    wait_routed(edge, "app.test", "/", {"a-0"})


def test_default_backends(procs, tmp_path, apiserver):
    api = apiserver
    a = start_pods(procs, "a", ["127.0.0.2"])
    b = start_pods(procs, "b", ["127.0.0.3"])
    fallback = start_pods(procs, "file", ["127.0.0.5"])
    publish_service(api, "web", "svc-a", a)
    publish_service(api, "web", "svc-b", b)
    api.create(ingress("web", "site", default_backend=("svc-b", "http"),
                       rules=[rule("app.test", [path("/api", "svc-a", "http")])]))
    cfg = {"backends": {"fallback": {"servers": [fallback[0].addr]}}}
    edge = start_ingress_edge(procs, tmp_path, api, cfg=cfg, ingress_opts={"default_backend": "fallback"})
    assert upstream_of(edge, "app.test", "/api/x") == (200, "a-0")
    # spec.defaultBackend takes what no rule of its Ingress matches
    assert upstream_of(edge, "app.test", "/other") == (200, "b-0")
    # the file's default_backend takes what no Ingress matches
    api.delete("ingresses", "site", "web")
    wait_routed(edge, "app.test", "/other", {"file-0"})
    assert upstream_of(edge, "nohost.test", "/") == (200, "file-0")


def test_file_sites_beside_ingress_sites(procs, tmp_path, apiserver):
    api = apiserver
    a = start_pods(procs, "a", ["127.0.0.2"])
    f = start_pods(procs, "file", ["127.0.0.5"])
    publish_service(api, "web", "svc", a)
    api.create(ingress("web", "site", rules=[rule("k8s.test", [path("/", "svc", "http")])]))
    cfg = {"sites": [{"hosts": ["file.test"], "routes": [{"path": "/", "backend": "static"}]}],
           "backends": {"static": {"servers": [f[0].addr]}}}
    edge = start_ingress_edge(procs, tmp_path, api, cfg=cfg)
    assert upstream_of(edge, "k8s.test", "/") == (200, "a-0")
    assert upstream_of(edge, "file.test", "/") == (200, "file-0")
    # a SIGHUP of the file keeps the Ingress-derived sites
    edge.reload(dict(edge.cfg))
    assert upstream_of(edge, "k8s.test", "/") == (200, "a-0")
    assert upstream_of(edge, "file.test", "/") == (200, "file-0")


def test_ingress_update_and_delete(procs, tmp_path, apiserver):
    api = apiserver
    a = start_pods(procs, "a", ["127.0.0.2"])
    b = start_pods(procs, "b", ["127.0.0.3"])
    publish_service(api, "web", "svc-a", a)
    publish_service(api, "web", "svc-b", b)
    api.create(ingress("web", "site", rules=[rule("app.test", [path("/", "svc-a", "http")])]))
    edge = start_ingress_edge(procs, tmp_path, api)
    assert upstream_of(edge, "app.test", "/") == (200, "a-0")
    builds = edge.metrics().get("tapwork_router_builds_total")
    ing = api.get("ingresses", "site", "web")
    ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = "svc-b"
    api.update(ing)
    wait_routed(edge, "app.test", "/", {"b-0"})
    assert edge.metrics().get("tapwork_router_builds_total") > builds  # the routes changed
    api.delete("ingresses", "site", "web")
    wait_status(edge, "app.test", "/", 404)
    m = edge.metrics()
    assert m.get("tapwork_k8s_events_total", kind="ingresses") >= 2

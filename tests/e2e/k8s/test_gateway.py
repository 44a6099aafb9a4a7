"""The Gateway API controller end to end (issue 16): tapwork run with
`kubernetes.gateway` against the test API server serving the
gateway.networking.k8s.io kinds, real upstreams on 127.0.0.x as pods.

The scenarios follow the upstream conformance suite's core HTTP profile
(conformance/tests/httproute-*.go, gateway-*.go): path/header/query/method
matching and its precedence, hostname intersection and listener isolation,
cross-namespace references with and without a ReferenceGrant, invalid
references (500 and the status reason), header modifiers, redirects,
rewrites, weights, and the status conditions with observedGeneration."""
import http.client
import os
import subprocess
import sys
import threading
import time

import pytest

from conftest import free_port
from ingressutil import publish_service, start_ingress_edge, start_pods, upstream_of, wait_for  # noqa: F401
from k8sutil import TOKEN, ApiServer, apiserver, ingress, kubectl, path, rule, tls_secret  # noqa: F401

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "edge"))
from edgeutil import hdr  # noqa: E402

CTL = "tapwork.dev/gateway-controller"
GW = "gateway.networking.k8s.io/v1"


@pytest.fixture
def gwapi(tmp_path):
    d = tmp_path / "apiserver"
    d.mkdir()
    api = ApiServer(tokens=[TOKEN], workdir=d, gateway_api=True)
    api.start()
    api.write_kubeconfig(d / "kubeconfig")
    try:
        yield api
    finally:
        api.stop()


def gatewayclass(name="tapwork", controller=CTL):
    return {"apiVersion": GW, "kind": "GatewayClass", "metadata": {"name": name},
            "spec": {"controllerName": controller}}


def listener(name, port, protocol="HTTP", hostname=None, from_="Same", selector=None, cert=None, kinds=None):
    li = {"name": name, "port": port, "protocol": protocol,
          "allowedRoutes": {"namespaces": {"from": from_}}}
    if selector is not None:
        li["allowedRoutes"]["namespaces"]["selector"] = selector
    if kinds is not None:
        li["allowedRoutes"]["kinds"] = kinds
    if hostname:
        li["hostname"] = hostname
    if cert:
        li["tls"] = {"mode": "Terminate", "certificateRefs": [cert]}
    return li


def gateway(ns, name, listeners, cls="tapwork"):
    return {"apiVersion": GW, "kind": "Gateway", "metadata": {"namespace": ns, "name": name},
            "spec": {"gatewayClassName": cls, "listeners": listeners}}


def ref(svc, port=80, weight=None, ns=None, kind=None, group=None):
    r = {"name": svc, "port": port}
    if weight is not None:
        r["weight"] = weight
    if ns:
        r["namespace"] = ns
    if kind:
        r["kind"] = kind
    if group is not None:
        r["group"] = group
    return r


def httproute(ns, name, rules, parents=(("web", "gw", None),), hostnames=None):
    prefs = []
    for pns, pname, section in parents:
        p = {"name": pname, "namespace": pns}
        if section:
            p["sectionName"] = section
        prefs.append(p)
    spec = {"parentRefs": prefs, "rules": rules}
    if hostnames:
        spec["hostnames"] = hostnames
    return {"apiVersion": GW, "kind": "HTTPRoute", "metadata": {"namespace": ns, "name": name}, "spec": spec}


def prefix(p):
    return {"path": {"type": "PathPrefix", "value": p}}


def start_gw_edge(procs, tmp_path, api, port, https=None, ingress_opts=None):
    cfg = {"listen": {"http": f"127.0.0.1:{port}"}}
    if https:
        cfg["listen"]["https"] = f"127.0.0.1:{https}"
        cfg["state_dir"] = str(tmp_path / "state")
    return start_ingress_edge(procs, tmp_path, api, cfg=cfg, ingress_opts=ingress_opts,
                              k8s_extra={"gateway": {"controller_name": CTL}})


def cond(conds, type_):
    for c in conds or []:
        if c["type"] == type_:
            return c
    return None


def route_parent(api, ns, name):
    st = (api.get("httproutes", name, ns) or {}).get("status") or {}
    ps = [p for p in st.get("parents", []) if p.get("controllerName") == CTL]
    return ps[0] if ps else None


def wait_route_cond(api, ns, name, type_, status, reason, gen=None):
    def ok():
        p = route_parent(api, ns, name)
        c = cond(p and p["conditions"], type_)
        if c and c["status"] == status and c["reason"] == reason and (gen is None or c["observedGeneration"] == gen):
            return c
        return None
    return wait_for(ok, 10, what=f"HTTPRoute {ns}/{name} {type_}={status} ({reason})")


def test_matching_precedence_hostnames_and_status(procs, tmp_path, gwapi):
    api = gwapi
    port = free_port()
    a, b, c, d = (start_pods(procs, n, [h]) for n, h in (("a", "127.0.0.2"), ("b", "127.0.0.3"),
                                                         ("c", "127.0.0.4"), ("d", "127.0.0.5")))
    for n, pods in (("svc-a", a), ("svc-b", b), ("svc-c", c), ("svc-d", d)):
        publish_service(api, "web", n, pods)
    api.create(gatewayclass())
    api.create(gateway("web", "gw", [listener("http", port, hostname="*.example.test"),
                                     listener("exact", port, hostname="only.example.test"),
                                     listener("wrong-port", port + 1),
                                     listener("dup", port, hostname="only.example.test")]))
    api.create(httproute("web", "matches", hostnames=["app.example.test", "other.test"], rules=[
        {"matches": [prefix("/")], "backendRefs": [ref("svc-a")]},
        {"matches": [{"path": {"type": "Exact", "value": "/exact"}}], "backendRefs": [ref("svc-b")]},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/"},
                      "headers": [{"name": "X-Version", "value": "two"}]}], "backendRefs": [ref("svc-c")]},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/"}, "queryParams": [{"name": "v", "value": "3"}]},
                     {"path": {"type": "PathPrefix", "value": "/"}, "method": "DELETE"}],
         "backendRefs": [ref("svc-d")]},
    ], parents=(("web", "gw", "http"),)))
    api.create(httproute("web", "isolated", rules=[{"backendRefs": [ref("svc-b")]}],
                         parents=(("web", "gw", "exact"),)))
    api.create(httproute("web", "wild", rules=[{"backendRefs": [ref("svc-d")]}], parents=(("web", "gw", "http"),)))
    edge = start_gw_edge(procs, tmp_path, api, port, ingress_opts={"publish_address": ["127.0.0.9", "lb.test"]})
    wait_for(lambda: upstream_of(edge, "app.example.test", "/x") == (200, "a-0"), 10, what="route served")
    # Exact beats PathPrefix; header, query and method matches beat a plain prefix
    assert upstream_of(edge, "app.example.test", "/exact") == (200, "b-0")
    assert upstream_of(edge, "app.example.test", "/exact/more") == (200, "a-0")
    assert edge.get("/x", host="app.example.test", headers={"X-Version": "two"}).headers["X-Upstream"] == "c-0"
    assert edge.get("/x", host="app.example.test", headers={"x-version": "TWO"}).headers["X-Upstream"] == "a-0"
    assert upstream_of(edge, "app.example.test", "/x?v=3") == (200, "d-0")
    assert upstream_of(edge, "app.example.test", "/x?v=4") == (200, "a-0")
    assert edge.request("DELETE", "/x", host="app.example.test").headers["X-Upstream"] == "d-0"
    # method (the longer path wins first: Exact /exact still goes to b)
    assert edge.request("DELETE", "/exact", host="app.example.test").headers["X-Upstream"] == "b-0"
    # hostname intersection: other.test is outside the listener's *.example.test
    assert edge.get("/x", host="other.test").status_code == 404
    # listener isolation: only.example.test has its own listener and route
    assert upstream_of(edge, "only.example.test", "/x") == (200, "b-0")
    assert upstream_of(edge, "only.example.test", "/exact") == (200, "b-0")
    # no hostnames: the listener's wildcard, which (Gateway API) takes any depth
    assert upstream_of(edge, "x.example.test", "/") == (200, "d-0")
    assert upstream_of(edge, "deep.sub.example.test", "/") == (200, "d-0")
    assert edge.get("/", host="example.test").status_code == 404

    # status: class, Gateway (per listener), routes, with observedGeneration
    def gc_ok():
        st = (api.get("gatewayclasses", "tapwork") or {}).get("status") or {}
        c_ = cond(st.get("conditions"), "Accepted")
        return c_ and c_["status"] == "True" and c_["observedGeneration"] == 1
    wait_for(gc_ok, 10, what="GatewayClass Accepted")

    def gw_status():
        st = (api.get("gateways", "gw", "web") or {}).get("status") or {}
        ls = {li["name"]: li for li in st.get("listeners", [])}
        return st if len(ls) == 4 and ls["http"]["attachedRoutes"] == 2 else None
    st = wait_for(gw_status, 10, what="Gateway status")
    ls = {li["name"]: li for li in st["listeners"]}
    assert cond(st["conditions"], "Programmed")["status"] == "True"
    assert st["addresses"] == [{"type": "IPAddress", "value": "127.0.0.9"}, {"type": "Hostname", "value": "lb.test"}]
    assert cond(st["conditions"], "Accepted")["reason"] == "ListenersNotValid"
    assert ls["exact"]["attachedRoutes"] == 1
    assert ls["http"]["supportedKinds"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}]
    assert cond(ls["wrong-port"]["conditions"], "Accepted")["reason"] == "PortUnavailable"
    assert cond(ls["wrong-port"]["conditions"], "Programmed")["status"] == "False"
    assert cond(ls["dup"]["conditions"], "Conflicted")["status"] == "True"
    assert cond(ls["dup"]["conditions"], "Conflicted")["reason"] == "HostnameConflict"
    assert cond(ls["exact"]["conditions"], "Conflicted")["status"] == "False"
    for li in ("http", "exact"):
        assert cond(ls[li]["conditions"], "Programmed")["status"] == "True"
    wait_route_cond(api, "web", "matches", "Accepted", "True", "Accepted", gen=1)
    wait_route_cond(api, "web", "matches", "ResolvedRefs", "True", "ResolvedRefs", gen=1)
    # a spec change bumps observedGeneration; the route now names a missing Service
    rt = api.get("httproutes", "isolated", "web")
    rt["spec"]["rules"] = [{"backendRefs": [ref("no-such-svc")]}]
    api.update(rt)
    wait_route_cond(api, "web", "isolated", "ResolvedRefs", "False", "BackendNotFound", gen=2)
    wait_for(lambda: edge.get("/x", host="only.example.test").status_code == 500, 10, what="500 for a missing backend")
    # a route attached to no listener of the right name
    api.create(httproute("web", "nosection", rules=[{"backendRefs": [ref("svc-a")]}],
                         parents=(("web", "gw", "nope"),)))
    wait_route_cond(api, "web", "nosection", "Accepted", "False", "NoMatchingParent")
    # detached from our Gateway (another controller's parent kept): our parent entry goes
    st = api.get("httproutes", "nosection", "web")["status"]
    st["parents"].append({"parentRef": {"name": "elsewhere"}, "controllerName": "example.com/other",
                          "conditions": []})
    api.set_status("httproutes", "nosection", st, "web")
    rt = api.get("httproutes", "nosection", "web")
    rt["spec"]["parentRefs"] = [{"name": "elsewhere"}]
    api.update(rt)
    wait_for(lambda: [p["controllerName"] for p in api.get("httproutes", "nosection", "web")["status"]["parents"]]
             == ["example.com/other"], 10, what="our parent entry removed, the other kept")


def test_cross_namespace_reference_grant_and_allowed_routes(procs, tmp_path, gwapi):
    api = gwapi
    port = free_port()
    a = start_pods(procs, "a", ["127.0.0.2"])
    publish_service(api, "backends", "svc", a)
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team", "labels": {"gw": "yes"}}})
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    api.create(gatewayclass())
    api.create(gateway("infra", "gw", [listener("same", port, hostname="same.test"),
                                       listener("sel", port, hostname="sel.test", from_="Selector",
                                                selector={"matchLabels": {"gw": "yes"}})]))
    api.create(httproute("team", "r", hostnames=["sel.test"], rules=[{"backendRefs": [ref("svc", ns="backends")]}],
                         parents=(("infra", "gw", None),)))
    api.create(httproute("other", "r", hostnames=["sel.test", "same.test"],
                         rules=[{"matches": [prefix("/other")], "backendRefs": [ref("svc", ns="backends")]}],
                         parents=(("infra", "gw", None),)))
    edge = start_gw_edge(procs, tmp_path, api, port)
    # attached by the selector, but no ReferenceGrant for the Service: 500
    wait_route_cond(api, "team", "r", "ResolvedRefs", "False", "RefNotPermitted")
    wait_route_cond(api, "team", "r", "Accepted", "True", "Accepted")
    assert edge.get("/x", host="sel.test").status_code == 500
    # namespace "other" is not selected, nor "same": not allowed anywhere
    wait_route_cond(api, "other", "r", "Accepted", "False", "NotAllowedByListeners")
    assert edge.get("/other", host="sel.test").status_code == 500  # team's route, not other's
    api.create({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
                "metadata": {"namespace": "backends", "name": "from-team"},
                "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "team"}],
                         "to": [{"group": "", "kind": "Service"}]}})
    wait_for(lambda: upstream_of(edge, "sel.test", "/x") == (200, "a-0"), 10, what="granted")
    wait_route_cond(api, "team", "r", "ResolvedRefs", "True", "ResolvedRefs")
    # a kind that is not a Service
    rt = api.get("httproutes", "r", "team")
    rt["spec"]["rules"] = [{"backendRefs": [ref("svc", kind="Pod")]}]
    api.update(rt)
    wait_route_cond(api, "team", "r", "ResolvedRefs", "False", "InvalidKind")
    wait_for(lambda: edge.get("/x", host="sel.test").status_code == 500, 10, what="500 for InvalidKind")


def test_filters_redirect_rewrite_headers(procs, tmp_path, gwapi):
    api = gwapi
    port = free_port()
    a = start_pods(procs, "a", ["127.0.0.2"])
    publish_service(api, "web", "svc", a)
    api.create(gatewayclass())
    api.create(gateway("web", "gw", [listener("http", port)]))
    api.create(httproute("web", "f", hostnames=["f.test"], rules=[
        {"matches": [prefix("/hdr")],
         "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
             "set": [{"name": "X-Set", "value": "set-value"}], "add": [{"name": "X-Add", "value": "added"}],
             "remove": ["X-Remove"]}},
                     {"type": "ResponseHeaderModifier", "responseHeaderModifier": {
                         "set": [{"name": "X-Upstream", "value": "hidden"}],
                         "add": [{"name": "X-Resp", "value": "r1"}]}}],
         "backendRefs": [ref("svc")]},
        {"matches": [prefix("/redir")],
         "filters": [{"type": "RequestRedirect", "requestRedirect": {
             "scheme": "https", "hostname": "new.test", "statusCode": 301,
             "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/moved"}}}]},
        {"matches": [prefix("/port")],
         "filters": [{"type": "RequestRedirect", "requestRedirect": {"port": 8443}}]},
        {"matches": [prefix("/prefix/one")],
         "filters": [{"type": "URLRewrite", "urlRewrite": {
             "hostname": "rewritten.test", "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/one"}}}],
         "backendRefs": [ref("svc")]},
        {"matches": [prefix("/strip")],
         "filters": [{"type": "URLRewrite", "urlRewrite": {
             "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}],
         "backendRefs": [ref("svc")]},
        {"matches": [prefix("/full")],
         "filters": [{"type": "URLRewrite", "urlRewrite": {
             "path": {"type": "ReplaceFullPath", "replaceFullPath": "/echo"}}}],
         "backendRefs": [ref("svc")]},
        {"matches": [prefix("/timed")], "timeouts": {"request": "400ms"}, "backendRefs": [ref("svc")]},
        {"matches": [prefix("/mirror")], "filters": [{"type": "RequestMirror",
                                                      "requestMirror": {"backendRef": ref("svc")}}],
         "backendRefs": [ref("svc")]},
    ]))
    edge = start_gw_edge(procs, tmp_path, api, port)
    wait_for(lambda: edge.get("/hdr", host="f.test").status_code == 200, 10, what="route served")
    r = edge.get("/hdr", host="f.test", headers={"X-Set": "client", "X-Remove": "gone", "X-Add": "client-add"})
    e = r.json()
    assert hdr(e, "X-Set") == ["set-value"]
    assert sorted(hdr(e, "X-Add")) == ["added", "client-add"]
    assert hdr(e, "X-Remove") == []
    assert r.headers["X-Upstream"] == "hidden" and r.headers["X-Resp"] == "r1"
    r = edge.get("/redir/a/b?q=1", host="f.test", allow_redirects=False)
    assert (r.status_code, r.headers["Location"]) == (301, "https://new.test/moved/a/b?q=1")
    r = edge.get("/port/x", host="f.test:9999", allow_redirects=False)
    assert (r.status_code, r.headers["Location"]) == (302, "http://f.test:8443/port/x")
    e = edge.get("/prefix/one/two?z=1", host="f.test").json()
    assert (e["path"], e["query"], hdr(e, "Host")) == ("/one/two", "z=1", ["rewritten.test"])
    assert edge.get("/strip/three", host="f.test").json()["path"] == "/three"
    assert edge.get("/strip", host="f.test").json()["path"] == "/"
    e = edge.get("/full/any/thing", host="f.test").json()
    assert e["path"] == "/echo" and hdr(e, "Host") == ["f.test"]
    # the same over cleartext HTTP/2 (prior knowledge): response header edits and a redirect
    def h2_head(path):
        out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-D", "-", "-o", "/dev/null",
                              "-H", "Host: f.test", f"http://127.0.0.1:{port}{path}"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.lower() + out.stderr
    heads = h2_head("/hdr")
    assert "http/2 200" in heads and "x-upstream: hidden" in heads and "x-resp: r1" in heads, heads
    heads = h2_head("/redir/z")
    assert "http/2 301" in heads and "location: https://new.test/moved/z" in heads, heads
    # timeouts.request: the upstream's answer within 400 ms, else 504
    assert edge.get("/timed/slow?ms=50", host="f.test").status_code == 200
    assert edge.get("/timed/slow?ms=1500", host="f.test").status_code == 504
    # an unsupported filter: the rule answers 500, the route says why
    assert edge.get("/mirror", host="f.test").status_code == 500
    wait_route_cond(api, "web", "f", "PartiallyInvalid", "True", "UnsupportedValue")
    wait_route_cond(api, "web", "f", "Accepted", "True", "Accepted")


def test_weighted_split_is_exact(procs, tmp_path, gwapi):
    api = gwapi
    port = free_port()
    pods = {n: start_pods(procs, n, [h]) for n, h in (("a", "127.0.0.2"), ("b", "127.0.0.3"), ("c", "127.0.0.4"))}
    for n, p in pods.items():
        publish_service(api, "web", f"svc-{n}", p)
    api.create(gatewayclass())
    api.create(gateway("web", "gw", [listener("http", port)]))
    api.create(httproute("web", "w", hostnames=["w.test"], rules=[
        {"backendRefs": [ref("svc-a", weight=70), ref("svc-b", weight=30), ref("svc-c", weight=0)]}]))
    edge = start_gw_edge(procs, tmp_path, api, port)
    wait_for(lambda: edge.get("/", host="w.test").status_code == 200, 10, what="route served")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    counts = {}
    n = 10000
    for _ in range(n):
        conn.request("GET", "/", headers={"Host": "w.test"})
        resp = conn.getresponse()
        resp.read()
        up = resp.getheader("X-Upstream")
        counts[up] = counts.get(up, 0) + 1
    conn.close()
    assert "c-0" not in counts, counts  # weight 0: no traffic
    assert abs(counts.get("a-0", 0) - 0.7 * n) <= 0.02 * n, counts
    assert abs(counts.get("b-0", 0) - 0.3 * n) <= 0.02 * n, counts

    # weight changes under load drop no request
    stop = threading.Event()
    bad, done = [], [0]

    def load():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        deadline = time.monotonic() + 20
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                c.request("GET", "/", headers={"Host": "w.test"})
                r = c.getresponse()
                r.read()
                if r.status != 200:
                    bad.append(r.status)
                done[0] += 1
            except (OSError, http.client.HTTPException) as e:
                bad.append(repr(e))
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.close()
    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    for w in ((0, 100, 0), (50, 0, 50), (1, 1, 1)):
        rt = api.get("httproutes", "w", "web")
        rt["spec"]["rules"][0]["backendRefs"] = [ref("svc-a", weight=w[0]), ref("svc-b", weight=w[1]),
                                                 ref("svc-c", weight=w[2])]
        api.update(rt)
        want = {f"{k}-0" for k, x in zip("abc", w) if x}
        wait_for(lambda: {edge.get("/", host="w.test").headers["X-Upstream"] for _ in range(6)} == want, 10,
                 what=f"weights {w}")
    stop.set()
    for t in threads:
        t.join()
    assert not bad, bad[:5]
    assert done[0] > 100


def test_https_listener_and_conflict_with_ingress(procs, tmp_path, gwapi):
    api = gwapi
    port, https = free_port(), free_port()
    a = start_pods(procs, "a", ["127.0.0.2"])
    b = start_pods(procs, "b", ["127.0.0.3"])
    publish_service(api, "web", "svc-a", a)
    publish_service(api, "web", "svc-b", b)
    api.create(tls_secret("web", "cert", ["secure.test"], tmp_path))
    api.create(gatewayclass())
    # the Ingress is older than the HTTPRoute: it keeps app.test/
    api.create(ingress("web", "old", rules=[rule("app.test", [path("/", "svc-a", "http")])]))
    api.create(gateway("web", "gw", [
        listener("http", port),
        listener("https", https, protocol="HTTPS", hostname="secure.test", cert={"kind": "Secret", "name": "cert"}),
        listener("badcert", https, protocol="HTTPS", hostname="bad.test", cert={"kind": "Secret", "name": "nope"})]))
    api.create(httproute("web", "r", hostnames=["app.test", "secure.test"], rules=[{"backendRefs": [ref("svc-b")]}]))
    edge = start_gw_edge(procs, tmp_path, api, port, https=https)
    wait_for(lambda: upstream_of(edge, "secure.test", "/") == (200, "b-0"), 10, what="route served")
    assert upstream_of(edge, "app.test", "/") == (200, "a-0")
    out = subprocess.run(["curl", "-sS", "--cacert", str(tmp_path / "cert.crt"), "--resolve",
                          f"secure.test:{https}:127.0.0.1", f"https://secure.test:{https}/echo", "-o", "/dev/null",
                          "-w", "%{http_code}"], capture_output=True, text=True, timeout=20)
    assert out.stdout == "200", out.stderr

    def gw_status():
        st = (api.get("gateways", "gw", "web") or {}).get("status") or {}
        return {li["name"]: li for li in st.get("listeners", [])} or None
    ls = wait_for(gw_status, 10, what="Gateway status")
    assert cond(ls["https"]["conditions"], "ResolvedRefs")["status"] == "True"
    assert cond(ls["badcert"]["conditions"], "ResolvedRefs")["reason"] == "InvalidCertificateRef"
    # the Ingress goes away: the HTTPRoute takes app.test
    api.delete("ingresses", "old", "web")
    wait_for(lambda: upstream_of(edge, "app.test", "/") == (200, "b-0"), 10, what="route takes over")


CANARY = """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: tapwork}
spec: {controllerName: tapwork.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: shop}
spec:
  gatewayClassName: tapwork
  listeners:
  - {name: http, port: PORT, protocol: HTTP, hostname: "*.example.com"}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: shop}
spec:
  parentRefs: [{name: web}]
  hostnames: [shop.example.com]
  rules:
  - backendRefs:
    - {name: shop, port: 80, weight: 90}
    - {name: shop-canary, port: 80, weight: 10}
"""


def test_kubectl_canary_90_10(procs, tmp_path, gwapi):
    """The docs' canary example, applied with kubectl; kubectl reads the status back."""
    api = gwapi
    port = free_port()
    publish_service(api, "shop", "shop", start_pods(procs, "stable", ["127.0.0.2"]))
    publish_service(api, "shop", "shop-canary", start_pods(procs, "canary", ["127.0.0.3"]))
    edge = start_gw_edge(procs, tmp_path, api, port)
    r = kubectl(api, "apply", "-f", "-", input=CANARY.replace("PORT", str(port)))
    assert r.returncode == 0, r.stderr
    wait_for(lambda: edge.get("/", host="shop.example.com").status_code == 200, 10, what="canary route served")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    counts = {}
    for _ in range(1000):
        conn.request("GET", "/", headers={"Host": "shop.example.com"})
        resp = conn.getresponse()
        resp.read()
        counts[resp.getheader("X-Upstream")] = counts.get(resp.getheader("X-Upstream"), 0) + 1
    conn.close()
    assert counts == {"stable-0": 900, "canary-0": 100}, counts  # smooth WRR: exact over 10 x sum(weights)
    wait_for(lambda: kubectl(api, "get", "httproute", "shop", "-n", "shop", "-o",
                             "jsonpath={.status.parents[0].conditions[?(@.type=='Accepted')].status}").stdout == "True",
             10, what="kubectl sees Accepted")
    r = kubectl(api, "get", "gateway", "web", "-n", "shop", "-o", "jsonpath={.status.listeners[0].attachedRoutes}")
    assert r.stdout == "1", (r.stdout, r.stderr)


def test_without_the_crds_ingresses_are_still_served(procs, tmp_path, apiserver):
    """kubernetes.gateway on a cluster without the Gateway API CRDs: the
    Ingresses are served (the missing kinds count as empty), a warning says why."""
    api = apiserver
    port = free_port()
    publish_service(api, "web", "svc", start_pods(procs, "a", ["127.0.0.2"]))
    api.create(ingress("web", "site", rules=[rule("app.test", [path("/", "svc", "http")])]))
    edge = start_gw_edge(procs, tmp_path, api, port)  # waits for /readyz
    assert upstream_of(edge, "app.test", "/") == (200, "a-0")
    edge.wait_log(r"\[k8s httproutes\] .*HTTP 404.*does not serve this kind")

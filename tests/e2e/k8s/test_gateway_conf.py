"""The upstream Gateway API conformance suite's core scenarios that
test_gateway.py does not already cover (docs/gateway-conformance.md maps
every core test to ours), each re-expressed with the suite's manifests
against one tapwork and one test API server for the whole module; every
test uses host names of its own so that they do not see each other's
routes. Real upstreams on 127.0.0.x stand in for the suite's backends."""
import os
import subprocess
import sys

import pytest

from conftest import Procs, free_port
from ingressutil import publish_service, start_ingress_edge, start_pods, upstream_of, wait_for
from k8sutil import TOKEN, ApiServer, secret, tls_secret

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "edge"))
from edgeutil import check_sanitizers  # noqa: E402

CTL = "tapwork.dev/gateway-controller"
GW = "gateway.networking.k8s.io/v1"
RG = "gateway.networking.k8s.io/v1beta1"
INFRA, WEB, APP = "gateway-conformance-infra", "gateway-conformance-web-backend", "gateway-conformance-app-backend"
KINDS_HTTP = [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}]


class Env:
    pass


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gwconf")
    ps = Procs(tmp)
    d = tmp / "apiserver"
    d.mkdir()
    api = ApiServer(tokens=[TOKEN], workdir=d, gateway_api=True)
    api.start()
    api.write_kubeconfig(d / "kubeconfig")
    try:
        e = Env()
        e.api, e.tmp = api, tmp
        e.http, e.https = free_port(), free_port()
        for ns in (INFRA, WEB, APP):
            api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for ns, svc, name, host in ((INFRA, "infra-backend-v1", "v1", "127.0.0.2"),
                                    (INFRA, "infra-backend-v2", "v2", "127.0.0.3"),
                                    (INFRA, "infra-backend-v3", "v3", "127.0.0.4"),
                                    (WEB, "web-backend", "web", "127.0.0.5"),
                                    (APP, "app-backend-v1", "app1", "127.0.0.6"),
                                    (APP, "app-backend-v2", "app2", "127.0.0.7")):
            publish_service(api, ns, svc, start_pods(ps, name, [host]), svc_port=8080)
        api.create({"apiVersion": GW, "kind": "GatewayClass", "metadata": {"name": "tapwork"},
                    "spec": {"controllerName": CTL}})
        # the suite's shared Gateway: routes from its own namespace only
        api.create(gateway("same-namespace", [listener("http", e.http)]))
        cfg = {"listen": {"http": f"127.0.0.1:{e.http}", "https": f"127.0.0.1:{e.https}"},
               "state_dir": str(tmp / "state")}
        e.edge = start_ingress_edge(ps, tmp, api, cfg=cfg, k8s_extra={"gateway": {"controller_name": CTL}})
        yield e
    finally:
        ps.stop_all()
        api.stop()
    check_sanitizers(ps)


def listener(name, port, protocol="HTTP", hostname=None, from_="Same", kinds=None, certs=None):
    li = {"name": name, "port": port, "protocol": protocol, "allowedRoutes": {"namespaces": {"from": from_}}}
    if hostname:
        li["hostname"] = hostname
    if kinds is not None:
        li["allowedRoutes"]["kinds"] = kinds
    if certs is not None:
        li["tls"] = {"mode": "Terminate", "certificateRefs": certs}
    return li


def gateway(name, listeners, ns=INFRA, **spec):
    s = {"gatewayClassName": "tapwork", "listeners": listeners}
    s.update(spec)
    return {"apiVersion": GW, "kind": "Gateway", "metadata": {"namespace": ns, "name": name}, "spec": s}


def route(name, rules, hostnames=None, parents=None, ns=INFRA):
    spec = {"parentRefs": parents or [{"name": "same-namespace", "namespace": INFRA}], "rules": rules}
    if hostnames:
        spec["hostnames"] = hostnames
    return {"apiVersion": GW, "kind": "HTTPRoute", "metadata": {"namespace": ns, "name": name}, "spec": spec}


def be(name, ns=None, port=8080):
    r = {"name": name, "port": port}
    if ns:
        r["namespace"] = ns
    return r


def m(type_="PathPrefix", value="/", headers=None):
    mt = {"path": {"type": type_, "value": value}}
    if headers:
        mt["headers"] = [{"name": k, "value": v} for k, v in headers.items()]
    return mt


def grant(name, ns, from_, to):
    return {"apiVersion": RG, "kind": "ReferenceGrant", "metadata": {"namespace": ns, "name": name},
            "spec": {"from": from_, "to": to}}


def cond(conds, type_):
    for c in conds or []:
        if c["type"] == type_:
            return c
    return None


def route_parents(api, name, ns=INFRA):
    st = (api.get("httproutes", name, ns) or {}).get("status") or {}
    return [p for p in st.get("parents", []) if p.get("controllerName") == CTL]


def wait_route(api, name, type_, status, reason, ns=INFRA, gen=None):
    def ok():
        ps = route_parents(api, name, ns)
        c = cond(ps[0]["conditions"], type_) if ps else None
        if c and (c["status"], c["reason"]) == (status, reason) and (gen is None or c["observedGeneration"] == gen):
            return ps[0]
        return None
    return wait_for(ok, 10, what=f"HTTPRoute {ns}/{name} {type_}={status} {reason}")


def gw_status(api, name, ns=INFRA):
    return (api.get("gateways", name, ns) or {}).get("status") or {}


def wait_listeners(api, name, pred, ns=INFRA, what=""):
    """Waits until pred(gateway status, {listener name: listener status}) holds."""
    def ok():
        st = gw_status(api, name, ns)
        ls = {li["name"]: li for li in st.get("listeners", [])}
        return (st, ls) if ls and pred(st, ls) else None
    return wait_for(ok, 10, what=f"Gateway {ns}/{name} {what}")


def lcond(li, type_):
    c = cond(li["conditions"], type_)
    return (c["status"], c["reason"]) if c else None


def latest(conds, gen):
    """Every condition (at least one) observed generation gen."""
    return bool(conds) and all(c.get("observedGeneration") == gen for c in conds)


def wait_served(edge, host, path, want, headers=None):
    """want: an upstream name, or a status without upstream."""
    def ok():
        r = edge.get(path, host=host, headers=headers, allow_redirects=False)
        got = r.headers.get("X-Upstream") if isinstance(want, str) else r.status_code
        return got == want
    wait_for(ok, 10, what=f"{host}{path} {headers or ''} -> {want}")


def check(edge, host, cases):
    """cases: (path, headers, want) — want an upstream name or a status."""
    for path, headers, want in cases:
        r = edge.get(path, host=host, headers=headers)
        if isinstance(want, str):
            assert (r.status_code, r.headers.get("X-Upstream")) == (200, want), (host, path, headers, r.status_code)
        else:
            assert r.status_code == want, (host, path, headers, r.status_code, r.headers.get("X-Upstream"))


# ---- HTTPRoute matching ----------------------------------------------------------------------------------

def test_path_match_order_and_exact(env):
    """httproute-path-match-order, httproute-exact-path-matching."""
    api, edge = env.api, env.edge
    api.create(route("path-matching-order", hostnames=["order.test"], rules=[
        {"matches": [m("Exact", "/match")], "backendRefs": [be("infra-backend-v1")]},
        {"matches": [m("Exact", "/match/exact")], "backendRefs": [be("infra-backend-v2")]},
        {"matches": [m("Exact", "/match/exact/one")], "backendRefs": [be("infra-backend-v3")]},
        {"matches": [m("PathPrefix", "/match/")], "backendRefs": [be("infra-backend-v3")]},
        {"matches": [m("PathPrefix", "/match/prefix/")], "backendRefs": [be("infra-backend-v1")]},
        {"matches": [m("PathPrefix", "/match/prefix/one")], "backendRefs": [be("infra-backend-v2")]}]))
    api.create(route("exact-matching", hostnames=["exact.test"], rules=[
        {"matches": [m("Exact", "/one")], "backendRefs": [be("infra-backend-v1")]},
        {"matches": [m("Exact", "/two")], "backendRefs": [be("infra-backend-v2")]}]))
    wait_served(edge, "order.test", "/match", "v1-0")
    wait_served(edge, "exact.test", "/one", "v1-0")
    check(edge, "order.test", [("/match/exact/one", None, "v3-0"), ("/match/exact", None, "v2-0"),
                               ("/match", None, "v1-0"), ("/match/prefix/one/any", None, "v2-0"),
                               ("/match/prefix/any", None, "v1-0"), ("/match/any", None, "v3-0"),
                               ("/matchy", None, 404)])
    check(edge, "exact.test", [("/one", None, "v1-0"), ("/two", None, "v2-0"), ("/", None, 404),
                               ("/one/example", None, 404), ("/two/", None, 404)])


def test_header_matching_precedence(env):
    """httproute-header-matching: more header matches win; ORed matches; no match is a 404."""
    api, edge = env.api, env.edge
    api.create(route("header-matching", hostnames=["headers.test"], rules=[
        {"matches": [{"headers": [{"name": "version", "value": "one"}]}], "backendRefs": [be("infra-backend-v1")]},
        {"matches": [{"headers": [{"name": "version", "value": "two"}]}], "backendRefs": [be("infra-backend-v2")]},
        {"matches": [{"headers": [{"name": "version", "value": "two"}, {"name": "color", "value": "orange"}]}],
         "backendRefs": [be("infra-backend-v1")]},
        {"matches": [{"headers": [{"name": "color", "value": "blue"}]},
                     {"headers": [{"name": "color", "value": "green"}]}], "backendRefs": [be("infra-backend-v1")]},
        {"matches": [{"headers": [{"name": "color", "value": "red"}]},
                     {"headers": [{"name": "color", "value": "yellow"}]}], "backendRefs": [be("infra-backend-v2")]}]))
    wait_served(edge, "headers.test", "/", "v1-0", headers={"Version": "one"})
    check(edge, "headers.test", [
        ("/", {"Version": "one"}, "v1-0"), ("/", {"Version": "two"}, "v2-0"),
        ("/", {"Version": "two", "Color": "orange"}, "v1-0"), ("/", {"Version": "two", "Color": "blue"}, "v2-0"),
        ("/", {"Color": "orange"}, 404), ("/", {"Some-Other-Header": "one"}, 404),
        ("/", {"Color": "blue"}, "v1-0"), ("/", {"Color": "green"}, "v1-0"),
        ("/", {"Color": "red"}, "v2-0"), ("/", {"Color": "yellow"}, "v2-0"), ("/", {"Color": "purple"}, 404)])


def test_matching_across_routes(env):
    """httproute-matching-across-routes: the precedence holds between two HTTPRoutes sharing a host."""
    api, edge = env.api, env.edge
    api.create(route("matching-part1", hostnames=["example.com", "example.net"], rules=[
        {"matches": [m("PathPrefix", "/"), {"headers": [{"name": "version", "value": "one"}]}],
         "backendRefs": [be("infra-backend-v1")]}]))
    api.create(route("matching-part2", hostnames=["example.com"], rules=[
        {"matches": [m("PathPrefix", "/v2"), {"headers": [{"name": "version", "value": "two"}]}],
         "backendRefs": [be("infra-backend-v2")]}]))
    wait_served(edge, "example.com", "/v2", "v2-0")
    check(edge, "example.com", [("/", None, "v1-0"), ("/example", None, "v1-0"),
                                ("/example", {"Version": "one"}, "v1-0"), ("/v2", None, "v2-0"),
                                ("/v2/example", None, "v2-0"), ("/", {"Version": "two"}, "v2-0")])
    check(edge, "example.net", [("/example", None, "v1-0"), ("/v2", None, "v1-0")])


def test_listener_hostname_matching(env):
    """httproute-listener-hostname-matching: routes attached by sectionName take their listener's host."""
    api, edge = env.api, env.edge
    api.create(gateway("httproute-listener-hostname-matching", [
        listener("listener-1", env.http, hostname="bar.com"), listener("listener-2", env.http, hostname="foo.bar.com"),
        listener("listener-3", env.http, hostname="*.bar.com"), listener("listener-4", env.http, hostname="*.foo.com")]))

    def parent(section):
        return {"name": "httproute-listener-hostname-matching", "namespace": INFRA, "sectionName": section}
    api.create(route("backend-v1", [{"backendRefs": [be("infra-backend-v1")]}], parents=[parent("listener-1")]))
    api.create(route("backend-v2", [{"backendRefs": [be("infra-backend-v2")]}], parents=[parent("listener-2")]))
    api.create(route("backend-v3", [{"backendRefs": [be("infra-backend-v3")]}],
                     parents=[parent("listener-3"), parent("listener-4")]))
    wait_served(edge, "multiple.prefixes.foo.com", "/", "v3-0")
    for host, want in (("bar.com", "v1-0"), ("foo.bar.com", "v2-0"), ("baz.bar.com", "v3-0"), ("boo.bar.com", "v3-0"),
                       ("multiple.prefixes.bar.com", "v3-0"), ("multiple.prefixes.foo.com", "v3-0"),
                       ("foo.com", 404), ("no.matching.host", 404)):
        check(edge, host, [("/", None, want)])
    _, ls = wait_listeners(api, "httproute-listener-hostname-matching",
                           lambda st, ls: [ls[f"listener-{i}"]["attachedRoutes"] for i in range(1, 5)] == [1, 1, 1, 1],
                           what="attachedRoutes 1 per listener")


# ---- HTTPRoute references and status ---------------------------------------------------------------------

def test_omitted_backendrefs_and_partially_invalid(env):
    """httproute-omitted-backendrefs; httproute-partially-invalid-via-invalid-reference-grant: only the
    rule with a reference that no ReferenceGrant allows answers 500, its sibling is served."""
    api, edge = env.api, env.edge
    api.create(route("omitted-backendrefs", hostnames=["omitted.test"], rules=[
        {"matches": [m("Exact", "/omitted-no-forward")]},
        {"matches": [m("Exact", "/empty-no-forward")], "backendRefs": []},
        {"matches": [m("PathPrefix", "/")], "backendRefs": [be("infra-backend-v1")]}]))
    api.create(grant("invalid-reference-grant", APP,
                     [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": INFRA}],
                     [{"group": "", "kind": "Service", "name": "app-backend-v1"}]))
    api.create(route("invalid-reference-grant", hostnames=["partial.test"], rules=[
        {"matches": [m("PathPrefix", "/v2")], "backendRefs": [be("app-backend-v2", APP)]},
        {"backendRefs": [be("app-backend-v1", APP)]}]))
    wait_served(edge, "omitted.test", "/forward", "v1-0")
    check(edge, "omitted.test", [("/forward", None, "v1-0"), ("/omitted-no-forward", None, 500),
                                 ("/empty-no-forward", None, 500)])
    wait_route(api, "omitted-backendrefs", "Accepted", "True", "Accepted")
    wait_route(api, "omitted-backendrefs", "ResolvedRefs", "True", "ResolvedRefs")
    wait_served(edge, "partial.test", "/", "app1-0")
    check(edge, "partial.test", [("/v2", None, 500), ("/v2/x", None, 500), ("/", None, "app1-0")])
    wait_route(api, "invalid-reference-grant", "ResolvedRefs", "False", "RefNotPermitted")
    wait_route(api, "invalid-reference-grant", "Accepted", "True", "Accepted")


def test_reference_grants_that_do_not_match(env):
    """httproute-invalid-reference-grant (each field of the grant wrong once: 500 and RefNotPermitted),
    then httproute-reference-grant (the right one: served)."""
    api, edge = env.api, env.edge
    fr = {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": INFRA}
    to = {"group": "", "kind": "Service", "name": "web-backend"}
    for name, ns, f, t in (("wrong-namespace", INFRA, fr, to),
                           ("wrong-from-group", WEB, dict(fr, group="not-the-group"), to),
                           ("wrong-from-kind", WEB, dict(fr, kind="Gateway"), to),
                           ("wrong-from-namespace", WEB, dict(fr, namespace="not-the-namespace"), to),
                           ("wrong-to-group", WEB, fr, dict(to, group="not-the-group")),
                           ("wrong-to-kind", WEB, fr, dict(to, kind="Secret")),
                           ("wrong-to-name", WEB, fr, dict(to, name="not-the-service"))):
        api.create(grant(f"reference-grant-{name}", ns, [f], [t]))
    api.create(route("reference-grant", hostnames=["grant.test"], rules=[{"backendRefs": [be("web-backend", WEB)]}]))
    wait_route(api, "reference-grant", "ResolvedRefs", "False", "RefNotPermitted")
    wait_served(edge, "grant.test", "/", 500)
    api.create(grant("reference-grant", WEB, [fr], [to]))
    wait_served(edge, "grant.test", "/", "web-0")
    wait_route(api, "reference-grant", "ResolvedRefs", "True", "ResolvedRefs")
    # the grant goes: the reference is refused again
    api.delete("referencegrants", "reference-grant", WEB)
    wait_served(edge, "grant.test", "/", 500)


def test_invalid_parent_refs(env):
    """httproute-invalid-cross-namespace-parent-ref, -not-matching-section-name,
    -section-name-not-matching-port, httproute-disallowed-kind."""
    api, edge = env.api, env.edge
    api.create(gateway("tlsroutes-only", [dict(listener("tls", env.https, protocol="TLS", kinds=[{"kind": "TLSRoute"}]),
                                               tls={"mode": "Passthrough"})]))
    api.create(route("invalid-cross-namespace-parent-ref", ns=WEB, hostnames=["xns.test"],
                     rules=[{"backendRefs": [be("web-backend")]}]))
    api.create(route("httproute-listener-not-matching-section-name", hostnames=["section.test"],
                     parents=[{"name": "same-namespace", "namespace": INFRA, "port": env.http, "sectionName": "http1"}],
                     rules=[{"backendRefs": [be("infra-backend-v1")]}]))
    api.create(route("httproute-section-name-not-matching-port", hostnames=["port.test"],
                     parents=[{"name": "same-namespace", "namespace": INFRA, "port": env.http + 1, "sectionName": "http"}],
                     rules=[{"backendRefs": [be("infra-backend-v1")]}]))
    api.create(route("disallowed-kind", hostnames=["kind.test"], parents=[{"name": "tlsroutes-only", "namespace": INFRA}],
                     rules=[{"backendRefs": [be("infra-backend-v1")]}]))
    p = wait_route(api, "invalid-cross-namespace-parent-ref", "Accepted", "False", "NotAllowedByListeners", ns=WEB)
    assert lcond(p, "ResolvedRefs") == ("True", "ResolvedRefs")
    wait_route(api, "httproute-listener-not-matching-section-name", "Accepted", "False", "NoMatchingParent")
    wait_route(api, "httproute-section-name-not-matching-port", "Accepted", "False", "NoMatchingParent")
    wait_route(api, "disallowed-kind", "Accepted", "False", "NotAllowedByListeners")
    for host in ("xns.test", "section.test", "port.test", "kind.test"):
        assert edge.get("/", host=host).status_code == 404, host
    # none of them attached: the shared Gateway's listener counts only routes of its namespace
    _, ls = wait_listeners(api, "same-namespace", lambda st, ls: "http" in ls)
    own = [r for r in api.list("httproutes", INFRA)
           if any(pr["name"] == "same-namespace" and "sectionName" not in pr for pr in r["spec"]["parentRefs"])]
    assert ls["http"]["attachedRoutes"] == len(own), (ls["http"]["attachedRoutes"], [r["metadata"]["name"] for r in own])
    _, ls = wait_listeners(api, "tlsroutes-only", lambda st, ls: "tls" in ls)
    assert ls["tls"]["attachedRoutes"] == 0 and ls["tls"]["supportedKinds"] == []
    assert lcond(ls["tls"], "Accepted") == ("False", "UnsupportedProtocol")


def test_redirect_port_and_scheme(env):
    """httproute-redirect-port-and-scheme on an HTTP and an HTTPS listener: the port is written unless it
    is the scheme's own; no scheme and no port take the listener's."""
    api, edge, P, H = env.api, env.edge, env.http, env.https
    api.create(tls_secret(INFRA, "redirect-cert", ["redir-https.test"], env.tmp))
    api.create(gateway("same-namespace-with-https-listener",
                       [listener("https", H, protocol="HTTPS", certs=[{"kind": "Secret", "name": "redirect-cert"}])]))

    def rd(path, **r):
        return {"matches": [m("PathPrefix", path)],
                "filters": [{"type": "RequestRedirect", "requestRedirect": dict(hostname="example.org", **r)}]}
    api.create(route("http-route-for-listener-on-port-80", hostnames=["redir-http.test"], rules=[
        rd("/scheme-nil-and-port-nil"), rd("/scheme-nil-and-port-80", port=80), rd("/scheme-nil-and-port-8080", port=8080),
        rd("/scheme-https-and-port-nil", scheme="https"), rd("/scheme-https-and-port-443", scheme="https", port=443),
        rd("/scheme-https-and-port-8443", scheme="https", port=8443),
        rd("/status-303", statusCode=303), rd("/status-307", statusCode=307), rd("/status-308", statusCode=308),
        {"matches": [m("PathPrefix", "/backend-filter")],
         "backendRefs": [dict(be("infra-backend-v1"), filters=[{"type": "RequestHeaderModifier",
                                                                 "requestHeaderModifier": {"set": [{"name": "a", "value": "b"}]}}])]}]))
    api.create(route("http-route-for-listener-on-port-443", hostnames=["redir-https.test"],
                     parents=[{"name": "same-namespace-with-https-listener"}], rules=[
        rd("/scheme-nil-and-port-nil"), rd("/scheme-nil-and-port-443", port=443),
        rd("/scheme-nil-and-port-8443", port=8443), rd("/scheme-http-and-port-nil", scheme="http"),
        rd("/scheme-http-and-port-80", scheme="http", port=80),
        rd("/scheme-http-and-port-8080", scheme="http", port=8080)]))
    wait_served(edge, "redir-http.test", "/scheme-nil-and-port-nil", 302)
    for path, loc in (("/scheme-nil-and-port-nil", f"http://example.org:{P}"), ("/scheme-nil-and-port-80", "http://example.org"),
                      ("/scheme-nil-and-port-8080", "http://example.org:8080"),
                      ("/scheme-https-and-port-nil", "https://example.org"),
                      ("/scheme-https-and-port-443", "https://example.org"),
                      ("/scheme-https-and-port-8443", "https://example.org:8443")):
        r = edge.get(path + "?a=1", host="redir-http.test", allow_redirects=False)
        assert (r.status_code, r.headers.get("Location")) == (302, f"{loc}{path}?a=1"), path
    for code in (303, 307, 308):  # httproute-303/307/308-redirect
        r = edge.get(f"/status-{code}", host="redir-http.test", allow_redirects=False)
        assert (r.status_code, r.headers.get("Location")) == (code, f"http://example.org:{P}/status-{code}")
    # a filter on a backendRef (extended, not supported) is not skipped: the rule answers 500
    assert edge.get("/backend-filter", host="redir-http.test").status_code == 500
    p = wait_route(api, "http-route-for-listener-on-port-80", "PartiallyInvalid", "True", "UnsupportedValue")
    assert "backendRefs[0].filters" in cond(p["conditions"], "PartiallyInvalid")["message"]

    def https_location(path):
        out = subprocess.run(["curl", "-sS", "-k", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                              "--resolve", f"redir-https.test:{H}:127.0.0.1", f"https://redir-https.test:{H}{path}"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout
    wait_for(lambda: https_location("/scheme-nil-and-port-nil").startswith("302 "), 10, what="HTTPS redirect served")
    for path, loc in (("/scheme-nil-and-port-nil", f"https://example.org:{H}"),
                      ("/scheme-nil-and-port-443", "https://example.org"),
                      ("/scheme-nil-and-port-8443", "https://example.org:8443"),
                      ("/scheme-http-and-port-nil", "http://example.org"),
                      ("/scheme-http-and-port-80", "http://example.org"),
                      ("/scheme-http-and-port-8080", "http://example.org:8080")):
        assert https_location(path) == f"302 {loc}{path}", path


def test_route_observed_generation_bump(env):
    """httproute-observed-generation-bump: every condition follows the new generation."""
    api, edge = env.api, env.edge
    api.create(route("observed-generation-bump", hostnames=["ogb-route.test"],
                     rules=[{"backendRefs": [be("infra-backend-v1")]}]))
    wait_route(api, "observed-generation-bump", "Accepted", "True", "Accepted", gen=1)
    r = api.get("httproutes", "observed-generation-bump", INFRA)
    r["spec"]["rules"][0]["backendRefs"] = [be("infra-backend-v2")]
    api.update(r)
    p = wait_route(api, "observed-generation-bump", "Accepted", "True", "Accepted", gen=2)
    wait_for(lambda: latest(route_parents(api, "observed-generation-bump")[0]["conditions"], 2), 10,
             what="all route conditions at generation 2")
    assert lcond(p, "ResolvedRefs") == ("True", "ResolvedRefs")
    wait_served(edge, "ogb-route.test", "/", "v2-0")


# ---- Gateway and GatewayClass ----------------------------------------------------------------------------

def test_gateway_listener_status(env):
    """gateway-invalid-listeners-unsupported-protocol, gateway-invalid-route-kind,
    gateway-invalid-parameters-ref, gateway-invalid-tls-configuration."""
    api, edge = env.api, env.edge
    api.create(gateway("gateway-only-unsupported-protocols", [listener("invalid", 1111, protocol="INVALID")]))
    api.create(gateway("gateway-supported-and-unsupported-protocols",
                       [listener("http", env.http, hostname="proto.test"), listener("invalid", 1111, protocol="INVALID")]))
    api.create(gateway("gateway-only-invalid-route-kind",
                       [listener("http", env.http, hostname="kind1.test", from_="All", kinds=[{"kind": "InvalidRoute"}])]))
    api.create(gateway("gateway-supported-and-invalid-route-kind",
                       [listener("http", env.http, hostname="kind2.test", from_="All",
                                 kinds=[{"kind": "InvalidRoute"}, {"kind": "HTTPRoute"}])]))
    api.create(gateway("gateway-invalid-parameters-ref", [listener("http", env.http, hostname="params.test")],
                       infrastructure={"parametersRef": {"group": "invalid.io", "kind": "InvalidParameters",
                                                         "name": "invalid"}}))
    api.create(secret(INFRA, "malformed-certificate", {"tls.crt": b"Hello world\n", "tls.key": b"Hello world\n"},
                      type="kubernetes.io/tls"))
    api.create(tls_secret(INFRA, "tls-validity-checks-certificate", ["tls.test"], env.tmp))
    for name, ref in (("nonexistent-secret", {"group": "", "kind": "Secret", "name": "nonexistent-certificate"}),
                      ("unsupported-group", {"group": "wrong.group.company.io", "kind": "Secret",
                                             "name": "tls-validity-checks-certificate"}),
                      ("unsupported-kind", {"group": "", "kind": "WrongKind", "name": "tls-validity-checks-certificate"}),
                      ("malformed-secret", {"group": "", "kind": "Secret", "name": "malformed-certificate"})):
        api.create(gateway(f"gateway-certificate-{name}",
                           [listener("https", env.https, protocol="HTTPS", hostname=f"{name}.test", from_="All",
                                     certs=[ref])]))
    for name in ("kind2", "params"):
        api.create(route(f"{name}-route", hostnames=[f"{name}.test"], rules=[{"backendRefs": [be("infra-backend-v1")]}],
                         parents=[{"name": {"kind2": "gateway-supported-and-invalid-route-kind",
                                            "params": "gateway-invalid-parameters-ref"}[name]}]))

    st, ls = wait_listeners(api, "gateway-only-unsupported-protocols", lambda st, ls: "invalid" in ls)
    assert cond(st["conditions"], "Accepted")["status"] == "False"
    assert cond(st["conditions"], "Accepted")["reason"] == "ListenersNotValid"
    assert ls["invalid"]["supportedKinds"] == [] and ls["invalid"]["attachedRoutes"] == 0
    assert lcond(ls["invalid"], "Accepted") == ("False", "UnsupportedProtocol")
    st, ls = wait_listeners(api, "gateway-supported-and-unsupported-protocols", lambda st, ls: len(ls) == 2)
    assert (cond(st["conditions"], "Accepted")["status"], cond(st["conditions"], "Accepted")["reason"]) == \
        ("True", "ListenersNotValid")
    assert ls["http"]["supportedKinds"] == KINDS_HTTP and lcond(ls["http"], "Accepted") == ("True", "Accepted")
    assert ls["invalid"]["supportedKinds"] == [] and lcond(ls["invalid"], "Accepted") == ("False", "UnsupportedProtocol")

    _, ls = wait_listeners(api, "gateway-only-invalid-route-kind", lambda st, ls: "http" in ls)
    assert ls["http"]["supportedKinds"] == [] and ls["http"]["attachedRoutes"] == 0
    assert lcond(ls["http"], "ResolvedRefs") == ("False", "InvalidRouteKinds")
    _, ls = wait_listeners(api, "gateway-supported-and-invalid-route-kind",
                           lambda st, ls: ls["http"]["attachedRoutes"] == 1, what="route attached")
    assert ls["http"]["supportedKinds"] == KINDS_HTTP
    assert lcond(ls["http"], "ResolvedRefs") == ("False", "InvalidRouteKinds")
    wait_served(edge, "kind2.test", "/", "v1-0")  # HTTPRoutes are still served there

    st, _ = wait_listeners(api, "gateway-invalid-parameters-ref", lambda st, ls: "http" in ls)
    assert (cond(st["conditions"], "Accepted")["status"], cond(st["conditions"], "Accepted")["reason"]) == \
        ("False", "InvalidParameters")
    assert cond(st["conditions"], "Programmed")["status"] == "False"
    wait_route(api, "params-route", "Accepted", "False", "NoMatchingParent")
    assert edge.get("/", host="params.test").status_code == 404  # a rejected Gateway serves nothing

    for name in ("nonexistent-secret", "unsupported-group", "unsupported-kind", "malformed-secret"):
        _, ls = wait_listeners(api, f"gateway-certificate-{name}", lambda st, ls: "https" in ls)
        assert ls["https"]["supportedKinds"] == KINDS_HTTP and ls["https"]["attachedRoutes"] == 0, name
        assert lcond(ls["https"], "ResolvedRefs") == ("False", "InvalidCertificateRef"), (name, ls["https"])
        assert lcond(ls["https"], "Programmed")[0] == "False", name


def test_gateway_secret_reference_grants(env):
    """gateway-secret-missing-reference-grant, -invalid-reference-grant, -reference-grant-specific,
    -reference-grant-all-in-namespace."""
    api = env.api
    api.create(tls_secret(WEB, "certificate", ["secret.test"], env.tmp))
    ref = {"group": "", "kind": "Secret", "name": "certificate", "namespace": WEB}
    names = ("missing-reference-grant", "invalid-reference-grant", "reference-grant-specific",
             "reference-grant-all-in-namespace")
    for n in names:
        api.create(gateway(f"gateway-secret-{n}", [listener("https", env.https, protocol="HTTPS", hostname=f"{n}.test",
                                                            from_="All", certs=[ref])]))
    gfrom = [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": INFRA}]
    api.create(grant("reference-grant-wrong-name", WEB, gfrom, [{"group": "", "kind": "Secret", "name": "not-it"}]))
    # a grant for one Gateway's Secret is for the namespace's Gateways: the two last ones resolve
    _, ls = wait_listeners(api, "gateway-secret-missing-reference-grant", lambda st, ls: "https" in ls)
    assert lcond(ls["https"], "ResolvedRefs") == ("False", "RefNotPermitted")
    _, ls = wait_listeners(api, "gateway-secret-invalid-reference-grant", lambda st, ls: "https" in ls)
    assert lcond(ls["https"], "ResolvedRefs") == ("False", "RefNotPermitted")
    api.create(grant("reference-grant-specific", WEB, gfrom, [{"group": "", "kind": "Secret", "name": "certificate"}]))
    for n in names:
        wait_listeners(api, f"gateway-secret-{n}",
                       lambda st, ls: lcond(ls["https"], "ResolvedRefs") == ("True", "ResolvedRefs")
                       and lcond(ls["https"], "Programmed") == ("True", "Programmed"), what="ResolvedRefs")
    api.delete("referencegrants", "reference-grant-specific", WEB)
    api.create(grant("reference-grant-all-in-namespace", WEB, gfrom, [{"group": "", "kind": "Secret"}]))
    wait_listeners(api, "gateway-secret-reference-grant-all-in-namespace",
                   lambda st, ls: lcond(ls["https"], "ResolvedRefs") == ("True", "ResolvedRefs"), what="all in ns")
    api.delete("referencegrants", "reference-grant-all-in-namespace", WEB)
    wait_listeners(api, "gateway-secret-reference-grant-specific",
                   lambda st, ls: lcond(ls["https"], "ResolvedRefs") == ("False", "RefNotPermitted"), what="revoked")


def test_observed_generation_and_modified_listeners(env):
    """gatewayclass-observed-generation-bump, gateway-observed-generation-bump, gateway-modify-listeners."""
    api, edge = env.api, env.edge
    gc = api.get("gatewayclasses", "tapwork")
    gen = gc["metadata"]["generation"]
    gc["spec"]["description"] = "new"
    api.update(gc)
    assert api.get("gatewayclasses", "tapwork")["metadata"]["generation"] == gen + 1
    wait_for(lambda: latest((api.get("gatewayclasses", "tapwork").get("status") or {}).get("conditions"), gen + 1), 10,
             what="GatewayClass conditions at the new generation")
    assert cond(api.get("gatewayclasses", "tapwork")["status"]["conditions"], "Accepted")["status"] == "True"

    api.create(gateway("gateway-modify-listeners", [listener("https", env.https, protocol="HTTPS",
                                                             hostname="modify.test", from_="All",
                                                             certs=[{"kind": "Secret", "name": "modify-cert"}])]))
    api.create(tls_secret(INFRA, "modify-cert", ["modify.test"], env.tmp))
    api.create(route("modify-route", hostnames=["modify.test", "data.test"], rules=[{"backendRefs": [be("infra-backend-v1")]}],
                     parents=[{"name": "gateway-modify-listeners"}]))
    wait_listeners(api, "gateway-modify-listeners", lambda st, ls: ls["https"]["attachedRoutes"] == 1
                   and latest(st["conditions"], 1), what="one listener, route attached")
    assert edge.get("/", host="data.test").status_code == 404
    g = api.get("gateways", "gateway-modify-listeners", INFRA)
    g["spec"]["listeners"].append(listener("http", env.http, hostname="data.test", from_="All"))
    api.update(g)
    st, ls = wait_listeners(api, "gateway-modify-listeners", lambda st, ls: "http" in ls and latest(st["conditions"], 2)
                            and all(latest(li["conditions"], 2) for li in ls.values()), what="new listener, generation 2")
    for li in ("https", "http"):
        assert ls[li]["attachedRoutes"] == 1 and ls[li]["supportedKinds"] == KINDS_HTTP, ls[li]
        assert lcond(ls[li], "Accepted")[0] == "True" and lcond(ls[li], "ResolvedRefs")[0] == "True", ls[li]
    wait_served(edge, "data.test", "/", "v1-0")
    g = api.get("gateways", "gateway-modify-listeners", INFRA)
    g["spec"]["listeners"] = [li for li in g["spec"]["listeners"] if li["name"] == "http"]
    api.update(g)
    wait_listeners(api, "gateway-modify-listeners", lambda st, ls: list(ls) == ["http"] and latest(st["conditions"], 3)
                   and ls["http"]["attachedRoutes"] == 1, what="https listener removed")
    wait_served(edge, "data.test", "/", "v1-0")
    out = subprocess.run(["curl", "-sS", "-k", "-o", "/dev/null", "-w", "%{http_code}", "--resolve",
                          f"modify.test:{env.https}:127.0.0.1", f"https://modify.test:{env.https}/"],
                         capture_output=True, text=True, timeout=20)
    assert out.stdout != "200", "the removed HTTPS listener still serves modify.test"


def test_attached_routes(env):
    """gateway-with-attached-routes: counted per listener, also on a listener whose references do not
    resolve (which serves nothing); a route without a common hostname is not attached."""
    api, edge = env.api, env.edge
    api.create(gateway("gateway-with-two-attached-routes", [listener("http", env.http, hostname="foo.example.com",
                                                                     kinds=[{"kind": "HTTPRoute"}])]))
    api.create(gateway("unresolved-gateway-with-one-attached-unresolved-route",
                       [listener("tls", env.https, protocol="HTTPS", hostname="unresolved.test", kinds=[{"kind": "HTTPRoute"}],
                                 certs=[{"group": "", "kind": "Secret", "name": "does-not-exist"}])]))
    for n in ("http-route-2", "http-route-3"):
        api.create(route(n, [{"backendRefs": [be("infra-backend-v1")]}],
                         parents=[{"kind": "Gateway", "name": "gateway-with-two-attached-routes", "namespace": INFRA}]))
    api.create(route("http-route-not-accepted", [{"backendRefs": [be("infra-backend-v1")]}],
                     hostnames=["not-accepted.test.com"],
                     parents=[{"kind": "Gateway", "name": "gateway-with-two-attached-routes", "namespace": INFRA}]))
    api.create(route("http-route-4", [{"backendRefs": [be("does-not-exist")]}],
                     parents=[{"kind": "Gateway", "name": "unresolved-gateway-with-one-attached-unresolved-route",
                               "namespace": INFRA, "sectionName": "tls"}]))
    _, ls = wait_listeners(api, "gateway-with-two-attached-routes", lambda st, ls: ls["http"]["attachedRoutes"] == 2,
                           what="2 attached")
    assert lcond(ls["http"], "Accepted")[0] == "True" and lcond(ls["http"], "ResolvedRefs")[0] == "True"
    wait_route(api, "http-route-not-accepted", "Accepted", "False", "NoMatchingListenerHostname")
    _, ls = wait_listeners(api, "unresolved-gateway-with-one-attached-unresolved-route",
                           lambda st, ls: ls["tls"]["attachedRoutes"] == 1, what="1 attached")
    assert lcond(ls["tls"], "ResolvedRefs")[0] == "False" and lcond(ls["tls"], "Programmed")[0] == "False"
    wait_route(api, "http-route-4", "ResolvedRefs", "False", "BackendNotFound")
    wait_served(edge, "foo.example.com", "/", "v1-0")
    assert edge.get("/", host="not-accepted.test.com").status_code == 404
    # the unresolved listener serves nothing, on either port
    assert edge.get("/", host="unresolved.test").status_code == 404


def test_hostname_intersection_name_length_headless(env):
    """httproute-hostname-intersection (with a port in Host), gateway-name-maximum-length,
    httproute-service-types (a headless Service with hand-made EndpointSlices)."""
    api, edge = env.api, env.edge
    gi = "httproute-hostname-intersection"
    api.create(gateway(gi, [listener("listener-1", env.http, hostname="very.specific.com"),
                            listener("listener-2", env.http, hostname="*.wildcard.io"),
                            listener("listener-3", env.http, hostname="*.anotherwildcard.io")]))
    longname = ("gateway-name-maximum-length-" + "a" * 253)[:253]
    api.create(gateway(longname, [listener("listener-1", env.http)]))

    def rt(name, hosts, path, svc, parent=gi):
        api.create(route(name, hostnames=hosts, parents=[{"name": parent, "namespace": INFRA}],
                         rules=[{"matches": [m("PathPrefix", path)] if path else [], "backendRefs": [be(svc)]}]))
    rt("specific-host-matches-listener-specific-host", ["non.matching.com", "*.nonmatchingwildcard.io",
                                                        "very.specific.com"], "/s1", "infra-backend-v1")
    rt("specific-host-matches-listener-wildcard-host", ["non.matching.com", "wildcard.io", "foo.wildcard.io",
                                                        "bar.wildcard.io", "foo.bar.wildcard.io"], "/s2", "infra-backend-v2")
    rt("wildcard-host-matches-listener-specific-host", ["non.matching.com", "*.specific.com"], "/s3", "infra-backend-v3")
    rt("wildcard-host-matches-listener-wildcard-host", ["*.anotherwildcard.io"], "/s4", "infra-backend-v1")
    rt("no-intersecting-hosts", ["specific.but.wrong.com", "wildcard.io"], "/s5", "infra-backend-v2")
    rt("httproute-hostname-intersection-all", ["first.com", "sub.first.com", "second.com", "sub.second.com"], None,
       "infra-backend-v2", parent=longname)
    # a headless Service whose EndpointSlices were written by hand (no selector)
    api.create({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": INFRA, "name": "headless-manual"},
                "spec": {"clusterIP": "None", "ports": [{"name": "first-port", "protocol": "TCP", "port": 8080,
                                                         "targetPort": 3000}]}})
    v1 = api.get("endpointslices", "infra-backend-v1-abc", INFRA)
    api.create({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"namespace": INFRA, "name": "headless-manual-ip4",
                             "labels": {"kubernetes.io/service-name": "headless-manual"}},
                "addressType": "IPv4", "endpoints": v1["endpoints"],
                "ports": [{"name": "first-port", "protocol": "TCP", "port": v1["ports"][0]["port"]}]})
    api.create(route("service-types", hostnames=["service-types.test"],
                     rules=[{"matches": [m("Exact", "/headless-manual-endpointslices")],
                             "backendRefs": [be("headless-manual")]}]))
    wait_served(edge, "first.com", "/", "v2-0")
    wait_served(edge, "service-types.test", "/headless-manual-endpointslices", "v1-0")
    for host, path, want in (
            ("very.specific.com", "/s1", "v1-0"), ("very.specific.com:1234", "/s1", "v1-0"),
            ("non.matching.com", "/s1", 404), ("foo.nonmatchingwildcard.io", "/s1", 404), ("foo.wildcard.io", "/s1", 404),
            ("very.specific.com", "/non-matching-prefix", 404),
            ("foo.wildcard.io", "/s2", "v2-0"), ("bar.wildcard.io", "/s2", "v2-0"), ("foo.bar.wildcard.io", "/s2", "v2-0"),
            ("non.matching.com", "/s2", 404), ("wildcard.io", "/s2", 404), ("very.specific.com", "/s2", 404),
            ("foo.wildcard.io", "/non-matching-prefix", 404),
            ("very.specific.com", "/s3", "v3-0"), ("non.matching.com", "/s3", 404), ("foo.specific.com", "/s3", 404),
            ("foo.wildcard.io", "/s3", 404),
            ("foo.anotherwildcard.io", "/s4", "v1-0"), ("bar.anotherwildcard.io", "/s4", "v1-0"),
            ("foo.bar.anotherwildcard.io", "/s4", "v1-0"), ("anotherwildcard.io", "/s4", 404),
            ("foo.wildcard.io", "/s4", 404), ("very.specific.com", "/s4", 404),
            ("foo.anotherwildcard.io", "/non-matching-prefix", 404),
            ("specific.but.wrong.com", "/s5", 404), ("wildcard.io", "/s5", 404),
            ("first.com", "/", "v2-0"), ("sub.first.com", "/", "v2-0"), ("second.com", "/", "v2-0"),
            ("sub.second.com", "/", "v2-0"), ("third.com", "/", 404), ("sub.third.com", "/", 404)):
        check(edge, host, [(path, None, want)])
    wait_route(api, "no-intersecting-hosts", "Accepted", "False", "NoMatchingListenerHostname")
    st, _ = wait_listeners(api, longname, lambda st, ls: ls["listener-1"]["attachedRoutes"] == 1, what="253-char name")
    assert (cond(st["conditions"], "Accepted")["status"], cond(st["conditions"], "Programmed")["status"]) == ("True", "True")

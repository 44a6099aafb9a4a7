"""The chart's own Gateway API CRDs (gatewayAPI.installCRDs, issue 16): off by
default; on, the four standard-channel kinds with the right group, versions,
scope, names, status subresource and printer columns; structural schemas
(what the API server demands of a CRD) that accept the standard fields of the
conformance manifests and refuse what tapwork cannot read; the schema check
of k8s-validate; and the test API server, given the kinds as the CRDs define
them, takes the docs' canary example from kubectl."""
import copy
import os
import re
import subprocess
import sys

import pytest

from helmutil import by_kind, render, renderer, validator

yaml = pytest.importorskip("yaml", reason="python3-yaml not installed")
jsonschema = pytest.importorskip("jsonschema", reason="python3-jsonschema not installed")

K8S = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "k8s")
sys.path.insert(0, K8S)
from apiserver import GATEWAY_API, ApiServer, Resource  # noqa: E402
from k8sutil import TOKEN, kubectl  # noqa: E402

PREFIX, RENDERER = renderer()
pytestmark = pytest.mark.skipif(PREFIX is None, reason=str(RENDERER))
GROUP = "gateway.networking.k8s.io"


@pytest.fixture(scope="module")
def crds(tmp_path_factory):
    d = tmp_path_factory.mktemp("crds")
    f = d / "values.yaml"
    f.write_text(yaml.safe_dump({"gatewayAPI": {"installCRDs": True}}))
    docs, text = render(PREFIX, "-f", str(f))
    (d / "rendered.yaml").write_text(text)
    return {c["spec"]["names"]["kind"]: c for c in by_kind(docs, "CustomResourceDefinition")}, d / "rendered.yaml"


def test_off_by_default():
    docs, _ = render(PREFIX)
    assert not by_kind(docs, "CustomResourceDefinition")
    # the controller on, the CRDs still not (clusters often have them)
    docs, _ = render(PREFIX, "--set", "ingressController.enabled=true", "--set", "gatewayAPI.enabled=true")
    assert not by_kind(docs, "CustomResourceDefinition")


def test_kinds_versions_scope_columns(crds):
    c, _ = crds
    assert sorted(c) == ["Gateway", "GatewayClass", "HTTPRoute", "ReferenceGrant"]
    want = {"GatewayClass": ("gatewayclasses", "Cluster", ["v1", "v1beta1"], "v1"),
            "Gateway": ("gateways", "Namespaced", ["v1", "v1beta1"], "v1"),
            "HTTPRoute": ("httproutes", "Namespaced", ["v1", "v1beta1"], "v1"),
            "ReferenceGrant": ("referencegrants", "Namespaced", ["v1beta1"], "v1beta1")}
    for kind, (plural, scope, versions, storage) in want.items():
        crd = c[kind]
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        assert crd["metadata"]["name"] == f"{plural}.{GROUP}"
        # a *.k8s.io group is protected: the API server refuses a CRD without this annotation
        assert crd["metadata"]["annotations"]["api-approved.kubernetes.io"].startswith("https://")
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        s = crd["spec"]
        assert (s["group"], s["scope"]) == (GROUP, scope)
        n = s["names"]
        assert (n["kind"], n["plural"], n["singular"], n["listKind"]) == (kind, plural, kind.lower(), kind + "List")
        assert [v["name"] for v in s["versions"]] == versions
        assert all(v["served"] for v in s["versions"])
        assert [v["name"] for v in s["versions"] if v["storage"]] == [storage]
        for v in s["versions"]:
            assert ("subresources" in v and v["subresources"] == {"status": {}}) == (kind != "ReferenceGrant"), kind
            cols = {col["name"]: col["jsonPath"] for col in v["additionalPrinterColumns"]}
            assert cols["Age"] == ".metadata.creationTimestamp"
        # the test API server serves these kinds the same way (tests/e2e/k8s/apiserver.py GATEWAY_API)
        res = [r for r in GATEWAY_API if r.kind == kind][0]
        assert (res.plural, res.namespaced, res.version) == (plural, scope == "Namespaced", storage)
        assert sorted(res.short) == sorted(n.get("shortNames", []))
        assert ("status" in res.subresources) == (kind != "ReferenceGrant")
    cols = {k: {col["name"]: col["jsonPath"] for col in c[k]["spec"]["versions"][0]["additionalPrinterColumns"]}
            for k in c}
    assert cols["GatewayClass"]["Controller"] == ".spec.controllerName"
    assert cols["GatewayClass"]["Accepted"] == '.status.conditions[?(@.type=="Accepted")].status'
    assert cols["Gateway"]["Class"] == ".spec.gatewayClassName"
    assert cols["Gateway"]["Address"] == ".status.addresses[*].value"
    assert cols["Gateway"]["Programmed"] == '.status.conditions[?(@.type=="Programmed")].status'
    assert cols["HTTPRoute"]["Hostnames"] == ".spec.hostnames"


def structural_errors(s, path="", top=True):
    """What the API server's structural-schema check would refuse (the rules
    that apply to these schemas): a type on every node unless it keeps
    unknown fields, items on arrays, properties on objects only,
    list-map keys required, no $ref/anyOf-with-types, metadata with at most name."""
    errs = []
    preserve = s.get("x-kubernetes-preserve-unknown-fields") is True
    t = s.get("type")
    if not t and not preserve and not s.get("x-kubernetes-int-or-string"):
        errs.append(f"{path or '/'}: no type")
    if "$ref" in s or "additionalItems" in s or "patternProperties" in s:
        errs.append(f"{path}: not allowed in a CRD schema")
    if t == "array":
        if "items" not in s:
            errs.append(f"{path}: array without items")
        else:
            it = s["items"]
            errs += structural_errors(it, path + "[]", False)
            for k in s.get("x-kubernetes-list-map-keys", []):
                if k not in it.get("required", []):
                    errs.append(f"{path}: list-map key {k} not required")
    if "properties" in s and t != "object":
        errs.append(f"{path}: properties on a {t}")
    for k, sub in s.get("properties", {}).items():
        if top and k == "metadata" and set(sub) - {"type"}:
            errs.append("metadata: only its type may be given")
        errs += structural_errors(sub, f"{path}.{k}", False)
    for k in s.get("required", []):
        if k not in s.get("properties", {}) and not preserve:
            errs.append(f"{path}: required {k} not a property")
    return errs


def plain(s):
    """The schema as JSON Schema (x-kubernetes-* extensions left out)."""
    if isinstance(s, dict):
        return {k: plain(v) for k, v in s.items() if not k.startswith("x-kubernetes-")}
    if isinstance(s, list):
        return [plain(v) for v in s]
    return s


def test_structural_schemas(crds):
    c, _ = crds
    for kind, crd in c.items():
        for v in crd["spec"]["versions"]:
            errs = structural_errors(v["schema"]["openAPIV3Schema"])
            assert not errs, (kind, v["name"], errs)


GC = {"apiVersion": f"{GROUP}/v1", "kind": "GatewayClass", "metadata": {"name": "tapwork"},
      "spec": {"controllerName": "tapwork.dev/gateway-controller", "description": "tapwork"}}
GWY = {"apiVersion": f"{GROUP}/v1", "kind": "Gateway", "metadata": {"name": "web", "namespace": "shop"},
       "spec": {"gatewayClassName": "tapwork",
                "listeners": [{"name": "http", "port": 80, "protocol": "HTTP", "hostname": "*.example.com",
                               "allowedRoutes": {"namespaces": {"from": "Selector",
                                                                "selector": {"matchLabels": {"gw": "yes"}}},
                                                 "kinds": [{"group": GROUP, "kind": "HTTPRoute"}]}},
                              {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "shop.example.com",
                               "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": "cert"}]}}],
                "addresses": [{"type": "IPAddress", "value": "192.0.2.1"}],
                "infrastructure": {"labels": {"a": "b"}}},
       "status": {"conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                                  "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                  "listeners": [{"name": "http", "attachedRoutes": 1, "supportedKinds": [], "conditions": []}]}}
ROUTE = {"apiVersion": f"{GROUP}/v1", "kind": "HTTPRoute", "metadata": {"name": "shop", "namespace": "shop"},
         "spec": {"parentRefs": [{"name": "web", "sectionName": "http", "port": 80},
                                 {"group": GROUP, "kind": "Gateway", "name": "other", "namespace": "infra"}],
                  "hostnames": ["shop.example.com", "*.shop.example.com"],
                  "rules": [{"name": "canary",
                             "matches": [{"path": {"type": "PathPrefix", "value": "/"},
                                          "headers": [{"name": "X-Version", "value": "two"}],
                                          "queryParams": [{"type": "Exact", "name": "v", "value": "2"}],
                                          "method": "GET"}],
                             "filters": [{"type": "RequestHeaderModifier",
                                          "requestHeaderModifier": {"set": [{"name": "X-A", "value": "1"}],
                                                                    "remove": ["X-B"]}},
                                         {"type": "URLRewrite", "urlRewrite": {"path": {
                                             "type": "ReplacePrefixMatch", "replacePrefixMatch": "/v2"}}}],
                             "backendRefs": [{"name": "shop", "port": 80, "weight": 90},
                                             {"group": "", "kind": "Service", "name": "shop-canary",
                                              "namespace": "shop", "port": 80, "weight": 10}],
                             "timeouts": {"request": "10s", "backendRequest": "5s"}},
                            {"filters": [{"type": "RequestRedirect", "requestRedirect": {
                                "scheme": "https", "hostname": "example.org", "port": 8443, "statusCode": 301}}]}]},
         "status": {"parents": [{"parentRef": {"name": "web"}, "controllerName": "tapwork.dev/gateway-controller",
                                 "conditions": []}]}}
GRANT = {"apiVersion": f"{GROUP}/v1beta1", "kind": "ReferenceGrant",
         "metadata": {"name": "from-team", "namespace": "backends"},
         "spec": {"from": [{"group": GROUP, "kind": "HTTPRoute", "namespace": "team"}],
                  "to": [{"group": "", "kind": "Service"}, {"group": "", "kind": "Secret", "name": "cert"}]}}


def validate(crd, obj):
    version = obj["apiVersion"].split("/")[1]
    s = [v for v in crd["spec"]["versions"] if v["name"] == version][0]["schema"]["openAPIV3Schema"]
    errs = sorted(jsonschema.Draft7Validator(plain(s)).iter_errors(obj), key=str)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errs]


def test_standard_fields_accepted_and_bad_values_refused(crds):
    c, _ = crds
    for obj in (GC, GWY, ROUTE, GRANT):
        assert validate(c[obj["kind"]], obj) == [], obj["kind"]
        if obj["kind"] != "ReferenceGrant":  # v1beta1 serves the same schema
            old = dict(obj, apiVersion=f"{GROUP}/v1beta1")
            assert validate(c[obj["kind"]], old) == [], obj["kind"]

    def bad(obj, edit, field):
        o = copy.deepcopy(obj)
        edit(o)
        errs = validate(c[o["kind"]], o)
        assert errs and any(e.startswith(field) for e in errs), (field, errs)
    bad(GC, lambda o: o["spec"].pop("controllerName"), "spec")
    bad(GWY, lambda o: o["spec"].pop("gatewayClassName"), "spec")
    bad(GWY, lambda o: o["spec"].update(listeners=[]), "spec/listeners")
    bad(GWY, lambda o: o["spec"]["listeners"][0].update(port=0), "spec/listeners/0/port")
    bad(GWY, lambda o: o["spec"]["listeners"][0].update(port=70000), "spec/listeners/0/port")
    bad(GWY, lambda o: o["spec"]["listeners"][0].update(hostname="Bad_Host"), "spec/listeners/0/hostname")
    bad(GWY, lambda o: o["spec"]["listeners"][0].pop("protocol"), "spec/listeners/0")
    bad(ROUTE, lambda o: o["spec"]["rules"][0]["backendRefs"][0].update(weight=-1),
        "spec/rules/0/backendRefs/0/weight")
    bad(ROUTE, lambda o: o["spec"]["parentRefs"][0].pop("name"), "spec/parentRefs/0")
    bad(ROUTE, lambda o: o["spec"].update(hostnames=["*"]), "spec/hostnames/0")
    bad(ROUTE, lambda o: o["spec"].update(rules=[{}] * 17), "spec/rules")
    bad(GRANT, lambda o: o["spec"].update(to=[]), "spec/to")
    bad(GRANT, lambda o: o["spec"]["from"][0].pop("namespace"), "spec/from/0")


def test_k8s_validate(crds):
    tool = validator()
    if tool is None:
        pytest.skip("k8s-validate not found (set TAPWORK_K8S_VALIDATE)")
    _, rendered = crds
    r = subprocess.run([tool, str(rendered)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"(\d+) passed, (\d+) failed", r.stdout)
    assert m and int(m.group(2)) == 0, r.stdout


def test_apiserver_serves_the_crds_kinds(crds, tmp_path):
    """The test API server learns the kinds from the rendered CRDs (not from
    its own table) and kubectl applies the docs' example through them."""
    c, _ = crds
    api = ApiServer(tokens=[TOKEN], workdir=tmp_path)
    api.add_resources([Resource(crd["spec"]["group"], [v["name"] for v in crd["spec"]["versions"] if v["storage"]][0],
                                crd["spec"]["names"]["plural"], crd["spec"]["names"]["kind"],
                                namespaced=crd["spec"]["scope"] == "Namespaced",
                                short=crd["spec"]["names"].get("shortNames", ()),
                                subresources=tuple(crd["spec"]["versions"][0].get("subresources", {})))
                       for crd in c.values()])
    api.start()
    try:
        api.write_kubeconfig(tmp_path / "kubeconfig")
        objs = [GC, GWY, ROUTE, GRANT]
        for o in objs:
            assert validate(c[o["kind"]], o) == []
        text = "\n---\n".join(yaml.safe_dump({k: v for k, v in o.items() if k != "status"}) for o in objs)
        r = kubectl(api, "apply", "-f", "-", input=text)
        assert r.returncode == 0, r.stderr
        r = kubectl(api, "get", "gtw", "web", "-n", "shop", "-o", "jsonpath={.spec.gatewayClassName}")
        assert (r.returncode, r.stdout) == (0, "tapwork"), r.stderr
        r = kubectl(api, "get", "refgrant", "-n", "backends", "-o", "name")
        assert r.stdout.strip() == f"referencegrant.{GROUP}/from-team", r.stderr
    finally:
        api.stop()

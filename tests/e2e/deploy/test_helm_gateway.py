"""The Helm chart's Gateway API mode (issue 16): gatewayAPI.enabled adds the
kubernetes.gateway section, a GatewayClass of our controller and exactly the
RBAC the Gateway API kinds need (read them and Namespaces, write only their
status subresources)."""
import subprocess

import pytest

from conftest import BIN
from helmutil import by_kind, one, render, renderer

yaml = pytest.importorskip("yaml", reason="python3-yaml not installed")

PREFIX, RENDERER = renderer()
pytestmark = pytest.mark.skipif(PREFIX is None, reason=str(RENDERER))


def rbac_grants(role):
    out = set()
    for rule in role["rules"]:
        for g in rule["apiGroups"]:
            for res in rule["resources"]:
                for verb in rule["verbs"]:
                    out.add((g, res, verb, tuple(rule.get("resourceNames", ()))))
    return out


def render_values(tmp_path, values):
    f = tmp_path / "values.yaml"
    f.write_text(yaml.safe_dump(values))
    return render(PREFIX, "-f", str(f))[0]


def test_gateway_api_mode(tmp_path):
    base = render_values(tmp_path, {"ingressController": {"enabled": True}})
    docs = render_values(tmp_path, {"ingressController": {"enabled": True},
                                    "gatewayAPI": {"enabled": True, "controllerName": "example.com/gw"}})
    cfg = yaml.safe_load(one(docs, "ConfigMap")["data"]["tapwork.yaml"])
    assert cfg["kubernetes"]["gateway"] == {"controller_name": "example.com/gw"}
    gc = one(docs, "GatewayClass")
    assert gc["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert (gc["metadata"]["name"], gc["spec"]["controllerName"]) == ("tapwork", "example.com/gw")
    read = {"get", "list", "watch"}
    added = rbac_grants(one(docs, "ClusterRole")) - rbac_grants(one(base, "ClusterRole"))
    expected = {("gateway.networking.k8s.io", r, v, ())
                for r in ("gatewayclasses", "gateways", "httproutes", "referencegrants") for v in read}
    expected |= {("gateway.networking.k8s.io", r + "/status", v, ())
                 for r in ("gatewayclasses", "gateways", "httproutes") for v in ("update", "patch")}
    expected |= {("", "namespaces", v, ()) for v in read}
    assert added == expected
    assert rbac_grants(one(base, "ClusterRole")) <= rbac_grants(one(docs, "ClusterRole"))
    # off by default: no GatewayClass, no gateway section, no extra rules
    assert not by_kind(base, "GatewayClass")
    assert "gateway" not in yaml.safe_load(one(base, "ConfigMap")["data"]["tapwork.yaml"])["kubernetes"]
    # the rendered config is one tapwork accepts
    f = tmp_path / "tapwork.yaml"
    f.write_text(one(docs, "ConfigMap")["data"]["tapwork.yaml"])
    r = subprocess.run([BIN, "validate", "-c", str(f)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # no GatewayClass when its name is empty
    docs = render_values(tmp_path, {"ingressController": {"enabled": True},
                                    "gatewayAPI": {"enabled": True, "gatewayClass": ""}})
    assert not by_kind(docs, "GatewayClass")

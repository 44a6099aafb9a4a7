"""The Helm chart's proxyProtocol and config.rateLimits values: the config
section and the cloud Service annotations rendered, an empty `from`
refused, `cluster: divide` given replicaCount, and `tapwork validate`
accepting what is rendered."""
import subprocess
import tempfile

import pytest

from conftest import BIN
from helmutil import by_kind, one, render, renderer

yaml = pytest.importorskip("yaml", reason="python3-yaml not installed")

PREFIX, RENDERER = renderer()
pytestmark = pytest.mark.skipif(PREFIX is None, reason=str(RENDERER))

SITES = [{"hosts": ["*"], "routes": [{"path": "/", "handler": "welcome"}]}]


def render_values(values, check=True):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(yaml.safe_dump(values))
        f.flush()
        return render(PREFIX, "-f", f.name, check=check)


def edge_service(docs):
    return [d for d in by_kind(docs, "Service") if not d["metadata"]["name"].endswith("-admin")][0]


def config_of(docs):
    return yaml.safe_load(one(docs, "ConfigMap")["data"]["tapwork.yaml"])


ANNOTATIONS = {
    "aws": {"service.beta.kubernetes.io/aws-load-balancer-proxy-protocol": "*"},
    "digitalocean": {"service.beta.kubernetes.io/do-loadbalancer-enable-proxy-protocol": "true"},
    "hetzner": {"load-balancer.hetzner.cloud/uses-proxyprotocol": "true"},
    "linode": {"service.beta.kubernetes.io/linode-loadbalancer-default-proxy-protocol": "v2"},
    "scaleway": {"service.beta.kubernetes.io/scw-loadbalancer-proxy-protocol-v2": "true"},
    "ovh": {"service.beta.kubernetes.io/ovh-loadbalancer-proxy-protocol": "v2"},
    "azure": {"service.beta.kubernetes.io/azure-pls-create": "true",
              "service.beta.kubernetes.io/azure-pls-proxy-protocol": "true"},
    "none": None,
}


def test_default_off():
    docs, _ = render(PREFIX)
    assert "proxy_protocol" not in config_of(docs)
    svc = edge_service(docs)
    assert svc["spec"]["externalTrafficPolicy"] == "Local"
    assert not svc["metadata"].get("annotations")


@pytest.mark.parametrize("cloud", sorted(ANNOTATIONS))
def test_cloud_annotations(cloud):
    docs, _ = render_values({"proxyProtocol": {"enabled": True, "cloud": cloud, "from": ["10.0.0.0/8"]},
                             "service": {"type": "LoadBalancer", "annotations": {"team": "edge"}}})
    svc = edge_service(docs)
    want = dict(ANNOTATIONS[cloud] or {}, team="edge")
    assert svc["metadata"]["annotations"] == want
    assert svc["spec"]["externalTrafficPolicy"] == "Cluster"
    pp = config_of(docs)["proxy_protocol"]
    assert pp == {"from": ["10.0.0.0/8"], "timeout": "3s", "others": "reject"}


def test_from_required():
    r = render_values({"proxyProtocol": {"enabled": True}}, check=False)
    assert r.returncode != 0 and "proxyProtocol.from is required" in r.stderr


def test_rate_limits_and_validate(tmp_path):
    docs, _ = render_values({
        "replicaCount": 4,
        "proxyProtocol": {"enabled": True, "from": ["10.0.0.0/8", "fd00::/8"], "others": "plain"},
        "config": {"drainSeconds": 30, "sites": [{"hosts": ["*"], "routes": [
            {"path": "/login", "handler": "welcome", "rate_limit": "login"},
            {"path": "/", "handler": "welcome"}]}],
            "rateLimits": {"login": {"rate": "10/m", "burst": 5, "cluster": "divide"},
                           "api": {"key": "header:X-Api-Key", "rate": "50/s", "cluster": "divide", "replicas": 2},
                           "local": {"rate": "1/s"}}}})
    rl = config_of(docs)["rate_limits"]
    assert rl["login"] == {"rate": "10/m", "burst": 5, "cluster": "divide", "replicas": 4}
    assert rl["api"]["replicas"] == 2
    assert "replicas" not in rl["local"]
    f = tmp_path / "tapwork.yaml"
    f.write_text(one(docs, "ConfigMap")["data"]["tapwork.yaml"])
    r = subprocess.run([BIN, "validate", "-c", str(f)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_divide_replicas_from_service(tmp_path):
    """Ingress-controller mode with a divide policy: N from the chart's own
    Service (kubernetes.replicas_from), RBAC to watch its EndpointSlices, the
    pod's namespace in the env; replicaCount stays the fallback; validated."""
    values = {"replicaCount": 3, "ingressController": {"enabled": True},
              "config": {"drainSeconds": 30, "sites": [{"hosts": ["*"], "routes": [
                  {"path": "/login", "handler": "welcome", "rate_limit": "login"}]}],
                  "rateLimits": {"login": {"rate": "10/m", "cluster": "divide"}}}}
    docs, _ = render_values(values)
    cfg = config_of(docs)
    svc = edge_service(docs)
    assert cfg["kubernetes"]["replicas_from"] == {"service": svc["metadata"]["name"],
                                                  "namespace": svc["metadata"]["namespace"]
                                                  if "namespace" in svc["metadata"] else cfg["kubernetes"]
                                                  ["leader_election"]["namespace"]}
    assert cfg["rate_limits"]["login"]["replicas"] == 3
    rules = one(docs, "ClusterRole")["rules"]
    assert any("discovery.k8s.io" in r["apiGroups"] and "endpointslices" in r["resources"]
               and {"list", "watch"} <= set(r["verbs"]) for r in rules)
    f = tmp_path / "tapwork.yaml"
    f.write_text(one(docs, "ConfigMap")["data"]["tapwork.yaml"])
    r = subprocess.run([BIN, "validate", "-c", str(f)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # no divide policy, or switched off: not watched
    values["config"]["rateLimits"]["login"]["cluster"] = "local"
    assert "replicas_from" not in config_of(render_values(values)[0])["kubernetes"]
    values["config"]["rateLimits"]["login"]["cluster"] = "divide"
    values["ingressController"]["replicasFromService"] = False
    assert "replicas_from" not in config_of(render_values(values)[0])["kubernetes"]

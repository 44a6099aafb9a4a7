"""python3-kubernetes (Debian's packaged official client) against the test
API server: paging, watch streams, 410 after compaction, the status
subresource, Lease optimistic concurrency."""
import json

import pytest

from k8sutil import apiserver, ingress, lease, path, rule, service  # noqa: F401

kubernetes = pytest.importorskip("kubernetes", reason="python3-kubernetes not installed (apt-get install python3-kubernetes)")
from kubernetes import client as kclient  # noqa: E402
from kubernetes import config as kconfig  # noqa: E402
from kubernetes import watch as kwatch  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402


def py_client(api):
    return kconfig.new_client_from_config(config_file=api.kubeconfig)


def test_python_list_paging(apiserver):
    for i in range(5):
        apiserver.create(service("py", f"s{i}"))
    v1 = kclient.CoreV1Api(py_client(apiserver))
    names, cont, pages = [], None, 0
    while True:
        resp = v1.list_namespaced_service("py", limit=2, _continue=cont)
        names += [s.metadata.name for s in resp.items]
        pages += 1
        cont = resp.metadata._continue
        if not cont:
            break
    assert names == [f"s{i}" for i in range(5)] and pages == 3
    assert resp.items[0].spec.ports[0].name == "http"


def test_python_watch_added_modified_deleted(apiserver):
    api = py_client(apiserver)
    net = kclient.NetworkingV1Api(api)
    rv = net.list_namespaced_ingress("pw").metadata.resource_version
    apiserver.create(ingress("pw", "a"))
    apiserver.patch("ing", "a", {"metadata": {"labels": {"x": "y"}}}, "pw")
    st = net.delete_namespaced_ingress("a", "pw")
    assert st.status == "Success" and st.details.name == "a"
    w = kwatch.Watch()
    got = []
    for e in w.stream(net.list_namespaced_ingress, "pw", resource_version=rv, timeout_seconds=5):
        got.append((e["type"], e["object"].metadata.name))
        if len(got) == 3:
            w.stop()
    assert got == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


def test_python_410_after_compaction(apiserver):
    net = kclient.NetworkingV1Api(py_client(apiserver))
    rv = net.list_ingress_for_all_namespaces().metadata.resource_version
    apiserver.create(ingress("gone", "a"))
    apiserver.create(ingress("gone", "b"))
    apiserver.compact()
    with pytest.raises(ApiException) as e:
        for _ in kwatch.Watch().stream(net.list_ingress_for_all_namespaces, resource_version=rv,
                                       timeout_seconds=5):
            pass
    assert e.value.status == 410
    with pytest.raises(ApiException) as e:
        net.list_ingress_for_all_namespaces(resource_version=rv, resource_version_match="Exact")
    assert e.value.status == 410


def test_python_ingress_status(apiserver):
    apiserver.create(ingress("ps", "site", rules=[rule("a.example", [path("/", "web", 80)])]))
    net = kclient.NetworkingV1Api(py_client(apiserver))
    st = net.read_namespaced_ingress_status("site", "ps")
    assert st.status is None or st.status.load_balancer is None or not st.status.load_balancer.ingress
    out = net.patch_namespaced_ingress_status(
        "site", "ps", {"status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1", "ports": [
            {"port": 443, "protocol": "TCP"}]}]}}})
    assert out.status.load_balancer.ingress[0].ip == "127.0.0.1"
    assert apiserver.get("ing", "site", "ps")["status"]["loadBalancer"]["ingress"][0]["ip"] == "127.0.0.1"
    assert [r["method"] for r in apiserver.requests(path="/status")] == ["GET", "PATCH"]


def test_python_leases_optimistic_concurrency(apiserver):
    coord = kclient.CoordinationV1Api(py_client(apiserver))
    body = lease("kube-system", "tapwork", "replica-a")
    made = coord.create_namespaced_lease("kube-system", body)
    with pytest.raises(ApiException) as e:
        coord.create_namespaced_lease("kube-system", body)
    assert e.value.status == 409
    # both replicas read the same version; a renews first; b's takeover loses the race
    a = coord.read_namespaced_lease("tapwork", "kube-system")
    b = coord.read_namespaced_lease("tapwork", "kube-system")
    a.spec.renew_time = a.spec.renew_time
    a.spec.lease_duration_seconds = 10
    coord.replace_namespaced_lease("tapwork", "kube-system", a)
    b.spec.holder_identity = "replica-b"
    with pytest.raises(ApiException) as e:
        coord.replace_namespaced_lease("tapwork", "kube-system", b)
    assert e.value.status == 409 and json.loads(e.value.body)["reason"] == "Conflict"
    cur = coord.read_namespaced_lease("tapwork", "kube-system")
    assert cur.spec.holder_identity == "replica-a" and cur.spec.lease_duration_seconds == 10
    assert cur.metadata.uid == made.metadata.uid
    assert int(cur.metadata.resource_version) > int(made.metadata.resource_version)

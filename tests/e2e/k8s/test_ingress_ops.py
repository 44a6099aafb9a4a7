"""The Ingress controller's operational side (issue 11): certificates from
TLS Secrets (rotation, broken Secrets), tapwork.dev/ annotations (valid and
invalid: the last good state keeps serving, a Kubernetes Event says why),
status written by the leader of a Lease and taken over when it stops, a 410
relist that misses no delete, the API server down and back, token rotation."""
import os
import subprocess
import sys
import time

import pytest

from conftest import free_port
from ingressutil import (publish_service, start_ingress_edge, start_pods, upstream_of, wait_for,  # noqa: F401
                         wait_routed, wait_status)
from k8sutil import TOKEN, apiserver, ingress, path, rule, tls, tls_secret  # noqa: F401

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tls"))
from tlsutil import pem_of, s_client  # noqa: E402


def served_pem(port, name):
    return pem_of(s_client(port, name).stdout)


def norm(pem):
    return "".join(pem.split()) if pem else pem


def test_tls_from_secret_rotation_and_broken_secret(procs, tmp_path, apiserver):
    api = apiserver
    a = start_pods(procs, "a", ["127.0.0.2"])
    publish_service(api, "web", "svc", a)
    api.create(tls_secret("web", "app-cert", ["app.test"], tmp_path))
    api.create(tls_secret("web", "other-cert", ["other.test"], tmp_path))
    api.create(ingress("web", "site", tls=[tls(["app.test"], "app-cert"), tls(["other.test"], "other-cert")],
                       rules=[rule("app.test", [path("/", "svc", "http")]),
                              rule("other.test", [path("/", "svc", "http")])]))
    https = free_port()
    cfg = {"listen": {"https": f"127.0.0.1:{https}"}, "state_dir": str(tmp_path / "state")}
    edge = start_ingress_edge(procs, tmp_path, api, cfg=cfg)
    first = open(tmp_path / "app-cert.crt").read()
    wait_for(lambda: norm(served_pem(https, "app.test")) == norm(first), 10, what="secret certificate served")
    # plain HTTP for a TLS host is redirected (308)
    r = edge.get("/x?y=1", host="app.test", allow_redirects=False)
    assert r.status_code == 308 and r.headers["Location"].startswith("https://app.test"), (r.status_code, r.headers)
    # HTTPS reaches the pod, verified against the Secret's certificate
    out = subprocess.run(["curl", "-sS", "--cacert", str(tmp_path / "app-cert.crt"), "--resolve",
                          f"app.test:{https}:127.0.0.1", f"https://app.test:{https}/echo", "-o", "/dev/null",
                          "-w", "%{http_code}"], capture_output=True, text=True, timeout=20)
    assert out.stdout == "200", out.stderr
    # rotate the Secret: served without restart
    (tmp_path / "rot").mkdir()
    api.update(tls_secret("web", "app-cert", ["app.test"], tmp_path / "rot"))
    second = open(tmp_path / "rot" / "app-cert.crt").read()
    assert norm(second) != norm(first)
    wait_for(lambda: norm(served_pem(https, "app.test")) == norm(second), 10, what="rotated certificate served")
    # a broken Secret: that host falls back to the default certificate, the others keep theirs
    bad = api.get("secrets", "app-cert", "web")
    bad["data"]["tls.crt"] = "bm90IGEgY2VydGlmaWNhdGU="  # "not a certificate"
    api.update(bad)
    other = open(tmp_path / "other-cert.crt").read()
    wait_for(lambda: norm(served_pem(https, "app.test")) not in (norm(second), None), 10,
             what="broken secret falls back")
    assert norm(served_pem(https, "other.test")) == norm(other)
    assert edge.alive()
    assert "app-cert" in edge.log()


def test_annotations_valid_and_invalid(procs, tmp_path, apiserver):
    api = apiserver
    pods = start_pods(procs, "p", ["127.0.0.2", "127.0.0.3"])
    publish_service(api, "web", "svc", pods)
    ann = {"tapwork.dev/load-balance": "hash", "tapwork.dev/hash-key": "header:X-User",
           "tapwork.dev/proxy-read-timeout": "1s", "tapwork.dev/proxy-body-size": "1k"}
    api.create(ingress("web", "site", annotations=ann, rules=[rule("app.test", [path("/", "svc", "http")])]))
    edge = start_ingress_edge(procs, tmp_path, api)
    # hash on X-User: one user sticks to one pod
    seen = {upstream_of(edge, "app.test", "/", headers={"X-User": "alice"})[1] for _ in range(8)}
    assert len(seen) == 1 and None not in seen, seen
    # proxy-body-size 1k: 413 above it (Content-Length and chunked), served below
    assert edge.request("POST", "/echo", host="app.test", data=b"x" * 1000).status_code == 200
    assert edge.request("POST", "/echo", host="app.test", data=b"x" * 1100).status_code == 413
    chunks = iter([b"x" * 600, b"x" * 600])
    assert edge.request("POST", "/echo", host="app.test", data=chunks).status_code == 413
    # proxy-read-timeout 1s: a 3 s answer times out (504)
    t0 = time.monotonic()
    assert edge.get("/slow?ms=3000", host="app.test").status_code == 504
    assert time.monotonic() - t0 < 2.8
    # an invalid value rejects that Ingress: its last good state keeps serving, an Event says why
    ing = api.get("ingresses", "site", "web")
    ing["metadata"]["annotations"]["tapwork.dev/proxy-read-timeout"] = "soon"
    ing["spec"]["rules"][0]["host"] = "moved.test"
    api.update(ing)

    def event():
        for e in api.list("events", "web"):
            if e.get("involvedObject", {}).get("name") == "site" and "proxy-read-timeout" in e.get("message", ""):
                return e
        return None
    ev = wait_for(event, 10, what="Warning event for the rejected Ingress")
    assert ev["type"] == "Warning"
    assert upstream_of(edge, "app.test", "/")[0] == 200
    assert edge.get("/", host="moved.test").status_code == 404
    assert "proxy-read-timeout" in edge.log()
    # another change re-applies everything: the rejection is not logged again
    api.create(ingress("web", "other", rules=[rule("other.test", [path("/", "svc", "http")])]))
    wait_routed(edge, "other.test", "/", {"p-0", "p-1"})
    assert len([ln for ln in edge.log().splitlines() if "web/site rejected" in ln]) == 1, edge.log()[-2000:]
    # a snippet-style or unknown key is refused too
    ing = api.get("ingresses", "site", "web")
    ing["metadata"]["annotations"] = {"tapwork.dev/configuration-snippet": "return 200;"}
    api.update(ing)
    wait_for(lambda: "configuration-snippet" in edge.log(), 10, what="unknown annotation logged")
    assert upstream_of(edge, "app.test", "/")[0] == 200
    # fixed: served as written
    ing = api.get("ingresses", "site", "web")
    ing["metadata"]["annotations"] = {}
    api.update(ing)
    wait_routed(edge, "moved.test", "/", {"p-0", "p-1"})
    assert edge.get("/", host="app.test").status_code == 404


def status_ips(api, ns, name):
    st = (api.get("ingresses", name, ns) or {}).get("status") or {}
    return [x.get("ip") or x.get("hostname") for x in (st.get("loadBalancer") or {}).get("ingress") or []]


def status_writes(api):
    return [r for r in api.requests() if r["method"] in ("PUT", "PATCH") and r["path"].endswith("/status")]


def test_status_by_the_leader_and_takeover(procs, tmp_path, apiserver):
    api = apiserver
    a = start_pods(procs, "a", ["127.0.0.2"])
    publish_service(api, "web", "svc", a)
    api.create(ingress("web", "site", rules=[rule("app.test", [path("/", "svc", "http")])]))
    opts = {"publish_address": ["203.0.113.7"]}
    le = lambda ident: {"leader_election": {"lease": "tapwork-leader", "namespace": "tapwork",  # noqa: E731
                                            "duration": "2s", "identity": ident}}
    d1, d2 = tmp_path / "r1", tmp_path / "r2"
    d1.mkdir()
    d2.mkdir()
    r1 = start_ingress_edge(procs, d1, api, ingress_opts=opts, k8s_extra=le("replica-1"), name="r1")
    wait_for(lambda: status_ips(api, "web", "site") == ["203.0.113.7"], 10, what="status written")
    r2 = start_ingress_edge(procs, d2, api, ingress_opts=opts, k8s_extra=le("replica-2"), name="r2")
    # both serve
    assert upstream_of(r1, "app.test", "/") == (200, "a-0")
    assert upstream_of(r2, "app.test", "/") == (200, "a-0")
    lease = api.get("leases", "tapwork-leader", "tapwork")
    assert lease["spec"]["holderIdentity"] == "replica-1"
    # a new Ingress: the status is written once, by the leader
    n0 = len(status_writes(api))
    api.create(ingress("web", "second", rules=[rule("second.test", [path("/", "svc", "http")])]))
    wait_for(lambda: status_ips(api, "web", "second") == ["203.0.113.7"], 10, what="status of the new Ingress")
    time.sleep(1.0)
    assert len(status_writes(api)) == n0 + 1, status_writes(api)[n0:]
    # the leader stops (releases the Lease): replica-2 takes over and writes new status
    procs.stop(r1.proc)
    wait_for(lambda: (api.get("leases", "tapwork-leader", "tapwork")["spec"].get("holderIdentity")
                      == "replica-2"), 15, what="replica-2 leads")
    api.create(ingress("web", "third", rules=[rule("third.test", [path("/", "svc", "http")])]))
    wait_for(lambda: status_ips(api, "web", "third") == ["203.0.113.7"], 10, what="status by the new leader")
    assert upstream_of(r2, "third.test", "/") == (200, "a-0")
    # an Ingress that stops being ours has its status cleared
    ing = api.get("ingresses", "second", "web")
    ing["spec"]["ingressClassName"] = "someone-else"
    api.update(ing)
    wait_for(lambda: status_ips(api, "web", "second") == [], 10, what="status cleared")


def test_relist_after_410_misses_no_delete(procs, tmp_path, apiserver):
    api = apiserver
    a = start_pods(procs, "a", ["127.0.0.2"])
    publish_service(api, "web", "svc", a)
    api.create(ingress("web", "keep", rules=[rule("keep.test", [path("/", "svc", "http")])]))
    api.create(ingress("web", "gone", rules=[rule("gone.test", [path("/", "svc", "http")])]))
    edge = start_ingress_edge(procs, tmp_path, api)
    assert upstream_of(edge, "gone.test", "/") == (200, "a-0")
    m0 = edge.metrics()
    # the API goes away; while tapwork cannot watch, "gone" is deleted and history compacted
    api.go_down()
    time.sleep(0.5)
    api.delete("ingresses", "gone", "web")
    api.create(ingress("web", "new", rules=[rule("new.test", [path("/", "svc", "http")])]))
    api.compact()
    # serving the last good state meanwhile
    assert upstream_of(edge, "gone.test", "/") == (200, "a-0")
    api.come_up()
    wait_status(edge, "gone.test", "/", 404, timeout=40)
    assert upstream_of(edge, "new.test", "/") == (200, "a-0")
    assert upstream_of(edge, "keep.test", "/") == (200, "a-0")
    m1 = edge.metrics()
    assert m1.get("tapwork_k8s_relists_total") > m0.get("tapwork_k8s_relists_total")


def test_410_error_event_in_open_watch(procs, tmp_path, apiserver):
    api = apiserver
    a = start_pods(procs, "a", ["127.0.0.2"])
    publish_service(api, "web", "svc", a)
    edge = start_ingress_edge(procs, tmp_path, api)
    api.gone_as = "event"
    api.break_watches(gone=True)
    api.create(ingress("web", "after", rules=[rule("after.test", [path("/", "svc", "http")])]))
    wait_routed(edge, "after.test", "/", {"a-0"}, timeout=15)


def test_api_down_garbage_and_back(procs, tmp_path, apiserver):
    api = apiserver
    a = start_pods(procs, "a", ["127.0.0.2"])
    publish_service(api, "web", "svc", a)
    api.create(ingress("web", "site", rules=[rule("app.test", [path("/", "svc", "http")])]))
    edge = start_ingress_edge(procs, tmp_path, api)
    api.garbage(count=5)
    api.break_watches()
    api.go_down()
    for _ in range(10):
        assert upstream_of(edge, "app.test", "/") == (200, "a-0")
        time.sleep(0.2)
    assert edge.admin("/readyz").status_code == 200  # still serving the last good state
    m = edge.metrics()
    assert m.get("tapwork_k8s_watch_errors_total") > 0
    api.come_up()
    api.create(ingress("web", "later", rules=[rule("later.test", [path("/", "svc", "http")])]))
    wait_routed(edge, "later.test", "/", {"a-0"}, timeout=40)


def test_token_rotation(procs, tmp_path, apiserver):
    api = apiserver
    a = start_pods(procs, "a", ["127.0.0.2"])
    publish_service(api, "web", "svc", a)
    tok = tmp_path / "token"
    tok.write_text(TOKEN + "\n")
    kc = tmp_path / "kubeconfig-tokenfile"
    api.write_kubeconfig(kc, token_file=str(tok))
    edge = start_ingress_edge(procs, tmp_path, api, k8s_extra={"api": {"kubeconfig": str(kc)}})
    # the token rotates: the file gets the new one, the server stops taking the old
    tok.write_text("rotated-token\n")
    api.set_tokens(["rotated-token"])
    api.break_watches()
    api.create(ingress("web", "site", rules=[rule("app.test", [path("/", "svc", "http")])]))
    wait_routed(edge, "app.test", "/", {"a-0"}, timeout=40)
    assert any(r.get("status") == 401 for r in api.requests()), "the old token was never refused"


def test_in_cluster_service_account_and_token_rotation(procs, tmp_path, apiserver):
    """No kubeconfig: the pod's service-account files and KUBERNETES_SERVICE_*;
    the token file is re-read after a 401."""
    api = apiserver
    a = start_pods(procs, "a", ["127.0.0.2"])
    publish_service(api, "web", "svc", a)
    sa = tmp_path / "serviceaccount"
    env = api.write_incluster(sa)
    env["TAPWORK_K8S_SA_DIR"] = str(sa)
    env.pop("KUBECONFIG", None)
    edge = start_ingress_edge(procs, tmp_path, api, k8s_extra={"api": {}}, env=env)
    assert "in-cluster" in edge.log() or str(sa) in edge.log()
    (sa / "token").write_text("projected-token-2")
    api.set_tokens(["projected-token-2"])
    api.break_watches()
    api.create(ingress("web", "site", rules=[rule("app.test", [path("/", "svc", "http")])]))
    wait_routed(edge, "app.test", "/", {"a-0"}, timeout=40)
    assert any(r.get("status") == 401 for r in api.requests())
    assert any(r.get("token") == "projected-token-2" for r in api.requests())

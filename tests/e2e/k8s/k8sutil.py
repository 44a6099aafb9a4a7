"""Helpers for tests that need a Kubernetes API: the `apiserver` fixture and
short builders for the objects an Ingress controller reads.

In a test module::

    from k8sutil import apiserver, ingress, service, endpointslice  # noqa: F401

    def test_x(apiserver):
        apiserver.create(service("web", "svc", ports=[("http", 80, 8080)]))
        apiserver.create(endpointslice("web", "svc", [("127.0.0.2", 8080, {"ready": True})]))
        apiserver.create(ingress("web", "site", rules=[rule("a.example", [path("/", "svc", "http")])]))
        # tapwork gets apiserver.kubeconfig; apiserver.requests(method="PUT") shows what it wrote

Builders return plain dicts (shaped as in the Kubernetes API reference);
nothing is stored until apiserver.create()/apply() is called.

  ingressclass(name="tapwork", controller=CONTROLLER, default=False)
  ingress(ns, name, rules=[...], tls=[...], cls="tapwork", annotations=None,
          default_backend=None, labels=None)
      rule(host, paths)          host may be None or "*.example.com"
      path(p, svc, port, path_type="Prefix")   port: number or port name
      backend(svc, port)
      tls(hosts, secret_name)
  service(ns, name, ports=[("http", 80, 8080)], selector=None, type="ClusterIP")
      ports: (name, port) or (name, port, targetPort) or (name, port, targetPort, protocol)
  endpointslice(ns, svc, endpoints, port_name="http", name=None, port=None)
      endpoints: ("10.0.0.1", 8080, {"ready": True}) or ("10.0.0.1", 8080) or
      "10.0.0.1" (then port= gives the port); all of one slice share one port.
      Conditions default to ready/serving True, terminating False.
  tls_secret(ns, name, hosts, workdir)    kubernetes.io/tls with a fresh
      self-signed certificate for hosts (openssl CLI); the PEMs are also in
      workdir/<name>.crt / .key
  secret(ns, name, data, type="Opaque")    data values are str/bytes, base64'd here
  lease(ns, name, holder, duration=15, renew=None, transitions=0)
  namespace(name)
  kubectl(api, *args, timeout=20)  -> CompletedProcess (text); skips when kubectl is missing
  wait_for(pred, timeout=10, what="condition")  poll pred() until truthy; returns its value

Out of process (the server as its own process, controlled over HTTPS):
  start_apiserver_process(procs, tmp_path, tokens=(TOKEN,), fixtures=(), args=())
      -> RemoteApiServer with .url .port .ca .kubeconfig .proc and every
         CONTROL_METHODS name as a method (rapi.compact(), rapi.set_tokens([..]),
         rapi.down_for(2), rapi.requests(method="PUT"), rapi.create({...}) ...)
"""
import base64
import zlib
import datetime
import os
import shutil
import json
import ssl
import subprocess
import sys
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from apiserver import ApiError, ApiServer  # noqa: E402,F401
from conftest import wait_for  # noqa: E402,F401

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")
APISERVER_PY = os.path.join(HERE, "apiserver.py")
CONTROLLER = "tapwork.dev/ingress-controller"
TOKEN = "tapwork-test-token"
KUBECTL = shutil.which("kubectl")

needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed (kubectl 1.32 is expected on PATH)")


@pytest.fixture
def apiserver(tmp_path):
    """An ApiServer on a free loopback port, with token TOKEN and a kubeconfig
    at apiserver.kubeconfig; stopped when the test ends."""
    d = tmp_path / "apiserver"
    d.mkdir()
    api = ApiServer(tokens=[TOKEN], workdir=d)
    api.start()
    api.write_kubeconfig(d / "kubeconfig")
    try:
        yield api
    finally:
        api.stop()


def kubectl(api, *args, timeout=20, check=False, input=None):
    if KUBECTL is None:
        pytest.skip("kubectl not installed")
    cache = os.path.join(api.workdir, "kubectl-cache")
    cmd = [KUBECTL, "--kubeconfig", api.kubeconfig, "--cache-dir", cache, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=check, input=input)


def _meta(ns, name, labels=None, annotations=None):
    md = {"name": name}
    if ns is not None:
        md["namespace"] = ns
    if labels:
        md["labels"] = dict(labels)
    if annotations:
        md["annotations"] = dict(annotations)
    return md


def namespace(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def ingressclass(name="tapwork", controller=CONTROLLER, default=False, parameters=None):
    md = _meta(None, name)
    if default:
        md["annotations"] = {"ingressclass.kubernetes.io/is-default-class": "true"}
    spec = {"controller": controller}
    if parameters:
        spec["parameters"] = parameters
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": md, "spec": spec}


def backend(svc, port):
    p = {"number": port} if isinstance(port, int) else {"name": port}
    return {"service": {"name": svc, "port": p}}


def path(p, svc, port, path_type="Prefix"):
    out = {"pathType": path_type, "backend": backend(svc, port)}
    if p is not None:
        out["path"] = p
    return out


def rule(host, paths):
    r = {"http": {"paths": list(paths)}}
    if host:
        r["host"] = host
    return r


def tls(hosts, secret_name):
    out = {"hosts": list(hosts)}
    if secret_name:
        out["secretName"] = secret_name
    return out


def ingress(ns, name, rules=(), tls=(), cls="tapwork", annotations=None, default_backend=None,
            labels=None):
    spec = {}
    if cls:
        spec["ingressClassName"] = cls
    if default_backend:
        spec["defaultBackend"] = backend(*default_backend) if isinstance(default_backend, tuple) else default_backend
    if tls:
        spec["tls"] = list(tls)
    if rules:
        spec["rules"] = list(rules)
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": _meta(ns, name, labels, annotations), "spec": spec}


def service(ns, name, ports=(("http", 80, 8080),), selector=None, type="ClusterIP", labels=None,
            cluster_ip=None):
    sp = []
    for p in ports:
        p = tuple(p)
        e = {"name": p[0], "port": p[1], "protocol": p[3] if len(p) > 3 else "TCP"}
        e["targetPort"] = p[2] if len(p) > 2 else p[1]
        sp.append(e)
    spec = {"type": type, "ports": sp, "selector": selector or {"app": name}}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(ns, name, labels), "spec": spec}


def endpointslice(ns, svc, endpoints, port_name="http", name=None, port=None, protocol="TCP",
                  address_type="IPv4"):
    eps, ports = [], set()
    for e in endpoints:
        if isinstance(e, str):
            e = (e, port)
        ip, p = e[0], e[1]
        conds = {"ready": True, "serving": True, "terminating": False}
        if len(e) > 2 and e[2]:
            conds.update(e[2])
            if "ready" in e[2] and "serving" not in e[2]:
                conds["serving"] = e[2]["ready"]
        ports.add(p)
        eps.append({"addresses": [ip], "conditions": conds})
    if len(ports) > 1:
        raise ValueError(f"one EndpointSlice has one port set; got {sorted(ports)}: make one slice per port")
    p = ports.pop() if ports else port
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": _meta(ns, name or f"{svc}-{zlib.crc32(f'{svc}:{p}'.encode()) % 100000:05d}",
                              labels={"kubernetes.io/service-name": svc,
                                      "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}),
            "addressType": address_type, "endpoints": eps,
            "ports": [{"name": port_name, "port": p, "protocol": protocol}] if p is not None else []}


def secret(ns, name, data, type="Opaque"):
    enc = {k: base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode() for k, v in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(ns, name), "type": type, "data": enc}


def tls_secret(ns, name, hosts, workdir, days=2):
    """A kubernetes.io/tls Secret holding a fresh self-signed EC certificate for hosts."""
    workdir = str(workdir)
    crt, key = os.path.join(workdir, f"{name}.crt"), os.path.join(workdir, f"{name}.key")
    san = ",".join(f"IP:{h}" if h.replace(".", "").isdigit() else f"DNS:{h}" for h in hosts)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", crt, "-days", str(days), "-subj", f"/CN={hosts[0]}",
                    "-addext", f"subjectAltName={san}"], check=True, capture_output=True, timeout=30)
    with open(crt, "rb") as c, open(key, "rb") as k:
        return secret(ns, name, {"tls.crt": c.read(), "tls.key": k.read()}, type="kubernetes.io/tls")


def micro_time(t=None):
    t = t or datetime.datetime.now(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease(ns, name, holder, duration=15, renew=None, transitions=0):
    spec = {"holderIdentity": holder, "leaseDurationSeconds": duration,
            "acquireTime": micro_time(), "renewTime": renew or micro_time(),
            "leaseTransitions": transitions}
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": _meta(ns, name), "spec": spec}


class RemoteApiServer:
    """An apiserver.py subprocess, driven through its /_test/call endpoint."""

    def __init__(self, proc, url, ca, kubeconfig, control_token):
        self.proc, self.url, self.ca, self.kubeconfig = proc, url, ca, kubeconfig
        self.port = int(url.rsplit(":", 1)[1])
        self.control_token = control_token
        self._ctx = ssl.create_default_context(cafile=ca)

    def call(self, method, *args, **kwargs):
        req = urllib.request.Request(self.url + "/_test/call", method="POST",
                                     data=json.dumps({"method": method, "args": args, "kwargs": kwargs}).encode(),
                                     headers={"Authorization": f"Bearer {self.control_token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=self._ctx, timeout=10) as r:
            return json.loads(r.read())["result"]

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self.call(name, *args, **kwargs)


def start_apiserver_process(procs, tmp_path, tokens=(TOKEN,), fixtures=(), args=(), timeout=15):
    """apiserver.py as a subprocess of the `procs` fixture (stopped by PID at teardown)."""
    d = os.path.join(str(tmp_path), "apiserver-proc")
    os.makedirs(d, exist_ok=True)
    kc = os.path.join(d, "kubeconfig")
    cmd = ["/usr/bin/python3", APISERVER_PY, "--port", "0", "--write-kubeconfig", kc, "--workdir", d]
    for t in tokens:
        cmd += ["--token", t]
    for f in fixtures:
        cmd += ["--fixtures", str(f)]
    p = procs.start(cmd + list(args), name="apiserver")
    from conftest import Procs

    def ready():
        if p.poll() is not None:
            raise RuntimeError(f"apiserver.py exited {p.returncode}:\n{Procs.log_of(p)}")
        for line in Procs.log_of(p).splitlines():
            if line.startswith("READY "):
                return line.split()[1]
        return None
    url = wait_for(ready, timeout, "apiserver.py READY line")
    return RemoteApiServer(p, url, os.path.join(d, "ca.crt"), kc, list(tokens)[0])

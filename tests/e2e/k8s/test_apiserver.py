"""The test Kubernetes API server is faithful enough: real clients (kubectl,
python3-kubernetes) and the raw protocol (chunked watch lines, bookmarks,
timeouts, 401 / 409 / 410) against it."""
import json
import os
import select
import socket
import ssl
import subprocess
import time

import pytest

from k8sutil import (FIXTURES, TOKEN, ApiError, apiserver, endpointslice, ingress,  # noqa: F401
                     kubectl, lease, needs_kubectl, path, rule, secret, service, start_apiserver_process,
                     tls, tls_secret, wait_for)

ING = "/apis/networking.k8s.io/v1"


# ---------------------------------------------------------------------------
# raw HTTP/1.1 over TLS, so chunk boundaries stay visible

class Raw:
    def __init__(self, api, token=TOKEN, timeout=10):
        ctx = ssl.create_default_context(cafile=api.ca)
        s = socket.create_connection(("127.0.0.1", api.port), timeout=timeout)
        self.s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
        self.token = token
        self.buf = b""

    def close(self):
        self.s.close()

    def send(self, method, target, body=None, ctype="application/json"):
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n"
        if self.token:
            head += f"Authorization: Bearer {self.token}\r\n"
        if data:
            head += f"Content-Type: {ctype}\r\n"
        head += f"Content-Length: {len(data)}\r\n\r\n"
        self.s.sendall(head.encode() + data)

    def _fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError
        self.buf += d

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def head(self):
        status = int(self._line().split()[1])
        hdrs = {}
        while True:
            line = self._line()
            if not line:
                return status, hdrs
            k, v = line.decode().split(":", 1)
            hdrs[k.strip().lower()] = v.strip()

    def body(self, hdrs):
        n = int(hdrs.get("content-length", 0))
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def chunk(self):
        """One chunk's payload (b"" for the last chunk)."""
        n = int(self._line().split(b";")[0], 16)
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        if n == 0:
            return b""
        return data

    def request(self, method, target, body=None, ctype="application/json"):
        self.send(method, target, body, ctype)
        st, h = self.head()
        data = self.body(h)
        try:
            return st, h, json.loads(data)
        except ValueError:
            return st, h, data


class WatchStream:
    """A watch read chunk by chunk; events() assembles lines across chunks."""

    def __init__(self, api, target, token=TOKEN):
        self.raw = Raw(api, token)
        self.raw.send("GET", target)
        self.status, self.headers = self.raw.head()
        self.chunks = []
        self.pending = b""
        self.ended = False

    def next_event(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.pending:
            if self.ended:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no watch event in time")
            self.raw.s.settimeout(left)
            c = self.raw.chunk()
            if c == b"":
                self.ended = True
                continue
            self.chunks.append(c)
            self.pending += c
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line)

    def close(self):
        self.raw.close()


def get(api, target, token=TOKEN):
    r = Raw(api, token)
    try:
        return r.request("GET", target)
    finally:
        r.close()


def call(api, method, target, body=None, ctype="application/json"):
    r = Raw(api)
    try:
        return r.request(method, target, body, ctype)
    finally:
        r.close()


# ---------------------------------------------------------------------------
# raw protocol

def test_fixtures_list_all_namespaces_and_discovery(apiserver):
    apiserver.load_fixtures(FIXTURES)
    st, _, body = get(apiserver, f"{ING}/ingresses")
    assert st == 200 and body["kind"] == "IngressList" and body["apiVersion"] == "networking.k8s.io/v1"
    assert [i["metadata"]["name"] for i in body["items"]] == ["no-class", "not-ours", "shop"]
    assert all("kind" not in i for i in body["items"])          # as a real apiserver lists
    assert int(body["metadata"]["resourceVersion"]) == apiserver.resource_version
    st, _, one = get(apiserver, f"{ING}/namespaces/shop/ingresses/shop")
    assert one["kind"] == "Ingress" and one["spec"]["tls"][0]["secretName"] == "shop-tls"
    for k in ("uid", "resourceVersion", "creationTimestamp", "generation"):
        assert k in one["metadata"]
    assert get(apiserver, "/api/v1/namespaces/shop/services")[2]["items"][0]["metadata"]["name"] == "api"
    assert get(apiserver, "/apis/networking.k8s.io/v1/ingressclasses/tapwork")[2]["spec"]["controller"] == \
        "tapwork.dev/ingress-controller"
    # discovery
    assert get(apiserver, "/api")[2]["versions"] == ["v1"]
    groups = {g["name"] for g in get(apiserver, "/apis")[2]["groups"]}
    assert {"networking.k8s.io", "discovery.k8s.io", "coordination.k8s.io"} <= groups
    rl = get(apiserver, ING)[2]
    names = {r["name"]: r for r in rl["resources"]}
    assert names["ingresses"]["namespaced"] and not names["ingressclasses"]["namespaced"]
    assert "ingresses/status" in names and "watch" in names["ingresses"]["verbs"]
    assert get(apiserver, "/version")[2]["minor"] == "32"
    st, _, s = get(apiserver, f"{ING}/namespaces/shop/ingresses/nope")
    assert st == 404 and s["kind"] == "Status" and s["reason"] == "NotFound"


def test_bad_token_401_and_rotation(apiserver):
    st, _, s = get(apiserver, "/api/v1/services", token="wrong")
    assert st == 401 and s == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
    assert get(apiserver, "/api/v1/services", token=None)[0] == 401
    apiserver.set_tokens(["rotated"])
    assert get(apiserver, "/api/v1/services")[0] == 401
    assert get(apiserver, "/api/v1/services", token="rotated")[0] == 200
    assert [r["token"] for r in apiserver.requests()][-2:] == [TOKEN, "rotated"]


def test_paging_is_a_consistent_snapshot_until_compacted(apiserver):
    for i in range(7):
        apiserver.create(service("pg", f"s{i}"))
    st, _, p1 = get(apiserver, "/api/v1/namespaces/pg/services?limit=3")
    assert [i["metadata"]["name"] for i in p1["items"]] == ["s0", "s1", "s2"]
    assert p1["metadata"]["remainingItemCount"] == 4
    cont = p1["metadata"]["continue"]
    apiserver.delete("svc", "s4", "pg")                   # changes after the first page...
    apiserver.create(service("pg", "s3a"))
    _, _, p2 = get(apiserver, f"/api/v1/namespaces/pg/services?limit=3&continue={cont}")
    assert [i["metadata"]["name"] for i in p2["items"]] == ["s3", "s4", "s5"]   # ...are not seen
    assert p2["metadata"]["resourceVersion"] == p1["metadata"]["resourceVersion"]
    _, _, p3 = get(apiserver, f"/api/v1/namespaces/pg/services?limit=3&continue={p2['metadata']['continue']}")
    assert [i["metadata"]["name"] for i in p3["items"]] == ["s6"] and "continue" not in p3["metadata"]
    # a fresh list sees the changes
    _, _, now = get(apiserver, "/api/v1/namespaces/pg/services")
    assert [i["metadata"]["name"] for i in now["items"]] == ["s0", "s1", "s2", "s3", "s3a", "s5", "s6"]
    apiserver.compact()
    st, _, s = get(apiserver, f"/api/v1/namespaces/pg/services?limit=3&continue={cont}")
    assert st == 410 and s["reason"] == "Expired" and s["code"] == 410
    rv = int(p1["metadata"]["resourceVersion"])
    st, _, s = get(apiserver, f"/api/v1/namespaces/pg/services?resourceVersion={rv}&resourceVersionMatch=Exact")
    assert st == 410
    # NotOlderThan semantics: an old rv without Exact serves the current state
    assert get(apiserver, f"/api/v1/namespaces/pg/services?resourceVersion={rv}")[0] == 200


def test_selectors(apiserver):
    apiserver.load_fixtures(FIXTURES)
    apiserver.create(service("sel", "a", labels={"tier": "front", "env": "prod"}))
    apiserver.create(service("sel", "b", labels={"tier": "back"}))
    apiserver.create(service("sel", "c"))

    def names(q, base="/api/v1/namespaces/sel/services"):
        st, _, body = get(apiserver, f"{base}?{q}")
        assert st == 200, body
        return [i["metadata"]["name"] for i in body["items"]]

    assert names("labelSelector=tier%3Dfront") == ["a"]
    assert names("labelSelector=tier%21%3Dfront") == ["b", "c"]
    assert names("labelSelector=tier") == ["a", "b"]
    assert names("labelSelector=%21tier") == ["c"]
    assert names("labelSelector=tier%20in%20(front,back),env") == ["a"]
    assert names("fieldSelector=metadata.name%3Db") == ["b"]
    assert names("fieldSelector=metadata.namespace%3Dsel", base="/api/v1/services") == ["a", "b", "c"]
    assert names("fieldSelector=type%3Dkubernetes.io/tls", base="/api/v1/secrets") == ["shop-tls"]
    assert names("fieldSelector=type%21%3Dkubernetes.io/tls", base="/api/v1/secrets") == ["shop-db"]
    st, _, s = get(apiserver, "/api/v1/secrets?fieldSelector=data.x%3D1")
    assert st == 400 and "field label not supported" in s["message"]


def test_create_replace_patch_delete_conflicts(apiserver):
    base = f"{ING}/namespaces/crud/ingresses"
    obj = ingress("crud", "site", rules=[rule("a.example", [path("/", "web", 80)])])
    st, _, made = call(apiserver, "POST", base, obj)
    assert st == 201 and made["metadata"]["generation"] == 1
    st, _, s = call(apiserver, "POST", base, obj)
    assert st == 409 and s["reason"] == "AlreadyExists"
    stale = dict(made)
    made["spec"]["rules"][0]["host"] = "b.example"
    st, _, upd = call(apiserver, "PUT", f"{base}/site", made)
    assert st == 200 and upd["metadata"]["generation"] == 2
    assert int(upd["metadata"]["resourceVersion"]) > int(made["metadata"]["resourceVersion"])
    st, _, s = call(apiserver, "PUT", f"{base}/site", stale)          # stale resourceVersion
    assert st == 409 and s["reason"] == "Conflict" and "has been modified" in s["message"]
    st, _, p = call(apiserver, "PATCH", f"{base}/site", {"metadata": {"labels": {"x": "1"}}},
                    "application/merge-patch+json")
    assert st == 200 and p["metadata"]["labels"] == {"x": "1"} and p["metadata"]["generation"] == 2
    st, _, p = call(apiserver, "PATCH", f"{base}/site", [{"op": "replace", "path": "/spec/ingressClassName",
                                                          "value": "other"}], "application/json-patch+json")
    assert st == 200 and p["spec"]["ingressClassName"] == "other"
    st, _, p = call(apiserver, "PATCH", f"{base}/site",
                    {"metadata": {"resourceVersion": stale["metadata"]["resourceVersion"]}},
                    "application/merge-patch+json")
    assert st == 409
    st, _, gone = call(apiserver, "DELETE", f"{base}/site")
    assert st == 200 and gone["status"] == "Success" and gone["details"]["name"] == "site"
    assert call(apiserver, "DELETE", f"{base}/site")[0] == 404
    assert get(apiserver, f"{base}/site")[0] == 404


def test_large_answers_gzipped_when_asked(apiserver):
    import gzip
    apiserver.create(secret("gz", "big", {"blob": "y" * 300000}))
    r = Raw(apiserver)
    try:
        r.send("GET", "/api/v1/namespaces/gz/secrets/big")      # no Accept-Encoding: plain
        st, h = r.head()
        assert st == 200 and "content-encoding" not in h and len(r.body(h)) > 300000
        r.s.sendall(b"GET /api/v1/namespaces/gz/secrets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                    + TOKEN.encode() + b"\r\nAccept-Encoding: gzip\r\n\r\n")
        st, h = r.head()
        assert st == 200 and h["content-encoding"] == "gzip"
        assert json.loads(gzip.decompress(r.body(h)))["items"][0]["metadata"]["name"] == "big"
    finally:
        r.close()


def test_writes_are_validated_like_a_real_server(apiserver):
    base = f"{ING}/namespaces/v/ingresses"
    bad = ingress("v", "bad", rules=[rule("*.ok.example", [path("/", "web", 80)]),
                                     rule("10.0.0.1", [path("rel", "web", "http")]),
                                     rule("a.example", [{"path": "/", "backend": {"service": {"name": "web"}}}])])
    st, _, s = call(apiserver, "POST", base, bad)
    assert st == 422 and s["reason"] == "Invalid" and s["details"]["kind"] == "Ingress"
    fields = [c["field"] for c in s["details"]["causes"]]
    assert fields == ["spec.rules[1].host", "spec.rules[1].http.paths[0].path",
                      "spec.rules[2].http.paths[0].pathType", "spec.rules[2].http.paths[0].backend.service.port"]
    assert s["message"].startswith('Ingress.networking.k8s.io "bad" is invalid: [spec.rules[1].host: ')
    st, _, s = call(apiserver, "POST", base, ingress("v", "empty"))
    assert st == 422 and "either `defaultBackend` or `rules` must be specified" in s["message"]
    st, _, s = call(apiserver, "POST", base, ingress("v", "Upper_Case", default_backend=("web", 80)))
    assert st == 422 and s["details"]["causes"][0]["field"] == "metadata.name"
    ok = ingress("v", "ok", default_backend=("web", 80))
    assert call(apiserver, "POST", base, ok)[0] == 201
    st, _, s = call(apiserver, "PATCH", f"{base}/ok", {"spec": {"defaultBackend": None}},
                    "application/merge-patch+json")
    assert st == 422
    st, _, s = call(apiserver, "POST", "/apis/networking.k8s.io/v1/ingressclasses",
                    {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "x"},
                     "spec": {"controller": "no-domain"}})
    assert st == 422 and "domain-prefixed path" in s["message"]
    st, _, s = call(apiserver, "POST", "/apis/coordination.k8s.io/v1/namespaces/v/leases", lease("v", "l", "a", duration=0))
    assert st == 422
    # the control API stores what a real server would refuse
    assert apiserver.create(ingress("v", "empty"))["metadata"]["name"] == "empty"


def test_status_subresource(apiserver):
    apiserver.create(ingress("st", "site", rules=[rule("a.example", [path("/", "web", 80)])]))
    cur = apiserver.get("ing", "site", "st")
    lb = {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}
    st, _, after = call(apiserver, "PUT", f"{ING}/namespaces/st/ingresses/site",
                        dict(cur, status=lb))                          # main resource: status ignored
    assert st == 200 and after.get("status") in (None, {}) and after == cur
    cur["spec"]["ingressClassName"] = "changed"
    st, _, after = call(apiserver, "PUT", f"{ING}/namespaces/st/ingresses/site/status", dict(cur, status=lb))
    assert st == 200 and after["status"] == lb and after["spec"]["ingressClassName"] == "tapwork"
    assert after["metadata"]["generation"] == 1
    st, _, after2 = call(apiserver, "PATCH", f"{ING}/namespaces/st/ingresses/site/status",
                         {"status": lb}, "application/merge-patch+json")
    assert after2["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"]  # no-op write
    writes = apiserver.requests(method="PUT", path="/status")
    assert len(writes) == 1 and writes[0]["status"] == 200


def test_watch_lines_split_across_chunks_and_large_objects(apiserver):
    apiserver.split_chunks = True
    rv = apiserver.resource_version
    w = WatchStream(apiserver, f"{ING}/namespaces/big/ingresses?watch=1&resourceVersion={rv}")
    try:
        assert w.status == 200 and w.headers["transfer-encoding"] == "chunked"
        big = "x" * (3 << 20)
        apiserver.create(ingress("big", "a", annotations={"big": big}))
        apiserver.create(ingress("big", "b"))
        apiserver.delete("ing", "a", "big")
        events = [w.next_event(10) for _ in range(3)]
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == \
            [("ADDED", "a"), ("ADDED", "b"), ("DELETED", "a")]
        assert events[0]["object"]["metadata"]["annotations"]["big"] == big
        assert events[0]["object"]["kind"] == "Ingress"
        # some chunk ended mid-line: lines do not follow chunk boundaries
        assert any(not c.endswith(b"\n") for c in w.chunks)
    finally:
        w.close()
    for i in range(5):
        apiserver.create(service("many", f"s{i}"))
    w = WatchStream(apiserver, "/api/v1/namespaces/many/services?watch=1")    # initial events: one batch
    try:
        assert [w.next_event()["object"]["metadata"]["name"] for _ in range(5)] == [f"s{i}" for i in range(5)]
        assert any(b"\n" in c[:-1] for c in w.chunks)       # a chunk holding the end of one line and more
    finally:
        w.close()


def test_watch_from_zero_sends_current_objects_and_selector_transitions(apiserver):
    apiserver.create(service("wz", "a", labels={"team": "x"}))
    apiserver.create(service("wz", "b", labels={"team": "y"}))
    w = WatchStream(apiserver, "/api/v1/namespaces/wz/services?watch=true&labelSelector=team%3Dx")
    try:
        e = w.next_event()
        assert (e["type"], e["object"]["metadata"]["name"]) == ("ADDED", "a")
        apiserver.patch("svc", "b", {"metadata": {"labels": {"team": "x"}}}, "wz")   # enters
        apiserver.patch("svc", "a", {"metadata": {"labels": {"team": "z"}}}, "wz")   # leaves
        got = [(e["type"], e["object"]["metadata"]["name"]) for e in (w.next_event(), w.next_event())]
        assert got == [("ADDED", "b"), ("DELETED", "a")]
    finally:
        w.close()


def test_watch_bookmarks_and_timeout(apiserver):
    apiserver.bookmark_interval = 0.2
    apiserver.create(service("bm", "a"))
    rv = apiserver.resource_version
    t0 = time.monotonic()
    w = WatchStream(apiserver, f"/api/v1/namespaces/bm/services?watch=1&resourceVersion={rv}"
                               f"&allowWatchBookmarks=true&timeoutSeconds=1")
    try:
        events = []
        while True:
            e = w.next_event(5)
            if e is None:
                break
            events.append(e)
            if len(events) == 1:
                apiserver.create(service("other", "unrelated"))      # moves the rv on
        elapsed = time.monotonic() - t0
        assert 0.9 <= elapsed < 3, elapsed
        assert all(e["type"] == "BOOKMARK" for e in events) and len(events) >= 3
        assert events[0]["object"] == {"kind": "Service", "apiVersion": "v1",
                                       "metadata": {"resourceVersion": str(rv)}}
        # the last one, sent just before the server ends the stream, is current
        assert events[-1]["object"]["metadata"]["resourceVersion"] == str(apiserver.resource_version)
    finally:
        w.close()


def test_watch_too_old_410_as_event_and_as_status(apiserver):
    apiserver.create(service("g", "a"))
    old = apiserver.resource_version
    apiserver.create(service("g", "b"))
    apiserver.compact()
    w = WatchStream(apiserver, f"/api/v1/namespaces/g/services?watch=1&resourceVersion={old - 1}")
    try:
        assert w.status == 200
        e = w.next_event()
        assert e["type"] == "ERROR" and e["object"]["code"] == 410 and e["object"]["kind"] == "Status"
        assert w.next_event() is None                                # and the stream ends
    finally:
        w.close()
    apiserver.gone_as = "status"
    st, _, s = get(apiserver, f"/api/v1/namespaces/g/services?watch=1&resourceVersion={old - 1}")
    assert st == 410 and s["reason"] == "Expired"
    # watching from the compaction point itself is fine
    apiserver.gone_as = "event"
    w = WatchStream(apiserver, f"/api/v1/namespaces/g/services?watch=1&resourceVersion={apiserver.resource_version}")
    try:
        apiserver.create(service("g", "c"))
        assert w.next_event()["object"]["metadata"]["name"] == "c"
        apiserver.compact(break_watches=True)                   # an open stream gets the 410 too
        e = w.next_event()
        assert e["type"] == "ERROR" and e["object"]["code"] == 410
        assert w.next_event() is None
    finally:
        w.close()


def test_compaction_spares_a_watch_that_keeps_up(apiserver):
    w = WatchStream(apiserver, f"/api/v1/namespaces/c/services?watch=1&resourceVersion={apiserver.resource_version}")
    try:
        for i in range(20):
            apiserver.create(service("c", f"s{i}"))
        apiserver.compact()                       # right away: the watch has not read them yet
        names = [w.next_event()["object"]["metadata"]["name"] for _ in range(20)]
        assert names == [f"s{i}" for i in range(20)]
        apiserver.create(service("c", "after"))
        e = w.next_event()
        assert (e["type"], e["object"]["metadata"]["name"]) == ("ADDED", "after")
    finally:
        w.close()


def test_post_sets_metadata_fixtures_may_keep_it(apiserver):
    old = "2020-01-02T03:04:05Z"
    kept = apiserver.create(dict(ingress("m", "old"), metadata={"name": "old", "namespace": "m",
                                                                 "creationTimestamp": old}))
    assert kept["metadata"]["creationTimestamp"] == old
    body = dict(ingress("m", "new", default_backend=("web", 80)), metadata={"name": "new", "creationTimestamp": old, "uid": "x"})
    st, _, made = call(apiserver, "POST", f"{ING}/namespaces/m/ingresses", body)
    assert st == 201 and made["metadata"]["creationTimestamp"] != old and made["metadata"]["uid"] != "x"
    assert made["metadata"]["namespace"] == "m"
    ev = {"apiVersion": "v1", "kind": "Event", "metadata": {"generateName": "site.", "namespace": "m"},
          "involvedObject": {"kind": "Ingress", "namespace": "m", "name": "new", "apiVersion": "networking.k8s.io/v1",
                             "uid": made["metadata"]["uid"]},
          "reason": "Rejected", "message": "host conflict", "type": "Warning",
          "source": {"component": "tapwork"}, "count": 1}
    st, _, e = call(apiserver, "POST", "/api/v1/namespaces/m/events", ev)
    assert st == 201 and e["metadata"]["name"].startswith("site.") and len(e["metadata"]["name"]) == 10
    st, _, lst = get(apiserver, "/api/v1/namespaces/m/events?fieldSelector=involvedObject.name%3Dnew,reason%3DRejected")
    assert [x["message"] for x in lst["items"]] == ["host conflict"]
    st, _, s = call(apiserver, "POST", f"{ING}/namespaces/other/ingresses", ingress("m", "x", default_backend=("web", 80)))
    assert st == 400 and "does not match the namespace" in s["message"]


def test_faults_garbage_errors_down_and_up(apiserver):
    apiserver.garbage(count=1, path="/services")
    st, h, body = get(apiserver, "/api/v1/services")
    assert st == 200 and isinstance(body, bytes)
    assert get(apiserver, "/api/v1/services")[0] == 200
    apiserver.error_status(503, retry_after=2, count=2)
    for _ in range(2):
        st, h, s = get(apiserver, "/api/v1/services")
        assert st == 503 and h["retry-after"] == "2" and s["reason"] == "ServiceUnavailable"
    assert get(apiserver, "/api/v1/services")[0] == 200
    apiserver.error_status(500, path="/services", watch=True)        # lists pass, the watch fails
    assert get(apiserver, "/api/v1/services")[0] == 200
    assert get(apiserver, "/api/v1/services?watch=1")[0] == 500
    port = apiserver.port
    w = WatchStream(apiserver, "/api/v1/services?watch=1")
    apiserver.go_down()
    with pytest.raises((EOFError, OSError)):
        for _ in range(3):
            w.next_event(3)                    # the open watch is cut
    w.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    apiserver.come_up()
    assert apiserver.port == port and get(apiserver, "/api/v1/services")[0] == 200


def test_request_log(apiserver):
    apiserver.create(lease("kube-system", "tapwork-leader", "a"))
    get(apiserver, "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/tapwork-leader")
    get(apiserver, "/api/v1/services?watch=1&timeoutSeconds=1")
    log = apiserver.requests()
    assert [(r["method"], r["path"], r["status"]) for r in log] == [
        ("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/tapwork-leader", 200),
        ("GET", "/api/v1/services", 200)]
    assert log[1]["watch"] and log[1]["query"] == {"watch": "1", "timeoutSeconds": "1"}
    apiserver.clear_requests()
    assert apiserver.requests() == []


def test_break_watches_cleanly_and_gateway_api(apiserver):
    w = WatchStream(apiserver, "/api/v1/services?watch=1&allowWatchBookmarks=true")
    try:
        deadline = time.monotonic() + 5
        while apiserver.open_watches() != 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        apiserver.break_watches(clean=True)
        assert w.next_event() is None and w.ended
    finally:
        w.close()
    assert get(apiserver, "/apis/gateway.networking.k8s.io/v1/httproutes")[0] == 404
    from apiserver import GATEWAY_API
    apiserver.add_resources(GATEWAY_API)
    assert {"gatewayclasses", "gateways", "gateways/status", "httproutes", "httproutes/status"} <= \
        {r["name"] for r in get(apiserver, "/apis/gateway.networking.k8s.io/v1")[2]["resources"]}
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "r", "namespace": "gw"},
             "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["a.example"]}}
    assert call(apiserver, "POST", "/apis/gateway.networking.k8s.io/v1/namespaces/gw/httproutes", route)[0] == 201
    st, _, out = call(apiserver, "PATCH", "/apis/gateway.networking.k8s.io/v1/namespaces/gw/httproutes/r/status",
                      {"status": {"parents": []}}, "application/merge-patch+json")
    assert st == 200 and out["status"] == {"parents": []}
    grant = {"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
             "metadata": {"name": "g", "namespace": "gw"}, "spec": {"from": [], "to": []}}
    assert apiserver.create(grant)["metadata"]["name"] == "g"


def test_builders(apiserver, tmp_path):
    s = apiserver.create(tls_secret("t", "site-tls", ["a.example", "*.a.example"], tmp_path))
    assert s["type"] == "kubernetes.io/tls" and set(s["data"]) == {"tls.crt", "tls.key"}
    out = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in",
                          str(tmp_path / "site-tls.crt")], capture_output=True, text=True, timeout=10)
    assert "DNS:*.a.example" in out.stdout
    sl = apiserver.create(endpointslice("t", "web", [("127.0.0.2", 8080, {"ready": True}),
                                                     ("127.0.0.3", 8080, {"ready": False, "terminating": True})]))
    assert sl["metadata"]["labels"]["kubernetes.io/service-name"] == "web"
    assert sl["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert sl["endpoints"][1]["conditions"] == {"ready": False, "serving": False, "terminating": True}
    with pytest.raises(ValueError):
        endpointslice("t", "web", [("127.0.0.2", 1), ("127.0.0.3", 2)])
    ing = ingress("t", "i", rules=[rule("*.a.example", [path("/x", "web", "http", "Exact")])],
                  tls=[tls(["a.example"], "site-tls")], default_backend=("web", 80), annotations={"k": "v"})
    assert ing["spec"]["defaultBackend"] == {"service": {"name": "web", "port": {"number": 80}}}
    assert ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] == {"name": "http"}
    apiserver.create(ing)
    with pytest.raises(ApiError) as e:
        apiserver.create(ing)
    assert e.value.code == 409
    apiserver.create(secret("t", "plain", {"k": "v"}))


def test_subprocess_mode_and_control_endpoint(procs, tmp_path):
    yaml = pytest.importorskip("yaml", reason="python3-yaml not installed")
    r = start_apiserver_process(procs, tmp_path, tokens=["sub-token"], fixtures=[FIXTURES],
                                args=["--write-incluster", str(tmp_path / "sa")])
    with open(r.kubeconfig) as f:
        cfg = yaml.safe_load(f)
    assert cfg["clusters"][0]["cluster"]["server"] == r.url == f"https://127.0.0.1:{r.port}"
    assert cfg["users"][0]["user"]["token"] == "sub-token" and cfg["current-context"] == "test"
    assert (tmp_path / "sa" / "token").read_text() == "sub-token"

    def call_tok(method, target, body=None, token="sub-token"):
        c = Raw(r, token)
        try:
            return c.request(method, target, body)
        finally:
            c.close()

    assert len(call_tok("GET", f"{ING}/ingresses")[2]["items"]) == 3
    r.set_tokens(["next"])
    assert call_tok("GET", f"{ING}/ingresses")[0] == 401
    assert call_tok("GET", f"{ING}/ingresses", token="next")[0] == 200
    rv = r.compact()
    assert rv == r.current_rv()
    assert call_tok("GET", f"{ING}/ingresses?limit=1", token="next")[0] == 200
    assert r.requests(path="/ingresses")[-1]["query"] == {"limit": "1"}
    r.create(ingress("remote", "made"))
    assert r.get("Ingress", "made", "remote")["metadata"]["namespace"] == "remote"
    assert call_tok("POST", "/_test/call", {"method": "__init__"})[0] == 400
    assert call_tok("POST", "/_test/call", {"method": "compact"}, token="next")[0] == 401  # control token stays
    r.down_for(1.0)
    wait_for(lambda: _port_state(r.port) == "refused", 5, "the server going down")
    wait_for(lambda: _port_state(r.port) == "up", 10, "the server coming back")
    assert procs.stop(r.proc) == 0


def _port_state(port):
    """"up", "refused", or "other" (a reset while the listener closes, a timeout)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return "up"
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "other"


# ---------------------------------------------------------------------------
# kubectl

@needs_kubectl
def test_kubectl_get_all_namespaces_json(apiserver):
    apiserver.load_fixtures(FIXTURES)
    r = kubectl(apiserver, "get", "ingresses", "-A", "-o", "json")
    assert r.returncode == 0, r.stderr
    items = json.loads(r.stdout)["items"]
    assert sorted(i["metadata"]["name"] for i in items) == ["no-class", "not-ours", "shop"]
    assert all(i["kind"] == "Ingress" for i in items)
    r = kubectl(apiserver, "get", "endpointslices", "-n", "shop", "-l", "kubernetes.io/service-name=web",
                "-o", "name")
    assert r.returncode == 0 and r.stdout.split() == ["endpointslice.discovery.k8s.io/web-abc12",
                                                      "endpointslice.discovery.k8s.io/web-def34"], r.stderr
    r = kubectl(apiserver, "get", "secrets", "-A", "--field-selector", "type=kubernetes.io/tls", "-o", "name")
    assert r.stdout.split() == ["secret/shop-tls"], r.stderr
    r = kubectl(apiserver, "get", "ingressclass", "tapwork", "-o", "jsonpath={.spec.controller}")
    assert r.stdout == "tapwork.dev/ingress-controller", r.stderr
    r = kubectl(apiserver, "get", "ingresses", "-n", "shop")          # human output, no Table support
    assert r.returncode == 0 and "shop" in r.stdout, r.stderr


@needs_kubectl
def test_kubectl_watch_sees_a_change(apiserver, procs):
    apiserver.load_fixtures(FIXTURES)
    kubectl(apiserver, "api-resources")                          # warm the discovery cache
    cache = os.path.join(apiserver.workdir, "kubectl-cache")
    p = subprocess.Popen(["kubectl", "--kubeconfig", apiserver.kubeconfig, "--cache-dir", cache, "get",
                          "ingresses", "-n", "shop", "--watch", "-o", "name"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lines, buf = [], [b""]

        def read_until(pred, timeout=10):
            deadline = time.monotonic() + timeout
            while not pred():
                left = deadline - time.monotonic()
                assert left > 0, (lines, p.poll())
                if select.select([p.stdout], [], [], left)[0]:
                    data = os.read(p.stdout.fileno(), 65536)
                    assert data, p.stderr.read()
                    buf[0] += data
                    *done, buf[0] = buf[0].split(b"\n")
                    lines.extend(x.decode().strip() for x in done)

        read_until(lambda: len(lines) >= 3)
        assert sorted(lines) == ["ingress.networking.k8s.io/no-class", "ingress.networking.k8s.io/not-ours",
                                 "ingress.networking.k8s.io/shop"]
        deadline = time.monotonic() + 5
        while apiserver.open_watches() != 1:
            assert time.monotonic() < deadline, "kubectl opened no watch"
            time.sleep(0.02)
        apiserver.create(ingress("shop", "late", rules=[rule("late.example", [path("/", "web", 80)])]))
        read_until(lambda: "ingress.networking.k8s.io/late" in lines)
        watches = apiserver.requests(watch=True)
        assert watches and watches[0]["query"].get("resourceVersion")
    finally:
        p.kill()
        p.wait(5)
        p.stdout.close()
        p.stderr.close()


@needs_kubectl
def test_kubectl_create_apply_replace_delete(apiserver, tmp_path):
    f = tmp_path / "ing.json"
    obj = ingress("default", "site", rules=[rule("a.example", [path("/", "web", 80)])])
    f.write_text(json.dumps(obj))
    r = kubectl(apiserver, "create", "-f", str(f))
    assert r.returncode == 0 and "created" in r.stdout, r.stderr
    r = kubectl(apiserver, "create", "-f", str(f))
    assert r.returncode != 0 and "AlreadyExists" in r.stderr
    obj["spec"]["rules"][0]["host"] = "b.example"
    f.write_text(json.dumps(obj))
    r = kubectl(apiserver, "apply", "-f", str(f))
    assert r.returncode == 0 and "configured" in r.stdout, r.stderr
    got = apiserver.get("Ingress", "site", "default")
    assert got["spec"]["rules"][0]["host"] == "b.example" and got["metadata"]["generation"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in got["metadata"]["annotations"]
    assert apiserver.requests(method="PATCH", path="/ingresses/site")
    obj["spec"]["rules"][0]["host"] = "c.example"
    f.write_text(json.dumps(obj))
    r = kubectl(apiserver, "replace", "-f", str(f))
    assert r.returncode == 0 and "replaced" in r.stdout, r.stderr
    assert apiserver.get("Ingress", "site", "default")["spec"]["rules"][0]["host"] == "c.example"
    r = kubectl(apiserver, "apply", "--server-side", "-f", str(f))
    assert r.returncode == 0, r.stderr
    r = kubectl(apiserver, "delete", "ingress", "site")
    assert r.returncode == 0 and "deleted" in r.stdout, r.stderr
    assert apiserver.get("Ingress", "site", "default") is None
    r = kubectl(apiserver, "apply", "-f", str(f))                    # apply creates
    assert r.returncode == 0 and "created" in r.stdout, r.stderr


@needs_kubectl
@pytest.mark.parametrize("aggregated", [True, False])
def test_kubectl_discovery_aggregated_or_legacy(apiserver, aggregated):
    apiserver.aggregated_discovery = aggregated
    r = kubectl(apiserver, "api-resources", "-o", "name")
    assert r.returncode == 0, r.stderr
    names = r.stdout.split()
    assert {"ingresses.networking.k8s.io", "ingressclasses.networking.k8s.io", "leases.coordination.k8s.io",
            "endpointslices.discovery.k8s.io", "services", "secrets", "events"} <= set(names)
    paths = [x["path"] for x in apiserver.requests()]
    assert ("/apis/networking.k8s.io/v1" in paths) == (not aggregated), paths
    r = kubectl(apiserver, "get", "ing", "-A", "-o", "name")           # short name from discovery
    assert r.returncode == 0, r.stderr


@needs_kubectl
def test_kubectl_bad_token_and_token_file(apiserver, tmp_path):
    apiserver.set_tokens(["other"])
    r = kubectl(apiserver, "get", "services")
    assert r.returncode != 0 and "You must be logged in to the server" in r.stderr, r.stderr
    env = apiserver.write_incluster(tmp_path / "sa", token="other")
    assert env["KUBERNETES_SERVICE_PORT"] == str(apiserver.port)
    apiserver.write_kubeconfig(tmp_path / "kc-file", token_file=tmp_path / "sa" / "token")
    r = kubectl(apiserver, "get", "services")
    assert r.returncode == 0, r.stderr
    assert apiserver.requests()[-1]["token"] == "other"

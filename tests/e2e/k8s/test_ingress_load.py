"""Changes under load (issue 11): 100 Ingress changes and 100 EndpointSlice
changes (scale up and down, pods terminating) while clients keep sending
requests: zero failed requests, and a WebSocket and an HTTP/2 stream opened
before the changes stay open through them. Bounded: the load stops when the
changes are done, or after 120 s."""
import socket
import threading
import time

import h2.connection
import h2.events
import websocket

from edgeutil import new_session
from ingressutil import publish_service, start_ingress_edge, start_pods, wait_for, wait_routed  # noqa: F401
from k8sutil import apiserver, endpointslice, ingress, path, rule  # noqa: F401


def h2_slow_stream(port, host, ms):
    """Opens an h2c (prior knowledge) stream for /slow?ms=N; returns a function
    that waits for the answer and returns its status and body."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    c = h2.connection.H2Connection()
    c.initiate_connection()
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, [(":method", "GET"), (":path", f"/slow?ms={ms}"), (":scheme", "http"),
                         (":authority", host)], end_stream=True)
    s.sendall(c.data_to_send())

    def finish():
        status, body = None, b""
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    return status, body
                for ev in c.receive_data(data):
                    if isinstance(ev, h2.events.ResponseReceived):
                        status = int(dict(ev.headers)[b":status"])
                    elif isinstance(ev, h2.events.DataReceived):
                        body += ev.data
                        c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        return status, body
                s.sendall(c.data_to_send())
        finally:
            s.close()
    return finish


def test_changes_under_load_lose_nothing(procs, tmp_path, apiserver):
    api = apiserver
    pods = start_pods(procs, "p", ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"])
    port = pods[0].port
    publish_service(api, "web", "svc", pods[:2])
    api.create(ingress("web", "site", rules=[rule("app.test", [path("/", "svc", "http")])]))
    edge = start_ingress_edge(procs, tmp_path, api, cfg={"workers": 2})
    wait_routed(edge, "app.test", "/", {"p-0", "p-1"})

    ws = websocket.create_connection(f"ws://127.0.0.1:{edge.port}/ws", host="app.test", timeout=30)
    ws.send("before")
    assert ws.recv() == "before"
    h2_done = h2_slow_stream(edge.port, "app.test", 12000)

    stop = threading.Event()
    counts = {"ok": 0, "fail": []}
    lock = threading.Lock()

    def load():
        s = new_session()
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                r = s.get(edge.url("/echo"), headers={"Host": "app.test"}, timeout=10)
                ok = r.status_code == 200
                err = None if ok else f"{r.status_code} {r.text[:80]}"
            except Exception as e:  # noqa: BLE001 — any failure counts
                ok, err = False, repr(e)
            with lock:
                if ok:
                    counts["ok"] += 1
                else:
                    counts["fail"].append(err)
    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        eps = lambda sel, cond=None: [(p.host, port, dict(cond or {"ready": True})) for p in sel]  # noqa: E731
        for i in range(100):
            # Ingress changes: an extra host and path come and go, an annotation changes
            ing = api.get("ingresses", "site", "web")
            ing["spec"]["rules"] = [rule("app.test", [path("/", "svc", "http")]),
                                    rule(f"extra-{i}.test", [path(f"/p{i}", "svc", "http")])]
            ing["metadata"].setdefault("annotations", {})["tapwork.dev/retries"] = str(i % 3 + 1)
            api.update(ing)
            # EndpointSlice changes: scale up, a pod terminating, scale down — never to zero
            phase = i % 4
            if phase == 0:
                sel, extra = pods, None                       # 4 pods
            elif phase == 1:
                sel, extra = pods[1:], [pods[0]]              # p-0 terminating
            elif phase == 2:
                sel, extra = pods[1:3], None                  # scaled down to 2
            else:
                sel, extra = pods[:2], None                   # 2 others
            sl = endpointslice("web", "svc", eps(sel) + (eps(extra, {"ready": False, "serving": True,
                                                                         "terminating": True}) if extra else []),
                               port_name="http", name="svc-abc", port=port)
            cur = api.get("endpointslices", "svc-abc", "web")
            sl["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
            api.update(sl)
            time.sleep(0.02)
        wait_routed(edge, "extra-99.test", "/p99", {"p-0", "p-1"}, timeout=15)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert counts["fail"] == [], f"{len(counts['fail'])} failed of {counts['ok'] + len(counts['fail'])}: " \
                                 f"{counts['fail'][:5]}"
    assert counts["ok"] > 200, counts["ok"]
    # the WebSocket opened before every change is still open and works
    ws.send("after")
    assert ws.recv() == "after"
    ws.close()
    # the HTTP/2 stream opened before completes normally
    status, body = h2_done()
    assert status == 200 and body == b"slow\n", (status, body)
    m = edge.metrics()
    # bursts of changes are coalesced into fewer generations, none refused
    assert m.get("tapwork_k8s_generations_total", result="ok") >= 10
    assert m.get("tapwork_k8s_generations_total", result="error") == 0

"""Admin listener: /healthz, /readyz, /metrics (names, labels, values that move)."""
import time

import pytest

from edgeutil import backend, dead_port, start_edge, start_upstream, wait_for


@pytest.fixture
def edge(procs, tmp_path):
    up = start_upstream(procs, "web")
    dead = f"127.0.0.1:{dead_port()}"
    cfg = {"sites": [{"hosts": ["app.test"],
                      "routes": [{"path": "/echo", "backend": "web"},
                                 {"path": "/status", "backend": "web"},
                                 {"path": "/dead", "backend": "deadbe"}]}],
           "backends": {"web": backend([up]), "deadbe": backend([dead], passive_fails=0)}}
    e = start_edge(procs, tmp_path, cfg)
    e.up, e.dead = up, dead
    return e


def test_health_and_ready(edge):
    r = edge.admin("/healthz")
    assert r.status_code == 200 and r.text.strip() == "ok"
    r = edge.admin("/readyz")
    assert r.status_code == 200 and r.text.strip() == "ready"


def test_metrics_names_labels_values(edge):
    r = edge.admin("/metrics")
    assert r.status_code == 200
    ct = r.headers["Content-Type"]
    assert ct.startswith("text/plain") and "version=0.0.4" in ct, ct
    m0 = edge.metrics()

    for _ in range(3):
        assert edge.get("/echo", host="app.test").status_code == 200
    assert edge.get("/status/503", host="app.test").status_code == 503
    assert edge.get("/nothing-here", host="app.test").status_code == 404
    assert edge.get("/dead", host="app.test").status_code == 502
    m = edge.metrics()

    def delta(name, **labels):
        return m.get(name, **labels) - m0.get(name, **labels)

    rt = "tapwork_requests_total"
    assert m.types.get(rt) == "counter"
    assert delta(rt, site="app.test", backend="web", code="2xx") == 3
    assert delta(rt, site="app.test", backend="web", code="5xx") == 1
    assert delta(rt, site="app.test", backend="-", code="4xx") == 1
    assert delta(rt, site="app.test", backend="deadbe", code="5xx") == 1
    for labels, _ in m.find(rt):
        assert set(labels) == {"site", "backend", "code"}, labels
        assert labels["code"] in ("1xx", "2xx", "3xx", "4xx", "5xx"), labels

    h = "tapwork_request_duration_seconds"
    assert m.types.get(h) == "histogram"
    assert m.get(h + "_count", backend="web") - m0.get(h + "_count", backend="web") == 4
    assert m.get(h + "_sum", backend="web") > 0
    buckets = sorted(((float(lab["le"]), v) for lab, v in m.find(h + "_bucket", backend="web")))
    assert buckets and buckets[-1][0] == float("inf"), buckets
    assert buckets[-1][1] == m.get(h + "_count", backend="web")
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), buckets  # cumulative

    ce = "tapwork_upstream_connect_errors_total"
    assert m.types.get(ce) == "counter"
    assert delta(ce, backend="deadbe", server=edge.dead) >= 1
    assert m.get(ce, backend="web", server=edge.up.addr) == 0
    assert m.has(ce, backend="web", server=edge.up.addr)

    assert m.types.get("tapwork_connections_active") == "gauge"
    assert m.types.get("tapwork_server_up") == "gauge"
    assert m.get("tapwork_server_up", backend="web", server=edge.up.addr) == 1
    assert m.has("tapwork_config_reloads_total", result="ok")
    assert m.has("tapwork_config_reloads_total", result="error")


def test_connections_active_moves(edge):
    # Connections closed by earlier tests may not be reaped yet: start from a
    # quiet edge so that the three below are the only ones counted.
    wait_for(lambda: edge.metrics().get("tapwork_connections_active") == 0, 5,
             what="no client connections left from earlier tests")
    g0 = 0
    conns = []
    for _ in range(3):
        c = edge.raw()
        c.send(b"GET /echo HTTP/1.1\r\nHost: app.test\r\n\r\n")
        assert c.read_final().status == 200
        conns.append(c)
    assert edge.metrics().get("tapwork_connections_active") >= g0 + 3
    for c in conns:
        c.close()
    wait_for(lambda: edge.metrics().get("tapwork_connections_active") <= g0, 5,
             what="connections_active back down")


def test_labels_never_from_request_data(edge):
    for i in range(5):
        edge.get(f"/echo/zzuniq{i}", host=f"hostzz{i}.test")
        edge.get(f"/zzpath{i}", host="app.test")
    text = edge.admin("/metrics").text
    assert "zzuniq" not in text and "hostzz" not in text and "zzpath" not in text


def test_client_asked_close_is_closed_at_once_otherwise_lingers(edge):
    """A client that asked to close and sent its whole request: tapwork closes
    right after the answer (no 2 s wait for the client's FIN); one whose request
    body was left unread is still drained (linger) so no reset destroys the answer."""
    wait_for(lambda: edge.metrics().get("tapwork_connections_active") == 0, 5,
             what="no client connections left from earlier tests")
    c = edge.raw()
    c.send(b"GET /echo HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
    assert c.read_final().status == 200
    assert c.closed_within(1.0)  # FIN from tapwork; this side stays open
    t0 = time.monotonic()
    wait_for(lambda: edge.metrics().get("tapwork_connections_active") == 0, 5, what="closed")
    assert time.monotonic() - t0 < 1.0  # not the 2 s linger
    c.close()
    # a body tapwork never reads (no route answers 404 without reading it): linger
    c = edge.raw()
    c.send(b"POST /x HTTP/1.1\r\nHost: nowhere.test\r\nConnection: close\r\nContent-Length: 100000\r\n\r\n"
           + b"a" * 1000)
    r = c.read_final()
    assert r.status == 404
    time.sleep(0.3)
    assert edge.metrics().get("tapwork_connections_active") == 1  # draining the rest
    c.close()

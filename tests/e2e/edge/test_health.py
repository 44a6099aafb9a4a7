"""Active health checks, passive ejection, all-down 503, retries."""
import collections
import time

from edgeutil import SLACK, dead_port, new_session, simple_config, start_edge, start_upstream

INTERVAL = 0.2
FALL = 2
RISE = 2
HEALTH = {"path": "/healthz", "interval": "200ms", "timeout": "500ms", "rise": RISE, "fall": FALL}


def served_by(edge, n):
    c = collections.Counter()
    for _ in range(n):
        r = edge.get("/echo")
        c[(r.status_code, r.headers.get("X-Upstream"))] += 1
    return c


def test_active_health_marks_down_and_back(procs, tmp_path):
    a = start_upstream(procs, "a")
    b = start_upstream(procs, "b")
    edge = start_edge(procs, tmp_path, simple_config([a, b], health=HEALTH))
    # both healthy: both serve
    time.sleep(INTERVAL * RISE + 0.2)
    c = served_by(edge, 10)
    assert c[(200, "a")] >= 3 and c[(200, "b")] >= 3, c
    m = edge.metrics()
    assert m.get("tapwork_server_up", backend="web", server=a.addr) == 1
    assert m.get("tapwork_server_up", backend="web", server=b.addr) == 1

    a.down()
    time.sleep(INTERVAL * FALL + SLACK)
    a.count(reset=True)
    c = served_by(edge, 20)
    assert c == {(200, "b"): 20}, c
    assert a.count() == 0
    assert edge.metrics().get("tapwork_server_up", backend="web", server=a.addr) == 0

    a.up()
    time.sleep(INTERVAL * RISE + SLACK)
    c = served_by(edge, 10)
    assert c[(200, "a")] >= 3, c
    assert edge.metrics().get("tapwork_server_up", backend="web", server=a.addr) == 1


def test_all_servers_down_503(procs, tmp_path):
    """With `panic: off` a backend whose servers are all down answers 503
    (the default, panic mode, is in test_panic.py)."""
    a = start_upstream(procs, "a")
    b = start_upstream(procs, "b")
    edge = start_edge(procs, tmp_path, simple_config([a, b], health=HEALTH, panic="off"))
    time.sleep(INTERVAL * RISE + 0.2)
    assert edge.get("/echo").status_code == 200
    a.down()
    b.down()
    time.sleep(INTERVAL * FALL + SLACK)
    r = edge.get("/echo")
    assert r.status_code == 503, r.text
    assert r.text == "503 Service Unavailable\n"
    assert "X-Upstream" not in r.headers
    assert r.headers.get("X-Request-Id")
    edge.wait_log(r"503.*rid=" + r.headers["X-Request-Id"])
    b.up()
    time.sleep(INTERVAL * RISE + SLACK)
    r = edge.get("/echo")
    assert r.status_code == 200 and r.headers["X-Upstream"] == "b"


def test_passive_ejection_of_dead_port(procs, tmp_path):
    live = start_upstream(procs, "live")
    dead = f"127.0.0.1:{dead_port()}"
    cfg = simple_config([dead, live], passive_fails=3, passive_eject="2s", retries=2)
    cfg["workers"] = 1
    edge = start_edge(procs, tmp_path, cfg)
    for _ in range(30):
        r = edge.get("/echo")
        assert r.status_code == 200 and r.headers["X-Upstream"] == "live", r.text
    errs = edge.metrics().get("tapwork_upstream_connect_errors_total", backend="web", server=dead)
    # ejected after 3 consecutive failures: not tried again while ejected
    assert errs == 3, errs
    for _ in range(10):
        assert edge.get("/echo").status_code == 200
    assert edge.metrics().get("tapwork_upstream_connect_errors_total", server=dead) == 3
    # after passive_eject it is given another chance
    time.sleep(2.0 + 0.5)
    for _ in range(10):
        assert edge.get("/echo").status_code == 200
    assert edge.metrics().get("tapwork_upstream_connect_errors_total", server=dead) > 3


def test_retry_when_upstream_killed_mid_run(procs, tmp_path):
    a = start_upstream(procs, "a")
    b = start_upstream(procs, "b")
    edge = start_edge(procs, tmp_path, simple_config([a, b], retries=2))
    s = new_session()
    failures = []
    seen_after = collections.Counter()
    deadline = time.monotonic() + 60
    for i in range(200):
        assert time.monotonic() < deadline, "loop too slow"
        if i == 60:
            a.kill()
        try:
            r = s.get(edge.url("/echo"), timeout=30)
            if r.status_code != 200:
                failures.append((i, r.status_code, r.text[:100]))
            elif i > 60:
                seen_after[r.headers["X-Upstream"]] += 1
        except Exception as e:  # noqa: BLE001 - counted as a failure
            failures.append((i, repr(e)))
    assert failures == [], failures[:5]
    assert seen_after == {"b": 139}, seen_after


def test_reset_before_response_is_retried(procs, tmp_path):
    """/close resets the connection before any response byte: GET is retried
    on the other server... which resets too; the client gets a 502."""
    a = start_upstream(procs, "a")
    b = start_upstream(procs, "b")
    edge = start_edge(procs, tmp_path, simple_config([a, b], retries=1, passive_fails=0))
    r = edge.get("/close")
    assert r.status_code == 502, r.text
    # both servers saw the request: one try, one retry
    assert a.count() == 1 and b.count() == 1, (a.count(), b.count())


def test_post_not_retried_after_body_sent(procs, tmp_path):
    a = start_upstream(procs, "a")
    b = start_upstream(procs, "b")
    edge = start_edge(procs, tmp_path, simple_config([a, b], retries=2, passive_fails=0))
    r = edge.request("POST", "/close", data=b"x" * 1000)
    assert r.status_code == 502, r.text
    assert a.count() + b.count() == 1, (a.count(), b.count())


def test_connect_error_502(procs, tmp_path):
    dead = f"127.0.0.1:{dead_port()}"
    edge = start_edge(procs, tmp_path, simple_config([dead], passive_fails=0, connect_timeout="1s"))
    t0 = time.monotonic()
    r = edge.get("/echo")
    assert r.status_code == 502, r.text
    assert r.text == "502 Bad Gateway\n"
    assert time.monotonic() - t0 < 1 + SLACK
    edge.wait_log(r"502.*rid=" + r.headers["X-Request-Id"])
    assert edge.metrics().get("tapwork_upstream_connect_errors_total", backend="web", server=dead) >= 1


def _concurrent(edge, paths):
    import threading
    out = [None] * len(paths)

    def one(i, p):
        t0 = time.monotonic()
        r = new_session().get(edge.url(p), timeout=30)
        out[i] = (r.status_code, time.monotonic() - t0, r.text)
    ts = [threading.Thread(target=one, args=(i, p)) for i, p in enumerate(paths)]
    for i, t in enumerate(ts):
        t.start()
        time.sleep(0.05)  # keep the arrival order
    for t in ts:
        t.join(30)
    return out


def test_max_conns_queue_waits(procs, tmp_path):
    up = start_upstream(procs, "web")
    cfg = simple_config([{"address": up.addr, "max_conns": 1}], queue_size=4, queue_timeout="5s")
    cfg["workers"] = 1
    edge = start_edge(procs, tmp_path, cfg)
    t0 = time.monotonic()
    out = _concurrent(edge, ["/slow?ms=400", "/slow?ms=400"])
    assert [o[0] for o in out] == [200, 200], out
    # served one after the other
    assert time.monotonic() - t0 >= 0.8, out
    assert out[1][1] >= 0.7, out


def test_max_conns_queue_timeout_and_full(procs, tmp_path):
    up = start_upstream(procs, "web")
    cfg = simple_config([{"address": up.addr, "max_conns": 1}], queue_size=1, queue_timeout="300ms")
    cfg["workers"] = 1
    edge = start_edge(procs, tmp_path, cfg)
    out = _concurrent(edge, ["/slow?ms=1500", "/slow?ms=10", "/slow?ms=10"])
    assert out[0][0] == 200, out
    # the second waits in the queue and times out; the third finds the queue full
    assert out[1][0] == 503 and out[1][2] == "503 Service Unavailable\n", out
    assert 0.25 <= out[1][1] < 0.3 + SLACK, out
    assert out[2][0] == 503 and out[2][1] < 0.25 + SLACK / 2, out

"""Panic mode (issue 17): when every server of a backend is down or ejected,
tapwork balances over all of them instead of answering 503; a passing
active health check ends a passive ejection at once; each ejection and each
panic is logged once."""
import concurrent.futures
import re
import time

from edgeutil import SLACK, dead_port, new_session, simple_config, start_edge, start_upstream, wait_for

HEALTH = {"path": "/healthz", "interval": "200ms", "timeout": "500ms", "rise": 1, "fall": 2}


def count(edge, pattern):
    return len(re.findall(pattern, edge.log(), re.M))


def test_all_down_by_health_still_served(procs, tmp_path):
    a = start_upstream(procs, "a")
    b = start_upstream(procs, "b")
    edge = start_edge(procs, tmp_path, simple_config([a, b], health=HEALTH))
    assert edge.get("/echo").status_code == 200
    a.down()
    b.down()
    wait_for(lambda: edge.metrics().get("tapwork_server_up", backend="web") == 0, 5 * SLACK, what="both down")
    seen = set()
    for _ in range(20):
        r = edge.get("/echo")
        assert r.status_code == 200, r.text
        seen.add(r.headers["X-Upstream"])
    assert seen == {"a", "b"}, seen  # balanced over all of them
    edge.wait_log(r"backend=web: every server is down or ejected; panic mode")
    assert count(edge, r"panic mode: balancing") == 1
    b.up()
    wait_for(lambda: edge.metrics().get("tapwork_server_up", backend="web", server=b.addr) == 1, 5 * SLACK,
             what="b up")
    got = {edge.get("/echo").headers["X-Upstream"] for _ in range(10)}
    assert got == {"b"}, got
    edge.wait_log(r"backend=web: a server is up again; panic mode over")


def test_only_server_ejected_still_served(procs, tmp_path):
    """The issue's case: failures eject the only server; the next requests
    are served (panic) instead of 503 for the whole ejection."""
    a = start_upstream(procs, "a")
    cfg = simple_config([a], passive_fails=2, passive_eject="60s", retries=0)
    cfg["workers"] = 1  # consecutive failures are counted per worker
    edge = start_edge(procs, tmp_path, cfg)
    for _ in range(2):
        assert edge.get("/close").status_code == 502  # reset before any byte: a failure
    edge.wait_log(r"server=127\.0\.0\.1:\d+: ejected for 60000ms")
    assert edge.metrics().get("tapwork_server_up", backend="web") == 0
    for _ in range(10):
        r = edge.get("/echo")
        assert r.status_code == 200 and r.headers["X-Upstream"] == "a", r.text


def test_panic_off_answers_503(procs, tmp_path):
    a = start_upstream(procs, "a")
    edge = start_edge(procs, tmp_path, simple_config([a], passive_fails=1, passive_eject="60s", retries=0,
                                                      panic="off"))
    assert edge.get("/close").status_code == 502
    assert edge.get("/echo").status_code == 503


def test_health_up_ends_ejection_at_once_logged_once(procs, tmp_path):
    port = dead_port()
    live = start_upstream(procs, "live")
    cfg = simple_config([f"127.0.0.1:{port}", live], passive_fails=2, passive_eject="60s", retries=2,
                        health=dict(HEALTH, fall=100))  # health alone does not mark it down (20 s)
    edge = start_edge(procs, tmp_path, cfg)
    dead = f"127.0.0.1:{port}"
    s = new_session()
    with concurrent.futures.ThreadPoolExecutor(8) as ex:  # both workers see the failures at once
        codes = list(ex.map(lambda _: s.get(edge.url("/echo"), timeout=10).status_code, range(40)))
    assert codes == [200] * 40, codes
    edge.wait_log(rf"server={re.escape(dead)}: ejected for 60000ms")
    time.sleep(0.5)
    assert count(edge, rf"server={re.escape(dead)}: ejected for") == 1, edge.log()[-2000:]
    assert edge.metrics().get("tapwork_server_up", backend="web", server=dead) == 0
    # the server comes back; the next passing check ends the 60 s ejection
    back = start_upstream(procs, "back", port=port)
    t0 = time.monotonic()
    wait_for(lambda: edge.metrics().get("tapwork_server_up", backend="web", server=dead) == 1, 3 * SLACK,
             what="ejection ended")
    assert time.monotonic() - t0 < 1.5 * SLACK
    edge.wait_log(rf"server={re.escape(dead)}: ejection ended by a passing health check")
    got = {edge.get("/echo").headers["X-Upstream"] for _ in range(10)}
    assert got == {"live", "back"}, got
    assert back.count() > 0

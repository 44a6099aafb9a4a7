"""SIGHUP reloads: new routes, invalid configs refused, zero failures under load."""
import re
import threading
import time

from edgeutil import backend, new_session, simple_config, start_edge, start_upstream, write_config
from edgeutil import full_config


def two_routes(a, b, which):
    return {"sites": [{"hosts": ["*"], "routes": [{"path": f"/{which}", "backend": which}]}],
            "backends": {"a": backend([a]), "b": backend([b])}}


def test_reload_changes_route(procs, tmp_path):
    a = start_upstream(procs, "a")
    b = start_upstream(procs, "b")
    edge = start_edge(procs, tmp_path, two_routes(a, b, "a"))
    assert edge.get("/a/echo").headers["X-Upstream"] == "a"
    assert edge.get("/b/echo").status_code == 404
    ok0 = edge.metrics().get("tapwork_config_reloads_total", result="ok")
    edge.reload(two_routes(a, b, "b"))
    assert edge.get("/b/echo").headers["X-Upstream"] == "b"
    assert edge.get("/a/echo").status_code == 404
    assert edge.metrics().get("tapwork_config_reloads_total", result="ok") == ok0 + 1


def test_invalid_reload_refused(procs, tmp_path):
    a = start_upstream(procs, "a")
    b = start_upstream(procs, "b")
    edge = start_edge(procs, tmp_path, two_routes(a, b, "a"))
    m0 = edge.metrics()
    # a valid file plus one unknown key on a known line
    good = edge.cfg_path.read_text()
    bad_line = len(good.splitlines()) + 1
    edge.cfg_path.write_text(good + "no_such_key: 1\n")
    line = edge.sighup_and_wait(ok=False)
    m = re.search(r"reload refused: (\S+?):(\d+):(\d+):", line)
    assert m, line
    assert m.group(1) == str(edge.cfg_path), line
    assert int(m.group(2)) == bad_line, line
    assert edge.get("/a/echo").headers["X-Upstream"] == "a"
    m1 = edge.metrics()
    assert m1.get("tapwork_config_reloads_total", result="error") == \
        m0.get("tapwork_config_reloads_total", result="error") + 1
    assert m1.get("tapwork_config_reloads_total", result="ok") == \
        m0.get("tapwork_config_reloads_total", result="ok")

    # a semantic error (unknown backend) is refused too
    broken = two_routes(a, b, "b")
    broken["sites"][0]["routes"][0]["backend"] = "nope"
    broken["log"] = edge.cfg["log"]
    write_config(edge.cfg_path, full_config(broken, edge.port, edge.admin_port))
    line = edge.sighup_and_wait(ok=False)
    assert re.search(r"reload refused: \S+:\d+:\d+:", line), line
    assert edge.get("/a/echo").headers["X-Upstream"] == "a"
    assert edge.get("/b/echo").status_code == 404

    # YAML syntax error
    edge.cfg_path.write_text("sites: [ {hosts: \n")
    edge.sighup_and_wait(ok=False)
    assert edge.get("/a/echo").status_code == 200

    # and a good file afterwards is taken
    edge.reload(two_routes(a, b, "b"))
    assert edge.get("/b/echo").headers["X-Upstream"] == "b"
    assert edge.alive()


def test_reload_under_load_zero_failures(procs, tmp_path):
    a = start_upstream(procs, "a")
    b = start_upstream(procs, "b")
    cfg1 = simple_config([a, b])
    cfg2 = simple_config([a, {"address": b.addr, "weight": 3}], balance="least_conn")
    edge = start_edge(procs, tmp_path, cfg1)
    stop = threading.Event()
    failures = []
    done = [0] * 4
    deadline = time.monotonic() + 10

    def worker(i):
        s = new_session()
        for n in range(300):
            if stop.is_set() or time.monotonic() > deadline:
                break
            try:
                if i % 2:  # new connection per request
                    r = new_session().get(edge.url(f"/echo?t={i}&n={n}"), timeout=30)
                else:     # keep-alive connection
                    r = s.get(edge.url(f"/echo?t={i}&n={n}"), timeout=30)
                if r.status_code != 200 or r.json()["query"] != f"t={i}&n={n}":
                    failures.append((i, n, r.status_code, r.text[:100]))
            except Exception as e:  # noqa: BLE001 - counted as a failure
                failures.append((i, n, repr(e)))
            done[i] += 1

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    try:
        for k in range(6):
            time.sleep(0.3)
            edge.reload(cfg2 if k % 2 == 0 else cfg1)
    except BaseException:
        stop.set()
        raise
    finally:
        for t in ts:
            t.join(60)
    assert failures == [], failures[:5]
    assert sum(done) >= 200, done
    assert edge.log().count("config reloaded") == 6


def test_in_flight_request_finishes_on_old_config(procs, tmp_path):
    a = start_upstream(procs, "a")
    b = start_upstream(procs, "b")
    edge = start_edge(procs, tmp_path, two_routes(a, b, "a"))
    result = {}

    def slow():
        r = new_session().get(edge.url("/a/slow?ms=1000"), timeout=30)
        result["r"] = (r.status_code, r.headers.get("X-Upstream"), r.text)
    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)
    edge.reload(two_routes(a, b, "b"))
    assert edge.get("/a/echo").status_code == 404  # new requests see the new config
    t.join(30)
    assert result.get("r") == (200, "a", "slow\n"), result

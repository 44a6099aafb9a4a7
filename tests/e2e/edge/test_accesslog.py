"""Access log lines (combined and json) name the request id, status, site,
backend and upstream."""
import json
import re


from edgeutil import backend, start_edge, start_upstream, wait_for


def make(procs, tmp_path, fmt):
    up = start_upstream(procs, "web")
    cfg = {"sites": [{"hosts": ["app.test", "*.app.test"], "routes": [{"path": "/echo", "backend": "web"}]}],
           "backends": {"web": backend([up])},
           "log": {"access": str(tmp_path / "access.log"), "format": fmt, "level": "info"}}
    e = start_edge(procs, tmp_path, cfg)
    e.up = up
    e.access = tmp_path / "access.log"
    return e


def line_with(edge, rid):
    def find():
        if not edge.access.exists():
            return None
        for ln in edge.access.read_text().splitlines():
            if rid in ln:
                return ln
        return None
    return wait_for(find, 5, what=f"access log line for {rid}")


HDRS = {"User-Agent": "ua-test/1.0", "Referer": "http://ref.test/page"}


def test_combined(procs, tmp_path):
    edge = make(procs, tmp_path, "combined")
    r = edge.get("/echo?x=1", host="app.test", headers=HDRS)
    assert r.status_code == 200
    rid = r.headers["X-Request-Id"]
    ln = line_with(edge, rid)
    rx = (r'^127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] '
          r'"GET /echo\?x=1 HTTP/1\.1" 200 (\d+) "http://ref\.test/page" "ua-test/1\.0" '
          rf'rid={rid} site=app\.test backend=web upstream={re.escape(edge.up.addr)} dur_ms=\d+$')
    m = re.match(rx, ln)
    assert m, ln
    assert int(m.group(1)) == len(r.content)

    # wildcard host: site is the site's first host; no route: backend/upstream "-"
    r = edge.get("/nope", host="x.app.test")
    assert r.status_code == 404
    ln = line_with(edge, r.headers["X-Request-Id"])
    assert re.search(r'"GET /nope HTTP/1\.1" 404 \d+ .* site=app\.test backend=- upstream=- dur_ms=\d+$', ln), ln
    # no site at all
    r = edge.get("/echo", host="elsewhere.test")
    assert r.status_code == 404
    ln = line_with(edge, r.headers["X-Request-Id"])
    assert re.search(r" 404 \d+ .* site=- backend=- upstream=- dur_ms=\d+$", ln), ln


def test_json(procs, tmp_path):
    edge = make(procs, tmp_path, "json")
    r = edge.get("/echo?y=2", host="app.test", headers=HDRS)
    rid = r.headers["X-Request-Id"]
    d = json.loads(line_with(edge, rid))
    want = {"time", "client", "method", "uri", "proto", "status", "bytes", "request_id",
            "site", "backend", "upstream", "duration_ms"}
    assert want <= set(d), d
    assert d["request_id"] == rid
    assert d["client"] == "127.0.0.1"
    assert (d["method"], d["uri"], d["proto"]) == ("GET", "/echo?y=2", "HTTP/1.1")
    assert d["status"] == 200
    assert d["bytes"] == len(r.content)
    assert (d["site"], d["backend"], d["upstream"]) == ("app.test", "web", edge.up.addr)
    assert isinstance(d["duration_ms"], (int, float)) and d["duration_ms"] >= 0
    # every line is one JSON object
    r = edge.get("/nope", host="app.test")
    d = json.loads(line_with(edge, r.headers["X-Request-Id"]))
    assert d["status"] == 404 and d["backend"] in ("-", None)
    for ln in edge.access.read_text().splitlines():
        json.loads(ln)

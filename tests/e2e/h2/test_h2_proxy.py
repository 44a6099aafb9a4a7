"""HTTP/2 to clients over cleartext (h2c prior knowledge): curl, nghttp and
h2load against tapwork in front of the HTTP/1.1 test upstream."""
import hashlib
import json
import re
import subprocess

import pytest

from h2util import ASAN, curl, simple_config, start_edge, start_upstream
from edgeutil import backend, wait_for
from upstream import pattern_sha256

MIB = 1024 * 1024


@pytest.fixture
def edge(procs, tmp_path):
    up = start_upstream(procs, "web")
    e = start_edge(procs, tmp_path, simple_config([up], hosts=["app.test"]))
    e.upstream = up
    return e


def test_get_and_post_over_h2(edge, tmp_path):
    r = curl(edge, "/echo", "-w", "\n%{http_version} %{http_code}")
    assert r.returncode == 0, r.stderr
    body, _, tail = r.stdout.rpartition(b"\n")
    assert tail == b"2 200"
    j = json.loads(body)
    assert j["method"] == "GET" and j["version"] == "HTTP/1.1" and j["upstream"] == "web"
    names = [k.lower() for k, _ in j["headers"]]
    assert names.count("host") == 1 and ["host", "app.test"] in [[k.lower(), v] for k, v in j["headers"]]
    assert "x-forwarded-proto" in names
    data = bytes(range(256)) * 4096  # 1 MiB
    f = tmp_path / "post.bin"
    f.write_bytes(data)
    r = curl(edge, "/echo", "--data-binary", f"@{f}")
    j = json.loads(r.stdout)
    assert j["method"] == "POST" and j["body_len"] == len(data)
    assert j["body_sha256"] == hashlib.sha256(data).hexdigest()
    # without content-length: chunk-encoded toward the upstream
    r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-H", "Host: app.test", "-T", "-",
                        f"http://127.0.0.1:{edge.port}/echo"], input=data, capture_output=True, timeout=60)
    j = json.loads(r.stdout)
    assert j["method"] == "PUT" and j["body_len"] == len(data)
    assert j["body_sha256"] == hashlib.sha256(data).hexdigest()
    assert any(k.lower() == "transfer-encoding" for k, _ in j["headers"])


def test_many_streams_on_few_connections(edge):
    r = subprocess.run(["h2load", "-n", "200", "-c", "2", "-m", "10", "-H", ":authority: app.test",
                        f"http://127.0.0.1:{edge.port}/echo"], capture_output=True, text=True, timeout=60)
    assert "200 succeeded, 0 failed, 0 errored" in r.stdout, r.stdout
    assert re.search(r"status codes: 200 2xx", r.stdout), r.stdout
    r = subprocess.run(["nghttp", "-n", "-s", "-m", "20", "-H", ":authority: app.test",
                        f"http://127.0.0.1:{edge.port}/echo"], capture_output=True, text=True, timeout=60)
    rows = [ln for ln in r.stdout.splitlines() if ln.strip().endswith("/echo")]
    assert len(rows) == 20, r.stdout
    assert all(" 200 " in ln for ln in rows), r.stdout


def test_20mib_download_and_upload(edge, tmp_path):
    n = 20 * MIB
    r = curl(edge, f"/big?bytes={n}")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == n and hashlib.sha256(r.stdout).hexdigest() == pattern_sha256(n)
    data = (b"tapwork-h2-upload-" * 70000)[:n // 1] * 1
    data = (data * ((n // len(data)) + 1))[:n]
    f = tmp_path / "up.bin"
    f.write_bytes(data)
    r = curl(edge, "/echo", "--data-binary", f"@{f}")
    j = json.loads(r.stdout)
    assert j["body_len"] == n and j["body_sha256"] == hashlib.sha256(data).hexdigest()


def test_head_204_304_and_tapwork_404(edge):
    r = curl(edge, "/big?bytes=1000", "-I")
    head = r.stdout.decode()
    assert head.startswith("HTTP/2 200") and "content-length: 1000" in head.lower()
    for code in (204, 304):
        r = curl(edge, f"/status/{code}", "-o", "/dev/null", "-w", "%{http_code} %{size_download}")
        assert r.stdout == f"{code} 0".encode(), r
    r = curl(edge, "/anything", "-w", "\n%{http_code}", host="unknown.test")
    assert r.stdout.endswith(b"\n404") and b"404 Not Found" in r.stdout
    assert "connection: close" not in curl(edge, "/x", "-I", host="unknown.test").stdout.decode().lower()


def test_routing_by_authority(procs, tmp_path):
    a = start_upstream(procs, "a")
    b = start_upstream(procs, "b")
    cfg = {"sites": [{"hosts": ["a.test"], "routes": [{"path": "/", "backend": "A"}]},
                     {"hosts": ["b.test"], "routes": [{"path": "/", "backend": "B"}]}],
           "backends": {"A": backend([a]), "B": backend([b])}}
    e = start_edge(procs, tmp_path, cfg)
    for host, name in (("a.test", "a"), ("b.test", "b"), ("a.test", "a")):
        r = subprocess.run(["nghttp", "-H", f":authority: {host}", f"http://127.0.0.1:{e.port}/echo"],
                           capture_output=True, timeout=30)
        assert r.stdout, (r.returncode, r.stderr)
        assert json.loads(r.stdout)["upstream"] == name


def test_access_log_and_metrics_count_h2(edge):
    before = edge.metrics().get("tapwork_requests_total", code="2xx")
    r = subprocess.run(["h2load", "-n", "30", "-c", "1", "-m", "5", "-H", ":authority: app.test",
                        f"http://127.0.0.1:{edge.port}/echo"], capture_output=True, text=True, timeout=60)
    assert "30 succeeded" in r.stdout
    wait_for(lambda: edge.metrics().get("tapwork_requests_total", code="2xx") - before >= 30, 10, what="metrics")
    assert edge.metrics().get("tapwork_requests_total", code="2xx") - before == 30

    def lines():
        return [ln for ln in edge.access_path.read_text().splitlines() if '"GET /echo HTTP/2.0" 200' in ln]
    wait_for(lambda: len(lines()) >= 30, 10, what="access log lines")
    assert len(lines()) == 30


def test_h2c_can_be_turned_off(procs, tmp_path):
    up = start_upstream(procs, "web")
    cfg = simple_config([up], hosts=["app.test"])
    cfg["http2"] = {"h2c": False}
    e = start_edge(procs, tmp_path, cfg)
    r = curl(e, "/echo")
    assert r.returncode != 0
    # HTTP/1.1 still served
    assert e.get("/echo", host="app.test").status_code == 200


def test_response_framings_and_upstream_errors(edge):
    # close-delimited upstream body: ends the stream (END_STREAM) with every byte
    r = curl(edge, "/eof?bytes=100000", "-w", "\n%{http_code}", timeout=10)
    assert r.returncode == 0, r.stderr
    body, _, code = r.stdout.rpartition(b"\n")
    assert code == b"200" and hashlib.sha256(body).hexdigest() == pattern_sha256(100000)
    # chunked upstream body: decoded into DATA frames
    r = curl(edge, "/chunked?n=50&size=3000")
    assert r.returncode == 0 and len(r.stdout) == 150000
    # upstream resets before answering: tapwork's 502 on the stream
    r = curl(edge, "/close", "-o", "/dev/null", "-w", "%{http_code}")
    assert r.stdout == b"502"
    # Expect: 100-continue: the interim answer is not forwarded, the final one is
    r = curl(edge, "/expect", "-H", "Expect: 100-continue", "--data-binary", "hello")
    j = json.loads(r.stdout)
    assert j["body_len"] == 5


def test_response_fields_reach_a_strict_client(edge):
    """The proxied response head goes to HEADERS field by field: nghttp (which
    rejects any malformed field) sees Via and X-Request-Id, the upstream's
    end-to-end fields, and none of the hop-by-hop ones or those named in Connection."""
    r = subprocess.run(["nghttp", "-v", "-H", ":authority: app.test", f"http://127.0.0.1:{edge.port}/hop"],
                       capture_output=True, timeout=30)
    out = r.stdout.decode()
    assert r.returncode == 0 and "[ERROR]" not in out and "hop\n" in out, out
    fields = {}
    for m in re.finditer(r"recv \(stream_id=\d+(?:, sensitive)?\) ([^:\s][^:]*|:status): (.*)", out):
        fields.setdefault(m.group(1), []).append(m.group(2))
    assert fields[":status"] == ["200"]
    assert fields["via"] == ["1.1 tapwork"]
    assert re.fullmatch(r"[0-9a-f]{32}", fields["x-request-id"][0])
    assert fields["x-end-to-end"] == ["kept"]
    for hop in ("connection", "x-up-secret", "keep-alive", "proxy-connection", "trailer", "upgrade",
                "transfer-encoding"):
        assert hop not in fields, (hop, out)
    # X-Request-Id is new in every response: sent never-indexed (HPACK)
    assert re.search(r"recv \(stream_id=\d+, sensitive\) x-request-id: [0-9a-f]{32}", out), out


def test_response_fields_made_by_the_proxy_and_large_heads(edge):
    """Fields whose values tapwork makes (a joined Via of the upstream's 40
    Via lines, ~1 KB) and a 12 KB upstream field both reach a strict client
    intact, names lowercased, on several streams of one connection."""
    vias = "&".join(f"via=1.1+hop{i:02d}.example.test" for i in range(40))
    urls = [f"http://127.0.0.1:{edge.port}/bighead?bytes={n}&{vias}" for n in (10, 12000, 3000)]
    r = subprocess.run(["nghttp", "-v", "-H", ":authority: app.test", *urls], capture_output=True, timeout=30)
    out = r.stdout.decode()
    assert r.returncode == 0 and "[ERROR]" not in out, out[-2000:]
    per = {}
    for m in re.finditer(r"recv \(stream_id=(\d+)(?:, sensitive)?\) ([^:\s][^:]*|:status): (.*)", out):
        per.setdefault(m.group(1), {}).setdefault(m.group(2), []).append(m.group(3))
    assert len(per) == 3, out[-2000:]
    want_via = ", ".join(f"1.1 hop{i:02d}.example.test" for i in range(40)) + ", 1.1 tapwork"
    pads = sorted(len(f["x-pad"][0]) for f in per.values())
    assert pads == [10, 3000, 12000], pads
    for f in per.values():
        assert f[":status"] == ["200"]
        assert all(k == k.lower() for k in f), list(f)
        assert f["via"] == [want_via], f["via"]

"""Error-log flood (issue 17): per-event log lines are rate-limited per kind
(10 a second), the rest summarised as "... and N more like this in the last
second (KIND)" and counted in tapwork_log_lines_suppressed_total."""
import re
import subprocess
import time

from edgeutil import dead_port, simple_config, start_edge, wait_for

SUMMARY = re.compile(r"^\S+ warn \.\.\. and (\d+) more like this in the last second \(status=503\)$", re.M)


def test_503_storm_log_bounded(procs, tmp_path):
    cfg = simple_config([f"127.0.0.1:{dead_port()}"], panic="off",
                        health={"path": "/healthz", "interval": "100ms", "fall": 1, "rise": 1})
    edge = start_edge(procs, tmp_path, cfg)
    wait_for(lambda: edge.metrics().get("tapwork_server_up", backend="web") == 0, 5, what="server down")
    assert edge.get("/x").status_code == 503
    t0 = time.monotonic()
    out = subprocess.run(["h2load", "--h1", "-n", "20000", "-c", "16", "-t", "1", edge.url("/storm")],
                         capture_output=True, text=True, timeout=120)
    secs = time.monotonic() - t0
    assert out.returncode == 0, out.stderr
    m = re.search(r"status codes: \d+ 2xx, \d+ 3xx, \d+ 4xx, (\d+) 5xx", out.stdout)
    assert m and int(m.group(1)) == 20000, out.stdout
    time.sleep(2.2)  # the last second's summary comes from the once-a-second flush
    log = edge.log()
    written = len(re.findall(r"status=503 \(Service Unavailable\)", log))
    summarised = sum(int(n) for n in SUMMARY.findall(log))
    assert written + summarised == 20001, (written, summarised)
    # at most 10 lines of the kind per second (plus the one before the storm)
    assert written <= 10 * (int(secs) + 3), (written, secs)
    assert len(log) < 200 * 1024, len(log)
    assert edge.metrics().get("tapwork_log_lines_suppressed_total") == summarised

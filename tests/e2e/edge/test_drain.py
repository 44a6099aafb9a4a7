"""SIGTERM drains: in-flight requests finish, idle keep-alives are closed,
new connections are refused, /readyz says draining, exit code 0."""
import signal
import socket
import threading
import time

from edgeutil import SLACK, new_session, simple_config, start_edge, start_upstream, wait_for


def not_served(port):
    """True when a new connection is refused, or accepted by the kernel but
    closed without an answer."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=1)
    except ConnectionRefusedError:
        return True
    try:
        s.settimeout(1.5)
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        data = s.recv(100)
        return data == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    finally:
        s.close()


def test_sigterm_drains(procs, tmp_path):
    up = start_upstream(procs, "web")
    edge = start_edge(procs, tmp_path, simple_config([up]))
    assert edge.admin("/readyz").status_code == 200

    idle = edge.raw()
    idle.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert idle.read_final().status == 200

    result = {}

    def slow():
        try:
            r = new_session().get(edge.url("/slow?ms=1500"), timeout=30)
            result["status"], result["body"] = r.status_code, r.text
        except Exception as e:  # noqa: BLE001 - asserted below
            result["error"] = repr(e)
    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.4)  # the slow request is in flight
    t_sig = time.monotonic()
    edge.signal(signal.SIGTERM)

    def draining():
        r = edge.admin("/readyz")
        return r.status_code == 503 and r.text.strip() == "draining"
    wait_for(draining, 1.0, what="/readyz 503 draining")
    # idle keep-alive connections are closed
    assert idle.closed_within(1.0 + SLACK)
    idle.close()
    # new connections are not served
    wait_for(lambda: not_served(edge.port), 2.0, what="new connections refused")

    t.join(30)
    assert result.get("status") == 200, result
    assert result["body"] == "slow\n"
    assert edge.proc.wait(10) == 0
    # it did not wait the whole drain timeout (5 s) once the request was done
    assert time.monotonic() - t_sig < 1.5 + SLACK + 1.0


def test_sigint_exits_zero_when_idle(procs, tmp_path):
    up = start_upstream(procs, "web")
    edge = start_edge(procs, tmp_path, simple_config([up]))
    assert edge.get("/echo").status_code == 200  # leaves an idle keep-alive open
    edge.signal(signal.SIGINT)
    assert edge.proc.wait(2 + SLACK) == 0

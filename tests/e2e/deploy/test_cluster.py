"""`tapwork cluster check` on recorded `kubectl get nodes -o json` fixtures."""
import json
import os
import stat

import pytest

from conftest import run

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def check(nodes, sc="storageclasses-default.json", extra=()):
    args = ["cluster", "check", "--nodes-json", os.path.join(FIX, nodes)]
    if sc:
        args += ["--storageclasses-json", os.path.join(FIX, sc)]
    return run(args + list(extra))


def test_help():
    r = run(["cluster", "check", "--help"])
    assert r.returncode == 0 and r.stdout.startswith("usage: tapwork cluster")
    assert run(["cluster", "--help"]).returncode == 0


def test_good_cluster_passes_and_ignores_tainted_control_plane():
    r = check("nodes-good.json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK    nodes: 3 Ready" in r.stdout
    assert "WARN  node cp-1 does not count: not schedulable" in r.stdout
    assert "OK    zones: nodes spread over 3 zones" in r.stdout
    assert "OK    storage: default StorageClass gp3" in r.stdout
    # capacity and allocatable are both shown
    assert "8 (7.91)" in r.stdout and "32.00 (31.00)" in r.stdout


@pytest.mark.parametrize("fixture,why", [
    ("nodes-two.json", "FAIL  nodes: 2 Ready"),
    ("nodes-small-cpu.json", "WARN  node worker-c is too small: 2 CPU"),
    ("nodes-low-memory.json", "WARN  node worker-c is too small: 4 CPU, 15.00 GiB"),
    ("nodes-not-ready.json", "WARN  node worker-c does not count: not Ready"),
    ("nodes-cordoned.json", "WARN  node worker-c does not count: not schedulable"),
])
def test_bad_clusters_fail(fixture, why):
    r = check(fixture)
    assert r.returncode == 1, r.stdout
    assert why in r.stdout
    assert "FAIL  nodes:" in r.stdout
    assert r.stdout.rstrip().endswith("cluster check: FAILED")


def test_16gb_machine_reporting_a_little_less_is_accepted():
    # 16393216Ki (15.63 GiB) passes; 15728640Ki (15 GiB) is below the 5% tolerance.
    good = json.load(open(os.path.join(FIX, "nodes-good.json")))
    mems = {n["metadata"]["name"]: n["status"]["capacity"]["memory"] for n in good["items"]}
    assert mems["worker-a"] == "16393216Ki"
    assert check("nodes-good.json").returncode == 0
    assert check("nodes-low-memory.json").returncode == 1


def test_memory_in_other_units():
    r = check("nodes-no-zones.json")  # 16Gi, 16777216Ki, plain bytes
    assert r.returncode == 0, r.stdout
    assert r.stdout.count("16.00 (") == 3
    assert "SKIP  zones:" in r.stdout


def test_one_zone_warns_but_passes():
    r = check("nodes-one-zone.json")
    assert r.returncode == 0
    assert "WARN  zones: every labelled node is in zone z1" in r.stdout


def test_no_default_storageclass_fails():
    r = check("nodes-good.json", sc="storageclasses-none.json")
    assert r.returncode == 1
    assert "FAIL  storage: no default StorageClass" in r.stdout


def test_storage_skipped_without_file():
    r = check("nodes-good.json", sc=None)
    assert r.returncode == 0
    assert "SKIP  storage:" in r.stdout


def test_from_file_alias_and_single_node_object(tmp_path):
    one = json.load(open(os.path.join(FIX, "nodes-good.json")))["items"][1]
    p = tmp_path / "node.json"
    p.write_text(json.dumps(one))
    r = run(["cluster", "check", "--from-file", str(p)])
    assert r.returncode == 1
    assert "1 node from" in r.stdout and "worker-a" in r.stdout


def test_bad_input(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"items": [')
    r = run(["cluster", "check", "--nodes-json", str(p)])
    assert r.returncode == 2 and "bad.json:" in r.stderr
    p.write_text('{"kind": "Pod"}')
    r = run(["cluster", "check", "--nodes-json", str(p)])
    assert r.returncode == 2 and "neither a List" in r.stderr
    r = run(["cluster", "check", "--nodes-json", str(tmp_path / "nope.json")])
    assert r.returncode == 2 and "cannot open" in r.stderr
    assert run(["cluster", "check", "--bogus"]).returncode == 2
    assert run(["cluster", "frobnicate"]).returncode == 2


def test_runs_kubectl_with_kubeconfig(tmp_path):
    """Without --nodes-json it asks kubectl (here a stand-in that serves fixtures)."""
    fake = tmp_path / "kubectl"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {tmp_path}/args\n'
        'case "$*" in\n'
        f'  *" get nodes "*) cat {FIX}/nodes-good.json ;;\n'
        f'  *" get storageclasses "*) cat {FIX}/storageclasses-default.json ;;\n'
        "  *) exit 3 ;;\nesac\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ, PATH=f"{tmp_path}:/usr/bin:/bin")
    r = run(["cluster", "check", "--kubeconfig", "/k/config", "--context", "prod"], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "from kubectl get nodes" in r.stdout
    args = (tmp_path / "args").read_text().splitlines()
    assert args[0] == "--kubeconfig /k/config --context prod get nodes -o json --request-timeout=30s"
    assert "get storageclasses -o json" in args[1]
    env["PATH"] = str(tmp_path / "empty")
    r = run(["cluster", "check"], env=env)
    assert r.returncode == 2 and "kubectl not found" in r.stderr

"""`tapwork validate` and `tapwork config-docs` on real files."""
import os
import re
import subprocess

from conftest import BIN, ROOT, run

EXAMPLE = os.path.join(ROOT, "docs", "examples", "tapwork.yaml")


def test_example_is_valid():
    r = run(["validate", "-c", EXAMPLE])
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{EXAMPLE}: ok\n"
    assert r.stderr == ""


def test_broken_yaml_reports_position(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("listen:\n  http: 127.0.0.1:8080\nsites: [\n  {hosts: ['*']\n")
    r = run(["validate", "-c", str(p)])
    assert r.returncode == 1
    assert r.stdout == ""
    assert re.match(rf"^{re.escape(str(p))}:\d+:\d+: YAML syntax error: ", r.stderr), r.stderr


def test_unknown_key_suggests(tmp_path):
    text = open(EXAMPLE).read().replace("    balance: round_robin", "    balanse: round_robin")
    assert "balanse" in text
    p = tmp_path / "typo.yaml"
    p.write_text(text)
    r = run(["validate", "-c", str(p)])
    assert r.returncode == 1
    line = text.splitlines().index("    balanse: round_robin   # round_robin | least_conn | random_two | hash") + 1
    assert r.stderr == (f"{p}:{line}:5: backends.web.balanse: unknown key (did you mean balance?)\n")


def test_out_of_range_names_key_path(tmp_path):
    text = open(EXAMPLE).read().replace("weight: 2}", "weight: 999}")
    p = tmp_path / "weight.yaml"
    p.write_text(text)
    r = run(["validate", "-c", str(p)])
    assert r.returncode == 1
    assert re.match(rf"^{re.escape(str(p))}:16:\d+: backends\.web\.servers\[1\]\.weight: 999 is out of range",
                    r.stderr), r.stderr


def test_missing_file():
    r = run(["validate", "-c", "/nonexistent/tapwork.yaml"])
    assert r.returncode == 1
    assert "/nonexistent/tapwork.yaml: cannot open" in r.stderr


def test_stdin_and_print_default():
    d = run(["validate", "--print-default"])
    assert d.returncode == 0
    assert "handler: welcome" in d.stdout
    r = subprocess.run([BIN, "validate", "-c", "-"], input=d.stdout, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "<stdin>: ok\n"
    bad = subprocess.run([BIN, "validate", "-c", "-"], input="workers: 0\n", capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 1
    assert bad.stderr.startswith("<stdin>:1:10: workers: ")


def test_help_and_usage_errors():
    for cmd in ("validate", "config-docs"):
        h = run([cmd, "--help"])
        assert h.returncode == 0
        assert h.stdout.startswith(f"usage: tapwork {cmd}")
    u = run(["validate"])
    assert u.returncode == 2
    assert "usage: tapwork validate" in u.stderr


def test_config_docs_matches_committed():
    r = run(["config-docs"])
    assert r.returncode == 0
    with open(os.path.join(ROOT, "docs", "config.md")) as f:
        assert r.stdout == f.read()
    # Every key of the example appears in the reference.
    for key in ("hash_key", "max_conns", "passive_eject", "trusted_proxies", "request_id_trust"):
        assert f"`{key}`" in r.stdout

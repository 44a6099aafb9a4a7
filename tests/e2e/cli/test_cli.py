"""The command line: every command answers --help; unknown ones fail."""
import re

from conftest import run


def test_usage_lists_commands():
    r = run(["--help"])
    assert r.returncode == 0
    assert "version" in r.stdout
    names = re.findall(r"^  (\S+)\s", r.stdout, re.M)
    assert names, r.stdout
    for name in names:
        h = run([name, "--help"])
        assert h.returncode == 0, (name, h.stderr)
        assert "usage: tapwork" in h.stdout, (name, h.stdout)


def test_version():
    r = run(["version"])
    assert r.returncode == 0
    assert r.stdout.startswith("tapwork ")
    assert "openssl" in r.stdout


def test_unknown_command_fails():
    r = run(["no-such-command"])
    assert r.returncode == 2
    assert "unknown command" in r.stderr

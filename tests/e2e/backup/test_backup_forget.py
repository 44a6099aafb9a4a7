"""forget: each keep rule against a synthetic set of snapshot times."""
import json

from bkhelp import tw

# (time, tag): newest last; times in UTC
TIMES = [
    ("2025-12-31T23:00:00Z", None),
    ("2026-01-01T10:00:00Z", None),
    ("2026-01-01T10:30:00Z", "keep-me"),
    ("2026-01-01T11:00:00Z", None),
    ("2026-01-02T09:00:00Z", None),
    ("2026-01-05T09:00:00Z", None),   # Monday, ISO week 2
    ("2026-01-06T09:00:00Z", None),
    ("2026-02-01T09:00:00Z", None),   # Sunday, ISO week 5
    ("2026-02-15T09:00:00Z", None),
]


def setup_repo(tmp_path):
    src = tmp_path / "s"
    src.mkdir()
    (src / "f").write_bytes(b"x")
    repo = tmp_path / "repo"
    tw(repo, "repo", "init", check=0)
    ids = {}
    for t, tag in TIMES:
        args = ["backup", "-q", "--time", t]
        if tag:
            args += ["--tag", tag]
        tw(repo, *(args + [str(src)]), check=0)
    for s in json.loads(tw(repo, "snapshots", "--json", check=0).out):
        ids[s["time"][:19] + "Z"] = s["id"]
    assert len(ids) == len(TIMES)
    return repo, ids


def kept(repo, *rules):
    r = tw(repo, "forget", "--dry-run", "--json", *rules, check=0)
    return sorted(x["time"][:19] + "Z" for x in json.loads(r.out) if x["keep"])


def test_each_keep_rule(tmp_path):
    repo, ids = setup_repo(tmp_path)
    assert kept(repo, "--keep-last", "2") == ["2026-02-01T09:00:00Z", "2026-02-15T09:00:00Z"]
    # newest of each of the last 3 hours that have snapshots
    assert kept(repo, "--keep-hourly", "3") == sorted([
        "2026-02-01T09:00:00Z", "2026-01-06T09:00:00Z", "2026-02-15T09:00:00Z"])
    # hourly over one busy hour: 10:30 is the newest of the 10:00 hour
    assert "2026-01-01T10:30:00Z" in kept(repo, "--keep-hourly", "7")
    assert "2026-01-01T10:00:00Z" not in kept(repo, "--keep-hourly", "-1")
    assert kept(repo, "--keep-daily", "4") == sorted([
        "2026-02-15T09:00:00Z", "2026-02-01T09:00:00Z", "2026-01-06T09:00:00Z",
        "2026-01-05T09:00:00Z"])
    # ISO weeks: 2026-W07, W05, W02, W01 (Jan 1-2, newest Jan 2)
    assert kept(repo, "--keep-weekly", "4") == sorted([
        "2026-02-15T09:00:00Z", "2026-02-01T09:00:00Z", "2026-01-06T09:00:00Z",
        "2026-01-02T09:00:00Z"])
    assert kept(repo, "--keep-monthly", "2") == sorted([
        "2026-02-15T09:00:00Z", "2026-01-06T09:00:00Z"])
    assert kept(repo, "--keep-yearly", "5") == sorted([
        "2026-02-15T09:00:00Z", "2025-12-31T23:00:00Z"])
    assert kept(repo, "--keep-tag", "keep-me") == ["2026-01-01T10:30:00Z"]
    # rules combine: a snapshot is kept if any rule keeps it
    assert kept(repo, "--keep-last", "1", "--keep-tag", "keep-me") == [
        "2026-01-01T10:30:00Z", "2026-02-15T09:00:00Z"]
    # unlimited
    assert len(kept(repo, "--keep-daily", "-1")) == 7
    # no rule: refused
    r = tw(repo, "forget")
    assert r.returncode == 2
    # really remove, then the rest is what the rule kept
    tw(repo, "forget", "--keep-monthly", "2", check=0)
    left = sorted(s["time"][:19] + "Z" for s in json.loads(tw(repo, "snapshots", "--json", check=0).out))
    assert left == ["2026-01-06T09:00:00Z", "2026-02-15T09:00:00Z"]

"""Restore damage reports (issue 17): with a truncated pack every damaged
range is named as file + offset + length, a closing list names every damaged
file, damaged files are renamed NAME.damaged (unless --keep-damaged-names),
no wrong byte is ever written, and JSON carries the same."""
import glob
import os

from bkhelp import json_lines, make_writable, tw


def packs(repo):
    return sorted(glob.glob(os.path.join(str(repo), "data", "*", "*")))


def make_damaged_repo(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    files = {}
    for i in range(8):
        data = os.urandom(200000 + i * 7000)
        (src / ("f%d.bin" % i)).write_bytes(data)
        files["f%d.bin" % i] = data
    repo = tmp_path / "repo"
    tw(repo, "repo", "init", check=0)
    tw(repo, "backup", "-q", str(src), check=0)
    big = max(packs(repo), key=os.path.getsize)
    os.truncate(big, os.path.getsize(big) * 2 // 5)
    return repo, files


def check_tree(out, files, damaged_ranges, suffix):
    """Every file is either whole under its name or NAME+suffix with zeros
    exactly... at least in its reported ranges and correct bytes elsewhere."""
    damaged = set()
    for name, data in files.items():
        ok = out / name
        if name in damaged_ranges:
            damaged.add(name)
            p = out / (name + suffix)
            assert p.exists(), (name, os.listdir(out))
            if suffix:
                assert not ok.exists(), name
            got = p.read_bytes()
            assert len(got) == len(data)
            mask = bytearray(len(data))
            for off, ln in damaged_ranges[name]:
                assert off + ln <= len(data)
                assert got[off:off + ln] == bytes(ln), (name, off, ln)  # zeros, never wrong bytes
                mask[off:off + ln] = b"\1" * ln
            for i in range(0, len(data), 4096):  # the rest is the file's own bytes
                j = min(len(data), i + 4096)
                if not any(mask[i:j]):
                    assert got[i:j] == data[i:j], (name, i)
        else:
            assert ok.read_bytes() == data, name
    return damaged


def test_truncated_pack_every_range_reported(tmp_path):
    repo, files = make_damaged_repo(tmp_path)
    out = tmp_path / "out"
    r = tw(repo, "restore", "latest", "--target", str(out), "--json", check=1)
    j = json_lines(r.out)
    ranges = {}
    for x in j:
        if x["type"] == "damaged_range":
            assert x["path"].startswith("src/"), x
            ranges.setdefault(x["path"][4:], []).append((x["offset"], x["length"]))
    assert ranges, r.err[-2000:]
    assert len(ranges) < len(files)  # the part of the pack that is left restored
    damaged = check_tree(out / "src", files, ranges, ".damaged")
    listed = sorted(x["path"] for x in j if x["type"] == "damaged_file")
    assert listed == sorted("src/%s.damaged" % n for n in damaged), listed
    summ = j[-1]
    assert summ["type"] == "summary" and summ["damaged_files"] == len(damaged)
    assert summ["errors"] == sum(len(v) for v in ranges.values())
    # the stderr report names the file for every range (no bare "pack ...: offset past end")
    for name, rs in ranges.items():
        for off, ln in rs:
            assert f"file src/{name} is damaged at offset {off}, {ln} bytes" in r.err, (name, off, r.err[-2000:])
    make_writable(out)


def test_text_report_and_keep_damaged_names(tmp_path):
    repo, files = make_damaged_repo(tmp_path)
    out = tmp_path / "out"
    r = tw(repo, "restore", "latest", "--target", str(out), "--keep-damaged-names", check=1)
    names = [ln.strip() for ln in r.out.split("damaged files (their damaged ranges are zeros):\n", 1)[1].splitlines()]
    assert names and all(n.startswith("src/f") and not n.endswith(".damaged") for n in names), r.out
    ranges = {}
    for ln in r.err.splitlines():
        if " is damaged at offset " in ln:
            path = ln.split("file ", 1)[1].split(" is damaged", 1)[0]
            off = int(ln.split("at offset ", 1)[1].split(",", 1)[0])
            n = int(ln.split(", ", 1)[1].split(" bytes", 1)[0])
            ranges.setdefault(path[4:], []).append((off, n))
    damaged = check_tree(out / "src", files, ranges, "")
    assert sorted(names) == sorted("src/" + n for n in damaged)
    assert not glob.glob(str(out / "src" / "*.damaged"))
    make_writable(out)


def test_full_target_file_system_stops_the_restore(tmp_path):
    """A target that fills up part way: the first failed write is named once,
    the restore stops there and says it is incomplete (exit non-zero), and
    the same restore completes once there is room."""
    import subprocess
    import pytest
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(12 << 20))
    for i in range(40):
        (src / ("small%02d.txt" % i)).write_text("file %d\n" % i)
    repo = tmp_path / "repo"
    tw(repo, "repo", "init", check=0)
    tw(repo, "backup", "-q", str(src), check=0)
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        r = tw(repo, "restore", "latest", "--target", str(mnt / "out"))
        assert r.returncode != 0
        assert "file system is full" in r.err and "make room and run it again" in r.err, r.err
        assert r.err.count("No space left on device") == 2, r.err  # the warning + the error
        assert "No such file" not in r.err, r.err  # files never reached are not reported
        assert "incomplete restore of snapshot" in r.out, r.out
        subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
        tw(repo, "restore", "latest", "--target", str(mnt / "out"), check=0)
        base = mnt / "out" / "src"
        assert (base / "big.bin").read_bytes() == (src / "big.bin").read_bytes()
        assert (base / "small39.txt").read_text() == "file 39\n"
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)

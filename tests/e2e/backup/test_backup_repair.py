"""`tapwork repair index` and `repair snapshots` (issue 17): one flipped bit in an index object makes
every pack it lists unreachable; repair rebuilds the index from the verified
pack headers, after which check --read-data is clean and a restore identical.
A damaged pack is never trusted."""
import glob
import os

from bkhelp import compare_trees, json_lines, make_tree, tw


def flip(path, offset=None):
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        i = len(data) // 2 if offset is None else offset
        data[i] ^= 0x10
        f.seek(0)
        f.write(data)


def objects(repo, kind):
    return sorted(p for p in glob.glob(os.path.join(str(repo), kind, "**", "*"), recursive=True)
                  if os.path.isfile(p) and not os.path.basename(p).startswith("."))


def make_repo(tmp_path):
    src = tmp_path / "src"
    make_tree(src)
    repo = tmp_path / "repo"
    tw(repo, "repo", "init", "--pack-size", "1", check=0)
    tw(repo, "backup", "-q", str(src), check=0)
    return src, repo


def test_repair_index_after_a_flipped_bit(tmp_path):
    src, repo = make_repo(tmp_path)
    idx = objects(repo, "index")
    assert idx
    flip(idx[0])
    r = tw(repo, "check", check=1)
    assert "`tapwork repair index`" in r.out, r.out
    assert json_lines(tw(repo, "check", "--json", check=1).out)[-1]["index_damaged"] == 1
    # dry run: reports, changes nothing
    r = tw(repo, "repair", "index", "--dry-run", check=0)
    assert "dry run: " in r.out and objects(repo, "index") == idx, r.out
    r = tw(repo, "repair", "index", "--json", check=0)
    s = json_lines(r.out)[-1]
    assert s["index_damaged"] == 1 and s["index_deleted"] == 1, s
    assert s["packs_reindexed"] >= 1 and s["blobs_reindexed"] > 0 and s["packs_damaged"] == 0, s
    assert idx[0] not in objects(repo, "index")
    r = tw(repo, "check", "--read-data", check=0)
    assert "no errors were found" in r.out, r.out
    out = tmp_path / "out"
    tw(repo, "restore", "latest", "--target", str(out), check=0)
    compare_trees(src, out / "src")
    # running it again finds nothing to do; a backup after it reuses everything
    s = json_lines(tw(repo, "repair", "index", "--json", check=0).out)[-1]
    assert s["index_damaged"] == 0 and s["packs_reindexed"] == 0 and s["index_written"] == 0, s


def test_repair_index_never_trusts_a_damaged_pack(tmp_path):
    src, repo = make_repo(tmp_path)
    for p in objects(repo, "index"):
        flip(p)
    packs = objects(repo, "data")
    assert len(packs) >= 2
    flip(packs[0])
    r = tw(repo, "repair", "index", check=1)
    name = os.path.basename(packs[0])
    assert f"pack {name} is damaged and stays out of the index" in r.err, r.err
    assert ", 1 damaged" in r.out, r.out
    # the rest is indexed again; check names what the damaged pack held
    r = tw(repo, "check", check=1)
    assert "index objects are damaged" not in r.out, r.out


def test_repair_snapshots_drops_lost_files(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    files = {}
    for i in range(6):
        rel = ("sub/" if i % 2 else "") + "f%d.bin" % i
        data = os.urandom(600000)
        (src / rel).write_bytes(data)
        files[rel] = data
    repo = tmp_path / "repo"
    tw(repo, "repo", "init", "--pack-size", "1", check=0)
    tw(repo, "backup", "-q", str(src), check=0)
    big = max(objects(repo, "data"), key=os.path.getsize)
    os.unlink(big)  # a lost pack: some files lose chunks
    tw(repo, "check", check=1)
    r = tw(repo, "repair", "snapshots", "--dry-run", "--json", check=0)
    assert json_lines(r.out)[-1]["repaired"] == 1
    r = tw(repo, "repair", "snapshots", "--json", check=0)
    s = json_lines(r.out)[-1]
    assert s["repaired"] == 1 and s["files_dropped"] >= 1 and s["forgotten"] == 0, s
    dropped = [ln.split("dropping file ", 1)[1].split(" (", 1)[0] for ln in r.err.splitlines()
               if "dropping file " in ln]
    assert len(dropped) == s["files_dropped"], r.err
    snaps = tw(repo, "snapshots", "--json", check=0)
    import json as _json
    lst = _json.loads(snaps.out)
    assert len(lst) == 2, lst  # the original is kept
    rep = [x for x in lst if "repaired" in x["tags"]]
    assert len(rep) == 1
    out = tmp_path / "out"
    tw(repo, "restore", rep[0]["id"], "--target", str(out), check=0)  # nothing lost in it
    for rel, data in files.items():
        p = out / "src" / rel
        if "/src/" + rel in dropped or "src/" + rel in dropped or "/" + rel in dropped:
            assert not p.exists(), rel
        else:
            assert p.read_bytes() == data, rel
    assert len(dropped) < len(files)
    # the original forgotten and pruned, the repository checks clean
    tw(repo, "forget", "--keep-tag", "repaired", "--prune", check=0)
    r = tw(repo, "check", check=0)
    assert "no errors were found" in r.out, r.out


def test_repair_snapshots_forget(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        (src / ("f%d" % i)).write_bytes(os.urandom(600000))
    repo = tmp_path / "repo"
    tw(repo, "repo", "init", "--pack-size", "1", check=0)
    tw(repo, "backup", "-q", str(src), check=0)
    os.unlink(max(objects(repo, "data"), key=os.path.getsize))
    s = json_lines(tw(repo, "repair", "snapshots", "--forget", "--json", check=0).out)[-1]
    assert s["repaired"] == 1 and s["forgotten"] == 1, s
    import json as _json
    lst = _json.loads(tw(repo, "snapshots", "--json", check=0).out)
    assert len(lst) == 1 and "repaired" in lst[0]["tags"], lst
    tw(repo, "prune", check=0)
    assert "no errors were found" in tw(repo, "check", "--read-data", check=0).out

"""Back up a generated tree, restore it, compare bit for bit and metadata."""
import os

from bkhelp import compare_trees, json_lines, make_tree, make_writable, tw, walk


def test_roundtrip_every_kind_of_entry(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    make_tree(src)
    repo = tmp_path / "repo"
    tw(repo, "repo", "init", check=0)
    r = tw(repo, "backup", "--json", "--tag", "first", str(src), check=0)
    summary = [o for o in json_lines(r.out) if o.get("type") == "summary"][0]
    assert summary["errors"] == 0
    assert summary["files"] > 40
    # duplicates are stored once: less new data than the bytes backed up
    assert summary["new_bytes"] < summary["bytes"]
    snaps = tw(repo, "snapshots", "--json", check=0)
    import json
    lst = json.loads(snaps.out)
    assert len(lst) == 1 and lst[0]["tags"] == ["first"]
    sid = lst[0]["id"]
    out = tmp_path / "out"
    # abbreviated ID
    r = tw(repo, "restore", sid[:6], "--target", str(out), check=0)
    compare_trees(src, out / "src")
    # holes stay holes
    st = os.stat(out / "src" / "sparse.img")
    assert st.st_size == 12 * 1024 * 1024 + 4000
    assert st.st_blocks * 512 < 4 * 1024 * 1024, st.st_blocks
    # a second restore over the first one replaces files in place
    make_writable(out)
    tw(repo, "restore", "latest", "--target", str(out), check=0)
    compare_trees(src, out / "src")
    # check with full data read is clean
    r = tw(repo, "check", "--read-data", "--json", check=0)
    s = json_lines(r.out)[-1]
    assert s["ok"] is True and s["blobs_checked"] > 0
    make_writable(out)


def test_ls_include_exclude_and_diff(tmp_path):
    src = tmp_path / "data"
    src.mkdir()
    make_tree(src, seed=2)
    repo = tmp_path / "repo"
    tw(repo, "repo", "init", check=0)
    tw(repo, "backup", "-q", "--exclude", "*.bin", "--exclude", str(src / "deep"), str(src), check=0)
    ls = tw(repo, "ls", "latest", check=0).stdout
    assert b"/data/text/f01.txt\n" in ls
    assert b".bin" not in ls and b"/data/deep" not in ls
    assert b"/data/odd/new\nline\n" in ls
    # --include restores one subtree only
    out = tmp_path / "out"
    tw(repo, "restore", "latest", "--target", str(out), "--include", "data/text", check=0)
    assert sorted(os.listdir(out / "data")) == ["text"]
    assert len(os.listdir(out / "data" / "text")) == 20
    # diff: one modified, one added, one removed
    with open(src / "text" / "f03.txt", "ab") as f:
        f.write(b"more\n")
    (src / "text" / "new.txt").write_bytes(b"new file\n")
    os.unlink(src / "text" / "f04.txt")
    tw(repo, "backup", "-q", "--exclude", "*.bin", "--exclude", str(src / "deep"), str(src), check=0)
    snaps = [l.split()[0] for l in tw(repo, "snapshots", check=0).out.splitlines()[1:-1]]
    d = tw(repo, "diff", snaps[0], snaps[1], check=0).out
    assert "M /data/text/f03.txt" in d
    assert "+ /data/text/new.txt" in d
    assert "- /data/text/f04.txt" in d
    assert "1 added, 1 removed, 1 modified" in d
    make_writable(src)


def test_incremental_reads_only_changed_files(tmp_path):
    src = tmp_path / "vol"
    src.mkdir()
    make_tree(src, seed=3)
    repo = tmp_path / "repo"
    tw(repo, "repo", "init", check=0)
    first = json_lines(tw(repo, "backup", "--json", str(src), check=0).out)[-1]
    before = walk(src)  # contents as the first snapshot saw them
    # change ~1 file, add one, remove one
    with open(src / "text" / "f05.txt", "ab") as f:
        f.write(b"appended\n")
    (src / "added.txt").write_bytes(b"added\n" * 100)
    os.unlink(src / "text" / "f06.txt")
    second = json_lines(tw(repo, "backup", "--json", str(src), check=0).out)[-1]
    assert second["parent"] == first["snapshot_id"]
    assert second["files_unchanged"] >= first["files"] - 6
    changed = os.path.getsize(src / "text" / "f05.txt") + os.path.getsize(src / "added.txt")
    assert second["bytes_read"] == changed, second
    out1, out2 = tmp_path / "out1", tmp_path / "out2"
    tw(repo, "restore", first["snapshot_id"], "--target", str(out1), check=0)
    tw(repo, "restore", "latest", "--target", str(out2), check=0)
    compare_trees(src, out2 / "vol")
    # the first snapshot is the tree as it was
    a, b = before, walk(out1 / "vol")
    assert sorted(a) == sorted(b)
    for rel in a:
        assert a[rel][1] == b[rel][1], rel
    for d in (out1, out2, src):
        make_writable(d)


def test_incremental_sees_xattr_only_changes(tmp_path):
    """Unchanged files keep their recorded xattrs without being re-read; a
    changed xattr (which changes ctime only) is picked up."""
    src = tmp_path / "x"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a" * 1000)
    (src / "b.txt").write_bytes(b"b" * 1000)
    try:
        os.setxattr(src / "a.txt", "user.k", b"one")
        os.setxattr(src / "b.txt", "user.k", b"keep")
    except OSError:
        import pytest
        pytest.skip("no user xattrs on this file system")
    repo = tmp_path / "repo"
    tw(repo, "repo", "init", check=0)
    tw(repo, "backup", str(src), check=0)
    second = json_lines(tw(repo, "backup", "--json", str(src), check=0).out)[-1]
    assert second["files_unchanged"] == 2
    os.setxattr(src / "a.txt", "user.k", b"two")
    os.setxattr(src / "a.txt", "user.new", b"n")
    os.removexattr(src / "b.txt", "user.k")
    third = json_lines(tw(repo, "backup", "--json", str(src), check=0).out)[-1]
    assert third["files_unchanged"] == 0
    out2, out3 = tmp_path / "out2", tmp_path / "out3"
    tw(repo, "restore", second["snapshot_id"], "--target", str(out2), check=0)
    tw(repo, "restore", "latest", "--target", str(out3), check=0)
    assert os.getxattr(out2 / "x" / "a.txt", "user.k") == b"one"
    assert os.getxattr(out2 / "x" / "b.txt", "user.k") == b"keep"
    assert os.getxattr(out3 / "x" / "a.txt", "user.k") == b"two"
    assert os.getxattr(out3 / "x" / "a.txt", "user.new") == b"n"
    assert "user.k" not in os.listxattr(out3 / "x" / "b.txt")


def test_wrong_password_and_passwd(tmp_path):
    src = tmp_path / "s"
    src.mkdir()
    (src / "f").write_bytes(b"hello")
    repo = tmp_path / "repo"
    tw(repo, "repo", "init", check=0)
    tw(repo, "backup", "-q", str(src), check=0)
    r = tw(repo, "snapshots", password="wrong", check=1)
    assert "wrong password" in r.err
    # the password never comes from argv
    r = tw(repo, "snapshots", "--password", "x")
    assert r.returncode != 0
    # add a second password, then change the first away
    import subprocess, os as _os
    from bkhelp import env_for, BIN
    e = env_for(repo)
    e["TAPWORK_NEW_PASSWORD"] = "second"
    subprocess.run([BIN, "repo", "passwd", "--add"], env=e, check=True, capture_output=True)
    tw(repo, "snapshots", password="second", check=0)
    tw(repo, "snapshots", check=0)
    e["TAPWORK_NEW_PASSWORD"] = "third"
    subprocess.run([BIN, "repo", "passwd"], env=e, check=True, capture_output=True)
    tw(repo, "snapshots", check=1)  # the first password is gone
    tw(repo, "snapshots", password="second", check=0)
    tw(repo, "snapshots", password="third", check=0)
    # password file
    pf = tmp_path / "pw"
    pf.write_text("third\n")
    tw(repo, "snapshots", "--password-file", str(pf), password="nope", check=0)


def test_restore_never_writes_outside_target(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_bytes(b"data")
    repo = tmp_path / "repo"
    tw(repo, "repo", "init", check=0)
    tw(repo, "backup", "-q", str(src), check=0)
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    # a planted symlink where the restore wants a directory
    os.symlink(outside, target / "src")
    r = tw(repo, "restore", "latest", "--target", str(target))
    assert r.returncode == 1
    assert os.listdir(outside) == []
    assert os.path.islink(target / "src")


def test_unreadable_file_exit_3(tmp_path):
    """Unreadable files are skipped, listed, and the exit status is 3."""
    import subprocess
    import tempfile
    from bkhelp import BIN, env_for
    prefix = []
    work = str(tmp_path)
    if os.geteuid() == 0:
        # root reads everything: run tapwork as nobody on a world-visible dir
        work = tempfile.mkdtemp(prefix="tw-unreadable-", dir="/tmp")
        os.chmod(work, 0o755)
        os.chown(work, 65534, 65534)
        prefix = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
    try:
        src = os.path.join(work, "s")
        os.mkdir(src)
        for name, data in (("ok", b"fine"), ("secret", b"no")):
            with open(os.path.join(src, name), "wb") as f:
                f.write(data)
        os.mkdir(os.path.join(src, "closed"))
        with open(os.path.join(src, "closed", "inner"), "wb") as f:
            f.write(b"hidden")
        if prefix:
            for p in (src, os.path.join(src, "ok"), os.path.join(src, "secret"), os.path.join(src, "closed")):
                os.chown(p, 65534, 65534)
        os.chmod(os.path.join(src, "secret"), 0)
        os.chmod(os.path.join(src, "closed"), 0)
        repo = os.path.join(work, "repo")
        e = env_for(repo)
        run = lambda *a: subprocess.run(prefix + [BIN] + list(a), capture_output=True, env=e, timeout=120)
        assert run("repo", "init").returncode == 0
        r = run("backup", src)
        err = r.stderr.decode()
        assert r.returncode == 3, (r.returncode, err)
        assert "secret" in err and "closed" in err
        ls = run("ls", "latest")
        assert ls.returncode == 0
        names = ls.stdout.decode().split("\n")
        assert "/s/ok" in names and "/s/closed" in names  # an empty directory
        assert "/s/secret" not in names and "/s/closed/inner" not in names
        assert run("check", "--read-data").returncode == 0
    finally:
        if prefix:
            import shutil
            for dirpath, dirnames, _ in os.walk(work):
                for d in dirnames:
                    os.chmod(os.path.join(dirpath, d), 0o755)
            shutil.rmtree(work, ignore_errors=True)

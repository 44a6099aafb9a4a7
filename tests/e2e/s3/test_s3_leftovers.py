"""Multipart uploads a killed run leaves on S3 (issue 17): `check` lists
each incomplete upload of the repository as a temporary object (size from
its parts, age since its last part), `prune` aborts those not written for
the lock lease and keeps younger ones; uploads outside the repository's
layout are never touched. The uploads are started the way tapwork's
multipart put starts them (POST ?uploads=, then parts), signed by curl.
TAPWORK_S3_UPLOAD_AGE_BIAS_S makes them look older, instead of a 5-minute
wait. Also: a repository at the bucket root, a backup killed during a real
multipart pack upload (80 MiB packs), and a user whose policy denies
ListBucketMultipartUploads (check and prune warn and go on)."""
import hashlib
import os
import re
import subprocess
import time

from test_s3_repo import MOTO, Moto, tw  # noqa: F401
from bkhelp import json_lines

import pytest

pytestmark = pytest.mark.skipif(MOTO is None, reason="moto_server not on PATH")


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    m = Moto(str(tmp_path_factory.mktemp("moto")))
    yield m
    m.stop()


def s3(moto, method, path, body=b"", tmp=None):
    sha = hashlib.sha256(body).hexdigest()
    args = ["curl", "-sS", "--fail-with-body", "--max-time", "30", "--aws-sigv4",
            "aws:amz:us-east-1:s3", "--user", f"{moto.key}:{moto.secret}",
            "-H", f"x-amz-content-sha256: {sha}", "-X", method]
    if body:
        f = os.path.join(str(tmp), "body")
        with open(f, "wb") as fp:
            fp.write(body)
        args += ["--data-binary", "@" + f, "-H", "Content-Type: application/octet-stream"]
    elif method == "POST":
        args += ["--data-binary", ""]
    r = subprocess.run(args + [f"http://127.0.0.1:{moto.port}/{path}"],
                       capture_output=True, text=True, timeout=40)
    assert r.returncode == 0, (method, path, r.stdout, r.stderr)
    return r.stdout


def start_upload(moto, tmp, key, part_bytes):
    out = s3(moto, "POST", f"leftovers/{key}?uploads=")
    uid = re.search(r"<UploadId>([^<]+)</UploadId>", out).group(1)
    s3(moto, "PUT", f"leftovers/{key}?partNumber=1&uploadId={uid}", os.urandom(part_bytes), tmp)
    return uid


def uploads(moto):
    out = s3(moto, "GET", "leftovers?uploads=")
    return sorted(re.findall(r"<UploadId>([^<]+)</UploadId>", out))


def test_prune_aborts_old_multipart_uploads_keeps_young(moto, tmp_path):
    repo = f"s3:http://127.0.0.1:{moto.port}/leftovers/team/r1"
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(os.urandom(200000))
    tw(moto, repo, "repo", "init", check=0)
    tw(moto, repo, "backup", "-q", str(src), check=0)
    h = hashlib.sha256(b"pack").hexdigest()
    old_key = f"team/r1/data/{h[:2]}/{h}"
    old = start_upload(moto, tmp_path, old_key, 1 << 20)
    # not ours: another application's upload in the bucket, and one under the
    # prefix without the repository layout
    foreign = start_upload(moto, tmp_path, "other/app/file", 1000)
    odd = start_upload(moto, tmp_path, "team/r1/data/zz/notapack", 1000)
    time.sleep(12)
    young = start_upload(moto, tmp_path, "team/r1/index/" + "c" * 64, 3000)
    assert uploads(moto) == sorted([old, foreign, odd, young])

    old_id = f"data/{h[:2]}/{h}?uploadId={old}"
    young_id = f"index/{'c' * 64}?uploadId={young}"
    r = tw(moto, repo, "check", check=0)
    assert f"temporary object {old_id}: 1.0 MiB, last written " in r.out, r.out
    assert f"temporary object {young_id}: 0.0 MiB" in r.out, r.out
    assert "2 temporary objects" in r.out and "no errors were found" in r.out, r.out
    assert foreign not in r.out and odd not in r.out
    j = json_lines(tw(moto, repo, "check", "--json", check=0).out)
    tmp = {x["id"]: x for x in j if x["type"] == "temporary_object"}
    assert sorted(tmp) == sorted([old_id, young_id])
    assert tmp[old_id]["size"] == 1 << 20 and tmp[young_id]["size"] == 3000
    assert tmp[old_id]["age_seconds"] >= 11 > tmp[young_id]["age_seconds"], tmp
    summ = [x for x in j if x["type"] == "summary"][0]
    assert summ["ok"] is True and summ["tmp_objects"] == 2 and summ["tmp_bytes"] == (1 << 20) + 3000

    # without the bias both are younger than the lease: nothing aborted
    j = json_lines(tw(moto, repo, "prune", "--json", check=0).out)
    summ = [x for x in j if x["type"] == "summary"][0]
    assert summ["tmp_deleted"] == 0 and summ["tmp_kept"] == 2, summ
    def bias():
        # the ages now, then a bias that puts the 300 s lease halfway between
        # them (12 s apart: a slow machine has ~6 s until prune lists them)
        j = json_lines(tw(moto, repo, "check", "--json", check=0).out)
        a = {x["id"]: x["age_seconds"] for x in j if x["type"] == "temporary_object"}
        return {"TAPWORK_S3_UPLOAD_AGE_BIAS_S": str(300 - (a[old_id] + a[young_id]) // 2)}

    r = tw(moto, repo, "prune", "--dry-run", extra_env=bias(), check=0)
    assert "would prune: 1 temporary objects of interrupted runs deleted (1.0 MiB); 1 kept" in r.out, r.out
    assert uploads(moto) == sorted([old, foreign, odd, young])
    j = json_lines(tw(moto, repo, "prune", "--json", extra_env=bias(), check=0).out)
    summ = [x for x in j if x["type"] == "summary"][0]
    assert summ["tmp_deleted"] == 1 and summ["tmp_kept"] == 1, summ
    assert summ["tmp_bytes_freed"] == 1 << 20, summ
    assert uploads(moto) == sorted([foreign, odd, young])
    r = tw(moto, repo, "prune", extra_env={"TAPWORK_S3_UPLOAD_AGE_BIAS_S": "3600"}, check=0)
    assert "1 temporary objects of interrupted runs deleted" in r.out, r.out
    assert uploads(moto) == sorted([foreign, odd])

    # the repository is whole and nothing is left to list
    r = tw(moto, repo, "check", "--read-data", check=0)
    assert "temporary object" not in r.out and "no errors were found" in r.out, r.out
    out = tmp_path / "out"
    tw(moto, repo, "restore", "latest", "--target", str(out), check=0)
    assert (out / "src" / "f").read_bytes() == (src / "f").read_bytes()



def test_repository_at_the_bucket_root(moto, tmp_path):
    """No prefix: the listing covers the whole bucket; only keys with the
    repository layout count."""
    repo = f"s3:http://127.0.0.1:{moto.port}/rootrepo"
    tw(moto, repo, "repo", "init", check=0)
    h = hashlib.sha256(b"root").hexdigest()
    out = s3(moto, "POST", f"rootrepo/data/{h[:2]}/{h}?uploads=")
    uid = re.search(r"<UploadId>([^<]+)</UploadId>", out).group(1)
    s3(moto, "PUT", f"rootrepo/data/{h[:2]}/{h}?partNumber=1&uploadId={uid}", b"z" * 5000, tmp_path)
    out = s3(moto, "POST", "rootrepo/notes.txt?uploads=")
    other = re.search(r"<UploadId>([^<]+)</UploadId>", out).group(1)
    j = json_lines(tw(moto, repo, "check", "--json", check=0).out)
    assert [x["id"] for x in j if x["type"] == "temporary_object"] == [f"data/{h[:2]}/{h}?uploadId={uid}"]
    j = json_lines(tw(moto, repo, "prune", "--json", extra_env={"TAPWORK_S3_UPLOAD_AGE_BIAS_S": "3600"},
                      check=0).out)
    summ = [x for x in j if x["type"] == "summary"][0]
    assert summ["tmp_deleted"] == 1 and summ["tmp_bytes_freed"] == 5000, summ
    left = re.findall(r"<UploadId>([^<]+)</UploadId>", s3(moto, "GET", "rootrepo?uploads="))
    assert left == [other]


def test_policy_without_upload_listing_still_checks_and_prunes(moto, tmp_path):
    """A user whose policy denies s3:ListBucketMultipartUploads: check and
    prune still work and say that uploads were not checked."""
    def iam(form):
        r = subprocess.run(["curl", "-sS", "--fail-with-body", "--max-time", "20", "--aws-sigv4",
                            "aws:amz:us-east-1:iam", "--user", f"{moto.key}:{moto.secret}",
                            "--data", form + "&Version=2010-05-08", f"http://127.0.0.1:{moto.port}/"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, (r.stdout, r.stderr)
        return r.stdout
    iam("Action=CreateUser&UserName=limited")
    iam("Action=PutUserPolicy&UserName=limited&PolicyName=p&PolicyDocument="
        "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22"
        "%2C%22Action%22%3A%22%2A%22%2C%22Resource%22%3A%22%2A%22%7D%2C%7B%22Effect%22%3A%22Deny%22"
        "%2C%22Action%22%3A%22s3%3AListBucketMultipartUploads%22%2C%22Resource%22%3A%22%2A%22%7D%5D%7D")
    out = iam("Action=CreateAccessKey&UserName=limited")
    env = {"AWS_ACCESS_KEY_ID": re.search(r"<AccessKeyId>([^<]+)<", out).group(1),
           "AWS_SECRET_ACCESS_KEY": re.search(r"<SecretAccessKey>([^<]+)<", out).group(1)}
    repo = f"s3:http://127.0.0.1:{moto.port}/limited/r"
    tw(moto, repo, "repo", "init", extra_env=env, check=0)
    r = tw(moto, repo, "check", extra_env=env, check=0)
    assert "cannot list multipart uploads" in r.err and "no errors were found" in r.out, (r.out, r.err)
    r = tw(moto, repo, "prune", extra_env=env, check=0)
    assert "cannot list multipart uploads" in r.err, r.err


def test_backup_killed_during_a_multipart_pack_upload(moto, tmp_path):
    """80 MiB packs go up in 8 MiB parts: kill the backup while the parts
    are on their way (uploads slowed to 4 MiB/s each), then check names the
    upload and prune aborts it; the repository stays whole."""
    repo = f"s3:http://127.0.0.1:{moto.port}/killed/r"
    tw(moto, repo, "repo", "init", "--pack-size", "80", check=0)
    src = tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(os.urandom(90 << 20))
    env = dict(os.environ)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "TAPWORK_PASSWORD_FILE"):
        env.pop(k, None)
    env.update(AWS_ACCESS_KEY_ID=moto.key, AWS_SECRET_ACCESS_KEY=moto.secret, AWS_REGION="us-east-1",
               TAPWORK_REPOSITORY=repo, TAPWORK_PASSWORD="s3 test password",
               TAPWORK_S3_LIMIT_RATE=str(4 << 20))
    from test_s3_repo import BIN
    p = subprocess.Popen([BIN, "backup", "-q", str(src)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        up = None
        while time.monotonic() < deadline and p.poll() is None:
            out = s3(moto, "GET", "killed?uploads=")
            if "<UploadId>" in out:  # the only upload in this bucket
                up = (re.search(r"<Key>([^<]+)</Key>", out).group(1),
                      re.search(r"<UploadId>([^<]+)</UploadId>", out).group(1))
                break
            time.sleep(0.2)
        assert up, "no multipart upload started"
        # kill once a part has landed (each takes ~2 s at 4 MiB/s)
        while time.monotonic() < deadline and p.poll() is None:
            if "<Part>" in s3(moto, "GET", f"killed/{up[0]}?uploadId={up[1]}"):
                break
            time.sleep(0.2)
        assert p.poll() is None, "the backup ended before it could be killed"
    finally:
        p.kill()
        p.wait(10)
    left = re.findall(r"<UploadId>([^<]+)</UploadId>", s3(moto, "GET", "killed?uploads="))
    assert len(left) == 1, left
    j = json_lines(tw(moto, repo, "check", "--json", check=0).out)
    tmp = [x for x in j if x["type"] == "temporary_object"]
    assert len(tmp) == 1 and re.fullmatch(r"data/([0-9a-f]{2})/\1[0-9a-f]{62}\?uploadId=" + re.escape(left[0]),
                                          tmp[0]["id"]), tmp
    assert tmp[0]["size"] >= 8 << 20, tmp  # at least one 8 MiB part stored
    r = tw(moto, repo, "prune", extra_env={"TAPWORK_S3_UPLOAD_AGE_BIAS_S": "3600"}, check=0)
    assert "1 temporary objects of interrupted runs deleted" in r.out, r.out
    assert re.findall(r"<UploadId>", s3(moto, "GET", "killed?uploads=")) == []
    r = tw(moto, repo, "check", "--read-data", check=0)
    assert "temporary object" not in r.out and "no errors were found" in r.out, r.out

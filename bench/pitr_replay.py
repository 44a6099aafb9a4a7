#!/usr/bin/python3
"""bench/pitr_replay.py — phase 6 of bench/pitr.py on its own, repeated: PITR
restore + replay to a point inside a pgbench workload, tapwork with WAL
prefetch (the default), tapwork with `--pg-wal-prefetch 0`, and pgBackRest
`restore --type=time`, alternating, REPS times each on one setup (bench/
pitr_replay.sh describes the settings). Uses bench/pitr.py's helpers."""
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

import pitr
from pitr import (CACHE, E, PG, PW_TEXT, RAW, TW, Cluster, as_pg, chown, die, drop_caches,
                  free_port, log, pgbench, timed)

SCALE = int(E.get("PITR_SCALE", "10"))
CLIENT_TX = int(E.get("PITR_TX", "10000"))
REPS = int(E.get("REPS", "3"))
KINDS = ("tw", "tw0", "br")


def main():
    os.makedirs(RAW, exist_ok=True)
    os.makedirs(CACHE, exist_ok=True)
    work = tempfile.mkdtemp(prefix="pitr-replay.", dir=CACHE)
    os.chmod(work, 0o755)
    j = lambda *p: os.path.join(work, *p)
    data, tw_repo, br_repo, pw, conf = j("data"), j("tw-repo"), j("br-repo"), j("password"), j("br.conf")
    for d in ("br-log", "br-lock", "br-spool"):
        os.makedirs(j(d))
    with open(pw, "w") as f:
        f.write(PW_TEXT + "\n")
    os.chmod(pw, 0o600)
    port = free_port()
    with open(conf, "w") as f:
        f.write(f"""[global]
repo1-path={br_repo}
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=bench-cipher-pass
repo1-bundle=y
compress-type=zst
compress-level=3
process-max=2
start-fast=y
archive-check=y
log-level-console=warn
log-path={j("br-log")}
lock-path={j("br-lock")}
spool-path={j("br-spool")}

[bench]
pg1-path={data}
pg1-port={port}
pg1-socket-path={j("sock")}
""")
    with open(j("archive-pgbackrest.sh"), "w") as f:
        f.write(f"""#!/bin/sh
{TW} pg archive-push -q -r {tw_repo} --password-file {pw} "$1" &&
exec pgbackrest --config={conf} --stanza=bench archive-push "$1"
""")
    os.chmod(j("archive-pgbackrest.sh"), 0o755)
    chown(work)
    env_tw = dict(E, TAPWORK_PASSWORD_FILE=pw)
    env_tw.pop("TAPWORK_PASSWORD", None)
    c = Cluster(work, port, data, conf=["archive_mode=on", "wal_level=replica",
                                        f"archive_command={j('archive-pgbackrest.sh')} %p"])
    res = {k: {"total": [], "restore": [], "cpu": []} for k in KINDS}
    try:
        deadline = time.monotonic() + 60
        while c.psql("SELECT 1", check=False).returncode != 0:
            if time.monotonic() > deadline:
                die("postgres did not start")
            time.sleep(0.2)
        subprocess.run(as_pg([TW, "repo", "init", "-q", "-r", tw_repo, "--password-file", pw]),
                       check=True, capture_output=True)
        subprocess.run(as_pg(["pgbackrest", f"--config={conf}", "--stanza=bench", "stanza-create"]),
                       check=True, capture_output=True)
        log(f"== setup: pgbench -i -s {SCALE}, full backups, pgbench -c 2 -j 2 -t {CLIENT_TX} (untimed)")
        pgbench(c, ["-i", "-q", "-s", str(SCALE)], "replay-pgbench.log")
        c.psql("CHECKPOINT")
        c.wait_archived()
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        subprocess.run(as_pg([TW, "backup", "-q", "-r", tw_repo, "--password-file", pw, "--pg-data",
                              data, "--postgres", url]), check=True, env=env_tw)
        subprocess.run(as_pg(["pgbackrest", f"--config={conf}", "--stanza=bench", "backup",
                              "--type=full"]), check=True, capture_output=True)
        tw_full = json.loads(subprocess.run(as_pg([TW, "snapshots", "--json", "-r", tw_repo,
                                                   "--password-file", pw]), capture_output=True,
                                            text=True).stdout)[-1]["id"]
        br_full = json.loads(subprocess.run(as_pg(["pgbackrest", f"--config={conf}", "--stanza=bench",
                                                   "info", "--output=json"]), capture_output=True,
                                            text=True).stdout)[0]["backup"][-1]["label"]
        pgbench(c, ["-c", "2", "-j", "2", "-t", str(CLIENT_TX // 2)], "replay-pgbench.log")
        target = c.q("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', "
                     "'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
        rows = int(c.q("SELECT count(*) FROM pgbench_history"))
        time.sleep(0.01)
        pgbench(c, ["-c", "2", "-j", "2", "-t", str(CLIENT_TX - CLIENT_TX // 2)], "replay-pgbench.log")
        c.wait_archived()
        c.stop()  # nothing else runs during the timed restores
        log(f"== PITR restore to {target}, replay included: {REPS} x {', '.join(KINDS)}")
        for rep in range(REPS):
            order = KINDS if rep % 2 == 0 else tuple(reversed(KINDS))
            for who in order:
                dest = j(f"r-{who}")
                os.makedirs(dest, mode=0o700)
                os.chown(dest, PG.pw_uid, PG.pw_gid)
                drop_caches()
                t0 = time.monotonic()
                if who.startswith("tw"):
                    extra = ["--pg-wal-prefetch", "0"] if who == "tw0" else []
                    m = timed(as_pg([TW, "restore", "-q", "-r", tw_repo, "--password-file", pw,
                                     "--pg-password-file", pw, tw_full, "--pg-data", dest,
                                     "--pg-target-time", target, "--pg-target-action", "promote"]
                                    + extra), "replay-tw-restore.log", env=env_tw)
                else:
                    m = timed(as_pg(["pgbackrest", f"--config={conf}", "--stanza=bench",
                                     f"--pg1-path={dest}", "restore", f"--set={br_full}",
                                     "--type=time", f"--target={target}", "--target-action=promote"]),
                              "replay-br-restore.log")
                rc = Cluster(work, free_port(), dest, conf=["archive_mode=off"], initdb=False)
                try:
                    rc.wait_ready()
                    total = time.monotonic() - t0
                    got = int(rc.q("SELECT count(*) FROM pgbench_history"))
                finally:
                    rc.stop()
                if got != rows:
                    die(f"{who}: restored pgbench_history has {got} rows, {rows} at the target")
                res[who]["total"].append(total)
                res[who]["restore"].append(m["wall"])
                res[who]["cpu"].append(m["cpu"])
                log(f"  rep {rep + 1} {who}: total {total:.1f} s (restore command {m['wall']:.1f} s, "
                    f"replay {total - m['wall']:.1f} s)")
                shutil.rmtree(dest, ignore_errors=True)
    finally:
        if c.proc.poll() is None:
            c.stop()
        if not pitr.KEEP:
            shutil.rmtree(work, ignore_errors=True)
    med = {k: {f: statistics.median(v[f]) for f in v} for k, v in res.items()}
    names = {"tw": "tapwork (prefetch 8)", "tw0": "tapwork (--pg-wal-prefetch 0)", "br": "pgBackRest"}
    lines = [f"# PITR restore + replay, PITR_SCALE={SCALE} PITR_TX={CLIENT_TX} REPS={REPS}; "
             f"medians; every restore held exactly the {rows} pgbench_history rows at the target",
             f"{'':32} {'total s':>8} {'restore s':>10} {'replay s':>9} {'restore CPU-s':>14}"]
    for k in KINDS:
        m = med[k]
        lines.append(f"{names[k]:32} {m['total']:8.1f} {m['restore']:10.1f} "
                     f"{m['total'] - m['restore']:9.1f} {m['cpu']:14.1f}")
    lines.append(f"pgBackRest / tapwork total: {med['br']['total'] / med['tw']['total']:.2f}x "
                 f"(target >= 1.5); without prefetch {med['br']['total'] / med['tw0']['total']:.2f}x")
    with open(os.path.join(pitr.OUT, "replay-summary.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(RAW, "replay.json"), "w") as f:
        json.dump(res, f, indent=1)
    log("\n".join(lines))


if __name__ == "__main__":
    main()

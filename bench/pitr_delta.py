#!/usr/bin/python3
"""bench/pitr_delta.py — A/B of tapwork builds on the physical incremental
(bench/pitr_delta.sh describes the protocol and the knobs)."""
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pglib import (CACHE, OUT, RAW, REPS, SCALE, CLIENT_TX, Cluster, as_pg, chown, die,  # noqa: E402
                   drop_caches, du, log, pgbench, timed, Site)

E = os.environ
BINS = [b for b in E.get("DELTA_BINS", "").split() if b]
if not BINS:
    die("DELTA_BINS: name=path of each build, e.g. 'delta=build/release/tapwork base=/tmp/b/tapwork'")
CONT = [(b.split("=", 1)[0], os.path.realpath(b.split("=", 1)[1])) for b in BINS]


def main():
    os.makedirs(RAW, exist_ok=True)
    os.makedirs(CACHE, exist_ok=True)
    reps = []
    for rep in range(1, REPS + 1):
        log(f"== rep {rep}/{REPS}: scale {SCALE}, 2 x {CLIENT_TX} pgbench tx")
        s = Site("pitr-delta-")
        repos = {n: s.j(f"repo-{n}") for n, _ in CONT}
        push = "".join(f"{b} pg archive-push -q -r {repos[n]} --password-file {s.pw} \"$1\" || exit 1\n"
                       for n, b in CONT)
        script = s.archive_script(push)
        c = s.start(["archive_mode=on", f"archive_command={script} %p", "wal_level=replica",
                     "autovacuum=off"])
        for n, b in CONT:
            if subprocess.run(as_pg([b, "repo", "init", "-q", "-r", repos[n], "--password-file",
                                     s.pw]), capture_output=True).returncode != 0:
                die(f"repo init ({n}) failed")
        subprocess.run([os.path.join(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"), "pgbench"),
                        "-i", "-s", str(SCALE), "-q", "-h", "127.0.0.1", "-p", str(s.port), "-U",
                        "postgres", "postgres"], capture_output=True, check=True)
        res = {}

        def backups(phase):
            order = CONT if rep % 2 else CONT[::-1]
            for n, b in order:
                c.psql("CHECKPOINT")
                c.wait_archived()
                before = du(repos[n], exclude=os.path.join(repos[n], "wal"))
                t = timed(as_pg([b, "backup", "-q", "-r", repos[n], "--password-file", s.pw,
                                 "--pg-data", s.data, "--postgres", s.url]), f"{n}-{phase}.log")
                res[f"{n}_{phase}_wall"], res[f"{n}_{phase}_cpu"] = t["wall"], t["cpu"]
                res[f"{n}_{phase}_growth_mib"] = (du(repos[n], exclude=os.path.join(repos[n], "wal")) - before) / 2**20

        backups("full")
        pgbench(c, ["-c", "2", "-j", "2", "-t", str(CLIENT_TX)], "pgbench.log")
        backups("incr")
        c.stop()
        # restore of the incremental snapshot (files only), page cache dropped
        order = CONT if rep % 2 else CONT[::-1]
        for n, b in order:
            out = s.j(f"restore-{n}")
            snap = json.loads(subprocess.run(as_pg([b, "snapshots", "--json", "-r", repos[n],
                                                    "--password-file", s.pw]),
                                             capture_output=True, text=True).stdout)[-1]["id"]
            drop_caches()
            t = timed([b, "restore", snap, "-r", repos[n], "--password-file", s.pw,
                       "--target", out], f"{n}-restore.log")
            res[f"{n}_restore_wall"], res[f"{n}_restore_cpu"] = t["wall"], t["cpu"]
            shutil.rmtree(out, ignore_errors=True)
        for n, _ in CONT:
            log(f"  {n}: full {res[f'{n}_full_growth_mib']:.1f} MiB; incr {res[f'{n}_incr_growth_mib']:.2f} MiB "
                f"{res[f'{n}_incr_wall']:.2f} s {res[f'{n}_incr_cpu']:.2f} CPU-s; restore "
                f"{res[f'{n}_restore_wall']:.2f} s {res[f'{n}_restore_cpu']:.2f} CPU-s")
        reps.append(res)
        if E.get("KEEP_WORK", "0") != "1":
            shutil.rmtree(s.work, ignore_errors=True)
    with open(os.path.join(RAW, "reps.json"), "w") as f:
        json.dump(reps, f, indent=1)
    med = {k: statistics.median(r[k] for r in reps) for k in reps[0]}
    lines = [f"# tapwork builds A/B, physical incremental after 2 x {CLIENT_TX} pgbench tx at scale "
             f"{SCALE}; medians of {REPS}",
             f"{'build':<12} {'full MiB':>9} {'incr MiB':>9} {'incr s':>7} {'incr CPU-s':>10} "
             f"{'restore s':>9} {'restore CPU-s':>13}"]
    for n, _ in CONT:
        lines.append(f"{n:<12} {med[f'{n}_full_growth_mib']:>9.1f} {med[f'{n}_incr_growth_mib']:>9.2f} "
                     f"{med[f'{n}_incr_wall']:>7.2f} {med[f'{n}_incr_cpu']:>10.2f} "
                     f"{med[f'{n}_restore_wall']:>9.2f} {med[f'{n}_restore_cpu']:>13.2f}")
    with open(os.path.join(OUT, "summary.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    log("\n".join(lines))


main()

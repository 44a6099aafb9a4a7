#!/usr/bin/python3
"""bench/pitr_replay.py — phase 6 of bench/pitr.py on its own, repeated: PITR
restore + replay to a point inside a pgbench workload, tapwork with WAL
prefetch (the default), tapwork with `--pg-wal-prefetch 0`, and pgBackRest
`restore --type=time`, alternating, REPS times each on one setup (bench/
pitr_replay.sh describes the settings). The setup is bench/pglib.py's.
TAPWORK_BASE_BIN adds a fourth contender: that tapwork binary (e.g. a
build of main) with its default prefetch, for an A/B in the same run. The
WAL is archived by TAPWORK_BIN: a base build older than WAL object version 2
(session 11) cannot read it, and its restore stops with archive-get's exit
126."""
import datetime
import json
import os
import shutil
import statistics
import subprocess
import time

from pglib import (CACHE, CLIENT_TX, KEEP, OUT, PG, RAW, REPS, SCALE, TW, Cluster, Site, as_pg,
                   die, drop_caches, free_port, log, pgbench, timed)

BASE = os.environ.get("TAPWORK_BASE_BIN", "")
KINDS = ("tw", "tw0", "br") + (("base",) if BASE else ())
# The phases of the restored server's start, from its log (log_line_prefix
# '%m', log_checkpoints on: PostgreSQL 15's defaults): each phase ends at the
# first line with its text; a phase runs from the end of the one before
# (the first from the restore command's end).
PHASES = (("start", "starting PostgreSQL"),          # exec to the postmaster's first line
          ("redo", "redo starts at"),                # backup_label, first segment fetched
          ("consistent", "consistent recovery state reached"),
          ("target", "recovery stopping"),           # replay to the target
          ("endrec", "checkpoint starting: end-of-recovery"),  # new timeline, recovery_end_command
          ("ckpt", "checkpoint complete"),           # the end-of-recovery checkpoint
          ("ready", "ready to accept connections"))


def phases(port, t_restored):
    """Seconds per phase of the restored server's start (PHASES), and the
    number of WAL files restore_command delivered."""
    with open(os.path.join(RAW, f"postgres-{port}.log"), errors="replace") as f:
        lines = f.read().splitlines()

    def ts(line):
        return datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    out, prev = {}, t_restored
    for key, text in PHASES:
        hit = next((ts(ln) for ln in lines if text in ln), None)
        if hit is None:
            continue
        out[key] = hit - prev
        prev = hit
    out["segments"] = sum(1 for ln in lines if "restored log file" in ln)
    return out


def main():
    os.makedirs(RAW, exist_ok=True)
    os.makedirs(CACHE, exist_ok=True)
    site = Site("pitr-replay.")
    work, j = site.work, site.j
    tw_repo, pw, conf, env_tw = site.tw_repo, site.pw, site.conf, site.env_tw
    script = site.archive_script(f"""{site.tw_push} "$1" &&
exec {site.br_push} "$1"
""")
    c = site.start(["archive_mode=on", "wal_level=replica", f"archive_command={script} %p"])
    res = {k: {"total": [], "restore": [], "cpu": [], "phases": []} for k in KINDS}
    try:
        site.init()
        log(f"== setup: pgbench -i -s {SCALE}, full backups, pgbench -c 2 -j 2 -t {CLIENT_TX} (untimed)")
        pgbench(c, ["-i", "-q", "-s", str(SCALE)], "replay-pgbench.log")
        c.psql("CHECKPOINT")
        c.wait_archived()
        subprocess.run(site.tw_backup(), check=True, env=env_tw)
        subprocess.run(as_pg(site.br + ["backup", "--type=full"]), check=True, capture_output=True)
        tw_full, br_full = site.tw_newest(), site.br_newest()
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
                if who != "br":
                    extra = ["--pg-wal-prefetch", "0"] if who == "tw0" else []
                    m = timed(as_pg([BASE if who == "base" else TW, "restore", "-q", "-r", tw_repo,
                                     "--password-file", pw, "--pg-password-file", pw, tw_full,
                                     "--pg-data", dest,
                                     "--pg-target-time", target, "--pg-target-action", "promote"]
                                    + extra), "replay-tw-restore.log", env=env_tw)
                else:
                    m = timed(as_pg(["pgbackrest", f"--config={conf}", "--stanza=bench",
                                     f"--pg1-path={dest}", "restore", f"--set={br_full}",
                                     "--type=time", f"--target={target}", "--target-action=promote"]),
                              "replay-br-restore.log")
                t_restored = time.time()
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
                res[who]["phases"].append(phases(rc.port, t_restored))
                log(f"  rep {rep + 1} {who}: total {total:.1f} s (restore command {m['wall']:.1f} s, "
                    f"replay {total - m['wall']:.1f} s)")
                shutil.rmtree(dest, ignore_errors=True)
    finally:
        if c.proc.poll() is None:
            c.stop()
        if not KEEP:
            shutil.rmtree(work, ignore_errors=True)
    med = {k: {f: statistics.median(v[f]) for f in v if f != "phases"} for k, v in res.items()}
    names = {"tw": "tapwork (prefetch 8)", "tw0": "tapwork (--pg-wal-prefetch 0)", "br": "pgBackRest",
             "base": "tapwork base (TAPWORK_BASE_BIN)"}
    lines = [f"# PITR restore + replay, PITR_SCALE={SCALE} PITR_TX={CLIENT_TX} REPS={REPS}; "
             f"medians; every restore held exactly the {rows} pgbench_history rows at the target",
             f"{'':32} {'total s':>8} {'restore s':>10} {'replay s':>9} {'restore CPU-s':>14}"]
    for k in KINDS:
        m = med[k]
        lines.append(f"{names[k]:32} {m['total']:8.2f} {m['restore']:10.2f} "
                     f"{m['total'] - m['restore']:9.2f} {m['cpu']:14.2f}")
    lines.append("restored server's start, medians of the phases (s; PostgreSQL's log): "
                 + " ".join(k for k, _ in PHASES) + " | WAL files fetched")
    for k in KINDS:
        ph = res[k]["phases"]
        cells = [f"{statistics.median([p.get(key, 0.0) for p in ph]):.2f}" for key, _ in PHASES]
        lines.append(f"{names[k]:32} " + " ".join(cells)
                     + f" | {statistics.median([p['segments'] for p in ph]):.0f}")
    lines.append(f"pgBackRest / tapwork total: {med['br']['total'] / med['tw']['total']:.2f}x "
                 f"(target >= 1.5); without prefetch {med['br']['total'] / med['tw0']['total']:.2f}x"
                 + (f"; base {med['br']['total'] / med['base']['total']:.2f}x" if BASE else ""))
    with open(os.path.join(OUT, "replay-summary.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(RAW, "replay.json"), "w") as f:
        json.dump(res, f, indent=1)
    log("\n".join(lines))


if __name__ == "__main__":
    main()

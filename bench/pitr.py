#!/usr/bin/python3
"""bench/pitr.py — the PostgreSQL point-in-time-recovery protocol of issue 12:
tapwork vs pgBackRest 2.45, side by side in one run (bench/pitr.sh runs this;
settings and output are described there)."""
import json
import os
import shutil
import statistics
import subprocess
import time

from pglib import (CACHE, CLIENT_TX, E, KEEP, OUT, PG, PG_BIN, PW_TEXT, RAW, REPS, SCALE, TIME, TW,
                   Cluster, Site, as_pg, chown, die, drop_caches, du, free_port, log, pgbench,
                   timed)

CHANGE_ROWS = int(E.get("PITR_CHANGE_ROWS", "100"))
PUSH_N = int(E.get("PUSH_N", "16"))
TPS_SECS = int(E.get("TPS_SECS", "20"))
FIRST = E.get("PITR_FIRST", "tw")  # who goes first in odd reps (REPS=1 twice: tw, then br)


def tool_order(rep):
    """tapwork first in odd reps and pgBackRest in even ones (PITR_FIRST=br
    swaps them)."""
    return ("tw", "br") if (rep % 2 == 1) == (FIRST == "tw") else ("br", "tw")


def one_rep(rep):
    site = Site("pitr.")
    work, j = site.work, site.j
    data, tw_repo, br_repo, pw, conf = site.data, site.tw_repo, site.br_repo, site.pw, site.conf
    port, env_tw = site.port, site.env_tw
    mode = j("archive.mode")
    for d in ("walcopy", "restic-cache"):
        os.makedirs(j(d))
    # archive_command dispatches on a mode file: both tools during the protocol,
    # one tool or /bin/true for the TPS comparison, a copy for the push latency.
    tw_push, br_push = site.tw_push, site.br_push
    script = site.archive_script(f"""read -r m < {mode}
case $m in
true) exec /bin/true ;;
tw) exec {tw_push} "$1" ;;
br) exec {br_push} "$1" ;;
both) {tw_push} "$1" && exec {br_push} "$1" ;;
copy) cp "$1" {j("walcopy")}/"$2".tmp && exec mv {j("walcopy")}/"$2".tmp {j("walcopy")}/"$2" ;;
esac
exit 1
""")

    def set_mode(m):
        with open(mode, "w") as f:
            f.write(m + "\n")

    set_mode("both")
    res = {}
    c = site.start(["archive_mode=on", "wal_level=replica", f"archive_command={script} %p %f"])
    restored = []
    try:
        site.init()
        log(f"== rep {rep}: pgbench -i -s {SCALE} (untimed)")
        pgbench(c, ["-i", "-q", "-s", str(SCALE)], "pgbench-init.log")
        c.psql("CHECKPOINT")
        res["db_mib"] = int(c.q("SELECT pg_database_size('postgres')")) / 1048576
        c.wait_archived()

        tw_data = lambda: du(tw_repo, exclude=os.path.join(tw_repo, "wal"))
        br_data = lambda: du(os.path.join(br_repo, "backup"))
        tw_wal = lambda: du(os.path.join(tw_repo, "wal"))
        br_wal = lambda: du(os.path.join(br_repo, "archive"))

        def backups(phase, br_type):
            """Both tools, tapwork first on odd reps and pgBackRest first on even
            ones; each starts from the same state: the archiver caught up, a
            CHECKPOINT just done (untimed: otherwise the first tool's
            pg_backup_start pays the flush of the workload's dirty buffers and
            the second's finds none) and a warm cache."""
            order = tool_order(rep)
            for who in order:
                c.psql("CHECKPOINT")
                c.wait_archived()
                before = tw_data() if who == "tw" else br_data()
                if who == "tw":
                    m = timed(site.tw_backup(), f"tw-{phase}-{rep}.log", env=env_tw)
                    m["growth"] = tw_data() - before
                else:
                    m = timed(as_pg(["pgbackrest", f"--config={conf}", "--stanza=bench", "backup",
                                     f"--type={br_type}"]), f"br-{phase}-{rep}.log")
                    m["growth"] = br_data() - before
                for k, v in m.items():
                    res[f"{who}_{phase}_{k}"] = v
            c.backlog(phase, res)
            log(f"  {phase}: tapwork {res[f'tw_{phase}_wall']:.1f} s "
                f"({res[f'tw_{phase}_cpu']:.1f} CPU-s, {res[f'tw_{phase}_growth'] / 1048576:.1f} MiB), "
                f"pgbackrest {res[f'br_{phase}_wall']:.1f} s ({res[f'br_{phase}_cpu']:.1f} CPU-s, "
                f"{res[f'br_{phase}_growth'] / 1048576:.1f} MiB)")

        log("== full backups")
        backups("full", "full")
        tw_full, br_full = site.tw_newest(), site.br_newest()

        log(f"== workload: pgbench -c 2 -j 2 -t {CLIENT_TX} (two halves; the PITR target between)")
        c.wait_archived()
        w0, b0 = tw_wal(), br_wal()
        t0 = time.monotonic()
        tps1 = pgbench(c, ["-c", "2", "-j", "2", "-t", str(CLIENT_TX // 2)], "pgbench-run.log")
        target = c.q("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', "
                     "'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
        history_at_target = int(c.q("SELECT count(*) FROM pgbench_history"))
        time.sleep(0.01)
        tps2 = pgbench(c, ["-c", "2", "-j", "2", "-t", str(CLIENT_TX - CLIENT_TX // 2)],
                       "pgbench-run.log")
        res["workload_wall"] = time.monotonic() - t0
        res["workload_tps"] = (tps1 + tps2) / 2
        c.backlog("workload", res)
        c.wait_archived()
        res["tw_workload_wal"], res["br_workload_wal"] = tw_wal() - w0, br_wal() - b0
        log(f"  {res['workload_tps']:.0f} TPS (both archiving); WAL stored: tapwork "
            f"{res['tw_workload_wal'] / 1048576:.1f} MiB, pgbackrest {res['br_workload_wal'] / 1048576:.1f} MiB; "
            f".ready at the end: {res['ready_workload']} (none after {res['drain_workload']:.1f} s)")

        log("== incremental after the workload")
        backups("incr1", "incr")
        log(f"== change {CHANGE_ROWS} rows, then incremental")
        step = max(1, SCALE * 100000 // CHANGE_ROWS)
        c.psql(f"UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid IN "
               f"(SELECT g * {step} FROM generate_series(1, {CHANGE_ROWS}) g)")
        backups("incr2", "incr")

        log(f"== PITR restore to {target} (inside the workload), replay included")
        for who in tool_order(rep):
            dest = j(f"r-{who}")
            os.makedirs(dest, mode=0o700)
            os.chown(dest, PG.pw_uid, PG.pw_gid)
            drop_caches()
            t0 = time.monotonic()
            if who == "tw":
                m = timed(as_pg([TW, "restore", "-q", "-r", tw_repo, "--password-file", pw,
                                 "--pg-password-file", pw, tw_full, "--pg-data", dest,
                                 "--pg-target-time", target, "--pg-target-action", "promote"]),
                          f"tw-restore-{rep}.log", env=env_tw)
            else:
                m = timed(as_pg(["pgbackrest", f"--config={conf}", "--stanza=bench",
                                 f"--pg1-path={dest}", "restore", f"--set={br_full}",
                                 "--type=time", f"--target={target}", "--target-action=promote"]),
                          f"br-restore-{rep}.log")
            rport = free_port()
            rc = Cluster(work, rport, dest, conf=["archive_mode=off"], initdb=False)
            restored.append(rc)
            rc.wait_ready()
            res[f"{who}_pitr_wall"] = time.monotonic() - t0
            res[f"{who}_pitr_restore_wall"] = m["wall"]
            res[f"{who}_pitr_cpu"] = m["cpu"]
            res[f"{who}_pitr_rss_mib"] = m["rss_mib"]
            got = int(rc.q("SELECT count(*) FROM pgbench_history"))
            if got != history_at_target:
                die(f"{who}: restored pgbench_history has {got} rows, {history_at_target} at the target")
            rc.stop()
            restored.remove(rc)
            shutil.rmtree(dest, ignore_errors=True)
        log(f"  tapwork {res['tw_pitr_wall']:.1f} s, pgbackrest {res['br_pitr_wall']:.1f} s "
            f"(both restored exactly the {history_at_target} pgbench_history rows at the target)")

        log(f"== pgbench TPS: archive_command = /bin/true, tapwork, pgbackrest ({TPS_SECS} s each, 2 rounds)")
        for m_ in ("true", "tw", "br"):
            res[f"tps_{m_}"] = []
        for rnd in range(2):
            for m_ in (("true", "tw", "br") if rnd == 0 else ("br", "tw", "true")):
                c.wait_archived()
                set_mode(m_)
                # every run starts right after a checkpoint: none of them pays
                # for a timed one (checkpoint_timeout) that lands inside it
                c.psql("CHECKPOINT")
                c.psql("SELECT pg_switch_wal()")
                c.wait_archived()
                res[f"tps_{m_}"].append(pgbench(c, ["-c", "2", "-j", "2", "-T", str(TPS_SECS)],
                                                "pgbench-tps.log"))
                c.backlog(f"tps_{m_}_{rnd}", res)
        for m_ in ("true", "tw", "br"):
            res[f"tps_{m_}"] = statistics.mean(res[f"tps_{m_}"])
        set_mode("both")
        log(f"  TPS: /bin/true {res['tps_true']:.0f}, tapwork {res['tps_tw']:.0f}, "
            f"pgbackrest {res['tps_br']:.0f}")

        log(f"== archive-push latency: {PUSH_N} real segments, one process each")
        c.wait_archived()
        set_mode("copy")
        start = c.q("SELECT pg_current_wal_lsn()")
        while int(c.q(f"SELECT pg_current_wal_lsn() - '{start}'")) < (PUSH_N + 2) * 16777216:
            c.psql("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 11 = 0")
        c.psql("SELECT pg_switch_wal()")
        deadline = time.monotonic() + 600
        while len([f for f in os.listdir(j("walcopy")) if not f.endswith(".tmp")]) < PUSH_N:
            if time.monotonic() > deadline:
                die("WAL copies missing")
            time.sleep(0.2)
        segs = sorted(f for f in os.listdir(j("walcopy")) if len(f) == 24)[:PUSH_N]
        chown(j("walcopy"))
        lat = {"tw": [], "br": []}
        cpu = {"tw": [], "br": []}
        for i, s in enumerate(segs):
            p = j("walcopy", s)
            for who in (("tw", "br") if i % 2 else ("br", "tw")):
                if who == "tw":
                    m = timed(as_pg([TW, "pg", "archive-push", "-q", "-r", tw_repo,
                                     "--password-file", pw, "--pg-data", data, p]),
                              f"tw-push-{rep}.log")
                else:
                    m = timed(as_pg(["pgbackrest", f"--config={conf}", "--stanza=bench",
                                     "archive-push", p]), f"br-push-{rep}.log")
                lat[who].append(m["wall"])
                cpu[who].append(m["cpu"])
        for who in ("tw", "br"):
            res[f"{who}_push_p50_ms"] = statistics.median(lat[who]) * 1000
            res[f"{who}_push_cpu_ms"] = statistics.mean(cpu[who]) * 1000
        set_mode("both")
        res["tw_wal_total"], res["br_wal_total"] = tw_wal(), br_wal()
        log(f"  p50: tapwork {res['tw_push_p50_ms']:.0f} ms, pgbackrest {res['br_push_p50_ms']:.0f} ms")

        log("== logical: pg_dump | restic backup --stdin (first untimed, then timed incremental)")
        rrepo = j("restic-repo")
        renv = dict(E, RESTIC_PASSWORD=PW_TEXT, RESTIC_REPOSITORY=rrepo,
                    RESTIC_CACHE_DIR=j("restic-cache"))
        subprocess.run(["restic", "init", "-q"], env=renv, capture_output=True, check=True)
        dump = (f"{PG_BIN}/pg_dump -h 127.0.0.1 -p {port} -U postgres --format=custom "
                f"--compress=0 postgres | restic backup -q --stdin --stdin-filename postgres.dump")
        timed(dump, f"restic-{rep}.log", env=renv, shell=True)
        # tapwork's parent for the comparison is taken at the same state as
        # restic's first dump (untimed too): both then back up one change,
        # the 100 rows below, not everything the TPS and push phases wrote
        c.wait_archived()
        timed(site.tw_backup(), f"tw-incr3-{rep}.log", env=env_tw)
        c.psql(f"UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid IN "
               f"(SELECT g * {step} + 1 FROM generate_series(1, {CHANGE_ROWS}) g)")
        m = timed(dump, f"restic-{rep}.log", env=renv, shell=True)
        res["restic_incr_wall"], res["restic_incr_cpu"] = m["wall"], m["cpu"]
        # and tapwork's physical incremental of the same change, measured again here
        c.wait_archived()
        m = timed(site.tw_backup(), f"tw-incr3-{rep}.log", env=env_tw)
        res["tw_incr3_wall"], res["tw_incr3_cpu"] = m["wall"], m["cpu"]
        log(f"  pg_dump | restic: {res['restic_incr_wall']:.1f} s; tapwork physical incremental "
            f"{res['tw_incr3_wall']:.1f} s")
    finally:
        for rc in restored:
            rc.stop()
        c.stop()
        if not KEEP:
            shutil.rmtree(work, ignore_errors=True)
    return res


def main():
    os.makedirs(RAW, exist_ok=True)
    os.makedirs(CACHE, exist_ok=True)
    for t in ("pgbackrest", "restic", "setpriv", TIME):
        if shutil.which(t) is None:
            die(f"missing {t} (scripts/deps.sh --bench)")
    if not os.access(TW, os.X_OK):
        die(f"no {TW} (make release)")
    env = (f"# pitr bench {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} on "
           f"{' '.join(os.uname()[2:5])}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}\n"
           f"# {subprocess.run([TW, 'version'], capture_output=True, text=True).stdout.splitlines()[0]}; "
           f"{subprocess.run(['pgbackrest', 'version'], capture_output=True, text=True).stdout.strip()}; "
           f"{subprocess.run([os.path.join(PG_BIN, 'postgres'), '--version'], capture_output=True, text=True).stdout.strip()}\n"
           f"# PITR_SCALE={SCALE} PITR_TX={CLIENT_TX} PITR_CHANGE_ROWS={CHANGE_ROWS} REPS={REPS} "
           f"PUSH_N={PUSH_N} TPS_SECS={TPS_SECS}\n")
    with open(os.path.join(OUT, "env.txt"), "w") as f:
        f.write(env)
    log(env.rstrip())
    reps = []
    for rep in range(1, REPS + 1):
        reps.append(one_rep(rep))
        with open(os.path.join(RAW, "reps.json"), "w") as f:
            json.dump(reps, f, indent=1)
    med = {k: statistics.median(r[k] for r in reps) for k in reps[0]}
    mib = lambda b: b / 1048576
    rows = []

    def row(name, tw, br, better_low=True, fmt="{:.2f}", target=""):
        ratio = (br / tw if better_low else tw / br) if tw and br else float("nan")
        rows.append(f"{name:<44} {fmt.format(tw):>10} {fmt.format(br):>10} {ratio:>7.2f}  {target}")

    for ph, label in (("full", "full backup"), ("incr1", f"incr after {2 * CLIENT_TX} tx"),
                      ("incr2", f"incr after {CHANGE_ROWS} rows")):
        row(f"{label}: wall s", med[f"tw_{ph}_wall"], med[f"br_{ph}_wall"],
            target={"full": ">= 1.3", "incr1": ">= 1.5"}.get(ph, ""))
        row(f"{label}: CPU-s (user+sys)", med[f"tw_{ph}_cpu"], med[f"br_{ph}_cpu"],
            target=">= 1.0" if ph == "full" else "")
        row(f"{label}: peak RSS MiB", med[f"tw_{ph}_rss_mib"], med[f"br_{ph}_rss_mib"],
            fmt="{:.0f}", target="tapwork <= 256" if ph == "full" else "")
        row(f"{label}: repository growth MiB", mib(med[f"tw_{ph}_growth"]),
            mib(med[f"br_{ph}_growth"]), fmt="{:.1f}",
            target={"full": ">= 1.0", "incr1": ">= 2 (<= 0.5x)", "incr2": ">= 20 (<= 0.05x)"}[ph])
    row("workload WAL stored MiB", mib(med["tw_workload_wal"]), mib(med["br_workload_wal"]),
        fmt="{:.1f}", target=">= 0.95 (<= 1.05x)")
    row("all WAL stored MiB", mib(med["tw_wal_total"]), mib(med["br_wal_total"]), fmt="{:.1f}")
    row("archive-push p50 ms (one 16 MiB segment)", med["tw_push_p50_ms"], med["br_push_p50_ms"],
        fmt="{:.0f}", target=">= 1.0")
    row("archive-push CPU ms per segment", med["tw_push_cpu_ms"], med["br_push_cpu_ms"], fmt="{:.0f}")
    row("PITR restore + replay to ready, s", med["tw_pitr_wall"], med["br_pitr_wall"],
        target=">= 1.5")
    row("  of which the restore command, s", med["tw_pitr_restore_wall"],
        med["br_pitr_restore_wall"])
    row("  restore command CPU-s", med["tw_pitr_cpu"], med["br_pitr_cpu"])
    row("pgbench TPS, archiving by the tool", med["tps_tw"], med["tps_br"], better_low=False,
        fmt="{:.0f}")
    lines = [
        f"# tapwork vs pgBackRest 2.45 (zst 3, process-max=2, bundling, aes-256-cbc), database "
        f"{med['db_mib']:.0f} MiB (pgbench -s {SCALE}, initdb -k), medians of {REPS}, "
        f"{os.cpu_count()} CPUs (shared machine)",
        "# ratio: pgBackRest / tapwork for times, sizes, RSS (> 1: tapwork better); tapwork / "
        "pgBackRest for TPS",
        f"{'metric':<44} {'tapwork':>10} {'pgbackrest':>10} {'ratio':>7}  target (issue 12)",
    ] + rows + [
        f"pgbench TPS with archive_command=/bin/true: {med['tps_true']:.0f}; tapwork archiving / "
        f"true = {med['tps_tw'] / med['tps_true']:.2f} (target >= 0.95), pgBackRest / true = "
        f"{med['tps_br'] / med['tps_true']:.2f}; workload TPS with both archiving: "
        f"{med['workload_tps']:.0f}",
        ".ready files at the end of each phase, max over reps (seconds until none): "
        + ", ".join(f"{k[6:]} {max(r[k] for r in reps)} ({max(r['drain_' + k[6:]] for r in reps):.1f})"
                    for k in sorted(reps[0]) if k.startswith("ready_")),
        f"logical path, same database and change: pg_dump | restic --stdin incremental "
        f"{med['restic_incr_wall']:.2f} s ({med['restic_incr_cpu']:.1f} CPU-s) vs tapwork physical "
        f"incremental {med['tw_incr3_wall']:.2f} s ({med['tw_incr3_cpu']:.1f} CPU-s): "
        f"{med['restic_incr_wall'] / med['tw_incr3_wall']:.2f}x (target >= 3)",
        f"# command: PITR_SCALE={SCALE} PITR_TX={CLIENT_TX} REPS={REPS} PUSH_N={PUSH_N} "
        f"TPS_SECS={TPS_SECS} PITR_FIRST={FIRST} bench/pitr.sh",
    ]
    with open(os.path.join(OUT, "summary.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    log("\n".join(lines))


if __name__ == "__main__":
    main()

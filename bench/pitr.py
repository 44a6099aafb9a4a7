#!/usr/bin/python3
"""bench/pitr.py — the PostgreSQL point-in-time-recovery protocol of issue 12:
tapwork vs pgBackRest 2.45, side by side in one run (bench/pitr.sh runs this;
settings and output are described there)."""
import json
import os
import resource
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
ONLY = E.get("PITR_ONLY", "")  # "tps" / "logical": setup + that phase only
LOGICAL_ROUNDS = int(E.get("LOGICAL_ROUNDS", "3"))
TPS_ROUNDS = int(E.get("TPS_ROUNDS", "6" if ONLY == "tps" else "2"))
FIRST = E.get("PITR_FIRST", "tw")  # who goes first in odd reps (REPS=1 twice: tw, then br)


def write_summary(lines):
    """$OUT/summary.txt, and the same on the log."""
    with open(os.path.join(OUT, "summary.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    log("\n".join(lines))


def tool_order(rep):
    """tapwork first in odd reps and pgBackRest in even ones (PITR_FIRST=br
    swaps them)."""
    return ("tw", "br") if (rep % 2 == 1) == (FIRST == "tw") else ("br", "tw")


# the archive_command of each TPS mode: true = /bin/true, tw = tapwork, br =
# pgBackRest, twn = tapwork under nice -n TPS_NICE, twb = the tapwork binary
# TAPWORK_BASE_BIN (e.g. main's build, an A/B in one run; into a repository
# of its own, initialized by that binary; in the default modes when set)
BASE = os.path.realpath(E["TAPWORK_BASE_BIN"]) if E.get("TAPWORK_BASE_BIN") else ""
MODES = tuple(E.get("TPS_MODES", "true tw br" + (" twb" if BASE else "")).split())
TPS_NICE = int(E.get("TPS_NICE", "10"))


def mode_order(rnd):
    """The order of the modes in round rnd: a rotation of MODES, reversed in
    odd rounds. Over 2 x len(MODES) rounds each mode runs equally often in
    each position, and each round is followed by its mirror."""
    k = (rnd // 2) % len(MODES)
    o = MODES[k:] + MODES[:k]
    return o[::-1] if rnd % 2 else o


def prewarm(datadir):
    """Read every relation file once (page cache), so no TPS run pays for
    reading the database back in after a restart or a dropped cache."""
    for root, dirs, files in os.walk(os.path.join(datadir, "base")):
        for f in files:
            try:
                with open(os.path.join(root, f), "rb", buffering=0) as fh:
                    while fh.read(1 << 20):
                        pass
            except OSError:
                pass


def proc_cpu_children(pid):
    """CPU-seconds of the waited-for children of pid (the archiver waits for
    every archive_command it starts)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def pg_cpu(c):
    """CPU-seconds of the whole server: every process of the postmaster's
    tree, the children each has waited for included (backends that exited,
    the archive commands)."""
    with open(os.path.join(c.dir, "postmaster.pid")) as f:
        pm = int(f.readline())
    kids, stat = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kids.setdefault(int(fields[1]), []).append(int(d))
        stat[int(d)] = sum(int(x) for x in fields[11:15])
    total, todo = 0, [pm]
    while todo:
        p = todo.pop()
        total += stat.get(p, 0)
        todo += kids.get(p, [])
    return total / os.sysconf("SC_CLK_TCK")


def machine_cpu():
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def tps_phase(c, set_mode, res, rounds):
    """TPS_ROUNDS rounds of one pgbench -c 2 -j 2 -T TPS_SECS run per mode
    (archive_command = /bin/true, tapwork, pgBackRest), in the order ORDERS
    gives; every run starts right after a CHECKPOINT with the archiver caught
    up (none pays for a timed checkpoint landing inside it). Per run: TPS,
    WAL written, segments archived, the archiver's CPU (its children: the
    archive commands), how busy the whole machine was, the .ready backlog at
    its end. res["tps_MODE"] is the median; res["tps_runs"] has every run."""
    arch = c.q("SELECT pid FROM pg_stat_activity WHERE backend_type = 'archiver'")
    runs = []
    for rnd in range(rounds):
        for m_ in mode_order(rnd):
            c.wait_archived()
            set_mode(m_)
            c.psql("CHECKPOINT")
            c.psql("SELECT pg_switch_wal()")
            c.wait_archived()
            lsn0 = c.q("SELECT pg_current_wal_lsn()")
            n0 = int(c.q("SELECT archived_count FROM pg_stat_archiver"))
            a0 = proc_cpu_children(arch) if arch else 0.0
            p0, ru0 = pg_cpu(c), resource.getrusage(resource.RUSAGE_CHILDREN)
            b0, t0 = machine_cpu()
            load0 = os.getloadavg()[0]
            tps, ntx = pgbench(c, ["-c", "2", "-j", "2", "-T", str(TPS_SECS)], "pgbench-tps.log",
                               with_count=True)
            b1, t1 = machine_cpu()
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            key = f"tps_{m_}_{rnd}"
            wal = int(c.q(f"SELECT pg_current_wal_lsn() - '{lsn0}'"))
            # the segments of this run are archived (and their CPU counted)
            # once the backlog has drained
            c.backlog(key, res)
            acpu = (proc_cpu_children(arch) if arch else 0.0) - a0
            bench_cpu = ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime
            total = pg_cpu(c) - p0 + bench_cpu
            r = {"mode": m_, "round": rnd, "tps": tps, "tx": ntx, "wal_mib": wal / 1048576,
                 "segments": int(c.q("SELECT archived_count FROM pg_stat_archiver")) - n0,
                 "archiver_cpu": acpu, "pgbench_cpu": bench_cpu, "total_cpu": total,
                 "tx_per_cpu_s": ntx / total if total > 0 else 0.0,
                 "machine_busy": (b1 - b0) / max(1, t1 - t0), "load": load0,
                 "ready": res[f"ready_{key}"], "drain": res[f"drain_{key}"]}
            runs.append(r)
            log(f"  round {rnd} {m_:>4}: {tps:7.0f} TPS, {r['tx_per_cpu_s']:5.0f} tx/CPU-s "
                f"({total:5.1f} CPU-s), {r['wal_mib']:6.0f} MiB WAL, "
                f"{r['segments']:3d} segments, archiver {r['archiver_cpu']:5.2f} CPU-s, "
                f"machine {100 * r['machine_busy']:3.0f}% busy (load {load0:.1f}), "
                f".ready at the end {r['ready']}")
    for m_ in MODES:
        res[f"tps_{m_}"] = statistics.median(r["tps"] for r in runs if r["mode"] == m_)
    res["tps_runs"] = runs
    return runs


def tps_summary(runs):
    """Lines: per mode the median, spread and every run; the ratios of the
    medians and the median of the per-round ratios (each round pairs the
    modes at nearly the same time)."""
    med = {m_: statistics.median(r["tps"] for r in runs if r["mode"] == m_) for m_ in MODES}
    lines = [f"{'mode':<10} {'median':>8} {'min':>8} {'max':>8} {'spread':>7}  "
             f"{'tx/CPU-s':>8} {'CPU ms/seg':>10} {'MiB WAL':>8}  runs (TPS, in round order)"]
    for m_ in MODES:
        rs = [r for r in runs if r["mode"] == m_]
        t = [r["tps"] for r in rs]
        segs = sum(r["segments"] for r in rs)
        cpu = sum(r["archiver_cpu"] for r in rs) / segs * 1000 if segs else float("nan")
        lines.append(f"{m_:<10} {med[m_]:8.0f} {min(t):8.0f} {max(t):8.0f} "
                     f"{100 * (max(t) - min(t)) / med[m_]:6.1f}%  "
                     f"{statistics.median(r['tx_per_cpu_s'] for r in rs):8.0f} {cpu:10.0f} "
                     f"{statistics.median(r['wal_mib'] for r in rs):8.0f}  "
                     + " ".join(f"{x:.0f}" for x in t))
    rounds = sorted({r["round"] for r in runs})
    by = {(r["round"], r["mode"]): r["tps"] for r in runs}
    for m_ in (x for x in MODES if x != "true"):
        paired = [by[(k, m_)] / by[(k, "true")] for k in rounds]
        lines.append(f"{m_} / true: ratio of medians {med[m_] / med['true']:.3f}; per-round "
                     f"ratios median {statistics.median(paired):.3f} (min {min(paired):.3f}, max "
                     f"{max(paired):.3f}): " + " ".join(f"{x:.3f}" for x in paired)
                     + "  (target >= 0.95)")
        eff = statistics.median(r["tx_per_cpu_s"] for r in runs if r["mode"] == m_) / \
            statistics.median(r["tx_per_cpu_s"] for r in runs if r["mode"] == "true")
        lines.append(f"{m_} / true: transactions per CPU-second of server + pgbench + archive "
                     f"commands, ratio of medians {eff:.3f} (what TPS would be on 2 otherwise idle "
                     f"CPUs where the workload is CPU-bound)")
    lines.append(f"machine busy during the runs: median {100 * statistics.median(r['machine_busy'] for r in runs):.0f}%"
                 f"; .ready left at the end of a run: max {max(r['ready'] for r in runs)} "
                 f"(drained within {max(r['drain'] for r in runs):.1f} s)")
    return lines


def tps_only():
    """PITR_ONLY=tps: setup (initdb -k, pgbench -i -s PITR_SCALE with
    archive_command = /bin/true, both repositories initialized and one segment
    pushed by each tool), the page cache warmed, one untimed warm-up run, then
    the TPS phase alone with TPS_ROUNDS rounds."""
    site, set_mode = archive_site("pitr-tps.")
    set_mode("true")
    c = site.start(["archive_mode=on", "wal_level=replica",
                    f"archive_command={site.script} %p %f"])
    res = {}
    try:
        init_db(site, c, res, "== pgbench -i -s {} (untimed, archive_command = /bin/true)")
        set_mode("both")
        c.wait_archived()  # each tool has registered the cluster and pushed once
        prewarm(site.data)
        set_mode("true")
        pgbench(c, ["-c", "2", "-j", "2", "-T", str(min(TPS_SECS, 10))], "pgbench-warmup.log")
        log(f"== pgbench TPS: {TPS_ROUNDS} rounds of {', '.join(MODES)}, {TPS_SECS} s each")
        runs = tps_phase(c, set_mode, res, TPS_ROUNDS)
    finally:
        c.stop()
        if not KEEP:
            shutil.rmtree(site.work, ignore_errors=True)
    with open(os.path.join(RAW, "tps.json"), "w") as f:
        json.dump(runs, f, indent=1)
    lines = [f"# pgbench -c 2 -j 2 -T {TPS_SECS}, {TPS_ROUNDS} rounds (orders rotate), database "
             f"{res['db_mib']:.0f} MiB (pgbench -s {SCALE}, initdb -k), {os.cpu_count()} CPUs "
             f"(shared machine); CPU ms/seg: the archiver's children per archived segment"]
    lines += tps_summary(runs)
    lines.append(f"# command: PITR_ONLY=tps PITR_SCALE={SCALE} TPS_SECS={TPS_SECS} "
                 f"TPS_ROUNDS={TPS_ROUNDS} TPS_MODES='{' '.join(MODES)}' TPS_NICE={TPS_NICE} "
                 f"bench/pitr.sh")
    write_summary(lines)


def logical_init(site, rep):
    """restic's repository and its first pg_dump | restic --stdin (untimed).
    Returns (restic's environment, the dump command)."""
    j = site.j
    renv = dict(E, RESTIC_PASSWORD=PW_TEXT, RESTIC_REPOSITORY=j("restic-repo"),
                RESTIC_CACHE_DIR=j("restic-cache"))
    subprocess.run(["restic", "init", "-q"], env=renv, capture_output=True, check=True)
    dump = (f"{PG_BIN}/pg_dump -h 127.0.0.1 -p {site.port} -U postgres --format=custom "
            f"--compress=0 postgres | restic backup -q --stdin --stdin-filename postgres.dump")
    timed(dump, f"restic-{rep}.log", env=renv, shell=True)
    return renv, dump


def logical_round(site, c, renv, dump, rep, k, restic_first):
    """One change, backed up by both paths: tapwork's parent is taken
    (untimed) at the state of restic's last dump, CHANGE_ROWS rows of
    pgbench_accounts spread over the table are updated (row set k: every round
    another), then the timed pg_dump | restic incremental and the timed tapwork
    physical incremental, in the order restic_first says."""
    c.wait_archived()
    timed(site.tw_backup(), f"tw-incr3-{rep}.log", env=site.env_tw)
    step = max(1, SCALE * 100000 // CHANGE_ROWS)
    c.psql(f"UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid IN "
           f"(SELECT g * {step} + {1 + k % (step - 1 or 1)} FROM generate_series(0, {CHANGE_ROWS - 1}) g)")
    res = {}
    for who in (("restic", "tw") if restic_first else ("tw", "restic")):
        if who == "restic":
            m = timed(dump, f"restic-{rep}.log", env=renv, shell=True)
            res["restic_incr_wall"], res["restic_incr_cpu"] = m["wall"], m["cpu"]
        else:
            c.wait_archived()
            m = timed(site.tw_backup(), f"tw-incr3-{rep}.log", env=site.env_tw)
            res["tw_incr3_wall"], res["tw_incr3_cpu"] = m["wall"], m["cpu"]
    return res


def logical_only():
    """PITR_ONLY=logical: setup (initdb -k, pgbench -i -s PITR_SCALE, archiving
    by tapwork only), restic's first dump, then LOGICAL_ROUNDS rounds of one
    CHANGE_ROWS-row change backed up by both (who goes first alternates)."""
    site, set_mode = archive_site("pitr-logical.")
    set_mode("tw")
    c = site.start(["archive_mode=on", "wal_level=replica",
                    f"archive_command={site.script} %p %f"])
    res, rounds = {}, []
    try:
        init_db(site, c, res, "== pgbench -i -s {} (untimed, archiving by tapwork)")
        renv, dump = logical_init(site, 0)
        for k in range(LOGICAL_ROUNDS):
            r = logical_round(site, c, renv, dump, 0, k, restic_first=k % 2 == 0)
            r["ratio"] = r["restic_incr_wall"] / r["tw_incr3_wall"]
            rounds.append(r)
            log(f"  round {k + 1}: pg_dump | restic {r['restic_incr_wall']:.2f} s, tapwork "
                f"{r['tw_incr3_wall']:.2f} s: {r['ratio']:.2f}x")
    finally:
        c.stop()
        if not KEEP:
            shutil.rmtree(site.work, ignore_errors=True)
    with open(os.path.join(RAW, "logical.json"), "w") as f:
        json.dump(rounds, f, indent=1)
    med = lambda k: statistics.median(r[k] for r in rounds)
    lines = [
        f"# logical path: the same {CHANGE_ROWS}-row change of pgbench_accounts backed up by "
        f"pg_dump -Fc -Z0 | restic backup --stdin and by tapwork backup --pg-data; database "
        f"{res['db_mib']:.0f} MiB (pgbench -s {SCALE}, initdb -k); {LOGICAL_ROUNDS} rounds, "
        f"who goes first alternates",
        f"{'':<30} {'median':>8}  rounds",
        f"{'pg_dump | restic wall s':<30} {med('restic_incr_wall'):>8.2f}  "
        + " ".join(f"{r['restic_incr_wall']:.2f}" for r in rounds),
        f"{'pg_dump | restic CPU-s':<30} {med('restic_incr_cpu'):>8.2f}  "
        + " ".join(f"{r['restic_incr_cpu']:.2f}" for r in rounds),
        f"{'tapwork physical wall s':<30} {med('tw_incr3_wall'):>8.2f}  "
        + " ".join(f"{r['tw_incr3_wall']:.2f}" for r in rounds),
        f"{'tapwork physical CPU-s':<30} {med('tw_incr3_cpu'):>8.2f}  "
        + " ".join(f"{r['tw_incr3_cpu']:.2f}" for r in rounds),
        f"ratio of the medians {med('restic_incr_wall') / med('tw_incr3_wall'):.2f}x, median of the "
        f"per-round ratios {med('ratio'):.2f}x (target >= 3)",
        f"# command: PITR_ONLY=logical PITR_SCALE={SCALE} LOGICAL_ROUNDS={LOGICAL_ROUNDS} "
        f"PITR_CHANGE_ROWS={CHANGE_ROWS} bench/pitr.sh",
    ]
    write_summary(lines)


def init_db(site, c, res, what):
    """Both repositories initialized, pgbench -i -s SCALE loaded and
    checkpointed, its size in res["db_mib"], the archiver caught up."""
    site.init()
    if BASE and subprocess.run(as_pg([BASE, "repo", "init", "-q", "-r", site.base_repo,
                                      "--password-file", site.pw]),
                               capture_output=True).returncode != 0:
        die("tapwork repo init (TAPWORK_BASE_BIN) failed")
    log(what.format(SCALE))
    pgbench(c, ["-i", "-q", "-s", str(SCALE)], "pgbench-init.log")
    c.psql("CHECKPOINT")
    res["db_mib"] = int(c.q("SELECT pg_database_size('postgres')")) / 1048576
    c.wait_archived()


def archive_site(prefix):
    """A bench site whose archive_command dispatches on a mode file: both
    tools during the protocol, one tool or /bin/true for the TPS comparison,
    a copy for the push latency. Returns (site, set_mode)."""
    site = Site(prefix)
    j = site.j
    mode = j("archive.mode")
    for d in ("walcopy", "restic-cache"):
        os.makedirs(j(d))
    tw_push, br_push = site.tw_push, site.br_push
    site.base_repo = j("tw-base-repo")
    twb_push = f"{BASE} pg archive-push -q -r {site.base_repo} --password-file {site.pw}"
    twb_both = f'{twb_push} "$1" && ' if BASE and ONLY == "tps" else ""
    site.script = site.archive_script(f"""read -r m < {mode}
case $m in
true) exec /bin/true ;;
tw) exec {tw_push} "$1" ;;
twn) exec nice -n {TPS_NICE} {tw_push} "$1" ;;
twb) exec {twb_push} "$1" ;;
br) exec {br_push} "$1" ;;
both) {tw_push} "$1" && {twb_both}exec {br_push} "$1" ;;
copy) cp "$1" {j("walcopy")}/"$2".tmp && exec mv {j("walcopy")}/"$2".tmp {j("walcopy")}/"$2" ;;
esac
exit 1
""")

    def set_mode(m):
        with open(mode, "w") as f:
            f.write(m + "\n")

    return site, set_mode


def one_rep(rep):
    site, set_mode = archive_site("pitr.")
    work, j = site.work, site.j
    data, tw_repo, br_repo, pw, conf = site.data, site.tw_repo, site.br_repo, site.pw, site.conf
    env_tw, script = site.env_tw, site.script
    set_mode("both")
    res = {}
    c = site.start(["archive_mode=on", "wal_level=replica", f"archive_command={script} %p %f"])
    restored = []
    try:
        init_db(site, c, res, f"== rep {rep}: pgbench -i -s {{}} (untimed)")

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

        log(f"== pgbench TPS: archive_command = /bin/true, tapwork, pgbackrest "
            f"({TPS_SECS} s each, {TPS_ROUNDS} rounds)")
        # the restore phase dropped the page cache: warm it first, or the
        # runs that come first pay for reading the database back in
        prewarm(data)
        tps_phase(c, set_mode, res, TPS_ROUNDS)
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
        renv, dump = logical_init(site, rep)
        res.update(logical_round(site, c, renv, dump, rep, 0, restic_first=True))
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
           f"PUSH_N={PUSH_N} TPS_SECS={TPS_SECS} TPS_ROUNDS={TPS_ROUNDS} PITR_ONLY={ONLY} "
           f"TPS_MODES='{' '.join(MODES)}' TPS_NICE={TPS_NICE}\n")
    with open(os.path.join(OUT, "env.txt"), "w") as f:
        f.write(env)
    log(env.rstrip())
    if "true" not in MODES or not set(MODES) <= {"true", "tw", "br", "twn", "twb"} or \
            (not ONLY and not {"tw", "br"} <= set(MODES)) or ("twb" in MODES and not BASE):
        die(f"TPS_MODES={' '.join(MODES)}: 'true' and any of tw br twn twb (the whole protocol: "
            f"tw and br too; twb: TAPWORK_BASE_BIN)")
    if ONLY == "tps":
        return tps_only()
    if ONLY == "logical":
        return logical_only()
    if ONLY:
        die(f"PITR_ONLY={ONLY}: only 'tps' and 'logical' are known")
    reps = []
    for rep in range(1, REPS + 1):
        reps.append(one_rep(rep))
        with open(os.path.join(RAW, "reps.json"), "w") as f:
            json.dump(reps, f, indent=1)
    med = {k: statistics.median(r[k] for r in reps) for k in reps[0] if k != "tps_runs"}
    tps_runs = [dict(r, round=(i, r["round"])) for i, rep in enumerate(reps) for r in rep["tps_runs"]]
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
        f"pgbench TPS runs ({TPS_SECS} s each, {TPS_ROUNDS} rounds per rep):",
    ] + ["  " + x for x in tps_summary(tps_runs)] + [
        ".ready files at the end of each phase, max over reps (seconds until none): "
        + ", ".join(f"{k[6:]} {max(r[k] for r in reps)} ({max(r['drain_' + k[6:]] for r in reps):.1f})"
                    for k in sorted(reps[0]) if k.startswith("ready_")),
        f"logical path, same database and change: pg_dump | restic --stdin incremental "
        f"{med['restic_incr_wall']:.2f} s ({med['restic_incr_cpu']:.1f} CPU-s) vs tapwork physical "
        f"incremental {med['tw_incr3_wall']:.2f} s ({med['tw_incr3_cpu']:.1f} CPU-s): "
        f"{med['restic_incr_wall'] / med['tw_incr3_wall']:.2f}x (target >= 3)",
        f"# command: PITR_SCALE={SCALE} PITR_TX={CLIENT_TX} REPS={REPS} PUSH_N={PUSH_N} "
        f"TPS_SECS={TPS_SECS} TPS_ROUNDS={TPS_ROUNDS} PITR_FIRST={FIRST} bench/pitr.sh",
    ]
    write_summary(lines)


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# bench/backup.sh — tapwork, restic and borg side by side on the same dataset.
#
# usage: bench/backup.sh [--help]          (all settings are environment variables)
#
# Per repetition (the contender order rotates every rep):
#   1. a fresh working copy of the cached dataset (bench/make-dataset.sh), read once
#      so every contender starts from a warm page cache
#   2. init + first (full) backup of every contender
#   3. ~1% of the files changed in place (every 100th file in path order: files of
#      16 KiB or more get 4 KiB overwritten in the middle, smaller ones get 1 KiB appended)
#   4. incremental backup of every contender
#   5. full restore of the latest snapshot (to a tmpfs by default), then, untimed,
#      every restored file compared with the source by size and SHA-256
#   6. full-data check (tapwork check --read-data, restic check --read-data,
#      borg check --verify-data)
# Each phase: wall time, user+sys CPU and peak RSS from /usr/bin/time; repository
# size (du -sb) after each backup. Nothing is pinned: the tools may use both CPUs.
#
# Contenders (CONTENDERS="tapwork restic borg"):
#   tapwork  tapwork repo init / backup / restore latest --target / check --read-data,
#            password in TAPWORK_PASSWORD; skipped with a message when `repo init` fails
#   restic   repository version 2, --compression auto (restic 0.14 default mode)
#   borg     borg 1.2, repokey encryption (BORG_ENCRYPTION), --compression zstd,3
#
# Env knobs (defaults):
#   DATASET_MIB=1024 (dataset size; e.g. 100 for a quick run)   DATASET=<path of a dataset tree>
#   REPS=1  NICE=0  CHECK=1 (0 skips the check phase)  RESTORE_TMPFS=1 (0 restores to disk)
#   TMPFS_SIZE=auto (2x dataset + 256 MiB)  PHASE_TIMEOUT=1800 s  BORG_ENCRYPTION=repokey
#   BENCH_CACHE=/var/tmp/tapwork-bench (dataset cache and scratch space)
#   STORE=local (local: repositories are directories under BENCH_CACHE;
#                s3: each contender's repository in its own bucket of its own moto_server,
#                started fresh per repetition on a free loopback port and stopped by PID;
#                borg has no S3 backend and is skipped; bench/backup-s3.sh sets this)
#   MOTO_SERVER=moto_server (resolved through pyenv when it is a shim)
#   TAPWORK_BIN=build/release/tapwork  OUT=bench/results/<stamp>/backup  KEEP_WORK=0
# Output: $OUT/runs.tsv (one row per phase), $OUT/summary.txt, $OUT/env.txt, $OUT/raw/
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=lib.sh
source "$HERE/lib.sh"

bl_args "$@"

DATASET_MIB=${DATASET_MIB:-1024}
REPS=${REPS:-1}
NICE=${NICE:-0}
CHECK=${CHECK:-1}
RESTORE_TMPFS=${RESTORE_TMPFS:-1}
TMPFS_SIZE=${TMPFS_SIZE:-auto}
PHASE_TIMEOUT=${PHASE_TIMEOUT:-1800}
BORG_ENCRYPTION=${BORG_ENCRYPTION:-repokey}
CONTENDERS=${CONTENDERS:-"tapwork restic borg"}
BENCH_CACHE=${BENCH_CACHE:-/var/tmp/tapwork-bench}
TAPWORK_BIN=${TAPWORK_BIN:-$ROOT/build/release/tapwork}
OUT=${OUT:-$HERE/results/$(bl_stamp)/backup}
KEEP_WORK=${KEEP_WORK:-0}
STORE=${STORE:-local}
ISSUE=${ISSUE:-5}
[[ $STORE == local || $STORE == s3 ]] || bl_die "STORE must be local or s3"
export NICE DATASET_MIB BENCH_CACHE

bl_need restic borg sha256sum du /usr/bin/time timeout
DATASET=${DATASET:-$("$HERE/make-dataset.sh")}
[[ -f $DATASET/.tapwork-bench-root ]] || bl_die "$DATASET is not a dataset made by make-dataset.sh"
mkdir -p "$OUT/raw" "$BENCH_CACHE"
WORK=$(mktemp -d "$BENCH_CACHE/run.XXXXXX")
bl_init
MOUNTED=0
cleanup_work() {
	if [[ $MOUNTED == 1 ]]; then umount "$WORK/restore" 2>/dev/null || umount -l "$WORK/restore" 2>/dev/null || true; fi
	[[ $KEEP_WORK == 1 ]] || rm -rf "$WORK"
}
BL_CLEANUP_HOOKS+=(cleanup_work)

SRC=$WORK/src/data
export TAPWORK_PASSWORD=bench-password RESTIC_PASSWORD=bench-password BORG_PASSPHRASE=bench-password
export BORG_BASE_DIR=$WORK/borg-home RESTIC_CACHE_DIR=$WORK/restic-cache
export AWS_ACCESS_KEY_ID=benchkey AWS_SECRET_ACCESS_KEY=benchsecret AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_REGION
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_CHECK_I_KNOW_WHAT_I_AM_DOING=YES

# ------------------------------------------------------------------ restore target
DATA_BYTES=$(du -sb "$DATASET" | cut -f1)
mkdir -p "$WORK/restore"
if [[ $RESTORE_TMPFS == 1 ]]; then
	[[ $TMPFS_SIZE == auto ]] && TMPFS_SIZE=$(((DATA_BYTES * 2 >> 20) + 256))m
	if mount -t tmpfs -o "size=$TMPFS_SIZE,mode=0755" tapwork-bench "$WORK/restore" 2>"$WORK/mount.err"; then
		MOUNTED=1
	else
		bl_say "note: could not mount a tmpfs ($(cat "$WORK/mount.err")); restoring to disk instead"
	fi
fi

# ------------------------------------------------------------------ S3 (moto_server)
declare -A MOTO_PORT=()
MOTO_PY=
if [[ $STORE == s3 ]]; then
	MOTO_SERVER=${MOTO_SERVER:-moto_server}
	if command -v pyenv >/dev/null 2>&1 && pyenv which "$MOTO_SERVER" >/dev/null 2>&1; then
		MOTO_SERVER=$(pyenv which "$MOTO_SERVER") # the real script, not the shim: its PID is moto's
	fi
	command -v "$MOTO_SERVER" >/dev/null 2>&1 || bl_die "moto_server not found (pip install 'moto[server]')"
	MOTO_PY=$(head -n 1 "$(command -v "$MOTO_SERVER")" | sed -n 's/^#! *//p')
	[[ -n $MOTO_PY ]] || MOTO_PY=$BL_PY
fi
moto_start() { # CONTENDER: a fresh moto_server for that contender's bucket
	local c=$1 port
	port=$(bl_free_port)
	bl_spawn "moto-$c" "$OUT/raw/moto-$c.log" - "$MOTO_SERVER" -H 127.0.0.1 -p "$port"
	bl_wait_listen "${BL_PID[moto-$c]}" "$port" 30 || bl_die "moto_server for $c did not start (see $OUT/raw/moto-$c.log)"
	MOTO_PORT[$c]=$port
}
# repo_loc CONTENDER: the repository location handed to the tool
repo_loc() {
	if [[ $STORE == s3 ]]; then
		echo "s3:http://127.0.0.1:${MOTO_PORT[$1]}/bench-$1/repo"
	else
		echo "$WORK/repos/$1"
	fi
}
# store_ticks CONTENDER: CPU clock ticks used so far by that contender's moto_server (0 locally)
store_ticks() {
	if [[ $STORE == s3 && -n ${BL_PID[moto-$1]:-} ]]; then bl_cpu_ticks "${BL_PID[moto-$1]}"; else echo 0; fi
}
# repo_bytes CONTENDER: bytes stored in its repository (0 when there is none yet)
repo_bytes() {
	local c=$1
	if [[ $STORE == s3 ]]; then
		"$MOTO_PY" - "http://127.0.0.1:${MOTO_PORT[$c]}" "bench-$c" <<'PY'
import sys, boto3, botocore
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="benchkey", aws_secret_access_key="benchsecret")
n = 0
try:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2]):
        n += sum(o["Size"] for o in page.get("Contents", []))
except botocore.exceptions.ClientError:
    pass
print(n)
PY
	elif [[ -e $WORK/repos/$c ]]; then
		du -sb "$WORK/repos/$c" | cut -f1
	else
		echo 0
	fi
}

# ------------------------------------------------------------------ contenders
declare -A BROKEN=()
skip() {
	bl_say "SKIP $1: $2"
	printf '%s\t%s\n' "$1" "$2" >>"$OUT/skipped.tsv"
}

# cmd_for PHASE CONTENDER REPO [DEST]: sets the array CMD
cmd_for() {
	local ph=$1 c=$2 r=$3 d=${4:-}
	case $c:$ph in
	tapwork:init) CMD=("$TAPWORK_BIN" repo init -r "$r") ;;
	tapwork:full | tapwork:incr) CMD=("$TAPWORK_BIN" backup -r "$r" "$SRC") ;;
	tapwork:restore) CMD=("$TAPWORK_BIN" restore -r "$r" latest --target "$d") ;;
	tapwork:check) CMD=("$TAPWORK_BIN" check -r "$r" --read-data) ;;
	restic:init) CMD=(restic init --repository-version 2 -q -r "$r") ;;
	restic:full | restic:incr) CMD=(restic -r "$r" backup -q --compression auto "$SRC") ;;
	restic:restore) CMD=(restic -r "$r" restore latest -q --target "$d") ;;
	restic:check) CMD=(restic -r "$r" check -q --read-data) ;;
	borg:init) CMD=(borg init -e "$BORG_ENCRYPTION" "$r") ;;
	borg:full | borg:incr) CMD=(borg create --compression "zstd,3" "$r::$ph" "$SRC") ;;
	borg:restore) CMD=(env -C "$d" borg extract "$r::incr") ;;
	borg:check) CMD=(borg check --verify-data "$r") ;;
	*) bl_die "unknown contender $c (known: tapwork restic borg)" ;;
	esac
}

printf 'rep\tcontender\tphase\tstatus\twall_s\tuser_s\tsys_s\tmaxrss_kb\trepo_bytes\tadded_bytes\tsrc_bytes\tforeign_cpu_pct\tstore_cpu_s\tverify\n' >"$OUT/runs.tsv"

# measure REP CONTENDER PHASE [DEST]: run one phase under /usr/bin/time and record a row
measure() {
	local rep=$1 c=$2 ph=$3 d=${4:-} r raw=$OUT/raw/$1.$2.$3 before=0 after=0 b0 b1 st=ok s0 s1
	r=$(repo_loc "$c")
	cmd_for "$ph" "$c" "$r" "$d"
	printf '%q ' "${CMD[@]}" >"$raw.cmd"
	before=$(repo_bytes "$c")
	b0=$(bl_busy_ticks)
	s0=$(store_ticks "$c")
	bl_prefix -
	if ! "${BL_PRE[@]}" /usr/bin/time -f '%e %U %S %M' -o "$raw.time" timeout "$PHASE_TIMEOUT" "${CMD[@]}" >"$raw.out" 2>&1; then
		st=failed
		BROKEN[$c]=1
		bl_say "  $c $ph FAILED ($(head -n 1 "$raw.time")); last output lines ($raw.out):"
		grep -v '^[[:space:]]*$' "$raw.out" | tail -n 4 | sed 's/^/      /' >&2
	fi
	b1=$(bl_busy_ticks)
	s1=$(store_ticks "$c")
	after=$(repo_bytes "$c")
	local t w u s m
	t=$(grep -E '^[0-9.]+ [0-9.]+ [0-9.]+ [0-9]+$' "$raw.time" | tail -n 1)
	[[ -n $t ]] || t="nan nan nan 0"
	read -r w u s m <<<"$t"
	awk -v rep="$rep" -v c="$c" -v ph="$ph" -v st="$st" -v w="$w" -v u="$u" -v s="$s" -v m="$m" \
		-v after="$after" -v before="$before" -v src="$SRC_BYTES" -v busy="$((b1 - b0))" -v hz="$BL_HZ" -v sc="$((s1 - s0))" 'BEGIN {
		f = (w > 0) ? ((busy - sc) / hz - u - s) * 100 / w : 0; if (f < 0) f = 0
		printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%.0f\t%.2f\t-\n", rep, c, ph, st, w, u, s, m, after, after - before, src, f, sc / hz
	}' >>"$OUT/runs.tsv"
	awk -F'\t' 'END { printf "  %-8s %-8s %-6s %8.2f s  cpu %7.2f s  peak RSS %6.0f MiB  repo %8.1f MiB  foreign %s%%%s\n", $2, $3, $4, $5, $6 + $7, $8 / 1024, $9 / 1048576, $12, (s3 ? sprintf("  moto cpu %.2f s", $13) : "") }' s3="$([[ $STORE == s3 ]] && echo 1 || echo 0)" "$OUT/runs.tsv"
}

set_verify() { # rep contender result: fill the verify column of that restore row
	"$BL_PY" - "$OUT/runs.tsv" "$1" "$2" "$3" <<'PY'
import sys
path, rep, c, v = sys.argv[1:]
rows = open(path).read().splitlines()
for i in range(len(rows) - 1, 0, -1):
    f = rows[i].split("\t")
    if f[0] == rep and f[1] == c and f[2] == "restore":
        f[-1] = v; rows[i] = "\t".join(f); break
open(path, "w").write("\n".join(rows) + "\n")
PY
}

# ------------------------------------------------------------------ dataset helpers
change_one_percent() { # deterministic in-place changes to ~1% of the files under $1
	"$BL_PY" - "$1" <<'PY'
import hashlib, os, sys
root = sys.argv[1]
files = []
for dp, dns, fns in os.walk(root):
    dns.sort()
    files += [os.path.join(dp, f) for f in sorted(fns)]
changed = 0
for i, p in enumerate(files):
    if i % 100 != 37 or os.path.islink(p):
        continue
    block = b"".join(hashlib.sha256(b"change:%d:%d" % (i, j)).digest() for j in range(128))  # 4 KiB
    size = os.path.getsize(p)
    with open(p, "r+b") as f:
        if size >= 16384:
            f.seek(size // 2 - 2048)
            f.write(block)
        else:
            f.seek(0, 2)
            f.write(block[:1024])
    changed += 1
print("changed %d of %d files (%.2f%%)" % (changed, len(files), 100.0 * changed / max(1, len(files))))
PY
}

# hashes SRC_DIR > manifest: "size sha256 relpath" per regular file, sorted by path
hashes() {
	"$BL_PY" - "$1" <<'PY'
import hashlib, os, sys
root = sys.argv[1]
out = []
for dp, dns, fns in os.walk(root):
    for fn in fns:
        p = os.path.join(dp, fn)
        if os.path.islink(p) or not os.path.isfile(p):
            continue
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                h.update(b)
        out.append("%d %s %s" % (os.path.getsize(p), h.hexdigest(), os.path.relpath(p, root)))
out.sort(key=lambda l: l.split(" ", 2)[2])
sys.stdout.write("\n".join(out) + "\n")
PY
}

# verify DEST EXPECTED_MANIFEST: find the restored tree under DEST and compare it
verify_restore() {
	local d=$1 want=$2 marker tree got
	marker=$(find "$d" -name .tapwork-bench-root -type f -print -quit 2>/dev/null || true)
	[[ -n $marker ]] || { echo "MISSING(no tree found)"; return; }
	tree=$(dirname "$marker")
	got=$(mktemp "$WORK/got.XXXXXX")
	hashes "$tree" >"$got"
	if cmp -s "$want" "$got"; then
		echo "ok($(wc -l <"$got")files)"
	else
		echo "MISMATCH($(diff "$want" "$got" | grep -c '^[<>]')lines)"
		diff "$want" "$got" | head -n 5 >&2 || true
	fi
	rm -f "$got"
}

# ------------------------------------------------------------------ summary
summarize() {
	"$BL_PY" - "$OUT/runs.tsv" "$OUT/skipped.tsv" "$ISSUE" <<'PY'
import csv, os, statistics as st, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
skipped = dict(l.rstrip("\n").split("\t", 1) for l in open(sys.argv[2])) if os.path.exists(sys.argv[2]) else {}
nan = float("nan")
names = list(dict.fromkeys(r["contender"] for r in rows))
def ok(r): return r["status"] == "ok" and r["wall_s"] != "nan"
def med(c, ph, f):
    v = [f(r) for r in rows if r["contender"] == c and r["phase"] == ph and ok(r)]
    return st.median(v) if v else nan
wall = lambda r: float(r["wall_s"]); cpu = lambda r: float(r["user_s"]) + float(r["sys_s"])
rss = lambda r: int(r["maxrss_kb"]) / 1024.0
def fmt(x, d=1): return "-" if x != x else "%.*f" % (d, x)
src = max([int(r["src_bytes"]) for r in rows] or [0])
M = {}
for c in names:
    m = {}
    for ph in ("full", "incr", "restore", "check"):
        m[ph] = med(c, ph, wall); m[ph + "_cpu"] = med(c, ph, cpu); m[ph + "_rss"] = med(c, ph, rss)
    m["repo"] = med(c, "incr", lambda r: int(r["repo_bytes"]))
    m["repo_full"] = med(c, "full", lambda r: int(r["repo_bytes"]))
    m["added"] = med(c, "incr", lambda r: int(r["added_bytes"]))
    okr = [r for r in rows if r["contender"] == c and ok(r) and r["phase"] != "init"]
    m["peak"] = max([rss(r) for r in okr] or [nan])
    m["failed"] = sorted(set(r["phase"] for r in rows if r["contender"] == c and r["status"] != "ok"))
    m["verify"] = ",".join(sorted(set(r["verify"] for r in rows if r["contender"] == c and r["phase"] == "restore"))) or "-"
    M[c] = m
out = []
def show(hdr, tab):
    w = [max(len(str(x)) for x in col) for col in zip(hdr, *tab)]
    for row in [hdr] + tab:
        out.append("  ".join(str(x).ljust(w[i]) if i == 0 else str(x).rjust(w[i]) for i, x in enumerate(row)))
mbs = lambda t: fmt(src / t / 1e6, 0) if t == t and t > 0 else "-"
out.append("Source: %.1f MiB. Times in seconds (median over reps), cpu = user+sys seconds, RSS = peak MiB." % (src / 1048576.0))
tab = []
for c in names:
    m = M[c]
    tab.append([c, fmt(m["full"], 2), mbs(m["full"]), fmt(m["full_cpu"]), fmt(m["full_rss"], 0),
                fmt(m["incr"], 2), fmt(m["incr_cpu"]), fmt(m["added"] / 1048576.0, 2),
                fmt(m["restore"], 2), mbs(m["restore"]), fmt(m["restore_cpu"]), fmt(m["restore_rss"], 0),
                fmt(m["check"], 2), fmt(m["check_cpu"]), fmt(m["check_rss"], 0),
                fmt(m["repo"] / 1048576.0), fmt(m["repo"] / src, 3) if src else "-", fmt(m["peak"], 0), m["verify"]])
show(["contender", "full_s", "MB/s", "cpu", "rss", "incr_s", "cpu", "added_MiB", "restore_s", "MB/s", "cpu", "rss",
      "check_s", "cpu", "rss", "repo_MiB", "repo/src", "peak_rss", "verify"], tab)
if any(r.get("store_cpu_s", "0") not in ("0", "0.00") for r in rows):
    out.append("S3 server (moto_server) CPU seconds per phase, not in the tools' cpu columns:")
    for c in names:
        out.append("  %-8s " % c + "  ".join("%s %s" % (ph, fmt(med(c, ph, lambda r: float(r["store_cpu_s"])), 2))
                                          for ph in ("full", "incr", "restore", "check")))
for c in names:
    if M[c]["failed"]:
        out.append("FAILED %s: phases %s (see raw/*.out)" % (c, ", ".join(M[c]["failed"])))
refs = [x for x in ("restic", "borg") if x in M]
if refs and len(names) > 1:
    out.append("")
    out.append("Ratios: speed-up = reference time / contender time (higher is better);")
    out.append("repo and peak RSS = contender / reference (lower is better).")
    tab = []
    r_ = lambda a, b: "-" if a != a or b != b or b == 0 else "%.2f" % (a / b)
    for c in names:
        for ref in refs:
            if c == ref or (c in refs and refs.index(c) < refs.index(ref)): continue
            a, b = M[c], M[ref]
            tab.append([c, ref, r_(b["full"], a["full"]), r_(b["incr"], a["incr"]), r_(b["restore"], a["restore"]),
                        r_(b["check"], a["check"]), r_(a["repo"], b["repo"]), r_(a["peak"], b["peak"])])
    show(["contender", "vs", "full_speedup", "incr_speedup", "restore_speedup", "check_speedup", "repo_ratio", "peak_rss_ratio"], tab)
if "tapwork" in M:
    t = M["tapwork"]; rs = M.get("restic"); bg = M.get("borg")
    out.append("")
    out.append("tapwork targets (issue %s):" % sys.argv[3])
    def tgt(label, ref, a, b, want, le=False):
        if ref is None or a != a or b != b or b == 0:
            out.append("  %-42s  n/a" % label); return
        r = a / b; good = r <= want if le else r >= want
        out.append("  %-42s  %.3f  %s" % (label, r, "met" if good else "NOT met"))
    tgt("first backup >= 2x faster than restic", rs, rs and rs["full"], t["full"], 2)
    tgt("first backup >= 3x faster than borg", bg, bg and bg["full"], t["full"], 3)
    tgt("incremental >= 3x faster than restic", rs, rs and rs["incr"], t["incr"], 3)
    tgt("restore >= 2x faster than restic", rs, rs and rs["restore"], t["restore"], 2)
    tgt("repository <= restic's (ratio)", rs, t["repo"], rs and rs["repo"], 1, le=True)
    tgt("peak RSS <= half of restic's (ratio)", rs, t["peak"], rs and rs["peak"], 0.5, le=True)
    if not t["verify"].startswith("ok"):
        out.append("  restore verification: %s — the figures above do not count" % t["verify"])
for c, why in skipped.items():
    out.append("SKIPPED %s: %s" % (c, why))
print("\n".join(out))
PY
}

# ------------------------------------------------------------------ main
{
	echo "# backup bench $(date -u +%FT%TZ)"
	bl_env_header
	echo "# $(restic version)"
	echo "# $(borg --version), encryption $BORG_ENCRYPTION"
	echo "# tapwork: $TAPWORK_BIN ($("$TAPWORK_BIN" version 2>/dev/null | head -n 1 || echo not available))"
	echo "# dataset: $DATASET ($(cat "$DATASET/../info" 2>/dev/null || echo "no info file"))"
	echo "# restore target: $WORK/restore ($(df -T "$WORK/restore" | awk 'NR==2{print $2}'))  work fs: $(df -T "$WORK" | awk 'NR==2{print $2, $1}')"
	if [[ $STORE == s3 ]]; then
		echo "# store: S3, one moto_server per contender ($MOTO_SERVER, moto $("$MOTO_PY" -c 'import moto; print(moto.__version__)' 2>/dev/null || echo '?'))"
	else
		echo "# store: local directories under $WORK/repos"
	fi
	echo "# REPS=$REPS NICE=$NICE CHECK=$CHECK CONTENDERS='$CONTENDERS' PHASE_TIMEOUT=$PHASE_TIMEOUT"
} | tee "$OUT/env.txt"

ACTIVE=()
for c in $CONTENDERS; do
	case $c in
	tapwork)
		if [[ ! -x $TAPWORK_BIN ]]; then
			skip tapwork "no executable at $TAPWORK_BIN (build it with make, or set TAPWORK_BIN)"
			continue
		fi
		if ! "$TAPWORK_BIN" repo init -r "$WORK/probe-repo" >"$WORK/probe.out" 2>&1; then
			skip tapwork "'tapwork repo init' failed: $(grep -v '^[[:space:]]*$' "$WORK/probe.out" | head -n 1)"
			continue
		fi
		rm -rf "$WORK/probe-repo"
		;;
	borg)
		if [[ $STORE == s3 ]]; then
			skip borg "borg 1.2 has no S3 backend"
			continue
		fi
		;;
	restic) ;;
	*) bl_die "unknown contender $c (known: tapwork restic borg)" ;;
	esac
	ACTIVE+=("$c")
done
((${#ACTIVE[@]} > 0)) || bl_die "no contender left"

for ((rep = 1; rep <= REPS; rep++)); do
	k=$(((rep - 1) % ${#ACTIVE[@]}))
	ORDER=("${ACTIVE[@]:k}" "${ACTIVE[@]:0:k}")
	echo "== rep $rep: ${ORDER[*]}"
	rm -rf "$WORK/src" "$WORK/repos" "$WORK/borg-home" "$WORK/restic-cache"
	if [[ $STORE == s3 ]]; then
		for c in "${ACTIVE[@]}"; do
			bl_stop "moto-$c"
			moto_start "$c"
		done
	fi
	BROKEN=()
	mkdir -p "$WORK/src" "$WORK/repos"
	cp -a "$DATASET" "$SRC"
	SRC_BYTES=$(du -sb "$SRC" | cut -f1)
	find "$SRC" -type f -print0 | xargs -0 -r cat >/dev/null # warm the page cache for everybody
	for c in "${ORDER[@]}"; do
		measure "$rep" "$c" init
		if [[ -z ${BROKEN[$c]:-} ]]; then measure "$rep" "$c" full; fi
	done
	echo "  $(change_one_percent "$SRC")"
	SRC_BYTES=$(du -sb "$SRC" | cut -f1)
	hashes "$SRC" >"$WORK/expected"
	for c in "${ORDER[@]}"; do
		if [[ -z ${BROKEN[$c]:-} ]]; then measure "$rep" "$c" incr; fi
	done
	for c in "${ORDER[@]}"; do
		[[ -n ${BROKEN[$c]:-} ]] && continue
		d=$WORK/restore/$c
		mkdir -p "$d"
		measure "$rep" "$c" restore "$d"
		v=$(verify_restore "$d" "$WORK/expected")
		echo "           restore verified: $v"
		set_verify "$rep" "$c" "$v"
		rm -rf "$d"
	done
	if [[ $CHECK == 1 ]]; then
		for c in "${ORDER[@]}"; do
			if [[ -z ${BROKEN[$c]:-} ]]; then measure "$rep" "$c" check; fi
		done
	fi
done

summarize | tee "$OUT/summary.txt"
echo "results: $OUT"

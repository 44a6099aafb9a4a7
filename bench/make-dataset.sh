#!/usr/bin/env bash
# bench/make-dataset.sh — build the backup benchmark's dataset once, then reuse it.
#
# usage: bench/make-dataset.sh [DEST]     prints the dataset root (DEST/data) on stdout
#
# DEST defaults to $BENCH_CACHE/dataset-${DATASET_MIB}m (BENCH_CACHE=/var/tmp/tapwork-bench).
# A dataset is complete when DEST/info exists; it is never rebuilt after that
# (delete DEST to rebuild). Layout of DEST/data (shares of DATASET_MIB, default 1024):
#   docs/    25%  every k-th regular file of /usr/share in path order (text, docs, icons, locales)
#   bin/     30%  every k-th regular file of /usr/lib and /usr/bin (ELF, shared objects, python)
#   logs/    10%  synthetic web-server and application logs (seeded generator: compressible text)
#   random/  25%  incompressible bytes (seeded per file): one large file, 8 medium ones,
#                 1 MiB files and many 1-64 KiB files
#   dup/    ~7%   exact copies of two medium random files, the same bytes shifted by one
#                 byte, a medium file with 1 KiB inserted in its middle (chunk-boundary
#                 tests), and a copy of the first ~4% of docs/
#   .tapwork-bench-root   marker used to find the tree again after a restore
# The generated parts are identical on every machine; docs/ and bin/ depend on the
# installed /usr, so DEST/manifest.sha256 (sha256 of every file) and DEST/info
# (files, bytes, manifest digest) identify the exact dataset a result was measured on.
set -euo pipefail
export LC_ALL=C
DATASET_MIB=${DATASET_MIB:-1024}
BENCH_CACHE=${BENCH_CACHE:-/var/tmp/tapwork-bench}
DEST=${1:-$BENCH_CACHE/dataset-${DATASET_MIB}m}
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3

# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
bl_help "$@"
if [[ -f $DEST/info ]]; then
	echo "dataset: reusing $DEST ($(cat "$DEST/info"))" >&2
	echo "$DEST/data"
	exit 0
fi
((DATASET_MIB >= 16)) || { echo "DATASET_MIB must be at least 16" >&2; exit 1; }
echo "dataset: building ${DATASET_MIB} MiB in $DEST (once; later runs reuse it)" >&2
rm -rf "$DEST"
mkdir -p "$DEST"
"$PY" - "$DEST/data" "$DATASET_MIB" <<'PY' >&2
import hashlib, os, random, shutil, sys

root, total = sys.argv[1], int(sys.argv[2]) << 20
os.makedirs(root)
FIXED_MTIME = 1717243200  # 2024-06-01 12:00:00 UTC, for every generated file


def put(rel, data):
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
    os.utime(p, (FIXED_MTIME, FIXED_MTIME))


def seeded(name):
    # one independent generator per file, keyed by its name
    return random.Random(int.from_bytes(hashlib.sha256(b"tapwork-bench:" + name.encode()).digest()[:8], "big"))


def sample_tree(tops, budget, dest):
    """Copy every k-th regular file (path order) of the trees in tops until budget bytes."""
    files = []
    for top in tops:
        for dp, dns, fns in os.walk(top):
            dns.sort()
            if os.path.ismount(dp) and dp != top:
                dns[:] = []
                continue
            for fn in sorted(fns):
                p = os.path.join(dp, fn)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                if os.path.isfile(p) and not os.path.islink(p) and 0 < st.st_size < (8 << 20) and os.access(p, os.R_OK):
                    files.append((p, st.st_size))
    allbytes = sum(s for _, s in files)
    step = max(1, allbytes // max(1, budget))
    got = n = 0
    for i in range(0, len(files), step):
        if got >= budget:
            break
        src, size = files[i]
        out = os.path.join(root, dest, os.path.relpath(src, "/usr"))
        os.makedirs(os.path.dirname(out), exist_ok=True)
        try:
            shutil.copy2(src, out)
        except OSError:
            continue
        got += size
        n += 1
    print("  %-7s %5d files %7.1f MiB" % (dest, n, got / 1048576.0))


print("  sampling /usr (this takes a moment)")
sample_tree(["/usr/share"], total * 25 // 100, "docs")
sample_tree(["/usr/lib", "/usr/bin"], total * 30 // 100, "bin")

# logs: compressible, realistic-looking text
r = seeded("logs")
paths = ["/", "/index.html", "/api/v1/items", "/api/v1/items/%d", "/static/app.%x.js", "/static/style.css",
         "/login", "/search?q=%s", "/img/%d.png", "/healthz", "/feed.xml", "/users/%d/profile"]
words = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
         "quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()
agents = ["Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
          "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/119.0 Safari/537.36",
          "curl/7.88.1", "Prometheus/2.45.0", "python-requests/2.31.0"]
levels = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]
budget, i, t = total * 10 // 100, 0, 1700000000
while budget > 0:
    size = min(budget, r.randint(256 << 10, 4 << 20))
    lines, n = [], 0
    kind = i % 2
    while n < size:
        t += r.randint(0, 3)
        if kind == 0:
            p = r.choice(paths)
            if "%d" in p: p = p % r.randint(1, 99999)
            elif "%x" in p: p = p % r.getrandbits(32)
            elif "%s" in p: p = p % r.choice(words)
            line = '10.%d.%d.%d - - [%d] "GET %s HTTP/1.1" %d %d "-" "%s"\n' % (
                r.randint(0, 255), r.randint(0, 255), r.randint(1, 254), t, p,
                r.choice((200, 200, 200, 200, 304, 404, 500)), r.randint(0, 50000), r.choice(agents))
        else:
            line = "%d %s worker-%d request_id=%016x %s\n" % (
                t, r.choice(levels), r.randint(1, 16), r.getrandbits(64),
                " ".join(r.choice(words) for _ in range(r.randint(3, 12))))
        lines.append(line)
        n += len(line)
    put("logs/%s-%03d.log" % (("access", "app")[kind], i), "".join(lines).encode()[:size])
    budget -= size
    i += 1
print("  logs    %5d files %7.1f MiB" % (i, total * 10 / 100 / 1048576.0))

# random: incompressible
R = total * 25 // 100
put("random/large.bin", seeded("large").randbytes(R // 4))
medium = []
for k in range(8):
    data = seeded("medium-%d" % k).randbytes(R // 32)
    medium.append(data)
    put("random/medium-%d.bin" % k, data)
for k in range(max(4, (R // 4) >> 20)):
    put("random/1m/%04d.bin" % k, seeded("1m-%d" % k).randbytes(1 << 20))
r = seeded("small")
left, k = R // 4, 0
while left > 0:
    size = min(left, r.randint(1 << 10, 64 << 10))
    put("random/small/%02d/%05d.bin" % (k % 32, k), r.randbytes(size))
    left -= size
    k += 1
print("  random  %5d files %7.1f MiB" % (1 + 8 + max(4, (R // 4) >> 20) + k, R / 1048576.0))

# dup: duplicates and near-duplicates
put("dup/medium-0.copy", medium[0])
put("dup/medium-1.copy", medium[1])
put("dup/medium-2.shifted", b"\x00" + medium[2])
mid = len(medium[3]) // 2
put("dup/medium-3.inserted", medium[3][:mid] + seeded("insert").randbytes(1024) + medium[3][mid:])
budget, n = total * 4 // 100, 0
docs = os.path.join(root, "docs")
for dp, dns, fns in os.walk(docs):
    dns.sort()
    for fn in sorted(fns):
        if budget <= 0:
            break
        src = os.path.join(dp, fn)
        out = os.path.join(root, "dup", "docs-copy", os.path.relpath(src, docs))
        os.makedirs(os.path.dirname(out), exist_ok=True)
        shutil.copy2(src, out)
        budget -= os.path.getsize(src)
        n += 1
print("  dup     %5d files" % (n + 4))
put(".tapwork-bench-root", b"root of the tapwork backup benchmark dataset\n")
PY
(
	cd "$DEST/data"
	find . -type f -print0 | sort -z | xargs -0 -r sha256sum
) >"$DEST/manifest.sha256"
files=$(wc -l <"$DEST/manifest.sha256")
bytes=$(du -sb "$DEST/data" | cut -f1)
digest=$(sha256sum <"$DEST/manifest.sha256" | cut -c1-16)
echo "files=$files bytes=$bytes manifest=$digest mib=$DATASET_MIB built=$(date -u +%FT%TZ)" >"$DEST/info"
echo "dataset: done: $(cat "$DEST/info")" >&2
echo "$DEST/data"

#!/usr/bin/env bash
# bench/sol.sh — this machine's ceilings ("speed of light") for the backup pipeline.
#
# usage: bench/sol.sh [--help]          (all settings are environment variables)
#
# One core (pinned to SOL_CPU), bytes per second:
#   aes-256-gcm, chacha20-poly1305, sha256   openssl speed -evp ALG on 16 KiB buffers
#   sha256 of the dataset                     openssl dgst -sha256 over a tar of the dataset
#   zstd -1 / -3 compress and decompress      zstd -bN -T1 on the same tar
#   page cache: one big file                  cat dataset.tar > /dev/null
#   page cache: every file                    find | xargs cat > /dev/null over the dataset tree
# and, from these, a one-core floor for a backup of the dataset:
#   read + SHA-256 + zstd -3 + AES-256-GCM, each byte once (seconds = sum of bytes/speed).
# The dataset is the one bench/backup.sh uses (bench/make-dataset.sh, cached); its tar
# is made once next to it.
#
# Env knobs: DATASET_MIB=1024  DATASET=<path of a dataset tree>  SOL_CPU=1  SOL_SECS=3
#            ZSTD_ITER=3 (zstd -i)  NICE=0  OUT=bench/results/<stamp>/sol
# Output: $OUT/sol.tsv (figure, bytes_per_s), $OUT/summary.txt, $OUT/env.txt
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$HERE/lib.sh"

bl_args "$@"

DATASET_MIB=${DATASET_MIB:-1024}
SOL_CPU=${SOL_CPU:-1}
SOL_SECS=${SOL_SECS:-3}
ZSTD_ITER=${ZSTD_ITER:-3}
NICE=${NICE:-0}
PIN=1
OUT=${OUT:-$HERE/results/$(bl_stamp)/sol}
export NICE PIN DATASET_MIB

bl_need openssl zstd tar taskset
bl_init
DATASET=${DATASET:-$("$HERE/make-dataset.sh")}
[[ -d $DATASET ]] || bl_die "no dataset at $DATASET"
TAR=$(dirname "$DATASET")/dataset.tar
if [[ ! -f $TAR ]]; then
	tar -C "$DATASET" -cf "$TAR.tmp" .
	mv "$TAR.tmp" "$TAR"
fi
TAR_BYTES=$(stat -c %s "$TAR")
mkdir -p "$OUT"
printf 'figure\tbytes_per_s\n' >"$OUT/sol.tsv"

{
	echo "# sol $(date -u +%FT%TZ), one core (CPU $SOL_CPU)"
	bl_env_header
	echo "# $(openssl version); $(zstd --version)"
	echo "# dataset: $DATASET ($(cat "$DATASET/../info" 2>/dev/null || echo "no info file")); tar $TAR_BYTES bytes"
} | tee "$OUT/env.txt"

record() { # figure bytes_per_s
	printf '%s\t%.0f\n' "$1" "$2" >>"$OUT/sol.tsv"
	awk -v n="$1" -v b="$2" 'BEGIN { printf "  %-40s %9.1f MB/s\n", n, b / 1e6 }'
}

# seconds a command takes (wall clock), its output discarded
elapsed() {
	local t0 t1
	t0=$(date +%s%N)
	"$@" >/dev/null
	t1=$(date +%s%N)
	echo "$(((t1 - t0) / 1000))"
}

echo "== openssl speed, 16 KiB buffers, ${SOL_SECS}s each"
for alg in aes-256-gcm chacha20-poly1305 sha256; do
	bps=$(bl_pin "$SOL_CPU" openssl speed -mr -seconds "$SOL_SECS" -bytes 16384 -evp "$alg" 2>/dev/null |
		awk -F: '$1=="+F" {print $4}' | tail -n 1)
	record "openssl $alg" "${bps:-0}"
done

echo "== the dataset from page cache, best of 3"
cat "$TAR" >/dev/null
best=0
for _ in 1 2 3; do
	us=$(elapsed bl_pin "$SOL_CPU" cat "$TAR")
	if ((best == 0 || us < best)); then best=$us; fi
done
record "read one file (cat dataset.tar)" "$((TAR_BYTES * 1000000 / best))"
# shellcheck disable=SC2016 # $1 is expanded by the inner bash
files_read=(bash -c 'find "$1" -type f -print0 | xargs -0 cat' files_read "$DATASET")
"${files_read[@]}" >/dev/null
best=0
for _ in 1 2 3; do
	us=$(elapsed bl_pin "$SOL_CPU" "${files_read[@]}")
	if ((best == 0 || us < best)); then best=$us; fi
done
DATA_BYTES=$(du -sb "$DATASET" | cut -f1)
record "read every file (find | xargs cat)" "$((DATA_BYTES * 1000000 / best))"
best=0
for _ in 1 2; do
	us=$(elapsed bl_pin "$SOL_CPU" openssl dgst -sha256 "$TAR")
	if ((best == 0 || us < best)); then best=$us; fi
done
record "sha256 of dataset.tar (openssl dgst)" "$((TAR_BYTES * 1000000 / best))"

echo "== zstd -b (one thread, $ZSTD_ITER iterations) on dataset.tar"
for level in 1 3; do
	line=$(bl_pin "$SOL_CPU" zstd -b"$level" -i"$ZSTD_ITER" -T1 "$TAR" 2>&1 | tr '\r' '\n' | grep -E 'MB/s, *[0-9.]+ MB/s' | tail -n 1)
	# " |-dataset.tar : 1074206720 -> 412345678 (x2.605), 250.1 MB/s, 900.2 MB/s"
	read -r ratio cmb dmb < <(sed -E 's/.*\(x([0-9.]+)\), *([0-9.]+) MB\/s, *([0-9.]+) MB\/s.*/\1 \2 \3/' <<<"$line")
	echo "  zstd -$level ratio x$ratio"
	record "zstd -$level compress" "$(awk -v m="$cmb" 'BEGIN{print m * 1e6}')"
	record "zstd -$level decompress" "$(awk -v m="$dmb" 'BEGIN{print m * 1e6}')"
done

"$BL_PY" - "$OUT/sol.tsv" "$DATA_BYTES" <<'PY' | tee "$OUT/summary.txt"
import csv, sys
v = {r["figure"]: float(r["bytes_per_s"]) for r in csv.DictReader(open(sys.argv[1]), delimiter="\t")}
n = int(sys.argv[2])
print("Ceilings, one core (MB/s = 10^6 bytes/s); seconds = time for the %.1f MiB dataset at that speed:" % (n / 1048576.0))
for k, b in v.items():
    print("  %-40s %9.1f MB/s  %7.2f s" % (k, b / 1e6, n / b if b else float("nan")))
steps = ["read every file (find | xargs cat)", "openssl sha256", "zstd -3 compress", "openssl aes-256-gcm"]
if all(v.get(s) for s in steps):
    secs = sum(n / v[s] for s in steps)
    print("Backup floor, one core (read + SHA-256 + zstd -3 + AES-GCM over every byte): %.2f s = %.0f MB/s;"
          " two cores at best: %.2f s." % (secs, n / secs / 1e6, secs / 2))
    rsteps = ["openssl aes-256-gcm", "zstd -3 decompress", "openssl sha256"]
    rsecs = sum(n / v[s] for s in rsteps)
    print("Restore floor, one core (AES-GCM + zstd -3 decompress + SHA-256, writes not counted): %.2f s = %.0f MB/s." % (rsecs, n / rsecs / 1e6))
PY
echo "results: $OUT"

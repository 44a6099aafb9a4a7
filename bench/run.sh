#!/usr/bin/env bash
# bench/run.sh — run the side-by-side benchmarks (what `make bench` calls).
#
# usage: bench/run.sh [proxy] [backup] [backup-s3] [backup-pg] [pitr] [ingress] [sol]
#                                  (default: all seven, in this order)
#
# Results go to bench/results/<UTC stamp>/ (RESULTS overrides), one directory per
# benchmark plus <name>.log (its console output) and summary.txt (all summaries);
# bench/results/latest points at the newest run. Settings are passed through the
# environment to each script (see bench/README.md and each script's --help):
#   DUR REPS CONNS NICE TESTS IDLE_CONNS ... (proxy.sh)
#   DATASET_MIB RESTORE_TMPFS CHECK ...      (backup.sh, backup-s3.sh, sol.sh)
#   PG_SCALE PG_CHANGE PG_TX ...             (backup-pg.sh)
#   PITR_SCALE PITR_TX REPS PUSH_N ...       (pitr.sh)
# A benchmark that fails does not stop the others; the exit status is 1 then.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export LC_ALL=C

# shellcheck source=lib.sh
source "$HERE/lib.sh"
bl_help "$@"
WHICH=("$@")
((${#WHICH[@]} > 0)) || WHICH=(proxy backup backup-s3 backup-pg pitr ingress sol)
for b in "${WHICH[@]}"; do
	case $b in
	proxy | backup | backup-s3 | backup-pg | pitr | ingress | sol) ;;
	*) echo "unknown benchmark '$b' (known: proxy backup backup-s3 backup-pg pitr ingress sol)" >&2; exit 2 ;;
	esac
done

STAMP=$(date -u +%Y%m%d-%H%M%S)
if [[ -z ${RESULTS:-} ]]; then
	RESULTS=$HERE/results/$STAMP
	mkdir -p "$RESULTS"
	ln -sfn "$STAMP" "$HERE/results/latest"
fi
mkdir -p "$RESULTS"
echo "bench: results in $RESULTS"

declare -A STATUS=()
for b in "${WHICH[@]}"; do
	echo
	echo "######## $b ($(date -u +%T) UTC)"
	if OUT=$RESULTS/$b "$HERE/$b.sh" 2>&1 | tee "$RESULTS/$b.log"; then
		STATUS[$b]=ok
	else
		STATUS[$b]="failed (exit ${PIPESTATUS[0]}; see $RESULTS/$b.log)"
	fi
done

rc=0
{
	echo "tapwork bench $STAMP ($(nproc) CPUs, $(git -C "$HERE/.." rev-parse --short HEAD 2>/dev/null || echo '?'))"
	for b in "${WHICH[@]}"; do
		echo
		echo "======== $b: ${STATUS[$b]}"
		if [[ -f $RESULTS/$b/summary.txt ]]; then cat "$RESULTS/$b/summary.txt"; fi
	done
} >"$RESULTS/summary.txt"
echo
echo "################ summaries"
cat "$RESULTS/summary.txt"
for b in "${WHICH[@]}"; do [[ ${STATUS[$b]} == ok ]] || rc=1; done
exit "$rc"

#!/usr/bin/env bash
# bench/backup-s3.sh — tapwork and restic backing up to S3 (a local moto_server).
#
# usage: bench/backup-s3.sh [--help]       (all settings are environment variables)
#
# The backup benchmark of bench/backup.sh (same dataset, same phases: init, first
# backup, ~1% of the files changed, incremental, restore verified file by file,
# full-data check) with STORE=s3: every contender's repository lives in its own
# bucket of its own moto_server (started fresh per repetition on a free loopback
# port, stopped by PID at the end):
#   tapwork  tapwork repo init -r s3:http://127.0.0.1:PORT/bench-tapwork/repo
#   restic   restic -r s3:http://127.0.0.1:PORT/bench-restic/repo init/backup/...
# Credentials are dummies (AWS_ACCESS_KEY_ID=benchkey; moto does not check them).
# Repository size = sum of the object sizes listed in the bucket (boto3, moto's python).
# moto_server is a single Python process; it costs CPU on the same two cores, and
# both tools pay for it. The summary ends with the issue 6 targets
# (first backup >= 2x restic, incremental >= 3x restic).
#
# Env knobs: those of bench/backup.sh (DATASET_MIB, REPS, CHECK, PHASE_TIMEOUT, ...);
# CONTENDERS defaults to "tapwork restic"; OUT=bench/results/<stamp>/backup-s3.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$HERE/lib.sh"
bl_help "$@"
export STORE=s3 ISSUE=6
export CONTENDERS=${CONTENDERS:-"tapwork restic"}
export OUT=${OUT:-$HERE/results/$(date -u +%Y%m%d-%H%M%S)/backup-s3}
exec "$HERE/backup.sh" "$@"

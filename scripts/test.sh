#!/bin/sh
# The whole test suite, as `make test` and CI run it:
#   1. build release and asan (ASan+UBSan) variants, -Wall -Wextra -Werror
#   2. banned-function check
#   3. unit tests in both variants
#   4. end-to-end tests (pytest, Debian's python3) against both binaries
#   5. every libFuzzer target for FUZZ_SECONDS (default 10) from its corpus
set -eu
cd "$(dirname "$0")/.."
jobs=$(nproc)
start=$(date +%s)
step() { echo "== $* ($(( $(date +%s) - start ))s)"; }
step build
make --no-print-directory -j"$jobs" release
make --no-print-directory -j"$jobs" asan
step banned functions
scripts/check-banned.sh
step docs
./build/release/tapwork config-docs 2>/dev/null | diff -q docs/config.md - >/dev/null 2>&1 \
  || { if ./build/release/tapwork config-docs >/dev/null 2>&1; then echo "docs/config.md is stale: run 'make docs'"; exit 1; fi; }
step unit tests
# both variants at once: the S3 programs (against moto) dominate and mostly wait
ulog=$(mktemp)
scripts/run-unit.sh build/release >"$ulog" 2>&1 & upid=$!
urc=0; scripts/run-unit.sh build/asan || urc=1
wait "$upid" || urc=1
cat "$ulog"; rm -f "$ulog"
[ "$urc" -eq 0 ]
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for v in ${E2E_VARIANTS:-asan release}; do
  step "e2e tests ($v)"
  TAPWORK_BIN=$PWD/build/$v/tapwork TAPWORK_VARIANT=$v \
    /usr/bin/python3 -m pytest -q -p no:cacheprovider --durations=15 ${PYTEST_ARGS:-} tests/e2e
done
step fuzz smoke
scripts/fuzz.sh smoke "${FUZZ_SECONDS:-10}"
step "all tests passed"

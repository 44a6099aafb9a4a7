#!/bin/sh
# fuzz.sh build          build every fuzz/*.c as a libFuzzer target (clang)
# fuzz.sh smoke [SECS]   build, then run each target SECS seconds (default 15)
#                        from its seed corpus fuzz/corpus/NAME (never modified)
# fuzz.sh run NAME SECS  run one target, growing its corpus in build/fuzz/corpus
set -eu
cd "$(dirname "$0")/.."
mode=${1:-build}
make --no-print-directory -j"$(nproc)" VARIANT=fuzz build-fuzz >/dev/null
[ "$mode" = build ] && exit 0
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# Crash inputs go to build/fuzz/artifacts, never into the working tree.
mkdir -p build/fuzz/artifacts
if [ "$mode" = run ]; then
  mkdir -p "build/fuzz/corpus/$2"
  exec "build/fuzz/bin/$2" -max_total_time="$3" -artifact_prefix="build/fuzz/artifacts/$2-" \
    "build/fuzz/corpus/$2" "fuzz/corpus/$2"
fi
secs=${2:-15}
# Targets run JOBS (default: nproc) at a time; each prints its line when done.
export secs
ls build/fuzz/bin | xargs -r -P "${JOBS:-$(nproc)}" -I{} sh -c '
  bin=build/fuzz/bin/$1; name=$1
  [ -x "$bin" ] || exit 0
  work=$(mktemp -d)
  if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="build/fuzz/artifacts/$name-" \
       "$work" "fuzz/corpus/$name" >"$work.log" 2>&1; then
    echo "fuzz $name: ok ($(grep -m1 -o "stat::number_of_executed_units: *[0-9]*" "$work.log" | grep -o "[0-9]*$") runs in ${secs}s)"
    rc=0
  else
    echo "fuzz $name: FAILED"; tail -40 "$work.log"; rc=1
  fi
  rm -rf "$work" "$work.log"
  exit $rc' _ {}

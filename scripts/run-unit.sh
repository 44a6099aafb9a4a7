#!/bin/sh
# Run every unit-test program under BUILD_DIR/tests/unit, each in its own
# process with a timeout, JOBS (default: nproc) at a time; print one summary
# line per program (in name order) and a total.
set -u
dir=${1:-build/release}
jobs=${JOBS:-$(nproc)}
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# The slowest programs (S3 against moto) start first so they overlap the rest.
find "$dir/tests/unit" -type f -perm -u+x 2>/dev/null | sort |
  awk '{ print (index($0, "/storage/") ? 0 : 1) "\t" $0 }' | sort -s -k1,1n | cut -f2- |
  OUT="$out" xargs -r -P "$jobs" -I{} sh -c \
    'f=$OUT/$(printf %s "$1" | tr / _); if timeout 120 "$1" >"$f.log" 2>&1; then : >"$f.ok"; fi' _ {}
pass=0; fail=0; failed=""
for t in $(find "$dir/tests/unit" -type f -perm -u+x 2>/dev/null | sort); do
  name=${t#"$dir"/tests/unit/}
  f=$out/$(printf %s "$t" | tr / _)
  if [ -e "$f.ok" ]; then
    pass=$((pass + 1))
    printf 'unit %-40s ok\n' "$name"
  else
    fail=$((fail + 1)); failed="$failed $name"
    printf 'unit %-40s FAILED\n' "$name"
    tail -40 "$f.log" 2>/dev/null
  fi
done
echo "unit ($dir): $pass passed, $fail failed"
[ "$fail" -eq 0 ] || { echo "failed:$failed"; exit 1; }

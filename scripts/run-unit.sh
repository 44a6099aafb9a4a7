#!/bin/sh
# Run every unit-test program under BUILD_DIR/tests/unit, each in its own
# process with a timeout; print one summary line per program and a total.
set -u
dir=${1:-build/release}
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
pass=0; fail=0; failed=""
for t in $(find "$dir/tests/unit" -type f -perm -u+x 2>/dev/null | sort); do
  name=${t#"$dir"/tests/unit/}
  if out=$(timeout 120 "$t" 2>&1); then
    pass=$((pass + 1))
    printf 'unit %-40s ok\n' "$name"
  else
    fail=$((fail + 1)); failed="$failed $name"
    printf 'unit %-40s FAILED\n' "$name"
    printf '%s\n' "$out" | tail -40
  fi
done
echo "unit ($dir): $pass passed, $fail failed"
[ "$fail" -eq 0 ] || { echo "failed:$failed"; exit 1; }

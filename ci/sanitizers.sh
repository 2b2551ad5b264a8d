#!/usr/bin/env bash
# Builds the native code (port core, pools, framing, the driver) under ASan+UBSan and under TSan, runs every
# native test binary, the driver's tests and the whole conformance suite against the instrumented driver.
# Any sanitizer report fails the run (halt_on_error; the driver tests also scan the driver's stderr).
set -euo pipefail
cd "$(dirname "$0")/.."

export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

for variant in asan tsan; do
  echo "== sanitizers: $variant =="
  node native/scripts/build.mjs --variant "$variant" --no-addon
  dir="build-$variant"
  for bin in "$dir"/cpspec-*-test; do
    echo "-- $bin"
    "$bin"
  done
  # The driver under the sanitizer: its own protocol tests, then the whole specification through it.
  CPSPEC_DRIVER="$PWD/$dir/cpspec-driver" npx vitest run test/driver
  node conformance/bin/cpspec.js run --target "driver:$PWD/$dir/cpspec-driver" \
    --report console,junit --out "reports/$variant" --timeout 120000
done
echo "sanitizers: all clean"

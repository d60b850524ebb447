#!/usr/bin/env bash
# The sanitizer passes. .ci/run calls both.
#
# asan: an ASan+UBSan build (-DPS_SANITIZE=ON) of the test binary and the
# fuzz-corpus replays in BUILD_DIR (default build-asan/), then the fast unit
# tests, the transfer and hostile-peer tests and every corpus replay under it.
# The slow integration tests (daemons, swarms, simulations) stay out.
#
# tsan: a ThreadSanitizer build (-DPS_TSAN=ON, default build-tsan/) of
# ps_tests_tsan, the tests whose nodes run OpenDHT's threads beside the libuv
# loop (the DHT adapter, in-process nodes, gossip), run whole. Suppressions:
# tests/sanitizers/tsan.supp (races inside OpenDHT's own teardown only).
#
# A sanitizer report fails the test that hit it, which fails the run.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-asan}
jobs=${JOBS:-2}
case "$mode" in
  asan) ;;
  tsan)
    build=${BUILD_DIR:-$here/build-tsan}
    cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPS_TSAN=ON -DPS_BENCH=OFF -DPS_LIBRARY=OFF \
      > "$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
    cmake --build "$build" -j "$jobs" --target ps_tests_tsan
    cd "$build"
    TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:exitcode=66:second_deadlock_stack=1:suppressions=$here/tests/sanitizers/tsan.supp} \
      ./tests/ps_tests_tsan
    exit $?
    ;;
  *) echo "usage: $0 [asan|tsan]" >&2; exit 2 ;;
esac
build=${BUILD_DIR:-$here/build-asan}
tests=${SANITIZE_TESTS:-'^(beacon|cache|config|crypto|digest|download|engine|hostile|import shares|log|dashboard|manifest|messages|policies|record|result|rollback|store|summary|super-seeding|transfer|trust|uploads): |^fuzz_replay_'}
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPS_SANITIZE=ON -DPS_BENCH=OFF \
  > "$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
targets="ps_tests $(cd "$here/tests/fuzz" && ls fuzz_*.cpp | sed 's/\.cpp$//' | tr '\n' ' ')"
cmake --build "$build" -j "$jobs" --target $targets
cd "$build"
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  ctest --output-on-failure -j "$jobs" --timeout 600 -R "$tests"

#!/usr/bin/env bash
# Builds every fuzz target with clang's libFuzzer (+ASan+UBSan) and runs each for
# FUZZ_SECONDS (default 60) on a scratch copy of its checked-in corpus. A crash,
# leak or sanitizer report fails the run, and the reproducer is kept in
# BUILD_DIR/fuzz-artifacts/.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$here/build-fuzz}
secs=${FUZZ_SECONDS:-60}
"$here/scripts/install-deps.sh"
CC=clang CXX=clang++ cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPS_FUZZ=ON -DPS_WERROR=OFF \
  -DPS_BENCH=OFF -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined" > "$build.configure.log" 2>&1 \
  || { cat "$build.configure.log"; exit 1; }
targets=$(cd "$here/tests/fuzz" && ls fuzz_*.cpp | sed 's/\.cpp$//')
cmake --build "$build" -j "${JOBS:-$(nproc)}" --target $targets
mkdir -p "$build/fuzz-artifacts"
status=0
for t in $targets; do
  name=${t#fuzz_}
  work=$(mktemp -d)
  cp -r "$here/tests/fuzz/corpus/$name/." "$work/" 2>/dev/null || true
  echo "== $t for ${secs}s"
  if ! "$build/tests/$t" "$work" -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$build/fuzz-artifacts/$name-" > "$build/fuzz-$name.log" 2>&1; then
    echo "FUZZ FAILURE in $t:"; tail -40 "$build/fuzz-$name.log"; status=1
  else
    grep -E "stat::number_of_executed_units|cov:" "$build/fuzz-$name.log" | tail -2
  fi
  rm -rf "$work"
done
exit $status

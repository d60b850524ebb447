#!/usr/bin/env bash
# Builds every fuzz target with clang's libFuzzer (+ASan+UBSan) and runs each for
# FUZZ_SECONDS (default 60) on a scratch copy of its checked-in corpus, FUZZ_JOBS
# (default: the number of cores) targets at a time. A crash,
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
# FUZZ_JOBS targets at a time (default: the number of cores), each on one core;
# every target still gets its FUZZ_SECONDS. Each writes its own result file,
# printed in the targets' order once all are done.
par=${FUZZ_JOBS:-$(nproc)}
results=$(mktemp -d)
run_one() {
  local t=$1 name=${1#fuzz_} work
  work=$(mktemp -d)
  cp -r "$here/tests/fuzz/corpus/$name/." "$work/" 2>/dev/null || true
  if "$build/tests/$t" "$work" -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$build/fuzz-artifacts/$name-" > "$build/fuzz-$name.log" 2>&1; then
    grep -E "stat::number_of_executed_units|cov:" "$build/fuzz-$name.log" | tail -2 > "$results/$t.ok"
  else
    { echo "FUZZ FAILURE in $t:"; tail -40 "$build/fuzz-$name.log"; } > "$results/$t.fail"
  fi
  rm -rf "$work"
}
echo "== $(echo $targets | wc -w) fuzz targets, ${secs}s each, $par at a time"
for t in $targets; do
  while [ "$(jobs -rp | wc -l)" -ge "$par" ]; do wait -n || true; done
  run_one "$t" &
done
wait
status=0
for t in $targets; do
  echo "== $t for ${secs}s"
  if [ -f "$results/$t.ok" ]; then cat "$results/$t.ok"
  else cat "$results/$t.fail" 2>/dev/null || echo "FUZZ FAILURE in $t: no result"; status=1; fi
done
rm -rf "$results"
exit $status

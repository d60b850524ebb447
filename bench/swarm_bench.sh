#!/usr/bin/env bash
# Issue 5's swarm benchmark: origin + 3 domains x (super-node + 8 devices), as
# separate processes on loopback; prints the time until the last device
# completes, the origin's bytes and each domain's imports as multiples of the
# patch, then the gossip propagation time (bench_gossip).
#   bench/swarm_bench.sh [BUILD_DIR] [PATCH_MIB]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
mib=${2:-32}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "\$ bench/swarm_bench.sh $build $mib"
PATCH_MIB=$mib DOMAINS="east west north" DEVICES_PER_DOMAIN=8 SEED_SECONDS=3 \
  "$here/examples/oneshot_swarm.sh" "$build" "$out/swarm" > "$out/log" 2>&1 || { cat "$out/log"; exit 1; }
python3 - "$out/swarm" <<'PY'
import glob, json, os, sys
d = sys.argv[1]
t0 = float(open(f"{d}/release-time").read())
# Each output file is renamed into place when its download completes.
done = [os.path.getmtime(p) for p in glob.glob(f"{d}/*-*.bin")]
print(f"nodes: {len(done)}; the last one completed {max(done) - t0:.2f} s after the release "
      f"(super-nodes prefetch first, devices join when their cache holds the patch)")
PY
grep -E "origin sent|imported|identical" "$out/log"
"$build/bench/bench_gossip" --nodes 30 --domains 3 --runs 3

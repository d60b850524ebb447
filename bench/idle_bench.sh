#!/usr/bin/env bash
# Idle device node: resident memory and CPU over a minute (issue 6's figure).
# A seed node and one device daemon on loopback; the device joins, gossips,
# holds no download, and is measured from /proc for DURATION seconds.
#   bench/idle_bench.sh [BUILD_DIR] [DURATION]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
dur=${2:-60}
bin=$build/patchswarm
d=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$d"' EXIT
echo "\$ bench/idle_bench.sh $build $dur"
"$bin" keygen --secret "$d/op.secret" --public "$d/op.public" > /dev/null
"$bin" node --data "$d/seed" --domain core --role super --trust "$d/op.public" --control none > "$d/seed.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q '^ready' "$d/seed.log" && break; sleep 0.1; done
port=$(sed -n 's/.* dht=\([0-9]*\).*/\1/p' "$d/seed.log")
"$bin" node --data "$d/dev" --domain east --role peer --trust "$d/op.public" --bootstrap "127.0.0.1:$port" \
  --control none > "$d/dev.log" 2>&1 &
dev=$!
pids+=($dev)
for _ in $(seq 100); do grep -q '^ready' "$d/dev.log" && break; sleep 0.1; done
sleep 5  # joined and settled
tick=$(getconf CLK_TCK)
cpu0=$(awk '{print $14 + $15}' "/proc/$dev/stat")
sleep "$dur"
cpu1=$(awk '{print $14 + $15}' "/proc/$dev/stat")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$dev/status")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$dev/status")
pss=$(awk '/^Pss:/ {s += $2} END {print s}' "/proc/$dev/smaps" 2>/dev/null || echo "?")
python3 -c "
cpu = ($cpu1 - $cpu0) / $tick / $dur * 100
print(f'idle device over {$dur} s: CPU {cpu:.3f}% of one core, RSS {$rss / 1024:.1f} MiB (peak {$hwm / 1024:.1f} MiB), PSS {int(\"$pss\" or 0) / 1024:.1f} MiB')
"

#!/usr/bin/env bash
# How `patchswarm sim` grows with the number of devices: wall time and peak RSS
# at download level (up to 10M devices in 3,000 domains) and at segment level
# (up to 100k devices), one model per run. Not run by CTest: it takes minutes
# and wants a quiet machine.
#
#   bench/sim_scaling.sh [BUILD_DIR]            # default: build/
#   MODELS="p2p-locality caching" ARRIVALS="poll flash" DOWNLOAD_N="1000000 10000000" \
#   SEGMENT_N="10000 100000" bench/sim_scaling.sh build
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
bin=$build/patchswarm
[ -x "$bin" ] || { echo "sim_scaling: no $bin (build it first)" >&2; exit 1; }
out=${OUT_DIR:-$(mktemp -d /tmp/sim-scaling.XXXXXX)}
mkdir -p "$out"
models=${MODELS:-"client-server caching p2p-locality p2p-full"}
arrivals=${ARRIVALS:-"poll flash"}
download_n=${DOWNLOAD_N-"1000000 3000000 10000000"}
segment_n=${SEGMENT_N-"10000 30000 100000"}
domains=${DOMAINS:-3000}
seg_domains=${SEG_DOMAINS:-30}

row() {  # level model arrival devices dir
    python3 - "$@" <<'EOF'
import json, sys
level, model, arrival, n, d = sys.argv[1:]
j = json.load(open(d + "/summary.json"))
m = j["models"][model]
print(f"{level:8} {model:14} {arrival:6} {int(n):>10} {j['seconds_wall']:9.1f} {j['peak_rss_bytes']/2**20:9.0f}"
      f" {100*m['source_fraction']:9.3f} {m['events']:12}")
EOF
}

printf "%-8s %-14s %-6s %10s %9s %9s %9s %12s\n" level model arrival devices wall-s rss-MiB source-% events
for n in $download_n; do
    for a in $arrivals; do
        for m in $models; do
            d=$out/download-$m-$a-$n
            "$bin" sim --level download --model "$m" --devices "$n" --domains "$domains" --arrival "$a" \
                --plots no --out "$d" >/dev/null 2>"$d.err" || { echo "failed: see $d.err" >&2; exit 1; }
            row download "$m" "$a" "$n" "$d"
        done
    done
done
for n in $segment_n; do
    for a in $arrivals; do
        for m in $models; do
            d=$out/segment-$m-$a-$n
            "$bin" sim --level segment --model "$m" --devices "$n" --domains "$seg_domains" --arrival "$a" \
                --plots no --out "$d" >/dev/null 2>"$d.err" || { echo "failed: see $d.err" >&2; exit 1; }
            row segment "$m" "$a" "$n" "$d"
        done
    done
done
echo "outputs in $out"
